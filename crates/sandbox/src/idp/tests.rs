//! Tests of the dev IdP over real HTTP, with the `openidconnect` crate as an independent
//! verifier of what it issues.

use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, Nonce, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use url::Url;

use super::*;

const CLIENT_ID: &str = "gateway";
// Characters that RFC 6749 §2.3.1 form-encoding changes, to prove Basic auth decodes them.
const CLIENT_SECRET: &str = "s3cret: &+/%";
const REDIRECT: &str = "http://127.0.0.1:9/oidc/callback";
const DISCOVERY: &str = "/.well-known/openid-configuration";

struct Env {
    idp: DevIdp,
    issuer: Url,
    http: reqwest::Client,
}

fn config(issuer: Url) -> DevIdpConfig {
    DevIdpConfig {
        issuer,
        clients: vec![DevClient {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            redirect_uris: vec![Url::parse(REDIRECT).unwrap()],
            redirect_uri_prefixes: Vec::new(),
        }],
        users: demo_users(),
        email_in_id_token: true,
        send_iss_parameter: true,
    }
}

/// Binds first, then builds the issuer from the bound address, then serves: no port race.
async fn start_with(tweak: impl FnOnce(&mut DevIdpConfig)) -> Env {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let mut cfg = config(issuer.clone());
    tweak(&mut cfg);
    let idp = DevIdp::new(cfg);
    let app = idp.router();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Env { idp, issuer, http }
}

async fn start() -> Env {
    start_with(|_| {}).await
}

fn pkce_pair() -> (String, String) {
    let verifier = format!(
        "v{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

struct Login {
    code: String,
    verifier: String,
    nonce: String,
}

impl Env {
    fn url(&self, path: &str) -> Url {
        self.issuer.join(path).unwrap()
    }

    fn authorize_url(&self, extra: &[(&str, &str)]) -> Url {
        let mut url = self.url("/authorize");
        url.query_pairs_mut().extend_pairs(extra);
        url
    }

    /// A code request of client CLIENT_ID back to `redirect_uri`, with a fresh S256
    /// challenge and the `extra` parameters (scope, state, nonce); the PKCE verifier.
    fn code_request(&self, redirect_uri: &str, extra: &[(&str, &str)]) -> (Url, String) {
        let (verifier, challenge) = pkce_pair();
        let mut url = self.authorize_url(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", redirect_uri),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ]);
        url.query_pairs_mut().extend_pairs(extra);
        (url, verifier)
    }

    /// `GET url`, as JSON.
    async fn get_json(&self, url: Url) -> Value {
        let response = self.http.get(url).send().await.unwrap();
        response.json().await.unwrap()
    }

    /// The discovery document.
    async fn discovery(&self) -> Value {
        self.get_json(self.url(DISCOVERY)).await
    }

    /// The discovery document while the IdP misbehaves in way `m`.
    async fn discovery_as(&self, m: Misbehaviour) -> Value {
        self.idp.set_misbehaviour(m);
        self.discovery().await
    }

    /// `GET /userinfo` with `access_token` as bearer (none: no Authorization header).
    async fn userinfo(&self, access_token: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(self.url("/userinfo"));
        if let Some(token) = access_token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    /// The dev IdP's demo users, changed by `edit`, from now on.
    fn edit_users(&self, edit: impl FnOnce(&mut Vec<DevUser>)) {
        let mut users = demo_users();
        edit(&mut users);
        self.idp.set_users(users);
    }

    /// GET /authorize and return the pending request id from the sign-in page.
    async fn open_sign_in(&self, url: Url) -> String {
        let page = self.http.get(url).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        let marker = "name=\"request\" value=\"";
        let start = html.find(marker).expect("request id on the page") + marker.len();
        html[start..].split('"').next().unwrap().to_owned()
    }

    async fn decide(&self, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.url("/authorize/decision"))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Authorize + pick `user`; returns the code and what the client kept.
    async fn login(&self, user: &str, scope: &str) -> Login {
        let nonce = format!("n-{}", uuid::Uuid::new_v4().simple());
        let state = format!("s-{}", uuid::Uuid::new_v4().simple());
        let extra = [("scope", scope), ("state", &state), ("nonce", &nonce)];
        let (url, verifier) = self.code_request(REDIRECT, &extra);
        let request = self.open_sign_in(url).await;
        let response = self.decide(&[("request", &request), ("user", user)]).await;
        let query = callback_query(&response);
        assert_eq!(query.get("state"), Some(&state));
        assert_eq!(
            query.get("iss").map(String::as_str),
            Some(self.idp.issuer())
        );
        Login {
            code: query["code"].clone(),
            verifier,
            nonce,
        }
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> reqwest::Response {
        self.token_request_as(Some(CLIENT_SECRET), form).await
    }

    /// POST /token with `form`, with client_secret_basic as CLIENT_ID with `secret` (none:
    /// no Authorization header).
    async fn token_request_as(
        &self,
        secret: Option<&str>,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.http.post(self.url("/token")).form(form);
        if let Some(secret) = secret {
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let basic = STANDARD.encode(format!("{}:{}", enc(CLIENT_ID), enc(secret)));
            request = request.header("Authorization", format!("Basic {basic}"));
        }
        request.send().await.unwrap()
    }

    async fn exchange(&self, login: &Login) -> reqwest::Response {
        self.token_request(&code_grant(login)).await
    }

    /// A full login as ada; the token response JSON.
    async fn tokens(&self) -> (Login, Value) {
        let login = self.login("ada", "openid email profile groups").await;
        let response = self.exchange(&login).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.json().await.unwrap();
        (login, body)
    }

    async fn id_token(&self) -> (Login, String) {
        let (login, body) = self.tokens().await;
        (login, body["id_token"].as_str().unwrap().to_owned())
    }

    async fn oidc_client(
        &self,
    ) -> CoreClient<
        EndpointSet,
        EndpointNotSet,
        EndpointNotSet,
        EndpointNotSet,
        EndpointMaybeSet,
        EndpointMaybeSet,
    > {
        let issuer = IssuerUrl::new(self.idp.issuer().to_owned()).unwrap();
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .unwrap();
        CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(CLIENT_ID.into()),
            Some(ClientSecret::new(CLIENT_SECRET.into())),
        )
        .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap())
    }

    /// Verifies `token` the way a careful relying party would, with a freshly fetched JWKS,
    /// against the nonce `login` sent.
    async fn verify_independently(&self, login: &Login, token: &str) -> Result<(), String> {
        let client = self.oidc_client().await;
        let id_token = CoreIdToken::from_str(token).map_err(|e| e.to_string())?;
        id_token
            .claims(
                &client.id_token_verifier(),
                &Nonce::new(login.nonce.clone()),
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// An ID token of the IdP's as it misbehaves in way `m`, and whether a careful relying
    /// party accepts it.
    async fn verified_id_token(&self, m: Misbehaviour) -> (String, Result<(), String>) {
        self.idp.set_misbehaviour(m);
        let (login, token) = self.id_token().await;
        let verified = self.verify_independently(&login, &token).await;
        (token, verified)
    }
}

/// The token request form that redeems `login`'s code, as the client would send it.
fn code_grant(login: &Login) -> Vec<(&'static str, &str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("code", &login.code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", &login.verifier),
    ]
}

/// The `error` of an OAuth error answer.
async fn oauth_error(response: reqwest::Response) -> Value {
    let body: Value = response.json().await.unwrap();
    body["error"].clone()
}

/// `response` is an OAuth error answer with `status` and `error`.
async fn assert_oauth_error(response: reqwest::Response, status: StatusCode, error: &str) {
    assert_eq!(response.status(), status);
    assert_eq!(oauth_error(response).await, error);
}

fn callback_query(response: &reqwest::Response) -> HashMap<String, String> {
    assert_eq!(
        response.status(),
        StatusCode::FOUND,
        "expected a 302 to the client"
    );
    let location = Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(REDIRECT), "{location}");
    location.query_pairs().into_owned().collect()
}

fn decode(token: &str) -> (Value, Value, String) {
    let mut parts = token.split('.');
    let mut json =
        || serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap();
    let header = json();
    let payload = json();
    (header, payload, parts.next().unwrap().to_owned())
}

#[tokio::test]
async fn discovery_document_lists_endpoints_and_capabilities() {
    let env = start().await;
    let doc = env.discovery().await;
    let issuer = env.idp.issuer();
    assert!(!issuer.ends_with('/'));
    for (field, expected) in [
        ("issuer", json!(issuer)),
        (
            "authorization_endpoint",
            json!(format!("{issuer}/authorize")),
        ),
        ("token_endpoint", json!(format!("{issuer}/token"))),
        ("userinfo_endpoint", json!(format!("{issuer}/userinfo"))),
        ("jwks_uri", json!(format!("{issuer}/jwks"))),
        ("response_types_supported", json!(["code"])),
        ("subject_types_supported", json!(["public"])),
        ("id_token_signing_alg_values_supported", json!(["RS256"])),
        ("code_challenge_methods_supported", json!(["S256"])),
        ("grant_types_supported", json!(["authorization_code"])),
        (
            "token_endpoint_auth_methods_supported",
            json!(["client_secret_basic", "client_secret_post"]),
        ),
        (
            "scopes_supported",
            json!(["openid", "email", "profile", "groups"]),
        ),
    ] {
        assert_eq!(doc[field], expected, "{field}");
    }
    assert!(
        doc["claims_supported"]
            .as_array()
            .unwrap()
            .contains(&"email_verified".into())
    );
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);

    let quiet = start_with(|c| c.send_iss_parameter = false).await;
    let doc = quiet.discovery().await;
    assert!(
        doc.get("authorization_response_iss_parameter_supported")
            .is_none()
    );
}

#[tokio::test]
async fn full_code_flow_verified_by_openidconnect_crate() {
    let env = start().await;
    let client = env.oidc_client().await;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    let request = env.open_sign_in(auth_url).await;
    let query = callback_query(&env.decide(&[("request", &request), ("user", "ada")]).await);
    assert_eq!(&query["state"], csrf.secret());

    // openidconnect authenticates with client_secret_basic, form-encoding the secret.
    let tokens = client
        .exchange_code(AuthorizationCode::new(query["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&env.http)
        .await
        .unwrap();
    let id_token = tokens.id_token().expect("id_token");
    let claims = id_token
        .claims(&client.id_token_verifier(), &nonce)
        .unwrap();
    assert_eq!(claims.subject().as_str(), "ada");
    assert_eq!(claims.email().unwrap().as_str(), "ada@example.com");
    assert_eq!(claims.email_verified(), Some(true));
    assert_eq!(claims.issuer().as_str(), env.idp.issuer());
    let (header, payload, _) = decode(&id_token.to_string());
    assert_eq!(header["kid"], env.idp.current_kid());
    assert_eq!(payload["azp"], CLIENT_ID);
    assert!(payload["auth_time"].is_i64());
    assert!(
        payload.get("groups").is_none(),
        "groups scope was not requested"
    );
    assert_eq!(env.idp.token_request_count(), 1);
    assert!(env.idp.jwks_fetch_count() >= 1);
}

#[tokio::test]
async fn client_secret_post_is_accepted_and_scope_echoed() {
    let env = start().await;
    let login = env.login("grace", "openid email").await;
    let mut form = code_grant(&login);
    form.extend([("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)]);
    let response = env.token_request_as(None, &form).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], "openid email");
    let (_, payload, _) = decode(body["id_token"].as_str().unwrap());
    assert_eq!(payload["email"], "grace@example.com");
    assert_eq!(payload["nonce"], login.nonce.as_str());
    assert!(
        payload.get("name").is_none(),
        "profile scope was not requested"
    );
}

#[tokio::test]
async fn wrong_client_secret_is_invalid_client() {
    let env = start().await;
    let login = env.login("ada", "openid").await;
    let response = env
        .token_request_as(Some("nope"), &code_grant(&login))
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key("www-authenticate"));
    assert_eq!(oauth_error(response).await, "invalid_client");
}

#[tokio::test]
async fn wrong_pkce_verifier_is_invalid_grant() {
    let env = start().await;
    let mut login = env.login("ada", "openid").await;
    login.verifier = pkce_pair().0;
    let response = env.exchange(&login).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert!(body["error_description"].is_string());
}

#[tokio::test]
async fn code_reuse_is_invalid_grant() {
    let env = start().await;
    let login = env.login("ada", "openid").await;
    assert_eq!(env.exchange(&login).await.status(), StatusCode::OK);
    let again = env.exchange(&login).await;
    assert_oauth_error(again, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn token_redirect_uri_mismatch_is_invalid_grant() {
    let env = start().await;
    let login = env.login("ada", "openid").await;
    let mut form = code_grant(&login);
    form[2] = ("redirect_uri", "http://127.0.0.1:9/other");
    let response = env.token_request(&form).await;
    assert_eq!(oauth_error(response).await, "invalid_grant");
}

#[tokio::test]
async fn unregistered_redirect_uri_shows_error_page_and_never_redirects() {
    let env = start().await;
    for redirect in [
        "http://evil.example/cb",
        "http://127.0.0.1:9/oidc/callback/x",
        "",
    ] {
        let (url, _) = env.code_request(redirect, &[("scope", "openid"), ("state", "st")]);
        let response = env.http.get(url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(response.headers().get("location").is_none());
        assert!(response.text().await.unwrap().contains("redirect_uri"));
    }
}

#[tokio::test]
async fn plain_or_missing_pkce_redirects_with_invalid_request() {
    let env = start().await;
    for (method, challenge) in [(Some("plain"), "abc"), (None, "abc"), (Some("S256"), "")] {
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT),
            ("scope", "openid"),
            ("state", "st-1"),
        ];
        if !challenge.is_empty() {
            params.push(("code_challenge", challenge));
        }
        if let Some(m) = method {
            params.push(("code_challenge_method", m));
        }
        let response = env
            .http
            .get(env.authorize_url(&params))
            .send()
            .await
            .unwrap();
        let query = callback_query(&response);
        assert_eq!(query["error"], "invalid_request", "{method:?}");
        assert_eq!(query["state"], "st-1");
        assert!(!query.contains_key("code"));
    }
}

#[tokio::test]
async fn cancel_returns_access_denied_and_request_is_single_use() {
    let env = start().await;
    let (url, _) = env.code_request(REDIRECT, &[("scope", "openid"), ("state", "st-2")]);
    let request = env.open_sign_in(url).await;
    let query = callback_query(&env.decide(&[("request", &request), ("cancel", "1")]).await);
    assert_eq!(query["error"], "access_denied");
    assert_eq!(query["state"], "st-2");
    let again = env.decide(&[("request", &request), ("user", "ada")]).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert!(again.headers().get("location").is_none());
}

#[tokio::test]
async fn sign_in_page_lists_users_and_escapes_claims() {
    let env = start().await;
    env.edit_users(|users| users[0].name = Some("<script>alert(1)</script>".into()));
    let (url, _) = env.code_request(REDIRECT, &[("scope", "openid")]);
    let html = env.http.get(url).send().await.unwrap().text().await;
    let html = html.unwrap();
    assert!(html.contains("<title>Dev identity provider</title>"));
    assert!(html.contains("development identity provider"));
    assert!(html.contains("grace@example.com"));
    assert!(html.contains("oscar@other.test"));
    assert!(!html.contains("<script>alert(1)"));
    assert!(html.contains("alert(1)"), "the name is shown, escaped");
    assert_eq!(
        html.matches("action=\"/authorize/decision\"").count(),
        demo_users().len() + 1
    );
}

#[tokio::test]
async fn login_hint_naming_a_user_narrows_the_page_to_them() {
    let env = start().await;
    let page = |hint: &'static str| {
        let (url, _) = env.code_request(REDIRECT, &[("scope", "openid"), ("login_hint", hint)]);
        let http = env.http.clone();
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };
    for hint in ["grace", "grace@example.com"] {
        let html = page(hint).await;
        assert!(html.contains("grace@example.com"), "{html}");
        assert!(!html.contains("ada@example.com"), "{html}");
    }
    // A hint naming nobody shows everyone, as without one.
    let html = page("nobody@example.com").await;
    assert_eq!(
        html.matches("action=\"/authorize/decision\"").count(),
        demo_users().len() + 1
    );
}

/// Checks (header, payload, signature) of one tampered token.
type ShapeCheck = Box<dyn Fn(&Value, &Value, &str)>;

#[tokio::test]
async fn id_token_misbehaviours_have_the_intended_shape() {
    let env = start().await;
    let (_, honest) = env.id_token().await;
    let (h0, p0, s0) = decode(&honest);
    assert_eq!(h0["alg"], "RS256");
    let now = p0["iat"].as_i64().unwrap();
    assert_eq!(p0["exp"].as_i64().unwrap(), now + 300);

    let cases: Vec<(Misbehaviour, ShapeCheck)> = vec![
        (
            Misbehaviour::BadSignature,
            Box::new(move |h, p, s| {
                assert_eq!(h["alg"], "RS256");
                assert_eq!(p["sub"], "ada");
                assert_eq!(s.len(), s0.len());
            }),
        ),
        (
            Misbehaviour::AlgNone,
            Box::new(|h, _, s| {
                assert_eq!(h["alg"], "none");
                assert!(s.is_empty());
            }),
        ),
        (
            Misbehaviour::Hs256WithPublicKey,
            Box::new(|h, _, _| assert_eq!(h["alg"], "HS256")),
        ),
        (
            Misbehaviour::WrongIssuer,
            Box::new(|_, p, _| assert_eq!(p["iss"], "https://wrong-issuer.example")),
        ),
        (
            Misbehaviour::MissingIssuer,
            Box::new(|_, p, _| assert!(p.get("iss").is_none())),
        ),
        (
            Misbehaviour::WrongAudience,
            Box::new(|_, p, _| {
                assert_eq!(p["aud"], "someone-else");
                assert_eq!(p["azp"], CLIENT_ID);
            }),
        ),
        (
            Misbehaviour::MissingAudience,
            Box::new(|_, p, _| assert!(p.get("aud").is_none())),
        ),
        (
            Misbehaviour::ExtraAudienceNoAzp,
            Box::new(|_, p, _| {
                assert_eq!(p["aud"], serde_json::json!([CLIENT_ID, "someone-else"]));
                assert!(p.get("azp").is_none());
            }),
        ),
        (
            Misbehaviour::WrongAzp,
            Box::new(|_, p, _| {
                assert_eq!(p["aud"], CLIENT_ID);
                assert_eq!(p["azp"], "someone-else");
            }),
        ),
        (
            Misbehaviour::MissingSub,
            Box::new(|_, p, _| assert!(p.get("sub").is_none())),
        ),
        (
            Misbehaviour::MissingIat,
            Box::new(|_, p, _| assert!(p.get("iat").is_none())),
        ),
        (
            Misbehaviour::IatInFuture,
            Box::new(move |_, p, _| {
                assert!(p["iat"].as_i64().unwrap() >= now + 590);
                assert!(p["exp"].as_i64().unwrap() > p["iat"].as_i64().unwrap());
            }),
        ),
        (
            Misbehaviour::Expired,
            Box::new(move |_, p, _| {
                assert!(p["exp"].as_i64().unwrap() <= now - 590);
                assert!(p["iat"].as_i64().unwrap() < p["exp"].as_i64().unwrap());
            }),
        ),
        (
            Misbehaviour::MissingExp,
            Box::new(|_, p, _| assert!(p.get("exp").is_none())),
        ),
        (
            Misbehaviour::MissingNonce,
            Box::new(|_, p, _| assert!(p.get("nonce").is_none())),
        ),
        (
            Misbehaviour::NoKid,
            Box::new(|h, _, _| {
                assert_eq!(h["alg"], "RS256");
                assert!(h.get("kid").is_none());
            }),
        ),
    ];
    for (misbehaviour, check) in cases {
        env.idp.set_misbehaviour(misbehaviour.clone());
        let (_, token) = env.id_token().await;
        let (h, p, s) = decode(&token);
        check(&h, &p, &s);
        // Everything not under test stays honest.
        if misbehaviour != Misbehaviour::MissingSub {
            assert_eq!(p["sub"], "ada", "{misbehaviour:?}");
        }
    }

    env.idp.set_misbehaviour(Misbehaviour::WrongNonce);
    let (login, token) = env.id_token().await;
    let (_, p, _) = decode(&token);
    assert!(p["nonce"].is_string());
    assert_ne!(p["nonce"], login.nonce.as_str());

    env.idp.set_misbehaviour(Misbehaviour::UnknownKid);
    let (_, token) = env.id_token().await;
    let (h, _, _) = decode(&token);
    let jwks = env.get_json(env.url("/jwks")).await;
    let kids: Vec<&Value> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["kid"])
        .collect();
    assert_eq!(kids, vec![&Value::from(env.idp.current_kid())]);
    assert!(!kids.contains(&&h["kid"]));
}

#[tokio::test]
async fn tampered_tokens_fail_independent_verification_and_honest_ones_pass() {
    let env = start().await;
    let (_, honest) = env.verified_id_token(Misbehaviour::None).await;
    honest.unwrap();

    // rp-id_token-kid-absent-single-jwks: still validly signed by the one key.
    let (_, no_kid) = env.verified_id_token(Misbehaviour::NoKid).await;
    no_kid.unwrap();

    for misbehaviour in [
        Misbehaviour::BadSignature,
        Misbehaviour::AlgNone,
        Misbehaviour::Hs256WithPublicKey,
        Misbehaviour::WrongIssuer,
        Misbehaviour::WrongAudience,
        Misbehaviour::ExtraAudienceNoAzp,
        // Not WrongAzp: openidconnect 4.1 does not check azp (its check is commented out in
        // verification/mod.rs), so the gateway must check it itself (SECURITY.md rule 9).
        Misbehaviour::Expired,
        Misbehaviour::WrongNonce,
        Misbehaviour::MissingNonce,
        Misbehaviour::UnknownKid,
    ] {
        let (_, result) = env.verified_id_token(misbehaviour.clone()).await;
        assert!(result.is_err(), "{misbehaviour:?} was accepted");
    }
}

#[tokio::test]
async fn hs256_token_is_really_keyed_with_the_public_key_pem() {
    let env = start().await;
    env.idp.set_misbehaviour(Misbehaviour::Hs256WithPublicKey);
    let (_, token) = env.id_token().await;
    let pem = env.idp.public_key_pem();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    let key = jsonwebtoken::DecodingKey::from_secret(pem.as_bytes());
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&[CLIENT_ID]);
    let data = jsonwebtoken::decode::<Value>(&token, &key, &validation).unwrap();
    assert_eq!(data.claims["sub"], "ada");
}

#[tokio::test]
async fn no_id_token_misbehaviour_omits_it() {
    let env = start().await;
    env.idp.set_misbehaviour(Misbehaviour::NoIdToken);
    let (_, body) = env.tokens().await;
    assert!(body.get("id_token").is_none());
    assert!(body["access_token"].is_string());
}

#[tokio::test]
async fn rotate_key_replaces_the_jwks_key_and_extra_key_adds_one() {
    let env = start().await;
    let fetch = || async {
        let jwks = env.get_json(env.url("/jwks")).await;
        jwks["keys"].as_array().unwrap().clone()
    };
    let before = fetch().await;
    assert_eq!(before.len(), 1);
    let key = &before[0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["e"], "AQAB");
    assert!(!key["n"].as_str().unwrap().contains('='));

    env.idp.add_extra_jwks_key();
    let two = fetch().await;
    assert_eq!(two.len(), 2);
    assert_ne!(
        two[0]["n"], two[1]["n"],
        "the extra key is a different key pair"
    );

    env.idp.rotate_key();
    let after = fetch().await;
    assert_eq!(after.len(), 1);
    assert_ne!(after[0]["kid"], before[0]["kid"]);
    assert_ne!(after[0]["n"], before[0]["n"]);
    assert_eq!(after[0]["kid"], env.idp.current_kid());
    assert_eq!(env.idp.jwks_fetch_count(), 3);

    // rp-key-rotation-op-sign-key: new tokens carry the new kid and verify against it.
    let (token, verified) = env.verified_id_token(Misbehaviour::None).await;
    assert_eq!(decode(&token).0["kid"], after[0]["kid"]);
    verified.unwrap();
}

#[tokio::test]
async fn two_live_idps_never_share_a_key_pair() {
    let a = start().await;
    let b = start().await;
    assert_ne!(a.idp.public_key_pem(), b.idp.public_key_pem());
    assert_ne!(a.idp.current_kid(), b.idp.current_kid());
}

#[tokio::test]
async fn userinfo_returns_claims_and_rejects_bad_tokens() {
    let env = start_with(|c| c.email_in_id_token = false).await;
    let (_, body) = env.tokens().await;
    let (_, payload, _) = decode(body["id_token"].as_str().unwrap());
    assert!(
        payload.get("email").is_none(),
        "email only through userinfo"
    );
    assert!(payload.get("name").is_none());
    let access = body["access_token"].as_str().unwrap();

    let info: Value = env.userinfo(Some(access)).await.json().await.unwrap();
    assert_eq!(info["sub"], "ada");
    assert_eq!(info["email"], "ada@example.com");
    assert_eq!(info["email_verified"], true);
    assert_eq!(info["given_name"], "Ada");
    assert_eq!(info["groups"], serde_json::json!(["engineering", "admins"]));

    let bad = env.userinfo(Some("nope")).await;
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    let challenge = bad.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    let none = env.userinfo(None).await;
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert!(none.headers().contains_key("www-authenticate"));

    env.idp.set_misbehaviour(Misbehaviour::UserinfoWrongSub);
    let info: Value = env.userinfo(Some(access)).await.json().await.unwrap();
    assert_ne!(info["sub"], "ada");
    assert_eq!(info["email"], "ada@example.com");
}

#[tokio::test]
async fn email_verified_is_passed_on_as_given() {
    let env = start().await;
    env.edit_users(|users| {
        users[0].email_verified = Some("false".into());
        users[1].email_verified = None;
    });
    let (_, token) = env.id_token().await;
    assert_eq!(decode(&token).1["email_verified"], "false");
    let login = env.login("grace", "openid email").await;
    let body: Value = env.exchange(&login).await.json().await.unwrap();
    let (_, payload, _) = decode(body["id_token"].as_str().unwrap());
    assert_eq!(payload["email"], "grace@example.com");
    assert!(payload.get("email_verified").is_none());
}

#[tokio::test]
async fn set_users_changes_the_next_token() {
    let env = start().await;
    env.edit_users(|users| users[0].email = Some("ada.new@example.com".into()));
    let (_, token) = env.id_token().await;
    let payload = decode(&token).1;
    assert_eq!(payload["sub"], "ada");
    assert_eq!(payload["email"], "ada.new@example.com");
}

#[tokio::test]
async fn token_endpoint_forced_status_and_hang() {
    let env = start().await;
    let login = env.login("ada", "openid").await;
    env.idp
        .set_misbehaviour(Misbehaviour::TokenEndpointStatus(500));
    let response = env.exchange(&login).await;
    assert_oauth_error(response, StatusCode::INTERNAL_SERVER_ERROR, "server_error").await;
    env.idp
        .set_misbehaviour(Misbehaviour::TokenEndpointStatus(400));
    assert_eq!(env.exchange(&login).await.status(), StatusCode::BAD_REQUEST);

    env.idp.set_misbehaviour(Misbehaviour::TokenEndpointHang);
    let hung = env
        .http
        .post(env.url("/token"))
        .timeout(std::time::Duration::from_millis(300))
        .form(&[("grant_type", "authorization_code")])
        .send()
        .await;
    assert!(hung.unwrap_err().is_timeout());
    assert_eq!(env.idp.token_request_count(), 3);

    // The code was not consumed by the forced failures.
    env.idp.set_misbehaviour(Misbehaviour::None);
    assert_eq!(env.exchange(&login).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn discovery_wrong_issuer_and_jwks_down() {
    let env = start().await;
    let doc = env.discovery_as(Misbehaviour::DiscoveryWrongIssuer).await;
    assert_ne!(doc["issuer"], env.idp.issuer());
    assert_eq!(doc["jwks_uri"], format!("{}/jwks", env.idp.issuer()));
    let issuer = IssuerUrl::new(env.idp.issuer().to_owned()).unwrap();
    assert!(
        CoreProviderMetadata::discover_async(issuer, &env.http)
            .await
            .is_err()
    );

    env.idp.set_misbehaviour(Misbehaviour::JwksDown);
    let response = env.http.get(env.url("/jwks")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(env.idp.jwks_fetch_count(), 1);
}

#[tokio::test]
async fn authorize_error_and_wrong_iss_parameter() {
    let env = start().await;
    let (url, _) = env.code_request(REDIRECT, &[("scope", "openid"), ("state", "st-3")]);
    env.idp
        .set_misbehaviour(Misbehaviour::AuthorizeError("access_denied".into()));
    let query = callback_query(&env.http.get(url.clone()).send().await.unwrap());
    assert_eq!(query["error"], "access_denied");
    assert_eq!(query["state"], "st-3");

    env.idp.set_misbehaviour(Misbehaviour::IssParameterWrong);
    let request = env.open_sign_in(url).await;
    let query = callback_query(&env.decide(&[("request", &request), ("user", "ada")]).await);
    assert!(query.contains_key("code"));
    assert_ne!(query["iss"], env.idp.issuer());
}

#[tokio::test]
async fn no_iss_parameter_unless_configured() {
    let env = start_with(|c| c.send_iss_parameter = false).await;
    let (url, _) = env.code_request(REDIRECT, &[("scope", "openid")]);
    let request = env.open_sign_in(url).await;
    let query = callback_query(&env.decide(&[("request", &request), ("user", "ada")]).await);
    assert!(query.contains_key("code"));
    assert!(!query.contains_key("iss"));
    assert!(!query.contains_key("state"), "no state sent, none echoed");
}

#[test]
fn load_users_reads_toml_and_names_the_file_on_errors() {
    let dir = std::env::temp_dir().join(format!("devidp-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("users.toml");
    std::fs::write(
        &good,
        r#"
[[users]]
sub = "ada"
email = "ada@example.com"
email_verified = true
groups = ["eng"]

[[users]]
sub = "mallory"
email = "mallory@example.com"
email_verified = "false"
"#,
    )
    .unwrap();
    let users = load_users(&good).unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(users[0].email_verified, Some(Value::Bool(true)));
    assert_eq!(users[1].email_verified, Some(Value::String("false".into())));
    assert!(users[1].groups.is_empty());

    let typo = dir.join("typo.toml");
    std::fs::write(&typo, "[[users]]\nsub = \"a\"\nemail_verfied = true\n").unwrap();
    let err = load_users(&typo).unwrap_err().to_string();
    assert!(err.contains("typo.toml"), "{err}");

    let odd = dir.join("odd.toml");
    std::fs::write(&odd, "[[users]]\nsub = \"a\"\nemail_verified = \"yes\"\n").unwrap();
    let err = load_users(&odd).unwrap_err().to_string();
    assert!(
        err.contains("odd.toml") && err.contains("email_verified"),
        "{err}"
    );

    let missing = dir.join("missing.toml");
    assert!(
        load_users(&missing)
            .unwrap_err()
            .to_string()
            .contains("missing.toml")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn demo_users_cover_the_interesting_cases() {
    let users = demo_users();
    let email = |sub: &str| users.iter().find(|u| u.sub == sub).unwrap();
    assert_eq!(email("ada").email_verified, Some(Value::Bool(true)));
    assert_eq!(email("eve").email_verified, Some(Value::Bool(false)));
    assert!(
        email("oscar")
            .email
            .as_deref()
            .unwrap()
            .ends_with("@other.test")
    );
}

#[test]
fn pkce_s256_matches_an_independently_computed_challenge() {
    // Challenge computed with Python's hashlib + base64.urlsafe_b64encode, padding dropped.
    let verifier = "dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc";
    assert!(token::pkce_s256_matches(verifier, challenge));
    assert!(!token::pkce_s256_matches(challenge, challenge));
    assert!(!token::pkce_s256_matches("short", challenge));
}

#[test]
fn issuer_with_a_path_is_refused() {
    let mut cfg = config(Url::parse("http://127.0.0.1:1/tenant").unwrap());
    cfg.users = vec![];
    assert!(matches!(
        DevIdp::try_new(cfg),
        Err(IdpError::InvalidIssuer { .. })
    ));
}

#[tokio::test]
async fn expired_code_is_invalid_grant() {
    let env = start().await;
    let login = env.login("ada", "openid").await;
    // Age the code instead of sleeping for CODE_TTL.
    if let Some(grant) = env.idp.state().codes.get_mut(&login.code) {
        grant.issued = Instant::now()
            .checked_sub(endpoints::CODE_TTL + std::time::Duration::from_secs(1))
            .unwrap();
    }
    assert_eq!(
        oauth_error(env.exchange(&login).await).await,
        "invalid_grant"
    );
}

#[tokio::test]
async fn repeated_token_parameters_are_invalid_request() {
    let env = start().await;
    let login = env.login("ada", "openid").await;
    let mut form = code_grant(&login);
    form.insert(2, ("code", "other"));
    let response = env.token_request(&form).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
}

/// The misbehaviours added for tests/integration/negative.rs, each changing one thing.
#[tokio::test]
async fn rs512_and_other_tenant_tokens_have_the_intended_shape_and_fail_verification() {
    let env = start().await;
    let (token, verified) = env.verified_id_token(Misbehaviour::Rs512Signature).await;
    let (h, p, _) = decode(&token);
    assert_eq!(h["alg"], "RS512");
    assert_eq!(h["kid"], env.idp.current_kid());
    assert_eq!(p["iss"], env.idp.issuer());
    // A real RS512 signature by the current key, so only the alg allow-list refuses it.
    let jwks = env.get_json(env.url("/jwks")).await;
    let key = &jwks["keys"][0];
    let decoding = jsonwebtoken::DecodingKey::from_rsa_components(
        key["n"].as_str().unwrap(),
        key["e"].as_str().unwrap(),
    )
    .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS512);
    validation.set_audience(&[CLIENT_ID]);
    jsonwebtoken::decode::<Value>(&token, &decoding, &validation).unwrap();
    assert!(verified.is_err());

    let (token, verified) = env.verified_id_token(Misbehaviour::OtherTenant).await;
    let (h, p, _) = decode(&token);
    assert_eq!(h["alg"], "RS256");
    assert_eq!(p["tid"], id_token::OTHER_TENANT);
    assert_eq!(
        p["iss"],
        format!(
            "https://login.microsoftonline.com/{}/v2.0",
            id_token::OTHER_TENANT
        )
    );
    assert_eq!(p["sub"], "ada");
    assert!(verified.is_err());
}

#[tokio::test]
async fn replay_returns_the_last_honest_id_token() {
    let env = start().await;
    // Nothing to replay yet: the token is honest.
    let (_, first) = env.verified_id_token(Misbehaviour::ReplayIdToken).await;
    first.unwrap();

    env.idp.set_misbehaviour(Misbehaviour::None);
    let (_, honest) = env.id_token().await;
    env.idp.set_misbehaviour(Misbehaviour::ReplayIdToken);
    let login = env.login("grace", "openid email").await;
    let body: Value = env.exchange(&login).await.json().await.unwrap();
    assert_eq!(
        body["id_token"],
        honest.as_str(),
        "the earlier token, verbatim"
    );
    assert!(body["access_token"].is_string());
    // Replays are not recorded: the next replay is still the honest one.
    let (_, again) = env.id_token().await;
    assert_eq!(again, honest);
}

#[tokio::test]
async fn discovery_plain_http_and_jwks_uri_on_another_host() {
    let env = start().await;
    let doc = env.discovery_as(Misbehaviour::DiscoveryPlainHttp).await;
    assert_eq!(doc["issuer"], env.idp.issuer());
    for field in [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
    ] {
        let url = Url::parse(doc[field].as_str().unwrap()).unwrap();
        assert_eq!(
            (url.scheme(), url.host_str()),
            ("http", Some(endpoints::PLAIN_HTTP_HOST)),
            "{field}"
        );
    }

    let doc = env.discovery_as(Misbehaviour::JwksUriOtherHost).await;
    let jwks_uri = Url::parse(doc["jwks_uri"].as_str().unwrap()).unwrap();
    assert_eq!(jwks_uri.host_str(), Some("localhost"));
    assert_eq!(jwks_uri.port(), env.issuer.port());
    assert_eq!(doc["token_endpoint"], format!("{}/token", env.idp.issuer()));
    // The same server: the keys are there.
    let jwks = env.get_json(jwks_uri).await;
    assert_eq!(jwks["keys"][0]["kid"], env.idp.current_kid());
}
