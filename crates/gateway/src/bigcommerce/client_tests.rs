//! Customer-group paging against a tiny server on 127.0.0.1:0 whose page size we choose:
//! the emulator has two fixed groups and no paging, so it cannot cross a page boundary.
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;

use super::*;

#[derive(Clone, Copy)]
enum Paging {
    /// `total` groups, served page by page; past the end an empty array.
    Honest { total: i64 },
    /// Like `Honest`, but past the end a `204` with no body.
    NoContentAtEnd { total: i64 },
    /// Ignores `page`: always the first `limit` groups of `total`.
    IgnoresPage { total: i64 },
    /// Never runs out.
    Endless,
}

#[derive(Clone)]
struct Mock {
    paging: Paging,
    requests: Arc<AtomicUsize>,
}

fn group(id: i64) -> CustomerGroupFull {
    CustomerGroupFull {
        id,
        name: format!("Group {id}"),
        is_default: id == 1,
        category_access: None,
        discount_rules: Vec::new(),
        date_created: String::new(),
        date_modified: String::new(),
        is_group_for_guests: false,
    }
}

async fn groups(State(mock): State<Mock>, Query(q): Query<HashMap<String, String>>) -> Response {
    mock.requests.fetch_add(1, Ordering::SeqCst);
    let num = |k: &str| q.get(k).and_then(|v| v.parse::<i64>().ok());
    let (Some(page), Some(limit)) = (num("page"), num("limit")) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let range = |total: i64, page: i64| {
        let first = (page - 1) * limit + 1;
        (first..=total.min(first + limit - 1))
            .map(group)
            .collect::<Vec<_>>()
    };
    let body = match mock.paging {
        Paging::Honest { total } => range(total, page),
        Paging::NoContentAtEnd { total } => {
            let items = range(total, page);
            if items.is_empty() {
                return StatusCode::NO_CONTENT.into_response();
            }
            items
        }
        Paging::IgnoresPage { total } => range(total, 1),
        Paging::Endless => range(i64::MAX / 2, page),
    };
    Json(body).into_response()
}

/// Serves `paging` and returns a client for it plus the request counter.
async fn serve(paging: Paging) -> (Client, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let router = axum::Router::new()
        .route("/stores/h/v2/customer_groups", axum::routing::get(groups))
        .with_state(Mock {
            paging,
            requests: requests.clone(),
        });
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (client_for(base), requests)
}

fn client_for(base: Url) -> Client {
    let store = StoreConfig {
        store_hash: "h".into(),
        api_base_url: base,
        access_token: Secret::new("t"),
        client_id: "c".into(),
        client_secret: Secret::new("s"),
        clock_check_interval: Duration::from_secs(300),
        channels: BTreeMap::new(),
    };
    let http = crate::http_client(Duration::from_secs(5)).unwrap();
    Client::new(http, &store)
}

/// SECURITY.md rule 23: an API (or something posing as it at store.api_base_url) that
/// answers without end is cut off at the cap; the body is never buffered whole.
#[tokio::test]
async fn oversized_bigcommerce_response_is_refused() {
    let (base, sent) = crate::capped_body::test_server::endless_json().await;
    let client = client_for(Url::parse(&base).unwrap());
    let err = client.customer_groups().await.unwrap_err();
    assert!(
        matches!(err, ApiError::ResponseTooLarge { limit } if limit == MAX_RESPONSE_BYTES),
        "{err:?}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let written = sent.load(Ordering::SeqCst);
    assert!(written < 8 * MAX_RESPONSE_BYTES, "{written} bytes written");
    let code = crate::error::Error::BigCommerce(err).code();
    assert_eq!(code, "bigcommerce_response_too_large");
}

#[tokio::test]
async fn oversized_bigcommerce_content_length_is_refused_before_reading() {
    let (base, _) = crate::capped_body::test_server::declares_a_gigabyte().await;
    let client = client_for(Url::parse(&base).unwrap());
    let started = std::time::Instant::now();
    let err = client.time().await.unwrap_err();
    assert!(matches!(err, ApiError::ResponseTooLarge { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

fn ids(groups: &[CustomerGroupFull]) -> Vec<i64> {
    groups.iter().map(|g| g.id).collect()
}

#[tokio::test]
async fn customer_groups_follow_pages_until_a_short_one() {
    let (client, requests) = serve(Paging::Honest { total: 5 }).await;
    let got = client.customer_groups_paged(2, 20).await.unwrap();
    assert_eq!(ids(&got), [1, 2, 3, 4, 5]);
    assert_eq!(requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn customer_groups_stop_on_an_empty_page_or_204() {
    let (client, requests) = serve(Paging::Honest { total: 4 }).await;
    assert_eq!(
        ids(&client.customer_groups_paged(2, 20).await.unwrap()),
        [1, 2, 3, 4]
    );
    assert_eq!(requests.load(Ordering::SeqCst), 3);

    let (client, requests) = serve(Paging::NoContentAtEnd { total: 4 }).await;
    assert_eq!(
        ids(&client.customer_groups_paged(2, 20).await.unwrap()),
        [1, 2, 3, 4]
    );
    assert_eq!(requests.load(Ordering::SeqCst), 3);

    // A store on a plan without groups.
    let (client, _) = serve(Paging::NoContentAtEnd { total: 0 }).await;
    assert!(client.customer_groups().await.unwrap().is_empty());
}

#[tokio::test]
async fn customer_groups_stop_when_the_server_ignores_page() {
    let (client, requests) = serve(Paging::IgnoresPage { total: 4 }).await;
    assert_eq!(
        ids(&client.customer_groups_paged(2, 20).await.unwrap()),
        [1, 2]
    );
    assert_eq!(requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn customer_groups_stop_at_the_page_cap() {
    let (client, requests) = serve(Paging::Endless).await;
    let got = client.customer_groups_paged(2, 3).await.unwrap();
    assert_eq!(ids(&got), [1, 2, 3, 4, 5, 6]);
    assert_eq!(requests.load(Ordering::SeqCst), 3);
}

#[test]
fn groups_paging_stop_condition() {
    assert!(groups_paging_done(0, 0, 250), "empty page");
    assert!(groups_paging_done(249, 249, 250), "short page");
    assert!(
        !groups_paging_done(250, 250, 250),
        "full page: ask for the next"
    );
    assert!(groups_paging_done(250, 0, 250), "full page of repeats");
}

/// CONTRACT.md §6: wait the longest of what the answer asks, in any of its spellings.
#[tokio::test]
async fn retry_waits_honour_every_header() {
    let client = client_for(Url::parse("http://127.0.0.1:9/").unwrap());
    let wait = |pairs: &[(&'static str, &'static str)]| {
        let mut headers = reqwest::header::HeaderMap::new();
        for (k, v) in pairs {
            headers.insert(*k, reqwest::header::HeaderValue::from_static(v));
        }
        client.record_limits(&headers)
    };
    assert_eq!(wait(&[]), None, "no header: the caller backs off");
    assert_eq!(wait(&[("retry-after", "3")]), Some(Duration::from_secs(3)));
    assert_eq!(
        wait(&[("x-retry-after", "2")]),
        Some(Duration::from_secs(2))
    );
    assert_eq!(
        wait(&[
            ("X-Rate-Limit-Time-Reset-Ms", "1500"),
            ("x-retry-after", "1"),
            ("retry-after", "not-a-number"),
        ]),
        Some(Duration::from_millis(1500))
    );
}

/// The emulator's API on 127.0.0.1:0 and a client for it.
async fn emulated() -> (bc_sso_sandbox::bigcommerce::Emulator, Client) {
    use bc_sso_sandbox::bigcommerce::{Emulator, EmulatorConfig};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    let emu = Emulator::new(EmulatorConfig::new("h", "t", "c", "s"));
    let router = emu.api_router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let client = client_for(base).with_retry_backoff(Duration::from_millis(20));
    (emu, client)
}

/// CONTRACT.md §2.3: at most 3 concurrent `PUT /v3/customers`. Eight updates at once
/// (each answered 300 ms late) all succeed, and the emulator, which refuses a fourth
/// concurrent PUT, never had to.
#[tokio::test]
async fn at_most_three_puts_run_at_once() {
    use bc_sso_sandbox::bigcommerce::{Fault, FaultRule};
    let (emu, client) = emulated().await;
    let c = emu.seed_customer(CustomerPost {
        email: "a@b.test".into(),
        first_name: "A".into(),
        last_name: "B".into(),
        company: None,
        customer_group_id: None,
        origin_channel_id: None,
        channel_ids: None,
        trigger_account_created_notification: None,
    });
    emu.inject(FaultRule::next(
        8,
        Method::PUT,
        "v3/customers",
        Fault::Latency(Duration::from_millis(300)),
    ));
    let client = Arc::new(client);
    let puts: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.force_password_reset(c.id).await })
        })
        .collect();
    for p in puts {
        p.await.unwrap().unwrap();
    }
    let statuses: Vec<_> = emu.api_calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [Some(200); 8]);
}

/// Lookups ask for the address as given and lowercased, and never send `limit`.
#[tokio::test]
async fn lookups_ask_for_both_forms_without_a_limit() {
    let (emu, client) = emulated().await;
    client
        .customers_by_email(&["Ada.L@example.com".to_owned()])
        .await
        .unwrap();
    client
        .customers_by_email(&["ada@example.com".to_owned()])
        .await
        .unwrap();
    let queries: Vec<String> = emu.api_calls().into_iter().map(|c| c.query).collect();
    assert_eq!(
        queries,
        [
            "email%3Ain=Ada.L%40example.com%2Cada.l%40example.com",
            "email%3Ain=ada%40example.com"
        ]
    );
}

/// A POST is never sent twice by the transport when its outcome is unknown; a GET is.
#[tokio::test]
async fn only_idempotent_calls_are_retried_after_a_5xx() {
    use bc_sso_sandbox::bigcommerce::{Fault, FaultRule};
    let (emu, client) = emulated().await;
    emu.inject(FaultRule::next(
        1,
        Method::GET,
        "v2/time",
        Fault::Status(503),
    ));
    assert!(client.time().await.is_ok());
    emu.inject(FaultRule::next(
        1,
        Method::POST,
        "v3/customers",
        Fault::Status(503),
    ));
    let post = CustomerPost {
        email: "a@b.test".into(),
        first_name: "A".into(),
        last_name: "B".into(),
        company: None,
        customer_group_id: None,
        origin_channel_id: None,
        channel_ids: None,
        trigger_account_created_notification: None,
    };
    let err = client
        .create_customers(std::slice::from_ref(&post))
        .await
        .unwrap_err();
    assert!(err.outcome_unknown(), "{err:?}");
    let calls: Vec<_> = emu
        .api_calls()
        .iter()
        .map(|c| (c.method.to_string(), c.status))
        .collect();
    assert_eq!(
        calls,
        [
            ("GET".to_owned(), Some(503)),
            ("GET".to_owned(), Some(200)),
            ("POST".to_owned(), Some(503)),
        ]
    );
}
