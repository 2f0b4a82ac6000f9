//! SECURITY.md rule 21: admin sign-in is at least as strict as a shopper's, and who may
//! sign in to the console changes only with the bootstrap token.

use bc_sso_gateway::db::AuditKind;
use reqwest::{Method, StatusCode};

use crate::common::{Env, admin_sign_in_unset, hidden_value};

/// The review signed in to the console with a Google account outside the Workspace domain
/// (no `hd` claim), which the same connection refuses to shoppers.
#[tokio::test]
async fn admin_sso_without_the_hosted_domain_is_refused_like_a_shopper() {
    let env =
        Env::configured(|c| c.connections[0].hosted_domain = Some("example.com".into())).await;
    let callback = env.admin_sso_callback(&env.browser, "ada").await;
    env.get(&callback)
        .await
        .assert_error(StatusCode::FORBIDDEN, "hosted_domain_mismatch");
    assert_eq!(
        env.open("/admin").await.status,
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
    let env = Env::configured(|c| c.admin.allowed_emails = vec!["oscar@other.test".into()]).await;
    let callback = env.admin_sso_callback(&env.browser, "oscar").await;
    env.get(&callback)
        .await
        .assert_error(StatusCode::FORBIDDEN, "domain_not_allowed");
}

/// Whoever holds a console session planted an IdP of their own: a console connection made
/// the admin connection, then repointed at another issuer. Editing, disabling or deleting
/// the admin connection now needs the bootstrap token typed again.
#[tokio::test]
async fn console_session_cannot_repoint_the_admin_connection_without_the_token() {
    let env = Env::configured(admin_sign_in_unset).await;
    let issuer = env.demo.state.config.connections[0]
        .issuer
        .as_str()
        .to_owned();
    env.create_connection("admins", "admins.test").await;
    let access =
        serde_json::json!({ "connection": "admins", "allowed_emails": ["it@admins.test"] });
    let (access, _) = env.api_call(Method::PUT, "/admin/api/access", access).await;
    assert_eq!(access, StatusCode::OK);

    let csrf = env.admin_sign_in().await;
    let edit = env.open("/admin/connections/admins/edit").await;
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
        env.post("/admin/connections/admins/edit", &form(typed))
            .await
            .assert_form_refused(&["admin token"]);
    }
    let conn = env.demo.state.connections.any("admins").unwrap();
    assert_eq!(conn.issuer.as_str(), issuer, "not repointed");
    for action in ["disable", "delete"] {
        env.post(
            &format!("/admin/connections/admins/{action}"),
            &[("csrf", &csrf)],
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
    let mut ok = form(Some(env.admin_token()));
    for (k, v) in ok.iter_mut() {
        if k == "issuer" {
            *v = issuer.clone();
        }
        if k == "client_secret" {
            v.clear();
        }
    }
    let page = env.post("/admin/connections/admins/edit", &ok).await;
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
    let overview = env.open("/admin").await;
    assert!(hidden_value(&overview.body, "csrf").is_some());
    let form = [("csrf", csrf), ("bootstrap_token", env.admin_token())];
    let disabled = env.post("/admin/connections/admins/disable", &form).await;
    assert_eq!(disabled.status, StatusCode::SEE_OTHER);
}

/// Typing the bootstrap token again is not a way to guess it: wrong tokens count against
/// the same budget as the sign-in form's, then even the right one waits.
#[tokio::test]
async fn retyped_admin_token_guesses_are_limited() {
    let env = Env::configured(|c| {
        admin_sign_in_unset(c);
        c.server.admin_failures_per_minute = Some(3);
    })
    .await;
    let csrf = env.admin_sign_in().await;
    let save = |token: String| {
        let fields = vec![
            ("csrf".to_owned(), csrf.clone()),
            ("connection".to_owned(), "demo".to_owned()),
            ("allowed_emails".to_owned(), "ada@example.com".to_owned()),
            ("bootstrap_token".to_owned(), token),
        ];
        let env = &env;
        async move { env.post("/admin/access", &fields).await }
    };
    for guess in 0..3 {
        let page = save(format!("wrong-guess-{guess}")).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(page.body.contains("admin token"), "{}", page.body);
    }
    let limited = save(env.admin_token()).await;
    assert!(
        limited.body.contains("too many"),
        "the fourth try is limited, even with the right token: {}",
        limited.body
    );
    assert!(
        env.demo.state.admin_access.current().is_none(),
        "nothing saved"
    );
}
