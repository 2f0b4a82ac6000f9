//! The admin console: server-rendered pages, usable without JavaScript. Each handler takes
//! [`super::AdminUser`] (a page) or [`super::CsrfForm`] (a form), except signing in.

pub mod access;
pub mod checks;
mod connection_form;
pub mod connections;
pub mod overview;
pub mod sign_in;
pub mod store;
pub mod trial;
