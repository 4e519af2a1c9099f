//! Migrations on both backends, and a second run being a no-op.

use gatehouse::{config::DatabaseTarget, store::Store};

use crate::helpers::{fresh_postgres_url, skip, test_database_url};

async fn migrate_twice(target: DatabaseTarget) {
    let store = tokio::task::spawn_blocking(move || Store::connect(&target, 2))
        .await
        .unwrap()
        .expect("connects");
    let first = store.migrate().await.expect("first run");
    assert!(!first.is_empty(), "an empty database gets every migration");
    let second = store.migrate().await.expect("second run");
    assert!(second.is_empty(), "second run applied {second:?}");
    store.ping().await.expect("ping");
}

#[tokio::test]
async fn migrations_apply_to_an_empty_sqlite_and_rerun_as_no_op() {
    let dir = tempfile::tempdir().unwrap();
    migrate_twice(DatabaseTarget::Sqlite(dir.path().join("gh.db"))).await;
}

#[tokio::test]
async fn migrations_apply_to_an_empty_postgres_and_rerun_as_no_op() {
    let Some(base) = test_database_url() else {
        skip(
            "migrations_apply_to_an_empty_postgres_and_rerun_as_no_op",
            "GATEHOUSE_TEST_DATABASE_URL not set",
        );
        return;
    };
    migrate_twice(DatabaseTarget::Postgres(fresh_postgres_url(&base))).await;
}

#[tokio::test]
async fn an_unreachable_postgres_is_reported_with_its_own_error() {
    let err = tokio::task::spawn_blocking(|| {
        Store::connect(
            &DatabaseTarget::Postgres("postgres://nobody@127.0.0.1:1/none".into()),
            1,
        )
    })
    .await
    .unwrap()
    .unwrap_err()
    .to_string();
    assert!(err.contains("database unavailable"), "{err}");
    assert!(!err.to_lowercase().contains("sqlite"), "{err}");
}
