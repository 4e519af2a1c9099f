//! Issue 23 item 2 as a fault: PostgreSQL cut between an attempt's reservation and its
//! verdict.

use std::time::Duration;

use gatehouse::{clock::Clock, store::lockouts::LockoutRow};

use super::{PASSWORD, is_locked, observer, proxied_database, submit_password, under_load};
use crate::helpers::{TestApp, create_user, eventually, skip, spawn_app_with, test_database_url};

async fn lockout_row(store: &gatehouse::store::Store, username: &str) -> LockoutRow {
    let key = gatehouse::auth::guard::login_key(username);
    store
        .run(move |c| gatehouse::store::lockouts::find(c, &key))
        .await
        .unwrap()
        .expect("a lockout row")
}

/// Audit events of one type about `username`'s account, and outbox rows addressed to it.
async fn trail(store: &gatehouse::store::Store, username: &str, event_type: &str) -> usize {
    let (name, event_type) = (username.to_owned(), event_type.to_owned());
    store
        .run(move |c| {
            use diesel::prelude::*;
            use gatehouse::store::schema::{audit_events, users};
            let id: String = users::table
                .filter(users::username.eq(&name))
                .select(users::id)
                .first(c)?;
            let n: i64 = audit_events::table
                .filter(audit_events::subject.eq(&id))
                .filter(audit_events::event_type.eq(&event_type))
                .count()
                .get_result(c)?;
            Ok(n as usize)
        })
        .await
        .unwrap()
}

async fn notices_to(
    store: &gatehouse::store::Store,
    key: &gatehouse::crypto::MasterKey,
    recipient: &str,
) -> usize {
    let recipient = recipient.to_owned();
    store
        .run(move |c| gatehouse::store::outbox::recent(c, 500))
        .await
        .unwrap()
        .iter()
        .filter(|r| r.open_recipient(key).unwrap() == recipient)
        .count()
}

/// Issue 23 item 2: PostgreSQL cut while a wrong password is being checked (after the
/// attempt took its place, before its verdict). The attempt is answered 503 and leaves
/// nothing behind: no count, no lock, no event, no notice. The lock that the next
/// counted failure causes comes with its event and its notices; the admin view and
/// sign-in agree throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_cut_between_reservation_and_verdict_counts_all_or_nothing() {
    let Some(base) = test_database_url() else {
        return skip(
            "postgres_cut_between_reservation_and_verdict_counts_all_or_nothing",
            "GATEHOUSE_TEST_DATABASE_URL not set",
        );
    };
    let (mut proxy, direct, through_proxy) = proxied_database(&base).await;
    let app = spawn_app_with(|c| {
        under_load(c);
        // A hash slow enough to cut the database while it runs.
        c.argon2_memory_kib = 64 * 1024;
        c.argon2_iterations = 8;
        c.database_url = Some(through_proxy.clone());
    })
    .await;
    let db = observer(&direct).await;
    create_user(&app, "carol", PASSWORD, false).await;
    for _ in 0..4 {
        assert_eq!(wrong_password(&app, "carol").await.0, 401);
    }
    assert_eq!(lockout_row(&db, "carol").await.failures, 4);

    let fifth = tokio::spawn({
        let base = app.base.clone();
        async move { wrong_password_at(&base, "carol").await }
    });
    let key = gatehouse::auth::guard::login_key("carol");
    let in_flight = eventually(Duration::from_secs(20), || {
        let (db, key) = (db.clone(), key.clone());
        async move {
            db.run(move |c| gatehouse::store::lockouts::find(c, &key))
                .await
                .unwrap()
                .is_some_and(|row| row.in_flight == 1)
        }
    })
    .await;
    assert!(in_flight, "the fifth attempt never took its place");
    proxy.cut().await;
    let (status, retry_after) = fifth.await.unwrap();
    assert_eq!(status, 503, "the verdict could not be recorded");
    assert!(retry_after);
    proxy.restore().await;

    let row = lockout_row(&db, "carol").await;
    let now = app.clock.now().naive_utc();
    assert_eq!(row.failures, 4, "the attempt answered 503 is not counted");
    assert!(
        !row.is_locked(now),
        "and locks nothing (admin view: locked false)"
    );
    assert_eq!(trail(&db, "carol", "account.locked").await, 0);
    assert_eq!(trail(&db, "carol", "sign_in.failed").await, 4);
    assert_eq!(
        notices_to(&db, &app.state.master_key, "carol@example.org").await,
        0
    );

    // Once its lease has lapsed, the right password signs in: not refused as locked.
    app.clock.advance(chrono::Duration::minutes(1));
    assert!(
        eventually(Duration::from_secs(30), || async {
            app.sign_in(&app.new_client(), "carol", PASSWORD)
                .await
                .status()
                == 303
        })
        .await,
        "the right password was refused after the outage"
    );

    // Five counted failures lock, and the lock comes with its event and its notice.
    for _ in 0..5 {
        assert_eq!(wrong_password(&app, "carol").await.0, 401);
    }
    let row = lockout_row(&db, "carol").await;
    assert!(row.is_locked(app.clock.now().naive_utc()));
    assert_eq!(row.lock_count, 1);
    assert!(
        is_locked(&app, "carol").await,
        "sign-in agrees with the admin view"
    );
    assert_eq!(trail(&db, "carol", "account.locked").await, 1);
    // 4 + 5 counted, and the refusal `is_locked` saw (reason "locked").
    assert_eq!(trail(&db, "carol", "sign_in.failed").await, 10);
    assert_eq!(
        notices_to(&db, &app.state.master_key, "carol@example.org").await,
        1
    );
}

/// One sign-in with a wrong password: status, and whether a `Retry-After` came with it.
async fn wrong_password(app: &TestApp, username: &str) -> (u16, bool) {
    wrong_password_at(&app.base, username).await
}

async fn wrong_password_at(base: &str, username: &str) -> (u16, bool) {
    let client = crate::helpers::client();
    let (steps, _, res) = submit_password(&client, base, username, "Wrong-password-123")
        .await
        .unwrap();
    let res = res.unwrap_or_else(|| panic!("the sign-in page failed: {steps:?}"));
    (
        res.status().as_u16(),
        res.headers().contains_key("retry-after"),
    )
}
