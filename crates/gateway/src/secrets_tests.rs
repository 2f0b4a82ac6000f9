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
