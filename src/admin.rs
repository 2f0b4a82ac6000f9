//! The admin side, without HTTP: who is an admin, CSRF tokens, and the changes an admin can
//! make, each written to the audit trail with who made it.

use std::sync::Arc;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use crate::AppState;
use crate::error::Error;
use crate::store::{AuditEvent, AuditKind, IdentityLink};

const SESSION_KEY: &str = "admin";
const LOGIN_CSRF_KEY: &str = "admin_login_csrf";

/// What the admin's session remembers once signed in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminSession {
    /// Who, for the audit trail.
    pub actor: String,
    /// The CSRF token every form of this session must carry.
    pub csrf: String,
    pub signed_in_at: i64,
}

pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Constant-time comparison, so response timing does not leak how much of a guess matched.
pub fn same_secret(a: &str, b: &str) -> bool {
    use sha2::{Digest, Sha256};
    // Hashing first makes the comparison length-independent too.
    let (x, y) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

/// The bootstrap token, or `AdminDisabled` when none is configured.
fn configured_token(app: &AppState) -> Result<&str, Error> {
    app.config
        .admin_token
        .as_ref()
        .map(|t| t.expose())
        .ok_or(Error::AdminDisabled)
}

/// Checks a bearer token of the admin API.
pub fn check_api_token(app: &AppState, presented: Option<&str>) -> Result<String, Error> {
    let token = configured_token(app)?;
    match presented {
        Some(p) if same_secret(p, token) => Ok("api-token".to_owned()),
        _ => Err(Error::AdminSignInRequired),
    }
}

pub async fn current(session: &Session) -> Result<Option<AdminSession>, Error> {
    Ok(session.get(SESSION_KEY).await?)
}

/// The CSRF token of the sign-in form, created on first view.
pub async fn login_csrf(app: &AppState, session: &Session) -> Result<String, Error> {
    configured_token(app)?;
    if let Some(t) = session.get::<String>(LOGIN_CSRF_KEY).await? {
        return Ok(t);
    }
    let t = random_token();
    session.insert(LOGIN_CSRF_KEY, &t).await?;
    Ok(t)
}

/// Signs an admin in with the bootstrap token. The session id is renewed (fixation) and a
/// fresh CSRF token is issued; both outcomes are audited.
pub async fn sign_in(
    app: &Arc<AppState>,
    session: &Session,
    token: &str,
    csrf: &str,
) -> Result<AdminSession, Error> {
    let expected = configured_token(app)?;
    let form_csrf: Option<String> = session.get(LOGIN_CSRF_KEY).await?;
    if !form_csrf.is_some_and(|t| same_secret(&t, csrf)) {
        return Err(Error::CsrfRejected);
    }
    if !same_secret(token, expected) {
        audit(app, AuditKind::AdminSignInRefused, None, None).await;
        return Err(Error::AdminTokenRejected);
    }
    session.cycle_id().await?;
    session.remove::<String>(LOGIN_CSRF_KEY).await?;
    let admin = AdminSession {
        actor: "bootstrap-token".into(),
        csrf: random_token(),
        signed_in_at: app.clock.now(),
    };
    session.insert(SESSION_KEY, &admin).await?;
    audit(app, AuditKind::AdminSignedIn, Some(&admin.actor), None).await;
    Ok(admin)
}

pub async fn sign_out(session: &Session) -> Result<(), Error> {
    session.flush().await?;
    Ok(())
}

/// The form's CSRF token must be the session's.
pub fn check_csrf(admin: &AdminSession, presented: &str) -> Result<(), Error> {
    if same_secret(&admin.csrf, presented) {
        Ok(())
    } else {
        Err(Error::CsrfRejected)
    }
}

/// Removes an identity link: the next sign-in of that login goes by email again, under the
/// email policy. Audited with the link as it was.
pub async fn remove_link(
    app: &AppState,
    actor: &str,
    issuer: &str,
    subject: &str,
) -> Result<IdentityLink, Error> {
    let store_hash = &app.config.store.store_hash;
    let link = app
        .store
        .delete_link(store_hash, issuer, subject)
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
        connection: Some(link.connection.clone()),
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
        actor,
        customer_id = link.customer_id,
        "identity link removed"
    );
    Ok(link)
}

/// Creates a connection, or updates one (`editing`), and audits the change with the
/// settings before and after (the secret only as "changed"/"unchanged"). Returns its id.
pub async fn save_connection(
    app: &AppState,
    actor: &str,
    raw: crate::config::RawConnection,
    secret: Option<String>,
    editing: Option<&str>,
) -> Result<String, Error> {
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
    change: &crate::connections::Change,
    kind: AuditKind,
) {
    // New settings take effect at the next sign-in: drop what discovery cached.
    if let Ok(id) = crate::domain::ConnectionId::parse(&change.id) {
        app.oidc.forget(&id);
    }
    let detail = serde_json::json!({ "before": change.before, "after": change.after });
    tracing::info!(actor, connection = %change.id, kind = kind.as_str(), "connection changed");
    audit(
        app,
        kind,
        Some(actor),
        Some(AuditEvent {
            connection: Some(change.id.clone()),
            detail: Some(detail.to_string()),
            ..AuditEvent::default()
        }),
    )
    .await;
}

async fn audit(app: &AppState, kind: AuditKind, actor: Option<&str>, base: Option<AuditEvent>) {
    app.audit(AuditEvent {
        kind,
        actor: actor.map(str::to_owned),
        ..base.unwrap_or_default()
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_by_value_only() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "x"));
    }

    #[test]
    fn tokens_are_random_and_long() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
