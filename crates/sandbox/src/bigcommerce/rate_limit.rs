//! Fixed-window rate limiting (CONTRACT.md §6).

use std::time::{Duration, Instant};

/// Fixed-window quota (CONTRACT.md §6): one unit per request, refreshed each window.
pub struct RateLimiter {
    pub quota: u32,
    pub window: Duration,
    window_start: Instant,
    used: u32,
}

/// What the four `X-Rate-Limit-*` headers report for one request.
#[derive(Debug, Clone, Copy)]
pub struct RateSnapshot {
    pub allowed: bool,
    pub quota: u32,
    pub left: u32,
    pub window_ms: u128,
    pub reset_ms: u128,
}

impl RateLimiter {
    pub fn new(quota: u32, window: Duration) -> Self {
        Self {
            quota,
            window,
            window_start: Instant::now(),
            used: 0,
        }
    }

    pub fn reset(&mut self, quota: u32, window: Duration) {
        *self = Self::new(quota, window);
    }

    /// Report the window state; when `consume` and quota is left, use one unit.
    /// `allowed` is false only when a unit was wanted and none was left.
    pub fn check(&mut self, now: Instant, consume: bool) -> RateSnapshot {
        if now.duration_since(self.window_start) >= self.window {
            self.window_start = now;
            self.used = 0;
        }
        let allowed = !consume || self.used < self.quota;
        if consume && allowed {
            self.used += 1;
        }
        let elapsed = now.duration_since(self.window_start);
        RateSnapshot {
            allowed,
            quota: self.quota,
            left: self.quota.saturating_sub(self.used),
            window_ms: self.window.as_millis(),
            reset_ms: self.window.saturating_sub(elapsed).as_millis(),
        }
    }
}
