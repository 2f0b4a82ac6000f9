//! Two gateway replicas on one database, each serving HTTP, saving console changes at the
//! same moment (issue 8 item 3): the compare-and-swap lets one win, and the rule "one
//! email domain, one connection" holds in the database whatever the timing.

use std::collections::BTreeMap;

use bc_sso_gateway::AppState;
use bc_sso_gateway::settings::Source;
use reqwest::StatusCode;
use url::Url;

use crate::common::{Env, connection_json};

const ROUNDS: usize = 20;

async fn create(
    env: &Env,
    gateway: &Url,
    id: &str,
    domain: &str,
) -> (StatusCode, serde_json::Value) {
    let r = env
        .browser
        .post(gateway.join("/admin/api/connections").unwrap())
        .bearer_auth(env.admin_token())
        .json(&connection_json(id, "https://idp.race.example", domain))
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap_or_default())
}

#[tokio::test]
async fn two_replicas_saving_overlapping_connections_end_with_one_winner() {
    let env = Env::shareable(|_| {}).await;
    let here = env.demo.gateway_url.clone();
    let (other, there) = env.replica(|_| {}).await;

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
}
