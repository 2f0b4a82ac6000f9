//! Discovery, in the order SECURITY.md rules 10 and 23 need: fetch the document (capped),
//! check its `issuer` and EVERY endpoint URL it publishes, and only then fetch anything it
//! names (the JWKS).
//!
//! The `openidconnect` crate's `discover_async` fetches the JWKS inside discovery, before a
//! caller can look at `jwks_uri`: a document naming `http://0.0.0.0:…/` or
//! `http://[::ffff:127.0.0.1]:…/` made the gateway call it, and only then was it refused.
//! So the document is fetched here as JSON, checked, and parsed into the crate's type.

use openidconnect::JsonWebKeySetUrl;
use openidconnect::core::CoreJsonWebKeySet;
use serde_json::{Map, Value};
use url::Url;

use super::http::{FetchError, IdpHttp};
use super::{MetadataError, OidcError, ProviderMetadata};
use crate::config::{Connection, check_idp_url, check_idp_url_str};

/// Where `<issuer>/.well-known/openid-configuration` is, built as the crate builds it.
pub fn discovery_url(conn: &Connection) -> Result<Url, OidcError> {
    let url = conn
        .issuer
        .join(".well-known/openid-configuration")
        .map_err(MetadataError::NoDiscoveryUrl)?;
    // The issuer passed the same rules when the connection was validated; checked again
    // because this is the one URL fetched before any other check can run.
    check_idp_url(&url, conn.issuer.url()).map_err(|reason| OidcError::EndpointRefused {
        field: "issuer".into(),
        url: url.to_string(),
        reason,
    })?;
    Ok(url)
}

/// The document's fields that name something the gateway or a browser calls: every
/// `*_endpoint` and `*_uri` (standard and extensions such as `end_session_endpoint`),
/// `check_session_iframe`, and the RFC 8705 `mtls_endpoint_aliases`. Left out: the links
/// meant for people (`service_documentation`, `op_policy_uri`, `op_tos_uri`), which nothing
/// fetches. Values that are not strings are the typed parse's business.
pub fn endpoint_urls(doc: &Map<String, Value>) -> Vec<(String, &str)> {
    const FOR_PEOPLE: [&str; 2] = ["op_policy_uri", "op_tos_uri"];
    let mut out = Vec::new();
    for (key, value) in doc {
        let is_endpoint = key.ends_with("_endpoint")
            || (key.ends_with("_uri") && !FOR_PEOPLE.contains(&key.as_str()))
            || key == "check_session_iframe";
        match value {
            Value::String(s) if is_endpoint => out.push((key.clone(), s.as_str())),
            Value::Object(aliases) if key == "mtls_endpoint_aliases" => {
                for (alias, v) in aliases {
                    if let Value::String(s) = v {
                        out.push((format!("mtls_endpoint_aliases.{alias}"), s.as_str()));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Every endpoint URL of `doc` passes [`check_idp_url`], or the first that does not is the
/// error.
pub fn check_endpoints(conn: &Connection, doc: &Map<String, Value>) -> Result<(), OidcError> {
    for (field, raw) in endpoint_urls(doc) {
        check_idp_url_str(raw, conn.issuer.url()).map_err(|reason| OidcError::EndpointRefused {
            field,
            url: raw.chars().take(200).collect(),
            reason,
        })?;
    }
    Ok(())
}

/// Discovery with the checks RP certification asks for: the document's `issuer` equals the
/// configured issuer exactly (`rp-discovery-issuer-not-matching-config`), every endpoint
/// URL passes [`check_idp_url`] before any is fetched, and PKCE S256 is offered when the
/// IdP lists its PKCE methods at all. Then the JWKS.
pub async fn discover(http: &IdpHttp, conn: &Connection) -> Result<ProviderMetadata, OidcError> {
    let url = discovery_url(conn)?;
    let doc: Value = http
        .get_json(&url, &[])
        .await
        .map_err(|e| fetch_error("discovery document", &url, e))?;
    let Value::Object(doc) = doc else {
        return Err(MetadataError::NotAnObject.into());
    };
    // The issuer first: a document from another IdP is refused as that, whatever it names.
    let published = doc.get("issuer").and_then(Value::as_str).unwrap_or("");
    // Entra's multi-tenant documents publish the templated issuer (`…/{tenantid}/v2.0`).
    if published != conn.published_issuer() {
        return Err(MetadataError::UnexpectedIssuer {
            published: published.chars().take(200).collect(),
            expected: conn.published_issuer().to_owned(),
        }
        .into());
    }
    check_endpoints(conn, &doc)?;
    let metadata: ProviderMetadata =
        serde_json::from_value(Value::Object(doc)).map_err(MetadataError::Unreadable)?;
    check_metadata(conn, &metadata)?;
    let jwks = fetch_jwks(http, metadata.jwks_uri()).await?;
    Ok(metadata.set_jwks(jwks))
}

/// What the typed metadata must offer beyond safe URLs.
fn check_metadata(conn: &Connection, m: &ProviderMetadata) -> Result<(), OidcError> {
    let Some(token) = m.token_endpoint() else {
        return Err(MetadataError::NoTokenEndpoint.into());
    };
    for url in [
        Some(m.authorization_endpoint().url()),
        Some(token.url()),
        Some(m.jwks_uri().url()),
        m.userinfo_endpoint().map(|u| u.url()),
    ]
    .into_iter()
    .flatten()
    {
        if url.host_str() != conn.issuer.url().host_str() {
            // Legitimate for some IdPs (CDN-hosted keys), so a warning rather than a refusal.
            tracing::warn!(connection = %conn.id, host = url.host_str().unwrap_or(""), "IdP endpoint on another host than the issuer");
        }
    }
    if let Some(methods) = &m.additional_metadata().code_challenge_methods_supported
        && !methods.iter().any(|x| x == "S256")
    {
        return Err(MetadataError::NoPkceS256.into());
    }
    Ok(())
}

/// The key set at `url`, which discovery has checked. Capped like every IdP answer.
pub async fn fetch_jwks(
    http: &IdpHttp,
    url: &JsonWebKeySetUrl,
) -> Result<CoreJsonWebKeySet, OidcError> {
    http.get_json(url.url(), &["application/jwk-set+json"])
        .await
        .map_err(|e| fetch_error("JWKS", url.url(), e))
}

fn fetch_error(what: &'static str, url: &Url, e: FetchError) -> OidcError {
    match e {
        FetchError::TooLarge { limit } => OidcError::ResponseTooLarge { what, limit },
        source => OidcError::Discovery {
            what,
            url: url.to_string(),
            source,
        },
    }
}

#[cfg(test)]
#[path = "discovery_tests.rs"]
pub(crate) mod tests;
