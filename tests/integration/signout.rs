//! Sign-out (issue 10): `/logout` ends the company sign-in at the IdP when it publishes an
//! `end_session_endpoint` (RP-Initiated Logout), then the storefront session; the browser
//! test in browser.rs walks the same through chromium and oidc-provider.

use bc_sso_gateway::sessions::SessionBackend;
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
/// the IdP and leave the company session open on a shared computer. It is a signed cookie,
/// not 12 hours of server-side session per sign-in (issue 12: memory flat across 100,000
/// sign-ins): the completed sign-in leaves nothing in the session store.
#[tokio::test]
async fn a_completed_sign_in_is_remembered_long_enough_to_sign_out() {
    let env = Env::start().await;
    let SessionBackend::Memory(store) = &env.demo.state.sessions else {
        panic!("the in-memory store");
    };
    let browser = crate::common::new_browser();
    let callback = env.callback_with(&browser, "", "ada").await;
    assert_eq!(store.len().await, 1, "the pending login's session");
    let r = browser.get(callback).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let marker = crate::common::set_cookie(&r, "bcsso_out")
        .unwrap_or_else(|| panic!("no sign-out marker: {:?}", r.headers()))
        .to_owned();
    let max_age: i64 = marker
        .split(';')
        .find_map(|p| p.trim().strip_prefix("Max-Age="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{marker}"));
    assert!(max_age >= 11 * 3600, "{marker}");
    assert!(
        marker.contains("HttpOnly") && marker.contains("SameSite=Lax"),
        "{marker}"
    );
    assert_eq!(store.len().await, 0, "nothing kept server-side");
}

/// The marker is what `/logout` trusts to pick the IdP to sign out of: one that was not
/// signed with this store's key (forged, or edited to name another connection) counts for
/// nothing, and a valid one is spent by the sign-out it starts.
#[tokio::test]
async fn a_forged_sign_out_marker_is_ignored_and_a_valid_one_is_spent() {
    use base64::Engine as _;
    let (env, op) = crate::interop::env_with_oidc_provider(false).await;
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(br#"{"c":"demo","h":1,"e":99999999999}"#);
    for value in [format!("{forged}.AAAA"), "garbage".to_owned()] {
        assert_eq!(
            logout_with_marker(&env, &value).await,
            env.storefront(1, "/login.php?action=logout").as_str(),
            "{value}: no IdP sign-out on a marker we did not sign"
        );
    }
    // A real one, from a sign-in through oidc-provider: the IdP's sign-out, once.
    let authorize = env.begin("").await;
    let callback = crate::interop::through_oidc_provider(&env, authorize, "ada@example.com").await;
    let r = env.browser.get(callback).send().await.unwrap();
    let marker = crate::common::set_cookie(&r, "bcsso_out")
        .expect("marker")
        .to_owned();
    let value = marker["bcsso_out=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let location = logout_with_marker(&env, &value).await;
    assert!(
        location.starts_with(op.issuer.as_str().trim_end_matches('/')),
        "{location}"
    );
}

/// `/logout` with the marker cookie `value`: where it sends the browser. The marker is
/// cleared whatever it was (spent, or worthless).
async fn logout_with_marker(env: &Env, value: &str) -> String {
    let r = env
        .request(reqwest::Method::GET, "/logout")
        .header("cookie", format!("bcsso_out={value}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let cleared = crate::common::set_cookie(&r, "bcsso_out").expect("cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    r.headers()["location"].to_str().unwrap().to_owned()
}
