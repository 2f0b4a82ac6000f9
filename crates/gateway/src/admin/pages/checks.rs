//! The store check and connection test pages.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;

use crate::AppState;
use crate::admin::{AdminUser, checks};
use crate::diagnostics::{self, Check};
use crate::error::Error;
use crate::routes::render;

pub struct CheckView {
    name: &'static str,
    status: &'static str,
    message: String,
}

#[derive(Template)]
#[template(path = "admin/checks.html")]
pub struct ChecksPage {
    csrf: String,
    title: String,
    /// Set for a connection test: offers "Try sign-in".
    connection_id: Option<String>,
    overall: &'static str,
    checks: Vec<CheckView>,
}

fn checks_page(
    csrf: String,
    title: String,
    connection_id: Option<String>,
    checks: &[Check],
) -> Response {
    render(&ChecksPage {
        csrf,
        title,
        connection_id,
        overall: diagnostics::overall(checks).as_str(),
        checks: checks
            .iter()
            .map(|c| CheckView {
                name: c.name,
                status: c.status.as_str(),
                message: c.message.clone(),
            })
            .collect(),
    })
}

/// "Check": the API token, its scopes, BigCommerce's clock, customer groups, storefronts.
pub async fn check_store(State(app): State<Arc<AppState>>, admin: AdminUser) -> Response {
    let checks = checks::store_checks(&app).await;
    let title = format!("Store {}", app.config.store.store_hash);
    checks_page(admin.0.csrf, title, None, &checks)
}

/// "Test connection": discovery, issuer, endpoints, PKCE, algorithms, keys, scopes.
pub async fn check_connection(
    State(app): State<Arc<AppState>>,
    admin: AdminUser,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    let (conn, checks) = checks::connection_checks(&app, &id).await?;
    let title = format!("Connection {}", conn.display_name);
    Ok(checks_page(
        admin.0.csrf,
        title,
        Some(conn.id.to_string()),
        &checks,
    ))
}
