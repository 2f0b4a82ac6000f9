//! The test environment: the demo (dev IdP, BigCommerce emulator, gateway) on ephemeral
//! ports, and a cookie-keeping HTTP client that follows redirects by hand, as a browser
//! would, so each hop can be inspected.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use bc_sso_dev::demo::{self, Demo, DemoIdp, DemoOptions};
use bc_sso_gateway::AppState;
use bc_sso_gateway::bigcommerce::wire::CustomerPost;
use bc_sso_gateway::config::{Config, RawConfig};
use bc_sso_sandbox::idp::{DevClient, DevIdp, DevIdpConfig, DevUser};
use reqwest::header::{HeaderMap, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use url::Url;

pub struct Env {
    pub demo: Demo,
    pub browser: reqwest::Client,
    /// Files of this env (an SQLite database replicas share), removed with it.
    scratch: Option<Scratch>,
}

pub struct Page {
    pub status: StatusCode,
    pub location: Option<Url>,
    pub correlation_id: Option<String>,
    pub body: String,
}

impl Page {
    /// Asserts this is a check report (a connection test, the store check) that passed.
    #[track_caller]
    pub fn assert_checks_passed(&self) {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        let passed = "<strong id=\"overall\">ok</strong>";
        assert!(self.body.contains(passed), "{}", self.body);
    }

    /// Asserts this is a form sent back as refused (422), naming each of `reasons`.
    #[track_caller]
    pub fn assert_form_refused(&self, reasons: &[&str]) {
        assert_eq!(
            self.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            self.body
        );
        for reason in reasons {
            assert!(
                self.body.contains(reason),
                "{reason:?} not in: {}",
                self.body
            );
        }
    }

    /// Asserts this is the gateway's error page with `code`, and that the correlation id
    /// on the page is the one in the response header and in a log line with the reason.
    #[track_caller]
    pub fn assert_error(&self, status: StatusCode, code: &str) {
        assert_eq!(
            self.status, status,
            "expected {status} {code}, got page: {}",
            self.body
        );
        assert!(
            self.body
                .contains(&format!("<code id=\"error-code\">{code}</code>")),
            "error code {code} not on page: {}",
            self.body
        );
        let id = self.correlation_id.as_deref().expect("x-request-id header");
        assert!(self.body.contains(id), "correlation id not on the page");
        let lines = log_lines_with(id);
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("\"reason\":\"{code}\""))),
            "no log line with reason {code} for {id}: {lines:#?}"
        );
    }
}

impl Env {
    pub async fn start() -> Env {
        Self::with(DemoOptions::default(), |_| {}).await
    }

    pub async fn with(options: DemoOptions, customize: impl FnOnce(&mut RawConfig)) -> Env {
        init_logs();
        let demo = demo::start(options, |c| {
            use_test_database(c);
            customize(c)
        })
        .await
        .expect("demo starts");
        Env::of(demo)
    }

    /// An env around a demo started elsewhere, with a browser of its own.
    pub fn of(demo: Demo) -> Env {
        Env {
            demo,
            browser: new_browser(),
            scratch: None,
        }
    }

    /// The demo with its config changed by `customize`.
    pub async fn configured(customize: impl FnOnce(&mut RawConfig)) -> Env {
        Self::with(DemoOptions::default(), customize).await
    }

    /// The demo with `channels` storefront channels and its config changed by `customize`.
    pub async fn with_channels(channels: i64, customize: impl FnOnce(&mut RawConfig)) -> Env {
        let options = DemoOptions {
            channels,
            ..DemoOptions::default()
        };
        Self::with(options, customize).await
    }

    /// The demo on a database that another replica (or a restart) can open: the
    /// PostgreSQL of `BCSSO_TEST_DATABASE_URL`, else an SQLite file rather than the default
    /// in-memory one, which lives in one process's pool.
    pub async fn shareable(customize: impl FnOnce(&mut RawConfig)) -> Env {
        let scratch = Scratch::new("shared");
        let url = scratch.sqlite_url();
        let mut env = Self::configured(move |c| {
            if std::env::var("BCSSO_TEST_DATABASE_URL").is_err() {
                c.database.url = Some(url);
            }
            customize(c)
        })
        .await;
        env.scratch = Some(scratch);
        env
    }

    /// A second gateway on this env's config changed by `edit` (the same database and
    /// sessions store, the same clock), with state of its own, served on its own port.
    pub async fn replica(&self, edit: impl FnOnce(&mut Config)) -> (Arc<AppState>, Url) {
        let mut config = self.demo.state.config.clone();
        edit(&mut config);
        let state = Arc::new(
            AppState::connect(config, self.demo.clock.clone())
                .await
                .unwrap(),
        );
        let (listener, url) = listen().await;
        let app = bc_sso_gateway::app(state.clone())
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (state, url)
    }

    /// The demo with the dev IdP's demo users changed by `edit`.
    pub async fn with_users(edit: impl FnOnce(&mut Vec<DevUser>)) -> Env {
        let mut users = bc_sso_sandbox::idp::demo_users();
        edit(&mut users);
        let options = DemoOptions {
            idp: DemoIdp::Dev { users },
            ..Default::default()
        };
        Self::with(options, |_| {}).await
    }

    pub fn idp(&self) -> &DevIdp {
        self.demo.idp.as_ref().expect("dev IdP")
    }

    pub fn gateway(&self, path_and_query: &str) -> Url {
        self.demo.gateway_url.join(path_and_query).unwrap()
    }

    pub fn storefront(&self, channel: usize, path: &str) -> Url {
        self.demo.storefront_urls[channel - 1].join(path).unwrap()
    }

    pub async fn get(&self, url: &Url) -> Page {
        fetch(&self.browser, url.clone()).await
    }

    /// `path` of the gateway, from the env's browser.
    pub async fn open(&self, path: &str) -> Page {
        self.get(&self.gateway(path)).await
    }

    /// `path` of the gateway, as each of `cases` is `(path, status, error code)`: every one
    /// is the gateway's error page with that status and code.
    pub async fn assert_errors(&self, cases: &[(&str, StatusCode, &str)]) {
        for (path, status, code) in cases {
            self.open(path).await.assert_error(*status, code);
        }
    }

    /// Posts `form` to `path` of the gateway from the env's browser (the admin's, once
    /// signed in).
    pub async fn post<K: AsRef<str>, V: AsRef<str>>(&self, path: &str, form: &[(K, V)]) -> Page {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect();
        let response = self.request(Method::POST, path).form(&form).send().await;
        page_of(response.unwrap()).await
    }

    /// A request to `path` of the gateway from the env's browser.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.browser.request(method, self.gateway(path))
    }

    /// The bootstrap admin token of the config.
    pub fn admin_token(&self) -> String {
        let token = self.demo.state.config.admin_token.as_ref().unwrap();
        token.expose().to_owned()
    }

    /// A request to the admin API with the admin token, as automation calls it.
    pub fn api(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.request(method, path).bearer_auth(self.admin_token())
    }

    /// An admin API call with `body` as JSON; the status and the JSON answer (null when
    /// there is none).
    pub async fn api_call(&self, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self.api(method, path).json(&body).send().await.unwrap();
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    /// `GET path` of the admin API; the JSON answer.
    pub async fn api_get(&self, path: &str) -> Value {
        let response = self.api(Method::GET, path).send().await.unwrap();
        response.json().await.unwrap()
    }

    /// Signs the env's browser in to the console with the admin token; returns the
    /// session's CSRF token.
    pub async fn admin_sign_in(&self) -> String {
        let login = self.open("/admin/login").await;
        assert_eq!(login.status, StatusCode::OK);
        let csrf = hidden_value(&login.body, "csrf").unwrap();
        let form = [("token", self.admin_token()), ("csrf", csrf)];
        let response = self.request(Method::POST, "/admin/login").form(&form);
        let response = response.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let cookie = response.headers()["set-cookie"].to_str().unwrap();
        for attribute in ["bcsso-admin=", "HttpOnly", "SameSite=Lax", "Path=/admin"] {
            assert!(
                cookie.contains(attribute),
                "{attribute} missing in {cookie}"
            );
        }
        let overview = self.open("/admin").await;
        assert_eq!(overview.status, StatusCode::OK, "{}", overview.body);
        hidden_value(&overview.body, "csrf").unwrap()
    }

    /// Creates connection `id` owning `domain` at the demo's dev IdP through the admin API.
    pub async fn create_connection(&self, id: &str, domain: &str) {
        let issuer = self.demo.state.config.connections[0].issuer.as_str();
        let connection = connection_json(id, issuer, domain);
        let path = "/admin/api/connections";
        let (status, answer) = self.api_call(Method::POST, path, connection).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }

    /// Starts the console's SSO sign-in in `browser` and signs in at the IdP as `sub`;
    /// returns the admin callback URL.
    pub async fn admin_sso_callback(&self, browser: &reqwest::Client, sub: &str) -> Url {
        let start = fetch(browser, self.gateway("/admin/sso")).await;
        assert_eq!(start.status, StatusCode::FOUND, "{}", start.body);
        let callback = pick_at(browser, &start.location.unwrap(), sub).await;
        assert_eq!(callback.path(), "/admin/oidc/callback");
        callback
    }

    /// A customer registered on the storefront before any sign-in; its id.
    pub fn seed_customer(&self, email: &str, channel_ids: Option<Vec<i64>>) -> i64 {
        let customer = CustomerPost {
            email: email.into(),
            first_name: "Seeded".into(),
            last_name: "Customer".into(),
            company: None,
            customer_group_id: None,
            origin_channel_id: None,
            channel_ids,
            trigger_account_created_notification: None,
        };
        self.demo.emulator.seed_customer(customer).id
    }

    /// `/login?…` → the IdP's authorize URL.
    pub async fn begin(&self, query: &str) -> Url {
        self.begin_with(&self.browser, query).await
    }

    pub async fn begin_with(&self, browser: &reqwest::Client, query: &str) -> Url {
        let url = self.gateway(&format!("/login?{query}"));
        let page = fetch(browser, url).await;
        assert_eq!(
            page.status,
            StatusCode::FOUND,
            "login did not redirect: {}",
            page.body
        );
        let url = page.location.unwrap();
        assert!(
            url.as_str().starts_with(self.demo.idp_url.as_str()),
            "{url}"
        );
        url
    }

    /// At the dev IdP's sign-in page, picks user `sub`; returns the callback URL.
    pub async fn pick_user(&self, authorize_url: &Url, sub: &str) -> Url {
        pick_at(&self.browser, authorize_url, sub).await
    }

    /// Starts a sign-in with `query` in `browser` and signs in at the IdP as `sub`;
    /// returns the callback URL, not yet opened.
    pub async fn callback_with(&self, browser: &reqwest::Client, query: &str, sub: &str) -> Url {
        let authorize = self.begin_with(browser, query).await;
        pick_at(browser, &authorize, sub).await
    }

    /// [`Env::callback_with`] in the env's browser.
    pub async fn callback(&self, query: &str, sub: &str) -> Url {
        self.callback_with(&self.browser, query, sub).await
    }

    /// Starts a sign-in with `query` and signs in at the IdP as `sub`; returns the
    /// gateway's answer to the callback.
    pub async fn sign_in(&self, query: &str, sub: &str) -> (Url, Page) {
        self.sign_in_with(&self.browser, query, sub).await
    }

    /// [`Env::sign_in`] from another browser (its own cookies).
    pub async fn sign_in_with(
        &self,
        browser: &reqwest::Client,
        query: &str,
        sub: &str,
    ) -> (Url, Page) {
        let callback = self.callback_with(browser, query, sub).await;
        let mut page = fetch(browser, callback.clone()).await;
        // A first sign-in that outlasts the callback shows the waiting page, which a
        // browser refreshes until the outcome is there (`waiting.rs`).
        for _ in 0..300 {
            let Some(next) = meta_refresh(&page) else {
                break;
            };
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            page = fetch(browser, callback.join(&next).unwrap()).await;
        }
        (callback, page)
    }

    /// [`Env::sign_in`] that must succeed; returns the storefront's login token URL the
    /// gateway redirected to.
    pub async fn signed_in(&self, query: &str, sub: &str) -> Url {
        let (_, page) = self.sign_in(query, sub).await;
        assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
        page.location.unwrap()
    }

    /// [`Env::sign_in`] that must end on the error page with `status` and `code`.
    pub async fn refused(&self, query: &str, sub: &str, status: StatusCode, code: &str) -> Page {
        let (_, page) = self.sign_in(query, sub).await;
        page.assert_error(status, code);
        page
    }

    /// Follows the storefront redirect chain from a `/login/token/<jwt>` URL to the final page.
    pub async fn follow(&self, mut url: Url) -> (Url, Page) {
        for _ in 0..5 {
            let page = self.get(&url).await;
            match page.location.clone() {
                Some(next) if page.status.is_redirection() => url = next,
                _ => return (url, page),
            }
        }
        panic!("redirect loop at {url}");
    }
}

/// The suite runs on the demo's SQLite in memory, or on the PostgreSQL that
/// `BCSSO_TEST_DATABASE_URL` names (scripts/test runs it both ways).
pub fn use_test_database(c: &mut RawConfig) {
    if let Ok(url) = std::env::var("BCSSO_TEST_DATABASE_URL") {
        c.database.url = Some(url);
    }
}

/// At the sign-in page of whichever dev IdP `authorize_url` names, picks user `sub`;
/// returns the callback URL.
pub async fn pick_at(browser: &reqwest::Client, authorize_url: &Url, sub: &str) -> Url {
    let page = fetch(browser, authorize_url.clone()).await;
    assert_eq!(page.status, StatusCode::OK, "authorize page: {}", page.body);
    let request_id = hidden_value(&page.body, "request").expect("request id on sign-in page");
    let decision = authorize_url.join("/authorize/decision").unwrap();
    let form = [("request", request_id.as_str()), ("user", sub)];
    let page = page_of(browser.post(decision).form(&form).send().await.unwrap()).await;
    assert_eq!(page.status, StatusCode::FOUND, "decision: {}", page.body);
    page.location.unwrap()
}

/// A dev IdP of the test's own, beside the demo's: bound first, so that the gateway's
/// config can name its issuer before it serves.
pub struct ExtraIdp {
    listener: tokio::net::TcpListener,
    pub issuer: Url,
}

impl ExtraIdp {
    pub async fn bind() -> ExtraIdp {
        let (listener, issuer) = listen().await;
        ExtraIdp { listener, issuer }
    }

    /// Its issuer as a config names it.
    pub fn issuer(&self) -> String {
        self.issuer.as_str().trim_end_matches('/').to_owned()
    }

    /// The dev IdP with the demo users, for one client.
    pub fn dev_idp(&self, client: (&str, &str), redirect_uri: Url, send_iss: bool) -> DevIdp {
        DevIdp::new(DevIdpConfig {
            issuer: self.issuer.clone(),
            clients: vec![DevClient {
                client_id: client.0.into(),
                client_secret: client.1.into(),
                redirect_uris: vec![redirect_uri],
                redirect_uri_prefixes: Vec::new(),
            }],
            users: bc_sso_sandbox::idp::demo_users(),
            email_in_id_token: true,
            send_iss_parameter: send_iss,
        })
    }

    pub fn serve(self, app: axum::Router) {
        tokio::spawn(async move { axum::serve(self.listener, app).await.unwrap() });
    }
}

/// The `Retry-After` of a 429, in seconds.
pub fn retry_after(response: &reqwest::Response) -> u64 {
    let value = response.headers()["retry-after"].to_str().unwrap();
    value.parse().unwrap()
}

/// The value of the cookie `name` that `response` sets, with its attributes.
pub fn set_cookie<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    let prefix = format!("{name}=");
    let cookies = response.headers().get_all("set-cookie").iter();
    cookies
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&prefix))
}

/// Sign-ins limited to `per_minute` a client, in bursts of `burst`.
pub fn rate_limit(c: &mut RawConfig, per_minute: u32, burst: u32) {
    c.server.rate_limit_per_minute = Some(per_minute);
    c.server.rate_limit_burst = Some(burst);
}

/// A listener on a free loopback port, and its base URL.
pub async fn listen() -> (tokio::net::TcpListener, Url) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    (listener, url)
}

/// A loopback port nothing listens on (until the test starts something there).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A browser: keeps cookies, follows no redirects (tests follow them hop by hop).
pub fn new_browser() -> reqwest::Client {
    browser_builder().build().unwrap()
}

/// A browser behind a load balancer that forwards for `client` (every request carries
/// `X-Forwarded-For: client`), with its own user agent.
pub fn browser_from(client: &str, user_agent: &str) -> reqwest::Client {
    let mut headers = HeaderMap::new();
    headers.insert("x-forwarded-for", HeaderValue::from_str(client).unwrap());
    browser_builder()
        .default_headers(headers)
        .user_agent(user_agent)
        .build()
        .unwrap()
}

fn browser_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
}

/// Admin sign-in not declared in the file: the console sets it up.
pub fn admin_sign_in_unset(c: &mut RawConfig) {
    c.admin.sso_connection = None;
    c.admin.allowed_emails.clear();
}

/// A second connection "other" at the demo's dev IdP, owning `other.test`.
pub fn add_other_connection(c: &mut RawConfig, display_name: &str) {
    let mut other = c.connections[0].clone();
    other.id = Some("other".into());
    other.display_name = Some(display_name.into());
    other.allowed_email_domains = vec!["other.test".into()];
    c.connections.push(other);
}

/// A connection `id` at `issuer` for the admin API, owning `domain`, with the dev IdP's
/// client.
pub fn connection_json(id: &str, issuer: &str, domain: &str) -> Value {
    serde_json::json!({
        "id": id, "issuer": issuer, "client_id": "bc-sso-gateway",
        "client_secret": demo::DEV_CLIENT_SECRET, "allowed_email_domains": [domain]
    })
}

/// A directory of a test's own files, removed when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("bcsso-{name}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The URL of an SQLite database file in this directory.
    pub fn sqlite_url(&self) -> String {
        format!("sqlite://{}", self.0.join("gateway.sqlite").display())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A store's API account and its one storefront, as a config file names them.
pub struct StoreAccount<'a> {
    pub store_hash: &'a str,
    pub api_base_url: &'a str,
    pub client_id: &'a str,
    pub storefront: &'a str,
}

impl Env {
    /// The demo's emulated store and its first storefront.
    pub fn store_account(&self) -> StoreAccount<'_> {
        let emulator = self.demo.emulator.config();
        StoreAccount {
            store_hash: &emulator.store_hash,
            api_base_url: self.demo.api_url.as_str(),
            client_id: &emulator.client_id,
            storefront: self.demo.storefront_urls[0].as_str(),
        }
    }
}

/// Writes `dir/gateway.toml` as an operator would: `server` is the `[server]` table, and
/// the one connection `(id, issuer, client id)` is for example.com; the secrets are left to
/// the environment. Returns its path.
pub fn write_config(
    dir: &Path,
    server: Value,
    database: &str,
    store: &StoreAccount,
    (id, issuer, client_id): (&str, &str, &str),
) -> PathBuf {
    let config = serde_json::json!({
        "server": server,
        "database": { "url": database },
        "store": {
            "store_hash": store.store_hash,
            "api_base_url": store.api_base_url,
            "client_id": store.client_id,
            "channels": [{ "id": 1, "storefront_url": store.storefront }],
        },
        "connections": [{
            "id": id, "issuer": issuer, "client_id": client_id,
            "allowed_email_domains": ["example.com"],
        }],
    });
    let path = dir.join("gateway.toml");
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    path
}

/// `GET url` in `browser`, as a page.
/// The URL of a waiting page's `<meta http-equiv="refresh" content="N;url=…">`.
pub fn meta_refresh(page: &Page) -> Option<String> {
    if page.status != StatusCode::OK || !page.body.contains("id=\"waiting\"") {
        return None;
    }
    let start = page.body.find(";url=")? + 5;
    let end = page.body[start..].find('"')?;
    Some(page.body[start..start + end].replace("&amp;", "&"))
}

pub async fn fetch(browser: &reqwest::Client, url: impl reqwest::IntoUrl) -> Page {
    page_of(browser.get(url).send().await.unwrap()).await
}

pub async fn page_of(response: reqwest::Response) -> Page {
    let base = response.url().clone();
    let status = response.status();
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(|l| base.join(l).unwrap());
    let correlation_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.text().await.unwrap();
    Page {
        status,
        location,
        correlation_id,
        body,
    }
}

/// Value of `<input type="hidden" name="NAME" value="…">`.
pub fn hidden_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_owned())
}

// ---------------------------------------------------------------------------------------
// Captured logs: every test's log lines go to one buffer (JSON, with span fields), so a
// test can find the lines of its own request by correlation id, and the suite can check
// that no secret or token was ever logged.

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static LOGS: OnceLock<Buffer> = OnceLock::new();

pub fn init_logs() {
    LOGS.get_or_init(|| {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_env_filter("debug,hyper=info,reqwest=info,h2=info,tower_sessions=info")
            .with_writer(move || writer.clone())
            .try_init()
            .ok();
        buffer
    });
}

pub fn all_logs() -> String {
    LOGS.get()
        .map(|b| String::from_utf8_lossy(&b.0.lock().unwrap()).into_owned())
        .unwrap_or_default()
}

pub fn log_lines_with(needle: &str) -> Vec<String> {
    all_logs()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}
