//! One request to the API, with the rules every call shares: rate limits, one retry, the
//! response-size cap, metrics, and errors a person can act on.
//!
//! Rate limits are per store and shared with every other app (CONTRACT.md §6). The client
//! remembers the last `X-Rate-Limit-*` headers; when the quota is spent it waits for the
//! reset (if that is short) instead of sending a request that would earn a 429.
//!
//! At most one retry, after a wait with jitter (so replicas that failed together do not
//! come back together):
//! - `429`: the request was not carried out, so any method is retried, after the longest of
//!   `X-Rate-Limit-Time-Reset-Ms`, `X-Retry-After` and `Retry-After`; a 429 with none of
//!   them is load shedding and gets the backoff (CONTRACT.md §6).
//! - no connection: nothing was sent, so any method is retried.
//! - `502`/`503`/`504`, a timeout, a connection broken mid-answer: only idempotent methods
//!   (GET, PUT, DELETE). A POST may have been carried out; the caller decides what to do
//!   ([`ApiError::outcome_unknown`]): provisioning looks the email up, never posts blindly.

use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{ApiError, Client, MAX_RESPONSE_BYTES};
use crate::bigcommerce::wire::{ErrorResponse, rate_limit_headers as rl};
use crate::capped_body::{BodyError, read_capped};

/// The longest we hold a shopper's request waiting for the rate-limit window to reset.
pub const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(10);

/// The base wait before a retry that no header paces; up to as much again is added at random.
pub const RETRY_BACKOFF: Duration = Duration::from_millis(250);

/// BigCommerce's limit on concurrent `PUT /v3/customers` requests (C3:348).
pub const MAX_CONCURRENT_PUTS: usize = 3;

#[derive(Debug, Default)]
pub(super) struct Budget {
    left: Option<u64>,
    reset_at: Option<Instant>,
    /// The store's quota and window as last reported (CONTRACT.md §6).
    pub(super) quota: Option<(u64, Duration)>,
}

/// How one attempt ended when it did not produce an answer to decode.
struct Failed {
    error: ApiError,
    /// `Some(wait)`: worth one more attempt after `wait`.
    retry_after: Option<Duration>,
}

impl Client {
    /// Sends one API request and decodes the answer, retrying at most once (see the module
    /// comment). `path` is below `/stores/{store_hash}/`, e.g. `v3/customers`. A `204` or
    /// an empty body reads as JSON `null`, so callers that accept no answer ask for
    /// `Option<T>`. Batch calls use this too, and get the same limits and retries.
    pub(crate) async fn send<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&B>,
    ) -> Result<T, ApiError> {
        let url = self
            .store_base
            .join(path)
            .map_err(|e| ApiError::Transport(e.to_string()))?;
        // Held for the whole call, retries included. The semaphore is never closed.
        let _put_slot = match method {
            Method::PUT => Some(
                self.put_slots
                    .acquire()
                    .await
                    .map_err(|e| ApiError::Transport(e.to_string()))?,
            ),
            _ => None,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.wait_for_budget().await?;
            let failed = match self.attempt(&method, &url, path, query, body).await {
                Ok((status, bytes)) => match decode(status, &bytes) {
                    Ok(value) => return Ok(value),
                    Err(error) => Failed {
                        error,
                        retry_after: None,
                    },
                },
                Err(failed) => failed,
            };
            match failed.retry_after {
                Some(wait) if attempt == 1 => {
                    tracing::warn!(
                        %method,
                        endpoint = endpoint_label(path),
                        wait_ms = wait.as_millis() as u64,
                        error = %failed.error,
                        "BigCommerce call failed; retrying once"
                    );
                    tokio::time::sleep(wait).await;
                }
                _ => return Err(failed.error),
            }
        }
    }

    /// One request: the status and body of an answer worth decoding, or why not.
    async fn attempt<B: Serialize + ?Sized>(
        &self,
        method: &Method,
        url: &url::Url,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&B>,
    ) -> Result<(StatusCode, Vec<u8>), Failed> {
        let idempotent = method.is_idempotent();
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .header("X-Auth-Token", self.access_token.expose())
            .header("Accept", "application/json")
            .query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        let started = Instant::now();
        let endpoint = endpoint_label(path);
        let count = |class: &str| {
            crate::metrics::METRICS
                .bigcommerce_requests
                .with_label_values(&[endpoint, class])
                .inc();
        };
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                crate::metrics::outbound_since(started);
                count("error");
                // Nothing was sent when the connection could not be made.
                let retry = e.is_connect() || idempotent;
                return Err(Failed {
                    error: transport_error(e),
                    retry_after: retry.then(|| self.backoff()),
                });
            }
        };
        let status = response.status();
        count(crate::metrics::status_class(status.as_u16()));
        let paced = self.record_limits(response.headers());
        tracing::debug!(%method, path, status = status.as_u16(), "BigCommerce call");
        if status == StatusCode::TOO_MANY_REQUESTS {
            crate::metrics::outbound_since(started);
            // Without any rate-limit header it is load shedding: back off (CONTRACT.md §6).
            let wait = paced.unwrap_or_else(|| self.backoff());
            return Err(Failed {
                error: ApiError::RateLimited { retry_after: wait },
                retry_after: (wait <= MAX_RATE_LIMIT_WAIT).then_some(wait),
            });
        }
        let bytes = read_capped(response, MAX_RESPONSE_BYTES).await;
        crate::metrics::outbound_since(started);
        let bytes = match bytes {
            Ok(bytes) => bytes,
            Err(BodyError::TooLarge { limit }) => {
                return Err(Failed {
                    error: ApiError::ResponseTooLarge { limit },
                    retry_after: None,
                });
            }
            // The answer broke off (reset, or slower than the timeout): like a timeout.
            Err(BodyError::Transport(e)) => {
                return Err(Failed {
                    error: transport_error(e),
                    retry_after: idempotent.then(|| self.backoff()),
                });
            }
        };
        if matches!(status.as_u16(), 502..=504) {
            let wait = paced
                .filter(|w| *w <= MAX_RATE_LIMIT_WAIT)
                .unwrap_or_else(|| self.backoff());
            return Err(Failed {
                error: ApiError::Status {
                    status: status.as_u16(),
                },
                retry_after: idempotent.then_some(wait),
            });
        }
        Ok((status, bytes))
    }

    /// The retry wait: the base backoff plus up to as much again at random.
    fn backoff(&self) -> Duration {
        self.retry_backoff.mul_f64(1.0 + rand::random::<f64>())
    }

    /// Waits for the window to reset when the last answer said no requests are left.
    async fn wait_for_budget(&self) -> Result<(), ApiError> {
        let wait = {
            let budget = self.budget.lock().unwrap_or_else(|p| p.into_inner());
            match (budget.left, budget.reset_at) {
                (Some(0), Some(reset)) => reset.saturating_duration_since(Instant::now()),
                _ => Duration::ZERO,
            }
        };
        if wait.is_zero() {
            return Ok(());
        }
        if wait > MAX_RATE_LIMIT_WAIT {
            return Err(ApiError::RateLimited { retry_after: wait });
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// Records the budget; returns how long the answer asks us to wait, if it says: the
    /// longest of the reset time, `X-Retry-After` (CONTRACT.md §6) and the standard
    /// `Retry-After` (seconds), which proxies and maintenance pages send.
    pub(super) fn record_limits(&self, headers: &HeaderMap) -> Option<Duration> {
        let num = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let left = num(rl::REQUESTS_LEFT);
        if let Some(left) = left {
            crate::metrics::METRICS
                .bigcommerce_quota_left
                .set(i64::try_from(left).unwrap_or(i64::MAX));
        }
        let reset = num(rl::TIME_RESET_MS).map(Duration::from_millis);
        let window = num(rl::TIME_WINDOW_MS).map(Duration::from_millis);
        let mut budget = self.budget.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(q), Some(w)) = (num(rl::REQUESTS_QUOTA), window) {
            budget.quota = Some((q, w));
        }
        budget.left = left;
        budget.reset_at = reset.map(|r| Instant::now() + r);
        [
            reset,
            num(rl::RETRY_AFTER).map(Duration::from_secs),
            num(reqwest::header::RETRY_AFTER.as_str()).map(Duration::from_secs),
        ]
        .into_iter()
        .flatten()
        .max()
    }
}

/// The answer as `T`, or the error its status means.
fn decode<T: DeserializeOwned>(status: StatusCode, bytes: &[u8]) -> Result<T, ApiError> {
    let body: &[u8] = if bytes.is_empty() { b"null" } else { bytes };
    match status {
        s if s.is_success() => {
            serde_json::from_slice(body).map_err(|e| ApiError::Decode(e.to_string()))
        }
        StatusCode::UNAUTHORIZED => Err(ApiError::Unauthorized),
        StatusCode::FORBIDDEN => Err(ApiError::Forbidden),
        s if s.is_client_error() => Err(rejected(s, bytes)),
        s => Err(ApiError::Status { status: s.as_u16() }),
    }
}

/// The metrics label of an API path: what is called, never ids or query values.
fn endpoint_label(path: &str) -> &'static str {
    match path {
        p if p.starts_with("v3/customers/settings/channels") => "customer_channel_settings",
        p if p.starts_with("v3/customers") => "customers",
        p if p.starts_with("v3/channels") => "channels",
        p if p.starts_with("v3/hooks") => "hooks",
        p if p.starts_with("v2/customer_groups") => "customer_groups",
        p if p.starts_with("v2/time") => "time",
        _ => "other",
    }
}

fn rejected(status: StatusCode, bytes: &[u8]) -> ApiError {
    match serde_json::from_slice::<ErrorResponse>(bytes) {
        Ok(e) => ApiError::Rejected {
            status: status.as_u16(),
            title: e.title,
            errors: e.errors,
        },
        // 401/403/413 bodies are not specified; do not require JSON (CONTRACT.md §2.5).
        Err(_) => ApiError::Rejected {
            status: status.as_u16(),
            title: status
                .canonical_reason()
                .unwrap_or("client error")
                .to_owned(),
            errors: serde_json::Value::Null,
        },
    }
}

/// reqwest's Display includes the URL; ours carry no secrets, but keep logs short and
/// uniform anyway.
fn transport_error(e: reqwest::Error) -> ApiError {
    if e.is_timeout() {
        return ApiError::Timeout(e.without_url().to_string());
    }
    let kind = if e.is_connect() {
        "could not connect"
    } else {
        "connection broken"
    };
    ApiError::Transport(format!("{kind}: {}", error_chain(&e.without_url())))
}

/// The error and its sources: reqwest's own text ("error sending request") says little.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
