//! Signing in and out of the console: the token form, admin SSO, sign out, and "sign out
//! all admin sessions".

use std::sync::Arc;

use askama::Template;
use axum::extract::{RawForm, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tower_sessions::Session;

use crate::AppState;
use crate::admin::{AdminUser, CsrfForm, NoFields, auth, input};
use crate::client_ip::ClientIp;
use crate::error::Error;
use crate::routes::{found, render, see_other};

#[derive(Template)]
#[template(path = "admin/login.html")]
pub struct LoginPage {
    csrf: String,
    error: Option<&'static str>,
    /// The display name of the admin SSO connection, when there is one.
    sso: Option<String>,
    /// Whether the bootstrap token form is offered.
    token: bool,
}

fn login_page_view(app: &AppState, csrf: String, error: Option<&'static str>) -> LoginPage {
    let sso = app
        .admin_access
        .current()
        .and_then(|s| app.connections.get(&s.connection))
        .map(|c| c.display_name);
    LoginPage {
        csrf,
        error,
        sso,
        token: app.config.admin_token.is_some(),
    }
}

pub async fn login_page(
    State(app): State<Arc<AppState>>,
    admin: Option<AdminUser>,
    session: Session,
) -> Result<Response, Error> {
    if admin.is_some() {
        return Ok(see_other("/admin"));
    }
    let csrf = auth::login_csrf(&app, &session).await?;
    Ok(render(&login_page_view(&app, csrf, None)))
}

/// The token form. Its CSRF token is the sign-in form's (there is no admin session yet),
/// checked by [`auth::sign_in`].
pub async fn login(
    State(app): State<Arc<AppState>>,
    session: Session,
    ClientIp(ip): ClientIp,
    RawForm(body): RawForm,
) -> Result<Response, Error> {
    let form = input::fields(&body)?;
    let token = form.get("token").map(String::as_str).unwrap_or("");
    let csrf = form.get("csrf").map(String::as_str).unwrap_or("");
    match auth::sign_in(&app, &session, token.trim(), csrf).await {
        Ok(_) => Ok(see_other("/admin")),
        Err(Error::AdminTokenRejected) => {
            app.limits.admin_failed(ip);
            tracing::info!(reason = "admin_token_rejected", "admin sign-in refused");
            let csrf = auth::login_csrf(&app, &session).await?;
            let page = render(&login_page_view(
                &app,
                csrf,
                Some("That is not the admin token of this gateway."),
            ));
            Ok((StatusCode::UNAUTHORIZED, page).into_response())
        }
        Err(e) => Err(e),
    }
}

pub async fn sso_start(
    State(app): State<Arc<AppState>>,
    session: Session,
) -> Result<Response, Error> {
    let url = auth::sso_start(&app, &session).await?;
    Ok(found(url.as_str()))
}

pub async fn sso_callback(
    State(app): State<Arc<AppState>>,
    session: Session,
    ClientIp(ip): ClientIp,
    RawQuery(query): RawQuery,
) -> Result<Response, Error> {
    let finished = match crate::oidc::CallbackParams::parse_strict(query.as_deref()) {
        Ok(params) => auth::sso_finish(&app, &session, params).await,
        Err(e) => Err(Error::CallbackParams(e)),
    };
    // Every refused admin callback costs the client one failed attempt and is audited.
    if let Err(e) = &finished {
        app.limits.admin_failed(ip);
        auth::sso_refused(&app, e).await;
    }
    finished?;
    Ok(see_other("/admin"))
}

pub async fn logout(session: Session, CsrfForm(_): CsrfForm<NoFields>) -> Result<Response, Error> {
    auth::sign_out(&session).await?;
    Ok(see_other("/admin/login"))
}

/// "Sign out all admin sessions" (the Admin sign-in page): every admin session on every
/// replica ends at its next request, this one at once.
pub async fn sign_out_all(
    State(app): State<Arc<AppState>>,
    admin: AdminUser,
    session: Session,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, Error> {
    crate::admin::sign_out_all(&app, &admin.actor).await?;
    auth::sign_out(&session).await?;
    Ok(see_other("/admin/login"))
}
