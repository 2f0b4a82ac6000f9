//! Quota storms (issue 11 item 6): many first sign-ins at once against a store whose API
//! quota is small. They share lookups and creates, wait for quota rather than fail, and see
//! a page that refreshes itself until their account is ready; never a 429.

use std::collections::HashMap;
use std::time::Duration;

use bc_sso_dev::demo::{DemoIdp, DemoOptions};
use bc_sso_gateway::config::{RawConfig, RawGroupRule};
use bc_sso_sandbox::idp::DevUser;
use reqwest::StatusCode;
use tokio::task::JoinSet;
use url::Url;

use crate::common::{
    Env, Page, Scratch, fetch, meta_refresh, new_browser, pick_at, use_test_database,
};

/// `n` verified users `storm0@example.com`, … (sub `storm0`, …).
fn storm_users(n: usize) -> Vec<DevUser> {
    let template = bc_sso_sandbox::idp::demo_users().remove(0);
    (0..n)
        .map(|i| DevUser {
            sub: format!("storm{i}"),
            email: Some(format!("storm{i}@example.com")),
            name: Some(format!("Storm User{i}")),
            given_name: Some("Storm".into()),
            family_name: Some(format!("User{i}")),
            groups: Vec::new(),
            ..template.clone()
        })
        .collect()
}

/// The demo with `users` at the dev IdP and no per-client sign-in limit (every browser of
/// a test comes from 127.0.0.1, like a whole office behind one NAT address).
async fn storm_env(users: Vec<DevUser>, customize: impl FnOnce(&mut RawConfig)) -> Env {
    let options = DemoOptions {
        idp: DemoIdp::Dev { users },
        ..DemoOptions::default()
    };
    Env::with(options, |c| {
        c.server.rate_limit_per_minute = Some(0);
        customize(c)
    })
    .await
}

/// How one shopper's sign-in went.
struct Outcome {
    sub: String,
    /// The gateway's last answer: a 302 to the storefront, or an error page.
    page: Page,
    /// Waiting pages seen on the way.
    waited: usize,
}

impl Outcome {
    fn signed_in(&self) -> bool {
        self.page.status == StatusCode::FOUND
            && self
                .page
                .location
                .as_ref()
                .is_some_and(|l| l.path().starts_with("/login/token/"))
    }
}

/// A browser of its own signs `sub` in at the gateway `gateway`, following the waiting page
/// (its `<meta http-equiv="refresh">`) as a browser would, and then the storefront's login.
async fn storm_sign_in(gateway: Url, sub: String) -> Outcome {
    let browser = new_browser();
    let login = fetch(&browser, gateway.join("/login?channel_id=1").unwrap()).await;
    assert_eq!(login.status, StatusCode::FOUND, "{}", login.body);
    let callback = pick_at(&browser, &login.location.unwrap(), &sub).await;
    let mut page = fetch(&browser, callback).await;
    let mut waited = 0;
    while let Some(next) = meta_refresh(&page) {
        waited += 1;
        assert!(waited < 200, "still waiting after {waited} pages");
        assert!(next.starts_with("/login/wait?t="), "{next}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        page = fetch(&browser, gateway.join(&next).unwrap()).await;
    }
    if let Some(landing) = page
        .location
        .clone()
        .filter(|_| page.status.is_redirection())
    {
        // The token is accepted by the storefront: it was minted when the wait ended.
        let landed = fetch(&browser, landing).await;
        assert!(landed.status.is_redirection(), "{}", landed.body);
    }
    Outcome { sub, page, waited }
}

/// Signs `subs` in at once, each at its gateway.
async fn storm(sign_ins: Vec<(Url, String)>) -> Vec<Outcome> {
    let mut set = JoinSet::new();
    for (gateway, sub) in sign_ins {
        set.spawn(storm_sign_in(gateway, sub));
    }
    let mut outcomes = Vec::new();
    while let Some(o) = set.join_next().await {
        outcomes.push(o.unwrap());
    }
    outcomes
}

/// Customers per (lowercased) email at the emulator.
fn customers_by_email(env: &Env) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for c in env.demo.emulator.customers() {
        *counts.entry(c.email.to_lowercase()).or_insert(0) += 1;
    }
    counts
}

#[tokio::test]
async fn a_burst_of_first_sign_ins_shares_calls_and_every_one_signs_in() {
    let n = 40;
    let env = storm_env(storm_users(n), |_| {}).await;
    // 10 calls per 5 s: two calls per sign-in would need 40 s; the gateway keeps 2 back.
    env.demo.emulator.set_rate_limit(10, Duration::from_secs(5));
    let before = env.demo.emulator.api_request_count();
    let gateway = env.demo.gateway_url.clone();
    let outcomes = storm(
        (0..n)
            .map(|i| (gateway.clone(), format!("storm{i}")))
            .collect(),
    )
    .await;

    for o in &outcomes {
        assert!(o.signed_in(), "{} not signed in: {}", o.sub, o.page.body);
    }
    let calls = env.demo.emulator.api_request_count() - before;
    assert!(calls <= 20, "{calls} API calls for {n} first sign-ins");
    assert_eq!(
        env.demo.emulator.rate_limited_count(),
        0,
        "a call earned a 429"
    );
    let customers = customers_by_email(&env);
    for i in 0..n {
        assert_eq!(customers.get(&format!("storm{i}@example.com")), Some(&1));
    }
    let ok = env.demo.emulator.login_attempts();
    assert_eq!(ok.iter().filter(|a| a.is_ok()).count(), n, "{ok:?}");
}

#[tokio::test]
async fn the_waiting_page_refreshes_until_the_account_is_ready() {
    let env = storm_env(storm_users(3), |_| {}).await;
    env.demo.emulator.set_rate_limit(5, Duration::from_secs(6));
    // The budget is spent (4 of 5 per 6 s, one kept back): the next call waits ~6 s, longer
    // than the callback waits, so the shoppers get the waiting page.
    let budget = env.demo.state.coalescer.budget();
    budget.observe(Some((5, Duration::from_secs(6))));
    for _ in 0..budget.limit() {
        budget.acquire().await;
    }
    let gateway = env.demo.gateway_url.clone();
    let outcomes = storm(
        (0..3)
            .map(|i| (gateway.clone(), format!("storm{i}")))
            .collect(),
    )
    .await;
    for o in &outcomes {
        assert!(o.signed_in(), "{} not signed in: {}", o.sub, o.page.body);
        assert!(o.waited >= 1, "{} never saw the waiting page", o.sub);
    }
    assert_eq!(env.demo.emulator.rate_limited_count(), 0);
    // One lookup and one create for the three.
    assert_eq!(env.demo.emulator.customers().len(), 3);

    // The waiting page belongs to the browser that signed in: another has no ticket.
    let stranger = new_browser();
    let page = fetch(&stranger, env.gateway("/login/wait?t=0123456789abcdef")).await;
    page.assert_error(StatusCode::BAD_REQUEST, "no_pending_login");
}

#[tokio::test]
async fn one_refused_customer_gets_its_page_and_the_others_sign_in() {
    let mut users = storm_users(10);
    // Mapped to a customer group the store does not have: BigCommerce refuses this one
    // customer, and with it (atomically, in the emulator) the whole batch.
    users[4].groups = vec!["ghosts".into()];
    let env = storm_env(users, |c| {
        let scopes = ["openid", "email", "profile", "groups"];
        c.connections[0].scopes = Some(scopes.map(String::from).to_vec());
        c.connections[0].group_rules = vec![RawGroupRule {
            group: "ghosts".into(),
            customer_group_id: 999,
        }];
    })
    .await;
    env.demo.emulator.set_rate_limit(40, Duration::from_secs(3));
    // Spend the budget so the ten queue up and go out in one round, one batch.
    let budget = env.demo.state.coalescer.budget();
    budget.observe(Some((40, Duration::from_secs(3))));
    for _ in 0..budget.limit() {
        budget.acquire().await;
    }
    let gateway = env.demo.gateway_url.clone();
    let outcomes = storm(
        (0..10)
            .map(|i| (gateway.clone(), format!("storm{i}")))
            .collect(),
    )
    .await;
    for o in &outcomes {
        if o.sub == "storm4" {
            o.page
                .assert_error(StatusCode::BAD_GATEWAY, "bigcommerce_customer_not_created");
        } else {
            assert!(o.signed_in(), "{} not signed in: {}", o.sub, o.page.body);
        }
    }
    let customers = customers_by_email(&env);
    assert_eq!(customers.get("storm4@example.com"), None);
    assert_eq!(customers.len(), 9);
    assert!(customers.values().all(|n| *n == 1), "{customers:?}");
    let logs = crate::common::all_logs();
    assert!(logs.contains("customer batch refused; looking it up, then creating one by one"));
}

#[tokio::test]
async fn two_replicas_share_one_budget_through_redis() {
    let redis =
        std::env::var("BCSSO_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    // Replicas share a database: PostgreSQL when the suite runs on it, else an SQLite file.
    let scratch = Scratch::new("storm");
    let sqlite = scratch.sqlite_url();
    let n = 30;
    let env = storm_env(storm_users(n), move |c| {
        use_test_database(c);
        if std::env::var("BCSSO_TEST_DATABASE_URL").is_err() {
            c.database.url = Some(sqlite);
        }
        c.server.sessions_url = Some(redis);
    })
    .await;
    let (replica, replica_url) = env.replica(|_| {}).await;
    // The key is the store's (its hash is fresh per test run): both replicas spend from it.
    assert!(env.demo.state.coalescer.budget().is_shared());
    assert!(replica.coalescer.budget().is_shared());
    // 8 calls per 4 s; each replica alone would allow itself 7, together 14: 429s.
    env.demo.emulator.set_rate_limit(8, Duration::from_secs(4));
    let gateways = [env.demo.gateway_url.clone(), replica_url];
    let outcomes = storm(
        (0..n)
            .map(|i| (gateways[i % 2].clone(), format!("storm{i}")))
            .collect(),
    )
    .await;
    for o in &outcomes {
        assert!(o.signed_in(), "{} not signed in: {}", o.sub, o.page.body);
    }
    assert_eq!(
        env.demo.emulator.rate_limited_count(),
        0,
        "a call earned a 429"
    );
    let customers = customers_by_email(&env);
    assert_eq!(customers.len(), n);
    assert!(customers.values().all(|n| *n == 1), "{customers:?}");
}
