//! bc-sso-gateway: a storefront SSO gateway for BigCommerce.
//!
//! The library holds everything; `main.rs` only wires the CLI to it, so the integration
//! tests and the demo run exactly the code production runs.

pub mod bigcommerce;
pub mod redirect;
pub mod sandbox;
