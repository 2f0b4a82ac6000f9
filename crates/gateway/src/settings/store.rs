//! The store's API account and channels in force: declared in the config file (read-only
//! in the console), or set by an admin in the console and stored in the database with the
//! access token and client secret sealed. Requests take a snapshot ([`StoreApi`]); a change
//! swaps in a new one, so a sign-in never sees half of an edit.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use serde::{Deserialize, Serialize};

use crate::bigcommerce::{Client, LoginTokenMinter};
use crate::clock::Clock;
use crate::config::{ConfigError, RawChannel, RawStore, StoreConfig, StoreSection, validate_store};
use crate::domain::Secret;
use crate::secrets::SecretKey;
use crate::settings::{Change, Edit, Kind, LoadError, ManageError, Managed, Rows, Source, join};

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
    /// Signs the sign-out marker cookie (from the client secret, like the login tokens).
    pub signout_key: crate::signout::MarkerKey,
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

/// What the file says about the store, and what building a [`StoreApi`] needs.
pub struct StoreKind {
    section: StoreSection,
    http: reqwest::Client,
    clock: Clock,
    /// BigCommerce's clock minus ours: measured once, kept across changes of settings.
    offset: Arc<AtomicI64>,
}

/// The file's store settings, or the console's (`None` until an admin has set them).
pub type StoreSettings = Managed<StoreKind>;

impl Kind for StoreKind {
    type Value = Option<Arc<StoreApi>>;
    const WHAT: &'static str = "store settings";
    /// The row holds the settings themselves.
    const VERSION_ROW: &'static str = SETTING;
    const SAVE_OVER_UNREADABLE: bool = true;

    fn read_only(&self) -> Option<ManageError> {
        self.section
            .declared
            .is_some()
            .then_some(ManageError::StoreManagedByFile)
    }

    async fn load(&self, rows: Rows<'_>, row: Option<&str>) -> Result<Self::Value, LoadError> {
        if let Some(declared) = &self.section.declared {
            return Ok(Some(self.build(declared.clone(), Source::File)));
        }
        let Some(text) = row else { return Ok(None) };
        let broken = |reason: String| LoadError::Broken {
            what: "store settings".into(),
            reason,
        };
        let key = rows.key.ok_or_else(|| {
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
        let settings = self.validate(raw, &mut errors);
        match settings {
            Some(settings) if errors.is_empty() => Ok(Some(self.build(settings, Source::Console))),
            _ => Err(broken(join(&errors))),
        }
    }
}

impl StoreKind {
    fn build(&self, settings: StoreConfig, source: Source) -> Arc<StoreApi> {
        Arc::new(StoreApi {
            client: Client::new(self.http.clone(), &settings),
            tokens: LoginTokenMinter::new(&settings, self.clock.clone(), self.offset.clone()),
            signout_key: crate::signout::MarkerKey::derive(settings.client_secret.expose()),
            settings,
            source,
        })
    }

    fn validate(&self, raw: RawStore, errors: &mut Vec<ConfigError>) -> Option<StoreConfig> {
        let s = &self.section;
        validate_store(&s.store_hash, s.clock_check_interval, raw, errors)
    }

    /// The store settings of `form`, with the secrets kept from `before` where the form
    /// leaves them empty; the row to store, and the change for the audit trail.
    fn saved(
        &self,
        key: &SecretKey,
        before: Option<&StoreApi>,
        mut form: RawStore,
        access_token: Option<String>,
        client_secret: Option<String>,
    ) -> Result<Edit<Option<Arc<StoreApi>>, Change>, ManageError> {
        let token_given = access_token.as_ref().is_some_and(|t| !t.trim().is_empty());
        let keep = |given: Option<String>, kept: Option<&Secret>| {
            given
                .filter(|s| !s.trim().is_empty())
                .map(|s| Secret::new(s.trim()))
                .or_else(|| kept.cloned())
        };
        let token = keep(access_token, before.map(|b| &b.settings.access_token));
        let secret = keep(client_secret, before.map(|b| &b.settings.client_secret));
        // Secrets come from the form's fields only, never from a path on this host.
        form.access_token_file = None;
        form.client_secret_file = None;
        let mut errors = Vec::new();
        let mut raw = form.clone();
        raw.access_token = token.as_ref().map(|t| t.expose().to_owned());
        raw.client_secret = secret.as_ref().map(|s| s.expose().to_owned());
        let settings = self.validate(raw, &mut errors);
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
        if let (Some(b), Some(new)) = (before, &settings)
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
        let mut after = describe(&settings);
        if let Some(obj) = after.as_object_mut() {
            let changed = |old: Option<&Secret>, new: &Secret| {
                if old == Some(new) {
                    "unchanged"
                } else {
                    "changed"
                }
            };
            for (name, old, new) in [
                (
                    "access_token",
                    before.map(|b| &b.settings.access_token),
                    &settings.access_token,
                ),
                (
                    "client_secret",
                    before.map(|b| &b.settings.client_secret),
                    &settings.client_secret,
                ),
            ] {
                obj.insert(name.into(), changed(old, new).into());
            }
        }
        let change = Change {
            id: "store".into(),
            before: before.map(|b| describe(&b.settings)),
            after: Some(after),
        };
        Ok(Edit {
            value: Some(self.build(settings, Source::Console)),
            version: row,
            writes: Vec::new(),
            out: change,
        })
    }
}

impl StoreKind {
    pub fn new(section: StoreSection, http: reqwest::Client, clock: Clock) -> Self {
        StoreKind {
            section,
            http,
            clock,
            offset: Arc::new(AtomicI64::new(0)),
        }
    }
}

impl StoreSettings {
    /// The settings in force; `None` until an admin has set them.
    pub fn current(&self) -> Option<Arc<StoreApi>> {
        self.snapshot().as_ref().clone()
    }

    /// What saving the form would put in force, built and validated but not stored, so it
    /// can be checked against BigCommerce first (the storefront URLs).
    pub fn candidate(
        &self,
        rows: Rows<'_>,
        form: RawStore,
        access_token: Option<String>,
        client_secret: Option<String>,
    ) -> Result<Option<Arc<StoreApi>>, ManageError> {
        if let Some(refusal) = self.kind().read_only() {
            return Err(refusal);
        }
        let key = rows.key.ok_or(ManageError::NoSecretKey)?;
        let current = self.current();
        let edit = self
            .kind()
            .saved(key, current.as_deref(), form, access_token, client_secret)?;
        Ok(edit.value)
    }

    /// Saves the console's store form. An empty `access_token` or `client_secret` keeps
    /// the one in force.
    pub async fn save(
        &self,
        rows: Rows<'_>,
        form: RawStore,
        access_token: Option<String>,
        client_secret: Option<String>,
    ) -> Result<Change, ManageError> {
        if let Some(refusal) = self.kind().read_only() {
            return Err(refusal);
        }
        let key = rows.key.ok_or(ManageError::NoSecretKey)?;
        self.change(rows, |kind, before| {
            kind.saved(key, before.as_deref(), form, access_token, client_secret)
        })
        .await
    }
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
