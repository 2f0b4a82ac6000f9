//! `bc-sso-gateway`: the production binary (`serve`, `check`, `keygen`). It holds no
//! emulator and no dev IdP; the demo is the workspace root's `bc-sso-dev`.

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "bc-sso-gateway",
    version,
    about = "Storefront SSO gateway for BigCommerce"
)]
struct Cli {
    #[command(subcommand)]
    command: bc_sso_gateway::cli::Command,
}

#[tokio::main]
async fn main() -> ExitCode {
    bc_sso_gateway::telemetry::init();
    bc_sso_gateway::cli::run(Cli::parse().command).await
}
