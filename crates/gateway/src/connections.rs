//! The IdP connections in force: those declared in the config file (read-only in the
//! console) and those an admin manages in the console (stored in the database). Requests
//! take a snapshot; an admin change swaps in a new one, so no lock is held across a sign-in.

use std::sync::{Arc, RwLock};

use crate::config::Connection;
use crate::managed::{Change, LoadError, ManageError, Source};

#[derive(Debug, Clone)]
pub struct Entry {
    pub connection: Connection,
    pub source: Source,
    pub enabled: bool,
}

#[derive(Debug, Default)]
pub struct Connections {
    current: RwLock<Arc<Vec<Entry>>>,
    /// Admin changes run one at a time, from reading the snapshot to swapping it, so two
    /// edits cannot lose each other or both claim one email domain.
    edits: tokio::sync::Mutex<()>,
    /// The `connections_version` this snapshot was loaded at (see [`VERSION`]).
    version: std::sync::Mutex<Option<String>>,
}

/// Bumped in the database at every console change, so that other replicas reload.
pub const VERSION: &str = "connections_version";

impl Connections {
    pub fn new(entries: Vec<Entry>) -> Self {
        Self {
            current: RwLock::new(Arc::new(entries)),
            edits: tokio::sync::Mutex::new(()),
            version: std::sync::Mutex::new(None),
        }
    }

    /// Every connection, enabled or not (for the console).
    pub fn all(&self) -> Arc<Vec<Entry>> {
        self.current
            .read()
            .map(|g| g.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
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

    fn version(&self) -> Option<String> {
        self.version
            .lock()
            .map(|v| v.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn set_version(&self, v: Option<String>) {
        match self.version.lock() {
            Ok(mut g) => *g = v,
            Err(p) => *p.into_inner() = v,
        }
    }

    /// Reloads from the database when another replica changed connections since this
    /// snapshot was taken. Returns whether it reloaded.
    pub async fn refresh(
        &self,
        store: &Store,
        store_hash: &str,
        key: Option<&SecretKey>,
        file: &[Connection],
    ) -> Result<bool, LoadError> {
        let stored = store.setting(store_hash, VERSION).await?;
        if stored.is_none() || stored == self.version() {
            return Ok(false);
        }
        let _one_at_a_time = self.edits.lock().await;
        let entries = load(store, store_hash, key, file).await?;
        self.replace(entries);
        self.set_version(stored);
        Ok(true)
    }

    pub fn replace(&self, entries: Vec<Entry>) {
        let next = Arc::new(entries);
        match self.current.write() {
            Ok(mut g) => *g = next,
            Err(p) => *p.into_inner() = next,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Console-managed connections: stored with the secret sealed, validated exactly like the
// config file's entries, and checked against every other connection before they are saved.

use crate::config::{ConfigError, RawConnection, validate_connection};
use crate::domain::Secret;
use crate::secrets::SecretKey;
use crate::store::{Store, StoreError, StoredConnection};

const KEY_CHECK: &str = "secret_key_check";

fn secret_context(id: &str) -> String {
    format!("connection:{id}:client_secret")
}

/// Loads the console's connections next to the file's. A configured key must be the one
/// the database was encrypted with; stored connections without any key refuse to start.
pub async fn load(
    store: &Store,
    store_hash: &str,
    key: Option<&SecretKey>,
    file: &[Connection],
) -> Result<Vec<Entry>, LoadError> {
    let stored = store.list_connections(store_hash).await?;
    match (key, store.setting(store_hash, KEY_CHECK).await?) {
        (Some(key), Some(check)) => key.verify_key_check(&check)?,
        (Some(key), None) => {
            let check = key.key_check_value().map_err(|e| LoadError::Broken {
                what: "secret key check".into(),
                reason: e.to_string(),
            })?;
            store.set_setting(store_hash, KEY_CHECK, &check).await?;
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
        let raw = stored_settings(&s.settings).map_err(broken)?;
        let connection = build(raw, secret, &entries, Some(&s.id)).map_err(|errors| {
            broken(
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        entries.push(Entry {
            connection,
            source: Source::Console,
            enabled: s.enabled,
        });
    }
    Ok(entries)
}

/// A stored connection's settings. Fields this version does not know are dropped rather
/// than refused (the file refuses them): a row written by a newer version must not stop an
/// older replica during a rolling upgrade.
fn stored_settings(json: &str) -> Result<RawConnection, String> {
    let mut value: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let known = serde_json::to_value(RawConnection::default()).map_err(|e| e.to_string())?;
    if let (Some(fields), Some(known)) = (value.as_object_mut(), known.as_object()) {
        fields.retain(|k, _| known.contains_key(k));
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
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
/// their secrets, and the snapshot that sign-ins read.
pub struct Console<'a> {
    pub store: &'a Store,
    pub store_hash: &'a str,
    pub key: Option<&'a SecretKey>,
    pub current: &'a Connections,
    pub now: i64,
}

impl Console<'_> {
    /// Creates a connection, or updates a console connection (`replacing`). On update an
    /// empty `secret` keeps the stored one.
    pub async fn save(
        &self,
        mut raw: RawConnection,
        secret: Option<String>,
        replacing: Option<&str>,
    ) -> Result<Change, ManageError> {
        let (store, store_hash, current, now) =
            (self.store, self.store_hash, self.current, self.now);
        let key = self.key.ok_or(ManageError::NoSecretKey)?;
        let _one_at_a_time = current.edits.lock().await;
        let all = current.all();
        let existing = match replacing {
            Some(id) => Some(console_entry(&all, id)?),
            None => None,
        };
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
            build(raw.clone(), secret.clone(), &all, replacing).map_err(ManageError::Invalid)?;
        let id = connection.id.to_string();
        let enabled = existing.as_ref().is_none_or(|e| e.enabled);
        let mut settings = raw;
        settings.client_secret = None;
        settings.client_secret_file = None;
        store
            .save_connection(
                store_hash,
                &StoredConnection {
                    id: id.clone(),
                    settings: serde_json::to_string(&settings).unwrap_or_default(),
                    client_secret_sealed: key.seal(secret.expose(), &secret_context(&id))?,
                    enabled,
                    created_at: now,
                    updated_at: now,
                },
            )
            .await?;
        let before = existing
            .as_ref()
            .map(|e| describe(&e.connection, e.enabled));
        let mut after = public_settings(&settings, enabled);
        if let (Some(obj), Some(e)) = (after.as_object_mut(), &existing) {
            let changed = e.connection.client_secret != secret;
            obj.insert(
                "client_secret".into(),
                if changed { "changed" } else { "unchanged" }.into(),
            );
        }
        let mut entries: Vec<Entry> = all
            .iter()
            .filter(|e| e.connection.id.as_str() != id)
            .cloned()
            .collect();
        entries.push(Entry {
            connection,
            source: Source::Console,
            enabled,
        });
        bump_version(store, store_hash, current).await?;
        current.replace(entries);
        Ok(Change {
            id,
            before,
            after: Some(after),
        })
    }

    /// Enables or disables a console connection.
    pub async fn set_enabled(&self, id: &str, enabled: bool) -> Result<Change, ManageError> {
        let (store, store_hash, current, now) =
            (self.store, self.store_hash, self.current, self.now);
        let _one_at_a_time = current.edits.lock().await;
        let all = current.all();
        let entry = console_entry(&all, id)?;
        if !store
            .set_connection_enabled(store_hash, id, enabled, now)
            .await?
        {
            return Err(ManageError::Unknown(id.to_owned()));
        }
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
        bump_version(store, store_hash, current).await?;
        current.replace(entries);
        Ok(Change {
            id: id.to_owned(),
            before: Some(describe(&entry.connection, entry.enabled)),
            after: Some(describe(&entry.connection, enabled)),
        })
    }

    /// Deletes a console connection. Its identity links stay: recreating the connection
    /// with the same issuer brings its users back to their customers.
    pub async fn delete(&self, id: &str) -> Result<Change, ManageError> {
        let (store, store_hash, current) = (self.store, self.store_hash, self.current);
        let _one_at_a_time = current.edits.lock().await;
        let all = current.all();
        let entry = console_entry(&all, id)?;
        store.delete_connection(store_hash, id).await?;
        bump_version(store, store_hash, current).await?;
        current.replace(
            all.iter()
                .filter(|e| e.connection.id.as_str() != id)
                .cloned()
                .collect(),
        );
        Ok(Change {
            id: id.to_owned(),
            before: Some(describe(&entry.connection, entry.enabled)),
            after: None,
        })
    }
}

/// Records that connections changed (other replicas reload at their next refresh) and
/// that this replica's snapshot is current.
async fn bump_version(
    store: &Store,
    store_hash: &str,
    current: &Connections,
) -> Result<(), StoreError> {
    let v = uuid::Uuid::new_v4().to_string();
    store.set_setting(store_hash, VERSION, &v).await?;
    current.set_version(Some(v));
    Ok(())
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_rows_from_a_newer_version_still_load() {
        let raw = stored_settings(
            r#"{"id":"acme","issuer":"https://idp.acme.test","allowed_email_domains":["acme.test"],"added_later":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(raw.id.as_deref(), Some("acme"));
        assert_eq!(raw.allowed_email_domains, ["acme.test"]);
        assert!(stored_settings("{not json").is_err());
        assert!(
            stored_settings(r#"{"id":7}"#).is_err(),
            "known fields keep their types"
        );
    }
}
