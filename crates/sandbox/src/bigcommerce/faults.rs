//! Fault injection for the emulated REST API: what a real store (or the network in front of
//! it) does on a bad day, so every failure path of the gateway's client can be tested.
//!
//! Two ways to ask for faults, used together or apart:
//! - [`FaultConfig`]: rates and delays applied to every request (the demo, chaos runs);
//!   `bc-sso-dev sandbox bigcommerce --fault-*` flags set it.
//! - [`FaultRule`]: "the next N requests to `METHOD path`", deterministic, for tests.
//!
//! A fault happens either before the store sees the request (nothing changed: a 5xx from a
//! load balancer, a 429 from load shedding) or after it (the change is made, the answer is
//! lost or late: the ambiguous case a client must never "fix" by sending a POST again).
//! Injected answers carry no `X-Rate-Limit-*` headers, as a proxy's would not.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::Frame;
use serde_json::{Value, json};

use super::Emulator;

/// Faults applied at random to every request (after any [`FaultRule`] that matches).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    /// Share of requests (0.0–1.0) answered with `error_status` before the store sees them.
    pub error_rate: f64,
    /// The status of those answers: 500, 502, 503 or 504.
    pub error_status: u16,
    /// Added to every answer, after the request was processed.
    pub latency: Duration,
    /// Share of requests answered `429` without rate-limit headers: platform load shedding
    /// (CONTRACT.md §6, "retry later with backoff").
    pub throttle_rate: f64,
    /// Share of requests whose connection is dropped after the store processed them.
    pub reset_rate: f64,
    /// When set, every answer's headers go out at once and its body this much later.
    pub slow_body: Option<Duration>,
    /// Successful JSON answers carry what the spec allows or leaves open: `null` for empty
    /// strings, fields nobody asked for, and `meta: []` (an empty PHP array).
    pub odd_json: bool,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            error_rate: 0.0,
            error_status: 503,
            latency: Duration::ZERO,
            throttle_rate: 0.0,
            reset_rate: 0.0,
            slow_body: None,
            odd_json: false,
        }
    }
}

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status. 5xx bodies are HTML (a proxy's page); 4xx bodies are the
    /// API's JSON error (a `422` on `POST /v3/customers` is the documented create failure,
    /// CONTRACT.md §2.3).
    Status(u16),
    /// `429` with no `X-Rate-Limit-*` or `Retry-After` header.
    TooManyRequestsWithoutHeaders,
    /// The connection is closed with no answer.
    ConnectionReset,
    /// The answer comes this much later.
    Latency(Duration),
    /// The headers come at once, the body this much later.
    SlowBody(Duration),
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::Status(_) => "status",
            Fault::TooManyRequestsWithoutHeaders => "429_without_headers",
            Fault::ConnectionReset => "connection_reset",
            Fault::Latency(_) => "latency",
            Fault::SlowBody(_) => "slow_body",
        }
    }
}

/// Whether the store processes the request before the fault strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// The store never sees the request.
    Before,
    /// The store makes the change; the answer is lost, wrong or late.
    After,
}

/// "The next `count` requests to `method path` meet `fault`".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    pub method: Method,
    /// Below `/stores/{store_hash}/`, without the query: `v3/customers`.
    pub path: String,
    pub fault: Fault,
    pub when: When,
    pub count: u32,
}

impl FaultRule {
    /// The next `count` requests. Statuses and 429s strike before the store sees the
    /// request; resets, latency and slow bodies after it (the ambiguous cases).
    pub fn next(count: u32, method: Method, path: &str, fault: Fault) -> Self {
        let when = match fault {
            Fault::Status(_) | Fault::TooManyRequestsWithoutHeaders => When::Before,
            Fault::ConnectionReset | Fault::Latency(_) | Fault::SlowBody(_) => When::After,
        };
        Self {
            method,
            path: path.trim_matches('/').to_owned(),
            fault,
            when,
            count,
        }
    }

    pub fn when(self, when: When) -> Self {
        Self { when, ..self }
    }
}

/// One REST request as the emulator answered it, for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCall {
    pub method: Method,
    /// Below `/stores/{store_hash}/`: `v3/customers`.
    pub path: String,
    /// The raw query string.
    pub query: String,
    /// The status sent; `None` when the connection was dropped.
    pub status: Option<u16>,
    /// The injected fault, if any, and when it struck.
    pub fault: Option<(Fault, When)>,
}

#[derive(Default)]
pub(super) struct FaultState {
    pub(super) config: FaultConfig,
    rules: VecDeque<FaultRule>,
    pub(super) calls: Vec<ApiCall>,
    /// `PUT /v3/customers` requests being answered now, latency included.
    puts_in_flight: usize,
}

/// BigCommerce allows 3 concurrent `PUT /v3/customers` (CONTRACT.md §2.3); the answer to a
/// fourth is unconfirmed, the emulator gives a 429 without rate-limit headers.
const MAX_CONCURRENT_PUTS: usize = 3;

/// Counts one PUT in flight until dropped (also when the client goes away mid-answer).
struct PutInFlight(Emulator);

impl Drop for PutInFlight {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.faults.puts_in_flight = st.faults.puts_in_flight.saturating_sub(1);
    }
}

impl FaultState {
    pub(super) fn new(config: FaultConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    pub(super) fn add(&mut self, rule: FaultRule) {
        if rule.count > 0 {
            self.rules.push_back(rule);
        }
    }

    /// The fault for this request: the first matching rule (spending one of its count),
    /// else a roll of the dice.
    fn pick(&mut self, method: &Method, path: &str) -> Option<(Fault, When)> {
        if let Some(i) = self
            .rules
            .iter()
            .position(|r| r.method == method && r.path == path)
        {
            let rule = &mut self.rules[i];
            let picked = (rule.fault, rule.when);
            rule.count -= 1;
            if rule.count == 0 {
                self.rules.remove(i);
            }
            return Some(picked);
        }
        let c = &self.config;
        let roll = |rate: f64| rate > 0.0 && rand::random::<f64>() < rate;
        if roll(c.error_rate) {
            return Some((Fault::Status(c.error_status), When::Before));
        }
        if roll(c.throttle_rate) {
            return Some((Fault::TooManyRequestsWithoutHeaders, When::Before));
        }
        if roll(c.reset_rate) {
            return Some((Fault::ConnectionReset, When::After));
        }
        if let Some(d) = c.slow_body {
            return Some((Fault::SlowBody(d), When::After));
        }
        None
    }
}

/// The middleware, outermost on the API router: picks a fault, applies it, and logs the call.
pub(super) async fn inject(State(emu): State<Emulator>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = below_store(req.uri().path(), &emu.config().store_hash);
    let query = req.uri().query().unwrap_or_default().to_owned();
    let counted_put = method == Method::PUT && path == "v3/customers";
    let (fault, latency, odd_json) = {
        let mut st = emu.lock();
        if counted_put {
            st.faults.puts_in_flight += 1;
        }
        let puts = st.faults.puts_in_flight;
        let fault = if counted_put && puts > MAX_CONCURRENT_PUTS {
            tracing::info!(puts, "emulator api: too many concurrent PUTs");
            Some((Fault::TooManyRequestsWithoutHeaders, When::Before))
        } else {
            st.faults.pick(&method, &path)
        };
        (fault, st.faults.config.latency, st.faults.config.odd_json)
    };
    let _in_flight = counted_put.then(|| PutInFlight(emu.clone()));
    if let Some((f, when)) = fault {
        tracing::info!(%method, path, fault = f.name(), ?when, "emulator api: injecting a fault");
    }
    // Delays come after the call is logged: a client that gives up cancels this future,
    // and the log must still show that the store carried the request out.
    let (response, delay) = match fault {
        Some((Fault::Latency(d), When::Before)) => {
            tokio::time::sleep(d).await;
            (next.run(req).await, Duration::ZERO)
        }
        Some((Fault::Latency(d), When::After)) => (next.run(req).await, d),
        Some((Fault::SlowBody(d), _)) => (slow(next.run(req).await, d).await, Duration::ZERO),
        Some((f, When::Before)) => (answer(f, &method, &path), Duration::ZERO),
        Some((f, When::After)) => {
            // The store carries the request out; its answer is replaced.
            drop(next.run(req).await);
            (answer(f, &method, &path), Duration::ZERO)
        }
        None => (next.run(req).await, Duration::ZERO),
    };
    let status =
        (fault.map(|(f, _)| f) != Some(Fault::ConnectionReset)).then(|| response.status().as_u16());
    emu.lock().faults.calls.push(ApiCall {
        method,
        path,
        query,
        status,
        fault,
    });
    let delay = delay + latency;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if odd_json && fault.is_none() {
        return oddly(response).await;
    }
    response
}

/// `/stores/abc/v3/customers` → `v3/customers`.
fn below_store(path: &str, store_hash: &str) -> String {
    path.trim_start_matches('/')
        .strip_prefix("stores/")
        .and_then(|p| p.strip_prefix(store_hash))
        .unwrap_or(path)
        .trim_matches('/')
        .to_owned()
}

/// The answer a fault gives instead of the store's.
fn answer(fault: Fault, method: &Method, path: &str) -> Response {
    match fault {
        Fault::Status(s) => {
            let status = StatusCode::from_u16(s).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            if status.is_server_error() {
                let reason = status.canonical_reason().unwrap_or("Error");
                let page = format!("<html><body><h1>{s} {reason}</h1></body></html>");
                return (status, [(header::CONTENT_TYPE, "text/html")], page).into_response();
            }
            let create = method == Method::POST && path == "v3/customers";
            let body = if create && s == 422 {
                // The only create failure C3 documents (CONTRACT.md §2.3).
                json!({
                    "status": 422,
                    "title": "Create customers failed.",
                    "type": "/api-docs/getting-started/api-status-codes",
                    "errors": {".customer_create": "Error creating customers"}
                })
            } else {
                json!({
                    "status": s,
                    "title": status.canonical_reason().unwrap_or("Error"),
                    "type": "/api-docs/getting-started/api-status-codes",
                    "errors": {}
                })
            };
            (status, axum::Json(body)).into_response()
        }
        Fault::TooManyRequestsWithoutHeaders => (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(json!({"status": 429, "title": "Too many requests"})),
        )
            .into_response(),
        Fault::ConnectionReset => Response::new(Body::new(Reset)),
        Fault::Latency(_) | Fault::SlowBody(_) => StatusCode::OK.into_response(),
    }
}

/// A body that fails at once: hyper closes the connection without sending the answer.
struct Reset;

impl http_body::Body for Reset {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "emulated connection reset",
        ))))
    }
}

/// `response` with its headers now and its body after `delay`.
async fn slow(response: Response, delay: Duration) -> Response {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let body = Slow {
        sleep: Box::pin(tokio::time::sleep(delay)),
        data: Some(bytes),
    };
    Response::from_parts(parts, Body::new(body))
}

struct Slow {
    sleep: Pin<Box<tokio::time::Sleep>>,
    data: Option<Bytes>,
}

impl http_body::Body for Slow {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        Poll::Ready(self.data.take().map(|d| Ok(Frame::data(d))))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        // The length goes out with the headers, as a server that stalls mid-body sends it.
        http_body::SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

/// A successful JSON answer rewritten the way [`FaultConfig::odd_json`] describes.
async fn oddly(response: Response) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !response.status().is_success() || !is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    odd(&mut value, true);
    if let Some(meta) = value.get_mut("meta") {
        *meta = json!([]);
    }
    let bytes = serde_json::to_vec(&value).unwrap_or_else(|_| bytes.to_vec());
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(bytes))
}

/// Empty strings become `null`, and every object gains fields nobody asked for.
fn odd(value: &mut Value, top: bool) {
    match value {
        Value::Object(map) => {
            for v in map.values_mut() {
                if v.as_str() == Some("") {
                    *v = Value::Null;
                } else {
                    odd(v, false);
                }
            }
            if !top {
                map.insert(
                    "x_unannounced".to_owned(),
                    json!({"nested": [1, "two", null]}),
                );
                map.insert("shopper_profile_id".to_owned(), Value::Null);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| odd(v, false)),
        _ => {}
    }
}

#[cfg(test)]
#[path = "faults_tests.rs"]
mod tests;
