use axum::Json;
use serde_json::{Value, json};

/// Liveness for load balancers: the process serves requests. It does not call the IdP or
/// BigCommerce, so an outage there does not take every replica out of rotation.
pub async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}
