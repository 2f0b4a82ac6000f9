//! Persistence: identity links and the audit trail, in SQLite (the embedded default) or
//! PostgreSQL (when the URL says `postgres://`). One schema, a migration set per dialect,
//! and the same queries through sqlx's `Any` driver: every query here is written in the
//! SQL both databases accept, with `$n` placeholders.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Row};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

/// A stored link from an IdP login to a BigCommerce customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityLink {
    pub store_hash: String,
    pub issuer: String,
    pub subject: String,
    pub connection: String,
    pub customer_id: i64,
    /// The customer's `channel_ids` when linked (`None` = global account).
    pub channel_ids: Option<Vec<i64>>,
    pub email_at_link: String,
    pub created_at: i64,
    pub last_sign_in_at: i64,
}

/// A console-managed connection as stored: settings JSON and the sealed client secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredConnection {
    pub id: String,
    pub settings: String,
    pub client_secret_sealed: String,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A row change of console-managed connections, made only through
/// [`Store::write_versioned`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingsWrite {
    /// Inserts or replaces a connection (`created_at` is kept on replace).
    SaveConnection(StoredConnection),
    /// Flips only the `enabled` flag.
    SetConnectionEnabled {
        id: String,
        enabled: bool,
        at: i64,
    },
    DeleteConnection(String),
}

impl SettingsWrite {
    fn query<'q>(
        &'q self,
        store_hash: &'q str,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
        match self {
            SettingsWrite::SaveConnection(c) => sqlx::query(
                "INSERT INTO connections (store_hash, id, settings, client_secret_sealed, enabled, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (store_hash, id) DO UPDATE SET settings = $3, client_secret_sealed = $4, \
                 enabled = $5, updated_at = $7",
            )
            .bind(store_hash)
            .bind(&c.id)
            .bind(&c.settings)
            .bind(&c.client_secret_sealed)
            .bind(i64::from(c.enabled))
            .bind(c.created_at)
            .bind(c.updated_at),
            SettingsWrite::SetConnectionEnabled { id, enabled, at } => sqlx::query(
                "UPDATE connections SET enabled = $3, updated_at = $4 WHERE store_hash = $1 AND id = $2",
            )
            .bind(store_hash)
            .bind(id)
            .bind(i64::from(*enabled))
            .bind(*at),
            SettingsWrite::DeleteConnection(id) => {
                sqlx::query("DELETE FROM connections WHERE store_hash = $1 AND id = $2")
                    .bind(store_hash)
                    .bind(id)
            }
        }
    }
}

/// A "Try sign-in" run of the admin console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trial {
    pub connection: String,
    pub actor: String,
    pub created_at: i64,
    /// The report as JSON, once the sign-in came back.
    pub result: Option<String>,
}

/// One line of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditEvent {
    pub store_hash: String,
    pub at: i64,
    pub kind: AuditKind,
    pub connection: Option<String>,
    pub subject: Option<String>,
    pub email: Option<String>,
    pub customer_id: Option<i64>,
    /// The error code of a refusal.
    pub reason: Option<String>,
    pub correlation_id: Option<String>,
    /// Who made an admin change (`None` for sign-ins).
    pub actor: Option<String>,
    /// What an admin change changed: JSON with `before`/`after`, secrets masked.
    pub detail: Option<String>,
    /// The client's IP, as resolved through the trusted proxies.
    pub client_ip: Option<String>,
    /// The client's `User-Agent`, printable characters only, cut short.
    pub user_agent: Option<String>,
}

/// Filters of the audit log view; all optional, combined with AND.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub connection: Option<String>,
    pub kind: Option<AuditKind>,
    /// Substring of the email, case-insensitive.
    pub email: Option<String>,
    pub limit: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuditKind {
    #[default]
    SignInSucceeded,
    SignInRefused,
    CustomerCreated,
    CustomerLinked,
    /// An existing customer linked under `link_existing = "reset_password"`.
    CustomerLinkedPasswordReset,
    /// A first sign-in's customer was not linked (`reason` says why).
    LinkRefused,
    CustomerUpdated,
    AdminSignedIn,
    AdminSignInRefused,
    LinkRemoved,
    ConnectionCreated,
    ConnectionUpdated,
    ConnectionDeleted,
    StoreSettingsChanged,
    AdminAccessChanged,
    /// "Sign out all admin sessions" in the console or the API.
    AdminSessionsRevoked,
}

impl AuditKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::SignInSucceeded => "sign_in_succeeded",
            AuditKind::SignInRefused => "sign_in_refused",
            AuditKind::CustomerCreated => "customer_created",
            AuditKind::CustomerLinked => "customer_linked",
            AuditKind::CustomerLinkedPasswordReset => "customer_linked_password_reset",
            AuditKind::LinkRefused => "link_refused",
            AuditKind::CustomerUpdated => "customer_updated",
            AuditKind::AdminSignedIn => "admin_signed_in",
            AuditKind::AdminSignInRefused => "admin_sign_in_refused",
            AuditKind::LinkRemoved => "link_removed",
            AuditKind::ConnectionCreated => "connection_created",
            AuditKind::ConnectionUpdated => "connection_updated",
            AuditKind::ConnectionDeleted => "connection_deleted",
            AuditKind::StoreSettingsChanged => "store_settings_changed",
            AuditKind::AdminAccessChanged => "admin_access_changed",
            AuditKind::AdminSessionsRevoked => "admin_sessions_revoked",
        }
    }

    pub const ALL: [AuditKind; 16] = [
        AuditKind::SignInSucceeded,
        AuditKind::SignInRefused,
        AuditKind::CustomerCreated,
        AuditKind::CustomerLinked,
        AuditKind::CustomerLinkedPasswordReset,
        AuditKind::LinkRefused,
        AuditKind::CustomerUpdated,
        AuditKind::AdminSignedIn,
        AuditKind::AdminSignInRefused,
        AuditKind::LinkRemoved,
        AuditKind::ConnectionCreated,
        AuditKind::ConnectionUpdated,
        AuditKind::ConnectionDeleted,
        AuditKind::StoreSettingsChanged,
        AuditKind::AdminAccessChanged,
        AuditKind::AdminSessionsRevoked,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl Store {
    /// Opens (creating a SQLite file if needed) and migrates the database.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
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
        let options = AnyConnectOptions::from_str(&url).map_err(StoreError::Connect)?;
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
        let pool = pool
            .connect_with(options)
            .await
            .map_err(StoreError::Connect)?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await.map_err(StoreError::Migrate)?;
        Ok(Store { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// `SELECT 1`: whether the database answers now (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn find_link(
        &self,
        store_hash: &str,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<IdentityLink>, StoreError> {
        let row = sqlx::query(
            "SELECT store_hash, issuer, subject, connection, customer_id, channel_ids, email_at_link, \
             created_at, last_sign_in_at FROM identity_links \
             WHERE store_hash = $1 AND issuer = $2 AND subject = $3",
        )
        .bind(store_hash)
        .bind(issuer)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| link_from_row(&r)).transpose()
    }

    /// Links of one customer (for the admin console and tests).
    pub async fn links_of_customer(
        &self,
        store_hash: &str,
        customer_id: i64,
    ) -> Result<Vec<IdentityLink>, StoreError> {
        let rows = sqlx::query(
            "SELECT store_hash, issuer, subject, connection, customer_id, channel_ids, email_at_link, \
             created_at, last_sign_in_at FROM identity_links \
             WHERE store_hash = $1 AND customer_id = $2 ORDER BY created_at, subject",
        )
        .bind(store_hash)
        .bind(customer_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(link_from_row).collect()
    }

    /// Inserts a link unless one exists for the same login; returns the link that is
    /// stored afterwards. Two first sign-ins of one person at once both end with the
    /// winner's link.
    pub async fn insert_link(&self, link: &IdentityLink) -> Result<IdentityLink, StoreError> {
        sqlx::query(
            "INSERT INTO identity_links (store_hash, issuer, subject, connection, customer_id, \
             channel_ids, email_at_link, created_at, last_sign_in_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (store_hash, issuer, subject) DO NOTHING",
        )
        .bind(&link.store_hash)
        .bind(&link.issuer)
        .bind(&link.subject)
        .bind(&link.connection)
        .bind(link.customer_id)
        .bind(channel_ids_text(&link.channel_ids))
        .bind(&link.email_at_link)
        .bind(link.created_at)
        .bind(link.last_sign_in_at)
        .execute(&self.pool)
        .await?;
        self.find_link(&link.store_hash, &link.issuer, &link.subject)
            .await?
            .ok_or(StoreError::Query(sqlx::Error::RowNotFound))
    }

    pub async fn touch_link(&self, link: &IdentityLink, at: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE identity_links SET last_sign_in_at = $1 \
             WHERE store_hash = $2 AND issuer = $3 AND subject = $4",
        )
        .bind(at)
        .bind(&link.store_hash)
        .bind(&link.issuer)
        .bind(&link.subject)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn record(&self, e: &AuditEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_events (store_hash, at, kind, connection, subject, email, customer_id, \
             reason, correlation_id, actor, detail, client_ip, user_agent) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&e.store_hash)
        .bind(e.at)
        .bind(e.kind.as_str())
        .bind(e.connection.as_deref())
        .bind(e.subject.as_deref())
        .bind(e.email.as_deref())
        .bind(e.customer_id)
        .bind(e.reason.as_deref())
        .bind(e.correlation_id.as_deref())
        .bind(e.actor.as_deref())
        .bind(e.detail.as_deref())
        .bind(e.client_ip.as_deref())
        .bind(e.user_agent.as_deref())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The newest events first.
    pub async fn audit_events(
        &self,
        store_hash: &str,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.search_audit(
            store_hash,
            &AuditFilter {
                limit,
                ..AuditFilter::default()
            },
        )
        .await
    }

    /// The newest events first, filtered. Absent filters are bound as NULL and skipped by
    /// `$n IS NULL OR …`, so one statement serves every combination.
    pub async fn search_audit(
        &self,
        store_hash: &str,
        f: &AuditFilter,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT store_hash, at, kind, connection, subject, email, customer_id, reason, \
             correlation_id, actor, detail, client_ip, user_agent FROM audit_events \
             WHERE store_hash = $1 \
             AND ($2 IS NULL OR at >= $2) AND ($3 IS NULL OR at <= $3) \
             AND ($4 IS NULL OR connection = $4) AND ($5 IS NULL OR kind = $5) \
             AND ($6 IS NULL OR LOWER(email) LIKE $6 ESCAPE '\\') \
             ORDER BY at DESC, id DESC LIMIT $7",
        )
        .bind(store_hash)
        .bind(f.from)
        .bind(f.to)
        .bind(f.connection.as_deref())
        .bind(f.kind.map(AuditKind::as_str))
        .bind(f.email.as_deref().map(like_pattern))
        .bind(f.limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Links whose email at link time contains `email` (case-insensitive), newest first.
    pub async fn search_links(
        &self,
        store_hash: &str,
        email: &str,
        limit: i64,
    ) -> Result<Vec<IdentityLink>, StoreError> {
        let rows = sqlx::query(
            "SELECT store_hash, issuer, subject, connection, customer_id, channel_ids, email_at_link, \
             created_at, last_sign_in_at FROM identity_links \
             WHERE store_hash = $1 AND LOWER(email_at_link) LIKE $2 ESCAPE '\\' \
             ORDER BY last_sign_in_at DESC, subject LIMIT $3",
        )
        .bind(store_hash)
        .bind(like_pattern(email))
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(link_from_row).collect()
    }

    /// Removes a link; returns it as it was, or `None` when there was none.
    pub async fn delete_link(
        &self,
        store_hash: &str,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<IdentityLink>, StoreError> {
        let Some(link) = self.find_link(store_hash, issuer, subject).await? else {
            return Ok(None);
        };
        let done = sqlx::query(
            "DELETE FROM identity_links WHERE store_hash = $1 AND issuer = $2 AND subject = $3",
        )
        .bind(store_hash)
        .bind(issuer)
        .bind(subject)
        .execute(&self.pool)
        .await?;
        Ok((done.rows_affected() > 0).then_some(link))
    }

    pub async fn count_links(&self, store_hash: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM identity_links WHERE store_hash = $1")
            .bind(store_hash)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Console-managed connections, in id order.
    pub async fn list_connections(
        &self,
        store_hash: &str,
    ) -> Result<Vec<StoredConnection>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, settings, client_secret_sealed, enabled, created_at, updated_at \
             FROM connections WHERE store_hash = $1 ORDER BY id",
        )
        .bind(store_hash)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredConnection {
                    id: r.try_get("id")?,
                    settings: r.try_get("settings")?,
                    client_secret_sealed: r.try_get("client_secret_sealed")?,
                    enabled: r.try_get::<i64, _>("enabled")? != 0,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    pub async fn setting(
        &self,
        store_hash: &str,
        name: &str,
    ) -> Result<Option<String>, StoreError> {
        let row =
            sqlx::query("SELECT value FROM gateway_settings WHERE store_hash = $1 AND name = $2")
                .bind(store_hash)
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.try_get("value")).transpose()?)
    }

    /// Writes `value` only if the row still holds `expected` (`None`: no row yet), so two
    /// replicas saving at once cannot overwrite each other unseen. Returns whether it wrote.
    pub async fn replace_setting(
        &self,
        store_hash: &str,
        name: &str,
        expected: Option<&str>,
        value: &str,
    ) -> Result<bool, StoreError> {
        self.write_versioned(store_hash, name, expected, value, &[])
            .await
    }

    /// The one way console changes are written: in one transaction, the version row
    /// `version` moves from `expected` (`None`: no row yet) to `next`, and only if it did
    /// are `writes` made. A writer that read an older version changes nothing and gets
    /// `false`, so what it checked (e.g. that no two connections claim one email domain)
    /// still holds for what is stored. The version row is locked from its UPDATE to the
    /// commit: PostgreSQL makes a second writer wait and then re-check `value`, SQLite
    /// lets one writer in at a time.
    pub async fn write_versioned(
        &self,
        store_hash: &str,
        version: &str,
        expected: Option<&str>,
        next: &str,
        writes: &[SettingsWrite],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let moved =
            match expected {
                Some(old) => {
                    sqlx::query(
                        "UPDATE gateway_settings SET value = $3 \
                     WHERE store_hash = $1 AND name = $2 AND value = $4",
                    )
                    .bind(store_hash)
                    .bind(version)
                    .bind(next)
                    .bind(old)
                    .execute(&mut *tx)
                    .await?
                }
                None => sqlx::query(
                    "INSERT INTO gateway_settings (store_hash, name, value) VALUES ($1, $2, $3) \
                     ON CONFLICT (store_hash, name) DO NOTHING",
                )
                .bind(store_hash)
                .bind(version)
                .bind(next)
                .execute(&mut *tx)
                .await?,
            };
        if moved.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        for write in writes {
            write.query(store_hash).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    pub async fn set_setting(
        &self,
        store_hash: &str,
        name: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO gateway_settings (store_hash, name, value) VALUES ($1, $2, $3) \
             ON CONFLICT (store_hash, name) DO UPDATE SET value = $3",
        )
        .bind(store_hash)
        .bind(name)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn create_trial(
        &self,
        store_hash: &str,
        ticket: &str,
        connection: &str,
        actor: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO trials (store_hash, ticket, connection, actor, created_at, started) \
             VALUES ($1, $2, $3, $4, $5, 0)",
        )
        .bind(store_hash)
        .bind(ticket)
        .bind(connection)
        .bind(actor)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks a trial ticket used, once, if it is not older than `not_before`; returns its
    /// connection. The UPDATE is the single point of use, so a ticket cannot start two runs.
    pub async fn start_trial(
        &self,
        store_hash: &str,
        ticket: &str,
        not_before: i64,
    ) -> Result<Option<String>, StoreError> {
        let done = sqlx::query(
            "UPDATE trials SET started = 1 \
             WHERE store_hash = $1 AND ticket = $2 AND started = 0 AND created_at >= $3",
        )
        .bind(store_hash)
        .bind(ticket)
        .bind(not_before)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        Ok(self.trial(store_hash, ticket).await?.map(|t| t.connection))
    }

    pub async fn finish_trial(
        &self,
        store_hash: &str,
        ticket: &str,
        result: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE trials SET result = $3 WHERE store_hash = $1 AND ticket = $2")
            .bind(store_hash)
            .bind(ticket)
            .bind(result)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn trial(&self, store_hash: &str, ticket: &str) -> Result<Option<Trial>, StoreError> {
        let row = sqlx::query(
            "SELECT connection, actor, created_at, result FROM trials WHERE store_hash = $1 AND ticket = $2",
        )
        .bind(store_hash)
        .bind(ticket)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Trial {
                connection: r.try_get("connection")?,
                actor: r.try_get("actor")?,
                created_at: r.try_get("created_at")?,
                result: r.try_get("result")?,
            })
        })
        .transpose()
    }

    /// Deletes audit events older than `before` (Unix seconds); returns how many.
    pub async fn prune_audit(&self, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM audit_events WHERE at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
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

fn event_from_row(r: &sqlx::any::AnyRow) -> Result<AuditEvent, StoreError> {
    let kind: String = r.try_get("kind")?;
    Ok(AuditEvent {
        store_hash: r.try_get("store_hash")?,
        at: r.try_get("at")?,
        kind: AuditKind::parse(&kind).unwrap_or_default(),
        connection: r.try_get("connection")?,
        subject: r.try_get("subject")?,
        email: r.try_get("email")?,
        customer_id: r.try_get("customer_id")?,
        reason: r.try_get("reason")?,
        correlation_id: r.try_get("correlation_id")?,
        actor: r.try_get("actor")?,
        detail: r.try_get("detail")?,
        client_ip: r.try_get("client_ip")?,
        user_agent: r.try_get("user_agent")?,
    })
}

fn link_from_row(r: &sqlx::any::AnyRow) -> Result<IdentityLink, StoreError> {
    let channel_ids: Option<String> = r.try_get("channel_ids")?;
    Ok(IdentityLink {
        store_hash: r.try_get("store_hash")?,
        issuer: r.try_get("issuer")?,
        subject: r.try_get("subject")?,
        connection: r.try_get("connection")?,
        customer_id: r.try_get("customer_id")?,
        channel_ids: channel_ids.and_then(|s| serde_json::from_str(&s).ok()),
        email_at_link: r.try_get("email_at_link")?,
        created_at: r.try_get("created_at")?,
        last_sign_in_at: r.try_get("last_sign_in_at")?,
    })
}

fn channel_ids_text(ids: &Option<Vec<i64>>) -> Option<String> {
    ids.as_ref()
        .map(|v| serde_json::Value::from(v.clone()).to_string())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The suite runs against SQLite in memory, and against PostgreSQL too when
    /// `BCSSO_TEST_DATABASE_URL` names one (scripts/test sets it).
    async fn stores() -> Vec<Store> {
        let mut out = vec![Store::connect("sqlite::memory:").await.unwrap()];
        if let Ok(url) = std::env::var("BCSSO_TEST_DATABASE_URL") {
            out.push(Store::connect(&url).await.unwrap());
        }
        out
    }

    fn link(store_hash: &str, subject: &str, customer_id: i64) -> IdentityLink {
        IdentityLink {
            store_hash: store_hash.into(),
            issuer: "https://idp.test".into(),
            subject: subject.into(),
            connection: "acme".into(),
            customer_id,
            channel_ids: Some(vec![1, 2]),
            email_at_link: "ada@acme.test".into(),
            created_at: 100,
            last_sign_in_at: 100,
        }
    }

    #[tokio::test]
    async fn links_round_trip_and_the_first_insert_wins() {
        for store in stores().await {
            let hash = format!("t{}", uuid::Uuid::new_v4().simple());
            assert!(
                store
                    .find_link(&hash, "https://idp.test", "u1")
                    .await
                    .unwrap()
                    .is_none()
            );
            let first = store.insert_link(&link(&hash, "u1", 7)).await.unwrap();
            assert_eq!(first, link(&hash, "u1", 7));
            let second = store.insert_link(&link(&hash, "u1", 8)).await.unwrap();
            assert_eq!(second.customer_id, 7, "{:?}", store.backend());
            store.touch_link(&first, 200).await.unwrap();
            let found = store
                .find_link(&hash, "https://idp.test", "u1")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(found.last_sign_in_at, 200);
            let mut global = link(&hash, "u2", 7);
            global.channel_ids = None;
            store.insert_link(&global).await.unwrap();
            let of_customer = store.links_of_customer(&hash, 7).await.unwrap();
            assert_eq!(of_customer.len(), 2);
            assert_eq!(of_customer[1].channel_ids, None);
        }
    }

    #[tokio::test]
    async fn audit_events_are_recorded_listed_and_pruned() {
        for store in stores().await {
            let hash = format!("t{}", uuid::Uuid::new_v4().simple());
            for (at, kind) in [
                (10, AuditKind::SignInRefused),
                (20, AuditKind::SignInSucceeded),
            ] {
                store
                    .record(&AuditEvent {
                        store_hash: hash.clone(),
                        at,
                        kind,
                        reason: (kind == AuditKind::SignInRefused)
                            .then(|| "email_unverified".into()),
                        client_ip: Some("2001:db8::7".into()),
                        user_agent: Some("Mozilla/5.0 (test)".into()),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
            }
            let events = store.audit_events(&hash, 10).await.unwrap();
            assert_eq!(events.len(), 2);
            assert_eq!(events[0].kind, AuditKind::SignInSucceeded);
            assert_eq!(events[1].reason.as_deref(), Some("email_unverified"));
            assert_eq!(events[1].client_ip.as_deref(), Some("2001:db8::7"));
            assert_eq!(events[1].user_agent.as_deref(), Some("Mozilla/5.0 (test)"));
            assert!(store.prune_audit(15).await.unwrap() >= 1);
            assert_eq!(store.audit_events(&hash, 10).await.unwrap().len(), 1);
        }
    }

    #[tokio::test]
    async fn links_and_events_can_be_searched_and_links_removed() {
        for store in stores().await {
            let hash = format!("t{}", uuid::Uuid::new_v4().simple());
            let mut grace = link(&hash, "u2", 9);
            grace.email_at_link = "grace_h@acme.test".into();
            store.insert_link(&link(&hash, "u1", 7)).await.unwrap();
            store.insert_link(&grace).await.unwrap();
            assert_eq!(store.count_links(&hash).await.unwrap(), 2);
            let found = store.search_links(&hash, "GRACE_", 10).await.unwrap();
            assert_eq!(found.len(), 1);
            assert_eq!(found[0].subject, "u2");
            assert_eq!(
                store
                    .search_links(&hash, "acme.test", 10)
                    .await
                    .unwrap()
                    .len(),
                2
            );
            assert!(
                store
                    .search_links(&hash, "100%", 10)
                    .await
                    .unwrap()
                    .is_empty()
            );
            // LIKE's wildcards typed by the admin are taken literally.
            assert_eq!(store.search_links(&hash, "_", 10).await.unwrap().len(), 1);
            assert!(store.search_links(&hash, "%", 10).await.unwrap().is_empty());
            let removed = store
                .delete_link(&hash, "https://idp.test", "u2")
                .await
                .unwrap();
            assert_eq!(removed.unwrap().customer_id, 9);
            assert!(
                store
                    .delete_link(&hash, "https://idp.test", "u2")
                    .await
                    .unwrap()
                    .is_none()
            );
            assert_eq!(store.count_links(&hash).await.unwrap(), 1);

            for (at, kind, connection, email) in [
                (10, AuditKind::SignInRefused, "acme", "eve@acme.test"),
                (20, AuditKind::SignInSucceeded, "acme", "ada@acme.test"),
                (30, AuditKind::SignInSucceeded, "other", "oscar@other.test"),
            ] {
                let event = AuditEvent {
                    store_hash: hash.clone(),
                    at,
                    kind,
                    connection: Some(connection.into()),
                    email: Some(email.into()),
                    ..Default::default()
                };
                store.record(&event).await.unwrap();
            }
            let search = |f: AuditFilter| {
                let store = store.clone();
                let hash = hash.clone();
                async move {
                    let events = store
                        .search_audit(&hash, &AuditFilter { limit: 50, ..f })
                        .await
                        .unwrap();
                    events.iter().map(|e| e.at).collect::<Vec<_>>()
                }
            };
            assert_eq!(search(AuditFilter::default()).await, [30, 20, 10]);
            assert_eq!(
                search(AuditFilter {
                    from: Some(15),
                    to: Some(25),
                    ..Default::default()
                })
                .await,
                [20]
            );
            assert_eq!(
                search(AuditFilter {
                    connection: Some("acme".into()),
                    ..Default::default()
                })
                .await,
                [20, 10]
            );
            assert_eq!(
                search(AuditFilter {
                    kind: Some(AuditKind::SignInRefused),
                    ..Default::default()
                })
                .await,
                [10]
            );
            assert_eq!(
                search(AuditFilter {
                    email: Some("OSCAR".into()),
                    ..Default::default()
                })
                .await,
                [30]
            );
        }
    }

    #[tokio::test]
    async fn connections_and_settings_round_trip() {
        for store in stores().await {
            let hash = format!("t{}", uuid::Uuid::new_v4().simple());
            let mut c = StoredConnection {
                id: "acme".into(),
                settings: "{}".into(),
                client_secret_sealed: "v1:x".into(),
                enabled: true,
                created_at: 1,
                updated_at: 1,
            };
            let write = |expected: Option<&'static str>, next: &'static str, w: SettingsWrite| {
                let (store, hash) = (store.clone(), hash.clone());
                async move {
                    store
                        .write_versioned(&hash, "v", expected, next, &[w])
                        .await
                        .unwrap()
                }
            };
            assert!(write(None, "1", SettingsWrite::SaveConnection(c.clone())).await);
            c.enabled = false;
            c.updated_at = 2;
            c.created_at = 99; // ignored on update
            assert!(write(Some("1"), "2", SettingsWrite::SaveConnection(c.clone())).await);
            let listed = store.list_connections(&hash).await.unwrap();
            assert_eq!(listed.len(), 1);
            assert!(!listed[0].enabled);
            assert_eq!((listed[0].created_at, listed[0].updated_at), (1, 2));
            // A writer that read an older version writes nothing, not even its rows.
            let stale = SettingsWrite::DeleteConnection("acme".into());
            assert!(!write(Some("1"), "3", stale.clone()).await);
            assert!(!write(None, "3", stale.clone()).await);
            assert_eq!(store.list_connections(&hash).await.unwrap().len(), 1);
            let enable = SettingsWrite::SetConnectionEnabled {
                id: "acme".into(),
                enabled: true,
                at: 3,
            };
            assert!(write(Some("2"), "3", enable).await);
            assert!(store.list_connections(&hash).await.unwrap()[0].enabled);
            assert!(write(Some("3"), "4", stale).await);
            assert!(store.list_connections(&hash).await.unwrap().is_empty());
            assert_eq!(store.setting(&hash, "k").await.unwrap(), None);
            store.set_setting(&hash, "k", "a").await.unwrap();
            store.set_setting(&hash, "k", "b").await.unwrap();
            assert_eq!(
                store.setting(&hash, "k").await.unwrap().as_deref(),
                Some("b")
            );
            // Compare-and-swap: only over the value the writer saw.
            assert!(
                !store
                    .replace_setting(&hash, "k", Some("a"), "c")
                    .await
                    .unwrap()
            );
            assert!(!store.replace_setting(&hash, "k", None, "c").await.unwrap());
            assert!(
                store
                    .replace_setting(&hash, "k", Some("b"), "c")
                    .await
                    .unwrap()
            );
            assert!(
                store
                    .replace_setting(&hash, "new", None, "1")
                    .await
                    .unwrap()
            );
            assert_eq!(
                store.setting(&hash, "k").await.unwrap().as_deref(),
                Some("c")
            );
        }
    }

    #[tokio::test]
    async fn a_file_database_is_created_and_migrated_once() {
        let dir = std::env::temp_dir().join(format!("bcsso-db-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("gw.sqlite").display());
        let hash = "filetest";
        Store::connect(&url)
            .await
            .unwrap()
            .insert_link(&link(hash, "u1", 3))
            .await
            .unwrap();
        // Reopening runs the migrations again (a no-op) and keeps the data.
        let again = Store::connect(&url).await.unwrap();
        assert!(
            again
                .find_link(hash, "https://idp.test", "u1")
                .await
                .unwrap()
                .is_some()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn bad_urls_are_explained_without_passwords() {
        let e = Store::connect("mysql://u:hunter2@db/x")
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("not supported") && !e.contains("hunter2"), "{e}");
        let e = Store::connect("sqlite:///nonexistent-dir/x/y.sqlite")
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("cannot open the database"), "{e}");
    }
}
