//! The client's IP, found once per request (SECURITY.md rule 22): the TCP peer, or, when
//! the peer is a trusted proxy, the address that proxy saw in `X-Forwarded-For`. Rate
//! limits, the audit trail, the logs and (when chosen) the login JWT's `request_ip` all use
//! this one answer.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::config::ClientIpSource;

/// The resolved client IP, put into each request's extensions by the request middleware.
/// `None` only without a socket (an in-process service in tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(parts
            .extensions
            .get::<ClientIp>()
            .copied()
            .unwrap_or_default())
    }
}

pub fn resolve(
    source: &ClientIpSource,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
) -> Option<IpAddr> {
    // An IPv4 client of a dual-stack listener arrives as ::ffff:a.b.c.d.
    let peer = peer.map(|p| p.to_canonical());
    let entries = forwarded_for(headers);
    match source {
        ClientIpSource::Peer => {
            if !entries.is_empty() {
                note_ignored_header(peer);
            }
            peer
        }
        // Each proxy appends the address it saw, so entries to the left of the `hops`-th
        // from the right were written by the client and prove nothing. With fewer entries
        // than hops, the left-most was still written by one of our proxies.
        ClientIpSource::Hops(hops) => {
            let i = entries.len().saturating_sub((*hops).max(1));
            entries.get(i).and_then(|e| parse_entry(e)).or(peer)
        }
        ClientIpSource::TrustedProxies(nets) => {
            let trusted = |ip: &IpAddr| nets.iter().any(|n| n.contains(ip));
            let Some(mut nearest) = peer.filter(trusted) else {
                if !entries.is_empty() {
                    note_ignored_header(peer);
                }
                return peer;
            };
            // From our side outwards: skip our own proxies; the first address that is not
            // one of them is the client. Garbage stops the walk at the last proxy we know.
            for entry in entries.iter().rev() {
                match parse_entry(entry) {
                    Some(ip) if trusted(&ip) => nearest = ip,
                    Some(ip) => return Some(ip),
                    None => return Some(nearest),
                }
            }
            Some(nearest)
        }
    }
}

/// The entries of every `X-Forwarded-For` line, in order.
fn forwarded_for(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// `203.0.113.7`, `2001:db8::1`, and the forms some proxies write with a port:
/// `203.0.113.7:51234`, `[2001:db8::1]:443`, `[2001:db8::1]`.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let ip = entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .or_else(|_| {
            entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .unwrap_or(entry)
                .parse::<IpAddr>()
        })
        .ok()?;
    Some(ip.to_canonical())
}

/// Says once per process that a forwarded address was ignored: behind a load balancer
/// that is not listed, every shopper shares the balancer's rate limit.
fn note_ignored_header(peer: Option<IpAddr>) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            peer = ?peer,
            "X-Forwarded-For ignored: the peer is not a trusted proxy. If it is your load \
             balancer, list it in server.trusted_proxies, or all clients share its rate limit"
        );
    }
}

/// The `User-Agent` for the audit trail: printable text only, at most 256 characters.
pub fn user_agent(headers: &HeaderMap) -> Option<String> {
    let ua = headers.get(axum::http::header::USER_AGENT)?.to_str().ok()?;
    let clean: String = ua.chars().filter(|c| !c.is_control()).take(256).collect();
    (!clean.trim().is_empty()).then_some(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn proxies(list: &[&str]) -> ClientIpSource {
        ClientIpSource::TrustedProxies(list.iter().map(|n| n.parse().unwrap()).collect())
    }

    #[test]
    fn without_proxies_the_peer_is_the_client() {
        let h = headers(&["1.2.3.4"]);
        assert_eq!(
            resolve(&ClientIpSource::Peer, ip("10.0.0.1"), &h),
            ip("10.0.0.1")
        );
        assert_eq!(
            resolve(&ClientIpSource::Peer, ip("::ffff:192.0.2.1"), &h),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn trusted_proxies_are_skipped_from_the_right() {
        let source = proxies(&["10.0.0.0/8", "127.0.0.1/32"]);
        let lb = ip("10.1.2.3");
        // The client's own claim (6.6.6.6) is left of what our proxies saw.
        let h = headers(&["6.6.6.6, 203.0.113.7", "10.9.9.9"]);
        assert_eq!(resolve(&source, lb, &h), ip("203.0.113.7"));
        // From an untrusted peer the header is not believed.
        assert_eq!(resolve(&source, ip("198.51.100.1"), &h), ip("198.51.100.1"));
        // No header: the proxy itself (a health check).
        assert_eq!(resolve(&source, lb, &HeaderMap::new()), lb);
        // Only proxies: the farthest one.
        assert_eq!(
            resolve(&source, lb, &headers(&["10.0.0.7"])),
            ip("10.0.0.7")
        );
        // Garbage written by a proxy: the nearest proxy we know, never the garbage.
        assert_eq!(
            resolve(&source, lb, &headers(&["203.0.113.7, unknown, 10.0.0.8"])),
            ip("10.0.0.8")
        );
        assert_eq!(
            resolve(
                &source,
                lb,
                &headers(&["[2001:db8::5]:443", "198.51.100.9:5123"])
            ),
            ip("198.51.100.9")
        );
        assert_eq!(
            resolve(&source, lb, &headers(&["[2001:db8::5]:443"])),
            ip("2001:db8::5")
        );
    }

    #[test]
    fn hops_count_from_the_right() {
        let h = headers(&["6.6.6.6, 203.0.113.7", "10.0.0.2"]);
        let peer = ip("10.0.0.1");
        assert_eq!(resolve(&ClientIpSource::Hops(1), peer, &h), ip("10.0.0.2"));
        assert_eq!(
            resolve(&ClientIpSource::Hops(2), peer, &h),
            ip("203.0.113.7")
        );
        // Fewer entries than hops: the left-most, which one of our proxies wrote.
        assert_eq!(resolve(&ClientIpSource::Hops(4), peer, &h), ip("6.6.6.6"));
        assert_eq!(
            resolve(&ClientIpSource::Hops(1), peer, &HeaderMap::new()),
            peer
        );
        assert_eq!(
            resolve(&ClientIpSource::Hops(1), peer, &headers(&["not-an-ip"])),
            peer
        );
    }

    #[test]
    fn user_agents_are_printable_and_short() {
        let mut h = HeaderMap::new();
        assert_eq!(user_agent(&h), None);
        h.insert("user-agent", "curl/8.0\tx".parse().unwrap());
        assert_eq!(user_agent(&h).as_deref(), Some("curl/8.0x"));
        h.insert("user-agent", "a".repeat(1000).parse().unwrap());
        assert_eq!(user_agent(&h).map(|u| u.len()), Some(256));
    }
}
