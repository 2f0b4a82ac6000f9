//! The emulated REST API (CONTRACT.md §1-3, §6, §8 items 1-11 and 13).

use std::collections::BTreeMap;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;

use time::OffsetDateTime;

use super::rate_limit::RateSnapshot;
use super::state::{ERROR_TYPE_FULL, ERROR_TYPE_SHORT, Store, error};
use super::{EmulatedChannel, Emulator};
use bigcommerce_wire::{
    CollectionMeta, CustomerCollectionResponse, CustomerFull, ErrorResponse, Time,
    rate_limit_headers,
};

pub(super) fn router(emu: Emulator) -> Router {
    Router::new()
        .route(
            "/stores/{store_hash}/v3/customers",
            get(list_customers)
                .post(create_customers)
                .put(update_customers)
                .delete(delete_customers),
        )
        .route("/stores/{store_hash}/v2/time", get(get_time))
        .route("/stores/{store_hash}/v2/customer_groups", get(list_groups))
        .route(
            "/stores/{store_hash}/v3/customers/settings/channels/{channel_id}",
            get(channel_settings),
        )
        .merge(super::channels::routes())
        .merge(super::hooks::routes())
        // No `/v3/customers/{id}` exists (CONTRACT.md §2, §8 item 6): it lands here.
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(emu.clone(), gate))
        .layer(middleware::from_fn_with_state(
            emu.clone(),
            super::faults::inject,
        ))
        .with_state(emu)
}

fn error_response(e: ErrorResponse) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
    (status, Json(e)).into_response()
}

fn simple_error(status: StatusCode, title: &str) -> Response {
    error_response(error(
        status.as_u16(),
        title,
        ERROR_TYPE_FULL,
        BTreeMap::new(),
    ))
}

/// Runs before every REST request: counts it, checks the store hash, the token and the
/// quota, and puts the four `X-Rate-Limit-*` headers on whatever comes back (CONTRACT.md §6).
async fn gate(State(emu): State<Emulator>, req: Request, next: Next) -> Response {
    let mut segments = req.uri().path().split('/').skip(1);
    let store_ok = segments.next() == Some("stores")
        && segments.next() == Some(emu.config().store_hash.as_str());
    let rest = segments.collect::<Vec<_>>().join("/");
    let forbidden = emu
        .config()
        .forbidden_paths
        .iter()
        .any(|p| rest.starts_with(p.trim_matches('/')));
    // Header names are case-insensitive (CONTRACT.md §1); `HeaderMap` already folds them.
    let token_ok = req
        .headers()
        .get("x-auth-token")
        .is_some_and(|v| v.as_bytes() == emu.config().access_token.as_bytes());
    let snapshot = {
        let mut st = emu.lock();
        st.api_requests += 1;
        // Only authenticated requests to this store spend its quota; refusals still
        // report the window so clients can read the headers on every response.
        let snapshot = st.rate.check(Instant::now(), store_ok && token_ok);
        st.rate_limited += u64::from(!snapshot.allowed);
        snapshot
    };
    let method = req.method().clone();
    let mut response = if !store_ok {
        tracing::info!(%method, "emulator api: unknown store hash");
        simple_error(StatusCode::NOT_FOUND, "Store not found")
    } else if !token_ok {
        tracing::info!(%method, "emulator api: missing or wrong X-Auth-Token");
        simple_error(StatusCode::UNAUTHORIZED, "Unauthorized")
    } else if forbidden {
        tracing::info!(%method, "emulator api: token lacks the scope for this path");
        simple_error(
            StatusCode::FORBIDDEN,
            "You don't have a required scope to access the endpoint",
        )
    } else if !snapshot.allowed {
        tracing::info!(%method, "emulator api: rate limit exhausted");
        too_many_requests(&snapshot)
    } else {
        next.run(req).await
    };
    let headers = response.headers_mut();
    let mut put = |name: &'static str, value: u128| {
        if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    put(rate_limit_headers::TIME_WINDOW_MS, snapshot.window_ms);
    put(rate_limit_headers::TIME_RESET_MS, snapshot.reset_ms);
    put(
        rate_limit_headers::REQUESTS_QUOTA,
        u128::from(snapshot.quota),
    );
    put(rate_limit_headers::REQUESTS_LEFT, u128::from(snapshot.left));
    if !snapshot.allowed {
        // Seconds, rounded up so a client that waits this long is never early (AB:186).
        put(
            rate_limit_headers::RETRY_AFTER,
            snapshot.reset_ms.div_ceil(1000).max(1),
        );
    }
    response
}

/// 429 body: the shape BC documents for validate-credentials (CONTRACT.md §6; unconfirmed for customers).
fn too_many_requests(_snapshot: &RateSnapshot) -> Response {
    error_response(error(
        429,
        "Too many requests",
        ERROR_TYPE_SHORT,
        BTreeMap::new(),
    ))
}

async fn not_found() -> Response {
    let mut e = error(
        404,
        "The requested resource was not found.",
        ERROR_TYPE_FULL,
        BTreeMap::new(),
    );
    e.instance = Some(String::new());
    error_response(e)
}

fn query_pairs(raw: Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A POST/PUT batch of customers, written by `write` (the store's create or update) with the
/// emulator's channels and clock. The answer lists the customers `written` makes of what was
/// written, or is the refusal BigCommerce gives.
fn write_batch<T>(
    emu: &Emulator,
    headers: &HeaderMap,
    body: &Bytes,
    write: fn(&mut Store, &Value, &[EmulatedChannel], OffsetDateTime) -> Result<T, ErrorResponse>,
    written: impl FnOnce(T) -> Vec<CustomerFull>,
) -> Response {
    let body = match json_body(headers, body) {
        Ok(v) => v,
        Err((status, title)) => return simple_error(status, title),
    };
    let now = emu.now();
    let result = write(&mut emu.lock().store, &body, &emu.config().channels, now);
    match result {
        // 200, not 201, with `meta: {}` (CONTRACT.md §2.3).
        Ok(done) => Json(CustomerCollectionResponse {
            data: written(done),
            meta: CollectionMeta::default(),
        })
        .into_response(),
        Err(e) => error_response(e),
    }
}

/// POST/PUT bodies: `415` without a JSON content type, `400` for malformed JSON (SC:18-64
/// lists both). Non-array but valid JSON is the store's business (422).
fn json_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, (StatusCode, &'static str)> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !is_json {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        ));
    }
    serde_json::from_slice(body).map_err(|_| {
        (
            StatusCode::BAD_REQUEST,
            "The request body is not valid JSON",
        )
    })
}

async fn list_customers(State(emu): State<Emulator>, RawQuery(raw): RawQuery) -> Response {
    let query = query_pairs(raw);
    let result = emu.lock().store.list(&query);
    match result {
        Ok(body) => Json(body).into_response(),
        Err(e) => error_response(e),
    }
}

async fn create_customers(
    State(emu): State<Emulator>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    write_batch(&emu, &headers, &body, Store::create, |created| {
        for c in &created {
            tracing::info!(customer_id = c.full.id, "emulator api: customer created");
        }
        let created: Vec<CustomerFull> = created.into_iter().map(|c| c.full).collect();
        emu.customers_changed(super::hooks::CUSTOMER_CREATED, &created);
        created
    })
}

async fn update_customers(
    State(emu): State<Emulator>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    write_batch(&emu, &headers, &body, Store::update, |updated| {
        emu.customers_changed(super::hooks::CUSTOMER_UPDATED, &updated);
        updated
    })
}

async fn delete_customers(State(emu): State<Emulator>, RawQuery(raw): RawQuery) -> Response {
    let query = query_pairs(raw);
    let result = emu.lock().store.delete(&query);
    match result {
        Ok(ids) => {
            tracing::info!(deleted = ids.len(), "emulator api: customers deleted");
            emu.customers_deleted(&ids);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => error_response(e),
    }
}

/// `GET /v2/time` (CONTRACT.md §3.2): the emulator's clock, skew included.
async fn get_time(State(emu): State<Emulator>) -> Json<Time> {
    Json(Time {
        time: emu.now().unix_timestamp(),
    })
}

/// `GET /v2/customer_groups` (CONTRACT.md §3.1): a bare array, ids ascending.
async fn list_groups(State(emu): State<Emulator>) -> Response {
    Json(emu.customer_groups()).into_response()
}

/// `GET /v3/customers/settings/channels/{channel_id}` (CONTRACT.md §2.2). An unknown
/// channel answers 404 (BigCommerce's answer there is unconfirmed).
async fn channel_settings(
    State(emu): State<Emulator>,
    axum::extract::Path((_, channel_id)): axum::extract::Path<(String, i64)>,
) -> Response {
    match emu.config().channels.iter().find(|c| c.id == channel_id) {
        Some(c) => Json(serde_json::json!({
            "data": {
                "privacy_settings": { "ask_shopper_for_tracking_consent": false, "policy_url": "" },
                "customer_group_settings": { "guest_customer_group_id": 0, "default_customer_group_id": 0 },
                "allow_global_logins": c.allow_global_logins,
            },
            "meta": {},
        }))
        .into_response(),
        None => simple_error(StatusCode::NOT_FOUND, "Channel not found"),
    }
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;
