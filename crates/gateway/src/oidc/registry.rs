//! Provider metadata and JWKS, cached per connection with a TTL.
//!
//! The `openidconnect` crate fetches the JWKS once, at discovery. If we kept that copy, a key
//! rotation at the IdP would break every login until restart (kellnr PR #1266). So we keep
//! metadata and keys here, refresh them after a TTL, and refetch the JWKS once, throttled,
//! when a verified code exchange brings an ID token signed with a key we do not know
//! (SECURITY.md rule 10; mod_auth_openidc's forced-refresh throttle).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::discovery::{discover, fetch_jwks};
use super::{IdpHttp, OidcError, ProviderMetadata};
use crate::clock::Clock;
use crate::config::Connection;
use crate::domain::ConnectionId;

/// How long discovery metadata and keys are trusted before they are fetched again.
pub const METADATA_TTL: Duration = Duration::from_secs(3600);
/// At most one forced JWKS refetch per connection in this interval.
pub const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// After a failed discovery the IdP is not asked again for this long; each further failure
/// in a row doubles it, up to [`MAX_BACKOFF`] (SECURITY.md rule 23). Meanwhile sign-ins use
/// the expired copy if there is one, and otherwise get `idp_unavailable` at once, so
/// anonymous `/login` requests cannot make the gateway hammer an IdP that is down (or
/// repeat a fetch the checks refuse).
pub const FIRST_BACKOFF: Duration = Duration::from_secs(30);
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// An expired copy older than this is not used any more: the refresh error is returned.
pub const MAX_STALE: Duration = Duration::from_secs(24 * 3600);

pub struct Registry {
    http: IdpHttp,
    ttl: Duration,
    /// Times the back-off; tests move it instead of sleeping.
    clock: Clock,
    /// One slot per connection, created on first use.
    providers: std::sync::Mutex<HashMap<ConnectionId, Arc<Slot>>>,
}

#[derive(Default)]
struct Slot {
    state: std::sync::Mutex<State>,
    /// Held by the one request that fetches for this connection. While it refreshes
    /// expired metadata, other sign-ins use the expired copy instead of queueing behind a
    /// slow IdP; only when nothing is cached yet do they wait for it.
    fetching: Mutex<()>,
}

#[derive(Clone, Default)]
struct State {
    cached: Option<Cached>,
    failure: Option<Failure>,
}

#[derive(Clone)]
struct Cached {
    metadata: Arc<ProviderMetadata>,
    fetched_at: Instant,
    last_forced_jwks: Option<Instant>,
}

/// The last discoveries failed: how many in a row, and when the IdP may be asked again.
#[derive(Clone, Copy)]
struct Failure {
    in_a_row: u32,
    retry_at: i64,
    cause: &'static str,
}

/// The pause after `in_a_row` failed discoveries (1 = the first).
pub fn backoff(in_a_row: u32) -> Duration {
    let doublings = in_a_row.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

impl Slot {
    fn get(&self) -> State {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// What a sign-in gets without asking the IdP, if anything.
enum Answer {
    Use(Arc<ProviderMetadata>),
    Refuse(OidcError),
    Fetch,
}

impl Registry {
    pub fn new(http: reqwest::Client) -> Self {
        Self::with_ttl(http, METADATA_TTL)
    }

    pub fn with_ttl(http: reqwest::Client, ttl: Duration) -> Self {
        Self {
            http: IdpHttp::new(http),
            ttl,
            clock: Clock::system(),
            providers: std::sync::Mutex::default(),
        }
    }

    /// Times the back-off with `clock` (the application's, which tests move).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Forgets what was cached for a connection, failures included (its settings changed).
    pub fn forget(&self, id: &ConnectionId) {
        self.providers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// The client for every call to an IdP: capped bodies, no redirects.
    pub fn http(&self) -> &IdpHttp {
        &self.http
    }

    /// Cached metadata (with keys), discovered on first use and after the TTL. One request
    /// per connection fetches; meanwhile the others get the expired copy if there is one.
    /// After a failure the IdP is left alone for the back-off ([`backoff`]).
    pub async fn metadata(&self, conn: &Connection) -> Result<Arc<ProviderMetadata>, OidcError> {
        let slot = self.slot(conn);
        match self.without_fetching(&slot.get()) {
            Answer::Use(m) => return Ok(m),
            Answer::Refuse(e) => return Err(e),
            Answer::Fetch => {}
        }
        let _fetching = match (slot.get().cached, slot.fetching.try_lock()) {
            (_, Ok(guard)) => guard,
            (Some(stale), Err(_)) => return Ok(stale.metadata),
            (None, Err(_)) => slot.fetching.lock().await,
        };
        // Whoever held the lock before us may have fetched, or failed, already.
        let state = slot.get();
        match self.without_fetching(&state) {
            Answer::Use(m) => return Ok(m),
            Answer::Refuse(e) => return Err(e),
            Answer::Fetch => {}
        }
        match discover(&self.http, conn).await {
            Ok(m) => {
                let metadata = Arc::new(m);
                let last_forced_jwks = state.cached.and_then(|c| c.last_forced_jwks);
                slot.update(|s| {
                    s.cached = Some(Cached {
                        metadata: metadata.clone(),
                        fetched_at: Instant::now(),
                        last_forced_jwks,
                    });
                    s.failure = None;
                });
                Ok(metadata)
            }
            Err(e) => {
                let in_a_row = state.failure.map_or(0, |f| f.in_a_row) + 1;
                let pause = backoff(in_a_row);
                slot.update(|s| {
                    s.failure = Some(Failure {
                        in_a_row,
                        retry_at: self.clock.now() + pause.as_secs() as i64,
                        cause: e.code(),
                    })
                });
                match state.cached.filter(|c| c.fetched_at.elapsed() < MAX_STALE) {
                    Some(stale) => {
                        tracing::warn!(connection = %conn.id, reason = e.code(), error = %e, retry_in_secs = pause.as_secs(), "IdP metadata refresh failed; using the expired copy");
                        Ok(stale.metadata)
                    }
                    None => {
                        tracing::warn!(connection = %conn.id, reason = e.code(), error = %e, retry_in_secs = pause.as_secs(), "IdP discovery failed; backing off");
                        Err(e)
                    }
                }
            }
        }
    }

    /// The answer from what the slot holds: fresh metadata; during a back-off the expired
    /// copy or the refusal; otherwise a fetch is due.
    fn without_fetching(&self, state: &State) -> Answer {
        if let Some(c) = state
            .cached
            .as_ref()
            .filter(|c| c.fetched_at.elapsed() < self.ttl)
        {
            return Answer::Use(c.metadata.clone());
        }
        let now = self.clock.now();
        let Some(failure) = state.failure.filter(|f| now < f.retry_at) else {
            return Answer::Fetch;
        };
        match state
            .cached
            .as_ref()
            .filter(|c| c.fetched_at.elapsed() < MAX_STALE)
        {
            Some(stale) => Answer::Use(stale.metadata.clone()),
            None => Answer::Refuse(OidcError::Unavailable {
                cause: failure.cause,
                retry_in_secs: (failure.retry_at - now).max(1) as u64,
            }),
        }
    }

    /// Refetches the JWKS because an ID token named a key we do not have. Returns the new
    /// metadata, or `None` when a refetch happened too recently (the caller then fails the
    /// login instead of letting a bogus `kid` hammer the IdP).
    pub async fn refetch_jwks(
        &self,
        conn: &Connection,
    ) -> Result<Option<Arc<ProviderMetadata>>, OidcError> {
        let slot = self.slot(conn);
        let _fetching = slot.fetching.lock().await;
        let Some(mut current) = slot.get().cached else {
            return Ok(None);
        };
        if current
            .last_forced_jwks
            .is_some_and(|t| t.elapsed() < JWKS_REFETCH_INTERVAL)
        {
            tracing::warn!(connection = %conn.id, "JWKS refetch throttled");
            return Ok(None);
        }
        current.last_forced_jwks = Some(Instant::now());
        // The throttle counts attempts, failed ones too.
        let attempt = current.clone();
        slot.update(|s| s.cached = Some(attempt));
        // jwks_uri passed the URL checks when this metadata was discovered.
        let jwks = fetch_jwks(&self.http, current.metadata.jwks_uri()).await?;
        let updated = Arc::new((*current.metadata).clone().set_jwks(jwks));
        current.metadata = updated.clone();
        slot.update(|s| s.cached = Some(current));
        crate::metrics::METRICS.jwks_refetches.inc();
        tracing::info!(connection = %conn.id, "JWKS refetched for an unknown key id");
        Ok(Some(updated))
    }

    fn slot(&self, conn: &Connection) -> Arc<Slot> {
        self.providers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(conn.id.clone())
            .or_default()
            .clone()
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
