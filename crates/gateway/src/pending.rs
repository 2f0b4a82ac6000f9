//! Pending logins in the shopper's server-side session, keyed by `state`.
//!
//! Several may be open at once (two tabs), at most [`MAX_PENDING`]; taking one removes it,
//! so a `state` works once and only in the browser session that started it (SECURITY.md
//! rule 7).

use tower_sessions::Session;

use crate::oidc::PendingLogin;

const KEY: &str = "pending_logins";
pub const MAX_PENDING: usize = 5;

pub async fn remember(
    session: &Session,
    pending: PendingLogin,
) -> Result<(), tower_sessions::session::Error> {
    let mut list: Vec<PendingLogin> = session.get(KEY).await?.unwrap_or_default();
    list.push(pending);
    if list.len() > MAX_PENDING {
        let excess = list.len() - MAX_PENDING;
        list.drain(..excess);
    }
    session.insert(KEY, list).await
}

/// Removes and returns the pending login started with `state`, if this session has one.
pub async fn take(
    session: &Session,
    state: &str,
) -> Result<Option<PendingLogin>, tower_sessions::session::Error> {
    let mut list: Vec<PendingLogin> = session.get(KEY).await?.unwrap_or_default();
    let Some(pos) = list
        .iter()
        .position(|p| constant_time_eq(p.state.as_bytes(), state.as_bytes()))
    else {
        return Ok(None);
    };
    let pending = list.remove(pos);
    session.insert(KEY, list).await?;
    Ok(Some(pending))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
