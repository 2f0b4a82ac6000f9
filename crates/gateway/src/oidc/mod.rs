//! The OpenID Connect relying party: provider metadata and JWKS cache ([`registry`]), the
//! code flow with PKCE ([`flow`]), and what we keep of the claims ([`Identity`]).

pub mod claims;
pub mod diagnose;
pub mod discovery;
pub mod flow;
pub mod http;
pub mod pending;
pub mod registry;

use axum::http::StatusCode;
use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType,
    CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
    CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use serde::{Deserialize, Serialize};

pub use flow::CallbackParams;
pub use http::IdpHttp;
pub use pending::{Callback, PendingError, PendingLogin};
pub use registry::Registry;

/// Discovery fields beyond OIDC Discovery 1.0 that we act on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExtraProviderMetadata {
    /// RFC 9207: the IdP sends `iss` with the authorization response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_response_iss_parameter_supported: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge_methods_supported: Option<Vec<String>>,
}
impl openidconnect::AdditionalProviderMetadata for ExtraProviderMetadata {}

pub type ProviderMetadata = openidconnect::ProviderMetadata<
    ExtraProviderMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// Who the IdP says signed in. Claims are untrusted input: they are escaped wherever they
/// are shown and never decide anything before `policy` has checked them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    /// Only `true` (or `"true"`) from the same response that carried the email counts.
    pub email_verified: bool,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub name: Option<String>,
    /// From the connection's groups claim; they only ever select among the customer
    /// groups an admin mapped.
    pub groups: Vec<String>,
    /// From the connection's company claim, if it has one.
    pub company: Option<String>,
    /// Google's `hd` claim: the Workspace domain of the account (absent for personal
    /// accounts, which share Google's issuer).
    pub hosted_domain: Option<String>,
    /// Microsoft Entra's `xms_edov` from the ID token: whether the tenant has verified the
    /// email's domain. `None` when the IdP does not send it.
    pub email_domain_verified: Option<bool>,
}

/// Why a sign-in at the IdP did not produce a trustworthy identity.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("identity provider discovery failed: {0}")]
    Discovery(String),
    #[error("identity provider metadata rejected: {0}")]
    Metadata(String),
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
    CodeExchange(String),
    #[error("the IdP refused the code exchange: {0}")]
    CodeRejected(String),
    #[error("token endpoint did not return an ID token")]
    NoIdToken,
    #[error("ID token rejected ({reason}): {detail}")]
    IdToken {
        reason: &'static str,
        detail: String,
    },
    #[error("userinfo request failed: {0}")]
    Userinfo(String),
    #[error("userinfo sub does not match the ID token's sub")]
    UserinfoSubMismatch,
}

impl OidcError {
    pub fn status(&self) -> StatusCode {
        match self {
            OidcError::Discovery(_)
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
            OidcError::Discovery(_) => "idp_unreachable",
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
            OidcError::Discovery(_) | OidcError::Metadata(_) | OidcError::ResponseTooLarge { .. } | OidcError::CodeExchange(_) | OidcError::Userinfo(_) => (
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
