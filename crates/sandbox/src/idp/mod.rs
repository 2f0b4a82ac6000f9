//! Dev OpenID Provider: a small, correct OP (authorization code flow + PKCE S256) for the
//! one-command demo and the gateway's integration tests, with switchable
//! [`Misbehaviour`]s for the negative tests of SECURITY.md.
//!
//! It is a real HTTP server: build a [`DevIdp`], serve [`DevIdp::router`] at the issuer
//! URL's root (the issuer has no path), and point the relying party at
//! [`DevIdp::issuer`]. Sign-in is a page listing the configured users; no passwords.
//!
//! The issuer identifier is the configured URL *without* the trailing slash `Url` adds to
//! an empty path, e.g. `http://127.0.0.1:4000`. Issuer comparison in OIDC is an exact
//! string match, so configure the relying party with [`DevIdp::issuer`] verbatim.
//!
//! Claims follow the scopes: `email` gives `email`/`email_verified`, `profile` gives
//! `name`/`given_name`/`family_name`, `groups` gives `groups`.
//!
//! # Users file
//!
//! [`load_users`] reads a TOML file of `[[users]]` tables. Only `sub` is required;
//! `email_verified` may be a bool, the string `"true"`/`"false"` (some IdPs send
//! strings), or absent (which a relying party must treat as unverified). Unknown keys
//! are rejected, so a typo such as `email_verfied` is an error rather than "unverified".
//!
//! ```toml
//! [[users]]
//! sub = "ada"
//! email = "ada@example.com"
//! email_verified = true
//! given_name = "Ada"
//! family_name = "Lovelace"
//! name = "Ada Lovelace"
//! groups = ["engineering"]
//!
//! [[users]]
//! sub = "mallory"
//! email = "mallory@example.com"
//! email_verified = "false"
//! ```

mod authorize;
mod endpoints;
mod id_token;
mod keys;
mod misbehaviour;
#[cfg(test)]
mod tests;
mod token;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use url::Url;

use keys::SigningKey;
pub use misbehaviour::Misbehaviour;

/// One user who can sign in at the dev IdP.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DevUser {
    pub sub: String,
    pub email: Option<String>,
    /// bool `true`/`false`, or the strings "true"/"false" (some IdPs send strings), or absent.
    pub email_verified: Option<serde_json::Value>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub name: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// Google's `hd` claim (Workspace domain), sent with the email when set.
    #[serde(default)]
    pub hd: Option<String>,
    /// Microsoft Entra's `xms_edov` (the email's domain is verified by the tenant), sent
    /// with the email when set.
    #[serde(default)]
    pub xms_edov: Option<serde_json::Value>,
    /// Microsoft Entra's tenant id. A user with one gets Entra-shaped tokens: `tid`, and
    /// `iss` = `<issuer>/<tid>/v2.0`, as a multi-tenant app (`/organizations/v2.0`) sees them.
    #[serde(default)]
    pub tid: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    users: Vec<DevUser>,
}

/// Errors of the dev IdP outside request handling (config, keys) and its internal failures.
#[derive(Debug, thiserror::Error)]
pub enum IdpError {
    #[error("{}: cannot read users file: {source}", path.display())]
    ReadUsers {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: invalid users file: {source}", path.display())]
    ParseUsers {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("{}: {problem}", path.display())]
    InvalidUsers { path: PathBuf, problem: String },
    #[error("RSA key generation failed: {0}")]
    KeyGeneration(String),
    #[error("signing the ID token failed")]
    Signing(#[source] jsonwebtoken::errors::Error),
    #[error("encoding a token failed: {0}")]
    Encoding(String),
    #[error("UnknownKid misbehaviour without a bogus key (key generation failed earlier)")]
    BogusKeyMissing,
    #[error("issuer {issuer}: {problem}")]
    InvalidIssuer { issuer: Url, problem: &'static str },
}

/// Reads a TOML users file (format in the module docs). Errors name the file.
pub fn load_users(path: &Path) -> Result<Vec<DevUser>, IdpError> {
    let text = std::fs::read_to_string(path).map_err(|source| IdpError::ReadUsers {
        path: path.to_owned(),
        source,
    })?;
    let file: UsersFile = toml::from_str(&text).map_err(|source| IdpError::ParseUsers {
        path: path.to_owned(),
        source,
    })?;
    let invalid = |problem: String| IdpError::InvalidUsers {
        path: path.to_owned(),
        problem,
    };
    if file.users.is_empty() {
        return Err(invalid("no [[users]] defined".into()));
    }
    let mut seen = std::collections::HashSet::new();
    for user in &file.users {
        if user.sub.is_empty() {
            return Err(invalid("a user has an empty sub".into()));
        }
        if !seen.insert(user.sub.as_str()) {
            return Err(invalid(format!("sub {:?} appears twice", user.sub)));
        }
        match &user.email_verified {
            None | Some(serde_json::Value::Bool(_)) => {}
            Some(serde_json::Value::String(s)) if s == "true" || s == "false" => {}
            Some(other) => {
                return Err(invalid(format!(
                    "user {:?}: email_verified must be true, false, \"true\" or \"false\" (got {other})",
                    user.sub
                )));
            }
        }
    }
    Ok(file.users)
}

/// Friendly users for the demo: two verified, one unverified, one at another domain.
pub fn demo_users() -> Vec<DevUser> {
    let user =
        |sub: &str, email: &str, verified: serde_json::Value, given: &str, family: &str| DevUser {
            sub: sub.into(),
            email: Some(email.into()),
            email_verified: Some(verified),
            given_name: Some(given.into()),
            family_name: Some(family.into()),
            name: Some(format!("{given} {family}")),
            groups: vec![],
            hd: None,
            xms_edov: None,
            tid: None,
        };
    let mut ada = user("ada", "ada@example.com", true.into(), "Ada", "Lovelace");
    ada.groups = vec!["engineering".into(), "admins".into()];
    let mut grace = user("grace", "grace@example.com", true.into(), "Grace", "Hopper");
    grace.groups = vec!["engineering".into()];
    vec![
        ada,
        grace,
        user("eve", "eve@example.com", false.into(), "Eve", "Unverified"),
        user(
            "oscar",
            "oscar@other.test",
            true.into(),
            "Oscar",
            "Outsider",
        ),
    ]
}

/// A registered relying party.
#[derive(Clone)]
pub struct DevClient {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uris: Vec<Url>,
    /// Also accepted: any longer redirect URI starting with one of these. For the demo's
    /// client, whose connections an admin may add in the console under any id (each has its
    /// own `<gateway>/oidc/callback/<id>`). A real IdP registers exact URIs; so do tests.
    pub redirect_uri_prefixes: Vec<Url>,
}

// Hand-written so the secret never reaches a log through `{:?}`.
impl std::fmt::Debug for DevClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevClient")
            .field("client_id", &self.client_id)
            .field("client_secret", &"***")
            .field("redirect_uris", &self.redirect_uris)
            .field("redirect_uri_prefixes", &self.redirect_uri_prefixes)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct DevIdpConfig {
    pub issuer: Url,
    pub clients: Vec<DevClient>,
    pub users: Vec<DevUser>,
    /// false: the ID token carries only sub (+ protocol claims) and email/profile come from userinfo only
    pub email_in_id_token: bool,
    /// advertise and send RFC 9207 `iss` in the authorization response
    pub send_iss_parameter: bool,
}

/// The dev OpenID Provider. Cheap to clone; all clones share state.
#[derive(Clone)]
pub struct DevIdp {
    inner: Arc<Inner>,
}

struct Inner {
    /// Issuer identifier as sent in `iss` and discovery (no trailing slash).
    issuer: String,
    endpoints: endpoints::Endpoints,
    clients: Vec<DevClient>,
    email_in_id_token: AtomicBool,
    /// Off: `groups` only from userinfo, as Okta and Keycloak do by default.
    groups_in_id_token: AtomicBool,
    send_iss_parameter: bool,
    jwks_fetches: AtomicU64,
    token_requests: AtomicU64,
    userinfo_requests: AtomicU64,
    state: Mutex<State>,
}

struct State {
    users: Vec<DevUser>,
    misbehaviour: Misbehaviour,
    signing: SigningKey,
    extra_keys: Vec<SigningKey>,
    bogus: Option<SigningKey>,
    /// The ID token of the last honest exchange, for [`Misbehaviour::ReplayIdToken`].
    last_id_token: Option<String>,
    pending: HashMap<String, PendingAuthorization>,
    codes: HashMap<String, CodeGrant>,
    access_tokens: HashMap<String, AccessGrant>,
}

/// An authorization request waiting for the user to pick an account.
struct PendingAuthorization {
    client_id: String,
    redirect_uri: Url,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: String,
    scopes: Vec<String>,
    created: Instant,
}

/// What an authorization code stands for; removed on first use.
struct CodeGrant {
    client_id: String,
    redirect_uri: Url,
    code_challenge: String,
    nonce: Option<String>,
    sub: String,
    scopes: Vec<String>,
    auth_time: i64,
    issued: Instant,
}

struct AccessGrant {
    sub: String,
    scopes: Vec<String>,
    expires: Instant,
}

impl DevIdp {
    /// Builds the IdP with a signing key from the process-wide pool.
    ///
    /// # Panics
    /// If RSA key generation fails (it does not in practice); use [`DevIdp::try_new`]
    /// to get the error instead.
    pub fn new(config: DevIdpConfig) -> Self {
        match Self::try_new(config) {
            Ok(idp) => idp,
            Err(e) => panic!("dev IdP: {e}"),
        }
    }

    pub fn try_new(config: DevIdpConfig) -> Result<Self, IdpError> {
        let url = &config.issuer;
        let invalid = |problem| IdpError::InvalidIssuer {
            issuer: url.clone(),
            problem,
        };
        // The router serves at "/", so an issuer path would make every endpoint URL wrong.
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("must have no path, query or fragment"));
        }
        if url.cannot_be_a_base() || !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("must be an http(s) URL"));
        }
        let endpoints =
            endpoints::Endpoints::new(url).map_err(|_| invalid("cannot build endpoint URLs"))?;
        let signing = keys::take_key()?;
        let issuer = url.as_str().trim_end_matches('/').to_owned();
        Ok(DevIdp {
            inner: Arc::new(Inner {
                issuer,
                endpoints,
                clients: config.clients,
                email_in_id_token: AtomicBool::new(config.email_in_id_token),
                groups_in_id_token: AtomicBool::new(true),
                send_iss_parameter: config.send_iss_parameter,
                jwks_fetches: AtomicU64::new(0),
                token_requests: AtomicU64::new(0),
                userinfo_requests: AtomicU64::new(0),
                state: Mutex::new(State {
                    users: config.users,
                    misbehaviour: Misbehaviour::None,
                    signing,
                    extra_keys: Vec::new(),
                    bogus: None,
                    last_id_token: None,
                    pending: HashMap::new(),
                    codes: HashMap::new(),
                    access_tokens: HashMap::new(),
                }),
            }),
        })
    }

    /// The issuer identifier exactly as it appears in `iss` and discovery.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The issuer of Entra tenant `tid` at this IdP: `<issuer>/<tid>/v2.0`. Its
    /// multi-tenant discovery documents are at `<issuer>/organizations/v2.0` and
    /// `<issuer>/common/v2.0`.
    pub fn tenant_issuer(&self, tid: &str) -> String {
        format!("{}/{tid}/v2.0", self.inner.issuer)
    }

    /// The axum router; serve it at the issuer URL's root.
    pub fn router(&self) -> axum::Router {
        endpoints::router(self.clone())
    }

    /// Applies to every following response until changed.
    pub fn set_misbehaviour(&self, m: Misbehaviour) {
        let mut state = self.state();
        if m == Misbehaviour::UnknownKid && state.bogus.is_none() {
            // Taken here, not when minting, so no request handler waits for key generation.
            match keys::take_key() {
                Ok(key) => state.bogus = Some(key),
                Err(e) => tracing::error!(error = %e, "dev IdP: no key for UnknownKid"),
            }
        }
        tracing::info!(misbehaviour = ?m, "dev IdP misbehaviour set");
        state.misbehaviour = m;
    }

    pub fn misbehaviour(&self) -> Misbehaviour {
        self.state().misbehaviour.clone()
    }

    /// New signing key pair with a new kid; the JWKS then lists only the new key.
    ///
    /// # Panics
    /// If RSA key generation fails (it does not in practice).
    pub fn rotate_key(&self) {
        let key = Self::take_key_or_panic();
        let mut state = self.state();
        state.signing = key;
        state.extra_keys.clear();
    }

    /// The JWKS lists a second, unused key too (for "no kid, two keys").
    ///
    /// # Panics
    /// If RSA key generation fails (it does not in practice).
    pub fn add_extra_jwks_key(&self) {
        let key = Self::take_key_or_panic();
        self.state().extra_keys.push(key);
    }

    /// The kid of the current signing key.
    pub fn current_kid(&self) -> String {
        self.state().signing.kid.clone()
    }

    /// PEM (SPKI) of the current signing key's public half.
    pub fn public_key_pem(&self) -> String {
        self.state().signing.public_pem().to_owned()
    }

    /// Requests to the JWKS endpoint so far, including ones answered 503 under `JwksDown`.
    pub fn jwks_fetch_count(&self) -> u64 {
        self.inner.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Requests to the token endpoint so far, whatever their outcome.
    pub fn token_request_count(&self) -> u64 {
        self.inner.token_requests.load(Ordering::SeqCst)
    }

    pub fn userinfo_request_count(&self) -> u64 {
        self.inner.userinfo_requests.load(Ordering::SeqCst)
    }

    /// Switches between claims in the ID token and claims only from userinfo.
    pub fn set_email_in_id_token(&self, on: bool) {
        self.inner.email_in_id_token.store(on, Ordering::Relaxed);
    }

    /// Off: the ID token carries no `groups` claim; userinfo still does.
    pub fn set_groups_in_id_token(&self, on: bool) {
        self.inner.groups_in_id_token.store(on, Ordering::Relaxed);
    }

    /// Replaces the users; tokens and userinfo issued afterwards use the new data.
    pub fn set_users(&self, users: Vec<DevUser>) {
        self.state().users = users;
    }

    pub fn users(&self) -> Vec<DevUser> {
        self.state().users.clone()
    }

    fn take_key_or_panic() -> SigningKey {
        match keys::take_key() {
            Ok(key) => key,
            Err(e) => panic!("dev IdP: {e}"),
        }
    }

    // A panic while holding the lock cannot leave State half-updated in a way that
    // matters for a dev IdP, so a poisoned lock is simply taken over.
    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
