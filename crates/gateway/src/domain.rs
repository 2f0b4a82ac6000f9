//! Small value types shared by the domain modules: secrets that never print, connection
//! and channel ids, and email addresses and domains parsed the way SECURITY.md rule 4 asks.

use std::fmt;

/// A secret string. `Debug` and `Display` print `Secret(***)`, so a secret cannot reach a
/// log line or an error page by accident; read it only with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Whether a presented secret (a token, a CSRF token, a `state`) is the expected one, in
/// constant time, so response timing does not leak how much of a guess matched. Both sides
/// are hashed first, which makes the comparison independent of their lengths too.
pub fn same_secret(presented: &str, expected: &str) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    let (a, b) = (Sha256::digest(presented), Sha256::digest(expected));
    a[..].ct_eq(&b[..]).into()
}

/// The short name of an IdP connection, used in URLs and logs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ConnectionId(String);

impl ConnectionId {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !s.starts_with('-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "{s:?} is not a valid connection id: use lowercase letters, digits and '-' (at most 64)"
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A BigCommerce channel (storefront) id. Transparent in serde, so what is stored (pending
/// logins in sessions) reads and writes as the plain number it always was.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct ChannelId(pub i64);

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An email address with exactly one `@`, a non-empty local part, and a domain that is
/// lowercased and IDNA-normalised (so `ADA@Exämple.com` and `ada@xn--exmple-cua.com` agree).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    local: String,
    domain: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("the address must contain exactly one '@'")]
    AtCount,
    #[error("the part before '@' is empty or contains spaces or control characters")]
    BadLocal,
    #[error("the domain is not a valid domain name")]
    BadDomain,
    #[error("the address is longer than 250 characters")]
    TooLong,
}

impl Email {
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        let s = input.trim();
        // 250 is BigCommerce's maximum on POST /v3/customers (CONTRACT.md §2.2).
        if s.len() > 250 {
            return Err(EmailError::TooLong);
        }
        let mut parts = s.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(EmailError::AtCount);
        };
        // A comma would split BigCommerce's comma-separated `email:in` filter.
        if local.is_empty()
            || local
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == ',')
        {
            return Err(EmailError::BadLocal);
        }
        let domain = normalise_domain(domain).ok_or(EmailError::BadDomain)?;
        Ok(Self {
            local: local.to_owned(),
            domain,
        })
    }
    pub fn domain(&self) -> &str {
        &self.domain
    }
    pub fn local_part(&self) -> &str {
        &self.local
    }
    /// Whether the part before `@` is plain ASCII. A non-ASCII local part can fold into
    /// someone else's address wherever addresses are compared with Unicode case rules
    /// (U+212A KELVIN SIGN lowercases to `k`), so the policy refuses it unless a connection
    /// opts in (SECURITY.md rule 19).
    pub fn is_ascii(&self) -> bool {
        self.local.is_ascii()
    }
    /// The form used to query and compare with BigCommerce, and to compare admin
    /// allow-lists. Only ASCII letters are case-folded: Unicode case folding maps distinct
    /// addresses onto one (`\u{212A}im@` and `kim@`), which would hand one person's account
    /// to another (SECURITY.md rule 19). The domain is already lowercase ASCII (IDNA).
    pub fn normalised(&self) -> String {
        format!("{}@{}", self.local.to_ascii_lowercase(), self.domain)
    }

    /// Whether `other` is this address under [`Email::normalised`]'s comparison.
    pub fn same_address(&self, other: &str) -> bool {
        Email::parse(other).is_ok_and(|o| o.normalised() == self.normalised())
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// Lowercase + IDNA (UTS #46) to ASCII; requires at least one dot and no empty labels.
fn normalise_domain(domain: &str) -> Option<String> {
    let ascii = idna::domain_to_ascii(domain).ok()?;
    let ok = ascii.len() <= 253
        && ascii.contains('.')
        && ascii.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    ok.then_some(ascii)
}

/// An allow-listed email domain of a connection: `example.com` matches exactly that domain;
/// `*.example.com` matches its subdomains on a dot boundary (never `evilexample.com`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailDomain {
    domain: String,
    subdomains: bool,
}

impl EmailDomain {
    pub fn parse_pattern(s: &str) -> Result<Self, String> {
        let (subdomains, rest) = match s.trim().strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, s.trim()),
        };
        let domain = normalise_domain(rest).ok_or_else(|| {
            format!("{s:?} is not a domain; write example.com, or *.example.com for its subdomains")
        })?;
        Ok(Self { domain, subdomains })
    }

    pub fn matches(&self, domain: &str) -> bool {
        if self.subdomains {
            domain
                .strip_suffix(&self.domain)
                .is_some_and(|head| head.len() > 1 && head.ends_with('.'))
        } else {
            domain == self.domain
        }
    }

    /// Whether every domain `other` matches is matched by this pattern too.
    pub fn covers(&self, other: &EmailDomain) -> bool {
        match (self.subdomains, other.subdomains) {
            (_, false) => self.matches(&other.domain),
            (true, true) => self.domain == other.domain || self.matches(&other.domain),
            (false, true) => false,
        }
    }

    /// Whether some domain could be claimed by both patterns.
    pub fn overlaps(&self, other: &EmailDomain) -> bool {
        match (self.subdomains, other.subdomains) {
            (false, false) => self.domain == other.domain,
            (true, false) => self.matches(&other.domain),
            (false, true) => other.matches(&self.domain),
            (true, true) => {
                self.domain == other.domain
                    || self.matches(&other.domain)
                    || other.matches(&self.domain)
            }
        }
    }
}

impl fmt::Display for EmailDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.subdomains {
            write!(f, "*.{}", self.domain)
        } else {
            f.write_str(&self.domain)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) Secret(***)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn secrets_compare_by_value_only() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "x"));
        assert!(same_secret("", ""));
    }

    #[test]
    fn email_needs_exactly_one_at() {
        assert_eq!(Email::parse("a@b@example.com"), Err(EmailError::AtCount));
        assert_eq!(Email::parse("example.com"), Err(EmailError::AtCount));
        assert_eq!(Email::parse("@example.com"), Err(EmailError::BadLocal));
        assert_eq!(Email::parse("a b@example.com"), Err(EmailError::BadLocal));
        assert_eq!(Email::parse("ada@localhost"), Err(EmailError::BadDomain));
        assert_eq!(Email::parse("ada@exa_mple.com"), Err(EmailError::BadDomain));
    }

    #[test]
    fn email_domain_is_lowercased_and_idna_normalised() {
        let e = Email::parse(" Ada@Exämple.COM ").unwrap();
        assert_eq!(e.domain(), "xn--exmple-cua.com");
        assert_eq!(e.normalised(), "ada@xn--exmple-cua.com");
        assert_eq!(e.to_string(), "Ada@xn--exmple-cua.com");
    }

    /// SECURITY.md rule 19: Rust's `to_lowercase` maps U+212A KELVIN SIGN to `k`, which made
    /// `\u{212A}im@example.com` and `kim@example.com` one account.
    #[test]
    fn kelvin_sign_does_not_fold_into_ascii_k() {
        let kelvin = Email::parse("\u{212A}im@example.com").unwrap();
        let kim = Email::parse("Kim@Example.com").unwrap();
        assert_ne!(kelvin.normalised(), kim.normalised());
        assert_eq!(kim.normalised(), "kim@example.com");
        assert!(!kelvin.is_ascii());
        assert!(kim.is_ascii());
        assert!(!kelvin.same_address("kim@example.com"));
        assert!(kim.same_address("KIM@example.COM"));
        // Other characters that case rules map onto ASCII: DOTLESS I uppercases to `I`,
        // LONG S to `S`. None of them may meet its look-alike.
        for (tricky, lookalike) in [
            ("\u{131}da@example.com", "ida@example.com"),
            ("\u{17F}am@example.com", "sam@example.com"),
        ] {
            let e = Email::parse(tricky).unwrap();
            assert!(!e.is_ascii());
            assert!(!e.same_address(lookalike));
        }
    }

    #[test]
    fn domain_patterns_match_on_dot_boundary_only() {
        let exact = EmailDomain::parse_pattern("Example.com").unwrap();
        assert!(exact.matches("example.com"));
        assert!(!exact.matches("eu.example.com"));
        assert!(!exact.matches("evilexample.com"));
        let sub = EmailDomain::parse_pattern("*.example.com").unwrap();
        assert!(sub.matches("eu.example.com"));
        assert!(sub.matches("a.b.example.com"));
        assert!(!sub.matches("example.com"));
        assert!(!sub.matches("evilexample.com"));
        assert!(!sub.matches(".example.com"));
        assert!(EmailDomain::parse_pattern("not a domain").is_err());
        assert!(EmailDomain::parse_pattern("*.").is_err());
    }

    #[test]
    fn overlapping_claims_are_detected() {
        let p = |s| EmailDomain::parse_pattern(s).unwrap();
        assert!(p("example.com").overlaps(&p("EXAMPLE.com")));
        assert!(p("*.example.com").overlaps(&p("eu.example.com")));
        assert!(p("*.example.com").overlaps(&p("*.eu.example.com")));
        assert!(!p("example.com").overlaps(&p("*.example.com")));
        assert!(!p("example.com").overlaps(&p("example.org")));
    }

    #[test]
    fn connection_ids() {
        assert!(ConnectionId::parse("acme-eu").is_ok());
        assert!(ConnectionId::parse("Acme").is_err());
        assert!(ConnectionId::parse("").is_err());
        assert!(ConnectionId::parse("a/b").is_err());
    }
}
