//! BigCommerce wire types, named after the published OpenAPI schemas
//! (`shared/bigcommerce/CONTRACT.md`). The REST client and the sandbox emulator share
//! these types and nothing else, so one cannot hide a bug in the other.
//!
//! JSON field names are used verbatim (no `rename_all`): a grep for a spec name finds
//! the Rust field.

use serde::{Deserialize, Serialize};

pub mod channels;
pub use channels::{Channel, ChannelCollectionResponse, Site, SiteResponse, SiteUrl};
pub mod hooks;
pub use hooks::{
    WebhookCallback, WebhookCollectionResponse, WebhookCustomerData, WebhookFull, WebhookPost,
    WebhookPut, WebhookResponse,
};

/// BigCommerce `customer_Full` (CONTRACT.md §2.2): one customer as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerFull {
    pub id: i64,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    #[serde(default)]
    pub company: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub notes: String,
    #[serde(default)]
    pub registration_ip_address: String,
    #[serde(default)]
    pub customer_group_id: i64,
    #[serde(default)]
    pub date_created: String,
    #[serde(default)]
    pub date_modified: String,
    #[serde(default)]
    pub origin_channel_id: Option<i64>,
    /// `None` (JSON `null`) is a global account; otherwise the channels it may sign in to.
    #[serde(default)]
    pub channel_ids: Option<Vec<i64>>,
    #[serde(default)]
    pub authentication: Option<CustomerAuthentication>,
}

/// The `authentication` object of `customer_Full`; `new_password` is write-only and never returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CustomerAuthentication {
    #[serde(default)]
    pub force_password_reset: bool,
}

/// BigCommerce `customer_Post`: one item of the `POST /v3/customers` array body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerPost {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_group_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_channel_id: Option<i64>,
    /// `None` = global account. BigCommerce rejects `[]`, so an empty list must never be sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_ids: Option<Vec<i64>>,
    /// Whether BigCommerce sends its "account created" email. We always send it explicitly
    /// because the default is not documented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_account_created_notification: Option<bool>,
}

/// BigCommerce `customer_Put`: one item of the `PUT /v3/customers` array body; `id` is required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CustomerPut {
    pub id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_group_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_ids: Option<Vec<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<CustomerAuthentication>,
}

/// `GetCustomerCollectionResponse` / `CustomerCollectionResponse`: `{data, meta}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerCollectionResponse {
    pub data: Vec<CustomerFull>,
    #[serde(default)]
    pub meta: CollectionMeta,
}

/// `meta` of a collection response; both blocks are optional (CONTRACT.md §2.1: which
/// appear depends on the page and on cursor parameters; POST/PUT return `{}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CollectionMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Pagination>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor_pagination: Option<CursorPagination>,
}

/// `meta.pagination` (offset pagination).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Pagination {
    pub total: i64,
    pub count: i64,
    pub per_page: i64,
    pub current_page: i64,
    pub total_pages: i64,
    #[serde(default)]
    pub links: PaginationLinks,
}

/// `links` of a pagination block. Absent links may be `null`, omitted or `""` (unconfirmed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct PaginationLinks {
    #[serde(default)]
    pub previous: Option<String>,
    #[serde(default)]
    pub current: Option<String>,
    #[serde(default)]
    pub next: Option<String>,
}

/// `meta.cursor_pagination`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CursorPagination {
    pub count: i64,
    pub per_page: i64,
    #[serde(default)]
    pub start_cursor: Option<String>,
    #[serde(default)]
    pub end_cursor: Option<String>,
    #[serde(default)]
    pub links: PaginationLinks,
}

/// BigCommerce `ErrorResponse` (POST/PUT 422) and `Error` (GET/DELETE 422): `errors` is a
/// map of field path to message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub status: u16,
    pub title: String,
    #[serde(default, rename = "type")]
    pub error_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    #[serde(default)]
    pub errors: std::collections::BTreeMap<String, String>,
}

/// `GET /v3/customers/settings/channels/{channel_id}` (`CustomerChannelSettingsObject`;
/// CONTRACT.md §2.2). `null` means the channel does not override the store-wide default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerChannelSettings {
    #[serde(default)]
    pub allow_global_logins: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CustomerChannelSettingsResponse {
    pub data: CustomerChannelSettings,
}

/// `GET /v2/time` response (Store Information V2): BigCommerce's clock in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Time {
    pub time: i64,
}

/// Claims of a `customer_login` JWT (CONTRACT.md §5.2). HS256 with the API account's
/// client secret; `iat` is valid for about 30 seconds and the token works once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerLoginClaims {
    /// The API account's client id.
    pub iss: String,
    pub iat: i64,
    pub jti: String,
    /// Always `customer_login`.
    pub operation: String,
    pub store_hash: String,
    pub customer_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<i64>,
    /// A relative path on the storefront; BigCommerce's default is `/account.php`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_ip: Option<String>,
}

/// Rate-limit response headers (CONTRACT.md §6). Names are case-insensitive on the wire.
pub mod rate_limit_headers {
    pub const TIME_WINDOW_MS: &str = "x-rate-limit-time-window-ms";
    pub const TIME_RESET_MS: &str = "x-rate-limit-time-reset-ms";
    pub const REQUESTS_QUOTA: &str = "x-rate-limit-requests-quota";
    pub const REQUESTS_LEFT: &str = "x-rate-limit-requests-left";
    pub const RETRY_AFTER: &str = "x-retry-after";
}

/// BigCommerce `customerGroup_Full` (CONTRACT.md §3.1): one item of the bare array that
/// `GET /v2/customer_groups` returns. Dates use the V2 format `2023-07-17 06:30:41`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerGroupFull {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub is_default: bool,
    #[serde(default)]
    pub category_access: Option<CategoryAccess>,
    /// Kept as raw JSON: the gateway only reads `id`/`name`, and the rule objects vary by `type`.
    #[serde(default)]
    pub discount_rules: Vec<serde_json::Value>,
    #[serde(default)]
    pub date_created: String,
    #[serde(default)]
    pub date_modified: String,
    #[serde(default)]
    pub is_group_for_guests: bool,
}

/// `category_access` of `customerGroup_Full`: `type` is `all`, `specific` or `none`;
/// `categories` only appears with `specific`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryAccess {
    pub r#type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<i64>>,
}
