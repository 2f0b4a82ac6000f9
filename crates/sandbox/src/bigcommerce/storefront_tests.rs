//! Storefront tests (CONTRACT.md §5, §8 items 15-16). Tokens are minted here with
//! jsonwebtoken directly, never with the gateway's minting code.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
use base64::Engine as _;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::bigcommerce::{EmulatedChannel, Emulator, EmulatorConfig, LoginOutcome, RefusalReason};
use bigcommerce_wire::{CustomerFull, CustomerPost};

const SECRET: &str = "client-secret";
const CLIENT_ID: &str = "client-id";
const STORE: &str = "abc123";
const FAILED: &str = "/login.php?error=invalid_login";

fn emulator() -> Emulator {
    let mut config = EmulatorConfig::new(STORE, "token", CLIENT_ID, SECRET);
    config.channels.push(EmulatedChannel {
        id: 2,
        name: "Wholesale shop".to_owned(),
        allow_global_logins: false,
    });
    config.gateway_url = Some(url::Url::parse("http://127.0.0.1:8080/").unwrap());
    Emulator::new(config)
}

fn customer(emu: &Emulator, email: &str, channel_ids: Option<Vec<i64>>) -> CustomerFull {
    emu.seed_customer(CustomerPost {
        email: email.to_owned(),
        first_name: "Ana".to_owned(),
        last_name: "Lim".to_owned(),
        company: None,
        customer_group_id: None,
        origin_channel_id: None,
        channel_ids,
        trigger_account_created_notification: Some(false),
    })
}

fn now(emu: &Emulator) -> i64 {
    emu.now().unix_timestamp()
}

/// Claims as §5.2 documents them, for customer `id` on channel 1.
fn claims(emu: &Emulator, customer_id: i64) -> Value {
    json!({
        "iss": CLIENT_ID, "iat": now(emu), "jti": uuid::Uuid::new_v4().to_string(),
        "operation": "customer_login", "store_hash": STORE, "customer_id": customer_id,
        "channel_id": 1, "redirect_to": "/account.php"
    })
}

fn sign(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
    /// `SHOP_SESSION_TOKEN=…` as a browser would send it back.
    fn cookie(&self) -> Option<String> {
        let set = self.headers.get(header::SET_COOKIE)?.to_str().unwrap();
        Some(set.split(';').next().unwrap().to_owned())
    }
}

async fn get(emu: &Emulator, channel: i64, path: &str, cookie: Option<&str>) -> Reply {
    get_from(
        emu,
        channel,
        path,
        cookie,
        Some("127.0.0.1:50000".parse().unwrap()),
    )
    .await
}

async fn get_from(
    emu: &Emulator,
    channel: i64,
    path: &str,
    cookie: Option<&str>,
    peer: Option<SocketAddr>,
) -> Reply {
    let mut req = Request::get(path);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    let mut req = req.body(Body::empty()).unwrap();
    if let Some(peer) = peer {
        req.extensions_mut().insert(ConnectInfo(peer));
    }
    let resp = emu.storefront_router(channel).oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    Reply {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

/// Presents `claims` at `channel`: signed in, on the way to the account page.
async fn assert_signed_in(emu: &Emulator, channel: i64, claims: &Value) {
    let r = login(emu, channel, claims, None).await;
    assert_eq!(r.location(), "/account.php");
}

/// Presents `claims`, signed with the right key, at `channel`'s `/login/token/…`.
async fn login(emu: &Emulator, channel: i64, claims: &Value, cookie: Option<&str>) -> Reply {
    get(
        emu,
        channel,
        &format!("/login/token/{}", sign(claims)),
        cookie,
    )
    .await
}

fn last_outcome(emu: &Emulator) -> LoginOutcome {
    emu.login_attempts().last().unwrap().outcome.clone()
}

fn refused(reason: RefusalReason) -> LoginOutcome {
    LoginOutcome::Refused { reason }
}

/// Presents `claims` (signed with the right key) on `channel` and expects a refusal.
async fn assert_refused(emu: &Emulator, channel: i64, token: String, reason: RefusalReason) {
    let r = get(emu, channel, &format!("/login/token/{token}"), None).await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(r.location(), FAILED, "{reason:?}");
    assert!(r.cookie().is_none(), "no session on refusal ({reason:?})");
    assert_eq!(last_outcome(emu), refused(reason));
}

#[tokio::test]
async fn valid_token_signs_in_and_account_page_shows_the_email() {
    let emu = emulator();
    let c = customer(&emu, "ana@example.com", None);
    let r = login(&emu, 1, &claims(&emu, c.id), None).await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(r.location(), "/account.php");
    let set_cookie = r.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(set_cookie.starts_with("SHOP_SESSION_TOKEN="));
    assert!(
        set_cookie.contains("HttpOnly")
            && set_cookie.contains("SameSite=Lax")
            && set_cookie.contains("Path=/")
    );
    assert_eq!(
        last_outcome(&emu),
        LoginOutcome::Ok {
            customer_id: c.id,
            channel_id: 1
        }
    );

    let cookie = r.cookie().unwrap();
    let page = get(&emu, 1, "/account.php", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains(r#"id="customer-email">ana@example.com<"#),
        "{}",
        page.body
    );
    assert!(page.body.contains("Ana Lim"));
    let home = get(&emu, 1, "/", Some(&cookie)).await;
    assert!(home.body.contains("Signed in as ana@example.com"));
    // The session is per channel: channel 2 does not see it.
    let other = get(&emu, 2, "/account.php", Some(&cookie)).await;
    assert_eq!(other.location(), "/login.php");
}

#[tokio::test]
async fn redirect_to_and_default_are_honoured() {
    let emu = emulator();
    let c = customer(&emu, "ana@example.com", None);
    let token = sign(&with(
        claims(&emu, c.id),
        "redirect_to",
        json!("/cart.php?x=1"),
    ));
    assert_eq!(
        get(&emu, 1, &format!("/login/token/{token}"), None)
            .await
            .location(),
        "/cart.php?x=1"
    );
    let mut no_redirect = claims(&emu, c.id);
    no_redirect.as_object_mut().unwrap().remove("redirect_to");
    no_redirect.as_object_mut().unwrap().remove("channel_id"); // defaults to 1
    assert_signed_in(&emu, 1, &no_redirect).await;
}

#[tokio::test]
async fn replayed_jti_is_refused() {
    let emu = emulator();
    let c = customer(&emu, "ana@example.com", None);
    let token = sign(&claims(&emu, c.id));
    assert_eq!(
        get(&emu, 1, &format!("/login/token/{token}"), None)
            .await
            .location(),
        "/account.php"
    );
    assert_refused(&emu, 1, token, RefusalReason::ReplayedJti).await;
}

#[tokio::test]
async fn refused_token_is_consumed_too() {
    let emu = emulator();
    let c = customer(&emu, "ana@example.com", None);
    let stale = with(claims(&emu, c.id), "iat", json!(now(&emu) - 60));
    assert_refused(&emu, 1, sign(&stale), RefusalReason::StaleIat).await;
    // Same jti, fresh iat: still refused, the first GET consumed it.
    let retry = with(stale, "iat", json!(now(&emu)));
    assert_refused(&emu, 1, sign(&retry), RefusalReason::ReplayedJti).await;
}

#[tokio::test]
async fn stale_or_future_iat_is_refused() {
    let emu = emulator();
    let c = customer(&emu, "ana@example.com", None);
    for offset in [-31, -3600] {
        let t = with(claims(&emu, c.id), "iat", json!(now(&emu) + offset));
        assert_refused(&emu, 1, sign(&t), RefusalReason::StaleIat).await;
    }
    for offset in [3, 31] {
        let t = with(claims(&emu, c.id), "iat", json!(now(&emu) + offset));
        assert_refused(&emu, 1, sign(&t), RefusalReason::IatInTheFuture).await;
    }
    let edge = with(claims(&emu, c.id), "iat", json!(now(&emu) - 25));
    assert_signed_in(&emu, 1, &edge).await;
}

#[tokio::test]
async fn iat_is_checked_against_the_skewed_clock() {
    let emu = emulator();
    let c = customer(&emu, "ana@example.com", None);
    emu.set_clock_skew(120);
    let system_iat = time::OffsetDateTime::now_utc().unix_timestamp();
    let t = with(claims(&emu, c.id), "iat", json!(system_iat));
    assert_refused(&emu, 1, sign(&t), RefusalReason::StaleIat).await;
    // `claims` uses the emulator's clock, as a signer using /v2/time would.
    assert_signed_in(&emu, 1, &claims(&emu, c.id)).await;
}

#[tokio::test]
async fn wrong_secret_is_refused() {
    let emu = emulator();
    let c = customer(&emu, "ana@example.com", None);
    let token = jsonwebtoken::encode(
        &Header::default(),
        &claims(&emu, c.id),
        &EncodingKey::from_secret(b"other"),
    )
    .unwrap();
    assert_refused(&emu, 1, token, RefusalReason::BadSignature).await;
}

#[tokio::test]
async fn alg_none_and_other_algorithms_are_refused() {
    let emu = emulator();
    let c = customer(&emu, "ana@example.com", None);
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims(&emu, c.id))
    );
    assert_refused(&emu, 1, none, RefusalReason::WrongAlgorithm).await;
    let hs512 = jsonwebtoken::encode(
        &Header::new(jsonwebtoken::Algorithm::HS512),
        &claims(&emu, c.id),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert_refused(&emu, 1, hs512, RefusalReason::WrongAlgorithm).await;
    assert_refused(&emu, 1, "not-a-jwt".to_owned(), RefusalReason::Malformed).await;
}

#[tokio::test]
async fn claim_mismatches_are_refused() {
    let emu = emulator();
    let c = customer(&emu, "ana@example.com", None);
    let cases = [
        ("iss", json!("someone-else"), RefusalReason::WrongIssuer),
        (
            "operation",
            json!("customer_logout"),
            RefusalReason::WrongOperation,
        ),
        ("store_hash", json!("zzz999"), RefusalReason::WrongStoreHash),
        ("customer_id", json!(4242), RefusalReason::UnknownCustomer),
        ("customer_id", json!("1"), RefusalReason::InvalidClaims),
    ];
    for (key, value, reason) in cases {
        assert_refused(&emu, 1, sign(&with(claims(&emu, c.id), key, value)), reason).await;
    }
    let mut no_jti = claims(&emu, c.id);
    no_jti.as_object_mut().unwrap().remove("jti");
    assert_refused(&emu, 1, sign(&no_jti), RefusalReason::MissingJti).await;
    assert!(emu.login_attempts().iter().all(|a| !a.is_ok()));
}

#[tokio::test]
async fn customer_must_be_allowed_on_the_channel() {
    let emu = emulator();
    let global = customer(&emu, "global@example.com", None);
    let only2 = customer(&emu, "two@example.com", Some(vec![2]));
    let only2_token = || sign(&claims(&emu, only2.id));
    // Channel-specific customer on channel 1.
    assert_refused(&emu, 1, only2_token(), RefusalReason::ChannelNotAllowed).await;
    // Global customer on a channel without allow_global_logins.
    let t = with(claims(&emu, global.id), "channel_id", json!(2));
    assert_refused(&emu, 2, sign(&t), RefusalReason::ChannelNotAllowed).await;
    // A channel-1 token presented to channel 2's storefront.
    assert_refused(&emu, 2, only2_token(), RefusalReason::WrongChannel).await;
    // The right combination works.
    let t = with(claims(&emu, only2.id), "channel_id", json!(2));
    assert_signed_in(&emu, 2, &t).await;
    assert_eq!(
        last_outcome(&emu),
        LoginOutcome::Ok {
            customer_id: only2.id,
            channel_id: 2
        }
    );
}

#[tokio::test]
async fn absolute_redirect_to_is_refused() {
    let emu = emulator();
    let c = customer(&emu, "ana@example.com", None);
    for to in [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "account.php",
        "javascript:alert(1)",
    ] {
        let t = with(claims(&emu, c.id), "redirect_to", json!(to));
        assert_refused(&emu, 1, sign(&t), RefusalReason::BadRedirect).await;
    }
}

#[tokio::test]
async fn request_ip_must_match_the_client() {
    let emu = emulator();
    let c = customer(&emu, "ana@example.com", None);
    let t = with(claims(&emu, c.id), "request_ip", json!("127.0.0.1"));
    assert_signed_in(&emu, 1, &t).await;
    let t = with(claims(&emu, c.id), "request_ip", json!("10.0.0.1"));
    assert_refused(&emu, 1, sign(&t), RefusalReason::RequestIpMismatch).await;
    // Only the canonical form: how BigCommerce compares is unconfirmed, so be strict.
    for other_form in ["::ffff:127.0.0.1", " 127.0.0.1"] {
        let t = with(claims(&emu, c.id), "request_ip", json!(other_form));
        assert_refused(&emu, 1, sign(&t), RefusalReason::RequestIpMismatch).await;
    }
    // Without ConnectInfo the address is unknown: refuse rather than skip the check.
    let t = with(claims(&emu, c.id), "request_ip", json!("127.0.0.1"));
    let r = get_from(&emu, 1, &format!("/login/token/{}", sign(&t)), None, None).await;
    assert_eq!(r.location(), FAILED);
    assert_eq!(
        last_outcome(&emu),
        refused(RefusalReason::RequestIpMismatch)
    );
}

#[tokio::test]
async fn logout_by_token_and_by_link() {
    let emu = emulator();
    let c = customer(&emu, "ana@example.com", None);
    let r = login(&emu, 1, &claims(&emu, c.id), None).await;
    let cookie = r.cookie().unwrap();
    let t = with(
        claims(&emu, c.id),
        "redirect_to",
        json!("/login.php?action=logout"),
    );
    let r = login(&emu, 1, &t, Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(
        last_outcome(&emu),
        LoginOutcome::LoggedOut {
            customer_id: c.id,
            channel_id: 1
        }
    );
    assert_eq!(
        get(&emu, 1, "/account.php", Some(&cookie)).await.location(),
        "/login.php"
    );

    let r = login(&emu, 1, &claims(&emu, c.id), None).await;
    let cookie = r.cookie().unwrap();
    assert_eq!(
        get(&emu, 1, "/account.php", Some(&cookie)).await.status,
        StatusCode::OK
    );
    let out = get(&emu, 1, "/login.php?action=logout", Some(&cookie)).await;
    assert_eq!(out.status, StatusCode::FOUND);
    assert!(
        out.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(
        get(&emu, 1, "/account.php", Some(&cookie)).await.location(),
        "/login.php"
    );
}

#[tokio::test]
async fn login_page_has_the_form_and_the_script_manager_snippet() {
    let emu = emulator();
    let page = get(&emu, 2, "/login.php", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(r#"<form class="login-form"#));
    assert!(page.body.contains(
        r#"<script src="http://127.0.0.1:8080/static/sso-button.js" data-gateway-url="http://127.0.0.1:8080" data-channel-id="2" data-redirect-to="/account.php" defer></script>"#
    ), "{}", page.body);
    assert!(!page.body.contains("sign-in attempt failed"));

    let no_gateway = Emulator::new(EmulatorConfig::new(STORE, "t", CLIENT_ID, SECRET));
    assert!(
        !get(&no_gateway, 1, "/login.php", None)
            .await
            .body
            .contains("sso-button.js")
    );
}

#[tokio::test]
async fn login_error_is_a_fixed_message_never_the_input() {
    let emu = emulator();
    let page = get(
        &emu,
        1,
        "/login.php?error=%3Cscript%3Ealert(1)%3C/script%3E",
        None,
    )
    .await;
    assert!(
        page.body
            .contains("Your sign-in attempt failed. Please try again.")
    );
    assert!(!page.body.contains("alert(1)"));
}

#[tokio::test]
async fn password_form_post_explains_it_is_unavailable() {
    let emu = emulator();
    let req = Request::post("/login.php?action=check_login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("login_email=a%40b.c&login_pass=x"))
        .unwrap();
    let resp = emu.storefront_router(1).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&body)
            .contains("Password sign-in is not available in the emulator.")
    );
}

#[tokio::test]
async fn account_page_requires_a_session() {
    let emu = emulator();
    let r = get(&emu, 1, "/account.php", None).await;
    assert_eq!((r.status, r.location()), (StatusCode::FOUND, "/login.php"));
    let r = get(&emu, 1, "/account.php", Some("SHOP_SESSION_TOKEN=forged")).await;
    assert_eq!(r.location(), "/login.php");
    assert!(
        get(&emu, 1, "/", None)
            .await
            .body
            .contains(r#"href="/login.php""#)
    );
}

#[tokio::test]
async fn real_listener_with_connect_info() {
    let emu = emulator();
    let c = customer(&emu, "ana@example.com", None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = emu.storefront_router(1);
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let t = with(claims(&emu, c.id), "request_ip", json!("127.0.0.1"));
    let r = browser
        .get(format!("{base}/login/token/{}", sign(&t)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(r.headers()[header::LOCATION], "/account.php");
    let page = browser
        .get(format!("{base}/account.php"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"id="customer-email">ana@example.com<"#));
}
