//! The claims a connection names beyond the standard ones: its groups claim and company
//! claim, and Google's `hd`. The crate's claim types know only standard claims, and these
//! names are per connection, so they are read from the JSON. Values are untrusted input
//! and capped.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::Connection;

/// Every claim of a userinfo answer that is not a standard one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OtherClaims(pub Map<String, Value>);

impl openidconnect::AdditionalClaims for OtherClaims {}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtraClaims {
    /// `None` when the claim is absent (then userinfo may have it); `Some(empty)` when the
    /// IdP says the user has no groups.
    pub groups: Option<Vec<String>>,
    pub company: Option<String>,
    pub hosted_domain: Option<String>,
    /// Entra's `xms_edov`: `true`, `"true"` or `1` (and their opposites); anything else is
    /// treated as absent.
    pub xms_edov: Option<bool>,
    /// Entra's `tid`: the tenant that issued the token.
    pub tenant_id: Option<String>,
}

/// Reads the payload of a compact JWT. Call it only on an ID token already verified.
pub fn from_id_token(compact_jwt: &str, conn: &Connection) -> ExtraClaims {
    use base64::Engine;
    let payload = compact_jwt
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<Map<String, Value>>(&b).ok())
        .unwrap_or_default();
    from_claims(&payload, conn)
}

pub fn from_claims(claims: &Map<String, Value>, conn: &Connection) -> ExtraClaims {
    let text = |v: &Value| {
        v.as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.chars().count() <= 255)
            .map(str::to_owned)
    };
    let groups = claims.get(&conn.groups_claim).map(|v| match v {
        Value::Array(items) => items.iter().take(500).filter_map(text).collect(),
        single => text(single).into_iter().collect(),
    });
    ExtraClaims {
        groups,
        // Cut, not dropped: a company name longer than BigCommerce's 255 characters is
        // still the company (CONTRACT.md §2.2).
        company: conn
            .company_claim
            .as_ref()
            .and_then(|claim| claims.get(claim))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.chars().take(255).collect()),
        hosted_domain: claims.get("hd").and_then(text),
        xms_edov: claims.get("xms_edov").and_then(|v| match v {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s.eq_ignore_ascii_case("true") || s == "1" => Some(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") || s == "0" => Some(false),
            Value::Number(n) => n.as_u64().filter(|n| *n <= 1).map(|n| n == 1),
            _ => None,
        }),
        tenant_id: claims.get("tid").and_then(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn jwt(payload: Value) -> String {
        let b = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!("{}.{}.sig", b(b"{}"), b(payload.to_string().as_bytes()))
    }

    fn conn(groups_claim: &str, company_claim: Option<&str>) -> Connection {
        let mut c = crate::config::test_connection("acme", "https://idp.test");
        c.groups_claim = groups_claim.into();
        c.company_claim = company_claim.map(Into::into);
        c
    }

    #[test]
    fn groups_and_company_come_from_the_named_claims() {
        let token = jwt(serde_json::json!({
            "groups": ["a", "b", 7, ""], "roles": "buyer", "org": " Acme Ltd ", "long": "x".repeat(300)
        }));
        let c = from_id_token(&token, &conn("groups", Some("org")));
        assert_eq!(c.groups, Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(c.company.as_deref(), Some("Acme Ltd"));
        let c = from_id_token(&token, &conn("roles", None));
        assert_eq!(
            (c.groups, c.company),
            (Some(vec!["buyer".to_owned()]), None)
        );
        let c = from_id_token(&token, &conn("long", Some("long")));
        assert_eq!(
            c.groups,
            Some(vec![]),
            "over-long groups are dropped, the claim is still there"
        );
        let company = c.company.unwrap_or_default();
        assert_eq!(company.chars().count(), 255, "a long company is cut");
        assert_eq!(
            from_id_token(&token, &conn("missing", None)).groups,
            None,
            "absent is not empty: userinfo may have it"
        );
        assert_eq!(
            from_id_token("garbage", &conn("groups", None)),
            ExtraClaims::default()
        );
        let google = jwt(serde_json::json!({ "hd": "acme.test" }));
        assert_eq!(
            from_id_token(&google, &conn("groups", None))
                .hosted_domain
                .as_deref(),
            Some("acme.test")
        );
        let edov = |v: Value| {
            from_id_token(
                &jwt(serde_json::json!({ "xms_edov": v })),
                &conn("groups", None),
            )
            .xms_edov
        };
        assert_eq!(edov(serde_json::json!(true)), Some(true));
        assert_eq!(edov(serde_json::json!("1")), Some(true));
        assert_eq!(edov(serde_json::json!(0)), Some(false));
        assert_eq!(edov(serde_json::json!("FALSE")), Some(false));
        assert_eq!(edov(serde_json::json!("yes")), None);
        assert_eq!(edov(serde_json::json!(7)), None);
        let odd = jwt(serde_json::json!({ "hd": 5 }));
        assert_eq!(
            from_id_token(&odd, &conn("groups", None)).hosted_domain,
            None
        );
    }

    #[test]
    fn userinfo_keeps_the_claims_the_crate_does_not_know() {
        let json = r#"{"sub":"u1","email":"a@acme.test","groups":["buyers"],"org":"Acme"}"#;
        let info = openidconnect::UserInfoClaims::<OtherClaims, openidconnect::core::CoreGenderClaim>::from_json::<std::io::Error>(
            json.as_bytes(),
            None,
        )
        .unwrap();
        let c = from_claims(&info.additional_claims().0, &conn("groups", Some("org")));
        assert_eq!(c.groups, Some(vec!["buyers".to_owned()]));
        assert_eq!(c.company.as_deref(), Some("Acme"));
    }
}
