use std::sync::Arc;

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use tower_sessions::Session;

use super::{found, render};
use crate::AppState;
use crate::error::Error;
use crate::signin::{self, Begin, LoginRequest};

/// `GET /login?channel_id=&redirect_to=&connection=&email=`: starts a sign-in.
pub async fn start(
    State(app): State<Arc<AppState>>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Response, Error> {
    let request = LoginRequest::parse(query.as_deref())?;
    match signin::begin(&app, request).await? {
        Begin::Redirect { url, pending } => {
            // Counted only once the connection is known; the browser goes to its IdP next.
            app.limits.connection_request(pending.connection.as_str())?;
            crate::pending::remember(&session, *pending).await?;
            Ok(found(url.as_str()))
        }
        Begin::Choose {
            channel_id,
            redirect_to,
            connections,
        } => {
            let page = ChoosePage {
                connections,
                channel_id,
                redirect_to: redirect_to.as_str().to_owned(),
            };
            Ok(render(&page))
        }
    }
}

#[derive(Template)]
#[template(path = "choose.html")]
pub struct ChoosePage {
    pub connections: Vec<(String, String)>,
    pub channel_id: i64,
    pub redirect_to: String,
}

/// `GET /`: tells a person who lands here what this service is.
pub async fn index(State(app): State<Arc<AppState>>) -> Response {
    render(&IndexPage {
        redirect_uri: app.config.redirect_uri("CONNECTION-ID").to_string(),
    })
}

#[derive(Template)]
#[template(path = "index.html")]
pub struct IndexPage {
    pub redirect_uri: String,
}
