//! A sign-in between the authorize redirect and the callback: what the server-side session
//! remembers of it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::{ChannelId, ConnectionId};
use crate::redirect::RelativePath;

/// What the browser's session remembers between `/login` and `/oidc/callback`. The secrets
/// (state, nonce, PKCE verifier) stay server-side: the cookie holds only the session id.
/// The ids are serde-transparent, so sessions written before they were typed still load.
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub connection: ConnectionId,
    /// The issuer the browser was sent to; the callback must come back for it (mix-up defence).
    pub issuer: String,
    pub channel_id: ChannelId,
    pub redirect_to: String,
    pub started_at: i64,
    /// Set for an admin's "Try sign-in": the ticket its report is filed under. Such a
    /// sign-in creates nothing and mints no token.
    #[serde(default)]
    pub trial: Option<String>,
}

impl PendingLogin {
    pub fn redirect_to(&self) -> Option<RelativePath> {
        RelativePath::landing(&self.redirect_to).ok()
    }
}

/// `state`, `nonce` and the PKCE verifier are what a stolen callback needs to succeed, and
/// the trial ticket opens an admin's report: none of them may reach a log line through
/// `{:?}` (DESIGN.md "Security rules").
impl fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const REDACTED: &str = "[redacted]";
        f.debug_struct("PendingLogin")
            .field("state", &REDACTED)
            .field("nonce", &REDACTED)
            .field("pkce_verifier", &REDACTED)
            .field("connection", &self.connection)
            .field("issuer", &self.issuer)
            .field("channel_id", &self.channel_id)
            .field("redirect_to", &self.redirect_to)
            .field("started_at", &self.started_at)
            .field("trial", &self.trial.as_ref().map(|_| REDACTED))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> PendingLogin {
        PendingLogin {
            state: "st4te-Secret".into(),
            nonce: "n0nce-Secret".into(),
            pkce_verifier: "ver1fier-Secret".into(),
            connection: ConnectionId::parse("acme").unwrap(),
            issuer: "https://idp.test".into(),
            channel_id: ChannelId(1),
            redirect_to: "/cart.php".into(),
            started_at: 1_795_651_200,
            trial: Some("t1cket-Secret".into()),
        }
    }

    #[test]
    fn debug_shows_no_state_nonce_verifier_or_ticket() {
        let shown = format!("{:?} {:#?}", pending(), pending());
        for secret in ["st4te", "n0nce", "ver1fier", "t1cket", "Secret"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            shown.contains("acme") && shown.contains("/cart.php"),
            "{shown}"
        );
    }

    /// Sessions written before the ids were typed hold plain strings and numbers.
    #[test]
    fn typed_ids_keep_the_stored_format() {
        let json = serde_json::to_value(pending()).unwrap();
        assert_eq!(json["connection"], "acme");
        assert_eq!(json["channel_id"], 1);
        let back: PendingLogin = serde_json::from_value(json).unwrap();
        assert_eq!(
            (back.connection.as_str(), back.channel_id),
            ("acme", ChannelId(1))
        );
    }
}
