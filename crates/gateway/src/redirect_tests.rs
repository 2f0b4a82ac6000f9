use super::*;
use RedirectError::*;

/// The redirect table of oauth2-proxy's `pkg/app/redirect/validator_test.go`
/// ("IsValidRedirect" DescribeTable, github.com/oauth2-proxy/oauth2-proxy), restricted to what
/// applies to a relative-only validator: every absolute `http(s)://` entry is rejected here
/// (no domain allow-list), whereas oauth2-proxy accepts the allow-listed ones. Then our own
/// cases from SECURITY.md rule 13. Each row: (name, input, expected result).
#[allow(clippy::type_complexity)]
const TABLE: &[(&str, &str, Result<&str, RedirectError>)] = &[
    // --- oauth2-proxy validator_test.go ---
    ("No Redirect", "", Err(Empty)),
    ("Single Slash", "/redirect", Ok("/redirect")),
    ("Double Slash", "//redirect", Err(DoubleSlash)),
    (
        "Valid HTTP (absolute: rejected here)",
        "http://foo.bar/redirect",
        Err(NotRelative),
    ),
    (
        "Valid HTTPS (absolute: rejected here)",
        "https://foo.bar/redirect",
        Err(NotRelative),
    ),
    (
        "Invalid HTTP subdomain",
        "http://baz.foo.bar/redirect",
        Err(NotRelative),
    ),
    (
        "Invalid HTTP Similar Domain",
        "http://foo.bar.evil.corp/redirect",
        Err(NotRelative),
    ),
    (
        "Invalid HTTPS RD Parameter",
        "https://evil.corp/redirect?rd=foo.bar",
        Err(NotRelative),
    ),
    (
        "Invalid Port and Domain",
        "https://evil.corp:3838/redirect",
        Err(NotRelative),
    ),
    ("Escape Double Slash", "/\\evil.com", Err(Backslash)),
    (
        "Space Single Slash",
        "/ /evil.com",
        Err(ControlOrWhitespace),
    ),
    ("Space Double Slash", "/ \\evil.com", Err(Backslash)),
    ("Tab Single Slash", "/\t/evil.com", Err(ControlOrWhitespace)),
    ("Tab Double Slash", "/\t\\evil.com", Err(Backslash)),
    (
        "Vertical Tab Single Slash",
        "/\x0b/evil.com",
        Err(ControlOrWhitespace),
    ),
    (
        "Vertical Tab Double Slash",
        "/\x0b\\evil.com",
        Err(Backslash),
    ),
    (
        "New Line Single Slash",
        "/\n/evil.com",
        Err(ControlOrWhitespace),
    ),
    ("New Line Double Slash", "/\n\\evil.com", Err(Backslash)),
    (
        "Carriage Return Single Slash",
        "/\r/evil.com",
        Err(ControlOrWhitespace),
    ),
    (
        "Carriage Return Double Slash",
        "/\r\\evil.com",
        Err(Backslash),
    ),
    ("Double Tab", "/\t/\t\\evil.com", Err(Backslash)),
    (
        "Triple Tab 1",
        "/\t\t/\t/evil.com",
        Err(ControlOrWhitespace),
    ),
    ("Triple Tab 2", "/\t\t\\\t/evil.com", Err(Backslash)),
    ("Quad Tab 1", "/\t\t/\t\t\\evil.com", Err(Backslash)),
    ("Quad Tab 2", "/\t\t\\\t\t/evil.com", Err(Backslash)),
    ("Relative Path", "/./\\evil.com", Err(Backslash)),
    ("Relative Subpath", "/./../../\\evil.com", Err(Backslash)),
    (
        "Missing Protocol Root Domain",
        "foo.bar/redirect",
        Err(NotRelative),
    ),
    (
        "Missing Protocol Wildcard Subdomain",
        "proxy.wildcard.bar/redirect",
        Err(NotRelative),
    ),
    // --- SECURITY.md rule 13 (and the brief's list) ---
    ("protocol-relative", "//evil", Err(DoubleSlash)),
    ("slash backslash", "/\\evil", Err(Backslash)),
    ("slash space slash", "/ /evil", Err(ControlOrWhitespace)),
    ("slash tab slash", "/\t/evil", Err(ControlOrWhitespace)),
    ("slash CRLF slash", "/\r\n/evil", Err(ControlOrWhitespace)),
    ("dot backslash", "/./\\evil", Err(Backslash)),
    ("https scheme", "https://evil", Err(NotRelative)),
    ("javascript scheme", "javascript:alert(1)", Err(NotRelative)),
    (
        "JavaScript mixed case",
        "JaVaScRiPt:alert(1)",
        Err(NotRelative),
    ),
    ("data scheme", "data:text/html,x", Err(NotRelative)),
    ("backslash slash", "\\/evil", Err(Backslash)),
    ("encoded slash", "/%2F/evil", Err(DoubleSlash)),
    ("encoded slash lower", "/%2f%2fevil", Err(DoubleSlash)),
    ("encoded backslash", "/%5Cevil", Err(Backslash)),
    ("encoded backslash lower", "/%5cevil", Err(Backslash)),
    ("encoded tab", "/%09/evil", Err(ControlOrWhitespace)),
    ("encoded LF", "/%0a/evil", Err(ControlOrWhitespace)),
    ("encoded CRLF", "/%0d%0a/evil", Err(ControlOrWhitespace)),
    ("encoded NUL", "/%00evil", Err(ControlOrWhitespace)),
    ("encoded DEL", "/%7Fevil", Err(ControlOrWhitespace)),
    (
        "encoded C1 (U+0085)",
        "/%C2%85evil",
        Err(ControlOrWhitespace),
    ),
    ("encoded NBSP", "/%C2%A0/evil", Err(ControlOrWhitespace)),
    ("http colon slash", "http:/evil", Err(NotRelative)),
    ("empty", "", Err(Empty)),
    ("leading space", " /foo", Err(ControlOrWhitespace)),
    ("trailing LF", "/foo\n", Err(ControlOrWhitespace)),
    ("raw VT", "/\x0bfoo", Err(ControlOrWhitespace)),
    ("raw FF", "/\x0cfoo", Err(ControlOrWhitespace)),
    ("raw DEL", "/\x7ffoo", Err(ControlOrWhitespace)),
    ("raw C1", "/\u{0085}foo", Err(ControlOrWhitespace)),
    ("raw NUL", "/\0foo", Err(ControlOrWhitespace)),
    ("line separator", "/\u{2028}foo", Err(ControlOrWhitespace)),
    ("bad escape", "/%zz", Err(BadEncoding)),
    ("truncated escape", "/%4", Err(BadEncoding)),
    ("lone percent", "/100%", Err(BadEncoding)),
    ("invalid UTF-8 after decode", "/%FF%FE", Err(BadEncoding)),
    ("encoded to empty-leading", "%2Fevil", Err(NotRelative)),
    (
        "encoded double slash prefix",
        "%2F%2Fevil",
        Err(NotRelative),
    ),
    ("dot-dot segment", "/a/../b", Err(DotSegment)),
    ("dot segment", "/a/./b", Err(DotSegment)),
    ("trailing dot-dot", "/a/..", Err(DotSegment)),
    ("encoded dot-dot", "/a/%2e%2e/b", Err(DotSegment)),
    ("double slash later", "/a//b", Err(DoubleSlash)),
    (
        "scheme inside path after slash",
        "/https://evil",
        Err(DoubleSlash),
    ),
    ("query-looking encoded slash", "/a%3F//b", Err(DoubleSlash)),
    // valid
    ("root", "/", Ok("/")),
    ("account", "/account.php", Ok("/account.php")),
    (
        "logout",
        "/login.php?action=logout",
        Ok("/login.php?action=logout"),
    ),
    ("query", "/cart.php?a=1&b=2", Ok("/cart.php?a=1&b=2")),
    ("fragment", "/a/b/c#frag", Ok("/a/b/c#frag")),
    ("account fragment", "/account.php#x", Ok("/account.php#x")),
    ("utf-8 escape", "/caf%C3%A9", Ok("/caf%C3%A9")),
    ("raw utf-8", "/café", Ok("/café")),
    (
        "colon in query",
        "/account.php?x=a:b",
        Ok("/account.php?x=a:b"),
    ),
    ("colon in path", "/x:y", Ok("/x:y")),
    (
        "url in query",
        "/login.php?next=https://x.example/",
        Ok("/login.php?next=https://x.example/"),
    ),
    ("trailing slash", "/shop/", Ok("/shop/")),
    ("dots in name", "/a..b/.hidden/x.", Ok("/a..b/.hidden/x.")),
    (
        "encoded space in query",
        "/search.php?q=a%20b",
        Err(ControlOrWhitespace),
    ),
    (
        "plus in query",
        "/search.php?q=a+b",
        Ok("/search.php?q=a+b"),
    ),
    ("encoded percent", "/100%25", Ok("/100%25")),
];

#[test]
fn oauth2_proxy_table_and_rule_13() {
    let mut failures = Vec::new();
    for (name, input, expected) in TABLE {
        let got = RelativePath::parse(input);
        let got_cmp = got.as_ref().map(|p| p.as_str()).map_err(|e| *e);
        if got_cmp != *expected {
            failures.push(format!(
                "{name}: {input:?}: expected {expected:?}, got {got_cmp:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The relative-looking entries of oauth2-proxy's `testdata/openredirects.txt` (used by the
/// same validator_test.go, which query-unescapes each line first). All must be rejected,
/// both as given and after one unescape.
#[test]
fn oauth2_proxy_open_redirect_list() {
    let list = [
        "/%09/example.com",
        "/%09/javascript:alert(1)",
        "/%2f%2f%2fbing.com%2f%3fwww.omise.co",
        "/%2f%2fexample.com",
        "/%2f%5c%2f%67%6f%6f%67%6c%65%2e%63%6f%6d/",
        "/%5cexample.com",
        "/%5cjavascript:alert(1)",
        "//%09/example.com",
        "//%2fxgoogle.com",
        "///%5cexample.com",
        "////\\;@example.com",
        "////example.com/%2e%2e",
        "///example.com/%2f..",
        "//example.com@google.com/",
        "//google%00.com",
        "//google%E3%80%82com",
        "//google.com:80#@example.com/",
        "//google.com\\@example.com",
        "/<>//example.com",
        "/\\/\\/example.com/",
        "/\\/example.com/",
        "/example.com/%2f%2e%2e",
        "/http://example.com",
        "/https:/%5cexample.com/",
        "/https://%09/example.com",
        "/https:///example.com/%2e%2e",
        "/x:1/:///%01javascript:alert(document.cookie)/",
        "\\/\\/google.com/",
        "javascript:alert(1)",
        "http:example.com@3627734734",
        "%68%74%74%70%3a%2f%2f%67%6f%6f%67%6c%65%2e%63%6f%6d",
        "/%68%74%74%70%3a%2f%2f%67%6f%6f%67%6c%65%2e%63%6f%6d",
    ];
    for raw in list {
        assert!(RelativePath::parse(raw).is_err(), "accepted {raw:?}");
        if let Ok(once) = percent_decode_str(raw).decode_utf8() {
            assert!(
                RelativePath::parse(&once).is_err(),
                "accepted unescaped {once:?}"
            );
        }
    }
}

/// SECURITY.md rule 24 (login CSRF): a victim sent through a real sign-in must not land
/// on `/login/token/<the attacker's unused token>`, nor be signed out again.
#[test]
fn forced_sign_in_through_redirect_to_login_token_is_refused() {
    for bad in [
        "/login/token/eyJhbGciOiJIUzI1NiJ9.e30.sig",
        "/LOGIN/Token/abc",
        "/login/token",
        "/login/token/",
        "/login%2Ftoken%2Fabc",
        "/%6Cogin/token/abc",
        "/login.php?action=logout",
        "/login.php?foo=1&action=reset_password",
        "/login.php?ACTION=create_account",
        "/login.php?+action=logout",
        "/Login.PHP?action=logout#x",
        "/login.php%3Faction%3Dlogout",
        "/logout",
        "/logout.php?x=1",
    ] {
        assert_eq!(
            RelativePath::landing(bad),
            Err(LoginEndpoint),
            "{bad:?} must be refused"
        );
        let default = RelativePath::parse("/account.php").unwrap();
        assert_eq!(or_default(Some(bad), &default), default, "{bad:?}");
    }
    for good in [
        "/login.php",
        "/account.php?action=order_status",
        "/cart.php",
        "/products/login-token-holder/",
        "/blog/logout-tips",
        "/logout-tips",
    ] {
        assert!(RelativePath::landing(good).is_ok(), "{good:?} must pass");
    }
    // The gateway's own sign-out token still names the logout page.
    assert!(RelativePath::parse("/login.php?action=logout").is_ok());
}

#[test]
fn too_long() {
    let ok = format!("/{}", "a".repeat(MAX_LEN - 1));
    assert_eq!(
        RelativePath::parse(&ok).map(|p| p.as_str().len()),
        Ok(MAX_LEN)
    );
    let long = format!("/{}", "a".repeat(MAX_LEN));
    assert_eq!(RelativePath::parse(&long), Err(TooLong));
}

#[test]
fn or_default_falls_back() {
    let default = RelativePath::parse("/account.php").unwrap();
    assert_eq!(or_default(None, &default), default);
    assert_eq!(or_default(Some("//evil"), &default), default);
    assert_eq!(or_default(Some(""), &default), default);
    assert_eq!(or_default(Some(&"x".repeat(10_000)), &default), default);
    assert_eq!(
        or_default(Some("/cart.php?a=1"), &default).as_str(),
        "/cart.php?a=1"
    );
}

#[test]
fn display_from_str_and_rules() {
    let p: RelativePath = "/login.php?action=logout".parse().unwrap();
    assert_eq!(p.to_string(), "/login.php?action=logout");
    assert_eq!(p.as_ref(), "/login.php?action=logout");
    assert_eq!(DoubleSlash.rule(), "double_slash");
    assert!(Backslash.to_string().contains("backslash"));
}

#[test]
fn truncate_is_char_safe() {
    let s = "é".repeat(300);
    assert_eq!(truncate_chars(&s, 200).chars().count(), 200);
    assert_eq!(truncate_chars("abc", 200), "abc");
}
