//! A sign-in between the authorize redirect and the callback: what the server-side session
//! remembers of it, and the one check that it may still finish ([`PendingLogin::resume`]),
//! for a shopper's sign-in, an admin's "Try sign-in" and the admin console's SSO alike.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Connection;
use crate::domain::{ChannelId, ConnectionId};
use crate::redirect::RelativePath;
use crate::settings::connections::Entry;

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

/// Where the IdP's answer came back, which decides the connection that may finish there.
#[derive(Debug, Clone, Copy)]
pub enum Callback<'a> {
    /// `/oidc/callback/<id>`, the connection's own redirect URI: a shopper's sign-in, or an
    /// admin's "Try sign-in" (which may try a connection that is not enabled yet).
    Connection(&'a str),
    /// `/admin/oidc/callback`: only the connection admins sign in with now.
    Admin(&'a ConnectionId),
}

/// Why a pending login that matched the callback's `state` may not finish.
#[derive(Debug, thiserror::Error)]
pub enum PendingError {
    #[error(
        "the callback came back for connection {got:?}, but the sign-in was sent to {expected:?}"
    )]
    WrongCallback { expected: ConnectionId, got: String },
    #[error("the pending login expired")]
    Expired,
    #[error("connection {0} was deleted or disabled after the sign-in started")]
    ConnectionGone(ConnectionId),
    #[error("connection {0} is no longer the one admins sign in with")]
    NotAdminConnection(ConnectionId),
    #[error("connection {0} has another issuer than the one the sign-in was sent to")]
    IssuerChanged(ConnectionId),
}

impl PendingError {
    /// The reason code. A pending login that an admin edit ended reads as missing: for the
    /// person signing in it is simply gone.
    pub fn code(&self) -> &'static str {
        match self {
            PendingError::WrongCallback { .. } => "callback_connection_mismatch",
            PendingError::Expired => "pending_login_expired",
            PendingError::ConnectionGone(_)
            | PendingError::NotAdminConnection(_)
            | PendingError::IssuerChanged(_) => "no_pending_login",
        }
    }
}

impl PendingLogin {
    pub fn redirect_to(&self) -> Option<RelativePath> {
        RelativePath::landing(&self.redirect_to).ok()
    }

    /// The one check that this pending login, taken from the session by its `state`, may
    /// still finish; returns its connection as it is now. In this order:
    /// - the answer came back on the redirect URI of the connection the sign-in was sent to,
    ///   so a code from another IdP never goes to this connection's token endpoint (mix-up,
    ///   RFC 9700 4.4.2; SECURITY.md rule 8);
    /// - it is younger than `ttl`;
    /// - its connection still exists, is enabled (a trial may try a disabled one) and, for
    ///   the admin console, is still the one admins sign in with;
    /// - the connection still has the issuer the browser was sent to.
    ///
    /// An admin edit between start and callback thus ends the pending login.
    ///
    /// `connections`: every connection in force, enabled or not (`app.connections.all()`).
    pub fn resume(
        &self,
        callback: Callback<'_>,
        connections: &[Entry],
        now: i64,
        ttl: Duration,
    ) -> Result<Connection, PendingError> {
        if let Callback::Connection(got) = callback
            && got != self.connection.as_str()
        {
            tracing::warn!(connection = %self.connection, "callback for another connection (mix-up?)");
            return Err(PendingError::WrongCallback {
                expected: self.connection.clone(),
                got: got.to_owned(),
            });
        }
        if now - self.started_at > ttl.as_secs() as i64 {
            return Err(PendingError::Expired);
        }
        if let Callback::Admin(admins) = callback
            && *admins != self.connection
        {
            return Err(PendingError::NotAdminConnection(self.connection.clone()));
        }
        let conn = connections
            .iter()
            .find(|e| e.connection.id == self.connection && (e.enabled || self.trial.is_some()))
            .map(|e| &e.connection)
            .ok_or_else(|| PendingError::ConnectionGone(self.connection.clone()))?;
        if conn.issuer.as_str() != self.issuer {
            return Err(PendingError::IssuerChanged(self.connection.clone()));
        }
        Ok(conn.clone())
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
            trial: None,
        }
    }

    fn trial() -> PendingLogin {
        PendingLogin {
            trial: Some("t1cket-Secret".into()),
            ..pending()
        }
    }

    #[test]
    fn debug_shows_no_state_nonce_verifier_or_ticket() {
        let shown = format!("{:?} {:#?}", trial(), trial());
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

    const TTL: Duration = Duration::from_secs(600);

    fn entry(id: &str, issuer: &str, enabled: bool) -> Entry {
        Entry {
            connection: crate::config::test_connection(id, issuer),
            source: crate::settings::Source::Console,
            enabled,
        }
    }

    /// `acme` (the pending login's, at its issuer) and `b`, both enabled.
    fn both() -> [Entry; 2] {
        [
            entry("acme", "https://idp.test", true),
            entry("b", "https://b.test", true),
        ]
    }

    fn codes(r: Result<Connection, PendingError>) -> Result<String, &'static str> {
        r.map(|c| c.id.to_string()).map_err(|e| e.code())
    }

    #[test]
    fn a_pending_login_finishes_on_its_own_connection_within_the_ttl() {
        let (p, all) = (pending(), both());
        let at = |secs: i64| {
            codes(p.resume(Callback::Connection("acme"), &all, p.started_at + secs, TTL))
        };
        assert_eq!(at(0), Ok("acme".into()));
        assert_eq!(at(600), Ok("acme".into()));
        assert_eq!(at(601), Err("pending_login_expired"));
    }

    /// SECURITY.md rule 8: the answer came back on another connection's redirect URI. This
    /// is checked first, so a mix-up reads as one even when the login also expired.
    #[test]
    fn a_callback_for_another_connection_is_a_mix_up() {
        let (p, all) = (pending(), both());
        for now in [p.started_at, p.started_at + 3600] {
            let r = p.resume(Callback::Connection("b"), &all, now, TTL);
            assert!(
                matches!(&r, Err(PendingError::WrongCallback { expected, got }) if expected.as_str() == "acme" && got == "b"),
                "{r:?}"
            );
            assert_eq!(codes(r), Err("callback_connection_mismatch"));
        }
    }

    /// An admin edit between start and callback ends the pending login: the connection
    /// deleted, disabled, or pointed at another issuer.
    #[test]
    fn an_edited_connection_ends_the_pending_login() {
        let p = pending();
        let now = p.started_at;
        let check = |all: &[Entry]| p.resume(Callback::Connection("acme"), all, now, TTL);
        assert!(matches!(check(&[]), Err(PendingError::ConnectionGone(_))));
        let disabled = [entry("acme", "https://idp.test", false)];
        assert!(matches!(
            check(&disabled),
            Err(PendingError::ConnectionGone(_))
        ));
        let moved = [entry("acme", "https://elsewhere.test", true)];
        assert!(matches!(check(&moved), Err(PendingError::IssuerChanged(_))));
        for all in [&[][..], &disabled, &moved] {
            assert_eq!(codes(check(all)), Err("no_pending_login"));
        }
    }

    /// "Try sign-in" tests a connection before it is enabled; the other checks still hold.
    #[test]
    fn a_trial_may_finish_on_a_disabled_connection() {
        let p = trial();
        let now = p.started_at;
        let disabled = [entry("acme", "https://idp.test", false)];
        assert_eq!(
            codes(p.resume(Callback::Connection("acme"), &disabled, now, TTL)),
            Ok("acme".into())
        );
        let moved = [entry("acme", "https://elsewhere.test", false)];
        assert!(matches!(
            p.resume(Callback::Connection("acme"), &moved, now, TTL),
            Err(PendingError::IssuerChanged(_))
        ));
        let shopper = pending();
        assert_eq!(
            codes(shopper.resume(Callback::Connection("acme"), &disabled, now, TTL)),
            Err("no_pending_login")
        );
    }

    /// The admin console's one redirect URI finishes only with the connection admins sign
    /// in with now: switching it while an admin is at the IdP ends that sign-in.
    #[test]
    fn the_admin_callback_finishes_only_with_the_admin_connection() {
        let p = pending();
        let all = both();
        let admins = |id: &str| ConnectionId::parse(id).unwrap();
        let now = p.started_at;
        assert_eq!(
            codes(p.resume(Callback::Admin(&admins("acme")), &all, now, TTL)),
            Ok("acme".into())
        );
        let r = p.resume(Callback::Admin(&admins("b")), &all, now, TTL);
        assert!(
            matches!(r, Err(PendingError::NotAdminConnection(_))),
            "{r:?}"
        );
        let r = p.resume(Callback::Admin(&admins("acme")), &all, now + 601, TTL);
        assert!(matches!(r, Err(PendingError::Expired)), "{r:?}");
    }
}
