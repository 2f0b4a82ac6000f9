//! Rate limits (SECURITY.md rules 17 and 22), all keyed by the client IP that
//! [`crate::client_ip`] resolved, IPv6 clients by their /64 (one host owns a whole /64):
//!
//! - sign-in requests (`/login`, the callbacks, admin sign-in) per client;
//! - sign-in requests per connection, all clients together, so no one drives a flood of
//!   sign-ins at one company's IdP through us;
//! - failed admin sign-ins and admin API calls per client: a guesser gets a few tries a
//!   minute, then nothing, whatever the token.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::AppState;
use crate::client_ip::ClientIp;
use crate::config::ServerConfig;
use crate::error::Error;

/// The limiters of one gateway process.
pub struct Limits {
    clients: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    connections: Option<Arc<DefaultKeyedRateLimiter<String>>>,
    admin_failures: Option<Arc<FailureBudget>>,
}

impl Limits {
    /// The limits `[server]` sets (0 = off). Idle keys are forgotten every minute, or the
    /// maps would grow with every address ever seen.
    pub fn new(server: &ServerConfig) -> Limits {
        let limits = Limits {
            clients: keyed(server.rate_limit_per_minute, server.rate_limit_burst),
            connections: keyed(
                server.connection_rate_limit_per_minute,
                server.connection_rate_limit_per_minute,
            ),
            admin_failures: NonZeroU32::new(server.admin_failures_per_minute)
                .map(|n| Arc::new(FailureBudget::per_minute(n))),
        };
        limits.spawn_sweeper();
        limits
    }

    /// One sign-in request from `ip`.
    pub fn sign_in_request(&self, ip: Option<IpAddr>) -> Result<(), Error> {
        check(self.clients.as_deref(), &key(ip))
            .map_err(|retry_after| Error::TooManyRequests { retry_after })
    }

    /// One sign-in request (start or callback) for connection `id`.
    pub fn connection_request(&self, id: &str) -> Result<(), Error> {
        check(self.connections.as_deref(), &id.to_owned())
            .map_err(|retry_after| Error::ConnectionRateLimited { retry_after })
    }

    /// Refuses a client that has used up its failed admin attempts; checked before the
    /// token is even looked at, so a locked-out guesser learns nothing.
    pub fn admin_attempt(&self, ip: Option<IpAddr>) -> Result<(), Error> {
        match &self.admin_failures {
            Some(budget) => {
                budget
                    .check(key(ip), Instant::now())
                    .map_err(|wait| Error::TooManyRequests {
                        retry_after: whole_seconds(wait),
                    })
            }
            None => Ok(()),
        }
    }

    /// Counts a failed admin attempt (wrong token, refused admin SSO) against `ip`.
    pub fn admin_failed(&self, ip: Option<IpAddr>) {
        if let Some(budget) = &self.admin_failures {
            budget.fail(key(ip), Instant::now());
        }
    }

    fn spawn_sweeper(&self) {
        let clients = self.clients.as_ref().map(Arc::downgrade);
        let connections = self.connections.as_ref().map(Arc::downgrade);
        let admin = self.admin_failures.as_ref().map(Arc::downgrade);
        if clients.is_none() && connections.is_none() && admin.is_none() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                // Ends with the gateway that owns the limiters.
                let mut alive = false;
                if let Some(l) = clients.as_ref().and_then(Weak::upgrade) {
                    l.retain_recent();
                    alive = true;
                }
                if let Some(l) = connections.as_ref().and_then(Weak::upgrade) {
                    l.retain_recent();
                    alive = true;
                }
                if let Some(b) = admin.as_ref().and_then(Weak::upgrade) {
                    b.sweep(Instant::now());
                    alive = true;
                }
                if !alive {
                    break;
                }
            }
        });
    }
}

/// Middleware of the sign-in routes: one request of the client's budget.
pub async fn sign_in_requests(
    State(app): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    req: Request,
    next: Next,
) -> Response {
    match app.limits.sign_in_request(ip) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// Middleware of admin sign-in and the admin API: a client out of failed attempts is
/// refused before anything else happens.
pub async fn admin_attempts(
    State(app): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    req: Request,
    next: Next,
) -> Response {
    match app.limits.admin_attempt(ip) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// The bucket of a client: its IPv4 address, or its IPv6 /64.
pub fn key(ip: Option<IpAddr>) -> IpAddr {
    match ip.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V6(v6)) => {
            let prefix = u128::from(v6) & !(u128::from(u64::MAX));
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        Some(v4) => v4,
        // Without any address (an in-process test service) all requests share one bucket
        // rather than failing.
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    }
}

fn keyed<K: std::hash::Hash + Eq + Clone>(
    per_minute: u32,
    burst: u32,
) -> Option<Arc<DefaultKeyedRateLimiter<K>>> {
    let per_minute = NonZeroU32::new(per_minute)?;
    let period = Duration::from_secs(60) / per_minute.get();
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    let quota = Quota::with_period(period)?.allow_burst(burst);
    Some(Arc::new(DefaultKeyedRateLimiter::keyed(quota)))
}

/// `Err(seconds to wait)` when the key's budget is spent.
fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: Option<&DefaultKeyedRateLimiter<K>>,
    key: &K,
) -> Result<(), u64> {
    let Some(limiter) = limiter else {
        return Ok(());
    };
    limiter
        .check_key(key)
        .map_err(|not_until| whole_seconds(not_until.wait_time_from(limiter.clock().now())))
}

/// Rounded up, and at least 1: "try again in 0 seconds" is not a real wait.
fn whole_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// Failures per client as a leaky bucket (GCRA): `burst` failures at once, then one more
/// each `interval`. Unlike `governor`, it can be asked without spending anything, so only
/// failures cost and a locked-out client is refused before it tries.
struct FailureBudget {
    interval: Duration,
    burst: u32,
    /// Per client: when its bucket will be empty again ("theoretical arrival time").
    empty_at: Mutex<HashMap<IpAddr, Instant>>,
}

impl FailureBudget {
    fn per_minute(n: NonZeroU32) -> Self {
        FailureBudget {
            interval: Duration::from_secs(60) / n.get(),
            burst: n.get(),
            empty_at: Mutex::new(HashMap::new()),
        }
    }

    fn check(&self, key: IpAddr, now: Instant) -> Result<(), Duration> {
        let map = self.empty_at.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(empty_at) = map.get(&key) else {
            return Ok(());
        };
        let tolerance = self.interval * (self.burst - 1);
        let ahead = empty_at.saturating_duration_since(now);
        if ahead > tolerance {
            Err(ahead - tolerance)
        } else {
            Ok(())
        }
    }

    fn fail(&self, key: IpAddr, now: Instant) {
        let mut map = self.empty_at.lock().unwrap_or_else(PoisonError::into_inner);
        let empty_at = map.entry(key).or_insert(now);
        *empty_at = (*empty_at).max(now) + self.interval;
    }

    fn sweep(&self, now: Instant) {
        let mut map = self.empty_at.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, empty_at| *empty_at > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let k = |s: &str| key(Some(s.parse().unwrap()));
        assert_eq!(k("2001:db8:1:2::1"), k("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
        assert_eq!(k("::ffff:192.0.2.1"), k("192.0.2.1"));
        assert_ne!(k("192.0.2.1"), k("192.0.2.2"));
        assert_eq!(key(None), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }

    #[test]
    fn waits_are_whole_seconds_and_never_zero() {
        assert_eq!(whole_seconds(Duration::ZERO), 1);
        assert_eq!(whole_seconds(Duration::from_millis(100)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1001)), 2);
        assert_eq!(whole_seconds(Duration::from_secs(60)), 60);
    }

    #[test]
    fn failures_run_out_then_come_back_one_by_one() {
        let budget = FailureBudget::per_minute(NonZeroU32::new(10).unwrap());
        let (a, b) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..10 {
            assert!(budget.check(a, t0).is_ok());
            budget.fail(a, t0);
        }
        assert_eq!(budget.check(a, t0), Err(Duration::from_secs(6)));
        assert!(
            budget.check(b, t0).is_ok(),
            "another client is not affected"
        );
        let later = t0 + Duration::from_secs(6);
        assert!(budget.check(a, later).is_ok());
        budget.fail(a, later);
        assert!(budget.check(a, later).is_err());
        budget.sweep(t0 + Duration::from_secs(66));
        assert!(budget.empty_at.lock().unwrap().is_empty());
    }
}
