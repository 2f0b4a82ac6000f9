//! Persistence in SQLite (the embedded default) or PostgreSQL (when the URL says
//! `postgres://`): identity links ([`links`]), the audit trail ([`audit`]), the rows of the
//! console-managed settings ([`settings`]) and "Try sign-in" runs ([`trials`]). One schema,
//! a migration set per dialect (`migrations/`), and the same queries through sqlx's `Any`
//! driver: every query is written in the SQL both databases accept, with `$n` placeholders.
//!
//! [`Db`] is bound to one BigCommerce store: every row it reads or writes is that store's,
//! so callers never pass the store hash (one database can serve several gateways).

pub mod audit;
pub mod links;
pub mod settings;
pub mod trials;
pub mod webhooks;

#[cfg(test)]
pub(crate) mod tests;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::{AnyArguments, AnyConnectOptions, AnyPoolOptions};

pub use audit::{AuditEvent, AuditFilter, AuditKind, EXPORT_MAX, SignInCount};
pub use links::IdentityLink;
pub use settings::{SettingsWrite, StoredConnection};
pub use trials::Trial;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL, password masked.
    #[error(
        "database URL {0:?} is not supported: use sqlite://PATH, sqlite::memory: or postgres://…"
    )]
    UnsupportedUrl(String),
    #[error("cannot open the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
    /// A stored identity link names a connection id the gateway would never have written.
    #[error("identity link row holds {0:?}, which is not a connection id")]
    BadConnectionId(String),
    #[error("identity link row holds channel ids that cannot be read: {0}")]
    BadChannelIds(#[source] serde_json::Error),
    /// The customer is already linked to another subject of the same issuer (the unique
    /// index `identity_links_one_per_issuer`, SECURITY.md rule 20).
    #[error("the customer is already linked to another subject of this issuer")]
    CustomerAlreadyLinked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The database, seen by one BigCommerce store. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    store_hash: Arc<str>,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl Db {
    /// Opens (creating a SQLite file if needed) and migrates the database at `url`, for
    /// the store `store_hash`.
    pub async fn connect(url: &str, store_hash: &str) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(DbError::UnsupportedUrl(redact_url(url)));
        };
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let url = match backend {
            // Create the file on first start.
            Backend::Sqlite if !memory && !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url).map_err(DbError::Connect)?;
        let mut pool = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        pool = match backend {
            // Each connection to `:memory:` is its own empty database: keep exactly one,
            // forever. A file allows a few readers; SQLite serialises writers anyway.
            Backend::Sqlite if memory => pool
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None),
            Backend::Sqlite => pool.max_connections(4),
            Backend::Postgres => pool.max_connections(10),
        };
        let pool = pool.connect_with(options).await.map_err(DbError::Connect)?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await.map_err(DbError::Migrate)?;
        Ok(Db {
            pool,
            backend,
            store_hash: store_hash.into(),
        })
    }

    /// The same database (and pool), seen by another store.
    pub fn for_store(&self, store_hash: &str) -> Db {
        Db {
            store_hash: store_hash.into(),
            ..self.clone()
        }
    }

    pub fn store_hash(&self) -> &str {
        &self.store_hash
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A statement about this store's rows: `$1` is bound to the store hash, the caller
    /// binds the rest.
    fn query(&self, sql: &'static str) -> sqlx::query::Query<'_, sqlx::Any, AnyArguments> {
        sqlx::query(sql).bind(self.store_hash())
    }

    /// `SELECT 1`: whether the database answers now (readiness).
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// `%text%` for a case-insensitive `LIKE … ESCAPE '\'`: the admin's `%`, `_` and `\` are
/// matched literally, so a search for `_` does not list everything.
fn like_pattern(text: &str) -> String {
    let escaped = text
        .trim()
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// The URL without its password, for error messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}
