use super::*;

const VALID: &str = r#"
[server]
public_url = "https://sso.example.com"

[store]
store_hash = "abc123"
access_token = "tok"
client_id = "cid"
client_secret = "csecret"

[[store.channels]]
id = 1
storefront_url = "https://shop.example.com"

[[connections]]
id = "acme"
issuer = "https://login.acme.test"
client_id = "gw"
client_secret = "idp-secret"
allowed_email_domains = ["acme.test"]
"#;

fn parse(text: &str) -> RawConfig {
    toml::from_str(text).unwrap()
}

/// The errors of VALID with `from` replaced by `to`.
fn errors_with(from: &str, to: &str) -> Vec<String> {
    errors(parse(&VALID.replace(from, to)))
}

fn errors(raw: RawConfig) -> Vec<String> {
    validate(raw)
        .unwrap_err()
        .iter()
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn valid_config_with_defaults() {
    let c = validate(parse(VALID)).unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(
        c.redirect_uri("acme").as_str(),
        "https://sso.example.com/oidc/callback/acme"
    );
    assert_eq!(
        c.store.declared.as_ref().unwrap().api_base_url.as_str(),
        "https://api.bigcommerce.com/"
    );
    assert_eq!(
        c.store.declared.as_ref().unwrap().channels[&1]
            .default_redirect
            .as_str(),
        "/account.php"
    );
    let acme = c.connection("acme").unwrap();
    assert_eq!(acme.issuer.as_str(), "https://login.acme.test");
    assert_eq!(acme.scopes, ["openid", "email", "profile"]);
    assert_eq!(acme.id_token_algs, ["RS256"]);
    assert!(acme.trusted_email_domains.is_empty());
    assert!(acme.create_customers);
    assert_eq!(acme.channel_access, ChannelAccess::Channel);
    assert_eq!(c.server.client_ip, ClientIpSource::Peer);
    assert!(!c.server.send_request_ip);
    // Secrets never print.
    assert!(!format!("{c:?}").contains("csecret"));
    assert!(!format!("{c:?}").contains("idp-secret"));
}

#[test]
fn empty_config_names_every_missing_setting() {
    let e = errors(RawConfig::default());
    let all = e.join("\n");
    for key in [
        "server.public_url",
        "store.store_hash",
        "store.access_token",
        "store.client_id",
        "store.client_secret",
        "store.channels",
        "connections",
    ] {
        assert!(all.contains(key), "no error names {key}: {all}");
    }
    assert!(all.contains("BCSSO_STORE_ACCESS_TOKEN"), "{all}");
}

/// Only the store hash in the file: the API account is entered in the admin console, which
/// needs the admin token and the key that seals what it stores.
#[test]
fn store_account_from_the_console() {
    const KEY: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
    let minimal = format!(
        "[server]\npublic_url = \"https://sso.example.com\"\n[store]\nstore_hash = \"abc123\"\n\
         [admin]\ntoken = \"{}\"\n[database]\nsecret_key = \"{KEY}\"\n",
        "t".repeat(32)
    );
    let c = validate(parse(&minimal)).unwrap();
    assert_eq!(c.store.store_hash, "abc123");
    assert!(c.store.declared.is_none());
    assert!(c.connections.is_empty());

    let no_key = minimal.replace(&format!("[database]\nsecret_key = \"{KEY}\"\n"), "");
    let e = errors(parse(&no_key)).join("\n");
    assert!(
        e.contains("database.secret_key") && e.contains("admin console"),
        "{e}"
    );

    // Declaring any part of the account declares it: the rest is then required.
    let mut raw = parse(&minimal);
    raw.store.access_token = Some("tok".into());
    let e = errors(raw).join("\n");
    for key in ["store.client_id", "store.client_secret", "store.channels"] {
        assert!(e.contains(key), "no error names {key}: {e}");
    }
}

/// Rule 3: trusted domains must be among the allowed ones; the old switch trusts them all.
#[test]
fn trusted_email_domains_lie_within_the_allowed_ones() {
    let with = |extra: &str| {
        VALID.replace(
            "allowed_email_domains = [\"acme.test\"]",
            &format!("allowed_email_domains = [\"acme.test\", \"*.acme.test\"]\n{extra}"),
        )
    };
    let c = validate(parse(&with("trusted_email_domains = [\"eu.acme.test\"]"))).unwrap();
    assert!(c.connections[0].trusts_unverified_email("eu.acme.test"));
    assert!(!c.connections[0].trusts_unverified_email("acme.test"));
    let c = validate(parse(&with("trust_unverified_email = true"))).unwrap();
    assert!(c.connections[0].trusts_unverified_email("acme.test"));
    assert!(c.connections[0].trusts_unverified_email("us.acme.test"));
    let e = errors(parse(&with(
        "trusted_email_domains = [\"other.test\", \"*.other.test\"]",
    )))
    .join("\n");
    assert!(
        e.contains("other.test is not one of this connection's allowed_email_domains")
            && e.contains("*.other.test is not one"),
        "{e}"
    );
}

#[test]
fn plain_http_only_for_loopback() {
    let e = errors_with("https://login.acme.test", "http://login.acme.test");
    assert!(
        e.iter()
            .any(|m| m.contains("connections[0].issuer") && m.contains("must be https")),
        "{e:?}"
    );
    let text = VALID.replace("https://login.acme.test", "http://127.0.0.1:9000");
    assert!(validate(parse(&text)).is_ok());
}

#[test]
fn issuer_string_is_kept_exactly() {
    let text = VALID.replace("https://login.acme.test", "https://login.acme.test/");
    let c = validate(parse(&text)).unwrap();
    assert_eq!(c.connections[0].issuer.as_str(), "https://login.acme.test/");
}

#[test]
fn a_domain_belongs_to_one_connection() {
    let text = format!(
        "{VALID}\n[[connections]]\nid = \"other\"\nissuer = \"https://other.test\"\nclient_id = \"x\"\nclient_secret = \"y\"\nallowed_email_domains = [\"ACME.test\"]\n"
    );
    let e = errors(parse(&text));
    assert!(
        e.iter()
            .any(|m| m.contains("acme.test is claimed by connections acme and other")),
        "{e:?}"
    );
}

#[test]
fn bad_values_are_explained() {
    let text = VALID
        .replace("id = \"acme\"", "id = \"Acme Corp\"\nid_token_algs = [\"HS256\", \"none\"]\nclock_leeway_secs = 900\nchannel_access = \"everywhere\"")
        .replace("allowed_email_domains = [\"acme.test\"]", "allowed_email_domains = [\"not a domain\"]")
        .replace("storefront_url = \"https://shop.example.com\"", "storefront_url = \"https://shop.example.com\"\ndefault_redirect = \"https://evil.test/\"");
    let all = errors(parse(&text)).join("\n");
    for needle in [
        "connections[0].id",
        "\"HS256\" is not allowed",
        "\"none\" is not allowed",
        "clock_leeway_secs: at most 300",
        "channel_access",
        "not a domain",
        "store.channels[0].default_redirect",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
}

#[test]
fn unknown_keys_in_the_file_are_refused() {
    let err = toml::from_str::<RawConfig>("[server]\npublic_ulr = \"https://x\"\n").unwrap_err();
    assert!(err.to_string().contains("public_ulr"), "{err}");
}

#[test]
fn env_overrides_and_secret_files() {
    let dir = std::env::temp_dir().join(format!("bcsso-cfg-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret_path = dir.join("bc_secret");
    std::fs::write(&secret_path, "from-file\n").unwrap();
    let text = VALID
        .replace(
            "client_secret = \"csecret\"",
            &format!(
                "client_secret_file = {:?}",
                secret_path.display().to_string()
            ),
        )
        .replace("client_secret = \"idp-secret\"\n", "");
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    let env: HashMap<String, String> = [
        ("BCSSO_STORE_ACCESS_TOKEN", "env-token"),
        ("BCSSO_CONNECTION_ACME_CLIENT_SECRET", "env-idp-secret"),
        ("BCSSO_SERVER_PUBLIC_URL", "https://login.shop.test"),
        ("BCSSO_TYPO", "x"),
        ("UNRELATED", "y"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let c = load(Some(&path), &env).unwrap();
    assert_eq!(
        c.store.declared.as_ref().unwrap().access_token.expose(),
        "env-token"
    );
    assert_eq!(
        c.store.declared.as_ref().unwrap().client_secret.expose(),
        "from-file"
    );
    assert_eq!(c.connections[0].client_secret.expose(), "env-idp-secret");
    assert_eq!(c.server.public_url.as_str(), "https://login.shop.test/");
    let mut raw = read_file(&path).unwrap();
    assert_eq!(apply_env(&mut raw, &env), ["BCSSO_TYPO"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_secret_file_and_missing_config_file() {
    let e = errors_with(
        "client_secret = \"csecret\"",
        "client_secret_file = \"/nonexistent/secret\"",
    );
    assert!(e.iter().any(|m| m.contains("store.client_secret: cannot read secret file /nonexistent/secret")), "{e:?}");
    let err = load(Some(Path::new("/nonexistent/config.toml")), &HashMap::new()).unwrap_err();
    assert!(
        err[0]
            .to_string()
            .contains("/nonexistent/config.toml: cannot read")
    );
}

#[test]
fn connection_channels_must_be_configured() {
    let e = errors_with(
        "allowed_email_domains = [\"acme.test\"]",
        "allowed_email_domains = [\"acme.test\"]\nchannels = [1, 7]",
    );
    assert!(
        e.iter()
            .any(|m| m.contains("connections.acme.channels: channel 7 is not one of")),
        "{e:?}"
    );
}

#[test]
fn the_first_matching_group_rule_wins() {
    let mut c = test_connection("acme", "https://idp.test");
    c.customer_group_id = Some(1);
    let rule = |group: &str, customer_group_id| GroupRule {
        group: group.into(),
        customer_group_id,
    };
    c.group_rules = vec![rule("wholesale", 2), rule("vip", 3)];
    let g = |v: &[&str]| c.customer_group_for(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(g(&["vip", "wholesale"]), Some(2));
    assert_eq!(g(&["vip"]), Some(3));
    assert_eq!(g(&["staff"]), Some(1));
    assert_eq!(g(&[]), Some(1));
}

/// SECURITY.md rule 9: an Entra `/organizations` or `/common` issuer admits every tenant's
/// users unless the tenants are listed.
#[test]
fn entra_multi_tenant_issuer_needs_allowed_tenants() {
    let issuer = "issuer = \"https://login.acme.test\"";
    let orgs = "issuer = \"https://login.microsoftonline.com/organizations/v2.0\"";
    let errs = errors_with(issuer, orgs);
    assert!(
        errs.iter()
            .any(|e| e.starts_with("connections[0].allowed_tenants: required")),
        "{errs:?}"
    );

    let tenant = "72F988BF-86F1-41AF-91AB-2D7CD011DB47";
    let c = validate(parse(&VALID.replace(
        issuer,
        &format!("issuer = \"https://login.microsoftonline.com/common/v2.0\"\nallowed_tenants = [\"{tenant}\"]"),
    )))
    .unwrap();
    let tenants = c.connections[0].tenants.clone().unwrap();
    assert_eq!(
        tenants.issuer_template,
        "https://login.microsoftonline.com/{tenantid}/v2.0"
    );
    assert_eq!(c.connections[0].published_issuer(), tenants.issuer_template);
    assert_eq!(tenants.allowed, vec![tenant.to_lowercase()]);
    assert!(tenants.allows_issuer(&format!(
        "https://login.microsoftonline.com/{}/v2.0",
        tenant.to_lowercase()
    )));
    assert!(!tenants.allows_issuer(
        "https://login.microsoftonline.com/7e57e57e-0000-4000-8000-0000000e7e11/v2.0"
    ));
    assert!(!tenants.allows_issuer("https://login.microsoftonline.com/{tenantid}/v2.0"));
}

#[test]
fn allowed_tenants_are_guids_and_only_for_a_multi_tenant_issuer() {
    let errs = errors_with(
        "allowed_email_domains = [\"acme.test\"]",
        "allowed_email_domains = [\"acme.test\"]\nallowed_tenants = [\"72f988bf-86f1-41af-91ab-2d7cd011db47\"]",
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("allowed_tenants: only for a Microsoft Entra multi-tenant issuer")),
        "{errs:?}"
    );
    let errs = errors_with(
        "issuer = \"https://login.acme.test\"",
        "issuer = \"https://login.microsoftonline.com/organizations/v2.0\"\nallowed_tenants = [\"contoso.onmicrosoft.com\"]",
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("\"contoso.onmicrosoft.com\" is not a tenant id")),
        "{errs:?}"
    );
    // A tenant's own issuer is single-tenant: nothing to list, nothing templated.
    let c = validate(parse(&VALID.replace(
        "issuer = \"https://login.acme.test\"",
        "issuer = \"https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0\"",
    )))
    .unwrap();
    assert!(c.connections[0].tenants.is_none());
}
