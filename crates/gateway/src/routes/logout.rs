//! `GET /logout?channel_id=N` and `GET /logout/done`: thin handlers over `signout`, and the
//! sign-out marker cookie a completed sign-in leaves in the browser.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use tower_sessions::Session;
use tower_sessions::cookie::{Cookie, SameSite};

use super::found;
use crate::AppState;
use crate::error::Error;
use crate::signout::{self, Begin, PendingLogout, SIGNED_IN_LIFETIME, SignedIn};

/// Session key under which versions before the marker cookie remembered the sign-in (read
/// by `/logout` only, so a shopper signed in before an upgrade still signs out of the IdP).
const LEGACY_SIGNED_IN_KEY: &str = "signed_in";
const PENDING_LOGOUT_KEY: &str = "pending_logout";

/// The value of `name` in a query, read leniently like `/login`'s (our error page for a bad
/// value, never a framework rejection).
fn param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

pub async fn start(
    State(app): State<Arc<AppState>>,
    session: Session,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, Error> {
    let channel_id = match param(query.as_deref(), "channel_id") {
        None => None,
        Some(v) => Some(v.parse().map_err(|_| Error::BadParameter("channel_id"))?),
    };
    let raw_marker = marker_value(&app, &headers);
    let marker = raw_marker.as_deref().and_then(|v| {
        let api = app.bigcommerce().ok()?;
        api.signout_key.open(v, app.clock.now())
    });
    let legacy: Option<SignedIn> = session.remove(LEGACY_SIGNED_IN_KEY).await?;
    let mut response = match signout::begin(&app, channel_id, marker.or(legacy)).await? {
        Begin::ToIdp { url, pending } => {
            session.insert(PENDING_LOGOUT_KEY, &pending).await?;
            found(url.as_str())
        }
        Begin::ToStorefront(url) => {
            session.flush().await?;
            found(url.as_str())
        }
    };
    // Spent either way: a second `/logout` goes straight to the storefront's sign-out.
    if raw_marker.is_some() {
        add_cookie(
            &mut response,
            marker_cookie(&app, String::new(), time::Duration::ZERO),
        );
    }
    Ok(response)
}

pub async fn done(
    State(app): State<Arc<AppState>>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Response, Error> {
    let pending: Option<PendingLogout> = session.remove(PENDING_LOGOUT_KEY).await?;
    let state = param(query.as_deref(), "state");
    let url = signout::finish(&app, pending, state.as_deref())?;
    session.flush().await?;
    Ok(found(url.as_str()))
}

/// Adds the sign-out marker of a completed sign-in to its redirect.
pub fn remember_sign_in(app: &AppState, response: &mut Response, signed_in: &SignedIn) {
    let Ok(api) = app.bigcommerce() else {
        return;
    };
    let sealed = api.signout_key.seal(signed_in, app.clock.now());
    add_cookie(response, marker_cookie(app, sealed, SIGNED_IN_LIFETIME));
}

/// The marker's cookie name: `__Host-` when served over https, like the session cookie's.
fn marker_name(app: &AppState) -> &'static str {
    if app.config.server.public_url.scheme() == "https" {
        "__Host-bcsso-out"
    } else {
        "bcsso_out"
    }
}

/// The marker cookie's value in this request, valid or not.
fn marker_value(app: &AppState, headers: &HeaderMap) -> Option<String> {
    let name = marker_name(app);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// HttpOnly, SameSite=Lax (the storefront's sign-out link is a top-level GET from its
/// site), Secure with `__Host-` on https, like the session cookie (SECURITY.md rule 12).
fn marker_cookie(app: &AppState, value: String, max_age: time::Duration) -> Cookie<'static> {
    Cookie::build((marker_name(app), value))
        .path("/")
        .http_only(true)
        .secure(app.config.server.public_url.scheme() == "https")
        .same_site(SameSite::Lax)
        .max_age(max_age)
        .build()
}

fn add_cookie(response: &mut Response, cookie: Cookie<'static>) {
    if let Ok(v) = HeaderValue::from_str(&cookie.encoded().to_string()) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}
