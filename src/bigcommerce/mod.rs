//! BigCommerce: wire types from the published spec.

pub mod wire;
