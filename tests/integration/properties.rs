//! Property tests (issue 9 item 10): the parsers that take attacker-controlled input, run
//! for a fixed number of generated cases in every test run. Each property states what must
//! hold for *every* input, not for a table; the tables of known attacks stay next to the
//! code. Failing cases that proptest finds are saved under `proptest-regressions/` and
//! replayed first on every later run: commit them, they are the corpus.
//!
//! `PROPTEST_CASES` raises the number of cases for a longer local run.

use std::collections::HashMap;

use bc_sso_gateway::config::{self, RawConfig};
use bc_sso_gateway::domain::Email;
use bc_sso_gateway::oidc::CallbackParams;
use bc_sso_gateway::redirect::{RelativePath, or_default};
use percent_encoding::percent_decode_str;
use proptest::prelude::*;

fn cases() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2_000),
        ..ProptestConfig::default()
    }
}

/// Strings built from the pieces open-redirect and login-CSRF payloads are made of, so
/// generated inputs reach the interesting branches instead of failing on the first byte.
fn redirect_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/".to_owned()),
        Just("//".to_owned()),
        Just("\\".to_owned()),
        Just("%2f".to_owned()),
        Just("%2F".to_owned()),
        Just("%5c".to_owned()),
        Just("%09".to_owned()),
        Just("%0d%0a".to_owned()),
        Just("%00".to_owned()),
        Just("%25".to_owned()),
        Just(".".to_owned()),
        Just("..".to_owned()),
        Just("?".to_owned()),
        Just("#".to_owned()),
        Just("&".to_owned()),
        Just("=".to_owned()),
        Just(":".to_owned()),
        Just("@".to_owned()),
        Just("login".to_owned()),
        Just("LOGIN".to_owned()),
        Just("token".to_owned()),
        Just("login.php".to_owned()),
        Just("action".to_owned()),
        Just("logout".to_owned()),
        Just("https:".to_owned()),
        Just("javascript:".to_owned()),
        Just("evil.com".to_owned()),
        "[a-z0-9]{1,6}",
        any::<char>().prop_map(String::from),
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

/// What every accepted landing path satisfies, checked on the raw and the decoded form
/// (the storefront decodes once).
fn assert_safe_landing(raw: &str) {
    let decoded = percent_decode_str(raw).decode_utf8_lossy().into_owned();
    for s in [raw, decoded.as_str()] {
        assert!(s.starts_with('/'), "{raw:?}: not relative");
        let path = s.split(['?', '#']).next().unwrap_or_default();
        assert!(!path.starts_with("//"), "{raw:?}: protocol-relative");
        assert!(!s.contains('\\'), "{raw:?}: backslash");
        assert!(
            !s.chars().any(|c| c.is_control() || c.is_whitespace()),
            "{raw:?}: control or whitespace"
        );
        let lower = path.to_ascii_lowercase();
        assert!(
            !lower.starts_with("/login/token"),
            "{raw:?}: storefront login token endpoint"
        );
        // The query only: a fragment (`/login.php#action`) never reaches the storefront.
        let query = s.split('#').next().unwrap_or_default();
        let query = query.split_once('?').map_or("", |(_, q)| q);
        assert!(
            !(lower.trim_end_matches('/') == "/login.php"
                && query.to_ascii_lowercase().contains("action")),
            "{raw:?}: storefront login action"
        );
    }
}

proptest! {
    #![proptest_config(cases())]

    /// Rules 13 and 24: whatever comes in, what goes out is a safe landing path.
    #[test]
    fn redirect_to_is_always_a_safe_landing_path(raw in redirect_like()) {
        let default = RelativePath::parse("/account.php").unwrap();
        let out = or_default(Some(&raw), &default);
        assert_safe_landing(out.as_str());
        if let Ok(p) = RelativePath::landing(&raw) {
            prop_assert_eq!(p.as_str(), raw.as_str(), "accepted values are kept verbatim");
        }
    }

    /// Arbitrary bytes too (not only the pieces above), including very long input.
    #[test]
    fn redirect_to_never_panics_on_arbitrary_text(raw in ".{0,3000}") {
        let default = RelativePath::parse("/account.php").unwrap();
        assert_safe_landing(or_default(Some(&raw), &default).as_str());
    }

    /// Rule 19: two addresses are one only when they differ in ASCII case of the local
    /// part or are the same domain; normalising is idempotent and keeps one '@'.
    #[test]
    fn email_normalisation_folds_only_ascii_case(
        local in "[a-zA-Z0-9._+\u{212A}\u{131}\u{17F}\u{e9}\u{c9}-]{1,20}",
        domain in "[a-zA-Z0-9-]{1,10}\\.(com|TEST|xn--exmple-cua\\.com|ex\u{e4}mple\\.org)",
    ) {
        let Ok(email) = Email::parse(&format!("{local}@{domain}")) else {
            return Ok(());
        };
        let n = email.normalised();
        prop_assert_eq!(n.matches('@').count(), 1);
        let again = Email::parse(&n).unwrap();
        prop_assert_eq!(again.normalised(), n.clone(), "idempotent");
        // The local part changes only where ASCII letters change case.
        let (nl, _) = n.split_once('@').unwrap();
        prop_assert_eq!(nl, local.to_ascii_lowercase());
        // Never meets the ASCII look-alike of a non-ASCII local part.
        if !local.is_ascii() {
            prop_assert!(!email.is_ascii());
            let lookalike: String = local.to_lowercase().chars().filter(char::is_ascii).collect();
            if !lookalike.is_empty() {
                let other = format!("{lookalike}@{domain}");
                prop_assert!(!email.same_address(&other));
            }
        }
    }

    /// Email parsing never panics, and what it accepts has exactly one '@' and no
    /// whitespace, control character or comma in the local part (a comma would split
    /// BigCommerce's `email:in` filter).
    #[test]
    fn email_parse_never_panics(raw in ".{0,300}") {
        if let Ok(e) = Email::parse(&raw) {
            let local = e.local_part();
            prop_assert!(!local.is_empty());
            prop_assert!(!local.chars().any(|c| c.is_whitespace() || c.is_control() || c == ',' || c == '@'));
            prop_assert!(e.domain().is_ascii());
            prop_assert!(e.normalised().len() <= 260);
        }
    }

    /// Rule 11: a callback query names `state`, `code`, `iss` and `error` at most once
    /// each, however it is encoded; it never panics.
    #[test]
    fn callback_query_refuses_duplicates(
        pairs in proptest::collection::vec(
            (prop_oneof![Just("code"), Just("state"), Just("iss"), Just("error"), Just("x"), Just("st%61te")],
             "[a-zA-Z0-9%&=+]{0,12}"),
            0..8,
        )
    ) {
        let query = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
        let mut counts: HashMap<String, usize> = HashMap::new();
        for (k, _) in url::form_urlencoded::parse(query.as_bytes()) {
            *counts.entry(k.into_owned()).or_default() += 1;
        }
        let duplicated = ["code", "state", "iss", "error"]
            .iter()
            .any(|k| counts.get(*k).copied().unwrap_or(0) > 1);
        match CallbackParams::parse_strict(Some(&query)) {
            Ok(_) => prop_assert!(!duplicated, "{:?} accepted with a duplicate", query),
            Err(_) => prop_assert!(duplicated, "{:?} refused without a duplicate", query),
        }
    }

    /// The config loader: any TOML text gives a config or a list of errors, never a panic.
    #[test]
    fn config_loader_never_panics(text in config_like()) {
        if let Ok(raw) = toml::from_str::<RawConfig>(&text) {
            let _ = config::validate(raw);
        }
    }
}

/// TOML documents made of the config's own keys with odd values, so the validator (not
/// only the TOML parser) sees them.
fn config_like() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just("\"\"".to_owned()),
        Just("\"https://idp.example.com\"".to_owned()),
        Just("\"http://0.0.0.0:1\"".to_owned()),
        Just("\"http://[::ffff:127.0.0.1]:8080\"".to_owned()),
        Just("\"/login/token/x\"".to_owned()),
        Just("\"//evil\"".to_owned()),
        Just("0".to_owned()),
        Just("-1".to_owned()),
        Just("99999999999".to_owned()),
        Just("true".to_owned()),
        Just("[]".to_owned()),
        Just("[\"*.\", \"a..b\", \"\u{212A}.com\"]".to_owned()),
        "\"[ -~]{0,20}\"",
    ];
    let server_key = prop_oneof![
        Just("public_url"),
        Just("listen"),
        Just("http_timeout_secs"),
        Just("pending_login_ttl_secs"),
        Just("rate_limit_per_minute"),
    ];
    let conn_key = prop_oneof![
        Just("id"),
        Just("issuer"),
        Just("client_id"),
        Just("client_secret"),
        Just("allowed_email_domains"),
        Just("trusted_email_domains"),
        Just("link_existing"),
        Just("channel_access"),
        Just("id_token_algs"),
        Just("clock_leeway_secs"),
        Just("hosted_domain"),
    ];
    (
        proptest::collection::vec((server_key, value.clone()), 0..4),
        proptest::collection::vec((conn_key, value.clone()), 0..8),
        value,
    )
        .prop_map(|(server, conn, redirect)| {
            let mut t = String::from("[server]\n");
            for (k, v) in server {
                t.push_str(&format!("{k} = {v}\n"));
            }
            t.push_str("[store]\nstore_hash = \"abc\"\nclient_id = \"c\"\nclient_secret = \"s\"\naccess_token = \"t\"\n");
            t.push_str(&format!(
                "[[store.channels]]\nid = 1\nstorefront_url = \"https://shop.example.com\"\ndefault_redirect = {redirect}\n"
            ));
            t.push_str("[[connections]]\n");
            for (k, v) in conn {
                t.push_str(&format!("{k} = {v}\n"));
            }
            t
        })
}

/// The loader refuses a storefront login endpoint as a channel's landing page.
#[test]
fn config_refuses_a_login_endpoint_as_default_redirect() {
    let text = r#"
[server]
public_url = "https://sso.example.com"
[store]
store_hash = "abc"
api_base_url = "https://api.bigcommerce.com"
client_id = "c"
client_secret = "s"
access_token = "t"
[[store.channels]]
id = 1
storefront_url = "https://shop.example.com"
default_redirect = "/login.php?action=logout"
"#;
    let raw: RawConfig = toml::from_str(text).unwrap();
    let errors = config::validate(raw).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.to_string().contains("default_redirect")),
        "{errors:?}"
    );
}

/// The corpus kept in the repo (`tests/corpus/`): known attacks, replayed on every run.
fn corpus(name: &str) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(unescape)
        .collect()
}

/// `\uXXXX` escapes, so the corpus files show invisible and look-alike characters.
fn unescape(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find("\\u") {
        out.push_str(&rest[..i]);
        let hex = rest.get(i + 2..i + 6).unwrap_or_default();
        match u32::from_str_radix(hex, 16).ok().and_then(char::from_u32) {
            Some(c) => {
                out.push(c);
                rest = &rest[i + 6..];
            }
            None => {
                out.push_str("\\u");
                rest = &rest[i + 2..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn redirect_corpus_only_yields_safe_landing_paths() {
    let default = RelativePath::parse("/account.php").unwrap();
    let lines = corpus("redirect_to.txt");
    assert!(lines.len() > 20);
    for raw in &lines {
        assert_safe_landing(or_default(Some(raw), &default).as_str());
    }
    // The safe ones at the end of the file are kept as they are.
    for raw in ["/account.php", "/cart.php?suggest=1", "/", "/?from=cart"] {
        assert_eq!(or_default(Some(raw), &default).as_str(), raw);
    }
}

#[test]
fn email_corpus_never_folds_two_people_into_one() {
    for line in corpus("emails.txt") {
        let (address, not) = match line.split_once(" = ") {
            Some((a, n)) => (a.to_owned(), Some(n.to_owned())),
            None => (line.clone(), None),
        };
        let Ok(email) = Email::parse(&address) else {
            continue;
        };
        if let Some(other) = not {
            assert!(
                !email.same_address(&other),
                "{address:?} taken for {other:?}"
            );
            assert!(!email.is_ascii(), "{address:?}");
        }
    }
}
