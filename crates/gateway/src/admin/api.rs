//! The JSON admin API: the console's operations for automation, with
//! `Authorization: Bearer <admin token>`. Every handler takes [`ApiAdmin`].

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use super::{ApiAdmin, checks, input};
use crate::AppState;
use crate::config::{RawConnection, RawStore};
use crate::db::{AuditEvent, IdentityLink};
use crate::diagnostics::{self, Check};
use crate::domain::{ChannelId, ConnectionId};
use crate::error::Error;
use crate::settings::admin_access::RawAdminSso;

/// `{"data": …}`, the shape of every answer.
fn data(value: impl Serialize) -> Response {
    Json(json!({ "data": value })).into_response()
}

/// [`data`] for a list, each item as the API shows it.
fn data_list<T: Serialize>(items: impl IntoIterator<Item = impl Into<T>>) -> Response {
    data(items.into_iter().map(Into::into).collect::<Vec<T>>())
}

/// A JSON body as `T`; `what` names it in the refusal.
fn body<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|e| Error::AdminInput(format!("body is not {what}: {e}")))
}

#[derive(Serialize)]
struct ApiLink {
    issuer: String,
    subject: String,
    connection: ConnectionId,
    customer_id: i64,
    channel_ids: Option<Vec<ChannelId>>,
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

/// `GET /admin/api/links?email=`: the links whose email contains it.
pub async fn links(
    _: ApiAdmin,
    State(app): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
) -> Result<Response, Error> {
    let q = input::query(query.as_deref())?;
    let email = q
        .get("email")
        .filter(|e| !e.trim().is_empty())
        .ok_or_else(|| Error::AdminInput("query parameter email is required".into()))?;
    let links = app.db.search_links(email, 200).await?;
    Ok(data_list::<ApiLink>(links))
}

/// `DELETE /admin/api/links?issuer=&subject=`
pub async fn remove_link(
    ApiAdmin { actor }: ApiAdmin,
    State(app): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
) -> Result<Response, Error> {
    let q = input::query(query.as_deref())?;
    let (issuer, subject) = input::link_key(&q)?;
    let link = super::remove_link(&app, &actor, issuer, subject).await?;
    Ok(data(ApiLink::from(link)))
}

#[derive(Serialize)]
struct ApiEvent {
    at: i64,
    kind: &'static str,
    connection: Option<String>,
    subject: Option<String>,
    email: Option<String>,
    customer_id: Option<i64>,
    reason: Option<String>,
    actor: Option<String>,
    detail: Option<Value>,
    correlation_id: Option<String>,
    client_ip: Option<String>,
    user_agent: Option<String>,
}

impl From<AuditEvent> for ApiEvent {
    fn from(e: AuditEvent) -> Self {
        ApiEvent {
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
        }
    }
}

/// `GET /admin/api/audit?from=&to=&connection=&kind=&email=&limit=`
pub async fn audit(
    _: ApiAdmin,
    State(app): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
) -> Result<Response, Error> {
    let filter = input::audit_filter(&input::query(query.as_deref())?)?;
    let events = app.db.search_audit(&filter).await?;
    Ok(data_list::<ApiEvent>(events))
}

/// `GET /admin/api/audit.csv?…`: the filtered events as CSV (up to 50,000; `limit` raises
/// the default of 200).
pub async fn audit_csv(
    _: ApiAdmin,
    State(app): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
) -> Result<Response, Error> {
    csv_download(&app, query.as_deref()).await
}

/// The audit export the console and the API share.
pub async fn csv_download(app: &AppState, query: Option<&str>) -> Result<Response, Error> {
    let mut filter = input::audit_filter(&input::query(query)?)?;
    // Without an explicit limit an export takes everything the filters select.
    if !query.unwrap_or("").contains("limit=") {
        filter.limit = crate::db::EXPORT_MAX;
    }
    let events = app.db.export_audit(&filter).await?;
    let body = crate::admin::activity::csv(&events)
        .map_err(|e| Error::AdminInput(format!("the export could not be written: {e}")))?;
    let name = format!(
        "attachment; filename=\"bc-sso-audit-{}.csv\"",
        app.config.store.store_hash
    );
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/csv; charset=utf-8".to_owned(),
            ),
            (axum::http::header::CONTENT_DISPOSITION, name),
        ],
        body,
    )
        .into_response())
}

pub async fn connections(_: ApiAdmin, State(app): State<Arc<AppState>>) -> Response {
    let all: Vec<Value> = app
        .connections
        .all()
        .iter()
        .map(|e| {
            let mut v = crate::settings::connections::describe(&e.connection, e.enabled);
            if let Some(obj) = v.as_object_mut() {
                obj.insert("managed_by".into(), e.source.as_str().into());
            }
            v
        })
        .collect();
    data(all)
}

/// `POST /admin/api/connections`: the fields of a `[[connections]]` entry, with
/// `client_secret`.
pub async fn create_connection(
    ApiAdmin { actor }: ApiAdmin,
    State(app): State<Arc<AppState>>,
    raw: Bytes,
) -> Result<Response, Error> {
    save_connection(&app, &actor, &raw, None).await
}

/// `PUT /admin/api/connections/{id}`: the same, for an existing one (an empty or missing
/// `client_secret` keeps the stored one).
pub async fn update_connection(
    ApiAdmin { actor }: ApiAdmin,
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    raw: Bytes,
) -> Result<Response, Error> {
    save_connection(&app, &actor, &raw, Some(id)).await
}

async fn save_connection(
    app: &AppState,
    actor: &str,
    raw: &[u8],
    editing: Option<String>,
) -> Result<Response, Error> {
    let mut raw: RawConnection = body(raw, "a connection")?;
    let secret = raw.client_secret.take();
    if raw.client_secret_file.is_some() {
        return Err(Error::AdminInput(
            "client_secret_file is for the config file; send client_secret".into(),
        ));
    }
    let id = super::save_connection(app, actor, raw, secret, editing.as_deref()).await?;
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
    let saved = entry.map(|e| crate::settings::connections::describe(&e.connection, e.enabled));
    Ok((status, data(saved)).into_response())
}

pub async fn delete_connection(
    ApiAdmin { actor }: ApiAdmin,
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<StatusCode, Error> {
    super::connection_action(&app, &actor, &id, super::Action::Delete).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The store settings in force, secrets left out, and who manages them.
fn store_answer(app: &AppState) -> Response {
    let current = app.store_settings.current();
    Json(json!({
        "store_hash": app.config.store.store_hash,
        "managed_by": current.as_ref().map(|api| api.source.as_str()),
        "data": current.map(|api| crate::settings::store::describe(&api.settings)),
    }))
    .into_response()
}

pub async fn store(_: ApiAdmin, State(app): State<Arc<AppState>>) -> Response {
    store_answer(&app)
}

/// `PUT /admin/api/store`: the settings as `[store]` spells them, secrets included
/// (omitted or empty secrets keep the ones in force).
pub async fn update_store(
    ApiAdmin { actor }: ApiAdmin,
    State(app): State<Arc<AppState>>,
    raw: Bytes,
) -> Result<Response, Error> {
    let mut raw: RawStore = body(&raw, "store settings")?;
    if raw.store_hash.is_some() || raw.clock_check_interval_secs.is_some() {
        return Err(Error::AdminInput(
            "store_hash and clock_check_interval_secs are set in the config file or env, not here"
                .into(),
        ));
    }
    if raw.access_token_file.is_some() || raw.client_secret_file.is_some() {
        return Err(Error::AdminInput(
            "*_file settings are for the config file; send access_token and client_secret".into(),
        ));
    }
    let token = raw.access_token.take();
    let secret = raw.client_secret.take();
    super::save_store_settings(&app, &actor, raw, token, secret).await?;
    Ok(store_answer(&app))
}

/// Admin sign-in through an IdP as set, and who manages it.
fn access_answer(app: &AppState) -> Response {
    let current = app.admin_access.current();
    Json(json!({
        "managed_by": current.as_ref().map(|_| app.admin_access.source().as_str()),
        "data": current.map(|s| crate::settings::admin_access::describe(&s)),
    }))
    .into_response()
}

pub async fn access(_: ApiAdmin, State(app): State<Arc<AppState>>) -> Response {
    access_answer(&app)
}

/// `PUT /admin/api/access`: `{connection, allowed_emails, allowed_groups}`; a null or empty
/// `connection` turns admin sign-in through an IdP off.
pub async fn update_access(
    ApiAdmin { actor }: ApiAdmin,
    State(app): State<Arc<AppState>>,
    raw: Bytes,
) -> Result<Response, Error> {
    let raw: RawAdminSso = body(&raw, "admin sign-in settings")?;
    super::save_admin_access(&app, &actor, raw).await?;
    Ok(access_answer(&app))
}

fn checks_json(checks: &[Check]) -> Response {
    let all: Vec<Value> = checks
        .iter()
        .map(|c| json!({ "name": c.name, "status": c.status.as_str(), "message": c.message }))
        .collect();
    Json(json!({ "status": diagnostics::overall(checks).as_str(), "data": all })).into_response()
}

pub async fn check_store(_: ApiAdmin, State(app): State<Arc<AppState>>) -> Response {
    checks_json(&checks::store_checks(&app).await)
}

pub async fn check_connection(
    _: ApiAdmin,
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    let (_, checks) = checks::connection_checks(&app, &id).await?;
    Ok(checks_json(&checks))
}

/// `POST /admin/api/store/webhooks`: registers (or repairs) the two customer hooks;
/// `{"data": [{"scope", "result": "created"|"updated"|"unchanged"}]}`.
pub async fn register_webhooks(
    ApiAdmin { actor }: ApiAdmin,
    State(app): State<Arc<AppState>>,
) -> Result<Response, Error> {
    let done = super::register_webhooks(&app, &actor).await?;
    let done: Vec<Value> = done
        .iter()
        .map(|(scope, r)| json!({ "scope": scope, "result": r.as_str() }))
        .collect();
    Ok(data(done))
}

/// `POST /admin/api/sessions/revoke`: signs out every admin session;
/// `{"data": {"generation": n}}`.
pub async fn sign_out_all(
    ApiAdmin { actor }: ApiAdmin,
    State(app): State<Arc<AppState>>,
) -> Result<Response, Error> {
    let generation = super::sign_out_all(&app, &actor).await?;
    Ok(data(json!({ "generation": generation })))
}
