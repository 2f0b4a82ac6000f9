//! The JSON admin API.

// Handlers share the parent's imports and input helpers.
use super::*;

// ---------------------------------------------------------------------------------------
// JSON API: the same operations for automation, with `Authorization: Bearer <admin token>`.

pub(super) fn api_admin(app: &AppState, headers: &HeaderMap) -> Result<String, Error> {
    admin::check_api_token(app, bearer(headers))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// Middleware of every API route: a request that presents a wrong token is a guess. It
/// costs the client one of its failed attempts and is audited with its IP and user agent;
/// a request with no token at all guesses nothing and is only refused.
pub(super) async fn api_token(
    State(app): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let presented = bearer(req.headers()).is_some();
    match api_admin(&app, req.headers()) {
        Ok(_) => next.run(req).await,
        Err(Error::AdminSignInRequired) if presented => {
            app.limits.admin_failed(ip);
            admin::refused(&app, "api_token_rejected", None).await;
            tracing::info!(reason = "api_token_rejected", "admin API call refused");
            Error::AdminSignInRequired.into_response()
        }
        Err(e) => e.into_response(),
    }
}

#[derive(Serialize)]
pub(super) struct ApiLink {
    issuer: String,
    subject: String,
    connection: String,
    customer_id: i64,
    channel_ids: Option<Vec<i64>>,
    email_at_link: String,
    created_at: i64,
    last_sign_in_at: i64,
}

impl From<IdentityLink> for ApiLink {
    fn from(l: IdentityLink) -> Self {
        ApiLink {
            issuer: l.issuer,
            subject: l.subject,
            connection: l.connection,
            customer_id: l.customer_id,
            channel_ids: l.channel_ids,
            email_at_link: l.email_at_link,
            created_at: l.created_at,
            last_sign_in_at: l.last_sign_in_at,
        }
    }
}

pub(super) async fn api_links(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, Error> {
    api_admin(&app, &headers)?;
    let q = fields(query.as_deref().unwrap_or("").as_bytes())?;
    let email = q
        .get("email")
        .filter(|e| !e.trim().is_empty())
        .ok_or_else(|| Error::AdminInput("query parameter email is required".into()))?;
    let links = app
        .store
        .search_links(&app.config.store.store_hash, email, 200)
        .await?;
    let data: Vec<ApiLink> = links.into_iter().map(ApiLink::from).collect();
    Ok(Json(serde_json::json!({ "data": data })).into_response())
}

pub(super) async fn api_remove_link(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, Error> {
    let actor = api_admin(&app, &headers)?;
    let q = fields(query.as_deref().unwrap_or("").as_bytes())?;
    let (issuer, subject) = link_key(&q)?;
    let link = admin::remove_link(&app, &actor, issuer, subject).await?;
    Ok(Json(serde_json::json!({ "data": ApiLink::from(link) })).into_response())
}

#[derive(Serialize)]
pub(super) struct ApiEvent {
    at: i64,
    kind: &'static str,
    connection: Option<String>,
    subject: Option<String>,
    email: Option<String>,
    customer_id: Option<i64>,
    reason: Option<String>,
    actor: Option<String>,
    detail: Option<serde_json::Value>,
    correlation_id: Option<String>,
    client_ip: Option<String>,
    user_agent: Option<String>,
}

pub(super) async fn api_audit(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, Error> {
    api_admin(&app, &headers)?;
    let q = fields(query.as_deref().unwrap_or("").as_bytes())?;
    let events = app
        .store
        .search_audit(&app.config.store.store_hash, &audit_filter(&q)?)
        .await?;
    let data: Vec<ApiEvent> = events
        .into_iter()
        .map(|e| ApiEvent {
            at: e.at,
            kind: e.kind.as_str(),
            connection: e.connection,
            subject: e.subject,
            email: e.email,
            customer_id: e.customer_id,
            reason: e.reason,
            actor: e.actor,
            detail: e.detail.and_then(|d| serde_json::from_str(&d).ok()),
            correlation_id: e.correlation_id,
            client_ip: e.client_ip,
            user_agent: e.user_agent,
        })
        .collect();
    Ok(Json(serde_json::json!({ "data": data })).into_response())
}

pub(super) async fn api_connections(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    api_admin(&app, &headers)?;
    let data: Vec<serde_json::Value> = app
        .connections
        .all()
        .iter()
        .map(|e| {
            let mut v = crate::connections::describe(&e.connection, e.enabled);
            if let Some(obj) = v.as_object_mut() {
                obj.insert("managed_by".into(), e.source.as_str().into());
            }
            v
        })
        .collect();
    Ok(Json(serde_json::json!({ "data": data })).into_response())
}

/// Body: the fields of a `[[connections]]` entry, with `client_secret`.
pub(super) async fn api_create_connection(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Error> {
    api_save(&app, &headers, &body, None).await
}

pub(super) async fn api_update_connection(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, Error> {
    api_save(&app, &headers, &body, Some(id)).await
}

pub(super) async fn api_save(
    app: &AppState,
    headers: &HeaderMap,
    body: &[u8],
    editing: Option<String>,
) -> Result<Response, Error> {
    let actor = api_admin(app, headers)?;
    let mut raw: RawConnection = serde_json::from_slice(body)
        .map_err(|e| Error::AdminInput(format!("body is not a connection: {e}")))?;
    let secret = raw.client_secret.take();
    if raw.client_secret_file.is_some() {
        return Err(Error::AdminInput(
            "client_secret_file is for the config file; send client_secret".into(),
        ));
    }
    let id = admin::save_connection(app, &actor, raw, secret, editing.as_deref()).await?;
    let status = if editing.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let entry = app
        .connections
        .all()
        .iter()
        .find(|e| e.connection.id.as_str() == id)
        .cloned();
    let data = entry.map(|e| crate::connections::describe(&e.connection, e.enabled));
    Ok((status, Json(serde_json::json!({ "data": data }))).into_response())
}

pub(super) async fn api_delete_connection(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    let actor = api_admin(&app, &headers)?;
    admin::connection_action(&app, &actor, &id, admin::Action::Delete).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) fn checks_json(checks: &[Check]) -> Response {
    let data: Vec<serde_json::Value> = checks
        .iter()
        .map(|c| serde_json::json!({ "name": c.name, "status": c.status.as_str(), "message": c.message }))
        .collect();
    Json(serde_json::json!({ "status": diagnostics::overall(checks).as_str(), "data": data }))
        .into_response()
}

pub(super) async fn api_check_store(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    api_admin(&app, &headers)?;
    let checks = store_checks(&app).await;
    Ok(checks_json(&checks))
}

pub(super) async fn api_check_connection(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    api_admin(&app, &headers)?;
    let conn = any_connection(&app, id)?;
    let checks = crate::oidc::diagnose::diagnose(
        app.oidc.http(),
        &conn,
        &app.config.redirect_uri(conn.id.as_str()),
    )
    .await;
    Ok(checks_json(&checks))
}
