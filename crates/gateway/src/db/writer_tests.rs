//! The write path under load: SQLite's settings, and the audit queue's flush, close and
//! drop accounting.

use super::*;
use crate::metrics::METRICS;

/// A SQLite file in a directory of its own, removed when dropped.
struct ScratchDb(std::path::PathBuf);

impl ScratchDb {
    fn new() -> ScratchDb {
        let dir = std::env::temp_dir().join(format!("bcsso-db-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        ScratchDb(dir)
    }
    fn url(&self) -> String {
        format!("sqlite://{}", self.0.join("g.sqlite").display())
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn event(at: i64) -> AuditEvent {
    AuditEvent {
        at,
        kind: AuditKind::SignInSucceeded,
        subject: Some(format!("u{at}")),
        ..Default::default()
    }
}

async fn rows(db: &Db) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE store_hash = $1")
        .bind(db.store_hash())
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

async fn pragma(pool: &AnyPool, name: &'static str) -> String {
    let row = sqlx::query(name).fetch_one(pool).await.unwrap();
    use sqlx::Row;
    row.try_get::<String, _>(0)
        .or_else(|_| row.try_get::<i64, _>(0).map(|n| n.to_string()))
        .unwrap()
}

#[tokio::test]
async fn a_sqlite_file_runs_in_wal_with_normal_sync_and_one_writer() {
    let dir = ScratchDb::new();
    let db = Db::connect(&dir.url(), "s").await.unwrap();
    for pool in [&db.pool, &db.writer] {
        assert_eq!(pragma(pool, "PRAGMA journal_mode").await, "wal");
        // 1 = NORMAL (the default, 2, is FULL).
        assert_eq!(pragma(pool, "PRAGMA synchronous").await, "1");
        assert_eq!(pragma(pool, "PRAGMA busy_timeout").await, "5000");
    }
    assert_eq!(db.writer.options().get_max_connections(), 1);
    // No health-check round trip to the connection's thread before each query.
    assert!(!db.pool.options().get_test_before_acquire());
    assert!(!db.writer.options().get_test_before_acquire());
    db.insert_link(&IdentityLink {
        issuer: "https://idp.test".into(),
        subject: "u1".into(),
        connection: crate::domain::ConnectionId::parse("acme").unwrap(),
        customer_id: 1,
        channel_ids: None,
        email_at_link: "a@acme.test".into(),
        created_at: 1,
        last_sign_in_at: 1,
    })
    .await
    .unwrap();
    assert!(dir.0.join("g.sqlite-wal").exists(), "no write-ahead log");
    // The mode is the file's: a second process (or a restart) finds it on.
    drop(db);
    let again = Db::connect(&dir.url(), "s").await.unwrap();
    assert_eq!(pragma(&again.pool, "PRAGMA journal_mode").await, "wal");
    assert_eq!(again.count_links().await.unwrap(), 1);
}

#[tokio::test]
async fn queued_audit_events_are_all_written_when_the_queue_closes() {
    let dir = ScratchDb::new();
    let db = Db::connect(&dir.url(), "s").await.unwrap();
    let n = 3_000;
    for at in 0..n {
        assert!(db.queue_audit(event(at)), "queue refused event {at}");
    }
    // Queuing does not wait for the database: most are still in the queue now.
    db.close_audit().await;
    assert_eq!(rows(&db).await, n);
    assert_eq!(db.audit_dropped(), 0);
    // Closed: later events are refused and counted, not silently lost.
    let closed = METRICS.audit_dropped.with_label_values(&["closed"]).get();
    assert!(!db.queue_audit(event(n)));
    assert!(matches!(
        db.record(&event(n)).await,
        Err(DbError::AuditDropped)
    ));
    assert_eq!(db.audit_dropped(), 2);
    assert!(METRICS.audit_dropped.with_label_values(&["closed"]).get() >= closed + 2);
    assert_eq!(rows(&db).await, n);
}

#[tokio::test]
async fn readers_of_the_trail_see_every_event_queued_before_them() {
    for db in tests::databases().await {
        for at in 0..50 {
            db.record(&event(at)).await.unwrap();
        }
        let events = db.audit_events(100).await.unwrap();
        assert_eq!(events.len(), 50, "{:?}", db.backend());
        assert_eq!(events[0].at, 49);
        let counts = db.sign_in_counts(0, 3600).await.unwrap();
        assert_eq!(counts.iter().map(|c| c.count).sum::<i64>(), 50);
    }
}

#[tokio::test]
async fn a_full_audit_queue_drops_and_counts_instead_of_waiting() {
    let hash = format!("t{}", uuid::Uuid::new_v4().simple());
    let db = Db::connect_with_audit_queue("sqlite::memory:", &hash, 8)
        .await
        .unwrap();
    let before = METRICS
        .audit_dropped
        .with_label_values(&["queue_full"])
        .get();
    // The database's only connection, held: the writer cannot write, as when the
    // database is down or locked.
    let held = db.pool.acquire().await.unwrap();
    let sent = 400;
    let accepted = (0..sent).filter(|&at| db.queue_audit(event(at))).count() as u64;
    // At most the queue plus the one batch the writer took before it got stuck.
    assert!(accepted <= 8 + 256, "{accepted} accepted");
    let dropped = sent as u64 - accepted;
    assert_eq!(db.audit_dropped(), dropped);
    assert!(
        METRICS
            .audit_dropped
            .with_label_values(&["queue_full"])
            .get()
            >= before + dropped,
        "drops not in the metric"
    );
    drop(held);
    db.flush_audit().await;
    assert_eq!(rows(&db).await as u64, accepted);
}
