//! Admin sessions (SECURITY.md rule 21): what a signed-in admin's session holds, its
//! absolute lifetime, the check made again on every console request, and "sign out all
//! admin sessions". Signing in itself (token, SSO) is in [`super::auth`]; the console's
//! handlers get the checked admin through [`super::AdminUser`].

use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use super::random_token;
use crate::AppState;
use crate::db::{AuditEvent, AuditKind};
use crate::domain::same_secret;
use crate::error::Error;

const SESSION_KEY: &str = "admin";

/// How long an admin session lasts from sign-in, however active (SECURITY.md rule 21): an
/// absolute lifetime, not a sliding one, so a stolen cookie or an unattended console stops
/// working the same day.
pub const ADMIN_SESSION_LIFETIME_SECS: i64 = 8 * 3600;

/// The `gateway_settings` row of the admin-session generation: "sign out all admin
/// sessions" increments it, and a session signed in under an older one is over. In the
/// database, so it reaches every replica at once.
const GENERATION_SETTING: &str = "admin_session_generation";

/// What the admin's session remembers once signed in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminSession {
    /// Who, for the audit trail.
    pub actor: String,
    /// The CSRF token every form of this session must carry.
    pub csrf: String,
    pub signed_in_at: i64,
    /// `signed_in_at` + [`ADMIN_SESSION_LIFETIME_SECS`]; activity does not move it. (Absent
    /// in sessions of earlier versions: 0, so they are over.)
    #[serde(default)]
    pub expires_at: i64,
    /// What let this admin in, checked again on every request. `None` (earlier versions):
    /// nothing to check against, so the session is over.
    #[serde(default)]
    pub via: Option<AdminVia>,
    /// The admin-session generation at sign-in.
    #[serde(default)]
    pub generation: u64,
}

/// How an admin signed in, as far as it must still hold on each request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AdminVia {
    /// The bootstrap token, as [`token_fingerprint`] (never the token): a new token ends
    /// the sessions opened with the old one.
    Token { fingerprint: String },
    /// The admin connection (id and issuer at sign-in), the verified email as it was
    /// compared, and the admin groups the user had then (only those: a groups claim can be
    /// long, a session is small).
    Sso {
        connection: String,
        issuer: String,
        email: Option<String>,
        groups: Vec<String>,
    },
}

/// A short, one-way fingerprint of the bootstrap token, to notice it changed. Domain
/// separated, so it is not the SHA-256 of the token that other software might store.
pub fn token_fingerprint(token: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"bc-sso-gateway admin session token v1\0")
        .chain_update(token.as_bytes())
        .finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The admin signed in to this session, as stored: not checked again (that is
/// [`revalidate`], which [`super::AdminUser`] runs).
pub async fn current(session: &Session) -> Result<Option<AdminSession>, Error> {
    Ok(session.get(SESSION_KEY).await?)
}

/// Checks the session's admin again, on every console request: within its absolute
/// lifetime, not signed out by "sign out all admin sessions", and still let in by what let
/// it in (the same bootstrap token; the same admin connection and issuer, and an email or
/// group still on the admin lists). A session that fails is flushed and the reason logged.
pub async fn revalidate(app: &AppState, session: &Session) -> Result<Option<AdminSession>, Error> {
    let Some(admin) = current(session).await? else {
        return Ok(None);
    };
    let ended = if app.clock.now() >= admin.expires_at {
        Some("admin_session_expired")
    } else if admin.generation != session_generation(app).await? {
        Some("admin_sessions_revoked")
    } else if !still_admitted(app, admin.via.as_ref()).await {
        Some("admin_access_withdrawn")
    } else {
        None
    };
    match ended {
        Some(reason) => {
            // Not the actor: an SSO admin's is an email, and emails stay out of the log.
            let via = match admin.via {
                Some(AdminVia::Token { .. }) => "token",
                Some(AdminVia::Sso { .. }) => "sso",
                None => "unknown",
            };
            tracing::info!(reason, via, "admin session ended");
            session.flush().await?;
            Ok(None)
        }
        None => Ok(Some(admin)),
    }
}

async fn still_admitted(app: &AppState, via: Option<&AdminVia>) -> bool {
    match via {
        None => false,
        Some(AdminVia::Token { fingerprint }) => app
            .config
            .admin_token
            .as_ref()
            .is_some_and(|t| same_secret(&token_fingerprint(t.expose()), fingerprint)),
        Some(AdminVia::Sso {
            connection,
            issuer,
            email,
            groups,
        }) => {
            // A console change on another replica counts from the next request, not from
            // the next 5-second poll. A failed read keeps the settings in force (logged).
            if let Err(e) = app.admin_access.refresh(app.settings_rows()).await {
                tracing::warn!(error = %e, "could not reload the admin sign-in settings");
            }
            let Some(sso) = app.admin_access.current() else {
                return false;
            };
            let same_connection = sso.connection == *connection
                && app
                    .connections
                    .get(connection)
                    .is_some_and(|c| c.issuer.as_str() == issuer);
            same_connection
                && (email
                    .as_ref()
                    .is_some_and(|e| sso.allowed_emails.contains(e))
                    || groups.iter().any(|g| sso.allowed_groups.contains(g)))
        }
    }
}

/// A write to the session in this request saves its record with the layer's default
/// expiry (short, for anonymous sessions): put the admin's absolute end back first.
pub async fn keep_lifetime(app: &AppState, session: &Session) -> Result<(), Error> {
    if session.is_modified()
        && let Some(admin) = current(session).await?
    {
        session.set_expiry(Some(expiry_at(app, admin.expires_at)));
    }
    Ok(())
}

/// `at` on the app's clock as a session expiry (the store and the cookie use the system
/// clock, which tests do not move).
fn expiry_at(app: &AppState, at: i64) -> tower_sessions::Expiry {
    let left = time::Duration::seconds(at - app.clock.now());
    tower_sessions::Expiry::AtDateTime(time::OffsetDateTime::now_utc() + left)
}

/// The admin-session generation in force (0 until the first "sign out all").
async fn session_generation(app: &AppState) -> Result<u64, Error> {
    let row = app.db.setting(GENERATION_SETTING).await?;
    Ok(row.and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// Signs out every admin session, on every replica, this one's included: increments the
/// generation (compare-and-swap, so two at once both count) and audits it. Sessions are
/// ended on their next request. Returns the new generation.
pub async fn sign_out_all(app: &AppState, actor: &str) -> Result<u64, Error> {
    let next = loop {
        let row = app.db.setting(GENERATION_SETTING).await?;
        let next = row
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        if app
            .db
            .replace_setting(GENERATION_SETTING, row.as_deref(), &next.to_string())
            .await?
        {
            break next;
        }
    };
    // Who did it is in the audit trail (an email, for an SSO admin).
    tracing::info!(generation = next, "all admin sessions signed out");
    app.audit(AuditEvent {
        kind: AuditKind::AdminSessionsRevoked,
        actor: Some(actor.to_owned()),
        detail: Some(serde_json::json!({ "generation": next }).to_string()),
        ..AuditEvent::default()
    })
    .await;
    Ok(next)
}

/// Makes `session` an admin session: a new id (fixation), a fresh CSRF token, the absolute
/// lifetime on the record and the cookie, and what to check again on each request. Audited.
pub(super) async fn establish(
    app: &AppState,
    session: &Session,
    actor: String,
    via: AdminVia,
) -> Result<AdminSession, Error> {
    let generation = session_generation(app).await?;
    session.cycle_id().await?;
    let now = app.clock.now();
    let admin = AdminSession {
        actor,
        csrf: random_token(),
        signed_in_at: now,
        expires_at: now + ADMIN_SESSION_LIFETIME_SECS,
        via: Some(via),
        generation,
    };
    session.set_expiry(Some(expiry_at(app, admin.expires_at)));
    session.insert(SESSION_KEY, &admin).await?;
    app.audit(AuditEvent {
        kind: AuditKind::AdminSignedIn,
        actor: Some(admin.actor.clone()),
        ..AuditEvent::default()
    })
    .await;
    Ok(admin)
}
