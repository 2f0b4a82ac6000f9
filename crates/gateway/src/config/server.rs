//! `[server]`: where the gateway listens, how it finds the client's IP behind proxies,
//! whether that IP goes into the login token, and the rate limits.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use url::Url;

use super::{ConfigError, ENV_PREFIX, invalid, parse_web_url};
use crate::domain::Secret;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub http_timeout_secs: Option<u64>,
    pub pending_login_ttl_secs: Option<u64>,
    /// Addresses or CIDRs of the proxies in front of the gateway whose `X-Forwarded-For`
    /// is believed.
    pub trusted_proxies: Option<Vec<String>>,
    /// Or: how many proxies append to `X-Forwarded-For` (the peer is not checked).
    pub trusted_proxy_hops: Option<usize>,
    /// Put the client's IP into the login JWT's `request_ip` (default false).
    pub send_request_ip: Option<bool>,
    /// Deprecated: "off" | "peer" | "x-forwarded-for", from before `send_request_ip`.
    pub request_ip: Option<String>,
    /// Sign-in requests (`/login`, `/oidc/callback`) per client per minute; 0 = no limit.
    pub rate_limit_per_minute: Option<u32>,
    pub rate_limit_burst: Option<u32>,
    /// Sign-in requests per connection per minute, all clients together; 0 = no limit.
    pub connection_rate_limit_per_minute: Option<u32>,
    /// Failed admin sign-ins and admin API calls per client per minute; 0 = no limit.
    pub admin_failures_per_minute: Option<u32>,
    /// `redis://…` to keep sessions in Redis, so replicas share them; default in memory.
    pub sessions_url: Option<String>,
    /// Where Prometheus scrapes `/metrics` (e.g. `127.0.0.1:9090`); default: no metrics.
    pub metrics_listen: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// The gateway's external URL; the OIDC redirect URI is `<public_url>/oidc/callback`.
    pub public_url: Url,
    pub http_timeout: Duration,
    pub pending_login_ttl: Duration,
    /// How the client's IP is found: rate limits, audit, logs and `request_ip` use it.
    pub client_ip: ClientIpSource,
    /// Whether the login JWT carries `request_ip`.
    pub send_request_ip: bool,
    pub rate_limit_per_minute: u32,
    pub rate_limit_burst: u32,
    pub connection_rate_limit_per_minute: u32,
    pub admin_failures_per_minute: u32,
    /// Redis URL (may hold a password); `None` = in memory.
    pub sessions_url: Option<Secret>,
    /// The metrics listener; `None` = off.
    pub metrics_listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientIpSource {
    /// The TCP peer: no proxy in front, or none whose headers we believe.
    Peer,
    /// When the peer is one of these, the right-most `X-Forwarded-For` entry that is not.
    TrustedProxies(Vec<IpNet>),
    /// The entry `hops` places from the right of `X-Forwarded-For`, whoever the peer is.
    Hops(usize),
}

pub(super) fn validate_server(
    raw: RawServer,
    errors: &mut Vec<ConfigError>,
) -> Option<ServerConfig> {
    let listen = match raw.listen.as_deref().unwrap_or("127.0.0.1:8080").parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            errors.push(invalid(
                "server.listen",
                "expected an address with port, e.g. 0.0.0.0:8080",
            ));
            None
        }
    };
    let metrics_listen = match raw.metrics_listen.as_deref().map(str::trim) {
        None | Some("") => Some(None),
        Some(addr) => match addr.parse() {
            Ok(a) => Some(Some(a)),
            Err(_) => {
                errors.push(invalid(
                    "server.metrics_listen",
                    "expected an address with port, e.g. 127.0.0.1:9090",
                ));
                None
            }
        },
    };
    let public_url = match raw.public_url {
        None => {
            errors.push(ConfigError::Missing {
                key: "server.public_url".into(),
                env: format!("{ENV_PREFIX}SERVER_PUBLIC_URL"),
            });
            None
        }
        Some(s) => parse_web_url("server.public_url", &s, errors),
    };
    let (client_ip, send_request_ip) = client_ip(
        raw.request_ip.as_deref(),
        raw.send_request_ip,
        raw.trusted_proxies.as_deref().unwrap_or_default(),
        raw.trusted_proxy_hops,
        errors,
    )?;
    Some(ServerConfig {
        metrics_listen: metrics_listen?,
        listen: listen?,
        public_url: public_url?,
        http_timeout: Duration::from_secs(raw.http_timeout_secs.unwrap_or(10).clamp(1, 120)),
        pending_login_ttl: Duration::from_secs(
            raw.pending_login_ttl_secs.unwrap_or(600).clamp(30, 3600),
        ),
        client_ip,
        send_request_ip,
        sessions_url: match raw.sessions_url.filter(|u| !u.trim().is_empty()) {
            Some(u) if u.starts_with("redis://") || u.starts_with("rediss://") => {
                Some(Secret::new(u))
            }
            Some(_) => {
                errors.push(invalid(
                    "server.sessions_url",
                    "expected redis://host:port (or rediss://)",
                ));
                None
            }
            None => None,
        },
        // Generous: a B2B office signs in through one NAT address, and a real sign-in
        // costs two requests.
        rate_limit_per_minute: raw.rate_limit_per_minute.unwrap_or(120),
        rate_limit_burst: raw.rate_limit_burst.unwrap_or(60),
        // A backstop against driving one IdP through us, above a company-wide rollout
        // (a thousand employees within minutes: two requests each).
        connection_rate_limit_per_minute: raw.connection_rate_limit_per_minute.unwrap_or(3000),
        // An admin mistypes a token a few times; a guesser needs billions of tries.
        admin_failures_per_minute: raw.admin_failures_per_minute.unwrap_or(10),
    })
}

/// Where the client's IP comes from, and whether it goes into the login token. The old
/// `request_ip` setting mixed both; its values still work, with a warning.
fn client_ip(
    legacy: Option<&str>,
    send: Option<bool>,
    proxies: &[String],
    hops: Option<usize>,
    errors: &mut Vec<ConfigError>,
) -> Option<(ClientIpSource, bool)> {
    let mut ok = true;
    let nets: Vec<IpNet> = proxies
        .iter()
        .filter_map(|p| match parse_net(p) {
            Ok(net) => Some(net),
            Err(message) => {
                errors.push(invalid("server.trusted_proxies", message));
                ok = false;
                None
            }
        })
        .collect();
    if let Some(value) = legacy {
        tracing::warn!(
            request_ip = value,
            "server.request_ip is deprecated: use server.send_request_ip = true|false, and \
             server.trusted_proxies for the proxies in front of the gateway"
        );
    }
    let send = match (send, legacy) {
        (Some(_), Some(_)) => {
            errors.push(invalid(
                "server.request_ip",
                "remove it: server.send_request_ip replaces it",
            ));
            return None;
        }
        (Some(send), None) => send,
        (None, None | Some("off")) => false,
        (None, Some("peer" | "x-forwarded-for")) => true,
        (None, Some(other)) => {
            errors.push(invalid(
                "server.request_ip",
                format!("expected \"off\", \"peer\" or \"x-forwarded-for\" (got {other:?}); better: send_request_ip = true|false"),
            ));
            return None;
        }
    };
    // Before, `trusted_proxy_hops` counted only with "x-forwarded-for" (the README showed it
    // next to "off"): honouring it now would suddenly believe a header anyone can send.
    let hops = match legacy {
        Some("off" | "peer") if hops.is_some() => {
            tracing::warn!(
                "server.trusted_proxy_hops is ignored with the deprecated server.request_ip = \"off\"/\"peer\", as before"
            );
            None
        }
        Some("x-forwarded-for") if nets.is_empty() => Some(hops.unwrap_or(1)),
        _ => hops,
    };
    let source = match (nets.is_empty(), hops) {
        (false, Some(_)) => {
            errors.push(invalid(
                "server.trusted_proxy_hops",
                "set server.trusted_proxies or server.trusted_proxy_hops, not both",
            ));
            return None;
        }
        (false, None) => ClientIpSource::TrustedProxies(nets),
        (true, Some(0) | None) => ClientIpSource::Peer,
        (true, Some(n)) => ClientIpSource::Hops(n),
    };
    ok.then_some((source, send))
}

/// `10.0.0.0/8`, `fd00::/8`, or one address.
fn parse_net(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    let net = match text.parse::<IpNet>() {
        Ok(net) => net.trunc(),
        Err(_) => text
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| format!("{text:?} is not an address or CIDR such as 10.0.0.0/8"))?,
    };
    if net.prefix_len() == 0 {
        return Err(format!(
            "{text:?} would believe X-Forwarded-For from anyone: list your proxies' addresses"
        ));
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(raw: RawServer) -> Result<(ClientIpSource, bool), Vec<String>> {
        let mut errors = Vec::new();
        let raw = RawServer {
            public_url: Some("https://sso.example.com".into()),
            ..raw
        };
        match validate_server(raw, &mut errors) {
            Some(s) if errors.is_empty() => Ok((s.client_ip, s.send_request_ip)),
            _ => Err(errors.iter().map(ToString::to_string).collect()),
        }
    }

    fn proxies(list: &[&str]) -> Option<Vec<String>> {
        Some(list.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn client_ip_and_request_ip_are_separate_choices() {
        assert_eq!(
            source(RawServer::default()),
            Ok((ClientIpSource::Peer, false))
        );
        let (s, send) = source(RawServer {
            trusted_proxies: proxies(&["10.0.0.0/8", "127.0.0.1", "fd00::/8"]),
            ..RawServer::default()
        })
        .unwrap();
        assert!(!send);
        let ClientIpSource::TrustedProxies(nets) = s else {
            panic!("{s:?}")
        };
        assert_eq!(nets.len(), 3);
        assert_eq!(
            source(RawServer {
                trusted_proxy_hops: Some(2),
                send_request_ip: Some(true),
                ..RawServer::default()
            }),
            Ok((ClientIpSource::Hops(2), true))
        );
    }

    #[test]
    fn old_request_ip_values_keep_working() {
        let legacy = |v: &str, hops: Option<usize>| {
            source(RawServer {
                request_ip: Some(v.into()),
                trusted_proxy_hops: hops,
                ..RawServer::default()
            })
        };
        assert_eq!(legacy("off", Some(1)), Ok((ClientIpSource::Peer, false)));
        assert_eq!(legacy("peer", None), Ok((ClientIpSource::Peer, true)));
        assert_eq!(
            legacy("x-forwarded-for", None),
            Ok((ClientIpSource::Hops(1), true))
        );
        assert_eq!(
            legacy("x-forwarded-for", Some(2)),
            Ok((ClientIpSource::Hops(2), true))
        );
        assert!(legacy("sometimes", None).is_err());
    }

    #[test]
    fn bad_proxy_settings_are_explained() {
        let e = source(RawServer {
            trusted_proxies: proxies(&["10.0.0.0/33", "0.0.0.0/0", "lb.internal"]),
            ..RawServer::default()
        })
        .unwrap_err()
        .join("\n");
        for needle in ["10.0.0.0/33", "from anyone", "lb.internal"] {
            assert!(e.contains(needle), "{needle} missing in {e}");
        }
        let e = source(RawServer {
            trusted_proxies: proxies(&["10.0.0.1"]),
            trusted_proxy_hops: Some(1),
            ..RawServer::default()
        })
        .unwrap_err();
        assert!(e[0].contains("not both"), "{e:?}");
        let e = source(RawServer {
            request_ip: Some("peer".into()),
            send_request_ip: Some(true),
            ..RawServer::default()
        })
        .unwrap_err();
        assert!(e[0].contains("send_request_ip replaces it"), "{e:?}");
    }
}
