//! "Test connection" against the dev IdP and small servers on 127.0.0.1:0.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use serde_json::json;
use tokio::net::TcpListener;

use super::*;
// A discovery document like the dev IdP's, for behaviours the dev IdP does not have.
use crate::domain::Secret;
use crate::oidc::discovery::tests::good_doc;
use bc_sso_sandbox::idp::{DevClient, DevIdp, DevIdpConfig, Misbehaviour, demo_users};

/// Distinctive, so a leak into any message is found by a plain `contains`.
const SECRET: &str = "client-secret-MUST-NOT-LEAK-7f3a";

const ALL_CHECKS: [&str; 11] = [
    "discovery",
    "issuer",
    "endpoints",
    "response_type",
    "pkce",
    "id_token_algs",
    "jwks",
    "scopes",
    "iss_parameter",
    "token_auth_method",
    "redirect_uri",
];

/// Bind first, so the issuer URL is known before the server exists (no port race).
async fn bind() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    (listener, issuer)
}

fn serve(listener: TcpListener, app: Router) {
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
}

fn redirect_uri() -> Url {
    Url::parse("https://gateway.example/oidc/callback").unwrap()
}

async fn start_idp(misbehaviour: Misbehaviour) -> String {
    let (listener, issuer) = bind().await;
    let idp = DevIdp::new(DevIdpConfig {
        issuer: Url::parse(&issuer).unwrap(),
        clients: vec![DevClient {
            client_id: "gateway".into(),
            client_secret: SECRET.into(),
            redirect_uris: vec![redirect_uri()],
            redirect_uri_prefixes: Vec::new(),
        }],
        users: demo_users(),
        email_in_id_token: true,
        send_iss_parameter: true,
    });
    assert_eq!(idp.issuer(), issuer, "dev IdP issuer has no trailing slash");
    idp.set_misbehaviour(misbehaviour);
    serve(listener, idp.router());
    issuer
}

fn connection(issuer: &str) -> Connection {
    let mut c = crate::config::test_connection("acme", issuer);
    c.client_id = "gateway".into();
    c.client_secret = Secret::new(SECRET);
    c.scopes = vec!["openid".into(), "email".into(), "profile".into()];
    c.allowed_email_domains = Vec::new();
    c
}

async fn run_with(http: &reqwest::Client, conn: &Connection) -> Vec<Check> {
    let http = IdpHttp::new(http.clone());
    let http = &http;
    let checks = diagnose(http, conn, &redirect_uri()).await;
    // Every case doubles as a leak test: the secret is in the connection and the IdP.
    for c in &checks {
        assert!(!c.message.contains(SECRET), "secret leaked: {c:?}");
    }
    checks
}

async fn run(conn: &Connection) -> Vec<Check> {
    run_with(&crate::http_client(Duration::from_secs(5)).unwrap(), conn).await
}

#[track_caller]
fn get_check<'a>(checks: &'a [Check], name: &str) -> &'a Check {
    checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} check in {checks:#?}"))
}

#[track_caller]
fn assert_status(checks: &[Check], name: &str, status: CheckStatus, needle: &str) {
    let c = get_check(checks, name);
    assert_eq!(c.status, status, "{c:?}");
    assert!(
        c.message.contains(needle),
        "{name} message lacks {needle:?}: {}",
        c.message
    );
}

fn names(checks: &[Check]) -> Vec<&'static str> {
    checks.iter().map(|c| c.name).collect()
}

fn rsa_key(kid: Option<&str>) -> Value {
    // Parsed, never used to verify: any base64url modulus will do.
    let mut key = json!({ "kty": "RSA", "use": "sig", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB" });
    if let Some(kid) = kid {
        key["kid"] = json!(kid);
    }
    key
}

/// Serves `doc` (edited by `edit`) and `jwks`; returns the issuer.
async fn start_custom(edit: impl FnOnce(&str, &mut Value), jwks: Value) -> String {
    let (listener, issuer) = bind().await;
    let mut doc = good_doc(&issuer);
    edit(&issuer, &mut doc);
    let app = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { axum::Json(doc) }),
        )
        .route("/jwks", get(move || async move { axum::Json(jwks) }));
    serve(listener, app);
    issuer
}

#[tokio::test]
async fn all_good_against_the_dev_idp() {
    let issuer = start_idp(Misbehaviour::None).await;
    let checks = run(&connection(&issuer)).await;
    assert_eq!(names(&checks), ALL_CHECKS);
    for c in &checks {
        assert_eq!(c.status, CheckStatus::Ok, "{c:?}");
    }
    assert_status(
        &checks,
        "redirect_uri",
        CheckStatus::Ok,
        "https://gateway.example/oidc/callback",
    );
    // The dev IdP advertises RFC 9207 in this setup (SECURITY.md rule 8).
    assert_status(&checks, "iss_parameter", CheckStatus::Ok, "will require");
    assert_status(&checks, "endpoints", CheckStatus::Ok, "localhost");
}

/// An Entra multi-tenant connection (`/organizations/v2.0`): its discovery publishes the
/// templated issuer, which is what the connection expects.
#[tokio::test]
async fn entra_multi_tenant_discovery_matches_the_template() {
    let issuer = start_idp(Misbehaviour::None).await;
    let mut conn = connection(&issuer);
    conn.issuer = openidconnect::IssuerUrl::new(format!("{issuer}/organizations/v2.0")).unwrap();
    conn.tenants = Some(crate::config::MultiTenant {
        issuer_template: format!("{issuer}/{{tenantid}}/v2.0"),
        allowed: vec!["72f988bf-86f1-41af-91ab-2d7cd011db47".into()],
    });
    let checks = run(&conn).await;
    assert_status(&checks, "issuer", CheckStatus::Ok, "multi-tenant issuer");
    assert_status(&checks, "jwks", CheckStatus::Ok, "usable");

    // The same document for a connection that expects a fixed issuer is a mismatch.
    conn.tenants = None;
    let checks = run(&conn).await;
    assert_eq!(get_check(&checks, "issuer").status, CheckStatus::Failed);
}

// SECURITY.md rule 10: `rp-discovery-issuer-not-matching-config`, the trailing-slash case.
#[tokio::test]
async fn issuer_with_trailing_slash_fails_with_a_hint() {
    let issuer = start_idp(Misbehaviour::None).await;
    let checks = run(&connection(&format!("{issuer}/"))).await;
    assert_status(&checks, "discovery", CheckStatus::Ok, "fetched");
    let c = get_check(&checks, "issuer");
    assert_eq!(c.status, CheckStatus::Failed, "{c:?}");
    assert!(c.message.contains("trailing slash"), "{}", c.message);
    assert!(c.message.contains(&format!("{issuer:?}")), "{}", c.message);
    assert!(
        c.message.contains(&format!("\"{issuer}/\"")),
        "{}",
        c.message
    );
    // Other problems are still reported in the same run.
    assert_status(&checks, "jwks", CheckStatus::Ok, "usable");
}

// SECURITY.md rule 10.
#[tokio::test]
async fn discovery_with_wrong_issuer_fails() {
    let issuer = start_idp(Misbehaviour::DiscoveryWrongIssuer).await;
    let checks = run(&connection(&issuer)).await;
    assert_status(&checks, "discovery", CheckStatus::Ok, "fetched");
    let c = get_check(&checks, "issuer");
    assert_eq!(c.status, CheckStatus::Failed, "{c:?}");
    assert!(c.message.contains("must be identical"), "{}", c.message);
    assert!(!c.message.contains("trailing slash"), "{}", c.message);
    assert!(c.message.contains(&format!("{issuer:?}")), "{}", c.message);
}

#[tokio::test]
async fn jwks_down_fails_jwks_only() {
    let issuer = start_idp(Misbehaviour::JwksDown).await;
    let checks = run(&connection(&issuer)).await;
    assert_eq!(names(&checks), ALL_CHECKS);
    assert_status(&checks, "discovery", CheckStatus::Ok, "fetched");
    assert_status(&checks, "jwks", CheckStatus::Failed, "HTTP 503");
    assert_status(
        &checks,
        "jwks",
        CheckStatus::Failed,
        &format!("{issuer}/jwks"),
    );
    let failed: Vec<_> = checks
        .iter()
        .filter(|c| c.status != CheckStatus::Ok)
        .map(|c| c.name)
        .collect();
    assert_eq!(failed, ["jwks"]);
}

#[tokio::test]
async fn nothing_listening_fails_discovery_and_omits_dependent_checks() {
    let (listener, issuer) = bind().await;
    drop(listener);
    let checks = run(&connection(&issuer)).await;
    assert_status(
        &checks,
        "discovery",
        CheckStatus::Failed,
        "could not connect",
    );
    assert_status(
        &checks,
        "discovery",
        CheckStatus::Failed,
        &format!("{issuer}/.well-known/openid-configuration"),
    );
    // Documented choice: checks that need the document are omitted, config-only ones stay.
    assert_eq!(names(&checks), ["discovery", "scopes", "redirect_uri"]);
    assert_status(&checks, "scopes", CheckStatus::Ok, "discovery failed");
}

#[tokio::test]
async fn alg_allow_list_without_the_idps_alg_fails() {
    let issuer = start_idp(Misbehaviour::None).await;
    let mut conn = connection(&issuer);
    conn.id_token_algs = vec!["ES256".into()];
    let checks = run(&conn).await;
    assert_status(&checks, "id_token_algs", CheckStatus::Failed, "\"RS256\"");
    assert_status(&checks, "id_token_algs", CheckStatus::Failed, "\"ES256\"");
    // The dev IdP's only key is RSA, so nothing in the JWKS fits ES256 either.
    assert_status(&checks, "jwks", CheckStatus::Failed, "none can verify");
}

#[tokio::test]
async fn unsupported_scope_is_a_warning() {
    let issuer = start_idp(Misbehaviour::None).await;
    let mut conn = connection(&issuer);
    conn.scopes.push("offline_access".into());
    let checks = run(&conn).await;
    assert_status(&checks, "scopes", CheckStatus::Warning, "offline_access");
    assert!(!get_check(&checks, "scopes").message.contains("profile"));
}

#[tokio::test]
async fn openid_missing_from_config_fails() {
    let issuer = start_idp(Misbehaviour::None).await;
    let mut conn = connection(&issuer);
    conn.scopes = vec!["email".into()];
    let checks = run(&conn).await;
    assert_status(
        &checks,
        "scopes",
        CheckStatus::Failed,
        "do not include openid",
    );
}

#[tokio::test]
async fn secret_appears_in_no_message_even_when_everything_fails() {
    let issuer = start_custom(
        |_, doc| {
            *doc = json!({ "issuer": "https://elsewhere.example/", "jwks_uri": "http://idp.example/jwks" });
        },
        json!({}),
    )
    .await;
    let mut conn = connection(&issuer);
    conn.scopes = vec!["email".into()];
    conn.id_token_algs = vec!["ES256".into()];
    let checks = run(&conn).await;
    assert!(
        checks
            .iter()
            .filter(|c| c.status == CheckStatus::Failed)
            .count()
            >= 5
    );
    assert_status(&checks, "jwks", CheckStatus::Failed, "not fetched");
    let debug = format!("{checks:?}");
    assert!(!debug.contains(SECRET));
}

#[tokio::test]
async fn pkce_not_advertised_is_a_warning() {
    let issuer = start_custom(
        |_, doc| {
            doc.as_object_mut()
                .unwrap()
                .remove("code_challenge_methods_supported");
        },
        json!({ "keys": [rsa_key(Some("k1"))] }),
    )
    .await;
    let checks = run(&connection(&issuer)).await;
    assert_status(
        &checks,
        "pkce",
        CheckStatus::Warning,
        "does not advertise PKCE support; the gateway sends S256 anyway",
    );
    assert_status(&checks, "jwks", CheckStatus::Ok, "1 key(s)");
}

// SECURITY.md rule 7: PKCE S256 always, `plain` refused.
#[tokio::test]
async fn pkce_plain_only_fails() {
    let issuer = start_custom(
        |_, doc| doc["code_challenge_methods_supported"] = json!(["plain"]),
        json!({ "keys": [rsa_key(Some("k1"))] }),
    )
    .await;
    let checks = run(&connection(&issuer)).await;
    assert_status(&checks, "pkce", CheckStatus::Failed, "\"plain\"");
}

#[tokio::test]
async fn several_problems_are_reported_in_one_run() {
    let issuer = start_custom(
        |_, doc| {
            // Missing rather than refused: a refused URL would stop the JWKS fetch.
            doc.as_object_mut().unwrap().remove("token_endpoint");
            doc["response_types_supported"] = json!(["id_token"]);
            doc["token_endpoint_auth_methods_supported"] = json!(["private_key_jwt"]);
            doc["authorization_response_iss_parameter_supported"] = json!(false);
        },
        json!({ "keys": [rsa_key(None), rsa_key(None)] }),
    )
    .await;
    let checks = run(&connection(&issuer)).await;
    assert_eq!(names(&checks), ALL_CHECKS);
    assert_status(
        &checks,
        "endpoints",
        CheckStatus::Failed,
        "token_endpoint is missing",
    );
    assert_status(&checks, "response_type", CheckStatus::Failed, "not code");
    assert_status(
        &checks,
        "token_auth_method",
        CheckStatus::Failed,
        "private_key_jwt",
    );
    assert_status(
        &checks,
        "jwks",
        CheckStatus::Warning,
        "2 of them without a kid",
    );
    assert_status(
        &checks,
        "iss_parameter",
        CheckStatus::Ok,
        "does not announce",
    );
    assert_status(&checks, "issuer", CheckStatus::Ok, "matches");
}

/// Serves the good document edited by `edit` (which gets the issuer) and counts the
/// requests for `/jwks`.
async fn start_counting(
    edit: impl FnOnce(&str, &mut Value),
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (listener, issuer) = bind().await;
    let mut doc = good_doc(&issuer);
    edit(&issuer, &mut doc);
    let fetches = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let app = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { axum::Json(doc) }),
        )
        .route(
            "/jwks",
            get(move || async move {
                counter.fetch_add(1, Ordering::SeqCst);
                axum::Json(json!({ "keys": [rsa_key(Some("k1"))] }))
            }),
        );
    serve(listener, app);
    (issuer, fetches)
}

// SECURITY.md rule 23: the check reports a refused URL and, like sign-in, fetches
// nothing the document names. `0.0.0.0` reaches this machine on Linux, so the key set
// would have been served had it been fetched.
#[tokio::test]
async fn test_connection_reports_jwks_uri_on_unspecified_address_without_fetching() {
    let (issuer, fetches) = start_counting(|issuer, doc| {
        doc["jwks_uri"] = json!(issuer.replace("127.0.0.1", "0.0.0.0") + "/jwks");
    })
    .await;
    let checks = run(&connection(&issuer)).await;
    assert_status(
        &checks,
        "endpoints",
        CheckStatus::Failed,
        "jwks_uri \"http://0.0.0.0:",
    );
    assert_status(
        &checks,
        "endpoints",
        CheckStatus::Failed,
        "names the address 0.0.0.0",
    );
    assert_status(&checks, "jwks", CheckStatus::Failed, "was not fetched");
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn test_connection_reports_any_refused_endpoint_and_fetches_no_keys() {
    for (field, bad) in [
        ("end_session_endpoint", "http://idp.example/logout"),
        ("token_endpoint", "https://user@idp.example/token"),
        ("revocation_endpoint", "http://[::ffff:127.0.0.1]:9/revoke"),
        ("userinfo_endpoint", "http://localhost.evil.com/userinfo"),
    ] {
        let (issuer, fetches) = start_counting(|_, doc| doc[field] = json!(bad)).await;
        let checks = run(&connection(&issuer)).await;
        assert_status(&checks, "endpoints", CheckStatus::Failed, field);
        assert_status(&checks, "jwks", CheckStatus::Failed, "was not fetched");
        assert_eq!(
            fetches.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "{field}"
        );
    }
}

#[tokio::test]
async fn oversized_discovery_document_is_reported() {
    let (base, _) = crate::capped_body::test_server::endless_json().await;
    let checks = run(&connection(&base)).await;
    assert_status(
        &checks,
        "discovery",
        CheckStatus::Failed,
        "larger than 1024 KiB",
    );
}

#[tokio::test]
async fn no_token_auth_methods_means_basic() {
    let issuer = start_custom(
        |_, doc| {
            doc.as_object_mut()
                .unwrap()
                .remove("token_endpoint_auth_methods_supported");
        },
        json!({ "keys": [rsa_key(Some("k1"))] }),
    )
    .await;
    let checks = run(&connection(&issuer)).await;
    assert_status(
        &checks,
        "token_auth_method",
        CheckStatus::Ok,
        "client_secret_basic",
    );
}

#[tokio::test]
async fn html_instead_of_discovery_is_not_json() {
    let (listener, issuer) = bind().await;
    let app = Router::new().route(
        "/.well-known/openid-configuration",
        get(|| async { axum::response::Html("<html>Sign in</html>") }),
    );
    serve(listener, app);
    let checks = run(&connection(&issuer)).await;
    assert_status(&checks, "discovery", CheckStatus::Failed, "not with JSON");
    assert_eq!(names(&checks), ["discovery", "scopes", "redirect_uri"]);
}

#[tokio::test]
async fn missing_discovery_names_the_status_and_the_url() {
    let (listener, issuer) = bind().await;
    serve(listener, Router::new());
    let checks = run(&connection(&issuer)).await;
    assert_status(&checks, "discovery", CheckStatus::Failed, "HTTP 404");
    assert_status(
        &checks,
        "discovery",
        CheckStatus::Failed,
        ".well-known/openid-configuration",
    );
}

#[tokio::test]
async fn redirected_discovery_is_reported() {
    let (listener, issuer) = bind().await;
    let app = Router::new().route(
        "/.well-known/openid-configuration",
        get(|| async { axum::response::Redirect::temporary("https://login.example/x") }),
    );
    serve(listener, app);
    let checks = run(&connection(&issuer)).await;
    assert_status(&checks, "discovery", CheckStatus::Failed, "redirect");
    assert_status(
        &checks,
        "discovery",
        CheckStatus::Failed,
        "https://login.example/x",
    );
}

#[tokio::test]
async fn slow_discovery_times_out() {
    let (listener, issuer) = bind().await;
    let app = Router::new().route(
        "/.well-known/openid-configuration",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "late"
        }),
    );
    serve(listener, app);
    let http = crate::http_client(Duration::from_millis(300)).unwrap();
    let checks = run_with(&http, &connection(&issuer)).await;
    assert_status(
        &checks,
        "discovery",
        CheckStatus::Failed,
        "did not answer in time",
    );
}
