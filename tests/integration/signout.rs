//! Sign-out (issue 10): `/logout` ends the company sign-in at the IdP when it publishes an
//! `end_session_endpoint` (RP-Initiated Logout), then the storefront session; the browser
//! test in browser.rs walks the same through chromium and oidc-provider.

use reqwest::StatusCode;

use crate::common::Env;

/// Signs `sub` in and uses the login token at the storefront, as a browser would.
async fn signed_in(env: &Env, sub: &str) {
    let (_, account) = env.follow(env.signed_in("", sub).await).await;
    assert!(account.body.contains("Signed in as"), "{}", account.body);
}

/// The dev IdP publishes no `end_session_endpoint`: straight to the storefront's sign-out,
/// which ends the storefront session.
#[tokio::test]
async fn sign_out_without_idp_logout_ends_the_storefront_session() {
    let env = Env::start().await;
    signed_in(&env, "ada").await;
    let page = env.open("/logout?channel_id=1").await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    let to = page.location.unwrap();
    assert_eq!(
        to.as_str(),
        env.storefront(1, "/login.php?action=logout").as_str()
    );
    let (landed, home) = env.follow(to).await;
    assert_eq!(landed.path(), "/");
    assert!(!home.body.contains("Signed in as"), "{}", home.body);
    // A second /logout (nothing remembered) still only ever goes to the storefront.
    let again = env.open("/logout").await;
    assert_eq!(
        again.location.unwrap().as_str(),
        env.storefront(1, "/login.php?action=logout").as_str()
    );
}

/// oidc-provider publishes `end_session_endpoint`: `/logout` sends the shopper there with
/// the client id, the gateway's `post_logout_redirect_uri` and a state; `/logout/done`
/// with that state ends at the storefront's sign-out for the channel signed in to.
#[tokio::test]
async fn sign_out_goes_through_the_idps_end_session_endpoint() {
    let (env, op) = crate::interop::env_with_oidc_provider(false).await;
    let authorize = env.begin("").await;
    let callback = crate::interop::through_oidc_provider(&env, authorize, "ada@example.com").await;
    let page = env.get(&callback).await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);

    let page = env.open("/logout").await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    let to = page.location.unwrap();
    assert!(
        to.as_str()
            .starts_with(op.issuer.as_str().trim_end_matches('/')),
        "{to}"
    );
    let query: std::collections::HashMap<String, String> = to.query_pairs().into_owned().collect();
    assert_eq!(query["client_id"], crate::interop::OP_CLIENT_ID);
    assert_eq!(
        query["post_logout_redirect_uri"],
        env.gateway("/logout/done").as_str()
    );
    assert!(
        !query.contains_key("id_token_hint"),
        "no token is kept for sign-out"
    );
    let done = env
        .get(&env.gateway(&format!("/logout/done?state={}", query["state"])))
        .await;
    assert_eq!(
        done.location.unwrap().as_str(),
        env.storefront(1, "/login.php?action=logout").as_str()
    );
}

/// `/logout/done` takes no URL from the request: a forged or replayed return still ends at
/// a configured storefront's sign-out, never elsewhere.
#[tokio::test]
async fn logout_return_never_redirects_off_the_storefront() {
    let env = Env::start().await;
    for query in [
        "",
        "?state=forged",
        "?post_logout_redirect_uri=https://evil.example/",
        "?redirect_to=//evil.example",
    ] {
        let page = env.open(&format!("/logout/done{query}")).await;
        assert_eq!(page.status, StatusCode::FOUND, "{query}: {}", page.body);
        assert_eq!(
            page.location.unwrap().as_str(),
            env.storefront(1, "/login.php?action=logout").as_str(),
            "{query}"
        );
    }
    env.open("/logout?channel_id=x")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_parameter");
}

/// Shoppers browse the storefront, not the gateway: what a sign-in remembers for sign-out
/// must outlive the 10-minute life of anonymous sessions, or a later sign-out would skip
/// the IdP and leave the company session open on a shared computer.
#[tokio::test]
async fn a_completed_sign_in_is_remembered_long_enough_to_sign_out() {
    let env = Env::start().await;
    let browser = crate::common::new_browser();
    let callback = env.callback_with(&browser, "", "ada").await;
    let r = browser.get(callback).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.to_ascii_lowercase().contains("max-age"))
        .unwrap_or_else(|| panic!("no session cookie with a lifetime: {cookies:?}"));
    let max_age: i64 = session
        .split(';')
        .find_map(|p| p.trim().strip_prefix("Max-Age="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{session}"));
    assert!(max_age >= 11 * 3600, "{session}");
}
