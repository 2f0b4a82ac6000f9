//! The quota-storm benchmark (`scripts/bench-storm`): an SSO rollout's first morning.
//!
//! Starts the demo on free loopback ports (the dev IdP with `--users` generated users, the
//! BigCommerce emulator enforcing `--quota` requests per `--window-secs`, the gateway),
//! then signs every user in for the first time, `--concurrency` browsers at once, over real
//! HTTP: `/login`, the IdP's sign-in page (narrowed to the user by `login_hint`), the
//! callback, the waiting page's refreshes, and the storefront's `/login/token/<jwt>`.
//! Prints one table: signed in, error pages, sign-in time, API calls. A benchmark, not a
//! test: it asserts nothing and exits 0 unless it cannot run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bc_sso_dev::demo::{self, DemoIdp, DemoOptions};
use bc_sso_sandbox::idp::DevUser;
use clap::Parser;
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use tokio::sync::Semaphore;
use url::Url;

#[derive(Parser)]
struct Args {
    /// Distinct new users, each signing in once.
    #[arg(long, default_value_t = 1000)]
    users: usize,
    /// Browsers signing in at the same time.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// The store's API quota per window (Standard plan: 150 per 30 s).
    #[arg(long, default_value_t = 150)]
    quota: u32,
    #[arg(long, default_value_t = 30)]
    window_secs: u64,
}

/// How one browser's sign-in ended.
enum Ended {
    /// Landed on the storefront signed in; waiting pages seen on the way.
    SignedIn { waited: usize },
    /// The gateway's (or the storefront's) error page, by reason code.
    ErrorPage(String),
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let users: Vec<DevUser> = (0..args.users).map(user).collect();
    let demo = demo::start(
        DemoOptions {
            idp: DemoIdp::Dev { users },
            ..DemoOptions::default()
        },
        // Every browser here is 127.0.0.1, like an office behind one NAT address: the
        // per-client sign-in limit would be the bottleneck measured, not the store's quota.
        |c| c.server.rate_limit_per_minute = Some(0),
    )
    .await
    .unwrap_or_else(|e| panic!("the demo did not start: {e}"));
    let emulator = demo.emulator.clone();
    emulator.set_rate_limit(args.quota, Duration::from_secs(args.window_secs));
    let calls_before = emulator.api_request_count();
    let gateway = demo.gateway_url.clone();
    let permits = Arc::new(Semaphore::new(args.concurrency));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.users {
        let (gateway, permits) = (gateway.clone(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let t = Instant::now();
            let ended = sign_in(&gateway, &format!("u{i}")).await;
            (ended, t.elapsed())
        });
    }
    let (mut times, mut errors, mut waited_pages, mut waited_users) =
        (Vec::new(), Vec::new(), 0, 0);
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((Ended::SignedIn { waited }, took)) => {
                times.push(took);
                waited_pages += waited;
                waited_users += usize::from(waited > 0);
            }
            Ok((Ended::ErrorPage(code), _)) => errors.push(code),
            Err(e) => errors.push(format!("driver task failed: {e}")),
        }
    }
    let wall = started.elapsed();
    let calls = emulator.api_request_count() - calls_before;
    times.sort();
    let pct = |p: f64| {
        times
            .get(((times.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .map_or("-".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()))
    };
    let accepted = emulator
        .login_attempts()
        .iter()
        .filter(|a| a.is_ok())
        .count();
    println!(
        "quota storm: {} new users, concurrency {}, quota {} per {} s",
        args.users, args.concurrency, args.quota, args.window_secs
    );
    println!();
    println!("| metric | value |");
    println!("|---|---|");
    println!(
        "| signed in (storefront accepted the token) | {} of {} |",
        accepted, args.users
    );
    println!("| error pages | {} |", errors.len());
    println!("| sign-in time p50 | {} |", pct(0.50));
    println!("| sign-in time p99 | {} |", pct(0.99));
    println!("| sign-in time max | {} |", pct(1.0));
    println!("| shoppers who saw the waiting page | {waited_users} ({waited_pages} refreshes) |");
    println!(
        "| BigCommerce API calls | {calls} ({:.3} per sign-in) |",
        calls as f64 / args.users.max(1) as f64
    );
    println!(
        "| API calls refused with 429 | {} |",
        emulator.rate_limited_count()
    );
    println!("| wall time | {:.1} s |", wall.as_secs_f64());
    let mut codes: Vec<&String> = errors.iter().collect();
    codes.sort();
    codes.dedup();
    for code in codes {
        let n = errors.iter().filter(|e| *e == code).count();
        println!("| error {code} | {n} |");
    }
}

fn user(i: usize) -> DevUser {
    DevUser {
        sub: format!("u{i}"),
        email: Some(format!("storm.user{i}@example.com")),
        name: Some(format!("Storm User{i}")),
        given_name: Some("Storm".into()),
        family_name: Some(format!("User{i}")),
        ..bc_sso_sandbox::idp::demo_users().remove(0)
    }
}

/// One browser's first sign-in, from `/login` to the storefront.
async fn sign_in(gateway: &Url, sub: &str) -> Ended {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap_or_else(|e| panic!("http client: {e}"));
    match hops(&browser, gateway, sub).await {
        Ok(ended) => ended,
        Err(e) => Ended::ErrorPage(e),
    }
}

async fn hops(browser: &reqwest::Client, gateway: &Url, sub: &str) -> Result<Ended, String> {
    let join = |base: &Url, s: &str| base.join(s).map_err(|e| e.to_string());
    let (_, authorize) = get(browser, join(gateway, "/login?channel_id=1")?).await?;
    let mut authorize = authorize.ok_or("login did not redirect")?;
    authorize.query_pairs_mut().append_pair("login_hint", sub);
    let (page, _) = get(browser, authorize.clone()).await?;
    let request = hidden_value(&page, "request").ok_or("no request id on the IdP page")?;
    let decision = browser
        .post(join(&authorize, "/authorize/decision")?)
        .form(&[("request", request.as_str()), ("user", sub)])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let callback = location(&decision).ok_or("the IdP did not redirect")?;
    let (mut body, mut next) = get(browser, callback).await?;
    let mut waited = 0;
    while next.is_none() {
        let Some(resume) = meta_refresh(&body) else {
            return Ok(Ended::ErrorPage(error_code(&body)));
        };
        waited += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
        (body, next) = get(browser, join(gateway, &resume)?).await?;
    }
    let landing = next.ok_or("no storefront URL")?;
    if !landing.path().starts_with("/login/token/") {
        return Ok(Ended::ErrorPage(format!(
            "redirected to {}",
            landing.path()
        )));
    }
    let (body, account) = get(browser, landing).await?;
    match account {
        Some(_) => Ok(Ended::SignedIn { waited }),
        None => Ok(Ended::ErrorPage(format!(
            "storefront: {}",
            error_code(&body)
        ))),
    }
}

/// `GET url`: the body, and the redirect target of a 3xx. A 4xx/5xx comes back as a body
/// with no target (the error page).
async fn get(browser: &reqwest::Client, url: Url) -> Result<(String, Option<Url>), String> {
    let response = browser.get(url).send().await.map_err(|e| e.to_string())?;
    let target = location(&response);
    let status = response.status();
    let body = response.text().await.map_err(|e| e.to_string())?;
    if status.is_redirection() {
        return Ok((body, target));
    }
    if status == StatusCode::OK || meta_refresh(&body).is_some() {
        return Ok((body, None));
    }
    Ok((format!("{status} {}", error_code(&body)), None))
}

fn location(response: &reqwest::Response) -> Option<Url> {
    let l = response.headers().get(LOCATION)?.to_str().ok()?;
    response.url().join(l).ok()
}

fn hidden_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_owned())
}

fn meta_refresh(html: &str) -> Option<String> {
    if !html.contains("id=\"waiting\"") {
        return None;
    }
    let start = html.find(";url=")? + 5;
    let end = html[start..].find('"')?;
    Some(html[start..start + end].replace("&amp;", "&"))
}

fn error_code(html: &str) -> String {
    let marker = "<code id=\"error-code\">";
    html.find(marker)
        .and_then(|s| {
            let rest = &html[s + marker.len()..];
            rest.find('<').map(|e| rest[..e].to_owned())
        })
        .unwrap_or_else(|| html.chars().take(80).collect())
}
