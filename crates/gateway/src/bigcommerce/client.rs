//! REST client for the calls the gateway makes: customers (V3) and the store clock (V2).
//!
//! Rate limits are per store and shared with every other app (CONTRACT.md §6). The client
//! remembers the last `X-Rate-Limit-*` headers; when the quota is spent it waits for the
//! reset (if that is short) instead of sending a request that would earn a 429, and on a 429
//! it waits as told and retries once. A burst of logins then queues briefly instead of
//! failing.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use super::wire::{
    CustomerAuthentication, CustomerChannelSettingsResponse, CustomerCollectionResponse,
    CustomerFull, CustomerGroupFull, CustomerPost, CustomerPut, ErrorResponse, Time,
    rate_limit_headers as rl,
};
use crate::capped_body::{BodyError, read_capped};
use crate::config::StoreConfig;
use crate::domain::Secret;

/// The longest we hold a shopper's request waiting for the rate-limit window to reset.
pub const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(10);

/// Page size for `GET /v2/customer_groups`: the platform-wide maximum (CONTRACT.md §2.1,
/// unconfirmed for V2), so a normal store answers in one call.
const CUSTOMER_GROUPS_PAGE_LIMIT: u32 = 250;

/// Upper bound on customer-group pages. 20 × 250 groups is far beyond any real store; the
/// cap keeps a server that never returns a short page from holding us in a loop.
const CUSTOMER_GROUPS_MAX_PAGES: u32 = 20;

/// The largest answer read from the API (SECURITY.md rule 23). A full page of 250 customers
/// with addresses and attributes is a few hundred KiB; anything past this is not an answer
/// we asked for, and is not read (see [`crate::capped_body`]).
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("request to BigCommerce failed: {0}")]
    Transport(String),
    #[error("BigCommerce refused the access token (401): check store.access_token")]
    Unauthorized,
    #[error(
        "BigCommerce API account lacks a scope (403): it needs Customers (modify) and Customers Login"
    )]
    Forbidden,
    #[error("BigCommerce rate limit reached; retry in {retry_after:?}")]
    RateLimited { retry_after: Duration },
    // The field paths say what to fix; the messages can quote emails, so they stay out.
    #[error("BigCommerce rejected the request ({status}): {title} (fields: {})", errors.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", "))]
    Rejected {
        status: u16,
        title: String,
        errors: Vec<(String, String)>,
    },
    #[error("BigCommerce answered {status}")]
    Status { status: u16 },
    #[error("BigCommerce answered with an unexpected body: {0}")]
    Decode(String),
    #[error("BigCommerce's answer is larger than {} KiB; it was not read", limit / 1024)]
    ResponseTooLarge { limit: usize },
}

impl ApiError {
    /// A create refused because the email already belongs to a customer (CONTRACT.md §2.3:
    /// a 422 whose `errors` mention the email). Two first sign-ins at once end here.
    pub fn is_duplicate_email(&self) -> bool {
        match self {
            ApiError::Rejected {
                status: 422,
                errors,
                ..
            } => errors.iter().any(|(k, v)| {
                k.contains("email")
                    && (v.contains("in use") || v.contains("exists") || v.contains("unique"))
            }),
            _ => false,
        }
    }
}

pub struct Client {
    http: reqwest::Client,
    /// `<api_base_url>/stores/<store_hash>/`
    store_base: Url,
    access_token: Secret,
    budget: Mutex<Budget>,
}

#[derive(Debug, Default)]
struct Budget {
    left: Option<u64>,
    reset_at: Option<Instant>,
    /// The store's quota and window as last reported (CONTRACT.md §6).
    quota: Option<(u64, Duration)>,
}

impl Client {
    pub fn new(http: reqwest::Client, store: &StoreConfig) -> Self {
        let store_base = crate::config::join_path(
            &store.api_base_url,
            &format!("stores/{}/", store.store_hash),
        );
        Self {
            http,
            store_base,
            access_token: store.access_token.clone(),
            budget: Mutex::new(Budget::default()),
        }
    }

    /// The store's quota per window as its last answer reported it (`X-Rate-Limit-Requests-
    /// Quota`, `-Time-Window-Ms`); `None` before the first answer.
    pub fn quota(&self) -> Option<(u64, Duration)> {
        self.budget.lock().unwrap_or_else(|p| p.into_inner()).quota
    }

    /// `GET /v3/customers?email:in=…`: customers whose email equals one of `emails`,
    /// compared case-insensitively on our side too (the API's case rules are undocumented).
    pub async fn customers_by_email(
        &self,
        emails: &[String],
    ) -> Result<Vec<CustomerFull>, ApiError> {
        let list = emails.join(",");
        let response: CustomerCollectionResponse = self
            .send(
                Method::GET,
                "v3/customers",
                &[("email:in", list.as_str()), ("limit", "250")],
                None::<&()>,
            )
            .await?;
        Ok(response
            .data
            .into_iter()
            .filter(|c| {
                emails
                    .iter()
                    .any(|e| e.eq_ignore_ascii_case(c.email.trim()))
            })
            .collect())
    }

    /// `GET /v3/customers?id:in=…` (V3 has no GET by id).
    pub async fn customers_by_id(&self, ids: &[i64]) -> Result<Vec<CustomerFull>, ApiError> {
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let response: CustomerCollectionResponse = self
            .send(
                Method::GET,
                "v3/customers",
                &[("id:in", list.as_str())],
                None::<&()>,
            )
            .await?;
        Ok(response.data)
    }

    /// `POST /v3/customers` with an array body (at most 10 items).
    pub async fn create_customers(
        &self,
        items: &[CustomerPost],
    ) -> Result<Vec<CustomerFull>, ApiError> {
        let response: CustomerCollectionResponse = self
            .send(Method::POST, "v3/customers", &[], Some(items))
            .await?;
        Ok(response.data)
    }

    /// `GET /v3/customers?limit=1`: proves the token can read customers on this store
    /// without caring whether there are any. The admin console's "Check" uses it.
    pub async fn probe_customers(&self) -> Result<(), ApiError> {
        let _: CustomerCollectionResponse = self
            .send(Method::GET, "v3/customers", &[("limit", "1")], None::<&()>)
            .await?;
        Ok(())
    }

    /// `GET /v2/customer_groups`, every page (CONTRACT.md §3.1: a bare array, ids ascending).
    /// Stores on plans without groups answer with an empty list, or a `204` (V2's habit for
    /// empty lists, unconfirmed); both come back as `Ok(vec![])`.
    pub async fn customer_groups(&self) -> Result<Vec<CustomerGroupFull>, ApiError> {
        self.customer_groups_paged(CUSTOMER_GROUPS_PAGE_LIMIT, CUSTOMER_GROUPS_MAX_PAGES)
            .await
    }

    /// The loop behind [`Self::customer_groups`], with the page size and cap as parameters so
    /// tests can cross page boundaries with a handful of groups.
    async fn customer_groups_paged(
        &self,
        limit: u32,
        max_pages: u32,
    ) -> Result<Vec<CustomerGroupFull>, ApiError> {
        let limit_param = limit.to_string();
        let mut groups: Vec<CustomerGroupFull> = Vec::new();
        for page in 1..=max_pages {
            let page_param = page.to_string();
            let batch: Option<Vec<CustomerGroupFull>> = self
                .send(
                    Method::GET,
                    "v2/customer_groups",
                    &[
                        ("page", page_param.as_str()),
                        ("limit", limit_param.as_str()),
                    ],
                    None::<&()>,
                )
                .await?;
            let batch = batch.unwrap_or_default();
            let received = batch.len();
            let before = groups.len();
            for g in batch {
                if !groups.iter().any(|seen| seen.id == g.id) {
                    groups.push(g);
                }
            }
            if groups_paging_done(received, groups.len() - before, limit) {
                return Ok(groups);
            }
        }
        tracing::warn!(
            pages = max_pages,
            groups = groups.len(),
            "GET /v2/customer_groups still returned full pages at the page cap; list truncated"
        );
        Ok(groups)
    }

    /// `PUT /v3/customers` with an array body (at most 10 items, `id` in each).
    pub async fn update_customers(
        &self,
        items: &[CustomerPut],
    ) -> Result<Vec<CustomerFull>, ApiError> {
        let response: CustomerCollectionResponse = self
            .send(Method::PUT, "v3/customers", &[], Some(items))
            .await?;
        Ok(response.data)
    }

    /// `PUT /v3/customers [{id, authentication: {force_password_reset: true}}]`: the
    /// customer must choose a new password (by the store's reset email) before a password
    /// sign-in works again.
    pub async fn force_password_reset(&self, customer_id: i64) -> Result<(), ApiError> {
        let put = CustomerPut {
            id: customer_id,
            authentication: Some(CustomerAuthentication {
                force_password_reset: true,
            }),
            ..CustomerPut::default()
        };
        self.update_customers(std::slice::from_ref(&put)).await?;
        Ok(())
    }

    /// `GET /v3/customers/settings/channels/{id}`: whether customers without `channel_ids`
    /// (global accounts) may sign in on the channel; `None` when the channel does not say.
    pub async fn channel_allows_global_logins(
        &self,
        channel_id: i64,
    ) -> Result<Option<bool>, ApiError> {
        let path = format!("v3/customers/settings/channels/{channel_id}");
        let r: CustomerChannelSettingsResponse =
            self.send(Method::GET, &path, &[], None::<&()>).await?;
        Ok(r.data.allow_global_logins)
    }

    /// `GET /v2/time`: BigCommerce's clock, the reference for the login JWT's `iat`.
    pub async fn time(&self) -> Result<i64, ApiError> {
        let t: Time = self.send(Method::GET, "v2/time", &[], None::<&()>).await?;
        Ok(t.time)
    }

    async fn send<T: DeserializeOwned, B: Serialize + ?Sized>(
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
        for attempt in 0..2 {
            self.wait_for_budget().await?;
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
            let response = request.send().await.map_err(|e| {
                crate::metrics::outbound_since(started);
                crate::metrics::METRICS
                    .bigcommerce_requests
                    .with_label_values(&[endpoint, "error"])
                    .inc();
                ApiError::Transport(without_url(e))
            })?;
            let status = response.status();
            crate::metrics::METRICS
                .bigcommerce_requests
                .with_label_values(&[endpoint, crate::metrics::status_class(status.as_u16())])
                .inc();
            let retry_after = self.record_limits(response.headers());
            tracing::debug!(%method, path, status = status.as_u16(), "BigCommerce call");
            if status == StatusCode::TOO_MANY_REQUESTS {
                let wait = retry_after.unwrap_or(Duration::from_secs(1));
                if attempt == 0 && wait <= MAX_RATE_LIMIT_WAIT {
                    tracing::warn!(
                        wait_ms = wait.as_millis() as u64,
                        "BigCommerce rate limit: waiting"
                    );
                    tokio::time::sleep(wait).await;
                    continue;
                }
                return Err(ApiError::RateLimited { retry_after: wait });
            }
            let bytes = read_capped(response, MAX_RESPONSE_BYTES).await;
            crate::metrics::outbound_since(started);
            let bytes = bytes.map_err(|e| match e {
                BodyError::TooLarge { limit } => ApiError::ResponseTooLarge { limit },
                BodyError::Transport(e) => ApiError::Transport(without_url(e)),
            })?;
            // A 204 or an empty 200 reads as JSON `null`: callers that accept an empty answer
            // (V2 lists, CONTRACT.md §2.1) ask for `Option<T>`; for everyone else it stays a
            // decode error, as before.
            let body: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
            return match status {
                s if s.is_success() => {
                    serde_json::from_slice(body).map_err(|e| ApiError::Decode(e.to_string()))
                }
                StatusCode::UNAUTHORIZED => Err(ApiError::Unauthorized),
                StatusCode::FORBIDDEN => Err(ApiError::Forbidden),
                s if s.is_client_error() => Err(rejected(s, &bytes)),
                s => Err(ApiError::Status { status: s.as_u16() }),
            };
        }
        Err(ApiError::RateLimited {
            retry_after: MAX_RATE_LIMIT_WAIT,
        })
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

    /// Records the budget; returns how long a 429 asks us to wait (the longer of the reset
    /// time and `X-Retry-After`, CONTRACT.md §6).
    fn record_limits(&self, headers: &reqwest::header::HeaderMap) -> Option<Duration> {
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
        let retry = num(rl::RETRY_AFTER).map(Duration::from_secs);
        let window = num(rl::TIME_WINDOW_MS).map(Duration::from_millis);
        let mut budget = self.budget.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(q), Some(w)) = (num(rl::REQUESTS_QUOTA), window) {
            budget.quota = Some((q, w));
        }
        budget.left = left;
        budget.reset_at = reset.map(|r| Instant::now() + r);
        match (reset, retry) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The metrics label of an API path: what is called, never ids or query values.
fn endpoint_label(path: &str) -> &'static str {
    match path {
        p if p.starts_with("v3/customers/settings/channels") => "customer_channel_settings",
        p if p.starts_with("v3/customers") => "customers",
        p if p.starts_with("v3/channels") => "channels",
        p if p.starts_with("v2/customer_groups") => "customer_groups",
        p if p.starts_with("v2/time") => "time",
        _ => "other",
    }
}

/// Whether the customer-group loop has seen the last page. A page shorter than `limit` (or
/// empty) is the documented end. A page that added no group we had not seen means the server
/// ignores `page` and keeps sending page 1; asking again would only repeat it.
fn groups_paging_done(received: usize, new: usize, limit: u32) -> bool {
    received < limit as usize || new == 0
}

fn rejected(status: StatusCode, bytes: &[u8]) -> ApiError {
    match serde_json::from_slice::<ErrorResponse>(bytes) {
        Ok(e) => ApiError::Rejected {
            status: status.as_u16(),
            title: e.title,
            errors: e.errors.into_iter().collect(),
        },
        // 401/403/413 bodies are not specified; do not require JSON (CONTRACT.md §2.5).
        Err(_) => ApiError::Rejected {
            status: status.as_u16(),
            title: status
                .canonical_reason()
                .unwrap_or("client error")
                .to_owned(),
            errors: Vec::new(),
        },
    }
}

/// reqwest's Display includes the URL; ours carry no secrets, but keep logs short and
/// uniform anyway.
fn without_url(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "transport error"
    };
    format!("{kind}: {}", e.without_url())
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
