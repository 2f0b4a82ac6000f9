//! Who may sign in to the admin console through an IdP: the `[admin]` SSO settings of the
//! config file (read-only in the console), or those an admin sets in the console. The
//! bootstrap token stays valid either way, so a wrong setting cannot lock admins out.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::{AdminSso, ConfigError};
use crate::domain::Email;
use crate::settings::connections::Connections;
use crate::settings::{
    Change, Edit, Kind, LoadError, ManageError, Managed, Rows, Source, join, read_lenient,
};

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

/// The file's `[admin]` SSO settings, if it declares them.
pub struct DeclaredAdminSso(pub Option<Arc<AdminSso>>);

/// The file's settings, or the console's; `None` in force = off.
pub type AdminAccess = Managed<DeclaredAdminSso>;

impl Kind for DeclaredAdminSso {
    type Value = Option<Arc<AdminSso>>;
    const WHAT: &'static str = "admin sign-in settings";
    /// The row holds the settings themselves.
    const VERSION_ROW: &'static str = SETTING;
    const SAVE_OVER_UNREADABLE: bool = true;

    fn read_only(&self) -> Option<ManageError> {
        self.0
            .is_some()
            .then_some(ManageError::AdminAccessManagedByFile)
    }

    /// The connection named is checked at sign-in, not here: it may be added after these
    /// settings.
    async fn load(&self, _rows: Rows<'_>, row: Option<&str>) -> Result<Self::Value, LoadError> {
        if let Some(declared) = &self.0 {
            return Ok(Some(declared.clone()));
        }
        let Some(row) = row else { return Ok(None) };
        let broken = |reason: String| LoadError::Broken {
            what: "admin sign-in settings".into(),
            reason,
        };
        let raw: RawAdminSso = read_lenient(row).map_err(broken)?;
        let sso = build(raw, None).map_err(|errors| broken(join(&errors)))?;
        Ok(sso.map(Arc::new))
    }
}

impl AdminAccess {
    /// The settings in force: the file's, else the console's; `None` = off.
    pub fn current(&self) -> Option<Arc<AdminSso>> {
        self.snapshot().as_ref().clone()
    }

    pub fn source(&self) -> Source {
        if self.from_file() {
            Source::File
        } else {
            Source::Console
        }
    }

    /// Saves the console's settings; the connection must exist.
    pub async fn save(
        &self,
        rows: Rows<'_>,
        connections: &Connections,
        raw: RawAdminSso,
    ) -> Result<Change, ManageError> {
        self.change(rows, |_, before| {
            let sso = build(raw, Some(connections)).map_err(ManageError::InvalidAdminAccess)?;
            let stored = sso.as_ref().map(to_raw).unwrap_or_default();
            let change = Change {
                id: "admin_sso".into(),
                before: before.as_ref().map(|b| describe(b)),
                after: sso.as_ref().map(describe),
            };
            Ok(Edit {
                value: sso.map(Arc::new),
                version: serde_json::to_string(&stored).unwrap_or_default(),
                writes: Vec::new(),
                out: change,
            })
        })
        .await
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
