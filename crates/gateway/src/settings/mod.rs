//! A managed setting: declared in the config file (read-only in the console), or stored by
//! the console in the database. Connections, store settings and admin sign-in are the
//! three kinds ([`connections`], [`store`], [`admin_access`]); this module is what they
//! share:
//!
//! - requests read a snapshot ([`Managed::snapshot`]) that a change swaps whole (`arc-swap`),
//!   so a sign-in never sees half of an edit and no lock is held across one;
//! - every console write is a compare-and-swap on the kind's version row
//!   ([`Db::write_versioned`]): a change is computed from the state stored at that
//!   version and written only if the version is still the same, so of two replicas saving
//!   at once one wins and the other gets [`ManageError::ChangedElsewhere`];
//! - replicas reload when the version row moves ([`Managed::refresh`], polled by
//!   `AppState::refresh_settings`).

pub mod admin_access;
pub mod connections;
pub mod store;

use std::future::Future;
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::ConfigError;
use crate::db::{Db, DbError, SettingsWrite};
use crate::secrets::SecretKey;

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
    /// The stored state a change must be checked against cannot be read.
    #[error(transparent)]
    Unreadable(#[from] LoadError),
    #[error(transparent)]
    Db(#[from] DbError),
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
    Db(#[from] DbError),
}

/// Where a kind's rows live, and the key that opens their secrets.
#[derive(Clone, Copy)]
pub struct Rows<'a> {
    pub db: &'a Db,
    pub key: Option<&'a SecretKey>,
}

/// One kind of managed setting: what the file declares, and how the stored rows become
/// the value requests read.
pub trait Kind: Send + Sync + 'static {
    type Value: Send + Sync + 'static;
    /// For messages: "connections", "store settings", …
    const WHAT: &'static str;
    /// The `gateway_settings` row that every console write of this kind changes, and that
    /// the write is conditioned on. A kind kept in one row uses that row itself.
    const VERSION_ROW: &'static str;
    /// Whether a console change may go ahead when the stored state cannot be read: yes
    /// for a kind whose change replaces all of it, no when the change must be checked
    /// against the rest (a connection against the others' email domains).
    const SAVE_OVER_UNREADABLE: bool;

    /// Why the console may not change the setting: `Some` when the file declares all of
    /// it (nothing reloads then either).
    fn read_only(&self) -> Option<ManageError>;
    /// Builds the value from the file and the rows stored at `version` (the version row's
    /// text; `None` before the first console change). Rows are read leniently: a field a
    /// newer version added is dropped, so a rolling upgrade does not stop older replicas.
    fn load(
        &self,
        rows: Rows<'_>,
        version: Option<&str>,
    ) -> impl Future<Output = Result<Self::Value, LoadError>> + Send;
}

/// A console change, computed by the caller of [`Managed::change`] from the value stored
/// at the version the write is conditioned on.
pub struct Edit<V, R> {
    /// The value in force once written.
    pub value: V,
    /// The version row's next text (the row itself for a one-row kind).
    pub version: String,
    /// The rows to write with it, in the same transaction.
    pub writes: Vec<SettingsWrite>,
    /// What the caller gets back (usually the [`Change`] for the audit trail).
    pub out: R,
}

struct Snapshot<V> {
    value: Arc<V>,
    /// The version row's text this value was loaded at or written with.
    version: Option<String>,
}

/// A setting of kind `K` in force on this replica.
pub struct Managed<K: Kind> {
    kind: K,
    current: ArcSwap<Snapshot<K::Value>>,
    /// One change or reload at a time on this replica, so a reload cannot put back a state
    /// a local change just replaced. Replicas are kept apart by the compare-and-swap, not
    /// by this lock.
    edits: tokio::sync::Mutex<()>,
}

impl<K: Kind> Managed<K> {
    /// The setting as the file and the database hold it now.
    pub async fn load(kind: K, rows: Rows<'_>) -> Result<Self, LoadError> {
        // The version is read before the rows: rows newer than it make the next write's
        // compare-and-swap fail (safe); the other order could let it succeed on stale rows.
        let version = if kind.read_only().is_some() {
            None
        } else {
            rows.db.setting(K::VERSION_ROW).await?
        };
        let value = kind.load(rows, version.as_deref()).await?;
        Ok(Self {
            kind,
            current: ArcSwap::from_pointee(Snapshot {
                value: Arc::new(value),
                version,
            }),
            edits: tokio::sync::Mutex::new(()),
        })
    }

    /// The value in force.
    pub fn snapshot(&self) -> Arc<K::Value> {
        self.current.load().value.clone()
    }

    pub fn kind(&self) -> &K {
        &self.kind
    }

    /// Whether the file declares the whole setting.
    pub fn from_file(&self) -> bool {
        self.kind.read_only().is_some()
    }

    /// Reloads when another replica changed the setting since this snapshot. Returns
    /// whether it reloaded; on an error the value in force stays.
    pub async fn refresh(&self, rows: Rows<'_>) -> Result<bool, LoadError> {
        if self.from_file() {
            return Ok(false);
        }
        let _one_at_a_time = self.edits.lock().await;
        let version = rows.db.setting(K::VERSION_ROW).await?;
        if version == self.current.load().version {
            return Ok(false);
        }
        let value = self.kind.load(rows, version.as_deref()).await?;
        self.swap(value, version);
        Ok(true)
    }

    /// Makes a console change: `edit` gets the value stored now (reloaded if another
    /// replica changed it since the last poll, so a stale replica does not undo a newer
    /// change) and returns the new value and its rows; they are written only if nobody
    /// wrote since that value was read.
    pub async fn change<R>(
        &self,
        rows: Rows<'_>,
        edit: impl FnOnce(&K, &K::Value) -> Result<Edit<K::Value, R>, ManageError>,
    ) -> Result<R, ManageError> {
        if let Some(refusal) = self.kind.read_only() {
            return Err(refusal);
        }
        let _one_at_a_time = self.edits.lock().await;
        let version = rows.db.setting(K::VERSION_ROW).await?;
        if version != self.current.load().version {
            match self.kind.load(rows, version.as_deref()).await {
                Ok(value) => self.swap(value, version.clone()),
                Err(e) if K::SAVE_OVER_UNREADABLE => {
                    tracing::warn!(what = K::WHAT, error = %e, "the stored settings cannot be read; replacing them");
                }
                Err(e) => return Err(e.into()),
            }
        }
        let base = self.snapshot();
        let edit = edit(&self.kind, &base)?;
        let written = rows
            .db
            .write_versioned(
                K::VERSION_ROW,
                version.as_deref(),
                &edit.version,
                &edit.writes,
            )
            .await?;
        if !written {
            return Err(ManageError::ChangedElsewhere(K::WHAT));
        }
        self.swap(edit.value, Some(edit.version));
        Ok(edit.out)
    }

    fn swap(&self, value: K::Value, version: Option<String>) {
        self.current.store(Arc::new(Snapshot {
            value: Arc::new(value),
            version,
        }));
    }
}

/// Reads a stored row as `T`, dropping the fields `T` does not know (where the config
/// file refuses them): a row written by a newer version must not stop an older replica
/// during a rolling upgrade. Known fields keep their types.
pub fn read_lenient<T: DeserializeOwned + Serialize + Default>(json: &str) -> Result<T, String> {
    let mut value: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let known = serde_json::to_value(T::default()).map_err(|e| e.to_string())?;
    if let (Some(fields), Some(known)) = (value.as_object_mut(), known.as_object()) {
        fields.retain(|k, _| known.contains_key(k));
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// Validation errors as one line, for [`LoadError::Broken`].
pub fn join(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests;
