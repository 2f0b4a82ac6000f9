//! The file as written: what serde reads from TOML (and the console stores as JSON), before
//! any validation. Every field is optional here; `validate` says what is missing.

use std::path::PathBuf;

use serde::Deserialize;

use super::RawServer;

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
    /// Environment overrides that did not parse: (variable, what was expected).
    #[serde(skip)]
    pub env_errors: Vec<(String, String)>,
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
    /// A link's `last_sign_in_at` is written at most once per this many seconds (default
    /// 300; 0 = every sign-in).
    pub link_touch_interval_secs: Option<u64>,
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
    /// Microsoft Entra multi-tenant apps (issuer `…/organizations/v2.0` or `…/common/v2.0`):
    /// the tenant ids (`tid`) whose users may sign in. Required with such an issuer.
    #[serde(default)]
    pub allowed_tenants: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawGroupRule {
    pub group: String,
    pub customer_group_id: i64,
}
