//! Integration tests: the real gateway, BigCommerce emulator and dev IdP (or the npm
//! `oidc-provider`) on ephemeral loopback ports. One test binary, so the crate links once.

mod admin;
mod admin_activity;
mod admin_guard;
mod admin_hardening;
mod bigcommerce_faults;
mod browser;
mod channels;
mod cli;
mod client_ip;
mod common;
mod compose;
mod connections;
mod db_writes;
mod entra;
mod flow;
mod id_token;
mod interop;
mod linking;
mod negative;
mod operations;
mod properties;
mod replicas;
mod sessions;
mod signout;
mod ssrf;
mod store_settings;
mod storm;
mod topology;
mod webhooks;
