//! The `BCSSO_*` environment overlay. [`VARIABLES`] is the one list of what can be set from
//! the environment: the overlay, the unknown-variable warning and the README's list (a test
//! checks it) all come from it, and a test fails when a setting of `[server]`, `[store]`,
//! `[database]` or `[admin]` has no variable here.

use std::collections::HashMap;
use std::path::PathBuf;

use super::{ENV_PREFIX, RawConfig};

/// One variable: the setting it overrides (`section.field`; the variable's name is
/// `BCSSO_` + that in upper case, `.` as `_`) and how its text is read.
pub struct Variable {
    pub key: &'static str,
    /// The few older names that do not follow the rule (`BCSSO_STORE_HASH`).
    short_name: Option<&'static str>,
    apply: fn(&mut RawConfig, &str) -> Result<(), String>,
}

impl Variable {
    /// `BCSSO_SERVER_PUBLIC_URL` for `server.public_url`.
    pub fn name(&self) -> String {
        match self.short_name {
            Some(name) => format!("{ENV_PREFIX}{name}"),
            None => format!(
                "{ENV_PREFIX}{}",
                self.key.replace('.', "_").to_ascii_uppercase()
            ),
        }
    }
}

/// `var!(section.field, how[, "OLD_NAME"])`: `text`, `path`, `number`, `flag` or `list_opt` for an optional
/// field; `list_field` (comma-separated) or `lines_field` (one a line) for a list that is not
/// optional.
macro_rules! var {
    ($section:ident . $field:ident, $how:ident, $name:literal) => {
        Variable {
            short_name: Some($name),
            ..var!($section.$field, $how)
        }
    };
    ($section:ident . $field:ident, lines_field) => {
        Variable {
            key: concat!(stringify!($section), ".", stringify!($field)),
            short_name: None,
            apply: |raw, v| {
                raw.$section.$field = lines(v);
                Ok(())
            },
        }
    };
    ($section:ident . $field:ident, list_field) => {
        Variable {
            key: concat!(stringify!($section), ".", stringify!($field)),
            short_name: None,
            apply: |raw, v| {
                raw.$section.$field = list(v);
                Ok(())
            },
        }
    };
    ($section:ident . $field:ident, $how:ident) => {
        Variable {
            key: concat!(stringify!($section), ".", stringify!($field)),
            short_name: None,
            apply: |raw, v| {
                raw.$section.$field = Some($how(v)?);
                Ok(())
            },
        }
    };
}

pub const VARIABLES: &[Variable] = &[
    var!(server.listen, text),
    var!(server.public_url, text),
    var!(server.http_timeout_secs, number),
    var!(server.pending_login_ttl_secs, number),
    var!(server.trusted_proxies, list_opt),
    var!(server.trusted_proxy_hops, number),
    var!(server.send_request_ip, flag),
    var!(server.request_ip, text),
    var!(server.rate_limit_per_minute, number),
    var!(server.rate_limit_burst, number),
    var!(server.connection_rate_limit_per_minute, number),
    var!(server.admin_failures_per_minute, number),
    var!(server.sessions_url, text),
    var!(server.metrics_listen, text),
    var!(store.store_hash, text, "STORE_HASH"),
    var!(store.api_base_url, text),
    var!(store.access_token, text),
    var!(store.access_token_file, path),
    var!(store.client_id, text),
    var!(store.client_secret, text),
    var!(store.client_secret_file, path),
    var!(store.clock_check_interval_secs, number),
    var!(database.url, text),
    var!(database.audit_retention_days, number),
    var!(database.link_touch_interval_secs, number),
    var!(database.secret_key, text, "SECRET_KEY"),
    var!(database.secret_key_file, path, "SECRET_KEY_FILE"),
    var!(admin.token, text),
    var!(admin.token_file, path),
    var!(admin.sso_connection, text),
    var!(admin.allowed_emails, list_field),
    var!(admin.allowed_groups, lines_field),
];

/// Read by the binary itself, not settings of the file.
const OTHER_VARIABLES: &[&str] = &["CONFIG", "LOG", "LOG_FORMAT"];

fn text(v: &str) -> Result<String, String> {
    Ok(v.to_owned())
}

fn path(v: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(v))
}

fn number<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("expected a whole number, got {v:?}"))
}

fn flag(v: &str) -> Result<bool, String> {
    match v.trim() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("expected true or false, got {v:?}")),
    }
}

fn list_opt(v: &str) -> Result<Vec<String>, String> {
    Ok(list(v))
}

/// Comma- or space-separated, as lists are written in a shell.
fn list(v: &str) -> Vec<String> {
    v.split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One a line: group names contain spaces ("Store Admins") and LDAP DNs commas, and a
/// group split in two would admit members of either half.
fn lines(v: &str) -> Vec<String> {
    v.lines()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Environment variable that overrides a connection's client secret.
pub fn connection_secret_env(id: &str) -> String {
    format!(
        "{ENV_PREFIX}CONNECTION_{}_CLIENT_SECRET",
        id.to_ascii_uppercase().replace('-', "_")
    )
}

/// Applies overrides; returns the `BCSSO_*` keys it did not recognise. A value that does
/// not parse is kept in `raw.env_errors`, so validation reports it with the others.
pub fn apply_env(raw: &mut RawConfig, env: &HashMap<String, String>) -> Vec<String> {
    let by_name: HashMap<String, &Variable> = VARIABLES.iter().map(|v| (v.name(), v)).collect();
    let secret_envs: HashMap<String, usize> = raw
        .connections
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.id.as_deref().map(|id| (connection_secret_env(id), i)))
        .collect();
    let mut keys: Vec<&String> = env.keys().filter(|k| k.starts_with(ENV_PREFIX)).collect();
    keys.sort();
    let mut unknown = Vec::new();
    for key in keys {
        let value = &env[key];
        if let Some(var) = by_name.get(key.as_str()) {
            if let Err(message) = (var.apply)(raw, value) {
                raw.env_errors.push((key.clone(), message));
            }
        } else if let Some(&i) = secret_envs.get(key) {
            raw.connections[i].client_secret = Some(value.clone());
        } else if !OTHER_VARIABLES.contains(&&key[ENV_PREFIX.len()..]) {
            unknown.push(key.clone());
        }
    }
    unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields serde knows for a section, from its own "unknown field" message.
    fn fields_of<T: serde::de::DeserializeOwned + std::fmt::Debug>() -> Vec<String> {
        let err = toml::from_str::<T>("__probe__ = 1")
            .unwrap_err()
            .to_string();
        let list = err
            .split("expected one of ")
            .nth(1)
            .or_else(|| err.split("expected ").nth(1))
            .unwrap_or_else(|| panic!("no field list in {err:?}"));
        list.split(',')
            .map(|f| {
                f.trim()
                    .trim_matches(|c: char| c == '`' || c.is_whitespace())
            })
            .map(|f| f.split('`').next().unwrap_or(f).to_owned())
            .filter(|f| !f.is_empty())
            .collect()
    }

    /// A new setting of these sections cannot be added without its variable.
    #[test]
    fn every_setting_has_its_variable() {
        let sections = [
            ("server", fields_of::<super::super::RawServer>()),
            ("store", fields_of::<super::super::RawStore>()),
            ("database", fields_of::<super::super::RawDatabase>()),
            ("admin", fields_of::<super::super::RawAdmin>()),
        ];
        // Arrays of tables are written in the file; the store's channels can also be set
        // in the console.
        let not_from_env = ["store.channels"];
        for (section, fields) in sections {
            assert!(fields.len() > 2, "{section}: {fields:?}");
            for field in fields {
                let key = format!("{section}.{field}");
                if not_from_env.contains(&key.as_str()) {
                    continue;
                }
                assert!(
                    VARIABLES.iter().any(|v| v.key == key),
                    "{key} has no BCSSO_ variable in config/env.rs"
                );
            }
        }
    }

    /// The README's list of variables is complete.
    #[test]
    fn the_readme_lists_every_variable() {
        let readme = include_str!("../../../../README.md");
        for v in VARIABLES {
            let name = v.name();
            let listed = readme.contains(&name) || {
                // `BCSSO_STORE_ACCESS_TOKEN[_FILE]` lists both.
                name.strip_suffix("_FILE")
                    .is_some_and(|base| readme.contains(&format!("{base}[_FILE]")))
            };
            assert!(listed, "README.md does not list {name}");
        }
    }

    #[test]
    fn values_are_read_by_type_and_errors_kept() {
        let mut raw = RawConfig::default();
        let env: HashMap<String, String> = [
            ("BCSSO_SERVER_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1"),
            ("BCSSO_SERVER_SEND_REQUEST_IP", "1"),
            ("BCSSO_SERVER_RATE_LIMIT_BURST", "lots"),
            ("BCSSO_ADMIN_ALLOWED_EMAILS", "a@x.test,b@x.test"),
            (
                "BCSSO_ADMIN_ALLOWED_GROUPS",
                "Store Admins\nCN=Shop Admins,OU=Groups\n",
            ),
            ("BCSSO_STORE_ACCESS_TOKEN_FILE", "/run/secrets/t"),
            ("BCSSO_LOG", "debug"),
            ("BCSSO_TYPO", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(apply_env(&mut raw, &env), ["BCSSO_TYPO"]);
        assert_eq!(
            raw.server.trusted_proxies.as_deref(),
            Some(&["10.0.0.0/8".to_owned(), "127.0.0.1".to_owned()][..])
        );
        assert_eq!(raw.server.send_request_ip, Some(true));
        assert_eq!(raw.server.rate_limit_burst, None);
        assert_eq!(raw.admin.allowed_emails, ["a@x.test", "b@x.test"]);
        assert_eq!(
            raw.admin.allowed_groups,
            ["Store Admins", "CN=Shop Admins,OU=Groups"],
            "a group is never split into admitting halves"
        );
        assert_eq!(
            raw.store.access_token_file,
            Some(PathBuf::from("/run/secrets/t"))
        );
        assert_eq!(raw.env_errors.len(), 1);
        let errors = super::super::validate(raw).unwrap_err();
        assert!(
            errors.iter().any(|e| e
                .to_string()
                .starts_with("BCSSO_SERVER_RATE_LIMIT_BURST: expected a whole number")),
            "{errors:?}"
        );
    }
}
