use std::net::SocketAddr;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use tower_sessions::Session;

use super::found;
use crate::AppState;
use crate::error::Error;
use crate::oidc::CallbackParams;
use crate::signin;

/// `GET /oidc/callback?code&state[&iss]`: finishes a sign-in.
pub async fn finish(
    State(app): State<Arc<AppState>>,
    session: Session,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
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
    let peer = peer.map(|Extension(ConnectInfo(addr))| addr.ip());
    let client_ip = crate::client_ip::resolve(app.config.server.request_ip, peer, &headers);
    let url = signin::complete(&app, pending, params, client_ip).await?;
    // A new session id once the sign-in is complete (session fixation, SECURITY.md rule 12).
    session.cycle_id().await?;
    Ok(found(url.as_str()))
}
