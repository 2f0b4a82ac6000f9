//! The ways the dev IdP can misbehave, one at a time ([`DevIdp::set_misbehaviour`]).
//!
//! [`DevIdp::set_misbehaviour`]: super::DevIdp::set_misbehaviour

/// Ways the dev IdP can misbehave; each drives one negative test of SECURITY.md.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Misbehaviour {
    #[default]
    None,
    // ID token tampering (SECURITY.md negative tests):
    /// RS256 with signature bytes altered.
    BadSignature,
    /// Header alg "none", empty signature.
    AlgNone,
    /// alg HS256, HMAC keyed with the RSA public key PEM bytes (alg confusion).
    Hs256WithPublicKey,
    /// iss = `https://wrong-issuer.example`.
    WrongIssuer,
    MissingIssuer,
    /// aud = "someone-else" (azp stays the client id).
    WrongAudience,
    /// No aud (azp stays the client id).
    MissingAudience,
    /// aud [client_id, "someone-else"], no azp.
    ExtraAudienceNoAzp,
    /// azp present and != client_id.
    WrongAzp,
    MissingSub,
    MissingIat,
    /// iat = now + 10 min (exp moved along).
    IatInFuture,
    /// exp = now - 10 min.
    Expired,
    MissingExp,
    WrongNonce,
    MissingNonce,
    /// Signed with a different key pair whose kid is not in the JWKS; JWKS unchanged.
    UnknownKid,
    /// Header without kid, signed with the current key.
    NoKid,
    /// Token response without id_token.
    NoIdToken,
    /// Userinfo returns a different sub.
    UserinfoWrongSub,
    /// Token endpoint answers this status with an OAuth error body.
    TokenEndpointStatus(u16),
    /// Token endpoint never answers (sleeps an hour) — for timeout tests.
    TokenEndpointHang,
    /// Token endpoint answers correctly, after this many milliseconds: a sign-in still in
    /// flight (graceful shutdown tests).
    TokenEndpointSlow(u64),
    /// Discovery document's issuer differs from the configured issuer.
    DiscoveryWrongIssuer,
    /// jwks_uri answers 503.
    JwksDown,
    /// Authorize redirects back with error=<this> (e.g. "access_denied") & state.
    AuthorizeError(String),
    /// Authorization response carries a wrong RFC 9207 iss (even if not advertised).
    IssParameterWrong,
    /// `iss` is advertised in discovery but left out of the authorization response.
    IssParameterMissing,
    // Added for the remaining negative tests of SECURITY.md (tests/integration/negative.rs):
    /// Signed RS512 with the current key: a valid signature, under an `alg` outside the
    /// relying party's allow-list (RS256 by default). The JWKS is unchanged.
    Rs512Signature,
    /// The token response carries the ID token of the last honest exchange (another
    /// sign-in, another user, another nonce), as an attacker replaying a captured token
    /// would. Until there was an honest exchange, the token is honest.
    ReplayIdToken,
    /// Microsoft Entra style: `iss` and `tid` of another tenant
    /// (`https://login.microsoftonline.com/<tid>/v2.0`), as a multi-tenant application
    /// receives from any tenant. Signed with the current key.
    OtherTenant,
    /// Discovery names its endpoints on plain http at a host that is not loopback.
    DiscoveryPlainHttp,
    /// Discovery's `jwks_uri` names this same server under another host name
    /// (`localhost` for `127.0.0.1`, and the other way round).
    JwksUriOtherHost,
}
