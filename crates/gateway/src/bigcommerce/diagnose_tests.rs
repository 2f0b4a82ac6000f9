use std::collections::BTreeMap;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::*;
use crate::config::Channel;
use crate::domain::Secret;
use crate::redirect::RelativePath;
use bc_sso_sandbox::bigcommerce::{Emulator, EmulatorConfig};

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
        diagnose(&self.client(), &self.store, &[]).await
    }
}

fn emulator_config() -> EmulatorConfig {
    EmulatorConfig::new(HASH, TOKEN, "client-id", "client-secret")
}

/// The checks against a store whose API account may not call `path`.
async fn checks_without(path: &str) -> Vec<Check> {
    let mut config = emulator_config();
    config.forbidden_paths = vec![path.into()];
    start(config, TOKEN).await.diagnose().await
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

/// The emulator with channel 2 as well, each channel's site where [`store`] says it is.
async fn start_with_sites() -> Env {
    let mut config = emulator_config();
    config
        .channels
        .push(bc_sso_sandbox::bigcommerce::EmulatedChannel {
            id: 2,
            name: "Wholesale".into(),
            allow_global_logins: false,
        });
    let env = start(config, TOKEN).await;
    for channel in env.store.channels.values() {
        let site = Some(channel.storefront_url.clone());
        env.emulator.set_site(channel.id, site);
    }
    env
}

#[tokio::test]
async fn a_working_store_is_all_ok() {
    let env = start_with_sites().await;
    let checks = env.diagnose().await;
    let names: Vec<&str> = checks.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            CUSTOMERS_API,
            CLOCK,
            CUSTOMER_GROUPS,
            STOREFRONT_URLS,
            STOREFRONT_SITES,
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
    let checks = checks_without("v3/customers").await;
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
    let checks = diagnose(&client, &store, &[]).await;
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
    let checks = checks_without("v2/customer_groups").await;
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
    let checks = diagnose(&client, &store, &[]).await;
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

fn connection(id: &str, access: &str, channels: &[i64]) -> Connection {
    let mut raw: crate::config::RawConnection = toml::from_str(&format!(
        "id = \"{id}\"\nissuer = \"https://{id}.test\"\nclient_id = \"c\"\nclient_secret = \"s\"\nallowed_email_domains = [\"{id}.test\"]\nchannel_access = \"{access}\""
    ))
    .unwrap();
    raw.channels = channels.to_vec();
    let mut errors = Vec::new();
    crate::config::validate_connection(0, raw, &mut errors).unwrap()
}

/// Channel 2 of this emulator does not allow global logins.
#[tokio::test]
async fn global_connections_need_channels_that_allow_global_logins() {
    let mut config = emulator_config();
    config
        .channels
        .push(bc_sso_sandbox::bigcommerce::EmulatedChannel {
            id: 2,
            name: "Wholesale".into(),
            allow_global_logins: false,
        });
    let env = start(config, TOKEN).await;
    let run = |connections: Vec<Connection>| {
        let client = env.client();
        let store = env.store.clone();
        async move { diagnose(&client, &store, &connections).await }
    };
    let checks = run(vec![connection("chan", "channel", &[])]).await;
    assert!(
        checks.iter().all(|c| c.name != GLOBAL_LOGINS),
        "no global connection, no check"
    );
    let checks = run(vec![connection("acme", "global", &[])]).await;
    let check = find(&checks, GLOBAL_LOGINS);
    assert_eq!(check.status, CheckStatus::Failed, "{check:?}");
    assert!(check.message.contains("channel 2 (acme)"), "{check:?}");
    assert!(!check.message.contains("channel 1"), "{check:?}");
    let checks = run(vec![connection("acme", "global", &[1])]).await;
    assert_eq!(find(&checks, GLOBAL_LOGINS).status, CheckStatus::Ok);
}

#[tokio::test]
async fn a_storefront_url_that_is_not_the_channels_site_fails() {
    let env = start_with_sites().await;
    let elsewhere = Url::parse("https://wholesale.example.com/").unwrap();
    env.emulator.set_site(2, Some(elsewhere));
    let checks = env.diagnose().await;
    let sites = find(&checks, STOREFRONT_SITES);
    assert_eq!(sites.status, CheckStatus::Failed, "{sites:?}");
    assert!(
        sites.message.contains(
            "channel 2: the storefront URL is http://127.0.0.1:8081/, but BigCommerce serves \
             channel 2 at https://wholesale.example.com/"
        ),
        "{sites:?}"
    );
    assert!(
        sites
            .message
            .contains("channel 1: https://shop.example.com/ is BigCommerce's"),
        "the matching channel is listed as fine: {sites:?}"
    );
}

#[tokio::test]
async fn a_channel_without_a_site_is_a_warning_that_says_so() {
    let env = start_with_sites().await;
    env.emulator.set_site(2, None);
    let checks = env.diagnose().await;
    let sites = find(&checks, STOREFRONT_SITES);
    assert_eq!(sites.status, CheckStatus::Warning, "{sites:?}");
    assert!(
        sites
            .message
            .contains("channel 2: BigCommerce has no site for the channel"),
        "{sites:?}"
    );
}

#[tokio::test]
async fn a_channel_the_store_does_not_have_fails() {
    // This emulator has channel 1 only.
    let env = start(emulator_config(), TOKEN).await;
    env.emulator
        .set_site(1, Some(Url::parse("https://shop.example.com/").unwrap()));
    let sites = find(&env.diagnose().await, STOREFRONT_SITES).clone();
    assert_eq!(sites.status, CheckStatus::Failed, "{sites:?}");
    assert!(
        sites
            .message
            .contains("channel 2: the store has no channel 2 (GET /v3/channels lists 1)"),
        "{sites:?}"
    );
}

#[tokio::test]
async fn sites_without_their_scope_are_not_checked_but_said_why() {
    let mut config = emulator_config();
    config.forbidden_paths = vec!["v3/channels".into()];
    let env = start(config, TOKEN).await;
    let sites = find(&env.diagnose().await, STOREFRONT_SITES).clone();
    assert_eq!(sites.status, CheckStatus::Warning, "{sites:?}");
    assert!(sites.message.contains("Sites & Routes"), "{sites:?}");
}
