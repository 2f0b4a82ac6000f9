//! ID token minting, honest or tampered in exactly one way per [`Misbehaviour`].
//!
//! Each tampering changes only the one thing its negative test is about, so a relying
//! party that accepts the token has a precise bug (SECURITY.md, "Negative tests").

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};

use super::keys::SigningKey;
use super::{IdpError, Misbehaviour};

/// How long an ID token is valid, in seconds.
pub(crate) const ID_TOKEN_TTL: i64 = 300;
/// How far the time-based tamperings move `iat`/`exp`: well beyond any sane leeway
/// (SECURITY.md rule 9 caps it at 5 minutes).
pub(crate) const SKEW: i64 = 600;
/// Issuer used for `WrongIssuer` and `IssParameterWrong`.
pub(crate) const WRONG_ISSUER: &str = "https://wrong-issuer.example";
/// Audience / azp that is not the client.
pub(crate) const OTHER_CLIENT: &str = "someone-else";
/// The tenant of `OtherTenant`: a well-formed Entra tenant id no relying party configured.
pub(crate) const OTHER_TENANT: &str = "7e57e57e-0000-4000-8000-0000000e7e11";

/// The honest content of an ID token.
pub(crate) struct IdTokenInput<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub sub: &'a str,
    pub nonce: Option<&'a str>,
    pub auth_time: i64,
    pub now: i64,
    /// email/profile/groups claims, already filtered by scope (empty when the IdP is
    /// configured to send them through userinfo only).
    pub user_claims: Map<String, Value>,
}

pub(crate) struct Keys<'a> {
    pub current: &'a SigningKey,
    /// Present once `UnknownKid` was switched on: a different pair under a kid the JWKS
    /// does not list.
    pub bogus: Option<&'a SigningKey>,
}

/// The honest claim set before tampering.
pub(crate) fn honest_claims(input: &IdTokenInput<'_>) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(input.issuer));
    claims.insert("sub".into(), json!(input.sub));
    claims.insert("aud".into(), json!(input.client_id));
    claims.insert("exp".into(), json!(input.now + ID_TOKEN_TTL));
    claims.insert("iat".into(), json!(input.now));
    claims.insert("auth_time".into(), json!(input.auth_time));
    if let Some(nonce) = input.nonce {
        claims.insert("nonce".into(), json!(nonce));
    }
    claims.insert("azp".into(), json!(input.client_id));
    for (k, v) in &input.user_claims {
        claims.insert(k.clone(), v.clone());
    }
    claims
}

/// Mints the ID token for `input`, tampered per `misbehaviour`. `Ok(None)` means the
/// token response must carry no ID token at all (`NoIdToken`).
pub(crate) fn mint(
    input: &IdTokenInput<'_>,
    keys: &Keys<'_>,
    misbehaviour: &Misbehaviour,
) -> Result<Option<String>, IdpError> {
    let mut claims = honest_claims(input);
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(keys.current.kid.clone());
    let mut signer = keys.current;

    match misbehaviour {
        Misbehaviour::NoIdToken => return Ok(None),
        Misbehaviour::AlgNone => {
            // jsonwebtoken refuses to produce `none`, so build it by hand: the classic
            // unsigned token, empty signature segment.
            let header = json!({"alg": "none", "typ": "JWT"});
            return Ok(Some(format!(
                "{}.{}.",
                b64_json(&header)?,
                b64_json(&Value::Object(claims))?
            )));
        }
        Misbehaviour::Hs256WithPublicKey => {
            // Alg confusion: a verifier that feeds "the key" to whatever `alg` says would
            // use the public key PEM as HMAC secret and accept this.
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some(keys.current.kid.clone());
            let key = EncodingKey::from_secret(keys.current.public_pem().as_bytes());
            return jsonwebtoken::encode(&header, &claims, &key)
                .map(Some)
                .map_err(IdpError::Signing);
        }
        Misbehaviour::WrongIssuer => {
            claims.insert("iss".into(), json!(WRONG_ISSUER));
        }
        Misbehaviour::MissingIssuer => {
            claims.remove("iss");
        }
        // azp stays = client_id: an RP must not take azp as a substitute for aud.
        Misbehaviour::WrongAudience => {
            claims.insert("aud".into(), json!(OTHER_CLIENT));
        }
        Misbehaviour::MissingAudience => {
            claims.remove("aud");
        }
        Misbehaviour::ExtraAudienceNoAzp => {
            claims.insert("aud".into(), json!([input.client_id, OTHER_CLIENT]));
            claims.remove("azp");
        }
        Misbehaviour::WrongAzp => {
            claims.insert("azp".into(), json!(OTHER_CLIENT));
        }
        Misbehaviour::MissingSub => {
            claims.remove("sub");
        }
        Misbehaviour::MissingIat => {
            claims.remove("iat");
        }
        Misbehaviour::IatInFuture => {
            // exp moves along so that iat is the only thing wrong.
            claims.insert("iat".into(), json!(input.now + SKEW));
            claims.insert("exp".into(), json!(input.now + SKEW + ID_TOKEN_TTL));
        }
        Misbehaviour::Expired => {
            // Issued long enough ago that iat < exp still holds.
            claims.insert("iat".into(), json!(input.now - SKEW - ID_TOKEN_TTL));
            claims.insert("auth_time".into(), json!(input.now - SKEW - ID_TOKEN_TTL));
            claims.insert("exp".into(), json!(input.now - SKEW));
        }
        Misbehaviour::MissingExp => {
            claims.remove("exp");
        }
        Misbehaviour::WrongNonce => {
            claims.insert(
                "nonce".into(),
                json!(format!("not-your-nonce-{}", uuid::Uuid::new_v4().simple())),
            );
        }
        Misbehaviour::MissingNonce => {
            claims.remove("nonce");
        }
        Misbehaviour::UnknownKid => {
            let bogus = keys.bogus.ok_or(IdpError::BogusKeyMissing)?;
            header.kid = Some(bogus.kid.clone());
            signer = bogus;
        }
        Misbehaviour::NoKid => {
            header.kid = None;
        }
        Misbehaviour::OtherTenant => {
            claims.insert(
                "iss".into(),
                json!(format!("https://login.microsoftonline.com/{OTHER_TENANT}/v2.0")),
            );
            claims.insert("tid".into(), json!(OTHER_TENANT));
        }
        Misbehaviour::Rs512Signature => {
            return signer
                .sign(Algorithm::RS512, header, &claims)
                .map(Some);
        }
        Misbehaviour::None
        | Misbehaviour::BadSignature
        | Misbehaviour::UserinfoWrongSub
        | Misbehaviour::TokenEndpointStatus(_)
        | Misbehaviour::TokenEndpointHang
        | Misbehaviour::TokenEndpointSlow(_)
        | Misbehaviour::DiscoveryWrongIssuer
        | Misbehaviour::JwksDown
        | Misbehaviour::AuthorizeError(_)
        | Misbehaviour::IssParameterWrong
        | Misbehaviour::IssParameterMissing
        // Token response or discovery misbehaviours: the token itself is honest.
        | Misbehaviour::ReplayIdToken
        | Misbehaviour::DiscoveryPlainHttp
        | Misbehaviour::JwksUriOtherHost => {}
    }

    let token = signer.sign_rs256(header, &claims)?;
    if *misbehaviour == Misbehaviour::BadSignature {
        return corrupt_signature(&token).map(Some);
    }
    Ok(Some(token))
}

fn b64_json(value: &Value) -> Result<String, IdpError> {
    let bytes = serde_json::to_vec(value).map_err(|e| IdpError::Encoding(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Flips bits in the middle of the signature: still valid base64url of the right length,
/// so only a real signature check catches it.
fn corrupt_signature(token: &str) -> Result<String, IdpError> {
    let (signed, signature) = token
        .rsplit_once('.')
        .ok_or_else(|| IdpError::Encoding("token without signature".into()))?;
    let mut bytes = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|e| IdpError::Encoding(e.to_string()))?;
    let middle = bytes.len() / 2;
    if let Some(byte) = bytes.get_mut(middle) {
        *byte ^= 0x5a;
    }
    Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(bytes)))
}
