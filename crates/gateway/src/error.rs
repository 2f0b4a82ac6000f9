//! The one error type of the gateway and the one place it becomes a response.
//!
//! Variants are named after what happened, not after the library that failed. Each has a
//! status, a stable `code` (for JSON, tests and the log's reason code) and a message for the
//! shopper. Details go to the log only, inside the request span that carries the
//! correlation id shown on the page.

use askama::Template;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::bigcommerce::ApiError;
use crate::oidc::{OidcError, PendingError};
use crate::policy::PolicyError;
use crate::telemetry::RequestCtx;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown connection {0:?}")]
    UnknownConnection(String),
    #[error("no IdP connection is configured or enabled")]
    NoConnections,
    #[error("the store's API account is not set yet (admin console, Store settings)")]
    StoreNotSetUp,
    #[error("no connection handles email domain {0:?}")]
    NoConnectionForDomain(String),
    #[error("the email address entered is not valid")]
    BadEmailInput,
    #[error("unknown channel {0}")]
    UnknownChannel(i64),
    #[error("connection {connection} does not sign in to channel {channel}")]
    ConnectionNotForChannel { connection: String, channel: i64 },
    #[error("query parameter {0} is not valid")]
    BadParameter(&'static str),
    #[error("bad callback request: {0}")]
    CallbackParams(String),
    #[error(
        "no pending login for this browser matches the state (unknown, already used, or from another browser)"
    )]
    PendingLoginMissing,
    #[error(transparent)]
    Pending(#[from] PendingError),
    #[error(transparent)]
    Oidc(#[from] OidcError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("BigCommerce call failed: {0}")]
    BigCommerce(#[from] ApiError),
    /// The create was refused and a second lookup found no customer with the email.
    #[error("BigCommerce refused to create the customer, and none has the email: {0}")]
    CustomerNotCreated(#[source] ApiError),
    #[error("session store failed: {0}")]
    Session(#[from] tower_sessions::session::Error),
    #[error("a route that needs a session is outside the session layer")]
    NoSessionLayer,
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error("could not sign the login token: {0}")]
    LoginToken(#[from] jsonwebtoken::errors::Error),
    #[error("page template failed: {0}")]
    Template(#[from] askama::Error),
    #[error("too many sign-in requests from this client; retry in {retry_after} s")]
    TooManyRequests { retry_after: u64 },
    #[error("too many sign-in requests for this connection; retry in {retry_after} s")]
    ConnectionRateLimited { retry_after: u64 },
    #[error("the admin console is disabled (no admin token configured)")]
    AdminDisabled,
    #[error("admin sign-in required")]
    AdminSignInRequired,
    #[error("wrong admin token")]
    AdminTokenRejected,
    #[error("signed in at the IdP, but not on the admin lists")]
    NotAnAdmin,
    #[error("changing admin sign-in needs the admin token typed again")]
    BootstrapTokenRequired,
    #[error("form CSRF token missing or wrong")]
    CsrfRejected,
    #[error("invalid admin request: {0}")]
    AdminInput(String),
    #[error(transparent)]
    Manage(#[from] crate::settings::ManageError),
    #[error("page not found")]
    NotFound,
    #[error("webhook callback without our secret header")]
    WebhookUnauthorized,
    #[error("webhook callback too large")]
    WebhookTooLarge,
    #[error("webhook callback refused: {0}")]
    WebhookInvalid(&'static str),
    #[error("the first sign-in's account was not set up in time")]
    SignInIncomplete,
    /// One sign-in's error, shown to each browser that waited for it (two tabs).
    #[error(transparent)]
    Shared(std::sync::Arc<Error>),
}

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Shared(e) => e.status(),
            Error::UnknownConnection(_) | Error::NotFound => StatusCode::NOT_FOUND,
            Error::NoConnections | Error::StoreNotSetUp | Error::SignInIncomplete => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::TooManyRequests { .. } | Error::ConnectionRateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Error::AdminDisabled => StatusCode::NOT_FOUND,
            Error::AdminSignInRequired | Error::AdminTokenRejected => StatusCode::UNAUTHORIZED,
            Error::NotAnAdmin | Error::BootstrapTokenRequired => StatusCode::FORBIDDEN,
            Error::CsrfRejected => StatusCode::FORBIDDEN,
            Error::AdminInput(_) => StatusCode::BAD_REQUEST,
            Error::WebhookUnauthorized => StatusCode::UNAUTHORIZED,
            Error::WebhookTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::WebhookInvalid(_) => StatusCode::BAD_REQUEST,
            Error::Manage(e) => {
                use crate::settings::ManageError as M;
                match e {
                    M::Invalid(_) | M::InvalidStore(_) | M::InvalidAdminAccess(_) => {
                        StatusCode::UNPROCESSABLE_ENTITY
                    }
                    M::NoSecretKey
                    | M::ManagedByFile(_)
                    | M::StoreManagedByFile
                    | M::AdminAccessManagedByFile
                    | M::ChangedElsewhere(_) => StatusCode::CONFLICT,
                    M::Unknown(_) => StatusCode::NOT_FOUND,
                    M::Seal(_) | M::Unreadable(_) => StatusCode::INTERNAL_SERVER_ERROR,
                    M::Db(_) => StatusCode::SERVICE_UNAVAILABLE,
                }
            }
            Error::NoConnectionForDomain(_)
            | Error::BadEmailInput
            | Error::UnknownChannel(_)
            | Error::ConnectionNotForChannel { .. }
            | Error::BadParameter(_)
            | Error::CallbackParams(_)
            | Error::PendingLoginMissing
            | Error::Pending(_) => StatusCode::BAD_REQUEST,
            Error::Oidc(e) => e.status(),
            Error::Policy(_) => StatusCode::FORBIDDEN,
            Error::BigCommerce(ApiError::RateLimited { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            Error::BigCommerce(_) | Error::CustomerNotCreated(_) => StatusCode::BAD_GATEWAY,
            Error::Db(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Session(_)
            | Error::NoSessionLayer
            | Error::LoginToken(_)
            | Error::Template(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable reason code: in JSON bodies, on the page, and in the log line.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Shared(e) => e.code(),
            Error::UnknownConnection(_) => "unknown_connection",
            Error::NoConnections => "no_connections",
            Error::StoreNotSetUp => "store_not_set_up",
            Error::NoConnectionForDomain(_) => "no_connection_for_domain",
            Error::BadEmailInput => "bad_email_input",
            Error::UnknownChannel(_) => "unknown_channel",
            Error::ConnectionNotForChannel { .. } => "connection_not_for_channel",
            Error::BadParameter(_) => "bad_parameter",
            Error::CallbackParams(_) => "bad_callback_request",
            Error::PendingLoginMissing => "no_pending_login",
            Error::Pending(e) => e.code(),
            Error::Oidc(e) => e.code(),
            Error::Policy(e) => e.code(),
            Error::BigCommerce(ApiError::RateLimited { .. }) => "bigcommerce_rate_limited",
            Error::BigCommerce(ApiError::ResponseTooLarge { .. }) => {
                "bigcommerce_response_too_large"
            }
            Error::BigCommerce(ApiError::Timeout(_)) => "bigcommerce_timeout",
            Error::BigCommerce(_) => "bigcommerce_unavailable",
            Error::CustomerNotCreated(_) => "bigcommerce_customer_not_created",
            Error::Session(_) => "session_store_failed",
            Error::NoSessionLayer => "session_layer_missing",
            Error::Db(_) => "database_unavailable",
            Error::LoginToken(_) => "login_token_failed",
            Error::Template(_) => "page_render_failed",
            Error::NotFound => "not_found",
            Error::SignInIncomplete => "sign_in_incomplete",
            Error::TooManyRequests { .. } => "too_many_requests",
            Error::ConnectionRateLimited { .. } => "connection_rate_limited",
            Error::AdminDisabled => "admin_disabled",
            Error::AdminSignInRequired => "admin_sign_in_required",
            Error::AdminTokenRejected => "admin_token_rejected",
            Error::NotAnAdmin => "not_an_admin",
            Error::BootstrapTokenRequired => "bootstrap_token_required",
            Error::CsrfRejected => "csrf_rejected",
            Error::AdminInput(_) => "bad_admin_request",
            Error::WebhookUnauthorized => "webhook_unauthorized",
            Error::WebhookTooLarge => "webhook_too_large",
            Error::WebhookInvalid(_) => "webhook_invalid",
            Error::Manage(e) => {
                use crate::settings::ManageError as M;
                match e {
                    M::Invalid(_) => "invalid_connection",
                    M::InvalidStore(_) => "invalid_store_settings",
                    M::InvalidAdminAccess(_) => "invalid_admin_access",
                    M::ChangedElsewhere(_) => "changed_elsewhere",
                    M::NoSecretKey => "no_secret_key",
                    M::ManagedByFile(_) | M::StoreManagedByFile | M::AdminAccessManagedByFile => {
                        "managed_by_file"
                    }
                    M::Unknown(_) => "unknown_connection",
                    M::Seal(_) => "seal_failed",
                    M::Unreadable(_) => "stored_settings_unreadable",
                    M::Db(_) => "database_unavailable",
                }
            }
        }
    }

    /// What the person reads: what happened and what they can do. Never a token, a secret
    /// or raw IdP text.
    pub fn public_message(&self) -> (&'static str, String) {
        let try_again =
            "Go back to the store and choose \u{201c}Sign in with company account\u{201d} again.";
        match self {
            Error::Shared(e) => e.public_message(),
            Error::UnknownConnection(_) => (
                "Unknown sign-in option",
                "This sign-in link names a company login that is not configured. Use the button on the store's sign-in page.".into(),
            ),
            Error::NoConnections => (
                "Company sign-in is not set up yet",
                "This store has not connected a company identity provider yet. Sign in with your store password, or try again later.".into(),
            ),
            Error::StoreNotSetUp => (
                "Company sign-in is not set up yet",
                "This gateway is not connected to the store yet. Sign in with your store password, or try again later.".into(),
            ),
            Error::NoConnectionForDomain(_) => (
                "No company login for this email",
                "Your email domain is not set up for company sign-in on this store. Check the address, or sign in with your store password.".into(),
            ),
            Error::BadEmailInput => (
                "Email address not valid",
                "Enter your work email address, for example name@company.com.".into(),
            ),
            Error::ConnectionNotForChannel { .. } => (
                "This company login is not available on this storefront",
                "Your company's sign-in is set up for another storefront of this store. Sign in there, or with your store password.".into(),
            ),
            Error::BadParameter(_) => (
                "This sign-in link is not valid",
                "The link that brought you here was changed or cut short. Use the button on the store's sign-in page.".into(),
            ),
            Error::BigCommerce(ApiError::RateLimited { .. }) => (
                "The store is busy",
                "Too many people are signing in right now. Please wait a minute and try again.".into(),
            ),
            Error::UnknownChannel(_) => (
                "Unknown storefront",
                "This sign-in link names a storefront that is not configured. Use the button on the store's sign-in page.".into(),
            ),
            Error::CallbackParams(_)
            | Error::PendingLoginMissing
            | Error::Pending(
                PendingError::ConnectionGone(_)
                | PendingError::NotAdminConnection(_)
                | PendingError::IssuerChanged(_),
            ) => (
                "This sign-in link is no longer valid",
                format!("The sign-in was already completed, was started in another browser, or the link was changed. {try_again}"),
            ),
            Error::Pending(PendingError::WrongCallback { .. }) => (
                "This sign-in came back from the wrong place",
                format!("The answer to this sign-in came from another company's sign-in service than the one it was sent to, so it was not accepted. If you did not expect this, close this page and tell the store. {try_again}"),
            ),
            Error::Pending(PendingError::Expired) => (
                "Sign-in took too long",
                format!("For your security a sign-in must be finished within a few minutes. {try_again}"),
            ),
            Error::Oidc(e) => e.public_message(),
            Error::Policy(e) => e.public_message(),
            Error::BigCommerce(_) => (
                "The store is not answering",
                "We could not reach the store to finish signing you in. Please try again in a minute.".into(),
            ),
            Error::CustomerNotCreated(_) => (
                "The store did not create your account",
                "The store refused to create a customer account for your email address. Please try again in a minute; if it happens again, contact the store and quote the reference below.".into(),
            ),
            Error::Session(_)
            | Error::NoSessionLayer
            | Error::LoginToken(_)
            | Error::Template(_)
            | Error::Db(_) => (
                "Something went wrong on our side",
                format!("The sign-in could not be completed. {try_again}"),
            ),
            Error::NotFound => ("Page not found", "There is nothing at this address.".into()),
            Error::SignInIncomplete => (
                "Your account is taking too long to set up",
                format!("Many people are signing in for the first time right now, and your store account was not ready in time. {try_again}"),
            ),
            Error::AdminDisabled => (
                "The admin console is not enabled",
                "Set an admin token (BCSSO_ADMIN_TOKEN or [admin] token_file) and restart the gateway.".into(),
            ),
            Error::AdminSignInRequired => (
                "Admin sign-in required",
                "Sign in to the admin console, or send the admin token as a Bearer token.".into(),
            ),
            Error::AdminTokenRejected => (
                "Wrong admin token",
                "That is not the admin token of this gateway. Check for stray spaces and try again.".into(),
            ),
            Error::NotAnAdmin => (
                "You are not an admin of this gateway",
                "Your company sign-in worked, but your account is not on this gateway's admin list. Ask the person who set up the gateway.".into(),
            ),
            Error::BootstrapTokenRequired => (
                "Type the admin token to change admin sign-in",
                "Who may sign in to this console, and the connection admins sign in with, change only with the admin token (the bootstrap token from the gateway's configuration) typed again. Go back, type it in the admin token field and save again.".into(),
            ),
            Error::CsrfRejected => (
                "The form expired",
                "For your protection this form could not be accepted (its security token is missing or old). Reload the page and try again.".into(),
            ),
            Error::AdminInput(detail) => ("The request is not valid", detail.clone()),
            Error::WebhookUnauthorized => (
                "Not a callback of this store",
                format!("Callbacks must carry the {} header the gateway registered with the hook.", crate::webhooks::SECRET_HEADER),
            ),
            Error::WebhookTooLarge => (
                "Callback too large",
                format!("A customer callback is at most {} KiB.", crate::webhooks::MAX_BODY_BYTES / 1024),
            ),
            Error::WebhookInvalid(why) => ("Callback not accepted", format!("{why}.")),
            Error::Manage(crate::settings::ManageError::Invalid(errors)) => (
                "The connection settings are not valid",
                errors.iter().map(|e| form_message(&e.to_string())).collect::<Vec<_>>().join("; "),
            ),
            Error::Manage(crate::settings::ManageError::InvalidAdminAccess(errors)) => (
                "The admin sign-in settings are not valid",
                errors.iter().map(|e| form_message(&e.to_string())).collect::<Vec<_>>().join("; "),
            ),
            Error::Manage(crate::settings::ManageError::InvalidStore(errors)) => (
                "The store settings are not valid",
                errors.iter().map(|e| form_message(&e.to_string())).collect::<Vec<_>>().join("; "),
            ),
            Error::Manage(e) => ("The change was not made", e.to_string()),
            Error::TooManyRequests { retry_after } => (
                "Too many sign-in attempts",
                format!("Too many sign-in attempts came from your network. Please try again in {}.", seconds(*retry_after)),
            ),
            Error::ConnectionRateLimited { retry_after } => (
                "Too many sign-ins with this company account right now",
                format!("Too many people are signing in through your company's sign-in at once. Please try again in {}.", seconds(*retry_after)),
            ),
        }
    }
}

#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    title: &'a str,
    message: &'a str,
    correlation_id: &'a str,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub home_url: Option<&'a str>,
    pub title: &'a str,
    pub message: &'a str,
    pub code: &'a str,
    pub correlation_id: &'a str,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let ctx = RequestCtx::current();
        let status = self.status();
        // Logged inside the request span, so the line carries the correlation id. `{}` of our
        // errors never contains tokens or secrets: their sources are typed, and IdP text is
        // reduced to codes before it gets here.
        if status.is_server_error() {
            tracing::error!(reason = self.code(), error = %self, "request failed");
        } else {
            tracing::info!(reason = self.code(), error = %self, "request refused");
        }
        if matches!(self, Error::AdminSignInRequired) && !ctx.wants_json {
            return (
                StatusCode::SEE_OTHER,
                [(axum::http::header::LOCATION, "/admin/login")],
            )
                .into_response();
        }
        let (title, message) = self.public_message();
        let mut response = if ctx.wants_json {
            let body = ErrorBody {
                error: self.code(),
                title,
                message: &message,
                correlation_id: &ctx.correlation_id,
            };
            (status, Json(body)).into_response()
        } else {
            self.html(&ctx, title, &message)
        };
        let retry_after = match &self {
            Error::TooManyRequests { retry_after }
            | Error::ConnectionRateLimited { retry_after } => Some((*retry_after).max(1)),
            Error::BigCommerce(ApiError::RateLimited { retry_after }) => {
                Some(retry_after.as_secs().max(1))
            }
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl Error {
    fn html(&self, ctx: &RequestCtx, title: &str, message: &str) -> Response {
        let page = ErrorPage {
            home_url: ctx.home_url.as_deref(),
            title,
            message,
            code: self.code(),
            correlation_id: &ctx.correlation_id,
        };
        let html = page.render().unwrap_or_else(|_| {
            // A fixed fallback: a template failure must not turn into a bare 500.
            format!(
                "<!doctype html><title>Sign-in error</title><h1>Sign-in error</h1><p>Reference: {}</p>",
                ctx.correlation_id
            )
        });
        (self.status(), Html(html)).into_response()
    }
}

/// "1 second", "30 seconds": the wait a 429 page states, the same as its `Retry-After`.
fn seconds(n: u64) -> String {
    match n.max(1) {
        1 => "1 second".to_owned(),
        n => format!("{n} seconds"),
    }
}

/// A config error as a form shows it: without the `connections[0].` or `store.` prefix
/// that only makes sense in a file.
pub fn form_message(message: &str) -> String {
    ["connections[0].", "store."]
        .iter()
        .find_map(|p| message.strip_prefix(p))
        .unwrap_or(message)
        .to_owned()
}
