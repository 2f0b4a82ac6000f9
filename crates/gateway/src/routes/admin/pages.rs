//! Sign-in, overview, identity links and audit log pages.

// Handlers share the parent's imports and input helpers.
use super::*;

#[derive(Template)]
#[template(path = "admin/login.html")]
pub(super) struct LoginPage {
    csrf: String,
    error: Option<&'static str>,
    /// The display name of the admin SSO connection, when there is one.
    sso: Option<String>,
    /// Whether the bootstrap token form is offered.
    token: bool,
}

pub(super) fn login_page_view(
    app: &AppState,
    csrf: String,
    error: Option<&'static str>,
) -> LoginPage {
    let sso = app
        .admin_access
        .current()
        .and_then(|s| app.connections.get(&s.connection))
        .map(|c| c.display_name);
    LoginPage {
        csrf,
        error,
        sso,
        token: app.config.admin_token.is_some(),
    }
}

pub(super) async fn login_page(
    State(app): State<Arc<AppState>>,
    session: Session,
) -> Result<Response, Error> {
    if admin::current(&session).await?.is_some() {
        return Ok(see_other("/admin"));
    }
    let csrf = admin::login_csrf(&app, &session).await?;
    Ok(render(&login_page_view(&app, csrf, None)))
}

pub(super) async fn login(
    State(app): State<Arc<AppState>>,
    session: Session,
    ClientIp(ip): ClientIp,
    RawForm(body): RawForm,
) -> Result<Response, Error> {
    let form = fields(&body)?;
    let token = form.get("token").map(String::as_str).unwrap_or("");
    let csrf = form.get("csrf").map(String::as_str).unwrap_or("");
    match admin::sign_in(&app, &session, token.trim(), csrf).await {
        Ok(_) => Ok(see_other("/admin")),
        Err(Error::AdminTokenRejected) => {
            app.limits.admin_failed(ip);
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

pub(super) async fn sso_start(
    State(app): State<Arc<AppState>>,
    session: Session,
) -> Result<Response, Error> {
    let url = admin::sso_start(&app, &session).await?;
    Ok(found(url.as_str()))
}

pub(super) async fn sso_callback(
    State(app): State<Arc<AppState>>,
    session: Session,
    ClientIp(ip): ClientIp,
    RawQuery(query): RawQuery,
) -> Result<Response, Error> {
    let finished = match crate::oidc::CallbackParams::parse_strict(query.as_deref()) {
        Ok(params) => admin::sso_finish(&app, &session, params).await,
        Err(e) => Err(Error::CallbackParams(e)),
    };
    // Every refused admin callback costs the client one failed attempt and is audited.
    if let Err(e) = &finished {
        app.limits.admin_failed(ip);
        admin::sso_refused(&app, e).await;
    }
    finished?;
    Ok(see_other("/admin"))
}

pub(super) async fn logout(session: Session, RawForm(body): RawForm) -> Result<Response, Error> {
    let admin = signed_in(&session).await?;
    admin::check_csrf(
        &admin,
        fields(&body)?.get("csrf").map(String::as_str).unwrap_or(""),
    )?;
    admin::sign_out(&session).await?;
    Ok(see_other("/admin/login"))
}

/// "Sign out all admin sessions" (the Admin sign-in page): every admin session on every
/// replica ends at its next request, this one at once.
pub(super) async fn sign_out_all(
    State(app): State<Arc<AppState>>,
    session: Session,
    RawForm(body): RawForm,
) -> Result<Response, Error> {
    let admin = signed_in(&session).await?;
    admin::check_csrf(
        &admin,
        fields(&body)?.get("csrf").map(String::as_str).unwrap_or(""),
    )?;
    admin::sign_out_all(&app, &admin.actor).await?;
    admin::sign_out(&session).await?;
    Ok(see_other("/admin/login"))
}

/// `POST /admin/api/sessions/revoke`: the same for automation; `{"data": {"generation": n}}`.
pub(super) async fn api_sign_out_all(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let actor = api_admin(&app, &headers)?;
    let generation = admin::sign_out_all(&app, &actor).await?;
    Ok(Json(serde_json::json!({ "data": { "generation": generation } })).into_response())
}

pub(super) struct ConnectionView {
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
pub(super) struct DashboardPage {
    csrf: String,
    store_hash: String,
    redirect_uri: String,
    admin_redirect_uri: String,
    link_count: i64,
    /// `None` until the store settings are set.
    store: Option<StoreView>,
    connections: Vec<ConnectionView>,
    events: Vec<EventView>,
}

pub(super) struct StoreView {
    from_file: bool,
    api_base_url: String,
    client_id: String,
    /// (channel id, storefront URL, default redirect)
    channels: Vec<(i64, String, String)>,
}

impl StoreView {
    pub(super) fn of(app: &AppState) -> Option<StoreView> {
        let api = app.store_settings.current()?;
        let s = &api.settings;
        Some(StoreView {
            from_file: api.source == crate::managed::Source::File,
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

pub(super) async fn dashboard(
    State(app): State<Arc<AppState>>,
    session: Session,
) -> Result<Response, Error> {
    let admin = signed_in(&session).await?;
    let store_hash = &app.config.store.store_hash;
    let connections = app
        .connections
        .all()
        .iter()
        .map(|e| (&e.connection, e))
        .map(|(c, e)| ConnectionView {
            enabled: e.enabled,
            from_file: e.source == crate::managed::Source::File,
            id: c.id.to_string(),
            display_name: c.display_name.clone(),
            issuer: c.issuer.as_str().to_owned(),
            domains: c
                .allowed_email_domains
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            trusted_domains: c
                .trusted_email_domains
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            create_customers: c.create_customers,
            link_existing: c.link_existing.as_str(),
            admin_connection: admin::is_admin_connection(&app, c.id.as_str()),
        })
        .collect();
    let recent = app.store.audit_events(store_hash, 10).await?;
    Ok(render(&DashboardPage {
        csrf: admin.csrf,
        store_hash: store_hash.clone(),
        redirect_uri: app.config.redirect_uri("CONNECTION-ID").to_string(),
        admin_redirect_uri: app.config.admin_redirect_uri().to_string(),
        store: StoreView::of(&app),
        link_count: app.store.count_links(store_hash).await?,
        connections,
        events: recent.iter().map(EventView::from).collect(),
    }))
}

pub(super) struct LinkView {
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
pub(super) struct LinksPage {
    csrf: String,
    email: String,
    searched: bool,
    removed: bool,
    links: Vec<LinkView>,
}

pub(super) async fn links(
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

pub(super) async fn remove_link(
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
    Ok(see_other(&format!("/admin/links?{back}")))
}

pub(super) struct EventView {
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
pub(super) struct AuditPage {
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

pub(super) async fn audit(
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
