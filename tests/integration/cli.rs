//! The binary as an operator runs it: `check`, `serve` with a bad config, and `demo`.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::common::{Env, Scratch, write_config};

const BIN: &str = env!("CARGO_BIN_EXE_bc-sso-dev");

#[tokio::test]
async fn check_reaches_the_idp_and_bigcommerce() {
    let env = Env::start().await;
    let dir = Scratch::new("cli");
    let c = &env.demo.state.config;
    let config = write_config(
        dir.path(),
        serde_json::json!({ "public_url": env.demo.gateway_url }),
        // Its own database file, never one in the working directory.
        &dir.sqlite_url(),
        &env.store_account(),
        (
            "demo",
            c.connections[0].issuer.as_str(),
            &c.connections[0].client_id,
        ),
    );
    let secret_file = dir.path().join("bc_secret");
    std::fs::write(
        &secret_file,
        format!(
            "{}\n",
            c.store.declared.as_ref().unwrap().client_secret.expose()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&config)
        // Secrets from env and from a file, as an operator would pass them.
        .env(
            "BCSSO_STORE_ACCESS_TOKEN",
            c.store.declared.as_ref().unwrap().access_token.expose(),
        )
        .env("BCSSO_STORE_CLIENT_SECRET_FILE", &secret_file)
        .env(
            "BCSSO_CONNECTION_DEMO_CLIENT_SECRET",
            c.connections[0].client_secret.expose(),
        )
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("connection demo: discovery and JWKS ok"),
        "{stdout}"
    );
    assert!(stdout.contains("bigcommerce: customers API ok"), "{stdout}");
    assert!(stdout.contains("bigcommerce clock: ok"), "{stdout}");

    // A wrong token is reported as such, and the command fails.
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&config)
        .env("BCSSO_STORE_ACCESS_TOKEN", "not-the-token")
        .env("BCSSO_STORE_CLIENT_SECRET_FILE", &secret_file)
        .env("BCSSO_CONNECTION_DEMO_CLIENT_SECRET", "x")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains("bigcommerce: FAILED") && stdout.contains("401"),
        "{stdout}"
    );
    assert!(!stdout.contains("not-the-token"));
}

#[tokio::test]
async fn a_bad_config_stops_start_up_naming_each_setting() {
    let dir = Scratch::new("cli");
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, "[server]\npublic_url = \"http://sso.example.com\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .env_remove("BCSSO_STORE_ACCESS_TOKEN")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "server.public_url: must be https",
        "missing store.store_hash",
        // Without an admin token the console cannot supply the API account: the file must.
        "store: set the API account (store.access_token",
        "BCSSO_STORE_ACCESS_TOKEN",
        "connections",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
    let out = Command::new(BIN)
        .args(["serve", "--config", "/nonexistent/gateway.toml"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent/gateway.toml: cannot read")
    );
}

#[tokio::test]
async fn demo_command_prints_the_storefront_and_serves_it() {
    let mut child = Command::new(BIN)
        .args(["demo", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let storefront = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.trim().strip_prefix("Open the storefront:") {
                return url.trim().to_owned();
            }
        }
        panic!("demo exited without printing the storefront URL");
    })
    .await
    .expect("demo printed its URLs within 30 s");
    let page = reqwest::get(&storefront).await.unwrap();
    assert_eq!(page.status(), 200);
    let login = reqwest::get(format!("{storefront}login.php"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(login.contains("sso-button.js"), "{login}");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn keygen_prints_a_usable_key() {
    let out = Command::new(BIN).arg("keygen").output().await.unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let key = bc_sso_gateway::secrets::SecretKey::parse(text.trim()).unwrap();
    let sealed = key.seal("s", "c").unwrap();
    assert_eq!(key.open(&sealed, "c").unwrap().expose(), "s");
    let again = Command::new(BIN).arg("keygen").output().await.unwrap();
    assert_ne!(again.stdout, text.as_bytes(), "a new key every time");
}
