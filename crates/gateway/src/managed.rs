//! What the settings an admin manages have in common (connections, store settings, admin
//! sign-in): where they come from, what a change did, and why a change or a load failed.

use crate::config::ConfigError;
use crate::store::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Declared in the config file: shown read-only in the console.
    File,
    /// Created in the admin console and stored (secret encrypted) in the database.
    Console,
}

impl Source {
    /// As the admin API spells it in `managed_by`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::File => "file",
            Source::Console => "console",
        }
    }
}

/// What an admin change did, for the audit trail: settings before and after, the secret
/// reduced to whether it changed.
pub struct Change {
    pub id: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error("the connection settings are not valid")]
    Invalid(Vec<ConfigError>),
    #[error("the store settings are not valid")]
    InvalidStore(Vec<ConfigError>),
    #[error("the admin sign-in settings are not valid")]
    InvalidAdminAccess(Vec<ConfigError>),
    #[error(
        "no secret key is configured, so secrets cannot be stored: set BCSSO_SECRET_KEY (bc-sso-gateway keygen makes one)"
    )]
    NoSecretKey,
    #[error("connection {0} is declared in the configuration file; change it there")]
    ManagedByFile(String),
    #[error("the store settings are declared in the configuration file; change them there")]
    StoreManagedByFile,
    #[error("admin sign-in is declared in the configuration file ([admin]); change it there")]
    AdminAccessManagedByFile,
    #[error("the {0} changed on another replica at the same moment; reload the page and try again")]
    ChangedElsewhere(&'static str),
    #[error("no connection {0}")]
    Unknown(String),
    #[error("cannot encrypt a secret: {0}")]
    Seal(#[from] crate::secrets::SealError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "the database holds {0} connection(s) with encrypted secrets but no secret key is configured: set BCSSO_SECRET_KEY to the key they were stored with"
    )]
    NoSecretKey(usize),
    #[error("{0}")]
    KeyMismatch(#[from] crate::secrets::OpenError),
    /// `what`: "connection acme", "store settings", …
    #[error("stored {what} cannot be used: {reason}")]
    Broken { what: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}
