//! The admin routes: one table, from which both the router and [`routes`] (the list the
//! every-route test walks) are built, so a route added here is tested without anyone
//! remembering to. Each row says who may call it; the handler's extractors enforce it.
//!
//! Admin sessions use their own cookie and store, apart from shoppers' sessions.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

use super::{api, pages};
use crate::AppState;

/// Who may call an admin route: what its handler's extractors check, and what the
/// every-route test expects of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Signing in: anyone, within the client's sign-in and failure budgets.
    SignIn,
    /// A console page (GET): [`super::AdminUser`].
    Page,
    /// A console form (POST, changes something): [`super::CsrfForm`].
    Form,
    /// The JSON API: [`super::ApiAdmin`].
    Api,
}

/// One admin route as served: method, full path (`{id}` for a path parameter), access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRoute {
    pub method: Method,
    pub path: String,
    pub access: Access,
}

/// Every admin route, as the router serves them.
pub fn routes() -> Vec<AdminRoute> {
    table().rows
}

type Routes = Router<Arc<AppState>>;

/// The routes, grouped by the layers they get, and the rows that describe them.
#[derive(Default)]
struct Table {
    sign_in: Routes,
    console: Routes,
    api: Routes,
    rows: Vec<AdminRoute>,
}

fn table() -> Table {
    use pages::{access, checks, connections, overview, sign_in, store, trial};
    Table::default()
        .sign_in(Method::GET, "/login", sign_in::login_page)
        .sign_in(Method::POST, "/login", sign_in::login)
        .sign_in(Method::GET, "/sso", sign_in::sso_start)
        .sign_in(Method::GET, "/oidc/callback", sign_in::sso_callback)
        .form("/logout", sign_in::logout)
        .form("/sessions/revoke", sign_in::sign_out_all)
        .page("/", overview::dashboard)
        .page("/links", overview::links)
        .form("/links/remove", overview::remove_link)
        .page("/audit", overview::audit)
        .page("/audit.csv", overview::audit_csv)
        .page("/connections/new", connections::new_connection)
        .form("/connections/new", connections::create_connection)
        .page("/connections/{id}/edit", connections::edit_connection)
        .form("/connections/{id}/edit", connections::update_connection)
        .form("/connections/{id}/enable", connections::enable_connection)
        .form("/connections/{id}/disable", connections::disable_connection)
        .form("/connections/{id}/delete", connections::delete_connection)
        .form("/connections/{id}/try", trial::try_sign_in)
        .page("/trials/{ticket}", trial::trial_report)
        .page("/store", store::store_settings_page)
        .form("/store", store::save_store_settings)
        .form("/store/webhooks", store::register_webhooks)
        .page("/access", access::access_settings_page)
        .form("/access", access::save_access_settings)
        .page("/checks/store", checks::check_store)
        .page("/checks/connections/{id}", checks::check_connection)
        .api(Method::GET, "/links", api::links)
        .api(Method::DELETE, "/links", api::remove_link)
        .api(Method::GET, "/audit", api::audit)
        .api(Method::GET, "/audit.csv", api::audit_csv)
        .api(Method::GET, "/connections", api::connections)
        .api(Method::POST, "/connections", api::create_connection)
        .api(Method::PUT, "/connections/{id}", api::update_connection)
        .api(Method::DELETE, "/connections/{id}", api::delete_connection)
        .api(Method::GET, "/store", api::store)
        .api(Method::PUT, "/store", api::update_store)
        .api(Method::POST, "/store/webhooks", api::register_webhooks)
        .api(Method::GET, "/access", api::access)
        .api(Method::PUT, "/access", api::update_access)
        .api(Method::GET, "/checks/store", api::check_store)
        .api(
            Method::GET,
            "/checks/connections/{id}",
            api::check_connection,
        )
        .api(Method::POST, "/sessions/revoke", api::sign_out_all)
}

impl Table {
    fn sign_in<H: Handler<T, Arc<AppState>>, T: 'static>(
        self,
        method: Method,
        path: &'static str,
        handler: H,
    ) -> Self {
        self.add(Access::SignIn, method, path, handler)
    }

    fn page<H: Handler<T, Arc<AppState>>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.add(Access::Page, Method::GET, path, h)
    }

    fn form<H: Handler<T, Arc<AppState>>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.add(Access::Form, Method::POST, path, h)
    }

    fn api<H: Handler<T, Arc<AppState>>, T: 'static>(
        self,
        method: Method,
        path: &'static str,
        handler: H,
    ) -> Self {
        self.add(Access::Api, method, path, handler)
    }

    fn add<H: Handler<T, Arc<AppState>>, T: 'static>(
        mut self,
        access: Access,
        method: Method,
        path: &'static str,
        handler: H,
    ) -> Self {
        let filter = match method {
            Method::POST => MethodFilter::POST,
            Method::PUT => MethodFilter::PUT,
            Method::DELETE => MethodFilter::DELETE,
            _ => MethodFilter::GET,
        };
        let route = on(filter, handler);
        let prefix = match access {
            Access::SignIn => {
                self.sign_in = self.sign_in.route(path, route);
                "/admin"
            }
            Access::Page | Access::Form => {
                self.console = self.console.route(path, route);
                "/admin"
            }
            Access::Api => {
                self.api = self.api.route(path, route);
                "/admin/api"
            }
        };
        self.rows.push(AdminRoute {
            method,
            path: format!("{prefix}{}", path.trim_end_matches('/')),
            access,
        });
        self
    }
}

/// The admin router, nested at `/admin`.
pub fn router(state: &Arc<AppState>) -> Routes {
    let https = state.config.server.public_url.scheme() == "https";
    // Lax, not Strict: the admin SSO callback is a top-level GET from the IdP's site, and
    // a Strict cookie would not come with it. Cross-site POSTs still carry no cookie, and
    // every form has a CSRF token. The path keeps the cookie away from shopper pages.
    let sessions = SessionManagerLayer::new(state.admin_sessions.clone())
        .with_name(if https {
            "__Secure-bcsso-admin"
        } else {
            "bcsso-admin"
        })
        .with_secure(https)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_path("/admin")
        // Anonymous sessions (the sign-in form's CSRF token, a pending SSO sign-in) live as
        // long as a pending login; signing in gives the session the admin's absolute
        // lifetime (`session::establish`). Nothing anonymous gets the long one.
        .with_expiry(Expiry::OnInactivity(time::Duration::seconds(
            state.config.server.pending_login_ttl.as_secs() as i64,
        )));
    let Table {
        sign_in,
        console,
        api,
        ..
    } = table();
    // Signing in counts against the client's sign-in requests like a shopper's (it creates
    // sessions and starts IdP sign-ins), and a client out of failed admin attempts is
    // refused before its token or callback is looked at. (`ApiAdmin` does the latter for
    // the API.)
    let sign_in = sign_in
        .route_layer(from_fn_with_state(
            state.clone(),
            crate::rate_limit::sign_in_requests,
        ))
        .route_layer(from_fn_with_state(
            state.clone(),
            crate::rate_limit::admin_attempts,
        ));
    console
        .merge(sign_in)
        .layer(from_fn_with_state(state.clone(), admin_lifetime))
        .layer(sessions)
        .nest("/api", api)
}

/// A write to an admin session during a console request would save it with the layer's
/// short default expiry: put the admin's absolute end back.
async fn admin_lifetime(
    State(app): State<Arc<AppState>>,
    session: Session,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    if let Err(e) = super::keep_lifetime(&app, &session).await {
        return e.into_response();
    }
    response
}
