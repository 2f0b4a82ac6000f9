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

use std::time::Duration;

use url::Url;

use super::client::{ApiError, Client};
use super::wire::CustomerGroupFull;
use crate::config::{StoreConfig, is_loopback};

pub const CUSTOMERS_API: &str = "Customers API";
pub const CLOCK: &str = "Clock";
pub const CUSTOMER_GROUPS: &str = "Customer groups";
pub const STOREFRONT_URLS: &str = "Storefront URLs";
pub const LOGIN_SCOPE: &str = "Customers Login scope";

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
pub async fn diagnose(client: &Client, store: &StoreConfig) -> Vec<Check> {
    let (api, usable) = check_customers_api(client, store).await;
    let (clock, groups) = if usable {
        tokio::join!(
            check_clock(client, store),
            check_customer_groups(client, store)
        )
    } else {
        let skipped = |name| {
            Check::new(
                name,
                CheckStatus::Warning,
                format!("not checked: the {CUSTOMERS_API} check failed, fix that first"),
            )
        };
        (skipped(CLOCK), skipped(CUSTOMER_GROUPS))
    };
    let checks = vec![
        api,
        clock,
        groups,
        check_storefront_urls(store),
        login_scope_note(),
    ];
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
                ApiError::Transport(_) | ApiError::Unauthorized | ApiError::Decode(_)
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
fn describe(e: &ApiError, store: &StoreConfig) -> String {
    let base = shown_url(&store.api_base_url);
    match e {
        ApiError::Transport(detail) => {
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
mod tests {
    use std::collections::BTreeMap;

    use tokio::net::TcpListener;
    use tokio::task::JoinHandle;

    use super::*;
    use crate::config::Channel;
    use crate::domain::Secret;
    use crate::redirect::RelativePath;
    use crate::sandbox::bigcommerce::{Emulator, EmulatorConfig};

    const HASH: &str = "abc123";
    const TOKEN: &str = "emulator-token-5f2a9c";

    struct Env {
        emulator: Emulator,
        store: StoreConfig,
        server: JoinHandle<()>,
    }

    impl Drop for Env {
        fn drop(&mut self) {
            self.server.abort();
        }
    }

    impl Env {
        fn client(&self) -> Client {
            Client::new(
                crate::http_client(Duration::from_secs(5)).unwrap(),
                &self.store,
            )
        }

        async fn diagnose(&self) -> Vec<Check> {
            diagnose(&self.client(), &self.store).await
        }
    }

    fn emulator_config() -> EmulatorConfig {
        EmulatorConfig::new(HASH, TOKEN, "client-id", "client-secret")
    }

    fn store(api_base_url: Url, token: &str) -> StoreConfig {
        let channel = |id, url: &str| Channel {
            id,
            storefront_url: Url::parse(url).unwrap(),
            default_redirect: RelativePath::parse("/account.php").unwrap(),
        };
        StoreConfig {
            store_hash: HASH.into(),
            api_base_url,
            access_token: Secret::new(token),
            client_id: "client-id".into(),
            client_secret: Secret::new("client-secret"),
            clock_check_interval: Duration::from_secs(300),
            channels: BTreeMap::from([
                (1, channel(1, "https://shop.example.com/")),
                (2, channel(2, "http://127.0.0.1:8081/")),
            ]),
        }
    }

    /// The emulator's API on 127.0.0.1:0, bound before the config that names it.
    async fn start(config: EmulatorConfig, token: &str) -> Env {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let emulator = Emulator::new(config);
        let router = emulator.api_router();
        let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Env {
            emulator,
            store: store(url, token),
            server,
        }
    }

    fn find<'a>(checks: &'a [Check], name: &str) -> &'a Check {
        checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name} check in {checks:#?}"))
    }

    #[tokio::test]
    async fn a_working_store_is_all_ok() {
        let env = start(emulator_config(), TOKEN).await;
        let checks = env.diagnose().await;
        let names: Vec<&str> = checks.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                CUSTOMERS_API,
                CLOCK,
                CUSTOMER_GROUPS,
                STOREFRONT_URLS,
                LOGIN_SCOPE
            ]
        );
        for c in &checks {
            assert_eq!(c.status, CheckStatus::Ok, "{c:?}");
            assert!(!c.message.contains(TOKEN), "{c:?}");
        }
        assert!(find(&checks, STOREFRONT_URLS).message.contains("channel 2"));
    }

    #[tokio::test]
    async fn wrong_token_fails_without_printing_it() {
        let wrong = "wrong-token-0d9e7b31";
        let env = start(emulator_config(), wrong).await;
        let checks = env.diagnose().await;
        let api = find(&checks, CUSTOMERS_API);
        assert_eq!(api.status, CheckStatus::Failed);
        assert!(api.message.contains("wrong or revoked"), "{api:?}");
        for c in &checks {
            assert!(!c.message.contains(wrong), "token leaked: {c:?}");
            assert!(!c.message.contains(TOKEN), "{c:?}");
        }
        // The other API checks would only repeat the 401.
        assert_eq!(find(&checks, CLOCK).status, CheckStatus::Warning);
        assert!(find(&checks, CLOCK).message.starts_with("not checked"));
        assert_eq!(env.emulator.api_request_count(), 1);
    }

    #[tokio::test]
    async fn missing_customers_scope_is_named() {
        let mut config = emulator_config();
        config.forbidden_paths = vec!["v3/customers".into()];
        let env = start(config, TOKEN).await;
        let checks = env.diagnose().await;
        let api = find(&checks, CUSTOMERS_API);
        assert_eq!(api.status, CheckStatus::Failed);
        assert!(
            api.message
                .contains("the API account lacks the Customers scope"),
            "{api:?}"
        );
        // The token is valid, so the clock is still measured.
        assert_eq!(find(&checks, CLOCK).status, CheckStatus::Ok);
    }

    #[tokio::test]
    async fn unknown_store_hash_is_named() {
        let env = start(emulator_config(), TOKEN).await;
        let mut store = env.store.clone();
        store.store_hash = "nosuchstore".into();
        let client = Client::new(crate::http_client(Duration::from_secs(5)).unwrap(), &store);
        let checks = diagnose(&client, &store).await;
        let api = find(&checks, CUSTOMERS_API);
        assert_eq!(api.status, CheckStatus::Failed);
        assert!(api.message.contains("store hash not found"), "{api:?}");
        assert!(api.message.contains("nosuchstore"), "{api:?}");
    }

    #[tokio::test]
    async fn clock_skew_of_12_seconds_is_a_warning_stating_it() {
        let env = start(emulator_config(), TOKEN).await;
        env.emulator.set_clock_skew(12);
        let checks = env.diagnose().await;
        let clock = find(&checks, CLOCK);
        assert_eq!(clock.status, CheckStatus::Warning, "{clock:?}");
        assert!(clock.message.contains("12 s behind"), "{clock:?}");
        assert!(clock.message.contains("fix NTP"), "{clock:?}");
    }

    #[tokio::test]
    async fn clock_skew_of_120_seconds_fails_and_says_what_the_gateway_does() {
        let env = start(emulator_config(), TOKEN).await;
        env.emulator.set_clock_skew(-120);
        let checks = env.diagnose().await;
        let clock = find(&checks, CLOCK);
        assert_eq!(clock.status, CheckStatus::Failed, "{clock:?}");
        assert!(clock.message.contains("120 s ahead of"), "{clock:?}");
        assert!(clock.message.contains("adds the offset"), "{clock:?}");
    }

    #[test]
    fn clock_thresholds() {
        let every = Duration::from_secs(300);
        assert_eq!(clock_verdict(0, every).status, CheckStatus::Ok);
        assert!(clock_verdict(0, every).message.contains("to the second"));
        assert_eq!(clock_verdict(-4, every).status, CheckStatus::Ok);
        assert_eq!(clock_verdict(5, every).status, CheckStatus::Warning);
        assert_eq!(clock_verdict(-24, every).status, CheckStatus::Warning);
        assert_eq!(clock_verdict(25, every).status, CheckStatus::Failed);
        assert!(clock_verdict(25, every).message.contains("every 300 s"));
    }

    #[tokio::test]
    async fn customer_groups_are_listed_by_name() {
        let env = start(emulator_config(), TOKEN).await;
        let checks = env.diagnose().await;
        let groups = find(&checks, CUSTOMER_GROUPS);
        assert_eq!(groups.status, CheckStatus::Ok);
        assert_eq!(
            groups.message,
            "2 customer groups: Retail (id 1, default), Wholesale (id 2)"
        );
    }

    #[test]
    fn long_group_lists_are_summarised() {
        let groups: Vec<CustomerGroupFull> = (1..=25)
            .map(|id| CustomerGroupFull {
                id,
                name: format!("G{id}"),
                is_default: false,
                category_access: None,
                discount_rules: Vec::new(),
                date_created: String::new(),
                date_modified: String::new(),
                is_group_for_guests: false,
            })
            .collect();
        let message = list_groups(&groups);
        assert!(message.starts_with("25 customer groups: G1 (id 1)"));
        assert!(message.ends_with("G20 (id 20) and 5 more"), "{message}");
    }

    #[tokio::test]
    async fn forbidden_customer_groups_are_a_warning() {
        let mut config = emulator_config();
        config.forbidden_paths = vec!["v2/customer_groups".into()];
        let env = start(config, TOKEN).await;
        let checks = env.diagnose().await;
        let groups = find(&checks, CUSTOMER_GROUPS);
        assert_eq!(groups.status, CheckStatus::Warning);
        assert_eq!(
            groups.message,
            "Customer groups need the Customers read scope; group mapping will not be available"
        );
        assert_eq!(find(&checks, CUSTOMERS_API).status, CheckStatus::Ok);
    }

    #[tokio::test]
    async fn dead_port_could_not_reach_naming_the_base_url() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        drop(listener);
        let store = store(url.clone(), TOKEN);
        let client = Client::new(crate::http_client(Duration::from_secs(5)).unwrap(), &store);
        let checks = diagnose(&client, &store).await;
        let api = find(&checks, CUSTOMERS_API);
        assert_eq!(api.status, CheckStatus::Failed);
        assert!(api.message.contains("could not reach"), "{api:?}");
        assert!(api.message.contains(url.as_str()), "{api:?}");
        assert!(!api.message.contains(TOKEN));
        assert_eq!(find(&checks, CUSTOMER_GROUPS).status, CheckStatus::Warning);
    }

    #[test]
    fn http_storefront_off_loopback_is_a_warning() {
        let mut store = store(Url::parse("https://api.bigcommerce.com").unwrap(), TOKEN);
        assert_eq!(check_storefront_urls(&store).status, CheckStatus::Ok);
        if let Some(c) = store.channels.get_mut(&1) {
            c.storefront_url = Url::parse("http://shop.example.com/").unwrap();
        }
        let check = check_storefront_urls(&store);
        assert_eq!(check.status, CheckStatus::Warning);
        assert!(
            check
                .message
                .contains("channel 1 (http://shop.example.com/)"),
            "{check:?}"
        );
        assert!(
            !check.message.contains("channel 2"),
            "loopback http is fine"
        );
        store.channels.clear();
        assert_eq!(check_storefront_urls(&store).status, CheckStatus::Failed);
    }

    #[test]
    fn shown_url_drops_credentials() {
        let url = Url::parse("https://user:pw@api.example.com/base").unwrap();
        assert_eq!(shown_url(&url).as_str(), "https://api.example.com/base");
    }
}
