//! Channels and their sites (CONTRACT.md §4): which storefronts a store has, and the URL
//! each one is served on.

use serde::{Deserialize, Serialize};

use crate::CollectionMeta;

/// One item of `GET /v3/channels` (`Channel`; CH:3126-3170). Only what the gateway reads is
/// required; the rest is kept so the emulator can answer with the documented shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Channel {
    pub id: i64,
    pub name: String,
    /// `pos`, `marketplace`, `storefront` or `marketing`.
    #[serde(default, rename = "type")]
    pub channel_type: String,
    #[serde(default)]
    pub platform: String,
    /// `active`, `prelaunch`, `inactive`, `connected`, `disconnected`, `archived`,
    /// `deleted` or `terminated`.
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub is_listable_from_ui: bool,
    #[serde(default)]
    pub is_visible: bool,
    /// Deprecated: derived from `status` (CH:3444-3476).
    #[serde(default)]
    pub is_enabled: bool,
    #[serde(default)]
    pub external_id: String,
    #[serde(default)]
    pub date_created: String,
    #[serde(default)]
    pub date_modified: String,
    #[serde(default)]
    pub icon_url: String,
}

/// `GET /v3/channels`: `{data, meta}` (`MetaWithFullPagination`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelCollectionResponse {
    pub data: Vec<Channel>,
    #[serde(default)]
    pub meta: CollectionMeta,
}

/// BigCommerce `Site` (CH:3690-3726): the storefront address of one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Site {
    pub id: i64,
    /// Fully qualified, scheme included (`https://kittens.mybigcommerce.com/`), exactly as
    /// saved: no `www` normalisation.
    pub url: String,
    pub channel_id: i64,
    #[serde(default)]
    pub urls: Vec<SiteUrl>,
    #[serde(default)]
    pub ssl_status: String,
    #[serde(default)]
    pub is_checkout_url_customized: bool,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub updated_at: String,
}

/// One of a site's `urls` (CH:3727-3749).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteUrl {
    pub url: String,
    /// `primary`, `canonical` or `checkout`.
    #[serde(rename = "type")]
    pub url_type: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub updated_at: String,
}

/// `GET /v3/channels/{channel_id}/site`: `{data: Site, meta: {}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteResponse {
    pub data: Site,
}

impl Site {
    /// The storefront base: `urls[type=primary].url` when present, else `url` (CONTRACT.md §4).
    pub fn primary_url(&self) -> &str {
        self.urls
            .iter()
            .find(|u| u.url_type == "primary")
            .map_or(self.url.as_str(), |u| u.url.as_str())
    }
}
