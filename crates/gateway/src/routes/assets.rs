//! Static files, embedded in the binary so the demo and a container need no files beside it.

use axum::http::header;
use axum::response::IntoResponse;

pub const GATEWAY_CSS: &str = include_str!("../../static/gateway.css");
pub const ADMIN_JS: &str = include_str!("../../static/admin.js");
pub const SSO_BUTTON_JS: &str = include_str!("../../static/sso-button.js");

pub async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        GATEWAY_CSS,
    )
}

/// The storefront button script. Storefronts load it cross-origin from Script Manager.
pub async fn sso_button() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        SSO_BUTTON_JS,
    )
}

/// Progressive enhancement of the admin console (copy buttons); every page works without it.
pub async fn admin_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        ADMIN_JS,
    )
}
