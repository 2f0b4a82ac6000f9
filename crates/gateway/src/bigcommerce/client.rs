//! REST client for the calls the gateway makes: customers (V3) and the store clock (V2).
//!
//! Every call goes through one helper, [`Client::send`] (in `transport.rs`), which owns
//! rate limits, retries and the response-size cap, so batch calls get the same handling.

use std::sync::Mutex;
use std::time::Duration;

use reqwest::Method;
use url::Url;

use super::wire::{
    CustomerAuthentication, CustomerChannelSettingsResponse, CustomerCollectionResponse,
    CustomerFull, CustomerGroupFull, CustomerPost, CustomerPut, Time,
};
use crate::config::StoreConfig;
use crate::domain::Secret;

#[path = "transport.rs"]
mod transport;
use transport::Budget;
pub use transport::{MAX_CONCURRENT_PUTS, MAX_RATE_LIMIT_WAIT, RETRY_BACKOFF};

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
    #[error("BigCommerce did not answer in time: {0}")]
    Timeout(String),
    #[error("BigCommerce refused the access token (401): check store.access_token")]
    Unauthorized,
    #[error(
        "BigCommerce API account lacks a scope (403): it needs Customers (modify) and Customers Login"
    )]
    Forbidden,
    #[error("BigCommerce rate limit reached; retry in {retry_after:?}")]
    RateLimited { retry_after: Duration },
    // The field paths say what to fix; the messages can quote emails, so they stay out.
    #[error(
        "BigCommerce rejected the request ({status}): {title} (fields: {})",
        error_keys(errors)
    )]
    Rejected {
        status: u16,
        title: String,
        /// `errors` as sent: any JSON shape (CONTRACT.md §2.5), never relied upon.
        errors: serde_json::Value,
    },
    #[error("BigCommerce answered {status}")]
    Status { status: u16 },
    #[error("BigCommerce answered with an unexpected body: {0}")]
    Decode(String),
    #[error("BigCommerce's answer is larger than {} KiB; it was not read", limit / 1024)]
    ResponseTooLarge { limit: usize },
}

impl ApiError {
    /// A create refused as a whole: `422` or `409`. BigCommerce documents no answer for a
    /// taken email; its only documented create failure is a 422 with
    /// `{".customer_create": "Error creating customers"}` (CONTRACT.md §2.3), so the body
    /// cannot tell a duplicate from anything else. The caller looks the email up again.
    pub fn is_create_conflict(&self) -> bool {
        matches!(
            self,
            ApiError::Rejected {
                status: 409 | 422,
                ..
            }
        )
    }

    /// Whether the request may have been carried out although it failed: the connection
    /// broke or timed out after it was sent, or a 5xx came back (a proxy's 502 can follow a
    /// store that did the work). A POST that failed this way must be checked, never sent
    /// again blindly.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            ApiError::Transport(_) | ApiError::Timeout(_) => true,
            ApiError::Status { status } => *status >= 500,
            _ => false,
        }
    }
}

/// The field paths of an `errors` value for the log, whatever its shape.
fn error_keys(errors: &serde_json::Value) -> String {
    match errors {
        serde_json::Value::Object(map) => map.keys().cloned().collect::<Vec<_>>().join(", "),
        serde_json::Value::Null => String::new(),
        _ => "(not a map)".to_owned(),
    }
}

pub struct Client {
    http: reqwest::Client,
    /// `<api_base_url>/stores/<store_hash>/`
    store_base: Url,
    access_token: Secret,
    budget: Mutex<Budget>,
    /// `PUT /v3/customers` allows 3 concurrent requests per store (CONTRACT.md §2.3, §6).
    put_slots: tokio::sync::Semaphore,
    /// The wait before a retry, before jitter ([`RETRY_BACKOFF`]; tests shorten it).
    retry_backoff: Duration,
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
            put_slots: tokio::sync::Semaphore::new(MAX_CONCURRENT_PUTS),
            retry_backoff: RETRY_BACKOFF,
        }
    }

    /// The same client with another base wait before retries.
    pub fn with_retry_backoff(mut self, backoff: Duration) -> Self {
        self.retry_backoff = backoff;
        self
    }

    /// The store's quota per window as its last answer reported it (`X-Rate-Limit-Requests-
    /// Quota`, `-Time-Window-Ms`); `None` before the first answer.
    pub fn quota(&self) -> Option<(u64, Duration)> {
        self.budget.lock().unwrap_or_else(|p| p.into_inner()).quota
    }

    /// `GET /v3/customers?email:in=…`: customers whose email equals one of `emails`,
    /// compared case-insensitively on our side too. Whether the API folds case is
    /// undocumented (CONTRACT.md §2.1), so each address is asked for in the form given and
    /// lowercased. No `limit`: the default page (50) holds every match of a few addresses,
    /// and the maximum is unconfirmed for customers.
    pub async fn customers_by_email(
        &self,
        emails: &[String],
    ) -> Result<Vec<CustomerFull>, ApiError> {
        let mut forms: Vec<String> = Vec::with_capacity(emails.len() * 2);
        for e in emails {
            for form in [e.clone(), e.to_ascii_lowercase()] {
                if !forms.contains(&form) {
                    forms.push(form);
                }
            }
        }
        let list = forms.join(",");
        let response: CustomerCollectionResponse = self
            .send(
                Method::GET,
                "v3/customers",
                &[("email:in", list.as_str())],
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
}

/// Whether the customer-group loop has seen the last page. A page shorter than `limit` (or
/// empty) is the documented end. A page that added no group we had not seen means the server
/// ignores `page` and keeps sending page 1; asking again would only repeat it.
fn groups_paging_done(received: usize, new: usize, limit: u32) -> bool {
    received < limit as usize || new == 0
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
