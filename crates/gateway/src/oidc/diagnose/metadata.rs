//! What the discovery document says: issuer, endpoint URLs, response type, PKCE, ID-token
//! algorithms, scopes, RFC 9207 `iss`, and token endpoint authentication.

use serde_json::{Map, Value};

use super::{Check, failed, field_name, list, ok, shown, string_list, warning};
use crate::config::{Connection, check_idp_url_str};
use crate::oidc::discovery::endpoint_urls;

// ---------------------------------------------------------------------------------------
// 2. Issuer

pub(super) fn check_issuer(conn: &Connection, doc: &Map<String, Value>) -> Check {
    let configured = conn.published_issuer();
    let Some(published) = doc.get("issuer").and_then(Value::as_str) else {
        return failed(
            "issuer",
            format!(
                "The discovery document has no issuer field, so it cannot be matched to the configured issuer {}.",
                shown(configured)
            ),
        );
    };
    if published == configured
        && let Some(tenants) = &conn.tenants
    {
        return ok(
            "issuer",
            format!(
                "The identity provider publishes the multi-tenant issuer {}; tokens are accepted only from the {} allowed tenant(s), each with its own issuer (for example {}).",
                shown(published),
                tenants.allowed.len(),
                shown(
                    &tenants.issuer_of(tenants.allowed.first().map(String::as_str).unwrap_or(""))
                ),
            ),
        );
    }
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
pub(super) fn refused_urls(conn: &Connection, doc: &Map<String, Value>) -> usize {
    endpoint_urls(doc)
        .into_iter()
        .filter(|(_, raw)| check_idp_url_str(raw, conn.issuer.url()).is_err())
        .count()
}

/// Every endpoint URL through the rule sign-in applies, plus the endpoints sign-in needs.
pub(super) fn check_endpoints(conn: &Connection, doc: &Map<String, Value>) -> Check {
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

pub(super) fn check_response_type(doc: &Map<String, Value>) -> Check {
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

pub(super) fn check_pkce(doc: &Map<String, Value>) -> Check {
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

pub(super) fn check_id_token_algs(conn: &Connection, doc: &Map<String, Value>) -> Check {
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
// 7-9. Scopes, RFC 9207, token endpoint authentication

pub(super) fn check_scopes(conn: &Connection, doc: Option<&Map<String, Value>>) -> Check {
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

pub(super) fn check_iss_parameter(doc: &Map<String, Value>) -> Check {
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

pub(super) fn check_token_auth_method(doc: &Map<String, Value>) -> Check {
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
