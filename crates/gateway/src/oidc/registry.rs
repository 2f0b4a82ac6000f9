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
mod tests {
    use super::*;
    use bc_sso_sandbox::idp::{DevIdp, DevIdpConfig, demo_users};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use tokio::sync::Semaphore;
    use url::Url;

    /// The dev IdP behind a gate: while `hold` is set, discovery requests wait for a
    /// permit of `release`, as a slow or hanging IdP would make them.
    struct GatedIdp {
        hold: Arc<AtomicBool>,
        /// While set, discovery answers 500.
        fail: Arc<AtomicBool>,
        release: Arc<Semaphore>,
        discoveries: Arc<AtomicUsize>,
        conn: Connection,
    }

    async fn gated_idp() -> GatedIdp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let idp = DevIdp::new(DevIdpConfig {
            issuer: Url::parse(&issuer).unwrap(),
            clients: Vec::new(),
            users: demo_users(),
            email_in_id_token: true,
            send_iss_parameter: true,
        });
        let fail = Arc::new(AtomicBool::new(false));
        let (hold, release, discoveries) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(Semaphore::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let gate = {
            let (hold, release, discoveries, fail) = (
                hold.clone(),
                release.clone(),
                discoveries.clone(),
                fail.clone(),
            );
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let (hold, release, discoveries, fail) = (
                    hold.clone(),
                    release.clone(),
                    discoveries.clone(),
                    fail.clone(),
                );
                async move {
                    if req.uri().path().ends_with("openid-configuration") {
                        discoveries.fetch_add(1, Ordering::SeqCst);
                        if hold.load(Ordering::SeqCst) {
                            // Permits return when dropped: one release lets every waiter by.
                            let _ = release.acquire().await;
                        }
                        if fail.load(Ordering::SeqCst) {
                            use axum::response::IntoResponse;
                            return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
                        }
                    }
                    next.run(req).await
                }
            }
        };
        let app = idp.router().layer(axum::middleware::from_fn(gate));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let raw: crate::config::RawConnection = toml::from_str(&format!(
            "id = \"acme\"\nissuer = \"{issuer}\"\nclient_id = \"c\"\nclient_secret = \"s\"\nallowed_email_domains = [\"acme.test\"]"
        ))
        .unwrap();
        let mut errors = Vec::new();
        let conn = crate::config::validate_connection(0, raw, &mut errors).unwrap();
        GatedIdp {
            hold,
            fail,
            release,
            discoveries,
            conn,
        }
    }

    /// Rule 10: metadata past its TTL is refreshed by one request; the others keep signing
    /// in with the expired copy instead of queueing behind a slow IdP.
    #[tokio::test]
    async fn a_slow_refresh_does_not_hold_up_other_sign_ins() {
        let idp = gated_idp().await;
        let registry = Arc::new(Registry::with_ttl(
            crate::http_client(Duration::from_secs(30)).unwrap(),
            Duration::ZERO,
        ));
        registry.metadata(&idp.conn).await.unwrap();
        assert_eq!(idp.discoveries.load(Ordering::SeqCst), 1);

        // The IdP now hangs. The first request past the TTL starts the refresh and waits.
        idp.hold.store(true, Ordering::SeqCst);
        let refreshing = {
            let (registry, conn) = (registry.clone(), idp.conn.clone());
            tokio::spawn(async move { registry.metadata(&conn).await })
        };
        while idp.discoveries.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        // Others are answered from the expired copy at once (they would wait forever here if
        // they queued behind the refresh), and start no second fetch.
        for _ in 0..3 {
            let answer =
                tokio::time::timeout(Duration::from_secs(10), registry.metadata(&idp.conn)).await;
            assert!(answer.expect("served while refreshing").is_ok());
        }
        assert_eq!(idp.discoveries.load(Ordering::SeqCst), 2);
        assert!(!refreshing.is_finished());
        idp.hold.store(false, Ordering::SeqCst);
        idp.release.add_permits(1);
        refreshing.await.unwrap().unwrap();
    }

    /// With nothing cached there is nothing to serve: concurrent first sign-ins share one
    /// discovery instead of each fetching.
    #[tokio::test]
    async fn first_sign_ins_share_one_discovery() {
        let idp = gated_idp().await;
        let registry = Arc::new(Registry::new(
            crate::http_client(Duration::from_secs(30)).unwrap(),
        ));
        idp.hold.store(true, Ordering::SeqCst);
        let calls: Vec<_> = (0..4)
            .map(|_| {
                let (registry, conn) = (registry.clone(), idp.conn.clone());
                tokio::spawn(async move { registry.metadata(&conn).await })
            })
            .collect();
        while idp.discoveries.load(Ordering::SeqCst) < 1 {
            tokio::task::yield_now().await;
        }
        idp.hold.store(false, Ordering::SeqCst);
        idp.release.add_permits(1);
        for c in calls {
            c.await.unwrap().unwrap();
        }
        assert_eq!(idp.discoveries.load(Ordering::SeqCst), 1);
    }

    /// An IdP that fails its discovery: the expired copy keeps sign-ins going, and the IdP
    /// is asked again only after a pause, not by every sign-in. With nothing cached, the
    /// error is the answer, then `idp_unavailable` until the pause is over.
    #[tokio::test]
    async fn a_failed_refresh_uses_the_expired_copy_and_backs_off() {
        let idp = gated_idp().await;
        let http = crate::http_client(Duration::from_secs(30)).unwrap();
        let clock = Clock::system();
        let registry = Registry::with_ttl(http.clone(), Duration::ZERO).with_clock(clock.clone());
        idp.fail.store(true, Ordering::SeqCst);
        let first = registry.metadata(&idp.conn).await.unwrap_err();
        assert_eq!(first.code(), "idp_unreachable", "nothing cached yet");
        idp.fail.store(false, Ordering::SeqCst);
        let again = registry.metadata(&idp.conn).await.unwrap_err();
        assert_eq!(again.code(), "idp_unavailable", "backing off");
        assert_eq!(idp.discoveries.load(Ordering::SeqCst), 1);
        clock.advance(FIRST_BACKOFF.as_secs() as i64);
        registry.metadata(&idp.conn).await.unwrap();
        let before = idp.discoveries.load(Ordering::SeqCst);
        idp.fail.store(true, Ordering::SeqCst);
        for _ in 0..3 {
            registry
                .metadata(&idp.conn)
                .await
                .expect("the expired copy");
        }
        assert_eq!(
            idp.discoveries.load(Ordering::SeqCst),
            before + 1,
            "one failed attempt, then a pause"
        );
    }

    /// SECURITY.md rule 23: a failed discovery is remembered. Sign-ins during the pause get
    /// `idp_unavailable` without a request; each failure in a row doubles the pause (capped);
    /// a success ends it.
    #[tokio::test]
    async fn failed_discovery_backs_off_longer_each_time_and_recovers() {
        let idp = gated_idp().await;
        let clock = Clock::system();
        let registry = Registry::new(crate::http_client(Duration::from_secs(30)).unwrap())
            .with_clock(clock.clone());
        let count = || idp.discoveries.load(Ordering::SeqCst);
        idp.fail.store(true, Ordering::SeqCst);
        assert_eq!(
            registry.metadata(&idp.conn).await.unwrap_err().code(),
            "idp_unreachable"
        );
        for _ in 0..5 {
            let e = registry.metadata(&idp.conn).await.unwrap_err();
            assert!(
                matches!(
                    e,
                    OidcError::Unavailable {
                        cause: "idp_unreachable",
                        retry_in_secs: 30
                    }
                ),
                "{e:?}"
            );
        }
        assert_eq!(count(), 1);
        clock.advance(30);
        assert_eq!(
            registry.metadata(&idp.conn).await.unwrap_err().code(),
            "idp_unreachable"
        );
        assert_eq!(count(), 2);
        // The second failure in a row: 60 s.
        clock.advance(30);
        assert_eq!(
            registry.metadata(&idp.conn).await.unwrap_err().code(),
            "idp_unavailable"
        );
        assert_eq!(count(), 2);
        clock.advance(30);
        idp.fail.store(false, Ordering::SeqCst);
        registry.metadata(&idp.conn).await.unwrap();
        assert_eq!(count(), 3);
        // Forgetting the connection (its settings changed) also forgets the failures.
        idp.fail.store(true, Ordering::SeqCst);
        registry.forget(&idp.conn.id);
        assert!(registry.metadata(&idp.conn).await.is_err());
        registry.forget(&idp.conn.id);
        assert!(registry.metadata(&idp.conn).await.is_err());
        assert_eq!(count(), 5);
    }

    /// Concurrent first sign-ins against a failing IdP: one request, and the ones that
    /// waited for it get the back-off answer instead of each asking in turn.
    #[tokio::test]
    async fn concurrent_sign_ins_share_one_failed_discovery() {
        let idp = gated_idp().await;
        let registry = Arc::new(Registry::new(
            crate::http_client(Duration::from_secs(30)).unwrap(),
        ));
        idp.fail.store(true, Ordering::SeqCst);
        idp.hold.store(true, Ordering::SeqCst);
        let calls: Vec<_> = (0..4)
            .map(|_| {
                let (registry, conn) = (registry.clone(), idp.conn.clone());
                tokio::spawn(async move { registry.metadata(&conn).await })
            })
            .collect();
        while idp.discoveries.load(Ordering::SeqCst) < 1 {
            tokio::task::yield_now().await;
        }
        idp.release.add_permits(1);
        let mut codes: Vec<_> = Vec::new();
        for c in calls {
            codes.push(c.await.unwrap().unwrap_err().code());
        }
        codes.sort();
        assert_eq!(
            codes,
            [
                "idp_unavailable",
                "idp_unavailable",
                "idp_unavailable",
                "idp_unreachable"
            ]
        );
        assert_eq!(idp.discoveries.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let secs: Vec<u64> = (1..=7).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 300, 300, 300]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }
}
