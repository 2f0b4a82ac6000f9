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
    let conn = crate::config::test_connection("acme", &issuer);
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
