//! Store settings entered in the admin console: a gateway started with only its store hash
//! (and admin token and key) is set up through the console or the API, and shoppers sign in.

use std::sync::{Arc, Mutex};

use bc_sso_gateway::AppState;
use bc_sso_gateway::clock::Clock;
use bc_sso_gateway::config::RawStore;
use bc_sso_gateway::db::AuditKind;
use reqwest::{Method, StatusCode};

use crate::common::{Env, all_logs, connection_json};

/// The demo on a database a restart can open, with `[store]` cut down to the store hash;
/// returns the API account the demo would have put there (the emulator's), for the admin
/// to type in.
async fn unset_store() -> (Env, RawStore) {
    let taken = Arc::new(Mutex::new(RawStore::default()));
    let slot = taken.clone();
    let env = Env::shareable(move |c| {
        *slot.lock().unwrap() = c.store.clone();
        c.store = RawStore {
            store_hash: c.store.store_hash.clone(),
            ..RawStore::default()
        };
    })
    .await;
    let account = taken.lock().unwrap().clone();
    (env, account)
}

/// `form` with `edit` applied to the value of each field.
fn edited(
    mut form: Vec<(String, String)>,
    edit: impl Fn(&str, &mut String),
) -> Vec<(String, String)> {
    for (k, v) in &mut form {
        edit(k, v);
    }
    form
}

fn store_form(csrf: &str, account: &RawStore, token: &str) -> Vec<(String, String)> {
    let channels = account
        .channels
        .iter()
        .map(|c| format!("{} {} /account.php", c.id, c.storefront_url))
        .collect::<Vec<_>>()
        .join("\n");
    [
        ("csrf", csrf),
        ("api_base_url", account.api_base_url.as_deref().unwrap()),
        ("client_id", account.client_id.as_deref().unwrap()),
        ("access_token", token),
        ("client_secret", account.client_secret.as_deref().unwrap()),
        ("channels", &channels),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

#[tokio::test]
async fn an_admin_sets_up_the_store_in_the_console_and_shoppers_sign_in() {
    let (env, account) = unset_store().await;
    let token_value = account.access_token.clone().unwrap();
    let secret_value = account.client_secret.clone().unwrap();

    // Not set up: shoppers get a clear page, the console says what to do.
    let login = env.open("/login").await;
    login.assert_error(StatusCode::SERVICE_UNAVAILABLE, "store_not_set_up");
    let csrf = env.admin_sign_in().await;
    let overview = env.open("/admin").await;
    assert!(overview.body.contains("not set up"), "{}", overview.body);
    let check = env.open("/admin/checks/store").await;
    assert!(
        check
            .body
            .contains("<strong id=\"overall\">failed</strong>")
    );

    // A form without the CSRF token changes nothing.
    let mut forged = store_form("wrong", &account, &token_value);
    forged.retain(|(k, _)| k != "csrf");
    env.post("/admin/store", &forged)
        .await
        .assert_error(StatusCode::FORBIDDEN, "csrf_rejected");
    assert!(env.demo.state.store_settings.current().is_none());

    // Bad input comes back with the values typed and every reason, and nothing is saved.
    let form = store_form(&csrf, &account, &token_value);
    let refused = |edit: fn(&str, &mut String), reasons: &'static [&'static str]| {
        let bad = edited(form.clone(), edit);
        let env = &env;
        async move {
            let refused = env.post("/admin/store", &bad).await;
            refused.assert_form_refused(reasons);
        }
    };
    refused(
        |k, v| match k {
            "channels" => *v = format!("{v}\nsecond https://two.example.com"),
            "api_base_url" => *v = "ftp://api.example.com".into(),
            _ => {}
        },
        &["channels, line 2"],
    )
    .await;
    // Errors found by validation name the form's line too (blank lines count).
    refused(
        |k, v| {
            if k == "channels" {
                *v = format!("{v}\n\n7 not-a-url");
            }
        },
        &["channels, line 3, storefront_url"],
    )
    .await;
    // Typed values are kept.
    refused(
        |k, v| match k {
            "api_base_url" => *v = "ftp://api.example.com".into(),
            "client_id" => v.clear(),
            _ => {}
        },
        &[
            "api_base_url",
            "client_id: required",
            "ftp://api.example.com",
        ],
    )
    .await;
    assert!(env.demo.state.store_settings.current().is_none());

    // A wrong token is saved (it is well-formed) and the check that follows says so.
    let saved = env
        .post(
            "/admin/store",
            &store_form(&csrf, &account, "not-the-token"),
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    assert_eq!(
        saved.location.as_ref().unwrap().path(),
        "/admin/checks/store"
    );
    let check = env.get(&saved.location.unwrap()).await;
    assert!(
        check
            .body
            .contains("<strong id=\"overall\">failed</strong>")
            && check.body.contains("401"),
        "{}",
        check.body
    );

    // The right token; the client secret field left empty keeps the stored one.
    let fixed = edited(form, |k, v| {
        if k == "client_secret" {
            v.clear();
        }
    });
    let saved = env.post("/admin/store", &fixed).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let check = env.get(&saved.location.unwrap()).await;
    assert!(
        !check
            .body
            .contains("<strong id=\"overall\">failed</strong>"),
        "{}",
        check.body
    );

    // A shopper signs in end to end: the login token is signed with the kept secret.
    let (url, landed) = env.follow(env.signed_in("", "ada").await).await;
    assert_eq!(url.path(), "/account.php", "{}", landed.body);
    assert_eq!(env.demo.emulator.customers().len(), 1);

    // Audited twice, the secrets as "changed"/"unchanged" only.
    let events = env.demo.state.db.audit_events(50).await.unwrap();
    let changes: Vec<_> = events
        .iter()
        .filter(|e| e.kind == AuditKind::StoreSettingsChanged)
        .collect();
    assert_eq!(changes.len(), 2);
    let latest: serde_json::Value =
        serde_json::from_str(changes[0].detail.as_deref().unwrap()).unwrap();
    assert_eq!(latest["after"]["access_token"], "changed");
    assert_eq!(latest["after"]["client_secret"], "unchanged");
    assert_eq!(changes[0].actor.as_deref(), Some("bootstrap-token"));

    // The plaintext of the token and secret is in no page, answer, log line or row.
    let mut seen = String::new();
    for path in [
        "/admin",
        "/admin/store",
        "/admin/audit",
        "/admin/checks/store",
    ] {
        seen.push_str(&env.open(path).await.body);
    }
    seen.push_str(&env.api_get("/admin/api/store").await.to_string());
    seen.push_str(&all_logs());
    let db = &env.demo.state.db;
    let row = db.setting("store_account").await.unwrap().unwrap();
    assert!(row.contains(account.client_id.as_deref().unwrap()));
    seen.push_str(&row);
    for s in [&token_value, &secret_value] {
        assert!(
            !seen.contains(s.as_str()),
            "a store secret was shown or stored"
        );
    }
}

#[tokio::test]
async fn the_api_sets_the_store_and_another_replica_and_a_restart_follow() {
    let (env, account) = unset_store().await;
    let other = AppState::connect(env.demo.state.config.clone(), Clock::system())
        .await
        .unwrap();
    let put = |body: serde_json::Value| env.api_call(Method::PUT, "/admin/api/store", body);
    let mut body = serde_json::to_value(&account).unwrap();
    body.as_object_mut()
        .unwrap()
        .retain(|_, v| !v.is_null() && v != &serde_json::json!([]));
    body.as_object_mut().unwrap().remove("store_hash");

    // No bearer token: refused, nothing changes.
    let anonymous = env.request(Method::PUT, "/admin/api/store").json(&body);
    let anonymous = anonymous.send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let answer: serde_json::Value = anonymous.json().await.unwrap();
    assert_eq!(answer["error"], "admin_sign_in_required");
    // The store hash is the file's.
    let mut with_hash = body.clone();
    with_hash["store_hash"] = "other".into();
    let (status, answer) = put(with_hash).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    // Invalid settings: 422 naming each.
    let mut invalid = body.clone();
    invalid["channels"] = serde_json::json!([{ "id": 0, "storefront_url": "nope" }]);
    invalid.as_object_mut().unwrap().remove("access_token");
    let (status, answer) = put(invalid).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"], "invalid_store_settings");
    let message = answer["message"].as_str().unwrap();
    for reason in ["channels[0].id", "access_token: required"] {
        assert!(message.contains(reason), "{reason}: {message}");
    }
    assert!(env.demo.state.store_settings.current().is_none());

    let (status, answer) = put(body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["managed_by"], "console");
    assert_eq!(answer["data"]["client_id"], body["client_id"]);
    assert!(answer["data"].get("access_token").is_none());

    // The other replica picks the settings up at its next refresh; a restart loads them.
    assert!(other.store_settings.current().is_none());
    assert!(other.refresh_settings().await.unwrap());
    assert!(
        !other.refresh_settings().await.unwrap(),
        "no change: no reload"
    );
    assert_eq!(
        other.store_settings.current().unwrap().settings.client_id,
        account.client_id.clone().unwrap()
    );
    let restarted = AppState::connect(env.demo.state.config.clone(), Clock::system())
        .await
        .unwrap();
    let settings = &restarted.store_settings.current().unwrap().settings;
    assert_eq!(
        settings.access_token.expose(),
        account.access_token.as_deref().unwrap()
    );
    assert_eq!(settings.channels.len(), account.channels.len());

    // The other replica, its snapshot now behind, edits only the channels after this one
    // rotated the token: it starts from the stored row, so the rotation is not undone.
    let mut rotated = body.clone();
    rotated["access_token"] = "rotated-token".into();
    let (status, answer) = put(rotated).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let mut channels_only: RawStore = serde_json::from_value(body.clone()).unwrap();
    channels_only.access_token = None;
    channels_only.client_secret = None;
    channels_only.channels[0].default_redirect = Some("/cart.php".into());
    let change = other
        .store_settings
        .save(other.settings_rows(), channels_only, None, None)
        .await
        .unwrap();
    assert_eq!(change.after.unwrap()["access_token"], "unchanged");
    env.demo.state.refresh_settings().await.unwrap();
    let here = env.demo.state.store_settings.current().unwrap();
    assert_eq!(here.settings.access_token.expose(), "rotated-token");
    assert_eq!(
        here.settings.channels[&1].default_redirect.as_str(),
        "/cart.php"
    );

    // A new API base URL needs the token typed again: the kept one is not sent elsewhere.
    let mut moved = body.clone();
    moved["api_base_url"] = "https://api.attacker.example/".into();
    moved.as_object_mut().unwrap().remove("access_token");
    let (status, answer) = put(moved).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("access_token: enter the access token again"),
        "{answer}"
    );

    // A row from a newer version (an unknown field) still loads; an unreadable one is
    // reported but does not hold back the other settings.
    let db = &env.demo.state.db;
    let row = db.setting("store_account").await.unwrap().unwrap();
    let mut newer: serde_json::Value = serde_json::from_str(&row).unwrap();
    newer["settings"]["added_later"] = true.into();
    newer["added_later"] = true.into();
    db.set_setting("store_account", &newer.to_string())
        .await
        .unwrap();
    assert!(other.refresh_settings().await.unwrap());
    db.set_setting("store_account", "{not json").await.unwrap();
    let later = connection_json("later", "https://later.example", "later.example");
    let (status, _) = env
        .api_call(Method::POST, "/admin/api/connections", later)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let error = other.refresh_settings().await.unwrap_err().to_string();
    assert!(
        error.contains("stored store settings cannot be used"),
        "{error}"
    );
    assert!(
        other.connections.any("later").is_some(),
        "connections still reloaded"
    );
    assert_eq!(
        other
            .store_settings
            .current()
            .unwrap()
            .settings
            .access_token
            .expose(),
        "rotated-token",
        "the settings in force stay"
    );
    db.set_setting("store_account", &row).await.unwrap();

    // A restart with another key cannot open them, and says so.
    let mut wrong_key = env.demo.state.config.clone();
    wrong_key.database.secret_key = Some(bc_sso_gateway::secrets::SecretKey::generate());
    let error = AppState::connect(wrong_key, Clock::system())
        .await
        .err()
        .expect("a wrong key stops start-up")
        .to_string();
    assert!(error.contains("key"), "{error}");
}

#[tokio::test]
async fn store_settings_from_the_file_are_read_only() {
    let env = Env::start().await;
    let csrf = env.admin_sign_in().await;
    let page = env.open("/admin/store").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("declared in the configuration file"));
    assert!(page.body.contains("<fieldset disabled>"));
    let account = env.demo.state.config.store.declared.clone().unwrap();
    let raw = RawStore {
        api_base_url: Some(account.api_base_url.to_string()),
        client_id: Some(account.client_id.clone()),
        client_secret: Some("x".into()),
        channels: bc_sso_gateway::settings::store::to_raw(&account).channels,
        ..RawStore::default()
    };
    env.post("/admin/store", &store_form(&csrf, &raw, "new-token"))
        .await
        .assert_error(StatusCode::CONFLICT, "managed_by_file");
    let client_id = serde_json::json!({ "client_id": "x" });
    let (status, _) = env
        .api_call(Method::PUT, "/admin/api/store", client_id)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let api = env.demo.state.store_settings.current().unwrap();
    assert_eq!(api.settings.access_token, account.access_token);
}
