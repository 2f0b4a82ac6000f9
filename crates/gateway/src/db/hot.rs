//! One connection kept out of the pool for the read every returning sign-in makes (its
//! link). sqlx's pool tests each connection it takes back (`ping`: a round trip to SQLite's
//! worker thread, or to PostgreSQL) from a task it spawns for that: per returning sign-in,
//! more work than the look-up itself (issue 12's profile). These connections (a few, for
//! sign-ins that arrive together) are used directly, one query at a time, and never pinged;
//! when all are in use, or the one taken broke, the pool answers instead, so they never
//! make a sign-in wait or fail.

use std::time::{Duration, Instant};

use sqlx::any::{AnyArguments, AnyConnectOptions, AnyRow};
use sqlx::{Any, AnyConnection, Connection};
use tokio::sync::Mutex;

/// Kept connections: sign-ins that look up at the same moment (c64 in the bench) each find
/// one free; more would only hold database connections idle.
const KEPT: usize = 4;

/// After a failed connect, the pool alone serves for this long before the next attempt
/// (a database that is down is not asked twice per sign-in).
const RETRY_AFTER: Duration = Duration::from_secs(5);

pub(super) struct HotReader {
    options: AnyConnectOptions,
    /// SQLite: the reader pragmas every pooled reader gets.
    sqlite: bool,
    slots: [Mutex<Slot>; KEPT],
}

#[derive(Default)]
struct Slot {
    conn: Option<AnyConnection>,
    failed_at: Option<Instant>,
}

type Query<'q> = sqlx::query::Query<'q, Any, AnyArguments>;

impl HotReader {
    pub(super) fn new(options: AnyConnectOptions, sqlite: bool) -> Self {
        Self {
            options,
            sqlite,
            slots: std::array::from_fn(|_| Mutex::new(Slot::default())),
        }
    }

    /// The query's row through the kept connection, or through `pool` when that is busy,
    /// broken, or cannot be opened.
    pub(super) async fn fetch_optional<'q>(
        &self,
        pool: &sqlx::AnyPool,
        query: impl Fn() -> Query<'q>,
    ) -> Result<Option<AnyRow>, sqlx::Error> {
        let free = self.slots.iter().find_map(|s| s.try_lock().ok());
        if let Some(mut slot) = free
            && let Some(conn) = self.connected(&mut slot).await
        {
            match query().fetch_optional(&mut *conn).await {
                Ok(row) => return Ok(row),
                Err(e) => {
                    // Reopened on next use; this query goes to the pool below.
                    tracing::debug!(error = %e, "kept reader failed; the pool answers");
                    slot.conn = None;
                }
            }
        }
        query().fetch_optional(pool).await
    }

    async fn connected<'s>(&self, slot: &'s mut Slot) -> Option<&'s mut AnyConnection> {
        if slot.conn.is_none() && slot.failed_at.is_none_or(|at| at.elapsed() >= RETRY_AFTER) {
            match self.open().await {
                Ok(conn) => {
                    slot.conn = Some(conn);
                    slot.failed_at = None;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "could not open the kept reader; the pool answers");
                    slot.failed_at = Some(Instant::now());
                }
            }
        }
        slot.conn.as_mut()
    }

    async fn open(&self) -> Result<AnyConnection, sqlx::Error> {
        let mut conn = AnyConnection::connect_with(&self.options).await?;
        if self.sqlite {
            super::sqlite_tuning(&mut conn, false).await?;
        }
        Ok(conn)
    }
}

#[cfg(test)]
impl HotReader {
    /// The first kept connection's PostgreSQL backend, if it is open (`None` on SQLite).
    /// Sequential look-ups all use the first.
    pub(super) async fn backend_pid(&self) -> Option<i32> {
        let mut slot = self.slots[0].lock().await;
        let conn = slot.conn.as_mut()?;
        sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
            .fetch_one(conn)
            .await
            .ok()
    }

    pub(super) async fn is_open(&self) -> bool {
        self.slots[0].lock().await.conn.is_some()
    }
}
