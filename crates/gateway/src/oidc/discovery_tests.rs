//! Discovery against small servers on 127.0.0.1:0 that count what is fetched.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use serde_json::json;
use tokio::net::TcpListener;

use super::*;

struct Idp {
    conn: Connection,
    issuer: String,
    jwks_fetches: Arc<AtomicUsize>,
}

fn http() -> IdpHttp {
    IdpHttp::new(crate::http_client(Duration::from_secs(5)).unwrap())
}

fn connection(issuer: &str) -> Connection {
    crate::config::test_connection("acme", issuer)
}

/// A discovery document that passes every check (here and in "Test connection").
pub(crate) fn good_doc(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks"),
        "end_session_endpoint": format!("{issuer}/logout"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "email", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
    })
}

/// Serves the good document edited by `edit` (given the issuer and the port) and an empty
/// key set, counting key-set fetches.
async fn idp(edit: impl FnOnce(&str, u16, &mut Value)) -> Idp {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let issuer = format!("http://127.0.0.1:{port}");
    let mut doc = good_doc(&issuer);
    edit(&issuer, port, &mut doc);
    let jwks_fetches = Arc::new(AtomicUsize::new(0));
    let counter = jwks_fetches.clone();
    let app = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { axum::Json(doc) }),
        )
        .route(
            "/jwks",
            get(move || async move {
                counter.fetch_add(1, Ordering::SeqCst);
                axum::Json(json!({ "keys": [] }))
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Idp {
        conn: connection(&issuer),
        issuer,
        jwks_fetches,
    }
}

#[tokio::test]
async fn a_good_document_is_discovered_with_its_keys() {
    let idp = idp(|_, _, _| {}).await;
    let m = discover(&http(), &idp.conn).await.unwrap();
    assert_eq!(m.issuer().as_str(), idp.issuer);
    assert_eq!(idp.jwks_fetches.load(Ordering::SeqCst), 1);
}

/// SECURITY.md rule 23: each of these documents names one URL the gateway must not call;
/// discovery refuses it and fetches nothing the document names. The servers behind the
/// loopback spellings are this test's own, so a fetch would be counted.
#[tokio::test]
async fn every_endpoint_url_is_checked_before_anything_is_fetched() {
    type Edit = fn(&str, u16, &mut Value);
    let cases: &[(&str, Edit)] = &[
        ("jwks_uri", |_, p, d| {
            d["jwks_uri"] = json!(format!("http://0.0.0.0:{p}/jwks"))
        }),
        ("jwks_uri", |_, p, d| {
            d["jwks_uri"] = json!(format!("http://0:{p}/jwks"))
        }),
        ("jwks_uri", |_, p, d| {
            d["jwks_uri"] = json!(format!("http://[::ffff:127.0.0.1]:{p}/jwks"))
        }),
        ("jwks_uri", |_, p, d| {
            d["jwks_uri"] = json!(format!("http://[::]:{p}/jwks"))
        }),
        ("jwks_uri", |_, p, d| {
            d["jwks_uri"] = json!(format!("http://localhost.evil.com:{p}/jwks"))
        }),
        ("jwks_uri", |_, p, d| {
            d["jwks_uri"] = json!(format!("http://a@127.0.0.1:{p}/jwks"))
        }),
        ("authorization_endpoint", |_, _, d| {
            d["authorization_endpoint"] = json!("http://idp.example/authorize")
        }),
        ("token_endpoint", |_, _, d| {
            d["token_endpoint"] = json!("https://169.254.169.254/token")
        }),
        ("userinfo_endpoint", |_, _, d| {
            d["userinfo_endpoint"] = json!("gopher://idp.example/")
        }),
        ("end_session_endpoint", |_, _, d| {
            d["end_session_endpoint"] = json!("http://idp.example/logout")
        }),
        ("pushed_authorization_request_endpoint", |_, _, d| {
            d["pushed_authorization_request_endpoint"] = json!("http://idp.example/par")
        }),
        ("mtls_endpoint_aliases.token_endpoint", |_, _, d| {
            d["mtls_endpoint_aliases"] = json!({ "token_endpoint": "http://idp.example/token" })
        }),
        ("registration_endpoint", |_, _, d| {
            d["registration_endpoint"] = json!("not a url")
        }),
    ];
    for (field, edit) in cases {
        let idp = idp(*edit).await;
        let err = discover(&http(), &idp.conn).await.unwrap_err();
        match &err {
            OidcError::EndpointRefused { field: f, .. } => assert_eq!(f, field),
            other => panic!("{field}: expected a refusal, got {other}"),
        }
        assert_eq!(err.code(), "idp_endpoint_refused");
        assert_eq!(
            idp.jwks_fetches.load(Ordering::SeqCst),
            0,
            "{field} fetched"
        );
    }
}

#[tokio::test]
async fn links_for_people_are_not_endpoints() {
    let idp = idp(|_, _, d| {
        d["op_tos_uri"] = json!("http://idp.example/tos");
        d["op_policy_uri"] = json!("http://idp.example/policy");
        d["service_documentation"] = json!("http://idp.example/docs");
    })
    .await;
    discover(&http(), &idp.conn).await.unwrap();
}

#[tokio::test]
async fn a_wrong_issuer_is_refused_before_the_keys_are_fetched() {
    let idp = idp(|_, _, d| d["issuer"] = json!("https://elsewhere.example")).await;
    let err = discover(&http(), &idp.conn).await.unwrap_err();
    assert_eq!(err.code(), "idp_metadata_rejected");
    assert!(
        matches!(&err, OidcError::Metadata(MetadataError::UnexpectedIssuer { published, .. }) if published == "https://elsewhere.example"),
        "{err:?}"
    );
    assert_eq!(idp.jwks_fetches.load(Ordering::SeqCst), 0);
}

/// The error keeps what failed underneath (`source()`), typed, and its message as before.
#[tokio::test]
async fn an_unreachable_idp_carries_the_transport_error() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let err = discover(&http(), &connection(&issuer)).await.unwrap_err();
    assert_eq!(err.code(), "idp_unreachable");
    let fetch = std::error::Error::source(&err)
        .and_then(|e| e.downcast_ref::<FetchError>())
        .unwrap_or_else(|| panic!("no FetchError under {err:?}"));
    let FetchError::Transport(transport) = fetch else {
        panic!("{fetch:?}")
    };
    assert!(transport.is_connect(), "{transport:?}");
    let expected = format!(
        "identity provider discovery failed: discovery document at {issuer}/.well-known/openid-configuration: request failed: "
    );
    assert!(err.to_string().starts_with(&expected), "{err}");
}

#[tokio::test]
async fn oversized_jwks_is_refused() {
    let (endless, sent) = crate::capped_body::test_server::endless_json().await;
    let idp = idp(move |_, _, d| d["jwks_uri"] = json!(format!("{endless}/jwks"))).await;
    let err = discover(&http(), &idp.conn).await.unwrap_err();
    assert!(
        matches!(err, OidcError::ResponseTooLarge { what: "JWKS", .. }),
        "{err}"
    );
    assert_eq!(err.code(), "idp_response_too_large");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(sent.load(Ordering::SeqCst) < 32 * super::super::http::MAX_IDP_BODY);
}

#[tokio::test]
async fn oversized_discovery_document_is_refused() {
    let (endless, _) = crate::capped_body::test_server::declares_a_gigabyte().await;
    let err = discover(&http(), &connection(&endless)).await.unwrap_err();
    assert_eq!(err.code(), "idp_response_too_large");
}
