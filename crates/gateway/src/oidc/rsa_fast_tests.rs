//! The fast path accepts exactly the tokens whose signature it verified with the key the
//! crate would pick, and defers everything else (`false`) to the crate.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use openidconnect::core::{CoreJsonWebKey, CoreJwsSigningAlgorithm};

use super::verified;

/// A test-only 2048-bit key (generated for these tests, used nowhere else).
const PRIVATE_PEM: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIEogIBAAKCAQEAy/+eq0S6+U+oMxk2Rd73bwMbsMY8veUElaHbxKifqNKFeJoX\nCvQAe0l+1tFy76aQd5nDdYGNSefBhulmKq4KpB9S94bVZmGdrp49NptpP4dSzLf3\nEMfTXclWxJQbaRzSvjWUdZS2PYxM479AR8N6m6SvOn2GxaGo8ObRtqGLp2IBz2iW\ncFTyv6Nwsnu+9OD6O3Yuk6q1X74XzAUkzzZ7zTY1wrkt25r/VflDoICof8K5nPEK\na5Qj2db2H2JR7pfkkDcXDBQxangX9Rl2QIP30vFDlzkPvPvPbWnL3uTSuMEKqiw2\nI/RGGcB19yzfEfWFfD5p84H0fShENoniwb7+iwIDAQABAoH/HEtF+xnnc6IIhvgx\n7J9wCLv9EGc4VN1c2w2bqwGisAT9kDOjz6sEgu1i9gOjhNcP9T6YIhWC/dLNASo2\nfARGVRvQo2PaEUrEetFwktMJyZ5Dbe8LTk+71f4hxjtjQo65Q5LfLCQPOGSI+d7G\nlKSEoW+MjvjS48yBDkLKLadazPkQwMG6gs8xObowrxZyKera2pKkTLm0oBGlor3P\nxB0wgZk9s71OEfy1mKDyGxm9vhJtWB7L6fSZqVHo7a3F084zgIWzdI1BpJvvMn2s\nFd1A9183NriLFyDNPn5bnqri1zq7NcmljsGiMJCx+tSx3tVLxdR2ikNo5yn7rIaa\nsOzpAoGBAPjlp8XmEE/kdJslCyaAAXiupkGtvYOSZj5KsMPoTRj+ELOyJw5w+Md4\nSsYNAs/tepF+JWnsUw0u4VY75zAczCoh4Z5d1/r0VTwR1Nf+n81+o1bUOQFzRVBp\nXECxUpTRN7SUzJz6e3Oi1fMCuqnsN3kk/vjVBC7WmNjkVOSevM71AoGBANHR8/mq\ncGjtIJDI+VtXI+p5EyFnMEdxI7jn1UQpJiB+udzP7KbUktlIgkTltzSwd+EvQnAE\nCbHAJhtoH0EAMn25CRDbu82upt7ooVumneLx3LVB/Djgixnu1TYTmFfKRTzG/qND\nm7Insq2Iq0mUYQy+oPP8UDv48QPLcNRCOSd/AoGBAOybfRNPMsCQIB2AaIov87Yi\n6R/Upy0VliavYDzMb8ZLd9srh59d29Hb09FUexDo47S945k/NHB62XHdvlfpeFix\nHscq1O/XJ9PT669tecKjGWmok4yCZSkdD7rcFvIrtbXwIlc0cvkpmhPKy2JPkSiT\n9+LatYBFNsYwwVcYY8qlAoGBAKvyHbktZr9mDDj6qfajm8hL/lRyZss1OawPOOOJ\nwTgCAjiloG87ZzhvRmpFwnSIZUWB4DVB6dvj9pahJnOzQK1tFLPfDrHI/fFQvOMJ\n0Pupb1CPSa4mvXe8FLgjKMZQ+ZqMDSMohZBjHfc+N/itgzbZhbdMv0fWg1SzxLv9\npS7rAoGAOmxMXjFjs6MbdJjXCFlZBs09kaZ3RZqWMeivo+Yt2zEopdbR6iSGNfgz\nhD6DlTXZlWUUE8mFkTyhc8j2wH8Z7SVPZDmXHVRSST3qzB7iqbsuTAWyXqJuVCDC\nf6eQBmeYMCrMsSb64P63238aOoP7XX9o75JXMv0sr7QI0JnCYCA=\n-----END RSA PRIVATE KEY-----";
const N: &str = "y_-eq0S6-U-oMxk2Rd73bwMbsMY8veUElaHbxKifqNKFeJoXCvQAe0l-1tFy76aQd5nDdYGNSefBhulmKq4KpB9S94bVZmGdrp49NptpP4dSzLf3EMfTXclWxJQbaRzSvjWUdZS2PYxM479AR8N6m6SvOn2GxaGo8ObRtqGLp2IBz2iWcFTyv6Nwsnu-9OD6O3Yuk6q1X74XzAUkzzZ7zTY1wrkt25r_VflDoICof8K5nPEKa5Qj2db2H2JR7pfkkDcXDBQxangX9Rl2QIP30vFDlzkPvPvPbWnL3uTSuMEKqiw2I_RGGcB19yzfEfWFfD5p84H0fShENoniwb7-iw";
/// Another key's modulus: the right `kid`, the wrong key.
const OTHER_N: &str = "w2iyg8RETstCbvi7vYHEVBuI_WDB-9_EOb6fapowNcUR3-TR8gqMsJvPKeRnsUEatOmHmA19nZyRTVAJ125x0-9oUwnbyX8TuFUsSpKkwfEP0HCdubUHpddiU6T5IC8jY7Cg1wV4T-KqDxhO6nWycybhPOVjvULdnP9Btfct7_BL_O3SIgEmcSXhjIr0qOTWwGcfSRHYsJSgOcsnSBQ5sEkjhN8PuFFaIVRES55ZeUdkFAKej5pXd3NbcmADBrgzhDPB7h_ZCMYbzcWrYjThK4xxumdF8n_Ss8Vu36eGSVvmOWDT0rZ5TIEgqX_cjwumdXXgFi0CJfzg1XOi0frcbQ";

const RS256: CoreJwsSigningAlgorithm = CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256;

fn jwk(value: serde_json::Value) -> CoreJsonWebKey {
    serde_json::from_value(value).unwrap()
}

fn rsa(kid: &str, n: &str) -> CoreJsonWebKey {
    jwk(serde_json::json!({ "kty": "RSA", "use": "sig", "kid": kid, "n": n, "e": "AQAB" }))
}

fn token(alg: Algorithm, kid: Option<&str>, extra: &[(&str, serde_json::Value)]) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    let mut header = serde_json::to_value(&header).unwrap();
    for (k, v) in extra {
        header[*k] = v.clone();
    }
    let claims = serde_json::json!({ "iss": "https://idp.test", "sub": "u1", "aud": "c" });
    // jsonwebtoken has no `crit`: sign header and claims by hand with its key.
    use base64::Engine;
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };
    let input = format!("{}.{}", b64(&header), b64(&claims));
    let key = EncodingKey::from_rsa_pem(PRIVATE_PEM.as_bytes()).unwrap();
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &key, alg).unwrap();
    format!("{input}.{signature}")
}

#[test]
fn a_valid_rs256_signature_by_the_kid_s_key_is_verified() {
    let keys = [rsa("k1", N), rsa("k2", OTHER_N)];
    assert!(verified(
        &token(Algorithm::RS256, Some("k1"), &[]),
        &keys,
        &[RS256]
    ));
    // No kid: fine when exactly one key fits.
    assert!(verified(
        &token(Algorithm::RS256, None, &[]),
        &[rsa("k1", N)],
        &[RS256]
    ));
}

#[test]
fn everything_else_is_left_to_the_crate() {
    let keys = [rsa("k1", N), rsa("k2", OTHER_N)];
    let good = token(Algorithm::RS256, Some("k1"), &[]);
    // Algorithm not allowed, or not RSA PKCS#1.
    assert!(!verified(
        &good,
        &keys,
        &[CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512]
    ));
    assert!(!verified(
        &token(Algorithm::PS256, Some("k1"), &[]),
        &keys,
        &[RS256, CoreJwsSigningAlgorithm::RsaSsaPssSha256]
    ));
    // Unknown kid, the wrong key under the right kid, two keys with that kid, no kid and two keys.
    assert!(!verified(
        &token(Algorithm::RS256, Some("k9"), &[]),
        &keys,
        &[RS256]
    ));
    assert!(!verified(
        &token(Algorithm::RS256, Some("k2"), &[]),
        &keys,
        &[RS256]
    ));
    assert!(!verified(
        &good,
        &[rsa("k1", N), rsa("k1", OTHER_N)],
        &[RS256]
    ));
    assert!(!verified(
        &token(Algorithm::RS256, None, &[]),
        &keys,
        &[RS256]
    ));
    // A key for encryption, or for another algorithm.
    let enc =
        jwk(serde_json::json!({ "kty": "RSA", "use": "enc", "kid": "k1", "n": N, "e": "AQAB" }));
    assert!(!verified(&good, &[enc], &[RS256]));
    let rs512 =
        jwk(serde_json::json!({ "kty": "RSA", "alg": "RS512", "kid": "k1", "n": N, "e": "AQAB" }));
    assert!(!verified(&good, &[rs512], &[RS256]));
    // Headers the crate refuses or treats specially.
    for extra in [
        ("crit", serde_json::json!(["exp"])),
        ("cty", serde_json::json!("JWT")),
    ] {
        assert!(
            !verified(
                &token(Algorithm::RS256, Some("k1"), std::slice::from_ref(&extra)),
                &keys,
                &[RS256]
            ),
            "{extra:?}"
        );
    }
    // A payload changed after signing; a cut or padded token.
    let mut parts: Vec<&str> = good.split('.').collect();
    let forged = "eyJpc3MiOiJodHRwczovL2lkcC50ZXN0Iiwic3ViIjoidTIiLCJhdWQiOiJjIn0";
    parts[1] = forged;
    assert!(!verified(&parts.join("."), &keys, &[RS256]));
    assert!(!verified(&good[..good.len() - 2], &keys, &[RS256]));
    assert!(!verified(&format!("{good}.x"), &keys, &[RS256]));
    assert!(!verified("", &keys, &[RS256]));
}
