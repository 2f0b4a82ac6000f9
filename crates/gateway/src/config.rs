//! Settings: a TOML file, then environment overrides, validated once into [`Config`].
//!
//! `RawConfig` is what serde reads; [`validate`] turns it into `Config`, in which every
//! field already has its final type (URL, duration, secret, email domain). Every problem is
//! reported, not only the first, and each message names the setting and what is expected.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use openidconnect::IssuerUrl;
use serde::Deserialize;
use url::Url;

use crate::domain::{ConnectionId, Email, EmailDomain, Secret};
use crate::redirect::RelativePath;

mod server;
use server::validate_server;
pub use server::{ClientIpSource, RawServer, ServerConfig};

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
// The file as written

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub database: RawDatabase,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub connections: Vec<RawConnection>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// Bootstrap admin token for the console and the admin API; without one, both are off.
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    /// Admins sign in through this connection (its IdP must also allow the redirect URI
    /// `<public_url>/admin/oidc/callback`) when their email or a group is listed below.
    pub sso_connection: Option<String>,
    #[serde(default)]
    pub allowed_emails: Vec<String>,
    #[serde(default)]
    pub allowed_groups: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    /// `sqlite://PATH` (default `sqlite://bc-sso-gateway.sqlite`), `sqlite::memory:`, or
    /// `postgres://…`.
    pub url: Option<String>,
    pub audit_retention_days: Option<u64>,
    /// Encrypts the secrets the admin console stores (32 bytes, base64 or hex).
    pub secret_key: Option<String>,
    pub secret_key_file: Option<PathBuf>,
}

/// `[store]`: the store hash always; the API account and channels either here (then
/// read-only in the console) or not at all (then an admin sets them in the console, which
/// stores this same shape, without the secrets, in the database).
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub store_hash: Option<String>,
    pub api_base_url: Option<String>,
    pub access_token: Option<String>,
    pub access_token_file: Option<PathBuf>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    pub clock_check_interval_secs: Option<u64>,
    #[serde(default)]
    pub channels: Vec<RawChannel>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawChannel {
    pub id: i64,
    pub storefront_url: String,
    pub default_redirect: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConnection {
    pub id: Option<String>,
    pub display_name: Option<String>,
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub allowed_email_domains: Vec<String>,
    /// Accept an email the IdP does not mark verified, in every allowed domain. Off by
    /// default; a warning is logged. Prefer `trusted_email_domains`.
    #[serde(default)]
    pub trust_unverified_email: bool,
    /// The allowed domains whose unverified emails this IdP is authoritative for (it owns
    /// them and users cannot set their own email), e.g. an Entra tenant's verified domains.
    #[serde(default)]
    pub trusted_email_domains: Vec<String>,
    pub customer_group_id: Option<i64>,
    /// The claim that lists the user's groups (default "groups").
    pub groups_claim: Option<String>,
    /// IdP group -> BigCommerce customer group for new customers; the first rule whose
    /// group the user has wins, else `customer_group_id`.
    #[serde(default)]
    pub group_rules: Vec<RawGroupRule>,
    /// A claim whose value becomes the customer's `company` (e.g. "organization").
    pub company_claim: Option<String>,
    /// Google Workspace: the `hd` claim every sign-in must carry (SECURITY.md rule 6).
    pub hosted_domain: Option<String>,
    /// Update names, group and company on every sign-in when they changed at the IdP
    /// (costs a BigCommerce call per sign-in).
    #[serde(default)]
    pub sync_profile: bool,
    /// Storefront channels this connection may sign in to; empty = all configured ones.
    #[serde(default)]
    pub channels: Vec<i64>,
    pub create_customers: Option<bool>,
    /// A first sign-in whose email matches a customer this gateway did not create (for
    /// example one registered with a password on the storefront, where BigCommerce does not
    /// verify the email): "reset_password" (default) links it and forces a password reset,
    /// so whoever registered the address first loses password access; "refuse" refuses the
    /// sign-in; "link" links it as it is (SECURITY.md rule 20).
    pub link_existing: Option<String>,
    /// Accept emails whose part before '@' is not ASCII. Off by default: such addresses can
    /// fold into someone else's under Unicode case rules (SECURITY.md rule 19).
    #[serde(default)]
    pub allow_non_ascii_email: bool,
    /// "channel" (default): new customers may sign in only on the channel they came from;
    /// "global": new customers get no `channel_ids` and may use every channel that allows it.
    pub channel_access: Option<String>,
    pub id_token_algs: Option<Vec<String>>,
    pub clock_leeway_secs: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawGroupRule {
    pub group: String,
    pub customer_group_id: i64,
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
    /// `None`: the console cannot store secrets (and a database holding some will not open).
    pub secret_key: Option<crate::secrets::SecretKey>,
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &crate::store::redact_url(&self.url))
            .field("audit_retention", &self.audit_retention)
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
    /// sets them in the console (see `store_settings`).
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

    pub fn redirect_uri(&self) -> Url {
        join_path(&self.server.public_url, "oidc/callback")
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

/// Environment variable that overrides a connection's client secret.
pub fn connection_secret_env(id: &str) -> String {
    format!(
        "{ENV_PREFIX}CONNECTION_{}_CLIENT_SECRET",
        id.to_ascii_uppercase().replace('-', "_")
    )
}

/// Applies overrides; returns the `BCSSO_*` keys it did not recognise.
pub fn apply_env(raw: &mut RawConfig, env: &HashMap<String, String>) -> Vec<String> {
    let mut unknown = Vec::new();
    let secret_envs: HashMap<String, usize> = raw
        .connections
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.id.as_deref().map(|id| (connection_secret_env(id), i)))
        .collect();
    let mut keys: Vec<&String> = env.keys().filter(|k| k.starts_with(ENV_PREFIX)).collect();
    keys.sort();
    for key in keys {
        let value = env[key].clone();
        let name = &key[ENV_PREFIX.len()..];
        match name {
            "CONFIG" | "LOG" | "LOG_FORMAT" => {}
            _ if name.starts_with("SERVER_")
                && server::apply_env(&mut raw.server, name, value.clone()) => {}
            "STORE_HASH" => raw.store.store_hash = Some(value),
            "STORE_API_BASE_URL" => raw.store.api_base_url = Some(value),
            "STORE_ACCESS_TOKEN" => raw.store.access_token = Some(value),
            "STORE_ACCESS_TOKEN_FILE" => raw.store.access_token_file = Some(value.into()),
            "STORE_CLIENT_ID" => raw.store.client_id = Some(value),
            "STORE_CLIENT_SECRET" => raw.store.client_secret = Some(value),
            "STORE_CLIENT_SECRET_FILE" => raw.store.client_secret_file = Some(value.into()),
            "DATABASE_URL" => raw.database.url = Some(value),
            "SECRET_KEY" => raw.database.secret_key = Some(value),
            "SECRET_KEY_FILE" => raw.database.secret_key_file = Some(value.into()),
            "ADMIN_TOKEN" => raw.admin.token = Some(value),
            "ADMIN_TOKEN_FILE" => raw.admin.token_file = Some(value.into()),
            _ => match secret_envs.get(key) {
                Some(&i) => raw.connections[i].client_secret = Some(value),
                None => unknown.push(key.clone()),
            },
        }
    }
    unknown
}

// ---------------------------------------------------------------------------------------
// Validation

pub fn validate(raw: RawConfig) -> Result<Config, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let server = validate_server(raw.server, &mut errors);
    let console_store = !declares_account(&raw.store);
    let store = validate_store_section(raw.store, &mut errors);
    let has_admin = raw.admin.token.is_some() || raw.admin.token_file.is_some();
    if console_store && !has_admin {
        errors.push(invalid(
            "store",
            "set the API account (store.access_token, store.client_id, store.client_secret, or BCSSO_STORE_ACCESS_TOKEN, …) and [[store.channels]], or an admin token (BCSSO_ADMIN_TOKEN) to enter them in the admin console",
        ));
    }
    if console_store
        && has_admin
        && raw.database.secret_key.is_none()
        && raw.database.secret_key_file.is_none()
    {
        errors.push(invalid(
            "database.secret_key",
            "required when the store's API account is set in the admin console: it encrypts the access token and client secret (bc-sso-gateway keygen makes one)",
        ));
    }
    if raw.connections.is_empty() && raw.admin.token.is_none() && raw.admin.token_file.is_none() {
        // Without connections in the file, the admin console is the only way to add one.
        errors.push(invalid(
            "connections",
            "add a [[connections]] entry (an identity provider), or set an admin token to add connections in the admin console",
        ));
    }
    let connections: Vec<Connection> = raw
        .connections
        .into_iter()
        .enumerate()
        .filter_map(|(i, c)| validate_connection(i, c, &mut errors))
        .collect();
    check_unique_connections(&connections, &mut errors);
    if let Some(store) = store.as_ref().and_then(|s| s.declared.as_ref()) {
        for c in &connections {
            for ch in c
                .channels
                .iter()
                .filter(|ch| !store.channels.contains_key(ch))
            {
                errors.push(invalid(
                    format!("connections.{}.channels", c.id),
                    format!("channel {ch} is not one of the [[store.channels]]"),
                ));
            }
        }
    }
    let retention_days = raw.database.audit_retention_days.unwrap_or(90);
    if retention_days == 0 {
        errors.push(invalid(
            "database.audit_retention_days",
            "must be at least 1 (days of sign-in history to keep)",
        ));
    }
    let secret_key = secret_value(
        "database.secret_key",
        raw.database.secret_key,
        raw.database.secret_key_file,
        &mut errors,
    )
    .and_then(
        |text| match crate::secrets::SecretKey::parse(text.expose()) {
            Ok(key) => Some(key),
            Err(e) => {
                errors.push(invalid("database.secret_key", e.to_string()));
                None
            }
        },
    );
    let database = DatabaseConfig {
        url: raw
            .database
            .url
            .unwrap_or_else(|| "sqlite://bc-sso-gateway.sqlite".into()),
        audit_retention: Duration::from_secs(retention_days * 86_400),
        secret_key,
    };
    let admin_token = secret_value(
        "admin.token",
        raw.admin.token,
        raw.admin.token_file,
        &mut errors,
    );
    if admin_token
        .as_ref()
        .is_some_and(|t| t.expose().chars().count() < 24)
    {
        errors.push(invalid(
            "admin.token",
            "must be at least 24 characters (generate one with: openssl rand -hex 24)",
        ));
    }
    let admin_sso = raw.admin.sso_connection.map(|connection| {
        // Only a connection of the file: one made in the console could be repointed at
        // another IdP (or its groups claim changed) by whoever holds the console.
        if !connections.iter().any(|c| c.id.as_str() == connection) {
            errors.push(invalid(
                "admin.sso_connection",
                format!("{connection:?} is not a [[connections]] entry of this file"),
            ));
        }
        if raw.admin.allowed_emails.is_empty() && raw.admin.allowed_groups.is_empty() {
            errors.push(invalid(
                "admin.allowed_emails",
                "list the admins' emails (or admin.allowed_groups) who may sign in through admin.sso_connection",
            ));
        }
        // The same normalisation as a shopper's email (SECURITY.md rule 19): ASCII case
        // folding only, IDNA domain, so an internationalised admin domain still matches.
        let mut allowed_emails = Vec::new();
        for e in raw.admin.allowed_emails.iter().map(|e| e.trim()) {
            match Email::parse(e) {
                Ok(email) => allowed_emails.push(email.normalised()),
                Err(err) => errors.push(invalid("admin.allowed_emails", format!("{e:?}: {err}"))),
            }
        }
        AdminSso {
            connection,
            allowed_emails,
            allowed_groups: raw.admin.allowed_groups,
        }
    });
    match (server, store) {
        (Some(server), Some(store)) if errors.is_empty() => Ok(Config {
            server,
            store,
            database,
            admin_token,
            admin_sso,
            connections,
        }),
        _ => Err(errors),
    }
}

/// Whether `[store]` (with env overrides) declares the API account: any of its settings
/// beyond the store hash and the clock interval.
fn declares_account(raw: &RawStore) -> bool {
    raw.api_base_url.is_some()
        || raw.access_token.is_some()
        || raw.access_token_file.is_some()
        || raw.client_id.is_some()
        || raw.client_secret.is_some()
        || raw.client_secret_file.is_some()
        || !raw.channels.is_empty()
}

fn validate_store_section(raw: RawStore, errors: &mut Vec<ConfigError>) -> Option<StoreSection> {
    let store_hash = required(
        "store.store_hash",
        "STORE_HASH",
        raw.store_hash.clone(),
        errors,
    );
    if let Some(hash) = &store_hash
        && (hash.is_empty() || !hash.chars().all(|c| c.is_ascii_alphanumeric()))
    {
        errors.push(invalid(
            "store.store_hash",
            "expected the store hash (letters and digits), as in api.bigcommerce.com/stores/<hash>",
        ));
    }
    let clock_check_interval = Duration::from_secs(
        raw.clock_check_interval_secs
            .unwrap_or(300)
            .clamp(10, 86_400),
    );
    let declared = if declares_account(&raw) {
        Some(validate_store(
            &store_hash.clone().unwrap_or_default(),
            clock_check_interval,
            raw,
            errors,
        ))
    } else {
        None
    };
    Some(StoreSection {
        store_hash: store_hash?,
        clock_check_interval,
        declared: match declared {
            Some(account) => Some(account?),
            None => None,
        },
    })
}

/// Validates the API account and channels of `raw` for the store `store_hash`: the file's
/// `[store]` and the console's store form go through here alike.
pub fn validate_store(
    store_hash: &str,
    clock_check_interval: Duration,
    raw: RawStore,
    errors: &mut Vec<ConfigError>,
) -> Option<StoreConfig> {
    let api_base_url = parse_web_url(
        "store.api_base_url",
        raw.api_base_url
            .as_deref()
            .unwrap_or("https://api.bigcommerce.com"),
        errors,
    );
    let access_token = secret(
        "store.access_token",
        "STORE_ACCESS_TOKEN",
        raw.access_token,
        raw.access_token_file,
        errors,
    );
    let client_id = required("store.client_id", "STORE_CLIENT_ID", raw.client_id, errors);
    let client_secret = secret(
        "store.client_secret",
        "STORE_CLIENT_SECRET",
        raw.client_secret,
        raw.client_secret_file,
        errors,
    );
    let mut channels = BTreeMap::new();
    if raw.channels.is_empty() {
        errors.push(invalid(
            "store.channels",
            "at least one [[store.channels]] entry with id and storefront_url is required",
        ));
    }
    for (i, c) in raw.channels.into_iter().enumerate() {
        let key = format!("store.channels[{i}]");
        if c.id < 1 {
            errors.push(invalid(format!("{key}.id"), "channel ids start at 1"));
            continue;
        }
        let Some(storefront_url) =
            parse_web_url(&format!("{key}.storefront_url"), &c.storefront_url, errors)
        else {
            continue;
        };
        let default_redirect =
            match RelativePath::landing(c.default_redirect.as_deref().unwrap_or("/account.php")) {
                Ok(p) => p,
                Err(e) => {
                    errors.push(invalid(
                        format!("{key}.default_redirect"),
                        format!(
                            "must be a relative path on the storefront such as /account.php ({e})"
                        ),
                    ));
                    continue;
                }
            };
        let channel = Channel {
            id: c.id,
            storefront_url,
            default_redirect,
        };
        if channels.insert(c.id, channel).is_some() {
            errors.push(invalid(
                format!("{key}.id"),
                format!("channel {} is listed twice", c.id),
            ));
        }
    }
    Some(StoreConfig {
        store_hash: store_hash.to_owned(),
        api_base_url: api_base_url?,
        access_token: access_token?,
        client_id: client_id?,
        client_secret: client_secret?,
        clock_check_interval,
        channels,
    })
}

pub fn validate_connection(
    index: usize,
    raw: RawConnection,
    errors: &mut Vec<ConfigError>,
) -> Option<Connection> {
    let key = |field: &str| format!("connections[{index}].{field}");
    let id = match raw.id.as_deref().map(ConnectionId::parse) {
        None => {
            errors.push(invalid(
                key("id"),
                "required: a short name such as \"acme\" (letters, digits, '-')",
            ));
            None
        }
        Some(Err(message)) => {
            errors.push(invalid(key("id"), message));
            None
        }
        Some(Ok(id)) => Some(id),
    };
    let issuer = match raw.issuer.as_deref() {
        None => {
            errors.push(invalid(key("issuer"), "required: the IdP's issuer URL"));
            None
        }
        Some(s) => parse_web_url(&key("issuer"), s, errors)
            .and_then(|_| IssuerUrl::new(s.trim().to_owned()).ok()),
    };
    let client_id = raw.client_id.filter(|s| !s.is_empty());
    if client_id.is_none() {
        errors.push(invalid(
            key("client_id"),
            "required: the client id the IdP issued for this gateway",
        ));
    }
    let secret_env = connection_secret_env(raw.id.as_deref().unwrap_or("ID"));
    let client_secret = secret_value(
        &key("client_secret"),
        raw.client_secret,
        raw.client_secret_file,
        errors,
    );
    if client_secret.is_none()
        && !errors.iter().any(
            |e| matches!(e, ConfigError::SecretFile { key: k, .. } if *k == key("client_secret")),
        )
    {
        errors.push(ConfigError::Missing {
            key: key("client_secret"),
            env: secret_env,
        });
    }
    let scopes = raw
        .scopes
        .unwrap_or_else(|| vec!["openid".into(), "email".into(), "profile".into()]);
    if !scopes.iter().any(|s| s == "openid") {
        errors.push(invalid(key("scopes"), "must include \"openid\""));
    }
    if raw.allowed_email_domains.is_empty() {
        errors.push(invalid(
            key("allowed_email_domains"),
            "list the email domains this IdP is authoritative for, e.g. [\"example.com\"]",
        ));
    }
    let mut domains = Vec::new();
    for d in &raw.allowed_email_domains {
        match EmailDomain::parse_pattern(d) {
            Ok(d) => domains.push(d),
            Err(message) => errors.push(invalid(key("allowed_email_domains"), message)),
        }
    }
    let channel_access = match raw.channel_access.as_deref().unwrap_or("channel") {
        "channel" => Some(ChannelAccess::Channel),
        "global" => Some(ChannelAccess::Global),
        other => {
            errors.push(invalid(
                key("channel_access"),
                format!("expected \"channel\" or \"global\" (got {other:?})"),
            ));
            None
        }
    };
    let link_existing = match raw.link_existing.as_deref() {
        None => Some(LinkExisting::default()),
        Some(v) => LinkExisting::parse(v).or_else(|| {
            errors.push(invalid(
                key("link_existing"),
                format!("expected \"reset_password\", \"refuse\" or \"link\" (got {v:?})"),
            ));
            None
        }),
    };
    let algs = raw.id_token_algs.unwrap_or_else(|| vec!["RS256".into()]);
    if algs.is_empty() {
        errors.push(invalid(
            key("id_token_algs"),
            "must list at least one algorithm",
        ));
    }
    for alg in &algs {
        if !SUPPORTED_ID_TOKEN_ALGS.contains(&alg.as_str()) {
            errors.push(invalid(
                key("id_token_algs"),
                format!(
                    "{alg:?} is not allowed; choose from {}",
                    SUPPORTED_ID_TOKEN_ALGS.join(", ")
                ),
            ));
        }
    }
    let leeway = raw.clock_leeway_secs.unwrap_or(60);
    if leeway > 300 {
        errors.push(invalid(key("clock_leeway_secs"), "at most 300 seconds"));
    }
    if let Some(group) = raw.customer_group_id
        && group < 0
    {
        errors.push(invalid(
            key("customer_group_id"),
            "must be 0 or a customer group id",
        ));
    }
    for (i, rule) in raw.group_rules.iter().enumerate() {
        if rule.group.trim().is_empty() {
            errors.push(invalid(
                format!("{}[{i}].group", key("group_rules")),
                "is empty",
            ));
        }
        if rule.customer_group_id < 0 {
            errors.push(invalid(
                format!("{}[{i}].customer_group_id", key("group_rules")),
                "must be 0 or a customer group id",
            ));
        }
    }
    let claim_name = |name: &str, value: &Option<String>, errors: &mut Vec<ConfigError>| {
        if let Some(v) = value
            && (v.is_empty()
                || v.len() > 100
                || v.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            errors.push(invalid(
                key(name),
                "must be a claim name such as \"groups\"",
            ));
        }
    };
    claim_name("groups_claim", &raw.groups_claim, errors);
    claim_name("company_claim", &raw.company_claim, errors);
    let trusted_email_domains = trusted_domains(
        &key("trusted_email_domains"),
        &raw.trusted_email_domains,
        raw.trust_unverified_email,
        &domains,
        errors,
    );
    if !trusted_email_domains.is_empty() {
        tracing::warn!(
            connection = raw.id.as_deref().unwrap_or("?"),
            domains = %trusted_email_domains.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
            "unverified emails of these domains can sign in to matching store accounts"
        );
    }
    let id = id?;
    Some(Connection {
        display_name: raw.display_name.unwrap_or_else(|| id.as_str().to_owned()),
        id,
        issuer: issuer?,
        client_id: client_id?,
        client_secret: client_secret?,
        scopes,
        allowed_email_domains: domains,
        trusted_email_domains,
        customer_group_id: raw.customer_group_id,
        groups_claim: raw.groups_claim.unwrap_or_else(|| "groups".into()),
        group_rules: raw
            .group_rules
            .into_iter()
            .map(|r| GroupRule {
                group: r.group.trim().to_owned(),
                customer_group_id: r.customer_group_id,
            })
            .collect(),
        company_claim: raw.company_claim,
        hosted_domain: raw.hosted_domain.map(|d| d.trim().to_lowercase()),
        sync_profile: raw.sync_profile,
        channels: raw.channels,
        create_customers: raw.create_customers.unwrap_or(true),
        link_existing: link_existing?,
        allow_non_ascii_email: raw.allow_non_ascii_email,
        channel_access: channel_access?,
        id_token_algs: algs,
        clock_leeway: Duration::from_secs(leeway.min(300)),
    })
}

/// SECURITY.md rule 4: one email domain belongs to at most one connection.
/// `trusted_email_domains`, each within the allowed domains; `trust_unverified_email`
/// alone trusts every allowed domain.
fn trusted_domains(
    key: &str,
    listed: &[String],
    trust_all: bool,
    allowed: &[EmailDomain],
    errors: &mut Vec<ConfigError>,
) -> Vec<EmailDomain> {
    if listed.is_empty() {
        return if trust_all {
            allowed.to_vec()
        } else {
            Vec::new()
        };
    }
    let mut out = Vec::new();
    for d in listed {
        match EmailDomain::parse_pattern(d) {
            Ok(d) if allowed.iter().any(|a| a.covers(&d)) => out.push(d),
            Ok(d) => errors.push(invalid(
                key,
                format!("{d} is not one of this connection's allowed_email_domains"),
            )),
            Err(message) => errors.push(invalid(key, message)),
        }
    }
    out
}

fn check_unique_connections(connections: &[Connection], errors: &mut Vec<ConfigError>) {
    for (i, a) in connections.iter().enumerate() {
        for b in &connections[i + 1..] {
            if a.id == b.id {
                errors.push(invalid(
                    "connections",
                    format!("connection id {:?} is used twice", a.id.as_str()),
                ));
            }
            for da in &a.allowed_email_domains {
                for db in &b.allowed_email_domains {
                    if da.overlaps(db) {
                        errors.push(ConfigError::DomainClaimedTwice {
                            domain: da.to_string(),
                            first: a.id.to_string(),
                            second: b.id.to_string(),
                        });
                    }
                }
            }
        }
    }
}

fn required(
    key: &str,
    env: &str,
    value: Option<String>,
    errors: &mut Vec<ConfigError>,
) -> Option<String> {
    match value.filter(|v| !v.trim().is_empty()) {
        Some(v) => Some(v.trim().to_owned()),
        None => {
            errors.push(ConfigError::Missing {
                key: key.into(),
                env: format!("{ENV_PREFIX}{env}"),
            });
            None
        }
    }
}

fn secret(
    key: &str,
    env: &str,
    value: Option<String>,
    file: Option<PathBuf>,
    errors: &mut Vec<ConfigError>,
) -> Option<Secret> {
    let had_file = file.is_some();
    let s = secret_value(key, value, file, errors);
    if s.is_none() && !had_file {
        errors.push(ConfigError::Missing {
            key: key.into(),
            env: format!("{ENV_PREFIX}{env}"),
        });
    }
    s
}

/// A secret given inline (or by env) wins over a `*_file`; a file's trailing newline is
/// dropped because editors and `echo` add one.
fn secret_value(
    key: &str,
    value: Option<String>,
    file: Option<PathBuf>,
    errors: &mut Vec<ConfigError>,
) -> Option<Secret> {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        return Some(Secret::new(v));
    }
    let path = file?;
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => {
            Some(Secret::new(s.trim_end_matches(['\r', '\n']).to_owned()))
        }
        Ok(_) => {
            errors.push(invalid(
                key,
                format!("secret file {} is empty", path.display()),
            ));
            None
        }
        Err(source) => {
            errors.push(ConfigError::SecretFile {
                key: key.into(),
                path,
                source,
            });
            None
        }
    }
}

/// An absolute http(s) URL; plain http only for loopback hosts (demo and tests).
fn parse_web_url(key: &str, value: &str, errors: &mut Vec<ConfigError>) -> Option<Url> {
    let url = match Url::parse(value.trim()) {
        Ok(u) => u,
        Err(e) => {
            errors.push(invalid(
                key,
                format!("expected an absolute URL ({e}), got {value:?}"),
            ));
            return None;
        }
    };
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            errors.push(invalid(
                key,
                format!("must be https (got {url}); http is allowed only for localhost"),
            ));
            return None;
        }
        _ => {
            errors.push(invalid(key, format!("expected an https URL, got {url}")));
            return None;
        }
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        errors.push(invalid(
            key,
            "must not carry a query, fragment or credentials",
        ));
        return None;
    }
    Some(url)
}

// The loopback test and the check of IdP-published URLs (SECURITY.md rule 23) live in
// their own file so sign-in, discovery and the admin checks share one strict version.
mod urls;
pub use urls::{UrlRefusal, check_idp_url, check_idp_url_str, is_loopback};

#[cfg(test)]
mod tests;
