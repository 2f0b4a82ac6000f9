//! The OpenID Connect relying party: provider metadata and JWKS cache ([`registry`]), the
//! code flow with PKCE ([`flow`]), and what we keep of the claims ([`Identity`]).

pub mod claims;
pub mod diagnose;
pub mod discovery;
pub mod error;
pub mod flow;
pub mod http;
pub mod pending;
pub mod registry;
mod rsa_fast;

use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType,
    CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
    CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use serde::{Deserialize, Serialize};

pub use error::{
    ExchangeFailure, IdTokenProblem, MetadataError, OidcError, UserinfoFailure, error_chain,
};
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
    /// OpenID Connect RP-Initiated Logout: where shoppers are sent to sign out at the IdP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_session_endpoint: Option<String>,
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
