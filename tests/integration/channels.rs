//! Storefront URLs against the channels' sites in BigCommerce (`GET /v3/channels`,
//! `GET /v3/channels/{id}/site`): `check`, the console's store check, and saving store
//! settings in the console or the API.

use std::sync::{Arc, Mutex};

use bc_sso_gateway::config::RawStore;
use reqwest::{Method, StatusCode};
use tokio::process::Command;
use url::Url;

use crate::common::{Env, Scratch, write_config};

const BIN: &str = env!("CARGO_BIN_EXE_bc-sso-dev");

/// A URL where no storefront of this demo is.
fn elsewhere() -> Url {
    Url::parse("http://127.0.0.1:9/").unwrap()
}

/// `bc-sso-dev check` on a config file of `env`'s store; (success, stdout).
async fn run_check(env: &Env, dir: &Scratch) -> (bool, String) {
    let c = &env.demo.state.config;
    let config = write_config(
        dir.path(),
        serde_json::json!({ "public_url": env.demo.gateway_url }),
        &dir.sqlite_url(),
        &env.store_account(),
        (
            "demo",
            c.connections[0].issuer.as_str(),
            &c.connections[0].client_id,
        ),
    );
    let store = c.store.declared.as_ref().unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&config)
        .env("BCSSO_STORE_ACCESS_TOKEN", store.access_token.expose())
        .env("BCSSO_STORE_CLIENT_SECRET", store.client_secret.expose())
        .env(
            "BCSSO_CONNECTION_DEMO_CLIENT_SECRET",
            c.connections[0].client_secret.expose(),
        )
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn check_compares_each_storefront_url_with_the_channels_site() {
    let env = Env::start().await;
    let dir = Scratch::new("channels-check");
    let storefront = env.demo.storefront_urls[0].clone();

    let (ok, stdout) = run_check(&env, &dir).await;
    assert!(ok, "{stdout}");
    assert!(
        stdout.contains("webhooks: ok: not registered"),
        "the customer webhooks are reported too: {stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "storefront sites: ok: channel 1: {storefront} is BigCommerce's storefront for the channel"
        )),
        "{stdout}"
    );

    env.demo.emulator.set_site(1, Some(elsewhere()));
    let (ok, stdout) = run_check(&env, &dir).await;
    assert!(
        !ok,
        "a storefront URL BigCommerce contradicts fails: {stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "storefront sites: FAILED: channel 1: the storefront URL is {storefront}, but BigCommerce serves channel 1 at {}",
            elsewhere()
        )),
        "{stdout}"
    );

    env.demo.emulator.set_site(1, None);
    let (ok, stdout) = run_check(&env, &dir).await;
    assert!(
        ok,
        "no site cannot be verified, and is not a failure: {stdout}"
    );
    assert!(
        stdout.contains(
            "storefront sites: WARNING: channel 1: BigCommerce has no site for the channel"
        ),
        "{stdout}"
    );
}

#[tokio::test]
async fn the_console_store_check_reports_the_channels_site() {
    let env = Env::start().await;
    env.admin_sign_in().await;
    let row = |page: &str| -> String {
        let start = page
            .find("<code>Storefront sites</code>")
            .unwrap_or_else(|| panic!("no Storefront sites line: {page}"));
        let rest = &page[start..];
        rest[..rest.find("</tr>").unwrap()].to_owned()
    };

    let page = env.open("/admin/checks/store").await;
    page.assert_checks_passed();
    let line = row(&page.body);
    assert!(line.contains("<td>ok</td>"), "{line}");
    assert!(line.contains("is BigCommerce&#39;s storefront"), "{line}");

    env.demo.emulator.set_site(1, Some(elsewhere()));
    let page = env.open("/admin/checks/store").await;
    assert!(page.body.contains("<strong id=\"overall\">failed</strong>"));
    let line = row(&page.body);
    assert!(line.contains("<td>failed</td>"), "{line}");
    assert!(
        line.contains(&format!("BigCommerce serves channel 1 at {}", elsewhere())),
        "{line}"
    );

    env.demo.emulator.set_site(1, None);
    let line = row(&env.open("/admin/checks/store").await.body);
    assert!(line.contains("<td>warning</td>"), "{line}");
    assert!(
        line.contains("BigCommerce has no site for the channel"),
        "{line}"
    );

    // The JSON API reports the same line.
    let answer = env.api_get("/admin/api/checks/store").await;
    let sites = answer["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "Storefront sites")
        .cloned()
        .unwrap_or_else(|| panic!("{answer}"));
    assert_eq!(sites["status"], "warning", "{sites}");
}

/// The demo with `[store]` cut down to the store hash, so the console sets it; the API
/// account the demo would have used.
async fn unset_store() -> (Env, RawStore) {
    let taken = Arc::new(Mutex::new(RawStore::default()));
    let slot = taken.clone();
    let env = Env::configured(move |c| {
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

fn form(csrf: &str, account: &RawStore, channels: &str) -> Vec<(String, String)> {
    [
        ("csrf", csrf),
        ("api_base_url", account.api_base_url.as_deref().unwrap()),
        ("client_id", account.client_id.as_deref().unwrap()),
        ("access_token", account.access_token.as_deref().unwrap()),
        ("client_secret", account.client_secret.as_deref().unwrap()),
        ("channels", channels),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

#[tokio::test]
async fn saving_a_storefront_url_that_is_not_the_channels_site_is_refused() {
    let (env, account) = unset_store().await;
    let storefront = env.demo.storefront_urls[0].clone();
    let csrf = env.admin_sign_in().await;

    // The console: the form comes back naming the line and the URL BigCommerce has.
    let wrong = format!("1 {} /account.php", elsewhere());
    let refused = env
        .post("/admin/store", &form(&csrf, &account, &wrong))
        .await;
    refused.assert_form_refused(&[
        "channels, line 1, storefront_url",
        &format!("but BigCommerce serves channel 1 at {storefront}"),
        &format!("Set the storefront URL to {storefront}"),
    ]);
    // A channel the store does not have.
    let unknown = format!("1 {storefront}\n5 https://five.example.com/");
    let refused = env
        .post("/admin/store", &form(&csrf, &account, &unknown))
        .await;
    refused.assert_form_refused(&[
        "channels, line 2, storefront_url",
        "the store has no channel 5 (GET /v3/channels lists 1)",
    ]);
    assert!(env.demo.state.store_settings.current().is_none());

    // The API: the same refusal, as JSON.
    let mut body = serde_json::json!({
        "api_base_url": account.api_base_url,
        "client_id": account.client_id,
        "access_token": account.access_token,
        "client_secret": account.client_secret,
        "channels": [{ "id": 1, "storefront_url": elsewhere() }],
    });
    let (status, answer) = env
        .api_call(Method::PUT, "/admin/api/store", body.clone())
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"], "invalid_store_settings");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains(&format!("BigCommerce serves channel 1 at {storefront}")),
        "{answer}"
    );
    assert!(env.demo.state.store_settings.current().is_none());

    // The right URL (written without the trailing slash) is saved.
    let right = format!("1 {}", storefront.as_str().trim_end_matches('/'));
    let saved = env
        .post("/admin/store", &form(&csrf, &account, &right))
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    assert!(env.demo.state.store_settings.current().is_some());

    // A channel without a site cannot be verified: saved, and the check says so.
    env.demo.emulator.set_site(1, None);
    body["channels"] = serde_json::json!([{ "id": 1, "storefront_url": elsewhere() }]);
    let (status, answer) = env.api_call(Method::PUT, "/admin/api/store", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let check = env.open("/admin/checks/store").await;
    assert!(
        check
            .body
            .contains("BigCommerce has no site for the channel"),
        "{}",
        check.body
    );
}
