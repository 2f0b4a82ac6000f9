//! Webhooks (CONTRACT.md §7): `/v3/hooks` and the callbacks BigCommerce sends.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `webhook_Base` as `POST /v3/hooks` takes it. `headers` is a map header name → value that
/// BigCommerce sends with every callback: how a receiver tells its callbacks from forgeries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookPost {
    pub scope: String,
    pub destination: String,
    pub is_active: bool,
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
}

/// `PUT /v3/hooks/{id}`: every field optional.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WebhookPut {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_active: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
}

/// `webhook_Full`: a registered hook. `created_at`/`updated_at` are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookFull {
    pub id: i64,
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub store_hash: String,
    pub scope: String,
    pub destination: String,
    #[serde(default)]
    pub is_active: bool,
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub updated_at: i64,
}

/// `{data: webhook_Full, meta: {}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookResponse {
    pub data: WebhookFull,
}

/// `GET /v3/hooks`: `{data: [webhook_Full], meta}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookCollectionResponse {
    pub data: Vec<WebhookFull>,
}

/// The body of a callback. `hash` identifies the event: a retried or duplicated delivery
/// carries the same one. `store_id` is a string, `created_at` Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookCallback {
    pub producer: String,
    pub hash: String,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub store_id: String,
    pub scope: String,
    pub data: WebhookCustomerData,
}

/// `data` of a `store/customer/*` callback: an id-only notification. `store/customer/deleted`
/// carries `type` and `id` only; the others may add `origin_channel_id` and `channel_ids`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookCustomerData {
    #[serde(rename = "type")]
    pub data_type: String,
    pub id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_channel_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_ids: Option<Vec<i64>>,
}
