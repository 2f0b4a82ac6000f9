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
mod tests {
    use super::*;

    /// Bytes whose standard base64 contains both `+` and `/`, so the URL-safe form differs.
    fn fixed_bytes() -> [u8; 32] {
        let mut b = [0u8; 32];
        for (i, x) in b.iter_mut().enumerate() {
            *x = 0xf8u8.wrapping_add((i as u8).wrapping_mul(37));
        }
        b
    }

    fn fixed_key() -> SecretKey {
        SecretKey {
            bytes: fixed_bytes(),
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    const CTX: &str = "connection:acme:client_secret";

    #[test]
    fn round_trip() {
        let key = SecretKey::generate();
        let sealed = key.seal("s3cr3t-value", CTX).unwrap();
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("s3cr3t"));
        assert_eq!(key.open(&sealed, CTX).unwrap().expose(), "s3cr3t-value");
        // Empty and non-ASCII plaintexts too.
        for text in ["", "ünïcødé ✓"] {
            let sealed = key.seal(text, CTX).unwrap();
            assert_eq!(key.open(&sealed, CTX).unwrap().expose(), text);
        }
    }

    #[test]
    fn each_seal_differs() {
        let key = fixed_key();
        let a = key.seal("same", CTX).unwrap();
        let b = key.seal("same", CTX).unwrap();
        assert_ne!(a, b);
        assert_eq!(key.open(&a, CTX).unwrap(), key.open(&b, CTX).unwrap());
    }

    #[test]
    fn wrong_key_fails() {
        let sealed = fixed_key().seal("value", CTX).unwrap();
        let err = SecretKey::generate().open(&sealed, CTX).unwrap_err();
        assert_eq!(err, OpenError::Decrypt);
        assert!(err.to_string().contains("wrong key or corrupted data"));
    }

    #[test]
    fn tampered_byte_fails() {
        let key = fixed_key();
        let sealed = key.seal("value", CTX).unwrap();
        let raw = URL_SAFE_NO_PAD.decode(&sealed[3..]).unwrap();
        // A flip in the nonce, the ciphertext and the tag each break authentication.
        for i in [0, NONCE_LEN, raw.len() - 1] {
            let mut bad = raw.clone();
            bad[i] ^= 0x01;
            let tampered = format!("v1:{}", URL_SAFE_NO_PAD.encode(&bad));
            assert_eq!(
                key.open(&tampered, CTX),
                Err(OpenError::Decrypt),
                "byte {i}"
            );
        }
        // Dropping the last byte (a truncated copy) fails too.
        let short = format!("v1:{}", URL_SAFE_NO_PAD.encode(&raw[..raw.len() - 1]));
        assert_eq!(key.open(&short, CTX), Err(OpenError::Decrypt));
    }

    #[test]
    fn wrong_context_fails() {
        let key = fixed_key();
        let sealed = key.seal("value", CTX).unwrap();
        assert_eq!(
            key.open(&sealed, "connection:other:client_secret"),
            Err(OpenError::Decrypt)
        );
        assert_eq!(key.open(&sealed, ""), Err(OpenError::Decrypt));
    }

    #[test]
    fn malformed_input_has_format_errors() {
        let key = fixed_key();
        assert_eq!(key.open("plain-secret", CTX), Err(OpenError::MissingPrefix));
        assert_eq!(key.open("", CTX), Err(OpenError::MissingPrefix));
        // A colon in a plaintext is not mistaken for a version, and is not echoed.
        let err = key.open("user:hunter2", CTX).unwrap_err();
        assert_eq!(err, OpenError::MissingPrefix);
        assert!(!err.to_string().contains("hunter2"));
        assert_eq!(
            key.open("v2:AAAA", CTX),
            Err(OpenError::UnsupportedVersion {
                version: "v2".into()
            })
        );
        assert_eq!(key.open("v1:not base64!", CTX), Err(OpenError::BadEncoding));
        // Padding is not part of the format.
        assert_eq!(key.open("v1:AAAA==", CTX), Err(OpenError::BadEncoding));
        assert_eq!(key.open("v1:", CTX), Err(OpenError::TooShort));
        let short = URL_SAFE_NO_PAD.encode([0u8; NONCE_LEN + TAG_LEN - 1]);
        assert_eq!(
            key.open(&format!("v1:{short}"), CTX),
            Err(OpenError::TooShort)
        );
        // Exactly nonce + tag is well-formed (the empty plaintext) and reaches decryption.
        let minimal = URL_SAFE_NO_PAD.encode([0u8; NONCE_LEN + TAG_LEN]);
        assert_eq!(
            key.open(&format!("v1:{minimal}"), CTX),
            Err(OpenError::Decrypt)
        );
    }

    #[test]
    fn parse_accepts_base64_and_hex_forms() {
        let bytes = fixed_bytes();
        let std_padded = base64::engine::general_purpose::STANDARD.encode(bytes);
        assert!(std_padded.ends_with('='));
        assert!(std_padded.contains(['+', '/']), "{std_padded}");
        let forms = [
            std_padded.clone(),
            std_padded.trim_end_matches('=').to_owned(),
            base64::engine::general_purpose::URL_SAFE.encode(bytes),
            URL_SAFE_NO_PAD.encode(bytes),
            hex(&bytes),
            hex(&bytes).to_uppercase(),
            format!("  {std_padded}\n"),
        ];
        for form in &forms {
            let key = SecretKey::parse(form).unwrap_or_else(|e| panic!("{form}: {e}"));
            assert_eq!(key.bytes, bytes, "{form}");
        }
        assert_eq!(fixed_key().to_base64(), std_padded);
        let generated = SecretKey::generate();
        assert_eq!(
            SecretKey::parse(&generated.to_base64()).unwrap().bytes,
            generated.bytes
        );
    }

    #[test]
    fn parse_rejects_wrong_length_without_echoing() {
        for len in [31usize, 33] {
            let bytes: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(71) ^ 0xa5).collect();
            for (text, encoding) in [
                (
                    base64::engine::general_purpose::STANDARD.encode(&bytes),
                    "base64",
                ),
                (URL_SAFE_NO_PAD.encode(&bytes), "base64"),
                (hex(&bytes), "hex"),
            ] {
                let err = SecretKey::parse(&text).unwrap_err();
                assert_eq!(
                    err,
                    KeyError::WrongLength {
                        encoding,
                        bytes: len
                    },
                    "{text}"
                );
                let message = err.to_string();
                assert!(message.contains("32 bytes"), "{message}");
                assert!(message.contains(&format!("{len} bytes")), "{message}");
                assert!(!message.contains(&text), "{message}");
                assert!(!format!("{err:?}").contains(&text));
            }
        }
    }

    #[test]
    fn parse_rejects_bad_encoding_without_echoing() {
        assert_eq!(SecretKey::parse("").unwrap_err(), KeyError::Empty);
        assert_eq!(SecretKey::parse(" \n").unwrap_err(), KeyError::Empty);
        let std_text = fixed_key().to_base64();
        // Mixed alphabets, a stray character, and inner whitespace.
        let mixed = std_text.replacen(|c: char| c.is_ascii_alphanumeric(), "-", 1);
        for text in [
            mixed,
            format!("{std_text}!"),
            format!("{} {}", &std_text[..20], &std_text[20..]),
        ] {
            let err = SecretKey::parse(&text).unwrap_err();
            assert_eq!(err, KeyError::Encoding, "{text}");
            let message = err.to_string();
            assert!(!message.contains(&std_text[..16]), "{message}");
        }
    }

    #[test]
    fn debug_output_has_no_key_material() {
        let key = fixed_key();
        let b64 = key.to_base64();
        let urlsafe = URL_SAFE_NO_PAD.encode(key.bytes);
        let hex_text = hex(&key.bytes);
        let debug = format!("{key:?}");
        assert!(debug.contains(&key.fingerprint()), "{debug}");
        for secret_text in [&b64, &urlsafe, &hex_text] {
            // Any 8-character run of the key's text would be a leak, not just the whole.
            for window in secret_text.as_bytes().windows(8) {
                let window = std::str::from_utf8(window).unwrap();
                assert!(!debug.contains(window), "{debug} contains {window}");
            }
        }
        assert!(!debug.contains(&format!("{:?}", key.bytes)));

        // Errors from opening carry neither the key nor the plaintext nor the sealed text.
        let sealed = key.seal("plaintext-marker", CTX).unwrap();
        let errors = [
            SecretKey::generate().open(&sealed, CTX).unwrap_err(),
            key.open(&sealed, "other").unwrap_err(),
            key.open(&sealed[..sealed.len() - 1], CTX).unwrap_err(),
            key.open("plaintext-marker", CTX).unwrap_err(),
            SecretKey::generate()
                .verify_key_check(&key.key_check_value().unwrap())
                .unwrap_err(),
        ];
        for err in errors {
            for shown in [format!("{err:?}"), err.to_string()] {
                for leak in [b64.as_str(), &hex_text, "plaintext-marker", &sealed[3..]] {
                    assert!(!shown.contains(leak), "{shown}");
                }
            }
        }
        let opened = key.open(&sealed, CTX).unwrap();
        assert_eq!(format!("{opened:?}"), "Secret(***)");
    }

    #[test]
    fn fingerprint_is_stable_and_distinct() {
        let key = fixed_key();
        let fp = key.fingerprint();
        assert_eq!(fp.len(), 8);
        assert!(fp.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(fp, fixed_key().fingerprint());
        assert_eq!(
            fp,
            SecretKey::parse(&key.to_base64()).unwrap().fingerprint()
        );
        let others: Vec<String> = (0..8)
            .map(|_| SecretKey::generate().fingerprint())
            .collect();
        assert!(!others.contains(&fp));
        // Not simply a prefix of the key or of its plain SHA-256.
        assert!(!hex(&key.bytes).starts_with(&fp));
        assert!(!hex(&Sha256::digest(key.bytes)).starts_with(&fp));
    }

    #[test]
    fn key_check_value_verifies_only_with_its_key() {
        let key = fixed_key();
        let stored = key.key_check_value().unwrap();
        assert!(stored.starts_with("v1:"));
        assert_eq!(key.verify_key_check(&stored), Ok(()));
        assert_eq!(
            SecretKey::parse(&key.to_base64())
                .unwrap()
                .verify_key_check(&stored),
            Ok(())
        );

        let other = SecretKey::generate();
        let err = other.verify_key_check(&stored).unwrap_err();
        assert_eq!(
            err,
            OpenError::KeyMismatch {
                current: other.fingerprint()
            }
        );
        let message = err.to_string();
        assert!(message.contains("does not match the one the database was encrypted with"));
        assert!(message.contains(&other.fingerprint()));

        // A real secret sealed under the check's context is not accepted as a check value.
        let imposter = key.seal("something else", KEY_CHECK_CONTEXT).unwrap();
        assert!(matches!(
            key.verify_key_check(&imposter),
            Err(OpenError::KeyMismatch { .. })
        ));
        // Nor is a value sealed for another field.
        let elsewhere = key.seal(KEY_CHECK_PLAINTEXT, CTX).unwrap();
        assert!(matches!(
            key.verify_key_check(&elsewhere),
            Err(OpenError::KeyMismatch { .. })
        ));
        // A mangled stored value is reported as what it is.
        assert_eq!(
            key.verify_key_check("garbage"),
            Err(OpenError::MissingPrefix)
        );
    }
}
