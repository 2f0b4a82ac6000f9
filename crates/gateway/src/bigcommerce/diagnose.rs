//! The admin console's store-settings "Check": a handful of calls that tell a merchant, in
//! words they can act on, whether the configured BigCommerce API account works for SSO.
//! Domain code only: the console renders the `Vec<Check>` however it likes.
//!
//! Decisions worth knowing:
//! - The clock check fails at 25 s. BigCommerce accepts a login token for 30 s only
//!   (CONTRACT.md §5.2); the gateway adds the offset it measures with `GET /v2/time` to `iat`,
//!   so sign-ins still work, but at 25 s that correction is all that keeps them working: a
//!   restart while `/v2/time` cannot be read, or drift between measurements, breaks every
//!   sign-in. The same host clock also checks the IdPs' ID tokens (`clock_leeway_secs`).
//! - The Customers Login scope cannot be verified by any API call, so that line is always
//!   `Ok` with an explanation of where a problem would show. A permanent `Warning` on a
//!   healthy store would teach merchants to ignore warnings.
//! - When the Customers API check shows the settings cannot work at all (unreachable, bad
//!   token, unknown store), the clock and group checks are not run: they would repeat the
//!   same failure, and against a black-holed host each would wait for its own timeout. They
//!   are listed as `Warning` "not checked" so the console always shows the same lines.
//! - Whether each storefront URL is the channel's site in BigCommerce is
//!   [`super::channels`]'s business; it is one line here.

use std::time::Duration;

use url::Url;

pub use super::channels::STOREFRONT_SITES;
use super::client::{ApiError, Client};
use super::wire::CustomerGroupFull;
use crate::config::{ChannelAccess, Connection, StoreConfig, is_loopback};

pub const CUSTOMERS_API: &str = "Customers API";
pub const CLOCK: &str = "Clock";
pub const CUSTOMER_GROUPS: &str = "Customer groups";
pub const STOREFRONT_URLS: &str = "Storefront URLs";
pub const LOGIN_SCOPE: &str = "Customers Login scope";
pub const GLOBAL_LOGINS: &str = "Global logins";

/// Below this the offset is ordinary NTP jitter plus our ±1 s measurement error.
const CLOCK_WARNING_SECS: i64 = 5;
/// Within 5 s of BigCommerce's 30-second `iat` window (CONTRACT.md §5.2): see the module doc.
const CLOCK_FAILED_SECS: i64 = 25;
/// How many group names the message lists before summarising the rest.
const GROUP_NAMES_SHOWN: usize = 20;

pub use crate::diagnostics::{Check, CheckStatus};

/// Runs every check against the store `client` was built for. `store` must be the
/// configuration `client` was built from; it supplies the names and URLs the messages quote.
#[tracing::instrument(skip_all, fields(store_hash = %store.store_hash))]
pub async fn diagnose(
    client: &Client,
    store: &StoreConfig,
    connections: &[Connection],
) -> Vec<Check> {
    let (api, usable) = check_customers_api(client, store).await;
    let (clock, groups, sites) = if usable {
        tokio::join!(
            check_clock(client, store),
            check_customer_groups(client, store),
            super::channels::check(client, store)
        )
    } else {
        let skipped = |name| {
            Check::new(
                name,
                CheckStatus::Warning,
                format!("not checked: the {CUSTOMERS_API} check failed, fix that first"),
            )
        };
        (
            skipped(CLOCK),
            skipped(CUSTOMER_GROUPS),
            skipped(STOREFRONT_SITES),
        )
    };
    let mut checks = vec![
        api,
        clock,
        groups,
        check_storefront_urls(store),
        sites,
        login_scope_note(),
    ];
    if usable && let Some(global) = check_global_logins(client, store, connections).await {
        checks.push(global);
    }
    let count = |s| checks.iter().filter(|c| c.status == s).count();
    tracing::info!(
        failed = count(CheckStatus::Failed),
        warnings = count(CheckStatus::Warning),
        "BigCommerce store settings checked"
    );
    checks
}

/// (a) `GET /v3/customers?limit=1`. The second value says whether the API is usable at all,
/// i.e. whether the other API checks are worth running.
async fn check_customers_api(client: &Client, store: &StoreConfig) -> (Check, bool) {
    match client.probe_customers().await {
        Ok(()) => (
            Check::new(
                CUSTOMERS_API,
                CheckStatus::Ok,
                format!(
                    "the access token can read customers of store {}. Creating customers \
                     also needs the Customers scope set to modify, which a read cannot prove; \
                     the first sign-in of a new shopper will show it",
                    store.store_hash
                ),
            ),
            true,
        ),
        Err(ApiError::Forbidden) => (
            Check::new(
                CUSTOMERS_API,
                CheckStatus::Failed,
                "BigCommerce answered 403: the API account lacks the Customers scope. \
                 Edit the store-level API account and set Customers to modify",
            ),
            // The token itself is valid: the clock may still be readable.
            true,
        ),
        Err(e) => {
            let usable = !matches!(
                e,
                ApiError::Transport(_)
                    | ApiError::Timeout(_)
                    | ApiError::Unauthorized
                    | ApiError::Decode(_)
            ) && !is_not_found(&e);
            (
                Check::new(CUSTOMERS_API, status_of(&e), describe(&e, store)),
                usable,
            )
        }
    }
}

/// (b) BigCommerce's clock against ours, measured the way the gateway measures it for `iat`.
async fn check_clock(client: &Client, store: &StoreConfig) -> Check {
    let before = unix_seconds_f64();
    let result = client.time().await;
    let after = unix_seconds_f64();
    match result {
        Ok(bc_time) => {
            // `/v2/time` is whole seconds, truncated: BigCommerce's true time lies in
            // [bc_time, bc_time + 1), so its midpoint against our request's midpoint gives the
            // offset to within half a second instead of a whole one.
            let offset = (bc_time as f64 + 0.5 - (before + after) / 2.0).round() as i64;
            clock_verdict(offset, store.clock_check_interval)
        }
        Err(e) => Check::new(
            CLOCK,
            CheckStatus::Warning,
            format!(
                "could not read BigCommerce's clock (GET /v2/time): {}. Without it the \
                 gateway cannot correct login tokens' iat, so this host's clock must stay \
                 within 30 s of BigCommerce's",
                describe(&e, store)
            ),
        ),
    }
}

/// The clock verdict for `offset` = BigCommerce's time minus ours, in seconds.
fn clock_verdict(offset: i64, check_interval: Duration) -> Check {
    let n = offset.abs();
    let which_way = if offset > 0 { "behind" } else { "ahead of" };
    let measured = format!("this host's clock is {n} s {which_way} BigCommerce's (GET /v2/time)");
    let correction = format!(
        "the gateway adds the offset it measures to login tokens' iat (re-measured every {} s), \
         because BigCommerce accepts a token for 30 s only",
        check_interval.as_secs()
    );
    if n < CLOCK_WARNING_SECS {
        let found = if n == 0 {
            "this host's clock matches BigCommerce's (GET /v2/time) to the second".to_owned()
        } else {
            measured
        };
        Check::new(CLOCK, CheckStatus::Ok, format!("{found}; {correction}"))
    } else if n < CLOCK_FAILED_SECS {
        Check::new(
            CLOCK,
            CheckStatus::Warning,
            format!(
                "{measured}. Login tokens are corrected by the gateway ({correction}), so \
                 sign-ins work, but fix NTP on this host: the correction is lost whenever \
                 GET /v2/time cannot be read"
            ),
        )
    } else {
        Check::new(
            CLOCK,
            CheckStatus::Failed,
            format!(
                "{measured}. Sign-ins work only while the gateway's correction holds \
                 ({correction}): after a restart while GET /v2/time cannot be read, or if the \
                 clock drifts between measurements, BigCommerce refuses every login token. \
                 ID tokens from identity providers are checked against this clock too, within \
                 each connection's clock_leeway_secs (default 60 s). Fix NTP on this host"
            ),
        )
    }
}

/// (c) `GET /v2/customer_groups`: optional for sign-in, so nothing here is `Failed`.
async fn check_customer_groups(client: &Client, store: &StoreConfig) -> Check {
    match client.customer_groups().await {
        Ok(groups) if groups.is_empty() => Check::new(
            CUSTOMER_GROUPS,
            CheckStatus::Ok,
            "no customer groups (the store has none, or its plan does not include them); \
             new customers are created without a group",
        ),
        Ok(groups) => Check::new(CUSTOMER_GROUPS, CheckStatus::Ok, list_groups(&groups)),
        Err(ApiError::Forbidden) => Check::new(
            CUSTOMER_GROUPS,
            CheckStatus::Warning,
            "Customer groups need the Customers read scope; group mapping will not be available",
        ),
        Err(e) => Check::new(
            CUSTOMER_GROUPS,
            CheckStatus::Warning,
            format!(
                "could not list customer groups (GET /v2/customer_groups): {}",
                describe(&e, store)
            ),
        ),
    }
}

fn list_groups(groups: &[CustomerGroupFull]) -> String {
    let shown: Vec<String> = groups
        .iter()
        .take(GROUP_NAMES_SHOWN)
        .map(|g| {
            let default = if g.is_default { ", default" } else { "" };
            format!("{} (id {}{default})", g.name, g.id)
        })
        .collect();
    let more = groups.len().saturating_sub(GROUP_NAMES_SHOWN);
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    let noun = if groups.len() == 1 { "group" } else { "groups" };
    format!(
        "{} customer {noun}: {}{tail}",
        groups.len(),
        shown.join(", ")
    )
}

/// (d) Each storefront receives the login token in its URL (`/login/token/{jwt}`) and sets
/// the shopper's session cookie: over plain http both travel in clear.
fn check_storefront_urls(store: &StoreConfig) -> Check {
    if store.channels.is_empty() {
        return Check::new(
            STOREFRONT_URLS,
            CheckStatus::Failed,
            "no storefront channel is configured ([[store.channels]]): signed-in shoppers \
             have nowhere to go",
        );
    }
    let mut insecure = Vec::new();
    let mut listed = Vec::new();
    for channel in store.channels.values() {
        let url = &channel.storefront_url;
        listed.push(format!("channel {}: {url}", channel.id));
        let secure = url.scheme() == "https" || (url.scheme() == "http" && is_loopback(url));
        if !secure {
            insecure.push(format!("channel {} ({url})", channel.id));
        }
    }
    if insecure.is_empty() {
        Check::new(STOREFRONT_URLS, CheckStatus::Ok, listed.join("; "))
    } else {
        Check::new(
            STOREFRONT_URLS,
            CheckStatus::Warning,
            format!(
                "not https: {}. The login token travels in the storefront URL and the session \
                 cookie comes back from it, both in clear over http; use the https address",
                insecure.join(", ")
            ),
        )
    }
}

/// (f) Connections with `channel_access = "global"` create customers without
/// `channel_ids`, who can sign in only on channels that allow global logins. `None` when no
/// connection creates global customers.
async fn check_global_logins(
    client: &Client,
    store: &StoreConfig,
    connections: &[Connection],
) -> Option<Check> {
    let global: Vec<&Connection> = connections
        .iter()
        .filter(|c| c.channel_access == ChannelAccess::Global)
        .collect();
    if global.is_empty() {
        return None;
    }
    let mut closed = Vec::new();
    let mut unknown = Vec::new();
    for channel in store.channels.keys() {
        let users: Vec<&str> = global
            .iter()
            .filter(|c| c.allows_channel(*channel))
            .map(|c| c.id.as_str())
            .collect();
        if users.is_empty() {
            continue;
        }
        match client.channel_allows_global_logins(*channel).await {
            Ok(Some(false)) => closed.push(format!("channel {channel} ({})", users.join(", "))),
            Ok(_) => {}
            Err(e) => unknown.push(format!("channel {channel}: {}", describe(&e, store))),
        }
    }
    Some(if !closed.is_empty() {
        Check::new(
            GLOBAL_LOGINS,
            CheckStatus::Failed,
            format!(
                "these channels do not allow global logins, yet connections create customers \
                 for all channels there: {}. Their new shoppers are refused with \
                 global_logins_not_allowed; allow global logins for the channel in BigCommerce \
                 or set the connection's channel access to \"channel\"",
                closed.join("; ")
            ),
        )
    } else if !unknown.is_empty() {
        Check::new(
            GLOBAL_LOGINS,
            CheckStatus::Warning,
            format!(
                "could not read the channels' customer settings: {}",
                unknown.join("; ")
            ),
        )
    } else {
        Check::new(
            GLOBAL_LOGINS,
            CheckStatus::Ok,
            "every channel the global connections sign in to allows global logins",
        )
    })
}

/// (e) See the module doc for why this is `Ok`.
fn login_scope_note() -> Check {
    Check::new(
        LOGIN_SCOPE,
        CheckStatus::Ok,
        "cannot be verified through the API: no BigCommerce call tells whether the API account \
         has the Customers Login scope, or whether client_id and client_secret belong to it. \
         The first sign-in shows it: if either is wrong, BigCommerce refuses the login token \
         and the shopper lands on the storefront's /login.php with a sign-in error",
    )
}

fn is_not_found(e: &ApiError) -> bool {
    matches!(
        e,
        ApiError::Rejected { status: 404, .. } | ApiError::Status { status: 404 }
    )
}

/// A rate limit passes on its own; everything else needs the merchant.
fn status_of(e: &ApiError) -> CheckStatus {
    match e {
        ApiError::RateLimited { .. } => CheckStatus::Warning,
        _ => CheckStatus::Failed,
    }
}

/// What an API failure means for this store's settings. Built from our own words and the
/// configured URL, never from request headers, so the access token cannot appear.
pub(crate) fn describe(e: &ApiError, store: &StoreConfig) -> String {
    let base = shown_url(&store.api_base_url);
    match e {
        ApiError::Transport(detail) | ApiError::Timeout(detail) => {
            format!(
                "could not reach the BigCommerce API at {base} ({detail}); check store.api_base_url and the network"
            )
        }
        ApiError::Unauthorized => {
            "BigCommerce answered 401: the access token is wrong or revoked; \
             copy it again from the store-level API account (store.access_token)"
                .to_owned()
        }
        ApiError::Forbidden => {
            "BigCommerce answered 403: the API account lacks a scope this call needs".to_owned()
        }
        e if is_not_found(e) => format!(
            "BigCommerce answered 404: store hash not found ({} at {base}); check store.store_hash, \
             the part after /stores/ in the API path",
            store.store_hash
        ),
        ApiError::RateLimited { retry_after } => format!(
            "BigCommerce's rate limit (shared by every app on the store) is spent; try again in {} s",
            retry_after.as_secs().max(1)
        ),
        ApiError::Status { status } if *status == 503 => {
            "BigCommerce answered 503: the store is in maintenance or suspended".to_owned()
        }
        ApiError::Status { status } => format!("BigCommerce answered {status}; try again later"),
        ApiError::Rejected { status, title, .. } => {
            format!("BigCommerce refused the request ({status}): {title}")
        }
        ApiError::Decode(detail) => format!(
            "the answer from {base} is not what BigCommerce sends ({detail}); is store.api_base_url the BigCommerce API?"
        ),
        ApiError::ResponseTooLarge { limit } => format!(
            "the answer from {base} is larger than {} KiB, which no BigCommerce answer the gateway asks for is; is store.api_base_url the BigCommerce API?",
            limit / 1024
        ),
    }
}

/// The API base URL as the messages show it: without any userinfo, in case one slipped in.
fn shown_url(url: &Url) -> Url {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url
}

fn unix_seconds_f64() -> f64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as f64 / 1e9
}

#[cfg(test)]
#[path = "diagnose_tests.rs"]
mod tests;
