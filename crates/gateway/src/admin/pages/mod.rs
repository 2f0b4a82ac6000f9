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

/// A console form page's status: 200, or 422 when it comes back with the reasons it was
/// refused.
fn form_status(errors: &[String]) -> axum::http::StatusCode {
    if errors.is_empty() {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::UNPROCESSABLE_ENTITY
    }
}

/// `items` written out, comma-separated, as the console shows and edits lists.
fn comma_list<T: std::fmt::Display>(items: &[T]) -> String {
    let items: Vec<String> = items.iter().map(ToString::to_string).collect();
    items.join(", ")
}
