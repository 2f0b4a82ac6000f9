//! Sign-out as the shopper lives it, without HTTP: first the company sign-in at the IdP
//! (OpenID Connect RP-Initiated Logout, when the IdP publishes an `end_session_endpoint`),
//! then the storefront session (BigCommerce's `/login.php?action=logout`). The storefront
//! comes last because it does not send the browser back.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::AppState;
use crate::error::Error;

/// Remembered in the shopper's gateway session when a sign-in completes: which IdP to sign
/// out of later. No token: the IdP is told who the client is with `client_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIn {
    pub connection: String,
    pub channel_id: i64,
}

/// Between `/logout` and the IdP's return to `/logout/done`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLogout {
    state: String,
    channel_id: i64,
}

impl std::fmt::Debug for PendingLogout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLogout")
            .field("channel_id", &self.channel_id)
            .finish_non_exhaustive()
    }
}

pub enum Begin {
    /// Send the browser to the IdP's end-session endpoint; remember `pending`.
    ToIdp { url: Url, pending: PendingLogout },
    /// No IdP to sign out of: straight to the storefront's sign-out.
    ToStorefront(Url),
}

/// `/logout?channel_id=N`. `signed_in` is what this browser's session remembers of its
/// sign-in, if anything (a shopper who signed in with a password has nothing there).
pub async fn begin(
    app: &AppState,
    channel_id: Option<i64>,
    signed_in: Option<SignedIn>,
) -> Result<Begin, Error> {
    let channel_id = channel_id
        .or(signed_in.as_ref().map(|s| s.channel_id))
        .unwrap_or(1);
    let storefront = storefront_logout(app, channel_id)?;
    // Only a connection that still exists and is enabled, and only its published endpoint
    // (checked with every other URL of its discovery document before anything was fetched).
    let Some(conn) = signed_in.and_then(|s| app.connections.get(&s.connection)) else {
        return Ok(Begin::ToStorefront(storefront));
    };
    let end_session = match app.oidc.metadata(&conn).await {
        Ok(metadata) => metadata
            .additional_metadata()
            .end_session_endpoint
            .as_deref()
            .and_then(|e| Url::parse(e).ok()),
        // The IdP being down must not keep the shopper signed in to the store.
        Err(e) => {
            tracing::warn!(connection = %conn.id, reason = e.code(), "no IdP sign-out: metadata unavailable");
            None
        }
    };
    let Some(mut url) = end_session else {
        return Ok(Begin::ToStorefront(storefront));
    };
    let pending = PendingLogout {
        state: crate::admin::random_token(),
        channel_id,
    };
    url.query_pairs_mut()
        .append_pair("client_id", &conn.client_id)
        .append_pair(
            "post_logout_redirect_uri",
            app.config.post_logout_redirect_uri().as_str(),
        )
        .append_pair("state", &pending.state);
    tracing::info!(connection = %conn.id, channel_id, "sign-out at the IdP started");
    Ok(Begin::ToIdp { url, pending })
}

/// `/logout/done?state=…`: the IdP signed the shopper out; now the storefront. A missing or
/// foreign `state` still ends at a configured storefront's sign-out (signing out is never
/// harmful, and the URL is never taken from the request).
pub fn finish(
    app: &AppState,
    pending: Option<PendingLogout>,
    state: Option<&str>,
) -> Result<Url, Error> {
    let channel_id = match pending {
        Some(p) if state.is_some_and(|s| crate::domain::same_secret(s, &p.state)) => p.channel_id,
        _ => {
            tracing::info!("sign-out returned without its state; using the default storefront");
            1
        }
    };
    storefront_logout(app, channel_id)
}

/// BigCommerce's storefront sign-out for a configured channel (CONTRACT.md §5.2).
fn storefront_logout(app: &AppState, channel_id: i64) -> Result<Url, Error> {
    let api = app.bigcommerce()?;
    let channel = api
        .settings
        .channels
        .get(&channel_id)
        .or_else(|| api.settings.channels.values().next())
        .ok_or(Error::UnknownChannel(channel_id))?;
    let mut url = crate::config::join_path(&channel.storefront_url, "login.php");
    url.set_query(Some("action=logout"));
    Ok(url)
}
