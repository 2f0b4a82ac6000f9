//! The HTTP client every call to an identity provider goes through: the gateway's reqwest
//! client ([`crate::http_client`]: no redirects, timeouts) with every response body capped
//! at [`MAX_IDP_BODY`] (SECURITY.md rule 23).
//!
//! The `openidconnect` crate calls the token and userinfo endpoints through whatever
//! [`AsyncHttpClient`] it is handed; its own implementation for `reqwest::Client` reads the
//! whole body with `bytes()`, however big. [`IdpHttp`] is the same client with
//! [`read_capped`](crate::capped_body::read_capped) instead. Discovery documents and key
//! sets are fetched by [`IdpHttp::get_json`], also capped.

use std::future::Future;
use std::pin::Pin;

use openidconnect::{AsyncHttpClient, HttpClientError, HttpRequest, HttpResponse};
use url::Url;

use crate::capped_body::{BodyError, read_capped};

/// Discovery documents, key sets, token and userinfo answers are a few KiB; a bigger answer
/// is not one of them.
pub const MAX_IDP_BODY: usize = 1024 * 1024;

/// The gateway's client for identity providers, with capped response bodies.
#[derive(Clone)]
pub struct IdpHttp {
    client: reqwest::Client,
    limit: usize,
}

/// Why a JSON document could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("request failed: {}", super::error_chain(.0))]
    Transport(#[source] reqwest::Error),
    #[error("answered HTTP {0} instead of 200")]
    Status(u16),
    #[error("answered Content-Type {0:?}, not JSON")]
    ContentType(String),
    #[error("the answer is larger than {} KiB", limit / 1024)]
    TooLarge { limit: usize },
    #[error("the answer is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
}

impl IdpHttp {
    pub fn new(client: reqwest::Client) -> Self {
        Self::with_limit(client, MAX_IDP_BODY)
    }

    pub fn with_limit(client: reqwest::Client, limit: usize) -> Self {
        Self { client, limit }
    }

    /// The plain client, for callers that classify transport errors themselves (the admin
    /// checks). Bodies read through it must go through [`Self::read_body`].
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The body of `response`, capped.
    pub async fn read_body(&self, response: reqwest::Response) -> Result<Vec<u8>, BodyError> {
        read_capped(response, self.limit).await
    }

    /// `GET url` expecting 200 and JSON (`Content-Type` absent, `application/json` or one of
    /// `also_accepted`, as the `openidconnect` crate requires), capped. The caller has checked
    /// the URL ([`crate::config::check_idp_url`]).
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &Url,
        also_accepted: &[&str],
    ) -> Result<T, FetchError> {
        let started = std::time::Instant::now();
        let response = self
            .client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await;
        count_idp_call(&response, started);
        let response = response.map_err(FetchError::Transport)?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        if let Some(value) = response.headers().get(reqwest::header::CONTENT_TYPE) {
            let essence = value
                .to_str()
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if essence != "application/json" && !also_accepted.contains(&essence.as_str()) {
                return Err(FetchError::ContentType(essence.chars().take(100).collect()));
            }
        }
        let body = self.read_body(response).await.map_err(|e| match e {
            BodyError::TooLarge { limit } => FetchError::TooLarge { limit },
            BodyError::Transport(e) => FetchError::Transport(e),
        })?;
        serde_json::from_slice(&body).map_err(FetchError::NotJson)
    }
}

/// Counts an IdP call by status and adds its time to the sign-in's outbound time.
fn count_idp_call(
    response: &Result<reqwest::Response, reqwest::Error>,
    started: std::time::Instant,
) {
    crate::metrics::outbound_since(started);
    let status = match response {
        Ok(r) => crate::metrics::status_class(r.status().as_u16()),
        Err(_) => "error",
    };
    crate::metrics::METRICS
        .idp_requests
        .with_label_values(&[status])
        .inc();
}

impl<'c> AsyncHttpClient<'c> for IdpHttp {
    type Error = HttpClientError<reqwest::Error>;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send + 'c>>;

    /// As the crate's own implementation for `reqwest::Client`, but with the body capped.
    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request: reqwest::Request = request.try_into().map_err(Box::new)?;
            let started = std::time::Instant::now();
            let response = self.client.execute(request).await;
            count_idp_call(&response, started);
            let response = response.map_err(Box::new)?;
            let mut builder = openidconnect::http::Response::builder()
                .status(response.status())
                .version(response.version());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let body = self.read_body(response).await.map_err(|e| match e {
                // The flow reports this as a failed code exchange or userinfo call, with
                // this text in the log.
                BodyError::TooLarge { limit } => HttpClientError::Other(format!(
                    "idp_response_too_large: the identity provider's answer is larger than {} KiB",
                    limit / 1024
                )),
                BodyError::Transport(e) => HttpClientError::Reqwest(Box::new(e)),
            })?;
            builder.body(body).map_err(HttpClientError::Http)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use super::*;
    use crate::capped_body::test_server;

    fn http() -> IdpHttp {
        IdpHttp::new(crate::http_client(Duration::from_secs(10)).unwrap())
    }

    fn request(url: &str) -> HttpRequest {
        openidconnect::http::Request::builder()
            .uri(url)
            .method("POST")
            .body(b"grant_type=authorization_code".to_vec())
            .unwrap()
    }

    /// The client the `openidconnect` crate uses for the token and userinfo endpoints.
    #[tokio::test]
    async fn oversized_token_response_is_refused_without_buffering() {
        let (base, sent) = test_server::endless_json().await;
        let err = http().call(request(&base)).await.unwrap_err();
        assert!(
            matches!(&err, HttpClientError::Other(m) if m.starts_with("idp_response_too_large")),
            "{err:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(sent.load(Ordering::SeqCst) < 32 * MAX_IDP_BODY);
    }

    #[tokio::test]
    async fn oversized_userinfo_declared_by_content_length_is_refused_at_once() {
        let (base, _) = test_server::declares_a_gigabyte().await;
        let started = std::time::Instant::now();
        let err = http().call(request(&base)).await.unwrap_err();
        assert!(matches!(err, HttpClientError::Other(_)), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn oversized_json_document_is_refused() {
        let (base, _) = test_server::endless_json().await;
        let url = Url::parse(&base).unwrap();
        let err = http()
            .get_json::<serde_json::Value>(&url, &[])
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::TooLarge { limit } if limit == MAX_IDP_BODY));
    }
}
