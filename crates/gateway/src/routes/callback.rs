use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use tower_sessions::Session;

use super::found;
use crate::AppState;
use crate::client_ip::ClientIp;
use crate::error::Error;
use crate::oidc::{Callback, CallbackParams};
use crate::signin;

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
    // (SECURITY.md rule 7).
    session.save().await?;
    // Before the code exchange: that is the call to the connection's IdP a flood would
    // multiply. The pending login is spent either way; the shopper starts again.
    app.limits.connection_request(pending.connection.as_str())?;
    // The IP goes into the login token only when chosen: BigCommerce refuses the token
    // when it differs from the address the storefront sees (SECURITY.md rules 14, 22).
    let request_ip = client_ip.filter(|_| app.config.server.send_request_ip);
    let signed_in = crate::signout::SignedIn {
        connection: pending.connection.to_string(),
        channel_id: pending.channel_id.0,
    };
    let trial = pending.trial.is_some();
    // The IdP that answered is the one whose redirect URI this is: `complete` refuses a
    // pending login of another connection (mix-up) before any code exchange.
    let callback = Callback::Connection(&connection);
    let url = crate::metrics::time_sign_in(signin::complete(
        &app, pending, callback, params, request_ip,
    ))
    .await?;
    // A new session id once the sign-in is complete (session fixation, SECURITY.md rule 12).
    session.cycle_id().await?;
    // Which IdP to sign out of later (`/logout`). Shoppers browse the storefront, not the
    // gateway, so the session would idle out after the pending-login TTL and sign-out would
    // then skip the IdP: it lives as long as a storefront session may (a few bytes).
    if !trial {
        session
            .insert(crate::routes::logout::SIGNED_IN_KEY, &signed_in)
            .await?;
        session.set_expiry(Some(tower_sessions::Expiry::OnInactivity(
            crate::routes::logout::SIGNED_IN_LIFETIME,
        )));
    }
    Ok(found(url.as_str()))
}
