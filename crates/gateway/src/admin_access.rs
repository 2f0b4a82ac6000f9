//! Who may sign in to the admin console through an IdP: the `[admin]` SSO settings of the
//! config file (read-only in the console), or those an admin sets in the console. The
//! bootstrap token stays valid either way, so a wrong setting cannot lock admins out.

use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::config::{AdminSso, ConfigError};
use crate::connections::Connections;
use crate::domain::Email;
use crate::managed::{Change, LoadError, ManageError, Source};
use crate::store::Store;

/// The `gateway_settings` row of the console's admin sign-in settings.
const SETTING: &str = "admin_sso";

/// The settings as the form, the API and the stored row spell them. No `connection` (or an
/// empty one) turns admin sign-in through an IdP off. Unknown fields are ignored, so a row
/// written by a newer version does not stop an older replica.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RawAdminSso {
    pub connection: Option<String>,
    #[serde(default)]
    pub allowed_emails: Vec<String>,
    #[serde(default)]
    pub allowed_groups: Vec<String>,
}

pub struct AdminAccess {
    declared: Option<Arc<AdminSso>>,
    stored: RwLock<Option<Arc<AdminSso>>>,
    /// The stored row in force: another replica's save changes it.
    row: std::sync::Mutex<Option<String>>,
    edits: tokio::sync::Mutex<()>,
}

impl AdminAccess {
    pub async fn load(
        store: &Store,
        store_hash: &str,
        declared: Option<AdminSso>,
    ) -> Result<Self, LoadError> {
        let access = Self {
            declared: declared.map(Arc::new),
            stored: RwLock::new(None),
            row: std::sync::Mutex::new(None),
            edits: tokio::sync::Mutex::new(()),
        };
        access.refresh(store, store_hash).await?;
        Ok(access)
    }

    /// The settings in force: the file's, else the console's; `None` = off.
    pub fn current(&self) -> Option<Arc<AdminSso>> {
        self.declared.clone().or_else(|| {
            self.stored
                .read()
                .map(|g| g.clone())
                .unwrap_or_else(|p| p.into_inner().clone())
        })
    }

    pub fn from_file(&self) -> bool {
        self.declared.is_some()
    }

    pub fn source(&self) -> Source {
        if self.from_file() {
            Source::File
        } else {
            Source::Console
        }
    }

    fn row(&self) -> Option<String> {
        self.row
            .lock()
            .map(|g| g.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn swap(&self, next: Option<Arc<AdminSso>>, row: Option<String>) {
        match self.stored.write() {
            Ok(mut g) => *g = next,
            Err(p) => *p.into_inner() = next,
        }
        match self.row.lock() {
            Ok(mut g) => *g = row,
            Err(p) => *p.into_inner() = row,
        }
    }

    /// Reloads the console's settings when another replica changed them. The connection
    /// named is checked at sign-in, not here: it may be added after these settings.
    pub async fn refresh(&self, store: &Store, store_hash: &str) -> Result<bool, LoadError> {
        if self.declared.is_some() {
            return Ok(false);
        }
        // Under the lock, so a poll cannot put back a row a local save just replaced.
        let _one_at_a_time = self.edits.lock().await;
        let row = store.setting(store_hash, SETTING).await?;
        self.apply(row)
    }

    fn apply(&self, row: Option<String>) -> Result<bool, LoadError> {
        if row.is_none() || row == self.row() {
            return Ok(false);
        }
        let raw: RawAdminSso = row
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| broken(e.to_string()))?
            .unwrap_or_default();
        let sso = build(raw, None).map_err(|errors| {
            broken(
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        self.swap(sso.map(Arc::new), row);
        Ok(true)
    }

    /// Saves the console's settings; the connection must exist.
    pub async fn save(
        &self,
        store: &Store,
        store_hash: &str,
        connections: &Connections,
        raw: RawAdminSso,
    ) -> Result<Change, ManageError> {
        if self.declared.is_some() {
            return Err(ManageError::AdminAccessManagedByFile);
        }
        let _one_at_a_time = self.edits.lock().await;
        let sso = build(raw, Some(connections)).map_err(ManageError::InvalidAdminAccess)?;
        // The audit's "before" is what is stored now, whichever replica wrote it.
        let stored_row = store.setting(store_hash, SETTING).await?;
        if let Err(e) = self.apply(stored_row.clone()) {
            tracing::warn!(error = %e, "the stored admin sign-in settings cannot be read; replacing them");
        }
        let before = self.current();
        let stored = sso.as_ref().map(to_raw).unwrap_or_default();
        let row = serde_json::to_string(&stored).unwrap_or_default();
        if !store
            .replace_setting(store_hash, SETTING, stored_row.as_deref(), &row)
            .await?
        {
            return Err(ManageError::ChangedElsewhere("admin sign-in settings"));
        }
        self.swap(sso.clone().map(Arc::new), Some(row));
        Ok(Change {
            id: "admin_sso".into(),
            before: before.map(|b| describe(&b)),
            after: sso.map(|s| describe(&s)),
        })
    }
}

fn broken(reason: String) -> LoadError {
    LoadError::Broken {
        what: "admin sign-in settings".into(),
        reason,
    }
}

/// Validates the settings; `connections`, when given, must hold the connection named.
fn build(
    raw: RawAdminSso,
    connections: Option<&Connections>,
) -> Result<Option<AdminSso>, Vec<ConfigError>> {
    let Some(connection) = raw
        .connection
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
    else {
        return Ok(None);
    };
    let invalid = |key: &str, message: String| ConfigError::Invalid {
        key: key.into(),
        message,
    };
    let mut errors = Vec::new();
    if let Some(all) = connections
        && all.any(&connection).is_none()
    {
        errors.push(invalid(
            "connection",
            format!("there is no connection {connection:?}"),
        ));
    }
    let mut allowed_emails = Vec::new();
    for e in raw
        .allowed_emails
        .iter()
        .map(|e| e.trim())
        .filter(|e| !e.is_empty())
    {
        match Email::parse(e) {
            Ok(email) => allowed_emails.push(email.normalised()),
            Err(err) => errors.push(invalid("allowed_emails", format!("{e:?}: {err}"))),
        }
    }
    let allowed_groups: Vec<String> = raw
        .allowed_groups
        .iter()
        .map(|g| g.trim().to_owned())
        .filter(|g| !g.is_empty())
        .collect();
    if allowed_emails.is_empty() && allowed_groups.is_empty() && errors.is_empty() {
        errors.push(invalid(
            "allowed_emails",
            "list the admins' emails, or groups whose members are admins".into(),
        ));
    }
    if errors.is_empty() {
        Ok(Some(AdminSso {
            connection,
            allowed_emails,
            allowed_groups,
        }))
    } else {
        Err(errors)
    }
}

pub fn to_raw(s: &AdminSso) -> RawAdminSso {
    RawAdminSso {
        connection: Some(s.connection.clone()),
        allowed_emails: s.allowed_emails.clone(),
        allowed_groups: s.allowed_groups.clone(),
    }
}

pub fn describe(s: &AdminSso) -> serde_json::Value {
    serde_json::to_value(to_raw(s)).unwrap_or_default()
}
