use super::*;
use crate::domain::{ChannelId, ConnectionId};

/// The databases a test runs on: SQLite in memory, and PostgreSQL too when
/// `BCSSO_TEST_DATABASE_URL` names one (scripts/test sets it). Each handle is bound to a
/// store of its own, so runs sharing a database do not see each other's rows.
pub(crate) async fn databases() -> Vec<Db> {
    let hash = format!("t{}", uuid::Uuid::new_v4().simple());
    let mut out = vec![Db::connect("sqlite::memory:", &hash).await.unwrap()];
    if let Ok(url) = std::env::var("BCSSO_TEST_DATABASE_URL") {
        out.push(Db::connect(&url, &hash).await.unwrap());
    }
    out
}

fn link(subject: &str, customer_id: i64) -> IdentityLink {
    IdentityLink {
        issuer: "https://idp.test".into(),
        subject: subject.into(),
        connection: ConnectionId::parse("acme").unwrap(),
        customer_id,
        channel_ids: Some(vec![ChannelId(1), ChannelId(2)]),
        email_at_link: "ada@acme.test".into(),
        created_at: 100,
        last_sign_in_at: 100,
    }
}

fn event(at: i64, kind: AuditKind) -> AuditEvent {
    AuditEvent {
        at,
        kind,
        ..Default::default()
    }
}

#[tokio::test]
async fn links_round_trip_and_the_first_insert_wins() {
    for db in databases().await {
        assert!(
            db.find_link("https://idp.test", "u1")
                .await
                .unwrap()
                .is_none()
        );
        let first = db.insert_link(&link("u1", 7)).await.unwrap();
        assert_eq!(first, link("u1", 7));
        let second = db.insert_link(&link("u1", 8)).await.unwrap();
        assert_eq!(second.customer_id, 7, "{:?}", db.backend());
        db.touch_link(&first, 200).await.unwrap();
        let found = db
            .find_link("https://idp.test", "u1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.last_sign_in_at, 200);
        let mut global = link("u2", 8);
        global.channel_ids = None;
        db.insert_link(&global).await.unwrap();
        let of_customer = db.links_of_customer(8).await.unwrap();
        assert_eq!(of_customer.len(), 1);
        assert_eq!(of_customer[0].channel_ids, None);
    }
}

#[tokio::test]
async fn a_handle_sees_only_its_own_stores_rows() {
    for db in databases().await {
        let other = db.for_store(&format!("{}-other", db.store_hash()));
        db.insert_link(&link("u1", 7)).await.unwrap();
        db.record(&event(10, AuditKind::SignInSucceeded))
            .await
            .unwrap();
        db.set_setting("k", "mine").await.unwrap();
        db.create_trial("ticket", "acme", "admin", 10)
            .await
            .unwrap();

        assert!(
            other
                .find_link("https://idp.test", "u1")
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(other.count_links().await.unwrap(), 0);
        assert!(other.audit_events(10).await.unwrap().is_empty());
        assert_eq!(other.setting("k").await.unwrap(), None);
        assert_eq!(other.start_trial("ticket", 0).await.unwrap(), None);
        // The same login may link to another customer in another store.
        other.insert_link(&link("u1", 9)).await.unwrap();
        assert_eq!(db.links_of_customer(7).await.unwrap().len(), 1);
        assert_eq!(
            db.start_trial("ticket", 0).await.unwrap().as_deref(),
            Some("acme")
        );
    }
}

#[tokio::test]
async fn an_unreadable_link_row_is_an_error_not_a_global_account() {
    for db in databases().await {
        db.insert_link(&link("u1", 7)).await.unwrap();
        let corrupt = |sql: &'static str, value: &'static str| {
            let db = db.clone();
            async move {
                sqlx::query(sql)
                    .bind(value)
                    .bind(db.store_hash())
                    .execute(&db.pool)
                    .await
                    .unwrap();
                db.find_link("https://idp.test", "u1").await
            }
        };
        // `None` would let the customer sign in on every channel (SECURITY.md rule 15).
        assert!(matches!(
            corrupt(
                "UPDATE identity_links SET channel_ids = $1 WHERE store_hash = $2",
                "[1,"
            )
            .await,
            Err(DbError::BadChannelIds(_))
        ));
        assert!(matches!(
            corrupt("UPDATE identity_links SET connection = $1 WHERE store_hash = $2", "Not An Id").await,
            Err(DbError::BadConnectionId(id)) if id == "Not An Id"
        ));
    }
}

#[tokio::test]
async fn audit_events_are_recorded_listed_and_pruned() {
    for db in databases().await {
        for (at, kind) in [
            (10, AuditKind::SignInRefused),
            (20, AuditKind::SignInSucceeded),
        ] {
            db.record(&AuditEvent {
                reason: (kind == AuditKind::SignInRefused).then(|| "email_unverified".into()),
                client_ip: Some("2001:db8::7".into()),
                user_agent: Some("Mozilla/5.0 (test)".into()),
                ..event(at, kind)
            })
            .await
            .unwrap();
        }
        let events = db.audit_events(10).await.unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].kind, AuditKind::SignInSucceeded);
        assert_eq!(events[1].reason.as_deref(), Some("email_unverified"));
        assert_eq!(events[1].client_ip.as_deref(), Some("2001:db8::7"));
        assert_eq!(events[1].user_agent.as_deref(), Some("Mozilla/5.0 (test)"));
        assert!(db.prune_audit(15).await.unwrap() >= 1);
        assert_eq!(db.audit_events(10).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn links_and_events_can_be_searched_and_links_removed() {
    for db in databases().await {
        let mut grace = link("u2", 9);
        grace.email_at_link = "grace_h@acme.test".into();
        db.insert_link(&link("u1", 7)).await.unwrap();
        db.insert_link(&grace).await.unwrap();
        assert_eq!(db.count_links().await.unwrap(), 2);
        let found = db.search_links("GRACE_", 10).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].subject, "u2");
        assert_eq!(db.search_links("acme.test", 10).await.unwrap().len(), 2);
        assert!(db.search_links("100%", 10).await.unwrap().is_empty());
        // LIKE's wildcards typed by the admin are taken literally.
        assert_eq!(db.search_links("_", 10).await.unwrap().len(), 1);
        assert!(db.search_links("%", 10).await.unwrap().is_empty());
        let removed = db.delete_link("https://idp.test", "u2").await.unwrap();
        assert_eq!(removed.unwrap().customer_id, 9);
        assert!(
            db.delete_link("https://idp.test", "u2")
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(db.count_links().await.unwrap(), 1);

        for (at, kind, connection, email) in [
            (10, AuditKind::SignInRefused, "acme", "eve@acme.test"),
            (20, AuditKind::SignInSucceeded, "acme", "ada@acme.test"),
            (30, AuditKind::SignInSucceeded, "other", "oscar@other.test"),
        ] {
            db.record(&AuditEvent {
                connection: Some(connection.into()),
                email: Some(email.into()),
                ..event(at, kind)
            })
            .await
            .unwrap();
        }
        let cases = [
            (AuditFilter::default(), vec![30, 20, 10]),
            (
                AuditFilter {
                    from: Some(15),
                    to: Some(25),
                    ..Default::default()
                },
                vec![20],
            ),
            (
                AuditFilter {
                    connection: Some("acme".into()),
                    ..Default::default()
                },
                vec![20, 10],
            ),
            (
                AuditFilter {
                    kind: Some(AuditKind::SignInRefused),
                    ..Default::default()
                },
                vec![10],
            ),
            (
                AuditFilter {
                    email: Some("OSCAR".into()),
                    ..Default::default()
                },
                vec![30],
            ),
        ];
        for (filter, expected) in cases {
            let found = db
                .search_audit(&AuditFilter {
                    limit: 50,
                    ..filter.clone()
                })
                .await
                .unwrap();
            let at: Vec<i64> = found.iter().map(|e| e.at).collect();
            assert_eq!(at, expected, "{filter:?}");
        }
    }
}

#[tokio::test]
async fn connections_and_settings_round_trip() {
    for db in databases().await {
        let mut c = StoredConnection {
            id: "acme".into(),
            settings: "{}".into(),
            client_secret_sealed: "v1:x".into(),
            enabled: true,
            created_at: 1,
            updated_at: 1,
        };
        let write = |expected: Option<&'static str>, next: &'static str, w: SettingsWrite| {
            let db = db.clone();
            async move { db.write_versioned("v", expected, next, &[w]).await.unwrap() }
        };
        assert!(write(None, "1", SettingsWrite::SaveConnection(c.clone())).await);
        c.enabled = false;
        c.updated_at = 2;
        c.created_at = 99; // ignored on update
        assert!(write(Some("1"), "2", SettingsWrite::SaveConnection(c.clone())).await);
        let listed = db.list_connections().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert!(!listed[0].enabled);
        assert_eq!((listed[0].created_at, listed[0].updated_at), (1, 2));
        // A writer that read an older version writes nothing, not even its rows.
        let stale = SettingsWrite::DeleteConnection("acme".into());
        assert!(!write(Some("1"), "3", stale.clone()).await);
        assert!(!write(None, "3", stale.clone()).await);
        assert_eq!(db.list_connections().await.unwrap().len(), 1);
        let enable = SettingsWrite::SetConnectionEnabled {
            id: "acme".into(),
            enabled: true,
            at: 3,
        };
        assert!(write(Some("2"), "3", enable).await);
        assert!(db.list_connections().await.unwrap()[0].enabled);
        assert!(write(Some("3"), "4", stale).await);
        assert!(db.list_connections().await.unwrap().is_empty());
        assert_eq!(db.setting("k").await.unwrap(), None);
        db.set_setting("k", "a").await.unwrap();
        db.set_setting("k", "b").await.unwrap();
        assert_eq!(db.setting("k").await.unwrap().as_deref(), Some("b"));
        // Compare-and-swap: only over the value the writer saw.
        assert!(!db.replace_setting("k", Some("a"), "c").await.unwrap());
        assert!(!db.replace_setting("k", None, "c").await.unwrap());
        assert!(db.replace_setting("k", Some("b"), "c").await.unwrap());
        assert!(db.replace_setting("new", None, "1").await.unwrap());
        assert_eq!(db.setting("k").await.unwrap().as_deref(), Some("c"));
    }
}

#[tokio::test]
async fn trial_tickets_start_once_and_only_while_fresh() {
    for db in databases().await {
        db.create_trial("fresh", "acme", "admin", 100)
            .await
            .unwrap();
        db.create_trial("old", "acme", "admin", 10).await.unwrap();
        assert_eq!(db.start_trial("old", 50).await.unwrap(), None);
        assert_eq!(
            db.start_trial("fresh", 50).await.unwrap().as_deref(),
            Some("acme")
        );
        assert_eq!(db.start_trial("fresh", 50).await.unwrap(), None);
        assert_eq!(db.trial("fresh").await.unwrap().unwrap().result, None);
        db.finish_trial("fresh", "{\"decision\":\"allowed\"}")
            .await
            .unwrap();
        let trial = db.trial("fresh").await.unwrap().unwrap();
        assert_eq!(trial.actor, "admin");
        assert_eq!(trial.result.as_deref(), Some("{\"decision\":\"allowed\"}"));
        assert_eq!(db.trial("missing").await.unwrap(), None);
    }
}

#[tokio::test]
async fn a_file_database_is_created_and_migrated_once() {
    let dir = std::env::temp_dir().join(format!("bcsso-db-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("gw.sqlite").display());
    Db::connect(&url, "filetest")
        .await
        .unwrap()
        .insert_link(&link("u1", 3))
        .await
        .unwrap();
    // Reopening runs the migrations again (a no-op) and keeps the data.
    let again = Db::connect(&url, "filetest").await.unwrap();
    assert!(
        again
            .find_link("https://idp.test", "u1")
            .await
            .unwrap()
            .is_some()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The link look-up's kept connection (issue 12) is a shortcut, never a point of failure.
/// A SQLite file's look-ups use it; on PostgreSQL, when the server drops it (a restart, a
/// proxy's idle timeout), the look-up that finds it broken is answered by the pool and the
/// next one opens it again.
#[tokio::test]
async fn the_kept_reader_is_a_shortcut_never_a_point_of_failure() {
    let dir = std::env::temp_dir().join(format!("bcsso-db-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = format!("sqlite://{}", dir.join("gw.sqlite").display());
    let hash = format!("t{}", uuid::Uuid::new_v4().simple());
    let mut urls = vec![file];
    urls.extend(std::env::var("BCSSO_TEST_DATABASE_URL").ok());
    for url in urls {
        let db = Db::connect(&url, &hash).await.unwrap();
        db.insert_link(&link("u1", 3)).await.unwrap();
        let hot = db.hot.clone().expect("a kept reader");
        assert!(
            db.find_link("https://idp.test", "u1")
                .await
                .unwrap()
                .is_some()
        );
        assert!(hot.is_open().await, "{url}");
        if db.backend() == Backend::Postgres {
            let pid = hot.backend_pid().await.expect("its backend");
            let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
                .bind(pid)
                .fetch_one(&db.pool)
                .await
                .unwrap();
            assert!(killed);
            // Broken under the look-up: the pool answers, nothing fails.
            let found = db.find_link("https://idp.test", "u1").await.unwrap();
            assert_eq!(found.map(|l| l.customer_id), Some(3));
            assert!(!hot.is_open().await, "dropped");
            db.find_link("https://idp.test", "u1").await.unwrap();
            assert!(hot.is_open().await, "opened again");
            assert_ne!(hot.backend_pid().await, Some(pid));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn bad_urls_are_explained_without_passwords() {
    let e = Db::connect("mysql://u:hunter2@db/x", "h")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("not supported") && !e.contains("hunter2"), "{e}");
    let e = Db::connect("sqlite:///nonexistent-dir/x/y.sqlite", "h")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("cannot open the database"), "{e}");
}

/// SECURITY.md rule 20 at the database: one subject of an issuer per customer, whatever
/// the timing of two first sign-ins; another issuer may still link the same customer.
#[tokio::test]
async fn a_customer_takes_one_subject_per_issuer() {
    for db in databases().await {
        db.insert_link(&link("first", 7)).await.unwrap();
        let second = db.insert_link(&link("second", 7)).await;
        assert!(
            matches!(second, Err(DbError::CustomerAlreadyLinked)),
            "{second:?}"
        );
        let mut other_issuer = link("first", 7);
        other_issuer.issuer = "https://other-idp.test".into();
        db.insert_link(&other_issuer).await.unwrap();
        assert_eq!(db.links_of_customer(7).await.unwrap().len(), 2);
    }
}

/// Migration 0006 keeps the link the gateway would have kept (the earliest, then the
/// smallest subject) of each issuer and customer, then enforces one.
#[tokio::test]
async fn migration_0006_keeps_the_first_link_of_each_issuer() {
    let db = Db::connect("sqlite::memory:", "m6").await.unwrap();
    sqlx::query("DROP INDEX identity_links_one_per_issuer")
        .execute(&db.pool)
        .await
        .unwrap();
    let at = |subject: &str, created_at| IdentityLink {
        created_at,
        ..link(subject, 9)
    };
    for l in [at("late", 300), at("b-early", 100), at("a-early", 100)] {
        db.insert_link(&l).await.unwrap();
    }
    db.insert_link(&link("alone", 10)).await.unwrap();
    sqlx::raw_sql(include_str!(
        "../../migrations/sqlite/0006_one_link_per_issuer.sql"
    ))
    .execute(&db.pool)
    .await
    .unwrap();
    let kept: Vec<String> = db
        .links_of_customer(9)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.subject)
        .collect();
    assert_eq!(kept, ["a-early"]);
    assert_eq!(db.links_of_customer(10).await.unwrap().len(), 1);
    assert!(matches!(
        db.insert_link(&link("again", 9)).await,
        Err(DbError::CustomerAlreadyLinked)
    ));
}
