//! REST API tests (CONTRACT.md §8 items 1-11, 13), through the router with `oneshot`.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::bigcommerce::{EmulatedChannel, Emulator, EmulatorConfig};
use bigcommerce_wire::{
    CustomerCollectionResponse, CustomerGroupFull, CustomerPost, ErrorResponse, Time,
    rate_limit_headers as rl,
};

const TOKEN: &str = "test-access-token";

fn emulator() -> Emulator {
    let mut config = EmulatorConfig::new("abc123", TOKEN, "client-id", "client-secret");
    config.channels.push(EmulatedChannel {
        id: 2,
        name: "Wholesale shop".to_owned(),
        allow_global_logins: false,
    });
    Emulator::new(config)
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    fn error(&self) -> ErrorResponse {
        serde_json::from_slice(&self.body).unwrap()
    }
    fn collection(&self) -> CustomerCollectionResponse {
        serde_json::from_slice(&self.body).unwrap()
    }
}

async fn send(
    emu: &Emulator,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("X-Auth-Token", t);
    }
    let body = match body {
        Some(b) => {
            req = req.header("Content-Type", "application/json");
            Body::from(serde_json::to_vec(&b).unwrap())
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
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

async fn api(emu: &Emulator, method: &str, path_and_query: &str, body: Option<Value>) -> Reply {
    send(
        emu,
        method,
        &format!("/stores/abc123{path_and_query}"),
        Some(TOKEN),
        body,
    )
    .await
}

async fn get(emu: &Emulator, path_and_query: &str) -> Reply {
    api(emu, "GET", path_and_query, None).await
}

/// `GET path` with `token` as `X-Auth-Token`.
async fn get_as(emu: &Emulator, path: &str, token: Option<&str>) -> Reply {
    send(emu, "GET", path, token, None).await
}

fn post(email: &str, first: &str, last: &str) -> CustomerPost {
    CustomerPost {
        email: email.to_owned(),
        first_name: first.to_owned(),
        last_name: last.to_owned(),
        company: None,
        customer_group_id: None,
        origin_channel_id: None,
        channel_ids: None,
        trigger_account_created_notification: None,
    }
}

fn assert_rate_headers(headers: &HeaderMap) {
    for name in [
        rl::TIME_WINDOW_MS,
        rl::TIME_RESET_MS,
        rl::REQUESTS_QUOTA,
        rl::REQUESTS_LEFT,
    ] {
        assert!(headers.contains_key(name), "missing {name}");
    }
}

#[tokio::test]
async fn missing_or_wrong_token_is_401_with_rate_headers() {
    let emu = emulator();
    let none = get_as(&emu, "/stores/abc123/v3/customers", None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_rate_headers(&none.headers);
    let wrong = get_as(&emu, "/stores/abc123/v3/customers", Some("nope")).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(emu.api_request_count(), 2);
}

#[tokio::test]
async fn unknown_store_hash_is_404() {
    let emu = emulator();
    let r = send(&emu, "GET", "/stores/other/v3/customers", Some(TOKEN), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_rate_headers(&r.headers);
}

#[tokio::test]
async fn there_is_no_single_customer_route() {
    let emu = emulator();
    emu.seed_customer(post("a@example.com", "A", "B"));
    let r = get(&emu, "/v3/customers/1").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn rate_limit_headers_count_down_then_429() {
    let emu = emulator();
    emu.set_rate_limit(2, Duration::from_secs(30));
    let first = get(&emu, "/v3/customers").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.headers[rl::REQUESTS_QUOTA], "2");
    assert_eq!(first.headers[rl::REQUESTS_LEFT], "1");
    assert_eq!(first.headers[rl::TIME_WINDOW_MS], "30000");
    let second = get(&emu, "/v3/customers").await;
    assert_eq!(second.headers[rl::REQUESTS_LEFT], "0");
    let third = get(&emu, "/v3/customers").await;
    assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS);
    assert_rate_headers(&third.headers);
    let retry: u64 = third.headers[rl::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry));
    let body = third.json();
    assert_eq!(body["status"], 429);
    assert_eq!(body["title"], "Too many requests");
    assert_eq!(emu.api_request_count(), 3);
}

#[tokio::test]
async fn quota_refreshes_after_the_window() {
    let emu = emulator();
    emu.set_rate_limit(1, Duration::from_millis(50));
    assert_eq!(get(&emu, "/v2/time").await.status, StatusCode::OK);
    assert_eq!(
        get(&emu, "/v2/time").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(get(&emu, "/v2/time").await.status, StatusCode::OK);
}

#[tokio::test]
async fn get_filters_email_case_insensitively() {
    let emu = emulator();
    emu.seed_customer(post("Ana.Lim@Example.com", "Ana", "Lim"));
    emu.seed_customer(post("bo@example.com", "Bo", "Kent"));
    let r = get(&emu, "/v3/customers?email:in=%20ana.lim@example.COM%20").await;
    assert_eq!(r.status, StatusCode::OK);
    let c = r.collection();
    assert_eq!(c.data.len(), 1);
    assert_eq!(c.data[0].email, "Ana.Lim@Example.com");
    let p = c.meta.pagination.unwrap();
    assert_eq!(
        (p.total, p.count, p.per_page, p.current_page, p.total_pages),
        (1, 1, 50, 1, 1)
    );
    assert!(
        c.meta.cursor_pagination.is_some(),
        "page 1 carries cursor_pagination"
    );
}

#[tokio::test]
async fn get_filters_by_id_name_and_group() {
    let emu = emulator();
    let a = emu.seed_customer(post("a@example.com", "Ada", "Lovelace"));
    let b = emu.seed_customer(CustomerPost {
        customer_group_id: Some(2),
        ..post("b@example.com", "Grace", "Hopper")
    });
    let r = get(&emu, &format!("/v3/customers?id:in={},{}", a.id, b.id)).await;
    assert_eq!(r.collection().data.len(), 2);
    let r = get(&emu, "/v3/customers?name:like=ce%20hop").await;
    assert_eq!(r.collection().data[0].id, b.id);
    let r = get(&emu, "/v3/customers?customer_group_id:in=2").await;
    assert_eq!(r.collection().data.len(), 1);
    let r = get(&emu, "/v3/customers?email:in=nobody@example.com").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.collection().data.is_empty());
    let r = get(&emu, "/v3/customers?sort=last_name:asc").await;
    assert_eq!(r.collection().data[0].last_name, "Hopper");
}

#[tokio::test]
async fn get_refuses_bad_filter_values() {
    let emu = emulator();
    for query in [
        "id:in=1,x",
        "limit=251",
        "limit=0",
        "sort=email:asc",
        "page=0",
        "include=bogus",
    ] {
        let r = get(&emu, &format!("/v3/customers?{query}")).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        let e = r.error();
        assert_eq!(e.status, 422);
        assert!(!e.title.is_empty() && !e.error_type.is_empty());
    }
}

#[tokio::test]
async fn get_paginates() {
    let emu = emulator();
    for i in 0..5 {
        emu.seed_customer(post(&format!("c{i}@example.com"), "C", &format!("N{i}")));
    }
    let r = get(&emu, "/v3/customers?limit=2&page=2").await.collection();
    let p = r.meta.pagination.unwrap();
    assert_eq!(
        (p.total, p.count, p.per_page, p.current_page, p.total_pages),
        (5, 2, 2, 2, 3)
    );
    assert_eq!(p.links.previous.as_deref(), Some("?page=1&limit=2"));
    assert_eq!(p.links.next.as_deref(), Some("?page=3&limit=2"));
    assert!(
        r.meta.cursor_pagination.is_none(),
        "only page 1 carries cursor_pagination"
    );
    assert_eq!(r.data.iter().map(|c| c.id).collect::<Vec<_>>(), [3, 4]);

    let first = get(&emu, "/v3/customers?limit=2").await.collection();
    let cursor = first.meta.cursor_pagination.unwrap();
    let after = cursor.end_cursor.unwrap();
    let next = get(&emu, &format!("/v3/customers?limit=2&after={after}"))
        .await
        .collection();
    assert!(next.meta.pagination.is_none());
    assert_eq!(next.data.iter().map(|c| c.id).collect::<Vec<_>>(), [3, 4]);
}

#[tokio::test]
async fn post_creates_with_server_set_fields() {
    let emu = emulator();
    let body = json!([{
        "email": "new@example.com", "first_name": "New", "last_name": "Person",
        "trigger_account_created_notification": false,
        "authentication": {"new_password": "s3cret-Passw0rd"}
    }]);
    let r = api(&emu, "POST", "/v3/customers", Some(body)).await;
    assert_eq!(r.status, StatusCode::OK);
    let raw = r.json();
    assert_eq!(raw["meta"], json!({}));
    assert!(raw["data"][0]["channel_ids"].is_null());
    assert!(
        raw["data"][0]
            .get("trigger_account_created_notification")
            .is_none()
    );
    assert!(
        !String::from_utf8_lossy(&r.body).contains("s3cret"),
        "new_password is write-only"
    );
    let c = &r.collection().data[0];
    assert_eq!(c.id, 1);
    assert_eq!(c.origin_channel_id, Some(1));
    assert_eq!(c.customer_group_id, 0);
    assert_eq!(c.registration_ip_address, "");
    assert!(c.date_created.ends_with('Z') && c.date_created.contains('T'));
    assert_eq!(
        c.authentication.as_ref().map(|a| a.force_password_reset),
        Some(false)
    );
    let stored = emu.stored_customers();
    assert_eq!(stored[0].trigger_account_created_notification, Some(false));
    assert!(stored[0].password_set);

    let r = api(&emu, "POST", "/v3/customers", Some(json!([{"email": "two@example.com", "first_name": "T", "last_name": "W", "channel_ids": [2]}]))).await;
    assert_eq!(r.collection().data[0].id, 2);
    assert_eq!(r.collection().data[0].channel_ids, Some(vec![2]));
}

#[tokio::test]
async fn post_body_must_be_an_array_of_at_most_ten() {
    let emu = emulator();
    let one = json!({"email": "a@example.com", "first_name": "A", "last_name": "B"});
    let r = api(&emu, "POST", "/v3/customers", Some(one.clone())).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = api(&emu, "POST", "/v3/customers", Some(json!([]))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let eleven: Vec<Value> = (0..11)
        .map(|i| json!({"email": format!("u{i}@example.com"), "first_name": "A", "last_name": "B"}))
        .collect();
    let r = api(&emu, "POST", "/v3/customers", Some(Value::Array(eleven))).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        r.error().title,
        "The request payload is too large. The maximum number of items allowed in the array is 10."
    );
    assert!(emu.customers().is_empty());
}

#[tokio::test]
async fn post_malformed_json_is_400_and_wrong_content_type_415() {
    let emu = emulator();
    let post = |content_type: &str, body: &'static str| {
        let req = Request::post("/stores/abc123/v3/customers")
            .header("x-auth-token", TOKEN)
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap();
        emu.api_router().oneshot(req)
    };
    let malformed = post("application/json", "[{").await.unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    let not_json = post("text/plain", "[]").await.unwrap();
    assert_eq!(not_json.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn post_missing_first_name_creates_nothing() {
    let emu = emulator();
    let body = json!([
        {"email": "ok@example.com", "first_name": "Ok", "last_name": "Fine"},
        {"email": "bad@example.com", "last_name": "NoFirst"},
        {"email": "blank@example.com", "first_name": "  ", "last_name": "X"},
        {"email": "not-an-email", "first_name": "X", "last_name": "Y"}
    ]);
    let r = api(&emu, "POST", "/v3/customers", Some(body)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let e = r.error();
    assert_eq!(e.title, "Create customers failed.");
    assert!(e.errors.get("1.first_name").is_some());
    assert!(e.errors.get("2.first_name").is_some());
    assert!(e.errors.get("3.email").is_some());
    assert!(emu.customers().is_empty(), "the batch is atomic");
}

/// CONTRACT.md §2.3: the only documented create failure, and the default answer.
#[tokio::test]
async fn post_duplicate_email_is_the_documented_422() {
    let emu = emulator();
    emu.seed_customer(post("Taken@example.com", "T", "K"));
    let r = api(
        &emu,
        "POST",
        "/v3/customers",
        Some(json!([{"email": "taken@EXAMPLE.com", "first_name": "A", "last_name": "B"}])),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        r.json(),
        json!({
            "status": 422,
            "title": "Create customers failed.",
            "type": "/api-docs/getting-started/api-status-codes",
            "errors": {".customer_create": "Error creating customers"}
        })
    );
    assert_eq!(emu.customers().len(), 1);
}

#[tokio::test]
async fn post_duplicate_email_can_name_the_email() {
    let mut config = EmulatorConfig::new("abc123", TOKEN, "client-id", "client-secret");
    config.duplicate_email_answer = crate::bigcommerce::DuplicateEmailAnswer::ItemLevel;
    let emu = Emulator::new(config);
    emu.seed_customer(post("Taken@example.com", "T", "K"));
    let r = api(
        &emu,
        "POST",
        "/v3/customers",
        Some(json!([{"email": "taken@EXAMPLE.com", "first_name": "A", "last_name": "B"}])),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let e = r.error();
    assert_eq!(e.error_type, "/api-docs/getting-started/api-status-codes");
    assert_eq!(
        e.errors["0.email"],
        "The email address 'taken@EXAMPLE.com' is already in use by another customer"
    );
    // Within one batch too.
    let r = api(
        &emu,
        "POST",
        "/v3/customers",
        Some(json!([
            {"email": "x@example.com", "first_name": "A", "last_name": "B"},
            {"email": "X@example.com", "first_name": "A", "last_name": "B"}
        ])),
    )
    .await;
    assert!(r.error().errors.get("1.email").is_some());
    assert_eq!(emu.customers().len(), 1);
}

#[tokio::test]
async fn post_channel_ids_must_be_non_empty_and_exist() {
    let emu = emulator();
    for ids in [json!([]), json!([9])] {
        let r = api(&emu, "POST", "/v3/customers", Some(json!([{"email": "c@example.com", "first_name": "A", "last_name": "B", "channel_ids": ids}]))).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.error().errors.get("0.channel_ids").is_some());
    }
    assert!(emu.customers().is_empty());
}

#[tokio::test]
async fn put_updates_given_fields_and_bumps_date_modified() {
    let emu = emulator();
    let a = emu.seed_customer(post("a@example.com", "Ada", "L"));
    let b = emu.seed_customer(post("b@example.com", "Bob", "M"));
    emu.set_clock_skew(120);
    let r = api(&emu, "PUT", "/v3/customers", Some(json!([{"id": a.id, "first_name": "Augusta", "channel_ids": [1, 2], "origin_channel_id": 2}]))).await;
    assert_eq!(r.status, StatusCode::OK);
    let updated = &r.collection().data[0];
    assert_eq!(updated.first_name, "Augusta");
    assert_eq!(updated.last_name, "L");
    assert_eq!(updated.channel_ids, Some(vec![1, 2]));
    assert_eq!(
        updated.origin_channel_id,
        Some(1),
        "origin_channel_id is read-only"
    );
    assert_eq!(updated.date_created, a.date_created);
    assert!(updated.date_modified > a.date_modified);

    let r = api(
        &emu,
        "PUT",
        "/v3/customers",
        Some(json!([{"id": a.id, "channel_ids": null}])),
    )
    .await;
    assert_eq!(r.collection().data[0].channel_ids, None);

    for (body, key) in [
        (json!([{"first_name": "NoId"}]), "0.id"),
        (json!([{"id": 999, "first_name": "Ghost"}]), "0.id"),
        (json!([{"id": a.id, "email": "B@example.com"}]), "0.email"),
        (json!([{"id": a.id, "channel_ids": []}]), "0.channel_ids"),
    ] {
        let r = api(&emu, "PUT", "/v3/customers", Some(body)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.error().errors.get(key).is_some(), "{key}");
    }
    assert_eq!(emu.customers()[1], b);
}

#[tokio::test]
async fn delete_without_query_deletes_nothing() {
    let emu = emulator();
    let a = emu.seed_customer(post("a@example.com", "A", "B"));
    emu.seed_customer(post("b@example.com", "A", "B"));
    let r = api(&emu, "DELETE", "/v3/customers", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(emu.customers().len(), 2);
    let r = api(&emu, "DELETE", "/v3/customers?id:in=abc", None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = api(
        &emu,
        "DELETE",
        &format!("/v3/customers?id:in={},77", a.id),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.body.is_empty());
    assert_eq!(emu.customers().len(), 1);
}

#[tokio::test]
async fn time_follows_the_skewed_clock() {
    let emu = emulator();
    let system = time::OffsetDateTime::now_utc().unix_timestamp();
    let t: Time = serde_json::from_slice(&get(&emu, "/v2/time").await.body).unwrap();
    assert!((t.time - system).abs() <= 2);
    emu.set_clock_skew(-300);
    let t: Time = serde_json::from_slice(&get(&emu, "/v2/time").await.body).unwrap();
    assert!((t.time - (system - 300)).abs() <= 2);
}

#[tokio::test]
async fn customer_groups_are_a_bare_array() {
    let emu = emulator();
    let r = get(&emu, "/v2/customer_groups").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.json().is_array());
    let groups: Vec<CustomerGroupFull> = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(
        (groups[0].id, groups[0].name.as_str(), groups[0].is_default),
        (1, "Retail", true)
    );
    assert_eq!(
        (groups[1].id, groups[1].name.as_str(), groups[1].is_default),
        (2, "Wholesale", false)
    );
    assert_eq!(r.json()[0]["category_access"], json!({"type": "all"}));
    assert!(!groups[0].date_created.contains('T'), "V2 date format");
}

#[tokio::test]
async fn forbidden_paths_answer_403_like_a_missing_scope() {
    let mut config = EmulatorConfig::new("abc123", TOKEN, "client-id", "client-secret");
    config.forbidden_paths = vec!["v2/customer_groups".to_owned()];
    let emu = Emulator::new(config);
    let r = get(&emu, "/v2/customer_groups").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.error().status, 403);
    // Other paths keep working, and a wrong token is still a 401, not a 403.
    assert_eq!(get(&emu, "/v2/time").await.status, StatusCode::OK);
    let r = get_as(&emu, "/stores/abc123/v2/customer_groups", Some("wrong")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

/// CONTRACT.md §2.2: `company` 0-255, `phone` 0-50, and each field of its JSON type; the
/// batch is refused whole.
#[tokio::test]
async fn post_checks_field_lengths_and_types() {
    let emu = emulator();
    let item = |field: &str, value: Value| {
        let mut item = json!({"email": "a@example.com", "first_name": "A", "last_name": "B"});
        item[field] = value;
        json!([item])
    };
    for (field, value) in [
        ("company", json!("c".repeat(256))),
        ("phone", json!("1".repeat(51))),
        ("company", json!(42)),
        ("customer_group_id", json!("1")),
        ("channel_ids", json!("1")),
        ("channel_ids", json!(["1"])),
        ("trigger_account_created_notification", json!("no")),
    ] {
        let r = api(
            &emu,
            "POST",
            "/v3/customers",
            Some(item(field, value.clone())),
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {value}"
        );
        assert!(
            r.error().errors.get(format!("0.{field}")).is_some(),
            "{field}"
        );
    }
    assert!(emu.customers().is_empty());
    let r = api(
        &emu,
        "POST",
        "/v3/customers",
        Some(item("company", json!("c".repeat(255)))),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
}

/// Request bodies are read by the spec's names, not through the gateway's wire types: a
/// field spelt otherwise is not understood.
#[tokio::test]
async fn post_fields_are_read_by_their_spec_names() {
    let emu = emulator();
    let body = json!([{"email": "a@example.com", "first_name": "A", "last_name": "B",
        "channelIds": [2], "customerGroupId": 2}]);
    let r = api(&emu, "POST", "/v3/customers", Some(body)).await;
    assert_eq!(r.status, StatusCode::OK);
    let c = &emu.customers()[0];
    assert_eq!((c.channel_ids.clone(), c.customer_group_id), (None, 0));
}
