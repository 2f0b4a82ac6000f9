//! Why a sign-in at the IdP did not produce a trustworthy identity. Each variant carries
//! the error it came from (`source()`), never a copy of its text; what the `openidconnect`
//! crate's errors hold of the IdP's answers (response bodies with tokens or personal data)
//! is left behind, so `{:?}` of these is safe to log.

use axum::http::StatusCode;
use openidconnect::core::CoreErrorResponseType;
use openidconnect::{ClaimsVerificationError, ConfigurationError, HttpClientError};

use super::http::FetchError;

type HttpError = HttpClientError<openidconnect::reqwest::Error>;

/// Why a sign-in at the IdP did not produce a trustworthy identity.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("identity provider discovery failed: {what} at {url}: {source}")]
    Discovery {
        what: &'static str,
        url: String,
        #[source]
        source: FetchError,
    },
    #[error("identity provider metadata rejected: {0}")]
    Metadata(#[from] MetadataError),
    /// SECURITY.md rule 23: the discovery document names a URL the gateway will not call;
    /// nothing it names was fetched.
    #[error("identity provider endpoint {field:?} = {url:?} refused: it {reason}")]
    EndpointRefused {
        field: String,
        url: String,
        reason: crate::config::UrlRefusal,
    },
    #[error("identity provider {what} is larger than {} KiB", limit / 1024)]
    ResponseTooLarge { what: &'static str, limit: usize },
    /// Discovery failed moments ago; until the back-off ends no request goes to the IdP.
    #[error(
        "identity provider discovery failed recently ({cause}); next attempt in {retry_in_secs} s"
    )]
    Unavailable {
        cause: &'static str,
        retry_in_secs: u64,
    },
    #[error("identity provider returned error {error:?}")]
    ProviderError { error: String },
    #[error("authorization response iss {got:?} does not match the connection's issuer")]
    IssuerMismatch { got: Option<String> },
    #[error("code exchange failed: {0}")]
    CodeExchange(#[from] ExchangeFailure),
    /// The OAuth error code only: the answer's description is the IdP's free text (rule 16).
    #[error("the IdP refused the code exchange: {0}")]
    CodeRejected(String),
    #[error("token endpoint did not return an ID token")]
    NoIdToken,
    #[error("ID token rejected ({reason}): {problem}")]
    IdToken {
        reason: &'static str,
        #[source]
        problem: IdTokenProblem,
    },
    #[error("userinfo request failed: {0}")]
    Userinfo(#[from] UserinfoFailure),
    #[error("userinfo sub does not match the ID token's sub")]
    UserinfoSubMismatch,
}

impl OidcError {
    pub fn status(&self) -> StatusCode {
        match self {
            OidcError::Discovery { .. }
            | OidcError::Metadata(_)
            | OidcError::EndpointRefused { .. }
            | OidcError::ResponseTooLarge { .. }
            | OidcError::CodeExchange(_)
            | OidcError::Userinfo(_) => StatusCode::BAD_GATEWAY,
            OidcError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            OidcError::ProviderError { .. } => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            OidcError::Discovery { .. } => "idp_unreachable",
            OidcError::Metadata(_) => "idp_metadata_rejected",
            OidcError::EndpointRefused { .. } => "idp_endpoint_refused",
            OidcError::ResponseTooLarge { .. } => "idp_response_too_large",
            OidcError::Unavailable { .. } => "idp_unavailable",
            OidcError::ProviderError { error } if error == "access_denied" => "idp_access_denied",
            OidcError::ProviderError { .. } => "idp_error",
            OidcError::IssuerMismatch { .. } => "iss_mismatch",
            OidcError::CodeExchange(_) => "code_exchange_failed",
            OidcError::CodeRejected(_) => "code_rejected",
            OidcError::NoIdToken => "no_id_token",
            OidcError::IdToken { reason, .. } => reason,
            OidcError::Userinfo(_) => "userinfo_failed",
            OidcError::UserinfoSubMismatch => "userinfo_sub_mismatch",
        }
    }

    pub fn public_message(&self) -> (&'static str, String) {
        match self {
            OidcError::Discovery { .. } | OidcError::Metadata(_) | OidcError::ResponseTooLarge { .. } | OidcError::CodeExchange(_) | OidcError::Userinfo(_) => (
                "Your company's sign-in service is not answering",
                "We could not complete the sign-in with your company's identity provider. Please try again in a minute; if it keeps happening, tell your IT team.".into(),
            ),
            OidcError::Unavailable { .. } => (
                "Your company's sign-in service is unavailable",
                "Your company's identity provider did not answer properly a moment ago, so we are giving it a short break. Please try again in a minute; if it keeps happening, tell your IT team.".into(),
            ),
            OidcError::EndpointRefused { .. } => (
                "Your company's sign-in service is not set up safely",
                "Your company's identity provider names an address this gateway does not call, so sign-in through it is off. Please tell your IT team the reference below.".into(),
            ),
            OidcError::ProviderError { error } if error == "access_denied" => (
                "Sign-in was cancelled",
                "Your company's sign-in page did not grant access. You can go back to the store and try again, or sign in with your store password.".into(),
            ),
            OidcError::CodeRejected(_) => (
                "Your sign-in could not be completed",
                "Your company's sign-in service did not accept this sign-in attempt; it may have taken too long or been used already. Go back to the store and try again.".into(),
            ),
            OidcError::ProviderError { .. } => (
                "Your company's sign-in service refused the request",
                "Please try again; if it keeps happening, tell your IT team the reference below.".into(),
            ),
            _ => (
                "We could not verify your sign-in",
                "The answer from your company's sign-in service did not pass our security checks, so you were not signed in. Please try again; if it keeps happening, tell your IT team the reference below.".into(),
            ),
        }
    }
}

/// Why the discovery document was refused.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("the issuer gives no discovery URL: {0}")]
    NoDiscoveryUrl(#[source] url::ParseError),
    #[error("the discovery document is not a JSON object")]
    NotAnObject,
    #[error("unexpected issuer {published:?} (expected {expected:?})")]
    UnexpectedIssuer { published: String, expected: String },
    #[error("the discovery document cannot be read: {0}")]
    Unreadable(#[source] serde_json::Error),
    #[error("no token_endpoint")]
    NoTokenEndpoint,
    #[error("the IdP does not support PKCE S256")]
    NoPkceS256,
}

/// Why the code could not be exchanged, when the IdP did not simply refuse it.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeFailure {
    #[error("callback carries neither code nor error")]
    NoCode,
    #[error("{0}")]
    Configuration(#[source] ConfigurationError),
    /// The token response is not JSON of the expected shape (the body is not kept: it may
    /// hold tokens).
    #[error("token response did not parse: {0}")]
    Unparsable(#[source] serde_json::Error),
    /// `server_error` or `temporarily_unavailable`: the IdP is in trouble, not saying no.
    #[error("token endpoint answered {0}")]
    Unavailable(CoreErrorResponseType),
    #[error("Request failed: {}", error_chain(.0))]
    Request(#[source] HttpError),
    /// The crate's own description of an unexpected answer.
    #[error("Other error: {0}")]
    Other(String),
}

/// What was wrong with an ID token, beside its reason code.
#[derive(Debug, thiserror::Error)]
pub enum IdTokenProblem {
    #[error("{}", error_chain(.0))]
    Claims(#[source] ClaimsVerificationError),
    /// The token response carried an ID token whose claims do not parse (no `sub`, `iat`
    /// or `exp`; `alg: none`).
    #[error("{0}")]
    Malformed(#[source] serde_json::Error),
    #[error("no key with this kid, and the JWKS was refetched too recently")]
    RefetchThrottled,
    #[error("azp is {0:?}")]
    ForeignAuthorizedParty(String),
    #[error("empty sub")]
    EmptySubject,
    #[error("multi-tenant connection, but the token has no tid")]
    NoTenant,
    #[error("tenant {0:?} is not on the connection's allowed_tenants")]
    TenantNotAllowed(String),
    #[error("iss {0:?} is not the issuer of the token's tenant")]
    TenantIssuerMismatch(String),
}

/// Why userinfo did not answer usefully (a `sub` about someone else is
/// [`OidcError::UserinfoSubMismatch`]).
#[derive(Debug, thiserror::Error)]
pub enum UserinfoFailure {
    #[error("{0}")]
    Configuration(#[source] ConfigurationError),
    #[error("Request failed: {}", error_chain(.0))]
    Request(#[source] HttpError),
    #[error("Failed to verify claims: {}", error_chain(.0))]
    Claims(#[source] ClaimsVerificationError),
    #[error("Failed to parse server response: {0}")]
    Unparsable(#[source] serde_json::Error),
    /// An answer that is not a userinfo response: its status and the crate's description
    /// (the body is not kept: it may hold personal data).
    #[error("Server returned invalid response: {message}")]
    Response { status: u16, message: String },
    #[error("Other error: {0}")]
    Other(String),
}

impl From<openidconnect::UserInfoError<HttpError>> for UserinfoFailure {
    fn from(e: openidconnect::UserInfoError<HttpError>) -> Self {
        use openidconnect::UserInfoError as E;
        match e {
            E::ClaimsVerification(e) => UserinfoFailure::Claims(e),
            E::Parse(e) => UserinfoFailure::Unparsable(e.into_inner()),
            E::Request(e) => UserinfoFailure::Request(e),
            E::Response(status, _body, message) => UserinfoFailure::Response {
                status: status.as_u16(),
                message,
            },
            E::Other(m) => UserinfoFailure::Other(m),
            // The enum is non-exhaustive upstream.
            other => UserinfoFailure::Other(other.to_string()),
        }
    }
}

/// The whole `source()` chain on one line: the crate's top-level messages are terse.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
