//! What an operator's load balancer and container runtime ask: liveness, readiness, and
//! the binary's own `healthcheck` (issue 10).

use bc_sso_dev::demo::DemoOptions;
use reqwest::StatusCode;

use crate::common::{Env, ExtraIdp, Scratch, fetch, free_port, pick_at, write_config};

const BIN: &str = env!("CARGO_BIN_EXE_bc-sso-dev");

async fn json(env: &Env, path: &str) -> (StatusCode, serde_json::Value) {
    let r = env.browser.get(env.gateway(path)).send().await.unwrap();
    (r.status(), r.json().await.unwrap())
}

fn listen(env: &Env) -> String {
    let url = &env.demo.gateway_url;
    format!("{}:{}", url.host_str().unwrap(), url.port().unwrap())
}

async fn healthcheck(args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(BIN)
        .arg("healthcheck")
        .args(args)
        .env_remove("BCSSO_SERVER_LISTEN")
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn a_set_up_gateway_is_live_and_ready() {
    let env = Env::start().await;
    let (status, body) = json(&env, "/healthz").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, body) = json(&env, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ready");
    for check in ["database", "sessions", "store_settings"] {
        assert_eq!(body["checks"][check]["status"], "ok", "{body}");
    }
    let (ok, out) = healthcheck(&["--listen", &listen(&env)]).await;
    assert!(ok, "{out}");
    let (ok, out) = healthcheck(&["--listen", &listen(&env), "--ready"]).await;
    assert!(ok, "{out}");
}

/// A new install is live (the console works) but not ready for shoppers until the store's
/// API account is set: a load balancer keeps it out of the shoppers' rotation.
#[tokio::test]
async fn a_gateway_without_store_settings_is_live_but_not_ready() {
    let env = Env::with(
        DemoOptions {
            empty: true,
            ..Default::default()
        },
        |_| {},
    )
    .await;
    assert_eq!(json(&env, "/healthz").await.0, StatusCode::OK);
    let (status, body) = json(&env, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["store_settings"]["status"], "failed");
    assert_eq!(body["checks"]["database"]["status"], "ok");
    let (ok, out) = healthcheck(&["--listen", &listen(&env), "--ready"]).await;
    assert!(!ok, "{out}");
    assert!(out.contains("503"), "{out}");
}

#[tokio::test]
async fn healthcheck_fails_when_nothing_listens() {
    let port = free_port();
    let (ok, out) = healthcheck(&["--listen", &format!("0.0.0.0:{port}")]).await;
    assert!(!ok, "{out}");
    assert!(out.contains("does not answer"), "{out}");
}

/// SIGTERM: the gateway stops accepting connections, finishes the sign-in in flight (its
/// code exchange takes 1.5 s at the IdP), and exits 0.
#[tokio::test]
async fn sigterm_finishes_the_sign_in_in_flight_then_exits() {
    use bc_sso_sandbox::idp::Misbehaviour;
    use std::time::Duration;

    let env = Env::start().await;
    let gateway_port = free_port();
    let public = format!("http://127.0.0.1:{gateway_port}");
    let extra = ExtraIdp::bind().await;
    let issuer = extra.issuer();
    let redirect_uri = format!("{public}/oidc/callback/dev").parse().unwrap();
    let idp = extra.dev_idp(("graceful", "graceful-secret"), redirect_uri, true);
    extra.serve(idp.router());

    let dir = Scratch::new("graceful");
    let config = write_config(
        dir.path(),
        serde_json::json!({ "public_url": public, "listen": format!("127.0.0.1:{gateway_port}") }),
        &dir.sqlite_url(),
        &env.store_account(),
        ("dev", &issuer, "graceful"),
    );
    let e = env.demo.emulator.config();
    let mut child = tokio::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .env("BCSSO_STORE_ACCESS_TOKEN", &e.access_token)
        .env("BCSSO_STORE_CLIENT_SECRET", &e.client_secret)
        .env("BCSSO_CONNECTION_DEV_CLIENT_SECRET", "graceful-secret")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let health = format!("{public}/healthz");
    let probe = || async {
        reqwest::Client::new()
            .get(&health)
            .timeout(Duration::from_secs(2))
            .send()
            .await
    };
    for _ in 0..100 {
        if probe().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A sign-in up to the callback, in a browser of its own.
    let browser = crate::common::new_browser();
    let login = fetch(&browser, format!("{public}/login")).await;
    let callback = pick_at(
        &browser,
        &login.location.expect("redirect to the IdP"),
        "ada",
    )
    .await;
    idp.set_misbehaviour(Misbehaviour::TokenEndpointSlow(1500));
    let in_flight = tokio::spawn({
        let browser = browser.clone();
        async move { fetch(&browser, callback).await }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let pid = child.id().expect("running").to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        probe().await.is_err(),
        "a new connection is still accepted after SIGTERM"
    );
    let page = in_flight.await.unwrap();
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    assert!(
        page.location.unwrap().path().starts_with("/login/token/"),
        "the sign-in in flight finished"
    );
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits once the sign-in finished")
        .unwrap();
    assert!(status.success(), "{status}");
}

/// Metrics on their own listener, scraped after a sign-in and a refusal, and checked by
/// Prometheus's own `promtool check metrics`. Nothing personal in them.
#[tokio::test]
async fn metrics_count_sign_ins_and_pass_promtool() {
    let env = Env::start().await;
    let (_, ok) = env.sign_in("", "ada").await;
    assert_eq!(ok.status, StatusCode::FOUND);
    let (_, refused) = env.sign_in("", "eve").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    // Not on the shoppers' address.
    assert_eq!(
        env.get(&env.gateway("/metrics")).await.status,
        StatusCode::NOT_FOUND
    );
    let scrape = reqwest::get(env.demo.metrics_url.clone()).await.unwrap();
    assert_eq!(scrape.status(), StatusCode::OK);
    let content_type = scrape.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = scrape.text().await.unwrap();
    for needle in [
        r#"bcsso_sign_ins_total{connection="demo",reason="",result="succeeded"}"#,
        r#"bcsso_sign_ins_total{connection="demo",reason="email_unverified",result="refused"}"#,
        "bcsso_sign_in_duration_seconds_bucket{result=\"succeeded\"",
        "bcsso_sign_in_gateway_duration_seconds_count",
        r#"bcsso_bigcommerce_requests_total{endpoint="customers",status="2xx"}"#,
        "bcsso_bigcommerce_quota_left",
        r#"bcsso_idp_requests_total{status="2xx"}"#,
        r#"bcsso_sessions{store="shoppers"}"#,
        r#"bcsso_audit_events_dropped_total{reason="queue_full"}"#,
    ] {
        assert!(text.contains(needle), "{needle} missing in:\n{text}");
    }
    for private in ["ada@", "eve@", "example.com", "code=", "state="] {
        assert!(!text.contains(private), "{private} in the metrics");
    }
    let mut promtool = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is not installed: run scripts/test (it installs Debian's prometheus)");
    use tokio::io::AsyncWriteExt;
    let mut stdin = promtool.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let out = promtool.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
