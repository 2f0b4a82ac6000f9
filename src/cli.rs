//! `bc-sso-dev`'s command line: the gateway's commands, the sandbox services, and `demo`.
//! Here (not in main.rs) so the tests can check that a Compose file's commands parse.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bc-sso-dev",
    version,
    about = "Storefront SSO gateway for BigCommerce, with its local demo"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once at start-up: the size of the sandbox's many flags costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum Command {
    #[command(flatten)]
    Gateway(bc_sso_gateway::cli::Command),
    /// Run one sandbox service on its own (Docker Compose, the local-topology test).
    #[command(subcommand)]
    Sandbox(bc_sso_sandbox::cli::Command),
    /// Start a dev IdP, a BigCommerce emulator and the gateway on localhost.
    Demo {
        /// First of five consecutive ports: storefront, gateway, dev IdP, emulated API,
        /// metrics.
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
