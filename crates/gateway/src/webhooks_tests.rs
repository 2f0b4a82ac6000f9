//! Unit tests of the webhook secret and of finding our hooks.

use super::*;

fn hook(
    id: i64,
    scope: &str,
    destination: &str,
    active: bool,
    secret: Option<&str>,
) -> WebhookFull {
    WebhookFull {
        id,
        client_id: String::new(),
        store_hash: String::new(),
        scope: scope.into(),
        destination: destination.into(),
        is_active: active,
        headers: secret.map(|s| BTreeMap::from([(SECRET_HEADER.to_owned(), s.to_owned())])),
        created_at: 0,
        updated_at: 0,
    }
}

fn store(client_secret: &str) -> StoreConfig {
    StoreConfig {
        store_hash: "abc123".into(),
        api_base_url: Url::parse("https://api.bigcommerce.com").unwrap(),
        access_token: crate::domain::Secret::new("token"),
        client_id: "client".into(),
        client_secret: crate::domain::Secret::new(client_secret),
        clock_check_interval: std::time::Duration::from_secs(300),
        channels: BTreeMap::new(),
    }
}

#[test]
fn the_secret_is_derived_and_checked_exactly() {
    let s = store("client-secret");
    let secret = secret(&s);
    assert_eq!(secret.len(), 64);
    assert!(
        !secret.contains("client-secret"),
        "derived, not the secret itself"
    );
    assert!(authentic(&s, Some(secret.as_bytes())));
    assert!(!authentic(&s, None));
    assert!(!authentic(&s, Some(b"")));
    assert!(!authentic(&s, Some(&secret.as_bytes()[..63])));
    assert!(!authentic(&s, Some(format!("{secret} ").as_bytes())));
    assert!(!authentic(&s, Some(&[0xff, 0xfe])), "not UTF-8");
    // Another client secret (rotated) or another store: another header value.
    assert_ne!(super::secret(&store("rotated")), secret);
    let mut other = store("client-secret");
    other.store_hash = "other".into();
    assert!(!authentic(&other, Some(secret.as_bytes())));
}

#[test]
fn our_hooks_are_found_by_scope_and_destination() {
    let to = Url::parse("https://sso.example.com/webhooks/bigcommerce").unwrap();
    let hooks = [
        hook(
            1,
            CUSTOMER_UPDATED,
            "https://sso.example.com/webhooks/bigcommerce/",
            true,
            None,
        ),
        hook(
            2,
            CUSTOMER_UPDATED,
            "https://other.example.com/hook",
            true,
            None,
        ),
        hook(
            3,
            CUSTOMER_DELETED,
            "https://sso.example.com/webhooks/bigcommerce",
            true,
            None,
        ),
    ];
    let found: Vec<i64> = ours(&hooks, CUSTOMER_UPDATED, &to).map(|h| h.id).collect();
    assert_eq!(found, [1]);
    assert!(has_secret(&hook(4, "s", "d", true, Some("x")), "x"));
    assert!(!has_secret(&hook(4, "s", "d", true, Some("y")), "x"));
    assert!(!has_secret(&hook(4, "s", "d", true, None), "x"));
}
