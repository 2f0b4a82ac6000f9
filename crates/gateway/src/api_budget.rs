//! The store's API quota as a budget the coalesced first sign-ins spend before each call,
//! so a burst waits for quota instead of earning 429s (CONTRACT.md §6).
//!
//! The quota is per store, shared by every replica and every other app, and BigCommerce
//! counts it in fixed windows whose start we do not know. The budget is a sliding-window
//! log: at most `limit` calls in any `window`, which keeps every fixed window of the store
//! under `limit` too, wherever it starts. `limit` is the quota the store's headers report
//! minus a reserve for everything else (returning sign-ins that sync profiles, password
//! resets, other apps). With Redis (`server.sessions_url`) the log is one sorted set per
//! store that all replicas spend from, timed by Redis's clock; without, it is local.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Until the store has answered once: BigCommerce's Standard plan (CONTRACT.md §6).
pub const DEFAULT_QUOTA: u64 = 150;
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(30);

/// The longest single sleep: the quota may grow (headers) or the budget be dropped.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Sliding-window log in one sorted set: drop entries older than the window, then add one
/// if there is room (returns 0), else return the milliseconds until the oldest leaves.
/// Redis's own `TIME`, so replicas whose clocks differ still agree.
const TAKE_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3] .. ':' .. now .. ':' .. t[2])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"#;

pub struct ApiBudget {
    quota: AtomicU64,
    window_ms: AtomicU64,
    local: Mutex<VecDeque<Instant>>,
    shared: Option<Shared>,
}

struct Shared {
    conn: redis::aio::ConnectionManager,
    key: String,
    /// Tells this replica's entries apart from another's taken in the same millisecond.
    replica: String,
}

impl ApiBudget {
    /// A budget of this replica only.
    pub fn local() -> Self {
        Self {
            quota: AtomicU64::new(DEFAULT_QUOTA),
            window_ms: AtomicU64::new(DEFAULT_WINDOW.as_millis() as u64),
            local: Mutex::new(VecDeque::new()),
            shared: None,
        }
    }

    /// A budget every replica of the store shares, under `key` in Redis.
    pub fn shared(conn: redis::aio::ConnectionManager, key: String) -> Self {
        Self {
            shared: Some(Shared {
                conn,
                key,
                replica: uuid::Uuid::new_v4().simple().to_string(),
            }),
            ..Self::local()
        }
    }

    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Sizes the budget from the store's `X-Rate-Limit-Requests-Quota` and `-Time-Window-Ms`.
    pub fn observe(&self, quota: Option<(u64, Duration)>) {
        if let Some((quota, window)) = quota.filter(|(q, w)| *q > 0 && !w.is_zero()) {
            self.quota.store(quota, Ordering::Relaxed);
            self.window_ms
                .store(window.as_millis() as u64, Ordering::Relaxed);
        }
    }

    /// Calls the budget allows per window: the quota less a fifth kept for other callers.
    pub fn limit(&self) -> u64 {
        let quota = self.quota.load(Ordering::Relaxed);
        (quota - quota / 5).max(1)
    }

    fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms.load(Ordering::Relaxed).max(1))
    }

    /// Waits until one call fits the budget, and spends it. Never fails: a Redis outage
    /// falls back to this replica's own log (logged), which is still under the quota
    /// unless several replicas lose Redis at once.
    pub async fn acquire(&self) {
        loop {
            let wait = match self.try_take_shared().await {
                Some(wait) => wait,
                None => self.try_take_local(),
            };
            if wait.is_zero() {
                return;
            }
            tokio::time::sleep(wait.min(MAX_SLEEP)).await;
        }
    }

    /// `None`: no Redis, or Redis failed.
    async fn try_take_shared(&self) -> Option<Duration> {
        let shared = self.shared.as_ref()?;
        let result: Result<u64, redis::RedisError> = redis::cmd("EVAL")
            .arg(TAKE_SCRIPT)
            .arg(1)
            .arg(&shared.key)
            .arg(self.window().as_millis() as u64)
            .arg(self.limit())
            .arg(&shared.replica)
            .query_async(&mut shared.conn.clone())
            .await;
        match result {
            Ok(ms) => Some(Duration::from_millis(ms)),
            Err(e) => {
                tracing::warn!(error = %e, "shared API budget unavailable; using this replica's");
                None
            }
        }
    }

    fn try_take_local(&self) -> Duration {
        let (limit, window) = (self.limit() as usize, self.window());
        let now = Instant::now();
        let mut log = self.local.lock().unwrap_or_else(|p| p.into_inner());
        while log
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            log.pop_front();
        }
        if log.len() < limit {
            log.push_back(now);
            return Duration::ZERO;
        }
        log.front()
            .map(|oldest| (*oldest + window).saturating_duration_since(now))
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_millis(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn local_budget_spends_the_limit_then_waits_for_the_window() {
        let budget = ApiBudget::local();
        budget.observe(Some((10, Duration::from_secs(30))));
        assert_eq!(budget.limit(), 8);
        let start = tokio::time::Instant::now();
        for _ in 0..8 {
            budget.acquire().await;
        }
        assert!(start.elapsed() < Duration::from_millis(10));
        budget.acquire().await;
        assert!(
            start.elapsed() >= Duration::from_secs(30),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn headers_without_a_quota_keep_the_default() {
        let budget = ApiBudget::local();
        budget.observe(None);
        budget.observe(Some((0, Duration::from_secs(30))));
        assert_eq!(budget.limit(), 120);
    }
}
