//! Token endpoint (authorization_code grant, client auth, PKCE) and userinfo.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::endpoints::{
    ACCESS_TOKEN_TTL, CODE_TTL, HANG, SUPPORTED_SCOPES, no_store, parse_params, random_token,
    scoped_claims, unix_now,
};
use super::id_token::{self, IdTokenInput, Keys};
use super::{AccessGrant, DevClient, DevIdp, Misbehaviour};

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

pub(crate) async fn token(State(idp): State<DevIdp>, headers: HeaderMap, body: Bytes) -> Response {
    idp.inner.token_requests.fetch_add(1, Ordering::SeqCst);
    match idp.misbehaviour() {
        Misbehaviour::TokenEndpointStatus(status) => return forced_status(status).into_response(),
        Misbehaviour::TokenEndpointHang => {
            tokio::time::sleep(HANG).await;
            return TokenError::new(StatusCode::GATEWAY_TIMEOUT, "server_error", "hung")
                .into_response();
        }
        Misbehaviour::TokenEndpointSlow(ms) => {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
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
    let inner = &idp.inner;
    let mut user_claims = if inner.email_in_id_token.load(Ordering::Relaxed) {
        scoped_claims(&user, &grant.scopes)
    } else {
        Map::new()
    };
    if !inner.groups_in_id_token.load(Ordering::Relaxed) {
        user_claims.remove("groups");
    }
    // An Entra user's token names its tenant, and its issuer is that tenant's.
    let issuer = match &user.tid {
        Some(tid) => {
            user_claims.insert("tid".into(), json!(tid));
            idp.tenant_issuer(tid)
        }
        None => idp.inner.issuer.clone(),
    };
    let input = IdTokenInput {
        issuer: &issuer,
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
    let mut id_token = id_token::mint(&input, &keys, &st.misbehaviour).map_err(|e| {
        tracing::error!(error = %e, "dev IdP: cannot mint ID token");
        TokenError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "cannot mint the ID token",
        )
    })?;
    match st.misbehaviour {
        // A captured token from an earlier sign-in instead of this one's.
        Misbehaviour::ReplayIdToken if st.last_id_token.is_some() => {
            id_token = st.last_id_token.clone();
        }
        Misbehaviour::None => st.last_id_token = id_token.clone(),
        _ => {}
    }
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
        .filter(|c| bool::from(c.client_secret.as_bytes().ct_eq(secret.as_bytes())))
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

/// RFC 7636 §4.1 verifier syntax, then BASE64URL(SHA256(verifier)) == challenge.
pub(crate) fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    well_formed && URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == challenge
}

// ---------------------------------------------------------------------------------------
// Userinfo

pub(crate) async fn userinfo(State(idp): State<DevIdp>, headers: HeaderMap) -> Response {
    idp.inner.userinfo_requests.fetch_add(1, Ordering::SeqCst);
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
