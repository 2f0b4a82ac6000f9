//! Secrets at rest: the key that encrypts IdP client secrets and BigCommerce credentials in
//! the database, and the sealed text format stored in their columns.
//!
//! A sealed value is `v1:<base64url(nonce(12) || ciphertext || tag(16))>`, AES-256-GCM with a
//! fresh random nonce per seal. The caller's `context` (for example
//! `connection:acme:client_secret`) is the associated data, so a ciphertext copied into
//! another row or column fails to open instead of silently becoming that field's secret.
//!
//! Nothing here prints key bytes or plaintext: [`SecretKey`]'s `Debug` shows only its
//! fingerprint, errors never echo their input, and opened values come back as
//! [`Secret`], which prints `Secret(***)`.
//!
//! Start-up check: the store keeps one [`SecretKey::key_check_value`]; at start-up
//! [`SecretKey::verify_key_check`] against it tells a wrong key apart from a right one before
//! any real secret is needed, so a misconfigured gateway stops at once with a clear message
//! rather than failing sign-ins one by one.

use std::fmt;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, Generate, Key, KeyInit, Nonce, Payload};
use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use sha2::{Digest, Sha256};

use crate::domain::Secret;

/// Length of an AES-256 key.
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Version prefix of the sealed format; a later format gets `v2:` and `open` can tell them apart.
const PREFIX: &str = "v1:";
/// Context (associated data) of the key check value; no real field may use it.
pub const KEY_CHECK_CONTEXT: &str = "key-check";
/// What the key check value seals. Fixed and public: it proves the key, not a secret.
const KEY_CHECK_PLAINTEXT: &str = "bc-sso-gateway key check v1";
/// Domain separation for the fingerprint, so it is not a plain hash of the key that could
/// be matched against hashes computed elsewhere.
const FINGERPRINT_LABEL: &[u8] = b"bc-sso-gateway secret key fingerprint v1\0";

/// Key input is accepted with or without `=` padding: operators paste keys from many tools.
const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// Why a key text was rejected. No variant carries the text itself: a key that is only a
/// little wrong (a character short) is still almost the whole key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the secret key is empty; generate one with `bc-sso-gateway keygen`")]
    Empty,
    #[error(
        "the secret key must be 32 bytes, but this {encoding} text decodes to {bytes} bytes; generate one with `bc-sso-gateway keygen`"
    )]
    WrongLength {
        encoding: &'static str,
        bytes: usize,
    },
    #[error(
        "the secret key is neither base64 (standard or URL-safe) nor 64 hex characters; generate one with `bc-sso-gateway keygen`"
    )]
    Encoding,
}

/// Why sealing failed. Neither should happen in practice; they are errors rather than
/// panics so that an admin saving a secret gets an error page, not a dead worker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("cannot encrypt: the operating system's random number generator failed")]
    Random,
    #[error("cannot encrypt: the value is too long")]
    TooLong,
}

/// Why a sealed value could not be opened. The format variants are told apart because
/// they point at different mistakes (a plaintext left in a column, a truncated copy); a
/// wrong key, a wrong context and a flipped bit all fail the same authentication tag and
/// cannot be told apart, so they share [`OpenError::Decrypt`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("not a sealed secret: it does not start with \"v1:\"")]
    MissingPrefix,
    #[error("sealed secret format {version} is not supported by this version of the gateway")]
    UnsupportedVersion { version: String },
    #[error("sealed secret is not valid unpadded URL-safe base64")]
    BadEncoding,
    #[error("sealed secret is too short to hold a nonce and an authentication tag")]
    TooShort,
    #[error("cannot decrypt: wrong key or corrupted data (or a value copied from another field)")]
    Decrypt,
    #[error("decrypted secret is not UTF-8 text")]
    NotText,
    #[error(
        "the secret key (fingerprint {current}) does not match the one the database was encrypted with; restore that key, or, to start over with this one, delete the stored secrets and key check and enter the secrets again"
    )]
    KeyMismatch { current: String },
}

/// A 32-byte AES-256-GCM key. `Debug` shows only the fingerprint.
#[derive(Clone)]
pub struct SecretKey {
    bytes: [u8; KEY_LEN],
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl SecretKey {
    /// Parses base64 (standard or URL-safe, padding optional) of exactly 32 bytes, or 64
    /// hex characters. Surrounding whitespace is ignored so a key file may end in a newline.
    pub fn parse(text: &str) -> Result<SecretKey, KeyError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(KeyError::Empty);
        }
        // Hex first: 64 hex characters are also valid base64 (of 48 bytes). Only
        // even-length all-hex text counts as hex; base64 of 32 bytes is 43 or 44 characters,
        // so a real base64 key is not mistaken for hex.
        if text.len().is_multiple_of(2) && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            if text.len() != 2 * KEY_LEN {
                return Err(KeyError::WrongLength {
                    encoding: "hex",
                    bytes: text.len() / 2,
                });
            }
            return Ok(SecretKey {
                bytes: decode_hex(text.as_bytes()),
            });
        }
        let engine = if text.contains(['-', '_']) {
            &URL_SAFE_LENIENT
        } else {
            &STANDARD_LENIENT
        };
        // The decoder's own error names the offending character; it is dropped on purpose.
        let decoded = engine.decode(text).map_err(|_| KeyError::Encoding)?;
        let bytes: [u8; KEY_LEN] =
            decoded
                .as_slice()
                .try_into()
                .map_err(|_| KeyError::WrongLength {
                    encoding: "base64",
                    bytes: decoded.len(),
                })?;
        Ok(SecretKey { bytes })
    }

    /// A new random key from the operating system's RNG.
    ///
    /// # Panics
    /// Only if the operating system cannot provide randomness, in which case no key could be
    /// made safely anyway.
    pub fn generate() -> SecretKey {
        SecretKey {
            bytes: Key::<Aes256Gcm>::generate().into(),
        }
    }

    /// Standard base64 with padding, the form `keygen` prints and [`SecretKey::parse`] reads.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.bytes)
    }

    /// First 8 hex characters of SHA-256(label || key): enough to tell keys apart in logs
    /// and messages, far too little to help guess the key.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::new()
            .chain_update(FINGERPRINT_LABEL)
            .chain_update(self.bytes)
            .finalize();
        digest[..4].iter().map(|b| format!("{b:02x}")).collect()
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&Key::<Aes256Gcm>::from(self.bytes))
    }

    /// Encrypts `plaintext` for the field named by `context`. Each call draws a new random
    /// nonce, so sealing the same value twice gives different text (96-bit random nonces are
    /// safe for far more seals than an admin console will ever make with one key).
    pub fn seal(&self, plaintext: &str, context: &str) -> Result<String, SealError> {
        let nonce = Nonce::<Aes256Gcm>::try_generate().map_err(|_| SealError::Random)?;
        let ciphertext = self
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SealError::TooLong)?;
        let mut raw = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&ciphertext);
        Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw)))
    }

    /// Decrypts a value made by [`SecretKey::seal`] with the same key and `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Secret, OpenError> {
        let Some(body) = sealed.strip_prefix(PREFIX) else {
            return Err(match version_of(sealed) {
                Some(version) => OpenError::UnsupportedVersion {
                    version: version.to_owned(),
                },
                None => OpenError::MissingPrefix,
            });
        };
        let raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| OpenError::BadEncoding)?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return Err(OpenError::TooShort);
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::<Aes256Gcm>::try_from(nonce).map_err(|_| OpenError::TooShort)?;
        let plaintext = self
            .cipher()
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| OpenError::Decrypt)?;
        String::from_utf8(plaintext)
            .map(Secret::new)
            .map_err(|_| OpenError::NotText)
    }

    /// A sealed known value for the store to keep, so start-up can check the key before any
    /// real secret is opened.
    pub fn key_check_value(&self) -> Result<String, SealError> {
        self.seal(KEY_CHECK_PLAINTEXT, KEY_CHECK_CONTEXT)
    }

    /// Checks a stored [`SecretKey::key_check_value`]. A value this key cannot decrypt is
    /// reported as [`OpenError::KeyMismatch`], whose message is meant to stop start-up as is;
    /// a malformed value keeps its format error, since that points at the database instead.
    pub fn verify_key_check(&self, stored: &str) -> Result<(), OpenError> {
        let mismatch = || OpenError::KeyMismatch {
            current: self.fingerprint(),
        };
        match self.open(stored, KEY_CHECK_CONTEXT) {
            Ok(value) if value.expose() == KEY_CHECK_PLAINTEXT => Ok(()),
            // Decrypts but is not our check text: sealed by this key for something else,
            // which still means the stored value cannot vouch for the key.
            Ok(_) | Err(OpenError::Decrypt) => Err(mismatch()),
            Err(e) => Err(e),
        }
    }
}

/// `v<digits>` before the first `:`, when the text looks like a sealed value of another
/// format version. Only that shape is echoed: anything else may be a plaintext secret
/// stored by mistake.
fn version_of(sealed: &str) -> Option<&str> {
    let (head, _) = sealed.split_once(':')?;
    let digits = head.strip_prefix('v')?;
    (!digits.is_empty() && digits.len() <= 9 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then_some(head)
}

/// Decodes 64 hex digits already checked by the caller.
fn decode_hex(text: &[u8]) -> [u8; KEY_LEN] {
    fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            // Unreachable: the caller checked every character is a hex digit.
            _ => 0,
        }
    }
    let mut out = [0u8; KEY_LEN];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = (nibble(pair[0]) << 4) | nibble(pair[1]);
    }
    out
}

#[cfg(test)]
#[path = "secrets_tests.rs"]
mod tests;
