//! The test environment: the demo (dev IdP, BigCommerce emulator, gateway) on ephemeral
//! ports, and a cookie-keeping HTTP client that follows redirects by hand, as a browser
//! would, so each hop can be inspected.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use bc_sso_dev::demo::{self, Demo, DemoIdp, DemoOptions};
use bc_sso_gateway::config::RawConfig;
use bc_sso_sandbox::idp::{DevIdp, DevUser};
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use url::Url;

pub struct Env {
    pub demo: Demo,
    pub browser: reqwest::Client,
}

pub struct Page {
    pub status: StatusCode,
    pub location: Option<Url>,
    pub correlation_id: Option<String>,
    pub body: String,
}

impl Page {
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
        Env {
            demo,
            browser: new_browser(),
        }
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
        page_of(self.browser.get(url.clone()).send().await.unwrap()).await
    }

    /// `/login?…` → the IdP's authorize URL.
    pub async fn begin(&self, query: &str) -> Url {
        self.begin_with(&self.browser, query).await
    }

    pub async fn begin_with(&self, browser: &reqwest::Client, query: &str) -> Url {
        let url = self.gateway(&format!("/login?{query}"));
        let page = page_of(browser.get(url).send().await.unwrap()).await;
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
        self.pick_user_with(&self.browser, authorize_url, sub).await
    }

    pub async fn pick_user_with(
        &self,
        browser: &reqwest::Client,
        authorize_url: &Url,
        sub: &str,
    ) -> Url {
        let page = page_of(browser.get(authorize_url.clone()).send().await.unwrap()).await;
        assert_eq!(page.status, StatusCode::OK, "authorize page: {}", page.body);
        let request_id = hidden_value(&page.body, "request").expect("request id on sign-in page");
        let decision = self.demo.idp_url.join("/authorize/decision").unwrap();
        let response = browser
            .post(decision)
            .form(&[("request", request_id.as_str()), ("user", sub)])
            .send()
            .await
            .unwrap();
        let page = page_of(response).await;
        assert_eq!(page.status, StatusCode::FOUND, "decision: {}", page.body);
        page.location.unwrap()
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
        let authorize = self.begin_with(browser, query).await;
        let callback = self.pick_user_with(browser, &authorize, sub).await;
        let page = page_of(browser.get(callback.clone()).send().await.unwrap()).await;
        (callback, page)
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

/// A browser: keeps cookies, follows no redirects (tests follow them hop by hop).
pub fn new_browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
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

/// Posts a form from the env's browser (the admin's, once signed in).
pub async fn post(env: &Env, path: &str, fields: &[(String, String)]) -> Page {
    page_of(
        env.browser
            .post(env.gateway(path))
            .form(fields)
            .send()
            .await
            .unwrap(),
    )
    .await
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
