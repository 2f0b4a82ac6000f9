//! BigCommerce's word on the customers the gateway links. A link remembers its customer's
//! `channel_ids` from the first sign-in; without word from BigCommerce, a customer moved to
//! other channels or deleted there showed only as a storefront refusing the login token.
//! So the gateway subscribes to `store/customer/updated` and `store/customer/deleted`
//! (CONTRACT.md §7) and keeps its links in step, each change audited.
//!
//! Decisions worth knowing:
//! - Authenticity: BigCommerce sends a hook's registered `headers` with every callback.
//!   Ours carry [`SECRET_HEADER`], a value derived from the store hash and the API account's
//!   client secret: every replica knows it without storing anything, and whoever could
//!   forge it could already sign shoppers in. It is compared in constant time before the
//!   body is read; a missing or wrong one is a 401 and changes nothing. Changing the client
//!   secret changes it: saving the store settings registers the hooks again.
//! - A callback is only a hint: for `updated` the customer is fetched
//!   (`GET /v3/customers?id:in=…`) and the link takes what BigCommerce says now, so an old
//!   callback replayed with the right header cannot set stale channels.
//! - Duplicates (BigCommerce retries, or delivers twice) are claimed by `hash` in the
//!   database; a failure gives the claim back and answers 5xx, so BigCommerce's retry is
//!   handled. A customer no link knows costs no API call and no row.

use std::collections::BTreeMap;

use url::Url;

use crate::AppState;
use crate::bigcommerce::wire::{WebhookCallback, WebhookFull, WebhookPost, WebhookPut};
use crate::bigcommerce::{ApiError, Client};
use crate::config::{Config, StoreConfig, is_loopback};
use crate::db::{AuditEvent, AuditKind, IdentityLink};
use crate::diagnostics::{Check, CheckStatus};
use crate::domain::ChannelId;
use crate::error::Error;
use crate::settings::store::StoreApi;

/// The header that carries the secret of our hooks.
pub const SECRET_HEADER: &str = "x-bcsso-webhook-secret";
pub const CUSTOMER_UPDATED: &str = "store/customer/updated";
pub const CUSTOMER_DELETED: &str = "store/customer/deleted";
pub const SCOPES: [&str; 2] = [CUSTOMER_UPDATED, CUSTOMER_DELETED];
/// Where BigCommerce delivers, below the public URL.
pub const PATH: &str = "webhooks/bigcommerce";
/// A customer callback is a few hundred bytes; nothing larger is read.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// The store check's line.
pub const CHECK: &str = "Webhooks";
/// Who made a change a callback asked for, in the audit trail.
pub const ACTOR: &str = "bigcommerce:webhook";

/// `<public_url>/webhooks/bigcommerce`.
pub fn destination(config: &Config) -> Url {
    crate::config::join_path(&config.server.public_url, PATH)
}

/// The value of [`SECRET_HEADER`] for `store` (see the module doc).
pub fn secret(store: &StoreConfig) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"bc-sso-gateway webhook secret v1\0")
        .chain_update(store.store_hash.as_bytes())
        .chain_update(b"\0")
        .chain_update(store.client_secret.expose().as_bytes())
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `presented` (the header's value, if any) is our secret; constant time.
pub fn authentic(store: &StoreConfig, presented: Option<&[u8]>) -> bool {
    match presented.and_then(|p| std::str::from_utf8(p).ok()) {
        Some(p) => crate::domain::same_secret(p, &secret(store)),
        None => false,
    }
}

/// What a callback did, for the answer and the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A scope we do not act on, or a customer no link knows.
    Ignored,
    /// The same event (`hash`) was handled before.
    Duplicate,
    LinksRemoved(usize),
    LinksUpdated(usize),
    /// The links already knew what BigCommerce says.
    Unchanged,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ignored => "ignored",
            Outcome::Duplicate => "duplicate",
            Outcome::LinksRemoved(_) => "links_removed",
            Outcome::LinksUpdated(_) => "links_updated",
            Outcome::Unchanged => "unchanged",
        }
    }
}

/// Acts on an authentic callback (the caller checked [`authentic`]).
#[tracing::instrument(skip_all, fields(customer_id = callback.data.id))]
pub async fn handle(
    app: &AppState,
    api: &StoreApi,
    callback: WebhookCallback,
) -> Result<Outcome, Error> {
    if callback.producer != format!("stores/{}", api.settings.store_hash) {
        return Err(Error::WebhookInvalid("the callback is for another store"));
    }
    if callback.hash.trim().is_empty() {
        return Err(Error::WebhookInvalid("the callback has no hash"));
    }
    if !SCOPES.contains(&callback.scope.as_str()) || callback.data.data_type != "customer" {
        return Ok(Outcome::Ignored);
    }
    let customer_id = callback.data.id;
    let links = app.db.links_of_customer(customer_id).await?;
    if links.is_empty() {
        return Ok(Outcome::Ignored);
    }
    let now = app.clock.now();
    if !app
        .db
        .claim_webhook(&callback.hash, &callback.scope, now)
        .await?
    {
        tracing::info!("webhook already handled (same hash)");
        return Ok(Outcome::Duplicate);
    }
    let result = apply(app, &api.client, &callback, links).await;
    if result.is_err()
        && let Err(e) = app.db.release_webhook(&callback.hash).await
    {
        tracing::warn!(error = %e, "could not release the webhook claim; a retry will be ignored");
    }
    let outcome = result?;
    tracing::info!(outcome = outcome.as_str(), "webhook handled");
    Ok(outcome)
}

async fn apply(
    app: &AppState,
    client: &Client,
    callback: &WebhookCallback,
    links: Vec<IdentityLink>,
) -> Result<Outcome, Error> {
    let customer_id = callback.data.id;
    let current = if callback.scope == CUSTOMER_DELETED {
        None
    } else {
        client
            .customers_by_id(&[customer_id])
            .await?
            .into_iter()
            .find(|c| c.id == customer_id)
    };
    let Some(customer) = current else {
        // Deleted (or gone by the time an update is read): the next sign-in of these
        // identities is a first one again, under the email policy.
        let mut removed = 0;
        for link in links {
            if let Some(link) = app.db.delete_link(&link.issuer, &link.subject).await? {
                removed += 1;
                audit(app, AuditKind::LinkRemoved, callback, &link, None).await;
            }
        }
        tracing::info!(
            removed,
            "links to a customer deleted in BigCommerce removed"
        );
        return Ok(Outcome::LinksRemoved(removed));
    };
    let channel_ids: Option<Vec<ChannelId>> = customer
        .channel_ids
        .map(|ids| ids.into_iter().map(ChannelId).collect());
    let mut updated = 0;
    for link in links.iter().filter(|l| l.channel_ids != channel_ids) {
        if app.db.set_link_channels(link, &channel_ids).await? {
            updated += 1;
            audit(
                app,
                AuditKind::LinkUpdated,
                callback,
                link,
                Some(&channel_ids),
            )
            .await;
        }
    }
    Ok(if updated == 0 {
        Outcome::Unchanged
    } else {
        tracing::info!(updated, "links updated from BigCommerce");
        Outcome::LinksUpdated(updated)
    })
}

/// `after`: the new `channel_ids` (`None` = the link was removed).
async fn audit(
    app: &AppState,
    kind: AuditKind,
    callback: &WebhookCallback,
    link: &IdentityLink,
    after: Option<&Option<Vec<ChannelId>>>,
) {
    let ids = |c: &Option<Vec<ChannelId>>| {
        c.as_ref()
            .map(|v| v.iter().map(|id| id.0).collect::<Vec<_>>())
    };
    let detail = serde_json::json!({
        "scope": callback.scope,
        "hash": callback.hash,
        "before": {
            "issuer": link.issuer, "subject": link.subject, "customer_id": link.customer_id,
            "channel_ids": ids(&link.channel_ids),
        },
        "after": after.map(|a| serde_json::json!({ "channel_ids": ids(a) })),
    });
    app.audit(AuditEvent {
        kind,
        actor: Some(ACTOR.to_owned()),
        connection: Some(link.connection.to_string()),
        subject: Some(link.subject.clone()),
        email: Some(link.email_at_link.clone()),
        customer_id: Some(link.customer_id),
        detail: Some(detail.to_string()),
        ..AuditEvent::default()
    })
    .await;
}

/// What registering did for one scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    Created,
    /// It existed, but inactive or with another secret: updated.
    Updated,
    Unchanged,
}

impl Registration {
    pub fn as_str(self) -> &'static str {
        match self {
            Registration::Created => "created",
            Registration::Updated => "updated",
            Registration::Unchanged => "unchanged",
        }
    }
}

/// Our hooks among `hooks`: scope `scope` delivering to `destination`.
fn ours<'a>(
    hooks: &'a [WebhookFull],
    scope: &'a str,
    destination: &'a Url,
) -> impl Iterator<Item = &'a WebhookFull> + 'a {
    let to = destination.as_str().trim_end_matches('/');
    hooks
        .iter()
        .filter(move |h| h.scope == scope && h.destination.trim_end_matches('/') == to)
}

fn has_secret(hook: &WebhookFull, secret: &str) -> bool {
    hook.headers
        .as_ref()
        .and_then(|h| h.get(SECRET_HEADER))
        .is_some_and(|v| v == secret)
}

/// Registers both hooks for `destination`, idempotently: an existing one is left alone when
/// active with the right secret, updated otherwise; a second registration of the same hook
/// (by hand, or an older gateway) is deleted, or every event would arrive twice.
pub async fn register(
    client: &Client,
    store: &StoreConfig,
    destination: &Url,
) -> Result<Vec<(&'static str, Registration)>, ApiError> {
    let hooks = client.hooks().await?;
    let secret = secret(store);
    let mut done = Vec::new();
    for scope in SCOPES {
        let mut mine = ours(&hooks, scope, destination);
        let result = match mine.next() {
            None => {
                let headers = BTreeMap::from([(SECRET_HEADER.to_owned(), secret.clone())]);
                let post = WebhookPost {
                    scope: scope.to_owned(),
                    destination: destination.to_string(),
                    is_active: true,
                    headers: Some(headers),
                };
                client.create_hook(&post).await?;
                Registration::Created
            }
            Some(h) if h.is_active && has_secret(h, &secret) => Registration::Unchanged,
            Some(h) => {
                // Headers someone added by hand stay; ours is set.
                let mut headers = h.headers.clone().unwrap_or_default();
                headers.insert(SECRET_HEADER.to_owned(), secret.clone());
                let put = WebhookPut {
                    is_active: Some(true),
                    headers: Some(headers),
                    ..WebhookPut::default()
                };
                client.update_hook(h.id, &put).await?;
                Registration::Updated
            }
        };
        for extra in mine {
            client.delete_hook(extra.id).await?;
        }
        done.push((scope, result));
    }
    Ok(done)
}

/// Registers the hooks for the store settings in force, logging the outcome: after the
/// console saved store settings, where a failure must not undo the save (the store check
/// shows it).
pub async fn register_in_force(app: &AppState) -> Result<Vec<(&'static str, Registration)>, Error> {
    let api = app.bigcommerce()?;
    let result = register(&api.client, &api.settings, &destination(&app.config)).await;
    match &result {
        Ok(done) => {
            let created = done
                .iter()
                .filter(|(_, r)| *r == Registration::Created)
                .count();
            let updated = done
                .iter()
                .filter(|(_, r)| *r == Registration::Updated)
                .count();
            tracing::info!(created, updated, "BigCommerce webhooks registered");
        }
        Err(e) => tracing::warn!(error = %e, "could not register BigCommerce webhooks"),
    }
    result.map_err(Error::from)
}

/// The store check's line about our hooks.
pub async fn check(client: &Client, store: &StoreConfig, destination: &Url) -> Check {
    let hooks = match client.hooks().await {
        Ok(hooks) => hooks,
        Err(e) => {
            return Check::new(
                CHECK,
                CheckStatus::Warning,
                format!(
                    "could not list the webhooks (GET /v3/hooks): {}",
                    crate::bigcommerce::diagnose::describe(&e, store)
                ),
            );
        }
    };
    let secret = secret(store);
    let mut problems = Vec::new();
    let mut missing = 0;
    for scope in SCOPES {
        match ours(&hooks, scope, destination).next() {
            None => {
                missing += 1;
                problems.push(format!("{scope} is not registered"));
            }
            Some(h) if !h.is_active => problems.push(format!(
                "{scope} was deactivated by BigCommerce (its deliveries kept failing)"
            )),
            Some(h) if !has_secret(h, &secret) => problems.push(format!(
                "{scope} carries another secret (the client secret changed?), so its callbacks are refused"
            )),
            Some(_) => {}
        }
    }
    let fix = "Register webhooks on the Store settings page (saving store settings in the \
               console does it too)";
    if missing == SCOPES.len() {
        // Optional: sign-ins work without, so not a warning on every such store.
        return Check::new(
            CHECK,
            CheckStatus::Ok,
            format!(
                "not registered: identity links learn that a customer was changed or deleted \
                 in BigCommerce only at its next sign-in. {fix}"
            ),
        );
    }
    if !problems.is_empty() {
        return Check::new(
            CHECK,
            CheckStatus::Warning,
            format!("{}. {fix}", problems.join("; ")),
        );
    }
    let reachable =
        destination.scheme() == "https" && destination.port_or_known_default() == Some(443);
    if !reachable && !is_loopback(destination) {
        return Check::new(
            CHECK,
            CheckStatus::Warning,
            format!(
                "registered for {destination}, but BigCommerce delivers only to https on port \
                 443: set server.public_url to the gateway's https address"
            ),
        );
    }
    Check::new(
        CHECK,
        CheckStatus::Ok,
        format!("{} registered for {destination}", SCOPES.join(" and ")),
    )
}

#[cfg(test)]
#[path = "webhooks_tests.rs"]
mod tests;
