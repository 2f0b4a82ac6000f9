//! Provider metadata and JWKS, cached per connection with a TTL.
//!
//! The `openidconnect` crate fetches the JWKS once, at discovery. If we kept that copy, a key
//! rotation at the IdP would break every login until restart (kellnr PR #1266). So we keep
//! metadata and keys here, refresh them after a TTL, and refetch the JWKS once, throttled,
//! when a verified code exchange brings an ID token signed with a key we do not know
//! (SECURITY.md rule 10; mod_auth_openidc's forced-refresh throttle).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::JsonWebKeySetUrl;
use openidconnect::core::CoreJsonWebKeySet;
use tokio::sync::Mutex;

use super::{OidcError, ProviderMetadata};
use crate::config::{Connection, is_loopback};
use crate::domain::ConnectionId;

/// How long discovery metadata and keys are trusted before they are fetched again.
pub const METADATA_TTL: Duration = Duration::from_secs(3600);
/// At most one forced JWKS refetch per connection in this interval.
pub const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(30);

pub struct Registry {
    http: reqwest::Client,
    /// One slot per connection, created on first use; each slot has its own lock.
    providers: std::sync::Mutex<HashMap<ConnectionId, Arc<Mutex<Option<Cached>>>>>,
}

struct Cached {
    metadata: Arc<ProviderMetadata>,
    fetched_at: Instant,
    last_forced_jwks: Option<Instant>,
}

impl Registry {
    pub fn new(http: reqwest::Client) -> Self {
        Self {
            http,
            providers: std::sync::Mutex::default(),
        }
    }

    /// Forgets what was cached for a connection (its settings changed).
    pub fn forget(&self, id: &ConnectionId) {
        self.providers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Cached metadata (with keys), discovered on first use and after the TTL.
    pub async fn metadata(&self, conn: &Connection) -> Result<Arc<ProviderMetadata>, OidcError> {
        let slot = self.slot(conn);
        let mut cached = slot.lock().await;
        if let Some(c) = cached
            .as_ref()
            .filter(|c| c.fetched_at.elapsed() < METADATA_TTL)
        {
            return Ok(c.metadata.clone());
        }
        let metadata = Arc::new(discover(&self.http, conn).await?);
        *cached = Some(Cached {
            metadata: metadata.clone(),
            fetched_at: Instant::now(),
            last_forced_jwks: cached.as_ref().and_then(|c| c.last_forced_jwks),
        });
        Ok(metadata)
    }

    /// Refetches the JWKS because an ID token named a key we do not have. Returns the new
    /// metadata, or `None` when a refetch happened too recently (the caller then fails the
    /// login instead of letting a bogus `kid` hammer the IdP).
    pub async fn refetch_jwks(
        &self,
        conn: &Connection,
    ) -> Result<Option<Arc<ProviderMetadata>>, OidcError> {
        let slot = self.slot(conn);
        let mut cached = slot.lock().await;
        let Some(current) = cached.as_mut() else {
            return Ok(None);
        };
        if current
            .last_forced_jwks
            .is_some_and(|t| t.elapsed() < JWKS_REFETCH_INTERVAL)
        {
            tracing::warn!(connection = %conn.id, "JWKS refetch throttled");
            return Ok(None);
        }
        current.last_forced_jwks = Some(Instant::now());
        let jwks = fetch_jwks(&self.http, current.metadata.jwks_uri()).await?;
        let updated = Arc::new((*current.metadata).clone().set_jwks(jwks));
        current.metadata = updated.clone();
        tracing::info!(connection = %conn.id, "JWKS refetched for an unknown key id");
        Ok(Some(updated))
    }

    fn slot(&self, conn: &Connection) -> Arc<Mutex<Option<Cached>>> {
        self.providers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(conn.id.clone())
            .or_default()
            .clone()
    }
}

/// Discovery, with the checks RP certification asks for: the document's `issuer` must equal
/// the configured issuer exactly (`rp-discovery-issuer-not-matching-config`, done by the
/// crate), endpoints must be https unless the IdP is on loopback, PKCE S256 must be offered
/// when the IdP lists its PKCE methods at all.
pub async fn discover(
    http: &reqwest::Client,
    conn: &Connection,
) -> Result<ProviderMetadata, OidcError> {
    let issuer = conn.issuer.clone();
    let metadata = ProviderMetadata::discover_async(issuer, http)
        .await
        .map_err(|e| match e {
            openidconnect::DiscoveryError::Validation(msg) => OidcError::Metadata(msg),
            other => OidcError::Discovery(error_chain(&other)),
        })?;
    check_metadata(conn, &metadata)?;
    Ok(metadata)
}

fn check_metadata(conn: &Connection, m: &ProviderMetadata) -> Result<(), OidcError> {
    let loopback_ok = is_loopback(conn.issuer.url());
    let endpoints = [
        Some(m.authorization_endpoint().url()),
        m.token_endpoint().map(|u| u.url()),
        Some(m.jwks_uri().url()),
        m.userinfo_endpoint().map(|u| u.url()),
    ];
    for url in endpoints.into_iter().flatten() {
        if url.scheme() != "https" && !(loopback_ok && url.scheme() == "http" && is_loopback(url)) {
            return Err(OidcError::Metadata(format!(
                "endpoint {} is not https",
                url.as_str()
            )));
        }
        if url.host_str() != conn.issuer.url().host_str() {
            // Legitimate for some IdPs (CDN-hosted keys), so a warning rather than a refusal.
            tracing::warn!(connection = %conn.id, host = url.host_str().unwrap_or(""), "IdP endpoint on another host than the issuer");
        }
    }
    if m.token_endpoint().is_none() {
        return Err(OidcError::Metadata("no token_endpoint".into()));
    }
    if let Some(methods) = &m.additional_metadata().code_challenge_methods_supported
        && !methods.iter().any(|x| x == "S256")
    {
        return Err(OidcError::Metadata(
            "the IdP does not support PKCE S256".into(),
        ));
    }
    Ok(())
}

async fn fetch_jwks(
    http: &reqwest::Client,
    url: &JsonWebKeySetUrl,
) -> Result<CoreJsonWebKeySet, OidcError> {
    CoreJsonWebKeySet::fetch_async(url, http)
        .await
        .map_err(|e| OidcError::Discovery(format!("JWKS fetch failed: {}", error_chain(&e))))
}

/// The whole `source()` chain on one line: the crate's top-level messages are terse.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
