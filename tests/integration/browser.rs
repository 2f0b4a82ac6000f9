//! A real browser: Debian's chromium, driven by playwright-core (`tests/e2e/browser.mjs`),
//! clicks the storefront's button, signs in at `oidc-provider`, and must land on the
//! storefront's account page signed in. A screenshot is kept on failure.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::common::Env;
use crate::interop::{e2e_dir, env_with_oidc_provider};

/// Runs a script of tests/e2e in node with chromium; panics with its output on failure.
async fn run_script(script: &str, env: &[(&str, &str)]) {
    if let Err(out) = try_script(script, env).await {
        panic!("{out}");
    }
}

/// Runs a script of tests/e2e in node with chromium; its output on failure.
pub async fn try_script(script: &str, env: &[(&str, &str)]) -> Result<(), String> {
    // One chromium at a time: several at once on a two-core machine starve the servers
    // they drive (and the oidc-provider other tests start) into timeouts.
    static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one = ONE_BROWSER.lock().await;
    let dir = e2e_dir();
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed in {}: run scripts/test",
        dir.display()
    );
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "chromium not found at {chromium}: run scripts/test (it installs Debian's chromium)"
    );
    let artifacts = dir.join("artifacts");
    let mut command = Command::new("node");
    command
        .arg(dir.join(script))
        .envs(env.iter().copied())
        .env("ARTIFACTS_DIR", &artifacts)
        .env("CHROMIUM_PATH", &chromium)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .map_err(|_| format!("{script} timed out after 120 s"))?
        .map_err(|e| format!("node is needed for the browser tests: {e}"))?;
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{script} failed (screenshot in {}):\n{log}",
            artifacts.display()
        ))
    }
}

/// Chromium signs in as Ada from the storefront's button, through oidc-provider, with the
/// `extra` settings of browser.mjs.
async fn storefront_button(env: &Env, extra: &[(&str, &str)]) {
    let settings = [
        ("STOREFRONT_URL", env.demo.storefront_urls[0].as_str()),
        ("OP_LOGIN", "ada@example.com"),
        ("EXPECT_EMAIL", "ada@example.com"),
    ];
    run_script("browser.mjs", &[&settings[..], extra].concat()).await;
}

#[tokio::test]
async fn chromium_signs_in_from_the_storefront_button() {
    let (env, _op) = env_with_oidc_provider(false).await;
    storefront_button(&env, &[]).await;
    let customers = env.demo.emulator.customers();
    assert_eq!(customers.len(), 1);
    assert_eq!(customers[0].email, "ada@example.com");
    assert!(env.demo.emulator.login_attempts().iter().all(|a| a.is_ok()));
}

/// Issue 10: the storefront's "Sign out" (pointed at the gateway by the button script) ends
/// the company sign-in at oidc-provider (RP-initiated logout) and then the storefront session.
#[tokio::test]
async fn chromium_signs_out_of_the_storefront_and_the_idp() {
    let (env, _op) = env_with_oidc_provider(false).await;
    storefront_button(&env, &[("SIGN_OUT", "1")]).await;
    let attempts = env.demo.emulator.login_attempts();
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert!(attempts[0].is_ok());
}

#[tokio::test]
async fn chromium_admin_removes_a_link_and_finds_it_in_the_audit_log() {
    let env = Env::start().await;
    env.signed_in("", "grace").await;
    let token = env.admin_token();
    run_script(
        "admin.mjs",
        &[
            ("GATEWAY_URL", env.demo.gateway_url.as_str()),
            ("ADMIN_TOKEN", token.as_str()),
            ("LINK_EMAIL", "grace@example.com"),
        ],
    )
    .await;
    assert_eq!(env.demo.state.db.count_links().await.unwrap(), 0);
}

#[tokio::test]
async fn chromium_admin_sets_up_an_empty_gateway_in_the_console_and_a_shopper_signs_in() {
    // A new install (only the store hash, admin token and key), and oidc-provider for
    // acme.test: the admin enters the store's API account and connects the IdP through the
    // console alone.
    let listeners = bc_sso_dev::demo::Listeners::bind(0, 1).await.unwrap();
    let accounts = serde_json::json!([
        { "sub": "kim-1", "email": "kim@acme.test", "email_verified": true,
          "given_name": "Kim", "family_name": "Acme", "name": "Kim Acme", "groups": ["staff", "buyers"] }
    ]);
    let op =
        crate::interop::start_oidc_provider_with(&listeners.redirect_uri("acme"), false, accounts)
            .await;
    crate::common::init_logs();
    let demo = bc_sso_dev::demo::start_on(
        listeners,
        bc_sso_dev::demo::DemoIdp::Dev {
            users: bc_sso_sandbox::idp::demo_users(),
        },
        |c| {
            crate::common::use_test_database(c);
            bc_sso_dev::demo::make_empty(c);
        },
    )
    .await
    .unwrap();
    let env = Env::of(demo);
    let demo = &env.demo;
    assert!(demo.state.store_settings.current().is_none());
    let emulator = demo.emulator.config().clone();
    let token = env.admin_token();
    let issuer = op.issuer.as_str().trim_end_matches('/').to_owned();
    run_script(
        "console.mjs",
        &[
            ("GATEWAY_URL", demo.gateway_url.as_str()),
            ("ADMIN_TOKEN", token.as_str()),
            ("STOREFRONT_URL", demo.storefront_urls[0].as_str()),
            ("ISSUER", issuer.as_str()),
            ("CLIENT_ID", crate::interop::OP_CLIENT_ID),
            ("CLIENT_SECRET", crate::interop::OP_CLIENT_SECRET),
            ("EMAIL_DOMAIN", "acme.test"),
            ("OP_LOGIN", "kim@acme.test"),
            ("EXPECT_EMAIL", "kim@acme.test"),
            ("API_BASE_URL", demo.api_url.as_str()),
            ("API_CLIENT_ID", emulator.client_id.as_str()),
            ("API_ACCESS_TOKEN", emulator.access_token.as_str()),
            ("API_CLIENT_SECRET", emulator.client_secret.as_str()),
            ("DEV_ISSUER", demo.idp_url.as_str().trim_end_matches('/')),
            ("DEV_CLIENT_ID", bc_sso_dev::demo::DEV_CLIENT_ID),
            ("DEV_CLIENT_SECRET", bc_sso_dev::demo::DEV_CLIENT_SECRET),
        ],
    )
    .await;
    let customers = demo.emulator.customers();
    assert_eq!(customers.len(), 1);
    assert_eq!(customers[0].email, "kim@acme.test");
    assert_eq!(customers[0].customer_group_id, 2, "the mapped group");
    assert_eq!(demo.state.connections.all().len(), 2, "acme and example");
    let link = demo
        .state
        .db
        .find_link(&issuer, "kim-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(link.connection.as_str(), "acme");
}
