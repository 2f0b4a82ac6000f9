//! Who gets linked to which customer (SECURITY.md rules 19 and 20): each test is one of
//! the outside review's attacks, and fails on the code it was found in.

use bc_sso_dev::demo::{DemoIdp, DemoOptions};
use bc_sso_gateway::config::RawConfig;
use bc_sso_gateway::db::AuditKind;
use bc_sso_sandbox::bigcommerce::LoginOutcome;
use bc_sso_sandbox::idp::DevUser;
use reqwest::StatusCode;

use crate::common::{Env, Page, fetch, new_browser};

fn user(sub: &str, email: &str) -> DevUser {
    DevUser {
        sub: sub.into(),
        email: Some(email.into()),
        email_verified: Some(true.into()),
        given_name: Some("Test".into()),
        family_name: Some(sub.into()),
        name: None,
        groups: vec![],
        hd: None,
        xms_edov: None,
        tid: None,
    }
}

/// The demo with the dev IdP's demo users and `extra` (sub, email) users added.
async fn with_users(extra: &[(&str, &str)]) -> Env {
    Env::with_users(|users| users.extend(extra.iter().map(|(sub, email)| user(sub, email)))).await
}

/// The demo with the dev IdP's demo users and `subs`, who share one verified `email`.
async fn sharing_an_email(subs: [&str; 2], email: &str) -> Env {
    with_users(&subs.map(|sub| (sub, email))).await
}

/// The demo with only the dev IdP user (sub, email) and its config changed by `customize`.
async fn with_only(sub: &str, email: &str, customize: impl FnOnce(&mut RawConfig)) -> Env {
    let options = DemoOptions {
        idp: DemoIdp::Dev {
            users: vec![user(sub, email)],
        },
        ..Default::default()
    };
    Env::with(options, customize).await
}

/// The customer id in the login token the gateway redirected to, as the storefront saw it.
/// Every sign-in redirect is followed to the storefront, which records the login.
fn signed_in_customers(env: &Env) -> Vec<i64> {
    env.demo
        .emulator
        .login_attempts()
        .iter()
        .filter_map(|a| match a.outcome {
            LoginOutcome::Ok { customer_id, .. } => Some(customer_id),
            _ => None,
        })
        .collect()
}

/// Signs `sub` in from `browser` and, when the gateway redirects, uses the login token at
/// the storefront as the browser would. Returns the gateway's answer.
async fn sign_in(env: &Env, browser: &reqwest::Client, sub: &str) -> Page {
    let (_, page) = env.sign_in_with(browser, "", sub).await;
    if page.status == StatusCode::FOUND
        && let Some(token_url) = &page.location
    {
        browser.get(token_url.clone()).send().await.unwrap();
    }
    page
}

/// [`sign_in`] in the env's browser, which must succeed.
async fn sign_in_ok(env: &Env, sub: &str) {
    let page = sign_in(env, &env.browser, sub).await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
}

/// The audit trail has a refused link with `reason`.
async fn assert_link_refused(env: &Env, reason: &str) {
    let kinds = audit_kinds(env).await;
    let refused = (AuditKind::LinkRefused, Some(reason.to_owned()));
    assert!(kinds.contains(&refused), "{kinds:?}");
}

async fn audit_kinds(env: &Env) -> Vec<(AuditKind, Option<String>)> {
    let mut events = env.demo.state.db.audit_events(50).await.unwrap();
    events.reverse();
    events.into_iter().map(|e| (e.kind, e.reason)).collect()
}

/// Rule 19: a verified `\u{212A}im@example.com` (KELVIN SIGN) lowercased by Rust's
/// `to_lowercase` is `kim@example.com`, so it was linked to Kim's existing customer.
#[tokio::test]
async fn kelvin_sign_email_is_not_linked_to_kims_account() {
    let env = with_users(&[
        ("kim", "kim@example.com"),
        ("mallory", "\u{212A}im@example.com"),
    ])
    .await;
    let kim = env.seed_customer("kim@example.com", None);
    sign_in_ok(&env, "kim").await;

    let attacker = new_browser();
    let page = sign_in(&env, &attacker, "mallory").await;
    page.assert_error(StatusCode::FORBIDDEN, "email_not_ascii");
    assert_eq!(signed_in_customers(&env), vec![kim], "only Kim signed in");
    assert_eq!(env.demo.emulator.customers().len(), 1, "nothing created");
}

/// Rule 19 with the opt-in: the address is kept as it is and never meets Kim's.
#[tokio::test]
async fn kelvin_sign_email_with_opt_in_gets_its_own_customer_or_none() {
    let env = with_only("mallory", "\u{212A}im@example.com", |c| {
        c.connections[0].allow_non_ascii_email = true
    })
    .await;
    let kim = env.seed_customer("kim@example.com", None);
    let page = sign_in(&env, &env.browser, "mallory").await;
    // The emulator, like a store whose database compares with Unicode rules, may refuse the
    // new address as taken; whatever it does, Kim's customer is never the answer.
    assert!(!signed_in_customers(&env).contains(&kim), "{}", page.body);
    let links = env.demo.state.db.links_of_customer(kim).await.unwrap();
    assert!(links.is_empty(), "{links:?}");
}

/// Rule 20 (a): somebody registered `victim@example.com` on the storefront with a password
/// before the victim's first SSO sign-in. By default the customer is linked and its password
/// is reset, so the registrant loses password access; the audit says so.
#[tokio::test]
async fn pre_registered_customer_is_linked_only_with_a_forced_password_reset() {
    let env = with_users(&[("victim", "victim@example.com")]).await;
    let squatted = env.seed_customer("victim@example.com", None);
    sign_in_ok(&env, "victim").await;
    assert_eq!(signed_in_customers(&env), vec![squatted]);
    let c = env
        .demo
        .emulator
        .customers()
        .into_iter()
        .find(|c| c.id == squatted)
        .unwrap();
    assert_eq!(
        c.authentication.map(|a| a.force_password_reset),
        Some(true),
        "the squatter's password must stop working"
    );
    let kinds = audit_kinds(&env).await;
    assert!(
        kinds.contains(&(AuditKind::CustomerLinkedPasswordReset, None)),
        "{kinds:?}"
    );
    // A returning sign-in goes by the link and resets nothing again.
    sign_in_ok(&env, "victim").await;
    let resets = audit_kinds(&env)
        .await
        .into_iter()
        .filter(|(k, _)| *k == AuditKind::CustomerLinkedPasswordReset)
        .count();
    assert_eq!(resets, 1);
}

/// Rule 20 (a) with `link_existing = "refuse"`: nothing is linked, nothing is changed.
#[tokio::test]
async fn pre_registered_customer_is_refused_when_the_connection_says_so() {
    let refuse = |c: &mut RawConfig| c.connections[0].link_existing = Some("refuse".into());
    let env = with_only("victim", "victim@example.com", refuse).await;
    let squatted = env.seed_customer("victim@example.com", None);
    let page = sign_in(&env, &env.browser, "victim").await;
    page.assert_error(StatusCode::FORBIDDEN, "existing_customer_not_linked");
    assert!(signed_in_customers(&env).is_empty());
    let c = &env.demo.emulator.customers()[0];
    assert_eq!(c.id, squatted);
    assert_ne!(
        c.authentication.as_ref().map(|a| a.force_password_reset),
        Some(true),
        "a refusal changes nothing"
    );
    assert_link_refused(&env, "existing_customer_not_linked").await;
    // A customer the gateway created itself is not "existing": a first sign-in still works.
    let env2 = Env::configured(refuse).await;
    env2.signed_in("", "grace").await;
}

/// Rule 20 (b): a second `sub` of the same issuer with the same verified email (a recycled
/// address) was linked to the customer of the first `sub`.
#[tokio::test]
async fn recycled_address_is_not_linked_to_the_previous_holders_customer() {
    let env = sharing_an_email(["alice-2019", "bob-2026"], "sales@example.com").await;
    sign_in_ok(&env, "alice-2019").await;
    let alice = signed_in_customers(&env)[0];

    let bob = new_browser();
    let page = sign_in(&env, &bob, "bob-2026").await;
    page.assert_error(StatusCode::FORBIDDEN, "customer_already_linked");
    assert_eq!(signed_in_customers(&env), vec![alice]);
    assert_link_refused(&env, "customer_already_linked").await;
    // The admin removes the old link (the person left): the new holder is linked.
    let issuer = env.demo.idp_url.as_str().trim_end_matches('/').to_owned();
    let links = env.demo.state.db.links_of_customer(alice).await.unwrap();
    assert_eq!(links.len(), 1);
    env.demo
        .state
        .db
        .delete_link(&links[0].issuer, "alice-2019")
        .await
        .unwrap();
    let page = sign_in(&env, &bob, "bob-2026").await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    assert!(links[0].issuer.starts_with(&issuer));
}

/// Rule 20 (b) at the same moment: two subjects of one issuer with one email, signing in
/// concurrently, end with one link, never two.
#[tokio::test]
async fn two_subjects_racing_for_one_customer_end_with_one_link() {
    const ROUNDS: usize = 8;
    let env = Env::with_users(|users| {
        for round in 0..ROUNDS {
            let email = format!("shared{round}@example.com");
            users.push(user(&format!("twin-a{round}"), &email));
            users.push(user(&format!("twin-b{round}"), &email));
        }
    })
    .await;
    // Several rounds: the race is in the timing, and one round proves little.
    for round in 0..ROUNDS {
        let customer = env.seed_customer(&format!("shared{round}@example.com"), None);
        let (a, b) = (new_browser(), new_browser());
        let cb_a = env.callback_with(&a, "", &format!("twin-a{round}")).await;
        let cb_b = env.callback_with(&b, "", &format!("twin-b{round}")).await;
        let (pa, pb) = tokio::join!(fetch(&a, cb_a), fetch(&b, cb_b));
        let ok = [&pa, &pb]
            .iter()
            .filter(|p| p.status == StatusCode::FOUND)
            .count();
        assert_eq!(ok, 1, "round {round}: {} / {}", pa.body, pb.body);
        let links = env.demo.state.db.links_of_customer(customer).await.unwrap();
        assert_eq!(links.len(), 1, "round {round}: {links:?}");
    }
}
