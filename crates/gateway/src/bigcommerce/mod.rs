//! BigCommerce: wire types from the published spec, the REST client, and the
//! `customer_login` token.

pub mod batch;
pub mod channels;
pub mod client;
pub mod diagnose;
pub mod hooks;
pub mod login_token;
pub use bigcommerce_wire as wire;

pub use client::{ApiError, Client};
pub use login_token::LoginTokenMinter;
