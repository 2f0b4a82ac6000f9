//! `/v3/hooks` and webhook delivery, against a real receiver on a loopback port.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use super::*;
use crate::bigcommerce::EmulatorConfig;

const TOKEN: &str = "token";

fn emulator(retries: &[u64]) -> Emulator {
    let mut config = EmulatorConfig::new("abc123", TOKEN, "client-id", "secret");
    config.webhook_retry_delays = retries
        .iter()
        .map(|ms| Duration::from_millis(*ms))
        .collect();
    Emulator::new(config)
}

async fn call(
    emu: &Emulator,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(format!("/stores/abc123/{path}"))
        .header("X-Auth-Token", TOKEN)
        .header("Content-Type", "application/json");
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let resp = emu
        .api_router()
        .oneshot(req.body(body).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A receiver answering each callback with the next status of `answers` (the last one
/// repeats); returns its URL and what it received (headers, body).
async fn receiver(answers: Vec<u16>) -> (String, Arc<Mutex<Vec<(HeaderMap, String)>>>) {
    let seen: Arc<Mutex<Vec<(HeaderMap, String)>>> = Arc::default();
    let log = seen.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: String| {
            let log = log.clone();
            let answers = answers.clone();
            async move {
                let mut log = log.lock().unwrap();
                let n = log.len().min(answers.len() - 1);
                log.push((headers, body));
                StatusCode::from_u16(answers[n]).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..300 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn hook_body(scope: &str, destination: &str) -> Value {
    json!({
        "scope": scope, "destination": destination, "is_active": true,
        "headers": { "x-secret": "s3cret" },
    })
}

#[tokio::test]
async fn hooks_are_created_listed_changed_and_deleted() {
    let emu = emulator(&[]);
    let (status, created) = call(
        &emu,
        "POST",
        "v3/hooks",
        Some(hook_body(CUSTOMER_UPDATED, "https://sso.example.com/hook")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let hook: WebhookFull = serde_json::from_value(created["data"].clone()).unwrap();
    assert_eq!(hook.client_id, "client-id");
    assert_eq!(hook.store_hash, "abc123");
    assert_eq!(hook.headers.as_ref().unwrap()["x-secret"], "s3cret");
    assert_eq!(created["meta"], json!({}));

    // BigCommerce delivers to https on 443 only (loopback http is the emulator's leniency).
    for (body, field) in [
        (json!({ "destination": "https://a.example/h" }), "scope"),
        (
            hook_body(CUSTOMER_UPDATED, "https://sso.example.com:8443/hook"),
            "destination",
        ),
        (
            hook_body(CUSTOMER_UPDATED, "http://sso.example.com/hook"),
            "destination",
        ),
        (
            json!({ "scope": CUSTOMER_UPDATED, "destination": "https://a.example/h", "headers": { "x": 1 } }),
            "headers",
        ),
        (json!(["not", "an", "object"]), "body"),
    ] {
        let (status, e) = call(&emu, "POST", "v3/hooks", Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
        assert!(e["errors"].get(field).is_some(), "{field}: {e}");
    }

    let (_, list) = call(&emu, "GET", "v3/hooks", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let (_, none) = call(&emu, "GET", "v3/hooks?scope=store/customer/deleted", None).await;
    assert!(none["data"].as_array().unwrap().is_empty());

    let path = format!("v3/hooks/{}", hook.id);
    let (status, changed) = call(&emu, "PUT", &path, Some(json!({ "is_active": false }))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(changed["data"]["is_active"], false);
    assert_eq!(
        changed["data"]["headers"]["x-secret"], "s3cret",
        "untouched"
    );
    let (status, _) = call(&emu, "DELETE", &path, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&emu, "GET", &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn customer_changes_are_delivered_with_the_registered_headers() {
    let emu = emulator(&[]);
    let (url, log) = receiver(vec![200]).await;
    for scope in [CUSTOMER_UPDATED, CUSTOMER_DELETED] {
        let (status, _) = call(&emu, "POST", "v3/hooks", Some(hook_body(scope, &url))).await;
        assert_eq!(status, StatusCode::OK);
    }
    let customer = json!([{ "email": "ada@example.com", "first_name": "Ada", "last_name": "L", "channel_ids": [1] }]);
    let (status, created) = call(&emu, "POST", "v3/customers", Some(customer)).await;
    assert_eq!(status, StatusCode::OK);
    let id = created["data"][0]["id"].as_i64().unwrap();
    // No hook for `created`: nothing sent.
    let (status, _) = call(
        &emu,
        "PUT",
        "v3/customers",
        Some(json!([{ "id": id, "last_name": "Lovelace" }])),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&emu, "DELETE", &format!("v3/customers?id:in={id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    wait_for("two deliveries", || {
        emu.webhook_deliveries()
            .iter()
            .filter(|d| d.delivered)
            .count()
            == 2
    })
    .await;

    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let bodies: Vec<Value> = seen
        .iter()
        .map(|(_, b)| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(bodies[0]["scope"], CUSTOMER_UPDATED);
    assert_eq!(bodies[0]["producer"], "stores/abc123");
    assert_eq!(
        bodies[0]["data"],
        json!({ "type": "customer", "id": id, "origin_channel_id": 1, "channel_ids": [1] })
    );
    assert!(bodies[0]["store_id"].is_string());
    assert_eq!(bodies[1]["scope"], CUSTOMER_DELETED);
    assert_eq!(bodies[1]["data"], json!({ "type": "customer", "id": id }));
    assert_eq!(bodies[0]["hash"].as_str().unwrap().len(), 40);
    assert_ne!(bodies[0]["hash"], bodies[1]["hash"]);
    for (headers, _) in &seen {
        assert_eq!(headers["x-secret"], "s3cret");
        assert_eq!(headers["content-type"], "application/json");
    }

    // A duplicate delivery is the same body, so the same hash.
    assert_eq!(emu.deliver_again(0).await, Some(200));
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[2].1, seen[0].1);
}

#[tokio::test]
async fn failed_deliveries_are_retried_then_the_hook_is_deactivated() {
    // A receiver that fails once, then acknowledges: delivered on the retry, same body.
    let emu = emulator(&[20, 20]);
    let (url, seen) = receiver(vec![500, 200]).await;
    call(
        &emu,
        "POST",
        "v3/hooks",
        Some(hook_body("store/customer/*", &url)),
    )
    .await;
    emu.seed_customer(bigcommerce_wire::CustomerPost {
        email: "ada@example.com".into(),
        first_name: "Ada".into(),
        last_name: "L".into(),
        company: None,
        customer_group_id: None,
        origin_channel_id: None,
        channel_ids: None,
        trigger_account_created_notification: None,
    });
    assert!(emu.delete_customer(1), "the control panel's delete");
    wait_for("the retry", || {
        emu.webhook_deliveries()
            .first()
            .is_some_and(|d| d.delivered)
    })
    .await;
    let d = &emu.webhook_deliveries()[0];
    assert_eq!((d.attempts, d.last_status), (2, Some(200)));
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].1, seen[1].1, "a retry carries the same body");
    }

    // A receiver that never acknowledges: the schedule runs out, the hook is deactivated.
    let emu = emulator(&[10, 10]);
    let (url, _) = receiver(vec![503]).await;
    call(
        &emu,
        "POST",
        "v3/hooks",
        Some(hook_body(CUSTOMER_UPDATED, &url)),
    )
    .await;
    let (_, created) = call(
        &emu,
        "POST",
        "v3/customers",
        Some(json!([{ "email": "b@example.com", "first_name": "B", "last_name": "C" }])),
    )
    .await;
    let id = created["data"][0]["id"].as_i64().unwrap();
    emu.edit_customer(json!({ "id": id, "channel_ids": [1] }))
        .unwrap();
    wait_for("deactivation", || emu.hooks().iter().all(|h| !h.is_active)).await;
    let d = &emu.webhook_deliveries()[0];
    assert_eq!(
        (d.attempts, d.delivered, d.last_status),
        (3, false, Some(503))
    );
    // An inactive hook gets nothing more.
    emu.edit_customer(json!({ "id": id, "channel_ids": null }))
        .unwrap();
    assert_eq!(emu.webhook_deliveries().len(), 1);
}
