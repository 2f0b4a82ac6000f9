//! `GET /v3/channels` and `GET /v3/channels/{channel_id}/site` (CONTRACT.md §4, §8 item 14).
//!
//! A channel's site is the URL its storefront is served on. Storefronts of the emulator
//! listen on ports the test or demo picks, so sites are set at run time
//! ([`Emulator::set_site`]); a channel without one answers 404, as a headless channel does.

use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use url::Url;

use super::Emulator;
use super::state::{ERROR_TYPE_FULL, error, rfc3339};
use bigcommerce_wire::{
    Channel, ChannelCollectionResponse, CollectionMeta, Pagination, PaginationLinks, Site, SiteUrl,
};

pub(super) fn routes() -> Router<Emulator> {
    Router::new()
        .route("/stores/{store_hash}/v3/channels", get(list_channels))
        .route(
            "/stores/{store_hash}/v3/channels/{channel_id}/site",
            get(channel_site),
        )
}

impl Emulator {
    /// Sets (or with `None` removes) the site of `channel_id`: the URL BigCommerce would
    /// report for its storefront.
    pub fn set_site(&self, channel_id: i64, url: Option<Url>) {
        let mut st = self.lock();
        match url {
            Some(url) => st.sites.insert(channel_id, url),
            None => st.sites.remove(&channel_id),
        };
    }

    /// The site of `channel_id`, as `GET /v3/channels/{id}/site` answers it.
    pub fn site(&self, channel_id: i64) -> Option<Site> {
        let url = self.lock().sites.get(&channel_id).cloned()?;
        let created = rfc3339(self.now());
        let url = url.to_string();
        Some(Site {
            // One site per channel here: the ids may as well agree.
            id: channel_id,
            url: url.clone(),
            channel_id,
            urls: vec![SiteUrl {
                url,
                url_type: "primary".to_owned(),
                created_at: created.clone(),
                updated_at: created.clone(),
            }],
            ssl_status: "shared".to_owned(),
            is_checkout_url_customized: false,
            created_at: created.clone(),
            updated_at: created,
        })
    }
}

pub(super) type Sites = BTreeMap<i64, Url>;

async fn list_channels(State(emu): State<Emulator>) -> Json<ChannelCollectionResponse> {
    let now = rfc3339(emu.now());
    let data: Vec<Channel> = emu
        .config()
        .channels
        .iter()
        .map(|c| Channel {
            id: c.id,
            name: c.name.clone(),
            channel_type: "storefront".to_owned(),
            platform: "bigcommerce".to_owned(),
            status: "active".to_owned(),
            is_listable_from_ui: true,
            is_visible: true,
            is_enabled: true,
            external_id: String::new(),
            date_created: now.clone(),
            date_modified: now.clone(),
            icon_url: String::new(),
        })
        .collect();
    let n = data.len() as i64;
    Json(ChannelCollectionResponse {
        data,
        meta: CollectionMeta {
            pagination: Some(Pagination {
                total: n,
                count: n,
                per_page: 250,
                current_page: 1,
                total_pages: 1,
                links: PaginationLinks {
                    previous: None,
                    current: Some("?page=1&limit=250".to_owned()),
                    next: None,
                },
            }),
            cursor_pagination: None,
        },
    })
}

/// `{data: Site, meta: {}}`; 404 for an unknown channel and for a channel without a site
/// (that body is unconfirmed).
async fn channel_site(
    State(emu): State<Emulator>,
    Path((_, channel_id)): Path<(String, i64)>,
) -> Response {
    let site = emu.channel(channel_id).and_then(|_| emu.site(channel_id));
    match site {
        Some(site) => Json(serde_json::json!({ "data": site, "meta": {} })).into_response(),
        None => {
            let e = error(
                404,
                "The site for this channel was not found.",
                ERROR_TYPE_FULL,
                BTreeMap::new(),
            );
            (StatusCode::NOT_FOUND, Json(e)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use serde_json::Value;
    use tower::ServiceExt as _;

    use super::*;
    use crate::bigcommerce::EmulatorConfig;

    async fn get(emu: &Emulator, path: &str) -> (StatusCode, Value) {
        let req = Request::get(format!("/stores/abc123/{path}"))
            .header("X-Auth-Token", "token")
            .body(Body::empty())
            .unwrap();
        let resp = emu.api_router().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn channels_and_their_sites() {
        let emu = Emulator::new(EmulatorConfig::new("abc123", "token", "id", "secret"));
        let (status, list) = get(&emu, "v3/channels").await;
        assert_eq!(status, StatusCode::OK);
        let channels: ChannelCollectionResponse = serde_json::from_value(list.clone()).unwrap();
        assert_eq!(channels.data.len(), 1, "{list}");
        assert_eq!(channels.data[0].id, 1);
        assert_eq!(channels.data[0].channel_type, "storefront");
        assert_eq!(list["meta"]["pagination"]["total"], 1);

        // No site yet: 404, as for a headless channel.
        let (status, _) = get(&emu, "v3/channels/1/site").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        emu.set_site(1, Some(Url::parse("https://shop.example.com/").unwrap()));
        let (status, body) = get(&emu, "v3/channels/1/site").await;
        assert_eq!(status, StatusCode::OK);
        let site: Site = serde_json::from_value(body["data"].clone()).unwrap();
        assert_eq!(site.channel_id, 1);
        assert_eq!(site.url, "https://shop.example.com/");
        assert_eq!(site.primary_url(), "https://shop.example.com/");
        assert_eq!(body["meta"], serde_json::json!({}));
        // A channel the store does not have has no site either.
        let (status, _) = get(&emu, "v3/channels/7/site").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        emu.set_site(1, None);
        let (status, _) = get(&emu, "v3/channels/1/site").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
