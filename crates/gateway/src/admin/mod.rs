//! The admin side, in one place.
//!
//! Without HTTP: signing in with the token or through an IdP ([`auth`]), admin sessions
//! ([`session`]), the changes an admin makes, each audited ([`audit`]), the store and
//! connection checks ([`checks`]), "Try sign-in" ([`trial`]) and the parsing both the
//! console and the API share ([`input`]). Who may sign in through an IdP is
//! [`crate::settings::admin_access`].
//!
//! Over HTTP: the console's pages ([`pages`]) and the JSON API ([`api`]), thin handlers
//! behind three extractors ([`AdminUser`], [`CsrfForm`], [`ApiAdmin`]), and the one table
//! of routes the router is built from ([`routes`]).

pub mod activity;
pub mod api;
pub mod audit;
pub mod auth;
pub mod checks;
mod extract;
pub mod input;
pub mod pages;
mod router;
pub mod session;
pub mod trial;

use rand::RngCore;

pub use audit::{
    Action, connection_action, register_webhooks, remove_link, save_admin_access, save_connection,
    save_store_settings,
};
pub use auth::{confirm_with_token, is_admin_connection};
pub use extract::{AdminUser, ApiAdmin, CsrfForm, NoFields};
pub use router::{Access, AdminRoute, router, routes};
pub use session::{
    ADMIN_SESSION_LIFETIME_SECS, AdminSession, AdminVia, current, keep_lifetime, revalidate,
    sign_out_all, token_fingerprint,
};

pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How an admin is signed in, for log lines: `sso`, `bootstrap-token` or `api-token`. An SSO
/// admin's actor is their email, which stays in the audit trail and out of the logs.
pub fn actor_kind(actor: &str) -> &str {
    actor.split(':').next().unwrap_or(actor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_long() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
