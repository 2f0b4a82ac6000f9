//! "Test connection": checks one IdP connection and says, in words an IT admin can act on,
//! what is right and what is wrong.
//!
//! [`registry::discover`](super::registry::discover) stops at the first problem, which is
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

use openidconnect::core::{CoreJsonWebKeySet, CoreJsonWebKeyType, CoreJsonWebKeyUse};
use openidconnect::{JsonWebKey, JsonWebKeyAlgorithm};
use serde_json::{Map, Value};
use url::Url;

use super::ProviderMetadata;
use super::discovery::endpoint_urls;
use super::error_chain;
use super::http::IdpHttp;
use crate::capped_body::BodyError;
use crate::config::{Connection, check_idp_url, check_idp_url_str};

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

// ---------------------------------------------------------------------------------------
// 1. Discovery

async fn check_discovery(http: &IdpHttp, conn: &Connection) -> (Check, Option<Map<String, Value>>) {
    // The same URL the openidconnect crate builds, so a pass here means a pass at sign-in.
    let url = match conn.issuer.join(".well-known/openid-configuration") {
        Ok(url) => url,
        Err(e) => {
            return (
                failed(
                    "discovery",
                    format!(
                        "The configured issuer {} does not give a valid discovery URL ({e}); the remaining checks could not run.",
                        shown(conn.issuer.as_str())
                    ),
                ),
                None,
            );
        }
    };
    if let Err(reason) = check_idp_url(&url, conn.issuer.url()) {
        return (
            failed(
                "discovery",
                format!(
                    "The discovery URL {url} was not fetched: it {reason}. The remaining checks need the document and were not run."
                ),
            ),
            None,
        );
    }
    let value = match fetch_json(http, &url).await {
        Ok(v) => v,
        Err(problem) => {
            let hint = match problem {
                FetchProblem::Status(404) => {
                    " Check the issuer URL: the discovery document must be at <issuer>/.well-known/openid-configuration."
                }
                _ => "",
            };
            return (
                failed(
                    "discovery",
                    format!(
                        "{}{hint} The remaining checks need this document and were not run.",
                        problem.describe("The discovery document", &url)
                    ),
                ),
                None,
            );
        }
    };
    let Value::Object(doc) = value else {
        return (
            failed(
                "discovery",
                format!(
                    "{url} answered with JSON that is not an object, so it is not a discovery document; the remaining checks could not run."
                ),
            ),
            None,
        );
    };
    // Sign-in parses the document into the crate's typed metadata; a field of the wrong
    // type fails there even when every check below passes, so try the same parse.
    let check = match serde_json::from_value::<ProviderMetadata>(Value::Object(doc.clone())) {
        Ok(_) => ok(
            "discovery",
            format!("The discovery document at {url} was fetched and read."),
        ),
        Err(e) => failed(
            "discovery",
            format!(
                "The discovery document at {url} was fetched, but the gateway cannot read it: {}.",
                cut(&e.to_string())
            ),
        ),
    };
    (check, Some(doc))
}

/// Why an endpoint gave no usable JSON, each cause with its own message.
enum FetchProblem {
    Timeout,
    Connect(String),
    Status(u16),
    Redirect {
        status: u16,
        location: Option<String>,
    },
    TooLarge(usize),
    NotJson(String),
    Other(String),
}

impl FetchProblem {
    fn describe(&self, what: &str, url: &Url) -> String {
        match self {
            FetchProblem::Timeout => format!(
                "{what} at {url} did not answer in time; check that the identity provider is up and reachable from the gateway's network."
            ),
            FetchProblem::Connect(detail) => format!(
                "The gateway could not connect to {url} ({detail}); check the URL and that the identity provider is reachable from the gateway's network."
            ),
            FetchProblem::Status(status) => {
                format!("{what} at {url} answered HTTP {status} instead of 200.")
            }
            FetchProblem::Redirect { status, location } => format!(
                "{what} at {url} answered with a redirect (HTTP {status}{}); the gateway does not follow redirects, so the URL must serve the document directly.",
                location
                    .as_deref()
                    .map(|l| format!(" to {}", shown(l)))
                    .unwrap_or_default()
            ),
            FetchProblem::TooLarge(limit) => format!(
                "{what} at {url} is larger than {} KiB, so it cannot be the expected JSON; the gateway stopped reading it.",
                limit / 1024
            ),
            FetchProblem::NotJson(e) => format!(
                "{what} at {url} answered, but not with JSON ({e}); it may be an HTML login or error page."
            ),
            FetchProblem::Other(detail) => {
                format!("The gateway could not fetch {what} at {url} ({detail}).")
            }
        }
    }
}

async fn fetch_json(http: &IdpHttp, url: &Url) -> Result<Value, FetchProblem> {
    let response = http
        .client()
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(request_problem)?;
    let status = response.status();
    if status.is_redirection() {
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        return Err(FetchProblem::Redirect {
            status: status.as_u16(),
            location,
        });
    }
    if status != reqwest::StatusCode::OK {
        return Err(FetchProblem::Status(status.as_u16()));
    }
    let body = http.read_body(response).await.map_err(|e| match e {
        BodyError::TooLarge { limit } => FetchProblem::TooLarge(limit),
        BodyError::Transport(e) => request_problem(e),
    })?;
    serde_json::from_slice(&body).map_err(|e| FetchProblem::NotJson(cut(&e.to_string())))
}

fn request_problem(e: reqwest::Error) -> FetchProblem {
    // Timeout first: a connect timeout is also a connect error, and "did not answer in
    // time" is the more useful of the two.
    if e.is_timeout() {
        FetchProblem::Timeout
    } else if e.is_connect() {
        FetchProblem::Connect(root_cause(&e))
    } else {
        FetchProblem::Other(cut(&error_chain(&e)))
    }
}

/// The innermost error ("Connection refused (os error 111)", "dns error: ..."): reqwest's
/// outer layers only repeat the URL.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cut(&cur.to_string())
}

// ---------------------------------------------------------------------------------------
// 2. Issuer

fn check_issuer(conn: &Connection, doc: &Map<String, Value>) -> Check {
    let configured = conn.issuer.as_str();
    let Some(published) = doc.get("issuer").and_then(Value::as_str) else {
        return failed(
            "issuer",
            format!(
                "The discovery document has no issuer field, so it cannot be matched to the configured issuer {}.",
                shown(configured)
            ),
        );
    };
    if published == configured {
        return ok(
            "issuer",
            format!(
                "The identity provider's issuer {} matches the configured issuer exactly.",
                shown(published)
            ),
        );
    }
    // The most common setup mistake: issuer identifiers are compared as exact strings
    // (SECURITY.md rule 10), so `https://idp/` and `https://idp` are different issuers.
    if published.trim_end_matches('/') == configured.trim_end_matches('/') {
        return failed(
            "issuer",
            format!(
                "The identity provider's issuer is {} but the connection is configured with {}; they differ only by a trailing slash, which still counts as a mismatch, so set the connection's issuer to exactly {}.",
                shown(published),
                shown(configured),
                shown(published)
            ),
        );
    }
    failed(
        "issuer",
        format!(
            "The identity provider's issuer is {} but the connection is configured with {}; they must be identical, so check that the issuer URL points at the right identity provider (or tenant).",
            shown(published),
            shown(configured)
        ),
    )
}

// ---------------------------------------------------------------------------------------
// 3. Endpoints

/// How many endpoint URLs of `doc` sign-in would refuse ([`check_idp_url`]).
fn refused_urls(conn: &Connection, doc: &Map<String, Value>) -> usize {
    endpoint_urls(doc)
        .into_iter()
        .filter(|(_, raw)| check_idp_url_str(raw, conn.issuer.url()).is_err())
        .count()
}

/// Every endpoint URL through the rule sign-in applies, plus the endpoints sign-in needs.
fn check_endpoints(conn: &Connection, doc: &Map<String, Value>) -> Check {
    let mut problems = Vec::new();
    for field in ["authorization_endpoint", "token_endpoint", "jwks_uri"] {
        match doc.get(field) {
            None | Some(Value::Null) => problems.push(format!("{field} is missing")),
            Some(Value::String(_)) => {}
            Some(_) => problems.push(format!("{field} is not a URL string")),
        }
    }
    let mut local_http = false;
    for (field, raw) in endpoint_urls(doc) {
        match check_idp_url_str(raw, conn.issuer.url()) {
            Ok(url) => local_http |= url.scheme() == "http",
            Err(reason) => problems.push(format!(
                "{} {} is refused: it {reason}",
                field_name(&field),
                shown(raw)
            )),
        }
    }
    if !problems.is_empty() {
        return failed(
            "endpoints",
            format!(
                "Problems with the identity provider's endpoints: {}. Sign-in refuses such a discovery document and fetches nothing it names. Endpoints must use https without a user name or password (plain http is allowed only when the issuer and the endpoint are both on localhost).",
                problems.join("; ")
            ),
        );
    }
    if local_http {
        ok(
            "endpoints",
            "The endpoints use https, or plain http on localhost, which is allowed because the issuer is on localhost too.".into(),
        )
    } else {
        ok("endpoints", "All endpoints use https.".into())
    }
}

// ---------------------------------------------------------------------------------------
// 4. Response type and PKCE

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

fn check_response_type(doc: &Map<String, Value>) -> Check {
    match string_list(doc, "response_types_supported") {
        None => failed(
            "response_type",
            "The discovery document does not list response_types_supported, which OpenID Connect requires; the gateway needs the code response type.".into(),
        ),
        Some(types) if types.contains(&"code") => ok(
            "response_type",
            "The identity provider supports the authorization code flow (response type code).".into(),
        ),
        Some(types) => failed(
            "response_type",
            format!(
                "The identity provider supports the response types {} but not code, which is the only flow the gateway uses.",
                list(&types)
            ),
        ),
    }
}

fn check_pkce(doc: &Map<String, Value>) -> Check {
    match string_list(doc, "code_challenge_methods_supported") {
        // Many IdPs support PKCE without saying so, and sending it to one that ignores it
        // costs nothing, so silence is only worth a note.
        None => warning(
            "pkce",
            "The identity provider does not advertise PKCE support; the gateway sends S256 anyway."
                .into(),
        ),
        Some(methods) if methods.contains(&"S256") => ok(
            "pkce",
            "The identity provider supports PKCE with S256.".into(),
        ),
        // SECURITY.md rule 7: S256 always, `plain` never; sign-in refuses this IdP too.
        Some(methods) => failed(
            "pkce",
            format!(
                "The identity provider lists PKCE methods {} but not S256, which the gateway requires; enable S256 PKCE for this client at the identity provider.",
                list(&methods)
            ),
        ),
    }
}

// ---------------------------------------------------------------------------------------
// 5. ID token algorithms

fn check_id_token_algs(conn: &Connection, doc: &Map<String, Value>) -> Check {
    let allowed: Vec<&str> = conn.id_token_algs.iter().map(String::as_str).collect();
    let Some(offered) = string_list(doc, "id_token_signing_alg_values_supported") else {
        return failed(
            "id_token_algs",
            format!(
                "The discovery document does not list id_token_signing_alg_values_supported, so it is unknown whether the identity provider signs ID tokens with one of the allowed algorithms ({}).",
                list(&allowed)
            ),
        );
    };
    let common: Vec<&str> = offered
        .iter()
        .copied()
        .filter(|a| allowed.contains(a))
        .collect();
    if common.is_empty() {
        failed(
            "id_token_algs",
            format!(
                "The identity provider signs ID tokens with {} but the connection allows only {}; add one of the provider's algorithms to the connection's id_token_algs or change the signing algorithm at the provider.",
                list(&offered),
                list(&allowed)
            ),
        )
    } else {
        ok(
            "id_token_algs",
            format!(
                "The identity provider can sign ID tokens with {}, which the connection allows.",
                list(&common)
            ),
        )
    }
}

// ---------------------------------------------------------------------------------------
// 6. JWKS

/// The key type an ID-token algorithm needs (RFC 7518 §3.1, RFC 8037 for EdDSA).
fn key_type_for(alg: &str) -> Option<CoreJsonWebKeyType> {
    if alg.starts_with("RS") || alg.starts_with("PS") {
        Some(CoreJsonWebKeyType::RSA)
    } else if alg.starts_with("ES") {
        Some(CoreJsonWebKeyType::EllipticCurve)
    } else if alg == "EdDSA" {
        Some(CoreJsonWebKeyType::OctetKeyPair)
    } else {
        None
    }
}

async fn check_jwks(
    http: &IdpHttp,
    conn: &Connection,
    doc: &Map<String, Value>,
    endpoints_safe: bool,
) -> Check {
    let Some(url) = doc
        .get("jwks_uri")
        .and_then(Value::as_str)
        .and_then(|s| Url::parse(s).ok())
    else {
        return failed(
            "jwks",
            "The discovery document has no valid jwks_uri, so the gateway cannot fetch the keys that verify ID tokens.".into(),
        );
    };
    // Sign-in refuses such an IdP before it fetches anything, so the test does not fetch
    // either: the admin console must not be a way to make the gateway call hosts that a
    // discovery document names.
    if !endpoints_safe {
        return failed(
            "jwks",
            format!(
                "The key set at {} was not fetched because the discovery document names endpoints the gateway refuses (see the endpoints check).",
                shown(url.as_str())
            ),
        );
    }
    let value = match fetch_json(http, &url).await {
        Ok(v) => v,
        Err(problem) => {
            return failed(
                "jwks",
                format!(
                    "{} Without the keys no ID token can be verified, so every sign-in would fail.",
                    problem.describe("The key set (JWKS)", &url)
                ),
            );
        }
    };
    let listed = value.get("keys").and_then(Value::as_array).map(Vec::len);
    let Some(listed) = listed else {
        return failed(
            "jwks",
            format!("The key set at {url} has no keys array, so it is not a JWKS."),
        );
    };
    // The crate skips keys it cannot parse (VecSkipError), exactly as sign-in will; so count
    // what it keeps, not what the JSON lists.
    let set: CoreJsonWebKeySet = match serde_json::from_value(value) {
        Ok(set) => set,
        Err(e) => {
            return failed(
                "jwks",
                format!(
                    "The key set at {url} cannot be read by the gateway: {}.",
                    cut(&e.to_string())
                ),
            );
        }
    };
    let allowed = &conn.id_token_algs;
    let usable: Vec<_> = set
        .keys()
        .iter()
        .filter(|k| {
            !matches!(
                k.key_use(),
                Some(CoreJsonWebKeyUse::Encryption | CoreJsonWebKeyUse::Other(_))
            )
        })
        .filter(|k| match k.signing_alg() {
            // A key pinned to one algorithm serves only that one.
            JsonWebKeyAlgorithm::Algorithm(alg) => serde_json::to_value(alg)
                .ok()
                .and_then(|v| v.as_str().map(|a| allowed.iter().any(|x| x == a)))
                .unwrap_or(false),
            JsonWebKeyAlgorithm::Unsupported => false,
            JsonWebKeyAlgorithm::Unspecified => allowed
                .iter()
                .any(|a| key_type_for(a).as_ref() == Some(k.key_type())),
        })
        .collect();
    let allowed_list: Vec<&str> = allowed.iter().map(String::as_str).collect();
    if usable.is_empty() {
        return failed(
            "jwks",
            format!(
                "The key set at {url} lists {listed} key(s), but none can verify ID tokens signed with {} (RSA keys serve RS*/PS*, EC keys ES*, OKP keys EdDSA), so every sign-in would fail.",
                list(&allowed_list)
            ),
        );
    }
    let without_kid = usable.iter().filter(|k| k.key_id().is_none()).count();
    // With several kid-less keys, a token cannot say which key signed it and verification
    // has to guess; the crate refuses such tokens when more than one key fits.
    if without_kid >= 2 {
        return warning(
            "jwks",
            format!(
                "The key set at {url} has {} usable key(s), {without_kid} of them without a kid; ID tokens signed by those keys may be rejected because the gateway cannot tell which key to use.",
                usable.len()
            ),
        );
    }
    ok(
        "jwks",
        format!(
            "The key set at {url} has {} key(s) usable with {}.",
            usable.len(),
            list(&allowed_list)
        ),
    )
}

// ---------------------------------------------------------------------------------------
// 7-9. Scopes, RFC 9207, token endpoint authentication

fn check_scopes(conn: &Connection, doc: Option<&Map<String, Value>>) -> Check {
    let configured: Vec<&str> = conn.scopes.iter().map(String::as_str).collect();
    if !configured.contains(&"openid") {
        return failed(
            "scopes",
            format!(
                "The connection's scopes ({}) do not include openid; without it the identity provider does not return an ID token, so add openid.",
                list(&configured)
            ),
        );
    }
    let Some(doc) = doc else {
        return ok(
            "scopes",
            format!(
                "The connection asks for the scopes {}; they could not be compared with the identity provider's list because discovery failed.",
                list(&configured)
            ),
        );
    };
    let Some(supported) = string_list(doc, "scopes_supported") else {
        return ok(
            "scopes",
            format!(
                "The connection asks for the scopes {}; the identity provider does not publish a list of supported scopes to compare with.",
                list(&configured)
            ),
        );
    };
    let unsupported: Vec<&str> = configured
        .iter()
        .copied()
        .filter(|s| !supported.contains(s))
        .collect();
    if unsupported.is_empty() {
        ok(
            "scopes",
            format!(
                "The identity provider supports all configured scopes ({}).",
                list(&configured)
            ),
        )
    } else {
        // Only a warning: scopes_supported is allowed to be incomplete, but an unknown scope
        // is also a classic cause of `invalid_scope` at the IdP.
        warning(
            "scopes",
            format!(
                "The identity provider does not list these configured scopes as supported: {}; it may ignore them or refuse the sign-in with invalid_scope.",
                list(&unsupported)
            ),
        )
    }
}

fn check_iss_parameter(doc: &Map<String, Value>) -> Check {
    match doc.get("authorization_response_iss_parameter_supported") {
        Some(Value::Bool(true)) => ok(
            "iss_parameter",
            "The identity provider sends its issuer (iss) with each sign-in response (RFC 9207); the gateway will require it and reject responses without it or with a different one.".into(),
        ),
        None | Some(Value::Bool(false)) => ok(
            "iss_parameter",
            "The identity provider does not announce RFC 9207 iss in sign-in responses; the gateway relies on the state check and the exact issuer match instead.".into(),
        ),
        Some(other) => warning(
            "iss_parameter",
            format!(
                "authorization_response_iss_parameter_supported is {}, not true or false.",
                shown(&other.to_string())
            ),
        ),
    }
}

fn check_token_auth_method(doc: &Map<String, Value>) -> Check {
    let Some(methods) = string_list(doc, "token_endpoint_auth_methods_supported") else {
        // OIDC Discovery §3: when absent, the default is client_secret_basic.
        return ok(
            "token_auth_method",
            "The identity provider does not list token endpoint authentication methods; the default, client_secret_basic, is what the gateway uses.".into(),
        );
    };
    if methods.contains(&"client_secret_basic") {
        ok(
            "token_auth_method",
            "The identity provider accepts client_secret_basic, which the gateway uses to send the client secret.".into(),
        )
    } else if methods.contains(&"client_secret_post") {
        // The openidconnect client defaults to HTTP Basic; many IdPs accept both whatever
        // they advertise, so this is worth checking rather than a certain failure.
        warning(
            "token_auth_method",
            "The identity provider lists client_secret_post but not client_secret_basic, and the gateway sends the client secret with HTTP Basic; if sign-ins fail at the code exchange, allow client_secret_basic for this client.".into(),
        )
    } else {
        failed(
            "token_auth_method",
            format!(
                "The identity provider accepts only {} at its token endpoint; the gateway authenticates with a client secret (client_secret_basic or client_secret_post), so allow one of those for this client.",
                list(&methods)
            ),
        )
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::Router;
    use axum::routing::get;
    use serde_json::json;
    use tokio::net::TcpListener;

    use super::*;
    use crate::config::ChannelAccess;
    use crate::domain::{ConnectionId, Secret};
    use bc_sso_sandbox::idp::{DevClient, DevIdp, DevIdpConfig, Misbehaviour, demo_users};
    use openidconnect::IssuerUrl;

    /// Distinctive, so a leak into any message is found by a plain `contains`.
    const SECRET: &str = "client-secret-MUST-NOT-LEAK-7f3a";

    const ALL_CHECKS: [&str; 11] = [
        "discovery",
        "issuer",
        "endpoints",
        "response_type",
        "pkce",
        "id_token_algs",
        "jwks",
        "scopes",
        "iss_parameter",
        "token_auth_method",
        "redirect_uri",
    ];

    /// Bind first, so the issuer URL is known before the server exists (no port race).
    async fn bind() -> (TcpListener, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        (listener, issuer)
    }

    fn serve(listener: TcpListener, app: Router) {
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    }

    fn redirect_uri() -> Url {
        Url::parse("https://gateway.example/oidc/callback").unwrap()
    }

    async fn start_idp(misbehaviour: Misbehaviour) -> String {
        let (listener, issuer) = bind().await;
        let idp = DevIdp::new(DevIdpConfig {
            issuer: Url::parse(&issuer).unwrap(),
            clients: vec![DevClient {
                client_id: "gateway".into(),
                client_secret: SECRET.into(),
                redirect_uris: vec![redirect_uri()],
                redirect_uri_prefixes: Vec::new(),
            }],
            users: demo_users(),
            email_in_id_token: true,
            send_iss_parameter: true,
        });
        assert_eq!(idp.issuer(), issuer, "dev IdP issuer has no trailing slash");
        idp.set_misbehaviour(misbehaviour);
        serve(listener, idp.router());
        issuer
    }

    fn connection(issuer: &str) -> Connection {
        Connection {
            id: ConnectionId::parse("acme").unwrap(),
            display_name: "Acme".into(),
            issuer: IssuerUrl::new(issuer.to_owned()).unwrap(),
            client_id: "gateway".into(),
            client_secret: Secret::new(SECRET),
            scopes: vec!["openid".into(), "email".into(), "profile".into()],
            allowed_email_domains: vec![],
            trusted_email_domains: Vec::new(),
            customer_group_id: None,
            groups_claim: "groups".into(),
            group_rules: Vec::new(),
            company_claim: None,
            hosted_domain: None,
            sync_profile: false,
            channels: Vec::new(),
            create_customers: true,
            link_existing: crate::config::LinkExisting::default(),
            allow_non_ascii_email: false,
            channel_access: ChannelAccess::Channel,
            id_token_algs: vec!["RS256".into()],
            clock_leeway: Duration::from_secs(60),
        }
    }

    async fn run_with(http: &reqwest::Client, conn: &Connection) -> Vec<Check> {
        let http = IdpHttp::new(http.clone());
        let http = &http;
        let checks = diagnose(http, conn, &redirect_uri()).await;
        // Every case doubles as a leak test: the secret is in the connection and the IdP.
        for c in &checks {
            assert!(!c.message.contains(SECRET), "secret leaked: {c:?}");
        }
        checks
    }

    async fn run(conn: &Connection) -> Vec<Check> {
        run_with(&crate::http_client(Duration::from_secs(5)).unwrap(), conn).await
    }

    #[track_caller]
    fn get_check<'a>(checks: &'a [Check], name: &str) -> &'a Check {
        checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name} check in {checks:#?}"))
    }

    #[track_caller]
    fn assert_status(checks: &[Check], name: &str, status: CheckStatus, needle: &str) {
        let c = get_check(checks, name);
        assert_eq!(c.status, status, "{c:?}");
        assert!(
            c.message.contains(needle),
            "{name} message lacks {needle:?}: {}",
            c.message
        );
    }

    fn names(checks: &[Check]) -> Vec<&'static str> {
        checks.iter().map(|c| c.name).collect()
    }

    /// A discovery document like the dev IdP's, for behaviours the dev IdP does not have.
    fn good_doc(issuer: &str) -> Value {
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "userinfo_endpoint": format!("{issuer}/userinfo"),
            "jwks_uri": format!("{issuer}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        })
    }

    fn rsa_key(kid: Option<&str>) -> Value {
        // Parsed, never used to verify: any base64url modulus will do.
        let mut key = json!({ "kty": "RSA", "use": "sig", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB" });
        if let Some(kid) = kid {
            key["kid"] = json!(kid);
        }
        key
    }

    /// Serves `doc` (edited by `edit`) and `jwks`; returns the issuer.
    async fn start_custom(edit: impl FnOnce(&str, &mut Value), jwks: Value) -> String {
        let (listener, issuer) = bind().await;
        let mut doc = good_doc(&issuer);
        edit(&issuer, &mut doc);
        let app = Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || async move { axum::Json(doc) }),
            )
            .route("/jwks", get(move || async move { axum::Json(jwks) }));
        serve(listener, app);
        issuer
    }

    #[tokio::test]
    async fn all_good_against_the_dev_idp() {
        let issuer = start_idp(Misbehaviour::None).await;
        let checks = run(&connection(&issuer)).await;
        assert_eq!(names(&checks), ALL_CHECKS);
        for c in &checks {
            assert_eq!(c.status, CheckStatus::Ok, "{c:?}");
        }
        assert_status(
            &checks,
            "redirect_uri",
            CheckStatus::Ok,
            "https://gateway.example/oidc/callback",
        );
        // The dev IdP advertises RFC 9207 in this setup (SECURITY.md rule 8).
        assert_status(&checks, "iss_parameter", CheckStatus::Ok, "will require");
        assert_status(&checks, "endpoints", CheckStatus::Ok, "localhost");
    }

    // SECURITY.md rule 10: `rp-discovery-issuer-not-matching-config`, the trailing-slash case.
    #[tokio::test]
    async fn issuer_with_trailing_slash_fails_with_a_hint() {
        let issuer = start_idp(Misbehaviour::None).await;
        let checks = run(&connection(&format!("{issuer}/"))).await;
        assert_status(&checks, "discovery", CheckStatus::Ok, "fetched");
        let c = get_check(&checks, "issuer");
        assert_eq!(c.status, CheckStatus::Failed, "{c:?}");
        assert!(c.message.contains("trailing slash"), "{}", c.message);
        assert!(c.message.contains(&format!("{issuer:?}")), "{}", c.message);
        assert!(
            c.message.contains(&format!("\"{issuer}/\"")),
            "{}",
            c.message
        );
        // Other problems are still reported in the same run.
        assert_status(&checks, "jwks", CheckStatus::Ok, "usable");
    }

    // SECURITY.md rule 10.
    #[tokio::test]
    async fn discovery_with_wrong_issuer_fails() {
        let issuer = start_idp(Misbehaviour::DiscoveryWrongIssuer).await;
        let checks = run(&connection(&issuer)).await;
        assert_status(&checks, "discovery", CheckStatus::Ok, "fetched");
        let c = get_check(&checks, "issuer");
        assert_eq!(c.status, CheckStatus::Failed, "{c:?}");
        assert!(c.message.contains("must be identical"), "{}", c.message);
        assert!(!c.message.contains("trailing slash"), "{}", c.message);
        assert!(c.message.contains(&format!("{issuer:?}")), "{}", c.message);
    }

    #[tokio::test]
    async fn jwks_down_fails_jwks_only() {
        let issuer = start_idp(Misbehaviour::JwksDown).await;
        let checks = run(&connection(&issuer)).await;
        assert_eq!(names(&checks), ALL_CHECKS);
        assert_status(&checks, "discovery", CheckStatus::Ok, "fetched");
        assert_status(&checks, "jwks", CheckStatus::Failed, "HTTP 503");
        assert_status(
            &checks,
            "jwks",
            CheckStatus::Failed,
            &format!("{issuer}/jwks"),
        );
        let failed: Vec<_> = checks
            .iter()
            .filter(|c| c.status != CheckStatus::Ok)
            .map(|c| c.name)
            .collect();
        assert_eq!(failed, ["jwks"]);
    }

    #[tokio::test]
    async fn nothing_listening_fails_discovery_and_omits_dependent_checks() {
        let (listener, issuer) = bind().await;
        drop(listener);
        let checks = run(&connection(&issuer)).await;
        assert_status(
            &checks,
            "discovery",
            CheckStatus::Failed,
            "could not connect",
        );
        assert_status(
            &checks,
            "discovery",
            CheckStatus::Failed,
            &format!("{issuer}/.well-known/openid-configuration"),
        );
        // Documented choice: checks that need the document are omitted, config-only ones stay.
        assert_eq!(names(&checks), ["discovery", "scopes", "redirect_uri"]);
        assert_status(&checks, "scopes", CheckStatus::Ok, "discovery failed");
    }

    #[tokio::test]
    async fn alg_allow_list_without_the_idps_alg_fails() {
        let issuer = start_idp(Misbehaviour::None).await;
        let mut conn = connection(&issuer);
        conn.id_token_algs = vec!["ES256".into()];
        let checks = run(&conn).await;
        assert_status(&checks, "id_token_algs", CheckStatus::Failed, "\"RS256\"");
        assert_status(&checks, "id_token_algs", CheckStatus::Failed, "\"ES256\"");
        // The dev IdP's only key is RSA, so nothing in the JWKS fits ES256 either.
        assert_status(&checks, "jwks", CheckStatus::Failed, "none can verify");
    }

    #[tokio::test]
    async fn unsupported_scope_is_a_warning() {
        let issuer = start_idp(Misbehaviour::None).await;
        let mut conn = connection(&issuer);
        conn.scopes.push("offline_access".into());
        let checks = run(&conn).await;
        assert_status(&checks, "scopes", CheckStatus::Warning, "offline_access");
        assert!(!get_check(&checks, "scopes").message.contains("profile"));
    }

    #[tokio::test]
    async fn openid_missing_from_config_fails() {
        let issuer = start_idp(Misbehaviour::None).await;
        let mut conn = connection(&issuer);
        conn.scopes = vec!["email".into()];
        let checks = run(&conn).await;
        assert_status(
            &checks,
            "scopes",
            CheckStatus::Failed,
            "do not include openid",
        );
    }

    #[tokio::test]
    async fn secret_appears_in_no_message_even_when_everything_fails() {
        let issuer = start_custom(
            |_, doc| {
                *doc = json!({ "issuer": "https://elsewhere.example/", "jwks_uri": "http://idp.example/jwks" });
            },
            json!({}),
        )
        .await;
        let mut conn = connection(&issuer);
        conn.scopes = vec!["email".into()];
        conn.id_token_algs = vec!["ES256".into()];
        let checks = run(&conn).await;
        assert!(
            checks
                .iter()
                .filter(|c| c.status == CheckStatus::Failed)
                .count()
                >= 5
        );
        assert_status(&checks, "jwks", CheckStatus::Failed, "not fetched");
        let debug = format!("{checks:?}");
        assert!(!debug.contains(SECRET));
    }

    #[tokio::test]
    async fn pkce_not_advertised_is_a_warning() {
        let issuer = start_custom(
            |_, doc| {
                doc.as_object_mut()
                    .unwrap()
                    .remove("code_challenge_methods_supported");
            },
            json!({ "keys": [rsa_key(Some("k1"))] }),
        )
        .await;
        let checks = run(&connection(&issuer)).await;
        assert_status(
            &checks,
            "pkce",
            CheckStatus::Warning,
            "does not advertise PKCE support; the gateway sends S256 anyway",
        );
        assert_status(&checks, "jwks", CheckStatus::Ok, "1 key(s)");
    }

    // SECURITY.md rule 7: PKCE S256 always, `plain` refused.
    #[tokio::test]
    async fn pkce_plain_only_fails() {
        let issuer = start_custom(
            |_, doc| doc["code_challenge_methods_supported"] = json!(["plain"]),
            json!({ "keys": [rsa_key(Some("k1"))] }),
        )
        .await;
        let checks = run(&connection(&issuer)).await;
        assert_status(&checks, "pkce", CheckStatus::Failed, "\"plain\"");
    }

    #[tokio::test]
    async fn several_problems_are_reported_in_one_run() {
        let issuer = start_custom(
            |_, doc| {
                // Missing rather than refused: a refused URL would stop the JWKS fetch.
                doc.as_object_mut().unwrap().remove("token_endpoint");
                doc["response_types_supported"] = json!(["id_token"]);
                doc["token_endpoint_auth_methods_supported"] = json!(["private_key_jwt"]);
                doc["authorization_response_iss_parameter_supported"] = json!(false);
            },
            json!({ "keys": [rsa_key(None), rsa_key(None)] }),
        )
        .await;
        let checks = run(&connection(&issuer)).await;
        assert_eq!(names(&checks), ALL_CHECKS);
        assert_status(
            &checks,
            "endpoints",
            CheckStatus::Failed,
            "token_endpoint is missing",
        );
        assert_status(&checks, "response_type", CheckStatus::Failed, "not code");
        assert_status(
            &checks,
            "token_auth_method",
            CheckStatus::Failed,
            "private_key_jwt",
        );
        assert_status(
            &checks,
            "jwks",
            CheckStatus::Warning,
            "2 of them without a kid",
        );
        assert_status(
            &checks,
            "iss_parameter",
            CheckStatus::Ok,
            "does not announce",
        );
        assert_status(&checks, "issuer", CheckStatus::Ok, "matches");
    }

    /// Serves the good document edited by `edit` (which gets the issuer) and counts the
    /// requests for `/jwks`.
    async fn start_counting(
        edit: impl FnOnce(&str, &mut Value),
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (listener, issuer) = bind().await;
        let mut doc = good_doc(&issuer);
        edit(&issuer, &mut doc);
        let fetches = std::sync::Arc::new(AtomicUsize::new(0));
        let counter = fetches.clone();
        let app = Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || async move { axum::Json(doc) }),
            )
            .route(
                "/jwks",
                get(move || async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    axum::Json(json!({ "keys": [rsa_key(Some("k1"))] }))
                }),
            );
        serve(listener, app);
        (issuer, fetches)
    }

    // SECURITY.md rule 23: the check reports a refused URL and, like sign-in, fetches
    // nothing the document names. `0.0.0.0` reaches this machine on Linux, so the key set
    // would have been served had it been fetched.
    #[tokio::test]
    async fn test_connection_reports_jwks_uri_on_unspecified_address_without_fetching() {
        let (issuer, fetches) = start_counting(|issuer, doc| {
            doc["jwks_uri"] = json!(issuer.replace("127.0.0.1", "0.0.0.0") + "/jwks");
        })
        .await;
        let checks = run(&connection(&issuer)).await;
        assert_status(
            &checks,
            "endpoints",
            CheckStatus::Failed,
            "jwks_uri \"http://0.0.0.0:",
        );
        assert_status(
            &checks,
            "endpoints",
            CheckStatus::Failed,
            "names the address 0.0.0.0",
        );
        assert_status(&checks, "jwks", CheckStatus::Failed, "was not fetched");
        assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn test_connection_reports_any_refused_endpoint_and_fetches_no_keys() {
        for (field, bad) in [
            ("end_session_endpoint", "http://idp.example/logout"),
            ("token_endpoint", "https://user@idp.example/token"),
            ("revocation_endpoint", "http://[::ffff:127.0.0.1]:9/revoke"),
            ("userinfo_endpoint", "http://localhost.evil.com/userinfo"),
        ] {
            let (issuer, fetches) = start_counting(|_, doc| doc[field] = json!(bad)).await;
            let checks = run(&connection(&issuer)).await;
            assert_status(&checks, "endpoints", CheckStatus::Failed, field);
            assert_status(&checks, "jwks", CheckStatus::Failed, "was not fetched");
            assert_eq!(
                fetches.load(std::sync::atomic::Ordering::SeqCst),
                0,
                "{field}"
            );
        }
    }

    #[tokio::test]
    async fn oversized_discovery_document_is_reported() {
        let (base, _) = crate::capped_body::test_server::endless_json().await;
        let checks = run(&connection(&base)).await;
        assert_status(
            &checks,
            "discovery",
            CheckStatus::Failed,
            "larger than 1024 KiB",
        );
    }

    #[tokio::test]
    async fn no_token_auth_methods_means_basic() {
        let issuer = start_custom(
            |_, doc| {
                doc.as_object_mut()
                    .unwrap()
                    .remove("token_endpoint_auth_methods_supported");
            },
            json!({ "keys": [rsa_key(Some("k1"))] }),
        )
        .await;
        let checks = run(&connection(&issuer)).await;
        assert_status(
            &checks,
            "token_auth_method",
            CheckStatus::Ok,
            "client_secret_basic",
        );
    }

    #[tokio::test]
    async fn html_instead_of_discovery_is_not_json() {
        let (listener, issuer) = bind().await;
        let app = Router::new().route(
            "/.well-known/openid-configuration",
            get(|| async { axum::response::Html("<html>Sign in</html>") }),
        );
        serve(listener, app);
        let checks = run(&connection(&issuer)).await;
        assert_status(&checks, "discovery", CheckStatus::Failed, "not with JSON");
        assert_eq!(names(&checks), ["discovery", "scopes", "redirect_uri"]);
    }

    #[tokio::test]
    async fn missing_discovery_names_the_status_and_the_url() {
        let (listener, issuer) = bind().await;
        serve(listener, Router::new());
        let checks = run(&connection(&issuer)).await;
        assert_status(&checks, "discovery", CheckStatus::Failed, "HTTP 404");
        assert_status(
            &checks,
            "discovery",
            CheckStatus::Failed,
            ".well-known/openid-configuration",
        );
    }

    #[tokio::test]
    async fn redirected_discovery_is_reported() {
        let (listener, issuer) = bind().await;
        let app = Router::new().route(
            "/.well-known/openid-configuration",
            get(|| async { axum::response::Redirect::temporary("https://login.example/x") }),
        );
        serve(listener, app);
        let checks = run(&connection(&issuer)).await;
        assert_status(&checks, "discovery", CheckStatus::Failed, "redirect");
        assert_status(
            &checks,
            "discovery",
            CheckStatus::Failed,
            "https://login.example/x",
        );
    }

    #[tokio::test]
    async fn slow_discovery_times_out() {
        let (listener, issuer) = bind().await;
        let app = Router::new().route(
            "/.well-known/openid-configuration",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        );
        serve(listener, app);
        let http = crate::http_client(Duration::from_millis(300)).unwrap();
        let checks = run_with(&http, &connection(&issuer)).await;
        assert_status(
            &checks,
            "discovery",
            CheckStatus::Failed,
            "did not answer in time",
        );
    }
}
