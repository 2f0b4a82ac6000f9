//! `POST /webhooks/bigcommerce`: BigCommerce's customer callbacks (see [`crate::webhooks`]).
//!
//! Public, so cheap to refuse: rate-limited per client like the sign-in routes, the secret
//! header checked before a byte of the body is read, and the body capped.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::Error;
use crate::webhooks;

pub async fn bigcommerce(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    let api = app.bigcommerce()?;
    let presented = headers.get(webhooks::SECRET_HEADER).map(|v| v.as_bytes());
    if !webhooks::authentic(&api.settings, presented) {
        return Err(Error::WebhookUnauthorized);
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > webhooks::MAX_BODY_BYTES) {
        return Err(Error::WebhookTooLarge);
    }
    let bytes = axum::body::to_bytes(body, webhooks::MAX_BODY_BYTES)
        .await
        .map_err(|_| Error::WebhookTooLarge)?;
    let callback = serde_json::from_slice(&bytes)
        .map_err(|_| Error::WebhookInvalid("the body is not a BigCommerce customer callback"))?;
    let outcome = webhooks::handle(&app, &api, callback).await?;
    Ok(Json(serde_json::json!({ "result": outcome.as_str() })).into_response())
}
