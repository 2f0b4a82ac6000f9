//! Identity -> BigCommerce customer: look up by email, create on the first sign-in, and
//! never hand out a customer for a channel it cannot use (SECURITY.md rule 15).

use crate::bigcommerce::Client;
use crate::bigcommerce::wire::{CustomerFull, CustomerPost, CustomerPut};
use crate::config::{ChannelAccess, Connection, LinkExisting};
use crate::db::IdentityLink;
use crate::domain::{ChannelId, Email};
use crate::error::Error;
use crate::oidc::Identity;
use crate::policy::PolicyError;

/// The customer a sign-in resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerRef {
    pub id: i64,
    /// `None` = global account.
    pub channel_ids: Option<Vec<i64>>,
    pub created: bool,
    /// Set when our create failed and a second lookup found the customer: a reason code
    /// for the audit trail ([`Recovered::code`]).
    pub recovered: Option<Recovered>,
}

/// How a failed create still ended with a customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovered {
    /// The create was refused (422/409), most likely because a concurrent first sign-in
    /// created the customer between our lookup and our create.
    CreateConflict,
    /// The create broke off (timeout, reset, 5xx) and the lookup after it found the
    /// customer: most likely our own create went through.
    CreateOutcomeUnknown,
}

impl Recovered {
    pub fn code(self) -> &'static str {
        match self {
            Recovered::CreateConflict => "create_conflict_customer_found",
            Recovered::CreateOutcomeUnknown => "create_outcome_unknown_customer_found",
        }
    }
}

impl CustomerRef {
    fn existing(c: &CustomerFull) -> Self {
        CustomerRef {
            id: c.id,
            channel_ids: c.channel_ids.clone(),
            created: false,
            recovered: None,
        }
    }
}

/// What a first sign-in will do at BigCommerce, decided by reading only.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// A customer with this email exists and may use the channel.
    Existing(CustomerRef),
    /// No customer yet: this one would be created.
    Create(CustomerPost),
}

/// Looks the email up and decides; creates nothing. "Try sign-in" shows this plan; a real
/// first sign-in is decided the same way, a round at a time ([`crate::coalesce`]).
pub async fn plan(
    client: &Client,
    conn: &Connection,
    identity: &Identity,
    email: &Email,
    channel_id: i64,
) -> Result<Plan, Error> {
    if let Some(c) = lookup(client, email, channel_id).await? {
        return Ok(Plan::Existing(c));
    }
    if !conn.create_customers {
        return Err(PolicyError::NoAccount {
            connection: conn.id.to_string(),
        }
        .into());
    }
    let post = new_customer(conn, identity, email, channel_id);
    // A global account (no `channel_ids`) can sign in only where the channel allows global
    // logins: better to refuse now than to create a customer BigCommerce will not sign in.
    if post.channel_ids.is_none()
        && client.channel_allows_global_logins(channel_id).await? == Some(false)
    {
        return Err(PolicyError::GlobalLoginsOff {
            connection: conn.id.to_string(),
            channel_id,
        }
        .into());
    }
    Ok(Plan::Create(post))
}

/// The customer with this email that may use `channel_id`, if any.
async fn lookup(
    client: &Client,
    email: &Email,
    channel_id: i64,
) -> Result<Option<CustomerRef>, Error> {
    let found = client.customers_by_email(&[email.to_string()]).await?;
    let Some(c) = usable(&found, channel_id)? else {
        return Ok(None);
    };
    // A global account signs in only where the channel allows global logins: the
    // storefront would refuse the login token, so refuse now, before anything is linked,
    // with a reason the shopper and the audit trail can read.
    if c.channel_ids.is_none()
        && client.channel_allows_global_logins(channel_id).await? == Some(false)
    {
        return Err(PolicyError::GlobalCustomerNotAllowed {
            customer_id: c.id,
            channel_id,
        }
        .into());
    }
    Ok(Some(CustomerRef::existing(c)))
}

/// How a first sign-in's customer gets linked (SECURITY.md rule 20).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkAction {
    /// Created by this sign-in, already linked from another issuer, or `link_existing = "link"`.
    Link,
    /// A customer that existed before: force a password reset, then link.
    ResetPasswordAndLink,
}

/// Decides whether `identity` may be linked to `customer`, given the customer's existing
/// links. Reads nothing and writes nothing, so "Try sign-in" shows the same decision.
///
/// - A customer already linked to another subject of the same issuer is never linked again:
///   a recycled address, or an IdP that lets two accounts share one, would otherwise hand
///   the first person's account to the second.
/// - A customer the gateway did not create (and no other IdP already links) may have been
///   registered on the storefront by anybody, since BigCommerce does not verify emails: the
///   connection's `link_existing` decides.
pub fn link_action(
    conn: &Connection,
    identity: &Identity,
    customer: &CustomerRef,
    links: &[IdentityLink],
) -> Result<LinkAction, PolicyError> {
    if links
        .iter()
        .any(|l| l.issuer == identity.issuer && l.subject != identity.subject)
    {
        return Err(PolicyError::CustomerAlreadyLinked {
            issuer: identity.issuer.clone(),
            customer_id: customer.id,
        });
    }
    // Linked through another issuer: the gateway linked it under that IdP's verified email
    // before (an admin moved the domain to this connection).
    if customer.created || !links.is_empty() {
        return Ok(LinkAction::Link);
    }
    match conn.link_existing {
        LinkExisting::Refuse => Err(PolicyError::ExistingCustomerNotLinked {
            connection: conn.id.to_string(),
            customer_id: customer.id,
        }),
        LinkExisting::ResetPassword => Ok(LinkAction::ResetPasswordAndLink),
        LinkExisting::Link => Ok(LinkAction::Link),
    }
}

/// What a profile sync found.
pub struct Synced {
    /// The customer's current `channel_ids`.
    pub channel_ids: Option<Vec<i64>>,
    pub updated: bool,
}

/// Brings a linked customer's names, group and company in line with the IdP (connection
/// setting `sync_profile`). `None` when the customer no longer exists at BigCommerce.
/// The email is never changed here: the link, not the email, identifies the person.
pub async fn sync(
    client: &Client,
    conn: &Connection,
    identity: &Identity,
    customer_id: i64,
) -> Result<Option<Synced>, Error> {
    let Some(current) = client
        .customers_by_id(&[customer_id])
        .await?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    let email = identity
        .email
        .as_deref()
        .and_then(|e| Email::parse(e).ok())
        .or_else(|| Email::parse(&current.email).ok());
    let mut put = CustomerPut {
        id: customer_id,
        ..CustomerPut::default()
    };
    if let Some(email) = &email {
        let (first, last) = derive_names(identity, email);
        put.first_name = (first != current.first_name).then_some(first);
        put.last_name = (last != current.last_name).then_some(last);
    }
    // Only when the connection maps groups at all: otherwise the group is the merchant's.
    if conn.customer_group_id.is_some() || !conn.group_rules.is_empty() {
        let group = conn.customer_group_for(&identity.groups).unwrap_or(0);
        put.customer_group_id = (group != current.customer_group_id).then_some(group);
    }
    if conn.company_claim.is_some()
        && let Some(company) = company(identity)
    {
        put.company = (company != current.company).then_some(company);
    }
    let changed = put.first_name.is_some()
        || put.last_name.is_some()
        || put.customer_group_id.is_some()
        || put.company.is_some();
    if changed {
        client.update_customers(std::slice::from_ref(&put)).await?;
        tracing::info!(customer_id, "customer profile updated from the IdP");
    }
    Ok(Some(Synced {
        channel_ids: current.channel_ids,
        updated: changed,
    }))
}

/// SECURITY.md rule 15: never mint for a channel the customer cannot use. `None` is a
/// global account: `allow_global_logins` was checked when it was linked ([`plan`]), and the
/// storefront enforces it.
pub fn check_channel(
    customer_id: i64,
    channel_ids: Option<&[ChannelId]>,
    channel_id: ChannelId,
) -> Result<(), PolicyError> {
    match channel_ids {
        Some(ids) if !ids.contains(&channel_id) => Err(PolicyError::ChannelNotAllowed {
            customer_id,
            channel_id: channel_id.0,
        }),
        _ => Ok(()),
    }
}

/// Picks the customer that may sign in on `channel_id`. With channel-specific accounts the
/// same email can exist once per channel set, so the one for this channel wins; a customer
/// that exists only for other channels is refused rather than recreated.
pub(crate) fn usable(
    found: &[CustomerFull],
    channel_id: i64,
) -> Result<Option<&CustomerFull>, PolicyError> {
    let allowed = |c: &&CustomerFull| match &c.channel_ids {
        None => true,
        Some(ids) => ids.contains(&channel_id),
    };
    // An account of this channel before a global one with the same email.
    let own = |c: &&CustomerFull| {
        c.channel_ids
            .as_ref()
            .is_some_and(|ids| ids.contains(&channel_id))
    };
    match (
        found
            .iter()
            .find(own)
            .or_else(|| found.iter().find(allowed)),
        found.first(),
    ) {
        (Some(c), _) => Ok(Some(c)),
        (None, Some(c)) => Err(PolicyError::ChannelNotAllowed {
            customer_id: c.id,
            channel_id,
        }),
        (None, None) => Ok(None),
    }
}

pub(crate) fn new_customer(
    conn: &Connection,
    identity: &Identity,
    email: &Email,
    channel_id: i64,
) -> CustomerPost {
    let (first_name, last_name) = derive_names(identity, email);
    CustomerPost {
        email: email.normalised(),
        first_name,
        last_name,
        company: company(identity),
        customer_group_id: conn.customer_group_for(&identity.groups),
        origin_channel_id: Some(channel_id),
        channel_ids: match conn.channel_access {
            ChannelAccess::Channel => Some(vec![channel_id]),
            ChannelAccess::Global => None,
        },
        // The default is undocumented; a shopper signing in with SSO has no password to be
        // welcomed with, so say no explicitly.
        trigger_account_created_notification: Some(false),
    }
}

/// The IdP's company, cut to BigCommerce's 255 characters (`company` is 0–255, CONTRACT.md
/// §2.2): a longer claim must not turn a first sign-in into a refused create.
fn company(identity: &Identity) -> Option<String> {
    identity
        .company
        .as_deref()
        .map(|c| c.trim().chars().take(COMPANY_MAX).collect())
}

const COMPANY_MAX: usize = 255;

/// BigCommerce requires both names, 1–100 characters (CONTRACT.md §2.2). Prefer the IdP's
/// given/family names, then split `name` at its last space, then the email's local part.
/// When only one name can be found the last name is "-", which an admin can spot and fix,
/// rather than an invented surname.
pub fn derive_names(identity: &Identity, email: &Email) -> (String, String) {
    let clean = |s: &str| -> Option<String> {
        let s: String = s.chars().filter(|c| !c.is_control()).collect();
        let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
        (!s.is_empty()).then(|| s.chars().take(100).collect())
    };
    let given = identity.given_name.as_deref().and_then(clean);
    let family = identity.family_name.as_deref().and_then(clean);
    if let (Some(g), Some(f)) = (&given, &family) {
        return (g.clone(), f.clone());
    }
    if let Some(full) = identity.name.as_deref().and_then(clean) {
        if let Some((g, f)) = full.rsplit_once(' ') {
            return (
                given.unwrap_or_else(|| g.to_owned()),
                family.unwrap_or_else(|| f.to_owned()),
            );
        }
        return match (given, family) {
            (Some(g), None) => (g, full),
            (None, Some(f)) => (full, f),
            _ => (full, "-".into()),
        };
    }
    let words: Vec<String> = email
        .local_part()
        .split(['.', '_', '-', '+'])
        .filter(|w| !w.is_empty())
        .map(capitalise)
        .collect();
    let (g, f) = match words.as_slice() {
        [] => (email.local_part().to_owned(), "-".to_owned()),
        [one] => (one.clone(), "-".to_owned()),
        [first, .., last] => (first.clone(), last.clone()),
    };
    (
        given.unwrap_or_else(|| g.chars().take(100).collect()),
        family.unwrap_or_else(|| f.chars().take(100).collect()),
    )
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(given: Option<&str>, family: Option<&str>, name: Option<&str>) -> Identity {
        Identity {
            issuer: "i".into(),
            subject: "s".into(),
            email: None,
            email_verified: true,
            given_name: given.map(Into::into),
            family_name: family.map(Into::into),
            name: name.map(Into::into),
            ..Identity::default()
        }
    }

    fn names(i: Identity, email: &str) -> (String, String) {
        derive_names(&i, &Email::parse(email).unwrap())
    }

    /// The names derived from `i` and `email` are `(given, family)`.
    #[track_caller]
    fn assert_names(i: Identity, email: &str, (given, family): (&str, &str)) {
        assert_eq!(names(i, email), (given.to_owned(), family.to_owned()));
    }

    #[test]
    fn given_and_family_win() {
        assert_names(
            id(Some("Ada"), Some("Lovelace"), Some("Countess")),
            "x@a.test",
            ("Ada", "Lovelace"),
        );
    }

    #[test]
    fn full_name_is_split_at_the_last_space() {
        assert_names(
            id(None, None, Some("Grace  Brewster Hopper")),
            "x@a.test",
            ("Grace Brewster", "Hopper"),
        );
        assert_names(
            id(Some("Grace"), None, Some("Grace Hopper")),
            "x@a.test",
            ("Grace", "Hopper"),
        );
        assert_names(id(None, None, Some("Cher")), "x@a.test", ("Cher", "-"));
    }

    #[test]
    fn email_local_part_is_the_last_resort() {
        assert_names(
            id(None, None, None),
            "ada.lovelace@a.test",
            ("Ada", "Lovelace"),
        );
        assert_names(
            id(None, None, None),
            "jean-luc_picard@a.test",
            ("Jean", "Picard"),
        );
        assert_names(id(None, None, None), "ada@a.test", ("Ada", "-"));
        assert_names(id(None, None, Some("   ")), "bob@a.test", ("Bob", "-"));
    }

    #[test]
    fn names_are_cleaned_and_capped() {
        let long = "x".repeat(150);
        let (g, f) = names(id(Some(&long), Some("A\u{0}\nB"), None), "x@a.test");
        assert_eq!(g.len(), 100);
        assert_eq!(f, "AB");
    }

    #[test]
    fn company_is_capped_at_255_characters() {
        let mut i = id(None, None, None);
        i.company = Some(format!("  {}  ", "é".repeat(300)));
        assert_eq!(company(&i).unwrap().chars().count(), 255);
        i.company = Some("Acme".into());
        assert_eq!(company(&i).as_deref(), Some("Acme"));
    }

    #[test]
    fn channel_rules() {
        let c = |id, channel_ids: Option<Vec<i64>>| CustomerFull {
            id,
            email: "a@b.test".into(),
            first_name: "A".into(),
            last_name: "B".into(),
            company: String::new(),
            phone: String::new(),
            notes: String::new(),
            registration_ip_address: String::new(),
            customer_group_id: 0,
            date_created: String::new(),
            date_modified: String::new(),
            origin_channel_id: Some(1),
            channel_ids,
            authentication: None,
        };
        assert_eq!(usable(&[c(1, None)], 2).unwrap().unwrap().id, 1);
        assert_eq!(
            usable(&[c(1, Some(vec![1])), c(2, Some(vec![2]))], 2)
                .unwrap()
                .unwrap()
                .id,
            2
        );
        assert!(usable(&[c(1, Some(vec![1]))], 2).is_err());
        // The channel's own account before a global one with the same email.
        assert_eq!(
            usable(&[c(1, None), c(2, Some(vec![2]))], 2)
                .unwrap()
                .unwrap()
                .id,
            2
        );
        assert!(usable(&[], 2).unwrap().is_none());
    }
}
