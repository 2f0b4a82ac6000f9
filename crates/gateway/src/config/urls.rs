//! Which hosts the gateway may call: the one loopback test and the one check of a URL an
//! identity provider published (SECURITY.md rule 23).
//!
//! Both look at the host as the `url` crate parsed it, which is also what reqwest connects
//! to: decimal, hex and octal IPv4 spellings (`2130706433`, `0x7f.1`, `0177.0.0.1`) are
//! already `127.0.0.1` there, and `0` is `0.0.0.0`, so no spelling can make a check and the
//! connection disagree.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Whether `url` names this machine in a way that can mean nothing else: `localhost`
/// exactly, `127.0.0.0/8` or `::1`. Not `0.0.0.0` or `[::]` (they reach this machine on
/// Linux but are "any address", never a name for it), not IPv4-mapped `[::ffff:127.0.0.1]`,
/// not `localhost.evil.com`, `localhost.` or `foo.localhost` (names a resolver may send
/// anywhere).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d == "localhost",
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip == Ipv6Addr::LOCALHOST,
        None => false,
    }
}

/// Why the gateway will not call (or send a browser to) a URL an IdP published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefusal {
    #[error("is not a valid absolute URL")]
    Invalid,
    #[error("uses the scheme {0:?}; only https is allowed")]
    Scheme(String),
    #[error(
        "uses plain http; http is allowed only for localhost, 127.0.0.1 or [::1] when the issuer is on loopback too"
    )]
    PlainHttp,
    #[error("carries a user name or password")]
    Credentials,
    #[error("has no host")]
    NoHost,
    #[error("names the address {0}, which is never a server to call")]
    Address(IpAddr),
    #[error("names this machine, but the issuer is not on this machine")]
    LoopbackFromRemoteIssuer,
}

/// The one check of an endpoint URL from an IdP's discovery document (and of the discovery
/// URL itself), done before anything is fetched:
///
/// - https; plain http only when both the URL and the issuer are genuine loopback
///   ([`is_loopback`]), i.e. a local test IdP;
/// - no user name or password in the URL;
/// - no IP literal that is not a real destination: unspecified (`0.0.0.0/8`, `::`),
///   broadcast, multicast, link-local (`169.254.0.0/16` with the cloud metadata services,
///   `fe80::/10`), and IPv6 forms that embed an IPv4 address (mapped `::ffff:a.b.c.d`,
///   compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`), which could smuggle any IPv4 past the
///   other rules;
/// - nothing on this machine (loopback addresses, `localhost` and `*.localhost`) unless the
///   issuer is on loopback itself: an https IdP naming `https://127.0.0.1:8443/` points the
///   gateway at its own host's services.
///
/// DNS names that resolve to private addresses are not caught here (that needs a check at
/// connect time); an IdP inside a private network is a legitimate setup.
pub fn check_idp_url(url: &Url, issuer: &Url) -> Result<(), UrlRefusal> {
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRefusal::Credentials);
    }
    let host = url.host().ok_or(UrlRefusal::NoHost)?;
    if let Some(ip) = forbidden_address(&host) {
        return Err(UrlRefusal::Address(ip));
    }
    let issuer_local = is_loopback(issuer);
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(url) && issuer_local => {}
        "http" => return Err(UrlRefusal::PlainHttp),
        other => return Err(UrlRefusal::Scheme(other.to_owned())),
    }
    if names_this_machine(&host) && !issuer_local {
        return Err(UrlRefusal::LoopbackFromRemoteIssuer);
    }
    Ok(())
}

/// [`check_idp_url`] for a string as the document has it.
pub fn check_idp_url_str(raw: &str, issuer: &Url) -> Result<Url, UrlRefusal> {
    let url = Url::parse(raw).map_err(|_| UrlRefusal::Invalid)?;
    check_idp_url(&url, issuer)?;
    Ok(url)
}

fn forbidden_address(host: &Host<&str>) -> Option<IpAddr> {
    match *host {
        Host::Ipv4(ip) if forbidden_v4(ip) => Some(ip.into()),
        Host::Ipv6(ip) if forbidden_v6(ip) => Some(ip.into()),
        _ => None,
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    // 0.0.0.0/8 is "this network": connecting to it reaches the local host on Linux.
    ip.octets()[0] == 0 || ip.is_broadcast() || ip.is_multicast() || ip.is_link_local()
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embeds_v4 = ip.to_ipv4_mapped().is_some()
        // IPv4-compatible (deprecated): ::a.b.c.d, except :: and ::1 themselves.
        || (s[..6] == [0; 6] && ip != Ipv6Addr::UNSPECIFIED && ip != Ipv6Addr::LOCALHOST)
        // NAT64 well-known prefix.
        || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    ip.is_unspecified() || ip.is_multicast() || (s[0] & 0xffc0) == 0xfe80 || embeds_v4
}

/// Loopback by address, or a name that resolvers commonly send to loopback (RFC 6761).
fn names_this_machine(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => {
            let d = d.trim_end_matches('.');
            d == "localhost" || d.ends_with(".localhost")
        }
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => *ip == Ipv6Addr::LOCALHOST,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    const LOCAL_ISSUER: &str = "http://127.0.0.1:4001";
    const REMOTE_ISSUER: &str = "https://idp.example.com";

    #[test]
    fn loopback_is_only_the_unambiguous_spellings() {
        for yes in [
            "http://localhost:1/",
            "http://LOCALHOST/",
            "http://127.0.0.1/",
            "http://127.8.9.10/",
            "http://[::1]:8/",
            // The url crate normalises these to 127.0.0.1, which is what reqwest connects
            // to, so they are loopback in fact, not only in spelling.
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://127.1/",
        ] {
            assert!(is_loopback(&url(yes)), "{yes}");
        }
        for no in [
            "http://0.0.0.0/",
            "http://0/",
            "http://[::]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[0:0:0:0:0:ffff:7f00:1]/",
            "http://[::127.0.0.1]/",
            "http://localhost.evil.com/",
            "http://localhost./",
            "http://evil.localhost/",
            "http://127.0.0.1.nip.io/",
            "http://127.0.0.1@evil.com/",
            "http://10.0.0.1/",
        ] {
            assert!(!is_loopback(&url(no)), "{no}");
        }
    }

    #[test]
    fn refused_idp_urls_and_why() {
        let local = url(LOCAL_ISSUER);
        let remote = url(REMOTE_ISSUER);
        let cases: &[(&str, &Url, UrlRefusal)] = &[
            (
                "http://0.0.0.0:4001/jwks",
                &local,
                UrlRefusal::Address("0.0.0.0".parse().unwrap()),
            ),
            (
                "http://0:4001/jwks",
                &local,
                UrlRefusal::Address("0.0.0.0".parse().unwrap()),
            ),
            (
                "http://[::]:4001/jwks",
                &local,
                UrlRefusal::Address("::".parse().unwrap()),
            ),
            (
                "http://[::ffff:127.0.0.1]:4001/jwks",
                &local,
                UrlRefusal::Address("::ffff:127.0.0.1".parse().unwrap()),
            ),
            (
                "https://[::ffff:10.0.0.1]/jwks",
                &remote,
                UrlRefusal::Address("::ffff:10.0.0.1".parse().unwrap()),
            ),
            (
                "https://[::127.0.0.1]/jwks",
                &remote,
                UrlRefusal::Address("::127.0.0.1".parse().unwrap()),
            ),
            (
                "https://[64:ff9b::7f00:1]/jwks",
                &remote,
                UrlRefusal::Address("64:ff9b::7f00:1".parse().unwrap()),
            ),
            (
                "https://169.254.169.254/latest/meta-data",
                &remote,
                UrlRefusal::Address("169.254.169.254".parse().unwrap()),
            ),
            (
                "https://[fe80::1]/",
                &remote,
                UrlRefusal::Address("fe80::1".parse().unwrap()),
            ),
            (
                "https://224.0.0.1/",
                &remote,
                UrlRefusal::Address("224.0.0.1".parse().unwrap()),
            ),
            (
                "https://255.255.255.255/",
                &remote,
                UrlRefusal::Address("255.255.255.255".parse().unwrap()),
            ),
            (
                "http://localhost.evil.com/jwks",
                &local,
                UrlRefusal::PlainHttp,
            ),
            ("http://localhost./jwks", &local, UrlRefusal::PlainHttp),
            (
                "http://idp.example.com/jwks",
                &remote,
                UrlRefusal::PlainHttp,
            ),
            // An https issuer may not send the gateway to plain http on loopback either.
            ("http://127.0.0.1/jwks", &remote, UrlRefusal::PlainHttp),
            (
                "https://a@idp.example.com/jwks",
                &remote,
                UrlRefusal::Credentials,
            ),
            (
                "https://a:b@idp.example.com/jwks",
                &remote,
                UrlRefusal::Credentials,
            ),
            (
                "http://127.0.0.1@evil.com/",
                &local,
                UrlRefusal::Credentials,
            ),
            (
                "https://127.0.0.1:8443/jwks",
                &remote,
                UrlRefusal::LoopbackFromRemoteIssuer,
            ),
            (
                "https://2130706433/jwks",
                &remote,
                UrlRefusal::LoopbackFromRemoteIssuer,
            ),
            (
                "https://[::1]/jwks",
                &remote,
                UrlRefusal::LoopbackFromRemoteIssuer,
            ),
            (
                "https://localhost/jwks",
                &remote,
                UrlRefusal::LoopbackFromRemoteIssuer,
            ),
            (
                "https://admin.localhost./jwks",
                &remote,
                UrlRefusal::LoopbackFromRemoteIssuer,
            ),
            (
                "ftp://idp.example.com/jwks",
                &remote,
                UrlRefusal::Scheme("ftp".into()),
            ),
            ("file:///etc/passwd", &remote, UrlRefusal::NoHost),
        ];
        for (raw, issuer, why) in cases {
            assert_eq!(
                check_idp_url_str(raw, issuer).as_ref().err(),
                Some(why),
                "{raw} under issuer {issuer}"
            );
        }
        assert_eq!(
            check_idp_url_str("not a url", &remote).err(),
            Some(UrlRefusal::Invalid)
        );
    }

    #[test]
    fn accepted_idp_urls() {
        let local = url(LOCAL_ISSUER);
        let remote = url(REMOTE_ISSUER);
        for (raw, issuer) in [
            ("https://idp.example.com/jwks", &remote),
            ("https://cdn.example.net/keys", &remote),
            // An IdP inside a private network is a normal deployment.
            (
                "https://10.1.2.3/realms/x/protocol/openid-connect/certs",
                &remote,
            ),
            ("http://127.0.0.1:4001/jwks", &local),
            ("http://localhost:4001/jwks", &local),
            ("http://[::1]:4001/jwks", &local),
            ("https://localhost:4001/jwks", &local),
        ] {
            assert_eq!(check_idp_url_str(raw, issuer).err(), None, "{raw}");
        }
    }
}
