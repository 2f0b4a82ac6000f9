//! The `redirect_to` validator (SECURITY.md rule 13).
//!
//! Where the gateway sends a shopper after sign-in (or sign-out) comes from the request, so it is
//! attacker-controlled. Only a *relative path on the storefront* is accepted: it starts with
//! exactly one `/`, has no backslash, whitespace or control character anywhere, no empty (`//`)
//! or dot (`/./`, `/../`) segment in its path, and it still satisfies all of that after one
//! percent-decode of the whole string. Anything else falls back to a default path.
//!
//! Absolute URLs (`https://…`, `javascript:…`, `http:/evil`) are all rejected simply because
//! they do not start with `/`; unlike oauth2-proxy there is no domain allow-list: the gateway only
//! ever redirects within the storefront.
//!
//! Dot segments are rejected outright rather than resolved: a browser would resolve
//! `/a/../b` harmlessly within the origin, but oauth2-proxy rejects them (its `/./\evil` and
//! `/./../../\evil` cases) and no legitimate storefront link needs them.

use std::fmt;
use std::str::FromStr;

use percent_encoding::percent_decode_str;

/// Longest accepted `redirect_to`, in bytes (before decoding).
pub const MAX_LEN: usize = 2048;

/// How much of a rejected value may appear in a debug log line, in characters.
const LOG_MAX_CHARS: usize = 200;

/// Why a `redirect_to` value was rejected. Each variant is one rule; [`RedirectError::rule`]
/// gives its stable name for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RedirectError {
    #[error("redirect target is empty")]
    Empty,
    #[error("redirect target is not a relative path starting with '/' (absolute URL or scheme?)")]
    NotRelative,
    #[error("redirect target contains '//' (protocol-relative URL or empty path segment)")]
    DoubleSlash,
    #[error("redirect target contains a backslash")]
    Backslash,
    #[error("redirect target contains whitespace or a control character")]
    ControlOrWhitespace,
    #[error("redirect target contains a '.' or '..' path segment")]
    DotSegment,
    #[error("redirect target is longer than {MAX_LEN} bytes")]
    TooLong,
    #[error("redirect target has invalid percent-encoding")]
    BadEncoding,
    #[error("redirect target is a storefront sign-in or sign-out endpoint")]
    LoginEndpoint,
}

impl RedirectError {
    /// A stable, short name of the rule that rejected the value.
    pub fn rule(&self) -> &'static str {
        match self {
            RedirectError::Empty => "empty",
            RedirectError::NotRelative => "not_relative",
            RedirectError::DoubleSlash => "double_slash",
            RedirectError::Backslash => "backslash",
            RedirectError::ControlOrWhitespace => "control_or_whitespace",
            RedirectError::DotSegment => "dot_segment",
            RedirectError::TooLong => "too_long",
            RedirectError::BadEncoding => "bad_encoding",
            RedirectError::LoginEndpoint => "login_endpoint",
        }
    }
}

/// A validated storefront-relative redirect target such as `/account.php` or
/// `/login.php?action=logout`. The only way to build one is [`RelativePath::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RelativePath(String);

impl RelativePath {
    /// Validates `input` as it arrived (still percent-encoded).
    pub fn parse(input: &str) -> Result<RelativePath, RedirectError> {
        if input.is_empty() {
            return Err(RedirectError::Empty);
        }
        if input.len() > MAX_LEN {
            return Err(RedirectError::TooLong);
        }
        check_shape(input)?;
        check_percent_encoding(input)?;
        let decoded = percent_decode_str(input)
            .decode_utf8()
            .map_err(|_| RedirectError::BadEncoding)?;
        if decoded.is_empty() {
            return Err(RedirectError::Empty);
        }
        check_shape(&decoded)?;
        Ok(RelativePath(input.to_owned()))
    }

    /// Validates a place to land after sign-in: [`RelativePath::parse`], and not a
    /// storefront sign-in or sign-out endpoint (SECURITY.md rule 24). A shopper sent through
    /// a real sign-in to `/login/token/<attacker's unused token>` would end up signed in as
    /// the attacker (login CSRF); `/login.php?action=logout` would undo the sign-in.
    pub fn landing(input: &str) -> Result<RelativePath, RedirectError> {
        let path = RelativePath::parse(input)?;
        // `parse` accepted both the raw and the once-decoded form; check both here too.
        let decoded = percent_decode_str(input)
            .decode_utf8()
            .map_err(|_| RedirectError::BadEncoding)?;
        if is_login_endpoint(input) || is_login_endpoint(&decoded) {
            return Err(RedirectError::LoginEndpoint);
        }
        Ok(path)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `/login/token/…`, `/login.php?action=…` (logout, reset, create account, …) and
/// `/logout…`, compared case-insensitively (storefront routing is).
fn is_login_endpoint(s: &str) -> bool {
    let (path, query) = match s.split_once('?') {
        Some((p, q)) => (p, q.split('#').next().unwrap_or_default()),
        None => (s.split('#').next().unwrap_or_default(), ""),
    };
    let path = path.to_ascii_lowercase();
    let path = path.trim_end_matches('/');
    let logout = path == "/logout" || path.starts_with("/logout.") || path.starts_with("/logout/");
    if logout || path == "/login/token" || path.starts_with("/login/token/") {
        return true;
    }
    path == "/login.php"
        && query.split(['&', ';']).any(|pair| {
            // `+` is a space in a query, and PHP drops leading spaces from names.
            pair.split('=')
                .next()
                .is_some_and(|k| k.replace('+', " ").trim().eq_ignore_ascii_case("action"))
        })
}

impl fmt::Display for RelativePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for RelativePath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for RelativePath {
    type Err = RedirectError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RelativePath::parse(s)
    }
}

/// `input` if it is a valid relative path, else `default`. A missing value falls back silently;
/// a rejected one is logged at debug level with the rule's name (the value is escaped and cut to
/// 200 characters).
pub fn or_default(input: Option<&str>, default: &RelativePath) -> RelativePath {
    let Some(raw) = input else {
        return default.clone();
    };
    match RelativePath::landing(raw) {
        Ok(path) => path,
        Err(err) => {
            tracing::debug!(
                rule = err.rule(),
                value = ?truncate_chars(raw, LOG_MAX_CHARS),
                len = raw.len(),
                "rejected redirect target, using the default: {err}"
            );
            default.clone()
        }
    }
}

fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((idx, _)) => &s[..idx],
        None => s,
    }
}

/// The rules that apply both to the raw value and to its one-time percent-decoding.
fn check_shape(s: &str) -> Result<(), RedirectError> {
    // Characters that are never allowed anywhere (path, query or fragment). Backslash first:
    // browsers treat `\` as `/`, so `/\evil` is `//evil`.
    if s.contains('\\') {
        return Err(RedirectError::Backslash);
    }
    // Whitespace (space, \t, \n, \r, \v, \f and Unicode spaces) and control characters (C0,
    // DEL, C1): browsers strip some of them, which can turn `/\t/evil` into `//evil`.
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(RedirectError::ControlOrWhitespace);
    }
    if !s.starts_with('/') {
        return Err(RedirectError::NotRelative);
    }
    // The path part: up to the first '?' or '#'. The query and fragment may contain '//' or
    // ':' freely (`/login.php?next=https://x` still stays on the storefront).
    let path = s.split(['?', '#']).next().unwrap_or_default();
    if path.contains("//") {
        return Err(RedirectError::DoubleSlash);
    }
    if path.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(RedirectError::DotSegment);
    }
    Ok(())
}

/// Every '%' must start a `%XX` escape with two hex digits.
fn check_percent_encoding(s: &str) -> Result<(), RedirectError> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let ok = bytes.len() > i + 2
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit();
            if !ok {
                return Err(RedirectError::BadEncoding);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "redirect_tests.rs"]
mod tests;
