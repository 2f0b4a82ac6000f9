//! One `[[connections]]` entry, from the file or the console, validated the same way.

use std::time::Duration;

use openidconnect::IssuerUrl;

use super::*;

pub fn validate_connection(
    index: usize,
    raw: RawConnection,
    errors: &mut Vec<ConfigError>,
) -> Option<Connection> {
    let key = |field: &str| format!("connections[{index}].{field}");
    let id = match raw.id.as_deref().map(ConnectionId::parse) {
        None => {
            errors.push(invalid(
                key("id"),
                "required: a short name such as \"acme\" (letters, digits, '-')",
            ));
            None
        }
        Some(Err(message)) => {
            errors.push(invalid(key("id"), message));
            None
        }
        Some(Ok(id)) => Some(id),
    };
    let issuer = match raw.issuer.as_deref() {
        None => {
            errors.push(invalid(key("issuer"), "required: the IdP's issuer URL"));
            None
        }
        Some(s) => parse_web_url(&key("issuer"), s, errors)
            .and_then(|_| IssuerUrl::new(s.trim().to_owned()).ok()),
    };
    let client_id = raw.client_id.filter(|s| !s.is_empty());
    if client_id.is_none() {
        errors.push(invalid(
            key("client_id"),
            "required: the client id the IdP issued for this gateway",
        ));
    }
    let secret_env = connection_secret_env(raw.id.as_deref().unwrap_or("ID"));
    let client_secret = secret_value(
        &key("client_secret"),
        raw.client_secret,
        raw.client_secret_file,
        errors,
    );
    if client_secret.is_none()
        && !errors.iter().any(
            |e| matches!(e, ConfigError::SecretFile { key: k, .. } if *k == key("client_secret")),
        )
    {
        errors.push(ConfigError::Missing {
            key: key("client_secret"),
            env: secret_env,
        });
    }
    let scopes = raw
        .scopes
        .unwrap_or_else(|| vec!["openid".into(), "email".into(), "profile".into()]);
    if !scopes.iter().any(|s| s == "openid") {
        errors.push(invalid(key("scopes"), "must include \"openid\""));
    }
    if raw.allowed_email_domains.is_empty() {
        errors.push(invalid(
            key("allowed_email_domains"),
            "list the email domains this IdP is authoritative for, e.g. [\"example.com\"]",
        ));
    }
    let mut domains = Vec::new();
    for d in &raw.allowed_email_domains {
        match EmailDomain::parse_pattern(d) {
            Ok(d) => domains.push(d),
            Err(message) => errors.push(invalid(key("allowed_email_domains"), message)),
        }
    }
    let channel_access = match raw.channel_access.as_deref().unwrap_or("channel") {
        "channel" => Some(ChannelAccess::Channel),
        "global" => Some(ChannelAccess::Global),
        other => {
            errors.push(invalid(
                key("channel_access"),
                format!("expected \"channel\" or \"global\" (got {other:?})"),
            ));
            None
        }
    };
    let link_existing = match raw.link_existing.as_deref() {
        None => Some(LinkExisting::default()),
        Some(v) => LinkExisting::parse(v).or_else(|| {
            errors.push(invalid(
                key("link_existing"),
                format!("expected \"reset_password\", \"refuse\" or \"link\" (got {v:?})"),
            ));
            None
        }),
    };
    let algs = raw.id_token_algs.unwrap_or_else(|| vec!["RS256".into()]);
    if algs.is_empty() {
        errors.push(invalid(
            key("id_token_algs"),
            "must list at least one algorithm",
        ));
    }
    for alg in &algs {
        if !SUPPORTED_ID_TOKEN_ALGS.contains(&alg.as_str()) {
            errors.push(invalid(
                key("id_token_algs"),
                format!(
                    "{alg:?} is not allowed; choose from {}",
                    SUPPORTED_ID_TOKEN_ALGS.join(", ")
                ),
            ));
        }
    }
    let leeway = raw.clock_leeway_secs.unwrap_or(60);
    if leeway > 300 {
        errors.push(invalid(key("clock_leeway_secs"), "at most 300 seconds"));
    }
    if let Some(group) = raw.customer_group_id
        && group < 0
    {
        errors.push(invalid(
            key("customer_group_id"),
            "must be 0 or a customer group id",
        ));
    }
    for (i, rule) in raw.group_rules.iter().enumerate() {
        if rule.group.trim().is_empty() {
            errors.push(invalid(
                format!("{}[{i}].group", key("group_rules")),
                "is empty",
            ));
        }
        if rule.customer_group_id < 0 {
            errors.push(invalid(
                format!("{}[{i}].customer_group_id", key("group_rules")),
                "must be 0 or a customer group id",
            ));
        }
    }
    let claim_name = |name: &str, value: &Option<String>, errors: &mut Vec<ConfigError>| {
        if let Some(v) = value
            && (v.is_empty()
                || v.len() > 100
                || v.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            errors.push(invalid(
                key(name),
                "must be a claim name such as \"groups\"",
            ));
        }
    };
    claim_name("groups_claim", &raw.groups_claim, errors);
    claim_name("company_claim", &raw.company_claim, errors);
    let trusted_email_domains = trusted_domains(
        &key("trusted_email_domains"),
        &raw.trusted_email_domains,
        raw.trust_unverified_email,
        &domains,
        errors,
    );
    if !trusted_email_domains.is_empty() {
        tracing::warn!(
            connection = raw.id.as_deref().unwrap_or("?"),
            domains = %trusted_email_domains.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
            "unverified emails of these domains can sign in to matching store accounts"
        );
    }
    let tenants = issuer
        .as_ref()
        .and_then(|i| multi_tenant(&key("allowed_tenants"), i, &raw.allowed_tenants, errors));
    let id = id?;
    Some(Connection {
        display_name: raw.display_name.unwrap_or_else(|| id.as_str().to_owned()),
        id,
        issuer: issuer?,
        client_id: client_id?,
        client_secret: client_secret?,
        scopes,
        allowed_email_domains: domains,
        trusted_email_domains,
        customer_group_id: raw.customer_group_id,
        groups_claim: raw.groups_claim.unwrap_or_else(|| "groups".into()),
        group_rules: raw
            .group_rules
            .into_iter()
            .map(|r| GroupRule {
                group: r.group.trim().to_owned(),
                customer_group_id: r.customer_group_id,
            })
            .collect(),
        company_claim: raw.company_claim,
        hosted_domain: raw.hosted_domain.map(|d| d.trim().to_lowercase()),
        sync_profile: raw.sync_profile,
        channels: raw.channels,
        create_customers: raw.create_customers.unwrap_or(true),
        link_existing: link_existing?,
        allow_non_ascii_email: raw.allow_non_ascii_email,
        channel_access: channel_access?,
        id_token_algs: algs,
        clock_leeway: Duration::from_secs(leeway.min(300)),
        tenants,
    })
}

/// Entra's multi-tenant endpoints: `https://login.microsoftonline.com/organizations/v2.0`
/// (work accounts of any tenant) and `/common/v2.0` (also personal accounts).
const MULTI_TENANT_SEGMENTS: &[&str] = &["organizations", "common"];

/// SECURITY.md rule 9: a multi-tenant issuer accepts tokens from every tenant of the world
/// unless the tenants are listed, so listing them is required; a list without such an
/// issuer would be ignored, so it is refused rather than trusted to mean something.
fn multi_tenant(
    key: &str,
    issuer: &IssuerUrl,
    listed: &[String],
    errors: &mut Vec<ConfigError>,
) -> Option<MultiTenant> {
    let template = tenant_template(issuer.url());
    let Some(issuer_template) = template else {
        if !listed.is_empty() {
            errors.push(invalid(
                key,
                "only for a Microsoft Entra multi-tenant issuer (…/organizations/v2.0 or …/common/v2.0); a single-tenant issuer already names its tenant",
            ));
        }
        return None;
    };
    if listed.is_empty() {
        errors.push(invalid(
            key,
            "required with a multi-tenant issuer (…/organizations or …/common): list the tenant ids (tid) whose users may sign in, or use the tenant's own issuer https://login.microsoftonline.com/<tenant-id>/v2.0",
        ));
        return None;
    }
    let mut allowed = Vec::new();
    for t in listed {
        match uuid::Uuid::try_parse(t.trim()) {
            Ok(u) => allowed.push(u.hyphenated().to_string()),
            Err(_) => errors.push(invalid(
                key,
                format!(
                    "{t:?} is not a tenant id (a GUID such as 72f988bf-86f1-41af-91ab-2d7cd011db47)"
                ),
            )),
        }
    }
    Some(MultiTenant {
        issuer_template,
        allowed,
    })
}

/// `https://host/organizations/v2.0` -> `https://host/{tenantid}/v2.0`; `None` when the
/// issuer's first path segment is not a multi-tenant one.
fn tenant_template(issuer: &url::Url) -> Option<String> {
    let mut segments = issuer.path_segments()?;
    let first = segments.next()?;
    if !MULTI_TENANT_SEGMENTS.contains(&first.to_ascii_lowercase().as_str()) {
        return None;
    }
    let rest: Vec<&str> = segments.collect();
    let origin = issuer.origin().ascii_serialization();
    let mut template = format!("{origin}/{TENANT_PLACEHOLDER}");
    for segment in rest {
        template.push('/');
        template.push_str(segment);
    }
    Some(template)
}

/// SECURITY.md rule 4: one email domain belongs to at most one connection.
/// `trusted_email_domains`, each within the allowed domains; `trust_unverified_email`
/// alone trusts every allowed domain.
fn trusted_domains(
    key: &str,
    listed: &[String],
    trust_all: bool,
    allowed: &[EmailDomain],
    errors: &mut Vec<ConfigError>,
) -> Vec<EmailDomain> {
    if listed.is_empty() {
        return if trust_all {
            allowed.to_vec()
        } else {
            Vec::new()
        };
    }
    let mut out = Vec::new();
    for d in listed {
        match EmailDomain::parse_pattern(d) {
            Ok(d) if allowed.iter().any(|a| a.covers(&d)) => out.push(d),
            Ok(d) => errors.push(invalid(
                key,
                format!("{d} is not one of this connection's allowed_email_domains"),
            )),
            Err(message) => errors.push(invalid(key, message)),
        }
    }
    out
}

pub(super) fn check_unique_connections(connections: &[Connection], errors: &mut Vec<ConfigError>) {
    for (i, a) in connections.iter().enumerate() {
        for b in &connections[i + 1..] {
            if a.id == b.id {
                errors.push(invalid(
                    "connections",
                    format!("connection id {:?} is used twice", a.id.as_str()),
                ));
            }
            for da in &a.allowed_email_domains {
                for db in &b.allowed_email_domains {
                    if da.overlaps(db) {
                        errors.push(ConfigError::DomainClaimedTwice {
                            domain: da.to_string(),
                            first: a.id.to_string(),
                            second: b.id.to_string(),
                        });
                    }
                }
            }
        }
    }
}

/// A valid connection for unit tests: `id` at `issuer`, client `c` with secret `s`, for
/// emails of `<id>.test`, every other setting its default. A test sets afterwards the
/// fields it is about.
#[cfg(test)]
pub fn test_connection(id: &str, issuer: &str) -> Connection {
    let raw: RawConnection = toml::from_str(&format!(
        "id = \"{id}\"\nissuer = \"{issuer}\"\nclient_id = \"c\"\nclient_secret = \"s\"\nallowed_email_domains = [\"{id}.test\"]"
    ))
    .expect("a test connection parses");
    let mut errors = Vec::new();
    validate_connection(0, raw, &mut errors)
        .unwrap_or_else(|| panic!("a test connection is valid: {errors:?}"))
}
