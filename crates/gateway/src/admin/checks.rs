//! "Check" and "Test connection": the store's API account and the IdP connections, checked
//! against the settings in force, for the console's pages and the API alike.

use crate::AppState;
use crate::config::Connection;
use crate::diagnostics::{Check, CheckStatus};
use crate::error::Error;

/// The API token, its scopes, BigCommerce's clock, customer groups, storefronts, the
/// customer webhooks; one
/// failed check while no store settings are set.
pub async fn store_checks(app: &AppState) -> Vec<Check> {
    match app.store_settings.current() {
        Some(api) => {
            let connections = app.connections.enabled();
            let destination = crate::webhooks::destination(&app.config);
            let (mut checks, hooks) = tokio::join!(
                crate::bigcommerce::diagnose::diagnose(&api.client, &api.settings, &connections),
                crate::webhooks::check(&api.client, &api.settings, &destination)
            );
            checks.push(hooks);
            checks
        }
        None => vec![Check::new(
            "Store settings",
            CheckStatus::Failed,
            "the store's API account and storefront channels are not set yet: enter them under Store settings"
                .to_owned(),
        )],
    }
}

/// Discovery, issuer, endpoints, PKCE, algorithms, keys, scopes of connection `id`,
/// enabled or not (an admin tests one before enabling it).
pub async fn connection_checks(
    app: &AppState,
    id: &str,
) -> Result<(Connection, Vec<Check>), Error> {
    let conn = any_connection(app, id)?;
    let checks = crate::oidc::diagnose::diagnose(
        app.oidc.http(),
        &conn,
        &app.config.redirect_uri(conn.id.as_str()),
    )
    .await;
    Ok((conn, checks))
}

/// A connection by id, enabled or not.
pub fn any_connection(app: &AppState, id: &str) -> Result<Connection, Error> {
    app.connections
        .any(id)
        .ok_or_else(|| Error::UnknownConnection(id.to_owned()))
}
