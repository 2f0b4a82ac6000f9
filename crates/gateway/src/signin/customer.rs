//! The customer of a verified identity: a returning identity by its link, a first sign-in
//! by email (through the first sign-in queue) and the link it creates.

use std::sync::Arc;

use crate::AppState;
use crate::config::Connection;
use crate::db::{AuditEvent, AuditKind, IdentityLink};
use crate::domain::ChannelId;
use crate::error::Error;
use crate::oidc;
use crate::policy;
use crate::provisioning;
use crate::settings::store::StoreApi;

/// The customer for a verified identity. A returning identity is found by its link on
/// `(iss, sub)` with no BigCommerce call, and its email is not consulted: an email changed
/// at the IdP must not move a login to someone else's account (SECURITY.md rules 1 and 5).
/// Only the first sign-in goes by email, under the email policy, and creates the link.
pub(super) async fn customer_for(
    app: &AppState,
    api: &Arc<StoreApi>,
    conn: &Connection,
    identity: &oidc::Identity,
    channel_id: i64,
    audit: &mut AuditEvent,
) -> Result<i64, Error> {
    let now = app.clock.now();
    if let Some(link) = app
        .db
        .find_link(&identity.issuer, &identity.subject)
        .await?
    {
        if let Some(id) = returning(app, api, conn, identity, &link, channel_id, audit).await? {
            return Ok(id);
        }
        // The linked customer was deleted at BigCommerce: this sign-in is a first one again.
        app.db.delete_link(&link.issuer, &link.subject).await?;
        tracing::info!(
            customer_id = link.customer_id,
            "linked customer no longer exists; linking again by email"
        );
    }
    let email = policy::check_email(conn, identity)?;
    let customer = app
        .coalescer
        .resolve(api.clone(), conn, identity, &email, channel_id)
        .await?;
    let links = app.db.links_of_customer(customer.id).await?;
    let action = match provisioning::link_action(conn, identity, &customer, &links) {
        Ok(action) => action,
        Err(e) => return Err(link_refused(app, audit, customer.id, e).await),
    };
    // Before the link exists: if the reset fails, the sign-in fails and nothing is linked.
    if action == provisioning::LinkAction::ResetPasswordAndLink {
        api.client.force_password_reset(customer.id).await?;
        tracing::info!(
            customer_id = customer.id,
            "existing customer must reset its password"
        );
    }
    let inserted = app
        .db
        .insert_link(&IdentityLink {
            issuer: identity.issuer.clone(),
            subject: identity.subject.clone(),
            connection: conn.id.clone(),
            customer_id: customer.id,
            channel_ids: channel_ids(customer.channel_ids.clone()),
            email_at_link: email.normalised(),
            created_at: now,
            last_sign_in_at: now,
        })
        .await;
    let link = match inserted {
        Ok(link) => link,
        // Two subjects of one issuer linking the same customer at once both passed the
        // check above; the database's unique index lets exactly one of them in.
        Err(crate::db::DbError::CustomerAlreadyLinked) => {
            let e = policy::PolicyError::CustomerAlreadyLinked {
                issuer: identity.issuer.clone(),
                customer_id: customer.id,
            };
            return Err(link_refused(app, audit, customer.id, e).await);
        }
        Err(e) => return Err(e.into()),
    };
    // The same subject's other first sign-in (another tab, another storefront) linked
    // first: its customer decides, and it must be allowed on this channel (rule 15).
    if link.customer_id != customer.id {
        provisioning::check_channel(
            link.customer_id,
            link.channel_ids.as_deref(),
            ChannelId(channel_id),
        )?;
    }
    // The first-sign-in event goes in before the sign-in's own event.
    let kind = match (customer.created, action) {
        (true, _) => AuditKind::CustomerCreated,
        (false, provisioning::LinkAction::ResetPasswordAndLink) => {
            AuditKind::CustomerLinkedPasswordReset
        }
        (false, provisioning::LinkAction::Link) => AuditKind::CustomerLinked,
    };
    app.audit(AuditEvent {
        kind,
        customer_id: Some(link.customer_id),
        // A create that failed but found the customer on a second lookup says so.
        reason: customer.recovered.map(|r| r.code().to_owned()),
        ..audit.clone()
    })
    .await;
    Ok(link.customer_id)
}

/// The customer of a returning identity when no BigCommerce call is needed to decide it
/// (no profile sync): its link's, checked for the channel. `None`: no link yet, or the
/// connection syncs profiles; [`customer_for`] decides those, in the first sign-in queue.
pub(super) async fn linked(
    app: &AppState,
    api: &StoreApi,
    conn: &Connection,
    identity: &oidc::Identity,
    channel_id: i64,
    audit: &AuditEvent,
) -> Result<Option<i64>, Error> {
    if conn.sync_profile {
        return Ok(None);
    }
    let Some(link) = app
        .db
        .find_link(&identity.issuer, &identity.subject)
        .await?
    else {
        return Ok(None);
    };
    returning(app, api, conn, identity, &link, channel_id, audit).await
}

/// Audits a refused link as its own event (before the sign-in's refusal) and returns the error.
async fn link_refused(
    app: &AppState,
    audit: &AuditEvent,
    customer_id: i64,
    e: policy::PolicyError,
) -> Error {
    tracing::warn!(customer_id, reason = e.code(), "customer not linked");
    app.audit(AuditEvent {
        kind: AuditKind::LinkRefused,
        customer_id: Some(customer_id),
        reason: Some(e.code().to_owned()),
        ..audit.clone()
    })
    .await;
    e.into()
}

/// A returning identity: its link decides the customer. With `sync_profile` the customer
/// is fetched and updated (and found missing if it was deleted: `None`); without, no
/// BigCommerce call is made at all.
async fn returning(
    app: &AppState,
    api: &StoreApi,
    conn: &Connection,
    identity: &oidc::Identity,
    link: &IdentityLink,
    channel_id: i64,
    audit: &AuditEvent,
) -> Result<Option<i64>, Error> {
    let mut channel_ids = link.channel_ids.clone();
    if conn.sync_profile {
        let Some(synced) =
            provisioning::sync(&api.client, conn, identity, link.customer_id).await?
        else {
            return Ok(None);
        };
        channel_ids = self::channel_ids(synced.channel_ids);
        if synced.updated {
            app.audit(AuditEvent {
                kind: AuditKind::CustomerUpdated,
                customer_id: Some(link.customer_id),
                ..audit.clone()
            })
            .await;
        }
    }
    provisioning::check_channel(
        link.customer_id,
        channel_ids.as_deref(),
        ChannelId(channel_id),
    )?;
    let now = app.clock.now();
    let interval = app.config.database.link_touch_interval.as_secs() as i64;
    if now - link.last_sign_in_at >= interval {
        app.db.touch_link(link, now).await?;
    }
    // Debug: "sign-in complete" follows with the customer id (one log line less per
    // returning sign-in).
    tracing::debug!(
        customer_id = link.customer_id,
        "returning identity matched by link"
    );
    Ok(Some(link.customer_id))
}

/// BigCommerce's `channel_ids` as a link keeps them.
fn channel_ids(ids: Option<Vec<i64>>) -> Option<Vec<ChannelId>> {
    ids.map(|ids| ids.into_iter().map(ChannelId).collect())
}
