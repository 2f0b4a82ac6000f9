//! The `jwks` check: the key set is reachable and has a key the allowed algorithms can use.

use openidconnect::core::{CoreJsonWebKeySet, CoreJsonWebKeyType, CoreJsonWebKeyUse};
use openidconnect::{JsonWebKey, JsonWebKeyAlgorithm};
use serde_json::{Map, Value};
use url::Url;

use super::fetch::fetch_json;
use super::{Check, cut, failed, list, ok, shown, warning};
use crate::config::Connection;
use crate::oidc::http::IdpHttp;

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

pub(super) async fn check_jwks(
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
