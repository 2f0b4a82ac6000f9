//! "Try sign-in": an admin runs the real flow against a connection (enabled or not) and
//! sees the claims that arrived, the policy decision, and the customer that would be used
//! or created. Nothing is created, no link is stored and no login token is minted.
//!
//! The admin console issues a single-use ticket (stored, so any replica can take the
//! callback); `/login?trial=<ticket>` starts the flow, and the callback files the report
//! under the ticket and sends the admin to it.

use serde::Serialize;
use url::Url;

use super::checks::any_connection;
use crate::AppState;
use crate::config::{Connection, join_path};
use crate::error::Error;
use crate::oidc::{self, Callback, CallbackParams, Identity, PendingError, PendingLogin};
use crate::provisioning::{self, Plan};

/// A ticket must be used within this many seconds.
pub const TICKET_TTL_SECS: i64 = 600;

/// Issues a ticket for `connection`; returns the `/login` URL that starts the trial.
pub async fn begin(app: &AppState, actor: &str, connection: &str) -> Result<String, Error> {
    let conn = any_connection(app, connection)?;
    let ticket = super::random_token();
    app.db
        .create_trial(&ticket, conn.id.as_str(), actor, app.clock.now())
        .await?;
    tracing::info!(actor = super::actor_kind(actor), connection = %conn.id, "trial sign-in started");
    Ok(format!("/login?trial={ticket}"))
}

/// Takes a ticket (once) and returns its connection.
pub async fn claim(app: &AppState, ticket: &str) -> Result<Connection, Error> {
    let not_before = app.clock.now() - TICKET_TTL_SECS;
    let connection = app
        .db
        .start_trial(ticket, not_before)
        .await?
        .ok_or(Error::PendingLoginMissing)?;
    any_connection(app, &connection)
}

/// What the admin sees.
#[derive(Debug, Serialize)]
pub struct Report {
    pub connection: String,
    pub claims: Option<Claims>,
    /// "allowed" or the reason code a shopper would have been refused with.
    pub decision: String,
    pub explanation: String,
    pub customer: Option<CustomerOutcome>,
}

#[derive(Debug, Serialize)]
pub struct Claims {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub name: Option<String>,
    pub groups: Vec<String>,
    pub company: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CustomerOutcome {
    /// A returning identity: its link decides.
    Linked { customer_id: i64 },
    /// First sign-in; a customer with the email exists and would be linked.
    Existing { customer_id: i64 },
    /// First sign-in; this customer would be created.
    WouldCreate {
        email: String,
        first_name: String,
        last_name: String,
        customer_group_id: Option<i64>,
        company: Option<String>,
        channel_ids: Option<Vec<i64>>,
    },
}

/// The callback of a trial: builds the report, files it, returns where the admin reads it.
pub async fn run(
    app: &AppState,
    pending: PendingLogin,
    callback: Callback<'_>,
    params: CallbackParams,
) -> Result<Url, Error> {
    let ticket = pending.trial.clone().unwrap_or_default();
    let report = report(app, &pending, callback, params).await;
    let json = serde_json::to_string(&report).unwrap_or_default();
    app.db.finish_trial(&ticket, &json).await?;
    tracing::info!(connection = %report.connection, decision = %report.decision, "trial sign-in finished");
    Ok(join_path(
        &app.config.server.public_url,
        &format!("admin/trials/{ticket}"),
    ))
}

async fn report(
    app: &AppState,
    pending: &PendingLogin,
    callback: Callback<'_>,
    params: CallbackParams,
) -> Report {
    let refused = |connection: &str, claims: Option<Claims>, e: &Error| Report {
        connection: connection.to_owned(),
        claims,
        decision: e.code().to_owned(),
        explanation: e.to_string(),
        customer: None,
    };
    // The same check a shopper's callback gets before the IdP's answer is looked at.
    let (now, ttl) = (app.clock.now(), app.config.server.pending_login_ttl);
    let conn = match pending.resume(callback, &app.connections.all(), now, ttl) {
        Ok(conn) => conn,
        // A deleted connection is reported as the console names it.
        Err(PendingError::ConnectionGone(id)) => {
            let e = Error::UnknownConnection(id.to_string());
            return refused(id.as_str(), None, &e);
        }
        Err(e) => return refused(pending.connection.as_str(), None, &e.into()),
    };
    let identity = match oidc::flow::finish(
        &app.oidc,
        &conn,
        pending,
        params,
        &app.config.redirect_uri(conn.id.as_str()),
        &app.clock,
        !conn.group_rules.is_empty(),
    )
    .await
    {
        Ok(i) => i,
        Err(e) => return refused(pending.connection.as_str(), None, &Error::from(e)),
    };
    let claims = Some(claims_of(&identity));
    match decide(app, &conn, &identity, pending.channel_id.0).await {
        Ok((explanation, customer)) => Report {
            connection: conn.id.to_string(),
            claims,
            decision: "allowed".into(),
            explanation,
            customer: Some(customer),
        },
        Err(e) => refused(conn.id.as_str(), claims, &e),
    }
}

/// The same decisions as a real sign-in, read-only.
async fn decide(
    app: &AppState,
    conn: &Connection,
    identity: &Identity,
    channel_id: i64,
) -> Result<(String, CustomerOutcome), Error> {
    crate::policy::check_hosted_domain(conn, identity)?;
    if let Some(link) = app
        .db
        .find_link(&identity.issuer, &identity.subject)
        .await?
    {
        provisioning::check_channel(
            link.customer_id,
            link.channel_ids.as_deref(),
            crate::domain::ChannelId(channel_id),
        )?;
        return Ok((
            "This login is linked: it signs in as the linked customer, whatever its email now is."
                .into(),
            CustomerOutcome::Linked {
                customer_id: link.customer_id,
            },
        ));
    }
    let email = crate::policy::check_email(conn, identity)?;
    let api = app.bigcommerce()?;
    match provisioning::plan(&api.client, conn, identity, &email, channel_id).await? {
        Plan::Existing(c) => {
            let links = app.db.links_of_customer(c.id).await?;
            let explanation = match provisioning::link_action(conn, identity, &c, &links)? {
                provisioning::LinkAction::ResetPasswordAndLink => {
                    "First sign-in: the existing customer with this email would be linked, and its password reset (it was not created by this gateway)."
                }
                provisioning::LinkAction::Link => {
                    "First sign-in: the existing customer with this email would be linked."
                }
            };
            Ok((
                explanation.into(),
                CustomerOutcome::Existing { customer_id: c.id },
            ))
        }
        Plan::Create(post) => Ok((
            "First sign-in: no customer has this email, so this one would be created.".into(),
            CustomerOutcome::WouldCreate {
                email: post.email,
                first_name: post.first_name,
                last_name: post.last_name,
                customer_group_id: post.customer_group_id,
                company: post.company,
                channel_ids: post.channel_ids,
            },
        )),
    }
}

fn claims_of(i: &Identity) -> Claims {
    Claims {
        issuer: i.issuer.clone(),
        subject: i.subject.clone(),
        email: i.email.clone(),
        email_verified: i.email_verified,
        given_name: i.given_name.clone(),
        family_name: i.family_name.clone(),
        name: i.name.clone(),
        groups: i.groups.clone(),
        company: i.company.clone(),
    }
}
