//! SECURITY.md rule 23: every URL of a discovery document is checked before any is
//! fetched, a failed discovery is not repeated by each anonymous `/login`, and no answer
//! from an IdP is read past its cap. The IdP here is a small server that counts what the
//! gateway asks it, so "nothing was fetched" is a number.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode as AxumStatus;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::Env;

/// What the fake IdP serves and what it was asked.
#[derive(Clone)]
struct FakeIdp {
    doc: Arc<Mutex<Value>>,
    /// While set, discovery answers 500.
    failing: Arc<AtomicBool>,
    discoveries: Arc<AtomicUsize>,
    jwks_fetches: Arc<AtomicUsize>,
}

impl FakeIdp {
    fn edit(&self, f: impl FnOnce(&mut Value)) {
        f(&mut self.doc.lock().unwrap());
    }
}

async fn discovery(State(idp): State<FakeIdp>) -> Response {
    idp.discoveries.fetch_add(1, Ordering::SeqCst);
    if idp.failing.load(Ordering::SeqCst) {
        return AxumStatus::INTERNAL_SERVER_ERROR.into_response();
    }
    axum::Json(idp.doc.lock().unwrap().clone()).into_response()
}

async fn jwks(State(idp): State<FakeIdp>) -> Response {
    idp.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    axum::Json(json!({ "keys": [] })).into_response()
}

/// Starts the fake IdP (a good document whose keys are at its own `/jwks`) and the demo
/// gateway with its connection pointed at it. Returns the env, the IdP and its port.
async fn start() -> (Env, FakeIdp, u16) {
    let (listener, base) = crate::common::listen().await;
    let issuer = base.as_str().trim_end_matches('/').to_owned();
    let idp = FakeIdp {
        doc: Arc::new(Mutex::new(json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
        }))),
        failing: Arc::default(),
        discoveries: Arc::default(),
        jwks_fetches: Arc::default(),
    };
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .with_state(idp.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let env = Env::configured(|c| c.connections[0].issuer = Some(issuer.clone())).await;
    (env, idp, base.port().unwrap())
}

/// Starts the fake IdP with its document changed by `edit` (given the IdP's port); a
/// `/login` is refused as `idp_endpoint_refused` before anything the document names was
/// fetched.
async fn refused_before_any_fetch(edit: impl FnOnce(&mut Value, u16)) -> (Env, FakeIdp) {
    let (env, idp, port) = start().await;
    idp.edit(|d| edit(d, port));
    let page = env.open("/login").await;
    assert_eq!(
        idp.jwks_fetches.load(Ordering::SeqCst),
        0,
        "fetched before the check"
    );
    page.assert_error(StatusCode::BAD_GATEWAY, "idp_endpoint_refused");
    (env, idp)
}

/// `0.0.0.0` reaches this machine on Linux, so before the fix the gateway fetched the
/// fake IdP's own `/jwks` through it, and only then refused the document.
#[tokio::test]
async fn discovery_with_jwks_uri_on_unspecified_address_is_refused_before_any_fetch() {
    let (env, idp) = refused_before_any_fetch(|d, port| {
        d["jwks_uri"] = json!(format!("http://0.0.0.0:{port}/jwks"))
    })
    .await;
    // Refused documents are not fetched again by every sign-in either.
    for _ in 0..5 {
        let page = env.open("/login").await;
        page.assert_error(StatusCode::SERVICE_UNAVAILABLE, "idp_unavailable");
    }
    assert_eq!(idp.discoveries.load(Ordering::SeqCst), 1);
    assert_eq!(idp.jwks_fetches.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn discovery_with_ipv4_mapped_loopback_is_refused() {
    refused_before_any_fetch(|d, port| {
        d["jwks_uri"] = json!(format!("http://[::ffff:127.0.0.1]:{port}/jwks"))
    })
    .await;
}

/// Any endpoint of the document, not only the ones the gateway calls at once.
#[tokio::test]
async fn discovery_with_plain_http_end_session_endpoint_is_refused_before_any_fetch() {
    refused_before_any_fetch(|d, _| d["end_session_endpoint"] = json!("http://idp.example/logout"))
        .await;
}

/// The finding: each anonymous `/login` repeated the failed discovery. Now the first
/// failure is remembered: the next sign-ins get "unavailable" without a request, until the
/// back-off is over; then the IdP is asked again, and a working IdP is used at once.
#[tokio::test]
async fn failed_discovery_is_not_repeated_by_each_login() {
    let (env, idp, _) = start().await;
    idp.failing.store(true, Ordering::SeqCst);
    let page = env.open("/login").await;
    page.assert_error(StatusCode::BAD_GATEWAY, "idp_unreachable");
    for _ in 0..10 {
        let page = env.open("/login").await;
        page.assert_error(StatusCode::SERVICE_UNAVAILABLE, "idp_unavailable");
        assert!(page.body.contains("try again in a minute"), "{}", page.body);
    }
    assert_eq!(
        idp.discoveries.load(Ordering::SeqCst),
        1,
        "exactly one request"
    );

    idp.failing.store(false, Ordering::SeqCst);
    env.demo.clock.advance(30);
    let page = env.open("/login").await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    assert_eq!(idp.discoveries.load(Ordering::SeqCst), 2);
}

/// Writes 200 JSON headers and then an endless chunked body; counts the body bytes written.
async fn endless_body_server() -> (String, Arc<AtomicUsize>) {
    let (listener, base) = crate::common::listen().await;
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut head = [0u8; 4096];
                let _ = socket.read(&mut head).await;
                let headers = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                if socket.write_all(headers.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b' '; 64 * 1024];
                let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
                frame.extend_from_slice(&chunk);
                frame.extend_from_slice(b"\r\n");
                // 1 GiB at most, so a gateway that buffers everything still ends.
                for _ in 0..(16 * 1024) {
                    if socket.write_all(&frame).await.is_err() {
                        return;
                    }
                    counter.fetch_add(chunk.len(), Ordering::SeqCst);
                }
            });
        }
    });
    (base.as_str().trim_end_matches('/').to_owned(), sent)
}

/// Before the fix the JWKS was read whole: the gateway buffered until its timeout and
/// answered `idp_unreachable`. Now it stops at 1 MiB and says why.
#[tokio::test]
async fn oversized_jwks_is_refused_without_buffering() {
    let (env, idp, _) = start().await;
    let (endless, sent) = endless_body_server().await;
    idp.edit(|d| d["jwks_uri"] = json!(format!("{endless}/jwks")));
    let started = Instant::now();
    let page = env.open("/login").await;
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let written = sent.load(Ordering::SeqCst);
    eprintln!("oversized JWKS: answered in {took:?}, {written} body bytes written by the server");
    page.assert_error(StatusCode::BAD_GATEWAY, "idp_response_too_large");
    assert!(took < Duration::from_secs(4), "{took:?}");
    // The cap plus what the socket buffers held when the gateway stopped reading.
    assert!(written < 32 * 1024 * 1024, "{written} bytes written");
}
