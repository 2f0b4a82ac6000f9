//! The store's API account and channels in force: declared in the config file (read-only
//! in the console), or set by an admin in the console and stored in the database with the
//! access token and client secret sealed. Requests take a snapshot ([`StoreApi`]); a change
//! swaps in a new one, so a sign-in never sees half of an edit.

use std::sync::atomic::AtomicI64;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::bigcommerce::{Client, LoginTokenMinter};
use crate::clock::Clock;
use crate::config::{ConfigError, RawChannel, RawStore, StoreConfig, StoreSection, validate_store};
use crate::domain::Secret;
use crate::managed::{Change, LoadError, ManageError, Source};
use crate::secrets::SecretKey;
use crate::store::Store;

/// The name of the `gateway_settings` row that holds the console's store settings.
const SETTING: &str = "store_account";
const TOKEN_CONTEXT: &str = "store:access_token";
const SECRET_CONTEXT: &str = "store:client_secret";

/// One consistent set of store settings and what is built from them.
pub struct StoreApi {
    pub settings: StoreConfig,
    pub source: Source,
    pub client: Client,
    pub tokens: LoginTokenMinter,
}

/// The row as stored: the form's settings without secrets, and the secrets sealed. Unknown
/// fields are ignored (not refused, as in the file), so a row written by a newer version
/// does not stop an older replica during a rolling upgrade.
#[derive(Serialize, Deserialize)]
struct Stored {
    settings: StoredAccount,
    access_token: String,
    client_secret: String,
}

#[derive(Serialize, Deserialize)]
struct StoredAccount {
    api_base_url: Option<String>,
    client_id: Option<String>,
    #[serde(default)]
    channels: Vec<StoredChannel>,
}

#[derive(Serialize, Deserialize)]
struct StoredChannel {
    id: i64,
    storefront_url: String,
    default_redirect: Option<String>,
}

impl StoredAccount {
    fn from_raw(raw: &RawStore) -> Self {
        StoredAccount {
            api_base_url: raw.api_base_url.clone(),
            client_id: raw.client_id.clone(),
            channels: raw
                .channels
                .iter()
                .map(|c| StoredChannel {
                    id: c.id,
                    storefront_url: c.storefront_url.clone(),
                    default_redirect: c.default_redirect.clone(),
                })
                .collect(),
        }
    }

    fn into_raw(self) -> RawStore {
        RawStore {
            api_base_url: self.api_base_url,
            client_id: self.client_id,
            channels: self
                .channels
                .into_iter()
                .map(|c| RawChannel {
                    id: c.id,
                    storefront_url: c.storefront_url,
                    default_redirect: c.default_redirect,
                })
                .collect(),
            ..RawStore::default()
        }
    }
}

pub struct StoreSettings {
    current: RwLock<Option<Arc<StoreApi>>>,
    /// The stored row the snapshot was built from: another replica's save changes it.
    loaded: std::sync::Mutex<Option<String>>,
    /// Saves run one at a time, from reading the snapshot to swapping it.
    edits: tokio::sync::Mutex<()>,
    http: reqwest::Client,
    clock: Clock,
    /// BigCommerce's clock minus ours: measured once, kept across changes of settings.
    offset: Arc<AtomicI64>,
}

impl StoreSettings {
    /// The file's settings if it declares them, else the console's from the database (or
    /// none yet: the gateway then waits for an admin to set them).
    pub async fn load(
        store: &Store,
        section: &StoreSection,
        key: Option<&SecretKey>,
        http: reqwest::Client,
        clock: Clock,
    ) -> Result<Self, LoadError> {
        let settings = Self {
            current: RwLock::new(None),
            loaded: std::sync::Mutex::new(None),
            edits: tokio::sync::Mutex::new(()),
            http,
            clock,
            offset: Arc::new(AtomicI64::new(0)),
        };
        match &section.declared {
            Some(declared) => settings.swap(Some(settings.build(declared.clone(), Source::File))),
            None => {
                settings.refresh(store, section, key).await?;
            }
        }
        Ok(settings)
    }

    /// The settings in force; `None` until an admin has set them.
    pub fn current(&self) -> Option<Arc<StoreApi>> {
        self.current
            .read()
            .map(|g| g.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// BigCommerce's clock minus ours, as last measured.
    pub fn offset(&self) -> &Arc<AtomicI64> {
        &self.offset
    }

    fn build(&self, settings: StoreConfig, source: Source) -> Arc<StoreApi> {
        Arc::new(StoreApi {
            client: Client::new(self.http.clone(), &settings),
            tokens: LoginTokenMinter::new(&settings, self.clock.clone(), self.offset.clone()),
            settings,
            source,
        })
    }

    fn swap(&self, next: Option<Arc<StoreApi>>) {
        match self.current.write() {
            Ok(mut g) => *g = next,
            Err(p) => *p.into_inner() = next,
        }
    }

    fn loaded(&self) -> Option<String> {
        self.loaded
            .lock()
            .map(|v| v.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn set_loaded(&self, v: Option<String>) {
        match self.loaded.lock() {
            Ok(mut g) => *g = v,
            Err(p) => *p.into_inner() = v,
        }
    }

    /// Reloads the console's settings when the stored row differs from the one in force
    /// (another replica saved). Returns whether it reloaded. File settings never reload.
    pub async fn refresh(
        &self,
        store: &Store,
        section: &StoreSection,
        key: Option<&SecretKey>,
    ) -> Result<bool, LoadError> {
        if section.declared.is_some() {
            return Ok(false);
        }
        // Under the lock, so a poll cannot put back a row a local save just replaced.
        let _one_at_a_time = self.edits.lock().await;
        let row = store.setting(&section.store_hash, SETTING).await?;
        self.apply(row, section, key)
    }

    /// Makes `row` the settings in force unless it already is.
    fn apply(
        &self,
        row: Option<String>,
        section: &StoreSection,
        key: Option<&SecretKey>,
    ) -> Result<bool, LoadError> {
        let Some(text) = row.as_deref().filter(|_| row != self.loaded()) else {
            return Ok(false);
        };
        let broken = |reason: String| LoadError::Broken {
            what: "store settings".into(),
            reason,
        };
        let key = key.ok_or_else(|| {
            broken("they hold encrypted secrets but no secret key is configured".into())
        })?;
        let stored: Stored = serde_json::from_str(text).map_err(|e| broken(e.to_string()))?;
        let mut raw = stored.settings.into_raw();
        raw.access_token = Some(
            key.open(&stored.access_token, TOKEN_CONTEXT)?
                .expose()
                .into(),
        );
        raw.client_secret = Some(
            key.open(&stored.client_secret, SECRET_CONTEXT)?
                .expose()
                .into(),
        );
        let mut errors = Vec::new();
        let settings = validate_store(
            &section.store_hash,
            section.clock_check_interval,
            raw,
            &mut errors,
        );
        match settings {
            Some(settings) if errors.is_empty() => {
                self.swap(Some(self.build(settings, Source::Console)));
                self.set_loaded(row);
                Ok(true)
            }
            _ => Err(broken(join(&errors))),
        }
    }

    /// Saves the console's store form. An empty `access_token` or `client_secret` keeps
    /// the one in force.
    pub async fn save(
        &self,
        store: &Store,
        section: &StoreSection,
        key: Option<&SecretKey>,
        mut form: RawStore,
        access_token: Option<String>,
        client_secret: Option<String>,
    ) -> Result<Change, ManageError> {
        if section.declared.is_some() {
            return Err(ManageError::StoreManagedByFile);
        }
        let key = key.ok_or(ManageError::NoSecretKey)?;
        let _one_at_a_time = self.edits.lock().await;
        // Start from what is stored now, not from a snapshot another replica may have
        // replaced since the last poll: kept secrets and the audit's "before" come from it.
        let stored_row = store.setting(&section.store_hash, SETTING).await?;
        if let Err(e) = self.apply(stored_row.clone(), section, Some(key)) {
            tracing::warn!(error = %e, "the stored store settings cannot be read; replacing them");
        }
        let before = self.current();
        let token_given = access_token.as_ref().is_some_and(|t| !t.trim().is_empty());
        let keep = |given: Option<String>, kept: Option<&Secret>| {
            given
                .filter(|s| !s.trim().is_empty())
                .map(|s| Secret::new(s.trim()))
                .or_else(|| kept.cloned())
        };
        let token = keep(
            access_token,
            before.as_ref().map(|b| &b.settings.access_token),
        );
        let secret = keep(
            client_secret,
            before.as_ref().map(|b| &b.settings.client_secret),
        );
        // Secrets come from the form's fields only, never from a path on this host.
        form.access_token_file = None;
        form.client_secret_file = None;
        let mut errors = Vec::new();
        let mut raw = form.clone();
        raw.access_token = token.as_ref().map(|t| t.expose().to_owned());
        raw.client_secret = secret.as_ref().map(|s| s.expose().to_owned());
        let settings = validate_store(
            &section.store_hash,
            section.clock_check_interval,
            raw,
            &mut errors,
        );
        // The file's wording ("set it in the config file or as env …") does not fit a form.
        for e in &mut errors {
            if let ConfigError::Missing { key, .. } = e {
                let what = match key.as_str() {
                    "store.access_token" => {
                        "the access token of the store's API account (Settings › API › Store-level API accounts)"
                    }
                    "store.client_secret" => "the client secret of the store's API account",
                    "store.client_id" => "the client id of the store's API account",
                    _ => "a value",
                };
                *e = ConfigError::Invalid {
                    key: key.clone(),
                    message: format!("required: {what}"),
                };
            }
        }
        // The kept token goes only to the address it was entered for: a new API base URL
        // (which could be anyone's server) needs the token typed again.
        if let (Some(b), Some(new)) = (&before, &settings)
            && !token_given
            && b.settings.api_base_url != new.api_base_url
        {
            errors.push(ConfigError::Invalid {
                key: "store.access_token".into(),
                message: "enter the access token again: the API base URL changed, and the stored token is only sent to the address it was entered for".into(),
            });
        }
        let (Some(settings), true, Some(token), Some(secret)) =
            (settings, errors.is_empty(), token, secret)
        else {
            return Err(ManageError::InvalidStore(errors));
        };
        let row = serde_json::to_string(&Stored {
            settings: StoredAccount::from_raw(&form),
            access_token: key.seal(token.expose(), TOKEN_CONTEXT)?,
            client_secret: key.seal(secret.expose(), SECRET_CONTEXT)?,
        })
        .map_err(|e| {
            ManageError::InvalidStore(vec![ConfigError::Invalid {
                key: "store".into(),
                message: e.to_string(),
            }])
        })?;
        if !store
            .replace_setting(&section.store_hash, SETTING, stored_row.as_deref(), &row)
            .await?
        {
            return Err(ManageError::ChangedElsewhere("store settings"));
        }
        let mut after = describe(&settings);
        if let Some(obj) = after.as_object_mut() {
            let changed = |old: Option<&Secret>, new: &Secret| {
                if old == Some(new) {
                    "unchanged"
                } else {
                    "changed"
                }
            };
            obj.insert(
                "access_token".into(),
                changed(
                    before.as_ref().map(|b| &b.settings.access_token),
                    &settings.access_token,
                )
                .into(),
            );
            obj.insert(
                "client_secret".into(),
                changed(
                    before.as_ref().map(|b| &b.settings.client_secret),
                    &settings.client_secret,
                )
                .into(),
            );
        }
        self.swap(Some(self.build(settings, Source::Console)));
        self.set_loaded(Some(row));
        Ok(Change {
            id: "store".into(),
            before: before.map(|b| describe(&b.settings)),
            after: Some(after),
        })
    }
}

fn join(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The settings as the form and the API spell them; never the secrets.
pub fn to_raw(s: &StoreConfig) -> RawStore {
    RawStore {
        api_base_url: Some(s.api_base_url.to_string()),
        client_id: Some(s.client_id.clone()),
        channels: s
            .channels
            .values()
            .map(|c| RawChannel {
                id: c.id,
                storefront_url: c.storefront_url.to_string(),
                default_redirect: Some(c.default_redirect.as_str().to_owned()),
            })
            .collect(),
        ..RawStore::default()
    }
}

/// The settings for the audit trail and the admin API.
pub fn describe(s: &StoreConfig) -> serde_json::Value {
    let raw = to_raw(s);
    serde_json::json!({
        "store_hash": s.store_hash,
        "api_base_url": raw.api_base_url,
        "client_id": raw.client_id,
        "channels": raw.channels,
    })
}
