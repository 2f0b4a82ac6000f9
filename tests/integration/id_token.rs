//! SECURITY.md's negative tests: the dev IdP misbehaves in one way; the gateway shows the
//! error page, creates no customer, mints no token, and logs a reason code. Names follow
//! the OpenID RP certification cases where one matches.

use bc_sso_sandbox::idp::Misbehaviour;
use reqwest::StatusCode;

use crate::common::Env;

/// Signs in as ada while the IdP misbehaves; asserts the refusal and that nothing happened
/// at BigCommerce.
async fn refused(m: Misbehaviour, status: StatusCode, code: &str) {
    let env = Env::start().await;
    env.idp().set_misbehaviour(m.clone());
    env.refused("", "ada", status, code).await;
    assert!(
        env.demo.emulator.customers().is_empty(),
        "{m:?} created a customer"
    );
    assert!(
        env.demo.emulator.login_attempts().is_empty(),
        "{m:?} minted a token"
    );
    assert_eq!(
        env.demo.emulator.api_request_count(),
        1,
        "{m:?}: only the start-up clock read"
    );
}

const REJECTED: StatusCode = StatusCode::BAD_REQUEST;

#[tokio::test]
async fn rp_id_token_bad_sig_rs256() {
    refused(Misbehaviour::BadSignature, REJECTED, "bad_signature").await;
}

#[tokio::test]
async fn rp_id_token_sig_none() {
    refused(Misbehaviour::AlgNone, REJECTED, "unsigned").await;
}

#[tokio::test]
async fn alg_confusion_hs256_keyed_with_the_public_key() {
    refused(
        Misbehaviour::Hs256WithPublicKey,
        REJECTED,
        "alg_not_allowed",
    )
    .await;
}

#[tokio::test]
async fn rp_id_token_issuer_mismatch() {
    refused(Misbehaviour::WrongIssuer, REJECTED, "iss_mismatch").await;
}

#[tokio::test]
async fn missing_iss() {
    refused(Misbehaviour::MissingIssuer, REJECTED, "id_token_malformed").await;
}

#[tokio::test]
async fn rp_id_token_aud() {
    refused(Misbehaviour::WrongAudience, REJECTED, "aud_mismatch").await;
}

#[tokio::test]
async fn missing_aud() {
    refused(Misbehaviour::MissingAudience, REJECTED, "aud_mismatch").await;
}

#[tokio::test]
async fn untrusted_extra_audience_without_azp() {
    refused(Misbehaviour::ExtraAudienceNoAzp, REJECTED, "aud_mismatch").await;
}

#[tokio::test]
async fn azp_other_than_client_id() {
    refused(Misbehaviour::WrongAzp, REJECTED, "azp_mismatch").await;
}

#[tokio::test]
async fn rp_id_token_sub() {
    refused(Misbehaviour::MissingSub, REJECTED, "id_token_malformed").await;
}

#[tokio::test]
async fn rp_id_token_iat_missing() {
    refused(Misbehaviour::MissingIat, REJECTED, "id_token_malformed").await;
}

#[tokio::test]
async fn rp_id_token_iat_in_the_future() {
    refused(Misbehaviour::IatInFuture, REJECTED, "iat_in_future").await;
}

#[tokio::test]
async fn expired_id_token() {
    refused(Misbehaviour::Expired, REJECTED, "expired").await;
}

#[tokio::test]
async fn missing_exp() {
    refused(Misbehaviour::MissingExp, REJECTED, "id_token_malformed").await;
}

#[tokio::test]
async fn rp_nonce_invalid() {
    refused(Misbehaviour::WrongNonce, REJECTED, "nonce_mismatch").await;
}

#[tokio::test]
async fn rp_nonce_unless_code_flow_missing_nonce() {
    refused(Misbehaviour::MissingNonce, REJECTED, "nonce_mismatch").await;
}

#[tokio::test]
async fn token_response_without_id_token() {
    refused(Misbehaviour::NoIdToken, REJECTED, "no_id_token").await;
}

#[tokio::test]
async fn code_exchange_error_status() {
    refused(
        Misbehaviour::TokenEndpointStatus(500),
        StatusCode::BAD_GATEWAY,
        "code_exchange_failed",
    )
    .await;
    refused(
        Misbehaviour::TokenEndpointStatus(400),
        StatusCode::BAD_REQUEST,
        "code_rejected",
    )
    .await;
}

#[tokio::test]
async fn code_exchange_timeout() {
    let env = Env::configured(|c| c.server.http_timeout_secs = Some(1)).await;
    env.idp().set_misbehaviour(Misbehaviour::TokenEndpointHang);
    env.refused("", "ada", StatusCode::BAD_GATEWAY, "code_exchange_failed")
        .await;
    assert!(env.demo.emulator.customers().is_empty());
}

#[tokio::test]
async fn rfc9207_iss_mismatch_in_authorization_response() {
    refused(Misbehaviour::IssParameterWrong, REJECTED, "iss_mismatch").await;
}

#[tokio::test]
async fn rfc9207_iss_missing_although_advertised() {
    refused(Misbehaviour::IssParameterMissing, REJECTED, "iss_mismatch").await;
}

#[tokio::test]
async fn rp_discovery_issuer_not_matching_config() {
    let env = Env::start().await;
    env.idp()
        .set_misbehaviour(Misbehaviour::DiscoveryWrongIssuer);
    let page = env.get(&env.gateway("/login")).await;
    page.assert_error(StatusCode::BAD_GATEWAY, "idp_metadata_rejected");
}

#[tokio::test]
async fn jwks_endpoint_down() {
    let env = Env::start().await;
    env.idp().set_misbehaviour(Misbehaviour::JwksDown);
    let page = env.get(&env.gateway("/login")).await;
    page.assert_error(StatusCode::BAD_GATEWAY, "idp_unreachable");
    // The IdP recovers; the gateway leaves it alone for the back-off (SECURITY.md rule 23),
    // then recovers without restart.
    env.idp().set_misbehaviour(Misbehaviour::None);
    let fetches = env.idp().jwks_fetch_count();
    let page = env.get(&env.gateway("/login")).await;
    page.assert_error(StatusCode::SERVICE_UNAVAILABLE, "idp_unavailable");
    assert_eq!(env.idp().jwks_fetch_count(), fetches);
    env.demo.clock.advance(30);
    env.signed_in("", "ada").await;
}

#[tokio::test]
async fn idp_unreachable() {
    let env = Env::configured(|c| {
        c.connections[0].issuer = Some("http://127.0.0.1:9".into());
    })
    .await;
    let page = env.get(&env.gateway("/login")).await;
    page.assert_error(StatusCode::BAD_GATEWAY, "idp_unreachable");
}

#[tokio::test]
async fn rp_key_rotation_op_sign_key() {
    let env = Env::start().await;
    env.signed_in("", "ada").await;
    let fetches = env.idp().jwks_fetch_count();
    env.idp().rotate_key();
    let (_, page) = env.sign_in("", "ada").await;
    assert_eq!(
        page.status,
        StatusCode::FOUND,
        "rotation broke sign-in: {}",
        page.body
    );
    assert_eq!(
        env.idp().jwks_fetch_count(),
        fetches + 1,
        "exactly one refetch"
    );
    // The new key is now cached: no further fetch.
    env.signed_in("", "ada").await;
    assert_eq!(env.idp().jwks_fetch_count(), fetches + 1);
}

#[tokio::test]
async fn bogus_kid_is_refused_after_one_throttled_refetch() {
    let env = Env::start().await;
    env.idp().set_misbehaviour(Misbehaviour::UnknownKid);
    env.refused("", "ada", REJECTED, "unknown_kid").await;
    let fetches = env.idp().jwks_fetch_count();
    assert_eq!(fetches, 2, "discovery fetch + one refetch");
    // A second bogus token right after does not make the gateway hammer the IdP.
    env.refused("", "ada", REJECTED, "unknown_kid").await;
    assert_eq!(env.idp().jwks_fetch_count(), fetches);
    assert!(env.demo.emulator.customers().is_empty());
}

#[tokio::test]
async fn rp_id_token_kid_absent_single_jwks() {
    let env = Env::start().await;
    env.idp().set_misbehaviour(Misbehaviour::NoKid);
    env.signed_in("", "ada").await;
}

#[tokio::test]
async fn rp_id_token_kid_absent_multiple_jwks() {
    let env = Env::start().await;
    env.idp().add_extra_jwks_key();
    env.idp().set_misbehaviour(Misbehaviour::NoKid);
    env.refused("", "ada", REJECTED, "ambiguous_key").await;
    assert!(env.demo.emulator.customers().is_empty());
}

#[tokio::test]
async fn email_from_userinfo_when_the_id_token_has_none() {
    let env = Env::start().await;
    env.idp().set_email_in_id_token(false);
    env.signed_in("", "grace").await;
    assert_eq!(env.demo.emulator.customers()[0].email, "grace@example.com");
}

#[tokio::test]
async fn rp_userinfo_bad_sub_claim() {
    let env = Env::start().await;
    env.idp().set_email_in_id_token(false);
    env.idp().set_misbehaviour(Misbehaviour::UserinfoWrongSub);
    env.refused("", "grace", REJECTED, "userinfo_sub_mismatch")
        .await;
    assert!(env.demo.emulator.customers().is_empty());
}

#[tokio::test]
async fn email_verified_as_string_false_or_absent_is_unverified() {
    for verified in [
        Some(serde_json::json!("false")),
        None,
        Some(serde_json::json!(false)),
    ] {
        let env = Env::with_users(|u| u[0].email_verified = verified.clone()).await;
        env.refused("", "ada", StatusCode::FORBIDDEN, "email_unverified")
            .await;
    }
    // "true" as a string counts as verified (some IdPs send strings).
    let env = Env::with_users(|u| u[0].email_verified = Some(serde_json::json!("true"))).await;
    env.signed_in("", "ada").await;
}

#[tokio::test]
async fn email_with_two_at_signs_is_refused() {
    let env = Env::with_users(|u| u[0].email = Some("ada@evil.test@example.com".into())).await;
    env.refused("", "ada", StatusCode::FORBIDDEN, "email_invalid")
        .await;
}
