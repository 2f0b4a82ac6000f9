//! The production commands, `serve`, `check` and `keygen`: argument parsing and wiring only,
//! so the tests and the demo run the same code. `bc-sso-gateway` (this crate's binary) and
//! the development binary at the workspace root both offer them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::config::{self, Config};
use crate::{AppState, clock::Clock};

/// `bc-sso-gateway`: the production binary.
#[derive(Parser)]
#[command(
    name = "bc-sso-gateway",
    version,
    about = "Storefront SSO gateway for BigCommerce"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve {
        /// TOML config file; every setting can also come from BCSSO_* environment variables.
        #[arg(short, long, env = "BCSSO_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Validate a config, then reach each IdP's discovery document and the BigCommerce API.
    Check {
        #[arg(short, long, env = "BCSSO_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print a new secret key for BCSSO_SECRET_KEY (encrypts secrets stored by the console).
    Keygen,
    /// Ask a running gateway whether it is live (or, with --ready, ready); exit 0 or 1.
    /// For container health checks: the image needs no curl.
    Healthcheck {
        /// The gateway's listen address; 0.0.0.0 and [::] mean this machine.
        #[arg(long, env = "BCSSO_SERVER_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// Check /readyz (database, sessions, store settings) instead of /healthz.
        #[arg(long)]
        ready: bool,
    },
}

pub async fn run(command: Command) -> ExitCode {
    match command {
        Command::Serve { config } => match load(config) {
            Some(config) => serve(config).await,
            None => ExitCode::FAILURE,
        },
        Command::Check { config } => match load(config) {
            Some(config) => check(config).await,
            None => ExitCode::FAILURE,
        },
        Command::Healthcheck { listen, ready } => healthcheck(&listen, ready).await,
        Command::Keygen => {
            println!("{}", crate::secrets::SecretKey::generate().to_base64());
            ExitCode::SUCCESS
        }
    }
}

/// GET /healthz (or /readyz) on the local listener.
pub async fn healthcheck(listen: &str, ready: bool) -> ExitCode {
    let addr = listen
        .replace("0.0.0.0:", "127.0.0.1:")
        .replace("[::]:", "[::1]:");
    let path = if ready { "readyz" } else { "healthz" };
    let url = format!("http://{addr}/{path}");
    let client = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match client.get(&url).send().await {
        Ok(r) if r.status().is_success() => {
            println!("{path}: ok");
            ExitCode::SUCCESS
        }
        Ok(r) => {
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            eprintln!("{path}: {status} {body}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{path}: {url} does not answer: {e}");
            ExitCode::FAILURE
        }
    }
}

pub fn load(path: Option<PathBuf>) -> Option<Config> {
    let env: HashMap<String, String> = std::env::vars().collect();
    match config::load(path.as_deref(), &env) {
        Ok(c) => Some(c),
        Err(errors) => {
            eprintln!("The configuration has {} problem(s):", errors.len());
            for e in errors {
                eprintln!("  - {e}");
            }
            None
        }
    }
}

pub async fn serve(config: Config) -> ExitCode {
    let listen = config.server.listen;
    let state = match AppState::connect(config, Clock::system()).await {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(addr) = state.config.server.metrics_listen {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                let metrics = crate::metrics_app(state.clone());
                tokio::spawn(async move {
                    if let Err(e) = axum::serve(l, metrics).await {
                        tracing::error!(error = %e, "metrics listener stopped");
                    }
                });
                tracing::info!(%addr, "metrics on /metrics");
            }
            Err(e) => {
                eprintln!("error: cannot listen on {addr} (server.metrics_listen): {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    crate::spawn_clock_sync(state.clone());
    crate::spawn_audit_pruning(state.clone());
    crate::spawn_settings_refresh(state.clone());
    tracing::info!(%listen, public_url = %state.config.server.public_url, "gateway listening");
    let app =
        crate::app(state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await;
    // Every request is answered: write the audit events still queued before exiting.
    state.db.close_audit().await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

pub async fn check(config: Config) -> ExitCode {
    let state = match AppState::connect(config, Clock::system()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("config: ok");
    println!("database: ok ({:?})", state.db.backend());
    let mut ok = true;
    for conn in &state.connections.enabled() {
        match state.oidc.metadata(conn).await {
            Ok(_) => println!(
                "connection {}: discovery and JWKS ok ({})",
                conn.id,
                conn.issuer.as_str()
            ),
            Err(e) => {
                ok = false;
                println!("connection {}: FAILED: {e}", conn.id);
            }
        }
    }
    let Some(api) = state.store_settings.current() else {
        println!(
            "bigcommerce: FAILED: the store's API account is not set: enter it in the admin console (Store settings)"
        );
        return ExitCode::FAILURE;
    };
    match api.client.customers_by_id(&[1]).await {
        Ok(_) => println!("bigcommerce: customers API ok"),
        Err(e) => {
            ok = false;
            println!("bigcommerce: FAILED: {e}");
        }
    }
    ok &= print_storefront_sites(&api).await;
    let hooks = crate::webhooks::check(
        &api.client,
        &api.settings,
        &crate::webhooks::destination(&state.config),
    )
    .await;
    println!("webhooks: {}: {}", hooks.status.as_str(), hooks.message);
    match state.sync_bigcommerce_clock().await {
        Ok(Some(offset)) if offset.abs() >= 10 => println!(
            "bigcommerce clock: this machine is off by {offset} s; login tokens are corrected for it, but fix the clock (NTP)"
        ),
        Ok(Some(offset)) => println!("bigcommerce clock: ok (offset {offset} s)"),
        Ok(None) => {}
        Err(e) => {
            ok = false;
            println!("bigcommerce clock: FAILED: {e}");
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One line per configured channel: is its storefront URL the channel's site in
/// BigCommerce? `false` when one certainly is not.
async fn print_storefront_sites(api: &crate::settings::store::StoreApi) -> bool {
    use crate::bigcommerce::channels;
    use crate::diagnostics::CheckStatus;
    match channels::compare(&api.client, &api.settings).await {
        Ok(sites) => {
            let mut fine = true;
            for site in &sites {
                let label = match site.status() {
                    CheckStatus::Ok => "ok",
                    CheckStatus::Warning => "WARNING",
                    CheckStatus::Failed => "FAILED",
                };
                println!("storefront sites: {label}: {}", site.message());
                fine &= !site.refuses_save();
            }
            fine
        }
        Err(e) => {
            println!(
                "storefront sites: WARNING: could not list the store's channels (GET /v3/channels): {e}"
            );
            true
        }
    }
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
