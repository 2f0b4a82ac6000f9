//! Two gateway replicas on one database, each serving HTTP, saving console changes at the
//! same moment (issue 8 item 3): the compare-and-swap lets one win, and the rule "one
//! email domain, one connection" holds in the database whatever the timing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bc_sso_dev::demo::DemoOptions;
use bc_sso_gateway::AppState;
use bc_sso_gateway::clock::Clock;
use bc_sso_gateway::settings::Source;
use reqwest::StatusCode;
use url::Url;

use crate::admin::token;
use crate::common::Env;

const ROUNDS: usize = 20;

/// The demo's gateway on a database two replicas can share: the PostgreSQL of
/// `BCSSO_TEST_DATABASE_URL`, else a SQLite file (an in-memory one is per process pool).
async fn shared_database_env(dir: &std::path::Path) -> Env {
    let db_url = format!("sqlite://{}", dir.join("gw.sqlite").display());
    Env::with(DemoOptions::default(), move |c| {
        if std::env::var("BCSSO_TEST_DATABASE_URL").is_err() {
            c.database.url = Some(db_url);
        }
    })
    .await
}

/// A second replica: its own state (snapshots, caches) on the same config and database,
/// served on its own port.
async fn second_replica(env: &Env) -> (Arc<AppState>, Url) {
    let state = Arc::new(
        AppState::connect(env.demo.state.config.clone(), Clock::system())
            .await
            .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let app = bc_sso_gateway::app(state.clone());
    tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, service).await.unwrap();
    });
    (state, url)
}

async fn create(
    env: &Env,
    gateway: &Url,
    id: &str,
    domain: &str,
) -> (StatusCode, serde_json::Value) {
    let r = env
        .browser
        .post(gateway.join("/admin/api/connections").unwrap())
        .bearer_auth(token(env))
        .json(&serde_json::json!({
            "id": id, "issuer": "https://idp.race.example", "client_id": "c",
            "client_secret": "s", "allowed_email_domains": [domain]
        }))
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap_or_default())
}

#[tokio::test]
async fn two_replicas_saving_overlapping_connections_end_with_one_winner() {
    let dir = std::env::temp_dir().join(format!("bcsso-race-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let env = shared_database_env(&dir).await;
    let here = env.demo.gateway_url.clone();
    let (other, there) = second_replica(&env).await;

    let (mut conflicts, mut saw_the_winner) = (0, 0);
    for round in 0..ROUNDS {
        // Both snapshots current, so neither replica starts with a reload and the two
        // saves meet as closely as they can.
        env.demo.state.refresh_settings().await.unwrap();
        other.refresh_settings().await.unwrap();
        let domain = format!("race{round}.test");
        let (a_id, b_id) = (format!("a{round}"), format!("b{round}"));
        let ((a, a_body), (b, b_body)) = tokio::join!(
            create(&env, &here, &a_id, &domain),
            create(&env, &there, &b_id, &domain),
        );
        let (won, lost) = match (a, b) {
            (StatusCode::CREATED, _) => (a_body, (b, b_body)),
            (_, StatusCode::CREATED) => (b_body, (a, a_body)),
            _ => panic!("round {round}: no winner: {a} {a_body}, {b} {b_body}"),
        };
        assert_eq!(won["data"]["allowed_email_domains"][0], domain.as_str());
        match lost {
            // The loser computed its save from the version the winner replaced.
            (StatusCode::CONFLICT, body) if body["error"] == "changed_elsewhere" => conflicts += 1,
            // The loser read the version after the winner's write, and was checked
            // against it.
            (StatusCode::UNPROCESSABLE_ENTITY, body)
                if body["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("is claimed by connections")) =>
            {
                saw_the_winner += 1
            }
            (status, body) => panic!("round {round}: both won or an odd loss: {status} {body}"),
        }
    }
    eprintln!(
        "{ROUNDS} rounds: {conflicts} ended in 409 changed_elsewhere, {saw_the_winner} in 422 (the loser saw the winner)"
    );
    assert!(
        conflicts > 0,
        "no round raced: the compare-and-swap was never exercised"
    );

    // The database: one connection per domain, and both replicas agree with it.
    let stored = env.demo.state.db.list_connections().await.unwrap();
    let mut claims: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in &stored {
        let settings: serde_json::Value = serde_json::from_str(&c.settings).unwrap();
        for d in settings["allowed_email_domains"].as_array().unwrap() {
            claims
                .entry(d.as_str().unwrap().to_owned())
                .or_default()
                .push(c.id.clone());
        }
    }
    for (domain, ids) in &claims {
        assert_eq!(ids.len(), 1, "{domain} is claimed by {ids:?}");
    }
    assert_eq!(claims.len(), ROUNDS);
    env.demo.state.refresh_settings().await.unwrap();
    other.refresh_settings().await.unwrap();
    let ids = |state: &AppState| {
        let mut ids: Vec<String> = state
            .connections
            .all()
            .iter()
            .filter(|e| e.source == Source::Console)
            .map(|e| e.connection.id.to_string())
            .collect();
        ids.sort();
        ids
    };
    let mut in_db: Vec<String> = stored.iter().map(|c| c.id.clone()).collect();
    in_db.sort();
    assert_eq!(ids(&env.demo.state), in_db);
    assert_eq!(ids(&other), in_db);
    let _ = std::fs::remove_dir_all(&dir);
}
