//! First sign-ins against a BigCommerce that answers the way the docs allow, not the way
//! the happy path hopes: the documented (uninformative) 422 on a duplicate create, odd but
//! valid JSON, and faults (5xx, latency, 429 without headers, connection resets, slow
//! bodies). Every path ends either signed in or on a clear page with a reason code, with
//! an audit row saying what happened and nothing half-created.

use reqwest::StatusCode;

use crate::common::{Env, new_browser};

/// The audit trail as `(kind, reason)`, oldest first.
async fn audit(env: &Env) -> Vec<(String, Option<String>)> {
    let mut events = env.demo.state.db.audit_events(100).await.unwrap();
    events.reverse();
    events
        .into_iter()
        .map(|e| (e.kind.as_str().to_owned(), e.reason))
        .collect()
}

/// Two browsers of one new user finish their first sign-ins at the same time. Both see no
/// customer; one create wins and the other gets BigCommerce's documented 422
/// (`.customer_create`, which says nothing about the email). The loser looks the email up
/// again and uses the winner's customer.
#[tokio::test]
async fn racing_creates_with_the_documented_422_end_with_one_customer() {
    let env = Env::start().await;
    let mut callbacks = Vec::new();
    for _ in 0..2 {
        let browser = new_browser();
        let callback = env.callback_with(&browser, "", "grace").await;
        callbacks.push((browser, callback));
    }
    let handles: Vec<_> = callbacks
        .into_iter()
        .map(|(browser, callback)| {
            tokio::spawn(async move { browser.get(callback).send().await.unwrap().status() })
        })
        .collect();
    for h in handles {
        assert_eq!(h.await.unwrap(), StatusCode::FOUND);
    }
    assert_eq!(env.demo.emulator.customers().len(), 1);
    let events = audit(&env).await;
    let succeeded = events
        .iter()
        .filter(|(k, _)| k == "sign_in_succeeded")
        .count();
    assert_eq!(succeeded, 2, "{events:?}");
    let created = events.iter().filter(|(k, _)| k == "customer_created").count();
    assert_eq!(created, 1, "{events:?}");
}

/// A create refused as a whole (here: a customer group the store does not have) whose
/// email no customer has on a second lookup: a clear page, no customer, no link, and the
/// audit names the reason.
#[tokio::test]
async fn a_refused_create_with_no_customer_found_is_a_clear_page() {
    let env = Env::configured(|c| c.connections[0].customer_group_id = Some(99)).await;
    env.refused(
        "",
        "ada",
        StatusCode::BAD_GATEWAY,
        "bigcommerce_customer_not_created",
    )
    .await;
    assert!(env.demo.emulator.customers().is_empty());
    assert!(env.demo.emulator.login_attempts().is_empty());
    let events = audit(&env).await;
    assert_eq!(
        events,
        [(
            "sign_in_refused".to_owned(),
            Some("bigcommerce_customer_not_created".to_owned())
        )]
    );
    assert_no_links(&env).await;
}

#[track_caller]
async fn assert_no_links(env: &Env) {
    let links = env.api_get("/admin/api/links?email=example.com").await;
    assert_eq!(links["data"], serde_json::json!([]), "{links}");
}
