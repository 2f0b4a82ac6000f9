//! What an operator's load balancer and container runtime ask: liveness, readiness, and
//! the binary's own `healthcheck` (issue 10).

use bc_sso_dev::demo::DemoOptions;
use reqwest::StatusCode;

use crate::common::Env;

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
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (ok, out) = healthcheck(&["--listen", &format!("0.0.0.0:{port}")]).await;
    assert!(!ok, "{out}");
    assert!(out.contains("does not answer"), "{out}");
}
