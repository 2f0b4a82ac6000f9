//! The admin side, without HTTP: who is an admin, CSRF tokens, and the changes an admin can
//! make, each written to the audit trail with who made it.

use std::sync::Arc;

use rand::RngCore;
use tower_sessions::Session;

use crate::AppState;
use crate::error::Error;
use crate::store::{AuditEvent, AuditKind, IdentityLink};

use crate::admin_session::establish;
pub use crate::admin_session::{
    ADMIN_SESSION_LIFETIME_SECS, AdminSession, AdminVia, current, keep_lifetime, revalidate,
    sign_out_all, token_fingerprint,
};

const LOGIN_CSRF_KEY: &str = "admin_login_csrf";

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

/// The console is on when a token or an SSO connection lets someone in.
fn console_enabled(app: &AppState) -> Result<(), Error> {
    if app.config.admin_token.is_some() || app.admin_access.current().is_some() {
        Ok(())
    } else {
        Err(Error::AdminDisabled)
    }
}

/// The bootstrap token, or `AdminDisabled` when none is configured.
fn configured_token(app: &AppState) -> Result<&str, Error> {
    app.config
        .admin_token
        .as_ref()
        .map(|t| t.expose())
        .ok_or(Error::AdminDisabled)
}

/// How an admin is signed in, for log lines: `sso`, `bootstrap-token` or `api-token`. An SSO
/// admin's actor is their email, which stays in the audit trail and out of the logs.
pub fn actor_kind(actor: &str) -> &str {
    actor.split(':').next().unwrap_or(actor)
}

/// Changes to who may sign in as an admin (admin access, and the connection admins sign in
/// with) need the bootstrap token typed again (SECURITY.md rule 21). Otherwise whoever holds
/// a console session, perhaps through that very connection, could plant an IdP of their own
/// that outlives a rotation of the token. The API already authenticates with the token.
pub async fn confirm_with_token(
    app: &AppState,
    actor: &str,
    typed: Option<&str>,
) -> Result<(), Error> {
    let token = configured_token(app).map_err(|_| Error::BootstrapTokenRequired)?;
    match typed {
        Some(t) if same_secret(t.trim(), token) => Ok(()),
        typed => {
            // A wrong guess by someone who holds a console session is worth a record.
            if typed.is_some_and(|t| !t.is_empty()) {
                audit(
                    app,
                    AuditKind::AdminSignInRefused,
                    Some(actor),
                    Some(AuditEvent {
                        reason: Some("admin_token_rejected".into()),
                        ..AuditEvent::default()
                    }),
                )
                .await;
            }
            Err(Error::BootstrapTokenRequired)
        }
    }
}

/// Whether `id` is the connection admins sign in with and the console may change it (one
/// declared in the file is read-only anyway).
pub fn is_admin_connection(app: &AppState, id: &str) -> bool {
    let console_managed = app
        .connections
        .all()
        .iter()
        .any(|e| e.connection.id.as_str() == id && e.source == crate::managed::Source::Console);
    console_managed
        && app
            .admin_access
            .current()
            .is_some_and(|sso| sso.connection == id)
}

/// Checks a bearer token of the admin API.
pub fn check_api_token(app: &AppState, presented: Option<&str>) -> Result<String, Error> {
    let token = configured_token(app)?;
    match presented {
        Some(p) if same_secret(p, token) => Ok("api-token".to_owned()),
        _ => Err(Error::AdminSignInRequired),
    }
}

/// The CSRF token of the sign-in form, created on first view.
pub async fn login_csrf(app: &AppState, session: &Session) -> Result<String, Error> {
    console_enabled(app)?;
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
        refused(app, Error::AdminTokenRejected.code(), None).await;
        return Err(Error::AdminTokenRejected);
    }
    session.remove::<String>(LOGIN_CSRF_KEY).await?;
    let via = AdminVia::Token {
        fingerprint: token_fingerprint(expected),
    };
    establish(app, session, "bootstrap-token".into(), via).await
}

const SSO_PENDING_KEY: &str = "admin_sso_pending";

fn sso_connection(
    app: &AppState,
) -> Result<
    (
        std::sync::Arc<crate::config::AdminSso>,
        crate::config::Connection,
    ),
    Error,
> {
    let sso = app.admin_access.current().ok_or(Error::NotFound)?;
    let conn = app
        .connections
        .get(&sso.connection)
        .ok_or_else(|| Error::UnknownConnection(sso.connection.clone()))?;
    Ok((sso, conn))
}

/// Starts an admin's sign-in at the admin connection's IdP; returns the authorize URL.
/// Same protections as a shopper's: PKCE, state and nonce kept in the admin session.
pub async fn sso_start(app: &AppState, session: &Session) -> Result<url::Url, Error> {
    let (_, conn) = sso_connection(app)?;
    let metadata = app.oidc.metadata(&conn).await?;
    let home = crate::redirect::RelativePath::parse("/admin")
        .map_err(|e| Error::AdminInput(e.to_string()))?;
    let (url, pending) = crate::oidc::flow::start(
        &conn,
        &metadata,
        &app.config.admin_redirect_uri(),
        0,
        &home,
        &app.clock,
    );
    session.insert(SSO_PENDING_KEY, &pending).await?;
    Ok(url)
}

/// Finishes an admin's sign-in: the ID token fully verified, then the email (verified) or
/// a group must be on the admin lists. Both outcomes are audited.
pub async fn sso_finish(
    app: &AppState,
    session: &Session,
    params: crate::oidc::CallbackParams,
) -> Result<AdminSession, Error> {
    let (sso, conn) = sso_connection(app)?;
    let state = params.state.clone().ok_or(Error::PendingLoginMissing)?;
    let pending: crate::oidc::PendingLogin = session
        .remove(SSO_PENDING_KEY)
        .await?
        .filter(|p: &crate::oidc::PendingLogin| same_secret(&p.state, &state))
        .ok_or(Error::PendingLoginMissing)?;
    // Spent now, whatever happens next (a 5xx would not save the session otherwise).
    session.save().await?;
    if app.clock.now() - pending.started_at > app.config.server.pending_login_ttl.as_secs() as i64 {
        return Err(Error::PendingLoginExpired);
    }
    // The admin connection can change in the console while an admin is at the IdP: the
    // callback must come back for the connection and issuer it was started with (rule 8).
    if pending.connection != conn.id.as_str() || pending.issuer != conn.issuer.as_str() {
        return Err(Error::PendingLoginMissing);
    }
    let identity = crate::oidc::flow::finish(
        &app.oidc,
        &conn,
        &pending,
        params,
        &app.config.admin_redirect_uri(),
        &app.clock,
        !sso.allowed_groups.is_empty(),
    )
    .await?;
    // Every check a shopper's sign-in passes (verified email, allowed domain, ASCII local
    // part, Google's `hd`) comes before the admin lists (SECURITY.md rule 21): an account
    // the connection would refuse as a shopper must not reach the console.
    let email = match crate::policy::check_hosted_domain(&conn, &identity)
        .and_then(|()| crate::policy::check_email(&conn, &identity))
    {
        Ok(email) => email.normalised(),
        Err(e) => {
            audit(
                app,
                AuditKind::AdminSignInRefused,
                None,
                Some(AuditEvent {
                    connection: Some(conn.id.to_string()),
                    subject: Some(identity.subject.clone()),
                    email: identity.email.clone(),
                    reason: Some(e.code().into()),
                    ..AuditEvent::default()
                }),
            )
            .await;
            return Err(e.into());
        }
    };
    let by_email = sso.allowed_emails.contains(&email);
    let by_group = identity
        .groups
        .iter()
        .any(|g| sso.allowed_groups.contains(g));
    if !by_email && !by_group {
        audit(
            app,
            AuditKind::AdminSignInRefused,
            None,
            Some(AuditEvent {
                connection: Some(conn.id.to_string()),
                subject: Some(identity.subject.clone()),
                email: identity.email.clone(),
                reason: Some("not_an_admin".into()),
                ..AuditEvent::default()
            }),
        )
        .await;
        return Err(Error::NotAnAdmin);
    }
    let via = AdminVia::Sso {
        connection: conn.id.to_string(),
        issuer: conn.issuer.as_str().to_owned(),
        email: Some(email.clone()),
        groups: identity
            .groups
            .iter()
            .filter(|g| sso.allowed_groups.contains(g))
            .cloned()
            .collect(),
    };
    establish(app, session, format!("sso:{email}"), via).await
}

/// Audits a refused admin SSO callback. Refusals after the ID token was verified
/// (`NotAnAdmin`, a policy refusal) are audited by [`sso_finish`] itself, with the identity.
pub async fn sso_refused(app: &AppState, error: &Error) {
    if matches!(error, Error::NotAnAdmin | Error::Policy(_)) {
        return;
    }
    let connection = app.admin_access.current().map(|s| s.connection.clone());
    refused(app, error.code(), connection).await;
}

/// A refused admin sign-in or API call in the audit trail; the client's IP and user agent
/// come with every audit event.
pub async fn refused(app: &AppState, reason: &str, connection: Option<String>) {
    let event = AuditEvent {
        connection,
        reason: Some(reason.to_owned()),
        ..AuditEvent::default()
    };
    audit(app, AuditKind::AdminSignInRefused, None, Some(event)).await;
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
        actor = actor_kind(actor),
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

/// Saves the console's store settings (empty secrets keep the ones in force) and audits
/// the change with the settings before and after, the secrets only as "changed"/"unchanged".
pub async fn save_store_settings(
    app: &AppState,
    actor: &str,
    form: crate::config::RawStore,
    access_token: Option<String>,
    client_secret: Option<String>,
) -> Result<(), Error> {
    let change = app
        .store_settings
        .save(
            &app.store,
            &app.config.store,
            app.config.database.secret_key.as_ref(),
            form,
            access_token,
            client_secret,
        )
        .await?;
    tracing::info!(actor = actor_kind(actor), "store settings changed");
    audit_change(app, actor, AuditKind::StoreSettingsChanged, &change, None).await;
    // Measure the (possibly new) store's clock now rather than at the next interval.
    if let Err(e) = app.sync_bigcommerce_clock().await {
        tracing::warn!(error = %e, "could not read BigCommerce's clock (GET /v2/time)");
    }
    Ok(())
}

/// Saves the console's admin sign-in settings and audits the change.
pub async fn save_admin_access(
    app: &AppState,
    actor: &str,
    raw: crate::admin_access::RawAdminSso,
) -> Result<(), Error> {
    let change = app
        .admin_access
        .save(
            &app.store,
            &app.config.store.store_hash,
            &app.connections,
            raw,
        )
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
    change: &crate::managed::Change,
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
    change: &crate::managed::Change,
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
