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

#[cfg(test)]
mod tests {
    use super::*;

    /// The Script Manager snippet must stay dependency-free and must not build markup from
    /// its attributes (it is served to every shopper on the sign-in page).
    #[test]
    fn sso_button_script_builds_dom_safely() {
        let js = SSO_BUTTON_JS;
        for forbidden in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "fetch(",
            "XMLHttpRequest",
            "import ",
        ] {
            assert!(!js.contains(forbidden), "sso-button.js uses {forbidden}");
        }
        for required in [
            "document.currentScript",
            "data-gateway-url",
            "URLSearchParams",
            "searchParams",
            "textContent",
            "bc-sso-button",
            "DOMContentLoaded",
            ".login-form",
        ] {
            assert!(js.contains(required), "sso-button.js lacks {required}");
        }
    }
}
