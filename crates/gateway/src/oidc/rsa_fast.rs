//! A fast path for the ID token's RSA signature: `ring` instead of the `rsa` crate that
//! `openidconnect` uses, whose big-integer arithmetic was the largest single cost of a
//! returning sign-in (14 % of the gateway's CPU under load, measured with `perf`).
//!
//! It only ever *accepts*: when it verifies a signature, the caller skips the crate's own
//! signature check (and nothing else: header, `iss`, `aud`, `nonce`, `exp`, `iat` and
//! `azp` are still checked by the crate and by `flow::verify`). In every other case
//! (another algorithm, no single matching key, a key `ring` refuses, a bad signature) it
//! answers `false` and the crate verifies as before, so every refusal keeps its reason code.
//! The key is chosen as the crate chooses it (`JsonWebKeySet::filter_keys`): the header's
//! `kid` if any, a compatible type, use and algorithm, and exactly one such key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{
    CoreJsonWebKey, CoreJsonWebKeyType, CoreJsonWebKeyUse, CoreJwsSigningAlgorithm,
};
use openidconnect::{JsonWebKey, JsonWebKeyAlgorithm, JsonWebKeyUse};
use ring::signature::{self, RsaPublicKeyComponents};

/// The JOSE header fields that decide the key; anything the crate would refuse or treat
/// specially (`crit`, `cty`) sends the token down the crate's path.
#[derive(serde::Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    crit: Option<serde_json::Value>,
    cty: Option<serde_json::Value>,
}

/// Whether `compact` (the ID token as received) carries a valid RSA PKCS#1 v1.5 signature
/// by the one key of `keys` the crate would pick, with an algorithm in `allowed`.
pub fn verified(
    compact: &str,
    keys: &[CoreJsonWebKey],
    allowed: &[CoreJwsSigningAlgorithm],
) -> bool {
    let mut parts = compact.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Some(header) = URL_SAFE_NO_PAD
        .decode(header_b64)
        .ok()
        .and_then(|h| serde_json::from_slice::<Header>(&h).ok())
    else {
        return false;
    };
    if header.crit.is_some() || header.cty.is_some() {
        return false;
    }
    let (alg, params) = match header.alg.as_str() {
        "RS256" => (
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            &signature::RSA_PKCS1_2048_8192_SHA256,
        ),
        "RS384" => (
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
            &signature::RSA_PKCS1_2048_8192_SHA384,
        ),
        "RS512" => (
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
            &signature::RSA_PKCS1_2048_8192_SHA512,
        ),
        _ => return false,
    };
    if !allowed.contains(&alg) {
        return false;
    }
    let mut candidates = keys.iter().filter(|key| {
        let kid_matches = match &header.kid {
            Some(kid) => key.key_id().is_some_and(|k| k.as_str() == kid),
            None => true,
        };
        kid_matches
            && key
                .key_use()
                .is_none_or(CoreJsonWebKeyUse::allows_signature)
            && *key.key_type() == CoreJsonWebKeyType::RSA
            && match key.signing_alg() {
                JsonWebKeyAlgorithm::Unspecified => true,
                JsonWebKeyAlgorithm::Algorithm(a) => *a == alg,
                JsonWebKeyAlgorithm::Unsupported => false,
            }
    });
    let (Some(key), None) = (candidates.next(), candidates.next()) else {
        return false;
    };
    let Some((n, e)) = modulus_and_exponent(key) else {
        return false;
    };
    let Ok(sig) = URL_SAFE_NO_PAD.decode(signature_b64) else {
        return false;
    };
    let signing_input = &compact[..header_b64.len() + 1 + payload_b64.len()];
    RsaPublicKeyComponents { n: &n, e: &e }
        .verify(params, signing_input.as_bytes(), &sig)
        .is_ok()
}

/// The key's `n` and `e` (not public fields of the crate's type: read through serde).
fn modulus_and_exponent(key: &CoreJsonWebKey) -> Option<(Vec<u8>, Vec<u8>)> {
    let json = serde_json::to_value(key).ok()?;
    let field = |name: &str| URL_SAFE_NO_PAD.decode(json.get(name)?.as_str()?).ok();
    Some((field("n")?, field("e")?))
}

#[cfg(test)]
#[path = "rsa_fast_tests.rs"]
mod tests;
