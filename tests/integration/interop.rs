//! Interop: the same sign-in against `oidc-provider`, a certified OpenID Provider nobody
//! here wrote, started from `tests/e2e/op.mjs` (installed by `scripts/test`). A missing
//! Node or package fails the test with a message; nothing is skipped.

use std::path::PathBuf;
use std::process::Stdio;

use bc_sso_dev::demo::{self, DemoIdp, Listeners};
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use url::Url;

use crate::common::{Env, init_logs, page_of};

pub fn e2e_dir() -> PathBuf {
    std::env::var_os("BC_SSO_E2E_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2e"))
}

/// A running `oidc-provider`; killed when dropped.
pub struct OidcProvider {
    _child: Child,
    pub issuer: Url,
}

pub const OP_CLIENT_ID: &str = "bc-sso-gateway";
pub const OP_CLIENT_SECRET: &str = "interop-client-secret-0123456789";

pub async fn start_oidc_provider(
    redirect_uri: &Url,
    conform_id_token_claims: bool,
) -> OidcProvider {
    let accounts = json!([
        { "sub": "ada-0001", "email": "ada@example.com", "email_verified": true,
          "given_name": "Ada", "family_name": "Lovelace", "name": "Ada Lovelace", "groups": ["engineering"] },
        { "sub": "eve-0002", "email": "eve@example.com", "email_verified": false,
          "given_name": "Eve", "family_name": "Unverified", "name": "Eve Unverified", "groups": [] }
    ]);
    start_oidc_provider_with(redirect_uri, conform_id_token_claims, accounts).await
}

pub async fn start_oidc_provider_with(
    redirect_uri: &Url,
    conform_id_token_claims: bool,
    accounts: serde_json::Value,
) -> OidcProvider {
    let dir = e2e_dir();
    assert!(
        dir.join("node_modules/oidc-provider").is_dir(),
        "oidc-provider is not installed in {}: run scripts/test (it runs npm ci there)",
        dir.display()
    );
    let config = json!({
        "client_id": OP_CLIENT_ID,
        "client_secret": OP_CLIENT_SECRET,
        "redirect_uris": [redirect_uri.as_str()],
        // The gateway's RP-initiated logout returns here (`/logout/done`).
        "post_logout_redirect_uris": [redirect_uri.join("/logout/done").unwrap().as_str()],
        "conform_id_token_claims": conform_id_token_claims,
        "accounts": accounts,
    });
    let mut child = Command::new("node")
        .arg(dir.join("op.mjs"))
        .env("OP_CONFIG", config.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node is needed for the interop tests (Node.js >= 20)");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    // Generous: node starts in a second or two, but the whole suite runs at once on two
    // cores (chromium included), and a slow start is no failure of the gateway.
    let line = tokio::time::timeout(std::time::Duration::from_secs(90), lines.next_line())
        .await
        .expect("oidc-provider did not start within 90 s")
        .unwrap()
        .expect("oidc-provider exited before READY");
    let issuer = line.strip_prefix("READY ").expect("READY line").trim();
    OidcProvider {
        _child: child,
        issuer: Url::parse(issuer).unwrap(),
    }
}

/// The demo's storefront and gateway, signing in through `oidc-provider`.
pub async fn env_with_oidc_provider(conform: bool) -> (Env, OidcProvider) {
    env_with_oidc_provider_and(conform, |_| {}).await
}

/// As [`env_with_oidc_provider`], with the connection's settings changed by `customize`.
pub async fn env_with_oidc_provider_and(
    conform: bool,
    customize: impl FnOnce(&mut bc_sso_gateway::config::RawConnection),
) -> (Env, OidcProvider) {
    init_logs();
    let listeners = Listeners::bind(0, 1).await.unwrap();
    let op = start_oidc_provider(&listeners.redirect_uri("demo"), conform).await;
    let idp = DemoIdp::External {
        issuer: op.issuer.clone(),
        client_id: OP_CLIENT_ID.into(),
        client_secret: OP_CLIENT_SECRET.into(),
        email_domains: vec!["example.com".into()],
    };
    let demo = demo::start_on(listeners, idp, |c| {
        crate::common::use_test_database(c);
        // op.mjs serves its issuer without a trailing slash; keep the string exact.
        c.connections[0].issuer = Some(op.issuer.as_str().trim_end_matches('/').into());
        c.connections[0].scopes = Some(vec!["openid".into(), "email".into(), "profile".into()]);
        customize(&mut c.connections[0]);
    })
    .await
    .unwrap();
    (Env::of(demo), op)
}

/// Walks oidc-provider's dev interactions (login form, then consent) as `login`, and
/// returns the gateway callback URL it redirects to.
pub async fn through_oidc_provider(env: &Env, authorize: Url, login: &str) -> Url {
    let callback_prefix = env.demo.state.config.redirect_uri("demo").to_string();
    let mut url = authorize;
    for _ in 0..12 {
        let page = env.get(&url).await;
        if let Some(next) = page.location.clone() {
            if next.as_str().starts_with(&callback_prefix) {
                return next;
            }
            url = next;
            continue;
        }
        assert_eq!(
            page.status,
            StatusCode::OK,
            "oidc-provider page at {}: {}",
            url.path(),
            page.body
        );
        let action = form_action(&page.body)
            .unwrap_or_else(|| panic!("no form at {}: {}", url.path(), page.body));
        let target = url.join(&action).unwrap();
        let form: Vec<(&str, &str)> = if page.body.contains("name=\"login\"") {
            vec![
                ("prompt", "login"),
                ("login", login),
                ("password", "any-password"),
            ]
        } else {
            vec![("prompt", "consent")]
        };
        let response = env.browser.post(target).form(&form).send().await.unwrap();
        let next = page_of(response).await;
        url = next
            .location
            .unwrap_or_else(|| panic!("form post did not redirect: {}", next.body));
        if url.as_str().starts_with(&callback_prefix) {
            return url;
        }
    }
    panic!("oidc-provider did not redirect back to the gateway");
}

fn form_action(html: &str) -> Option<String> {
    let start = html.find("action=\"")? + "action=\"".len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].replace("&amp;", "&"))
}

#[tokio::test]
async fn sign_in_through_oidc_provider_creates_and_signs_in_the_customer() {
    let (env, _op) = env_with_oidc_provider(false).await;
    let authorize = env.begin("channel_id=1&redirect_to=/account.php").await;
    assert!(authorize.as_str().contains("code_challenge_method=S256"));
    let callback = through_oidc_provider(&env, authorize, "ada@example.com").await;
    let page = env.get(&callback).await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    let (final_url, account) = env.follow(page.location.unwrap()).await;
    assert_eq!(final_url.path(), "/account.php");
    assert!(account.body.contains("ada@example.com"), "{}", account.body);
    let customers = env.demo.emulator.customers();
    assert_eq!(customers.len(), 1);
    assert_eq!(
        (
            customers[0].first_name.as_str(),
            customers[0].last_name.as_str()
        ),
        ("Ada", "Lovelace")
    );
}

#[tokio::test]
async fn oidc_provider_conformant_id_token_uses_userinfo_for_the_email() {
    // With conformIdTokenClaims the ID token carries only `sub`; the email comes from userinfo.
    let (env, _op) = env_with_oidc_provider(true).await;
    let authorize = env.begin("").await;
    let callback = through_oidc_provider(&env, authorize, "ada@example.com").await;
    let page = env.get(&callback).await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    assert_eq!(env.demo.emulator.customers()[0].email, "ada@example.com");
}

#[tokio::test]
async fn oidc_provider_groups_from_userinfo_choose_the_customer_group() {
    // A conformant ID token carries no groups claim: the mapped group comes from userinfo.
    let (env, _op) = env_with_oidc_provider_and(true, |c| {
        c.scopes = Some(
            ["openid", "email", "profile", "groups"]
                .map(Into::into)
                .to_vec(),
        );
        c.group_rules = vec![bc_sso_gateway::config::RawGroupRule {
            group: "engineering".into(),
            customer_group_id: 2,
        }];
        c.customer_group_id = Some(1);
    })
    .await;
    let authorize = env.begin("").await;
    let callback = through_oidc_provider(&env, authorize, "ada@example.com").await;
    let page = env.get(&callback).await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    let customers = env.demo.emulator.customers();
    assert_eq!(customers[0].email, "ada@example.com");
    assert_eq!(
        customers[0].customer_group_id, 2,
        "engineering = 2, from userinfo"
    );
}

#[tokio::test]
async fn oidc_provider_unverified_email_is_refused() {
    let (env, _op) = env_with_oidc_provider(false).await;
    let authorize = env.begin("").await;
    let callback = through_oidc_provider(&env, authorize, "eve@example.com").await;
    env.get(&callback)
        .await
        .assert_error(StatusCode::FORBIDDEN, "email_unverified");
    assert!(env.demo.emulator.customers().is_empty());
}
