//! Session stores: bounded in memory (one process), or Redis (replicas).
//!
//! Sessions are created by anonymous requests (`GET /login`, the admin sign-in page), so
//! both stores are bounded: a record is at most [`MAX_RECORD_BYTES`] serialized, it lives
//! no longer than its expiry (Redis: a TTL on every key), and the in-memory store holds at
//! most [`MAX_SESSIONS`] records and [`MAX_SESSION_BYTES`] of data, dropping the oldest first.

mod memory;
mod redis_store;

use std::collections::HashMap;

use async_trait::async_trait;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

pub use memory::MemorySessionStore;
pub use redis_store::RedisSessionStore;

/// Live sessions kept at most per in-memory store (shoppers' and admins' each have one);
/// past it, the ones closest to expiry go first.
pub const MAX_SESSIONS: usize = 100_000;

/// Serialized session data kept at most per in-memory store; past it, the same eviction.
/// Measured (`pending::tests::bytes_per_session`, release build): a `/login` session with
/// one pending login and the longest `redirect_to` is 0.9 KB serialized, ~1.1 KB resident;
/// with the most it keeps (3), 2.7 KB and ~2.9 KB. So this, not the count, bounds a flood:
/// the shoppers' store stops at ~85 MB resident (75,000 sessions of one pending login).
pub const MAX_SESSION_BYTES: usize = 64 * 1024 * 1024;

/// The in-memory admin store's caps.
pub const MAX_ADMIN_SESSIONS: usize = 10_000;
pub const MAX_ADMIN_SESSION_BYTES: usize = 8 * 1024 * 1024;

/// Largest session record accepted, serialized. A shopper's holds at most
/// [`crate::pending::MAX_PENDING`] pending logins of under 1 KB each; an admin's, the admin
/// and a pending sign-in. Anything bigger is refused rather than stored.
pub const MAX_RECORD_BYTES: usize = 8 * 1024;

/// A record's data as JSON, refused past [`MAX_RECORD_BYTES`].
fn encode_data(data: &HashMap<String, serde_json::Value>) -> session_store::Result<Box<[u8]>> {
    let bytes =
        serde_json::to_vec(data).map_err(|e| session_store::Error::Encode(e.to_string()))?;
    check_size(bytes.len())?;
    Ok(bytes.into_boxed_slice())
}

fn check_size(len: usize) -> session_store::Result<()> {
    if len > MAX_RECORD_BYTES {
        return Err(session_store::Error::Encode(format!(
            "session record of {len} bytes is over the {MAX_RECORD_BYTES}-byte limit"
        )));
    }
    Ok(())
}

/// The session store in use: in memory (one process), or Redis (replicas).
#[derive(Clone, Debug)]
pub enum SessionBackend {
    Memory(MemorySessionStore),
    Redis(RedisSessionStore),
}

impl SessionBackend {
    /// Whether the store answers: always for memory; `PING` for Redis.
    pub async fn ping(&self) -> Result<(), String> {
        match self {
            SessionBackend::Memory(_) => Ok(()),
            // Redis errors name the host, never the password.
            SessionBackend::Redis(r) => r.ping().await.map_err(|e| e.to_string()),
        }
    }

    /// A separate store for admin sessions: its own map, or its own key prefix. Few admins
    /// sign in, so the map is smaller; an anonymous flood of the sign-in page evicts its own
    /// 10-minute sessions first, not the signed-in admins' later-expiring ones.
    pub fn for_admins(&self) -> SessionBackend {
        match self {
            SessionBackend::Memory(_) => SessionBackend::Memory(MemorySessionStore::with_limits(
                MAX_ADMIN_SESSIONS,
                MAX_ADMIN_SESSION_BYTES,
            )),
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
