//! The `discovery` check: fetching the document as plain JSON, each cause of failure in
//! words of its own.

use serde_json::{Map, Value};
use url::Url;

use super::{Check, cut, failed, ok, shown};
use crate::capped_body::BodyError;
use crate::config::{Connection, check_idp_url};
use crate::oidc::http::IdpHttp;
use crate::oidc::{ProviderMetadata, error_chain};

// ---------------------------------------------------------------------------------------
// 1. Discovery

pub(super) async fn check_discovery(
    http: &IdpHttp,
    conn: &Connection,
) -> (Check, Option<Map<String, Value>>) {
    // The same URL the openidconnect crate builds, so a pass here means a pass at sign-in.
    let url = match conn.issuer.join(".well-known/openid-configuration") {
        Ok(url) => url,
        Err(e) => {
            return (
                failed(
                    "discovery",
                    format!(
                        "The configured issuer {} does not give a valid discovery URL ({e}); the remaining checks could not run.",
                        shown(conn.issuer.as_str())
                    ),
                ),
                None,
            );
        }
    };
    if let Err(reason) = check_idp_url(&url, conn.issuer.url()) {
        return (
            failed(
                "discovery",
                format!(
                    "The discovery URL {url} was not fetched: it {reason}. The remaining checks need the document and were not run."
                ),
            ),
            None,
        );
    }
    let value = match fetch_json(http, &url).await {
        Ok(v) => v,
        Err(problem) => {
            let hint = match problem {
                FetchProblem::Status(404) => {
                    " Check the issuer URL: the discovery document must be at <issuer>/.well-known/openid-configuration."
                }
                _ => "",
            };
            return (
                failed(
                    "discovery",
                    format!(
                        "{}{hint} The remaining checks need this document and were not run.",
                        problem.describe("The discovery document", &url)
                    ),
                ),
                None,
            );
        }
    };
    let Value::Object(doc) = value else {
        return (
            failed(
                "discovery",
                format!(
                    "{url} answered with JSON that is not an object, so it is not a discovery document; the remaining checks could not run."
                ),
            ),
            None,
        );
    };
    // Sign-in parses the document into the crate's typed metadata; a field of the wrong
    // type fails there even when every check below passes, so try the same parse.
    let check = match serde_json::from_value::<ProviderMetadata>(Value::Object(doc.clone())) {
        Ok(_) => ok(
            "discovery",
            format!("The discovery document at {url} was fetched and read."),
        ),
        Err(e) => failed(
            "discovery",
            format!(
                "The discovery document at {url} was fetched, but the gateway cannot read it: {}.",
                cut(&e.to_string())
            ),
        ),
    };
    (check, Some(doc))
}

/// Why an endpoint gave no usable JSON, each cause with its own message.
pub(super) enum FetchProblem {
    Timeout,
    Connect(String),
    Status(u16),
    Redirect {
        status: u16,
        location: Option<String>,
    },
    TooLarge(usize),
    NotJson(String),
    Other(String),
}

impl FetchProblem {
    pub(super) fn describe(&self, what: &str, url: &Url) -> String {
        match self {
            FetchProblem::Timeout => format!(
                "{what} at {url} did not answer in time; check that the identity provider is up and reachable from the gateway's network."
            ),
            FetchProblem::Connect(detail) => format!(
                "The gateway could not connect to {url} ({detail}); check the URL and that the identity provider is reachable from the gateway's network."
            ),
            FetchProblem::Status(status) => {
                format!("{what} at {url} answered HTTP {status} instead of 200.")
            }
            FetchProblem::Redirect { status, location } => format!(
                "{what} at {url} answered with a redirect (HTTP {status}{}); the gateway does not follow redirects, so the URL must serve the document directly.",
                location
                    .as_deref()
                    .map(|l| format!(" to {}", shown(l)))
                    .unwrap_or_default()
            ),
            FetchProblem::TooLarge(limit) => format!(
                "{what} at {url} is larger than {} KiB, so it cannot be the expected JSON; the gateway stopped reading it.",
                limit / 1024
            ),
            FetchProblem::NotJson(e) => format!(
                "{what} at {url} answered, but not with JSON ({e}); it may be an HTML login or error page."
            ),
            FetchProblem::Other(detail) => {
                format!("The gateway could not fetch {what} at {url} ({detail}).")
            }
        }
    }
}

pub(super) async fn fetch_json(http: &IdpHttp, url: &Url) -> Result<Value, FetchProblem> {
    let response = http
        .client()
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(request_problem)?;
    let status = response.status();
    if status.is_redirection() {
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        return Err(FetchProblem::Redirect {
            status: status.as_u16(),
            location,
        });
    }
    if status != reqwest::StatusCode::OK {
        return Err(FetchProblem::Status(status.as_u16()));
    }
    let body = http.read_body(response).await.map_err(|e| match e {
        BodyError::TooLarge { limit } => FetchProblem::TooLarge(limit),
        BodyError::Transport(e) => request_problem(e),
    })?;
    serde_json::from_slice(&body).map_err(|e| FetchProblem::NotJson(cut(&e.to_string())))
}

fn request_problem(e: reqwest::Error) -> FetchProblem {
    // Timeout first: a connect timeout is also a connect error, and "did not answer in
    // time" is the more useful of the two.
    if e.is_timeout() {
        FetchProblem::Timeout
    } else if e.is_connect() {
        FetchProblem::Connect(root_cause(&e))
    } else {
        FetchProblem::Other(cut(&error_chain(&e)))
    }
}

/// The innermost error ("Connection refused (os error 111)", "dns error: ..."): reqwest's
/// outer layers only repeat the URL.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cut(&cur.to_string())
}
