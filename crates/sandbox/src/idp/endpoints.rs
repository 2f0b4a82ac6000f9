//! The dev IdP's router, discovery and JWKS, and helpers shared by the endpoints
//! (authorize.rs: authorization endpoint; token.rs: token endpoint and userinfo).
//!
//! Handlers parse input and map outcomes to responses; the protocol checks live in
//! plain functions beside them. Codes, tokens and secrets are never logged.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde_json::{Map, Value, json};
use url::Url;

use super::id_token::WRONG_ISSUER;
use super::{DevIdp, DevUser, Misbehaviour};

pub(crate) use super::authorize::{authorize, decision};
pub(crate) use super::token::{token, userinfo};

/// Authorization codes are short-lived (RFC 6749 §4.1.2 recommends at most 10 minutes).
pub(crate) const CODE_TTL: Duration = Duration::from_secs(60);
pub(crate) const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(300);
/// How long the sign-in page stays usable.
pub(crate) const PENDING_TTL: Duration = Duration::from_secs(600);
/// `TokenEndpointHang`: longer than any client timeout a test would configure.
pub(crate) const HANG: Duration = Duration::from_secs(3600);
pub(crate) const SUPPORTED_SCOPES: [&str; 4] = ["openid", "email", "profile", "groups"];

pub(crate) struct Endpoints {
    authorization: String,
    token: String,
    userinfo: String,
    jwks: String,
}

impl Endpoints {
    pub(crate) fn new(issuer: &Url) -> Result<Self, url::ParseError> {
        let join = |path: &str| issuer.join(path).map(String::from);
        Ok(Endpoints {
            authorization: join("authorize")?,
            token: join("token")?,
            userinfo: join("userinfo")?,
            jwks: join("jwks")?,
        })
    }
}

pub(super) fn router(idp: DevIdp) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(multi_tenant_discovery),
        )
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize))
        .route("/authorize/decision", post(decision))
        .route("/token", post(token))
        .route("/userinfo", get(userinfo).post(userinfo))
        .with_state(idp)
}

// ---------------------------------------------------------------------------------------
// Discovery and JWKS

async fn discovery(State(idp): State<DevIdp>) -> Response {
    axum::Json(discovery_doc(&idp)).into_response()
}

/// Entra's multi-tenant documents (`/organizations/v2.0`, `/common/v2.0`): the same
/// endpoints, the issuer as a template that each token fills with its own `tid`, and no
/// RFC 9207 `iss` parameter (Entra sends none).
async fn multi_tenant_discovery(
    State(idp): State<DevIdp>,
    axum::extract::Path(tenant): axum::extract::Path<String>,
) -> Response {
    if !matches!(tenant.as_str(), "organizations" | "common") {
        return StatusCode::NOT_FOUND.into_response();
    }
    let mut doc = discovery_doc(&idp);
    if let Some(map) = doc.as_object_mut() {
        map.remove("authorization_response_iss_parameter_supported");
    }
    if idp.misbehaviour() != Misbehaviour::DiscoveryWrongIssuer {
        doc["issuer"] = json!(idp.tenant_issuer("{tenantid}"));
    }
    axum::Json(doc).into_response()
}

fn discovery_doc(idp: &DevIdp) -> serde_json::Value {
    let inner = &idp.inner;
    let issuer = match idp.misbehaviour() {
        Misbehaviour::DiscoveryWrongIssuer => WRONG_ISSUER.to_owned(),
        _ => inner.issuer.clone(),
    };
    let mut doc = json!({
        "issuer": issuer,
        "authorization_endpoint": inner.endpoints.authorization,
        "token_endpoint": inner.endpoints.token,
        "userinfo_endpoint": inner.endpoints.userinfo,
        "jwks_uri": inner.endpoints.jwks,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": SUPPORTED_SCOPES,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "grant_types_supported": ["authorization_code"],
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "azp",
            "email", "email_verified", "name", "given_name", "family_name", "groups"
        ],
    });
    if inner.send_iss_parameter {
        doc["authorization_response_iss_parameter_supported"] = json!(true);
    }
    match idp.misbehaviour() {
        Misbehaviour::DiscoveryPlainHttp => {
            for (field, path) in [
                ("authorization_endpoint", "authorize"),
                ("token_endpoint", "token"),
                ("userinfo_endpoint", "userinfo"),
                ("jwks_uri", "jwks"),
            ] {
                doc[field] = json!(format!("http://{PLAIN_HTTP_HOST}/{path}"));
            }
        }
        Misbehaviour::JwksUriOtherHost => {
            doc["jwks_uri"] = json!(other_host(&inner.endpoints.jwks));
        }
        _ => {}
    }
    doc
}

/// The host `DiscoveryPlainHttp` names: not loopback, and never resolved by a careful client.
pub(crate) const PLAIN_HTTP_HOST: &str = "idp.example.net";

/// `url` with `localhost` for `127.0.0.1` (or the other way round): the same server under
/// another host name.
fn other_host(url: &str) -> String {
    let Ok(mut url) = Url::parse(url) else {
        return url.to_owned();
    };
    let other = if url.host_str() == Some("localhost") {
        "127.0.0.1"
    } else {
        "localhost"
    };
    // Cannot fail: the URL is http(s) and both names are valid hosts.
    let _ = url.set_host(Some(other));
    url.into()
}

async fn jwks(State(idp): State<DevIdp>) -> Response {
    idp.inner.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let state = idp.state();
    if state.misbehaviour == Misbehaviour::JwksDown {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "JWKS temporarily unavailable",
        )
            .into_response();
    }
    let keys: Vec<_> = std::iter::once(&state.signing)
        .chain(&state.extra_keys)
        .map(|k| k.jwk())
        .collect();
    axum::Json(json!({ "keys": keys })).into_response()
}

// ---------------------------------------------------------------------------------------
// Helpers

/// The user's claims the granted scopes allow; `email_verified` is passed on as given.
pub(crate) fn scoped_claims(user: &DevUser, scopes: &[String]) -> Map<String, Value> {
    let has = |s: &str| scopes.iter().any(|x| x == s);
    let mut claims = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            claims.insert(k.into(), v);
        }
    };
    if has("email") {
        put("email", user.email.clone().map(Value::from));
        put("email_verified", user.email_verified.clone());
        put("hd", user.hd.clone().map(Value::from));
        put("xms_edov", user.xms_edov.clone());
    }
    if has("profile") {
        put("name", user.name.clone().map(Value::from));
        put("given_name", user.given_name.clone().map(Value::from));
        put("family_name", user.family_name.clone().map(Value::from));
    }
    if has("groups") {
        put("groups", Some(json!(user.groups)));
    }
    claims
}

/// Parses `application/x-www-form-urlencoded`; a repeated name is an error (OAuth 2.0
/// forbids repeated parameters, and "last wins" hides mistakes). Err carries the name.
pub(crate) fn parse_params(raw: &[u8]) -> Result<HashMap<String, String>, String> {
    let mut params = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw) {
        if params.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(k.into_owned());
        }
    }
    Ok(params)
}

/// 256 random bits, base64url: codes, access tokens and request ids.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(crate) fn no_store() -> [(header::HeaderName, &'static str); 2] {
    [
        (header::CACHE_CONTROL, "no-store"),
        (header::PRAGMA, "no-cache"),
    ]
}

pub(crate) fn html(status: StatusCode, rendered: askama::Result<String>) -> Response {
    match rendered {
        Ok(body) => (status, no_store(), Html(body)).into_response(),
        Err(e) => {
            // The render error stays in the log; the page gets a fixed fallback.
            tracing::error!(error = %e, "dev IdP: template render failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "dev IdP: internal error").into_response()
        }
    }
}

pub(crate) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    html(status, ErrorPage { title, message }.render())
}

#[derive(Template)]
#[template(path = "devidp/error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}
