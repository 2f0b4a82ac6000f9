//! Sign-ins that outlast their request. A first sign-in in a storm may wait for API quota
//! longer than a browser should hang on one request, so its provisioning runs detached;
//! the callback waits a little for it, and if it is not done the shopper gets a page that
//! refreshes itself and picks the outcome up here when it is.
//!
//! Keyed by `(issuer, subject, channel)`: a second callback of the same person for the same
//! storefront (another tab) joins the sign-in under way rather than starting another; one
//! for another storefront runs on its own, with that channel's checks. Every browser that
//! waited gets the outcome. It is kept for [`KEEP_OUTCOME`] only when some browser was
//! sent to the waiting page and may come back for it; an outcome the callback collected in
//! time leaves with it, so the map holds runs under way and outcomes still owed, not every
//! sign-in of the last minutes. A new sign-in of the same person starts a new run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// `(issuer, subject, channel)`: a run decides the customer for one channel only.
type Key = (String, String, i64);

/// How long an outcome is kept for waiting pages that have not picked it up yet.
const KEEP_OUTCOME: Duration = Duration::from_secs(600);
/// Kept outcomes are looked over for expiry at most this often (a storm starts thousands
/// of runs; each need not scan the map).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

pub struct Waiting<T> {
    slots: Mutex<Slots<T>>,
}

struct Slots<T> {
    by_key: HashMap<Key, Arc<Slot<T>>>,
    swept_at: Instant,
}

struct Slot<T> {
    done: watch::Receiver<bool>,
    outcome: Mutex<Option<T>>,
    finished_at: Mutex<Option<Instant>>,
    /// A browser gave up waiting for it (it got the waiting page): keep the outcome for
    /// when that page comes back.
    owed: AtomicBool,
}

impl<T: Clone + Send + 'static> Default for Waiting<T> {
    fn default() -> Self {
        Self {
            slots: Mutex::new(Slots {
                by_key: HashMap::new(),
                swept_at: Instant::now(),
            }),
        }
    }
}

impl<T: Clone + Send + 'static> Waiting<T> {
    /// Runs `work` detached for `(issuer, subject, channel)`, unless a run of theirs is under
    /// way already (then `work` is dropped unrun). A finished run's outcome is replaced.
    pub fn start<F>(&self, issuer: &str, subject: &str, channel_id: i64, work: F)
    where
        F: Future<Output = T> + Send + 'static,
    {
        let key = (issuer.to_owned(), subject.to_owned(), channel_id);
        let mut slots = self.lock();
        if slots.swept_at.elapsed() >= SWEEP_EVERY {
            slots
                .by_key
                .retain(|_, s| s.finished_at().is_none_or(|at| at.elapsed() < KEEP_OUTCOME));
            slots.swept_at = Instant::now();
        }
        if slots
            .by_key
            .get(&key)
            .is_some_and(|s| s.finished_at().is_none())
        {
            return;
        }
        let (tx, rx) = watch::channel(false);
        let slot = Arc::new(Slot {
            done: rx,
            outcome: Mutex::new(None),
            finished_at: Mutex::new(None),
            owed: AtomicBool::new(false),
        });
        slots.by_key.insert(key, slot.clone());
        tokio::spawn(async move {
            let outcome = work.await;
            *slot.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
            *slot.finished_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
            let _ = tx.send(true);
        });
    }

    /// Whether `(issuer, subject, channel)` has a run here, under way or with an outcome to collect.
    pub fn has(&self, issuer: &str, subject: &str, channel_id: i64) -> bool {
        self.lock()
            .by_key
            .contains_key(&(issuer.to_owned(), subject.to_owned(), channel_id))
    }

    /// Waits up to `wait` for the run of `(issuer, subject, channel)` and returns its outcome.
    /// `None`: no run here, or not finished in time.
    pub async fn collect(
        &self,
        issuer: &str,
        subject: &str,
        channel_id: i64,
        wait: Duration,
    ) -> Option<T> {
        let key = (issuer.to_owned(), subject.to_owned(), channel_id);
        let slot = self.lock().by_key.get(&key).cloned()?;
        let mut done = slot.done.clone();
        // A dropped sender without `true` means the task panicked: nothing to collect.
        let finished = tokio::time::timeout(wait, done.wait_for(|d| *d)).await;
        if !matches!(finished, Ok(Ok(_))) {
            slot.owed.store(true, Ordering::Relaxed);
            return None;
        }
        let outcome = slot
            .outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if !slot.owed.load(Ordering::Relaxed) {
            // Collected in time and owed to no waiting page. Another tab still waiting holds
            // the slot itself; one that comes later finds the link instead.
            let mut slots = self.lock();
            if slots
                .by_key
                .get(&key)
                .is_some_and(|s| Arc::ptr_eq(s, &slot))
            {
                slots.by_key.remove(&key);
            }
        }
        outcome
    }

    /// Runs and kept outcomes (for the tests: it must not grow with every sign-in).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().by_key.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots<T>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T> Slot<T> {
    fn finished_at(&self) -> Option<Instant> {
        *self.finished_at.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_start_joins_the_first_and_every_waiter_gets_the_outcome() {
        let waiting: Waiting<u32> = Waiting::default();
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        waiting.start("i", "s", 1, async move {
            let _ = wait.await;
            1
        });
        waiting.start("i", "s", 1, async { 2 });
        // Another storefront: a run of its own.
        waiting.start("i", "s", 2, async { 3 });
        assert_eq!(
            waiting
                .collect("i", "s", 1, Duration::from_millis(20))
                .await,
            None
        );
        assert!(waiting.has("i", "s", 1));
        go.send(()).unwrap();
        assert_eq!(
            waiting.collect("i", "s", 1, Duration::from_secs(5)).await,
            Some(1)
        );
        // Every waiter gets it, until a new sign-in starts a new run.
        assert_eq!(
            waiting.collect("i", "s", 1, Duration::from_millis(1)).await,
            Some(1)
        );
        waiting.start("i", "s", 1, async { 4 });
        assert_eq!(
            waiting.collect("i", "s", 1, Duration::from_secs(5)).await,
            Some(4)
        );
        assert_eq!(
            waiting.collect("i", "s", 2, Duration::from_secs(5)).await,
            Some(3)
        );
    }

    #[tokio::test]
    async fn an_outcome_collected_in_time_is_not_kept() {
        let waiting: Waiting<u32> = Waiting::default();
        for i in 0..1000 {
            let subject = format!("s{i}");
            waiting.start("i", &subject, 1, async move { i });
            assert_eq!(
                waiting
                    .collect("i", &subject, 1, Duration::from_secs(5))
                    .await,
                Some(i)
            );
        }
        assert_eq!(waiting.len(), 0, "returning sign-ins must not pile up");
        // One that the callback gave up on is kept for its waiting page, and every visit
        // of that page gets it.
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        waiting.start("i", "slow", 1, async move {
            let _ = wait.await;
            7
        });
        assert_eq!(
            waiting
                .collect("i", "slow", 1, Duration::from_millis(10))
                .await,
            None
        );
        go.send(()).unwrap();
        for _ in 0..2 {
            assert_eq!(
                waiting
                    .collect("i", "slow", 1, Duration::from_secs(5))
                    .await,
                Some(7)
            );
        }
        assert_eq!(waiting.len(), 1);
    }
}
