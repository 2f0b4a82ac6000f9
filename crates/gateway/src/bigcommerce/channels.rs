//! Whether each configured storefront URL is the storefront BigCommerce serves for its
//! channel: `GET /v3/channels` and `GET /v3/channels/{id}/site` (CONTRACT.md §4).
//!
//! A login token sent to the wrong host is a sign-in that fails on someone's storefront
//! (or one the merchant no longer uses), so `check`, the console's store check and saving
//! the store settings all ask here. Decisions worth knowing:
//! - A configured URL matches when it names the site's primary URL, its `url`, or a
//!   canonical URL: same scheme, host and port, paths equal but for a trailing `/`. The
//!   checkout URL does not count: BigCommerce signs shoppers in on the storefront.
//! - A channel without a site (404; headless storefronts have none) cannot be verified.
//!   That is said plainly, and it is not a reason to refuse a save.
//! - Without the Channel Settings read scope the channel list is skipped, not failed: the
//!   sites (Sites & Routes scope) still tell most of the story.

use reqwest::Method;
use url::Url;

use super::client::{ApiError, Client};
use super::diagnose::describe;
use super::wire::{Channel, ChannelCollectionResponse, Site, SiteResponse};
use crate::config::{ConfigError, StoreConfig};
use crate::diagnostics::{Check, CheckStatus};

pub const STOREFRONT_SITES: &str = "Storefront sites";

/// More channels than any store has; `GET /v3/channels` pages at this size.
const CHANNELS_PAGE_LIMIT: &str = "250";

impl Client {
    /// `GET /v3/channels`: the store's channels (channel 1 always among them). One page of
    /// 250: stores have a handful.
    pub async fn channels(&self) -> Result<Vec<Channel>, ApiError> {
        let r: ChannelCollectionResponse = self
            .send(
                Method::GET,
                "v3/channels",
                &[("limit", CHANNELS_PAGE_LIMIT)],
                None::<&()>,
            )
            .await?;
        Ok(r.data)
    }

    /// `GET /v3/channels/{id}/site`; `None` when the channel has no site (404).
    pub async fn channel_site(&self, channel_id: i64) -> Result<Option<Site>, ApiError> {
        let path = format!("v3/channels/{channel_id}/site");
        match self
            .send::<SiteResponse, ()>(Method::GET, &path, &[], None)
            .await
        {
            Ok(r) => Ok(Some(r.data)),
            Err(ApiError::Rejected { status: 404, .. } | ApiError::Status { status: 404 }) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// What BigCommerce says about one configured channel's storefront URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The URL is one of the site's storefront URLs; `site` is its primary URL.
    Matches { site: String },
    /// The channel's site is elsewhere.
    Differs { site: String },
    /// The channel has no site in BigCommerce.
    NoSite,
    /// BigCommerce has no such channel; `known` lists the ones it has.
    UnknownChannel { known: Vec<i64> },
    /// The site could not be read; the reason in the console's words.
    NotChecked(String),
}

/// One configured channel and its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSite {
    pub channel_id: i64,
    pub configured: Url,
    pub verdict: Verdict,
}

/// Each configured channel of `store` against BigCommerce. `Err` when the channels cannot
/// be listed at all (unreachable, bad token, …): nothing can be said then.
pub async fn compare(client: &Client, store: &StoreConfig) -> Result<Vec<ChannelSite>, ApiError> {
    let known: Option<Vec<i64>> = match client.channels().await {
        Ok(channels) => Some(channels.iter().map(|c| c.id).collect()),
        Err(ApiError::Forbidden) => None,
        Err(e) => return Err(e),
    };
    let mut out = Vec::with_capacity(store.channels.len());
    for channel in store.channels.values() {
        let verdict = match &known {
            Some(known) if !known.contains(&channel.id) => Verdict::UnknownChannel {
                known: known.clone(),
            },
            _ => match client.channel_site(channel.id).await {
                Ok(Some(site)) if serves(&site, &channel.storefront_url) => Verdict::Matches {
                    site: site.primary_url().to_owned(),
                },
                Ok(Some(site)) => Verdict::Differs {
                    site: site.primary_url().to_owned(),
                },
                Ok(None) => Verdict::NoSite,
                Err(ApiError::Forbidden) => Verdict::NotChecked(
                    "BigCommerce answered 403: the API account lacks the Sites & Routes read \
                     scope"
                        .to_owned(),
                ),
                Err(e) => Verdict::NotChecked(describe(&e, store)),
            },
        };
        out.push(ChannelSite {
            channel_id: channel.id,
            configured: channel.storefront_url.clone(),
            verdict,
        });
    }
    Ok(out)
}

/// Whether `configured` is one of `site`'s storefront URLs (see the module doc).
pub fn serves(site: &Site, configured: &Url) -> bool {
    let candidates = std::iter::once(site.url.as_str()).chain(
        site.urls
            .iter()
            .filter(|u| u.url_type == "primary" || u.url_type == "canonical")
            .map(|u| u.url.as_str()),
    );
    candidates
        .filter_map(|u| Url::parse(u.trim()).ok())
        .any(|u| same_storefront(&u, configured))
}

fn same_storefront(a: &Url, b: &Url) -> bool {
    // `Url` has already lowercased the host and dropped a default port.
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
        && a.path().trim_end_matches('/') == b.path().trim_end_matches('/')
}

impl ChannelSite {
    /// One sentence about this channel, for the check and the `check` command.
    pub fn message(&self) -> String {
        let (id, url) = (self.channel_id, &self.configured);
        match &self.verdict {
            Verdict::Matches { site } => {
                format!("channel {id}: {url} is BigCommerce's storefront for the channel ({site})")
            }
            Verdict::Differs { site } => format!(
                "channel {id}: the storefront URL is {url}, but BigCommerce serves channel {id} \
                 at {site} (GET /v3/channels/{id}/site); login tokens sent to {url} cannot sign \
                 shoppers in there. Set the storefront URL to {site}"
            ),
            Verdict::NoSite => format!(
                "channel {id}: BigCommerce has no site for the channel (GET \
                 /v3/channels/{id}/site answers 404), so {url} cannot be verified; a headless \
                 storefront has none. Make sure {url} is the storefront shoppers use"
            ),
            Verdict::UnknownChannel { known } => {
                let known: Vec<String> = known.iter().map(i64::to_string).collect();
                format!(
                    "channel {id}: the store has no channel {id} (GET /v3/channels lists {})",
                    known.join(", ")
                )
            }
            Verdict::NotChecked(why) => format!("channel {id}: not checked: {why}"),
        }
    }

    pub fn status(&self) -> CheckStatus {
        match self.verdict {
            Verdict::Matches { .. } => CheckStatus::Ok,
            Verdict::NoSite | Verdict::NotChecked(_) => CheckStatus::Warning,
            Verdict::Differs { .. } | Verdict::UnknownChannel { .. } => CheckStatus::Failed,
        }
    }

    /// Whether saving store settings with this channel must be refused: BigCommerce says
    /// for certain that the URL is not the channel's storefront.
    pub fn refuses_save(&self) -> bool {
        self.status() == CheckStatus::Failed
    }
}

/// The store check's line: every configured channel against its site.
pub async fn check(client: &Client, store: &StoreConfig) -> Check {
    match compare(client, store).await {
        Ok(sites) => {
            let status = sites
                .iter()
                .map(ChannelSite::status)
                .max_by_key(|s| match s {
                    CheckStatus::Ok => 0,
                    CheckStatus::Warning => 1,
                    CheckStatus::Failed => 2,
                })
                .unwrap_or(CheckStatus::Ok);
            let lines: Vec<String> = sites.iter().map(ChannelSite::message).collect();
            Check::new(STOREFRONT_SITES, status, lines.join("; "))
        }
        Err(e) => Check::new(
            STOREFRONT_SITES,
            CheckStatus::Warning,
            format!(
                "could not list the store's channels (GET /v3/channels): {}",
                describe(&e, store)
            ),
        ),
    }
}

/// Before store settings are saved: the channels whose storefront URL BigCommerce
/// contradicts, as errors on the form's channel lines (`order` = channel ids in the form's
/// order). Nothing when BigCommerce cannot be asked: the check after saving says why.
pub async fn refusals(client: &Client, store: &StoreConfig, order: &[i64]) -> Vec<ConfigError> {
    let sites = match compare(client, store).await {
        Ok(sites) => sites,
        Err(e) => {
            tracing::info!(error = %e, "storefront URLs not verified before saving");
            return Vec::new();
        }
    };
    sites
        .iter()
        .filter(|s| s.refuses_save())
        .map(|s| {
            let index = order.iter().position(|id| *id == s.channel_id).unwrap_or(0);
            ConfigError::Invalid {
                key: format!("store.channels[{index}].storefront_url"),
                message: s.message(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bigcommerce::wire::SiteUrl;

    fn site(url: &str, urls: &[(&str, &str)]) -> Site {
        Site {
            id: 1,
            url: url.into(),
            channel_id: 1,
            urls: urls
                .iter()
                .map(|(u, t)| SiteUrl {
                    url: (*u).into(),
                    url_type: (*t).into(),
                    created_at: String::new(),
                    updated_at: String::new(),
                })
                .collect(),
            ssl_status: String::new(),
            is_checkout_url_customized: false,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn the_same_storefront_however_written() {
        let s = site("https://Shop.Example.com/", &[]);
        assert!(serves(&s, &url("https://shop.example.com")));
        assert!(serves(&s, &url("https://shop.example.com:443/")));
        assert!(!serves(&s, &url("http://shop.example.com/")), "scheme");
        assert!(
            !serves(&s, &url("https://www.shop.example.com/")),
            "no www folding"
        );
        assert!(!serves(&s, &url("https://shop.example.com:8443/")), "port");
        assert!(!serves(&s, &url("https://shop.example.com/b2b")), "path");
    }

    #[test]
    fn primary_and_canonical_urls_count_checkout_does_not() {
        let s = site(
            "https://store-abc.mybigcommerce.com/",
            &[
                ("https://shop.example.com/", "primary"),
                ("https://example.com/", "canonical"),
                ("https://pay.example.com/", "checkout"),
            ],
        );
        assert_eq!(s.primary_url(), "https://shop.example.com/");
        assert!(serves(&s, &url("https://shop.example.com/")));
        assert!(serves(&s, &url("https://example.com")));
        assert!(serves(&s, &url("https://store-abc.mybigcommerce.com")));
        assert!(!serves(&s, &url("https://pay.example.com/")));
    }

    #[test]
    fn verdicts_decide_status_and_saving() {
        let at = |verdict| ChannelSite {
            channel_id: 2,
            configured: url("https://b2b.example.com/"),
            verdict,
        };
        let differs = at(Verdict::Differs {
            site: "https://wholesale.example.com/".into(),
        });
        assert_eq!(differs.status(), CheckStatus::Failed);
        assert!(differs.refuses_save());
        assert!(
            differs
                .message()
                .contains("Set the storefront URL to https://wholesale.example.com/"),
            "{}",
            differs.message()
        );
        let none = at(Verdict::NoSite);
        assert_eq!(none.status(), CheckStatus::Warning);
        assert!(!none.refuses_save());
        assert!(none.message().contains("no site"), "{}", none.message());
        let unknown = at(Verdict::UnknownChannel { known: vec![1] });
        assert!(unknown.refuses_save());
        assert!(unknown.message().contains("GET /v3/channels lists 1"));
        assert!(!at(Verdict::NotChecked("x".into())).refuses_save());
    }
}
