//! "Test connection": checks one IdP connection and says, in words an IT admin can act on,
//! what is right and what is wrong.
//!
//! [`discover`](super::discovery::discover) stops at the first problem, which is
//! right for a sign-in but useless for someone fixing a setup: they would fix one thing,
//! press the button, and meet the next. So this module fetches the discovery document and
//! the JWKS itself, as plain JSON, and runs every check it can.
//!
//! Checks, in this order, each with a stable [`Check::name`]:
//!
//! | name                | what                                                              |
//! |---------------------|-------------------------------------------------------------------|
//! | `discovery`         | `<issuer>/.well-known/openid-configuration` answers 200 with JSON the gateway can read |
//! | `issuer`            | the document's `issuer` equals the configured issuer exactly (SECURITY.md rule 10) |
//! | `endpoints`         | every endpoint URL passes the sign-in rule (https, no credentials, no odd addresses; http only on loopback) |
//! | `response_type`     | `response_types_supported` has `code`                              |
//! | `pkce`              | `code_challenge_methods_supported` has `S256` (SECURITY.md rule 7)  |
//! | `id_token_algs`     | the IdP's ID-token algorithms meet the connection's allow-list      |
//! | `jwks`              | the key set is reachable and has a key usable with those algorithms |
//! | `scopes`            | `openid` is configured; configured scopes are ones the IdP lists    |
//! | `iss_parameter`     | RFC 9207 `iss` in the authorization response (enforced if advertised) |
//! | `token_auth_method` | the IdP accepts the client secret the way the gateway sends it      |
//! | `redirect_uri`      | always Ok: the redirect URI the admin must register                 |
//!
//! When discovery fails (no answer, not JSON), the checks that read the document are
//! *omitted*, not listed as skipped: the `discovery` message already says the rest could not
//! run, and a page of "skipped" lines would bury the one line that matters. `scopes` and
//! `redirect_uri` depend only on the configuration, so they are always reported. A document
//! that is JSON but not readable by the gateway's OIDC library still fails `discovery`, and
//! the other checks still run on it, because they usually name the broken field plainly.
//!
//! Like sign-in (SECURITY.md rule 23), nothing the document names is fetched unless every
//! endpoint URL in it passes [`check_idp_url`]: the console must not be a way to make the
//! gateway call `http://0.0.0.0:…` because a document says so. A refused URL is reported.
//!
//! Messages quote strings the IdP sent (issuer, URLs). They are untrusted: they are cut to a
//! sane length here and must be escaped by whatever page shows them. The client secret is
//! never read by this module, so it cannot appear in a message.
//!
//! By area: fetching the document ([`fetch`]), what the document says ([`metadata`]), and
//! the key set ([`jwks`]).

mod fetch;
mod jwks;
mod metadata;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};
use url::Url;

use super::http::IdpHttp;
use crate::config::Connection;
use fetch::check_discovery;
use jwks::check_jwks;
use metadata::{
    check_endpoints, check_id_token_algs, check_iss_parameter, check_issuer, check_pkce,
    check_response_type, check_scopes, check_token_auth_method, refused_urls,
};

pub use crate::diagnostics::{Check, CheckStatus};

/// IdP-supplied strings are cut to this many characters in messages.
const MAX_SHOWN_CHARS: usize = 200;

/// Runs every check against `conn`'s IdP. `http` should be the gateway's own client
/// ([`crate::oidc::Registry::http`]): no redirects, the same timeouts and body cap as
/// sign-in, so the answer matches what a real sign-in would meet. `redirect_uri` is the
/// gateway's callback URL.
#[tracing::instrument(skip_all, fields(connection = %conn.id))]
pub async fn diagnose(http: &IdpHttp, conn: &Connection, redirect_uri: &Url) -> Vec<Check> {
    let mut checks = Vec::new();
    let (discovery, doc) = check_discovery(http, conn).await;
    checks.push(discovery);
    if let Some(doc) = &doc {
        checks.push(check_issuer(conn, doc));
        checks.push(check_endpoints(conn, doc));
        let endpoints_safe = refused_urls(conn, doc) == 0;
        checks.push(check_response_type(doc));
        checks.push(check_pkce(doc));
        checks.push(check_id_token_algs(conn, doc));
        checks.push(check_jwks(http, conn, doc, endpoints_safe).await);
    }
    checks.push(check_scopes(conn, doc.as_ref()));
    if let Some(doc) = &doc {
        checks.push(check_iss_parameter(doc));
        checks.push(check_token_auth_method(doc));
    }
    checks.push(Check {
        name: "redirect_uri",
        status: CheckStatus::Ok,
        message: format!(
            "Register this redirect URI for client id {} at the identity provider: {redirect_uri}",
            shown(&conn.client_id)
        ),
    });
    for c in &checks {
        tracing::debug!(check = c.name, status = ?c.status, "connection check");
    }
    checks
}

fn ok(name: &'static str, message: String) -> Check {
    Check::new(name, CheckStatus::Ok, message)
}

fn warning(name: &'static str, message: String) -> Check {
    Check::new(name, CheckStatus::Warning, message)
}

fn failed(name: &'static str, message: String) -> Check {
    Check::new(name, CheckStatus::Failed, message)
}

/// The strings of a JSON array field; `None` when the field is absent (or not an array).
fn string_list<'a>(doc: &'a Map<String, Value>, field: &str) -> Option<Vec<&'a str>> {
    doc.get(field)
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).collect())
}

fn list(items: &[&str]) -> String {
    if items.is_empty() {
        "(none)".into()
    } else {
        // Each item quoted on its own, so `"openid "` (trailing space) stands out.
        items
            .iter()
            .map(|s| shown(s))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A document's field name as messages show it: plain when it looks like one, otherwise
/// quoted like any other untrusted string.
fn field_name(field: &str) -> String {
    if field.len() <= 80
        && field
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        field.to_owned()
    } else {
        shown(field)
    }
}

/// Error text from our own libraries: not quoted, only cut to a length a page can show.
fn cut(s: &str) -> String {
    if s.chars().count() > MAX_SHOWN_CHARS {
        let head: String = s.chars().take(MAX_SHOWN_CHARS).collect();
        format!("{head}…")
    } else {
        s.to_owned()
    }
}

/// An untrusted string, quoted and escaped (`Debug`, so control characters and a trailing
/// space are visible) and cut to a length a page can show.
fn shown(s: &str) -> String {
    if s.chars().count() > MAX_SHOWN_CHARS {
        let cut: String = s.chars().take(MAX_SHOWN_CHARS).collect();
        format!("{cut:?}…")
    } else {
        format!("{s:?}")
    }
}
