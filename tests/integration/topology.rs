//! The production topology as local processes (issue 10): the BigCommerce sandbox and the
//! dev IdP as their own processes (`bc-sso-dev sandbox ...`), two `serve` replicas sharing
//! one database and Redis, and Debian's nginx in front; chromium signs in through nginx.
//! nginx sends `/login` to replica 1 and `/oidc/callback/…` to replica 2, so the sign-in
//! started on one replica must finish on the other; nginx connects to the replicas from
//! 127.0.0.2 while the browser is 127.0.0.1, so the audit trail shows whose IP the gateway
//! took.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bc_sso_gateway::db::{AuditKind, Db};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

use crate::common::{Scratch, StoreAccount, free_port, write_config};

const BIN: &str = env!("CARGO_BIN_EXE_bc-sso-dev");

fn nginx() -> PathBuf {
    let path = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    path.expect("nginx is not installed: run scripts/test (it installs Debian's nginx-light)")
}

/// A child process whose output is collected for the assertions and the failure message.
struct Proc {
    name: &'static str,
    child: Child,
}

impl Proc {
    fn spawn(name: &'static str, command: &mut Command) -> Proc {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start: {e}"));
        Proc { name, child }
    }

    /// Stops the process and returns everything it printed.
    async fn output(mut self) -> String {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        let mut out = String::new();
        if let Some(mut s) = self.child.stdout.take() {
            let _ = s.read_to_string(&mut out).await;
        }
        if let Some(mut s) = self.child.stderr.take() {
            let _ = s.read_to_string(&mut out).await;
        }
        format!("--- {} ---\n{out}", self.name)
    }
}

async fn wait_for(url: &str) {
    let client = reqwest::Client::new();
    for _ in 0..150 {
        if client.get(url).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} did not answer within 15 s");
}

fn nginx_conf(dir: &Path, port: u16, replicas: [u16; 2]) -> String {
    let d = dir.display();
    format!(
        r#"
daemon off;
master_process off;
worker_processes 1;
user root;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/client;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream replica1 {{ server 127.0.0.1:{r1}; }}
    upstream replica2 {{ server 127.0.0.1:{r2}; }}
    upstream replicas {{ server 127.0.0.1:{r1}; server 127.0.0.1:{r2}; }}
    server {{
        listen 127.0.0.1:{port};
        proxy_bind 127.0.0.2;
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        location = /login {{ proxy_pass http://replica1; }}
        location /oidc/callback/ {{ proxy_pass http://replica2; }}
        location / {{ proxy_pass http://replicas; }}
    }}
}}
"#,
        r1 = replicas[0],
        r2 = replicas[1],
    )
}

#[tokio::test]
async fn two_replicas_behind_nginx_sign_a_shopper_in_from_chromium() {
    let scratch = Scratch::new("topology");
    let dir = scratch.path();
    let [api, shop, idp, proxy, g1, g2] = [(); 6].map(|()| free_port());
    let store_hash = format!("topo{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let (access_token, bc_client_id, bc_secret) = (
        "topology-access-token",
        "topology-client",
        "topology-client-secret",
    );
    let idp_secret = "topology-idp-secret";
    let public = format!("http://127.0.0.1:{proxy}");
    let issuer = format!("http://127.0.0.1:{idp}");

    let bigcommerce = Proc::spawn(
        "bigcommerce sandbox",
        Command::new(BIN)
            .args([
                "sandbox",
                "bigcommerce",
                "--api-listen",
                &format!("127.0.0.1:{api}"),
                "--storefront-listen",
                &format!("127.0.0.1:{shop}"),
                "--store-hash",
                &store_hash,
                "--gateway-url",
                &public,
            ])
            .env("BCSSO_SANDBOX_ACCESS_TOKEN", access_token)
            .env("BCSSO_SANDBOX_CLIENT_ID", bc_client_id)
            .env("BCSSO_SANDBOX_CLIENT_SECRET", bc_secret),
    );
    let dev_idp = Proc::spawn(
        "idp sandbox",
        Command::new(BIN)
            .args([
                "sandbox",
                "idp",
                "--listen",
                &format!("127.0.0.1:{idp}"),
                "--issuer",
                &issuer,
            ])
            .env("BCSSO_SANDBOX_IDP_CLIENT_SECRET", idp_secret)
            .env(
                "BCSSO_SANDBOX_IDP_REDIRECT_URIS",
                format!("{public}/oidc/callback/example,{public}/admin/oidc/callback"),
            ),
    );

    // One config file for both replicas; secrets and the per-replica address from env.
    let database =
        std::env::var("BCSSO_TEST_DATABASE_URL").unwrap_or_else(|_| scratch.sqlite_url());
    let (api_url, storefront) = (
        format!("http://127.0.0.1:{api}"),
        format!("http://127.0.0.1:{shop}"),
    );
    let store = StoreAccount {
        store_hash: &store_hash,
        api_base_url: &api_url,
        client_id: bc_client_id,
        storefront: &storefront,
    };
    let server = serde_json::json!({
        "public_url": public,
        "trusted_proxies": ["127.0.0.2"],
        "sessions_url": "redis://127.0.0.1:6379",
    });
    let config = write_config(
        dir,
        server,
        &database,
        &store,
        ("example", &issuer, "bc-sso-gateway"),
    );
    let replica = |name: &'static str, port: u16| {
        Proc::spawn(
            name,
            Command::new(BIN)
                .args(["serve", "--config"])
                .arg(&config)
                .env("BCSSO_SERVER_LISTEN", format!("127.0.0.1:{port}"))
                .env("BCSSO_STORE_ACCESS_TOKEN", access_token)
                .env("BCSSO_STORE_CLIENT_SECRET", bc_secret)
                .env("BCSSO_CONNECTION_EXAMPLE_CLIENT_SECRET", idp_secret)
                .env("BCSSO_LOG", "info"),
        )
    };
    wait_for(&format!("http://127.0.0.1:{api}/")).await;
    wait_for(&format!("{issuer}/.well-known/openid-configuration")).await;
    // One replica migrates the database before the other opens it.
    let replica1 = replica("replica 1", g1);
    wait_for(&format!("http://127.0.0.1:{g1}/healthz")).await;
    let replica2 = replica("replica 2", g2);
    wait_for(&format!("http://127.0.0.1:{g2}/healthz")).await;

    std::fs::write(dir.join("nginx.conf"), nginx_conf(dir, proxy, [g1, g2])).unwrap();
    let proxy_proc = Proc::spawn(
        "nginx",
        Command::new(nginx())
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf")),
    );
    wait_for(&format!("{public}/healthz")).await;

    let browser = crate::browser::try_script(
        "topology.mjs",
        &[
            ("STOREFRONT_URL", &format!("http://127.0.0.1:{shop}/")),
            ("USER_EMAIL", "ada@example.com"),
        ],
    )
    .await;
    let mut logs = Vec::new();
    for p in [proxy_proc, replica1, replica2, dev_idp, bigcommerce] {
        logs.push(p.output().await);
    }
    let logs = logs.join("\n");
    if let Err(out) = browser {
        panic!("{out}\n{logs}");
    }
    let (r1, r2) = (
        &logs[logs.find("--- replica 1").unwrap()..],
        &logs[logs.find("--- replica 2").unwrap()..],
    );
    let r1 = &r1[..r1.find("--- replica 2").unwrap_or(r1.len())];
    let r2 = &r2[..r2.find("--- idp sandbox").unwrap_or(r2.len())];
    assert!(
        r1.contains("route=/login ") || r1.contains("route=/login}"),
        "replica 1 started it:\n{logs}"
    );
    assert!(!r1.contains("sign-in complete"), "{logs}");
    assert!(
        r2.contains("sign-in complete"),
        "replica 2 finished it:\n{logs}"
    );

    // The client IP the gateway recorded is the browser's (127.0.0.1, from nginx's
    // X-Forwarded-For), not nginx's own address (127.0.0.2).
    let db = Db::connect(&database, &store_hash).await.unwrap();
    let events = db.audit_events(20).await.unwrap();
    let signed_in = events
        .iter()
        .find(|e| e.kind == AuditKind::SignInSucceeded)
        .unwrap_or_else(|| panic!("no sign-in in the audit trail: {events:?}\n{logs}"));
    assert_eq!(signed_in.client_ip.as_deref(), Some("127.0.0.1"), "{logs}");
    assert!(
        signed_in
            .user_agent
            .as_deref()
            .is_some_and(|ua| ua.contains("Chrome")),
        "{:?}",
        signed_in.user_agent
    );
}
