//! The shopper's IP for the login JWT's `request_ip`, only as the operator configured it:
//! BigCommerce rejects the token when it differs from the IP it sees, so guessing is worse
//! than sending nothing.

use std::net::IpAddr;

use axum::http::HeaderMap;

use crate::config::RequestIpSource;

pub fn resolve(
    source: RequestIpSource,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
) -> Option<IpAddr> {
    match source {
        RequestIpSource::Off => None,
        RequestIpSource::Peer => peer,
        RequestIpSource::ForwardedFor { hops } => {
            // Each trusted proxy appends the address it saw; count `hops` from the right.
            // Entries further left were written by the client and prove nothing.
            let entries: Vec<&str> = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .collect();
            entries
                .len()
                .checked_sub(hops)
                .and_then(|i| entries.get(i))
                .and_then(|s| s.parse().ok())
        }
    }
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

    #[test]
    fn off_sends_nothing() {
        let peer = Some("10.0.0.1".parse().unwrap());
        assert_eq!(
            resolve(RequestIpSource::Off, peer, &headers(&["1.2.3.4"])),
            None
        );
        assert_eq!(
            resolve(RequestIpSource::Peer, peer, &HeaderMap::new()),
            peer
        );
    }

    #[test]
    fn forwarded_for_counts_trusted_hops_from_the_right() {
        let h = headers(&["6.6.6.6, 203.0.113.7", "10.0.0.2"]);
        let one = RequestIpSource::ForwardedFor { hops: 1 };
        let two = RequestIpSource::ForwardedFor { hops: 2 };
        assert_eq!(resolve(one, None, &h), Some("10.0.0.2".parse().unwrap()));
        assert_eq!(resolve(two, None, &h), Some("203.0.113.7".parse().unwrap()));
        assert_eq!(
            resolve(RequestIpSource::ForwardedFor { hops: 4 }, None, &h),
            None
        );
        assert_eq!(resolve(one, None, &headers(&["not-an-ip"])), None);
    }
}
