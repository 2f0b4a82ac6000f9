//! A real browser: Debian's chromium, driven by playwright-core (`tests/e2e/browser.mjs`),
//! clicks the storefront's button, signs in at `oidc-provider`, and must land on the
//! storefront's account page signed in. A screenshot is kept on failure.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::interop::{e2e_dir, env_with_oidc_provider};

#[tokio::test]
async fn chromium_signs_in_from_the_storefront_button() {
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
    let (env, _op) = env_with_oidc_provider(false).await;
    let artifacts = dir.join("artifacts");
    let run = Command::new("node")
        .arg(dir.join("browser.mjs"))
        .env("STOREFRONT_URL", env.demo.storefront_urls[0].as_str())
        .env("OP_LOGIN", "ada@example.com")
        .env("EXPECT_EMAIL", "ada@example.com")
        .env("ARTIFACTS_DIR", &artifacts)
        .env("CHROMIUM_PATH", &chromium)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("browser test timed out after 120 s")
        .expect("node is needed for the browser test");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "browser sign-in failed (screenshot in {}):\n{log}",
        artifacts.display()
    );
    let customers = env.demo.emulator.customers();
    assert_eq!(customers.len(), 1);
    assert_eq!(customers[0].email, "ada@example.com");
    assert!(env.demo.emulator.login_attempts().iter().all(|a| a.is_ok()));
}
