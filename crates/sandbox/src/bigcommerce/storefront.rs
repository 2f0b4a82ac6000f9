//! One channel's storefront (CONTRACT.md §5, §8 items 15-16): home, sign-in page, account
//! page, and the Customer Login access point `GET /login/token/{jwt}`.
//!
//! The token check is written from CONTRACT.md §5.2 and shares no code with the gateway's
//! minting code.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::MutexGuard;

use askama::Template;
use axum::Router;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rand::RngCore as _;
use serde::Deserialize;
use serde_json::Value;

use super::{Emulator, LoginAttempt, LoginOutcome, RefusalReason};
use bigcommerce_wire::CustomerFull;

/// BigCommerce's storefront session cookie name.
pub(super) const SESSION_COOKIE: &str = "SHOP_SESSION_TOKEN";
/// "only valid for 30 seconds" (CONTRACT.md §5.2); applied both ways since future tolerance is unconfirmed.
const IAT_WINDOW_SECS: i64 = 30;
/// How far ahead of the store's clock an `iat` may be: none but a clock's own jitter.
const IAT_FUTURE_SECS: i64 = 2;
const DEFAULT_REDIRECT: &str = "/account.php";
const LOGOUT_REDIRECT: &str = "/login.php?action=logout";
/// Where a refused token lands (CONTRACT.md §5.2: `/login.php` with an error, never JSON).
const FAILED_LOGIN: &str = "/login.php?error=invalid_login";

#[derive(Clone)]
struct Shop {
    emu: Emulator,
    channel_id: i64,
}

pub(super) fn router(emu: Emulator, channel_id: i64) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/login.php", get(login_page).post(login_post))
        .route("/login/token/{jwt}", get(login_token))
        .route("/account.php", get(account))
        .with_state(Shop { emu, channel_id })
}

// ------------------------------------------------------------------------ pages

struct Layout {
    store_name: String,
    channel_name: String,
    channel_id: i64,
    signed_in_email: Option<String>,
    /// The gateway whose button script every page loads, as a merchant's Script Manager
    /// entry for "All pages" would.
    gateway_url: Option<String>,
}

#[derive(Template)]
#[template(path = "storefront/home.html")]
struct HomePage {
    layout: Layout,
}

#[derive(Template)]
#[template(path = "storefront/login.html")]
struct LoginPage {
    layout: Layout,
    login_failed: bool,
    password_unavailable: bool,
}

#[derive(Template)]
#[template(path = "storefront/account.html")]
struct AccountPage {
    layout: Layout,
    email: String,
    first_name: String,
    last_name: String,
    customer_id: i64,
}

fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "emulator storefront: template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal error").into_response()
        }
    }
}

fn redirect(to: &str) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

impl Shop {
    fn layout(&self, customer: Option<&CustomerFull>) -> Layout {
        let config = self.emu.config();
        Layout {
            store_name: config.store_name.clone(),
            channel_name: self
                .emu
                .channel(self.channel_id)
                .map(|c| c.name.clone())
                .unwrap_or_else(|| format!("Channel {}", self.channel_id)),
            channel_id: self.channel_id,
            signed_in_email: customer.map(|c| c.email.clone()),
            gateway_url: gateway_base(self),
        }
    }

    /// The customer signed in on this channel, if any.
    fn current_customer(&self, headers: &HeaderMap) -> Option<CustomerFull> {
        let session = session_id(headers)?;
        let st = self.emu.lock();
        let customer_id = *st.sessions.get(&session)?.get(&self.channel_id)?;
        st.store.customers.get(&customer_id).map(|c| c.full.clone())
    }
}

async fn home(State(shop): State<Shop>, headers: HeaderMap) -> Response {
    let customer = shop.current_customer(&headers);
    render(&HomePage {
        layout: shop.layout(customer.as_ref()),
    })
}

#[derive(Deserialize)]
struct LoginQuery {
    action: Option<String>,
    error: Option<String>,
}

async fn login_page(
    State(shop): State<Shop>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    if q.action.as_deref() == Some("logout") {
        return sign_out(&shop, &headers, "/");
    }
    let customer = shop.current_customer(&headers);
    render(&LoginPage {
        layout: shop.layout(customer.as_ref()),
        // Any error code shows the one fixed sentence; the code itself is never echoed.
        login_failed: q.error.is_some(),
        password_unavailable: false,
    })
}

/// The Cornerstone form posts here; the emulator has no passwords.
async fn login_post(State(shop): State<Shop>, headers: HeaderMap) -> Response {
    let customer = shop.current_customer(&headers);
    render(&LoginPage {
        layout: shop.layout(customer.as_ref()),
        login_failed: false,
        password_unavailable: true,
    })
}

/// The gateway URL without a trailing `/`, so `{gateway}/static/…` has one slash.
fn gateway_base(shop: &Shop) -> Option<String> {
    shop.emu
        .config()
        .gateway_url
        .as_ref()
        .map(|u| u.as_str().trim_end_matches('/').to_owned())
}

async fn account(State(shop): State<Shop>, headers: HeaderMap) -> Response {
    let Some(customer) = shop.current_customer(&headers) else {
        return redirect("/login.php");
    };
    render(&AccountPage {
        layout: shop.layout(Some(&customer)),
        email: customer.email,
        first_name: customer.first_name,
        last_name: customer.last_name,
        customer_id: customer.id,
    })
}

// ------------------------------------------------------------------------ sessions

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

fn new_session_id() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn session_cookie(id: &str, clear: bool) -> Option<HeaderValue> {
    let max_age = if clear { "; Max-Age=0" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax{max_age}"
    ))
    .ok()
}

fn sign_out(shop: &Shop, headers: &HeaderMap, to: &str) -> Response {
    let mut response = redirect(to);
    if let Some(id) = session_id(headers) {
        let mut st = shop.emu.lock();
        let now_empty = st.sessions.get_mut(&id).is_some_and(|s| {
            s.remove(&shop.channel_id);
            s.is_empty()
        });
        if now_empty {
            st.sessions.remove(&id);
            drop(st);
            if let Some(v) = session_cookie("", true) {
                response.headers_mut().insert(header::SET_COOKIE, v);
            }
        }
    }
    response
}

// ------------------------------------------------------------------------ /login/token/{jwt}

/// What a token proved before the stateful checks.
struct Signed {
    jti: String,
    claims: Result<Claims, RefusalReason>,
}

/// The claims of CONTRACT.md §5.2, read from the raw JSON by their documented names, not
/// through the gateway's wire type: a misspelt field there must fail here.
struct Claims {
    iss: String,
    iat: i64,
    operation: String,
    store_hash: String,
    customer_id: i64,
    channel_id: Option<i64>,
    redirect_to: Option<String>,
    request_ip: Option<String>,
}

impl Claims {
    fn read(claims: &Value) -> Result<Self, RefusalReason> {
        let bad = RefusalReason::InvalidClaims;
        let string = |key: &str| claims.get(key).and_then(Value::as_str).map(str::to_owned);
        // `customer_id` and `iat` are JSON numbers; a string "42" is not accepted.
        let int = |key: &str| claims.get(key).and_then(Value::as_i64);
        let optional = |key: &str, ok: fn(&Value) -> bool| match claims.get(key) {
            None | Some(Value::Null) => Ok(()),
            Some(v) if ok(v) => Ok(()),
            Some(_) => Err(bad),
        };
        optional("channel_id", |v| v.is_i64())?;
        optional("redirect_to", Value::is_string)?;
        optional("request_ip", Value::is_string)?;
        Ok(Claims {
            iss: string("iss").ok_or(bad)?,
            iat: int("iat").ok_or(bad)?,
            operation: string("operation").ok_or(bad)?,
            store_hash: string("store_hash").ok_or(bad)?,
            customer_id: int("customer_id").ok_or(bad)?,
            channel_id: int("channel_id"),
            redirect_to: string("redirect_to"),
            request_ip: string("request_ip"),
        })
    }
}

/// Stateless part of CONTRACT.md §5.2: HS256 only, signed with the client secret.
fn verify_signature(token: &str, secret: &str) -> Result<Signed, RefusalReason> {
    // Read `alg` ourselves so `none` and RS/ES tokens get their own reason instead of a
    // generic parse error; the library check below enforces HS256 as well.
    let header_b64 = token.split('.').next().ok_or(RefusalReason::Malformed)?;
    let header: Value = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header_b64.trim_end_matches('='))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(RefusalReason::Malformed)?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err(RefusalReason::WrongAlgorithm);
    }
    // BigCommerce tokens carry no exp/aud (CONTRACT.md §5.2): validity comes from `iat`.
    let mut validation = Validation::new(Algorithm::HS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let data = jsonwebtoken::decode::<Value>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::InvalidSignature => RefusalReason::BadSignature,
        jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => RefusalReason::WrongAlgorithm,
        _ => RefusalReason::Malformed,
    })?;
    let jti = data
        .claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty())
        .ok_or(RefusalReason::MissingJti)?
        .to_owned();
    let claims = Claims::read(&data.claims);
    Ok(Signed { jti, claims })
}

/// `redirect_to` must be a path on this storefront: one leading `/`, no scheme or host,
/// no `//` or `/\` (browsers read both as a host), no control characters.
fn is_relative_path(p: &str) -> bool {
    p.starts_with('/')
        && !p.starts_with("//")
        && !p.contains('\\')
        && !p.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// Compared as text against the client address in canonical form (`203.0.113.9`, not
/// `::ffff:203.0.113.9`): how BigCommerce compares is unconfirmed, so the strict reading.
fn ip_matches(claimed: &str, client: Option<IpAddr>) -> bool {
    match client {
        Some(client) => claimed == client.to_canonical().to_string(),
        // No ConnectInfo (router not served with it): refuse rather than skip the check.
        None => false,
    }
}

async fn login_token(
    State(shop): State<Shop>,
    Path(token): Path<String>,
    parts: Parts,
) -> Response {
    let client_ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let config = shop.emu.config();
    let now = shop.emu.now().unix_timestamp();
    let signed = verify_signature(&token, &config.client_secret);

    let mut st = shop.emu.lock();
    let (jti, result) = match signed {
        Err(reason) => (None, Err(reason)),
        Ok(Signed { jti, claims }) => {
            // Consumed on first GET, refused or not (CONTRACT.md §5.2, §8 item 16).
            let fresh = st.seen_jti.insert(jti.clone());
            let result = if !fresh {
                Err(RefusalReason::ReplayedJti)
            } else {
                claims.and_then(|c| {
                    let checks = || -> Result<(i64, String), RefusalReason> {
                        if c.iss != config.client_id {
                            return Err(RefusalReason::WrongIssuer);
                        }
                        if c.operation != "customer_login" {
                            return Err(RefusalReason::WrongOperation);
                        }
                        if c.store_hash != config.store_hash {
                            return Err(RefusalReason::WrongStoreHash);
                        }
                        if now - c.iat > IAT_WINDOW_SECS {
                            return Err(RefusalReason::StaleIat);
                        }
                        if c.iat - now > IAT_FUTURE_SECS {
                            return Err(RefusalReason::IatInTheFuture);
                        }
                        let customer = st
                            .store
                            .customers
                            .get(&c.customer_id)
                            .ok_or(RefusalReason::UnknownCustomer)?;
                        if c.channel_id.unwrap_or(1) != shop.channel_id {
                            return Err(RefusalReason::WrongChannel);
                        }
                        let allowed = match &customer.full.channel_ids {
                            None => shop
                                .emu
                                .channel(shop.channel_id)
                                .is_some_and(|ch| ch.allow_global_logins),
                            Some(ids) => ids.contains(&shop.channel_id),
                        };
                        if !allowed {
                            return Err(RefusalReason::ChannelNotAllowed);
                        }
                        if let Some(ip) = &c.request_ip
                            && !ip_matches(ip, client_ip)
                        {
                            return Err(RefusalReason::RequestIpMismatch);
                        }
                        let to = c
                            .redirect_to
                            .clone()
                            .unwrap_or_else(|| DEFAULT_REDIRECT.to_owned());
                        if !is_relative_path(&to) {
                            return Err(RefusalReason::BadRedirect);
                        }
                        Ok((c.customer_id, to))
                    };
                    checks()
                })
            };
            (Some(jti), result)
        }
    };

    let channel_id = shop.channel_id;
    match result {
        Err(reason) => {
            record(st, channel_id, jti, LoginOutcome::Refused { reason });
            redirect(FAILED_LOGIN)
        }
        Ok((customer_id, to)) if to == LOGOUT_REDIRECT => {
            let outcome = LoginOutcome::LoggedOut {
                customer_id,
                channel_id,
            };
            record(st, channel_id, jti, outcome);
            sign_out(&shop, &parts.headers, "/login.php")
        }
        Ok((customer_id, to)) => {
            // A fresh session id on every sign-in (no fixation); sign-ins on other
            // channels sharing the browser's cookie are carried over.
            let mut channels: HashMap<i64, i64> = session_id(&parts.headers)
                .and_then(|old| st.sessions.remove(&old))
                .unwrap_or_default();
            channels.insert(channel_id, customer_id);
            let id = new_session_id();
            st.sessions.insert(id.clone(), channels);
            let outcome = LoginOutcome::Ok {
                customer_id,
                channel_id,
            };
            record(st, channel_id, jti, outcome);
            let mut response = redirect(&to);
            if let Some(v) = session_cookie(&id, false) {
                response.headers_mut().insert(header::SET_COOKIE, v);
            }
            response
        }
    }
}

/// Records a login token's use for the tests and the demo, then logs it once the store is
/// released.
fn record(
    mut st: MutexGuard<'_, super::State>,
    channel_id: i64,
    jti: Option<String>,
    outcome: LoginOutcome,
) {
    st.login_attempts.push(LoginAttempt {
        storefront_channel_id: channel_id,
        jti,
        outcome: outcome.clone(),
    });
    drop(st);
    match outcome {
        LoginOutcome::Refused { reason } => tracing::info!(
            channel_id,
            reason = reason.as_str(),
            "emulator storefront: customer login refused"
        ),
        LoginOutcome::LoggedOut { customer_id, .. } => tracing::info!(
            channel_id,
            customer_id,
            "emulator storefront: customer logged out by token"
        ),
        LoginOutcome::Ok { customer_id, .. } => tracing::info!(
            channel_id,
            customer_id,
            "emulator storefront: customer signed in"
        ),
    }
}

#[cfg(test)]
#[path = "storefront_tests.rs"]
mod tests;
