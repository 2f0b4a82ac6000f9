//! Sessions in Redis, for replicas: any replica can finish a sign-in another one started.
//! (tower-sessions-redis-store targets an older tower-sessions, so this is ours: four
//! commands.) Every key is written with a TTL equal to the record's remaining life, so Redis
//! itself forgets sessions (an anonymous flood included) at their expiry, and a record is
//! at most [`MAX_RECORD_BYTES`] bytes.

use async_trait::async_trait;
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

use super::{MAX_RECORD_BYTES, check_size};

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

    /// `PING`: whether Redis answers now (readiness).
    pub async fn ping(&self) -> Result<(), redis::RedisError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
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

    /// Milliseconds the key of `id` has left (`PTTL`): negative when it has no TTL (-1) or
    /// does not exist (-2).
    pub async fn ttl_ms(&self, id: &Id) -> session_store::Result<i64> {
        redis::cmd("PTTL")
            .arg(self.key(id))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(backend)
    }

    /// SET with the record's remaining life (`PX`, never without); `only_new` adds NX (id
    /// collision check). A record already expired is deleted instead of written.
    async fn set(&self, record: &Record, only_new: bool) -> session_store::Result<bool> {
        let ttl_ms = (record.expiry_date - OffsetDateTime::now_utc()).whole_milliseconds();
        if ttl_ms <= 0 {
            self.delete(&record.id).await?;
            return Ok(true);
        }
        let value = serde_json::to_string(record)
            .map_err(|e| session_store::Error::Encode(e.to_string()))?;
        check_size(value.len())?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(&record.id))
            .arg(value)
            .arg("PX")
            .arg(u64::try_from(ttl_ms).unwrap_or(u64::MAX));
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
        let Some(value) = value else {
            return Ok(None);
        };
        // Written by us, so never this big; but a shared Redis is not ours alone.
        check_size(value.len()).map_err(|_| {
            session_store::Error::Decode(format!("session record over {MAX_RECORD_BYTES} bytes"))
        })?;
        let record: Record = serde_json::from_str(&value)
            .map_err(|e| session_store::Error::Decode(e.to_string()))?;
        // Redis's expiry is the authority, but a clock step must not revive a record.
        Ok((record.expiry_date > OffsetDateTime::now_utc()).then_some(record))
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (RedisSessionStore, String) {
        let url = std::env::var("BCSSO_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let prefix = format!("bcsso-test:{}:", uuid::Uuid::new_v4().simple());
        let store = RedisSessionStore::connect(&url, &prefix)
            .await
            .expect("a Redis server for this test");
        (store, prefix)
    }

    fn record(expires_in_ms: i64) -> Record {
        Record {
            id: Id::default(),
            data: Default::default(),
            expiry_date: OffsetDateTime::now_utc() + time::Duration::milliseconds(expires_in_ms),
        }
    }

    /// Against the machine's Redis (127.0.0.1:6379), or `BCSSO_TEST_REDIS_URL`.
    #[tokio::test]
    async fn redis_store_round_trip_expiry_and_prefixes() {
        let (store, prefix) = store().await;
        let mut r = record(60_000);
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
        let mut short = record(300);
        store.create(&mut short).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        assert!(store.load(&short.id).await.unwrap().is_none());
    }

    /// Every key carries a TTL equal to the record's remaining life (a key without one
    /// would outlive its session forever), and oversized or expired records are not written.
    #[tokio::test]
    async fn every_redis_key_expires_with_its_record_and_is_size_capped() {
        let (store, _) = store().await;
        let mut r = record(600_000);
        store.create(&mut r).await.unwrap();
        let ttl = store.ttl_ms(&r.id).await.unwrap();
        assert!((590_000..=600_000).contains(&ttl), "PTTL {ttl}");
        // A save sets it again from the record (an admin sign-in moves it).
        r.expiry_date = OffsetDateTime::now_utc() + time::Duration::seconds(30);
        store.save(&r).await.unwrap();
        let ttl = store.ttl_ms(&r.id).await.unwrap();
        assert!((20_000..=30_000).contains(&ttl), "PTTL {ttl}");

        let mut big = record(600_000);
        big.data
            .insert("k".into(), serde_json::json!("x".repeat(MAX_RECORD_BYTES)));
        assert!(matches!(
            store.create(&mut big).await,
            Err(session_store::Error::Encode(_))
        ));
        assert_eq!(store.ttl_ms(&big.id).await.unwrap(), -2, "not written");

        r.expiry_date = OffsetDateTime::now_utc() - time::Duration::seconds(1);
        store.save(&r).await.unwrap();
        assert_eq!(
            store.ttl_ms(&r.id).await.unwrap(),
            -2,
            "an expired save deletes"
        );
    }
}
