//! SECURITY.md, "Negative tests: the OpenID relying-party certification cases, as
//! integration tests": every item of its list, and the test that covers it. Each is a real
//! sign-in against the dev IdP (or a second one) misbehaving in one way; the gateway must
//! show its error page, create no customer, mint no BigCommerce login token, and log a
//! reason code. The tests in this file check all of that through [`Refusal`]; the ones in
//! other files check the error page, the reason code and that no customer was created
//! (an error page hands the browser no token).
//!
//! | SECURITY.md item | Test |
//! |---|---|
//! | **ID token** | |
//! | bad RS256 signature | `id_token::rp_id_token_bad_sig_rs256` |
//! | `alg: none` | `id_token::rp_id_token_sig_none` |
//! | `alg` HS256 signed with the RSA public key bytes | `id_token::alg_confusion_hs256_keyed_with_the_public_key` |
//! | alg not in the connection's allow-list | `negative::id_token_alg_not_in_the_connections_allow_list` |
//! | wrong `iss` | `id_token::rp_id_token_issuer_mismatch` |
//! | missing `iss` | `id_token::missing_iss` |
//! | wrong `aud` | `id_token::rp_id_token_aud` |
//! | missing `aud` | `id_token::missing_aud` |
//! | `aud` array with an untrusted extra and no `azp` | `id_token::untrusted_extra_audience_without_azp` |
//! | `azp` ≠ client id | `id_token::azp_other_than_client_id` |
//! | missing `sub` | `id_token::rp_id_token_sub` |
//! | missing `iat` | `id_token::rp_id_token_iat_missing` |
//! | `iat` beyond leeway in the future | `id_token::rp_id_token_iat_in_the_future` |
//! | `exp` in the past beyond leeway | `id_token::expired_id_token` |
//! | missing `exp` | `id_token::missing_exp` |
//! | wrong `nonce` | `id_token::rp_nonce_invalid` |
//! | missing `nonce` | `id_token::rp_nonce_unless_code_flow_missing_nonce` |
//! | replayed ID token / reused `nonce` | `negative::replayed_id_token_from_an_earlier_sign_in` |
//! | unknown `kid` → one refetch, then success (rotation) | `id_token::rp_key_rotation_op_sign_key` |
//! | unknown `kid` → one refetch, then failure (bogus `kid`) | `id_token::bogus_kid_is_refused_after_one_throttled_refetch` |
//! | no `kid`, one key (accept) | `id_token::rp_id_token_kid_absent_single_jwks` |
//! | no `kid`, two keys (reject) | `id_token::rp_id_token_kid_absent_multiple_jwks` |
//! | JWKS endpoint down | `id_token::jwks_endpoint_down` (at discovery), `negative::jwks_endpoint_down_when_a_rotated_key_needs_a_refetch` (at the callback) |
//! | **Flow** | |
//! | missing `state` | `negative::callback_without_state` |
//! | wrong `state` | `negative::callback_with_a_wrong_state` |
//! | `state` reused | `flow::replayed_state_is_refused` |
//! | `state` from another browser session | `flow::state_from_another_browser_is_refused` |
//! | callback for connection A with a `state` started for B (mix-up) | `negative::mix_up_code_from_idp_a_with_the_state_started_for_idp_b` (IdPs that send RFC 9207 `iss`); `negative::mix_up_attack_through_a_malicious_idp_without_rfc9207` (IdPs that do not: each connection has its own redirect URI) |
//! | RFC 9207 `iss` mismatch when advertised | `id_token::rfc9207_iss_mismatch_in_authorization_response`, `id_token::rfc9207_iss_missing_although_advertised` |
//! | duplicated `code`/`state` | `negative::duplicated_code_state_or_iss_in_the_callback` |
//! | `error=access_denied` from the IdP (friendly page) | `negative::idp_error_access_denied_shows_a_friendly_page` |
//! | code exchange 400/500/timeout | `id_token::code_exchange_error_status`, `id_token::code_exchange_timeout` |
//! | token response without `id_token` | `id_token::token_response_without_id_token` |
//! | pending login expired | `flow::pending_login_expires` |
//! | **Discovery** | |
//! | `issuer` ≠ configured | `negative::rp_discovery_issuer_not_matching_config` |
//! | metadata over plain http | `negative::discovery_metadata_over_plain_http` |
//! | `jwks_uri` on another host (warn) | `negative::jwks_uri_on_another_host_is_logged_as_a_warning` |
//! | **Claims** | |
//! | `email_verified` false / absent / `"false"` | `negative::email_verified_false_absent_or_the_string_false_is_unverified` |
//! | email with two `@` | `negative::email_with_two_at_signs` |
//! | domain not allow-listed | `flow::disallowed_domain_is_refused` |
//! | domain owned by another connection | `negative::email_domain_owned_by_another_connection` |
//! | userinfo `sub` ≠ ID-token `sub` | `id_token::rp_userinfo_bad_sub_claim` |
//! | Entra token from a tenant not on the allow-list | `negative::entra_token_from_a_tenant_not_on_the_allow_list` |
//! | Entra multi-tenant: `tid` not on `allowed_tenants` / no `tid` / `iss` not the tenant's | `entra::entra_multi_tenant_token_from_a_tenant_not_allowed_is_refused`, `entra::entra_multi_tenant_token_without_tid_is_refused`, `entra::entra_multi_tenant_iss_must_be_the_tenants_issuer` |
//! | display name containing `<script>` | `negative::display_name_with_script_is_inert_in_the_gateways_pages_and_logs` |
//! | **Redirect** | |
//! | the `validator_test.go` table, percent-encoded variants | `negative::redirect_to_attack_table_through_a_real_sign_in`; the full table row by row: `bc_sso_gateway` `redirect::tests::oauth2_proxy_table_and_rule_13`, `redirect::tests::oauth2_proxy_open_redirect_list`, `properties::redirect_to_is_always_a_safe_landing_path` |

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bc_sso_dev::demo::{self, DemoIdp, DemoOptions};
use bc_sso_gateway::config::RawConfig;
use bc_sso_gateway::db::AuditKind;
use bc_sso_sandbox::idp::{DevIdp, DevUser, Misbehaviour, demo_users};
use reqwest::StatusCode;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use url::Url;

use crate::common::{
    Env, ExtraIdp, Page, add_other_connection, all_logs, fetch, log_lines_with, pick_at,
};

const REJECTED: StatusCode = StatusCode::BAD_REQUEST;

/// What BigCommerce and the gateway's store held before the request under test.
struct Refusal {
    customers: usize,
    login_attempts: usize,
    api_requests: u64,
    links: i64,
}

impl Refusal {
    async fn expect(env: &Env) -> Refusal {
        Refusal {
            customers: env.demo.emulator.customers().len(),
            login_attempts: env.demo.emulator.login_attempts().len(),
            api_requests: env.demo.emulator.api_request_count(),
            links: links(env).await,
        }
    }

    /// `page` is the error page with `code`, logged with that reason; nothing happened at
    /// BigCommerce (no customer, no API call at all, no login token used) and nothing was
    /// linked; no token was minted for the request; its audit entry, if any, is a refusal
    /// with the same reason.
    #[track_caller]
    fn check(&self, env: &Env, page: &Page, status: StatusCode, code: &str) {
        page.assert_error(status, code);
        assert!(page.location.is_none(), "redirected: {:?}", page.location);
        assert!(
            !page.body.contains("/login/token/"),
            "a login token URL on the error page"
        );
        let emulator = &env.demo.emulator;
        assert_eq!(emulator.customers().len(), self.customers, "customers");
        assert_eq!(
            emulator.login_attempts().len(),
            self.login_attempts,
            "storefront logins"
        );
        assert_eq!(
            emulator.api_request_count(),
            self.api_requests,
            "BigCommerce API calls"
        );
        let id = page.correlation_id.as_deref().unwrap_or_default();
        // The login token is minted right before this line is logged (signin.rs).
        assert!(
            !log_lines_with(id)
                .iter()
                .any(|l| l.contains("sign-in complete")),
            "a token was minted for {id}"
        );
    }

    /// [`Refusal::check`], and the store: no link, and the audit trail says why.
    async fn check_all(&self, env: &Env, page: &Page, status: StatusCode, code: &str) {
        self.check(env, page, status, code);
        assert_eq!(links(env).await, self.links, "identity links");
        let events = env.demo.state.db.audit_events(100).await.unwrap();
        for e in events
            .iter()
            .filter(|e| e.correlation_id == page.correlation_id)
        {
            assert_eq!(e.kind, AuditKind::SignInRefused, "{e:?}");
            assert_eq!(e.reason.as_deref(), Some(code), "{e:?}");
        }
    }
}

async fn links(env: &Env) -> i64 {
    env.demo.state.db.count_links().await.unwrap()
}

/// Signs in with `query` as `sub`; checks the refusal with [`Refusal::check_all`].
pub(crate) async fn refused_sign_in(
    env: &Env,
    query: &str,
    sub: &str,
    status: StatusCode,
    code: &str,
) {
    let before = Refusal::expect(env).await;
    let (_, page) = env.sign_in(query, sub).await;
    before.check_all(env, &page, status, code).await;
}

/// Signs in as `sub` while the IdP misbehaves in way `m`; checks the refusal.
async fn refused_with(m: Misbehaviour, sub: &str, status: StatusCode, code: &str) -> Env {
    let env = Env::start().await;
    env.idp().set_misbehaviour(m);
    refused_sign_in(&env, "", sub, status, code).await;
    env
}

/// `url` with its query rebuilt by `edit` over the decoded pairs.
fn with_query(url: &Url, edit: impl FnOnce(&mut Vec<(String, String)>)) -> Url {
    let mut pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    edit(&mut pairs);
    let mut out = url.clone();
    out.query_pairs_mut().clear().extend_pairs(&pairs);
    out
}

/// `/login?query` in `browser` → the authorize URL of whichever IdP the connection names.
async fn begin_at(env: &Env, browser: &reqwest::Client, query: &str) -> Url {
    let login = env.gateway(&format!("/login?{query}"));
    let page = fetch(browser, login).await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    page.location.unwrap()
}

fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

// ---------------------------------------------------------------------------------------
// ID token

/// A valid RS512 signature by the IdP's own key: only the allow-list (RS256 by default)
/// stands between the gateway and an algorithm the admin did not choose.
#[tokio::test]
async fn id_token_alg_not_in_the_connections_allow_list() {
    refused_with(
        Misbehaviour::Rs512Signature,
        "ada",
        REJECTED,
        "alg_not_allowed",
    )
    .await;
}

/// An ID token captured from Ada's sign-in, handed back for Grace's (and for a later one of
/// Ada's own): the nonce of each pending login is fresh and single-use, so neither is
/// accepted.
#[tokio::test]
async fn replayed_id_token_from_an_earlier_sign_in() {
    let env = Env::start().await;
    let first = env.begin("").await;
    let page = env.get(&env.pick_user(&first, "ada").await).await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    // What `Refusal::check` looks for is there when a token is minted.
    let id = page.correlation_id.unwrap();
    assert!(
        log_lines_with(&id)
            .iter()
            .any(|l| l.contains("sign-in complete")),
        "the mint check would see nothing"
    );

    env.idp().set_misbehaviour(Misbehaviour::ReplayIdToken);
    for sub in ["grace", "ada"] {
        let before = Refusal::expect(&env).await;
        let authorize = env.begin("").await;
        let (old, new) = (param(&first, "nonce"), param(&authorize, "nonce"));
        assert_ne!(old, new, "a nonce was used twice");
        assert!(new.is_some_and(|n| n.len() >= 22), "nonce too short");
        let callback = env.pick_user(&authorize, sub).await;
        let page = env.get(&callback).await;
        before
            .check_all(&env, &page, REJECTED, "nonce_mismatch")
            .await;
        let events = env.demo.state.db.audit_events(1).await.unwrap();
        assert_eq!(events[0].correlation_id, page.correlation_id, "not audited");
    }
    assert_eq!(env.demo.emulator.customers().len(), 1, "Ada's only");
}

/// The IdP rotated its key and its JWKS endpoint is down when the gateway needs the new
/// key: one refetch, a clear error, no crash.
#[tokio::test]
async fn jwks_endpoint_down_when_a_rotated_key_needs_a_refetch() {
    let env = Env::start().await;
    let (_, page) = env.sign_in("", "ada").await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    env.idp().rotate_key();
    env.idp().set_misbehaviour(Misbehaviour::JwksDown);
    let fetches = env.idp().jwks_fetch_count();
    let before = Refusal::expect(&env).await;
    let (_, page) = env.sign_in("", "grace").await;
    before
        .check_all(&env, &page, StatusCode::BAD_GATEWAY, "idp_unreachable")
        .await;
    assert_eq!(env.idp().jwks_fetch_count(), fetches + 1, "one refetch");
    assert_eq!(env.open("/healthz").await.status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------
// Flow

/// The callback of a real sign-in at the IdP, with `edit` applied to its query; the code
/// must not reach any token endpoint.
async fn forged_callback(edit: impl FnOnce(&mut Vec<(String, String)>), code: &str) {
    let env = Env::start().await;
    let callback = env.callback("", "ada").await;
    let before = Refusal::expect(&env).await;
    let page = env.get(&with_query(&callback, edit)).await;
    before.check_all(&env, &page, REJECTED, code).await;
    assert_eq!(env.idp().token_request_count(), 0, "the code was redeemed");
}

#[tokio::test]
async fn callback_without_state() {
    forged_callback(|q| q.retain(|(k, _)| k != "state"), "no_pending_login").await;
}

#[tokio::test]
async fn callback_with_a_wrong_state() {
    forged_callback(
        |q| {
            for (k, v) in q.iter_mut() {
                if k == "state" {
                    v.push('x');
                }
            }
        },
        "no_pending_login",
    )
    .await;
}

#[tokio::test]
async fn duplicated_code_state_or_iss_in_the_callback() {
    for name in ["code", "state", "iss"] {
        forged_callback(
            |q| {
                let first = q.iter().position(|(k, _)| k == name).unwrap();
                // The forged value first: a "last wins" parser would take the real one.
                q.insert(first, (name.to_owned(), "forged".to_owned()));
            },
            "bad_callback_request",
        )
        .await;
    }
}

/// Connection `id` at `idp`'s issuer, owning `domain`, with client `client-at-<id>`.
fn add_connection(c: &mut RawConfig, id: &str, idp: &ExtraIdp, domain: &str) {
    let mut conn = c.connections[0].clone();
    conn.id = Some(id.into());
    conn.display_name = Some(format!("IdP {id}"));
    conn.issuer = Some(idp.issuer());
    conn.client_id = Some(format!("client-at-{id}"));
    conn.client_secret = Some(format!("secret-at-{id}"));
    conn.allowed_email_domains = vec![domain.into()];
    c.connections.push(conn);
}

/// Every `code` an IdP's token endpoint received, as its operator would see them.
type Codes = Arc<Mutex<Vec<String>>>;

/// Serves a dev IdP at `idp` for connection `id`'s client.
fn serve_idp(env: &Env, idp: ExtraIdp, id: &str, send_iss_parameter: bool) -> (DevIdp, Codes) {
    let client = (&*format!("client-at-{id}"), &*format!("secret-at-{id}"));
    let redirect_uri = env.demo.state.config.redirect_uri(id);
    let dev = idp.dev_idp(client, redirect_uri, send_iss_parameter);
    let codes = Codes::default();
    let seen = codes.clone();
    let record = move |req: axum::extract::Request, next: axum::middleware::Next| {
        let seen = seen.clone();
        async move {
            if req.uri().path() != "/token" {
                return next.run(req).await;
            }
            let (parts, body) = req.into_parts();
            let bytes = axum::body::to_bytes(body, 64 * 1024).await.unwrap();
            let code = url::form_urlencoded::parse(&bytes).find(|(k, _)| k == "code");
            seen.lock()
                .unwrap()
                .extend(code.map(|(_, v)| v.into_owned()));
            let req = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
            next.run(req).await
        }
    };
    idp.serve(dev.router().layer(axum::middleware::from_fn(record)));
    (dev, codes)
}

/// A second dev IdP ("B", connection `b`, owning `other.test`) next to the demo's ("A").
async fn with_idp_b(send_iss_parameter: bool) -> (Env, DevIdp) {
    let idp = ExtraIdp::bind().await;
    let env = Env::configured(|c| add_connection(c, "b", &idp, "other.test")).await;
    let (idp_b, _) = serve_idp(&env, idp, "b", send_iss_parameter);
    (env, idp_b)
}

/// RFC 9700 §4.4: the browser was sent to B, but the code (and `iss`) come from A. The
/// pending login is bound to B's issuer, so the code goes to no token endpoint, whether the
/// attacker keeps A's `iss` or strips it (B advertises RFC 9207). The honest sign-in at A
/// is not disturbed.
#[tokio::test]
async fn mix_up_code_from_idp_a_with_the_state_started_for_idp_b() {
    let (env, idp_b) = with_idp_b(true).await;
    let at_a = env.begin("connection=demo").await;
    let callback_a = env.pick_user(&at_a, "ada").await;
    assert_eq!(
        param(&callback_a, "iss").as_deref(),
        Some(env.idp().issuer())
    );
    for keep_iss in [true, false] {
        let at_b = begin_at(&env, &env.browser, "connection=b").await;
        assert!(at_b.as_str().starts_with(idp_b.issuer()), "{at_b}");
        let state_b = param(&at_b, "state").unwrap();
        let forged = with_query(&callback_a, |q| {
            q.retain(|(k, _)| k != "iss" || keep_iss);
            for (k, v) in q.iter_mut() {
                if k == "state" {
                    *v = state_b.clone();
                }
            }
        });
        let before = Refusal::expect(&env).await;
        let page = env.get(&forged).await;
        // A's answer came back to A's callback: the pending login is B's, so it is refused
        // before any `iss` check or code exchange (one redirect URI per connection).
        before
            .check_all(&env, &page, REJECTED, "callback_connection_mismatch")
            .await;
        assert_eq!(idp_b.token_request_count(), 0, "A's code was sent to B");
        assert_eq!(env.idp().token_request_count(), 0);
    }
    let page = env.get(&callback_a).await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
}

/// The mix-up attack of RFC 9700 §4.4.1 through a malicious IdP B configured beside an
/// honest IdP A that does not send RFC 9207 `iss` (many do not). The attacker starts a
/// sign-in at A in their own browser and keeps the authorize URL. The victim is lured to
/// sign in with B; B sends the victim on to A with the attacker's authorize URL, but the
/// victim's `state`. The victim signs in at A; A returns the code to the gateway in the
/// victim's browser, whose pending login is B's, so the gateway redeems A's code at B's
/// token endpoint. B now holds a code that A bound to the attacker's PKCE challenge and
/// nonce: the attacker's own callback redeems it and is signed in as the victim.
///
/// SECURITY.md rule 8 ("on callback require the connection to match"): each connection has
/// its own redirect URI (RFC 9700 §4.4.2), so A's answer comes back to A's callback, which
/// refuses the victim's pending login for B: the code never reaches B.
#[tokio::test]
async fn mix_up_attack_through_a_malicious_idp_without_rfc9207() {
    let (a, b) = (ExtraIdp::bind().await, ExtraIdp::bind().await);
    let env = Env::configured(|c| {
        add_connection(c, "a", &a, "other.test");
        add_connection(c, "b", &b, "b.test");
    })
    .await;
    let (_idp_a, _) = serve_idp(&env, a, "a", false);
    // B is the attacker's: it does not advertise RFC 9207 either.
    let (_idp_b, codes_at_b) = serve_idp(&env, b, "b", false);
    let attacker = crate::common::new_browser();
    let attackers_authorize = begin_at(&env, &attacker, "connection=a").await;
    let state_at_b = param(&begin_at(&env, &env.browser, "connection=b").await, "state").unwrap();
    let sent_on_by_b = with_query(&attackers_authorize, |q| {
        for (k, v) in q.iter_mut() {
            if k == "state" {
                *v = state_at_b.clone();
            }
        }
    });
    // The victim (Oscar, other.test, at A) signs in at A; A answers to the victim's gateway.
    let callback = pick_at(&env.browser, &sent_on_by_b, "oscar").await;
    assert_eq!(
        param(&callback, "iss"),
        None,
        "A does not send RFC 9207 iss"
    );
    let before = Refusal::expect(&env).await;
    let page = env.get(&callback).await;
    assert_ne!(page.status, StatusCode::FOUND, "{}", page.body);
    page.assert_error(StatusCode::BAD_REQUEST, "callback_connection_mismatch");
    let stolen = codes_at_b.lock().unwrap().first().cloned();
    if let Some(stolen) = stolen {
        let attackers_state = param(&attackers_authorize, "state").unwrap();
        let mut injected = env.demo.state.config.redirect_uri("a");
        injected
            .query_pairs_mut()
            .append_pair("code", &stolen)
            .append_pair("state", &attackers_state);
        let page = fetch(&attacker, injected).await;
        let signed_in = page
            .location
            .is_some_and(|l| l.path().starts_with("/login/token/"));
        assert!(!signed_in, "the attacker is signed in as the victim");
    }
    assert_eq!(env.demo.emulator.customers().len(), before.customers);
    assert!(
        codes_at_b.lock().unwrap().is_empty(),
        "the code A issued reached B's token endpoint"
    );
}

/// The IdP answers the authorization request with `error=access_denied`: a friendly page,
/// no code exchange. Any other error code, even one made of markup, is shown as a
/// reference only, never as text or HTML.
#[tokio::test]
async fn idp_error_access_denied_shows_a_friendly_page() {
    let env = Env::start().await;
    for (error, status, code) in [
        ("access_denied", StatusCode::FORBIDDEN, "idp_access_denied"),
        (
            "<script>alert('idp-error')</script>",
            StatusCode::FORBIDDEN,
            "idp_error",
        ),
    ] {
        env.idp()
            .set_misbehaviour(Misbehaviour::AuthorizeError(error.into()));
        let authorize = env.begin("").await;
        let answer = env.get(&authorize).await;
        let callback = answer.location.expect("the IdP redirects back");
        assert_eq!(param(&callback, "error").as_deref(), Some(error));
        let before = Refusal::expect(&env).await;
        let page = env.get(&callback).await;
        before.check_all(&env, &page, status, code).await;
        assert!(!page.body.contains("<script>alert"), "{}", page.body);
        if code == "idp_access_denied" {
            assert!(page.body.contains("Sign-in was cancelled"), "{}", page.body);
        }
    }
    assert_eq!(env.idp().token_request_count(), 0);
}

// ---------------------------------------------------------------------------------------
// Discovery

/// `rp-discovery-issuer-not-matching-config`: refused at `/login`, before the JWKS is
/// fetched; nothing of the document is used.
#[tokio::test]
async fn rp_discovery_issuer_not_matching_config() {
    let env = Env::start().await;
    env.idp()
        .set_misbehaviour(Misbehaviour::DiscoveryWrongIssuer);
    let before = Refusal::expect(&env).await;
    let page = env.open("/login").await;
    before
        .check_all(
            &env,
            &page,
            StatusCode::BAD_GATEWAY,
            "idp_metadata_rejected",
        )
        .await;
    assert_eq!(env.idp().jwks_fetch_count(), 0);
}

/// A loopback IdP may use plain http (the demo does), but its document may not send the
/// gateway to plain http anywhere else: refused before anything it names is fetched. An
/// issuer on plain http stops the start-up.
#[tokio::test]
async fn discovery_metadata_over_plain_http() {
    let env = Env::start().await;
    env.idp().set_misbehaviour(Misbehaviour::DiscoveryPlainHttp);
    let before = Refusal::expect(&env).await;
    let page = env.open("/login").await;
    before
        .check_all(&env, &page, StatusCode::BAD_GATEWAY, "idp_endpoint_refused")
        .await;
    assert_eq!(env.idp().jwks_fetch_count(), 0);

    crate::common::init_logs();
    let started = demo::start(DemoOptions::default(), |c: &mut RawConfig| {
        crate::common::use_test_database(c);
        c.connections[0].issuer = Some("http://idp.example.com".into());
    })
    .await;
    let Err(e) = started else {
        panic!("a plain-http issuer was accepted")
    };
    assert!(e.to_string().contains("issuer: must be https"), "{e}");
}

/// Keys on another host are legitimate for some IdPs (a CDN), so the gateway signs in and
/// says so in its log; the URL still passed the same checks as every other endpoint.
#[tokio::test]
async fn jwks_uri_on_another_host_is_logged_as_a_warning() {
    let env = Env::start().await;
    env.idp().set_misbehaviour(Misbehaviour::JwksUriOtherHost);
    let page = env.open("/login").await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    let id = page.correlation_id.clone().unwrap();
    let warned = log_lines_with(&id).into_iter().any(|l| {
        l.contains("\"level\":\"WARN\"")
            && l.contains("IdP endpoint on another host than the issuer")
            && l.contains("localhost")
    });
    assert!(warned, "no warning for {id}: {:#?}", log_lines_with(&id));
    let callback = env.pick_user(&page.location.unwrap(), "ada").await;
    let done = env.get(&callback).await;
    assert_eq!(done.status, StatusCode::FOUND, "{}", done.body);
    assert_eq!(env.idp().jwks_fetch_count(), 1, "keys from the other host");
}

// ---------------------------------------------------------------------------------------
// Claims

/// Ada's store account exists; an IdP that has not verified the address she signs in with
/// must not get into it, however it spells "not verified".
#[tokio::test]
async fn email_verified_false_absent_or_the_string_false_is_unverified() {
    for verified in [
        Some(Value::Bool(false)),
        None,
        Some(Value::String("false".into())),
    ] {
        let env = Env::with_users(|u| u[0].email_verified = verified.clone()).await;
        env.seed_customer("ada@example.com", None);
        refused_sign_in(&env, "", "ada", StatusCode::FORBIDDEN, "email_unverified").await;
    }
}

#[tokio::test]
async fn email_with_two_at_signs() {
    let env = Env::with_users(|u| u[0].email = Some("ada@evil.test@example.com".into())).await;
    env.seed_customer("ada@example.com", None);
    refused_sign_in(&env, "", "ada", StatusCode::FORBIDDEN, "email_invalid").await;
}

/// Rule 4: `other.test` belongs to connection `other`. A verified `boss@other.test` from
/// the demo connection's IdP does not get into Boss's account (nor a new one).
#[tokio::test]
async fn email_domain_owned_by_another_connection() {
    let mut users = demo_users();
    users.push(DevUser {
        sub: "mallory".into(),
        email: Some("boss@other.test".into()),
        email_verified: Some(Value::Bool(true)),
        ..users[0].clone()
    });
    let options = DemoOptions {
        idp: DemoIdp::Dev { users },
        ..DemoOptions::default()
    };
    let env = Env::with(options, |c| add_other_connection(c, "Other Corp")).await;
    env.seed_customer("boss@other.test", None);
    let (status, code) = (StatusCode::FORBIDDEN, "domain_not_allowed");
    refused_sign_in(&env, "connection=demo", "mallory", status, code).await;
}

/// A multi-tenant Entra application gets tokens from every tenant, each with its own `iss`
/// and `tid`. A single-tenant connection pins one issuer (`iss` exact), so a token from a
/// tenant the admin did not configure is refused. Multi-tenant connections: `entra.rs`.
#[tokio::test]
async fn entra_token_from_a_tenant_not_on_the_allow_list() {
    refused_with(Misbehaviour::OtherTenant, "ada", REJECTED, "iss_mismatch").await;
}

/// Rule 16: names are data. The admin's "Try sign-in" report shows the claims escaped, the
/// customer is created with the text as given (BigCommerce stores and escapes it), and no
/// log line carries it.
#[tokio::test]
async fn display_name_with_script_is_inert_in_the_gateways_pages_and_logs() {
    let marker = format!("xss-{}", uuid::Uuid::new_v4().simple());
    let script = format!("<script>alert('{marker}')</script>");
    let img = format!("\"><img src=x onerror=alert('{marker}')>");
    let env = Env::with_users(|u| {
        u[0].given_name = Some(script.clone());
        u[0].family_name = Some(img.clone());
        u[0].name = Some(format!("{script} {img}"));
    })
    .await;

    let csrf = env.admin_sign_in().await;
    let trial = crate::admin::start_trial(&env, &csrf, "demo").await;
    let report = env.get(&env.signed_in(&trial, "ada").await).await;
    assert_eq!(report.status, StatusCode::OK);
    assert!(
        report.body.contains(&marker),
        "the name is not shown at all"
    );
    assert!(!report.body.contains("<script>alert"), "{}", report.body);
    assert!(!report.body.contains("<img src=x"), "{}", report.body);

    env.signed_in("", "ada").await;
    let customer = &env.demo.emulator.customers()[0];
    assert_eq!((&customer.first_name, &customer.last_name), (&script, &img));
    assert!(!all_logs().contains(&marker), "a log line carries the name");
}

// ---------------------------------------------------------------------------------------
// Redirect

/// The `redirect_to` claim of the login token in a storefront `/login/token/<jwt>` URL.
fn landing_of(token_url: &Url) -> String {
    let jwt = token_url
        .path()
        .strip_prefix("/login/token/")
        .unwrap_or_else(|| panic!("not a login token URL: {token_url}"));
    let payload = jwt.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["redirect_to"].as_str().unwrap().to_owned()
}

/// oauth2-proxy's `validator_test.go` rows a relative-only validator must refuse, the
/// SECURITY.md list, their percent-encoded variants and the storefront's own sign-in
/// endpoints (rule 24), each through a real sign-in: the login token lands on the default
/// page, on the storefront. The unit table in `redirect.rs` checks each row's rule.
#[tokio::test]
async fn redirect_to_attack_table_through_a_real_sign_in() {
    const ATTACKS: &[&str] = &[
        // validator_test.go
        "//redirect",
        "http://foo.bar/redirect",
        "https://evil.corp/redirect?rd=foo.bar",
        "https://evil.corp:3838/redirect",
        "/\\evil.com",
        "/ /evil.com",
        "/ \\evil.com",
        "/\t/evil.com",
        "/\t\\evil.com",
        "/\x0b/evil.com",
        "/\n/evil.com",
        "/\r/evil.com",
        "/\t/\t\\evil.com",
        "/\t\t/\t/evil.com",
        "/\t\t\\\t/evil.com",
        "/./\\evil.com",
        "/./../../\\evil.com",
        "foo.bar/redirect",
        // SECURITY.md rule 13
        "//evil",
        "/\\evil",
        "/ /evil",
        "/\t/evil",
        "/\r\n/evil",
        "/./\\evil",
        "https://evil",
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        // percent-encoded variants (one decode)
        "/%2F/evil",
        "/%2f%2fevil",
        "/%5Cevil",
        "/%20/evil",
        "/%09/evil",
        "/%0d%0a/evil",
        "/%0b/evil",
        "/.%2F%5Cevil",
        "%2F%2Fevil",
        "https%3A%2F%2Fevil",
        "javascript%3Aalert(1)",
        "/%2e/%5cevil",
        // rule 24: the storefront's sign-in and sign-out endpoints
        "/login/token/eyJhbGciOiJIUzI1NiJ9.e30.sig",
        "/login.php?action=logout",
        "/%6Cogin/token/abc",
    ];
    let env = Env::configured(|c| {
        c.server.rate_limit_per_minute = Some(0);
        c.server.connection_rate_limit_per_minute = Some(0);
    })
    .await;
    let storefront = &env.demo.storefront_urls[0];
    let mut failures = Vec::new();
    for attack in ATTACKS.iter().copied().chain(["/cart.php?a=1"]) {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("redirect_to", attack)
            .finish();
        let (_, page) = env.sign_in(&query, "ada").await;
        assert_eq!(page.status, StatusCode::FOUND, "{attack:?}: {}", page.body);
        let token_url = page.location.unwrap();
        assert_eq!(token_url.origin(), storefront.origin(), "{attack:?}");
        let landing = landing_of(&token_url);
        let expected = if attack == "/cart.php?a=1" {
            attack
        } else {
            "/account.php"
        };
        if landing != expected {
            failures.push(format!("{attack:?} landed on {landing:?}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
