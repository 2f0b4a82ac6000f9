//! `bc-sso-dev`: the gateway's commands (`serve`, `check`, `keygen`) plus `demo`, which runs
//! the gateway beside the sandbox's BigCommerce emulator and dev IdP on localhost.

use std::process::ExitCode;

use clap::Parser;

use bc_sso_dev::cli::{Cli, Command};
use bc_sso_dev::demo::{self, DemoIdp, DemoOptions};
use bc_sso_gateway::{cli, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init();
    let cli = Cli::parse();
    match cli.command {
        Command::Gateway(command) => cli::run(command).await,
        Command::Sandbox(command) => {
            bc_sso_sandbox::cli::run(command, cli::shutdown_signal()).await
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
    println!("  metrics (Prometheus)   {}", demo.metrics_url);
    println!(
        "  BigCommerce API        {}stores/{}/v3/customers",
        demo.api_url, demo.state.config.store.store_hash
    );
    for conn in &demo.state.config.connections {
        println!(
            "  redirect URI           {}",
            demo.state.config.redirect_uri(conn.id.as_str())
        );
    }
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
    cli::shutdown_signal().await;
    drop(demo);
    ExitCode::SUCCESS
}
