//! The client's IP behind proxies (SECURITY.md rule 22) and the sign-in rate limits that
//! use it (rule 17): per client (IPv6 per /64), per connection, and what a 429 says.

use base64::Engine;
use bc_sso_gateway::config::RawConfig;
use reqwest::{Method, StatusCode};

use crate::common::{
    Env, Page, browser_from, fetch, log_lines_with, page_of, rate_limit, retry_after,
};

/// The gateway behind a load balancer at 127.0.0.1 (where the tests connect from).
fn behind_the_balancer(c: &mut RawConfig) {
    c.server.trusted_proxies = Some(vec!["127.0.0.1".into()]);
}

/// `/login`, as forwarded by a proxy for `client`.
async fn login_for(env: &Env, client: &str) -> reqwest::Response {
    let request = env.request(Method::GET, "/login");
    request
        .header("x-forwarded-for", client)
        .send()
        .await
        .unwrap()
}

/// [`login_for`] as a page.
async fn get_for(env: &Env, client: &str) -> Page {
    page_of(login_for(env, client).await).await
}

/// The callback of a sign-in as Ada from `browser`, opened there.
async fn sign_in_from(env: &Env, browser: &reqwest::Client) -> Page {
    let callback = env.callback_with(browser, "", "ada").await;
    fetch(browser, callback).await
}

#[tokio::test]
async fn one_client_behind_the_load_balancer_does_not_lock_out_other_shoppers() {
    // Default limits (120 a minute, bursts of 60 per client).
    let env = Env::configured(behind_the_balancer).await;
    for i in 0..70 {
        let page = get_for(&env, &format!("203.0.113.{i}")).await;
        assert_eq!(page.status, StatusCode::FOUND, "shopper {i}: {}", page.body);
    }
    // One client hammering runs out of its own budget...
    let mut refused_at = None;
    for n in 0..100 {
        let page = get_for(&env, "198.51.100.7").await;
        if page.status == StatusCode::TOO_MANY_REQUESTS {
            page.assert_error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
            refused_at = Some(n);
            break;
        }
        assert_eq!(page.status, StatusCode::FOUND);
    }
    let refused_at = refused_at.expect("the hammering client is limited");
    assert!(refused_at >= 60, "limited after {refused_at} requests");
    // ...while the next shopper behind the same balancer still gets through, and the log
    // line of the request names that shopper, not the balancer.
    let page = get_for(&env, "198.51.100.8, 127.0.0.1").await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    let lines = log_lines_with(page.correlation_id.as_deref().unwrap());
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"client_ip\":\"198.51.100.8\"")),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn spoofed_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let env = Env::configured(|c| {
        // The balancer is in 10/8; the tests connect from 127.0.0.1, like a client that
        // reaches the gateway directly.
        c.server.trusted_proxies = Some(vec!["10.0.0.0/8".into()]);
        rate_limit(c, 6, 3);
    })
    .await;
    // A whole sign-in (2 requests) with a made-up address: the audit trail has the peer.
    let spoofer = browser_from("203.0.113.66", "spoofer/1.0");
    let done = sign_in_from(&env, &spoofer).await;
    assert_eq!(done.status, StatusCode::FOUND, "{}", done.body);
    let event = &env.demo.state.db.audit_events(1).await.unwrap()[0];
    assert_eq!(event.client_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(event.user_agent.as_deref(), Some("spoofer/1.0"));
    // A new made-up address per request does not buy a new budget.
    let page = get_for(&env, "203.0.113.67").await;
    assert_eq!(page.status, StatusCode::FOUND);
    get_for(&env, "203.0.113.68")
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
}

#[tokio::test]
async fn ipv6_clients_share_a_bucket_per_64() {
    let env = Env::configured(|c| {
        behind_the_balancer(c);
        rate_limit(c, 6, 3);
    })
    .await;
    // One host owns a whole /64 and can pick any address in it.
    for client in [
        "2001:db8:1:2::1",
        "2001:db8:1:2::2",
        "[2001:db8:1:2:ffff::3]:443",
    ] {
        let page = get_for(&env, client).await;
        assert_eq!(page.status, StatusCode::FOUND, "{client}");
    }
    get_for(&env, "2001:db8:1:2:abcd::4")
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    // The neighbouring /64 is someone else.
    let page = get_for(&env, "2001:db8:1:3::1").await;
    assert_eq!(page.status, StatusCode::FOUND);
}

#[tokio::test]
async fn per_connection_limit_applies_across_clients() {
    let env = Env::configured(|c| {
        behind_the_balancer(c);
        c.server.connection_rate_limit_per_minute = Some(3);
    })
    .await;
    for client in ["203.0.113.1", "203.0.113.2"] {
        let page = get_for(&env, client).await;
        assert_eq!(page.status, StatusCode::FOUND, "{client}");
    }
    // The third client's start is the connection's third request; its callback, the
    // fourth, is refused before the code reaches the IdP's token endpoint.
    let third = browser_from("203.0.113.3", "shopper/1.0");
    let refused = sign_in_from(&env, &third).await;
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "connection_rate_limited");
    assert!(env.demo.emulator.customers().is_empty());
    let response = login_for(&env, "203.0.113.4").await;
    let wait = retry_after(&response);
    assert!((1..=20).contains(&wait), "{wait}");
    page_of(response)
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "connection_rate_limited");

    // 0 turns it off.
    let env = Env::configured(|c| {
        behind_the_balancer(c);
        c.server.connection_rate_limit_per_minute = Some(0);
    })
    .await;
    for i in 0..10 {
        let page = get_for(&env, &format!("203.0.113.{i}")).await;
        assert_eq!(page.status, StatusCode::FOUND);
    }
}

/// The 429's `Retry-After` and the wait its page states: the same, and at least 1 s.
async fn refusal_wait(env: &Env) -> (u64, String) {
    for _ in 0..20 {
        let response = env.request(Method::GET, "/login").send().await.unwrap();
        if response.status() != StatusCode::TOO_MANY_REQUESTS {
            continue;
        }
        let wait = retry_after(&response);
        let page = page_of(response).await;
        page.assert_error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
        return (wait, page.body);
    }
    panic!("never limited");
}

#[tokio::test]
async fn rate_limited_page_states_a_real_wait() {
    // 10 requests a second: the next one is allowed within a fraction of a second, which
    // used to be rounded down to "0 seconds" and `Retry-After: 0`.
    let env = Env::configured(|c| rate_limit(c, 600, 1)).await;
    let (wait, body) = refusal_wait(&env).await;
    assert_eq!(wait, 1);
    assert!(body.contains("try again in 1 second."), "{body}");
    assert!(!body.contains(" 0 seconds"), "{body}");

    let env = Env::configured(|c| rate_limit(c, 1, 1)).await;
    let (wait, body) = refusal_wait(&env).await;
    assert!((55..=60).contains(&wait), "{wait}");
    assert!(
        body.contains(&format!("try again in {wait} seconds.")),
        "{body}"
    );
}

/// Signs in as Ada through a proxy that forwards for `client`; returns the claims of the
/// login JWT the gateway redirected to.
async fn login_token_claims(env: &Env, client: &str) -> serde_json::Value {
    let page = sign_in_from(env, &browser_from(client, "shopper/1.0")).await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    let location = page.location.unwrap();
    let jwt = location.path().rsplit('/').next().unwrap();
    let payload = jwt.split('.').nth(1).unwrap();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&json).unwrap()
}

#[tokio::test]
async fn request_ip_is_only_sent_when_chosen() {
    let client = "203.0.113.9";
    // Known client IP, not chosen: no request_ip.
    let env = Env::configured(behind_the_balancer).await;
    let claims = login_token_claims(&env, client).await;
    assert!(claims.get("request_ip").is_none(), "{claims}");

    let env = Env::configured(|c| {
        behind_the_balancer(c);
        c.server.send_request_ip = Some(true);
    })
    .await;
    assert_eq!(login_token_claims(&env, client).await["request_ip"], client);

    // The deprecated settings keep meaning what they meant.
    for (legacy, expected) in [("peer", "127.0.0.1"), ("x-forwarded-for", client)] {
        let env = Env::configured(|c| {
            c.server.request_ip = Some(legacy.into());
        })
        .await;
        let claims = login_token_claims(&env, client).await;
        assert_eq!(claims["request_ip"], expected, "{legacy}");
    }
    let env = Env::configured(|c| {
        c.server.request_ip = Some("off".into());
        c.server.trusted_proxy_hops = Some(1);
    })
    .await;
    let claims = login_token_claims(&env, client).await;
    assert!(claims.get("request_ip").is_none(), "{claims}");
}
