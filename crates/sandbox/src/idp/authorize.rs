//! Authorization endpoint: request validation, the sign-in page, the user's decision.

use std::time::Instant;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use url::Url;

use super::endpoints::{PENDING_TTL, error_page, html, parse_params, random_token, unix_now};
use super::id_token::WRONG_ISSUER;
use super::{CodeGrant, DevClient, DevIdp, DevUser, Misbehaviour, PendingAuthorization};

#[derive(Template)]
#[template(path = "devidp/signin.html")]
struct SignInPage<'a> {
    client_id: &'a str,
    request_id: &'a str,
    users: Vec<UserButton>,
}

struct UserButton {
    sub: String,
    name: String,
    email: String,
    verified: bool,
    verified_note: &'static str,
}

impl UserButton {
    fn new(user: &DevUser) -> Self {
        let verified = matches!(&user.email_verified, Some(Value::Bool(true)))
            || matches!(&user.email_verified, Some(Value::String(s)) if s == "true");
        UserButton {
            sub: user.sub.clone(),
            name: user.name.clone().unwrap_or_else(|| user.sub.clone()),
            email: user.email.clone().unwrap_or_else(|| "(no email)".into()),
            verified,
            verified_note: if user.email_verified.is_none() {
                "email_verified absent"
            } else {
                "email not verified"
            },
        }
    }
}

pub(crate) async fn authorize(State(idp): State<DevIdp>, RawQuery(query): RawQuery) -> Response {
    match start_authorization(&idp, query.as_deref().unwrap_or("")) {
        Ok((request_id, client_id, users)) => {
            let page = SignInPage {
                client_id: &client_id,
                request_id: &request_id,
                users: users.iter().map(UserButton::new).collect(),
            };
            html(StatusCode::OK, page.render())
        }
        Err(AuthorizeFailure::Page(title, message)) => {
            error_page(StatusCode::BAD_REQUEST, title, &message)
        }
        Err(AuthorizeFailure::Redirect(response)) => *response,
    }
}

enum AuthorizeFailure {
    /// Client or redirect_uri cannot be trusted: show a page, never redirect (RFC 6749 §4.1.2.1).
    Page(&'static str, String),
    /// An error authorization response to the client's redirect_uri.
    Redirect(Box<Response>),
}

/// Validates an authorization request and stores it; returns the pending request id.
fn start_authorization(
    idp: &DevIdp,
    query: &str,
) -> Result<(String, String, Vec<DevUser>), AuthorizeFailure> {
    let params = parse_params(query.as_bytes()).map_err(|dup| {
        AuthorizeFailure::Page(
            "Invalid request",
            format!("The parameter {dup} appears more than once."),
        )
    })?;
    let client = params
        .get("client_id")
        .and_then(|id| idp.client(id))
        .ok_or_else(|| {
            AuthorizeFailure::Page(
                "Unknown client",
                "The client_id is missing or not registered.".into(),
            )
        })?;
    // Exact string match against the registered URIs: no normalised matching. A prefix only
    // where the client registered one (the demo's client: see `DevClient`).
    let redirect_uri = params
        .get("redirect_uri")
        .and_then(|r| {
            let exact = client.redirect_uris.iter().find(|u| u.as_str() == r);
            let under_prefix = || {
                client
                    .redirect_uri_prefixes
                    .iter()
                    .any(|p| r.starts_with(p.as_str()) && r.len() > p.as_str().len())
                    .then(|| Url::parse(r).ok())
                    .flatten()
            };
            exact.cloned().or_else(under_prefix)
        })
        .ok_or_else(|| {
            AuthorizeFailure::Page(
                "Invalid redirect_uri",
                "The redirect_uri is missing or not registered for this client.".into(),
            )
        })?;
    let redirect_uri = &redirect_uri;
    let state = params.get("state").map(String::as_str);
    let fail = |error: &str, description: &str| {
        AuthorizeFailure::Redirect(Box::new(idp.authorization_response(
            redirect_uri,
            &[("error", error), ("error_description", description)],
            state,
            None,
        )))
    };

    if let Misbehaviour::AuthorizeError(error) = idp.misbehaviour() {
        return Err(AuthorizeFailure::Redirect(Box::new(
            idp.authorization_response(redirect_uri, &[("error", &error)], state, None),
        )));
    }
    if params.get("response_type").map(String::as_str) != Some("code") {
        return Err(fail(
            "unsupported_response_type",
            "only response_type=code is supported",
        ));
    }
    let scopes: Vec<String> = params
        .get("scope")
        .map(|s| {
            s.split(' ')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    if !scopes.iter().any(|s| s == "openid") {
        return Err(fail("invalid_scope", "scope must include openid"));
    }
    // PKCE S256 always; plain would let a stolen code be redeemed (SECURITY.md rule 7).
    if params.get("code_challenge_method").map(String::as_str) != Some("S256") {
        return Err(fail(
            "invalid_request",
            "code_challenge_method=S256 is required",
        ));
    }
    let code_challenge = match params.get("code_challenge") {
        Some(c) if is_s256_challenge(c) => c.clone(),
        _ => {
            return Err(fail(
                "invalid_request",
                "code_challenge missing or malformed",
            ));
        }
    };
    if params
        .get("prompt")
        .is_some_and(|p| p.split(' ').any(|p| p == "none"))
    {
        // There is no IdP session, so a silent login can never succeed.
        return Err(fail(
            "login_required",
            "the dev IdP always shows its sign-in page",
        ));
    }

    let request_id = random_token();
    let mut st = idp.state();
    let now = Instant::now();
    st.pending
        .retain(|_, p| now.duration_since(p.created) < PENDING_TTL);
    st.pending.insert(
        request_id.clone(),
        PendingAuthorization {
            client_id: client.client_id.clone(),
            redirect_uri: redirect_uri.clone(),
            state: state.map(String::from),
            nonce: params.get("nonce").cloned(),
            code_challenge,
            scopes,
            created: now,
        },
    );
    // `login_hint` naming a user (sub or email) narrows the page to that user, so a load
    // driver with thousands of users gets a page of one; anything else shows them all.
    let hint = params.get("login_hint");
    let hinted: Vec<DevUser> = st
        .users
        .iter()
        .filter(|u| hint.is_some_and(|h| *h == u.sub || u.email.as_ref() == Some(h)))
        .cloned()
        .collect();
    let users = if hinted.is_empty() {
        st.users.clone()
    } else {
        hinted
    };
    Ok((request_id, client.client_id.clone(), users))
}

pub(crate) async fn decision(State(idp): State<DevIdp>, body: Bytes) -> Response {
    let Ok(form) = parse_params(&body) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "A form field appears more than once.",
        );
    };
    let pending = {
        let mut st = idp.state();
        // Single use: a second click on the same page cannot mint a second code.
        form.get("request").and_then(|id| st.pending.remove(id))
    };
    let Some(pending) = pending.filter(|p| p.created.elapsed() < PENDING_TTL) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Sign-in request not found",
            "This sign-in request is unknown, expired or already used. Start the login again.",
        );
    };
    let state = pending.state.as_deref();
    if form.contains_key("cancel") {
        return idp.authorization_response(
            &pending.redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", "the user cancelled the sign-in"),
            ],
            state,
            None,
        );
    }
    let user = form
        .get("user")
        .and_then(|sub| idp.state().users.iter().find(|u| &u.sub == sub).cloned());
    let (Some(sub), Some(user)) = (form.get("user"), user) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Unknown user",
            "No such user at this dev IdP.",
        );
    };
    let code = random_token();
    tracing::info!(sub = %sub, client_id = %pending.client_id, "dev IdP: user signed in, code issued");
    idp.state().codes.insert(
        code.clone(),
        CodeGrant {
            client_id: pending.client_id.clone(),
            redirect_uri: pending.redirect_uri.clone(),
            code_challenge: pending.code_challenge.clone(),
            nonce: pending.nonce.clone(),
            sub: sub.clone(),
            scopes: pending.scopes.clone(),
            auth_time: unix_now(),
            issued: Instant::now(),
        },
    );
    let tenant = user.tid.as_deref();
    idp.authorization_response(&pending.redirect_uri, &[("code", &code)], state, tenant)
}

impl DevIdp {
    pub(crate) fn client(&self, client_id: &str) -> Option<&DevClient> {
        self.inner.clients.iter().find(|c| c.client_id == client_id)
    }

    /// 302 to the client's redirect_uri with `params`, `state` and, per RFC 9207, `iss`
    /// (not for a user of an Entra `tenant`, as Entra sends none).
    fn authorization_response(
        &self,
        redirect_uri: &Url,
        params: &[(&str, &str)],
        state: Option<&str>,
        tenant: Option<&str>,
    ) -> Response {
        let mut url = redirect_uri.clone();
        {
            let mut query = url.query_pairs_mut();
            for (k, v) in params {
                query.append_pair(k, v);
            }
            if let Some(state) = state {
                query.append_pair("state", state);
            }
            let m = self.misbehaviour();
            if m == Misbehaviour::IssParameterWrong {
                query.append_pair("iss", WRONG_ISSUER);
            } else if self.inner.send_iss_parameter && m != Misbehaviour::IssParameterMissing {
                // Entra does not implement RFC 9207: its users get no `iss` parameter.
                if tenant.is_none() {
                    query.append_pair("iss", &self.inner.issuer);
                }
            }
        }
        let mut response = StatusCode::FOUND.into_response();
        match HeaderValue::from_str(url.as_str()) {
            Ok(location) => {
                response.headers_mut().insert(header::LOCATION, location);
                response
            }
            Err(_) => error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error",
                "Cannot build the redirect.",
            ),
        }
    }
}

fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
