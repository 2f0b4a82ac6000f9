//! RSA signing keys for the dev IdP, handed out from a process-wide pool.
//!
//! Generating a 2048-bit key takes a few hundred milliseconds in a debug build and the
//! test suites start many IdPs, so generated key pairs are kept in a pool and reused.
//! A pair is handed out only while no other live `DevIdp` holds it (the pool's `Arc` is
//! then the only reference). So two IdPs alive at the same time (the mix-up tests) never
//! share a key pair, and the keys inside one IdP (current, extra, rotated, bogus) are
//! always distinct pairs: a "rotated" or "unknown kid" key really fails to verify
//! against the old JWKS. Every hand-out gets a fresh `kid`.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use rsa::RsaPrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde::Serialize;

use super::IdpError;

/// One RSA key pair, in the forms the IdP needs.
pub(crate) struct KeyPair {
    encoding: EncodingKey,
    /// SPKI PEM ("BEGIN PUBLIC KEY", LF line endings): the bytes an alg-confusion
    /// attacker would use as an HMAC secret.
    public_pem: String,
    n: String,
    e: String,
}

impl KeyPair {
    fn generate() -> Result<Self, IdpError> {
        let private = RsaPrivateKey::new(&mut rand::thread_rng(), 2048)
            .map_err(|e| IdpError::KeyGeneration(e.to_string()))?;
        let private_pem = private
            .to_pkcs1_pem(LineEnding::LF)
            .map_err(|e| IdpError::KeyGeneration(e.to_string()))?;
        let public_pem = private
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| IdpError::KeyGeneration(e.to_string()))?;
        let encoding = EncodingKey::from_rsa_pem(private_pem.as_bytes())
            .map_err(|e| IdpError::KeyGeneration(e.to_string()))?;
        Ok(KeyPair {
            encoding,
            public_pem,
            n: URL_SAFE_NO_PAD.encode(private.n().to_bytes_be()),
            e: URL_SAFE_NO_PAD.encode(private.e().to_bytes_be()),
        })
    }
}

static POOL: OnceLock<Mutex<Vec<Arc<KeyPair>>>> = OnceLock::new();

/// A key pair from the pool under a fresh `kid`.
pub(crate) fn take_key() -> Result<SigningKey, IdpError> {
    let pool = POOL.get_or_init(Default::default);
    let reused = {
        let keys = pool.lock().unwrap_or_else(PoisonError::into_inner);
        // Cloning under the lock raises the count, so no other caller can take it too.
        keys.iter()
            .find(|k| Arc::strong_count(k) == 1)
            .map(Arc::clone)
    };
    let pair = match reused {
        Some(pair) => pair,
        None => {
            // Generate outside the lock so parallel tests generate in parallel.
            let pair = Arc::new(KeyPair::generate()?);
            pool.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Arc::clone(&pair));
            pair
        }
    };
    Ok(SigningKey {
        kid: format!(
            "devidp-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ),
        pair,
    })
}

/// A key pair as one IdP uses it: under its own `kid`.
#[derive(Clone)]
pub(crate) struct SigningKey {
    pub(crate) kid: String,
    pair: Arc<KeyPair>,
}

/// RFC 7517 JWK for an RS256 signing key.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Jwk {
    kty: &'static str,
    #[serde(rename = "use")]
    use_: &'static str,
    alg: &'static str,
    kid: String,
    n: String,
    e: String,
}

impl SigningKey {
    pub(crate) fn jwk(&self) -> Jwk {
        Jwk {
            kty: "RSA",
            use_: "sig",
            alg: "RS256",
            kid: self.kid.clone(),
            n: self.pair.n.clone(),
            e: self.pair.e.clone(),
        }
    }

    pub(crate) fn public_pem(&self) -> &str {
        &self.pair.public_pem
    }

    /// RS256 compact JWS; `header.alg` is forced to RS256.
    pub(crate) fn sign_rs256<T: Serialize>(
        &self,
        header: Header,
        claims: &T,
    ) -> Result<String, IdpError> {
        self.sign(jsonwebtoken::Algorithm::RS256, header, claims)
    }

    /// Compact JWS with this RSA key under `alg` (an RSA algorithm); `header.alg` is set to it.
    pub(crate) fn sign<T: Serialize>(
        &self,
        alg: jsonwebtoken::Algorithm,
        mut header: Header,
        claims: &T,
    ) -> Result<String, IdpError> {
        header.alg = alg;
        jsonwebtoken::encode(&header, claims, &self.pair.encoding).map_err(IdpError::Signing)
    }
}
