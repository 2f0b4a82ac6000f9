//! Connection pages: add, edit, enable, disable, delete.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};

use super::connection_form::ConnectionForm;
use crate::AppState;
use crate::admin::input::Fields;
use crate::admin::{self, Action, AdminUser, CsrfForm};
use crate::error::Error;
use crate::routes::{render, see_other};
use crate::settings::{ManageError, Source};

#[derive(Template)]
#[template(path = "admin/connection_form.html")]
pub struct ConnectionPage {
    csrf: String,
    /// `None` when creating.
    editing: Option<String>,
    /// The connection admins sign in with: saving it needs the admin token typed again.
    admin_connection: bool,
    form: ConnectionForm,
    errors: Vec<String>,
    has_secret_key: bool,
    redirect_uri: String,
    /// BigCommerce customer groups (id, name) to choose from.
    groups: Vec<(i64, String)>,
    groups_error: Option<String>,
}

async fn connection_page(
    app: &AppState,
    csrf: String,
    editing: Option<String>,
    form: ConnectionForm,
    errors: Vec<String>,
) -> Response {
    // The customer groups to map to, from BigCommerce; the form works without them.
    let groups = match app.bigcommerce() {
        Ok(api) => api
            .client
            .customer_groups()
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let (groups, groups_error) = match groups {
        Ok(groups) => (groups.into_iter().map(|g| (g.id, g.name)).collect(), None),
        Err(e) => {
            tracing::warn!(error = %e, "could not list customer groups for the connection form");
            (Vec::new(), Some(e))
        }
    };
    let status = super::form_status(&errors);
    // The id is known once typed; until then the form shows where it goes.
    let redirect_uri = match form.id.trim() {
        "" => app.config.redirect_uri("CONNECTION-ID"),
        id => app.config.redirect_uri(id),
    }
    .to_string();
    let page = render(&ConnectionPage {
        csrf,
        admin_connection: editing
            .as_deref()
            .is_some_and(|id| admin::is_admin_connection(app, id)),
        editing,
        form,
        errors,
        has_secret_key: app.config.database.secret_key.is_some(),
        redirect_uri,
        groups,
        groups_error,
    });
    (status, page).into_response()
}

pub async fn new_connection(State(app): State<Arc<AppState>>, admin: AdminUser) -> Response {
    let form = ConnectionForm::defaults();
    connection_page(&app, admin.0.csrf, None, form, Vec::new()).await
}

pub async fn edit_connection(
    State(app): State<Arc<AppState>>,
    admin: AdminUser,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    let all = app.connections.all();
    let entry = all
        .iter()
        .find(|e| e.connection.id.as_str() == id)
        .ok_or_else(|| Error::UnknownConnection(id.clone()))?;
    if entry.source == Source::File {
        return Err(ManageError::ManagedByFile(id).into());
    }
    let form = ConnectionForm::from_connection(&entry.connection);
    Ok(connection_page(&app, admin.0.csrf, Some(id), form, Vec::new()).await)
}

pub async fn create_connection(
    State(app): State<Arc<AppState>>,
    admin: AdminUser,
    CsrfForm(f): CsrfForm<Fields>,
) -> Result<Response, Error> {
    save_from_form(&app, admin, &f, None).await
}

pub async fn update_connection(
    State(app): State<Arc<AppState>>,
    admin: AdminUser,
    Path(id): Path<String>,
    CsrfForm(f): CsrfForm<Fields>,
) -> Result<Response, Error> {
    save_from_form(&app, admin, &f, Some(id)).await
}

/// Saves a create/edit form; a refused form comes back with its values and the reasons.
async fn save_from_form(
    app: &AppState,
    AdminUser(admin): AdminUser,
    f: &Fields,
    editing: Option<String>,
) -> Result<Response, Error> {
    let form = ConnectionForm::from_fields(f);
    let raw = match form.to_raw() {
        Ok(raw) => raw,
        Err(errors) => return Ok(connection_page(app, admin.csrf, editing, form, errors).await),
    };
    if let Some(id) = editing
        .as_deref()
        .filter(|id| admin::is_admin_connection(app, id))
        && let Err(e) = admin::confirm_with_token(
            app,
            &admin.actor,
            f.get("bootstrap_token").map(String::as_str),
        )
        .await
    {
        tracing::debug!(
            connection = id,
            "admin connection edit without the admin token"
        );
        let errors = vec![e.to_string()];
        return Ok(connection_page(app, admin.csrf, editing, form, errors).await);
    }
    let secret = f.get("client_secret").cloned();
    match admin::save_connection(app, &admin.actor, raw, secret, editing.as_deref()).await {
        Ok(id) => Ok(see_other(&format!("/admin/checks/connections/{id}"))),
        Err(Error::Manage(ManageError::Invalid(errors))) => {
            let errors = errors
                .iter()
                .map(|e| crate::error::form_message(&e.to_string()))
                .collect();
            Ok(connection_page(app, admin.csrf, editing, form, errors).await)
        }
        Err(e) => Err(e),
    }
}

/// The bootstrap token typed again, which changes to the admin connection need.
#[derive(Debug, serde::Deserialize)]
pub struct TokenTyped {
    bootstrap_token: Option<String>,
}

pub async fn enable_connection(
    State(app): State<Arc<AppState>>,
    admin: AdminUser,
    Path(id): Path<String>,
    CsrfForm(f): CsrfForm<TokenTyped>,
) -> Result<Response, Error> {
    connection_action(&app, &admin, &id, f, Action::Enable).await
}

pub async fn disable_connection(
    State(app): State<Arc<AppState>>,
    admin: AdminUser,
    Path(id): Path<String>,
    CsrfForm(f): CsrfForm<TokenTyped>,
) -> Result<Response, Error> {
    connection_action(&app, &admin, &id, f, Action::Disable).await
}

pub async fn delete_connection(
    State(app): State<Arc<AppState>>,
    admin: AdminUser,
    Path(id): Path<String>,
    CsrfForm(f): CsrfForm<TokenTyped>,
) -> Result<Response, Error> {
    connection_action(&app, &admin, &id, f, Action::Delete).await
}

async fn connection_action(
    app: &AppState,
    admin: &AdminUser,
    id: &str,
    form: TokenTyped,
    action: Action,
) -> Result<Response, Error> {
    if admin::is_admin_connection(app, id) {
        let typed = form.bootstrap_token.as_deref();
        admin::confirm_with_token(app, &admin.actor, typed).await?;
    }
    admin::connection_action(app, &admin.actor, id, action).await?;
    Ok(see_other("/admin"))
}
