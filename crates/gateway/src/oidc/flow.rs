//! The authorization-code flow: `start` builds the authorize URL and the pending login that
//! must come back; `finish` checks the callback, exchanges the code and verifies the ID token.

use std::collections::HashSet;

use openidconnect::core::{
    CoreClient, CoreErrorResponseType, CoreGenderClaim, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AccessToken, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    SignatureVerificationError, TokenResponse,
};
use url::Url;

use super::claims::OtherClaims;
use super::{
    ExchangeFailure, IdTokenProblem, Identity, OidcError, PendingLogin, ProviderMetadata, Registry,
    UserinfoFailure,
};
use crate::clock::Clock;
use crate::config::Connection;
use crate::domain::ChannelId;
use crate::redirect::RelativePath;

/// Builds the authorize URL (code flow, PKCE S256, fresh state and nonce).
pub fn start(
    conn: &Connection,
    metadata: &ProviderMetadata,
    redirect_uri: &Url,
    channel_id: ChannelId,
    redirect_to: &RelativePath,
    clock: &Clock,
) -> (Url, PendingLogin) {
    let client = client(conn, metadata, redirect_uri);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(
            openidconnect::AuthenticationFlow::<openidconnect::core::CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for scope in conn.scopes.iter().filter(|s| *s != "openid") {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let (url, state, nonce) = request.url();
    let pending = PendingLogin {
        state: state.secret().clone(),
        nonce: nonce.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
        connection: conn.id.clone(),
        issuer: conn.issuer.as_str().to_owned(),
        channel_id,
        redirect_to: redirect_to.as_str().to_owned(),
        started_at: clock.now(),
        trial: None,
    };
    (url, pending)
}

/// The callback's query, parsed strictly: a parameter given twice is refused rather than
/// "last wins" (SECURITY.md rule 11).
#[derive(Debug, Default)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
}

impl CallbackParams {
    pub fn parse_strict(query: Option<&str>) -> Result<Self, String> {
        let mut out = CallbackParams::default();
        let mut seen = HashSet::new();
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let slot = match k.as_ref() {
                "code" => &mut out.code,
                "state" => &mut out.state,
                "iss" => &mut out.iss,
                "error" => &mut out.error,
                _ => continue,
            };
            if !seen.insert(k.to_string()) {
                return Err(format!("parameter {k} given more than once"));
            }
            *slot = Some(v.into_owned());
        }
        Ok(out)
    }
}

/// Checks the authorization response against the pending login, exchanges the code and
/// verifies the ID token. The caller has already matched `state` to `pending`.
/// `groups_needed`: the caller decides with the user's groups (group rules, admin groups),
/// so they are fetched from userinfo when the ID token does not carry the groups claim.
pub async fn finish(
    registry: &Registry,
    conn: &Connection,
    pending: &PendingLogin,
    params: CallbackParams,
    redirect_uri: &Url,
    clock: &Clock,
    groups_needed: bool,
) -> Result<Identity, OidcError> {
    let metadata = registry.metadata(conn).await?;
    // RFC 9207: when the IdP says it sends `iss`, require it and require it to be ours.
    let iss_advertised = metadata
        .additional_metadata()
        .authorization_response_iss_parameter_supported
        .unwrap_or(false);
    // A multi-tenant IdP answers with the issuer of the user's tenant, which must be an
    // allowed one (and, below, the ID token's).
    let expected_iss = |iss: &str| match &conn.tenants {
        Some(tenants) => tenants.allows_issuer(iss),
        None => iss == metadata.issuer().as_str(),
    };
    match &params.iss {
        Some(iss) if !expected_iss(iss) => {
            return Err(OidcError::IssuerMismatch {
                got: Some(iss.clone()),
            });
        }
        None if iss_advertised => return Err(OidcError::IssuerMismatch { got: None }),
        _ => {}
    }
    if let Some(error) = params.error {
        // Only the code is kept: error_description is the IdP's free text (rule 16).
        let error = if error.len() <= 64 && error.chars().all(|c| c.is_ascii_graphic()) {
            error
        } else {
            "invalid_error_code".into()
        };
        return Err(OidcError::ProviderError { error });
    }
    let code = params.code.ok_or(ExchangeFailure::NoCode)?;

    let client = client(conn, &metadata, redirect_uri);
    let response = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(ExchangeFailure::Configuration)?
        .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
        .request_async(registry.http())
        .await
        .map_err(classify_exchange_error)?;
    let id_token = response.id_token().ok_or(OidcError::NoIdToken)?;
    let nonce = Nonce::new(pending.nonce.clone());

    // The token as received, serialized once: the signature fast path and the extra
    // claims both read it.
    let compact = id_token.to_string();
    let claims = match verify(
        conn,
        &client,
        metadata.jwks().keys(),
        (id_token, &compact),
        &nonce,
        clock,
    ) {
        Err(OidcError::IdToken {
            reason: "unknown_kid",
            ..
        }) => {
            // The code exchange succeeded, so this token really came from the IdP's token
            // endpoint: a new signing key is the likely cause. Refetch once, throttled.
            let refreshed = registry
                .refetch_jwks(conn)
                .await?
                .ok_or(OidcError::IdToken {
                    reason: "unknown_kid",
                    problem: IdTokenProblem::RefetchThrottled,
                })?;
            let client = self::client(conn, &refreshed, redirect_uri);
            verify(
                conn,
                &client,
                refreshed.jwks().keys(),
                (id_token, &compact),
                &nonce,
                clock,
            )?
        }
        other => other?,
    };

    let extra = super::claims::from_id_token(&compact, conn);
    if let Some(tenants) = &conn.tenants {
        check_tenant(
            tenants,
            claims.issuer().as_str(),
            extra.tenant_id.as_deref(),
        )?;
        if let Some(iss) = &params.iss
            && iss != claims.issuer().as_str()
        {
            return Err(OidcError::IssuerMismatch {
                got: Some(iss.clone()),
            });
        }
    }
    let mut identity = Identity {
        issuer: claims.issuer().to_string(),
        subject: claims.subject().to_string(),
        email: claims.email().map(|e| e.to_string()),
        email_verified: claims.email_verified().unwrap_or(false),
        given_name: localized(claims.given_name()),
        family_name: localized(claims.family_name()),
        name: localized(claims.name()),
        groups: extra.groups.clone().unwrap_or_default(),
        company: extra.company.clone(),
        hosted_domain: extra.hosted_domain.clone(),
        email_domain_verified: extra.xms_edov,
    };
    // Userinfo fills what the ID token lacked: the email (conformant IdPs put it only
    // there) and the groups or company claim the connection maps, when the ID token does
    // not carry them at all (Okta's and Keycloak's defaults, for example).
    let wants_groups = extra.groups.is_none() && groups_needed;
    let wants_company = extra.company.is_none() && conn.company_claim.is_some();
    if (identity.email.is_none() || wants_groups || wants_company)
        && metadata.userinfo_endpoint().is_some()
    {
        let userinfo =
            fetch_userinfo(registry, &client, response.access_token(), &identity).await?;
        merge_userinfo(&mut identity, &userinfo, conn, &extra);
    }
    Ok(identity)
}

/// A userinfo answer with every claim kept, so the connection's groups and company claims
/// can be read from it.
type UserInfo = openidconnect::UserInfoClaims<OtherClaims, CoreGenderClaim>;

/// The relying-party client as built from discovery: authorize URL set, token and
/// userinfo endpoints as the metadata has them.
type RpClient = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

fn client(conn: &Connection, metadata: &ProviderMetadata, redirect_uri: &Url) -> RpClient {
    CoreClient::from_provider_metadata(
        metadata.clone(),
        ClientId::new(conn.client_id.clone()),
        Some(ClientSecret::new(conn.client_secret.expose().to_owned())),
    )
    .set_redirect_uri(RedirectUrl::from_url(redirect_uri.clone()))
}

type IdTokenClaims = openidconnect::core::CoreIdTokenClaims;

/// Full ID-token validation (SECURITY.md rule 9): signature with an allow-listed alg, `iss`
/// exact, `aud` contains us and nothing untrusted, `azp` if present, `exp` and `iat` with
/// the connection's leeway, `nonce`. `sub` presence is enforced by the claims type.
fn verify(
    conn: &Connection,
    client: &RpClient,
    keys: &[openidconnect::core::CoreJsonWebKey],
    (id_token, compact): (&openidconnect::core::CoreIdToken, &str),
    nonce: &Nonce,
    clock: &Clock,
) -> Result<IdTokenClaims, OidcError> {
    let algs: Vec<CoreJwsSigningAlgorithm> = conn
        .id_token_algs
        .iter()
        .filter_map(|a| serde_plain_alg(a))
        .collect();
    let now = clock.now();
    let leeway = conn.clock_leeway.as_secs() as i64;
    let exp_now = chrono::DateTime::from_timestamp(now - leeway, 0).unwrap_or_default();
    let iat_limit = now + leeway;
    // A signature `ring` has verified is not verified again by the crate (the costly part
    // of a sign-in); anything else goes through the crate's check as before.
    let fast = super::rsa_fast::verified(compact, keys, &algs);
    let mut verifier = client.id_token_verifier();
    if fast {
        verifier = verifier.insecure_disable_signature_check();
    }
    let verifier = verifier
        .set_allowed_algs(algs)
        // A multi-tenant issuer is a template: `check_tenant` checks `iss` instead.
        .require_issuer_match(conn.tenants.is_none())
        .set_time_fn(move || exp_now)
        .set_issue_time_verifier_fn(move |iat| {
            if iat.timestamp() > iat_limit {
                Err(format!("iat {} is in the future", iat.timestamp()))
            } else {
                Ok(())
            }
        });
    let claims = id_token
        .claims(&verifier, nonce)
        .map_err(classify_claims_error)?
        .clone();
    if let Some(azp) = claims.authorized_party()
        && azp.as_str() != conn.client_id
    {
        return Err(OidcError::IdToken {
            reason: "azp_mismatch",
            problem: IdTokenProblem::ForeignAuthorizedParty(azp.as_str().to_owned()),
        });
    }
    if claims.subject().is_empty() {
        return Err(OidcError::IdToken {
            reason: "sub_missing",
            problem: IdTokenProblem::EmptySubject,
        });
    }
    Ok(claims)
}

/// Entra multi-tenant (SECURITY.md rule 9): the token names its tenant (`tid`), the tenant
/// is on the allow-list, and `iss` is exactly that tenant's issuer, so a token of one
/// tenant cannot pass as another's.
fn check_tenant(
    tenants: &crate::config::MultiTenant,
    iss: &str,
    tid: Option<&str>,
) -> Result<(), OidcError> {
    let Some(tid) = tid else {
        return Err(OidcError::IdToken {
            reason: "tenant_missing",
            problem: IdTokenProblem::NoTenant,
        });
    };
    if !tenants.allows(tid) {
        return Err(OidcError::IdToken {
            reason: "tenant_not_allowed",
            problem: IdTokenProblem::TenantNotAllowed(tid.chars().take(64).collect()),
        });
    }
    if iss != tenants.issuer_of(tid) {
        return Err(OidcError::IdToken {
            reason: "iss_mismatch",
            problem: IdTokenProblem::TenantIssuerMismatch(iss.chars().take(200).collect()),
        });
    }
    Ok(())
}

fn serde_plain_alg(alg: &str) -> Option<CoreJwsSigningAlgorithm> {
    serde_json::from_value(serde_json::Value::String(alg.to_owned())).ok()
}

/// Maps the crate's verification errors to stable reason codes for logs and tests.
fn classify_claims_error(e: ClaimsVerificationError) -> OidcError {
    let reason = match &e {
        ClaimsVerificationError::Expired(m) if m.contains("iat") => "iat_in_future",
        ClaimsVerificationError::Expired(_) => "expired",
        ClaimsVerificationError::InvalidAudience(_) => "aud_mismatch",
        ClaimsVerificationError::InvalidIssuer(_) => "iss_mismatch",
        ClaimsVerificationError::InvalidNonce(_) => "nonce_mismatch",
        ClaimsVerificationError::InvalidSubject(_) => "sub_missing",
        ClaimsVerificationError::SignatureVerification(s) => match s {
            SignatureVerificationError::NoMatchingKey => "unknown_kid",
            SignatureVerificationError::AmbiguousKeyId(_) => "ambiguous_key",
            SignatureVerificationError::DisallowedAlg(_)
            | SignatureVerificationError::UnsupportedAlg(_) => "alg_not_allowed",
            SignatureVerificationError::NoSignature => "unsigned",
            _ => "bad_signature",
        },
        _ => "id_token_invalid",
    };
    OidcError::IdToken {
        reason,
        problem: IdTokenProblem::Claims(e),
    }
}

type ExchangeError = openidconnect::RequestTokenError<
    openidconnect::HttpClientError<openidconnect::reqwest::Error>,
    openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
>;

fn classify_exchange_error(e: ExchangeError) -> OidcError {
    match e {
        // The token response did not parse. The crate parses the ID token's claims as part
        // of the response, so a token without `sub`, `iat` or `exp` (or `alg: none`, which
        // the JOSE header type rejects) ends here: it is an ID-token rejection, not an outage.
        openidconnect::RequestTokenError::Parse(err, body) => {
            let has_id_token = serde_json::from_slice::<serde_json::Value>(&body)
                .is_ok_and(|v| v.get("id_token").is_some_and(|t| t.is_string()));
            let err = err.into_inner();
            if has_id_token {
                OidcError::IdToken {
                    reason: "id_token_malformed",
                    problem: IdTokenProblem::Malformed(err),
                }
            } else {
                ExchangeFailure::Unparsable(err).into()
            }
        }
        // An OAuth error answer (invalid_grant: code reused or expired, PKCE mismatch): the
        // IdP is up and said no; trying again from the store is the remedy.
        openidconnect::RequestTokenError::ServerResponse(r) => match r.error() {
            CoreErrorResponseType::Extension(e)
                if matches!(e.as_str(), "server_error" | "temporarily_unavailable") =>
            {
                ExchangeFailure::Unavailable(r.error().clone()).into()
            }
            other => OidcError::CodeRejected(other.to_string()),
        },
        openidconnect::RequestTokenError::Request(e) => ExchangeFailure::Request(e).into(),
        openidconnect::RequestTokenError::Other(m) => ExchangeFailure::Other(m).into(),
    }
}

async fn fetch_userinfo(
    registry: &Registry,
    client: &RpClient,
    access_token: &AccessToken,
    identity: &Identity,
) -> Result<UserInfo, OidcError> {
    // Passing the expected `sub` makes the crate refuse a userinfo answer about someone else
    // (`rp-userinfo-bad-sub-claim`).
    let subject = openidconnect::SubjectIdentifier::new(identity.subject.clone());
    let request = client
        .user_info(access_token.clone(), Some(subject))
        .map_err(UserinfoFailure::Configuration)?;
    request
        .request_async::<OtherClaims, _, CoreGenderClaim>(registry.http())
        .await
        .map_err(|e| match e {
            openidconnect::UserInfoError::ClaimsVerification(
                ClaimsVerificationError::InvalidSubject(_),
            ) => OidcError::UserinfoSubMismatch,
            other => UserinfoFailure::from(other).into(),
        })
}

/// Userinfo fills what the ID token lacked. `email_verified` (and Entra's `xms_edov`) are
/// taken only together with the email from the same response (SECURITY.md rule 2). Groups
/// and company claims the ID token carried, even empty, are kept: the signed token wins.
fn merge_userinfo(
    identity: &mut Identity,
    info: &UserInfo,
    conn: &Connection,
    from_id_token: &super::claims::ExtraClaims,
) {
    let extra = super::claims::from_claims(&info.additional_claims().0, conn);
    if let Some(email) = info.email() {
        identity.email = Some(email.to_string());
        identity.email_verified = info.email_verified().unwrap_or(false);
        identity.email_domain_verified = extra.xms_edov;
    }
    if from_id_token.groups.is_none() {
        identity.groups = extra.groups.unwrap_or_default();
    }
    if from_id_token.company.is_none() {
        identity.company = extra.company;
    }
    identity.given_name = identity
        .given_name
        .take()
        .or_else(|| localized(info.given_name()));
    identity.family_name = identity
        .family_name
        .take()
        .or_else(|| localized(info.family_name()));
    identity.name = identity.name.take().or_else(|| localized(info.name()));
}

fn localized<T: std::ops::Deref<Target = String>>(
    claim: Option<&openidconnect::LocalizedClaim<T>>,
) -> Option<String> {
    claim
        .and_then(|c| c.get(None))
        .map(|v| v.to_string())
        .filter(|s| !s.trim().is_empty())
}
