//! Changes made in BigCommerce reach the identity links: the console registers the
//! `store/customer/updated|deleted` hooks (`/v3/hooks`), the emulator delivers their
//! callbacks to `/webhooks/bigcommerce`, and the gateway drops or updates links, audited.
//! Forged callbacks are refused; duplicates are harmless.

use std::time::Duration;

use bc_sso_gateway::db::{AuditEvent, AuditKind};
use bc_sso_gateway::domain::ChannelId;
use bc_sso_gateway::webhooks::{CUSTOMER_DELETED, CUSTOMER_UPDATED, SECRET_HEADER};
use bc_sso_sandbox::bigcommerce::WebhookDelivery;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Env, hidden_value};

const ISSUER_SUB: &str = "ada";

/// Registers the hooks through the admin API, as automation (or the console's button) does.
async fn register(env: &Env) -> Value {
    let (status, answer) = env
        .api_call(Method::POST, "/admin/api/store/webhooks", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

/// Waits until the emulator has `n` deliveries, all answered; returns them.
async fn delivered(env: &Env, n: usize) -> Vec<WebhookDelivery> {
    for _ in 0..500 {
        let all = env.demo.emulator.webhook_deliveries();
        if all.len() >= n && all.iter().all(|d| d.attempts > 0) {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "expected {n} deliveries: {:#?}",
        env.demo.emulator.webhook_deliveries()
    );
}

/// A call to the emulator's REST API with the store's token.
fn bigcommerce(env: &Env, method: Method, path: &str) -> reqwest::RequestBuilder {
    let e = env.demo.emulator.config();
    let url = env
        .demo
        .api_url
        .join(&format!("stores/{}/{path}", e.store_hash))
        .unwrap();
    reqwest::Client::new()
        .request(method, url)
        .header("X-Auth-Token", &e.access_token)
}

/// Ada's link, if any.
async fn ada_link(env: &Env) -> Option<bc_sso_gateway::db::IdentityLink> {
    let issuer = env.demo.state.config.connections[0].issuer.as_str();
    let issuer = issuer.trim_end_matches('/');
    let db = &env.demo.state.db;
    match db.find_link(issuer, ISSUER_SUB).await.unwrap() {
        Some(link) => Some(link),
        None => db
            .find_link(&format!("{issuer}/"), ISSUER_SUB)
            .await
            .unwrap(),
    }
}

async fn events_of(env: &Env, kind: AuditKind) -> Vec<AuditEvent> {
    let events = env.demo.state.db.audit_events(100).await.unwrap();
    events.into_iter().filter(|e| e.kind == kind).collect()
}

/// Posts `body` to the gateway's webhook route with `secret` (if any) in our header.
async fn post_callback(
    env: &Env,
    body: impl Into<reqwest::Body>,
    secret: Option<&str>,
) -> (StatusCode, String) {
    let mut request = reqwest::Client::new()
        .post(env.gateway("/webhooks/bigcommerce"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(secret) = secret {
        request = request.header(SECRET_HEADER, secret);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn the_console_registers_both_hooks_once() {
    let env = Env::start().await;
    let csrf = env.admin_sign_in().await;
    let destination = env.gateway("/webhooks/bigcommerce");

    // The Store settings page offers it (the settings here are the file's).
    let page = env.open("/admin/store").await;
    assert!(
        page.body.contains("action=\"/admin/store/webhooks\""),
        "{}",
        page.body
    );
    let check = env.open("/admin/checks/store").await;
    assert!(check.body.contains("not registered"), "{}", check.body);

    let done = env.post("/admin/store/webhooks", &[("csrf", &csrf)]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let hooks = env.demo.emulator.hooks();
    let mut scopes: Vec<&str> = hooks.iter().map(|h| h.scope.as_str()).collect();
    scopes.sort();
    assert_eq!(scopes, [CUSTOMER_DELETED, CUSTOMER_UPDATED]);
    for h in &hooks {
        assert_eq!(h.destination, destination.as_str());
        assert!(h.is_active);
        let secret = &h.headers.as_ref().unwrap()[SECRET_HEADER];
        assert_eq!(secret.len(), 64, "a derived secret, not a setting");
    }
    // Visible in the emulator's /v3/hooks as BigCommerce would list them.
    let listed: Value = bigcommerce(&env, Method::GET, "v3/hooks")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 2, "{listed}");

    // Again: nothing new. A hook BigCommerce deactivated is turned back on.
    register(&env).await;
    assert_eq!(env.demo.emulator.hooks(), hooks);
    let id = hooks[0].id;
    let off = bigcommerce(&env, Method::PUT, &format!("v3/hooks/{id}"))
        .json(&json!({ "is_active": false }))
        .send()
        .await
        .unwrap();
    assert_eq!(off.status(), StatusCode::OK);
    let check = env.open("/admin/checks/store").await;
    assert!(
        check.body.contains("was deactivated by BigCommerce"),
        "{}",
        check.body
    );
    let answer = register(&env).await;
    assert!(answer.to_string().contains("\"updated\""), "{answer}");
    let now = env.demo.emulator.hooks();
    assert_eq!(now.len(), 2);
    assert!(now.iter().all(|h| h.is_active));
    let check = env.open("/admin/checks/store").await;
    assert!(
        check
            .body
            .contains(&format!("registered for {destination}")),
        "{}",
        check.body
    );

    // The form without its CSRF token registers nothing.
    let forged = env
        .post("/admin/store/webhooks", &[("csrf", "wrong")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn saving_store_settings_in_the_console_registers_the_hooks_idempotently() {
    // Only the store hash in the file: the account is typed into the form, as an admin would.
    let env = Env::configured(|c| {
        c.store = bc_sso_gateway::config::RawStore {
            store_hash: c.store.store_hash.clone(),
            ..Default::default()
        };
    })
    .await;
    let account = env.demo.emulator.config().clone();
    let csrf = env.admin_sign_in().await;
    let page = env.open("/admin/store").await;
    assert!(hidden_value(&page.body, "csrf").is_some());
    let channels = format!("1 {}", env.demo.storefront_urls[0]);
    let form = [
        ("csrf", csrf.as_str()),
        ("api_base_url", env.demo.api_url.as_str()),
        ("client_id", &account.client_id),
        ("access_token", &account.access_token),
        ("client_secret", &account.client_secret),
        ("channels", &channels),
    ];
    for _ in 0..2 {
        let saved = env.post("/admin/store", &form).await;
        assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    }
    let hooks = env.demo.emulator.hooks();
    assert_eq!(hooks.len(), 2, "saving twice registers once: {hooks:#?}");
}

#[tokio::test]
async fn a_customer_deleted_in_bigcommerce_loses_its_link_and_signs_in_anew() {
    let env = Env::start().await;
    register(&env).await;
    env.signed_in("", ISSUER_SUB).await;
    let link = ada_link(&env).await.expect("linked at the first sign-in");
    let customer = link.customer_id;

    let deleted = bigcommerce(
        &env,
        Method::DELETE,
        &format!("v3/customers?id:in={customer}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let deliveries = delivered(&env, 1).await;
    assert_eq!(deliveries[0].scope, CUSTOMER_DELETED);
    assert_eq!(deliveries[0].last_status, Some(200), "{deliveries:#?}");

    assert!(
        ada_link(&env).await.is_none(),
        "the link went with the customer"
    );
    let removed = events_of(&env, AuditKind::LinkRemoved).await;
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].actor.as_deref(), Some("bigcommerce:webhook"));
    assert_eq!(removed[0].customer_id, Some(customer));
    assert!(
        removed[0]
            .detail
            .as_deref()
            .unwrap()
            .contains(CUSTOMER_DELETED)
    );

    // The next sign-in is a first one: by email, and (the customer is gone) a new customer.
    env.signed_in("", ISSUER_SUB).await;
    let again = ada_link(&env).await.unwrap();
    assert_ne!(again.customer_id, customer);
    assert_eq!(env.demo.emulator.customers().len(), 1);
    assert_eq!(events_of(&env, AuditKind::CustomerCreated).await.len(), 2);
}

#[tokio::test]
async fn a_channel_change_in_bigcommerce_updates_the_link() {
    let env = Env::with_channels(2, |_| {}).await;
    register(&env).await;
    env.signed_in("", ISSUER_SUB).await;
    let link = ada_link(&env).await.unwrap();
    assert_eq!(link.channel_ids, Some(vec![ChannelId(1)]));

    // The merchant moves the customer to channel 2 in the control panel.
    let edited = env
        .demo
        .emulator
        .edit_customer(json!({ "id": link.customer_id, "channel_ids": [2] }))
        .unwrap();
    assert_eq!(edited.channel_ids, Some(vec![2]));
    let deliveries = delivered(&env, 1).await;
    assert_eq!(deliveries[0].scope, CUSTOMER_UPDATED);
    assert_eq!(deliveries[0].last_status, Some(200));

    let now = ada_link(&env).await.unwrap();
    assert_eq!(now.channel_ids, Some(vec![ChannelId(2)]));
    let updated = events_of(&env, AuditKind::LinkUpdated).await;
    assert_eq!(updated.len(), 1);
    let detail: Value = serde_json::from_str(updated[0].detail.as_deref().unwrap()).unwrap();
    assert_eq!(detail["before"]["channel_ids"], json!([1]));
    assert_eq!(detail["after"]["channel_ids"], json!([2]));

    // The link decides without asking BigCommerce: channel 1 is now refused by the
    // gateway itself, channel 2 signs in.
    env.refused("", ISSUER_SUB, StatusCode::FORBIDDEN, "channel_not_allowed")
        .await;
    env.signed_in("channel_id=2", ISSUER_SUB).await;

    // The same change again (a duplicate delivery) changes nothing more.
    assert_eq!(env.demo.emulator.deliver_again(0).await, Some(200));
    assert_eq!(events_of(&env, AuditKind::LinkUpdated).await.len(), 1);
}

#[tokio::test]
async fn forged_oversized_and_duplicate_callbacks_change_nothing() {
    let env = Env::start().await;
    register(&env).await;
    env.signed_in("", ISSUER_SUB).await;
    let link = ada_link(&env).await.unwrap();
    let secret = env.demo.emulator.hooks()[0].headers.as_ref().unwrap()[SECRET_HEADER].clone();
    let store_hash = env.demo.emulator.config().store_hash.clone();
    let callback = |scope: &str, id: i64, hash: &str| {
        json!({
            "producer": format!("stores/{store_hash}"), "hash": hash, "created_at": 1,
            "store_id": "1001", "scope": scope, "data": { "type": "customer", "id": id },
        })
        .to_string()
    };
    let delete_ada = callback(CUSTOMER_DELETED, link.customer_id, "forged-1");

    // No secret, a wrong one, one a character short: 401, before the body is looked at.
    for presented in [None, Some("wrong"), Some(&secret[..63])] {
        let (status, body) = post_callback(&env, delete_ada.clone(), presented).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body.contains("webhook_unauthorized"), "{body}");
    }
    let huge = "x".repeat(1024 * 1024);
    let (status, _) = post_callback(&env, huge.clone(), Some("wrong")).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the secret is checked first"
    );
    assert_eq!(ada_link(&env).await, Some(link.clone()), "nothing changed");

    // With the secret: too large, not a callback, another store's producer.
    let (status, body) = post_callback(&env, huge, Some(&secret)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let (status, body) = post_callback(&env, "{not json", Some(&secret)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("webhook_invalid"), "{body}");
    let other_store = delete_ada.replace(&format!("stores/{store_hash}"), "stores/other");
    let (status, _) = post_callback(&env, other_store, Some(&secret)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(ada_link(&env).await, Some(link.clone()), "nothing changed");

    // An unknown customer: acknowledged, ignored.
    let unknown = callback(CUSTOMER_DELETED, 999_999, "unknown-1");
    let (status, body) = post_callback(&env, unknown, Some(&secret)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("ignored"), "{body}");

    // An `updated` whose customer is unchanged: nothing to do; the same hash again is a
    // duplicate.
    let same = callback(CUSTOMER_UPDATED, link.customer_id, "update-1");
    let (_, body) = post_callback(&env, same.clone(), Some(&secret)).await;
    assert!(body.contains("unchanged"), "{body}");
    let (status, body) = post_callback(&env, same, Some(&secret)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("duplicate"), "{body}");
    assert_eq!(ada_link(&env).await, Some(link.clone()));
    assert!(events_of(&env, AuditKind::LinkRemoved).await.is_empty());
    assert!(events_of(&env, AuditKind::LinkUpdated).await.is_empty());

    // A real deletion, delivered twice by BigCommerce: handled once.
    let deleted = bigcommerce(
        &env,
        Method::DELETE,
        &format!("v3/customers?id:in={}", link.customer_id),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    delivered(&env, 1).await;
    assert!(ada_link(&env).await.is_none());
    assert_eq!(env.demo.emulator.deliver_again(0).await, Some(200));
    assert_eq!(events_of(&env, AuditKind::LinkRemoved).await.len(), 1);
}

#[tokio::test]
async fn a_global_customer_on_a_channel_without_global_logins_is_refused_at_link_time() {
    // Channel 2 of the demo does not allow global logins (only channel 1 does by default).
    let env = Env::with_channels(2, |_| {}).await;
    let email = "ada@example.com";
    let customer = env.seed_customer(email, None);
    env.refused(
        "channel_id=2",
        ISSUER_SUB,
        StatusCode::FORBIDDEN,
        "global_customer_not_allowed",
    )
    .await;
    assert!(ada_link(&env).await.is_none(), "nothing linked");
    assert_eq!(env.demo.emulator.customers().len(), 1, "nothing created");
    assert!(
        env.demo.emulator.login_attempts().is_empty(),
        "no token minted"
    );
    // Where global logins are allowed, the same customer is linked.
    env.signed_in("", ISSUER_SUB).await;
    assert_eq!(ada_link(&env).await.unwrap().customer_id, customer);
}

#[tokio::test]
async fn a_callback_that_cannot_be_handled_now_is_handled_on_the_retry() {
    let env = Env::start().await;
    register(&env).await;
    env.signed_in("", ISSUER_SUB).await;
    let link = ada_link(&env).await.unwrap();
    // BigCommerce's API has no quota left: the customer cannot be read.
    env.demo.emulator.set_rate_limit(0, Duration::from_secs(1));
    env.demo
        .emulator
        .edit_customer(json!({ "id": link.customer_id, "channel_ids": null }))
        .unwrap();
    let first = delivered(&env, 1).await;
    assert_eq!(
        first[0].last_status,
        Some(503),
        "not acknowledged: {first:#?}"
    );
    assert_eq!(ada_link(&env).await, Some(link.clone()));

    // BigCommerce retries with the same hash: handled, not taken for a duplicate.
    env.demo
        .emulator
        .set_rate_limit(150, Duration::from_secs(30));
    assert_eq!(env.demo.emulator.deliver_again(0).await, Some(200));
    let now = ada_link(&env).await.unwrap();
    assert_eq!(
        now.channel_ids, None,
        "what BigCommerce says now: a global account"
    );
    assert_eq!(events_of(&env, AuditKind::LinkUpdated).await.len(), 1);
}
