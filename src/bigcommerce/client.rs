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
    CustomerCollectionResponse, CustomerFull, CustomerPost, ErrorResponse, Time,
    rate_limit_headers as rl,
};
use crate::config::StoreConfig;
use crate::domain::Secret;

/// The longest we hold a shopper's request waiting for the rate-limit window to reset.
pub const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(10);

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
    #[error("BigCommerce rejected the request ({status}): {title}")]
    Rejected {
        status: u16,
        title: String,
        errors: Vec<(String, String)>,
    },
    #[error("BigCommerce answered {status}")]
    Status { status: u16 },
    #[error("BigCommerce answered with an unexpected body: {0}")]
    Decode(String),
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
            let response = request
                .send()
                .await
                .map_err(|e| ApiError::Transport(without_url(e)))?;
            let status = response.status();
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
            let bytes = response
                .bytes()
                .await
                .map_err(|e| ApiError::Transport(without_url(e)))?;
            return match status {
                s if s.is_success() => {
                    serde_json::from_slice(&bytes).map_err(|e| ApiError::Decode(e.to_string()))
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
        let reset = num(rl::TIME_RESET_MS).map(Duration::from_millis);
        let retry = num(rl::RETRY_AFTER).map(Duration::from_secs);
        let mut budget = self.budget.lock().unwrap_or_else(|p| p.into_inner());
        budget.left = left;
        budget.reset_at = reset.map(|r| Instant::now() + r);
        match (reset, retry) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
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
