//! Guessing the admin token, on the API or the sign-in form, or probing the admin SSO
//! callback: a few failures a minute per client, then 429; every failure audited with the
//! client's IP and user agent.

use bc_sso_gateway::db::{AuditEvent, AuditKind};
use reqwest::StatusCode;

use crate::common::{Env, browser_from as client, fetch, hidden_value, page_of};

/// The gateway behind a load balancer at 127.0.0.1 (where the tests connect from).
async fn env() -> Env {
    Env::configured(|c| c.server.trusted_proxies = Some(vec!["127.0.0.1".into()])).await
}

async fn refusals_from(env: &Env, ip: &str) -> Vec<AuditEvent> {
    let events = env.demo.state.db.audit_events(500).await.unwrap();
    events
        .into_iter()
        .filter(|e| e.kind == AuditKind::AdminSignInRefused)
        .filter(|e| e.client_ip.as_deref() == Some(ip))
        .collect()
}

#[tokio::test]
async fn guessing_the_admin_api_token_is_limited_and_audited() {
    let env = env().await;
    let guesser = client("198.51.100.10", "guesser/1.0");
    let call = |bearer: Option<String>| {
        let mut request = guesser.get(env.gateway("/admin/api/audit"));
        if let Some(b) = bearer {
            request = request.bearer_auth(b);
        }
        request.send()
    };
    let mut statuses = Vec::new();
    for i in 0..30 {
        let response = call(Some(format!("guess-{i:024}"))).await.unwrap();
        statuses.push(response.status());
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(response.headers().contains_key("retry-after"));
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"], "too_many_requests");
        }
    }
    assert!(
        statuses[..10]
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED)
    );
    assert!(
        statuses[10..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // Locked out: even the right token is not looked at.
    let right = call(Some(env.admin_token())).await.unwrap();
    assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS);

    // Another client is not affected and finds every failure in the audit log, with the
    // guesser's IP and user agent; the refused calls after the lockout add nothing.
    let admin = client("198.51.100.11", "automation/1.0");
    let response = admin
        .get(env.gateway("/admin/api/audit?kind=admin_sign_in_refused"))
        .bearer_auth(env.admin_token());
    let response = response.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.unwrap();
    let events = body["data"].as_array().unwrap();
    assert_eq!(events.len(), 10, "{body}");
    for e in events {
        assert_eq!(e["client_ip"], "198.51.100.10");
        assert_eq!(e["user_agent"], "guesser/1.0");
        assert_eq!(e["reason"], "api_token_rejected");
    }
    // A call without any token guesses nothing: refused, not counted, not audited.
    let anonymous = client("198.51.100.12", "curl/8.0");
    for _ in 0..12 {
        let response = anonymous.get(env.gateway("/admin/api/audit")).send();
        assert_eq!(response.await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    assert!(refusals_from(&env, "198.51.100.12").await.is_empty());
    // The console's audit page shows them too.
    env.admin_sign_in().await;
    let page = env.open("/admin/audit").await;
    assert!(page.body.contains("198.51.100.10"), "{}", page.body);
    assert!(page.body.contains("guesser/1.0"));
}

#[tokio::test]
async fn guessing_the_admin_login_token_is_limited_and_audited() {
    let env = env().await;
    let guesser = client("198.51.100.30", "guesser/2.0");
    let form = fetch(&guesser, env.gateway("/admin/login")).await;
    let csrf = hidden_value(&form.body, "csrf").unwrap();
    let post = |token: String| {
        guesser
            .post(env.gateway("/admin/login"))
            .form(&[("token", token), ("csrf", csrf.clone())])
            .send()
    };
    for i in 0..10 {
        let response = post(format!("guess-{i:024}")).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "guess {i}");
    }
    let locked = page_of(post("guess-10".into()).await.unwrap()).await;
    locked.assert_error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    assert!(locked.body.contains("try again in"), "{}", locked.body);
    let right = post(env.admin_token()).await.unwrap();
    assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS);
    let sso = guesser.get(env.gateway("/admin/sso")).send().await.unwrap();
    assert_eq!(sso.status(), StatusCode::TOO_MANY_REQUESTS);
    let refusals = refusals_from(&env, "198.51.100.30").await;
    assert_eq!(refusals.len(), 10);
    assert!(refusals.iter().all(|e| {
        e.reason.as_deref() == Some("admin_token_rejected")
            && e.user_agent.as_deref() == Some("guesser/2.0")
    }));

    // Probing the admin SSO callback with made-up states: the same budget, audited.
    let prober = client("198.51.100.31", "prober/1.0");
    for i in 0..11 {
        let url = env.gateway(&format!("/admin/oidc/callback?state=s{i}&code=c{i}"));
        let page = fetch(&prober, url).await;
        let expected = if i < 10 {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(page.status, expected, "probe {i}: {}", page.body);
    }
    let refusals = refusals_from(&env, "198.51.100.31").await;
    assert_eq!(refusals.len(), 10);
    assert!(refusals.iter().all(|e| {
        e.reason.as_deref() == Some("no_pending_login") && e.connection.as_deref() == Some("demo")
    }));

    // A company account that is not an admin: refused once, audited once, with the client.
    let grace = client("198.51.100.32", "browser/1.0");
    let callback = env.admin_sso_callback(&grace, "grace").await;
    let refused = fetch(&grace, callback).await;
    refused.assert_error(StatusCode::FORBIDDEN, "not_an_admin");
    let refusals = refusals_from(&env, "198.51.100.32").await;
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0].email.as_deref(), Some("grace@example.com"));
    assert_eq!(refusals[0].user_agent.as_deref(), Some("browser/1.0"));

    // Meanwhile the real admin, from another address, signs in.
    env.admin_sign_in().await;
}
