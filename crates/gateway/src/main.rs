//! `bc-sso-gateway`: the production binary (`serve`, `check`, `keygen`). It holds no
//! emulator and no dev IdP; the demo is the workspace root's `bc-sso-dev`.

use std::process::ExitCode;

use clap::Parser;

use bc_sso_gateway::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    bc_sso_gateway::telemetry::init();
    bc_sso_gateway::cli::run(Cli::parse().command).await
}
