//! SECURITY.md rule 21: admin sign-in is at least as strict as a shopper's, and who may
//! sign in to the console changes only with the bootstrap token.

use bc_sso_dev::demo::DemoOptions;
use bc_sso_gateway::db::AuditKind;
use reqwest::StatusCode;

use crate::admin::{sign_in, token};
use crate::common::{Env, hidden_value, page_of, post};

/// The review signed in to the console with a Google account outside the Workspace domain
/// (no `hd` claim), which the same connection refuses to shoppers.
#[tokio::test]
async fn admin_sso_without_the_hosted_domain_is_refused_like_a_shopper() {
    let env = Env::with(DemoOptions::default(), |c| {
        c.connections[0].hosted_domain = Some("example.com".into());
    })
    .await;
    let start = env.get(&env.gateway("/admin/sso")).await;
    assert_eq!(start.status, StatusCode::FOUND, "{}", start.body);
    let callback = env.pick_user(&start.location.unwrap(), "ada").await;
    env.get(&callback)
        .await
        .assert_error(StatusCode::FORBIDDEN, "hosted_domain_mismatch");
    assert_eq!(
        env.get(&env.gateway("/admin")).await.status,
        StatusCode::SEE_OTHER,
        "not signed in"
    );
    let event = &env.demo.state.db.audit_events(1).await.unwrap()[0];
    assert_eq!(event.kind, AuditKind::AdminSignInRefused);
    assert_eq!(event.reason.as_deref(), Some("hosted_domain_mismatch"));
}

/// An admin address in a domain the connection does not allow is refused before the admin
/// lists are consulted.
#[tokio::test]
async fn admin_sso_from_a_domain_the_connection_does_not_allow_is_refused() {
    let env = Env::with(DemoOptions::default(), |c| {
        c.admin.allowed_emails = vec!["oscar@other.test".into()];
    })
    .await;
    let start = env.get(&env.gateway("/admin/sso")).await;
    let callback = env.pick_user(&start.location.unwrap(), "oscar").await;
    env.get(&callback)
        .await
        .assert_error(StatusCode::FORBIDDEN, "domain_not_allowed");
}

/// Whoever holds a console session planted an IdP of their own: a console connection made
/// the admin connection, then repointed at another issuer. Editing, disabling or deleting
/// the admin connection now needs the bootstrap token typed again.
#[tokio::test]
async fn console_session_cannot_repoint_the_admin_connection_without_the_token() {
    let env = Env::with(DemoOptions::default(), |c| {
        c.admin.sso_connection = None;
        c.admin.allowed_emails.clear();
    })
    .await;
    let issuer = env.demo.state.config.connections[0]
        .issuer
        .as_str()
        .to_owned();
    let api = |method: reqwest::Method, path: &str, body: serde_json::Value| {
        env.browser
            .request(method, env.gateway(path))
            .bearer_auth(token(&env))
            .json(&body)
            .send()
    };
    let created = api(
        reqwest::Method::POST,
        "/admin/api/connections",
        serde_json::json!({
            "id": "admins", "issuer": issuer, "client_id": "bc-sso-gateway",
            "client_secret": bc_sso_dev::demo::DEV_CLIENT_SECRET,
            "allowed_email_domains": ["admins.test"]
        }),
    )
    .await
    .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let access = api(
        reqwest::Method::PUT,
        "/admin/api/access",
        serde_json::json!({ "connection": "admins", "allowed_emails": ["it@admins.test"] }),
    )
    .await
    .unwrap();
    assert_eq!(access.status(), StatusCode::OK);

    let csrf = sign_in(&env).await;
    let edit = env
        .get(&env.gateway("/admin/connections/admins/edit"))
        .await;
    assert!(
        edit.body.contains("name=\"bootstrap_token\""),
        "{}",
        edit.body
    );
    let form = |token: Option<String>| {
        let mut f = vec![
            ("csrf".to_owned(), csrf.clone()),
            ("id".to_owned(), "admins".to_owned()),
            ("display_name".to_owned(), "Planted".to_owned()),
            ("issuer".to_owned(), "https://attacker.example".to_owned()),
            ("client_id".to_owned(), "x".to_owned()),
            ("client_secret".to_owned(), "attacker-secret".to_owned()),
            ("allowed_email_domains".to_owned(), "admins.test".to_owned()),
            ("link_existing".to_owned(), "reset_password".to_owned()),
        ];
        if let Some(t) = token {
            f.push(("bootstrap_token".to_owned(), t));
        }
        f
    };
    for typed in [None, Some(String::new()), Some("a-wrong-guess".to_owned())] {
        let page = post(&env, "/admin/connections/admins/edit", &form(typed)).await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            page.body
        );
        assert!(page.body.contains("admin token"), "{}", page.body);
    }
    let conn = env.demo.state.connections.any("admins").unwrap();
    assert_eq!(conn.issuer.as_str(), issuer, "not repointed");
    for action in ["disable", "delete"] {
        post(
            &env,
            &format!("/admin/connections/admins/{action}"),
            &[("csrf".to_owned(), csrf.clone())],
        )
        .await
        .assert_error(StatusCode::FORBIDDEN, "bootstrap_token_required");
    }
    assert!(
        env.demo.state.connections.get("admins").is_some(),
        "still enabled"
    );
    // The wrong guess is on record.
    let events = env.demo.state.db.audit_events(20).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind == AuditKind::AdminSignInRefused
                && e.reason.as_deref() == Some("admin_token_rejected")),
        "{events:?}"
    );
    // Typed again, the change goes through (here: only the display name).
    let mut ok = form(Some(token(&env)));
    for (k, v) in ok.iter_mut() {
        if k == "issuer" {
            *v = issuer.clone();
        }
        if k == "client_secret" {
            v.clear();
        }
    }
    let page = post(&env, "/admin/connections/admins/edit", &ok).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(
        env.demo
            .state
            .connections
            .any("admins")
            .unwrap()
            .display_name,
        "Planted"
    );
    // With the token typed, disabling it works too.
    let overview = env.get(&env.gateway("/admin")).await;
    assert!(hidden_value(&overview.body, "csrf").is_some());
    let r = env
        .browser
        .post(env.gateway("/admin/connections/admins/disable"))
        .form(&[("csrf", csrf.as_str()), ("bootstrap_token", &token(&env))])
        .send()
        .await
        .unwrap();
    assert_eq!(page_of(r).await.status, StatusCode::SEE_OTHER);
}
