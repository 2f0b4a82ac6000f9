//! Raw -> validated: the whole file, the store section, and the helpers every section uses.
//! Every problem is collected, none stops the others from being reported.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::connection::check_unique_connections;
use super::server::validate_server;
use super::*;
use crate::domain::Email;

pub fn validate(raw: RawConfig) -> Result<Config, Vec<ConfigError>> {
    let mut errors: Vec<ConfigError> = raw
        .env_errors
        .iter()
        .map(|(env, message)| invalid(env.clone(), message.clone()))
        .collect();
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
        link_touch_interval: Duration::from_secs(
            raw.database.link_touch_interval_secs.unwrap_or(300),
        ),
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

pub(super) fn required(
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

pub(super) fn secret(
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
pub(super) fn secret_value(
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
pub(super) fn parse_web_url(key: &str, value: &str, errors: &mut Vec<ConfigError>) -> Option<Url> {
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
