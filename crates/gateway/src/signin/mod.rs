//! The sign-in as the shopper lives it, from `/login` to the storefront URL, with no HTTP
//! in it: the handlers parse, call one function here, and render.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::Instrument;
use url::Url;

use crate::AppState;
use crate::config::{Channel, Connection};
use crate::db::{AuditEvent, AuditKind};
use crate::domain::{ChannelId, Email};
use crate::error::Error;
use crate::oidc::{self, Callback, CallbackParams, PendingLogin};
use crate::policy;
use crate::provisioning;
use crate::redirect::RelativePath;
use crate::settings::store::StoreApi;
use crate::telemetry::RequestCtx;

mod customer;
use customer::customer_for;

/// `/login`'s query: which storefront, where to land, and how to pick the IdP.
#[derive(Debug, Default)]
pub struct LoginRequest {
    pub channel_id: Option<i64>,
    pub redirect_to: Option<String>,
    pub connection: Option<String>,
    pub email: Option<String>,
    /// A "Try sign-in" ticket from the admin console.
    pub trial: Option<String>,
}

impl LoginRequest {
    pub fn parse(query: Option<&str>) -> Result<Self, Error> {
        let mut out = LoginRequest::default();
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match k.as_ref() {
                "channel_id" => {
                    let id = v
                        .trim()
                        .parse()
                        .map_err(|_| Error::BadParameter("channel_id"))?;
                    out.channel_id = Some(id);
                }
                "redirect_to" => out.redirect_to = Some(v.into_owned()),
                "connection" if !v.is_empty() => out.connection = Some(v.into_owned()),
                "email" if !v.trim().is_empty() => out.email = Some(v.into_owned()),
                "trial" if !v.is_empty() => out.trial = Some(v.into_owned()),
                _ => {}
            }
        }
        Ok(out)
    }
}

pub enum Begin {
    /// Send the browser to the IdP; remember `pending` in its session.
    Redirect {
        url: Url,
        pending: Box<PendingLogin>,
    },
    /// Several connections and nothing to choose by: show the chooser.
    Choose {
        channel_id: i64,
        redirect_to: RelativePath,
        /// (id, display name) of the connections that sign in to this channel.
        connections: Vec<(String, String)>,
    },
}

pub async fn begin(app: &AppState, req: LoginRequest) -> Result<Begin, Error> {
    let api = app.bigcommerce()?;
    let channel = channel(&api, req.channel_id.unwrap_or(1))?;
    let redirect_to =
        crate::redirect::or_default(req.redirect_to.as_deref(), &channel.default_redirect);
    let conn = match (&req.connection, &req.email) {
        _ if req.trial.is_some() => {
            crate::admin::trial::claim(app, req.trial.as_deref().unwrap_or_default()).await?
        }
        (Some(id), _) => app
            .connections
            .get(id)
            .ok_or_else(|| Error::UnknownConnection(id.clone()))?,
        (None, Some(email)) => connection_for_email(app, email)?,
        (None, None) => {
            let usable: Vec<Connection> = app
                .connections
                .enabled()
                .into_iter()
                .filter(|c| c.allows_channel(channel.id))
                .collect();
            match usable.as_slice() {
                [] => return Err(Error::NoConnections),
                [only] => only.clone(),
                several => {
                    return Ok(Begin::Choose {
                        channel_id: channel.id,
                        redirect_to,
                        connections: several
                            .iter()
                            .map(|c| (c.id.to_string(), c.display_name.clone()))
                            .collect(),
                    });
                }
            }
        }
    };
    tracing::Span::current().record("connection", conn.id.as_str());
    if !conn.allows_channel(channel.id) {
        return Err(Error::ConnectionNotForChannel {
            connection: conn.id.to_string(),
            channel: channel.id,
        });
    }
    let metadata = app.oidc.metadata(&conn).await?;
    let (url, mut pending) = oidc::flow::start(
        &conn,
        &metadata,
        &app.config.redirect_uri(conn.id.as_str()),
        ChannelId(channel.id),
        &redirect_to,
        &app.clock,
    );
    pending.trial = req.trial;
    // Debug: the request's access-log line names the route and the connection already.
    tracing::debug!(connection = %conn.id, channel_id = channel.id, trial = pending.trial.is_some(), "sign-in started");
    Ok(Begin::Redirect {
        url,
        pending: Box::new(pending),
    })
}

/// Routes by email domain; each domain belongs to at most one connection.
fn connection_for_email(app: &AppState, email: &str) -> Result<Connection, Error> {
    let email = Email::parse(email).map_err(|_| Error::BadEmailInput)?;
    app.connections
        .for_domain(email.domain())
        .ok_or_else(|| Error::NoConnectionForDomain(email.domain().to_owned()))
}

fn channel(api: &StoreApi, id: i64) -> Result<&Channel, Error> {
    api.settings
        .channels
        .get(&id)
        .ok_or(Error::UnknownChannel(id))
}

/// How long the callback waits for a first sign-in's account before showing the waiting
/// page instead.
pub const CALLBACK_WAIT: Duration = Duration::from_secs(3);
/// How long each visit of the waiting page waits (it then renders itself again).
pub const RESUME_WAIT: Duration = Duration::from_secs(5);
/// A sign-in not done after this long is given up: start again.
pub const MAX_WAIT: Duration = Duration::from_secs(300);

/// What a finished callback leads to.
pub enum Completed {
    /// The storefront URL carrying a freshly minted login token.
    SignedIn(Url),
    /// The account is still being set up: show the waiting page, which resumes with this.
    Waiting(WaitTicket),
}

/// A sign-in on the waiting page, as the shopper's session keeps it: the identity verified
/// at the callback and where it was going. The ticket in the page's URL must match, so the
/// page resumes only in the browser that signed in.
#[derive(Clone, Serialize, Deserialize)]
pub struct WaitTicket {
    #[serde(rename = "t")]
    pub ticket: String,
    #[serde(rename = "i")]
    issuer: String,
    #[serde(rename = "s")]
    subject: String,
    #[serde(rename = "c")]
    connection: String,
    #[serde(rename = "h")]
    channel_id: i64,
    #[serde(rename = "r")]
    redirect_to: String,
    #[serde(rename = "a")]
    started_at_ms: i64,
}

impl WaitTicket {
    pub fn connection(&self) -> &str {
        &self.connection
    }

    pub fn channel_id(&self) -> i64 {
        self.channel_id
    }
}

/// A provisioning run's outcome, with the audit event it filled in. Shared by every
/// browser that waited for the run (two tabs), so its error is too.
#[derive(Clone)]
pub struct Provisioned {
    result: Result<i64, Arc<Error>>,
    audit: AuditEvent,
}

/// Finishes a sign-in whose pending login the caller took from the session by `state`, on
/// the callback it came back to: the storefront URL carrying a freshly minted login token,
/// or, when the account takes longer to set up (a storm of first sign-ins), a ticket for
/// the waiting page. Every outcome is written to the audit trail.
pub async fn complete(
    app: &Arc<AppState>,
    pending: PendingLogin,
    callback: Callback<'_>,
    params: CallbackParams,
    client_ip: Option<IpAddr>,
) -> Result<Completed, Error> {
    if pending.trial.is_some() {
        return crate::admin::trial::run(app, pending, callback, params)
            .await
            .map(Completed::SignedIn);
    }
    let mut audit = AuditEvent {
        connection: Some(pending.connection.to_string()),
        ..AuditEvent::default()
    };
    let verified = match verify(app, pending, callback, params, &mut audit).await {
        Ok(v) => v,
        Err(e) => return Err(refused(app, audit, e).await),
    };
    let Verified {
        conn,
        identity,
        api,
        channel_id,
        redirect_to,
    } = verified;
    // A returning identity that needs no BigCommerce call is decided here and now: the
    // first sign-in queue and its detached run are for sign-ins that may wait for quota.
    let linked = customer::linked(app, &api, &conn, &identity, channel_id, &audit).await;
    match linked {
        Ok(Some(customer_id)) => {
            let done = Provisioned {
                result: Ok(customer_id),
                audit,
            };
            return finish(app, done, channel_id, &redirect_to, client_ip)
                .await
                .map(Completed::SignedIn);
        }
        Ok(None) => {}
        Err(e) => return Err(refused(app, audit, e).await),
    }
    let ticket = WaitTicket {
        ticket: uuid::Uuid::new_v4().simple().to_string(),
        issuer: identity.issuer.clone(),
        subject: identity.subject.clone(),
        connection: conn.id.to_string(),
        channel_id,
        redirect_to: redirect_to.as_str().to_owned(),
        started_at_ms: crate::clock::system_now_ms(),
    };
    // Detached, so a sign-in queued behind a storm finishes even when the shopper is on
    // the waiting page, or gone.
    let (run_app, ctx, span) = (app.clone(), RequestCtx::current(), tracing::Span::current());
    app.first_sign_ins.start(
        &ticket.issuer,
        &ticket.subject,
        channel_id,
        crate::telemetry::within(
            ctx,
            async move {
                let mut audit = audit;
                let result =
                    customer_for(&run_app, &api, &conn, &identity, channel_id, &mut audit).await;
                Provisioned {
                    result: result.map_err(Arc::new),
                    audit,
                }
            }
            .instrument(span),
        ),
    );
    let collected = app
        .first_sign_ins
        .collect(&ticket.issuer, &ticket.subject, channel_id, CALLBACK_WAIT)
        .await;
    match collected {
        Some(done) => finish(app, done, channel_id, &redirect_to, client_ip)
            .await
            .map(Completed::SignedIn),
        None => {
            tracing::info!(sub = %ticket.subject, "account still being set up; showing the waiting page");
            Ok(Completed::Waiting(ticket))
        }
    }
}

/// The waiting page's visit: the sign-in's outcome if it came in the meantime, else the
/// page again. A sign-in run by another replica (no sticky sessions) is found by the link
/// it created; an error it met is shown when the page reaches that replica again.
pub async fn resume(
    app: &Arc<AppState>,
    ticket: WaitTicket,
    client_ip: Option<IpAddr>,
) -> Result<Completed, Error> {
    let (issuer, subject) = (ticket.issuer.as_str(), ticket.subject.as_str());
    let api = app.bigcommerce()?;
    let channel = channel(&api, ticket.channel_id)?;
    let redirect_to =
        crate::redirect::or_default(Some(ticket.redirect_to.as_str()), &channel.default_redirect);
    if let Some(done) = app
        .first_sign_ins
        .collect(issuer, subject, channel.id, RESUME_WAIT)
        .await
    {
        return finish(app, done, channel.id, &redirect_to, client_ip)
            .await
            .map(Completed::SignedIn);
    }
    if app.first_sign_ins.has(issuer, subject, channel.id) {
        return Ok(Completed::Waiting(ticket));
    }
    let mut audit = AuditEvent {
        connection: Some(ticket.connection.clone()),
        subject: Some(ticket.subject.clone()),
        ..AuditEvent::default()
    };
    let link = match app.db.find_link(issuer, subject).await {
        Ok(link) => link,
        Err(e) => return Err(refused(app, audit, e.into()).await),
    };
    let Some(link) = link else {
        let waited = crate::clock::system_now_ms().saturating_sub(ticket.started_at_ms);
        if waited > MAX_WAIT.as_millis() as i64 {
            return Err(refused(app, audit, Error::SignInIncomplete).await);
        }
        return Ok(Completed::Waiting(ticket));
    };
    let checked = provisioning::check_channel(
        link.customer_id,
        link.channel_ids.as_deref(),
        ChannelId(channel.id),
    );
    audit.customer_id = Some(link.customer_id);
    let done = Provisioned {
        result: checked
            .map(|()| link.customer_id)
            .map_err(|e| Arc::new(e.into())),
        audit,
    };
    finish(app, done, channel.id, &redirect_to, client_ip)
        .await
        .map(Completed::SignedIn)
}

/// A verified identity and where its sign-in goes.
struct Verified {
    conn: Connection,
    identity: oidc::Identity,
    api: Arc<StoreApi>,
    channel_id: i64,
    redirect_to: RelativePath,
}

/// The callback checked, the code exchanged and the identity verified.
async fn verify(
    app: &Arc<AppState>,
    pending: PendingLogin,
    callback: Callback<'_>,
    params: CallbackParams,
    audit: &mut AuditEvent,
) -> Result<Verified, Error> {
    let (now, ttl) = (app.clock.now(), app.config.server.pending_login_ttl);
    let conn = pending.resume(callback, &app.connections.all(), now, ttl)?;
    tracing::Span::current().record("connection", conn.id.as_str());
    let identity = oidc::flow::finish(
        &app.oidc,
        &conn,
        &pending,
        params,
        &app.config.redirect_uri(conn.id.as_str()),
        &app.clock,
        !conn.group_rules.is_empty(),
    )
    .await?;
    // `sub` only: emails and names are personal data and stay out of the log (the audit
    // trail, which admins search, keeps the email). On the span, so the sign-in's outcome
    // and the access-log line carry it; this line is for debugging.
    tracing::Span::current().record("sub", identity.subject.as_str());
    tracing::debug!(sub = %identity.subject, "identity verified");
    audit.subject = Some(identity.subject.clone());
    audit.email = identity.email.clone();
    policy::check_hosted_domain(&conn, &identity)?;
    // One snapshot of the store settings for the rest of the sign-in.
    let api = app.bigcommerce()?;
    let channel = channel(&api, pending.channel_id.0)?;
    let (channel_id, redirect_to) = (
        channel.id,
        pending
            .redirect_to()
            .unwrap_or_else(|| channel.default_redirect.clone()),
    );
    Ok(Verified {
        conn,
        identity,
        api,
        channel_id,
        redirect_to,
    })
}

/// Mints the login token for a provisioned sign-in (or passes its error on), and audits
/// the sign-in's outcome.
async fn finish(
    app: &AppState,
    done: Provisioned,
    channel_id: i64,
    redirect_to: &RelativePath,
    client_ip: Option<IpAddr>,
) -> Result<Url, Error> {
    let Provisioned { result, mut audit } = done;
    let result = result.map_err(|e| Arc::try_unwrap(e).unwrap_or_else(Error::Shared));
    let minted = result.and_then(|customer_id| {
        tracing::Span::current().record("customer_id", customer_id);
        audit.customer_id = Some(customer_id);
        // Minted last, right before the redirect: BigCommerce accepts it for ~30 s only,
        // so a sign-in that waited gets its token now, not when its account was ready.
        let api = app.bigcommerce()?;
        let channel = channel(&api, channel_id)?;
        let url = api
            .tokens
            .storefront_url(channel, customer_id, redirect_to, client_ip)?;
        tracing::info!(
            customer_id,
            channel_id,
            "sign-in complete; redirecting to storefront"
        );
        Ok(url)
    });
    match minted {
        Ok(url) => {
            audit.kind = AuditKind::SignInSucceeded;
            app.audit(audit).await;
            Ok(url)
        }
        Err(e) => Err(refused(app, audit, e).await),
    }
}

/// Audits a refused sign-in and returns its error.
async fn refused(app: &AppState, mut audit: AuditEvent, e: Error) -> Error {
    audit.kind = AuditKind::SignInRefused;
    audit.reason = Some(e.code().to_owned());
    app.audit(audit).await;
    e
}
