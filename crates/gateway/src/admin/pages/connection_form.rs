//! The connection form's values as typed, read from and into the settings of a
//! `[[connections]]` entry.

use crate::admin::input::Fields;
use crate::config::{Connection, RawConnection};

/// The connection form's values, as typed (so a refused form comes back as it was sent).
#[derive(Default)]
pub struct ConnectionForm {
    pub id: String,
    pub display_name: String,
    pub issuer: String,
    pub client_id: String,
    pub scopes: String,
    pub domains: String,
    /// Comma-separated: allowed domains whose unverified emails are trusted.
    pub trusted_domains: String,
    pub create_customers: bool,
    /// `LinkExisting` by name.
    pub link_existing: String,
    pub allow_non_ascii_email: bool,
    pub sync_profile: bool,
    /// Channel ids, comma-separated; empty = all.
    pub channels: String,
    pub customer_group_id: String,
    pub groups_claim: String,
    /// One rule a line: `IdP group = customer group id`.
    pub group_rules: String,
    pub company_claim: String,
    pub hosted_domain: String,
    pub channel_access: String,
    pub id_token_algs: String,
    pub clock_leeway_secs: String,
    /// Entra multi-tenant: allowed tenant ids, comma- or space-separated.
    pub allowed_tenants: String,
}

impl ConnectionForm {
    pub fn defaults() -> Self {
        ConnectionForm {
            scopes: "openid email profile".into(),
            groups_claim: "groups".into(),
            create_customers: true,
            link_existing: crate::config::LinkExisting::default().as_str().into(),
            channel_access: "channel".into(),
            id_token_algs: "RS256".into(),
            clock_leeway_secs: "60".into(),
            ..Default::default()
        }
    }

    pub fn from_fields(f: &Fields) -> Self {
        let get = |k: &str| f.get(k).cloned().unwrap_or_default();
        ConnectionForm {
            id: get("id"),
            display_name: get("display_name"),
            issuer: get("issuer"),
            client_id: get("client_id"),
            scopes: get("scopes"),
            domains: get("allowed_email_domains"),
            trusted_domains: get("trusted_email_domains"),
            // Unchecked boxes are not sent at all.
            create_customers: f.contains_key("create_customers"),
            link_existing: get("link_existing"),
            allow_non_ascii_email: f.contains_key("allow_non_ascii_email"),
            sync_profile: f.contains_key("sync_profile"),
            channels: get("channels"),
            customer_group_id: get("customer_group_id"),
            groups_claim: get("groups_claim"),
            group_rules: get("group_rules"),
            company_claim: get("company_claim"),
            hosted_domain: get("hosted_domain"),
            channel_access: get("channel_access"),
            id_token_algs: get("id_token_algs"),
            clock_leeway_secs: get("clock_leeway_secs"),
            allowed_tenants: get("allowed_tenants"),
        }
    }

    pub fn from_connection(c: &Connection) -> Self {
        let raw = crate::settings::connections::to_raw(c);
        ConnectionForm {
            id: c.id.to_string(),
            display_name: c.display_name.clone(),
            issuer: c.issuer.as_str().to_owned(),
            client_id: c.client_id.clone(),
            scopes: c.scopes.join(" "),
            domains: raw.allowed_email_domains.join(", "),
            trusted_domains: raw.trusted_email_domains.join(", "),
            create_customers: c.create_customers,
            link_existing: c.link_existing.as_str().into(),
            allow_non_ascii_email: c.allow_non_ascii_email,
            sync_profile: c.sync_profile,
            channels: super::comma_list(&c.channels),
            customer_group_id: c
                .customer_group_id
                .map(|g| g.to_string())
                .unwrap_or_default(),
            groups_claim: c.groups_claim.clone(),
            group_rules: c
                .group_rules
                .iter()
                .map(|r| format!("{} = {}", r.group, r.customer_group_id))
                .collect::<Vec<_>>()
                .join("\n"),
            company_claim: c.company_claim.clone().unwrap_or_default(),
            hosted_domain: c.hosted_domain.clone().unwrap_or_default(),
            channel_access: raw.channel_access.unwrap_or_default(),
            id_token_algs: c.id_token_algs.join(" "),
            clock_leeway_secs: c.clock_leeway.as_secs().to_string(),
            allowed_tenants: raw.allowed_tenants.join(", "),
        }
    }

    /// The settings the validator reads; numbers that do not parse are reported here.
    pub fn to_raw(&self) -> Result<RawConnection, Vec<String>> {
        let list = |s: &str| -> Vec<String> {
            s.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let errors = std::cell::RefCell::new(Vec::new());
        let number = |name: &str, s: &str| -> Option<i64> {
            let s = s.trim();
            if s.is_empty() {
                return None;
            }
            s.parse()
                .map_err(|_| {
                    errors
                        .borrow_mut()
                        .push(format!("{name}: {s:?} is not a whole number"))
                })
                .ok()
        };
        let customer_group_id = number("customer_group_id", &self.customer_group_id);
        let channels: Vec<i64> = list(&self.channels)
            .iter()
            .filter_map(|c| number("channels", c))
            .collect();
        let mut group_rules = Vec::new();
        for (n, line) in self
            .group_rules
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            match line.rsplit_once('=') {
                Some((group, id)) => {
                    if let Some(id) = number(&format!("group_rules line {}", n + 1), id) {
                        group_rules.push(crate::config::RawGroupRule {
                            group: group.trim().to_owned(),
                            customer_group_id: id,
                        });
                    }
                }
                None => errors.borrow_mut().push(format!(
                    "group_rules line {}: write \"IdP group = customer group id\"",
                    n + 1
                )),
            }
        }
        let leeway = number("clock_leeway_secs", &self.clock_leeway_secs);
        let nonempty = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let raw = RawConnection {
            id: nonempty(&self.id),
            display_name: nonempty(&self.display_name),
            issuer: nonempty(&self.issuer),
            client_id: nonempty(&self.client_id),
            client_secret: None,
            client_secret_file: None,
            scopes: Some(list(&self.scopes)).filter(|l| !l.is_empty()),
            allowed_email_domains: list(&self.domains),
            trust_unverified_email: false,
            trusted_email_domains: list(&self.trusted_domains),
            customer_group_id,
            groups_claim: nonempty(&self.groups_claim),
            group_rules,
            company_claim: nonempty(&self.company_claim),
            hosted_domain: nonempty(&self.hosted_domain),
            sync_profile: self.sync_profile,
            channels,
            create_customers: Some(self.create_customers),
            link_existing: nonempty(&self.link_existing),
            allow_non_ascii_email: self.allow_non_ascii_email,
            channel_access: nonempty(&self.channel_access),
            id_token_algs: Some(list(&self.id_token_algs)).filter(|l| !l.is_empty()),
            clock_leeway_secs: leeway.map(|l| l.max(0) as u64),
            allowed_tenants: list(&self.allowed_tenants),
        };
        let errors = errors.into_inner();
        if errors.is_empty() {
            Ok(raw)
        } else {
            Err(errors)
        }
    }
}
