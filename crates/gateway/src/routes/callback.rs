use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use tower_sessions::Session;

use super::found;
use crate::AppState;
use crate::client_ip::ClientIp;
use crate::domain::same_secret;
use crate::error::Error;
use crate::oidc::{Callback, CallbackParams};
use crate::signin::{self, Completed, WaitTicket};
use crate::signout::SignedIn;

/// Where the session keeps the sign-in on the waiting page (one; a newer one replaces it).
const WAITING_KEY: &str = "sw";

/// `GET /oidc/callback/{connection}?code&state[&iss]`: finishes a sign-in.
pub async fn finish(
    State(app): State<Arc<AppState>>,
    session: Session,
    Path(connection): Path<String>,
    RawQuery(query): RawQuery,
    ClientIp(client_ip): ClientIp,
) -> Result<Response, Error> {
    let params = CallbackParams::parse_strict(query.as_deref()).map_err(Error::CallbackParams)?;
    let state = params.state.as_deref().ok_or(Error::PendingLoginMissing)?;
    let pending = crate::pending::take(&session, state)
        .await?
        .ok_or(Error::PendingLoginMissing)?;
    // Persist the removal now: tower-sessions skips saving when the response is a 5xx, and
    // a failed code exchange or BigCommerce outage must not leave the state reusable
    // (SECURITY.md rule 7). A session left with nothing (no other tab's sign-in) goes.
    if session.is_empty().await {
        session.flush().await?;
    } else {
        session.save().await?;
    }
    // Before the code exchange: that is the call to the connection's IdP a flood would
    // multiply. The pending login is spent either way; the shopper starts again.
    app.limits.connection_request(pending.connection.as_str())?;
    // The IP goes into the login token only when chosen: BigCommerce refuses the token
    // when it differs from the address the storefront sees (SECURITY.md rules 14, 22).
    let request_ip = client_ip.filter(|_| app.config.server.send_request_ip);
    let signed_in = pending.trial.is_none().then(|| SignedIn {
        connection: pending.connection.to_string(),
        channel_id: pending.channel_id.0,
    });
    // The IdP that answered is the one whose redirect URI this is: `complete` refuses a
    // pending login of another connection (mix-up) before any code exchange.
    let callback = Callback::Connection(&connection);
    let completed = crate::metrics::time_sign_in(signin::complete(
        &app, pending, callback, params, request_ip,
    ))
    .await?;
    respond(&app, &session, completed, signed_in).await
}

/// `GET /login/wait?t=<ticket>`: the waiting page of a first sign-in still being set up.
/// It refreshes itself (no script needed) until the sign-in is done, then redirects to the
/// storefront like the callback would have.
pub async fn wait(
    State(app): State<Arc<AppState>>,
    session: Session,
    RawQuery(query): RawQuery,
    ClientIp(client_ip): ClientIp,
) -> Result<Response, Error> {
    let presented = url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "t")
        .map(|(_, v)| v.into_owned())
        .ok_or(Error::PendingLoginMissing)?;
    let ticket: WaitTicket = session
        .get(WAITING_KEY)
        .await?
        .filter(|t: &WaitTicket| same_secret(&presented, &t.ticket))
        .ok_or(Error::PendingLoginMissing)?;
    let signed_in = Some(SignedIn {
        connection: ticket.connection().to_owned(),
        channel_id: ticket.channel_id(),
    });
    let request_ip = client_ip.filter(|_| app.config.server.send_request_ip);
    match signin::resume(&app, ticket, request_ip).await {
        Ok(completed) => respond(&app, &session, completed, signed_in).await,
        Err(e) => {
            session.remove::<WaitTicket>(WAITING_KEY).await?;
            session.save().await?;
            Err(e)
        }
    }
}

#[derive(Template)]
#[template(path = "waiting.html")]
struct WaitingPage<'a> {
    resume_url: &'a str,
    refresh_secs: u64,
}

/// The redirect to the storefront, or the waiting page.
async fn respond(
    app: &AppState,
    session: &Session,
    completed: Completed,
    signed_in: Option<SignedIn>,
) -> Result<Response, Error> {
    let url = match completed {
        Completed::SignedIn(url) => url,
        Completed::Waiting(ticket) => {
            let resume_url = format!("/login/wait?t={}", ticket.ticket);
            session.insert(WAITING_KEY, &ticket).await?;
            let page = WaitingPage {
                resume_url: &resume_url,
                refresh_secs: 1,
            };
            // Not cached (every gateway page is `no-store`): each refresh asks again.
            return Ok(super::render(&page));
        }
    };
    session.remove::<WaitTicket>(WAITING_KEY).await?;
    // Session fixation (SECURITY.md rule 12): the completed sign-in's session ends; one
    // still holding another tab's pending sign-in goes on under a new id.
    if session.is_empty().await {
        session.flush().await?;
    } else {
        session.cycle_id().await?;
    }
    let mut response = found(url.as_str());
    // Which IdP to sign out of later (`/logout`), for as long as a storefront session may
    // last: a signed cookie, not 12 hours of server-side session per sign-in.
    if let Some(signed_in) = signed_in {
        super::logout::remember_sign_in(app, &mut response, &signed_in);
    }
    Ok(response)
}
