//! Sign-out as the shopper lives it, without HTTP: first the company sign-in at the IdP
//! (OpenID Connect RP-Initiated Logout, when the IdP publishes an `end_session_endpoint`),
//! then the storefront session (BigCommerce's `/login.php?action=logout`). The storefront
//! comes last because it does not send the browser back.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::AppState;
use crate::error::Error;

/// Remembered in the shopper's browser when a sign-in completes: which IdP to sign out of
/// later. No token: the IdP is told who the client is with `client_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIn {
    #[serde(rename = "c", alias = "connection")]
    pub connection: String,
    #[serde(rename = "h", alias = "channel_id")]
    pub channel_id: i64,
}

/// How long a sign-in is remembered for sign-out: as long as a storefront session may last.
pub const SIGNED_IN_LIFETIME: time::Duration = time::Duration::hours(12);

/// Signs and checks the sign-out marker: a [`SignedIn`] kept in a cookie rather than in a
/// server-side session, so a completed sign-in leaves nothing behind in the session store
/// for 12 hours (it would grow with every sign-in) and needs no session write.
///
/// The key is derived from the store's API client secret, which every replica of a store
/// shares and which already signs the login tokens: a marker set by one replica is read
/// by any other, and a changed secret only makes older markers skip the IdP's sign-out.
pub struct MarkerKey(ring::hmac::Key);

/// What the key is derived for, so it is not the client secret's own HMAC of anything.
const MARKER_LABEL: &[u8] = b"bc-sso-gateway sign-out marker v1";

#[derive(Serialize, Deserialize)]
struct Marker {
    #[serde(flatten)]
    signed_in: SignedIn,
    /// Unix seconds after which the marker is void.
    #[serde(rename = "e")]
    expires_at: i64,
}

impl MarkerKey {
    pub fn derive(client_secret: &str) -> Self {
        let outer = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, client_secret.as_bytes());
        let derived = ring::hmac::sign(&outer, MARKER_LABEL);
        Self(ring::hmac::Key::new(
            ring::hmac::HMAC_SHA256,
            derived.as_ref(),
        ))
    }

    /// `base64url(json) "." base64url(tag)`: cookie-safe, a few dozen bytes.
    pub fn seal(&self, signed_in: &SignedIn, now: i64) -> String {
        let marker = Marker {
            signed_in: signed_in.clone(),
            expires_at: now + SIGNED_IN_LIFETIME.whole_seconds(),
        };
        // A struct of a string and two integers always serializes.
        let json = serde_json::to_vec(&marker).unwrap_or_default();
        let body = URL_SAFE_NO_PAD.encode(json);
        let tag = ring::hmac::sign(&self.0, body.as_bytes());
        format!("{body}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The marker's sign-in, if `text` is a marker this key sealed and it has not expired.
    pub fn open(&self, text: &str, now: i64) -> Option<SignedIn> {
        // Far longer than any marker: nothing bigger is decoded.
        if text.len() > 512 {
            return None;
        }
        let (body, tag) = text.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        ring::hmac::verify(&self.0, body.as_bytes(), &tag).ok()?;
        let marker: Marker = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        (now < marker.expires_at).then_some(marker.signed_in)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn signed_in() -> SignedIn {
        SignedIn {
            connection: "acme".into(),
            channel_id: 2,
        }
    }

    #[test]
    fn a_marker_opens_with_its_key_until_it_expires() {
        let key = MarkerKey::derive("client-secret");
        let sealed = key.seal(&signed_in(), 1_000);
        assert!(sealed.len() < 128, "{sealed}");
        assert_eq!(key.open(&sealed, 1_001), Some(signed_in()));
        // Another replica of the same store derives the same key.
        assert_eq!(
            MarkerKey::derive("client-secret").open(&sealed, 1_001),
            Some(signed_in())
        );
        let expiry = 1_000 + SIGNED_IN_LIFETIME.whole_seconds();
        assert_eq!(key.open(&sealed, expiry - 1), Some(signed_in()));
        assert_eq!(key.open(&sealed, expiry), None);
    }

    #[test]
    fn a_forged_altered_or_foreign_marker_is_refused() {
        let key = MarkerKey::derive("client-secret");
        let sealed = key.seal(&signed_in(), 1_000);
        // Another store's secret.
        assert_eq!(MarkerKey::derive("other").open(&sealed, 1_001), None);
        // Another connection with the tag of the first.
        let (_, tag) = sealed.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"c":"evil","h":2,"e":99999999999}"#);
        assert_eq!(key.open(&format!("{forged}.{tag}"), 1_001), None);
        // A later expiry.
        let longer = URL_SAFE_NO_PAD.encode(br#"{"c":"acme","h":2,"e":99999999999}"#);
        assert_eq!(key.open(&format!("{longer}.{tag}"), 1_001), None);
        for junk in ["", ".", "a.b", "no-dot", &"x".repeat(10_000), &sealed[1..]] {
            assert_eq!(key.open(junk, 1_001), None, "{junk:.40}");
        }
    }
}
