//! `bc-sso-gateway demo`: the dev IdP, the BigCommerce emulator (API and storefronts) and
//! the gateway on loopback, wired with a generated config. The integration tests start the
//! same thing on ephemeral ports, so the demo is exercised by every test run.

use std::net::SocketAddr;
use std::sync::Arc;

use rand::Rng;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use url::Url;

use bc_sso_gateway::clock::Clock;
use bc_sso_gateway::config::{
    RawAdmin, RawChannel, RawConfig, RawConnection, RawDatabase, RawServer, RawStore,
};
use bc_sso_gateway::{AppState, app};
use bc_sso_sandbox::bigcommerce::{EmulatedChannel, Emulator, EmulatorConfig};
use bc_sso_sandbox::idp::{DevClient, DevIdp, DevIdpConfig, DevUser};

/// The IdP the demo signs in with.
#[derive(Debug, Clone)]
pub enum DemoIdp {
    /// The built-in dev IdP with these users.
    Dev { users: Vec<DevUser> },
    /// An IdP running elsewhere (for example `oidc-provider` in the browser test): register
    /// the printed redirect URI there.
    External {
        issuer: Url,
        client_id: String,
        client_secret: String,
        email_domains: Vec<String>,
    },
}

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// First of five consecutive ports (storefront, gateway, IdP, API, metrics); 0 = ephemeral.
    pub port: u16,
    pub idp: DemoIdp,
    /// Storefront channels to emulate (1 = just the default storefront).
    pub channels: i64,
    /// Start the gateway as a new install: only the store hash, an admin token and a key.
    /// The store's API account and the IdP connection are then entered in the console.
    pub empty: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            port: 0,
            idp: DemoIdp::Dev {
                users: bc_sso_sandbox::idp::demo_users(),
            },
            channels: 1,
            empty: false,
        }
    }
}

/// A running demo. Dropping it stops every server.
pub struct Demo {
    pub storefront_urls: Vec<Url>,
    pub gateway_url: Url,
    /// Prometheus metrics of the demo's gateway (`/metrics`).
    pub metrics_url: Url,
    pub api_url: Url,
    pub idp_url: Url,
    pub emulator: Emulator,
    pub idp: Option<DevIdp>,
    pub state: Arc<AppState>,
    pub clock: Clock,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot listen on {addr}: {source} (pick other ports with --port)")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("generated config is invalid: {0}")]
    Config(String),
    #[error("{0}")]
    Start(String),
}

async fn bind(port: u16, offset: u16) -> Result<(TcpListener, Url), DemoError> {
    let port = if port == 0 { 0 } else { port + offset };
    let addr = format!("127.0.0.1:{port}");
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|source| DemoError::Bind {
            addr: addr.clone(),
            source,
        })?;
    let local = listener
        .local_addr()
        .map_err(|source| DemoError::Bind { addr, source })?;
    let url =
        Url::parse(&format!("http://{local}/")).map_err(|e| DemoError::Start(e.to_string()))?;
    Ok((listener, url))
}

fn random_secret() -> String {
    let mut rng = rand::thread_rng();
    (0..32)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.gen_range(0..36)]))
        .collect()
}

fn serve(listener: TcpListener, router: axum::Router) -> JoinHandle<()> {
    tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, service).await {
            tracing::error!(error = %e, "server stopped");
        }
    })
}

/// The config the demo's gateway runs with; `customize` lets tests change it before it is
/// validated, exactly as an operator's file would.
pub fn demo_config(
    gateway_url: &Url,
    api_url: &Url,
    storefronts: &[Url],
    emulator: &EmulatorConfig,
    idp_url: &Url,
    idp: &DemoIdp,
) -> RawConfig {
    let (issuer, client_id, client_secret, domains) = match idp {
        DemoIdp::Dev { .. } => (
            idp_url.to_string(),
            DEV_CLIENT_ID.to_owned(),
            DEV_CLIENT_SECRET.to_owned(),
            vec!["example.com".to_owned()],
        ),
        DemoIdp::External {
            issuer,
            client_id,
            client_secret,
            email_domains,
        } => (
            issuer.to_string(),
            client_id.clone(),
            client_secret.clone(),
            email_domains.clone(),
        ),
    };
    RawConfig {
        server: RawServer {
            listen: Some("127.0.0.1:0".into()),
            public_url: Some(gateway_url.to_string()),
            http_timeout_secs: Some(5),
            ..Default::default()
        },
        // The demo keeps nothing: links and audit live in memory for the run.
        database: RawDatabase {
            url: Some("sqlite::memory:".into()),
            audit_retention_days: None,
            link_touch_interval_secs: None,
            // Connections added in the console are stored encrypted, as in production.
            secret_key: Some(bc_sso_gateway::secrets::SecretKey::generate().to_base64()),
            secret_key_file: None,
        },
        // A fresh admin token per run, printed in the banner.
        admin: RawAdmin {
            token: Some(random_secret()),
            token_file: None,
            // With the dev IdP, Ada is an admin: the console's SSO sign-in can be tried.
            sso_connection: matches!(idp, DemoIdp::Dev { .. }).then(|| "demo".into()),
            allowed_emails: vec!["ada@example.com".into()],
            allowed_groups: Vec::new(),
        },
        store: RawStore {
            store_hash: Some(emulator.store_hash.clone()),
            api_base_url: Some(api_url.to_string()),
            access_token: Some(emulator.access_token.clone()),
            client_id: Some(emulator.client_id.clone()),
            client_secret: Some(emulator.client_secret.clone()),
            channels: storefronts
                .iter()
                .zip(1..)
                .map(|(url, id)| RawChannel {
                    id,
                    storefront_url: url.to_string(),
                    default_redirect: None,
                })
                .collect(),
            ..Default::default()
        },
        connections: vec![RawConnection {
            id: Some("demo".into()),
            display_name: Some("Example Corp (dev IdP)".into()),
            issuer: Some(issuer.trim_end_matches('/').to_owned()),
            client_id: Some(client_id),
            client_secret: Some(client_secret),
            scopes: Some(vec!["openid".into(), "email".into(), "profile".into()]),
            allowed_email_domains: domains,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The gateway's client at the dev IdP.
pub const DEV_CLIENT_ID: &str = "bc-sso-gateway";
/// Secret of the gateway's client at the dev IdP. Only the loopback dev IdP knows it.
pub const DEV_CLIENT_SECRET: &str = "dev-idp-client-secret";

/// The demo's sockets, bound before anything is configured: every URL is known up front, so
/// an external IdP can be told the redirect URI before the gateway starts.
pub struct Listeners {
    storefronts: Vec<(TcpListener, Url)>,
    gateway: (TcpListener, Url),
    idp: (TcpListener, Url),
    api: (TcpListener, Url),
    metrics: (TcpListener, Url),
}

impl Listeners {
    /// `port` is the first of four consecutive ports (storefront, gateway, IdP, API), or 0
    /// for free ports. Extra channels' storefronts always get free ports.
    pub async fn bind(port: u16, channels: i64) -> Result<Self, DemoError> {
        let mut storefronts = vec![bind(port, 0).await?];
        let gateway = bind(port, 1).await?;
        let idp = bind(port, 2).await?;
        let api = bind(port, 3).await?;
        let metrics = bind(port, 4).await?;
        for _ in 1..channels.max(1) {
            storefronts.push(bind(0, 0).await?);
        }
        Ok(Self {
            storefronts,
            gateway,
            idp,
            api,
            metrics,
        })
    }

    pub fn gateway_url(&self) -> &Url {
        &self.gateway.1
    }

    /// The redirect URI of connection `id` to register at an external IdP.
    pub fn redirect_uri(&self, id: &str) -> Url {
        bc_sso_gateway::config::join_path(&self.gateway.1, &format!("oidc/callback/{id}"))
    }
}

/// Starts the demo on free or given ports. `customize` may change the generated gateway
/// config (tests use it to add connections or flip policies).
pub async fn start(
    options: DemoOptions,
    customize: impl FnOnce(&mut RawConfig),
) -> Result<Demo, DemoError> {
    let listeners = Listeners::bind(options.port, options.channels).await?;
    let empty = options.empty;
    start_on(listeners, options.idp, |raw| {
        if empty {
            make_empty(raw);
        }
        customize(raw)
    })
    .await
}

/// What a new install starts with: the store hash, the admin token and the secret key.
pub fn make_empty(raw: &mut RawConfig) {
    raw.store = RawStore {
        store_hash: raw.store.store_hash.take(),
        ..RawStore::default()
    };
    raw.connections.clear();
    raw.admin.sso_connection = None;
}

/// The values an admin types into the console of an empty demo, as (label, value) rows.
/// They are the demo's own throwaway credentials: showing them is the point.
pub fn setup_values(demo: &Demo) -> Vec<(&'static str, String)> {
    let e = demo.emulator.config();
    let mut rows = vec![
        ("API base URL", demo.api_url.to_string()),
        ("API client id", e.client_id.clone()),
        ("API access token", e.access_token.clone()),
        ("API client secret", e.client_secret.clone()),
    ];
    for (url, id) in demo.storefront_urls.iter().zip(1..) {
        rows.push(("storefront channel", format!("{id} {url}")));
    }
    if demo.idp.is_some() {
        rows.push((
            "IdP issuer",
            demo.idp_url.as_str().trim_end_matches('/').to_owned(),
        ));
        rows.push(("IdP client id", DEV_CLIENT_ID.to_owned()));
        rows.push(("IdP client secret", DEV_CLIENT_SECRET.to_owned()));
        rows.push(("IdP email domain", "example.com".to_owned()));
    }
    rows
}

/// Starts the demo on sockets bound earlier.
pub async fn start_on(
    listeners: Listeners,
    idp_choice: DemoIdp,
    customize: impl FnOnce(&mut RawConfig),
) -> Result<Demo, DemoError> {
    let Listeners {
        storefronts,
        gateway: (gateway_listener, gateway_url),
        idp: (idp_listener, idp_bound_url),
        api: (api_listener, api_url),
        metrics: (metrics_listener, metrics_url),
    } = listeners;
    let channels = storefronts.len() as i64;
    let storefront_urls: Vec<Url> = storefronts.iter().map(|(_, u)| u.clone()).collect();

    let mut emulator_config =
        // A fresh store hash per run keeps runs apart in a shared database.
        EmulatorConfig::new(
            format!("demo{}", &random_secret()[..6]),
            random_secret(),
            random_secret(),
            random_secret(),
        );
    emulator_config.gateway_url = Some(gateway_url.clone());
    emulator_config.store_name = "Demo Store".into();
    for id in 2..=channels {
        emulator_config.channels.push(EmulatedChannel {
            id,
            name: format!("Storefront {id}"),
            allow_global_logins: false,
        });
    }

    let idp_url = match &idp_choice {
        DemoIdp::Dev { .. } => idp_bound_url.clone(),
        DemoIdp::External { issuer, .. } => issuer.clone(),
    };
    let mut raw = demo_config(
        &gateway_url,
        &api_url,
        &storefront_urls,
        &emulator_config,
        &idp_url,
        &idp_choice,
    );
    customize(&mut raw);
    let config = bc_sso_gateway::config::validate(raw).map_err(|errors| {
        DemoError::Config(
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;

    let idp = match &idp_choice {
        DemoIdp::Dev { users } => {
            let issuer = Url::parse(idp_bound_url.as_str().trim_end_matches('/'))
                .map_err(|e| DemoError::Start(e.to_string()))?;
            // One client per client id; each connection has its own redirect URI. Admins add
            // connections in the console under ids not known yet, so the demo's clients
            // also take any URI under `<gateway>/oidc/callback/`.
            let callbacks = bc_sso_gateway::config::join_path(&gateway_url, "oidc/callback/");
            let mut clients: Vec<DevClient> = Vec::new();
            let at_this_idp = config
                .connections
                .iter()
                .filter(|c| c.issuer.url().origin() == issuer.origin())
                .map(|c| (c.client_id.clone(), c.client_secret.expose().to_owned()))
                .chain([(DEV_CLIENT_ID.to_owned(), DEV_CLIENT_SECRET.to_owned())]);
            for (client_id, client_secret) in at_this_idp {
                if clients.iter().any(|c| c.client_id == client_id) {
                    continue;
                }
                let mut redirect_uris: Vec<Url> = config
                    .connections
                    .iter()
                    .filter(|c| c.client_id == client_id)
                    .map(|c| config.redirect_uri(c.id.as_str()))
                    .collect();
                redirect_uris.push(config.admin_redirect_uri());
                clients.push(DevClient {
                    client_id,
                    client_secret,
                    redirect_uris,
                    redirect_uri_prefixes: vec![callbacks.clone()],
                });
            }
            let idp = DevIdp::try_new(DevIdpConfig {
                issuer,
                clients,
                users: users.clone(),
                email_in_id_token: true,
                // As current IdPs do (RFC 9207); the gateway then requires it.
                send_iss_parameter: true,
            })
            .map_err(|e| DemoError::Start(e.to_string()))?;
            Some(idp)
        }
        DemoIdp::External { .. } => None,
    };

    let emulator = Emulator::new(emulator_config);
    // BigCommerce knows each channel's storefront by its site (GET /v3/channels/{id}/site).
    for (url, id) in storefront_urls.iter().zip(1..) {
        emulator.set_site(id, Some(url.clone()));
    }
    let clock = Clock::system();
    let state = Arc::new(
        AppState::connect(config, clock.clone())
            .await
            .map_err(|e| DemoError::Start(e.to_string()))?,
    );

    let mut tasks = Vec::new();
    tasks.push(serve(api_listener, emulator.api_router()));
    for ((listener, _), id) in storefronts.into_iter().zip(1..) {
        tasks.push(serve(listener, emulator.storefront_router(id)));
    }
    match &idp {
        Some(idp) => tasks.push(serve(idp_listener, idp.router())),
        None => drop(idp_listener),
    }
    tasks.push(serve(gateway_listener, app(state.clone())));
    tasks.push(serve(
        metrics_listener,
        bc_sso_gateway::metrics_app(state.clone()),
    ));
    if let Err(e) = state.sync_bigcommerce_clock().await {
        tracing::warn!(error = %e, "could not read the emulator's clock");
    }

    Ok(Demo {
        storefront_urls,
        gateway_url,
        metrics_url: metrics_url
            .join("metrics")
            .map_err(|e| DemoError::Start(e.to_string()))?,
        api_url,
        idp_url,
        emulator,
        idp,
        state,
        clock,
        tasks,
    })
}
