//! `GET /logout?channel_id=N` and `GET /logout/done`: thin handlers over `signout`.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use tower_sessions::Session;

use super::found;
use crate::AppState;
use crate::error::Error;
use crate::signout::{self, Begin, PendingLogout, SignedIn};

/// Session key of what a completed sign-in remembers for sign-out.
pub const SIGNED_IN_KEY: &str = "signed_in";
/// How long a signed-in shopper's gateway session (for sign-out) lasts without use.
pub const SIGNED_IN_LIFETIME: time::Duration = time::Duration::hours(12);
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
    RawQuery(query): RawQuery,
) -> Result<Response, Error> {
    let channel_id = match param(query.as_deref(), "channel_id") {
        None => None,
        Some(v) => Some(v.parse().map_err(|_| Error::BadParameter("channel_id"))?),
    };
    let signed_in: Option<SignedIn> = session.remove(SIGNED_IN_KEY).await?;
    match signout::begin(&app, channel_id, signed_in).await? {
        Begin::ToIdp { url, pending } => {
            session.insert(PENDING_LOGOUT_KEY, &pending).await?;
            Ok(found(url.as_str()))
        }
        Begin::ToStorefront(url) => {
            session.flush().await?;
            Ok(found(url.as_str()))
        }
    }
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
