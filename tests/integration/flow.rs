//! The sign-in flow end to end, and the ways it must refuse.

use bc_sso_gateway::sessions::SessionBackend;
use bc_sso_sandbox::bigcommerce::LoginOutcome;
use reqwest::{Method, StatusCode};
use url::Url;

use crate::common::{Env, Page, add_other_connection, fetch, log_lines_with, new_browser, page_of};

/// The storefront sent `page` (its answer to a login token) to its sign-in page, and the
/// login tokens it refused so far were refused for `reasons`, in order.
fn assert_refused_by_storefront(env: &Env, page: &Page, reasons: &[&str]) {
    assert_eq!(page.location.as_ref().unwrap().path(), "/login.php");
    let refusals: Vec<&str> = env
        .demo
        .emulator
        .login_attempts()
        .iter()
        .filter_map(|a| match a.outcome {
            LoginOutcome::Refused { reason } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(refusals, reasons);
}

/// A sign-in with `query` as `sub` refused with 403 `code`.
async fn forbidden(env: &Env, query: &str, sub: &str, code: &str) -> Page {
    env.refused(query, sub, StatusCode::FORBIDDEN, code).await
}

/// The callback `url` refused with 400 `code`, and no customer created.
async fn assert_callback_refused(env: &Env, url: &url::Url, code: &str) {
    env.get(url)
        .await
        .assert_error(StatusCode::BAD_REQUEST, code);
    assert!(env.demo.emulator.customers().is_empty());
}

/// The store's audit trail, newest first.
async fn audit_events(env: &Env) -> Vec<bc_sso_gateway::db::AuditEvent> {
    env.demo.state.db.audit_events(10).await.unwrap()
}

/// The config's BigCommerce API account.
fn store_account(env: &Env) -> &bc_sso_gateway::config::StoreConfig {
    env.demo.state.config.store.declared.as_ref().unwrap()
}

#[tokio::test]
async fn existing_customer_signs_in_and_lands_where_they_started() {
    let env = Env::start().await;
    let id = env.seed_customer("Ada@Example.com", None);
    let token_url = env
        .signed_in("channel_id=1&redirect_to=/%3Ffrom%3Dcart", "ada")
        .await;
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
    let token_url = env.signed_in("channel_id=1", "grace").await;
    let (final_url, account) = env.follow(token_url).await;
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
    let env = Env::configured(|c| {
        c.connections[0].channel_access = Some("global".into());
        c.connections[0].customer_group_id = Some(2);
    })
    .await;
    env.signed_in("", "ada").await;
    let c = &env.demo.emulator.customers()[0];
    assert_eq!(c.channel_ids, None);
    assert_eq!(c.customer_group_id, 2);
}

/// A global account can sign in only on channels that allow global logins, so none is
/// created for a channel that does not (the demo's channel 2).
#[tokio::test]
async fn no_global_customer_is_created_for_a_channel_without_global_logins() {
    let env = Env::with_channels(2, |c| {
        c.connections[0].channel_access = Some("global".into());
    })
    .await;
    forbidden(&env, "channel_id=2", "ada", "global_logins_not_allowed").await;
    assert!(env.demo.emulator.customers().is_empty());
    env.signed_in("channel_id=1", "ada").await;
    assert_eq!(env.demo.emulator.customers()[0].channel_ids, None);
}

#[tokio::test]
async fn unverified_email_is_refused() {
    let env = Env::start().await;
    env.seed_customer("eve@example.com", None);
    forbidden(&env, "", "eve", "email_unverified").await;
    assert_eq!(env.demo.emulator.customers().len(), 1, "seeded only");
    assert!(env.demo.emulator.login_attempts().is_empty());
}

/// SECURITY.md rule 3: an unverified email passes only for a domain the admin trusts this
/// IdP for, and Entra's `xms_edov` can only narrow that trust.
#[tokio::test]
async fn unverified_email_passes_only_for_trusted_domains_and_xms_edov_narrows() {
    let env = Env::configured(|c| {
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
    let unverified = |sub| forbidden(&env, "", sub, "email_unverified");
    // example.com is allowed but not trusted: Eve's unverified email is refused.
    unverified("eve").await;
    // eu.example.com is trusted.
    env.signed_in("", "eu-eve").await;
    // xms_edov true keeps the trust; it does not create it where the admin gave none.
    env.signed_in("", "edov-true").await;
    unverified("edov-untrusted").await;
    // xms_edov false: the tenant has not verified the domain; the trust setting yields.
    unverified("edov-false").await;
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
    forbidden(&env, "", "oscar", "domain_not_allowed").await;
    assert!(env.demo.emulator.customers().is_empty());
    assert!(env.demo.emulator.login_attempts().is_empty());
}

#[tokio::test]
async fn no_account_and_creation_disabled_is_refused() {
    let env = Env::configured(|c| c.connections[0].create_customers = Some(false)).await;
    forbidden(&env, "", "ada", "no_store_account").await;
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
    let callback = env.callback("", "ada").await;
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
    let callback = env.callback("", "ada").await;
    let page = fetch(&new_browser(), callback).await;
    page.assert_error(StatusCode::BAD_REQUEST, "no_pending_login");
    assert!(env.demo.emulator.customers().is_empty());
}

#[tokio::test]
async fn duplicated_callback_parameters_are_refused() {
    let env = Env::start().await;
    let callback = env.callback("", "ada").await;
    let mut dup = callback.clone();
    dup.set_query(Some(&format!(
        "{}&code=attacker",
        callback.query().unwrap()
    )));
    assert_callback_refused(&env, &dup, "bad_callback_request").await;
}

#[tokio::test]
async fn pending_login_expires() {
    let env = Env::start().await;
    let callback = env.callback("", "ada").await;
    env.demo.clock.advance(11 * 60);
    assert_callback_refused(&env, &callback, "pending_login_expired").await;
}

#[tokio::test]
async fn idp_access_denied_shows_a_friendly_page() {
    let env = Env::start().await;
    let authorize = env.begin("").await;
    let page = env.get(&authorize).await;
    let request_id = crate::common::hidden_value(&page.body, "request").unwrap();
    let decision = env.demo.idp_url.join("/authorize/decision").unwrap();
    let cancel = [("request", request_id.as_str()), ("cancel", "1")];
    let response = env.browser.post(decision).form(&cancel).send().await;
    let callback = page_of(response.unwrap()).await.location.unwrap();
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
        let (final_url, _) = env.follow(env.signed_in(&query, "ada").await).await;
        assert_eq!(final_url.path(), "/account.php", "for {evil:?}");
        assert_eq!(final_url.host_str(), env.demo.storefront_urls[0].host_str());
    }
}

/// The demo connection asks for the groups scope, maps `rules` (IdP group, customer group)
/// and puts everyone else in customer group 0.
fn with_group_rules(c: &mut bc_sso_gateway::config::RawConfig, rules: &[(&str, i64)]) {
    let conn = &mut c.connections[0];
    let scopes = ["openid", "email", "profile", "groups"];
    conn.scopes = Some(scopes.map(String::from).to_vec());
    conn.customer_group_id = Some(0);
    conn.group_rules = rules
        .iter()
        .map(|(group, id)| bc_sso_gateway::config::RawGroupRule {
            group: (*group).into(),
            customer_group_id: *id,
        })
        .collect();
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn replayed_login_token_is_refused_by_the_storefront() {
    let env = Env::start().await;
    let token_url = env.signed_in("", "ada").await;
    let first = env.get(&token_url).await;
    assert_eq!(first.location.as_ref().unwrap().path(), "/account.php");
    let second = env.get(&token_url).await;
    assert_refused_by_storefront(&env, &second, &["replayed_jti"]);
}

#[tokio::test]
async fn stale_login_token_is_refused_and_clock_skew_is_corrected() {
    let env = Env::start().await;
    // BigCommerce's clock runs 5 minutes ahead of ours. Before we measure it, our tokens
    // look stale to the storefront.
    env.demo.emulator.set_clock_skew(300);
    let stale = env.get(&env.signed_in("", "ada").await).await;
    assert_refused_by_storefront(&env, &stale, &["stale_iat"]);
    // After measuring GET /v2/time, iat is corrected and the same sign-in works.
    let offset = env
        .demo
        .state
        .sync_bigcommerce_clock()
        .await
        .unwrap()
        .unwrap();
    assert!((offset - 300).abs() <= 2, "offset {offset}");
    let ok = env.get(&env.signed_in("", "ada").await).await;
    assert_eq!(ok.location.as_ref().unwrap().path(), "/account.php");
}

#[tokio::test]
async fn customer_of_another_channel_is_refused_before_minting() {
    let env = Env::with_channels(2, |_| {}).await;
    env.seed_customer("ada@example.com", Some(vec![1]));
    forbidden(&env, "channel_id=2", "ada", "channel_not_allowed").await;
    assert!(env.demo.emulator.login_attempts().is_empty());
    assert_eq!(env.demo.emulator.customers().len(), 1);
}

#[tokio::test]
async fn token_for_the_wrong_channel_is_refused_by_the_storefront() {
    let env = Env::with_channels(2, |_| {}).await;
    // Replay the channel-1 token at channel 2's storefront: BigCommerce would refuse it.
    let token_url = env.signed_in("channel_id=1", "ada").await;
    let wrong = env.storefront(2, token_url.path());
    let refused = env.get(&wrong).await;
    assert_refused_by_storefront(&env, &refused, &["wrong_channel"]);
}

#[tokio::test]
async fn unknown_channel_and_connection_are_explained() {
    let env = Env::start().await;
    env.assert_errors(&[
        (
            "/login?channel_id=9",
            StatusCode::BAD_REQUEST,
            "unknown_channel",
        ),
        (
            "/login?channel_id=abc",
            StatusCode::BAD_REQUEST,
            "bad_parameter",
        ),
        (
            "/login?connection=nope",
            StatusCode::NOT_FOUND,
            "unknown_connection",
        ),
        ("/nowhere", StatusCode::NOT_FOUND, "not_found"),
    ])
    .await;
}

#[tokio::test]
async fn several_connections_show_a_chooser_and_route_by_email() {
    let env = Env::configured(|c| add_other_connection(c, "Other Corp")).await;
    let chooser = env.open("/login?channel_id=1").await;
    assert_eq!(chooser.status, StatusCode::OK);
    assert!(chooser.body.contains("Example Corp (dev IdP)") && chooser.body.contains("Other Corp"));
    // By email domain: oscar@other.test goes to the "other" connection.
    let page = env.open("/login?email=oscar%40Other.test").await;
    assert_eq!(page.status, StatusCode::FOUND);
    env.assert_errors(&[
        (
            "/login?email=someone%40nowhere.test",
            StatusCode::BAD_REQUEST,
            "no_connection_for_domain",
        ),
        (
            "/login?email=not-an-email",
            StatusCode::BAD_REQUEST,
            "bad_email_input",
        ),
    ])
    .await;
    // Same IdP, other connection: oscar signs in through "other" and is allowed there.
    env.signed_in("connection=other", "oscar").await;
}

#[tokio::test]
async fn bigcommerce_down_shows_a_clear_page() {
    let env = Env::configured(|c| c.store.api_base_url = Some("http://127.0.0.1:9".into())).await;
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
    let env = Env::configured(|c| add_other_connection(c, "<b>Other</b> Corp")).await;
    let evil = "/%22%3E%3Cscript%3Ealert(1)%3C/script%3E";
    let page = env.open(&format!("/login?redirect_to={evil}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("<script>alert(1)"), "{}", page.body);
    assert!(!page.body.contains("<b>Other</b>"), "{}", page.body);
}

#[tokio::test]
async fn https_gateway_uses_a_host_prefixed_secure_cookie() {
    let env = Env::configured(|c| {
        let url = c
            .server
            .public_url
            .clone()
            .unwrap()
            .replace("http://", "https://");
        c.server.public_url = Some(url);
    })
    .await;
    let response = env.request(Method::GET, "/login").send().await.unwrap();
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
    let env = Env::configured(|c| c.store.access_token = Some("wrong-token-value".into())).await;
    let page = env
        .refused(
            "",
            "ada",
            StatusCode::BAD_GATEWAY,
            "bigcommerce_unavailable",
        )
        .await;
    assert!(!page.body.contains("wrong-token-value"));
    assert!(!crate::common::all_logs().contains("wrong-token-value"));
}

#[tokio::test]
async fn display_name_with_script_is_escaped_and_stored_as_text() {
    let env = Env::with_users(|u| u[0].given_name = Some("<script>alert(1)</script>".into())).await;
    let (_, account) = env.follow(env.signed_in("", "ada").await).await;
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

/// Session fixation (SECURITY.md rule 12): the session that started a sign-in does not go
/// on after it. Alone, it ends (record deleted, cookie removed); holding another tab's
/// pending sign-in, it goes on under a new id, and that tab still signs in.
#[tokio::test]
async fn session_id_is_rotated_when_sign_in_completes() {
    let env = Env::start().await;
    let SessionBackend::Memory(store) = &env.demo.state.sessions else {
        panic!("the in-memory store");
    };
    let response = env.request(Method::GET, "/login").send().await.unwrap();
    session_cookie(&response).expect("session cookie set at /login");
    let authorize = response.headers()["location"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let callback = env.pick_user(&authorize, "ada").await;
    let response = env.browser.get(callback).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let removed = crate::common::set_cookie(&response, "bcsso").expect("cookie removed");
    assert!(
        removed.starts_with("bcsso=;") && removed.contains("Max-Age=0"),
        "{removed}"
    );
    assert_eq!(store.len().await, 0, "the record is gone");

    // Two tabs of one browser: the first to finish rotates the id, the second still works.
    let first = env.request(Method::GET, "/login").send().await.unwrap();
    let before = session_cookie(&first).expect("session cookie set at /login");
    let first: Url = first.headers()["location"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let second = env.begin("").await;
    let callback = env.pick_user(&first, "ada").await;
    let response = env.browser.get(callback).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let after = session_cookie(&response).expect("new session cookie after sign-in");
    assert_ne!(before, after);
    let callback = env.pick_user(&second, "ada").await;
    let page = env.get(&callback).await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    assert!(
        page.location.unwrap().path().starts_with("/login/token/"),
        "the other tab signed in"
    );
}

fn session_cookie(response: &reqwest::Response) -> Option<String> {
    crate::common::set_cookie(response, "bcsso").map(|v| {
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
        store_account(&env).client_secret.expose(),
        store_account(&env).access_token.expose(),
        env.demo.state.config.connections[0].client_secret.expose(),
    ] {
        assert!(!logs.contains(secret), "a secret or token reached the log");
    }
    assert!(!log_lines_with("sign-in complete").is_empty());
}

#[tokio::test]
async fn health_and_assets() {
    let env = Env::start().await;
    let health = env.open("/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    assert!(health.body.contains("ok"));
    let js = env.open("/static/sso-button.js").await;
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
    let response = env.request(Method::GET, "/login?connection=nope").send();
    let response = response.await.unwrap();
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
    let callback = env.callback("", "ada").await;
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
        env.signed_in("", sub).await;
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
        let browser = new_browser();
        let callback = env.callback_with(&browser, "", "grace").await;
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
    env.follow(env.signed_in("", "ada").await).await;
    let ada = env.demo.emulator.customers()[0].id;
    // A colleague's store account exists; then Ada's IdP account is given that email.
    let colleague = env.seed_customer("boss@example.com", None);
    let mut users = env.idp().users();
    users[0].email = Some("boss@example.com".into());
    env.idp().set_users(users);
    env.follow(env.signed_in("", "ada").await).await;
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
    env.signed_in("", "grace").await;
    let refused = forbidden(&env, "", "eve", "email_unverified").await;
    let events = audit_events(&env).await;
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
    let env = Env::configured(|c| crate::common::rate_limit(c, 6, 3)).await;
    for _ in 0..3 {
        assert_eq!(env.open("/login").await.status, StatusCode::FOUND);
    }
    let response = env.request(Method::GET, "/login").send().await.unwrap();
    let retry_after = crate::common::retry_after(&response);
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    page_of(response)
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    // Other pages are not limited.
    assert_eq!(env.open("/healthz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn idp_groups_choose_the_customer_group_of_new_customers() {
    let env = Env::configured(|c| with_group_rules(c, &[("admins", 2), ("engineering", 1)])).await;
    // Ada is in engineering and admins: the first rule (admins) wins. Grace is only in
    // engineering.
    for sub in ["ada", "grace"] {
        env.signed_in("", sub).await;
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
    env.signed_in("", "grace-2").await;
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
    env.signed_in("", "grace-3").await;
    assert_eq!(group("grace3@example.com"), 1);
    assert_eq!(env.idp().userinfo_request_count(), 1);
}

#[tokio::test]
async fn without_group_rules_no_userinfo_call_is_made_for_groups() {
    let env = Env::start().await;
    env.idp().set_groups_in_id_token(false);
    env.signed_in("", "ada").await;
    assert_eq!(env.idp().userinfo_request_count(), 0);
}

#[tokio::test]
async fn profile_sync_updates_a_returning_customer_and_relinks_a_deleted_one() {
    let env = Env::configured(|c| {
        with_group_rules(c, &[("wholesale", 2)]);
        c.connections[0].sync_profile = true;
    })
    .await;
    env.signed_in("", "grace").await;
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
    env.signed_in("", "grace").await;
    let now = env.demo.emulator.customers()[0].clone();
    assert_eq!(now.id, first.id);
    assert_eq!(
        (now.last_name.as_str(), now.customer_group_id),
        ("Murray", 2)
    );
    let hash = &env.demo.state.config.store.store_hash;
    let kinds: Vec<_> = audit_events(&env).await.iter().map(|e| e.kind).collect();
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
    let token = store_account(&env).access_token.expose();
    let deleted = client
        .delete(url)
        .header("X-Auth-Token", token)
        .send()
        .await;
    assert_eq!(deleted.unwrap().status(), StatusCode::NO_CONTENT);
    env.signed_in("", "grace").await;
    let customers = env.demo.emulator.customers();
    assert_eq!(customers.len(), 1);
    assert_ne!(customers[0].id, first.id);
    let link = env.demo.state.db.search_links("grace", 5).await.unwrap();
    assert_eq!(link[0].customer_id, customers[0].id);
}

#[tokio::test]
async fn a_connection_limited_to_some_channels_is_offered_only_there() {
    let env = Env::with_channels(2, |c| {
        add_other_connection(c, "Other Corp");
        c.connections[1].channels = vec![2];
    })
    .await;
    // Channel 1: only "demo" applies, so no chooser: straight to the IdP.
    let page = env.open("/login?channel_id=1").await;
    assert_eq!(page.status, StatusCode::FOUND);
    // Channel 2: both apply.
    let page = env.open("/login?channel_id=2").await;
    assert!(page.body.contains("Other Corp"));
    let not_for_channel = |path| (path, StatusCode::BAD_REQUEST, "connection_not_for_channel");
    env.assert_errors(&[
        not_for_channel("/login?channel_id=1&connection=other"),
        not_for_channel("/login?channel_id=1&email=oscar%40other.test"),
    ])
    .await;
    env.signed_in("channel_id=2&connection=other", "oscar")
        .await;
}

#[tokio::test]
async fn with_redis_sessions_another_replica_finishes_the_sign_in() {
    let redis =
        std::env::var("BCSSO_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let env = Env::configured(move |c| c.server.sessions_url = Some(redis)).await;
    // A second replica: same config (database, Redis), its own listener.
    let (_, replica) = env.replica(|_| {}).await;

    // Start on replica 1; the IdP sends the browser back, and the load balancer picks
    // replica 2 (same host name for the browser, so the same cookie).
    let callback = env.callback("", "grace").await;
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
    let options = bc_sso_dev::demo::DemoOptions {
        idp: bc_sso_dev::demo::DemoIdp::Dev { users },
        ..Default::default()
    };
    let env = Env::with(options, |c| {
        c.connections[0].hosted_domain = Some("Example.com".into())
    })
    .await;
    forbidden(&env, "", "grace", "hosted_domain_mismatch").await;
    assert!(env.demo.emulator.customers().is_empty());
    env.signed_in("", "ada").await;
}
