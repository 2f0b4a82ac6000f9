//! Local stand-ins for the demo and the tests: a BigCommerce emulator (API + storefront)
//! and a small dev OpenID Provider. They are faithful to the real services' contracts and
//! share nothing with the gateway but `bigcommerce::wire`.

pub mod bigcommerce;
pub mod cli;
pub mod idp;
