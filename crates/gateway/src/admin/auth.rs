//! Signing in to the admin side, without HTTP: the bootstrap token (the console's form and
//! the API's Bearer token), an IdP (admin SSO), the CSRF tokens of the sign-in form and of
//! an admin session, and the token typed again for changes to who may sign in.

use std::sync::Arc;

use tower_sessions::Session;

use super::audit::audit;
use super::random_token;
use super::session::{AdminSession, AdminVia, establish, token_fingerprint};
use crate::AppState;
use crate::db::{AuditEvent, AuditKind};
use crate::domain::same_secret;
use crate::error::Error;
use crate::oidc::Callback;

const LOGIN_CSRF_KEY: &str = "admin_login_csrf";

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
    // The same budget as the sign-in form: a console session must not become a way to
    // guess the bootstrap token without limit.
    let ip = crate::telemetry::RequestCtx::current().client_ip;
    let typed = typed.filter(|t| !t.trim().is_empty());
    if typed.is_some() {
        app.limits.admin_attempt(ip)?;
    }
    match typed {
        Some(t) if same_secret(t.trim(), token) => Ok(()),
        typed => {
            // A wrong guess by someone who holds a console session is worth a record.
            if typed.is_some() {
                app.limits.admin_failed(ip);
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
    let console_managed =
        app.connections.all().iter().any(|e| {
            e.connection.id.as_str() == id && e.source == crate::settings::Source::Console
        });
    console_managed
        && app
            .admin_access
            .current()
            .is_some_and(|sso| sso.connection == id)
}

/// Checks the Bearer token of an admin API call from `ip`; returns the caller's actor. A
/// client out of failed attempts is refused before its token is looked at, so a locked-out
/// guesser learns nothing. A wrong token is a guess: it costs the client one attempt and is
/// audited with its IP and user agent. No token at all guesses nothing and is only refused.
pub async fn api_caller(
    app: &AppState,
    ip: Option<std::net::IpAddr>,
    presented: Option<&str>,
) -> Result<String, Error> {
    app.limits.admin_attempt(ip)?;
    let token = configured_token(app)?;
    match presented {
        Some(p) if same_secret(p, token) => Ok("api-token".to_owned()),
        None => Err(Error::AdminSignInRequired),
        Some(_) => {
            app.limits.admin_failed(ip);
            refused(app, "api_token_rejected", None).await;
            tracing::info!(reason = "api_token_rejected", "admin API call refused");
            Err(Error::AdminSignInRequired)
        }
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
        crate::domain::ChannelId(0),
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
    // The admin connection can change in the console while an admin is at the IdP: the
    // callback must come back for the connection and issuer it was started with (rule 8).
    let (now, ttl) = (app.clock.now(), app.config.server.pending_login_ttl);
    let conn = pending.resume(Callback::Admin(&conn.id), &app.connections.all(), now, ttl)?;
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
            refused_identity(app, &conn, &identity, e.code()).await;
            return Err(e.into());
        }
    };
    let by_email = sso.allowed_emails.contains(&email);
    let by_group = identity
        .groups
        .iter()
        .any(|g| sso.allowed_groups.contains(g));
    if !by_email && !by_group {
        refused_identity(app, &conn, &identity, Error::NotAnAdmin.code()).await;
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

/// A refused admin SSO sign-in whose ID token was verified, in the audit trail with who it
/// was.
async fn refused_identity(
    app: &AppState,
    conn: &crate::config::Connection,
    identity: &crate::oidc::Identity,
    reason: &str,
) {
    let event = AuditEvent {
        connection: Some(conn.id.to_string()),
        subject: Some(identity.subject.clone()),
        email: identity.email.clone(),
        reason: Some(reason.to_owned()),
        ..AuditEvent::default()
    };
    audit(app, AuditKind::AdminSignInRefused, None, Some(event)).await;
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
