//! Logging set-up and the per-request span.
//!
//! Every request gets a fresh correlation id (never the client's: it is printed on error
//! pages and must be ours). The span names the matched route, not the URI, because the
//! callback's query holds the authorization code and state (SECURITY.md rule 18).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

tokio::task_local! {
    static REQUEST_CTX: RequestCtx;
}

#[derive(Debug, Clone, Default)]
pub struct RequestCtx {
    pub correlation_id: String,
    pub wants_json: bool,
    /// Where an error page sends the shopper back to: the default storefront.
    pub home_url: Option<Arc<str>>,
    /// The client's IP as `server.trusted_proxies` resolves it, for the audit trail.
    pub client_ip: Option<IpAddr>,
    /// Its `User-Agent`, cleaned and cut short, for the audit trail.
    pub user_agent: Option<String>,
}

/// What the gateway knows about a request before the span starts.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    pub home_url: Option<Arc<str>>,
    pub client_ip: Option<IpAddr>,
}

impl RequestCtx {
    /// The context of the request being served, or an empty one outside a request.
    pub fn current() -> RequestCtx {
        REQUEST_CTX
            .try_with(Clone::clone)
            .unwrap_or_else(|_| RequestCtx {
                correlation_id: "-".into(),
                ..RequestCtx::default()
            })
    }
}

pub const CORRELATION_HEADER: &str = "x-request-id";

/// Middleware: correlation id, request span, one access-log line per request.
pub async fn request_span(
    State(RequestInfo {
        home_url,
        client_ip,
    }): State<RequestInfo>,
    req: Request,
    next: Next,
) -> Response {
    let correlation_id = uuid::Uuid::new_v4().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "(unmatched)".to_owned());
    let wants_json = req.uri().path().starts_with("/admin/api/")
        || req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/json") && !v.contains("text/html"));
    let span = tracing::info_span!(
        "request",
        correlation_id = %correlation_id,
        method = %req.method(),
        route = %route,
        client_ip = client_ip.map(tracing::field::display),
        connection = tracing::field::Empty,
        customer_id = tracing::field::Empty,
    );
    let ctx = RequestCtx {
        correlation_id: correlation_id.clone(),
        wants_json,
        home_url,
        client_ip,
        user_agent: crate::client_ip::user_agent(req.headers()),
    };
    let started = Instant::now();
    let mut response = REQUEST_CTX
        .scope(ctx, next.run(req))
        .instrument(span.clone())
        .await;
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            latency_ms = started.elapsed().as_millis() as u64,
            "request finished"
        )
    });
    if let Ok(v) = HeaderValue::from_str(&correlation_id) {
        response.headers_mut().insert(CORRELATION_HEADER, v);
    }
    response
}

/// Installs the global subscriber: `BCSSO_LOG` (env-filter syntax, default `info`) and
/// `BCSSO_LOG_FORMAT=json` for machine-read logs.
pub fn init() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("BCSSO_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,tower_sessions=warn"));
    let json = std::env::var("BCSSO_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
