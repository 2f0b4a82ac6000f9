//! Prometheus metrics, served on their own listen address (`server.metrics_listen`), never
//! on the public one: sign-ins by connection, result and reason; sign-in latency and the
//! gateway's own share of it; BigCommerce and IdP calls; JWKS refetches; sessions; audit
//! events dropped.
//!
//! One registry per process, as the `prometheus` crate intends: a gateway process is one
//! gateway (the tests run several in one process and only ever compare deltas). Labels hold
//! connection ids, reason codes, endpoint names and status classes: never an email, a
//! subject, a token or a URL with its query.

use std::cell::Cell;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// `connection`, `result` (`succeeded` | `refused`), `reason` (a reason code, or `""`).
    pub sign_ins: IntCounterVec,
    /// The callback, from the browser's request to the redirect to the storefront.
    pub sign_in_seconds: HistogramVec,
    /// The same minus the time spent waiting for the IdP and BigCommerce.
    pub sign_in_gateway_seconds: Histogram,
    /// `endpoint` (`customers`, `time`, ...), `status` (`2xx`, `429`, `4xx`, `5xx`, `error`).
    pub bigcommerce_requests: IntCounterVec,
    /// The store's API quota left, as the last response's `X-Rate-Limit-Requests-Left` said.
    pub bigcommerce_quota_left: IntGauge,
    /// `status` (`2xx`, `4xx`, `5xx`, `error`).
    pub idp_requests: IntCounterVec,
    pub jwks_refetches: IntCounter,
    /// `store` (`shoppers` | `admins`): sessions in the in-memory stores (Redis keeps its own).
    pub sessions: IntGaugeVec,
    /// `reason` (`queue_full` | `closed` | `write_failed`): audit events never written.
    pub audit_dropped: IntCounterVec,
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Buckets for a sign-in's callback: from a cached, returning user (milliseconds) to an
/// IdP or BigCommerce at its timeout.
const SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Metrics {
    fn new() -> Metrics {
        let registry =
            Registry::new_custom(Some("bcsso".into()), None).unwrap_or_else(|_| Registry::new());
        let m = Metrics {
            sign_ins: IntCounterVec::new(
                Opts::new("sign_ins_total", "Shopper sign-ins by connection, result and reason code"),
                &["connection", "result", "reason"],
            )
            .unwrap_or_else(unreachable_metric),
            sign_in_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "sign_in_duration_seconds",
                    "Sign-in callback, from the IdP's redirect to the storefront redirect",
                )
                .buckets(SECONDS.to_vec()),
                &["result"],
            )
            .unwrap_or_else(unreachable_metric),
            sign_in_gateway_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "sign_in_gateway_duration_seconds",
                    "The gateway's own share of a sign-in callback: total minus IdP and BigCommerce calls",
                )
                .buckets(SECONDS.to_vec()),
            )
            .unwrap_or_else(unreachable_metric),
            bigcommerce_requests: IntCounterVec::new(
                Opts::new("bigcommerce_requests_total", "BigCommerce API calls by endpoint and status"),
                &["endpoint", "status"],
            )
            .unwrap_or_else(unreachable_metric),
            bigcommerce_quota_left: IntGauge::new(
                "bigcommerce_quota_left",
                "API requests left in the store's current rate-limit window",
            )
            .unwrap_or_else(unreachable_metric),
            idp_requests: IntCounterVec::new(
                Opts::new("idp_requests_total", "Calls to identity providers by status"),
                &["status"],
            )
            .unwrap_or_else(unreachable_metric),
            jwks_refetches: IntCounter::new(
                "jwks_refetches_total",
                "JWKS fetched again for an unknown key id",
            )
            .unwrap_or_else(unreachable_metric),
            sessions: IntGaugeVec::new(
                Opts::new("sessions", "Sessions held in memory (pending sign-ins, admins)"),
                &["store"],
            )
            .unwrap_or_else(unreachable_metric),
            audit_dropped: IntCounterVec::new(
                Opts::new(
                    "audit_events_dropped_total",
                    "Audit events dropped: queue full, queue closed, or not written after a retry",
                ),
                &["reason"],
            )
            .unwrap_or_else(unreachable_metric),
            registry,
        };
        // Present from the start (0), so an alert on its rate has a series to watch.
        for reason in ["queue_full", "closed", "write_failed"] {
            m.audit_dropped.with_label_values(&[reason]);
        }
        let collectors: [Box<dyn prometheus::core::Collector>; 9] = [
            Box::new(m.sign_ins.clone()),
            Box::new(m.sign_in_seconds.clone()),
            Box::new(m.sign_in_gateway_seconds.clone()),
            Box::new(m.bigcommerce_requests.clone()),
            Box::new(m.bigcommerce_quota_left.clone()),
            Box::new(m.idp_requests.clone()),
            Box::new(m.jwks_refetches.clone()),
            Box::new(m.sessions.clone()),
            Box::new(m.audit_dropped.clone()),
        ];
        for c in collectors {
            if let Err(e) = m.registry.register(c) {
                tracing::error!(error = %e, "metric not registered");
            }
        }
        m
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "metrics could not be encoded");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// The names and labels above are constants that the `prometheus` crate accepts; a
/// failure here is a programming error caught by every test run.
fn unreachable_metric<T>(e: prometheus::Error) -> T {
    panic!("invalid metric definition: {e}")
}

/// `2xx`, `4xx`, `5xx` by class; 429 on its own (a rate limit is not a client bug).
pub fn status_class(status: u16) -> &'static str {
    match status {
        429 => "429",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

tokio::task_local! {
    /// Time this sign-in spent waiting for the IdP and BigCommerce.
    static OUTBOUND: Cell<Duration>;
}

/// Adds `since`'s elapsed time to the current sign-in's outbound time (no-op elsewhere).
pub fn outbound_since(since: Instant) {
    let _ = OUTBOUND.try_with(|c| c.set(c.get() + since.elapsed()));
}

/// Runs a sign-in callback and records its latency and the gateway's own share of it.
pub async fn time_sign_in<T, E>(f: impl Future<Output = Result<T, E>>) -> Result<T, E> {
    let started = Instant::now();
    let (result, outbound) = OUTBOUND
        .scope(Cell::new(Duration::ZERO), async {
            let r = f.await;
            (r, OUTBOUND.with(Cell::get))
        })
        .await;
    let total = started.elapsed();
    let label = if result.is_ok() {
        "succeeded"
    } else {
        "refused"
    };
    METRICS
        .sign_in_seconds
        .with_label_values(&[label])
        .observe(total.as_secs_f64());
    METRICS
        .sign_in_gateway_seconds
        .observe(total.saturating_sub(outbound).as_secs_f64());
    result
}
