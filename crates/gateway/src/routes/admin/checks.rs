//! The store check and connection test pages.

// Handlers share the parent's imports and input helpers.
use super::*;

pub(super) struct CheckView {
    name: &'static str,
    status: &'static str,
    message: String,
}

#[derive(Template)]
#[template(path = "admin/checks.html")]
pub(super) struct ChecksPage {
    csrf: String,
    title: String,
    /// Set for a connection test: offers "Try sign-in".
    connection_id: Option<String>,
    overall: &'static str,
    checks: Vec<CheckView>,
}

pub(super) fn checks_page(
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
pub(super) async fn check_store(
    State(app): State<Arc<AppState>>,
    session: Session,
) -> Result<Response, Error> {
    let admin = signed_in(&session).await?;
    let checks = store_checks(&app).await;
    Ok(checks_page(
        admin.csrf,
        format!("Store {}", app.config.store.store_hash),
        None,
        &checks,
    ))
}

/// The store checks against the settings in force; one failed check while none are set.
pub(super) async fn store_checks(app: &AppState) -> Vec<Check> {
    match app.store_settings.current() {
        Some(api) => {
            let connections = app.connections.enabled();
            crate::bigcommerce::diagnose::diagnose(&api.client, &api.settings, &connections).await
        }
        None => vec![Check::new(
            "Store settings",
            diagnostics::CheckStatus::Failed,
            "the store's API account and storefront channels are not set yet: enter them under Store settings"
                .to_owned(),
        )],
    }
}

/// "Test connection": discovery, issuer, endpoints, PKCE, algorithms, keys, scopes.
pub(super) async fn check_connection(
    State(app): State<Arc<AppState>>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    let admin = signed_in(&session).await?;
    let conn = any_connection(&app, id)?;
    let checks = crate::oidc::diagnose::diagnose(
        app.oidc.http(),
        &conn,
        &app.config.redirect_uri(conn.id.as_str()),
    )
    .await;
    Ok(checks_page(
        admin.csrf,
        format!("Connection {}", conn.display_name),
        Some(conn.id.to_string()),
        &checks,
    ))
}
