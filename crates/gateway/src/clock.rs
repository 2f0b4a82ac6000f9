//! The gateway's clock, handed to the parts that read time so tests can move it
//! (pending-login expiry, ID-token leeway) without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Unix seconds from the system clock, plus a shift that only tests change.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    shift: Arc<AtomicI64>,
}

impl Clock {
    pub fn system() -> Self {
        Self::default()
    }

    pub fn now(&self) -> i64 {
        system_now() + self.shift.load(Ordering::Relaxed)
    }

    /// Unix milliseconds, shifted like [`Clock::now`].
    pub fn now_ms(&self) -> i64 {
        system_now_ms() + self.shift.load(Ordering::Relaxed) * 1000
    }

    /// Moves this clock (and every clone of it) forward by `secs`.
    pub fn advance(&self, secs: i64) {
        self.shift.fetch_add(secs, Ordering::Relaxed);
    }
}

pub fn system_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub fn system_now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}
