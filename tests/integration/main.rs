//! Integration tests: the real gateway, BigCommerce emulator and dev IdP (or the npm
//! `oidc-provider`) on ephemeral loopback ports. One test binary, so the crate links once.

mod admin;
mod browser;
mod cli;
mod common;
mod connections;
mod flow;
mod id_token;
mod interop;
mod sessions;
mod store_settings;
