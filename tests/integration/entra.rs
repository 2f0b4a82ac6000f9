//! Microsoft Entra ID multi-tenant applications (SECURITY.md rule 9). A connection at
//! `…/organizations/v2.0` or `…/common/v2.0` gets tokens from every tenant in the world,
//! each with `iss` = `…/<tid>/v2.0` and its `tid`. The gateway accepts a token only when
//! its `tid` is on the connection's `allowed_tenants` and its `iss` is exactly that
//! tenant's issuer; the link is keyed by that issuer, so one tenant's `sub` never reaches
//! another tenant's customer. The dev IdP mints Entra-shaped tokens for users with a `tid`.

use bc_sso_dev::demo::{DemoIdp, DemoOptions};
use bc_sso_sandbox::idp::{DevUser, Misbehaviour, demo_users};
use reqwest::StatusCode;

use crate::common::Env;
use crate::negative::refused_sign_in;

/// The tenant the admin allowed.
const CONTOSO: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// A tenant nobody allowed: any Entra customer can point its users at a multi-tenant app.
const FABRIKAM: &str = "0b5e1c3a-2f4d-4e6a-9b8c-7d6e5f4a3b2c";
/// The tenant of the dev IdP's `OtherTenant` misbehaviour.
const OTHER_TENANT: &str = "7e57e57e-0000-4000-8000-0000000e7e11";

/// The demo with its connection at the dev IdP's `/<segment>/v2.0` (Entra's multi-tenant
/// discovery) allowing `allowed`; every demo user is in Contoso, then `edit` runs.
async fn multi_tenant(
    segment: &str,
    allowed: &[&str],
    edit: impl FnOnce(&mut Vec<DevUser>),
) -> Env {
    let mut users = demo_users();
    for u in &mut users {
        u.tid = Some(CONTOSO.into());
    }
    edit(&mut users);
    let options = DemoOptions {
        idp: DemoIdp::Dev { users },
        ..DemoOptions::default()
    };
    let allowed: Vec<String> = allowed.iter().map(|t| t.to_string()).collect();
    let segment = segment.to_owned();
    Env::with(options, move |c| {
        let conn = &mut c.connections[0];
        let issuer = conn
            .issuer
            .clone()
            .expect("the demo connection has an issuer");
        conn.issuer = Some(format!("{issuer}/{segment}/v2.0"));
        conn.allowed_tenants = allowed;
    })
    .await
}

#[tokio::test]
async fn entra_multi_tenant_allowed_tenant_signs_in_under_its_own_issuer() {
    for segment in ["organizations", "common"] {
        let env = multi_tenant(segment, &[CONTOSO], |_| {}).await;
        let landing = env.signed_in("", "ada").await;
        assert!(landing.path().contains("/login/token/"), "{landing}");
        let tenant_issuer = env.idp().tenant_issuer(CONTOSO);
        let link = env
            .demo
            .state
            .db
            .find_link(&tenant_issuer, "ada")
            .await
            .unwrap();
        assert!(link.is_some(), "no link under {tenant_issuer}");
        // And the returning sign-in finds it.
        env.signed_in("", "ada").await;
        assert_eq!(env.demo.emulator.customers().len(), 1);
    }
}

#[tokio::test]
async fn entra_multi_tenant_token_from_a_tenant_not_allowed_is_refused() {
    let env = multi_tenant("organizations", &[CONTOSO], |u| {
        u[1].tid = Some(FABRIKAM.into());
    })
    .await;
    refused_sign_in(
        &env,
        "",
        "grace",
        StatusCode::BAD_REQUEST,
        "tenant_not_allowed",
    )
    .await;
    // Contoso's users are not affected.
    env.signed_in("", "ada").await;
}

#[tokio::test]
async fn entra_multi_tenant_token_without_tid_is_refused() {
    let env = multi_tenant("organizations", &[CONTOSO], |u| u[1].tid = None).await;
    // Entra sends no RFC 9207 `iss` (and its multi-tenant discovery does not advertise it);
    // without this the dev IdP would send its plain issuer, refused before the token.
    env.idp()
        .set_misbehaviour(Misbehaviour::IssParameterMissing);
    refused_sign_in(&env, "", "grace", StatusCode::BAD_REQUEST, "tenant_missing").await;
}

/// A token whose `tid` is allowed but whose `iss` is not that tenant's issuer (here another
/// host's): the template is filled with the token's own `tid` and compared exactly.
#[tokio::test]
async fn entra_multi_tenant_iss_must_be_the_tenants_issuer() {
    let env = multi_tenant("organizations", &[CONTOSO, OTHER_TENANT], |_| {}).await;
    env.idp().set_misbehaviour(Misbehaviour::OtherTenant);
    refused_sign_in(&env, "", "ada", StatusCode::BAD_REQUEST, "iss_mismatch").await;

    let env = multi_tenant("organizations", &[CONTOSO], |_| {}).await;
    env.idp().set_misbehaviour(Misbehaviour::OtherTenant);
    refused_sign_in(
        &env,
        "",
        "ada",
        StatusCode::BAD_REQUEST,
        "tenant_not_allowed",
    )
    .await;

    // An authorization response naming an issuer that is no allowed tenant's.
    env.idp().set_misbehaviour(Misbehaviour::IssParameterWrong);
    refused_sign_in(&env, "", "ada", StatusCode::BAD_REQUEST, "iss_mismatch").await;
}

/// The same `sub` in two allowed tenants is two identities, keyed by each tenant's issuer:
/// Fabrikam's "ada" does not sign in as Contoso's Ada.
#[tokio::test]
async fn entra_multi_tenant_same_sub_in_two_tenants_is_two_identities() {
    let env = multi_tenant("organizations", &[CONTOSO, FABRIKAM], |_| {}).await;
    env.signed_in("", "ada").await;
    let db = &env.demo.state.db;
    let contoso = db
        .find_link(&env.idp().tenant_issuer(CONTOSO), "ada")
        .await
        .unwrap()
        .expect("Contoso's Ada is linked");

    let mut users = env.idp().users();
    users[0].tid = Some(FABRIKAM.into());
    users[0].email = Some("ada.fabrikam@example.com".into());
    env.idp().set_users(users);
    env.signed_in("", "ada").await;
    let fabrikam = db
        .find_link(&env.idp().tenant_issuer(FABRIKAM), "ada")
        .await
        .unwrap()
        .expect("Fabrikam's ada is linked");
    assert_ne!(fabrikam.customer_id, contoso.customer_id);
    let emails: Vec<String> = env
        .demo
        .emulator
        .customers()
        .iter()
        .map(|c| c.email.clone())
        .collect();
    assert_eq!(emails.len(), 2, "{emails:?}");
}
