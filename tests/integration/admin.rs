//! The admin console and API: access control, CSRF, identity links, audit trail.

use bc_sso_gateway::admin::{Access, AdminRoute};
use bc_sso_gateway::db::AuditKind;
use reqwest::{Method, StatusCode};

use crate::common::{
    Env, admin_sign_in_unset, connection_json, hidden_value, new_browser, page_of,
};

#[tokio::test]
async fn nothing_admin_is_reachable_without_signing_in() {
    let env = Env::start().await;
    // A shopper who signed in has a session, but not an admin one.
    env.signed_in("", "ada").await;
    for path in ["/admin", "/admin/links?email=ada", "/admin/audit"] {
        let page = env.open(path).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(page.location.unwrap().path(), "/admin/login");
    }
    let link = &env.demo.state.db.search_links("ada", 5).await.unwrap()[0];
    let form = [
        ("issuer", link.issuer.as_str()),
        ("subject", "ada"),
        ("csrf", "x"),
    ];
    let page = env.post("/admin/links/remove", &form).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    for (method, path) in [
        ("GET", "/admin/api/links?email=ada"),
        ("DELETE", "/admin/api/links?issuer=x&subject=ada"),
        ("GET", "/admin/api/audit"),
    ] {
        for bearer in [None, Some("wrong-token")] {
            let mut request = env.request(method.parse().unwrap(), path);
            if let Some(b) = bearer {
                request = request.bearer_auth(b);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path}"
            );
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"], "admin_sign_in_required");
        }
    }
    // The link is still there.
    assert_eq!(env.demo.state.db.count_links().await.unwrap(), 1);
}

#[tokio::test]
async fn without_a_token_the_console_is_off() {
    let env = Env::configured(|c| {
        c.admin.token = None;
        c.admin.sso_connection = None;
    })
    .await;
    env.open("/admin/login")
        .await
        .assert_error(StatusCode::NOT_FOUND, "admin_disabled");
    let response = env.request(Method::GET, "/admin/api/audit");
    let response = response.bearer_auth("anything").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn sign_in_needs_the_token_and_the_form_token() {
    let env = Env::start().await;
    let login = env.open("/admin/login").await;
    let csrf = hidden_value(&login.body, "csrf").unwrap();
    let wrong = [("token", "not-the-admin-token-0000000"), ("csrf", &csrf)];
    let wrong = env.post("/admin/login", &wrong).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("not the admin token"));
    let token = env.admin_token();
    env.post(
        "/admin/login",
        &[("token", token.as_str()), ("csrf", "forged")],
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "csrf_rejected");
    // A browser that never loaded the form has no form token at all.
    let form = [("token", token.as_str()), ("csrf", csrf.as_str())];
    let response = new_browser().post(env.gateway("/admin/login")).form(&form);
    let response = response.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let events = env.demo.state.db.audit_events(10).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind == AuditKind::AdminSignInRefused)
    );
    env.admin_sign_in().await;
    let events = env.demo.state.db.audit_events(10).await.unwrap();
    assert_eq!(events[0].kind, AuditKind::AdminSignedIn);
    assert_eq!(events[0].actor.as_deref(), Some("bootstrap-token"));
}

#[tokio::test]
async fn an_admin_finds_and_removes_a_link_and_the_change_is_audited() {
    let env = Env::start().await;
    env.signed_in("", "ada").await;
    let csrf = env.admin_sign_in().await;
    let page = env.open("/admin/links?email=ADA%40example").await;
    assert!(page.body.contains("ada@example.com"), "{}", page.body);
    let issuer = hidden_value(&page.body, "issuer").unwrap();
    let remove = |csrf: String| {
        let form = [
            ("csrf", csrf),
            ("issuer", issuer.clone()),
            ("subject", "ada".into()),
        ];
        let env = &env;
        async move { env.post("/admin/links/remove", &form).await }
    };
    remove("wrong".into())
        .await
        .assert_error(StatusCode::FORBIDDEN, "csrf_rejected");
    assert_eq!(env.demo.state.db.count_links().await.unwrap(), 1);
    let done = remove(csrf).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    let back = env.get(&done.location.unwrap()).await;
    assert!(back.body.contains("Link removed"));
    assert_eq!(env.demo.state.db.count_links().await.unwrap(), 0);
    let event = &env.demo.state.db.audit_events(1).await.unwrap()[0];
    assert_eq!(event.kind, AuditKind::LinkRemoved);
    assert_eq!(event.actor.as_deref(), Some("bootstrap-token"));
    let detail: serde_json::Value = serde_json::from_str(event.detail.as_deref().unwrap()).unwrap();
    assert_eq!(detail["before"]["email_at_link"], "ada@example.com");
    assert!(detail["after"].is_null());
    // The audit page shows it, filtered by kind.
    let audit = env.open("/admin/audit?kind=link_removed").await;
    assert!(audit.body.contains("link_removed") && audit.body.contains("bootstrap-token"));
    assert!(audit.body.contains("<td>link_removed</td>"));
    assert!(!audit.body.contains("<td>sign_in_succeeded</td>"));
    // Ada's next sign-in goes by email again and is linked anew.
    let calls = env.demo.emulator.api_request_count();
    env.signed_in("", "ada").await;
    assert!(env.demo.emulator.api_request_count() > calls);
    assert_eq!(env.demo.state.db.count_links().await.unwrap(), 1);
}

#[tokio::test]
async fn the_api_does_the_same_with_a_bearer_token() {
    let env = Env::start().await;
    env.sign_in("", "grace").await;
    let api = |method: Method, path: &str| env.api(method, path).send();
    let links = env.api_get("/admin/api/links?email=grace").await;
    let link = &links["data"][0];
    assert_eq!(link["email_at_link"], "grace@example.com");
    assert_eq!(link["subject"], "grace");
    let issuer = link["issuer"].as_str().unwrap().to_owned();
    let missing = api(Method::GET, "/admin/api/links").await.unwrap();
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        missing.json::<serde_json::Value>().await.unwrap()["error"],
        "bad_admin_request"
    );
    let path = format!(
        "/admin/api/links?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("issuer", &issuer)
            .append_pair("subject", "grace")
            .finish()
    );
    let removed = api(Method::DELETE, &path).await.unwrap();
    assert_eq!(removed.status(), StatusCode::OK);
    let again = api(Method::DELETE, &path).await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    let audit = env.api_get("/admin/api/audit?kind=link_removed").await;
    assert_eq!(audit["data"][0]["actor"], "api-token");
    assert_eq!(audit["data"][0]["detail"]["before"]["subject"], "grace");
    let bad = api(Method::GET, "/admin/api/audit?from=yesterday").await;
    assert_eq!(bad.unwrap().status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn admin_pages_show_no_secrets_and_sign_out_works() {
    let env = Env::start().await;
    env.sign_in("", "ada").await;
    let csrf = env.admin_sign_in().await;
    let c = &env.demo.state.config;
    let secrets = [
        c.store.declared.as_ref().unwrap().client_secret.expose(),
        c.store.declared.as_ref().unwrap().access_token.expose(),
        c.connections[0].client_secret.expose(),
        c.admin_token.as_ref().unwrap().expose(),
    ];
    for path in ["/admin", "/admin/links?email=a", "/admin/audit"] {
        let page = env.open(path).await;
        assert_eq!(page.status, StatusCode::OK);
        for s in secrets {
            assert!(!page.body.contains(s), "a secret is on {path}");
        }
    }
    let overview = env.open("/admin").await;
    assert!(
        overview
            .body
            .contains(&c.redirect_uri("CONNECTION-ID").to_string())
    );
    // Store settings are shown read-only, secrets only as "set".
    assert!(
        overview.body.contains("id=\"store-settings\"")
            && overview
                .body
                .contains(&c.store.declared.as_ref().unwrap().client_id)
    );
    let out = env.post("/admin/logout", &[("csrf", csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let page = env.open("/admin").await;
    assert_eq!(page.location.unwrap().path(), "/admin/login");
}

#[tokio::test]
async fn store_check_and_connection_test_report_in_plain_words() {
    let env = Env::start().await;
    let page = env.open("/admin/checks/store").await;
    assert_eq!(page.location.unwrap().path(), "/admin/login");
    env.admin_sign_in().await;
    let store = env.open("/admin/checks/store").await;
    store.assert_checks_passed();
    assert!(
        store.body.contains("Wholesale"),
        "customer groups listed: {}",
        store.body
    );
    let conn = env.open("/admin/checks/connections/demo").await;
    conn.assert_checks_passed();
    assert!(
        conn.body
            .contains(&env.demo.state.config.redirect_uri("demo").to_string())
    );
    env.open("/admin/checks/connections/nope")
        .await
        .assert_error(StatusCode::NOT_FOUND, "unknown_connection");

    // The same through the API, and a broken IdP is reported as failed.
    env.idp()
        .set_misbehaviour(bc_sso_sandbox::idp::Misbehaviour::JwksDown);
    let report = env.api_get("/admin/api/checks/connections/demo").await;
    assert_eq!(report["status"], "failed");
    let jwks = report["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "jwks")
        .unwrap();
    assert_eq!(jwks["status"], "failed");
    // (bigcommerce::diagnose's own tests cover a wrong token, missing scopes and skew.)
    let report = env.api_get("/admin/api/checks/store").await;
    assert_eq!(report["status"], "ok", "{report}");
}

/// Starts "Try sign-in" for `connection`; returns the `/login?trial=…` query.
pub async fn start_trial(env: &Env, csrf: &str, connection: &str) -> String {
    let path = format!("/admin/connections/{connection}/try");
    let response = env.post(&path, &[("csrf", csrf)]).await;
    assert_eq!(response.status, StatusCode::SEE_OTHER);
    let location = response.location.unwrap();
    assert_eq!(location.path(), "/login");
    location.query().unwrap().to_owned()
}

#[tokio::test]
async fn try_sign_in_shows_claims_and_decision_and_changes_nothing() {
    let env = Env::start().await;
    let csrf = env.admin_sign_in().await;
    let query = start_trial(&env, &csrf, "demo").await;
    let report_url = env.signed_in(&query, "ada").await;
    assert!(report_url.path().starts_with("/admin/trials/"));
    let report = env.get(&report_url).await;
    assert_eq!(report.status, StatusCode::OK);
    assert!(
        report
            .body
            .contains("<strong id=\"decision\">allowed</strong>"),
        "{}",
        report.body
    );
    assert!(
        report.body.contains("ada@example.com") && report.body.contains("would_create"),
        "{}",
        report.body
    );
    assert!(report.body.contains("Lovelace"));
    // Test mode: no customer, no link, no token.
    assert!(env.demo.emulator.customers().is_empty());
    assert!(env.demo.emulator.login_attempts().is_empty());
    assert_eq!(env.demo.state.db.count_links().await.unwrap(), 0);
    // The ticket works once.
    env.open(&format!("/login?{query}"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "no_pending_login");

    // A refusal is explained with the reason a shopper would get.
    let query = start_trial(&env, &csrf, "demo").await;
    let (_, callback) = env.sign_in(&query, "eve").await;
    let report = env.get(&callback.location.unwrap()).await;
    assert!(
        report
            .body
            .contains("<strong id=\"decision\">email_unverified</strong>"),
        "{}",
        report.body
    );

    // After a real sign-in, the trial shows the link.
    env.signed_in("", "ada").await;
    let query = start_trial(&env, &csrf, "demo").await;
    let (_, callback) = env.sign_in(&query, "ada").await;
    let report = env.get(&callback.location.unwrap()).await;
    assert!(report.body.contains("linked"), "{}", report.body);
}

#[tokio::test]
async fn only_admins_start_trials_and_read_reports() {
    let env = Env::start().await;
    let response = env
        .post("/admin/connections/demo/try", &[("csrf", "x")])
        .await;
    assert_eq!(response.location.unwrap().path(), "/admin/login");
    let page = env.open("/admin/trials/whatever").await;
    assert_eq!(page.location.unwrap().path(), "/admin/login");
    // A made-up ticket does not start anything.
    env.open("/login?trial=made-up")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "no_pending_login");
}

/// Runs the console's SSO sign-in as `sub` at the dev IdP; returns the callback's answer.
async fn sso_as(env: &Env, sub: &str) -> (url::Url, crate::common::Page) {
    let login = env.open("/admin/login").await;
    assert!(
        login.body.contains("Sign in with Example Corp (dev IdP)"),
        "{}",
        login.body
    );
    let callback = env.admin_sso_callback(&env.browser, sub).await;
    let page = env.get(&callback).await;
    (callback, page)
}

#[tokio::test]
async fn admins_sign_in_with_their_company_account() {
    let env = Env::start().await;
    let (callback, page) = sso_as(&env, "ada").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let overview = env.open("/admin").await;
    assert_eq!(overview.status, StatusCode::OK);
    let event = &env.demo.state.db.audit_events(1).await.unwrap()[0];
    assert_eq!(event.kind, AuditKind::AdminSignedIn);
    assert_eq!(event.actor.as_deref(), Some("sso:ada@example.com"));
    // The state was spent.
    env.get(&callback)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "no_pending_login");
    // No storefront customer came of it.
    assert!(env.demo.emulator.customers().is_empty());
}

#[tokio::test]
async fn a_company_account_not_on_the_admin_list_is_refused() {
    let env = Env::start().await;
    let (_, page) = sso_as(&env, "grace").await;
    page.assert_error(StatusCode::FORBIDDEN, "not_an_admin");
    let after = env.open("/admin").await;
    assert_eq!(after.location.unwrap().path(), "/admin/login");
    let event = &env.demo.state.db.audit_events(1).await.unwrap()[0];
    assert_eq!(event.kind, AuditKind::AdminSignInRefused);
    assert_eq!(event.email.as_deref(), Some("grace@example.com"));
}

#[tokio::test]
async fn a_shopper_callback_cannot_finish_an_admin_sign_in() {
    let env = Env::start().await;
    let callback = env.admin_sso_callback(&env.browser, "ada").await;
    // Replaying the admin callback's code and state at the shopper callback fails: that
    // state belongs to the admin session, and the redirect URI differs.
    let mut shopper = env.gateway("/oidc/callback/demo");
    shopper.set_query(callback.query());
    env.get(&shopper)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "no_pending_login");
}

/// `route`'s URL, its path parameters (`{id}`, `{ticket}`) filled with the demo connection,
/// which every refused call must leave alone.
fn url_of(env: &Env, route: &AdminRoute) -> url::Url {
    let segments: Vec<&str> = route
        .path
        .split('/')
        .map(|s| if s.starts_with('{') { "demo" } else { s })
        .collect();
    env.gateway(&segments.join("/"))
}

/// Every admin route, as the router lists them (so a new one is covered without anyone
/// adding it here): pages and forms send an anonymous caller to the sign-in form, the API
/// answers 401 without the token, and a form whose CSRF token is not the session's is
/// refused (403) and changes nothing.
#[tokio::test]
async fn every_admin_route_refuses_anonymous_callers_and_forged_csrf() {
    let env = Env::start().await;
    let routes = bc_sso_gateway::admin::routes();
    for access in [Access::SignIn, Access::Page, Access::Form, Access::Api] {
        assert!(
            routes.iter().any(|r| r.access == access),
            "no {access:?} route"
        );
    }
    // A shopper who signed in has a session, but not an admin one.
    env.signed_in("", "ada").await;
    for route in &routes {
        let what = format!("{} {} ({:?})", route.method, route.path, route.access);
        let request = env
            .browser
            .request(route.method.clone(), url_of(&env, route));
        match route.access {
            Access::SignIn => {}
            Access::Page | Access::Form => {
                let request = match route.access {
                    Access::Form => request.form(&[("csrf", "x")]),
                    _ => request,
                };
                let page = page_of(request.send().await.unwrap()).await;
                assert_eq!(page.status, StatusCode::SEE_OTHER, "{what}");
                assert_eq!(
                    page.location.map(|l| l.path().to_owned()).as_deref(),
                    Some("/admin/login"),
                    "{what}"
                );
            }
            Access::Api => {
                let response = request.json(&serde_json::json!({})).send().await.unwrap();
                assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
                let body: serde_json::Value = response.json().await.unwrap();
                assert_eq!(body["error"], "admin_sign_in_required", "{what}");
            }
        }
    }
    // Signed in, every form (the sign-in form too) refuses a token that is not its own.
    env.admin_sign_in().await;
    let forms = routes
        .iter()
        .filter(|r| r.method == reqwest::Method::POST && r.access != Access::Api);
    for route in forms {
        let response = env
            .browser
            .post(url_of(&env, route))
            .form(&[("csrf", "forged"), ("bootstrap_token", &env.admin_token())])
            .send()
            .await
            .unwrap();
        let page = page_of(response).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "POST {}", route.path);
        page.assert_error(StatusCode::FORBIDDEN, "csrf_rejected");
    }
    // Still signed in (the forged sign-out did nothing), and nothing changed.
    assert_eq!(env.open("/admin").await.status, StatusCode::OK);
    assert!(env.demo.state.connections.get("demo").is_some());
    let db = &env.demo.state.db;
    assert!(db.list_connections().await.unwrap().is_empty());
    assert_eq!(db.count_links().await.unwrap(), 1);
}

#[tokio::test]
async fn admin_sso_needs_a_verified_listed_email_or_a_listed_group() {
    // Listed by email in another case but unverified at the IdP: refused.
    // The shopper's checks come first (SECURITY.md rule 21), so the reason is the email's.
    let env = Env::with_users(|u| u[0].email_verified = Some(serde_json::json!(false))).await;
    let (_, page) = sso_as(&env, "ada").await;
    page.assert_error(StatusCode::FORBIDDEN, "email_unverified");

    // Grace is admitted by group, with the groups scope requested.
    let env = Env::configured(|c| {
        c.admin.allowed_emails = vec!["ADA@example.com".into()];
        c.admin.allowed_groups = vec!["engineering".into()];
        c.connections[0].scopes = Some(vec![
            "openid".into(),
            "email".into(),
            "profile".into(),
            "groups".into(),
        ]);
    })
    .await;
    let (_, page) = sso_as(&env, "grace").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    // And Ada by her email, whatever its case in the config.
    let env = Env::configured(|c| c.admin.allowed_emails = vec!["ADA@Example.com".into()]).await;
    let (_, page) = sso_as(&env, "ada").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
}

/// Admin sign-in set up in the console: a refused form keeps what was typed and changes
/// nothing; a saved one lets the listed admin in through the IdP, is audited, reaches
/// another replica, and can be turned off again.
#[tokio::test]
async fn admin_sign_in_is_set_up_in_the_console() {
    let env = Env::configured(admin_sign_in_unset).await;
    let login = env.open("/admin/login").await;
    assert!(!login.body.contains("admin-sso"), "off until set");
    env.open("/admin/sso")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");

    let csrf = env.admin_sign_in().await;
    let token = env.admin_token();
    // Without the bootstrap token typed again nothing changes (SECURITY.md rule 21).
    let no_token = [
        ("csrf", csrf.as_str()),
        ("connection", "demo"),
        ("allowed_emails", "ada@example.com"),
        ("bootstrap_token", "not-the-token"),
    ];
    env.post("/admin/access", &no_token)
        .await
        .assert_form_refused(&["admin token"]);
    assert!(env.demo.state.admin_access.current().is_none());
    let refused = [
        ("csrf", csrf.as_str()),
        ("connection", "nope"),
        ("allowed_emails", "not-an-email"),
        ("bootstrap_token", &token),
    ];
    env.post("/admin/access", &refused)
        .await
        .assert_form_refused(&[
            "there is no connection &#34;nope&#34;",
            "&#34;not-an-email&#34;",
        ]);
    assert!(env.demo.state.admin_access.current().is_none());
    let forged = [
        ("connection", "demo"),
        ("allowed_emails", "ada@example.com"),
    ];
    env.post("/admin/access", &forged)
        .await
        .assert_error(StatusCode::FORBIDDEN, "csrf_rejected");

    let saved = [
        ("csrf", csrf.as_str()),
        ("connection", "demo"),
        ("allowed_emails", "Ada@Example.com\n"),
        ("allowed_groups", ""),
        ("bootstrap_token", &token),
    ];
    let saved = env.post("/admin/access", &saved).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let event = &env.demo.state.db.audit_events(1).await.unwrap()[0];
    assert_eq!(event.kind, AuditKind::AdminAccessChanged);
    assert!(event.detail.as_deref().unwrap().contains("ada@example.com"));

    // Signed out, Ada (on the list) signs in through the IdP; then Grace is refused.
    let sign_out = |csrf: String| async {
        let out = env.post("/admin/logout", &[("csrf", csrf)]).await;
        assert_eq!(out.status, StatusCode::SEE_OTHER);
    };
    sign_out(csrf).await;
    let (_, page) = sso_as(&env, "ada").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let overview = env.open("/admin").await;
    assert_eq!(overview.status, StatusCode::OK);
    sign_out(hidden_value(&overview.body, "csrf").unwrap()).await;
    let (_, page) = sso_as(&env, "grace").await;
    page.assert_error(StatusCode::FORBIDDEN, "not_an_admin");

    // An admin at the IdP while the admin connection is switched: the callback was
    // started for the old connection and is refused (rule 8).
    env.create_connection("second", "second.test").await;
    let callback = env.admin_sso_callback(&env.browser, "ada").await;
    let switch =
        serde_json::json!({ "connection": "second", "allowed_emails": ["ada@example.com"] });
    let (switched, _) = env.api_call(Method::PUT, "/admin/api/access", switch).await;
    assert_eq!(switched, StatusCode::OK);
    env.get(&callback)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "no_pending_login");

    // The API shows it; turning it off there closes the SSO door (the token still works).
    let shown = env.api_get("/admin/api/access").await;
    assert_eq!(shown["managed_by"], "console");
    assert_eq!(shown["data"]["allowed_emails"][0], "ada@example.com");
    let off = serde_json::json!({ "connection": null });
    let (off, _) = env.api_call(Method::PUT, "/admin/api/access", off).await;
    assert_eq!(off, StatusCode::OK);
    env.open("/admin/sso")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn admin_sign_in_from_the_file_is_read_only() {
    let env = Env::start().await;
    let csrf = env.admin_sign_in().await;
    let page = env.open("/admin/access").await;
    assert!(page.body.contains("declared in the configuration file"));
    env.post(
        "/admin/access",
        &[("csrf", csrf.as_str()), ("connection", "")],
    )
    .await
    .assert_error(StatusCode::CONFLICT, "managed_by_file");
    assert!(env.demo.state.admin_access.current().is_some());
}

/// "A connection's channels must be configured storefront channels" was checked by the
/// console's form only: the API saved a connection for a channel the store has no
/// storefront for, and every sign-in there would have ended on an error page. One check
/// now serves the form and the API, in the same words.
#[tokio::test]
async fn api_cannot_create_a_connection_for_an_unconfigured_channel() {
    let env = Env::start().await;
    let issuer = env.demo.state.config.connections[0].issuer.as_str();
    let connection = |channels: serde_json::Value| {
        let mut connection = connection_json("other", issuer, "other.test");
        connection["channels"] = channels;
        connection
    };
    let rule = "channels: only configured storefront channels can be chosen (1)";
    let refused = |(status, body): (StatusCode, serde_json::Value)| {
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["error"], "invalid_connection", "{body}");
        assert!(body["message"].as_str().unwrap().contains(rule), "{body}");
    };
    // The demo store has one storefront, channel 1.
    let path = "/admin/api/connections";
    refused(
        env.api_call(Method::POST, path, connection(serde_json::json!([2])))
            .await,
    );
    assert!(env.demo.state.connections.any("other").is_none());
    let (created, _) = env
        .api_call(Method::POST, path, connection(serde_json::json!([1])))
        .await;
    assert_eq!(created, StatusCode::CREATED);
    let path = "/admin/api/connections/other";
    refused(
        env.api_call(Method::PUT, path, connection(serde_json::json!([1, 2])))
            .await,
    );
    assert_eq!(
        env.demo.state.connections.any("other").unwrap().channels,
        vec![1]
    );
    // The console's form, the same rule in the same words.
    let csrf = env.admin_sign_in().await;
    let form = [
        ("csrf", csrf.as_str()),
        ("id", "third"),
        ("display_name", "Third Corp"),
        ("issuer", issuer),
        ("client_id", "bc-sso-gateway"),
        ("client_secret", bc_sso_dev::demo::DEV_CLIENT_SECRET),
        ("allowed_email_domains", "third.test"),
        ("channels", "2"),
    ];
    env.post("/admin/connections/new", &form)
        .await
        .assert_form_refused(&[rule]);
    assert!(env.demo.state.connections.any("third").is_none());
}
