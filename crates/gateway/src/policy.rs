//! Who may sign in through a connection: the email checks of SECURITY.md rules 2 and 4,
//! applied before any BigCommerce account is looked up or created.

use crate::config::Connection;
use crate::domain::{Email, EmailError};
use crate::oidc::Identity;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("the IdP sent no email address")]
    EmailMissing,
    #[error("the IdP's email address is not valid: {0}")]
    EmailInvalid(#[from] EmailError),
    #[error("the IdP has not verified the email address")]
    EmailUnverified,
    #[error(
        "the email address has non-ASCII characters before '@' and connection {connection} does not accept them"
    )]
    EmailNotAscii { connection: String },
    #[error(
        "customer {customer_id} existed before this sign-in and connection {connection} does not link existing customers"
    )]
    ExistingCustomerNotLinked {
        connection: String,
        customer_id: i64,
    },
    #[error("customer {customer_id} is already linked to another subject of issuer {issuer}")]
    CustomerAlreadyLinked { issuer: String, customer_id: i64 },
    #[error("email domain {domain:?} is not allowed for connection {connection}")]
    DomainNotAllowed { connection: String, domain: String },
    #[error("no store account for this email and connection {connection} does not create accounts")]
    NoAccount { connection: String },
    #[error("the account is not in the Google Workspace domain this connection requires")]
    HostedDomain,
    #[error("customer {customer_id} may not sign in on channel {channel_id}")]
    ChannelNotAllowed { customer_id: i64, channel_id: i64 },
    #[error(
        "connection {connection} creates global customers, but channel {channel_id} does not allow global logins"
    )]
    GlobalLoginsOff { connection: String, channel_id: i64 },
    #[error(
        "customer {customer_id} is a global account, and channel {channel_id} does not allow global logins"
    )]
    GlobalCustomerNotAllowed { customer_id: i64, channel_id: i64 },
}

impl PolicyError {
    pub fn code(&self) -> &'static str {
        match self {
            PolicyError::EmailMissing => "email_missing",
            PolicyError::EmailInvalid(_) => "email_invalid",
            PolicyError::EmailUnverified => "email_unverified",
            PolicyError::EmailNotAscii { .. } => "email_not_ascii",
            PolicyError::ExistingCustomerNotLinked { .. } => "existing_customer_not_linked",
            PolicyError::CustomerAlreadyLinked { .. } => "customer_already_linked",
            PolicyError::DomainNotAllowed { .. } => "domain_not_allowed",
            PolicyError::NoAccount { .. } => "no_store_account",
            PolicyError::ChannelNotAllowed { .. } => "channel_not_allowed",
            PolicyError::HostedDomain => "hosted_domain_mismatch",
            PolicyError::GlobalLoginsOff { .. } => "global_logins_not_allowed",
            PolicyError::GlobalCustomerNotAllowed { .. } => "global_customer_not_allowed",
        }
    }

    pub fn public_message(&self) -> (&'static str, String) {
        match self {
            PolicyError::EmailMissing | PolicyError::EmailInvalid(_) => (
                "Your company account has no usable email address",
                "The store finds your account by email, and your company's sign-in service did not send a valid one. Ask your IT team to release the email claim to this store.".into(),
            ),
            PolicyError::EmailUnverified => (
                "Your email address is not verified",
                "Your company's sign-in service says your email address is not verified yet, so we cannot link it to a store account. Verify it there, or ask your IT team.".into(),
            ),
            PolicyError::EmailNotAscii { .. } => (
                "Your email address cannot be used for company sign-in here",
                "Your email address has characters other than plain letters, digits and punctuation before the @. Such addresses can look like someone else's, so this store does not accept them for company sign-in. Use your store password, or ask your IT team.".into(),
            ),
            PolicyError::ExistingCustomerNotLinked { .. } => (
                "Your store account has to be linked first",
                "There already is a store account with your email address, and this store does not connect existing accounts to company sign-in on its own. Nothing was changed. Contact the store to have your account linked.".into(),
            ),
            PolicyError::CustomerAlreadyLinked { .. } => (
                "This store account belongs to another company login",
                "The store account with your email address is already linked to a different user of your company's sign-in service (for example someone who had the address before you). Nothing was changed. Contact the store: an admin can remove the old link.".into(),
            ),
            PolicyError::DomainNotAllowed { .. } => (
                "This company login cannot be used with your email",
                "Your email address belongs to a domain that this company login is not allowed to sign in. Use the sign-in option for your own company, or your store password.".into(),
            ),
            PolicyError::NoAccount { .. } => (
                "No store account for you yet",
                "This store only lets existing customers sign in with their company account, and there is no account with your email. Contact the store to have one created.".into(),
            ),
            PolicyError::HostedDomain => (
                "Use your work account",
                "You signed in with an account outside your company's workspace (for example a personal account). Sign in again with your work account.".into(),
            ),
            PolicyError::GlobalLoginsOff { .. } => (
                "Company sign-in is not available on this storefront",
                "This storefront only accepts its own customer accounts, and your company's sign-in is set up to create accounts for all storefronts. No account was created. Please tell the store.".into(),
            ),
            PolicyError::GlobalCustomerNotAllowed { .. } => (
                "Your account cannot sign in on this storefront",
                "Your store account is shared by all storefronts of this store, and this storefront accepts only its own accounts. Nothing was linked. Sign in on the store's main storefront, or contact the store.".into(),
            ),
            PolicyError::ChannelNotAllowed { .. } => (
                "Your account cannot sign in on this storefront",
                "Your store account is limited to other storefronts of this store. Sign in on the storefront where you registered, or contact the store.".into(),
            ),
        }
    }
}

/// Google Workspace connections: the `hd` claim (not the `hd` request parameter, which the
/// user can remove) must name the workspace. Checked on every sign-in, linked or not:
/// personal accounts share Google's issuer (SECURITY.md rule 6).
pub fn check_hosted_domain(conn: &Connection, identity: &Identity) -> Result<(), PolicyError> {
    match &conn.hosted_domain {
        Some(required) => match &identity.hosted_domain {
            Some(hd) if hd.eq_ignore_ascii_case(required) => Ok(()),
            _ => Err(PolicyError::HostedDomain),
        },
        None => Ok(()),
    }
}

/// Returns the email to look the customer up by, or why this identity may not sign in.
pub fn check_email(conn: &Connection, identity: &Identity) -> Result<Email, PolicyError> {
    let raw = identity.email.as_deref().ok_or(PolicyError::EmailMissing)?;
    let email = Email::parse(raw)?;
    if !email.is_ascii() && !conn.allow_non_ascii_email {
        return Err(PolicyError::EmailNotAscii {
            connection: conn.id.to_string(),
        });
    }
    if !conn
        .allowed_email_domains
        .iter()
        .any(|d| d.matches(email.domain()))
    {
        return Err(PolicyError::DomainNotAllowed {
            connection: conn.id.to_string(),
            domain: email.domain().to_owned(),
        });
    }
    // Absent `email_verified` counts as unverified (rule 2). Only the admin's per-domain
    // trust (warned about at start-up and in the console) lifts that (rule 3), and Entra's
    // `xms_edov` can only narrow it: `false` says the tenant has not verified the domain.
    // A claim any IdP could mint never widens what the admin allowed.
    let verified = identity.email_verified
        || (conn.trusts_unverified_email(email.domain())
            && identity.email_domain_verified != Some(false));
    if !verified {
        return Err(PolicyError::EmailUnverified);
    }
    Ok(email)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ChannelAccess;
    use crate::domain::{ConnectionId, EmailDomain, Secret};

    fn conn(trust: bool) -> Connection {
        let allowed = vec![
            EmailDomain::parse_pattern("acme.test").unwrap(),
            EmailDomain::parse_pattern("*.acme.test").unwrap(),
        ];
        Connection {
            id: ConnectionId::parse("acme").unwrap(),
            display_name: "Acme".into(),
            issuer: openidconnect::IssuerUrl::new("https://idp.acme.test".into()).unwrap(),
            client_id: "c".into(),
            client_secret: Secret::new("s"),
            scopes: vec!["openid".into()],
            trusted_email_domains: if trust { allowed.clone() } else { Vec::new() },
            allowed_email_domains: allowed,
            customer_group_id: None,
            groups_claim: "groups".into(),
            group_rules: Vec::new(),
            company_claim: None,
            hosted_domain: None,
            sync_profile: false,
            channels: Vec::new(),
            create_customers: true,
            link_existing: crate::config::LinkExisting::default(),
            allow_non_ascii_email: false,
            channel_access: ChannelAccess::Channel,
            id_token_algs: vec!["RS256".into()],
            clock_leeway: std::time::Duration::from_secs(60),
            tenants: None,
        }
    }

    fn identity(email: Option<&str>, verified: bool) -> Identity {
        Identity {
            issuer: "https://idp.acme.test".into(),
            subject: "u1".into(),
            email: email.map(str::to_owned),
            email_verified: verified,
            given_name: None,
            family_name: None,
            name: None,
            ..Identity::default()
        }
    }

    #[test]
    fn verified_email_in_allowed_domain_passes() {
        let e = check_email(&conn(false), &identity(Some("Ada@ACME.test"), true)).unwrap();
        assert_eq!(e.normalised(), "ada@acme.test");
        assert!(check_email(&conn(false), &identity(Some("ada@eu.acme.test"), true)).is_ok());
    }

    #[test]
    fn refusals() {
        let c = conn(false);
        let code = |email, verified| {
            check_email(&c, &identity(email, verified))
                .unwrap_err()
                .code()
        };
        assert_eq!(code(None, true), "email_missing");
        assert_eq!(code(Some("ada@acme.test"), false), "email_unverified");
        assert_eq!(code(Some("a@b@acme.test"), true), "email_invalid");
        assert_eq!(code(Some("ada@evilacme.test"), true), "domain_not_allowed");
        assert_eq!(
            code(Some("ada@acme.test.evil.com"), true),
            "domain_not_allowed"
        );
    }

    /// SECURITY.md rule 19: a verified `\u{212A}im@` is not Kim, and is refused by default.
    #[test]
    fn non_ascii_local_part_is_refused_unless_the_connection_opts_in() {
        let mut c = conn(false);
        let kelvin = identity(Some("\u{212A}im@acme.test"), true);
        assert_eq!(
            check_email(&c, &kelvin).unwrap_err().code(),
            "email_not_ascii"
        );
        c.allow_non_ascii_email = true;
        let e = check_email(&c, &kelvin).unwrap();
        assert_eq!(
            e.normalised(),
            "\u{212A}im@acme.test",
            "never folded to kim@"
        );
        // A non-ASCII domain is IDNA-normalised, not refused.
        c.allow_non_ascii_email = false;
        let mut idn = conn(false);
        idn.allowed_email_domains = vec![EmailDomain::parse_pattern("exämple.test").unwrap()];
        assert!(check_email(&idn, &identity(Some("ada@EXÄMPLE.test"), true)).is_ok());
    }

    #[test]
    fn google_workspace_connections_require_the_hd_claim() {
        let mut c = conn(false);
        let mut id = identity(Some("ada@acme.test"), true);
        assert!(
            check_hosted_domain(&c, &id).is_ok(),
            "no requirement, no check"
        );
        c.hosted_domain = Some("acme.test".into());
        assert_eq!(
            check_hosted_domain(&c, &id).unwrap_err().code(),
            "hosted_domain_mismatch"
        );
        id.hosted_domain = Some("gmail.com".into());
        assert!(check_hosted_domain(&c, &id).is_err());
        id.hosted_domain = Some("ACME.test".into());
        assert!(check_hosted_domain(&c, &id).is_ok());
    }

    /// Rule 3: trust is per domain, and Entra's `xms_edov` can only narrow it.
    #[test]
    fn trust_is_per_domain_and_xms_edov_decides() {
        let mut c = conn(false);
        c.trusted_email_domains = vec![EmailDomain::parse_pattern("eu.acme.test").unwrap()];
        let unverified = |email: &str, edov: Option<bool>| {
            let mut id = identity(Some(email), false);
            id.email_domain_verified = edov;
            check_email(&c, &id).map(|e| e.normalised())
        };
        assert!(unverified("ada@eu.acme.test", None).is_ok());
        assert_eq!(
            unverified("ada@acme.test", None).unwrap_err().code(),
            "email_unverified",
            "allowed but not trusted"
        );
        assert_eq!(
            unverified("ada@acme.test", Some(true)).unwrap_err().code(),
            "email_unverified",
            "xms_edov true does not stand in for the admin's trust"
        );
        assert!(unverified("ada@eu.acme.test", Some(true)).is_ok());
        assert_eq!(
            unverified("ada@eu.acme.test", Some(false))
                .unwrap_err()
                .code(),
            "email_unverified",
            "xms_edov false overrides the trust setting"
        );
        assert_eq!(
            unverified("ada@other.test", Some(true)).unwrap_err().code(),
            "domain_not_allowed",
            "xms_edov never widens the allowed domains"
        );
        let mut verified = identity(Some("ada@acme.test"), true);
        verified.email_domain_verified = Some(false);
        assert!(
            check_email(&c, &verified).is_ok(),
            "email_verified true stands on its own"
        );
    }

    #[test]
    fn trusted_connection_accepts_unverified_but_still_checks_domain() {
        let c = conn(true);
        assert!(check_email(&c, &identity(Some("ada@acme.test"), false)).is_ok());
        assert_eq!(
            check_email(&c, &identity(Some("ada@other.test"), false))
                .unwrap_err()
                .code(),
            "domain_not_allowed"
        );
    }
}
