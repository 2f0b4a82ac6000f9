//! IdP connections managed in the admin console: validation, encryption at rest,
//! enable/disable/delete, restart, and the API.

use bc_sso_dev::demo::DEV_CLIENT_SECRET;
use bc_sso_gateway::AppState;
use bc_sso_gateway::clock::Clock;
use bc_sso_gateway::db::AuditKind;
use reqwest::{Method, StatusCode};

use crate::common::{Env, Scratch, admin_sign_in_unset};

/// The fields of the "Add a connection" form for a connection to the demo's dev IdP.
fn form(env: &Env, csrf: &str, id: &str, domains: &str) -> Vec<(String, String)> {
    [
        ("csrf", csrf),
        ("id", id),
        ("display_name", "Other Corp"),
        (
            "issuer",
            env.demo.state.config.connections[0].issuer.as_str(),
        ),
        ("client_id", "bc-sso-gateway"),
        ("client_secret", DEV_CLIENT_SECRET),
        ("allowed_email_domains", domains),
        ("scopes", "openid email profile"),
        ("create_customers", "on"),
        ("channel_access", "channel"),
        ("id_token_algs", "RS256"),
        ("clock_leeway_secs", "60"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// `fields` with `name` set to `value`.
fn with(mut fields: Vec<(String, String)>, name: &str, value: &str) -> Vec<(String, String)> {
    for (_, v) in fields.iter_mut().filter(|(k, _)| k == name) {
        *v = value.into();
    }
    fields
}

/// The connections the console stored.
async fn stored(env: &Env) -> Vec<bc_sso_gateway::db::StoredConnection> {
    env.demo.state.db.list_connections().await.unwrap()
}

/// Signs in to the console and adds connection "other" for other.test; the CSRF token.
async fn add_other(env: &Env) -> String {
    let csrf = env.admin_sign_in().await;
    let created = env
        .post(
            "/admin/connections/new",
            &form(env, &csrf, "other", "other.test"),
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    csrf
}

#[tokio::test]
async fn an_admin_adds_a_connection_and_a_shopper_signs_in_through_it() {
    let env = Env::start().await;
    let csrf = env.admin_sign_in().await;
    let created = env
        .post(
            "/admin/connections/new",
            &form(&env, &csrf, "other", "other.test"),
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    // The admin lands on the connection test, which passes.
    env.get(&created.location.unwrap())
        .await
        .assert_checks_passed();
    // Oscar (other.test) can now sign in; before, no connection owned his domain.
    env.signed_in("connection=other", "oscar").await;
    let page = env.open("/login?email=oscar%40other.test").await;
    assert_eq!(page.status, StatusCode::FOUND);

    // Stored encrypted; the audit trail has the change without the secret.
    let stored = stored(&env).await;
    assert_eq!(stored.len(), 1);
    assert!(stored[0].client_secret_sealed.starts_with("v1:"));
    assert!(!stored[0].client_secret_sealed.contains(DEV_CLIENT_SECRET));
    assert!(!stored[0].settings.contains(DEV_CLIENT_SECRET));
    let events = env.demo.state.db.audit_events(20).await.unwrap();
    let created = events
        .iter()
        .find(|e| e.kind == AuditKind::ConnectionCreated)
        .unwrap();
    assert_eq!(created.actor.as_deref(), Some("bootstrap-token"));
    let detail = created.detail.as_deref().unwrap();
    assert!(
        detail.contains("other.test") && !detail.contains(DEV_CLIENT_SECRET),
        "{detail}"
    );
}

#[tokio::test]
async fn a_refused_form_says_why_and_keeps_what_was_typed() {
    let env = Env::start().await;
    let csrf = env.admin_sign_in().await;
    let fields = form(&env, &csrf, "Bad Id", "example.com");
    let fields = with(
        with(fields, "issuer", "http://idp.example.net"),
        "clock_leeway_secs",
        "soon",
    );
    let new = "/admin/connections/new";
    // "clock_leeway_secs: &#34;soon&#34; is not a whole number"
    env.post(new, &fields)
        .await
        .assert_form_refused(&["is not a whole number"]);
    let fields = with(fields, "clock_leeway_secs", "60");
    let page = env.post(new, &fields).await;
    // The typed values are kept.
    let kept = "value=\"http://idp.example.net\"";
    page.assert_form_refused(&["id: ", "issuer: must be https", kept]);
    assert!(
        !page.body.contains(DEV_CLIENT_SECRET),
        "the secret is not echoed back"
    );
    // Once the settings are valid on their own, the domain already owned by the file's
    // connection is refused (SECURITY.md rule 4).
    let claimed = "example.com is claimed by connections demo and other";
    let page = env
        .post(new, &form(&env, &csrf, "other", "example.com"))
        .await;
    page.assert_form_refused(&[claimed]);
    // Group rules are one `group = id` a line.
    let mut rules = form(&env, &csrf, "other", "other.test");
    rules.push((
        "group_rules".into(),
        "buyers = 2\nno equals sign\nvip = two".into(),
    ));
    // Line 3: "group_rules line 3: &#34;two&#34; is not a whole number".
    let reasons = ["group_rules line 2: write", "is not a whole number"];
    env.post(new, &rules).await.assert_form_refused(&reasons);
    // Without a secret, a new connection is refused too.
    let without: Vec<_> = form(&env, &csrf, "other", "other.test")
        .into_iter()
        .filter(|(k, _)| k != "client_secret")
        .collect();
    env.post(new, &without)
        .await
        .assert_form_refused(&["client_secret: required"]);
    // A forged form is refused outright.
    env.post(new, &form(&env, "forged", "other", "other.test"))
        .await
        .assert_error(StatusCode::FORBIDDEN, "csrf_rejected");
    assert!(stored(&env).await.is_empty());
}

#[tokio::test]
async fn edit_keeps_the_secret_and_disable_enable_delete_take_effect() {
    let env = Env::start().await;
    let csrf = add_other(&env).await;
    let edit = env.open("/admin/connections/other/edit").await;
    assert_eq!(edit.status, StatusCode::OK);
    assert!(edit.body.contains("value=\"Other Corp\"") && !edit.body.contains(DEV_CLIENT_SECRET));
    // The form lists the store's customer groups to map to.
    assert!(
        edit.body.contains("<code>2</code> Wholesale"),
        "{}",
        edit.body
    );
    let mut fields = form(&env, &csrf, "other", "other.test");
    fields.retain(|(k, _)| k != "client_secret");
    let fields = with(fields, "display_name", "Other Corporation");
    // A new issuer with the secret left empty: the kept secret is not sent to another IdP.
    let moved = with(fields.clone(), "issuer", "https://elsewhere.example");
    env.post("/admin/connections/other/edit", &moved)
        .await
        .assert_form_refused(&["enter the client secret again"]);
    let saved = env.post("/admin/connections/other/edit", &fields).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let (_, page) = env.sign_in("connection=other", "oscar").await;
    assert_eq!(
        page.status,
        StatusCode::FOUND,
        "kept secret still works: {}",
        page.body
    );
    let updated = env
        .demo
        .state
        .db
        .audit_events(5)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.kind == AuditKind::ConnectionUpdated)
        .unwrap();
    let detail: serde_json::Value =
        serde_json::from_str(updated.detail.as_deref().unwrap()).unwrap();
    assert_eq!(detail["before"]["display_name"], "Other Corp");
    assert_eq!(detail["after"]["display_name"], "Other Corporation");
    assert_eq!(detail["after"]["client_secret"], "unchanged");

    let csrf_only = [("csrf", csrf)];
    for (action, offered) in [("disable", false), ("enable", true), ("delete", false)] {
        let path = format!("/admin/connections/other/{action}");
        let done = env.post(&path, &csrf_only).await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{action}");
        let login = env.open("/login?connection=other").await;
        if offered {
            assert_eq!(login.status, StatusCode::FOUND, "{action}");
        } else {
            login.assert_error(StatusCode::NOT_FOUND, "unknown_connection");
        }
    }
    assert!(stored(&env).await.is_empty());
    // The file's connection is read-only here.
    env.open("/admin/connections/demo/edit")
        .await
        .assert_error(StatusCode::CONFLICT, "managed_by_file");
    env.post("/admin/connections/demo/delete", &csrf_only)
        .await
        .assert_error(StatusCode::CONFLICT, "managed_by_file");
}

#[tokio::test]
async fn stored_connections_survive_a_restart_and_need_the_same_key() {
    let env = Env::shareable(|_| {}).await;
    add_other(&env).await;

    let config = env.demo.state.config.clone();
    let restarted = AppState::connect(config.clone(), Clock::system())
        .await
        .unwrap();
    let other = restarted
        .connections
        .get("other")
        .expect("loaded after restart");
    assert_eq!(other.client_secret.expose(), DEV_CLIENT_SECRET);

    let mut wrong_key = config.clone();
    wrong_key.database.secret_key = Some(bc_sso_gateway::secrets::SecretKey::generate());
    let refused = |config| async { AppState::connect(config, Clock::system()).await.err() };
    let err = refused(wrong_key).await.unwrap().to_string();
    assert!(err.contains("does not match"), "{err}");
    let mut no_key = config;
    no_key.database.secret_key = None;
    let err = refused(no_key).await.unwrap().to_string();
    assert!(err.contains("BCSSO_SECRET_KEY"), "{err}");
}

#[tokio::test]
async fn the_api_manages_connections_too() {
    let env = Env::start().await;
    let issuer = env.demo.state.config.connections[0].issuer.as_str();
    let body = crate::common::connection_json("api-made", issuer, "other.test");
    let path = "/admin/api/connections";
    let (status, created) = env.api_call(Method::POST, path, body.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["data"]["id"], "api-made");
    assert!(created["data"].get("client_secret").is_none());
    let (status, dup) = env.api_call(Method::POST, path, body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(dup["error"], "invalid_connection");
    assert!(dup["message"].as_str().unwrap().contains("already exists"));
    let list = env.api_get(path).await;
    let managed: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["managed_by"].as_str().unwrap())
        .collect();
    assert_eq!(managed, ["file", "console"]);
    assert!(!list.to_string().contains(DEV_CLIENT_SECRET));
    let update = serde_json::json!({
        "issuer": issuer,
        "client_id": "bc-sso-gateway",
        "allowed_email_domains": ["other.test", "*.other.test"],
    });
    let path = "/admin/api/connections/api-made";
    let (updated, _) = env.api_call(Method::PUT, path, update).await;
    assert_eq!(updated, StatusCode::OK);
    env.signed_in("connection=api-made", "oscar").await;
    for deleted in [StatusCode::NO_CONTENT, StatusCode::NOT_FOUND] {
        let response = env.api(Method::DELETE, path).send().await.unwrap();
        assert_eq!(response.status(), deleted);
    }
    let bad = env
        .api(Method::POST, "/admin/api/connections")
        .body("{not json");
    assert_eq!(bad.send().await.unwrap().status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn no_secret_is_in_a_page_an_api_answer_a_log_line_or_a_database_row() {
    let dir = Scratch::new("secrets");
    let db = dir.path().join("gateway.sqlite");
    let db_url = dir.sqlite_url();
    let env = Env::configured(move |c| c.database.url = Some(db_url)).await;
    let console_secret = "console-made-secret-4f8a1c2e9b7d";
    let csrf = env.admin_sign_in().await;
    let fields = with(
        form(&env, &csrf, "other", "other.test"),
        "client_secret",
        console_secret,
    );
    assert_eq!(
        env.post("/admin/connections/new", &fields).await.status,
        StatusCode::SEE_OTHER
    );
    env.sign_in("connection=demo", "ada").await;

    let c = &env.demo.state.config;
    let secrets = [
        console_secret,
        c.store.declared.as_ref().unwrap().client_secret.expose(),
        c.store.declared.as_ref().unwrap().access_token.expose(),
        c.connections[0].client_secret.expose(),
        c.admin_token.as_ref().unwrap().expose(),
    ];
    let key = c.database.secret_key.as_ref().unwrap().to_base64();
    let mut seen = String::new();
    for path in [
        "/admin",
        "/admin/connections/other/edit",
        "/admin/audit",
        "/admin/links?email=a",
        "/admin/checks/connections/other",
        "/admin/checks/store",
    ] {
        seen.push_str(&env.open(path).await.body);
    }
    for path in [
        "/admin/api/connections",
        "/admin/api/audit",
        "/admin/api/links?email=a",
    ] {
        seen.push_str(&env.api_get(path).await.to_string());
    }
    seen.push_str(&crate::common::all_logs());
    // Every row of every table, as text.
    let dump = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg(".dump")
        .output();
    let rows = match dump {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        // No sqlite3 CLI: read the file's bytes (SQLite keeps text as UTF-8 in the pages).
        _ => String::from_utf8_lossy(&std::fs::read(&db).unwrap()).into_owned(),
    };
    assert!(
        rows.contains("other.test"),
        "the dump has the connection's settings"
    );
    seen.push_str(&rows);
    for s in secrets.iter().copied().chain([key.as_str()]) {
        assert!(
            !seen.contains(s),
            "a secret ({} chars) was found in a page, answer, log or row",
            s.len()
        );
    }
}

#[tokio::test]
async fn a_change_made_on_one_replica_reaches_the_others() {
    // Admin sign-in set in the console, below.
    let env = Env::shareable(admin_sign_in_unset).await;
    // A second replica on the same database and key.
    let other = AppState::connect(env.demo.state.config.clone(), Clock::system())
        .await
        .unwrap();
    assert!(other.connections.get("other").is_none());
    let csrf = add_other(&env).await;
    assert!(
        other.refresh_settings().await.unwrap(),
        "the change is seen"
    );
    assert!(other.connections.get("other").is_some());
    assert!(
        !other.refresh_settings().await.unwrap(),
        "nothing new: no reload"
    );
    env.post("/admin/connections/other/disable", &[("csrf", csrf)])
        .await;
    other.refresh_settings().await.unwrap();
    assert!(
        other.connections.get("other").is_none(),
        "disabled on the other replica too"
    );
    // Admin sign-in settings travel the same way.
    assert!(other.admin_access.current().is_none());
    let access = serde_json::json!({ "connection": "demo", "allowed_groups": ["it"] });
    let (status, _) = env.api_call(Method::PUT, "/admin/api/access", access).await;
    assert_eq!(status, StatusCode::OK);
    assert!(other.refresh_settings().await.unwrap());
    assert_eq!(other.admin_access.current().unwrap().allowed_groups, ["it"]);
}
