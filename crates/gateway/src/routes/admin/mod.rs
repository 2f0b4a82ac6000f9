//! The admin console (server-rendered, usable without JavaScript) and the JSON admin API.
//! Admin sessions use their own cookie and store, apart from shoppers' sessions.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::Json;
use axum::Router;
use axum::extract::{Path, RawForm, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

use super::{found, render, see_other};
use crate::AppState;
use crate::admin::{self, AdminSession};
use crate::client_ip::ClientIp;
use crate::config::RawConnection;
use crate::diagnostics::{self, Check};
use crate::error::Error;
use crate::store::{AuditEvent, AuditFilter, AuditKind, IdentityLink};

mod access;
mod api;
mod checks;
mod connections;
mod pages;
mod store;

use access::*;
use api::*;
use checks::*;
use connections::*;
use pages::*;
use store::*;

pub fn router(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    let https = state.config.server.public_url.scheme() == "https";
    // Lax, not Strict: the admin SSO callback is a top-level GET from the IdP's site, and
    // a Strict cookie would not come with it. Cross-site POSTs still carry no cookie, and
    // every form has a CSRF token. The path keeps the cookie away from shopper pages.
    let sessions = SessionManagerLayer::new(state.admin_sessions.clone())
        .with_name(if https {
            "__Secure-bcsso-admin"
        } else {
            "bcsso-admin"
        })
        .with_secure(https)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_path("/admin")
        // Anonymous sessions (the sign-in form's CSRF token, a pending SSO sign-in) live as
        // long as a pending login; signing in gives the session the admin's absolute
        // lifetime (`admin_session::establish`). Nothing anonymous gets the long one.
        .with_expiry(Expiry::OnInactivity(time::Duration::seconds(
            state.config.server.pending_login_ttl.as_secs() as i64,
        )));
    // Signing in counts against the client's sign-in requests like a shopper's (it creates
    // sessions and starts IdP sign-ins), and a client out of failed admin attempts is
    // refused before its token or callback is looked at.
    let sign_in = Router::new()
        .route("/login", get(login_page).post(login))
        .route("/sso", get(sso_start))
        .route("/oidc/callback", get(sso_callback))
        .route_layer(from_fn_with_state(
            state.clone(),
            crate::rate_limit::sign_in_requests,
        ))
        .route_layer(from_fn_with_state(
            state.clone(),
            crate::rate_limit::admin_attempts,
        ));
    let pages = Router::new()
        .route("/", get(dashboard))
        .merge(sign_in)
        .route("/logout", post(logout))
        .route("/sessions/revoke", post(sign_out_all))
        .route("/links", get(links))
        .route("/links/remove", post(remove_link))
        .route("/audit", get(audit))
        .route(
            "/connections/new",
            get(new_connection).post(create_connection),
        )
        .route(
            "/connections/{id}/edit",
            get(edit_connection).post(update_connection),
        )
        .route("/connections/{id}/enable", post(enable_connection))
        .route("/connections/{id}/disable", post(disable_connection))
        .route("/connections/{id}/delete", post(delete_connection))
        .route("/connections/{id}/try", post(try_sign_in))
        .route("/trials/{ticket}", get(trial_report))
        .route("/store", get(store_settings_page).post(save_store_settings))
        .route(
            "/access",
            get(access_settings_page).post(save_access_settings),
        )
        .route("/checks/store", get(check_store))
        .route("/checks/connections/{id}", get(check_connection))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            admin_session,
        ))
        .layer(sessions);
    let api = Router::new()
        .route("/links", get(api_links).delete(api_remove_link))
        .route("/audit", get(api_audit))
        .route(
            "/connections",
            get(api_connections).post(api_create_connection),
        )
        .route(
            "/connections/{id}",
            axum::routing::put(api_update_connection).delete(api_delete_connection),
        )
        .route("/store", get(api_store).put(api_update_store))
        .route("/access", get(api_access).put(api_update_access))
        .route("/checks/store", get(api_check_store))
        .route("/checks/connections/{id}", get(api_check_connection))
        .route("/sessions/revoke", post(api_sign_out_all))
        // Every API route, whatever its handler checks: the token, then (outermost) the
        // client's budget of failed attempts.
        .route_layer(from_fn_with_state(state.clone(), api_token))
        .route_layer(from_fn_with_state(
            state.clone(),
            crate::rate_limit::admin_attempts,
        ));
    pages.nest("/api", api)
}

/// Around every console request: the session's admin is checked again first (lifetime,
/// "sign out all", allow-lists; an invalid session is ended), and a session written to
/// keeps the admin's absolute expiry.
async fn admin_session(
    State(app): State<Arc<AppState>>,
    session: Session,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Err(e) = admin::revalidate(&app, &session).await {
        return e.into_response();
    }
    let response = next.run(request).await;
    if let Err(e) = admin::keep_lifetime(&app, &session).await {
        return e.into_response();
    }
    response
}

/// The admin signed in to this session ([`admin_session`] has checked it this request).
pub(super) async fn signed_in(session: &Session) -> Result<AdminSession, Error> {
    admin::current(session)
        .await?
        .ok_or(Error::AdminSignInRequired)
}

/// A connection by id, enabled or not: an admin tests one before enabling it.
pub(super) fn any_connection(
    app: &AppState,
    id: String,
) -> Result<crate::config::Connection, Error> {
    app.connections.any(&id).ok_or(Error::UnknownConnection(id))
}

// ---------------------------------------------------------------------------------------
// Input

/// Form or query fields; a field given twice is refused rather than guessed.
pub(super) fn fields(body: &[u8]) -> Result<HashMap<String, String>, Error> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if out.insert(k.to_string(), v.into_owned()).is_some() {
            // `{:?}`: the name is the client's text, and goes to the log (rule 25).
            return Err(Error::AdminInput(format!("field {k:?} is given twice")));
        }
    }
    Ok(out)
}

pub(super) fn link_key(f: &HashMap<String, String>) -> Result<(&str, &str), Error> {
    match (f.get("issuer"), f.get("subject")) {
        (Some(i), Some(s)) if !i.is_empty() && !s.is_empty() => Ok((i, s)),
        _ => Err(Error::AdminInput("issuer and subject are required".into())),
    }
}

/// `from`/`to` are dates (`2026-11-26`, whole days in UTC) or Unix seconds.
pub(super) fn audit_filter(q: &HashMap<String, String>) -> Result<AuditFilter, Error> {
    let nonempty = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let kind = match nonempty("kind") {
        Some(k) => Some(
            AuditKind::parse(k)
                .ok_or_else(|| Error::AdminInput(format!("unknown event kind {k:?}")))?,
        ),
        None => None,
    };
    Ok(AuditFilter {
        from: nonempty("from").map(|v| parse_time(v, false)).transpose()?,
        to: nonempty("to").map(|v| parse_time(v, true)).transpose()?,
        connection: nonempty("connection").map(str::to_owned),
        kind,
        email: nonempty("email").map(str::to_owned),
        limit: nonempty("limit")
            .map(|v| {
                v.parse()
                    .map_err(|_| Error::AdminInput("limit must be a number".into()))
            })
            .transpose()?
            .unwrap_or(200),
    })
}

pub(super) fn parse_time(v: &str, end_of_day: bool) -> Result<i64, Error> {
    if let Ok(secs) = v.parse::<i64>() {
        return Ok(secs);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(v, &format)
        .map_err(|_| Error::AdminInput(format!("{v:?} is not a date (YYYY-MM-DD)")))?;
    let start = date.midnight().assume_utc().unix_timestamp();
    Ok(if end_of_day { start + 86_399 } else { start })
}

pub(super) fn fmt_time(unix: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_filters() -> Result<(), Error> {
        assert_eq!(parse_time("2026-11-26", false)?, 1_795_651_200);
        assert_eq!(parse_time("2026-11-26", true)?, 1_795_651_200 + 86_399);
        assert_eq!(parse_time("1234", false)?, 1234);
        assert!(parse_time("26/11/2026", false).is_err());
        assert_eq!(fmt_time(1_795_651_200), "2026-11-26 00:00:00 UTC");
        let f = audit_filter(&fields(b"kind=sign_in_refused&email=ada&limit=5")?)?;
        assert_eq!(
            (f.kind, f.email.as_deref(), f.limit),
            (Some(AuditKind::SignInRefused), Some("ada"), 5)
        );
        assert!(audit_filter(&fields(b"kind=nope")?).is_err());
        assert!(fields(b"a=1&a=2").is_err());
        Ok(())
    }
}
