//! The audit trail's writer: events wait in a bounded queue and one task writes them in
//! batches, one transaction per batch, off the sign-in's path. A sign-in used to wait for
//! its own commit (an fsync on SQLite); now it waits for nothing, and the writer gathers
//! what arrives within [`LINGER`] into one commit.
//!
//! Nothing is lost on a graceful shutdown ([`Db::close_audit`] drains the queue), and
//! readers of the trail ([`Db::flush_audit`], called by every audit query) see every event
//! queued before they asked. When the queue is full (the database is down or far too
//! slow), an event is dropped rather than stalling sign-ins: counted in
//! `bcsso_audit_events_dropped_total` and logged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::{AuditEvent, Db, DbError};
use crate::metrics::METRICS;

/// Events the queue holds at most (a few hundred bytes each).
pub const QUEUE_CAPACITY: usize = 10_000;
/// Events written at most per transaction.
const BATCH: usize = 256;
/// How long the writer waits for more events before it commits the ones it has.
const LINGER: Duration = Duration::from_millis(100);

enum Msg {
    Event(Box<(Arc<str>, AuditEvent)>),
    /// Answered once every event queued before it is written (or given up on).
    Flush(oneshot::Sender<()>),
    /// As `Flush`, and the queue accepts nothing more.
    Close(oneshot::Sender<()>),
}

/// The sending side, shared by every clone of a [`Db`].
pub(super) struct AuditQueue {
    tx: mpsc::Sender<Msg>,
    /// Events this queue dropped, full or failed to write (the metric counts every queue
    /// of the process).
    dropped: Arc<AtomicU64>,
    /// When a drop was last logged: one line a minute, not one per event of an outage.
    warned_at: std::sync::Mutex<Option<Instant>>,
}

impl AuditQueue {
    /// Starts the writer task on `writer` (the current tokio runtime).
    pub(super) fn start(writer: AnyPool, capacity: usize) -> Arc<AuditQueue> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(run(writer, rx, dropped.clone()));
        Arc::new(AuditQueue {
            tx,
            dropped,
            warned_at: std::sync::Mutex::new(None),
        })
    }

    fn dropped(&self, reason: &'static str, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
        METRICS.audit_dropped.with_label_values(&[reason]).inc_by(n);
        let mut warned = self.warned_at.lock().unwrap_or_else(|p| p.into_inner());
        if warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
            *warned = Some(Instant::now());
            tracing::error!(
                reason,
                dropped_so_far = self.dropped.load(Ordering::Relaxed),
                "audit events dropped"
            );
        }
    }
}

impl Db {
    /// Queues an audit event for the writer; never waits. Returns `false` when it was
    /// dropped (queue full or closed), which is counted and logged here.
    pub fn queue_audit(&self, event: AuditEvent) -> bool {
        let msg = Msg::Event(Box::new((self.store_hash.clone(), event)));
        match self.audit.tx.try_send(msg) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.audit.dropped("queue_full", 1);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.audit.dropped("closed", 1);
                false
            }
        }
    }

    /// Queues a copy of `event` (see [`Db::queue_audit`]); `Err` when it was dropped.
    pub async fn record(&self, event: &AuditEvent) -> Result<(), DbError> {
        if self.queue_audit(event.clone()) {
            Ok(())
        } else {
            Err(DbError::AuditDropped)
        }
    }

    /// Waits until every event queued before this call is written.
    pub async fn flush_audit(&self) {
        let (done, wait) = oneshot::channel();
        if self.audit.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Writes every queued event and stops the writer; later events are dropped (and
    /// counted). For a graceful shutdown, after the last request is answered.
    pub async fn close_audit(&self) {
        let (done, wait) = oneshot::channel();
        if self.audit.tx.send(Msg::Close(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Audit events this handle's queue has dropped since start.
    pub fn audit_dropped(&self) -> u64 {
        self.audit.dropped.load(Ordering::Relaxed)
    }
}

async fn run(writer: AnyPool, mut rx: mpsc::Receiver<Msg>, dropped: Arc<AtomicU64>) {
    let mut msgs = Vec::with_capacity(BATCH);
    let mut events = Vec::with_capacity(BATCH);
    let mut flushed = Vec::new();
    let mut closers = Vec::new();
    while rx.recv_many(&mut msgs, BATCH).await > 0 {
        // Events trickle in one per sign-in: wait a little for more, so that a busy
        // gateway commits a few times a second instead of once per sign-in. A reader
        // (flush) or the shutdown (close) does not wait.
        let deadline = tokio::time::Instant::now() + LINGER;
        loop {
            let wanted = msgs
                .iter()
                .any(|m| matches!(m, Msg::Flush(_) | Msg::Close(_)));
            if wanted || msgs.len() >= BATCH {
                break;
            }
            let room = BATCH - msgs.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut msgs, room)).await {
                Ok(n) if n > 0 => {}
                // Timed out, or every sender is gone.
                _ => break,
            }
        }
        for msg in msgs.drain(..) {
            match msg {
                Msg::Event(e) => events.push(*e),
                Msg::Flush(done) => flushed.push(done),
                Msg::Close(done) => {
                    // Refuse new events; the ones already queued are still received.
                    rx.close();
                    closers.push(done);
                }
            }
        }
        if !events.is_empty() {
            write(&writer, &events, &dropped).await;
            events.clear();
        }
        for done in flushed.drain(..) {
            let _ = done.send(());
        }
    }
    for done in closers {
        let _ = done.send(());
    }
}

/// One transaction for the batch; tried twice (a checkpoint or a failover may refuse the
/// first), then dropped and counted.
async fn write(writer: &AnyPool, events: &[(Arc<str>, AuditEvent)], dropped: &AtomicU64) {
    let mut last = None;
    for attempt in 0..2 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        match write_batch(writer, events).await {
            Ok(()) => return,
            Err(e) => last = Some(e),
        }
    }
    let n = events.len() as u64;
    dropped.fetch_add(n, Ordering::Relaxed);
    if let Some(e) = last {
        tracing::error!(error = %e, events = n, "could not write audit events");
    }
    METRICS
        .audit_dropped
        .with_label_values(&["write_failed"])
        .inc_by(n);
}

async fn write_batch(
    writer: &AnyPool,
    events: &[(Arc<str>, AuditEvent)],
) -> Result<(), sqlx::Error> {
    let mut tx = writer.begin().await?;
    for (store_hash, e) in events {
        sqlx::query(
            "INSERT INTO audit_events (store_hash, at, kind, connection, subject, email, customer_id, \
             reason, correlation_id, actor, detail, client_ip, user_agent) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&**store_hash)
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
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}
