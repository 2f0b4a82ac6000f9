//! The development side of the workspace: the demo, which runs the gateway beside the
//! sandbox's BigCommerce emulator and dev IdP, and is also the integration tests'
//! environment. Nothing here is in the production binary.

pub mod cli;
pub mod demo;
