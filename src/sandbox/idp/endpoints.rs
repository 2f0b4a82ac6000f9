//! HTTP endpoints of the dev IdP: discovery, JWKS, authorize (+ decision), token, userinfo.
//!
//! Handlers parse input and map outcomes to responses; the protocol checks live in the
//! plain functions below them. Codes, tokens and secrets are never logged.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::RngCore;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use url::Url;

use super::id_token::{self, IdTokenInput, Keys, WRONG_ISSUER};
use super::{
    AccessGrant, CodeGrant, DevClient, DevIdp, DevUser, Misbehaviour, PendingAuthorization,
};

/// Authorization codes are short-lived (RFC 6749 §4.1.2 recommends at most 10 minutes).
pub(crate) const CODE_TTL: Duration = Duration::from_secs(60);
const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(300);
/// How long the sign-in page stays usable.
const PENDING_TTL: Duration = Duration::from_secs(600);
/// `TokenEndpointHang`: longer than any client timeout a test would configure.
const HANG: Duration = Duration::from_secs(3600);
const SUPPORTED_SCOPES: [&str; 4] = ["openid", "email", "profile", "groups"];

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
    axum::Json(doc).into_response()
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
// Authorization endpoint

#[derive(Template)]
#[template(path = "devidp/signin.html")]
struct SignInPage<'a> {
    client_id: &'a str,
    request_id: &'a str,
    users: Vec<UserButton>,
}

struct UserButton {
    sub: String,
    name: String,
    email: String,
    verified: bool,
    verified_note: &'static str,
}

impl UserButton {
    fn new(user: &DevUser) -> Self {
        let verified = matches!(&user.email_verified, Some(Value::Bool(true)))
            || matches!(&user.email_verified, Some(Value::String(s)) if s == "true");
        UserButton {
            sub: user.sub.clone(),
            name: user.name.clone().unwrap_or_else(|| user.sub.clone()),
            email: user.email.clone().unwrap_or_else(|| "(no email)".into()),
            verified,
            verified_note: if user.email_verified.is_none() {
                "email_verified absent"
            } else {
                "email not verified"
            },
        }
    }
}

#[derive(Template)]
#[template(path = "devidp/error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

async fn authorize(State(idp): State<DevIdp>, RawQuery(query): RawQuery) -> Response {
    match start_authorization(&idp, query.as_deref().unwrap_or("")) {
        Ok((request_id, client_id, users)) => {
            let page = SignInPage {
                client_id: &client_id,
                request_id: &request_id,
                users: users.iter().map(UserButton::new).collect(),
            };
            html(StatusCode::OK, page.render())
        }
        Err(AuthorizeFailure::Page(title, message)) => {
            error_page(StatusCode::BAD_REQUEST, title, &message)
        }
        Err(AuthorizeFailure::Redirect(response)) => *response,
    }
}

enum AuthorizeFailure {
    /// Client or redirect_uri cannot be trusted: show a page, never redirect (RFC 6749 §4.1.2.1).
    Page(&'static str, String),
    /// An error authorization response to the client's redirect_uri.
    Redirect(Box<Response>),
}

/// Validates an authorization request and stores it; returns the pending request id.
fn start_authorization(
    idp: &DevIdp,
    query: &str,
) -> Result<(String, String, Vec<DevUser>), AuthorizeFailure> {
    let params = parse_params(query.as_bytes()).map_err(|dup| {
        AuthorizeFailure::Page(
            "Invalid request",
            format!("The parameter {dup} appears more than once."),
        )
    })?;
    let client = params
        .get("client_id")
        .and_then(|id| idp.client(id))
        .ok_or_else(|| {
            AuthorizeFailure::Page(
                "Unknown client",
                "The client_id is missing or not registered.".into(),
            )
        })?;
    // Exact string match against the registered URIs: no prefix or normalised matching.
    let redirect_uri = params
        .get("redirect_uri")
        .and_then(|r| client.redirect_uris.iter().find(|u| u.as_str() == r))
        .ok_or_else(|| {
            AuthorizeFailure::Page(
                "Invalid redirect_uri",
                "The redirect_uri is missing or not registered for this client.".into(),
            )
        })?;
    let state = params.get("state").map(String::as_str);
    let fail = |error: &str, description: &str| {
        AuthorizeFailure::Redirect(Box::new(idp.authorization_response(
            redirect_uri,
            &[("error", error), ("error_description", description)],
            state,
        )))
    };

    if let Misbehaviour::AuthorizeError(error) = idp.misbehaviour() {
        return Err(AuthorizeFailure::Redirect(Box::new(
            idp.authorization_response(redirect_uri, &[("error", &error)], state),
        )));
    }
    if params.get("response_type").map(String::as_str) != Some("code") {
        return Err(fail(
            "unsupported_response_type",
            "only response_type=code is supported",
        ));
    }
    let scopes: Vec<String> = params
        .get("scope")
        .map(|s| {
            s.split(' ')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    if !scopes.iter().any(|s| s == "openid") {
        return Err(fail("invalid_scope", "scope must include openid"));
    }
    // PKCE S256 always; plain would let a stolen code be redeemed (SECURITY.md rule 7).
    if params.get("code_challenge_method").map(String::as_str) != Some("S256") {
        return Err(fail(
            "invalid_request",
            "code_challenge_method=S256 is required",
        ));
    }
    let code_challenge = match params.get("code_challenge") {
        Some(c) if is_s256_challenge(c) => c.clone(),
        _ => {
            return Err(fail(
                "invalid_request",
                "code_challenge missing or malformed",
            ));
        }
    };
    if params
        .get("prompt")
        .is_some_and(|p| p.split(' ').any(|p| p == "none"))
    {
        // There is no IdP session, so a silent login can never succeed.
        return Err(fail(
            "login_required",
            "the dev IdP always shows its sign-in page",
        ));
    }

    let request_id = random_token();
    let mut st = idp.state();
    let now = Instant::now();
    st.pending
        .retain(|_, p| now.duration_since(p.created) < PENDING_TTL);
    st.pending.insert(
        request_id.clone(),
        PendingAuthorization {
            client_id: client.client_id.clone(),
            redirect_uri: redirect_uri.clone(),
            state: state.map(String::from),
            nonce: params.get("nonce").cloned(),
            code_challenge,
            scopes,
            created: now,
        },
    );
    Ok((request_id, client.client_id.clone(), st.users.clone()))
}

async fn decision(State(idp): State<DevIdp>, body: Bytes) -> Response {
    let Ok(form) = parse_params(&body) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "A form field appears more than once.",
        );
    };
    let pending = {
        let mut st = idp.state();
        // Single use: a second click on the same page cannot mint a second code.
        form.get("request").and_then(|id| st.pending.remove(id))
    };
    let Some(pending) = pending.filter(|p| p.created.elapsed() < PENDING_TTL) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Sign-in request not found",
            "This sign-in request is unknown, expired or already used. Start the login again.",
        );
    };
    let state = pending.state.as_deref();
    if form.contains_key("cancel") {
        return idp.authorization_response(
            &pending.redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", "the user cancelled the sign-in"),
            ],
            state,
        );
    }
    let user_known = form
        .get("user")
        .is_some_and(|sub| idp.state().users.iter().any(|u| &u.sub == sub));
    let (Some(sub), true) = (form.get("user"), user_known) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Unknown user",
            "No such user at this dev IdP.",
        );
    };
    let code = random_token();
    tracing::info!(sub = %sub, client_id = %pending.client_id, "dev IdP: user signed in, code issued");
    idp.state().codes.insert(
        code.clone(),
        CodeGrant {
            client_id: pending.client_id.clone(),
            redirect_uri: pending.redirect_uri.clone(),
            code_challenge: pending.code_challenge.clone(),
            nonce: pending.nonce.clone(),
            sub: sub.clone(),
            scopes: pending.scopes.clone(),
            auth_time: unix_now(),
            issued: Instant::now(),
        },
    );
    idp.authorization_response(&pending.redirect_uri, &[("code", &code)], state)
}

impl DevIdp {
    fn client(&self, client_id: &str) -> Option<&DevClient> {
        self.inner.clients.iter().find(|c| c.client_id == client_id)
    }

    /// 302 to the client's redirect_uri with `params`, `state` and, per RFC 9207, `iss`.
    fn authorization_response(
        &self,
        redirect_uri: &Url,
        params: &[(&str, &str)],
        state: Option<&str>,
    ) -> Response {
        let mut url = redirect_uri.clone();
        {
            let mut query = url.query_pairs_mut();
            for (k, v) in params {
                query.append_pair(k, v);
            }
            if let Some(state) = state {
                query.append_pair("state", state);
            }
            if self.misbehaviour() == Misbehaviour::IssParameterWrong {
                query.append_pair("iss", WRONG_ISSUER);
            } else if self.inner.send_iss_parameter {
                query.append_pair("iss", &self.inner.issuer);
            }
        }
        let mut response = StatusCode::FOUND.into_response();
        match HeaderValue::from_str(url.as_str()) {
            Ok(location) => {
                response.headers_mut().insert(header::LOCATION, location);
                response
            }
            Err(_) => error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error",
                "Cannot build the redirect.",
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Token endpoint

/// An OAuth error response (RFC 6749 §5.2).
#[derive(Debug)]
pub(crate) struct TokenError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl TokenError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        TokenError {
            status,
            error,
            description: description.into(),
        }
    }
    fn invalid_grant(description: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }
    fn invalid_request(description: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }
    fn invalid_client() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        )
    }
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.error, "error_description": self.description });
        let mut response = (self.status, no_store(), axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6749 §5.2: a 401 must name the scheme the client may authenticate with.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"devidp\""),
            );
        }
        response
    }
}

async fn token(State(idp): State<DevIdp>, headers: HeaderMap, body: Bytes) -> Response {
    idp.inner.token_requests.fetch_add(1, Ordering::SeqCst);
    match idp.misbehaviour() {
        Misbehaviour::TokenEndpointStatus(status) => return forced_status(status).into_response(),
        Misbehaviour::TokenEndpointHang => {
            tokio::time::sleep(HANG).await;
            return TokenError::new(StatusCode::GATEWAY_TIMEOUT, "server_error", "hung")
                .into_response();
        }
        _ => {}
    }
    match exchange_code(&idp, &headers, &body) {
        Ok(body) => (no_store(), axum::Json(body)).into_response(),
        Err(e) => {
            tracing::info!(error = e.error, description = %e.description, "dev IdP: token request refused");
            e.into_response()
        }
    }
}

fn forced_status(status: u16) -> TokenError {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let error = match status.as_u16() {
        401 => "invalid_client",
        400..=499 => "invalid_request",
        503 => "temporarily_unavailable",
        _ => "server_error",
    };
    TokenError::new(
        status,
        error,
        format!("dev IdP misbehaviour: forced status {}", status.as_u16()),
    )
}

/// The authorization_code grant (RFC 6749 §4.1.3, RFC 7636 §4.6).
pub(crate) fn exchange_code(
    idp: &DevIdp,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, TokenError> {
    let params = parse_params(body)
        .map_err(|dup| TokenError::invalid_request(&format!("parameter {dup} repeated")))?;
    let client = authenticate_client(idp, headers, &params)?;
    if params.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return Err(TokenError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only authorization_code is supported",
        ));
    }
    let code = params
        .get("code")
        .ok_or_else(|| TokenError::invalid_request("code missing"))?;
    // Removed before any other check: a code is single-use even when the exchange fails.
    let grant = idp
        .state()
        .codes
        .remove(code)
        .ok_or_else(|| TokenError::invalid_grant("code unknown, expired or already used"))?;
    if grant.client_id != client.client_id {
        return Err(TokenError::invalid_grant(
            "code was issued to another client",
        ));
    }
    if grant.issued.elapsed() >= CODE_TTL {
        return Err(TokenError::invalid_grant("code expired"));
    }
    match params.get("redirect_uri") {
        None => return Err(TokenError::invalid_request("redirect_uri missing")),
        Some(r) if r != grant.redirect_uri.as_str() => {
            return Err(TokenError::invalid_grant(
                "redirect_uri does not match the authorization request",
            ));
        }
        Some(_) => {}
    }
    let verifier = params
        .get("code_verifier")
        .ok_or_else(|| TokenError::invalid_grant("code_verifier missing"))?;
    if !pkce_s256_matches(verifier, &grant.code_challenge) {
        return Err(TokenError::invalid_grant(
            "code_verifier does not match the code_challenge",
        ));
    }

    let mut st = idp.state();
    let user = st
        .users
        .iter()
        .find(|u| u.sub == grant.sub)
        .cloned()
        .ok_or_else(|| TokenError::invalid_grant("the user no longer exists"))?;
    let user_claims = if idp.inner.email_in_id_token {
        scoped_claims(&user, &grant.scopes)
    } else {
        Map::new()
    };
    let input = IdTokenInput {
        issuer: &idp.inner.issuer,
        client_id: &client.client_id,
        sub: &user.sub,
        nonce: grant.nonce.as_deref(),
        auth_time: grant.auth_time,
        now: unix_now(),
        user_claims,
    };
    let keys = Keys {
        current: &st.signing,
        bogus: st.bogus.as_ref(),
    };
    let id_token = id_token::mint(&input, &keys, &st.misbehaviour).map_err(|e| {
        tracing::error!(error = %e, "dev IdP: cannot mint ID token");
        TokenError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "cannot mint the ID token",
        )
    })?;
    let access_token = random_token();
    let now = Instant::now();
    st.access_tokens.retain(|_, a| a.expires > now);
    st.access_tokens.insert(
        access_token.clone(),
        AccessGrant {
            sub: user.sub.clone(),
            scopes: grant.scopes.clone(),
            expires: now + ACCESS_TOKEN_TTL,
        },
    );
    tracing::info!(sub = %user.sub, client_id = %client.client_id, "dev IdP: tokens issued");

    let granted: Vec<&str> = grant
        .scopes
        .iter()
        .map(String::as_str)
        .filter(|s| SUPPORTED_SCOPES.contains(s))
        .collect();
    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": ACCESS_TOKEN_TTL.as_secs(),
        "scope": granted.join(" "),
    });
    if let Some(id_token) = id_token {
        body["id_token"] = json!(id_token);
    }
    Ok(body)
}

/// client_secret_basic or client_secret_post, exactly one of them (RFC 6749 §2.3.1).
fn authenticate_client<'a>(
    idp: &'a DevIdp,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<&'a DevClient, TokenError> {
    let basic = match headers.get(header::AUTHORIZATION) {
        Some(value) => Some(parse_basic(value).ok_or_else(TokenError::invalid_client)?),
        None => None,
    };
    let post = params
        .get("client_secret")
        .map(|secret| (params.get("client_id"), secret));
    let (client_id, secret) = match (basic, post) {
        (Some(_), Some(_)) => {
            return Err(TokenError::invalid_request(
                "use one client authentication method, not two",
            ));
        }
        (Some((id, secret)), None) => {
            // A client_id in the body must agree with the authenticated one.
            if params
                .get("client_id")
                .is_some_and(|body_id| *body_id != id)
            {
                return Err(TokenError::invalid_client());
            }
            (id, secret)
        }
        (None, Some((Some(id), secret))) => (id.clone(), secret.clone()),
        _ => return Err(TokenError::invalid_client()),
    };
    idp.client(&client_id)
        .filter(|c| constant_time_eq(c.client_secret.as_bytes(), secret.as_bytes()))
        .ok_or_else(TokenError::invalid_client)
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))`.
fn parse_basic(value: &HeaderValue) -> Option<(String, String)> {
    let value = value.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id)?, form_decode(secret)?))
}

fn form_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// RFC 7636 §4.1 verifier syntax, then BASE64URL(SHA256(verifier)) == challenge.
pub(crate) fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    well_formed && URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == challenge
}

fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

// ---------------------------------------------------------------------------------------
// Userinfo

async fn userinfo(State(idp): State<DevIdp>, headers: HeaderMap) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned());
    let Some(token) = bearer else {
        // RFC 6750 §3.1: no credentials → challenge without an error code.
        return unauthorized("Bearer realm=\"devidp\"");
    };
    let st = idp.state();
    let grant = st
        .access_tokens
        .get(&token)
        .filter(|g| g.expires > Instant::now());
    let Some((grant, user)) =
        grant.and_then(|g| Some((g, st.users.iter().find(|u| u.sub == g.sub)?)))
    else {
        return unauthorized("Bearer realm=\"devidp\", error=\"invalid_token\"");
    };
    let mut claims = scoped_claims(user, &grant.scopes);
    let sub = if st.misbehaviour == Misbehaviour::UserinfoWrongSub {
        format!("{}-someone-else", user.sub)
    } else {
        user.sub.clone()
    };
    claims.insert("sub".into(), json!(sub));
    axum::Json(Value::Object(claims)).into_response()
}

fn unauthorized(challenge: &'static str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, challenge)],
    )
        .into_response()
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
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn no_store() -> [(header::HeaderName, &'static str); 2] {
    [
        (header::CACHE_CONTROL, "no-store"),
        (header::PRAGMA, "no-cache"),
    ]
}

fn html(status: StatusCode, rendered: askama::Result<String>) -> Response {
    match rendered {
        Ok(body) => (status, no_store(), Html(body)).into_response(),
        Err(e) => {
            // The render error stays in the log; the page gets a fixed fallback.
            tracing::error!(error = %e, "dev IdP: template render failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "dev IdP: internal error").into_response()
        }
    }
}

fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    html(status, ErrorPage { title, message }.render())
}
