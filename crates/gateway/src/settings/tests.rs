//! The generic on a kind of its own: one text row, two replicas on one database (SQLite in
//! memory, and the PostgreSQL of `BCSSO_TEST_DATABASE_URL` when set).

use super::*;
use crate::db::tests::databases;

/// A kind kept in one row whose value is the row's text; the text "broken" cannot be read.
/// `OVER`: [`Kind::SAVE_OVER_UNREADABLE`].
struct Text<const OVER: bool> {
    declared: Option<String>,
}

impl<const OVER: bool> Kind for Text<OVER> {
    type Value = Option<String>;
    const WHAT: &'static str = "text";
    const VERSION_ROW: &'static str = "text";
    const SAVE_OVER_UNREADABLE: bool = OVER;

    fn read_only(&self) -> Option<ManageError> {
        self.declared
            .is_some()
            .then_some(ManageError::StoreManagedByFile)
    }

    async fn load(&self, _rows: Rows<'_>, row: Option<&str>) -> Result<Option<String>, LoadError> {
        if self.declared.is_some() {
            return Ok(self.declared.clone());
        }
        match row {
            Some("broken") => Err(LoadError::Broken {
                what: "text".into(),
                reason: "unreadable".into(),
            }),
            row => Ok(row.map(str::to_owned)),
        }
    }
}

/// Replaces the text; the closure's output is the text it started from.
fn set(text: &str) -> impl FnOnce(&Text<false>, &Option<String>) -> SetResult {
    let text = text.to_owned();
    move |_, before| {
        Ok(Edit {
            value: Some(text.clone()),
            version: text,
            writes: Vec::new(),
            out: before.clone(),
        })
    }
}

type SetResult = Result<Edit<Option<String>, Option<String>>, ManageError>;

fn rows(db: &Db) -> Rows<'_> {
    Rows { db, key: None }
}

async fn replica<const OVER: bool>(rows: Rows<'_>) -> Managed<Text<OVER>> {
    Managed::load(Text { declared: None }, rows).await.unwrap()
}

/// Two replicas of a kind that must read what is stored before changing it.
async fn two_replicas(rows: Rows<'_>) -> (Managed<Text<false>>, Managed<Text<false>>) {
    (replica(rows).await, replica(rows).await)
}

#[tokio::test]
async fn a_change_reaches_the_other_replica_at_its_next_refresh() {
    for db in databases().await {
        let rows = rows(&db);
        let (a, b) = two_replicas(rows).await;
        assert!(!b.refresh(rows).await.unwrap(), "nothing stored yet");
        let before = a.change(rows, set("one")).await.unwrap();
        assert_eq!(before, None);
        assert_eq!(a.snapshot().as_deref(), Some("one"));
        assert_eq!(b.snapshot().as_deref(), None, "until it refreshes");
        assert!(b.refresh(rows).await.unwrap());
        assert_eq!(b.snapshot().as_deref(), Some("one"));
        assert!(!b.refresh(rows).await.unwrap(), "no change: no reload");
        // A restarted replica loads it too.
        assert_eq!(
            replica::<false>(rows).await.snapshot().as_deref(),
            Some("one")
        );
    }
}

#[tokio::test]
async fn a_stale_replica_changes_what_is_stored_not_its_snapshot() {
    for db in databases().await {
        let rows = rows(&db);
        let (a, b) = two_replicas(rows).await;
        a.change(rows, set("one")).await.unwrap();
        // B has not polled since; its change starts from A's, and succeeds.
        let before = b.change(rows, set("two")).await.unwrap();
        assert_eq!(before.as_deref(), Some("one"));
        assert_eq!(db.setting("text").await.unwrap().as_deref(), Some("two"));
    }
}

/// The compare-and-swap: B computes its change from version "one"; A's change lands before
/// B writes. B must write nothing and say so, whatever B's change was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_computed_from_a_version_another_replica_replaced_is_refused() {
    for db in databases().await {
        let rows = rows(&db);
        let (a, b) = two_replicas(rows).await;
        a.change(rows, set("one")).await.unwrap();
        let refused = b
            .change(rows, |kind, before| {
                assert_eq!(before.as_deref(), Some("one"));
                let a_lands = a.change(rows, set("from a"));
                tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(a_lands))
                    .unwrap();
                set("from b")(kind, before)
            })
            .await;
        assert!(
            matches!(refused, Err(ManageError::ChangedElsewhere("text"))),
            "{:?}",
            refused.map(|_| ())
        );
        assert_eq!(db.setting("text").await.unwrap().as_deref(), Some("from a"));
        assert_eq!(
            b.snapshot().as_deref(),
            Some("one"),
            "B's change is not in force"
        );
        assert!(b.refresh(rows).await.unwrap());
        assert_eq!(b.snapshot().as_deref(), Some("from a"));
    }
}

#[tokio::test]
async fn an_unreadable_row_is_replaced_only_by_a_kind_whose_change_replaces_it_all() {
    for db in databases().await {
        let rows = rows(&db);
        let (whole, checked) = (replica::<true>(rows).await, replica::<false>(rows).await);
        db.set_setting("text", "broken").await.unwrap();
        // A refresh reports it and keeps the value in force.
        assert!(matches!(
            checked.refresh(rows).await,
            Err(LoadError::Broken { .. })
        ));
        assert_eq!(checked.snapshot().as_deref(), None);
        // A change that must be checked against what is stored cannot be made…
        let refused = checked.change(rows, set("two")).await;
        assert!(matches!(refused, Err(ManageError::Unreadable(_))));
        // …one that replaces everything can, conditioned on the unreadable row.
        whole
            .change(rows, |_, _| {
                Ok(Edit {
                    value: Some("fixed".into()),
                    version: "fixed".into(),
                    writes: Vec::new(),
                    out: (),
                })
            })
            .await
            .unwrap();
        assert!(checked.refresh(rows).await.unwrap());
        assert_eq!(checked.snapshot().as_deref(), Some("fixed"));
    }
}

#[tokio::test]
async fn a_setting_declared_in_the_file_is_read_only_and_never_reloads() {
    let db = Db::connect("sqlite::memory:", "h").await.unwrap();
    let rows = rows(&db);
    let file = Managed::load(
        Text::<false> {
            declared: Some("from the file".into()),
        },
        rows,
    )
    .await
    .unwrap();
    assert!(file.from_file());
    let refused = file.change(rows, set("x")).await;
    assert!(matches!(refused, Err(ManageError::StoreManagedByFile)));
    db.set_setting("text", "stored").await.unwrap();
    assert!(!file.refresh(rows).await.unwrap());
    assert_eq!(file.snapshot().as_deref(), Some("from the file"));
}

#[test]
fn rows_are_read_leniently_but_known_fields_keep_their_types() {
    #[derive(Debug, Default, Serialize, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Row {
        id: Option<String>,
        #[serde(default)]
        domains: Vec<String>,
    }
    let row: Row = read_lenient(r#"{"id":"a","domains":["x"],"added_later":{"y":1}}"#).unwrap();
    assert_eq!(
        row,
        Row {
            id: Some("a".into()),
            domains: vec!["x".into()]
        }
    );
    assert!(read_lenient::<Row>("{not json").is_err());
    assert!(read_lenient::<Row>(r#"{"id":7}"#).is_err());
}
