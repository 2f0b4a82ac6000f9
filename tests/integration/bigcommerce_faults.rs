//! First sign-ins against a BigCommerce that answers the way the docs allow, not the way
//! the happy path hopes: the documented (uninformative) 422 on a duplicate create, odd but
//! valid JSON, and faults (5xx, latency, 429 without headers, connection resets, slow
//! bodies). Every path ends either signed in or on a clear page with a reason code, with
//! an audit row saying what happened and nothing half-created.

use std::time::Duration;

use bc_sso_sandbox::bigcommerce::{Fault, FaultConfig, FaultRule, When};
use reqwest::{Method, StatusCode};

use crate::common::{Env, new_browser};

/// The gateway's HTTP timeout in these tests; injected latency and slow bodies exceed it.
const TIMEOUT: Duration = Duration::from_secs(1);
const LATE: Duration = Duration::from_millis(1600);

async fn env() -> Env {
    Env::configured(|c| c.server.http_timeout_secs = Some(TIMEOUT.as_secs())).await
}

/// Statuses of the calls to `method v3/customers` (`None`: connection dropped).
fn statuses(env: &Env, method: Method) -> Vec<Option<u16>> {
    env.demo
        .emulator
        .api_calls()
        .into_iter()
        .filter(|c| c.method == method && c.path == "v3/customers")
        .map(|c| c.status)
        .collect()
}

fn inject(env: &Env, count: u32, method: Method, fault: Fault) -> FaultRule {
    let rule = FaultRule::next(count, method, "v3/customers", fault);
    env.demo.emulator.inject(rule.clone());
    rule
}

/// `(kind, reason)` of the sign-in's events, after any the test started with.
fn kinds(events: &[(String, Option<String>)]) -> Vec<(&str, Option<&str>)> {
    events
        .iter()
        .map(|(k, r)| (k.as_str(), r.as_deref()))
        .collect()
}

/// The audit trail as `(kind, reason)`, oldest first.
async fn audit(env: &Env) -> Vec<(String, Option<String>)> {
    let mut events = env.demo.state.db.audit_events(100).await.unwrap();
    events.reverse();
    events
        .into_iter()
        .map(|e| (e.kind.as_str().to_owned(), e.reason))
        .collect()
}

/// Someone else (another replica's sign-in, the merchant, an import) creates the customer
/// between our lookup and our create. BigCommerce then answers the documented 422
/// (`.customer_create`, which says nothing about the email): the gateway looks the email up
/// again and uses the customer found, as one it did not create. (Two sign-ins of one
/// replica never race: the first sign-in queue creates each email once, `storm.rs`.)
#[tokio::test]
async fn a_customer_created_between_lookup_and_create_is_found_after_the_documented_422() {
    let env = env().await;
    // The lookup is answered 300 ms after the store read it: the customer appears in
    // between (as soon as the store has read it), so the race is certain, not a matter of
    // luck or of how busy the machine is.
    inject(
        &env,
        1,
        Method::GET,
        Fault::Latency(Duration::from_millis(300)),
    );
    let browser = new_browser();
    let callback = env.callback_with(&browser, "", "grace").await;
    let signing_in = tokio::spawn(async move { browser.get(callback).send().await.unwrap() });
    for _ in 0..1000 {
        if !statuses(&env, Method::GET).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    env.seed_customer("grace@example.com", None);
    let response = signing_in.await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(env.demo.emulator.customers().len(), 1);
    assert_eq!(statuses(&env, Method::POST), [Some(422)]);
    assert_eq!(
        kinds(&audit(&env).await),
        [
            (
                "customer_linked_password_reset",
                Some("create_conflict_customer_found")
            ),
            ("sign_in_succeeded", None)
        ]
    );
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

async fn assert_no_links(env: &Env) {
    let links = env.api_get("/admin/api/links?email=example.com").await;
    assert_eq!(links["data"], serde_json::json!([]), "{links}");
}

/// A `409` (or any refusal) of the create whose email nobody has: the same clear page.
#[tokio::test]
async fn a_409_on_create_with_no_customer_found_is_a_clear_page() {
    let env = env().await;
    inject(&env, 1, Method::POST, Fault::Status(409));
    env.refused(
        "",
        "ada",
        StatusCode::BAD_GATEWAY,
        "bigcommerce_customer_not_created",
    )
    .await;
    assert!(env.demo.emulator.customers().is_empty());
    assert_eq!(statuses(&env, Method::POST), [Some(409)]);
    assert_eq!(statuses(&env, Method::GET).len(), 2, "looked up again");
    assert_no_links(&env).await;
}

/// `null` for empty strings, fields nobody documented and `meta: []` on every answer: a
/// first sign-in creates, a second links an existing customer, both succeed.
#[tokio::test]
async fn null_unknown_fields_and_odd_meta_are_tolerated() {
    let env = env().await;
    env.seed_customer("grace@example.com", None);
    env.demo.emulator.set_faults(FaultConfig {
        odd_json: true,
        ..FaultConfig::default()
    });
    let (_, account) = env.follow(env.signed_in("", "ada").await).await;
    assert!(account.body.contains("ada@example.com"), "{}", account.body);
    let (_, account) = env.follow(env.signed_in("", "grace").await).await;
    assert!(
        account.body.contains("grace@example.com"),
        "{}",
        account.body
    );
    assert_eq!(env.demo.emulator.customers().len(), 2);
    let events = audit(&env).await;
    let kinds = kinds(&events);
    assert!(kinds.contains(&("customer_created", None)), "{kinds:?}");
    assert!(
        kinds.contains(&("customer_linked_password_reset", None)),
        "{kinds:?}"
    );
}

/// One fault, then a clean answer: the sign-in succeeds on the one retry.
#[tokio::test]
async fn a_lookup_that_fails_once_is_retried() {
    for fault in [
        Fault::Status(502),
        Fault::Status(503),
        Fault::Status(504),
        Fault::Latency(LATE),
        Fault::SlowBody(LATE),
        Fault::ConnectionReset,
        Fault::TooManyRequestsWithoutHeaders,
    ] {
        let env = env().await;
        inject(&env, 1, Method::GET, fault);
        env.signed_in("", "ada").await;
        assert_eq!(statuses(&env, Method::GET).len(), 2, "{fault:?}");
        assert_eq!(env.demo.emulator.customers().len(), 1, "{fault:?}");
        let events = audit(&env).await;
        assert_eq!(
            kinds(&events),
            [("customer_created", None), ("sign_in_succeeded", None)],
            "{fault:?}"
        );
    }
}

/// The same fault twice: a clear page whose reason code says what happened, the audit row
/// says the same, and nothing is created or linked.
#[tokio::test]
async fn a_lookup_that_fails_twice_is_a_clear_page() {
    for (fault, status, code) in [
        (
            Fault::Status(503),
            StatusCode::BAD_GATEWAY,
            "bigcommerce_unavailable",
        ),
        (
            Fault::ConnectionReset,
            StatusCode::BAD_GATEWAY,
            "bigcommerce_unavailable",
        ),
        (
            Fault::Latency(LATE),
            StatusCode::BAD_GATEWAY,
            "bigcommerce_timeout",
        ),
        (
            Fault::SlowBody(LATE),
            StatusCode::BAD_GATEWAY,
            "bigcommerce_timeout",
        ),
    ] {
        let env = env().await;
        inject(&env, 2, Method::GET, fault);
        let page = env.refused("", "ada", status, code).await;
        assert!(page.body.contains("try again"), "{}", page.body);
        assert!(env.demo.emulator.customers().is_empty(), "{fault:?}");
        assert!(statuses(&env, Method::POST).is_empty(), "{fault:?}");
        assert_eq!(
            kinds(&audit(&env).await),
            [("sign_in_refused", Some(code))],
            "{fault:?}"
        );
        assert_no_links(&env).await;
        // The shopper can try again, and then it works.
        env.signed_in("", "ada").await;
        assert_eq!(env.demo.emulator.customers().len(), 1, "{fault:?}");
    }
}

/// The create was carried out but its answer was lost (reset, timeout, slow body, a
/// proxy's 502): the gateway never posts again blindly. It looks the email up, finds its
/// own customer, and links it; one customer, one POST.
#[tokio::test]
async fn a_create_whose_answer_is_lost_is_found_not_created_twice() {
    for fault in [
        Fault::ConnectionReset,
        Fault::Latency(LATE),
        Fault::SlowBody(LATE),
        Fault::Status(502),
    ] {
        let env = env().await;
        let rule = FaultRule::next(1, Method::POST, "v3/customers", fault).when(When::After);
        env.demo.emulator.inject(rule);
        env.signed_in("", "ada").await;
        assert_eq!(env.demo.emulator.customers().len(), 1, "{fault:?}");
        assert_eq!(statuses(&env, Method::POST).len(), 1, "{fault:?}");
        let events = audit(&env).await;
        let linked = kinds(&events);
        assert!(
            linked.contains(&(
                "customer_linked_password_reset",
                Some("create_outcome_unknown_customer_found")
            )),
            "{fault:?}: {linked:?}"
        );
        assert_eq!(linked.last(), Some(&("sign_in_succeeded", None)));
    }
}

/// A create refused before the store saw it (503, 429 without headers): looked up, then
/// created once more; one customer.
#[tokio::test]
async fn a_create_that_fails_before_the_store_sees_it_is_made_once_more() {
    for fault in [Fault::Status(503), Fault::TooManyRequestsWithoutHeaders] {
        let env = env().await;
        inject(&env, 1, Method::POST, fault);
        env.signed_in("", "ada").await;
        assert_eq!(env.demo.emulator.customers().len(), 1, "{fault:?}");
        assert_eq!(statuses(&env, Method::POST).len(), 2, "{fault:?}");
        let events = audit(&env).await;
        assert_eq!(
            kinds(&events),
            [("customer_created", None), ("sign_in_succeeded", None)],
            "{fault:?}"
        );
    }
}

/// Every create fails: a clear page, nothing created, nothing linked.
#[tokio::test]
async fn a_create_that_keeps_failing_is_a_clear_page_and_creates_nothing() {
    for (fault, status, code) in [(
        Fault::Status(503),
        StatusCode::BAD_GATEWAY,
        "bigcommerce_unavailable",
    )] {
        let env = env().await;
        inject(&env, 4, Method::POST, fault);
        env.refused("", "ada", status, code).await;
        assert!(env.demo.emulator.customers().is_empty(), "{fault:?}");
        assert_eq!(
            kinds(&audit(&env).await),
            [("sign_in_refused", Some(code))],
            "{fault:?}"
        );
        assert_no_links(&env).await;
    }
}

/// Item 6's promise: a shopper never sees a 429. Quota refusals without rate-limit headers,
/// on the lookup or on the create, are waited out (the first sign-in queue puts them back
/// at its head), and the sign-in ends signed in with one customer.
#[tokio::test]
async fn quota_refusals_are_waited_out_not_shown() {
    for (method, count) in [(Method::GET, 2), (Method::POST, 4)] {
        let env = env().await;
        inject(
            &env,
            count,
            method.clone(),
            Fault::TooManyRequestsWithoutHeaders,
        );
        env.signed_in("", "ada").await;
        assert_eq!(env.demo.emulator.customers().len(), 1, "{method}");
        let refused = statuses(&env, method.clone())
            .iter()
            .filter(|s| **s == Some(429))
            .count();
        assert_eq!(refused, count as usize, "{method}");
        assert_eq!(
            kinds(&audit(&env).await),
            [("customer_created", None), ("sign_in_succeeded", None)],
            "{method}"
        );
    }
}

/// `bc-sso-dev sandbox bigcommerce --fault-*` as an operator runs it: every API request
/// answered with the chosen 5xx, unprocessed; a rate outside 0-1 is refused at start.
#[tokio::test]
async fn the_sandbox_flags_inject_faults() {
    use tokio::io::AsyncBufReadExt;
    const BIN: &str = env!("CARGO_BIN_EXE_bc-sso-dev");
    let (api, shop) = (crate::common::free_port(), crate::common::free_port());
    let sandbox = |extra: &[&str]| {
        let mut command = tokio::process::Command::new(BIN);
        command
            .args(["sandbox", "bigcommerce", "--store-hash", "faulty"])
            .args(["--api-listen", &format!("127.0.0.1:{api}")])
            .args(["--storefront-listen", &format!("127.0.0.1:{shop}")])
            .args(extra)
            .env("BCSSO_SANDBOX_ACCESS_TOKEN", "fault-token")
            .env("BCSSO_SANDBOX_CLIENT_ID", "c")
            .env("BCSSO_SANDBOX_CLIENT_SECRET", "s")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        command
    };
    let out = sandbox(&["--fault-error-rate", "1.5"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("between 0.0 and 1.0"), "{stderr}");

    let mut child = sandbox(&["--fault-error-rate", "1", "--fault-error-status", "502"])
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        printed.push_str(&line);
        printed.push('\n');
        if line.contains("storefront of channel 1") {
            break;
        }
    }
    assert!(printed.contains("injecting faults"), "{printed}");
    let response = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{api}/stores/faulty/v2/time"))
        .header("X-Auth-Token", "fault-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert!(
        response
            .headers()
            .get("x-rate-limit-requests-left")
            .is_none()
    );
}

/// `company` is 0-255 characters at BigCommerce (CONTRACT.md §2.2), and the emulator checks
/// it: a longer company claim is cut, not turned into a refused create.
#[tokio::test]
async fn a_long_company_claim_is_cut_to_255_characters() {
    use bc_sso_dev::demo::{DemoIdp, DemoOptions};
    let mut users = bc_sso_sandbox::idp::demo_users();
    users[0].name = Some(format!("Analytical Engines {}", "x".repeat(300)));
    let options = DemoOptions {
        idp: DemoIdp::Dev { users },
        ..DemoOptions::default()
    };
    let env = Env::with(options, |c| {
        c.connections[0].company_claim = Some("name".into());
    })
    .await;
    env.signed_in("", "ada").await;
    let customers = env.demo.emulator.customers();
    assert_eq!(customers[0].company.chars().count(), 255);
    assert!(customers[0].company.starts_with("Analytical Engines x"));
}
