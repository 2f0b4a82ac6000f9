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
///
/// Read leniently: unknown fields are ignored (the API adds fields, and `include=` adds
/// more), and `null` in a string or number field reads as empty/0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerFull {
    pub id: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub email: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub first_name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub last_name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub company: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub phone: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub notes: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub registration_ip_address: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub customer_group_id: i64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub date_created: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub date_modified: String,
    #[serde(default)]
    pub origin_channel_id: Option<i64>,
    /// `None` (JSON `null`) is a global account; otherwise the channels it may sign in to.
    #[serde(default)]
    pub channel_ids: Option<Vec<i64>>,
    #[serde(default, deserialize_with = "lenient")]
    pub authentication: Option<CustomerAuthentication>,
}

/// The `authentication` object of `customer_Full`; `new_password` is write-only and never returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CustomerAuthentication {
    #[serde(default, deserialize_with = "null_as_default")]
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
    #[serde(default, deserialize_with = "null_as_default")]
    pub data: Vec<CustomerFull>,
    /// Nothing the gateway does depends on `meta`, so a shape we do not expect (`[]`,
    /// `null`, a block with other fields) reads as empty rather than failing the call.
    #[serde(default, deserialize_with = "lenient")]
    pub meta: CollectionMeta,
}

/// A value that does not read as `T` reads as `T::default()`: for blocks nothing depends on.
pub fn lenient<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + serde::de::DeserializeOwned,
{
    let value = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(value).unwrap_or_default())
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

/// BigCommerce `ErrorResponse` (POST/PUT 422) and `Error` (GET/DELETE 422).
///
/// `errors` stays raw JSON: the spec says "map of field path to message", but the only
/// documented create failure is `{".customer_create": "Error creating customers"}` and the
/// `Error` schema types it as a bare `object` (CONTRACT.md §2.5), so a real store may send
/// any shape (arrays, nested objects, `null`). Nothing may depend on its keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorResponse {
    #[serde(default)]
    pub status: u16,
    #[serde(default, deserialize_with = "null_as_default")]
    pub title: String,
    #[serde(default, rename = "type", deserialize_with = "null_as_default")]
    pub error_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    #[serde(default)]
    pub errors: serde_json::Value,
}

/// `null` read as the type's default: BigCommerce sends `null` for empty strings in places
/// the spec types as `string` (CONTRACT.md §2.1 leaves absent values unconfirmed).
pub fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
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
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub is_default: bool,
    #[serde(default, deserialize_with = "lenient")]
    pub category_access: Option<CategoryAccess>,
    /// Kept as raw JSON: the gateway only reads `id`/`name`, and the rule objects vary by `type`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub discount_rules: Vec<serde_json::Value>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub date_created: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub date_modified: String,
    #[serde(default, deserialize_with = "null_as_default")]
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What a real store may send beside the spec: `null` for empty strings, fields we do
    /// not know, and a `meta` of another shape. None of it may fail a sign-in.
    #[test]
    fn customers_read_leniently() {
        let body = serde_json::json!({
            "data": [{
                "id": 7, "email": "ana@example.com", "first_name": null, "last_name": "Lim",
                "company": null, "phone": null, "notes": null, "registration_ip_address": null,
                "customer_group_id": null, "date_created": null, "date_modified": null,
                "origin_channel_id": null, "channel_ids": null, "authentication": null,
                "shopper_profile_id": "abc", "segment_ids": ["x"], "form_fields": [{"name": "n"}],
                "store_credit_amounts": [{"amount": 1.5}]
            }],
            "meta": {"pagination": {"total": "many"}, "novelty": true}
        });
        let r: CustomerCollectionResponse = serde_json::from_value(body).unwrap();
        let c = &r.data[0];
        assert_eq!(
            (c.id, c.email.as_str(), c.first_name.as_str()),
            (7, "ana@example.com", "")
        );
        assert_eq!(c.customer_group_id, 0);
        assert_eq!(r.meta, CollectionMeta::default());
        for meta in [
            serde_json::json!([]),
            serde_json::json!(null),
            serde_json::json!("x"),
        ] {
            let r: CustomerCollectionResponse =
                serde_json::from_value(serde_json::json!({"data": [], "meta": meta})).unwrap();
            assert!(r.data.is_empty());
        }
    }

    /// CONTRACT.md §2.5: `errors` is typed `object` in one schema and a string map in the
    /// other; a store may send an array or nothing.
    #[test]
    fn errors_of_any_shape_are_read() {
        for errors in [
            serde_json::json!({".customer_create": "Error creating customers"}),
            serde_json::json!({"0": {"email": ["taken"]}}),
            serde_json::json!(["taken"]),
            serde_json::json!(null),
        ] {
            let body = serde_json::json!({"status": 422, "title": null, "errors": errors.clone()});
            let e: ErrorResponse = serde_json::from_value(body).unwrap();
            assert_eq!((e.status, e.title.as_str()), (422, ""));
            assert_eq!(e.errors, errors);
        }
    }
}
