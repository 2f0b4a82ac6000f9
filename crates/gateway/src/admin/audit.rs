//! The changes an admin makes, from the console or the API alike: each checked by the
//! rules both share, made, and written to the audit trail with who made it and the settings
//! before and after (secrets only as "changed"/"unchanged").

use super::actor_kind;
use crate::AppState;
use crate::config::{ConfigError, RawConnection};
use crate::db::{AuditEvent, AuditKind, IdentityLink};
use crate::error::Error;
use crate::settings::ManageError;

/// Removes an identity link: the next sign-in of that login goes by email again, under the
/// email policy. Audited with the link as it was.
pub async fn remove_link(
    app: &AppState,
    actor: &str,
    issuer: &str,
    subject: &str,
) -> Result<IdentityLink, Error> {
    let link = app
        .db
        .delete_link(issuer, subject)
        .await?
        .ok_or(Error::NotFound)?;
    let detail = serde_json::json!({
        "before": {
            "issuer": link.issuer, "subject": link.subject, "connection": link.connection,
            "customer_id": link.customer_id, "email_at_link": link.email_at_link,
        },
        "after": null,
    });
    let event = AuditEvent {
        connection: Some(link.connection.to_string()),
        subject: Some(link.subject.clone()),
        email: Some(link.email_at_link.clone()),
        customer_id: Some(link.customer_id),
        ..AuditEvent::default()
    };
    audit(
        app,
        AuditKind::LinkRemoved,
        Some(actor),
        Some(AuditEvent {
            detail: Some(detail.to_string()),
            ..event
        }),
    )
    .await;
    tracing::info!(
        actor = actor_kind(actor),
        customer_id = link.customer_id,
        "identity link removed"
    );
    Ok(link)
}

/// Creates a connection, or updates one (`editing`), and audits the change with the
/// settings before and after (the secret only as "changed"/"unchanged"). Returns its id.
/// The console's form and the API both come through here, so both get the same rules.
pub async fn save_connection(
    app: &AppState,
    actor: &str,
    raw: RawConnection,
    secret: Option<String>,
    editing: Option<&str>,
) -> Result<String, Error> {
    check_channels(app, &raw)?;
    let change = app.console().save(raw, secret, editing).await?;
    record_change(
        app,
        actor,
        &change,
        if editing.is_some() {
            AuditKind::ConnectionUpdated
        } else {
            AuditKind::ConnectionCreated
        },
    )
    .await;
    Ok(change.id)
}

/// A connection signs in to the storefront channels the store settings in force declare,
/// and no other: a channel the gateway has no storefront URL for would end every sign-in
/// there on an error page. (The configuration file checks its own connections against its
/// `[[store.channels]]` when it is loaded.)
fn check_channels(app: &AppState, raw: &RawConnection) -> Result<(), ManageError> {
    let configured: Vec<i64> = app
        .store_settings
        .current()
        .map(|api| api.settings.channels.keys().copied().collect())
        .unwrap_or_default();
    if raw.channels.iter().all(|c| configured.contains(c)) {
        return Ok(());
    }
    let choices = if configured.is_empty() {
        "none is configured yet: see Store settings".to_owned()
    } else {
        let ids: Vec<String> = configured.iter().map(i64::to_string).collect();
        ids.join(", ")
    };
    Err(ManageError::Invalid(vec![ConfigError::Invalid {
        key: "channels".into(),
        message: format!("only configured storefront channels can be chosen ({choices})"),
    }]))
}

/// Saves the console's store settings (empty secrets keep the ones in force) and audits
/// the change with the settings before and after, the secrets only as "changed"/"unchanged".
pub async fn save_store_settings(
    app: &AppState,
    actor: &str,
    form: crate::config::RawStore,
    access_token: Option<String>,
    client_secret: Option<String>,
) -> Result<(), Error> {
    check_storefront_sites(app, &form, &access_token, &client_secret).await?;
    let change = app
        .store_settings
        .save(app.settings_rows(), form, access_token, client_secret)
        .await?;
    tracing::info!(actor = actor_kind(actor), "store settings changed");
    audit_change(app, actor, AuditKind::StoreSettingsChanged, &change, None).await;
    // Measure the (possibly new) store's clock now rather than at the next interval.
    if let Err(e) = app.sync_bigcommerce_clock().await {
        tracing::warn!(error = %e, "could not read BigCommerce's clock (GET /v2/time)");
    }
    // The console's store setup subscribes to customer changes (a new client secret is a
    // new hook secret). Logged either way; the store check that follows shows the hooks.
    let _ = register_webhooks(app, actor).await;
    Ok(())
}

/// Registers (or repairs) the `store/customer/updated|deleted` hooks for the store
/// settings in force, idempotently; what was done per scope.
pub async fn register_webhooks(
    app: &AppState,
    actor: &str,
) -> Result<Vec<(&'static str, crate::webhooks::Registration)>, Error> {
    tracing::info!(
        actor = actor_kind(actor),
        "registering BigCommerce webhooks"
    );
    crate::webhooks::register_in_force(app).await
}

/// Refuses store settings whose storefront URL BigCommerce contradicts (another site for
/// the channel, or no such channel), before anything is saved. Settings that cannot be
/// built are left to the save, which names their problems.
async fn check_storefront_sites(
    app: &AppState,
    form: &crate::config::RawStore,
    access_token: &Option<String>,
    client_secret: &Option<String>,
) -> Result<(), Error> {
    let candidate = app.store_settings.candidate(
        app.settings_rows(),
        form.clone(),
        access_token.clone(),
        client_secret.clone(),
    );
    let Ok(Some(candidate)) = candidate else {
        return Ok(());
    };
    let order: Vec<i64> = form.channels.iter().map(|c| c.id).collect();
    let refusals =
        crate::bigcommerce::channels::refusals(&candidate.client, &candidate.settings, &order)
            .await;
    if refusals.is_empty() {
        Ok(())
    } else {
        Err(ManageError::InvalidStore(refusals).into())
    }
}

/// Saves the console's admin sign-in settings and audits the change.
pub async fn save_admin_access(
    app: &AppState,
    actor: &str,
    raw: crate::settings::admin_access::RawAdminSso,
) -> Result<(), Error> {
    let change = app
        .admin_access
        .save(app.settings_rows(), &app.connections, raw)
        .await?;
    tracing::info!(actor = actor_kind(actor), "admin sign-in settings changed");
    audit_change(app, actor, AuditKind::AdminAccessChanged, &change, None).await;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Enable,
    Disable,
    Delete,
}

pub async fn connection_action(
    app: &AppState,
    actor: &str,
    id: &str,
    action: Action,
) -> Result<(), Error> {
    let console = app.console();
    let (change, kind) = match action {
        Action::Enable => (
            console.set_enabled(id, true).await?,
            AuditKind::ConnectionUpdated,
        ),
        Action::Disable => (
            console.set_enabled(id, false).await?,
            AuditKind::ConnectionUpdated,
        ),
        Action::Delete => (console.delete(id).await?, AuditKind::ConnectionDeleted),
    };
    record_change(app, actor, &change, kind).await;
    Ok(())
}

async fn record_change(
    app: &AppState,
    actor: &str,
    change: &crate::settings::Change,
    kind: AuditKind,
) {
    // New settings take effect at the next sign-in: drop what discovery cached.
    if let Ok(id) = crate::domain::ConnectionId::parse(&change.id) {
        app.oidc.forget(&id);
    }
    tracing::info!(actor = actor_kind(actor), connection = %change.id, kind = kind.as_str(), "connection changed");
    audit_change(app, actor, kind, change, Some(change.id.clone())).await;
}

/// An admin change in the audit trail: who, and the settings before and after (secrets
/// already reduced to "changed"/"unchanged" by whoever made the `Change`).
async fn audit_change(
    app: &AppState,
    actor: &str,
    kind: AuditKind,
    change: &crate::settings::Change,
    connection: Option<String>,
) {
    let detail = serde_json::json!({ "before": change.before, "after": change.after });
    audit(
        app,
        kind,
        Some(actor),
        Some(AuditEvent {
            connection,
            detail: Some(detail.to_string()),
            ..AuditEvent::default()
        }),
    )
    .await;
}

pub(super) async fn audit(
    app: &AppState,
    kind: AuditKind,
    actor: Option<&str>,
    base: Option<AuditEvent>,
) {
    app.audit(AuditEvent {
        kind,
        actor: actor.map(str::to_owned),
        ..base.unwrap_or_default()
    })
    .await;
}
