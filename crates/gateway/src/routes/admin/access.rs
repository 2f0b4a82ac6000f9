//! Admin sign-in through an IdP: which connection, and which emails or groups are admins.
//! Set in the console unless the configuration file's `[admin]` declares it.

// Handlers share the parent's imports and input helpers.
use super::*;
use crate::admin_access::RawAdminSso;

#[derive(Template)]
#[template(path = "admin/access.html")]
pub(super) struct AccessPage {
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
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
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

pub(super) async fn access_settings_page(
    State(app): State<Arc<AppState>>,
    session: Session,
) -> Result<Response, Error> {
    let admin = signed_in(&session).await?;
    let raw = app
        .admin_access
        .current()
        .map(|s| crate::admin_access::to_raw(&s))
        .unwrap_or_default();
    Ok(access_page(&app, admin.csrf, raw, Vec::new()))
}

pub(super) async fn save_access_settings(
    State(app): State<Arc<AppState>>,
    session: Session,
    RawForm(body): RawForm,
) -> Result<Response, Error> {
    let admin = signed_in(&session).await?;
    let f = fields(&body)?;
    admin::check_csrf(&admin, f.get("csrf").map(String::as_str).unwrap_or(""))?;
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
        && let Err(e) = admin::confirm_with_token(
            &app,
            &admin.actor,
            f.get("bootstrap_token").map(String::as_str),
        )
        .await
    {
        return Ok(access_page(&app, admin.csrf, raw, vec![e.to_string()]));
    }
    match admin::save_admin_access(&app, &admin.actor, raw.clone()).await {
        Ok(()) => Ok(see_other("/admin")),
        Err(Error::Manage(crate::managed::ManageError::InvalidAdminAccess(errors))) => {
            let errors = errors.iter().map(ToString::to_string).collect();
            Ok(access_page(&app, admin.csrf, raw, errors))
        }
        Err(e) => Err(e),
    }
}

fn access_json(app: &AppState) -> serde_json::Value {
    let current = app.admin_access.current();
    serde_json::json!({
        "managed_by": current.as_ref().map(|_| app.admin_access.source().as_str()),
        "data": current.map(|s| crate::admin_access::describe(&s)),
    })
}

pub(super) async fn api_access(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    api_admin(&app, &headers)?;
    Ok(Json(access_json(&app)).into_response())
}

/// `PUT /admin/api/access`: `{connection, allowed_emails, allowed_groups}`; a null or empty
/// `connection` turns admin sign-in through an IdP off.
pub(super) async fn api_update_access(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Error> {
    let actor = api_admin(&app, &headers)?;
    let raw: RawAdminSso = serde_json::from_slice(&body)
        .map_err(|e| Error::AdminInput(format!("body is not admin sign-in settings: {e}")))?;
    admin::save_admin_access(&app, &actor, raw).await?;
    Ok(Json(access_json(&app)).into_response())
}
