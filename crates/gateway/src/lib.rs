//! bc-sso-gateway: a storefront SSO gateway for BigCommerce.
//!
//! The library holds everything; `main.rs` only wires the CLI to it, so the integration
//! tests and the demo run exactly the code production runs.

pub mod admin;
pub mod api_budget;
pub mod bigcommerce;
pub mod capped_body;
pub mod cli;
pub mod client_ip;
pub mod clock;
pub mod coalesce;
pub mod config;
pub mod db;
pub mod diagnostics;
pub mod domain;
pub mod error;
pub mod metrics;
pub mod oidc;
pub mod pending;
pub mod policy;
pub mod provisioning;
pub mod rate_limit;
pub mod redirect;
pub mod routes;

pub mod secrets;
pub mod sessions;
pub mod settings;
pub mod signin;
pub mod signout;
pub mod telemetry;
pub mod waiting;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::{get, post};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer, SessionStore};

use crate::clock::Clock;
use crate::config::Config;

/// Everything a request needs, built once at start-up. Each cache inside owns its lock.
pub struct AppState {
    pub config: Config,
    pub oidc: oidc::Registry,
    /// The store's API account and channels: use [`AppState::bigcommerce`].
    pub store_settings: settings::store::StoreSettings,
    /// Admin sign-in through an IdP, from the file or the console.
    pub admin_access: settings::admin_access::AdminAccess,
    pub connections: settings::connections::Connections,
    /// The database, bound to this gateway's store.
    pub db: db::Db,
    pub sessions: sessions::SessionBackend,
    /// Admin sessions: their own store (map or key prefix), apart from shoppers'.
    pub admin_sessions: sessions::SessionBackend,
    pub clock: Clock,
    /// Rate limits by client IP and by connection, and the admin failure budget.
    pub limits: rate_limit::Limits,
    /// First sign-ins' BigCommerce calls, coalesced under the store's API budget.
    pub coalescer: Arc<coalesce::Coalescer>,
    /// Sign-ins whose account is still being set up (the waiting page).
    pub first_sign_ins: waiting::Waiting<signin::Provisioned>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error(transparent)]
    Settings(#[from] settings::LoadError),
    #[error("cannot reach the session store (server.sessions_url): {0}")]
    Sessions(String),
}

impl AppState {
    /// Builds the state: HTTP client, caches, and the database (created and migrated).
    pub async fn connect(config: Config, clock: Clock) -> Result<Self, StartError> {
        // Registered now, at start-up, rather than by the first request that counts.
        std::sync::LazyLock::force(&metrics::METRICS);
        let http = http_client(config.server.http_timeout)?;
        let db = db::Db::connect(&config.database.url, &config.store.store_hash).await?;
        let rows = settings::Rows {
            db: &db,
            key: config.database.secret_key.as_ref(),
        };
        let connections = settings::Managed::load(
            settings::connections::FileConnections(config.connections.clone()),
            rows,
        )
        .await?;
        let store_settings = settings::Managed::load(
            settings::store::StoreKind::new(config.store.clone(), http.clone(), clock.clone()),
            rows,
        )
        .await?;
        let admin_access = settings::Managed::load(
            settings::admin_access::DeclaredAdminSso(config.admin_sso.clone().map(Arc::new)),
            rows,
        )
        .await?;
        let sessions = match &config.server.sessions_url {
            Some(url) => sessions::SessionBackend::Redis(
                sessions::RedisSessionStore::connect(url.expose(), "bcsso:session:")
                    .await
                    // Redis errors name the host, not the password.
                    .map_err(|e| StartError::Sessions(e.to_string()))?,
            ),
            None => sessions::SessionBackend::Memory(sessions::MemorySessionStore::default()),
        };
        let budget = match &config.server.sessions_url {
            Some(url) => api_budget::ApiBudget::shared(
                redis_connection(url.expose())
                    .await
                    .map_err(|e| StartError::Sessions(e.to_string()))?,
                format!("bcsso:api-budget:{}", config.store.store_hash),
            ),
            None => api_budget::ApiBudget::local(),
        };
        Ok(Self {
            coalescer: coalesce::Coalescer::new(budget),
            first_sign_ins: waiting::Waiting::default(),
            limits: rate_limit::Limits::new(&config.server),
            admin_sessions: sessions.for_admins(),
            sessions,
            oidc: oidc::Registry::new(http).with_clock(clock.clone()),
            connections,
            store_settings,
            admin_access,
            db,
            config,
            clock,
        })
    }

    /// Where the settings an admin manages are stored.
    pub fn settings_rows(&self) -> settings::Rows<'_> {
        settings::Rows {
            db: &self.db,
            key: self.config.database.secret_key.as_ref(),
        }
    }

    /// The admin console's view of connection management.
    pub fn console(&self) -> settings::connections::Console<'_> {
        settings::connections::Console {
            rows: self.settings_rows(),
            current: &self.connections,
            now: self.clock.now(),
        }
    }

    /// Queues an audit event stamped with the current time for the database's writer. The
    /// audit trail must not turn a working sign-in into a failure, nor slow it down.
    pub async fn audit(&self, mut event: db::AuditEvent) {
        event.at = self.clock.now();
        let ctx = telemetry::RequestCtx::current();
        if event.correlation_id.is_none() {
            event.correlation_id = Some(ctx.correlation_id);
        }
        if event.client_ip.is_none() {
            event.client_ip = ctx.client_ip.map(|ip| ip.to_string());
        }
        if event.user_agent.is_none() {
            event.user_agent = ctx.user_agent;
        }
        let result = match event.kind {
            db::AuditKind::SignInSucceeded => Some("succeeded"),
            db::AuditKind::SignInRefused => Some("refused"),
            _ => None,
        };
        if let Some(result) = result {
            metrics::METRICS
                .sign_ins
                .with_label_values(&[
                    event.connection.as_deref().unwrap_or(""),
                    result,
                    event.reason.as_deref().unwrap_or(""),
                ])
                .inc();
        }
        // Queued, not awaited: the writer task batches the trail off the sign-in's path. A
        // full queue drops the event, counted and logged by the queue.
        self.db.queue_audit(event);
    }

    /// The store's API client, login-token minter and channels in force, or
    /// [`error::Error::StoreNotSetUp`] until an admin has entered them in the console.
    pub fn bigcommerce(&self) -> Result<Arc<settings::store::StoreApi>, error::Error> {
        self.store_settings
            .current()
            .ok_or(error::Error::StoreNotSetUp)
    }

    /// Measures BigCommerce's clock once and corrects the login token's `iat` by it.
    /// `Ok(None)`: no store is set up yet.
    pub async fn sync_bigcommerce_clock(&self) -> Result<Option<i64>, bigcommerce::ApiError> {
        let Some(api) = self.store_settings.current() else {
            return Ok(None);
        };
        let before = clock::system_now_ms();
        let bc = api.client.time().await?;
        let after = clock::system_now_ms();
        Ok(Some(api.tokens.record_bigcommerce_time(bc, before, after)))
    }
}

/// The store's API budget is shared through the sessions' Redis, on a connection of its own.
async fn redis_connection(url: &str) -> Result<redis::aio::ConnectionManager, redis::RedisError> {
    redis::aio::ConnectionManager::new(redis::Client::open(url)?).await
}

/// The metrics listener's app: `GET /metrics` in Prometheus's text format. Served on its
/// own address (`server.metrics_listen`), never beside the shoppers' routes.
pub fn metrics_app(state: Arc<AppState>) -> Router {
    async fn scrape(
        axum::extract::State(app): axum::extract::State<Arc<AppState>>,
    ) -> impl axum::response::IntoResponse {
        for (label, backend) in [("shoppers", &app.sessions), ("admins", &app.admin_sessions)] {
            if let sessions::SessionBackend::Memory(m) = backend {
                let n = i64::try_from(m.len().await).unwrap_or(i64::MAX);
                metrics::METRICS.sessions.with_label_values(&[label]).set(n);
            }
        }
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            )],
            metrics::METRICS.render(),
        )
    }
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(state)
}

/// One HTTP client for the IdPs and BigCommerce. No redirects are followed: an IdP or API
/// that redirects a back-channel call is misconfigured or hostile (SSRF).
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("bc-sso-gateway/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Re-measures BigCommerce's clock every `clock_check_interval` for the life of the process.
pub fn spawn_clock_sync(state: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let interval = state.config.store.clock_check_interval;
        loop {
            match state.sync_bigcommerce_clock().await {
                Ok(Some(offset)) => {
                    tracing::debug!(offset_secs = offset, "BigCommerce clock measured")
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "could not read BigCommerce's clock (GET /v2/time)")
                }
            }
            tokio::time::sleep(interval).await;
        }
    })
}

/// How often a replica looks for console changes made through another replica.
pub const SETTINGS_REFRESH: Duration = Duration::from_secs(5);

impl AppState {
    /// Reloads the settings the console changed on another replica. Returns whether
    /// anything reloaded.
    pub async fn refresh_settings(&self) -> Result<bool, settings::LoadError> {
        let rows = self.settings_rows();
        // Each kind on its own: one unreadable row must not hold back the others.
        let results = [
            ("store settings", self.store_settings.refresh(rows).await),
            (
                "admin sign-in settings",
                self.admin_access.refresh(rows).await,
            ),
            ("connections", self.refresh_connections().await),
        ];
        let mut reloaded = false;
        let mut first_error = None;
        for (what, result) in results {
            match result {
                Ok(true) => {
                    reloaded = true;
                    tracing::info!(what, "reloaded after a change on another replica");
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(what, error = %e, "could not reload; keeping the settings in force");
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(reloaded), Err)
    }

    /// Reloads the connections if the console changed them on another replica; the
    /// discovery cached for the old settings goes with them.
    async fn refresh_connections(&self) -> Result<bool, settings::LoadError> {
        let reloaded = self.connections.refresh(self.settings_rows()).await?;
        if reloaded {
            for e in self.connections.all().iter() {
                self.oidc.forget(&e.connection.id);
            }
        }
        Ok(reloaded)
    }
}

/// Keeps this replica's connections and store settings in step with the database.
pub fn spawn_settings_refresh(state: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(SETTINGS_REFRESH).await;
            // Failures are logged, each with what failed, by `refresh_settings`.
            let _ = state.refresh_settings().await;
        }
    })
}

/// Deletes audit events past the retention period, hourly, for the life of the process.
pub fn spawn_audit_pruning(state: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let cutoff = state.clock.now() - state.config.database.audit_retention.as_secs() as i64;
            match state.db.prune_audit(cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "old audit events pruned"),
                Err(e) => tracing::warn!(error = %e, "could not prune audit events"),
            }
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    })
}

/// The gateway with its configured session store (in memory by default, or Redis).
pub fn app(state: Arc<AppState>) -> Router {
    let store = state.sessions.clone();
    app_with_store(state, store)
}

pub fn app_with_store<S: SessionStore + Clone>(state: Arc<AppState>, store: S) -> Router {
    let https = state.config.server.public_url.scheme() == "https";
    // `__Host-` pins the cookie to this host and path and requires Secure, so it is only
    // possible when the gateway is served over https (SECURITY.md rule 12).
    let name = if https { "__Host-bcsso" } else { "bcsso" };
    let ttl = state.config.server.pending_login_ttl.as_secs() as i64;
    let sessions = SessionManagerLayer::new(store)
        .with_name(name)
        .with_secure(https)
        .with_http_only(true)
        // Lax, not Strict: the IdP returns the browser with a top-level GET from its site.
        .with_same_site(SameSite::Lax)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(time::Duration::seconds(ttl)));
    let sign_in = Router::new()
        .route("/login", get(routes::login::start))
        .route("/oidc/callback/{connection}", get(routes::callback::finish))
        .route("/logout", get(routes::logout::start))
        .route("/logout/done", get(routes::logout::done))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            rate_limit::sign_in_requests,
        ));
    Router::new()
        .route("/", get(routes::login::index))
        // Outside the sign-in rate limit: it refreshes every few seconds during a storm,
        // costs no IdP or API call, and answers only the session that holds its ticket.
        .route("/login/wait", get(routes::callback::wait))
        .merge(sign_in)
        .route("/healthz", get(routes::health::live))
        .route("/readyz", get(routes::health::ready))
        .route("/static/gateway.css", get(routes::assets::css))
        .route("/static/sso-button.js", get(routes::assets::sso_button))
        .route("/static/admin.js", get(routes::assets::admin_js))
        .layer(sessions)
        // Outside the session layer: BigCommerce has no session. Limited like sign-ins.
        .route(
            "/webhooks/bigcommerce",
            post(routes::webhooks::bigcommerce).route_layer(
                axum::middleware::from_fn_with_state(state.clone(), rate_limit::sign_in_requests),
            ),
        )
        .nest("/admin", admin::router(&state))
        .fallback(|| async { error::Error::NotFound })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_span,
        ))
        // Every gateway response: nothing may be framed (clickjacking of the chooser),
        // sniffed, cached (the callback's redirect carries a login token), or leak its URL
        // in a Referer.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        ))
        .with_state(state)
}

/// The request span, with the client's IP (resolved once, here, for everything after) and
/// the storefront the error page links back to: the first channel of the store settings
/// in force at the time of the request.
async fn request_span(
    axum::extract::State(app): axum::extract::State<Arc<AppState>>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|axum::extract::ConnectInfo(addr)| addr.ip());
    let client_ip = client_ip::resolve(&app.config.server.client_ip, peer, req.headers());
    req.extensions_mut().insert(client_ip::ClientIp(client_ip));
    let home_url = app.store_settings.current().and_then(|api| {
        api.settings
            .channels
            .values()
            .next()
            .map(|c| Arc::from(c.storefront_url.as_str()))
    });
    let info = telemetry::RequestInfo {
        home_url,
        client_ip,
    };
    telemetry::request_span(axum::extract::State(info), req, next).await
}
