//! The admin console (server-rendered, usable without JavaScript) and the JSON admin API.
//! Admin sessions use their own cookie and store, apart from shoppers' sessions.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::Json;
use axum::Router;
use axum::extract::{Path, RawForm, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

use super::render;
use crate::AppState;
use crate::admin::{self, AdminSession};
use crate::config::RawConnection;
use crate::diagnostics::{self, Check};
use crate::error::Error;
use crate::store::{AuditEvent, AuditFilter, AuditKind, IdentityLink};

pub fn router(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    let https = state.config.server.public_url.scheme() == "https";
    // Strict: no admin form is ever the target of a cross-site navigation, and the path
    // keeps the cookie away from the shopper pages.
    let sessions = SessionManagerLayer::new(crate::sessions::MemorySessionStore::default())
        .with_name(if https {
            "__Secure-bcsso-admin"
        } else {
            "bcsso-admin"
        })
        .with_secure(https)
        .with_http_only(true)
        .with_same_site(SameSite::Strict)
        .with_path("/admin")
        .with_expiry(Expiry::OnInactivity(time::Duration::hours(8)));
    let pages = Router::new()
        .route("/", get(dashboard))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/sso", get(sso_start))
        .route("/oidc/callback", get(sso_callback))
        .route("/links", get(links))
        .route("/links/remove", post(remove_link))
        .route("/audit", get(audit))
        .route(
            "/connections/new",
            get(new_connection).post(create_connection),
        )
        .route(
            "/connections/{id}/edit",
            get(edit_connection).post(update_connection),
        )
        .route("/connections/{id}/enable", post(enable_connection))
        .route("/connections/{id}/disable", post(disable_connection))
        .route("/connections/{id}/delete", post(delete_connection))
        .route("/connections/{id}/try", post(try_sign_in))
        .route("/trials/{ticket}", get(trial_report))
        .route("/checks/store", get(check_store))
        .route("/checks/connections/{id}", get(check_connection))
        .layer(sessions);
    let api = Router::new()
        .route("/links", get(api_links).delete(api_remove_link))
        .route("/audit", get(api_audit))
        .route(
            "/connections",
            get(api_connections).post(api_create_connection),
        )
        .route(
            "/connections/{id}",
            axum::routing::put(api_update_connection).delete(api_delete_connection),
        )
        .route("/checks/store", get(api_check_store))
        .route("/checks/connections/{id}", get(api_check_connection));
    pages.nest("/api", api)
}

// ---------------------------------------------------------------------------------------
// Pages

async fn signed_in(session: &Session) -> Result<AdminSession, Error> {
    admin::current(session)
        .await?
        .ok_or(Error::AdminSignInRequired)
}

#[derive(Template)]
#[template(path = "admin/login.html")]
struct LoginPage {
    csrf: String,
    error: Option<&'static str>,
    /// The display name of the admin SSO connection, when there is one.
    sso: Option<String>,
    /// Whether the bootstrap token form is offered.
    token: bool,
}

fn login_page_view(app: &AppState, csrf: String, error: Option<&'static str>) -> LoginPage {
    let sso = app.config.admin_sso.as_ref().and_then(|s| {
        app.connections
            .all()
            .iter()
            .find(|e| e.connection.id.as_str() == s.connection)
            .map(|e| e.connection.display_name.clone())
    });
    LoginPage {
        csrf,
        error,
        sso,
        token: app.config.admin_token.is_some(),
    }
}

async fn login_page(State(app): State<Arc<AppState>>, session: Session) -> Result<Response, Error> {
    if admin::current(&session).await?.is_some() {
        return Ok(super::see_other("/admin"));
    }
    let csrf = admin::login_csrf(&app, &session).await?;
    Ok(render(&login_page_view(&app, csrf, None)))
}

async fn login(
    State(app): State<Arc<AppState>>,
    session: Session,
    RawForm(body): RawForm,
) -> Result<Response, Error> {
    let form = fields(&body)?;
    let token = form.get("token").map(String::as_str).unwrap_or("");
    let csrf = form.get("csrf").map(String::as_str).unwrap_or("");
    match admin::sign_in(&app, &session, token.trim(), csrf).await {
        Ok(_) => Ok(super::see_other("/admin")),
        Err(Error::AdminTokenRejected) => {
            tracing::info!(reason = "admin_token_rejected", "admin sign-in refused");
            let csrf = admin::login_csrf(&app, &session).await?;
            let page = render(&login_page_view(
                &app,
                csrf,
                Some("That is not the admin token of this gateway."),
            ));
            Ok((StatusCode::UNAUTHORIZED, page).into_response())
        }
        Err(e) => Err(e),
    }
}

async fn sso_start(State(app): State<Arc<AppState>>, session: Session) -> Result<Response, Error> {
    let url = admin::sso_start(&app, &session).await?;
    Ok(super::found(url.as_str()))
}

async fn sso_callback(
    State(app): State<Arc<AppState>>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Response, Error> {
    let params = crate::oidc::CallbackParams::parse_strict(query.as_deref())
        .map_err(Error::CallbackParams)?;
    admin::sso_finish(&app, &session, params).await?;
    Ok(super::see_other("/admin"))
}

async fn logout(session: Session, RawForm(body): RawForm) -> Result<Response, Error> {
    let admin = signed_in(&session).await?;
    admin::check_csrf(
        &admin,
        fields(&body)?.get("csrf").map(String::as_str).unwrap_or(""),
    )?;
    admin::sign_out(&session).await?;
    Ok(super::see_other("/admin/login"))
}

struct ConnectionView {
    enabled: bool,
    from_file: bool,
    id: String,
    display_name: String,
    issuer: String,
    domains: String,
    trust_unverified_email: bool,
    create_customers: bool,
}

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
struct DashboardPage {
    csrf: String,
    store_hash: String,
    redirect_uri: String,
    admin_redirect_uri: String,
    link_count: i64,
    /// Store settings, from the configuration file/environment (read-only here).
    api_base_url: String,
    api_client_id: String,
    /// (channel id, storefront URL, default redirect)
    channels: Vec<(i64, String, String)>,
    connections: Vec<ConnectionView>,
    events: Vec<EventView>,
}

async fn dashboard(State(app): State<Arc<AppState>>, session: Session) -> Result<Response, Error> {
    let admin = signed_in(&session).await?;
    let store_hash = &app.config.store.store_hash;
    let connections = app
        .connections
        .all()
        .iter()
        .map(|e| (&e.connection, e))
        .map(|(c, e)| ConnectionView {
            enabled: e.enabled,
            from_file: e.source == crate::connections::Source::File,
            id: c.id.to_string(),
            display_name: c.display_name.clone(),
            issuer: c.issuer.as_str().to_owned(),
            domains: c
                .allowed_email_domains
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            trust_unverified_email: c.trust_unverified_email,
            create_customers: c.create_customers,
        })
        .collect();
    let recent = app.store.audit_events(store_hash, 10).await?;
    Ok(render(&DashboardPage {
        csrf: admin.csrf,
        store_hash: store_hash.clone(),
        redirect_uri: app.config.redirect_uri().to_string(),
        admin_redirect_uri: app.config.admin_redirect_uri().to_string(),
        api_base_url: app.config.store.api_base_url.to_string(),
        api_client_id: app.config.store.client_id.clone(),
        channels: app
            .config
            .store
            .channels
            .values()
            .map(|c| {
                (
                    c.id,
                    c.storefront_url.to_string(),
                    c.default_redirect.as_str().to_owned(),
                )
            })
            .collect(),
        link_count: app.store.count_links(store_hash).await?,
        connections,
        events: recent.iter().map(EventView::from).collect(),
    }))
}

struct LinkView {
    issuer: String,
    subject: String,
    connection: String,
    customer_id: i64,
    email: String,
    created: String,
    last_sign_in: String,
}

impl From<&IdentityLink> for LinkView {
    fn from(l: &IdentityLink) -> Self {
        LinkView {
            issuer: l.issuer.clone(),
            subject: l.subject.clone(),
            connection: l.connection.clone(),
            customer_id: l.customer_id,
            email: l.email_at_link.clone(),
            created: fmt_time(l.created_at),
            last_sign_in: fmt_time(l.last_sign_in_at),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/links.html")]
struct LinksPage {
    csrf: String,
    email: String,
    searched: bool,
    removed: bool,
    links: Vec<LinkView>,
}

async fn links(
    State(app): State<Arc<AppState>>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Response, Error> {
    let admin = signed_in(&session).await?;
    let q = fields(query.as_deref().unwrap_or("").as_bytes())?;
    let email = q.get("email").cloned().unwrap_or_default();
    let found = if email.trim().is_empty() {
        Vec::new()
    } else {
        app.store
            .search_links(&app.config.store.store_hash, &email, 200)
            .await?
    };
    Ok(render(&LinksPage {
        csrf: admin.csrf,
        searched: !email.trim().is_empty(),
        removed: q.contains_key("removed"),
        email,
        links: found.iter().map(LinkView::from).collect(),
    }))
}

async fn remove_link(
    State(app): State<Arc<AppState>>,
    session: Session,
    RawForm(body): RawForm,
) -> Result<Response, Error> {
    let admin = signed_in(&session).await?;
    let form = fields(&body)?;
    admin::check_csrf(&admin, form.get("csrf").map(String::as_str).unwrap_or(""))?;
    let (issuer, subject) = link_key(&form)?;
    let link = admin::remove_link(&app, &admin.actor, issuer, subject).await?;
    let back = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("email", &link.email_at_link)
        .append_pair("removed", "1")
        .finish();
    Ok(super::see_other(&format!("/admin/links?{back}")))
}

struct EventView {
    at: String,
    kind: &'static str,
    refused: bool,
    connection: String,
    email: String,
    customer_id: String,
    reason: String,
    actor: String,
    correlation_id: String,
}

impl From<&AuditEvent> for EventView {
    fn from(e: &AuditEvent) -> Self {
        EventView {
            at: fmt_time(e.at),
            kind: e.kind.as_str(),
            refused: matches!(
                e.kind,
                AuditKind::SignInRefused | AuditKind::AdminSignInRefused
            ),
            connection: e.connection.clone().unwrap_or_default(),
            email: e.email.clone().unwrap_or_default(),
            customer_id: e.customer_id.map(|c| c.to_string()).unwrap_or_default(),
            reason: e.reason.clone().unwrap_or_default(),
            actor: e.actor.clone().unwrap_or_default(),
            correlation_id: e.correlation_id.clone().unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage {
    csrf: String,
    from: String,
    to: String,
    connection: String,
    kind: String,
    email: String,
    connections: Vec<String>,
    kinds: Vec<&'static str>,
    events: Vec<EventView>,
}

async fn audit(
    State(app): State<Arc<AppState>>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Response, Error> {
    let admin = signed_in(&session).await?;
    let q = fields(query.as_deref().unwrap_or("").as_bytes())?;
    let filter = audit_filter(&q)?;
    let events = app
        .store
        .search_audit(&app.config.store.store_hash, &filter)
        .await?;
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    Ok(render(&AuditPage {
        csrf: admin.csrf,
        from: get("from"),
        to: get("to"),
        connection: get("connection"),
        kind: get("kind"),
        email: get("email"),
        connections: app
            .connections
            .all()
            .iter()
            .map(|e| e.connection.id.to_string())
            .collect(),
        kinds: AuditKind::ALL.iter().map(|k| k.as_str()).collect(),
        events: events.iter().map(EventView::from).collect(),
    }))
}

// ---------------------------------------------------------------------------------------
// Connections

/// The connection form's values, as typed (so a refused form comes back as it was sent).
#[derive(Default)]
struct ConnectionForm {
    id: String,
    display_name: String,
    issuer: String,
    client_id: String,
    scopes: String,
    domains: String,
    trust_unverified_email: bool,
    create_customers: bool,
    sync_profile: bool,
    /// Channel ids, comma-separated; empty = all.
    channels: String,
    customer_group_id: String,
    groups_claim: String,
    /// One rule a line: `IdP group = customer group id`.
    group_rules: String,
    company_claim: String,
    channel_access: String,
    id_token_algs: String,
    clock_leeway_secs: String,
}

impl ConnectionForm {
    fn defaults() -> Self {
        ConnectionForm {
            scopes: "openid email profile".into(),
            groups_claim: "groups".into(),
            create_customers: true,
            channel_access: "channel".into(),
            id_token_algs: "RS256".into(),
            clock_leeway_secs: "60".into(),
            ..Default::default()
        }
    }

    fn from_fields(f: &HashMap<String, String>) -> Self {
        let get = |k: &str| f.get(k).cloned().unwrap_or_default();
        ConnectionForm {
            id: get("id"),
            display_name: get("display_name"),
            issuer: get("issuer"),
            client_id: get("client_id"),
            scopes: get("scopes"),
            domains: get("allowed_email_domains"),
            // Unchecked boxes are not sent at all.
            trust_unverified_email: f.contains_key("trust_unverified_email"),
            create_customers: f.contains_key("create_customers"),
            sync_profile: f.contains_key("sync_profile"),
            channels: get("channels"),
            customer_group_id: get("customer_group_id"),
            groups_claim: get("groups_claim"),
            group_rules: get("group_rules"),
            company_claim: get("company_claim"),
            channel_access: get("channel_access"),
            id_token_algs: get("id_token_algs"),
            clock_leeway_secs: get("clock_leeway_secs"),
        }
    }

    fn from_connection(c: &crate::config::Connection) -> Self {
        let raw = crate::connections::to_raw(c);
        ConnectionForm {
            id: c.id.to_string(),
            display_name: c.display_name.clone(),
            issuer: c.issuer.as_str().to_owned(),
            client_id: c.client_id.clone(),
            scopes: c.scopes.join(" "),
            domains: raw.allowed_email_domains.join(", "),
            trust_unverified_email: c.trust_unverified_email,
            create_customers: c.create_customers,
            sync_profile: c.sync_profile,
            channels: c
                .channels
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            customer_group_id: c
                .customer_group_id
                .map(|g| g.to_string())
                .unwrap_or_default(),
            groups_claim: c.groups_claim.clone(),
            group_rules: c
                .group_rules
                .iter()
                .map(|r| format!("{} = {}", r.group, r.customer_group_id))
                .collect::<Vec<_>>()
                .join("\n"),
            company_claim: c.company_claim.clone().unwrap_or_default(),
            channel_access: raw.channel_access.unwrap_or_default(),
            id_token_algs: c.id_token_algs.join(" "),
            clock_leeway_secs: c.clock_leeway.as_secs().to_string(),
        }
    }

    /// The settings the validator reads; numbers that do not parse are reported here.
    fn to_raw(&self) -> Result<RawConnection, Vec<String>> {
        let list = |s: &str| -> Vec<String> {
            s.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let errors = std::cell::RefCell::new(Vec::new());
        let number = |name: &str, s: &str| -> Option<i64> {
            let s = s.trim();
            if s.is_empty() {
                return None;
            }
            s.parse()
                .map_err(|_| {
                    errors
                        .borrow_mut()
                        .push(format!("{name}: {s:?} is not a whole number"))
                })
                .ok()
        };
        let customer_group_id = number("customer_group_id", &self.customer_group_id);
        let channels: Vec<i64> = list(&self.channels)
            .iter()
            .filter_map(|c| number("channels", c))
            .collect();
        let mut group_rules = Vec::new();
        for (n, line) in self
            .group_rules
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            match line.rsplit_once('=') {
                Some((group, id)) => {
                    if let Some(id) = number(&format!("group_rules line {}", n + 1), id) {
                        group_rules.push(crate::config::RawGroupRule {
                            group: group.trim().to_owned(),
                            customer_group_id: id,
                        });
                    }
                }
                None => errors.borrow_mut().push(format!(
                    "group_rules line {}: write \"IdP group = customer group id\"",
                    n + 1
                )),
            }
        }
        let leeway = number("clock_leeway_secs", &self.clock_leeway_secs);
        let nonempty = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let raw = RawConnection {
            id: nonempty(&self.id),
            display_name: nonempty(&self.display_name),
            issuer: nonempty(&self.issuer),
            client_id: nonempty(&self.client_id),
            client_secret: None,
            client_secret_file: None,
            scopes: Some(list(&self.scopes)).filter(|l| !l.is_empty()),
            allowed_email_domains: list(&self.domains),
            trust_unverified_email: self.trust_unverified_email,
            customer_group_id,
            groups_claim: nonempty(&self.groups_claim),
            group_rules,
            company_claim: nonempty(&self.company_claim),
            sync_profile: self.sync_profile,
            channels,
            create_customers: Some(self.create_customers),
            channel_access: nonempty(&self.channel_access),
            id_token_algs: Some(list(&self.id_token_algs)).filter(|l| !l.is_empty()),
            clock_leeway_secs: leeway.map(|l| l.max(0) as u64),
        };
        let errors = errors.into_inner();
        if errors.is_empty() {
            Ok(raw)
        } else {
            Err(errors)
        }
    }
}

#[derive(Template)]
#[template(path = "admin/connection_form.html")]
struct ConnectionPage {
    csrf: String,
    /// `None` when creating.
    editing: Option<String>,
    form: ConnectionForm,
    errors: Vec<String>,
    has_secret_key: bool,
    redirect_uri: String,
    /// BigCommerce customer groups (id, name) to choose from.
    groups: Vec<(i64, String)>,
    groups_error: Option<String>,
}

async fn connection_page(
    app: &AppState,
    csrf: String,
    editing: Option<String>,
    form: ConnectionForm,
    errors: Vec<String>,
) -> Response {
    // The customer groups to map to, from BigCommerce; the form works without them.
    let (groups, groups_error) = match app.bigcommerce.customer_groups().await {
        Ok(groups) => (groups.into_iter().map(|g| (g.id, g.name)).collect(), None),
        Err(e) => {
            tracing::warn!(error = %e, "could not list customer groups for the connection form");
            (Vec::new(), Some(e.to_string()))
        }
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = render(&ConnectionPage {
        csrf,
        editing,
        form,
        errors,
        has_secret_key: app.config.database.secret_key.is_some(),
        redirect_uri: app.config.redirect_uri().to_string(),
        groups,
        groups_error,
    });
    (status, page).into_response()
}

async fn new_connection(
    State(app): State<Arc<AppState>>,
    session: Session,
) -> Result<Response, Error> {
    let admin = signed_in(&session).await?;
    Ok(connection_page(
        &app,
        admin.csrf,
        None,
        ConnectionForm::defaults(),
        Vec::new(),
    )
    .await)
}

async fn edit_connection(
    State(app): State<Arc<AppState>>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    let admin = signed_in(&session).await?;
    let all = app.connections.all();
    let entry = all
        .iter()
        .find(|e| e.connection.id.as_str() == id)
        .ok_or_else(|| Error::UnknownConnection(id.clone()))?;
    if entry.source == crate::connections::Source::File {
        return Err(crate::connections::ManageError::ManagedByFile(id).into());
    }
    let form = ConnectionForm::from_connection(&entry.connection);
    Ok(connection_page(&app, admin.csrf, Some(id), form, Vec::new()).await)
}

async fn create_connection(
    State(app): State<Arc<AppState>>,
    session: Session,
    RawForm(body): RawForm,
) -> Result<Response, Error> {
    save_from_form(&app, &session, &body, None).await
}

async fn update_connection(
    State(app): State<Arc<AppState>>,
    session: Session,
    Path(id): Path<String>,
    RawForm(body): RawForm,
) -> Result<Response, Error> {
    save_from_form(&app, &session, &body, Some(id)).await
}

/// Saves a create/edit form; a refused form comes back with its values and the reasons.
async fn save_from_form(
    app: &Arc<AppState>,
    session: &Session,
    body: &[u8],
    editing: Option<String>,
) -> Result<Response, Error> {
    let admin = signed_in(session).await?;
    let f = fields(body)?;
    admin::check_csrf(&admin, f.get("csrf").map(String::as_str).unwrap_or(""))?;
    let form = ConnectionForm::from_fields(&f);
    let raw = match form.to_raw() {
        Ok(raw)
            if raw
                .channels
                .iter()
                .any(|c| !app.config.store.channels.contains_key(c)) =>
        {
            let errors = vec![format!(
                "channels: only configured storefront channels can be chosen ({})",
                app.config
                    .store
                    .channels
                    .keys()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )];
            return Ok(connection_page(app, admin.csrf, editing, form, errors).await);
        }
        Ok(raw) => raw,
        Err(errors) => return Ok(connection_page(app, admin.csrf, editing, form, errors).await),
    };
    let secret = f.get("client_secret").cloned();
    match admin::save_connection(app, &admin.actor, raw, secret, editing.as_deref()).await {
        Ok(id) => Ok(super::see_other(&format!("/admin/checks/connections/{id}"))),
        Err(Error::Manage(crate::connections::ManageError::Invalid(errors))) => {
            let errors = errors
                .iter()
                .map(|e| crate::error::form_message(&e.to_string()))
                .collect();
            Ok(connection_page(app, admin.csrf, editing, form, errors).await)
        }
        Err(e) => Err(e),
    }
}

async fn enable_connection(
    State(app): State<Arc<AppState>>,
    session: Session,
    Path(id): Path<String>,
    RawForm(body): RawForm,
) -> Result<Response, Error> {
    connection_action(&app, &session, &body, &id, Action::Enable).await
}

async fn disable_connection(
    State(app): State<Arc<AppState>>,
    session: Session,
    Path(id): Path<String>,
    RawForm(body): RawForm,
) -> Result<Response, Error> {
    connection_action(&app, &session, &body, &id, Action::Disable).await
}

async fn delete_connection(
    State(app): State<Arc<AppState>>,
    session: Session,
    Path(id): Path<String>,
    RawForm(body): RawForm,
) -> Result<Response, Error> {
    connection_action(&app, &session, &body, &id, Action::Delete).await
}

use crate::admin::Action;

async fn connection_action(
    app: &Arc<AppState>,
    session: &Session,
    body: &[u8],
    id: &str,
    action: Action,
) -> Result<Response, Error> {
    let admin = signed_in(session).await?;
    admin::check_csrf(
        &admin,
        fields(body)?.get("csrf").map(String::as_str).unwrap_or(""),
    )?;
    admin::connection_action(app, &admin.actor, id, action).await?;
    Ok(super::see_other("/admin"))
}

/// "Try sign-in": starts the real flow in test mode.
async fn try_sign_in(
    State(app): State<Arc<AppState>>,
    session: Session,
    Path(id): Path<String>,
    RawForm(body): RawForm,
) -> Result<Response, Error> {
    let admin = signed_in(&session).await?;
    admin::check_csrf(
        &admin,
        fields(&body)?.get("csrf").map(String::as_str).unwrap_or(""),
    )?;
    let start = crate::trial::begin(&app, &admin.actor, &id).await?;
    Ok(super::see_other(&start))
}

#[derive(Template)]
#[template(path = "admin/trial.html")]
struct TrialPage {
    csrf: String,
    connection: String,
    finished: bool,
    decision: String,
    explanation: String,
    /// (claim, value) rows, values as text.
    claims: Vec<(&'static str, String)>,
    customer: Vec<(&'static str, String)>,
}

async fn trial_report(
    State(app): State<Arc<AppState>>,
    session: Session,
    Path(ticket): Path<String>,
) -> Result<Response, Error> {
    let admin = signed_in(&session).await?;
    let trial = app
        .store
        .trial(&app.config.store.store_hash, &ticket)
        .await?
        .ok_or(Error::NotFound)?;
    let report: Option<serde_json::Value> = trial
        .result
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok());
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "(none)".to_owned(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let rows =
        |v: Option<&serde_json::Value>, keys: &[&'static str]| -> Vec<(&'static str, String)> {
            v.map(|v| keys.iter().map(|k| (*k, text(&v[*k]))).collect())
                .unwrap_or_default()
        };
    let page = match &report {
        Some(r) => TrialPage {
            csrf: admin.csrf,
            connection: trial.connection,
            finished: true,
            decision: text(&r["decision"]),
            explanation: text(&r["explanation"]),
            claims: rows(
                r.get("claims").filter(|c| !c.is_null()),
                &[
                    "issuer",
                    "subject",
                    "email",
                    "email_verified",
                    "given_name",
                    "family_name",
                    "name",
                    "groups",
                    "company",
                ],
            ),
            customer: rows(
                r.get("customer").filter(|c| !c.is_null()),
                &[
                    "outcome",
                    "customer_id",
                    "email",
                    "first_name",
                    "last_name",
                    "customer_group_id",
                    "company",
                    "channel_ids",
                ],
            )
            .into_iter()
            .filter(|(_, v)| v != "(none)")
            .collect(),
        },
        None => TrialPage {
            csrf: admin.csrf,
            connection: trial.connection,
            finished: false,
            decision: String::new(),
            explanation: String::new(),
            claims: Vec::new(),
            customer: Vec::new(),
        },
    };
    Ok(render(&page))
}

struct CheckView {
    name: &'static str,
    status: &'static str,
    message: String,
}

#[derive(Template)]
#[template(path = "admin/checks.html")]
struct ChecksPage {
    csrf: String,
    title: String,
    /// Set for a connection test: offers "Try sign-in".
    connection_id: Option<String>,
    overall: &'static str,
    checks: Vec<CheckView>,
}

fn checks_page(
    csrf: String,
    title: String,
    connection_id: Option<String>,
    checks: &[Check],
) -> Response {
    render(&ChecksPage {
        csrf,
        title,
        connection_id,
        overall: diagnostics::overall(checks).as_str(),
        checks: checks
            .iter()
            .map(|c| CheckView {
                name: c.name,
                status: c.status.as_str(),
                message: c.message.clone(),
            })
            .collect(),
    })
}

/// "Check": the API token, its scopes, BigCommerce's clock, customer groups, storefronts.
async fn check_store(
    State(app): State<Arc<AppState>>,
    session: Session,
) -> Result<Response, Error> {
    let admin = signed_in(&session).await?;
    let checks = crate::bigcommerce::diagnose::diagnose(&app.bigcommerce, &app.config.store).await;
    Ok(checks_page(
        admin.csrf,
        format!("Store {}", app.config.store.store_hash),
        None,
        &checks,
    ))
}

/// "Test connection": discovery, issuer, endpoints, PKCE, algorithms, keys, scopes.
async fn check_connection(
    State(app): State<Arc<AppState>>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    let admin = signed_in(&session).await?;
    let conn = any_connection(&app, id)?;
    let checks =
        crate::oidc::diagnose::diagnose(app.oidc.http(), &conn, &app.config.redirect_uri()).await;
    Ok(checks_page(
        admin.csrf,
        format!("Connection {}", conn.display_name),
        Some(conn.id.to_string()),
        &checks,
    ))
}

// ---------------------------------------------------------------------------------------
// JSON API: the same operations for automation, with `Authorization: Bearer <admin token>`.

fn api_admin(app: &AppState, headers: &HeaderMap) -> Result<String, Error> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    admin::check_api_token(app, presented)
}

#[derive(Serialize)]
struct ApiLink {
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

async fn api_links(
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

async fn api_remove_link(
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
struct ApiEvent {
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
}

async fn api_audit(
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
        })
        .collect();
    Ok(Json(serde_json::json!({ "data": data })).into_response())
}

/// A connection by id, enabled or not: an admin tests one before enabling it.
fn any_connection(app: &AppState, id: String) -> Result<crate::config::Connection, Error> {
    app.connections
        .all()
        .iter()
        .find(|e| e.connection.id.as_str() == id)
        .map(|e| e.connection.clone())
        .ok_or(Error::UnknownConnection(id))
}

async fn api_connections(
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
                let source = match e.source {
                    crate::connections::Source::File => "file",
                    crate::connections::Source::Console => "console",
                };
                obj.insert("managed_by".into(), source.into());
            }
            v
        })
        .collect();
    Ok(Json(serde_json::json!({ "data": data })).into_response())
}

/// Body: the fields of a `[[connections]]` entry, with `client_secret`.
async fn api_create_connection(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Error> {
    api_save(&app, &headers, &body, None).await
}

async fn api_update_connection(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, Error> {
    api_save(&app, &headers, &body, Some(id)).await
}

async fn api_save(
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

async fn api_delete_connection(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    let actor = api_admin(&app, &headers)?;
    admin::connection_action(&app, &actor, &id, admin::Action::Delete).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn checks_json(checks: &[Check]) -> Response {
    let data: Vec<serde_json::Value> = checks
        .iter()
        .map(|c| serde_json::json!({ "name": c.name, "status": c.status.as_str(), "message": c.message }))
        .collect();
    Json(serde_json::json!({ "status": diagnostics::overall(checks).as_str(), "data": data }))
        .into_response()
}

async fn api_check_store(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    api_admin(&app, &headers)?;
    let checks = crate::bigcommerce::diagnose::diagnose(&app.bigcommerce, &app.config.store).await;
    Ok(checks_json(&checks))
}

async fn api_check_connection(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    api_admin(&app, &headers)?;
    let conn = any_connection(&app, id)?;
    let checks =
        crate::oidc::diagnose::diagnose(app.oidc.http(), &conn, &app.config.redirect_uri()).await;
    Ok(checks_json(&checks))
}

// ---------------------------------------------------------------------------------------
// Input

/// Form or query fields; a field given twice is refused rather than guessed.
fn fields(body: &[u8]) -> Result<HashMap<String, String>, Error> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if out.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(Error::AdminInput(format!("field {k} is given twice")));
        }
    }
    Ok(out)
}

fn link_key(f: &HashMap<String, String>) -> Result<(&str, &str), Error> {
    match (f.get("issuer"), f.get("subject")) {
        (Some(i), Some(s)) if !i.is_empty() && !s.is_empty() => Ok((i, s)),
        _ => Err(Error::AdminInput("issuer and subject are required".into())),
    }
}

/// `from`/`to` are dates (`2026-11-26`, whole days in UTC) or Unix seconds.
fn audit_filter(q: &HashMap<String, String>) -> Result<AuditFilter, Error> {
    let nonempty = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let kind = match nonempty("kind") {
        Some(k) => Some(
            AuditKind::parse(k)
                .ok_or_else(|| Error::AdminInput(format!("unknown event kind {k:?}")))?,
        ),
        None => None,
    };
    Ok(AuditFilter {
        from: nonempty("from").map(|v| parse_time(v, false)).transpose()?,
        to: nonempty("to").map(|v| parse_time(v, true)).transpose()?,
        connection: nonempty("connection").map(str::to_owned),
        kind,
        email: nonempty("email").map(str::to_owned),
        limit: nonempty("limit")
            .map(|v| {
                v.parse()
                    .map_err(|_| Error::AdminInput("limit must be a number".into()))
            })
            .transpose()?
            .unwrap_or(200),
    })
}

fn parse_time(v: &str, end_of_day: bool) -> Result<i64, Error> {
    if let Ok(secs) = v.parse::<i64>() {
        return Ok(secs);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(v, &format)
        .map_err(|_| Error::AdminInput(format!("{v:?} is not a date (YYYY-MM-DD)")))?;
    let start = date.midnight().assume_utc().unix_timestamp();
    Ok(if end_of_day { start + 86_399 } else { start })
}

fn fmt_time(unix: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_filters() {
        assert_eq!(parse_time("2026-11-26", false).unwrap(), 1_795_651_200);
        assert_eq!(
            parse_time("2026-11-26", true).unwrap(),
            1_795_651_200 + 86_399
        );
        assert_eq!(parse_time("1234", false).unwrap(), 1234);
        assert!(parse_time("26/11/2026", false).is_err());
        assert_eq!(fmt_time(1_795_651_200), "2026-11-26 00:00:00 UTC");
        let q = fields(b"kind=sign_in_refused&email=ada&limit=5").unwrap();
        let f = audit_filter(&q).unwrap();
        assert_eq!(
            (f.kind, f.email.as_deref(), f.limit),
            (Some(AuditKind::SignInRefused), Some("ada"), 5)
        );
        assert!(audit_filter(&fields(b"kind=nope").unwrap()).is_err());
        assert!(fields(b"a=1&a=2").is_err());
    }
}
