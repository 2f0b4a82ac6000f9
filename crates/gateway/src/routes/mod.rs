//! Thin axum handlers of the shopper side: parse, call one domain function, render. (The
//! admin side's are in [`crate::admin`].)

pub mod assets;
pub mod callback;
pub mod health;
pub mod login;
pub mod logout;
pub mod webhooks;

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// 302 Found, as BigCommerce's own redirects use; `Redirect::to` would send 303.
pub fn found(location: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

/// 303 See Other: after a form post, the browser fetches the next page with GET.
pub fn see_other(location: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

/// Renders a page; a template error becomes the error page, never a bare 500.
pub fn render<T: Template>(page: &T) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => crate::error::Error::Template(e).into_response(),
    }
}
