//! The audit trail: sign-ins, refusals, links and admin changes, newest first. Events are
//! written by [`super::audit_writer`]; every query here first waits for the ones queued.

use sqlx::Row;

use super::{Db, DbError, like_pattern};

/// One line of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditEvent {
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

/// The most events one export returns; narrow the time range for more.
pub const EXPORT_MAX: i64 = 50_000;

/// Sign-ins of one bucket of time, result and reason (`""` for successes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInCount {
    pub bucket: i64,
    pub succeeded: bool,
    pub reason: String,
    pub count: i64,
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
    /// What a link knows of its customer changed (BigCommerce said so in a webhook).
    LinkUpdated,
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
            AuditKind::LinkUpdated => "link_updated",
            AuditKind::ConnectionCreated => "connection_created",
            AuditKind::ConnectionUpdated => "connection_updated",
            AuditKind::ConnectionDeleted => "connection_deleted",
            AuditKind::StoreSettingsChanged => "store_settings_changed",
            AuditKind::AdminAccessChanged => "admin_access_changed",
            AuditKind::AdminSessionsRevoked => "admin_sessions_revoked",
        }
    }

    pub const ALL: [AuditKind; 17] = [
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
        AuditKind::LinkUpdated,
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

impl Db {
    /// The newest events first.
    pub async fn audit_events(&self, limit: i64) -> Result<Vec<AuditEvent>, DbError> {
        self.search_audit(&AuditFilter {
            limit,
            ..AuditFilter::default()
        })
        .await
    }

    /// The newest events first, filtered (at most 1,000: a page of the console or the API).
    pub async fn search_audit(&self, f: &AuditFilter) -> Result<Vec<AuditEvent>, DbError> {
        self.search_audit_up_to(f, 1000).await
    }

    /// As [`Db::search_audit`], for exports: up to [`EXPORT_MAX`] events.
    pub async fn export_audit(&self, f: &AuditFilter) -> Result<Vec<AuditEvent>, DbError> {
        self.search_audit_up_to(f, EXPORT_MAX).await
    }

    /// Sign-ins since `since` (Unix seconds) counted per `bucket_secs`-long bucket, result
    /// and reason, for the console's chart. Counted by the database, not in memory.
    pub async fn sign_in_counts(
        &self,
        since: i64,
        bucket_secs: i64,
    ) -> Result<Vec<SignInCount>, DbError> {
        self.flush_audit().await;
        let rows = self
            .query(
                "SELECT (at - $2) / $3 AS bucket, kind, COALESCE(reason, '') AS reason,                  COUNT(*) AS n FROM audit_events                  WHERE store_hash = $1 AND at >= $2                  AND kind IN ('sign_in_succeeded', 'sign_in_refused')                  GROUP BY (at - $2) / $3, kind, COALESCE(reason, '')",
            )
            .bind(since)
            .bind(bucket_secs.max(1))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                Ok(SignInCount {
                    bucket: r.try_get("bucket")?,
                    succeeded: kind == AuditKind::SignInSucceeded.as_str(),
                    reason: r.try_get("reason")?,
                    count: r.try_get("n")?,
                })
            })
            .collect()
    }

    /// Absent filters are bound as NULL and skipped by `$n IS NULL OR …`, so one statement
    /// serves every combination.
    async fn search_audit_up_to(
        &self,
        f: &AuditFilter,
        max: i64,
    ) -> Result<Vec<AuditEvent>, DbError> {
        self.flush_audit().await;
        let rows = self
            .query(
                "SELECT at, kind, connection, subject, email, customer_id, reason, \
                 correlation_id, actor, detail, client_ip, user_agent FROM audit_events \
                 WHERE store_hash = $1 \
                 AND ($2 IS NULL OR at >= $2) AND ($3 IS NULL OR at <= $3) \
                 AND ($4 IS NULL OR connection = $4) AND ($5 IS NULL OR kind = $5) \
                 AND ($6 IS NULL OR LOWER(email) LIKE $6 ESCAPE '\\') \
                 ORDER BY at DESC, id DESC LIMIT $7",
            )
            .bind(f.from)
            .bind(f.to)
            .bind(f.connection.as_deref())
            .bind(f.kind.map(AuditKind::as_str))
            .bind(f.email.as_deref().map(like_pattern))
            .bind(f.limit.clamp(1, max))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Deletes audit events older than `before` (Unix seconds), of every store the
    /// database holds: retention is the database's, not one store's. Returns how many.
    pub async fn prune_audit(&self, before: i64) -> Result<u64, DbError> {
        self.flush_audit().await;
        let done = sqlx::query("DELETE FROM audit_events WHERE at < $1")
            .bind(before)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }
}

fn event_from_row(r: &sqlx::any::AnyRow) -> Result<AuditEvent, DbError> {
    let kind: String = r.try_get("kind")?;
    Ok(AuditEvent {
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
