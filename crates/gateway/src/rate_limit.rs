//! Per-client rate limit on the sign-in endpoints (SECURITY.md rule 17), with
//! `tower_governor`. The client is identified the same way as for `request_ip`: the peer
//! address, or the configured hop of `X-Forwarded-For` behind trusted proxies.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::IntoResponse;
use tower_governor::GovernorError;
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::KeyExtractor;

use crate::config::RequestIpSource;
use crate::error::Error;

#[derive(Debug, Clone, Copy)]
pub struct ClientKey {
    source: RequestIpSource,
}

impl KeyExtractor for ClientKey {
    type Key = IpAddr;

    fn extract<T>(&self, req: &Request<T>) -> Result<IpAddr, GovernorError> {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        // `Off` only means "send no request_ip to BigCommerce"; for limiting, the peer
        // is still the best we know.
        let source = match self.source {
            RequestIpSource::Off => RequestIpSource::Peer,
            other => other,
        };
        // Without any address (an in-process test service) all requests share one bucket
        // rather than failing.
        Ok(crate::client_ip::resolve(source, peer, req.headers())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))
    }
}

pub type Config = GovernorConfig<ClientKey, governor::middleware::NoOpMiddleware>;

/// `per_minute` sign-in requests per client with bursts of `burst`; `None` when disabled.
pub fn config(source: RequestIpSource, per_minute: u32, burst: u32) -> Option<Arc<Config>> {
    if per_minute == 0 {
        return None;
    }
    let period = Duration::from_millis(60_000 / u64::from(per_minute));
    let config = GovernorConfigBuilder::default()
        .period(period)
        .burst_size(burst.max(1))
        .key_extractor(ClientKey { source })
        .finish()?;
    let config = Arc::new(config);
    // Forget idle clients now and then, or the map of keys grows forever.
    let limiter = config.limiter().clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            limiter.retain_recent();
        }
    });
    Some(config)
}

pub fn layer(
    config: Arc<Config>,
) -> tower_governor::GovernorLayer<ClientKey, governor::middleware::NoOpMiddleware, axum::body::Body>
{
    tower_governor::GovernorLayer::new(config).error_handler(|e| {
        let retry_after = match e {
            GovernorError::TooManyRequests { wait_time, .. } => wait_time,
            _ => 1,
        };
        Error::TooManyRequests { retry_after }.into_response()
    })
}
