//! Settings: a TOML file, then environment overrides, validated once into [`Config`].
//!
//! `RawConfig` is what serde reads; [`validate`] turns it into `Config`, in which every
//! field already has its final type (URL, duration, secret, email domain). Every problem is
//! reported, not only the first, and each message names the setting and what is expected.

//!
//! The parts: `raw` (the file as serde reads it), `env` (the `BCSSO_*` overlay, one table),
//! `validate` and `connection` (raw -> validated), `server` (`[server]`, whole), `urls`
//! (the strict URL checks); the validated types are here.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use openidconnect::IssuerUrl;
use url::Url;

use crate::domain::{ConnectionId, EmailDomain, Secret};
use crate::redirect::RelativePath;

mod connection;
mod env;
mod raw;
mod server;
mod validate;

#[cfg(test)]
pub use connection::test_connection;
pub use connection::validate_connection;
pub use env::{VARIABLES, apply_env, connection_secret_env};
pub use raw::{
    RawAdmin, RawChannel, RawConfig, RawConnection, RawDatabase, RawGroupRule, RawStore,
};
pub use server::{ClientIpSource, RawServer, ServerConfig};
use validate::{parse_web_url, secret_value};
pub use validate::{validate, validate_store};

/// Prefix of every environment variable the gateway reads.
pub const ENV_PREFIX: &str = "BCSSO_";

/// ID-token signature algorithms a connection may allow. Only asymmetric ones: an HMAC
/// ID token is keyed with the client secret, and SECURITY.md rule 9 keeps HS* out.
pub const SUPPORTED_ID_TOKEN_ALGS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("missing {key}: set it in the config file or as env {env}")]
    Missing { key: String, env: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
    #[error("{key}: cannot read secret file {}: {source}", path.display())]
    SecretFile {
        key: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "email domain {domain} is claimed by connections {first} and {second}; one connection per domain"
    )]
    DomainClaimedTwice {
        domain: String,
        first: String,
        second: String,
    },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------------------
// The validated configuration

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreSection,
    pub database: DatabaseConfig,
    /// The bootstrap admin token; `None` disables the admin console and API.
    pub admin_token: Option<Secret>,
    pub admin_sso: Option<AdminSso>,
    pub connections: Vec<Connection>,
}

#[derive(Clone)]
pub struct DatabaseConfig {
    /// May carry a password: printed only through `redact_url`.
    pub url: String,
    pub audit_retention: Duration,
    /// How stale a link's `last_sign_in_at` may get before a sign-in writes it again: one
    /// write per returning sign-in was half of a sign-in's database work.
    pub link_touch_interval: Duration,
    /// `None`: the console cannot store secrets (and a database holding some will not open).
    pub secret_key: Option<crate::secrets::SecretKey>,
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &crate::db::redact_url(&self.url))
            .field("audit_retention", &self.audit_retention)
            .field("link_touch_interval", &self.link_touch_interval)
            .field("secret_key", &self.secret_key)
            .finish()
    }
}

/// The store this gateway serves. `store_hash` also keys every row the gateway keeps in
/// the database, so it comes from the file or env and never from the console.
#[derive(Debug, Clone)]
pub struct StoreSection {
    pub store_hash: String,
    pub clock_check_interval: Duration,
    /// The API account and channels when the file declares them; `None` when an admin
    /// sets them in the console (see `settings::store`).
    pub declared: Option<StoreConfig>,
}

/// The API account and channels in force, with the store hash they belong to.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub store_hash: String,
    /// `https://api.bigcommerce.com` in production; the emulator's URL in demo and tests.
    pub api_base_url: Url,
    pub access_token: Secret,
    pub client_id: String,
    pub client_secret: Secret,
    /// From `[store]` (the console does not set it).
    pub clock_check_interval: Duration,
    pub channels: BTreeMap<i64, Channel>,
}

#[derive(Debug, Clone)]
pub struct Channel {
    pub id: i64,
    pub storefront_url: Url,
    pub default_redirect: RelativePath,
}

#[derive(Debug, Clone)]
pub struct Connection {
    pub id: ConnectionId,
    pub display_name: String,
    /// Kept exactly as configured: discovery and the ID token's `iss` must equal this
    /// string, and `https://idp/` is not `https://idp` to them.
    pub issuer: IssuerUrl,
    pub client_id: String,
    pub client_secret: Secret,
    pub scopes: Vec<String>,
    pub allowed_email_domains: Vec<EmailDomain>,
    /// Domains (within the allowed ones) whose emails count as verified without
    /// `email_verified` (SECURITY.md rule 3). Empty: none.
    pub trusted_email_domains: Vec<EmailDomain>,
    /// Customer group of new customers when no group rule matches.
    pub customer_group_id: Option<i64>,
    pub groups_claim: String,
    pub group_rules: Vec<GroupRule>,
    pub company_claim: Option<String>,
    /// Lowercased; see `RawConnection::hosted_domain`.
    pub hosted_domain: Option<String>,
    pub sync_profile: bool,
    /// Empty = every configured channel.
    pub channels: Vec<i64>,
    pub create_customers: bool,
    pub link_existing: LinkExisting,
    pub allow_non_ascii_email: bool,
    pub channel_access: ChannelAccess,
    pub id_token_algs: Vec<String>,
    pub clock_leeway: Duration,
    /// Entra multi-tenant: the issuer is a template and only these tenants may sign in.
    pub tenants: Option<MultiTenant>,
}

/// The placeholder of Entra's multi-tenant discovery documents: their `issuer` is
/// `https://login.microsoftonline.com/{tenantid}/v2.0`, and every token names its tenant.
pub const TENANT_PLACEHOLDER: &str = "{tenantid}";

/// An Entra `/organizations` or `/common` connection (SECURITY.md rule 9): any tenant's
/// users can get a token for the app, so the token's `iss` is checked against the template
/// filled with its own `tid`, and the `tid` against the allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiTenant {
    /// The issuer the discovery document publishes, with [`TENANT_PLACEHOLDER`].
    pub issuer_template: String,
    /// Lowercase tenant GUIDs.
    pub allowed: Vec<String>,
}

impl MultiTenant {
    /// The issuer of tokens from tenant `tid`.
    pub fn issuer_of(&self, tid: &str) -> String {
        self.issuer_template.replace(TENANT_PLACEHOLDER, tid)
    }

    /// Whether `tid` is on the allow-list (tenant ids compare case-insensitively: GUIDs).
    pub fn allows(&self, tid: &str) -> bool {
        self.allowed.iter().any(|t| t.eq_ignore_ascii_case(tid))
    }

    /// Whether `iss` is the issuer of an allowed tenant.
    pub fn allows_issuer(&self, iss: &str) -> bool {
        self.allowed.iter().any(|t| self.issuer_of(t) == iss)
    }
}

impl Connection {
    /// The `issuer` the discovery document must publish: the configured issuer, or for an
    /// Entra multi-tenant connection its template.
    pub fn published_issuer(&self) -> &str {
        match &self.tenants {
            Some(t) => &t.issuer_template,
            None => self.issuer.as_str(),
        }
    }
}

/// Admin sign-in through an IdP connection.
#[derive(Debug, Clone)]
pub struct AdminSso {
    pub connection: String,
    /// Lowercased.
    pub allowed_emails: Vec<String>,
    pub allowed_groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRule {
    pub group: String,
    pub customer_group_id: i64,
}

impl Connection {
    /// Whether this IdP is trusted for the unverified emails of `domain` (rule 3).
    pub fn trusts_unverified_email(&self, domain: &str) -> bool {
        self.trusted_email_domains.iter().any(|d| d.matches(domain))
    }

    pub fn allows_channel(&self, channel_id: i64) -> bool {
        self.channels.is_empty() || self.channels.contains(&channel_id)
    }

    /// The customer group for a user with `groups`: the first matching rule, else the
    /// connection's default (SECURITY: groups are claims like any other, so they only
    /// choose among groups the admin mapped).
    pub fn customer_group_for(&self, groups: &[String]) -> Option<i64> {
        self.group_rules
            .iter()
            .find(|r| groups.contains(&r.group))
            .map(|r| r.customer_group_id)
            .or(self.customer_group_id)
    }
}

/// What a first sign-in does with a customer that exists at BigCommerce before it
/// (SECURITY.md rule 20).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkExisting {
    /// Refuse the sign-in (`existing_customer_not_linked`); an admin creates the link.
    Refuse,
    /// Link it and set `authentication.force_password_reset`, so a password somebody else
    /// chose for the address stops working.
    #[default]
    ResetPassword,
    /// Link it as it is: for stores whose customers were all created by a trusted import.
    Link,
}

impl LinkExisting {
    pub const CHOICES: [(LinkExisting, &'static str); 3] = [
        (LinkExisting::ResetPassword, "reset_password"),
        (LinkExisting::Refuse, "refuse"),
        (LinkExisting::Link, "link"),
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::CHOICES
            .iter()
            .find(|(_, name)| *name == s.trim())
            .map(|(v, _)| *v)
    }

    pub fn as_str(self) -> &'static str {
        Self::CHOICES
            .iter()
            .find(|(v, _)| *v == self)
            .map_or("reset_password", |(_, name)| name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelAccess {
    Channel,
    Global,
}

impl Config {
    pub fn connection(&self, id: &str) -> Option<&Connection> {
        self.connections.iter().find(|c| c.id.as_str() == id)
    }

    /// Where connection `id`'s IdP returns shoppers: one redirect URI per connection, so a
    /// code always comes back to the callback of the IdP that issued it. With one URI for
    /// all, a malicious IdP configured as another connection could relay a victim through an
    /// honest IdP that does not send RFC 9207 `iss`, receive the code at its own token
    /// endpoint, and sign its operator in as the victim (mix-up, RFC 9700 §4.4.2).
    pub fn redirect_uri(&self, id: &str) -> Url {
        join_path(&self.server.public_url, &format!("oidc/callback/{id}"))
    }

    /// Where an IdP sends the browser back after signing the shopper out (RP-Initiated
    /// Logout's `post_logout_redirect_uri`); the gateway then signs out of the storefront.
    pub fn post_logout_redirect_uri(&self) -> Url {
        join_path(&self.server.public_url, "logout/done")
    }

    /// Where the IdP returns admins who sign in to the console with it.
    pub fn admin_redirect_uri(&self) -> Url {
        join_path(&self.server.public_url, "admin/oidc/callback")
    }
}

/// Joins a relative path onto a base URL whether or not the base ends with `/`.
pub fn join_path(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!("{}/{}", base.path().trim_end_matches('/'), path);
    url.set_path(&joined);
    url
}

// ---------------------------------------------------------------------------------------
// Loading

/// Reads the file (if any), applies `BCSSO_*` overrides from `env`, and validates.
pub fn load(
    path: Option<&Path>,
    env: &HashMap<String, String>,
) -> Result<Config, Vec<ConfigError>> {
    let mut raw = match path {
        Some(path) => read_file(path).map_err(|e| vec![e])?,
        None => RawConfig::default(),
    };
    for key in apply_env(&mut raw, env) {
        tracing::warn!(env = %key, "unknown BCSSO_ environment variable ignored");
    }
    validate(raw)
}

pub fn read_file(path: &Path) -> Result<RawConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source: Box::new(source),
    })
}

// The loopback test and the check of IdP-published URLs (SECURITY.md rule 23) live in
// their own file so sign-in, discovery and the admin checks share one strict version.
mod urls;
pub use urls::{UrlRefusal, check_idp_url, check_idp_url_str, is_loopback};

#[cfg(test)]
mod tests;
