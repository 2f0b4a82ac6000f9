//! The overview, identity links and the audit log.

use std::sync::Arc;

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::response::Response;

use crate::AppState;
use crate::admin::input::{self, Fields, fmt_time};
use crate::admin::{AdminUser, CsrfForm};
use crate::db::{AuditEvent, AuditKind, IdentityLink};
use crate::error::Error;
use crate::routes::{render, see_other};

pub struct ConnectionView {
    enabled: bool,
    from_file: bool,
    id: String,
    display_name: String,
    issuer: String,
    domains: String,
    /// Domains whose unverified emails are trusted, comma-separated; empty = none.
    trusted_domains: String,
    create_customers: bool,
    /// `LinkExisting` by name.
    link_existing: &'static str,
    /// Admins sign in through it: disabling or deleting it needs the admin token.
    admin_connection: bool,
}

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
pub struct DashboardPage {
    csrf: String,
    store_hash: String,
    redirect_uri: String,
    admin_redirect_uri: String,
    link_count: i64,
    /// `None` until the store settings are set.
    store: Option<StoreView>,
    connections: Vec<ConnectionView>,
    events: Vec<EventView>,
    /// Sign-ins of the last 24 hours and 7 days.
    charts: [crate::admin::activity::Chart; 2],
}

pub struct StoreView {
    from_file: bool,
    api_base_url: String,
    client_id: String,
    /// (channel id, storefront URL, default redirect)
    channels: Vec<(i64, String, String)>,
}

impl StoreView {
    pub fn of(app: &AppState) -> Option<StoreView> {
        let api = app.store_settings.current()?;
        let s = &api.settings;
        Some(StoreView {
            from_file: api.source == crate::settings::Source::File,
            api_base_url: s.api_base_url.to_string(),
            client_id: s.client_id.clone(),
            channels: s
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
        })
    }
}

pub async fn dashboard(
    State(app): State<Arc<AppState>>,
    admin: AdminUser,
) -> Result<Response, Error> {
    let store_hash = &app.config.store.store_hash;
    let connections = app
        .connections
        .all()
        .iter()
        .map(|e| (&e.connection, e))
        .map(|(c, e)| ConnectionView {
            enabled: e.enabled,
            from_file: e.source == crate::settings::Source::File,
            id: c.id.to_string(),
            display_name: c.display_name.clone(),
            issuer: c.issuer.as_str().to_owned(),
            domains: super::comma_list(&c.allowed_email_domains),
            trusted_domains: super::comma_list(&c.trusted_email_domains),
            create_customers: c.create_customers,
            link_existing: c.link_existing.as_str(),
            admin_connection: crate::admin::is_admin_connection(&app, c.id.as_str()),
        })
        .collect();
    let recent = app.db.audit_events(10).await?;
    let charts = crate::admin::activity::charts(&app.db, app.clock.now()).await?;
    Ok(render(&DashboardPage {
        charts,
        csrf: admin.0.csrf,
        store_hash: store_hash.clone(),
        redirect_uri: app.config.redirect_uri("CONNECTION-ID").to_string(),
        admin_redirect_uri: app.config.admin_redirect_uri().to_string(),
        store: StoreView::of(&app),
        link_count: app.db.count_links().await?,
        connections,
        events: recent.iter().map(EventView::from).collect(),
    }))
}

pub struct LinkView {
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
            connection: l.connection.to_string(),
            customer_id: l.customer_id,
            email: l.email_at_link.clone(),
            created: fmt_time(l.created_at),
            last_sign_in: fmt_time(l.last_sign_in_at),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/links.html")]
pub struct LinksPage {
    csrf: String,
    email: String,
    searched: bool,
    removed: bool,
    links: Vec<LinkView>,
}

pub async fn links(
    State(app): State<Arc<AppState>>,
    admin: AdminUser,
    RawQuery(query): RawQuery,
) -> Result<Response, Error> {
    let q = input::query(query.as_deref())?;
    let email = q.get("email").cloned().unwrap_or_default();
    let found = if email.trim().is_empty() {
        Vec::new()
    } else {
        app.db.search_links(&email, 200).await?
    };
    Ok(render(&LinksPage {
        csrf: admin.0.csrf,
        searched: !email.trim().is_empty(),
        removed: q.contains_key("removed"),
        email,
        links: found.iter().map(LinkView::from).collect(),
    }))
}

pub async fn remove_link(
    State(app): State<Arc<AppState>>,
    admin: AdminUser,
    CsrfForm(form): CsrfForm<Fields>,
) -> Result<Response, Error> {
    let (issuer, subject) = input::link_key(&form)?;
    let link = crate::admin::remove_link(&app, &admin.actor, issuer, subject).await?;
    let back = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("email", &link.email_at_link)
        .append_pair("removed", "1")
        .finish();
    Ok(see_other(&format!("/admin/links?{back}")))
}

pub struct EventView {
    at: String,
    kind: &'static str,
    refused: bool,
    connection: String,
    email: String,
    customer_id: String,
    reason: String,
    actor: String,
    correlation_id: String,
    client_ip: String,
    user_agent: String,
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
            client_ip: e.client_ip.clone().unwrap_or_default(),
            user_agent: e.user_agent.clone().unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
pub struct AuditPage {
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

/// `GET /admin/audit.csv?<the audit page's filters>`: the filtered events as a CSV download.
pub async fn audit_csv(
    State(app): State<Arc<AppState>>,
    _admin: AdminUser,
    RawQuery(query): RawQuery,
) -> Result<Response, Error> {
    crate::admin::api::csv_download(&app, query.as_deref()).await
}

pub async fn audit(
    State(app): State<Arc<AppState>>,
    admin: AdminUser,
    RawQuery(query): RawQuery,
) -> Result<Response, Error> {
    let q = input::query(query.as_deref())?;
    let filter = input::audit_filter(&q)?;
    let events = app.db.search_audit(&filter).await?;
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    Ok(render(&AuditPage {
        csrf: admin.0.csrf,
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
