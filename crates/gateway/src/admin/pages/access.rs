//! Admin sign-in through an IdP: which connection, and which emails or groups are admins.
//! Set in the console unless the configuration file's `[admin]` declares it.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::admin::input::Fields;
use crate::admin::{AdminUser, CsrfForm};
use crate::error::Error;
use crate::routes::{render, see_other};
use crate::settings::admin_access::RawAdminSso;

#[derive(Template)]
#[template(path = "admin/access.html")]
pub struct AccessPage {
    csrf: String,
    from_file: bool,
    admin_redirect_uri: String,
    /// (id, display name) of every connection, to choose from.
    connections: Vec<(String, String)>,
    /// The form as typed: connection id, emails and groups one a line.
    connection: String,
    emails: String,
    groups: String,
    errors: Vec<String>,
}

fn access_page(app: &AppState, csrf: String, raw: RawAdminSso, errors: Vec<String>) -> Response {
    let status = super::form_status(&errors);
    let page = render(&AccessPage {
        csrf,
        from_file: app.admin_access.from_file(),
        admin_redirect_uri: app.config.admin_redirect_uri().to_string(),
        connections: app
            .connections
            .all()
            .iter()
            .map(|e| {
                (
                    e.connection.id.to_string(),
                    e.connection.display_name.clone(),
                )
            })
            .collect(),
        connection: raw.connection.unwrap_or_default(),
        emails: raw.allowed_emails.join("\n"),
        groups: raw.allowed_groups.join("\n"),
        errors,
    });
    (status, page).into_response()
}

pub async fn access_settings_page(State(app): State<Arc<AppState>>, admin: AdminUser) -> Response {
    let raw = app
        .admin_access
        .current()
        .map(|s| crate::settings::admin_access::to_raw(&s))
        .unwrap_or_default();
    access_page(&app, admin.0.csrf, raw, Vec::new())
}

pub async fn save_access_settings(
    State(app): State<Arc<AppState>>,
    admin: AdminUser,
    CsrfForm(f): CsrfForm<Fields>,
) -> Result<Response, Error> {
    let lines = |k: &str| -> Vec<String> {
        f.get(k)
            .map(|v| {
                // Lines only: group names such as LDAP DNs contain commas.
                v.lines()
                    .map(|l| l.trim().to_owned())
                    .filter(|l| !l.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    let raw = RawAdminSso {
        connection: f.get("connection").cloned(),
        allowed_emails: lines("allowed_emails"),
        allowed_groups: lines("allowed_groups"),
    };
    // Settings declared in the file are refused as such (409) by the save.
    if !app.admin_access.from_file()
        && let Err(e) = crate::admin::confirm_with_token(
            &app,
            &admin.actor,
            f.get("bootstrap_token").map(String::as_str),
        )
        .await
    {
        return Ok(access_page(&app, admin.0.csrf, raw, vec![e.to_string()]));
    }
    match crate::admin::save_admin_access(&app, &admin.actor, raw.clone()).await {
        Ok(()) => Ok(see_other("/admin")),
        Err(Error::Manage(crate::settings::ManageError::InvalidAdminAccess(errors))) => {
            let errors = errors.iter().map(ToString::to_string).collect();
            Ok(access_page(&app, admin.0.csrf, raw, errors))
        }
        Err(e) => Err(e),
    }
}
