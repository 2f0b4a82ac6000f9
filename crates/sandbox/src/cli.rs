//! The sandbox services as processes of their own (`bc-sso-dev sandbox bigcommerce`,
//! `bc-sso-dev sandbox idp`), configured by flags or `BCSSO_SANDBOX_*` variables, so Docker
//! Compose and the local-topology test run them beside real gateway replicas. Each prints
//! what it serves and the values a gateway needs, then runs until the caller's shutdown
//! signal (the binary passes the gateway's: SIGTERM or Ctrl-C).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use url::Url;

use crate::bigcommerce::{EmulatedChannel, Emulator, EmulatorConfig, FaultConfig};
use crate::idp::{DevClient, DevIdp, DevIdpConfig};

#[derive(Subcommand)]
pub enum Command {
    /// The BigCommerce emulator: the REST API and one storefront per channel.
    Bigcommerce(BigcommerceArgs),
    /// The development OpenID Provider.
    Idp(IdpArgs),
}

#[derive(Args)]
pub struct BigcommerceArgs {
    /// Address of the REST API (`/stores/<hash>/v3/...`).
    #[arg(
        long,
        env = "BCSSO_SANDBOX_API_LISTEN",
        default_value = "127.0.0.1:4003"
    )]
    api_listen: SocketAddr,
    /// Address of a storefront; repeat for channels 1, 2, ...
    #[arg(
        long = "storefront-listen",
        env = "BCSSO_SANDBOX_STOREFRONT_LISTEN",
        value_delimiter = ',',
        default_value = "127.0.0.1:4000"
    )]
    storefront_listen: Vec<SocketAddr>,
    /// Each storefront's URL as shoppers (and the gateway's store settings) name it: the
    /// channel's site (`GET /v3/channels/{id}/site`). Default: `http://<listen address>/`,
    /// with 0.0.0.0 and [::] read as localhost.
    #[arg(
        long = "storefront-url",
        env = "BCSSO_SANDBOX_STOREFRONT_URLS",
        value_delimiter = ','
    )]
    storefront_url: Vec<Url>,
    #[arg(long, env = "BCSSO_SANDBOX_STORE_HASH", default_value = "sandbox")]
    store_hash: String,
    /// The API account's access token (`X-Auth-Token`).
    #[arg(
        long,
        env = "BCSSO_SANDBOX_ACCESS_TOKEN",
        hide_env_values = true,
        required_unless_present = "access_token_file"
    )]
    access_token: Option<String>,
    /// Or: a file holding it (a Compose or Kubernetes secret).
    #[arg(
        long,
        env = "BCSSO_SANDBOX_ACCESS_TOKEN_FILE",
        conflicts_with = "access_token"
    )]
    access_token_file: Option<PathBuf>,
    /// The API account's client id (`iss` of accepted login tokens).
    #[arg(long, env = "BCSSO_SANDBOX_CLIENT_ID")]
    client_id: String,
    /// The API account's client secret (HS256 key of accepted login tokens).
    #[arg(
        long,
        env = "BCSSO_SANDBOX_CLIENT_SECRET",
        hide_env_values = true,
        required_unless_present = "client_secret_file"
    )]
    client_secret: Option<String>,
    /// Or: a file holding it.
    #[arg(
        long,
        env = "BCSSO_SANDBOX_CLIENT_SECRET_FILE",
        conflicts_with = "client_secret"
    )]
    client_secret_file: Option<PathBuf>,
    /// API requests per window, as a store's plan allows (Standard: 150 per 30 s).
    #[arg(long, env = "BCSSO_SANDBOX_QUOTA", default_value_t = 150)]
    quota: u32,
    #[arg(long, env = "BCSSO_SANDBOX_QUOTA_WINDOW_SECS", default_value_t = 30)]
    quota_window_secs: u64,
    /// The gateway's public URL: the storefront sign-in page loads the button from it.
    #[arg(long, env = "BCSSO_SANDBOX_GATEWAY_URL")]
    gateway_url: Option<Url>,
    #[arg(
        long,
        env = "BCSSO_SANDBOX_STORE_NAME",
        default_value = "Sandbox Store"
    )]
    store_name: String,
    #[command(flatten)]
    faults: FaultArgs,
}

/// Faults the API injects at random (`bigcommerce::FaultConfig`), to see the gateway cope.
#[derive(Args)]
pub struct FaultArgs {
    /// Share of API requests (0.0-1.0) answered with --fault-error-status, unprocessed.
    #[arg(long, env = "BCSSO_SANDBOX_FAULT_ERROR_RATE", default_value_t = 0.0, value_parser = rate)]
    fault_error_rate: f64,
    /// The status of those answers (500, 502, 503, 504).
    #[arg(long, env = "BCSSO_SANDBOX_FAULT_ERROR_STATUS", default_value_t = 503, value_parser = clap::value_parser!(u16).range(500..600))]
    fault_error_status: u16,
    /// Milliseconds added to every API answer.
    #[arg(long, env = "BCSSO_SANDBOX_FAULT_LATENCY_MS", default_value_t = 0)]
    fault_latency_ms: u64,
    /// Share of API requests answered 429 without rate-limit headers (load shedding).
    #[arg(long, env = "BCSSO_SANDBOX_FAULT_THROTTLE_RATE", default_value_t = 0.0, value_parser = rate)]
    fault_throttle_rate: f64,
    /// Share of API requests whose connection is dropped after they were processed.
    #[arg(long, env = "BCSSO_SANDBOX_FAULT_RESET_RATE", default_value_t = 0.0, value_parser = rate)]
    fault_reset_rate: f64,
    /// Send every answer's body this many milliseconds after its headers.
    #[arg(long, env = "BCSSO_SANDBOX_FAULT_SLOW_BODY_MS")]
    fault_slow_body_ms: Option<u64>,
    /// Answer with `null` for empty strings, unknown fields and `meta: []`.
    #[arg(long, env = "BCSSO_SANDBOX_FAULT_ODD_JSON")]
    fault_odd_json: bool,
}

impl FaultArgs {
    fn config(&self) -> FaultConfig {
        FaultConfig {
            error_rate: self.fault_error_rate,
            error_status: self.fault_error_status,
            latency: Duration::from_millis(self.fault_latency_ms),
            throttle_rate: self.fault_throttle_rate,
            reset_rate: self.fault_reset_rate,
            slow_body: self.fault_slow_body_ms.map(Duration::from_millis),
            odd_json: self.fault_odd_json,
        }
    }
}

fn rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{s:?} is not a share between 0.0 and 1.0")),
    }
}

#[derive(Args)]
pub struct IdpArgs {
    #[arg(
        long,
        env = "BCSSO_SANDBOX_IDP_LISTEN",
        default_value = "127.0.0.1:4002"
    )]
    listen: SocketAddr,
    /// The issuer as the gateway reaches it (no trailing slash), e.g. http://127.0.0.1:4002.
    #[arg(long, env = "BCSSO_SANDBOX_IDP_ISSUER")]
    issuer: Url,
    #[arg(
        long,
        env = "BCSSO_SANDBOX_IDP_CLIENT_ID",
        default_value = "bc-sso-gateway"
    )]
    client_id: String,
    #[arg(
        long,
        env = "BCSSO_SANDBOX_IDP_CLIENT_SECRET",
        hide_env_values = true,
        required_unless_present = "client_secret_file"
    )]
    client_secret: Option<String>,
    /// Or: a file holding it.
    #[arg(
        long,
        env = "BCSSO_SANDBOX_IDP_CLIENT_SECRET_FILE",
        conflicts_with = "client_secret"
    )]
    client_secret_file: Option<PathBuf>,
    /// Allowed redirect URIs of the client (comma-separated or repeated): the gateway's
    /// `<public_url>/oidc/callback` and `<public_url>/admin/oidc/callback`.
    #[arg(
        long = "redirect-uri",
        env = "BCSSO_SANDBOX_IDP_REDIRECT_URIS",
        value_delimiter = ',',
        required = true
    )]
    redirect_uris: Vec<Url>,
    /// Users from a TOML file ([[users]] with sub, email, email_verified, ...); default: the
    /// demo users.
    #[arg(long, env = "BCSSO_SANDBOX_IDP_USERS")]
    users: Option<PathBuf>,
}

/// Runs `command` until a server stops (an error) or `shutdown` completes (a clean stop).
pub async fn run(command: Command, shutdown: impl Future<Output = ()>) -> ExitCode {
    let result = match command {
        Command::Bigcommerce(args) => bigcommerce(args, shutdown).await,
        Command::Idp(args) => idp(args, shutdown).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A secret given inline or as a file (trailing newline dropped, as secret files have one).
fn secret(value: Option<String>, file: Option<PathBuf>, flag: &str) -> Result<String, String> {
    match (value, file) {
        (Some(v), _) => Ok(v),
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
            .map_err(|e| format!("--{flag}-file {}: {e}", path.display())),
        (None, None) => Err(format!("--{flag} or --{flag}-file is required")),
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))
}

async fn bigcommerce(
    args: BigcommerceArgs,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    let mut config = EmulatorConfig::new(
        args.store_hash,
        secret(args.access_token, args.access_token_file, "access-token")?,
        args.client_id,
        secret(args.client_secret, args.client_secret_file, "client-secret")?,
    );
    config.rate_limit_quota = args.quota;
    config.rate_limit_window = Duration::from_secs(args.quota_window_secs.max(1));
    config.gateway_url = args.gateway_url;
    config.store_name = args.store_name;
    config.faults = args.faults.config();
    for id in 2..=args.storefront_listen.len() as i64 {
        config.channels.push(EmulatedChannel {
            id,
            name: format!("Storefront {id}"),
            allow_global_logins: false,
        });
    }
    let emulator = Emulator::new(config);
    let api = bind(args.api_listen).await?;
    let mut servers = JoinSet::new();
    serve(&mut servers, api, emulator.api_router());
    println!(
        "bigcommerce sandbox: API on http://{}/stores/{}/ (quota {} per {} s)",
        args.api_listen,
        emulator.config().store_hash,
        args.quota,
        args.quota_window_secs
    );
    if emulator.config().faults != FaultConfig::default() {
        println!(
            "bigcommerce sandbox: injecting faults: {:?}",
            emulator.config().faults
        );
    }
    for (n, (addr, id)) in args.storefront_listen.into_iter().zip(1..).enumerate() {
        let site = match args.storefront_url.get(n) {
            Some(url) => url.clone(),
            None => site_of(addr)?,
        };
        emulator.set_site(id, Some(site));
        let listener = bind(addr).await?;
        serve(&mut servers, listener, emulator.storefront_router(id));
        println!("bigcommerce sandbox: storefront of channel {id} on http://{addr}/");
    }
    wait(servers, shutdown).await
}

/// `http://<addr>/`, the unspecified address read as localhost (the way a browser on this
/// machine reaches it).
fn site_of(addr: SocketAddr) -> Result<Url, String> {
    let host = if addr.ip().is_unspecified() {
        "localhost".to_owned()
    } else {
        match addr.ip() {
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        }
    };
    Url::parse(&format!("http://{host}:{}/", addr.port())).map_err(|e| e.to_string())
}

async fn idp(args: IdpArgs, shutdown: impl Future<Output = ()>) -> Result<(), String> {
    let users = match &args.users {
        Some(path) => crate::idp::load_users(path).map_err(|e| e.to_string())?,
        None => crate::idp::demo_users(),
    };
    let issuer = Url::parse(args.issuer.as_str().trim_end_matches('/'))
        .map_err(|e| format!("--issuer: {e}"))?;
    let idp = DevIdp::try_new(DevIdpConfig {
        issuer: issuer.clone(),
        clients: vec![DevClient {
            client_id: args.client_id.clone(),
            client_secret: secret(args.client_secret, args.client_secret_file, "client-secret")?,
            redirect_uris: args.redirect_uris,
            redirect_uri_prefixes: Vec::new(),
        }],
        users,
        email_in_id_token: true,
        send_iss_parameter: true,
    })
    .map_err(|e| e.to_string())?;
    let listener = bind(args.listen).await?;
    println!(
        "idp sandbox: issuer {} on http://{} (client {})",
        issuer.as_str().trim_end_matches('/'),
        args.listen,
        args.client_id
    );
    let mut servers = JoinSet::new();
    serve(&mut servers, listener, idp.router());
    wait(servers, shutdown).await
}

fn serve(servers: &mut JoinSet<String>, listener: TcpListener, router: axum::Router) {
    servers.spawn(async move {
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        match axum::serve(listener, service).await {
            Ok(()) => "server stopped".to_owned(),
            Err(e) => format!("server failed: {e}"),
        }
    });
}

/// Runs until a server stops (an error) or `shutdown` completes (a clean stop).
async fn wait(
    mut servers: JoinSet<String>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    tokio::select! {
        stopped = servers.join_next() => Err(match stopped {
            Some(Ok(message)) => message,
            Some(Err(e)) => format!("server task failed: {e}"),
            None => "nothing to serve".to_owned(),
        }),
        () = shutdown => Ok(()),
    }
}
