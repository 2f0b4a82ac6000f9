//! The database writes of a sign-in (issue 12): a returning sign-in writes its link's last
//! sign-in time at most once per `database.link_touch_interval_secs`, and the audit trail,
//! written off the request path, is complete after a graceful shutdown.

use std::time::Duration;

use bc_sso_gateway::db::{AuditKind, Db};
use reqwest::StatusCode;

use crate::common::{Env, ExtraIdp, Scratch, fetch, free_port, pick_at, write_config};

const BIN: &str = env!("CARGO_BIN_EXE_bc-sso-dev");

#[tokio::test]
async fn a_returning_sign_in_writes_last_sign_in_at_at_most_once_per_interval() {
    let env = Env::configured(|c| c.database.link_touch_interval_secs = Some(300)).await;
    env.signed_in("", "ada").await;
    let db = &env.demo.state.db;
    let link = db.search_links("ada", 5).await.unwrap().remove(0);
    let linked_at = link.last_sign_in_at;

    // Signed in 100 s ago: within the interval, a sign-in leaves the time as it is.
    db.touch_link(&link, linked_at - 100).await.unwrap();
    env.signed_in("", "ada").await;
    let now = db.search_links("ada", 5).await.unwrap().remove(0);
    assert_eq!(
        now.last_sign_in_at,
        linked_at - 100,
        "written within the interval"
    );

    // 400 s ago: past the interval, the sign-in writes it.
    db.touch_link(&link, linked_at - 400).await.unwrap();
    env.signed_in("", "ada").await;
    let now = db.search_links("ada", 5).await.unwrap().remove(0);
    assert!(
        now.last_sign_in_at >= linked_at,
        "not written past the interval: {} < {linked_at}",
        now.last_sign_in_at
    );
    // Every sign-in is still in the audit trail, written or not to the link.
    let events = db.audit_events(20).await.unwrap();
    let succeeded = events
        .iter()
        .filter(|e| e.kind == AuditKind::SignInSucceeded)
        .count();
    assert_eq!(succeeded, 3);
}

#[tokio::test]
async fn an_interval_of_zero_writes_every_sign_in() {
    let env = Env::configured(|c| c.database.link_touch_interval_secs = Some(0)).await;
    env.signed_in("", "ada").await;
    let db = &env.demo.state.db;
    let link = db.search_links("ada", 5).await.unwrap().remove(0);
    db.touch_link(&link, link.last_sign_in_at - 1)
        .await
        .unwrap();
    env.signed_in("", "ada").await;
    let now = db.search_links("ada", 5).await.unwrap().remove(0);
    assert!(now.last_sign_in_at >= link.last_sign_in_at);
}

/// SIGTERM right after a burst of sign-ins: the process exits 0 and every sign-in's audit
/// event is in the database file.
#[tokio::test]
async fn sigterm_writes_every_queued_audit_event_before_exiting() {
    let env = Env::start().await;
    let gateway_port = free_port();
    let public = format!("http://127.0.0.1:{gateway_port}");
    let extra = ExtraIdp::bind().await;
    let issuer = extra.issuer();
    let redirect_uri = format!("{public}/oidc/callback/dev").parse().unwrap();
    let idp = extra.dev_idp(("audit", "audit-secret"), redirect_uri, true);
    extra.serve(idp.router());

    let dir = Scratch::new("audit-flush");
    let account = env.store_account();
    let config = write_config(
        dir.path(),
        serde_json::json!({ "public_url": public, "listen": format!("127.0.0.1:{gateway_port}") }),
        &dir.sqlite_url(),
        &account,
        ("dev", &issuer, "audit"),
    );
    let e = env.demo.emulator.config();
    let mut child = tokio::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .env("BCSSO_STORE_ACCESS_TOKEN", &e.access_token)
        .env("BCSSO_STORE_CLIENT_SECRET", &e.client_secret)
        .env("BCSSO_CONNECTION_DEV_CLIENT_SECRET", "audit-secret")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let health = format!("{public}/healthz");
    for _ in 0..100 {
        if reqwest::get(&health).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let sign_in = |public: String| async move {
        let browser = crate::common::new_browser();
        let login = fetch(&browser, format!("{public}/login")).await;
        let callback = pick_at(&browser, &login.location.expect("to the IdP"), "ada").await;
        fetch(&browser, callback).await
    };
    // The first links; the rest return at once.
    let sign_ins = 12;
    let first = sign_in(public.clone()).await;
    assert_eq!(first.status, StatusCode::FOUND, "{}", first.body);
    let running: Vec<_> = (1..sign_ins)
        .map(|_| tokio::spawn(sign_in(public.clone())))
        .collect();
    for run in running {
        let page = run.await.unwrap();
        assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    }
    let pid = child.id().expect("running").to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits")
        .unwrap();
    assert!(status.success(), "{status}");

    let db = Db::connect(&dir.sqlite_url(), account.store_hash)
        .await
        .unwrap();
    let events = db.audit_events(100).await.unwrap();
    let count = |kind| events.iter().filter(|e| e.kind == kind).count();
    assert_eq!(count(AuditKind::SignInSucceeded), sign_ins, "{events:?}");
    assert_eq!(count(AuditKind::SignInRefused), 0, "{events:?}");
}
