//! The three checks of the admin side as axum extractors, so that a handler states what it
//! needs in its signature and cannot forget to check it:
//!
//! - [`AdminUser`]: a signed-in admin, checked again on this request;
//! - [`CsrfForm`]: a form body whose `csrf` field is the admin session's token;
//! - [`ApiAdmin`]: an API caller with the admin token, within its budget of failures.
//!
//! Each rejects with an [`Error`], rendered like every other refusal.

use std::ops::Deref;
use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequestParts, RawForm, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use tower_sessions::Session;

use super::session::{self, AdminSession};
use super::{auth, input};
use crate::AppState;
use crate::client_ip::ClientIp;
use crate::error::Error;

/// The admin signed in to this request's session, checked again first (lifetime, "sign
/// out all", still let in by what let them in; a session that fails is ended). Without one
/// the request is refused with `AdminSignInRequired`: a page redirects to the sign-in form.
/// `Option<AdminUser>` is for pages that anyone may see.
#[derive(Debug, Clone)]
pub struct AdminUser(pub AdminSession);

impl Deref for AdminUser {
    type Target = AdminSession;

    fn deref(&self) -> &AdminSession {
        &self.0
    }
}

/// The outcome of this request's check, kept so that [`CsrfForm`] and [`AdminUser`] in one
/// handler check once.
#[derive(Clone)]
struct Checked(Option<AdminUser>);

impl OptionalFromRequestParts<Arc<AppState>> for AdminUser {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<AppState>,
    ) -> Result<Option<Self>, Error> {
        if let Some(Checked(admin)) = parts.extensions.get::<Checked>() {
            return Ok(admin.clone());
        }
        let session = parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or(Error::NoSessionLayer)?;
        let admin = session::revalidate(app, &session).await?.map(AdminUser);
        parts.extensions.insert(Checked(admin.clone()));
        Ok(admin)
    }
}

impl FromRequestParts<Arc<AppState>> for AdminUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<AppState>) -> Result<Self, Error> {
        <Self as OptionalFromRequestParts<_>>::from_request_parts(parts, app)
            .await?
            .ok_or(Error::AdminSignInRequired)
    }
}

/// A console form, read as `T`, from a signed-in admin whose session's CSRF token is its
/// `csrf` field. In that order: who first (a signed-out browser goes to the sign-in form),
/// then the token (403 `csrf_rejected`), then the fields. A field given twice is refused.
pub struct CsrfForm<T>(pub T);

/// The form of a button that sends nothing but its CSRF token.
#[derive(Debug, serde::Deserialize)]
pub struct NoFields {}

impl<T: DeserializeOwned + Send> FromRequest<Arc<AppState>> for CsrfForm<T> {
    type Rejection = Error;

    async fn from_request(req: Request, app: &Arc<AppState>) -> Result<Self, Error> {
        let (mut parts, body) = req.into_parts();
        let admin = <AdminUser as FromRequestParts<_>>::from_request_parts(&mut parts, app).await?;
        let RawForm(body) = RawForm::from_request(Request::from_parts(parts, body), app)
            .await
            .map_err(|e| Error::AdminInput(e.body_text()))?;
        let fields = input::fields(&body)?;
        auth::check_csrf(&admin, fields.get("csrf").map_or("", String::as_str))?;
        serde_urlencoded::from_bytes(&body)
            .map(CsrfForm)
            .map_err(|e| Error::AdminInput(format!("the form is not valid: {e}")))
    }
}

/// A caller of the JSON API with `Authorization: Bearer <admin token>`; `actor` is how the
/// audit trail names it. A client out of failed attempts is refused (429) before its token
/// is looked at; a wrong token costs one attempt and is audited (see [`auth::api_caller`]).
#[derive(Debug, Clone)]
pub struct ApiAdmin {
    pub actor: String,
}

impl FromRequestParts<Arc<AppState>> for ApiAdmin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<AppState>) -> Result<Self, Error> {
        let ClientIp(ip) = parts
            .extensions
            .get::<ClientIp>()
            .copied()
            .unwrap_or_default();
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|v| v.trim().to_owned());
        let actor = auth::api_caller(app, ip, presented.as_deref()).await?;
        Ok(ApiAdmin { actor })
    }
}
