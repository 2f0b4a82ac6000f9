//! The command line: `serve`, `check` and `demo`. Wiring only; everything else is in the
//! library so that tests run the same code.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use bc_sso_gateway::config::{self, Config};
use bc_sso_gateway::demo::{self, DemoIdp, DemoOptions};
use bc_sso_gateway::{AppState, clock::Clock, telemetry};

#[derive(Parser)]
#[command(
    name = "bc-sso-gateway",
    version,
    about = "Storefront SSO gateway for BigCommerce"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    /// Start a dev IdP, a BigCommerce emulator and the gateway on localhost.
    Demo {
        /// First of four consecutive ports: storefront, gateway, dev IdP, emulated API.
        /// 0 picks free ports.
        #[arg(long, default_value_t = 4000)]
        port: u16,
        /// Dev IdP users from a TOML file ([[users]] with sub, email, email_verified, ...).
        #[arg(long)]
        users: Option<PathBuf>,
        /// Use this OpenID Provider instead of the dev IdP (register the printed redirect URI).
        #[arg(long, requires_all = ["client_id", "client_secret"])]
        issuer: Option<url::Url>,
        #[arg(long)]
        client_id: Option<String>,
        #[arg(long, env = "BCSSO_DEMO_CLIENT_SECRET")]
        client_secret: Option<String>,
        /// Email domains the external IdP may sign in (repeatable).
        #[arg(long = "email-domain", default_value = "example.com")]
        email_domains: Vec<String>,
        /// Number of storefront channels to emulate.
        #[arg(long, default_value_t = 1)]
        channels: i64,
        /// Start as a new install: enter the store's API account and the IdP connection in
        /// the admin console (the values to type are printed).
        #[arg(long)]
        empty: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => match load(config) {
            Some(config) => serve(config).await,
            None => ExitCode::FAILURE,
        },
        Command::Check { config } => match load(config) {
            Some(config) => check(config).await,
            None => ExitCode::FAILURE,
        },
        Command::Keygen => {
            println!(
                "{}",
                bc_sso_gateway::secrets::SecretKey::generate().to_base64()
            );
            ExitCode::SUCCESS
        }
        Command::Demo {
            port,
            users,
            issuer,
            client_id,
            client_secret,
            email_domains,
            channels,
            empty,
        } => {
            let idp = match (issuer, client_id, client_secret) {
                (Some(issuer), Some(client_id), Some(client_secret)) => DemoIdp::External {
                    issuer,
                    client_id,
                    client_secret,
                    email_domains,
                },
                _ => {
                    let users = match users {
                        Some(path) => match bc_sso_sandbox::idp::load_users(&path) {
                            Ok(u) => u,
                            Err(e) => {
                                eprintln!("error: {e}");
                                return ExitCode::FAILURE;
                            }
                        },
                        None => bc_sso_sandbox::idp::demo_users(),
                    };
                    DemoIdp::Dev { users }
                }
            };
            run_demo(DemoOptions {
                port,
                idp,
                channels,
                empty,
            })
            .await
        }
    }
}

fn load(path: Option<PathBuf>) -> Option<Config> {
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

async fn serve(config: Config) -> ExitCode {
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
    bc_sso_gateway::spawn_clock_sync(state.clone());
    bc_sso_gateway::spawn_audit_pruning(state.clone());
    bc_sso_gateway::spawn_settings_refresh(state.clone());
    tracing::info!(%listen, public_url = %state.config.server.public_url, "gateway listening");
    let app =
        bc_sso_gateway::app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    match axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn check(config: Config) -> ExitCode {
    let state = match AppState::connect(config, Clock::system()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("config: ok");
    println!("database: ok ({:?})", state.store.backend());
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

async fn run_demo(options: DemoOptions) -> ExitCode {
    let demo = match demo::start(options, |_| {}).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!();
    println!("  bc-sso-gateway demo is running");
    println!();
    let empty = demo.state.store_settings.current().is_none();
    if empty {
        println!("  Set it up first in the admin console (below), then open the storefront:");
        println!("                         {}", demo.storefront_urls[0]);
    } else {
        println!("  Open the storefront:   {}", demo.storefront_urls[0]);
        println!("  then: Sign in -> Sign in with company account -> pick a user");
    }
    println!();
    println!("  gateway                {}", demo.gateway_url);
    println!("  identity provider      {}", demo.idp_url);
    println!(
        "  BigCommerce API        {}stores/{}/v3/customers",
        demo.api_url, demo.state.config.store.store_hash
    );
    println!(
        "  redirect URI           {}",
        demo.state.config.redirect_uri()
    );
    if let Some(token) = &demo.state.config.admin_token {
        // The demo's own throwaway token: printing it is the point.
        println!(
            "  admin console          {}admin   (token: {})",
            demo.gateway_url,
            token.expose()
        );
    }
    if empty {
        println!();
        println!("  This gateway starts empty. In the admin console, enter under Store settings");
        println!("  and then Add a connection:");
        for (label, value) in demo::setup_values(&demo) {
            println!("    {label:<22} {value}");
        }
    }
    println!();
    println!("  Ctrl-C stops everything.");
    shutdown_signal().await;
    drop(demo);
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
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
