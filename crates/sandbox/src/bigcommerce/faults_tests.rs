//! Fault injection, over real HTTP where the fault is about the connection (resets, slow
//! bodies, concurrency) and through the router otherwise.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::bigcommerce::{Emulator, EmulatorConfig, Fault, FaultConfig, FaultRule, When};

const TOKEN: &str = "test-access-token";

fn emulator() -> Emulator {
    Emulator::new(EmulatorConfig::new(
        "abc123",
        TOKEN,
        "client-id",
        "client-secret",
    ))
}

async fn call(emu: &Emulator, method: Method, path: &str, body: Option<Value>) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("/stores/abc123/{path}"))
        .header("X-Auth-Token", TOKEN);
    let body = match body {
        Some(b) => {
            req = req.header("Content-Type", "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let resp = emu
        .api_router()
        .oneshot(req.body(body).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await;
    Reply {
        status,
        headers,
        body: body.map(|b| b.to_vec()).map_err(|e| e.to_string()),
    }
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Result<Vec<u8>, String>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(self.body.as_ref().unwrap()).unwrap()
    }
    fn rate_limited_headers(&self) -> bool {
        self.headers
            .keys()
            .any(|k| k.as_str().starts_with("x-rate-limit") || k.as_str().contains("retry-after"))
    }
}

fn customer(email: &str) -> Value {
    json!([{"email": email, "first_name": "A", "last_name": "B"}])
}

#[tokio::test]
async fn a_rule_strikes_the_next_n_matching_requests_only() {
    let emu = emulator();
    emu.inject(FaultRule::next(
        2,
        Method::GET,
        "v3/customers",
        Fault::Status(503),
    ));
    assert_eq!(
        call(&emu, Method::GET, "v2/time", None).await.status,
        StatusCode::OK
    );
    for _ in 0..2 {
        let r = call(&emu, Method::GET, "v3/customers", None).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        // A proxy's page: HTML, and none of the store's rate-limit headers.
        assert!(String::from_utf8_lossy(r.body.as_ref().unwrap()).contains("<html>"));
        assert!(!r.rate_limited_headers());
    }
    let r = call(&emu, Method::GET, "v3/customers?email:in=a@b.test", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let calls = emu.api_calls();
    let shown: Vec<_> = calls
        .iter()
        .map(|c| (c.path.as_str(), c.status, c.fault.map(|(f, _)| f)))
        .collect();
    assert_eq!(
        shown,
        [
            ("v2/time", Some(200), None),
            ("v3/customers", Some(503), Some(Fault::Status(503))),
            ("v3/customers", Some(503), Some(Fault::Status(503))),
            ("v3/customers", Some(200), None),
        ]
    );
    assert_eq!(calls[3].query, "email:in=a@b.test");
}

/// CONTRACT.md §6: a 429 with no rate-limit headers is load shedding.
#[tokio::test]
async fn a_429_without_headers_has_none() {
    let emu = emulator();
    emu.inject(FaultRule::next(
        1,
        Method::POST,
        "v3/customers",
        Fault::TooManyRequestsWithoutHeaders,
    ));
    let r = call(
        &emu,
        Method::POST,
        "v3/customers",
        Some(customer("a@b.test")),
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(!r.rate_limited_headers(), "{:?}", r.headers);
    assert!(
        emu.customers().is_empty(),
        "refused before the store saw it"
    );
}

/// A 422 on create is the documented one; 409 the generic error body.
#[tokio::test]
async fn injected_refusals_have_the_api_shape() {
    let emu = emulator();
    for status in [422, 409] {
        emu.inject(FaultRule::next(
            1,
            Method::POST,
            "v3/customers",
            Fault::Status(status),
        ));
    }
    let r = call(
        &emu,
        Method::POST,
        "v3/customers",
        Some(customer("a@b.test")),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        r.json()["errors"],
        json!({".customer_create": "Error creating customers"})
    );
    let r = call(
        &emu,
        Method::POST,
        "v3/customers",
        Some(customer("a@b.test")),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.json()["status"], 409);
    assert!(emu.customers().is_empty());
}

/// After processing: the change is made and the answer replaced.
#[tokio::test]
async fn a_fault_after_processing_keeps_the_change() {
    let emu = emulator();
    let rule = FaultRule::next(1, Method::POST, "v3/customers", Fault::Status(502));
    emu.inject(rule.when(When::After));
    let r = call(
        &emu,
        Method::POST,
        "v3/customers",
        Some(customer("a@b.test")),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(emu.customers().len(), 1);

    emu.inject(FaultRule::next(
        1,
        Method::POST,
        "v3/customers",
        Fault::ConnectionReset,
    ));
    let r = call(
        &emu,
        Method::POST,
        "v3/customers",
        Some(customer("b@b.test")),
    )
    .await;
    assert!(r.body.is_err(), "the answer never arrives");
    assert_eq!(emu.customers().len(), 2);
    assert_eq!(emu.api_calls()[1].status, None);
}

/// Empty strings as `null`, unknown fields, and `meta: []`; failures are left alone.
#[tokio::test]
async fn odd_json_changes_only_successful_answers() {
    let emu = emulator();
    emu.set_faults(FaultConfig {
        odd_json: true,
        ..FaultConfig::default()
    });
    call(
        &emu,
        Method::POST,
        "v3/customers",
        Some(customer("a@b.test")),
    )
    .await;
    let r = call(&emu, Method::GET, "v3/customers", None).await;
    let body = r.json();
    assert_eq!(body["meta"], json!([]));
    let c = &body["data"][0];
    assert_eq!(c["email"], "a@b.test");
    assert_eq!(c["company"], Value::Null);
    assert!(c.get("x_unannounced").is_some());
    let r = call(&emu, Method::POST, "v3/customers", Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.json().get("x_unannounced").is_none());
}

async fn serve(emu: &Emulator) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/stores/abc123/", listener.local_addr().unwrap());
    let router = emu.api_router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

/// Over a real connection: the reset is a transport error, and the slow body's headers
/// arrive while its body does not.
#[tokio::test]
async fn resets_and_slow_bodies_over_real_connections() {
    let emu = emulator();
    let base = serve(&emu).await;
    let http = reqwest::Client::new();
    let get = || {
        http.get(format!("{base}v2/time"))
            .header("X-Auth-Token", TOKEN)
            .timeout(Duration::from_millis(500))
    };
    emu.inject(FaultRule::next(
        1,
        Method::GET,
        "v2/time",
        Fault::ConnectionReset,
    ));
    let reset = match get().send().await {
        Ok(r) => r.bytes().await.err(),
        Err(e) => Some(e),
    };
    assert!(reset.is_some_and(|e| !e.is_timeout()));

    emu.inject(FaultRule::next(
        1,
        Method::GET,
        "v2/time",
        Fault::SlowBody(Duration::from_secs(3)),
    ));
    let r = get().send().await.expect("headers arrive at once");
    assert_eq!(r.status(), StatusCode::OK);
    let e = r.bytes().await.unwrap_err();
    assert!(e.is_timeout(), "{e:?}");

    let r = get().send().await.unwrap();
    assert!(r.json::<Value>().await.unwrap()["time"].is_i64());
}

/// CONTRACT.md §2.3: a fourth concurrent `PUT /v3/customers` is refused.
#[tokio::test]
async fn a_fourth_concurrent_put_is_refused() {
    let emu = emulator();
    let c = emu.seed_customer(bigcommerce_wire::CustomerPost {
        email: "a@b.test".into(),
        first_name: "A".into(),
        last_name: "B".into(),
        company: None,
        customer_group_id: None,
        origin_channel_id: None,
        channel_ids: None,
        trigger_account_created_notification: None,
    });
    let base = serve(&emu).await;
    emu.inject(FaultRule::next(
        4,
        Method::PUT,
        "v3/customers",
        Fault::Latency(Duration::from_millis(500)),
    ));
    let http = reqwest::Client::new();
    let puts: Vec<_> = (0..4)
        .map(|_| {
            let request = http
                .put(format!("{base}v3/customers"))
                .header("X-Auth-Token", TOKEN)
                .json(&json!([{"id": c.id, "first_name": "Z"}]));
            tokio::spawn(async move { request.send().await.unwrap().status() })
        })
        .collect();
    let mut statuses = Vec::new();
    for p in puts {
        statuses.push(p.await.unwrap().as_u16());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 200, 429]);
}
