//! Persistence in SQLite (the embedded default) or PostgreSQL (when the URL says
//! `postgres://`): identity links ([`links`]), the audit trail ([`audit`]), the rows of the
//! console-managed settings ([`settings`]) and "Try sign-in" runs ([`trials`]). One schema,
//! a migration set per dialect (`migrations/`), and the same queries through sqlx's `Any`
//! driver: every query is written in the SQL both databases accept, with `$n` placeholders.
//!
//! [`Db`] is bound to one BigCommerce store: every row it reads or writes is that store's,
//! so callers never pass the store hash (one database can serve several gateways).

pub mod audit;
mod audit_writer;
mod hot;
pub mod links;
pub mod settings;
pub mod trials;
pub mod webhooks;

#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod writer_tests;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::{AnyArguments, AnyConnectOptions, AnyPoolOptions};

pub use audit::{AuditEvent, AuditFilter, AuditKind, EXPORT_MAX, SignInCount};
pub use audit_writer::QUEUE_CAPACITY as AUDIT_QUEUE_CAPACITY;
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
    /// The audit queue was full or closed (counted in `bcsso_audit_events_dropped_total`).
    #[error("the audit event was dropped: the audit queue is full or closed")]
    AuditDropped,
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

/// The database, seen by one BigCommerce store. Cheap to clone (the pools are shared).
#[derive(Clone)]
pub struct Db {
    /// Reads (and, except for a SQLite file, writes too).
    pool: AnyPool,
    /// Writes. For a SQLite file, a pool of one connection: SQLite lets one writer in at a
    /// time, and a second connection that tries waits in `busy_timeout`'s sleep-and-retry
    /// loop (milliseconds per attempt) instead of in a queue. PostgreSQL and `:memory:`
    /// write through `pool`.
    writer: AnyPool,
    backend: Backend,
    store_hash: Arc<str>,
    audit: Arc<audit_writer::AuditQueue>,
    /// The link look-up's own connection (not for `:memory:`, where each connection is
    /// another database).
    hot: Option<Arc<hot::HotReader>>,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl Db {
    /// Opens (creating a SQLite file if needed) and migrates the database at `url`, for
    /// the store `store_hash`.
    pub async fn connect(url: &str, store_hash: &str) -> Result<Db, DbError> {
        Self::connect_with_audit_queue(url, store_hash, AUDIT_QUEUE_CAPACITY).await
    }

    /// As [`Db::connect`], with an audit queue of `capacity` events.
    pub async fn connect_with_audit_queue(
        url: &str,
        store_hash: &str,
        capacity: usize,
    ) -> Result<Db, DbError> {
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
        let options_for_hot = options.clone();
        let base = || AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        // A SQLite connection is a thread of this process: the health check sqlx runs
        // before handing one out is a round trip to that thread per query, for nothing.
        let local = || base().test_before_acquire(false);
        let (pool, writer) = match backend {
            // Each connection to `:memory:` is its own empty database: keep exactly one,
            // forever, for reads and writes.
            Backend::Sqlite if memory => {
                let pool = local()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect_with(options)
                    .await
                    .map_err(DbError::Connect)?;
                (pool.clone(), pool)
            }
            Backend::Sqlite => {
                // The writer first: it switches the file to WAL (persistent, and needs the
                // file to itself) before any reader opens it.
                let writer = local()
                    .max_connections(1)
                    .min_connections(1)
                    .after_connect(|conn, _| Box::pin(sqlite_tuning(conn, true)))
                    .connect_with(options.clone())
                    .await
                    .map_err(DbError::Connect)?;
                // In WAL, readers do not wait for the writer nor it for them.
                let readers = local()
                    .max_connections(4)
                    .after_connect(|conn, _| Box::pin(sqlite_tuning(conn, false)))
                    .connect_with(options)
                    .await
                    .map_err(DbError::Connect)?;
                (readers, writer)
            }
            Backend::Postgres => {
                let pool = base()
                    .max_connections(10)
                    .connect_with(options)
                    .await
                    .map_err(DbError::Connect)?;
                (pool.clone(), pool)
            }
        };
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&writer).await.map_err(DbError::Migrate)?;
        let hot = (!memory).then(|| {
            Arc::new(hot::HotReader::new(
                options_for_hot,
                backend == Backend::Sqlite,
            ))
        });
        Ok(Db {
            hot,
            audit: audit_writer::AuditQueue::start(writer.clone(), capacity),
            pool,
            writer,
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

/// A SQLite file's settings, per connection: write-ahead logging (readers and the writer do
/// not block each other; one fsync per checkpoint instead of several per commit), `NORMAL`
/// sync (safe in WAL: a power cut may lose the last commits, never corrupt the file), and a
/// busy timeout for the rare wait on a checkpoint or another process.
async fn sqlite_tuning(conn: &mut sqlx::AnyConnection, writer: bool) -> Result<(), sqlx::Error> {
    use sqlx::Executor;
    if writer {
        conn.execute("PRAGMA journal_mode = WAL").await?;
    }
    conn.execute("PRAGMA synchronous = NORMAL").await?;
    conn.execute("PRAGMA busy_timeout = 5000").await?;
    Ok(())
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
