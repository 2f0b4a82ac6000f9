//! `docker-compose.yml` and the `Dockerfile`, checked without a Docker engine (issue 10):
//! read with a real YAML parser, every command parsed by the binary's own command line,
//! every `BCSSO_*` variable one the program reads, every file and secret present, and the
//! ports and URLs of the services lined up with each other and with the gateway's config.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use clap::{CommandFactory, Parser};
use yaml_rust2::{Yaml, YamlLoader};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The compose file, with `<<` merge keys applied as Docker Compose applies them.
fn compose() -> Yaml {
    let docs = YamlLoader::load_from_str(&read("docker-compose.yml")).expect("valid YAML");
    merge_keys(docs.into_iter().next().expect("one document"))
}

fn merge_keys(y: Yaml) -> Yaml {
    match y {
        Yaml::Hash(h) => {
            let mut out = yaml_rust2::yaml::Hash::new();
            if let Some(Yaml::Hash(base)) = h.get(&Yaml::String("<<".into())) {
                for (k, v) in base.clone() {
                    out.insert(k, merge_keys(v));
                }
            }
            for (k, v) in h {
                if k.as_str() != Some("<<") {
                    out.insert(k, merge_keys(v));
                }
            }
            Yaml::Hash(out)
        }
        Yaml::Array(a) => Yaml::Array(a.into_iter().map(merge_keys).collect()),
        other => other,
    }
}

fn strings(y: &Yaml) -> Vec<String> {
    y.as_vec()
        .map(|v| {
            v.iter()
                .map(|s| {
                    s.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| format!("{s:?}"))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn services(c: &Yaml) -> BTreeMap<String, Yaml> {
    c["services"]
        .as_hash()
        .expect("services")
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_owned(), v.clone()))
        .collect()
}

/// Every `--flag=value` of a command, by flag.
fn flags(command: &[String]) -> BTreeMap<String, String> {
    command
        .iter()
        .filter_map(|a| a.strip_prefix("--")?.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// Parses a command as the image's binary does; the error names the bad flag.
fn parse(image: &str, args: &[String]) -> Result<(), String> {
    let argv = std::iter::once(image.to_owned()).chain(args.iter().cloned());
    match image {
        "bc-sso-gateway" => bc_sso_gateway::cli::Cli::try_parse_from(argv).map(|_| ()),
        "bc-sso-dev" => bc_sso_dev::cli::Cli::try_parse_from(argv).map(|_| ()),
        other => return Err(format!("unknown image {other}")),
    }
    .map_err(|e| e.to_string())
}

/// The `BCSSO_*` variables a binary reads: the config's table, and every env of its flags.
fn known_variables(image: &str) -> BTreeSet<String> {
    let mut known: BTreeSet<String> = bc_sso_gateway::config::VARIABLES
        .iter()
        .map(|v| v.name())
        .collect();
    known.extend(["BCSSO_CONFIG", "BCSSO_LOG", "BCSSO_LOG_FORMAT"].map(String::from));
    let mut command = match image {
        "bc-sso-dev" => bc_sso_dev::cli::Cli::command(),
        _ => bc_sso_gateway::cli::Cli::command(),
    };
    command.build();
    let mut stack = vec![command];
    while let Some(c) = stack.pop() {
        for arg in c.get_arguments() {
            if let Some(env) = arg.get_env() {
                known.insert(env.to_string_lossy().into_owned());
            }
        }
        stack.extend(c.get_subcommands().cloned());
    }
    known
}

#[test]
fn compose_services_run_real_commands_with_known_settings() {
    let c = compose();
    let services = services(&c);
    let secrets: BTreeSet<String> = c["secrets"]
        .as_hash()
        .expect("top-level secrets")
        .iter()
        .map(|(k, v)| {
            let file = v["file"].as_str().expect("secrets come from files");
            assert!(root().join(file).is_file(), "secret file {file} is missing");
            k.as_str().unwrap().to_owned()
        })
        .collect();
    let stages = dockerfile_stages();
    let mut ours = 0;
    for (name, s) in &services {
        for dep in s["depends_on"].as_hash().into_iter().flatten() {
            let dep_name = dep.0.as_str().unwrap();
            assert!(
                services.contains_key(dep_name),
                "{name} depends on {dep_name}"
            );
            if dep.1["condition"].as_str() == Some("service_healthy") {
                assert!(
                    !services[dep_name]["healthcheck"].is_badvalue(),
                    "{name} waits for {dep_name} to be healthy, which has no healthcheck"
                );
            }
        }
        if let Some(mode) = s["network_mode"].as_str() {
            let other = mode
                .strip_prefix("service:")
                .expect("network_mode service:<name>");
            assert!(services.contains_key(other), "{name}: {mode}");
        }
        for v in strings(&s["volumes"]) {
            if let Some(host) = v.split(':').next().filter(|h| h.starts_with("./")) {
                assert!(
                    root().join(host).exists(),
                    "{name}: volume {host} is missing"
                );
            }
        }
        for secret in strings(&s["secrets"]) {
            assert!(
                secrets.contains(&secret),
                "{name}: secret {secret} is not declared"
            );
        }
        let Some(image) = s["image"].as_str().filter(|i| i.starts_with("bc-sso-")) else {
            continue;
        };
        ours += 1;
        let target = s["build"]["target"]
            .as_str()
            .expect("our images name their stage");
        assert!(
            stages.contains(&target.to_owned()),
            "{name}: no stage {target}"
        );
        let command = strings(&s["command"]);
        parse(image, &command).unwrap_or_else(|e| panic!("{name}: {command:?}: {e}"));
        let check = strings(&s["healthcheck"]["test"]);
        if let Some((_, args)) = check.split_first().filter(|(cmd, _)| *cmd == "CMD")
            && args[0].starts_with("bc-sso-")
        {
            parse(&args[0], &args[1..]).unwrap_or_else(|e| panic!("{name}: healthcheck: {e}"));
        }
        let known = known_variables(image);
        for (k, _) in s["environment"].as_hash().into_iter().flatten() {
            let k = k.as_str().unwrap();
            assert!(
                known.contains(k),
                "{name}: {k} is read by no part of {image}"
            );
        }
    }
    assert!(ours >= 4, "two gateways and two sandbox services");
}

/// The services find each other: ports, URLs, store hash, client ids and secrets agree
/// between the compose file, nginx's config and the gateway's config.
#[test]
fn compose_ports_urls_and_secrets_line_up() {
    let c = compose();
    let services = services(&c);
    let published: BTreeSet<u16> = strings(&services["proxy"]["ports"])
        .iter()
        .map(|p| p.split(':').next_back().unwrap().parse().unwrap())
        .collect();
    let nginx = read("deploy/nginx.conf");
    let bc = flags(&strings(&services["bigcommerce"]["command"]));
    let idp = flags(&strings(&services["idp"]["command"]));

    // The gateway's config, with the secret files where this checkout keeps them.
    let toml = read("deploy/gateway.toml").replace(
        "/run/secrets/",
        &format!("{}/", root().join("deploy/demo-secrets").display()),
    );
    let raw: bc_sso_gateway::config::RawConfig = toml::from_str(&toml).expect("gateway.toml");
    let config = bc_sso_gateway::config::validate(raw).expect("gateway.toml validates");
    let public = &config.server.public_url;
    assert!(
        published.contains(&public.port().unwrap()),
        "public_url is published"
    );
    assert!(nginx.contains(&format!("listen {};", public.port().unwrap())));

    // Each replica listens where nginx sends requests.
    for replica in ["gateway-1", "gateway-2"] {
        let s = &services[replica];
        assert_eq!(s["network_mode"].as_str(), Some("service:proxy"));
        let listen = s["environment"]["BCSSO_SERVER_LISTEN"].as_str().unwrap();
        assert!(
            nginx.contains(&format!("server {listen}")),
            "{replica}: {listen}"
        );
        let mounted = strings(&s["secrets"]);
        for path in toml_secret_files(&read("deploy/gateway.toml")) {
            assert!(mounted.contains(&path), "{replica} lacks secret {path}");
        }
    }
    assert!(
        config.server.sessions_url.is_some(),
        "replicas share sessions"
    );
    assert!(
        config.database.url.contains("@postgres:"),
        "replicas share the compose PostgreSQL"
    );

    // The BigCommerce sandbox serves what the gateway's store settings name.
    let store = config
        .store
        .declared
        .as_ref()
        .expect("store settings in the file");
    assert_eq!(config.store.store_hash, bc["store-hash"]);
    assert_eq!(store.client_id, bc["client-id"]);
    assert_eq!(store.api_base_url.port(), Some(port_of(&bc["api-listen"])));
    let channel = &store.channels[&1];
    assert_eq!(
        channel.storefront_url.port(),
        Some(port_of(&bc["storefront-listen"]))
    );
    assert!(published.contains(&port_of(&bc["storefront-listen"])));
    assert_eq!(
        bc["gateway-url"].trim_end_matches('/'),
        public.as_str().trim_end_matches('/')
    );
    assert_eq!(
        secret(&bc["access-token-file"]),
        store.access_token.expose(),
        "the sandbox accepts the gateway's access token"
    );
    assert_eq!(
        secret(&bc["client-secret-file"]),
        store.client_secret.expose()
    );

    // The dev IdP is the connection's issuer and knows the gateway's redirect URIs.
    let conn = config
        .connection("example")
        .expect("the dev IdP's connection");
    assert_eq!(conn.issuer.as_str(), idp["issuer"]);
    assert!(published.contains(&port_of(&idp["listen"])));
    assert_eq!(conn.client_id, idp["client-id"]);
    assert_eq!(
        conn.client_secret.expose(),
        secret(&idp["client-secret-file"])
    );
    let redirects: Vec<&str> = idp["redirect-uri"].split(',').collect();
    assert!(redirects.contains(&config.redirect_uri(conn.id.as_str()).as_str()));
    assert!(redirects.contains(&config.admin_redirect_uri().as_str()));
}

/// The Prometheus service scrapes exactly the replicas' metrics listeners, with a config
/// Prometheus's own `promtool check config` accepts.
#[test]
fn compose_prometheus_scrapes_every_replica() {
    let c = compose();
    let services = services(&c);
    let prometheus = read("deploy/prometheus.yml");
    for replica in ["gateway-1", "gateway-2"] {
        let addr = services[replica]["environment"]["BCSSO_SERVER_METRICS_LISTEN"]
            .as_str()
            .unwrap_or_else(|| panic!("{replica} serves no metrics"));
        assert!(
            prometheus.contains(&format!("\"{addr}\"")),
            "{addr} not scraped"
        );
    }
    assert_eq!(
        services["prometheus"]["network_mode"].as_str(),
        Some("service:proxy")
    );
    let out = std::process::Command::new("promtool")
        .args(["check", "config"])
        .arg(root().join("deploy/prometheus.yml"))
        .output()
        .expect("promtool is not installed: run scripts/test (it installs Debian's prometheus)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Keycloak profile: the imported realm knows the gateway's client (secret, redirect
/// URIs, post-logout URI), sends the groups claim the connection reads, has the groups its
/// rules map, and its users are in the connection's allowed domains.
#[test]
fn compose_keycloak_realm_matches_the_connection() {
    let c = compose();
    let services = services(&c);
    let kc = &services["keycloak"];
    assert_eq!(strings(&kc["profiles"]), ["keycloak"]);
    let command = strings(&kc["command"]);
    let port: u16 = command
        .iter()
        .find_map(|a| a.strip_prefix("--http-port="))
        .expect("--http-port")
        .parse()
        .unwrap();
    let published: Vec<String> = strings(&services["proxy"]["ports"]);
    assert!(published.iter().any(|p| p.ends_with(&format!(":{port}"))));
    assert!(
        strings(&kc["volumes"])
            .iter()
            .any(|v| v.starts_with("./deploy/keycloak:/opt/keycloak/data/import"))
    );

    let toml = read("deploy/gateway.toml").replace(
        "/run/secrets/",
        &format!("{}/", root().join("deploy/demo-secrets").display()),
    );
    let raw: bc_sso_gateway::config::RawConfig = toml::from_str(&toml).unwrap();
    let config = bc_sso_gateway::config::validate(raw).unwrap();
    let conn = config
        .connection("keycloak")
        .expect("a keycloak connection");
    let realm: serde_json::Value =
        serde_json::from_str(&read("deploy/keycloak/bcsso-realm.json")).unwrap();
    assert_eq!(
        conn.issuer.as_str(),
        format!(
            "http://localhost:{port}/realms/{}",
            realm["realm"].as_str().unwrap()
        )
    );
    let client = realm["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|cl| cl["clientId"] == conn.client_id.as_str())
        .expect("the gateway's client in the realm");
    assert_eq!(client["secret"].as_str(), Some(conn.client_secret.expose()));
    assert_eq!(client["publicClient"], false);
    let redirects: Vec<&str> = client["redirectUris"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(redirects.contains(&config.redirect_uri("keycloak").as_str()));
    assert_eq!(
        client["attributes"]["post.logout.redirect.uris"].as_str(),
        Some(config.post_logout_redirect_uri().as_str())
    );
    assert_eq!(client["attributes"]["pkce.code.challenge.method"], "S256");
    let default_scopes = client["defaultClientScopes"].as_array().unwrap();
    let mapper_claims: Vec<String> = realm["clientScopes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| default_scopes.contains(&s["name"]))
        .flat_map(|s| s["protocolMappers"].as_array().cloned().unwrap_or_default())
        .filter_map(|m| m["config"]["claim.name"].as_str().map(str::to_owned))
        .collect();
    assert!(mapper_claims.contains(&conn.groups_claim));
    let groups: Vec<&str> = realm["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    for rule in &conn.group_rules {
        assert!(
            groups.contains(&rule.group.as_str()),
            "{} not in the realm",
            rule.group
        );
    }
    for user in realm["users"].as_array().unwrap() {
        let email = bc_sso_gateway::domain::Email::parse(user["email"].as_str().unwrap()).unwrap();
        assert!(
            conn.allowed_email_domains
                .iter()
                .any(|d| d.matches(email.domain())),
            "{email} outside the connection's domains"
        );
    }
    let mounted = strings(&services["gateway-1"]["secrets"]);
    assert!(mounted.contains(&"keycloak_client_secret".to_owned()));
}

/// `/run/secrets/<name>` in the file -> the secret `<name>`.
fn toml_secret_files(toml: &str) -> Vec<String> {
    toml.split("/run/secrets/")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

/// The value of a secret the compose file mounts at `/run/secrets/<name>`.
fn secret(path: &str) -> String {
    let name = path
        .strip_prefix("/run/secrets/")
        .expect("a mounted secret");
    read(&format!("deploy/demo-secrets/{name}"))
        .trim_end()
        .to_owned()
}

/// `FROM ... AS <name>` stages of the Dockerfile.
fn dockerfile_stages() -> Vec<String> {
    read("Dockerfile")
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .filter_map(|l| l.split(" AS ").nth(1))
        .map(|s| s.trim().to_owned())
        .collect()
}

#[test]
fn dockerfile_builds_a_non_root_gateway_image_that_checks_itself() {
    let text = read("Dockerfile");
    let stages = dockerfile_stages();
    assert_eq!(
        stages.last().map(String::as_str),
        Some("gateway"),
        "the default image"
    );
    assert!(stages.contains(&"dev".to_owned()) && stages.contains(&"build".to_owned()));
    // Runs as a numeric non-root user (Kubernetes' runAsNonRoot can verify it).
    let user = text
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    assert!(!user.starts_with('0') && user.split(':').all(|p| p.parse::<u32>().is_ok()));
    // What the build copies exists, and the packages it builds are workspace members.
    for line in text
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for src in &parts[1..parts.len() - 1] {
            assert!(root().join(src).exists(), "COPY {src}: missing");
        }
    }
    let members = read("Cargo.toml");
    for package in ["bc-sso-gateway", "bc-sso-dev"] {
        assert!(text.contains(&format!("-p {package}")));
        assert!(
            members.contains(&format!("name = \"{package}\""))
                || read("crates/gateway/Cargo.toml").contains(&format!("name = \"{package}\""))
        );
    }
    // HEALTHCHECK, ENTRYPOINT and CMD are commands the binary has.
    let json_args = |key: &str| -> Vec<String> {
        let line = text
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with(key))
            .unwrap_or_else(|| panic!("no {key}"));
        let start = line.find('[').unwrap();
        serde_json::from_str(&line[start..]).unwrap()
    };
    let check = json_args("CMD [\"bc-sso-gateway\"");
    parse("bc-sso-gateway", &check[1..]).unwrap();
    assert_eq!(json_args("ENTRYPOINT"), ["bc-sso-gateway"]);
    parse("bc-sso-gateway", &json_args("CMD [\"serve")).unwrap();
    assert!(text.contains("HEALTHCHECK"));
    let ignore = read(".dockerignore");
    for entry in ["target/", ".git/", "node_modules"] {
        assert!(ignore.contains(entry), ".dockerignore lacks {entry}");
    }
}

#[test]
fn yaml_merge_keys_are_applied_like_compose() {
    let c = compose();
    let s = services(&c);
    assert_eq!(s["gateway-1"]["image"].as_str(), Some("bc-sso-gateway"));
    assert_eq!(
        s["gateway-2"]["environment"]["BCSSO_SERVER_LISTEN"].as_str(),
        Some("127.0.0.1:8082"),
        "a service's own keys win over the anchor's"
    );
}
