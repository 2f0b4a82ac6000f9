//! The sign-in flow end to end, and the ways it must refuse.

use bc_sso_dev::demo::DemoOptions;
use bc_sso_gateway::bigcommerce::wire::CustomerPost;
use bc_sso_sandbox::bigcommerce::LoginOutcome;
use reqwest::StatusCode;

use crate::common::{Env, log_lines_with};

/// A second connection, "other", at the same dev IdP, owning `other.test`.
fn add_other_connection(c: &mut bc_sso_gateway::config::RawConfig, display_name: &str) {
    let mut other = c.connections[0].clone();
    other.id = Some("other".into());
    other.display_name = Some(display_name.into());
    other.allowed_email_domains = vec!["other.test".into()];
    c.connections.push(other);
}

/// Why the emulated storefront refused login tokens, in order.
fn refusals(env: &Env) -> Vec<&'static str> {
    env.demo
        .emulator
        .login_attempts()
        .iter()
        .filter_map(|a| match a.outcome {
            LoginOutcome::Refused { reason } => Some(reason.as_str()),
            _ => None,
        })
        .collect()
}

fn seed(env: &Env, email: &str, channel_ids: Option<Vec<i64>>) -> i64 {
    env.demo
        .emulator
        .seed_customer(CustomerPost {
            email: email.into(),
            first_name: "Seeded".into(),
            last_name: "Customer".into(),
            company: None,
            customer_group_id: None,
            origin_channel_id: None,
            channel_ids,
            trigger_account_created_notification: None,
        })
        .id
}

#[tokio::test]
async fn existing_customer_signs_in_and_lands_where_they_started() {
    let env = Env::start().await;
    let id = seed(&env, "Ada@Example.com", None);
    let (_, page) = env
        .sign_in("channel_id=1&redirect_to=/%3Ffrom%3Dcart", "ada")
        .await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    let token_url = page.location.unwrap();
    assert!(
        token_url
            .as_str()
            .starts_with(env.storefront(1, "/login/token/").as_str())
    );
    let (final_url, account) = env.follow(token_url).await;
    assert_eq!(
        (final_url.path(), final_url.query()),
        ("/", Some("from=cart"))
    );
    assert_eq!(account.status, StatusCode::OK);
    // The storefront session is signed in as the seeded customer; no customer was created.
    let (_, account) = env.follow(env.storefront(1, "/account.php")).await;
    assert!(
        account.body.contains("ada@example.com") || account.body.contains("Ada@Example.com"),
        "{}",
        account.body
    );
    assert_eq!(env.demo.emulator.customers().len(), 1);
    let attempts = env.demo.emulator.login_attempts();
    assert_eq!(attempts.len(), 1);
    assert!(attempts[0].is_ok(), "{attempts:?}");
    assert!(format!("{attempts:?}").contains(&format!("customer_id: {id}")));
}

#[tokio::test]
async fn first_sign_in_creates_the_customer_with_the_right_fields() {
    let env = Env::start().await;
    let (_, page) = env.sign_in("channel_id=1", "grace").await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    let (final_url, account) = env.follow(page.location.unwrap()).await;
    assert_eq!(final_url.path(), "/account.php");
    assert!(
        account.body.contains("grace@example.com"),
        "{}",
        account.body
    );
    let stored = env.demo.emulator.stored_customers();
    assert_eq!(stored.len(), 1);
    let c = &stored[0].full;
    assert_eq!(c.email, "grace@example.com");
    assert_eq!(
        (c.first_name.as_str(), c.last_name.as_str()),
        ("Grace", "Hopper")
    );
    assert_eq!(c.channel_ids, Some(vec![1]));
    assert_eq!(c.origin_channel_id, Some(1));
    assert_eq!(stored[0].trigger_account_created_notification, Some(false));
}

#[tokio::test]
async fn second_sign_in_reuses_the_customer() {
    let env = Env::start().await;
    for _ in 0..2 {
        let (_, page) = env.sign_in("", "grace").await;
        let (_, account) = env.follow(page.location.unwrap()).await;
        assert!(account.body.contains("grace@example.com"));
    }
    assert_eq!(env.demo.emulator.customers().len(), 1);
    assert_eq!(env.demo.emulator.login_attempts().len(), 2);
}

#[tokio::test]
async fn global_connection_creates_a_global_customer_with_group() {
    let env = Env::with(DemoOptions::default(), |c| {
        c.connections[0].channel_access = Some("global".into());
        c.connections[0].customer_group_id = Some(2);
    })
    .await;
    let (_, page) = env.sign_in("", "ada").await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    let c = &env.demo.emulator.customers()[0];
    assert_eq!(c.channel_ids, None);
    assert_eq!(c.customer_group_id, 2);
}

/// A global account can sign in only on channels that allow global logins, so none is
/// created for a channel that does not (the demo's channel 2).
#[tokio::test]
async fn no_global_customer_is_created_for_a_channel_without_global_logins() {
    let options = DemoOptions {
        channels: 2,
        ..DemoOptions::default()
    };
    let env = Env::with(options, |c| {
        c.connections[0].channel_access = Some("global".into());
    })
    .await;
    let (_, page) = env.sign_in("channel_id=2", "ada").await;
    page.assert_error(StatusCode::FORBIDDEN, "global_logins_not_allowed");
    assert!(env.demo.emulator.customers().is_empty());
    let (_, page) = env.sign_in("channel_id=1", "ada").await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    assert_eq!(env.demo.emulator.customers()[0].channel_ids, None);
}

#[tokio::test]
async fn unverified_email_is_refused() {
    let env = Env::start().await;
    let seeded = seed(&env, "eve@example.com", None);
    let (_, page) = env.sign_in("", "eve").await;
    page.assert_error(StatusCode::FORBIDDEN, "email_unverified");
    assert_eq!(env.demo.emulator.customers().len(), 1, "seeded only");
    assert!(env.demo.emulator.login_attempts().is_empty());
    let _ = seeded;
}

/// SECURITY.md rule 3: an unverified email passes only for a domain the admin trusts this
/// IdP for, and Entra's `xms_edov` can only narrow that trust.
#[tokio::test]
async fn unverified_email_passes_only_for_trusted_domains_and_xms_edov_narrows() {
    let env = Env::with(DemoOptions::default(), |c| {
        c.connections[0].allowed_email_domains = vec!["example.com".into(), "*.example.com".into()];
        c.connections[0].trusted_email_domains = vec!["eu.example.com".into()];
    })
    .await;
    let mut users = env.idp().users();
    let eve = users.iter().find(|u| u.sub == "eve").unwrap().clone();
    let user = |sub: &str, email: &str, edov: Option<bool>| {
        let mut u = eve.clone();
        u.sub = sub.into();
        u.email = Some(email.into());
        u.xms_edov = edov.map(serde_json::Value::from);
        u
    };
    users.extend([
        user("eu-eve", "eve@eu.example.com", None),
        user("edov-true", "ed@eu.example.com", Some(true)),
        user("edov-untrusted", "eu@example.com", Some(true)),
        user("edov-false", "ef@eu.example.com", Some(false)),
    ]);
    env.idp().set_users(users);
    // example.com is allowed but not trusted: Eve's unverified email is refused.
    let (_, page) = env.sign_in("", "eve").await;
    page.assert_error(StatusCode::FORBIDDEN, "email_unverified");
    // eu.example.com is trusted.
    let (_, page) = env.sign_in("", "eu-eve").await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    // xms_edov true keeps the trust; it does not create it where the admin gave none.
    let (_, page) = env.sign_in("", "edov-true").await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    let (_, page) = env.sign_in("", "edov-untrusted").await;
    page.assert_error(StatusCode::FORBIDDEN, "email_unverified");
    // xms_edov false: the tenant has not verified the domain; the trust setting yields.
    let (_, page) = env.sign_in("", "edov-false").await;
    page.assert_error(StatusCode::FORBIDDEN, "email_unverified");
    let mut emails: Vec<String> = env
        .demo
        .emulator
        .customers()
        .into_iter()
        .map(|c| c.email)
        .collect();
    emails.sort();
    assert_eq!(emails, ["ed@eu.example.com", "eve@eu.example.com"]);
}

#[tokio::test]
async fn disallowed_domain_is_refused() {
    let env = Env::start().await;
    let (_, page) = env.sign_in("", "oscar").await;
    page.assert_error(StatusCode::FORBIDDEN, "domain_not_allowed");
    assert!(env.demo.emulator.customers().is_empty());
    assert!(env.demo.emulator.login_attempts().is_empty());
}

#[tokio::test]
async fn no_account_and_creation_disabled_is_refused() {
    let env = Env::with(DemoOptions::default(), |c| {
        c.connections[0].create_customers = Some(false)
    })
    .await;
    let (_, page) = env.sign_in("", "ada").await;
    page.assert_error(StatusCode::FORBIDDEN, "no_store_account");
    assert!(env.demo.emulator.customers().is_empty());
}

#[tokio::test]
async fn replayed_state_is_refused() {
    let env = Env::start().await;
    let (callback, first) = env.sign_in("", "ada").await;
    assert_eq!(first.status, StatusCode::FOUND);
    let again = env.get(&callback).await;
    again.assert_error(StatusCode::BAD_REQUEST, "no_pending_login");
    assert_eq!(env.demo.emulator.customers().len(), 1);
}

#[tokio::test]
async fn tampered_or_missing_state_is_refused() {
    let env = Env::start().await;
    let authorize = env.begin("").await;
    let callback = env.pick_user(&authorize, "ada").await;
    let mut tampered = callback.clone();
    let pairs: Vec<(String, String)> = callback
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                format!("{v}x")
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    tampered.query_pairs_mut().clear().extend_pairs(&pairs);
    env.get(&tampered)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "no_pending_login");
    let mut missing = callback.clone();
    let without: Vec<(String, String)> = callback
        .query_pairs()
        .filter(|(k, _)| k != "state")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    missing.query_pairs_mut().clear().extend_pairs(&without);
    env.get(&missing)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "no_pending_login");
    // The untouched callback still works: refusals did not consume the pending login.
    let ok = env.get(&callback).await;
    assert_eq!(ok.status, StatusCode::FOUND, "{}", ok.body);
}

#[tokio::test]
async fn state_from_another_browser_is_refused() {
    let env = Env::start().await;
    let authorize = env.begin("").await;
    let callback = env.pick_user(&authorize, "ada").await;
    let other = crate::common::new_browser();
    let page = crate::common::page_of(other.get(callback).send().await.unwrap()).await;
    page.assert_error(StatusCode::BAD_REQUEST, "no_pending_login");
    assert!(env.demo.emulator.customers().is_empty());
}

#[tokio::test]
async fn duplicated_callback_parameters_are_refused() {
    let env = Env::start().await;
    let authorize = env.begin("").await;
    let callback = env.pick_user(&authorize, "ada").await;
    let mut dup = callback.clone();
    dup.set_query(Some(&format!(
        "{}&code=attacker",
        callback.query().unwrap()
    )));
    env.get(&dup)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_callback_request");
    assert!(env.demo.emulator.customers().is_empty());
}

#[tokio::test]
async fn pending_login_expires() {
    let env = Env::start().await;
    let authorize = env.begin("").await;
    let callback = env.pick_user(&authorize, "ada").await;
    env.demo.clock.advance(11 * 60);
    env.get(&callback)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "pending_login_expired");
    assert!(env.demo.emulator.customers().is_empty());
}

#[tokio::test]
async fn idp_access_denied_shows_a_friendly_page() {
    let env = Env::start().await;
    let authorize = env.begin("").await;
    let page = env.get(&authorize).await;
    let request_id = crate::common::hidden_value(&page.body, "request").unwrap();
    let decision = env.demo.idp_url.join("/authorize/decision").unwrap();
    let response = env
        .browser
        .post(decision)
        .form(&[("request", request_id.as_str()), ("cancel", "1")])
        .send()
        .await
        .unwrap();
    let callback = crate::common::page_of(response).await.location.unwrap();
    let page = env.get(&callback).await;
    page.assert_error(StatusCode::FORBIDDEN, "idp_access_denied");
    assert!(page.body.contains("Sign-in was cancelled"));
}

#[tokio::test]
async fn unsafe_redirect_to_falls_back_to_the_default() {
    let env = Env::start().await;
    for evil in [
        "//evil.test/x",
        "https://evil.test/",
        "/\\evil.test",
        "/%2F/evil.test",
        "javascript:alert(1)",
    ] {
        let query = format!("redirect_to={}", urlencode(evil));
        let (_, page) = env.sign_in(&query, "ada").await;
        let (final_url, _) = env.follow(page.location.unwrap()).await;
        assert_eq!(final_url.path(), "/account.php", "for {evil:?}");
        assert_eq!(final_url.host_str(), env.demo.storefront_urls[0].host_str());
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn replayed_login_token_is_refused_by_the_storefront() {
    let env = Env::start().await;
    let (_, page) = env.sign_in("", "ada").await;
    let token_url = page.location.unwrap();
    let first = env.get(&token_url).await;
    assert_eq!(first.location.as_ref().unwrap().path(), "/account.php");
    let second = env.get(&token_url).await;
    assert_eq!(second.location.as_ref().unwrap().path(), "/login.php");
    assert_eq!(refusals(&env), ["replayed_jti"]);
}

#[tokio::test]
async fn stale_login_token_is_refused_and_clock_skew_is_corrected() {
    let env = Env::start().await;
    // BigCommerce's clock runs 5 minutes ahead of ours. Before we measure it, our tokens
    // look stale to the storefront.
    env.demo.emulator.set_clock_skew(300);
    let (_, page) = env.sign_in("", "ada").await;
    let stale = env.get(&page.location.unwrap()).await;
    assert_eq!(stale.location.as_ref().unwrap().path(), "/login.php");
    assert_eq!(refusals(&env), ["stale_iat"]);
    // After measuring GET /v2/time, iat is corrected and the same sign-in works.
    let offset = env
        .demo
        .state
        .sync_bigcommerce_clock()
        .await
        .unwrap()
        .unwrap();
    assert!((offset - 300).abs() <= 2, "offset {offset}");
    let (_, page) = env.sign_in("", "ada").await;
    let ok = env.get(&page.location.unwrap()).await;
    assert_eq!(ok.location.as_ref().unwrap().path(), "/account.php");
}

#[tokio::test]
async fn customer_of_another_channel_is_refused_before_minting() {
    let env = Env::with(
        DemoOptions {
            channels: 2,
            ..Default::default()
        },
        |_| {},
    )
    .await;
    seed(&env, "ada@example.com", Some(vec![1]));
    let (_, page) = env.sign_in("channel_id=2", "ada").await;
    page.assert_error(StatusCode::FORBIDDEN, "channel_not_allowed");
    assert!(env.demo.emulator.login_attempts().is_empty());
    assert_eq!(env.demo.emulator.customers().len(), 1);
}

#[tokio::test]
async fn token_for_the_wrong_channel_is_refused_by_the_storefront() {
    let env = Env::with(
        DemoOptions {
            channels: 2,
            ..Default::default()
        },
        |_| {},
    )
    .await;
    let (_, page) = env.sign_in("channel_id=1", "ada").await;
    // Replay the channel-1 token at channel 2's storefront: BigCommerce would refuse it.
    let token_url = page.location.unwrap();
    let wrong = env.storefront(2, token_url.path());
    let refused = env.get(&wrong).await;
    assert_eq!(refused.location.as_ref().unwrap().path(), "/login.php");
    assert_eq!(refusals(&env), ["wrong_channel"]);
}

#[tokio::test]
async fn unknown_channel_and_connection_are_explained() {
    let env = Env::start().await;
    env.get(&env.gateway("/login?channel_id=9"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "unknown_channel");
    env.get(&env.gateway("/login?channel_id=abc"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_parameter");
    env.get(&env.gateway("/login?connection=nope"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "unknown_connection");
    env.get(&env.gateway("/nowhere"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn several_connections_show_a_chooser_and_route_by_email() {
    let env = Env::with(DemoOptions::default(), |c| {
        add_other_connection(c, "Other Corp");
    })
    .await;
    let chooser = env.get(&env.gateway("/login?channel_id=1")).await;
    assert_eq!(chooser.status, StatusCode::OK);
    assert!(chooser.body.contains("Example Corp (dev IdP)") && chooser.body.contains("Other Corp"));
    // By email domain: oscar@other.test goes to the "other" connection.
    let page = env
        .get(&env.gateway("/login?email=oscar%40Other.test"))
        .await;
    assert_eq!(page.status, StatusCode::FOUND);
    env.get(&env.gateway("/login?email=someone%40nowhere.test"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "no_connection_for_domain");
    env.get(&env.gateway("/login?email=not-an-email"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_email_input");
    // Same IdP, other connection: oscar signs in through "other" and is allowed there.
    let (_, page) = env.sign_in("connection=other", "oscar").await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
}

#[tokio::test]
async fn bigcommerce_down_shows_a_clear_page() {
    let env = Env::with(DemoOptions::default(), |c| {
        c.store.api_base_url = Some("http://127.0.0.1:9".into());
    })
    .await;
    let (callback, page) = env.sign_in("", "ada").await;
    page.assert_error(StatusCode::BAD_GATEWAY, "bigcommerce_unavailable");
    assert!(env.demo.emulator.login_attempts().is_empty());
    // A server-side failure still consumed the state (tower-sessions does not save the
    // session on a 5xx by itself).
    env.get(&callback)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "no_pending_login");
}

#[tokio::test]
async fn chooser_escapes_what_the_request_carried() {
    let env = Env::with(DemoOptions::default(), |c| {
        add_other_connection(c, "<b>Other</b> Corp");
    })
    .await;
    let evil = "/%22%3E%3Cscript%3Ealert(1)%3C/script%3E";
    let page = env
        .get(&env.gateway(&format!("/login?redirect_to={evil}")))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("<script>alert(1)"), "{}", page.body);
    assert!(!page.body.contains("<b>Other</b>"), "{}", page.body);
}

#[tokio::test]
async fn https_gateway_uses_a_host_prefixed_secure_cookie() {
    let env = Env::with(DemoOptions::default(), |c| {
        let url = c
            .server
            .public_url
            .clone()
            .unwrap()
            .replace("http://", "https://");
        c.server.public_url = Some(url);
    })
    .await;
    let response = env.browser.get(env.gateway("/login")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("__Host-bcsso="), "{cookie}");
    for attribute in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(!cookie.contains("Domain="), "{cookie}");
}

#[tokio::test]
async fn wrong_access_token_is_reported_without_leaking_it() {
    let env = Env::with(DemoOptions::default(), |c| {
        c.store.access_token = Some("wrong-token-value".into())
    })
    .await;
    let (_, page) = env.sign_in("", "ada").await;
    page.assert_error(StatusCode::BAD_GATEWAY, "bigcommerce_unavailable");
    assert!(!page.body.contains("wrong-token-value"));
    assert!(!crate::common::all_logs().contains("wrong-token-value"));
}

#[tokio::test]
async fn display_name_with_script_is_escaped_and_stored_as_text() {
    let env = Env::with_users(|u| u[0].given_name = Some("<script>alert(1)</script>".into())).await;
    let (_, page) = env.sign_in("", "ada").await;
    let (_, account) = env.follow(page.location.unwrap()).await;
    assert!(!account.body.contains("<script>alert(1)</script>"));
    assert!(
        account.body.contains("&#60;script&#62;") || account.body.contains("&lt;script&gt;"),
        "{}",
        account.body
    );
    assert_eq!(
        env.demo.emulator.customers()[0].first_name,
        "<script>alert(1)</script>"
    );
}

#[tokio::test]
async fn session_id_is_rotated_when_sign_in_completes() {
    let env = Env::start().await;
    let response = env.browser.get(env.gateway("/login")).send().await.unwrap();
    let before = session_cookie(&response).expect("session cookie set at /login");
    let authorize = response.headers()["location"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let callback = env.pick_user(&authorize, "ada").await;
    let response = env.browser.get(callback).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let after = session_cookie(&response).expect("new session cookie after sign-in");
    assert_ne!(before, after);
}

fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("bcsso="))
        .map(|v| {
            assert!(v.contains("HttpOnly") && v.contains("SameSite=Lax"), "{v}");
            v.split(';').next().unwrap().to_owned()
        })
}

#[tokio::test]
async fn logs_carry_no_codes_tokens_or_secrets() {
    let env = Env::start().await;
    let (callback, page) = env.sign_in("", "ada").await;
    let token_url = page.location.unwrap();
    let jwt = token_url.path().rsplit('/').next().unwrap().to_owned();
    let param = |name: &str| -> String {
        callback
            .query_pairs()
            .find(|(k, _)| k == name)
            .unwrap()
            .1
            .into_owned()
    };
    let (code, state) = (param("code"), param("state"));
    let logs = crate::common::all_logs();
    assert!(!logs.is_empty());
    for secret in [
        jwt.as_str(),
        code.as_str(),
        state.as_str(),
        env.demo
            .state
            .config
            .store
            .declared
            .as_ref()
            .unwrap()
            .client_secret
            .expose(),
        env.demo
            .state
            .config
            .store
            .declared
            .as_ref()
            .unwrap()
            .access_token
            .expose(),
        env.demo.state.config.connections[0].client_secret.expose(),
    ] {
        assert!(!logs.contains(secret), "a secret or token reached the log");
    }
    assert!(!log_lines_with("sign-in complete").is_empty());
}

#[tokio::test]
async fn health_and_assets() {
    let env = Env::start().await;
    let health = env.get(&env.gateway("/healthz")).await;
    assert_eq!(health.status, StatusCode::OK);
    assert!(health.body.contains("ok"));
    let js = env.get(&env.gateway("/static/sso-button.js")).await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(js.body.contains("bc-sso-button"));
    let sign_in_page = env.get(&env.storefront(1, "/login.php")).await;
    assert!(
        sign_in_page
            .body
            .contains(&format!("{}static/sso-button.js", env.demo.gateway_url))
    );
}

#[tokio::test]
async fn error_pages_link_back_to_the_store_and_nothing_is_cached() {
    let env = Env::start().await;
    let response = env
        .browser
        .get(env.gateway("/login?connection=nope"))
        .send()
        .await
        .unwrap();
    let headers = response.headers().clone();
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let body = response.text().await.unwrap();
    assert!(
        body.contains(&format!("href=\"{}\"", env.demo.storefront_urls[0])),
        "{body}"
    );
    // The redirect that carries the login token is not cacheable either.
    let authorize = env.begin("").await;
    let callback = env.pick_user(&authorize, "ada").await;
    let response = env.browser.get(callback).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(response.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn a_burst_of_sign_ins_waits_for_the_rate_limit_instead_of_failing() {
    let env = Env::start().await;
    // A store with a tiny quota: 3 requests per second. Each first sign-in costs two calls
    // (look up, create), so five of them must wait for resets to all succeed.
    env.demo
        .emulator
        .set_rate_limit(3, std::time::Duration::from_secs(1));
    for sub in ["ada", "grace", "ada", "grace", "ada"] {
        let (_, page) = env.sign_in("", sub).await;
        assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    }
    assert_eq!(env.demo.emulator.customers().len(), 2);
}

#[tokio::test]
async fn concurrent_first_sign_ins_end_with_one_customer() {
    let env = Env::start().await;
    // Five browsers sign in as the same new user; their callbacks arrive at once. Whatever
    // the interleaving, every sign-in succeeds and BigCommerce ends with one customer (a
    // losing create gets 422 for the duplicate email and looks the customer up again).
    let mut pending = Vec::new();
    for _ in 0..5 {
        let browser = crate::common::new_browser();
        let authorize = env.begin_with(&browser, "").await;
        let callback = env.pick_user_with(&browser, &authorize, "grace").await;
        pending.push((browser, callback));
    }
    let results = futures_join_all(pending.into_iter().map(|(browser, callback)| async move {
        browser.get(callback).send().await.unwrap().status()
    }))
    .await;
    assert!(
        results.iter().all(|s| *s == StatusCode::FOUND),
        "{results:?}"
    );
    assert_eq!(env.demo.emulator.customers().len(), 1);
}

async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn returning_identity_is_matched_by_link_with_no_bigcommerce_call() {
    let env = Env::start().await;
    let (_, first) = env.sign_in("", "grace").await;
    assert_eq!(first.status, StatusCode::FOUND);
    let calls = env.demo.emulator.api_request_count();
    let (_, again) = env.sign_in("", "grace").await;
    assert_eq!(again.status, StatusCode::FOUND, "{}", again.body);
    assert_eq!(
        env.demo.emulator.api_request_count(),
        calls,
        "no BigCommerce call for a linked identity"
    );
    let (_, account) = env.follow(again.location.unwrap()).await;
    assert!(account.body.contains("grace@example.com"));
}

#[tokio::test]
async fn an_email_change_at_the_idp_does_not_move_the_login() {
    let env = Env::start().await;
    // Ada signs in once: her customer is created and linked to (iss, sub=ada).
    let (_, page) = env.sign_in("", "ada").await;
    assert_eq!(page.status, StatusCode::FOUND);
    env.follow(page.location.unwrap()).await;
    let ada = env.demo.emulator.customers()[0].id;
    // A colleague's store account exists; then Ada's IdP account is given that email.
    let colleague = seed(&env, "boss@example.com", None);
    let mut users = env.idp().users();
    users[0].email = Some("boss@example.com".into());
    env.idp().set_users(users);
    let (_, page) = env.sign_in("", "ada").await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    env.follow(page.location.unwrap()).await;
    let customers: Vec<String> = env
        .demo
        .emulator
        .login_attempts()
        .iter()
        .map(|a| format!("{:?}", a.outcome))
        .collect();
    assert!(
        customers[1].contains(&format!("customer_id: {ada}")),
        "{customers:?}"
    );
    assert!(!customers[1].contains(&format!("customer_id: {colleague}")));
}

#[tokio::test]
async fn sign_ins_and_refusals_are_in_the_audit_trail() {
    use bc_sso_gateway::db::AuditKind;
    let env = Env::start().await;
    let (_, ok) = env.sign_in("", "grace").await;
    assert_eq!(ok.status, StatusCode::FOUND);
    let (_, refused) = env.sign_in("", "eve").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let events = env.demo.state.db.audit_events(10).await.unwrap();
    let kinds: Vec<AuditKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            AuditKind::SignInRefused,
            AuditKind::SignInSucceeded,
            AuditKind::CustomerCreated
        ]
    );
    let refusal = &events[0];
    assert_eq!(refusal.reason.as_deref(), Some("email_unverified"));
    assert_eq!(refusal.email.as_deref(), Some("eve@example.com"));
    assert_eq!(refusal.correlation_id, refused.correlation_id);
    let success = &events[1];
    let customer = env.demo.emulator.customers()[0].id;
    assert_eq!(success.customer_id, Some(customer));
    assert_eq!(success.subject.as_deref(), Some("grace"));
    assert_eq!(success.connection.as_deref(), Some("demo"));
}

#[tokio::test]
async fn sign_in_requests_are_rate_limited_per_client() {
    let env = Env::with(DemoOptions::default(), |c| {
        c.server.rate_limit_per_minute = Some(6);
        c.server.rate_limit_burst = Some(3);
    })
    .await;
    for _ in 0..3 {
        let page = env.get(&env.gateway("/login")).await;
        assert_eq!(page.status, StatusCode::FOUND);
    }
    let response = env.browser.get(env.gateway("/login")).send().await.unwrap();
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    crate::common::page_of(response)
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    // Other pages are not limited.
    assert_eq!(
        env.get(&env.gateway("/healthz")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn idp_groups_choose_the_customer_group_of_new_customers() {
    use bc_sso_gateway::config::RawGroupRule;
    let env = Env::with(DemoOptions::default(), |c| {
        let conn = &mut c.connections[0];
        conn.scopes = Some(vec![
            "openid".into(),
            "email".into(),
            "profile".into(),
            "groups".into(),
        ]);
        conn.customer_group_id = Some(0);
        conn.group_rules = vec![
            RawGroupRule {
                group: "admins".into(),
                customer_group_id: 2,
            },
            RawGroupRule {
                group: "engineering".into(),
                customer_group_id: 1,
            },
        ];
    })
    .await;
    // Ada is in engineering and admins: the first rule (admins) wins. Grace is only in
    // engineering.
    for sub in ["ada", "grace"] {
        let (_, page) = env.sign_in("", sub).await;
        assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    }
    let group = |email: &str| {
        env.demo
            .emulator
            .customers()
            .into_iter()
            .find(|c| c.email == email)
            .unwrap()
            .customer_group_id
    };
    assert_eq!(group("ada@example.com"), 2);
    assert_eq!(group("grace@example.com"), 1);
    // A user with no mapped group gets the connection's default group.
    let mut users = env.idp().users();
    users[1].sub = "grace-2".into();
    users[1].email = Some("grace2@example.com".into());
    users[1].groups = vec![];
    env.idp().set_users(users);
    let (_, page) = env.sign_in("", "grace-2").await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    assert_eq!(group("grace2@example.com"), 0);
    assert_eq!(
        env.idp().userinfo_request_count(),
        0,
        "the ID token had the groups: no userinfo call"
    );

    // An IdP that puts groups only in userinfo (Okta's and Keycloak's default): the gateway
    // asks userinfo for them, once per sign-in.
    env.idp().set_groups_in_id_token(false);
    let mut users = env.idp().users();
    users[1].sub = "grace-3".into();
    users[1].email = Some("grace3@example.com".into());
    users[1].groups = vec!["engineering".into()];
    env.idp().set_users(users);
    let (_, page) = env.sign_in("", "grace-3").await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    assert_eq!(group("grace3@example.com"), 1);
    assert_eq!(env.idp().userinfo_request_count(), 1);
}

#[tokio::test]
async fn without_group_rules_no_userinfo_call_is_made_for_groups() {
    let env = Env::start().await;
    env.idp().set_groups_in_id_token(false);
    let (_, page) = env.sign_in("", "ada").await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    assert_eq!(env.idp().userinfo_request_count(), 0);
}

#[tokio::test]
async fn profile_sync_updates_a_returning_customer_and_relinks_a_deleted_one() {
    use bc_sso_gateway::config::RawGroupRule;
    let env = Env::with(DemoOptions::default(), |c| {
        let conn = &mut c.connections[0];
        conn.scopes = Some(vec![
            "openid".into(),
            "email".into(),
            "profile".into(),
            "groups".into(),
        ]);
        conn.sync_profile = true;
        conn.customer_group_id = Some(0);
        conn.group_rules = vec![RawGroupRule {
            group: "wholesale".into(),
            customer_group_id: 2,
        }];
    })
    .await;
    let (_, page) = env.sign_in("", "grace").await;
    assert_eq!(page.status, StatusCode::FOUND);
    let first = env.demo.emulator.customers()[0].clone();
    assert_eq!(
        (first.last_name.as_str(), first.customer_group_id),
        ("Hopper", 0)
    );
    // At the IdP, Grace marries and joins the wholesale buyers.
    let mut users = env.idp().users();
    users[1].family_name = Some("Murray".into());
    users[1].groups = vec!["wholesale".into()];
    env.idp().set_users(users);
    let (_, page) = env.sign_in("", "grace").await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    let now = env.demo.emulator.customers()[0].clone();
    assert_eq!(now.id, first.id);
    assert_eq!(
        (now.last_name.as_str(), now.customer_group_id),
        ("Murray", 2)
    );
    let hash = &env.demo.state.config.store.store_hash;
    let kinds: Vec<_> = env
        .demo
        .state
        .db
        .audit_events(10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert!(
        kinds.contains(&bc_sso_gateway::db::AuditKind::CustomerUpdated),
        "{kinds:?}"
    );
    // Nothing changed: no update.
    let calls = env.demo.emulator.api_request_count();
    env.sign_in("", "grace").await;
    assert_eq!(
        env.demo.emulator.api_request_count(),
        calls + 1,
        "one lookup, no PUT"
    );
    // The customer is deleted in BigCommerce: the next sign-in links a new one by email.
    let client = reqwest::Client::new();
    let url = env
        .demo
        .api_url
        .join(&format!("stores/{hash}/v3/customers?id:in={}", first.id))
        .unwrap();
    let deleted = client
        .delete(url)
        .header(
            "X-Auth-Token",
            env.demo
                .state
                .config
                .store
                .declared
                .as_ref()
                .unwrap()
                .access_token
                .expose(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let (_, page) = env.sign_in("", "grace").await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    let customers = env.demo.emulator.customers();
    assert_eq!(customers.len(), 1);
    assert_ne!(customers[0].id, first.id);
    let link = env.demo.state.db.search_links("grace", 5).await.unwrap();
    assert_eq!(link[0].customer_id, customers[0].id);
}

#[tokio::test]
async fn a_connection_limited_to_some_channels_is_offered_only_there() {
    let env = Env::with(
        DemoOptions {
            channels: 2,
            ..Default::default()
        },
        |c| {
            add_other_connection(c, "Other Corp");
            c.connections[1].channels = vec![2];
        },
    )
    .await;
    // Channel 1: only "demo" applies, so no chooser: straight to the IdP.
    let page = env.get(&env.gateway("/login?channel_id=1")).await;
    assert_eq!(page.status, StatusCode::FOUND);
    // Channel 2: both apply.
    let page = env.get(&env.gateway("/login?channel_id=2")).await;
    assert!(page.body.contains("Other Corp"));
    env.get(&env.gateway("/login?channel_id=1&connection=other"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "connection_not_for_channel");
    env.get(&env.gateway("/login?channel_id=1&email=oscar%40other.test"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "connection_not_for_channel");
    let (_, page) = env.sign_in("channel_id=2&connection=other", "oscar").await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
}

#[tokio::test]
async fn with_redis_sessions_another_replica_finishes_the_sign_in() {
    let redis =
        std::env::var("BCSSO_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let url = redis.clone();
    let env = Env::with(DemoOptions::default(), move |c| {
        c.server.sessions_url = Some(url)
    })
    .await;
    // A second replica: same config (database, Redis), its own listener.
    let state = std::sync::Arc::new(
        bc_sso_gateway::AppState::connect(
            env.demo.state.config.clone(),
            bc_sso_gateway::clock::Clock::system(),
        )
        .await
        .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let replica = url::Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    let app =
        bc_sso_gateway::app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // Start on replica 1; the IdP sends the browser back, and the load balancer picks
    // replica 2 (same host name for the browser, so the same cookie).
    let authorize = env.begin("").await;
    let callback = env.pick_user(&authorize, "grace").await;
    let mut on_replica = replica.join(callback.path()).unwrap();
    on_replica.set_query(callback.query());
    let page = env.get(&on_replica).await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    let (_, account) = env.follow(page.location.unwrap()).await;
    assert!(account.body.contains("grace@example.com"));
    // Spent on replica 2 means spent everywhere.
    env.get(&callback)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "no_pending_login");
}

#[tokio::test]
async fn a_google_workspace_connection_refuses_accounts_outside_the_workspace() {
    // Ada's account carries hd=example.com; Grace's is like a personal account (no hd).
    let mut users = bc_sso_sandbox::idp::demo_users();
    users[0].hd = Some("example.com".into());
    let env = Env::with(
        DemoOptions {
            idp: bc_sso_dev::demo::DemoIdp::Dev { users },
            ..Default::default()
        },
        |c| c.connections[0].hosted_domain = Some("Example.com".into()),
    )
    .await;
    let (_, page) = env.sign_in("", "grace").await;
    page.assert_error(StatusCode::FORBIDDEN, "hosted_domain_mismatch");
    assert!(env.demo.emulator.customers().is_empty());
    let (_, page) = env.sign_in("", "ada").await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
}
