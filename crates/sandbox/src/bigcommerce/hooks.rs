//! Webhooks (CONTRACT.md §7, §8 item 12): `/v3/hooks` CRUD, and delivery of
//! `store/customer/created|updated|deleted` callbacks with each hook's registered headers.
//!
//! As BigCommerce does:
//! - a hook gets every event of its scope (`store/customer/*` matches all customer events);
//! - a delivery is acknowledged by any 2xx; anything else is retried on a schedule
//!   ([`super::EmulatorConfig::webhook_retry_delays`], BigCommerce's own by default), and a
//!   hook whose delivery fails through the whole schedule is deactivated;
//! - a retry carries the same body, so the same `hash`: receivers dedupe on it.
//!
//! Where the emulator is more lenient: BigCommerce delivers only to https on port 443;
//! here a loopback `http` destination is accepted too, because the gateways under test
//! listen on ephemeral local ports. `hash` is SHA-256 cut to 40 hex digits (BigCommerce's
//! is SHA-1 of the payload); receivers treat it as opaque.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use url::{Host, Url};

use super::Emulator;
use super::state::{ERROR_TYPE_FULL, error, one_error};
use bigcommerce_wire::{CustomerFull, ErrorResponse, WebhookFull};

pub const CUSTOMER_CREATED: &str = "store/customer/created";
pub const CUSTOMER_UPDATED: &str = "store/customer/updated";
pub const CUSTOMER_DELETED: &str = "store/customer/deleted";

/// BigCommerce's retry schedule after a failed delivery (https-webhook-overview.mdx:148-184).
pub const BIGCOMMERCE_RETRY_DELAYS: [u64; 11] = [
    60, 180, 300, 600, 900, 1800, 3600, 7200, 21600, 50400, 86400,
];

/// Hooks and the deliveries made so far.
#[derive(Default)]
pub(super) struct Hooks {
    hooks: BTreeMap<i64, WebhookFull>,
    next_id: i64,
    deliveries: Vec<WebhookDelivery>,
    /// Numbers events, so two events with equal content still get different hashes.
    events: u64,
}

/// One callback sent (or being sent) to one hook, for tests to inspect and replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub hook_id: i64,
    pub scope: String,
    pub destination: String,
    /// The JSON body, exactly as sent.
    pub body: String,
    /// The hook's registered headers, sent with the body.
    pub headers: BTreeMap<String, String>,
    pub attempts: u32,
    /// The receiver's status on the last attempt (`None`: no answer).
    pub last_status: Option<u16>,
    pub delivered: bool,
}

pub(super) fn routes() -> Router<Emulator> {
    Router::new()
        .route(
            "/stores/{store_hash}/v3/hooks",
            get(list_hooks).post(create_hook),
        )
        .route(
            "/stores/{store_hash}/v3/hooks/{id}",
            get(get_hook).put(update_hook).delete(delete_hook),
        )
}

impl Emulator {
    /// The registered hooks, ids ascending.
    pub fn hooks(&self) -> Vec<WebhookFull> {
        self.lock().hooks.hooks.values().cloned().collect()
    }

    /// Every delivery so far, oldest first.
    pub fn webhook_deliveries(&self) -> Vec<WebhookDelivery> {
        self.lock().hooks.deliveries.clone()
    }

    /// Sends delivery `n` once more, as BigCommerce's duplicate deliveries do; the
    /// receiver's status, or `None` when it did not answer.
    pub async fn deliver_again(&self, n: usize) -> Option<u16> {
        let delivery = self.lock().hooks.deliveries.get(n).cloned()?;
        self.post_callback(&delivery).await
    }

    /// The control panel's "delete customer": deletes it and notifies the hooks, as the
    /// API's `DELETE /v3/customers` does. Whether the customer existed.
    pub fn delete_customer(&self, id: i64) -> bool {
        let removed = self.lock().store.customers.remove(&id).is_some();
        if removed {
            self.customers_deleted(&[id]);
        }
        removed
    }

    /// The control panel's customer edit: one `PUT /v3/customers` item (raw JSON, `id`
    /// included), with the API's rules, notifying the hooks.
    pub fn edit_customer(&self, item: Value) -> Result<CustomerFull, ErrorResponse> {
        let now = self.now();
        let updated = {
            let mut st = self.lock();
            st.store
                .update(&Value::Array(vec![item]), &self.config().channels, now)?
        };
        self.customers_changed(CUSTOMER_UPDATED, &updated);
        updated.into_iter().next().ok_or_else(|| {
            error(
                422,
                "Update customers failed.",
                ERROR_TYPE_FULL,
                BTreeMap::new(),
            )
        })
    }

    /// Customers created or updated: one callback of `scope` per customer and hook.
    pub(super) fn customers_changed(&self, scope: &str, customers: &[CustomerFull]) {
        for c in customers {
            let data = json!({
                "type": "customer",
                "id": c.id,
                "origin_channel_id": c.origin_channel_id,
                "channel_ids": c.channel_ids,
            });
            self.notify(scope, data);
        }
    }

    pub(super) fn customers_deleted(&self, ids: &[i64]) {
        for id in ids {
            self.notify(CUSTOMER_DELETED, json!({ "type": "customer", "id": id }));
        }
    }

    /// Records a delivery to each active hook of `scope` and sends them in the background.
    fn notify(&self, scope: &str, data: Value) {
        let created_at = self.now().unix_timestamp();
        let store_hash = self.config().store_hash.clone();
        let deliveries: Vec<(usize, WebhookDelivery)> = {
            let mut st = self.lock();
            let hooks = &mut st.hooks;
            hooks.events += 1;
            let mut payload = json!({
                "producer": format!("stores/{store_hash}"),
                "created_at": created_at,
                "store_id": "1001",
                "scope": scope,
                "data": data,
            });
            let digest = Sha256::digest(format!("{}:{payload}", hooks.events).as_bytes());
            let hash: String = digest.iter().take(20).map(|b| format!("{b:02x}")).collect();
            payload["hash"] = Value::String(hash);
            let body = payload.to_string();
            let targets: Vec<WebhookFull> = hooks
                .hooks
                .values()
                .filter(|h| h.is_active && scope_matches(&h.scope, scope))
                .cloned()
                .collect();
            targets
                .into_iter()
                .map(|h| {
                    let d = WebhookDelivery {
                        hook_id: h.id,
                        scope: scope.to_owned(),
                        destination: h.destination.clone(),
                        body: body.clone(),
                        headers: h.headers.clone().unwrap_or_default(),
                        attempts: 0,
                        last_status: None,
                        delivered: false,
                    };
                    hooks.deliveries.push(d.clone());
                    (hooks.deliveries.len() - 1, d)
                })
                .collect()
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("emulator: no runtime to deliver webhooks on");
            return;
        };
        for (n, delivery) in deliveries {
            let emu = self.clone();
            runtime.spawn(async move { emu.deliver(n, delivery).await });
        }
    }

    /// Delivers `delivery` (number `n`), retrying on BigCommerce's schedule; deactivates
    /// the hook when the schedule runs out.
    async fn deliver(&self, n: usize, delivery: WebhookDelivery) {
        let delays = self.config().webhook_retry_delays.clone();
        let mut waits = delays.iter();
        loop {
            let status = self.post_callback(&delivery).await;
            let ok = status.is_some_and(|s| (200..300).contains(&s));
            {
                let mut st = self.lock();
                if let Some(d) = st.hooks.deliveries.get_mut(n) {
                    d.attempts += 1;
                    d.last_status = status;
                    d.delivered = ok;
                }
            }
            if ok {
                return;
            }
            match waits.next() {
                Some(wait) => tokio::time::sleep(*wait).await,
                None => {
                    tracing::info!(
                        hook_id = delivery.hook_id,
                        "emulator: webhook deliveries kept failing; hook deactivated"
                    );
                    if let Some(h) = self.lock().hooks.hooks.get_mut(&delivery.hook_id) {
                        h.is_active = false;
                    }
                    return;
                }
            }
        }
    }

    async fn post_callback(&self, delivery: &WebhookDelivery) -> Option<u16> {
        let mut request = self
            .inner
            .http
            .post(&delivery.destination)
            .header("content-type", "application/json")
            .body(delivery.body.clone());
        for (name, value) in &delivery.headers {
            request = request.header(name, value);
        }
        match request.send().await {
            Ok(r) => Some(r.status().as_u16()),
            Err(e) => {
                tracing::info!(error = %e.without_url(), "emulator: webhook delivery failed");
                None
            }
        }
    }
}

/// `store/customer/*` (and `store/*`) match every event below them.
fn scope_matches(hook: &str, event: &str) -> bool {
    match hook.strip_suffix('*') {
        Some(prefix) => event.starts_with(prefix),
        None => hook == event,
    }
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

fn invalid(key: &str, message: impl Into<String>) -> Response {
    let e = one_error(
        422,
        "The webhook is not valid",
        ERROR_TYPE_FULL,
        key,
        message.into(),
    );
    (StatusCode::UNPROCESSABLE_ENTITY, Json(e)).into_response()
}

fn hook_not_found() -> Response {
    let e = error(404, "Webhook not found", ERROR_TYPE_FULL, BTreeMap::new());
    (StatusCode::NOT_FOUND, Json(e)).into_response()
}

/// A 422 to answer: the field, and what is wrong with it.
type Refusal = (&'static str, String);

fn refusal(field: &'static str, message: impl Into<String>) -> Refusal {
    (field, message.into())
}

/// What a POST or PUT body sets, read from raw JSON (so a wrong type is a 422 naming the
/// field, not a serde message).
#[derive(Default)]
struct HookFields {
    scope: Option<String>,
    destination: Option<String>,
    is_active: Option<bool>,
    /// `Some(None)`: headers set to `null`.
    headers: Option<Option<BTreeMap<String, String>>>,
}

fn read_fields(body: &Bytes) -> Result<HookFields, Refusal> {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return Err(refusal("body", "the body must be a JSON object"));
    };
    let mut f = HookFields::default();
    if let Some(v) = map.get("scope") {
        match v.as_str() {
            Some(s) if s.starts_with("store/") => f.scope = Some(s.to_owned()),
            _ => {
                return Err(refusal(
                    "scope",
                    "scope must be a webhook scope such as store/customer/updated",
                ));
            }
        }
    }
    if let Some(v) = map.get("destination") {
        let Some(s) = v.as_str() else {
            return Err(refusal("destination", "destination must be a string"));
        };
        check_destination(s)?;
        f.destination = Some(s.to_owned());
    }
    if let Some(v) = map.get("is_active") {
        let Some(b) = v.as_bool() else {
            return Err(refusal("is_active", "is_active must be a boolean"));
        };
        f.is_active = Some(b);
    }
    match map.get("headers") {
        None => {}
        Some(Value::Null) => f.headers = Some(None),
        Some(Value::Object(h)) => {
            let mut headers = BTreeMap::new();
            for (k, v) in h {
                let Some(v) = v.as_str() else {
                    return Err(refusal("headers", format!("header {k:?} must be a string")));
                };
                headers.insert(k.clone(), v.to_owned());
            }
            f.headers = Some(Some(headers));
        }
        Some(_) => return Err(refusal("headers", "headers must be an object of strings")),
    }
    Ok(f)
}

/// https on 443 (CONTRACT.md §7), or loopback http for local tests (see the module doc).
fn check_destination(s: &str) -> Result<(), Refusal> {
    let Ok(url) = Url::parse(s) else {
        return Err(refusal("destination", "destination must be a URL"));
    };
    let loopback = match url.host() {
        Some(Host::Domain(d)) => d == "localhost",
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    let https_443 = url.scheme() == "https" && url.port_or_known_default() == Some(443);
    if https_443 || (loopback && matches!(url.scheme(), "http" | "https")) {
        Ok(())
    } else {
        Err(refusal(
            "destination",
            "destination must be https on port 443 (custom ports are not supported)",
        ))
    }
}

async fn list_hooks(State(emu): State<Emulator>, RawQuery(raw): RawQuery) -> Response {
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let wanted = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.as_str());
    let data: Vec<WebhookFull> = emu
        .hooks()
        .into_iter()
        .filter(|h| wanted("scope").is_none_or(|s| s == h.scope))
        .filter(|h| wanted("destination").is_none_or(|d| d == h.destination))
        .filter(|h| wanted("is_active").is_none_or(|a| a == h.is_active.to_string()))
        .collect();
    let n = data.len();
    answer(
        StatusCode::OK,
        json!({
            "data": data,
            "meta": { "pagination": {
                "total": n, "count": n, "per_page": n.max(1), "current_page": 1, "total_pages": 1,
                "links": { "current": "?page=1" }
            }},
        }),
    )
}

async fn create_hook(State(emu): State<Emulator>, body: Bytes) -> Response {
    let f = match read_fields(&body) {
        Ok(f) => f,
        Err((field, message)) => return invalid(field, message),
    };
    let (Some(scope), Some(destination)) = (f.scope, f.destination) else {
        return invalid("scope", "scope and destination are required");
    };
    let now = emu.now().unix_timestamp();
    let hook = {
        let mut st = emu.lock();
        st.hooks.next_id += 1;
        let hook = WebhookFull {
            id: st.hooks.next_id,
            client_id: emu.config().client_id.clone(),
            store_hash: emu.config().store_hash.clone(),
            scope,
            destination,
            // The default is not documented; a hook that is not active would be a surprise.
            is_active: f.is_active.unwrap_or(true),
            headers: f.headers.flatten(),
            created_at: now,
            updated_at: now,
        };
        st.hooks.hooks.insert(hook.id, hook.clone());
        hook
    };
    tracing::info!(hook_id = hook.id, scope = %hook.scope, "emulator api: hook created");
    answer(StatusCode::OK, json!({ "data": hook, "meta": {} }))
}

async fn get_hook(State(emu): State<Emulator>, Path((_, id)): Path<(String, i64)>) -> Response {
    match emu.lock().hooks.hooks.get(&id) {
        Some(h) => answer(StatusCode::OK, json!({ "data": h, "meta": {} })),
        None => hook_not_found(),
    }
}

async fn update_hook(
    State(emu): State<Emulator>,
    Path((_, id)): Path<(String, i64)>,
    body: Bytes,
) -> Response {
    let f = match read_fields(&body) {
        Ok(f) => f,
        Err((field, message)) => return invalid(field, message),
    };
    let now = emu.now().unix_timestamp();
    let mut st = emu.lock();
    let Some(h) = st.hooks.hooks.get_mut(&id) else {
        return hook_not_found();
    };
    if let Some(v) = f.scope {
        h.scope = v;
    }
    if let Some(v) = f.destination {
        h.destination = v;
    }
    if let Some(v) = f.is_active {
        h.is_active = v;
    }
    if let Some(v) = f.headers {
        h.headers = v;
    }
    h.updated_at = now;
    answer(StatusCode::OK, json!({ "data": h, "meta": {} }))
}

async fn delete_hook(State(emu): State<Emulator>, Path((_, id)): Path<(String, i64)>) -> Response {
    match emu.lock().hooks.hooks.remove(&id) {
        Some(h) => answer(StatusCode::OK, json!({ "data": h, "meta": {} })),
        None => hook_not_found(),
    }
}

/// For [`super::EmulatorConfig::webhook_retry_delays`]'s default.
pub(super) fn bigcommerce_retry_delays() -> Vec<Duration> {
    BIGCOMMERCE_RETRY_DELAYS
        .iter()
        .map(|s| Duration::from_secs(*s))
        .collect()
}

#[cfg(test)]
#[path = "hooks_tests.rs"]
mod tests;
