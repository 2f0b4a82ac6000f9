use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::AppState;

/// Liveness for load balancers: the process serves requests. It does not call the IdP or
/// BigCommerce, so an outage there does not take every replica out of rotation.
pub async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: this replica can finish a sign-in with what it owns: the database answers,
/// the session store (Redis, when configured) answers, and the store's API account is set.
/// Never the IdP or BigCommerce: their outage must not take every replica out at once.
/// Each check has a short deadline, so a hung dependency makes the replica unready quickly.
pub async fn ready(State(app): State<Arc<AppState>>) -> (StatusCode, Json<Value>) {
    const DEADLINE: Duration = Duration::from_secs(2);
    let timed_out = || "no answer within 2 s".to_owned();
    let database = tokio::time::timeout(DEADLINE, app.db.ping())
        .await
        .map_err(|_| timed_out())
        .and_then(|r| r.map_err(|e| e.to_string()));
    let sessions = tokio::time::timeout(DEADLINE, app.sessions.ping())
        .await
        .map_err(|_| timed_out())
        .and_then(|r| r);
    let store_settings = app
        .store_settings
        .current()
        .map(|_| ())
        .ok_or_else(|| "the store's API account is not set up yet (admin console)".to_owned());
    let checks = [
        ("database", database),
        ("sessions", sessions),
        ("store_settings", store_settings),
    ];
    let ready = checks.iter().all(|(_, r)| r.is_ok());
    let detail: serde_json::Map<String, Value> = checks
        .into_iter()
        .map(|(name, r)| {
            let v = match r {
                Ok(()) => json!({ "status": "ok" }),
                Err(e) => {
                    tracing::warn!(check = name, error = %e, "not ready");
                    json!({ "status": "failed", "message": e })
                }
            };
            (name.to_owned(), v)
        })
        .collect();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({ "status": if ready { "ready" } else { "not_ready" }, "checks": detail });
    (status, Json(body))
}
