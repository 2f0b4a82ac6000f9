//! The IdP connections in force: those declared in the config file (read-only in the
//! console) and those an admin manages in the console (stored in the database, the secret
//! sealed). Every console change is conditioned on one version row covering all stored
//! connections, and checked against the connections stored at that version, so two
//! replicas saving at once cannot both claim one email domain.

use crate::config::{ConfigError, Connection, RawConnection, validate_connection};
use crate::db::{SettingsWrite, StoredConnection};
use crate::domain::Secret;
use crate::settings::{
    Change, Edit, Kind, LoadError, ManageError, Managed, Rows, Source, join, read_lenient,
};

#[derive(Debug, Clone)]
pub struct Entry {
    pub connection: Connection,
    pub source: Source,
    pub enabled: bool,
}

/// The connections the file declares; the console's are stored beside them.
pub struct FileConnections(pub Vec<Connection>);

pub type Connections = Managed<FileConnections>;

/// The version row of console connections: a new random value at every change.
pub const VERSION: &str = "connections_version";

impl Kind for FileConnections {
    type Value = Vec<Entry>;
    const WHAT: &'static str = "connections";
    const VERSION_ROW: &'static str = VERSION;
    const SAVE_OVER_UNREADABLE: bool = false;

    fn read_only(&self) -> Option<ManageError> {
        // The file's connections sit beside the console's; each is refused on its own.
        None
    }

    async fn load(&self, rows: Rows<'_>, _version: Option<&str>) -> Result<Vec<Entry>, LoadError> {
        load(rows, &self.0).await
    }
}

impl Connections {
    /// Every connection, enabled or not (for the console).
    pub fn all(&self) -> std::sync::Arc<Vec<Entry>> {
        self.snapshot()
    }

    /// The connections shoppers can sign in with.
    pub fn enabled(&self) -> Vec<Connection> {
        self.all()
            .iter()
            .filter(|e| e.enabled)
            .map(|e| e.connection.clone())
            .collect()
    }

    /// A connection by id, enabled or not (an admin tests one before enabling it).
    pub fn any(&self, id: &str) -> Option<Connection> {
        self.all()
            .iter()
            .find(|e| e.connection.id.as_str() == id)
            .map(|e| e.connection.clone())
    }

    /// An enabled connection by id.
    pub fn get(&self, id: &str) -> Option<Connection> {
        self.all()
            .iter()
            .find(|e| e.enabled && e.connection.id.as_str() == id)
            .map(|e| e.connection.clone())
    }

    /// The enabled connection that owns an email domain. Domains are unique across
    /// connections (checked when a connection is saved), so the answer is unambiguous.
    pub fn for_domain(&self, domain: &str) -> Option<Connection> {
        self.all()
            .iter()
            .find(|e| {
                e.enabled
                    && e.connection
                        .allowed_email_domains
                        .iter()
                        .any(|d| d.matches(domain))
            })
            .map(|e| e.connection.clone())
    }
}

const KEY_CHECK: &str = "secret_key_check";

fn secret_context(id: &str) -> String {
    format!("connection:{id}:client_secret")
}

/// Loads the console's connections next to the file's. A configured key must be the one
/// the database was encrypted with; stored connections without any key refuse to start.
async fn load(rows: Rows<'_>, file: &[Connection]) -> Result<Vec<Entry>, LoadError> {
    let Rows { db, key } = rows;
    let stored = db.list_connections().await?;
    match (key, db.setting(KEY_CHECK).await?) {
        (Some(key), Some(check)) => key.verify_key_check(&check)?,
        (Some(key), None) => {
            let check = key.key_check_value().map_err(|e| LoadError::Broken {
                what: "secret key check".into(),
                reason: e.to_string(),
            })?;
            db.set_setting(KEY_CHECK, &check).await?;
        }
        (None, _) if !stored.is_empty() => return Err(LoadError::NoSecretKey(stored.len())),
        (None, _) => {}
    }
    let mut entries: Vec<Entry> = file
        .iter()
        .map(|c| Entry {
            connection: c.clone(),
            source: Source::File,
            enabled: true,
        })
        .collect();
    for s in stored {
        let broken = |reason: String| LoadError::Broken {
            what: format!("connection {}", s.id),
            reason,
        };
        let Some(key) = key else { break };
        let secret = key.open(&s.client_secret_sealed, &secret_context(&s.id))?;
        let raw: RawConnection = read_lenient(&s.settings).map_err(broken)?;
        let connection =
            build(raw, secret, &entries, Some(&s.id)).map_err(|errors| broken(join(&errors)))?;
        entries.push(Entry {
            connection,
            source: Source::Console,
            enabled: s.enabled,
        });
    }
    Ok(entries)
}

/// Validates `raw` (with `secret`) as a connection that must coexist with `others`.
/// `replacing` names the connection being edited, which is not a conflict with itself.
fn build(
    mut raw: RawConnection,
    secret: Secret,
    others: &[Entry],
    replacing: Option<&str>,
) -> Result<Connection, Vec<ConfigError>> {
    raw.client_secret = Some(secret.expose().to_owned());
    raw.client_secret_file = None;
    let mut errors = Vec::new();
    let connection = validate_connection(0, raw, &mut errors);
    let Some(connection) = connection else {
        return Err(errors);
    };
    for other in others
        .iter()
        .filter(|o| Some(o.connection.id.as_str()) != replacing)
    {
        if other.connection.id == connection.id {
            errors.push(ConfigError::Invalid {
                key: "id".into(),
                message: format!(
                    "a connection with id {:?} already exists",
                    connection.id.as_str()
                ),
            });
        }
        for mine in &connection.allowed_email_domains {
            for theirs in &other.connection.allowed_email_domains {
                if mine.overlaps(theirs) {
                    errors.push(ConfigError::DomainClaimedTwice {
                        domain: mine.to_string(),
                        first: other.connection.id.to_string(),
                        second: connection.id.to_string(),
                    });
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(connection)
    } else {
        Err(errors)
    }
}

fn public_settings(raw: &RawConnection, enabled: bool) -> serde_json::Value {
    let mut v = serde_json::to_value(raw).unwrap_or_default();
    if let Some(map) = v.as_object_mut() {
        map.remove("client_secret");
        map.remove("client_secret_file");
        map.insert("enabled".into(), enabled.into());
    }
    v
}

/// What the console's changes need: where connections are stored, the key that seals
/// their secrets, and the connections in force.
pub struct Console<'a> {
    pub rows: Rows<'a>,
    pub current: &'a Connections,
    pub now: i64,
}

impl Console<'_> {
    /// Creates a connection, or updates a console connection (`replacing`). On update an
    /// empty `secret` keeps the stored one.
    pub async fn save(
        &self,
        raw: RawConnection,
        secret: Option<String>,
        replacing: Option<&str>,
    ) -> Result<Change, ManageError> {
        let key = self.rows.key.ok_or(ManageError::NoSecretKey)?;
        let now = self.now;
        self.current
            .change(self.rows, |_, all| {
                let Saved {
                    entry,
                    settings,
                    secret,
                    change,
                } = saved(all, raw, secret, replacing)?;
                let id = entry.connection.id.to_string();
                let sealed = key.seal(secret.expose(), &secret_context(&id))?;
                let row = StoredConnection {
                    id: id.clone(),
                    settings: serde_json::to_string(&settings).unwrap_or_default(),
                    client_secret_sealed: sealed,
                    enabled: entry.enabled,
                    created_at: now,
                    updated_at: now,
                };
                let mut entries: Vec<Entry> = all
                    .iter()
                    .filter(|e| e.connection.id.as_str() != id)
                    .cloned()
                    .collect();
                entries.push(entry);
                Ok(edit(entries, SettingsWrite::SaveConnection(row), change))
            })
            .await
    }

    /// Enables or disables a console connection.
    pub async fn set_enabled(&self, id: &str, enabled: bool) -> Result<Change, ManageError> {
        let at = self.now;
        self.current
            .change(self.rows, |_, all| {
                let entry = console_entry(all, id)?;
                let entries = all
                    .iter()
                    .map(|e| {
                        let mut e = e.clone();
                        if e.connection.id.as_str() == id {
                            e.enabled = enabled;
                        }
                        e
                    })
                    .collect();
                let write = SettingsWrite::SetConnectionEnabled {
                    id: id.to_owned(),
                    enabled,
                    at,
                };
                let change = Change {
                    id: id.to_owned(),
                    before: Some(describe(&entry.connection, entry.enabled)),
                    after: Some(describe(&entry.connection, enabled)),
                };
                Ok(edit(entries, write, change))
            })
            .await
    }

    /// Deletes a console connection. Its identity links stay: recreating the connection
    /// with the same issuer brings its users back to their customers.
    pub async fn delete(&self, id: &str) -> Result<Change, ManageError> {
        self.current
            .change(self.rows, |_, all| {
                let entry = console_entry(all, id)?;
                let entries = all
                    .iter()
                    .filter(|e| e.connection.id.as_str() != id)
                    .cloned()
                    .collect();
                let change = Change {
                    id: id.to_owned(),
                    before: Some(describe(&entry.connection, entry.enabled)),
                    after: None,
                };
                Ok(edit(
                    entries,
                    SettingsWrite::DeleteConnection(id.to_owned()),
                    change,
                ))
            })
            .await
    }
}

fn edit(entries: Vec<Entry>, write: SettingsWrite, change: Change) -> Edit<Vec<Entry>, Change> {
    Edit {
        value: entries,
        version: uuid::Uuid::new_v4().to_string(),
        writes: vec![write],
        out: change,
    }
}

/// A connection as saved: in force, as stored (settings without the secret, and the
/// secret), and as audited.
struct Saved {
    entry: Entry,
    settings: RawConnection,
    secret: Secret,
    change: Change,
}

/// The connection `raw` makes among `all`: the connections stored at the version the
/// write is conditioned on, so the checks against them hold for what is stored.
fn saved(
    all: &[Entry],
    mut raw: RawConnection,
    secret: Option<String>,
    replacing: Option<&str>,
) -> Result<Saved, ManageError> {
    let existing = replacing.map(|id| console_entry(all, id)).transpose()?;
    if let Some(e) = &existing {
        // The id is the key of the stored row and of links' audit; it does not change.
        raw.id = Some(e.connection.id.to_string());
    }
    let secret = match (secret.filter(|s| !s.is_empty()), &existing) {
        (Some(s), _) => Secret::new(s),
        // The kept secret goes only to the IdP it was issued by: a new issuer (whose
        // token endpoint would receive it) needs it typed again.
        (None, Some(e))
            if raw.issuer.as_deref().map(str::trim) != Some(e.connection.issuer.as_str()) =>
        {
            return Err(ManageError::Invalid(vec![ConfigError::Invalid {
                key: "client_secret".into(),
                message: "enter the client secret again: the issuer changed, and the stored secret is only sent to the IdP it was entered for".into(),
            }]));
        }
        (None, Some(e)) => e.connection.client_secret.clone(),
        (None, None) => {
            return Err(ManageError::Invalid(vec![ConfigError::Invalid {
                key: "client_secret".into(),
                message: "required: the client secret the IdP issued for this gateway".into(),
            }]));
        }
    };
    let connection =
        build(raw.clone(), secret.clone(), all, replacing).map_err(ManageError::Invalid)?;
    let enabled = existing.as_ref().is_none_or(|e| e.enabled);
    let mut settings = raw;
    settings.client_secret = None;
    settings.client_secret_file = None;
    let mut after = public_settings(&settings, enabled);
    if let (Some(obj), Some(e)) = (after.as_object_mut(), &existing) {
        let changed = e.connection.client_secret != secret;
        obj.insert(
            "client_secret".into(),
            if changed { "changed" } else { "unchanged" }.into(),
        );
    }
    let change = Change {
        id: connection.id.to_string(),
        before: existing
            .as_ref()
            .map(|e| describe(&e.connection, e.enabled)),
        after: Some(after),
    };
    let entry = Entry {
        connection,
        source: Source::Console,
        enabled,
    };
    Ok(Saved {
        entry,
        settings,
        secret,
        change,
    })
}

fn console_entry(all: &[Entry], id: &str) -> Result<Entry, ManageError> {
    let entry = all
        .iter()
        .find(|e| e.connection.id.as_str() == id)
        .ok_or_else(|| ManageError::Unknown(id.to_owned()))?;
    if entry.source == Source::File {
        return Err(ManageError::ManagedByFile(id.to_owned()));
    }
    Ok(entry.clone())
}

/// A connection's settings for the audit trail and the edit form; never its secret.
pub fn describe(c: &Connection, enabled: bool) -> serde_json::Value {
    public_settings(&to_raw(c), enabled)
}

/// The settings of a connection as the form and the stored JSON spell them.
pub fn to_raw(c: &Connection) -> RawConnection {
    RawConnection {
        id: Some(c.id.to_string()),
        display_name: Some(c.display_name.clone()),
        issuer: Some(c.issuer.as_str().to_owned()),
        client_id: Some(c.client_id.clone()),
        client_secret: None,
        client_secret_file: None,
        scopes: Some(c.scopes.clone()),
        allowed_email_domains: c
            .allowed_email_domains
            .iter()
            .map(ToString::to_string)
            .collect(),
        trust_unverified_email: false,
        trusted_email_domains: c
            .trusted_email_domains
            .iter()
            .map(ToString::to_string)
            .collect(),
        customer_group_id: c.customer_group_id,
        groups_claim: Some(c.groups_claim.clone()),
        group_rules: c
            .group_rules
            .iter()
            .map(|r| crate::config::RawGroupRule {
                group: r.group.clone(),
                customer_group_id: r.customer_group_id,
            })
            .collect(),
        company_claim: c.company_claim.clone(),
        hosted_domain: c.hosted_domain.clone(),
        sync_profile: c.sync_profile,
        channels: c.channels.clone(),
        create_customers: Some(c.create_customers),
        link_existing: Some(c.link_existing.as_str().into()),
        allow_non_ascii_email: c.allow_non_ascii_email,
        channel_access: Some(
            match c.channel_access {
                crate::config::ChannelAccess::Channel => "channel",
                crate::config::ChannelAccess::Global => "global",
            }
            .into(),
        ),
        id_token_algs: Some(c.id_token_algs.clone()),
        clock_leeway_secs: Some(c.clock_leeway.as_secs()),
        allowed_tenants: c
            .tenants
            .as_ref()
            .map(|t| t.allowed.clone())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_rows_from_a_newer_version_still_load() {
        let raw: RawConnection = read_lenient(
            r#"{"id":"acme","issuer":"https://idp.acme.test","allowed_email_domains":["acme.test"],"added_later":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(raw.id.as_deref(), Some("acme"));
        assert_eq!(raw.allowed_email_domains, ["acme.test"]);
        assert!(read_lenient::<RawConnection>("{not json").is_err());
        assert!(
            read_lenient::<RawConnection>(r#"{"id":7}"#).is_err(),
            "known fields keep their types"
        );
    }
}
