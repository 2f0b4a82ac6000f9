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

use openidconnect::JsonWebKeySetUrl;
use openidconnect::core::CoreJsonWebKeySet;
use tokio::sync::Mutex;

use super::{OidcError, ProviderMetadata};
use crate::config::{Connection, is_loopback};
use crate::domain::ConnectionId;

/// How long discovery metadata and keys are trusted before they are fetched again.
pub const METADATA_TTL: Duration = Duration::from_secs(3600);
/// At most one forced JWKS refetch per connection in this interval.
pub const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// When a refresh fails, the expired copy is used and the next attempt waits this long,
/// so an IdP that is down is not asked again by every sign-in.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(60);
/// An expired copy older than this is not used any more: the refresh error is returned.
pub const MAX_STALE: Duration = Duration::from_secs(24 * 3600);

pub struct Registry {
    http: reqwest::Client,
    ttl: Duration,
    /// One slot per connection, created on first use.
    providers: std::sync::Mutex<HashMap<ConnectionId, Arc<Slot>>>,
}

#[derive(Default)]
struct Slot {
    cached: std::sync::Mutex<Option<Cached>>,
    /// Held by the one request that fetches for this connection. While it refreshes
    /// expired metadata, other sign-ins use the expired copy instead of queueing behind a
    /// slow IdP; only when nothing is cached yet do they wait for it.
    fetching: Mutex<()>,
}

#[derive(Clone)]
struct Cached {
    metadata: Arc<ProviderMetadata>,
    fetched_at: Instant,
    /// After a failed refresh: no new attempt before this.
    retry_at: Option<Instant>,
    last_forced_jwks: Option<Instant>,
}

impl Slot {
    fn get(&self) -> Option<Cached> {
        self.cached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set(&self, c: Cached) {
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = Some(c);
    }
}

impl Registry {
    pub fn new(http: reqwest::Client) -> Self {
        Self::with_ttl(http, METADATA_TTL)
    }

    pub fn with_ttl(http: reqwest::Client, ttl: Duration) -> Self {
        Self {
            http,
            ttl,
            providers: std::sync::Mutex::default(),
        }
    }

    /// Forgets what was cached for a connection (its settings changed).
    pub fn forget(&self, id: &ConnectionId) {
        self.providers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Cached metadata (with keys), discovered on first use and after the TTL. One request
    /// per connection fetches; meanwhile the others get the expired copy if there is one.
    pub async fn metadata(&self, conn: &Connection) -> Result<Arc<ProviderMetadata>, OidcError> {
        let slot = self.slot(conn);
        let cached = slot.get();
        let fresh = |c: &Cached| {
            c.fetched_at.elapsed() < self.ttl || c.retry_at.is_some_and(|t| Instant::now() < t)
        };
        if let Some(c) = cached.as_ref().filter(|c| fresh(c)) {
            return Ok(c.metadata.clone());
        }
        let _fetching = match (cached, slot.fetching.try_lock()) {
            (_, Ok(guard)) => guard,
            (Some(stale), Err(_)) => return Ok(stale.metadata),
            (None, Err(_)) => slot.fetching.lock().await,
        };
        // Whoever held the lock before us may have fetched already.
        let cached = slot.get();
        if let Some(c) = cached.as_ref().filter(|c| fresh(c)) {
            return Ok(c.metadata.clone());
        }
        let last_forced_jwks = cached.as_ref().and_then(|c| c.last_forced_jwks);
        let metadata = match (discover(&self.http, conn).await, cached) {
            (Ok(m), _) => Arc::new(m),
            (Err(e), Some(mut stale)) if stale.fetched_at.elapsed() < MAX_STALE => {
                tracing::warn!(connection = %conn.id, error = %e, "IdP metadata refresh failed; using the expired copy");
                stale.retry_at = Some(Instant::now() + RETRY_AFTER_FAILURE);
                let metadata = stale.metadata.clone();
                slot.set(stale);
                return Ok(metadata);
            }
            (Err(e), _) => return Err(e),
        };
        slot.set(Cached {
            metadata: metadata.clone(),
            fetched_at: Instant::now(),
            retry_at: None,
            last_forced_jwks,
        });
        Ok(metadata)
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
        let Some(mut current) = slot.get() else {
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
        slot.set(current.clone());
        let jwks = fetch_jwks(&self.http, current.metadata.jwks_uri()).await?;
        let updated = Arc::new((*current.metadata).clone().set_jwks(jwks));
        current.metadata = updated.clone();
        slot.set(current);
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

/// Discovery, with the checks RP certification asks for: the document's `issuer` must equal
/// the configured issuer exactly (`rp-discovery-issuer-not-matching-config`, done by the
/// crate), endpoints must be https unless the IdP is on loopback, PKCE S256 must be offered
/// when the IdP lists its PKCE methods at all.
pub async fn discover(
    http: &reqwest::Client,
    conn: &Connection,
) -> Result<ProviderMetadata, OidcError> {
    let issuer = conn.issuer.clone();
    let metadata = ProviderMetadata::discover_async(issuer, http)
        .await
        .map_err(|e| match e {
            openidconnect::DiscoveryError::Validation(msg) => OidcError::Metadata(msg),
            other => OidcError::Discovery(error_chain(&other)),
        })?;
    check_metadata(conn, &metadata)?;
    Ok(metadata)
}

fn check_metadata(conn: &Connection, m: &ProviderMetadata) -> Result<(), OidcError> {
    let loopback_ok = is_loopback(conn.issuer.url());
    let endpoints = [
        Some(m.authorization_endpoint().url()),
        m.token_endpoint().map(|u| u.url()),
        Some(m.jwks_uri().url()),
        m.userinfo_endpoint().map(|u| u.url()),
    ];
    for url in endpoints.into_iter().flatten() {
        if url.scheme() != "https" && !(loopback_ok && url.scheme() == "http" && is_loopback(url)) {
            return Err(OidcError::Metadata(format!(
                "endpoint {} is not https",
                url.as_str()
            )));
        }
        if url.host_str() != conn.issuer.url().host_str() {
            // Legitimate for some IdPs (CDN-hosted keys), so a warning rather than a refusal.
            tracing::warn!(connection = %conn.id, host = url.host_str().unwrap_or(""), "IdP endpoint on another host than the issuer");
        }
    }
    if m.token_endpoint().is_none() {
        return Err(OidcError::Metadata("no token_endpoint".into()));
    }
    if let Some(methods) = &m.additional_metadata().code_challenge_methods_supported
        && !methods.iter().any(|x| x == "S256")
    {
        return Err(OidcError::Metadata(
            "the IdP does not support PKCE S256".into(),
        ));
    }
    Ok(())
}

async fn fetch_jwks(
    http: &reqwest::Client,
    url: &JsonWebKeySetUrl,
) -> Result<CoreJsonWebKeySet, OidcError> {
    CoreJsonWebKeySet::fetch_async(url, http)
        .await
        .map_err(|e| OidcError::Discovery(format!("JWKS fetch failed: {}", error_chain(&e))))
}

/// The whole `source()` chain on one line: the crate's top-level messages are terse.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
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
                        if fail.load(Ordering::SeqCst) {
                            use axum::response::IntoResponse;
                            return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
                        }
                        if hold.load(Ordering::SeqCst) {
                            // Permits return when dropped: one release lets every waiter by.
                            let _ = release.acquire().await;
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
    /// error is the answer.
    #[tokio::test]
    async fn a_failed_refresh_uses_the_expired_copy_and_backs_off() {
        let idp = gated_idp().await;
        let http = crate::http_client(Duration::from_secs(30)).unwrap();
        let registry = Registry::with_ttl(http.clone(), Duration::ZERO);
        idp.fail.store(true, Ordering::SeqCst);
        assert!(
            registry.metadata(&idp.conn).await.is_err(),
            "nothing cached yet"
        );
        idp.fail.store(false, Ordering::SeqCst);
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
}
