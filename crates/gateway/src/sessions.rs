//! The embedded session store: in memory, like tower-sessions' `MemoryStore`, but expired
//! sessions are swept and the number of live sessions is capped. Every `GET /login` from a
//! new browser creates a session, so a store that only filters expired records on load
//! (as `MemoryStore` does) grows without bound under a crawler or an attacker.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio::sync::Mutex;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

/// Live sessions kept at most; past it, the ones closest to expiry go first. A pending
/// login is a few hundred bytes, so this bounds the store to a few tens of MB.
pub const MAX_SESSIONS: usize = 100_000;

#[derive(Clone, Debug)]
pub struct MemorySessionStore {
    inner: Arc<Mutex<Inner>>,
    max: usize,
}

#[derive(Debug, Default)]
struct Inner {
    records: HashMap<Id, Record>,
    writes_since_sweep: usize,
}

impl Default for MemorySessionStore {
    fn default() -> Self {
        Self::with_capacity(MAX_SESSIONS)
    }
}

impl MemorySessionStore {
    pub fn with_capacity(max: usize) -> Self {
        Self {
            inner: Arc::default(),
            max: max.max(1),
        }
    }

    pub async fn len(&self) -> usize {
        self.inner.lock().await.records.len()
    }

    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }

    fn sweep(inner: &mut Inner, max: usize) {
        let now = OffsetDateTime::now_utc();
        inner.records.retain(|_, r| r.expiry_date > now);
        inner.writes_since_sweep = 0;
        if inner.records.len() >= max {
            let mut by_expiry: Vec<(OffsetDateTime, Id)> = inner
                .records
                .iter()
                .map(|(id, r)| (r.expiry_date, *id))
                .collect();
            by_expiry.sort_by_key(|(expiry, _)| *expiry);
            let excess = inner.records.len() + 1 - max;
            for (_, id) in by_expiry.into_iter().take(excess) {
                inner.records.remove(&id);
            }
            tracing::warn!(
                max,
                "session store full: dropped the sessions closest to expiry"
            );
        }
    }

    async fn insert(&self, record: &mut Record, new: bool) {
        let mut inner = self.inner.lock().await;
        while new && inner.records.contains_key(&record.id) {
            record.id = Id::default();
        }
        inner.writes_since_sweep += 1;
        // Sweeping is O(n): do it every so often, and whenever the cap is reached.
        if inner.writes_since_sweep >= 1024 || inner.records.len() >= self.max {
            Self::sweep(&mut inner, self.max);
        }
        inner.records.insert(record.id, record.clone());
    }
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        self.insert(record, true).await;
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.insert(&mut record.clone(), false).await;
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let now = OffsetDateTime::now_utc();
        Ok(self
            .inner
            .lock()
            .await
            .records
            .get(id)
            .filter(|r| r.expiry_date > now)
            .cloned())
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.inner.lock().await.records.remove(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(expires_in_secs: i64) -> Record {
        Record {
            id: Id::default(),
            data: Default::default(),
            expiry_date: OffsetDateTime::now_utc() + time::Duration::seconds(expires_in_secs),
        }
    }

    #[tokio::test]
    async fn expired_sessions_are_not_loaded_and_are_swept() {
        let store = MemorySessionStore::with_capacity(3);
        let mut old = record(-10);
        store.create(&mut old).await.unwrap();
        assert!(store.load(&old.id).await.unwrap().is_none());
        for _ in 0..3 {
            store.create(&mut record(600)).await.unwrap();
        }
        // The expired one was swept to make room; the cap holds.
        assert_eq!(store.len().await, 3);
    }

    #[tokio::test]
    async fn the_cap_drops_the_sessions_closest_to_expiry() {
        let store = MemorySessionStore::with_capacity(2);
        let mut soon = record(60);
        let mut later = record(600);
        let mut newest = record(900);
        store.create(&mut soon).await.unwrap();
        store.create(&mut later).await.unwrap();
        store.create(&mut newest).await.unwrap();
        assert_eq!(store.len().await, 2);
        assert!(store.load(&soon.id).await.unwrap().is_none());
        assert!(store.load(&later.id).await.unwrap().is_some());
        assert!(store.load(&newest.id).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn save_load_delete() {
        let store = MemorySessionStore::default();
        let mut r = record(600);
        store.create(&mut r).await.unwrap();
        r.data.insert("k".into(), serde_json::json!(1));
        store.save(&r).await.unwrap();
        assert_eq!(store.load(&r.id).await.unwrap().unwrap().data["k"], 1);
        store.delete(&r.id).await.unwrap();
        assert!(store.is_empty().await);
    }
}

// ---------------------------------------------------------------------------------------
// Redis, for replicas: any replica can finish a sign-in another one started.
// (tower-sessions-redis-store targets an older tower-sessions, so this is ours: four
// commands.)

/// Sessions in Redis under `<prefix><id>`, expiring with the session.
#[derive(Clone)]
pub struct RedisSessionStore {
    conn: redis::aio::ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for RedisSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSessionStore")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl RedisSessionStore {
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let conn = redis::aio::ConnectionManager::new(client).await?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
        })
    }

    /// The same connection under another key prefix (admin sessions apart from shoppers').
    pub fn with_prefix(&self, prefix: &str) -> Self {
        Self {
            conn: self.conn.clone(),
            prefix: prefix.to_owned(),
        }
    }

    fn key(&self, id: &Id) -> String {
        format!("{}{id}", self.prefix)
    }

    /// SET with the record's remaining life; `only_new` adds NX (id collision check).
    async fn set(&self, record: &Record, only_new: bool) -> session_store::Result<bool> {
        let ttl_ms = (record.expiry_date - OffsetDateTime::now_utc())
            .whole_milliseconds()
            .max(1);
        let value = serde_json::to_string(record)
            .map_err(|e| session_store::Error::Encode(e.to_string()))?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(&record.id))
            .arg(value)
            .arg("PX")
            .arg(ttl_ms as u64);
        if only_new {
            cmd.arg("NX");
        }
        let reply: Option<String> = cmd
            .query_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        Ok(reply.is_some())
    }
}

fn backend(e: redis::RedisError) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

#[async_trait]
impl SessionStore for RedisSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        while !self.set(record, true).await? {
            record.id = Id::default();
        }
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.set(record, false).await.map(|_| ())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let value: Option<String> = redis::cmd("GET")
            .arg(self.key(id))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        value
            .map(|v| {
                serde_json::from_str(&v).map_err(|e| session_store::Error::Decode(e.to_string()))
            })
            .transpose()
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        let _: i64 = redis::cmd("DEL")
            .arg(self.key(id))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        Ok(())
    }
}

/// The session store in use: in memory (one process), or Redis (replicas).
#[derive(Clone, Debug)]
pub enum SessionBackend {
    Memory(MemorySessionStore),
    Redis(RedisSessionStore),
}

impl SessionBackend {
    /// A separate store for admin sessions: its own map, or its own key prefix.
    pub fn for_admins(&self) -> SessionBackend {
        match self {
            SessionBackend::Memory(_) => SessionBackend::Memory(MemorySessionStore::default()),
            SessionBackend::Redis(r) => SessionBackend::Redis(r.with_prefix("bcsso:admin:")),
        }
    }
}

#[async_trait]
impl SessionStore for SessionBackend {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            SessionBackend::Memory(s) => s.create(record).await,
            SessionBackend::Redis(s) => s.create(record).await,
        }
    }
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            SessionBackend::Memory(s) => s.save(record).await,
            SessionBackend::Redis(s) => s.save(record).await,
        }
    }
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            SessionBackend::Memory(s) => s.load(id).await,
            SessionBackend::Redis(s) => s.load(id).await,
        }
    }
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            SessionBackend::Memory(s) => s.delete(id).await,
            SessionBackend::Redis(s) => s.delete(id).await,
        }
    }
}

#[cfg(test)]
mod redis_tests {
    use super::*;

    /// Against the machine's Redis (127.0.0.1:6379), or `BCSSO_TEST_REDIS_URL`.
    #[tokio::test]
    async fn redis_store_round_trip_expiry_and_prefixes() {
        let url = std::env::var("BCSSO_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let prefix = format!("bcsso-test:{}:", uuid::Uuid::new_v4().simple());
        let store = RedisSessionStore::connect(&url, &prefix)
            .await
            .expect("a Redis server for this test");
        let mut r = Record {
            id: Id::default(),
            data: Default::default(),
            expiry_date: OffsetDateTime::now_utc() + time::Duration::seconds(60),
        };
        store.create(&mut r).await.unwrap();
        r.data.insert("k".into(), serde_json::json!("v"));
        store.save(&r).await.unwrap();
        assert_eq!(store.load(&r.id).await.unwrap().unwrap().data["k"], "v");
        // Another prefix does not see it.
        assert!(
            store
                .with_prefix(&format!("{prefix}admin:"))
                .load(&r.id)
                .await
                .unwrap()
                .is_none()
        );
        store.delete(&r.id).await.unwrap();
        assert!(store.load(&r.id).await.unwrap().is_none());
        // Redis expires it with the session.
        let mut short = Record {
            id: Id::default(),
            data: Default::default(),
            expiry_date: OffsetDateTime::now_utc() + time::Duration::milliseconds(300),
        };
        store.create(&mut short).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        assert!(store.load(&short.id).await.unwrap().is_none());
    }
}
