use std::sync::Arc;

use diesel::prelude::*;
use zeroize::Zeroizing;

use super::*;
use crate::{
    domain::{Email, OrgName, OrgPolicy, Role, Username},
    store::{
        DbConnection, orgs,
        schema::{outbox, password_history, users},
        testing::{self, TestSealer, t0},
        users::{self as accounts, NewUser},
    },
};

fn pii_with(sealer: TestSealer, index_key: u8) -> Pii {
    Pii::new(Arc::new(sealer), Zeroizing::new([index_key; 32]))
}

#[test]
fn the_blind_index_ignores_case_and_says_nothing_of_the_address() {
    let pii = testing::pii();
    let index = pii.email_index("Pat.Doe@Example.org");
    assert_eq!(index, pii.email_index("pat.doe@example.org"));
    assert_eq!(index, pii.email_index(" PAT.DOE@EXAMPLE.ORG "));
    assert_ne!(index, pii.email_index("pat.doe@example.com"));
    assert_eq!(index.len(), 64);
    assert!(index.bytes().all(|b| b.is_ascii_hexdigit()));
    // Another installation (another index key) gets other values for the same address.
    let other = pii_with(TestSealer::new("0000aaaa"), 8);
    assert_ne!(index, other.email_index("pat.doe@example.org"));
}

#[test]
fn a_clear_phc_string_is_read_and_marked_for_wrapping() {
    let pii = testing::pii();
    let (phc, in_clear) = pii
        .open_hash(
            "password-hash:u1",
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA",
            "u1",
        )
        .unwrap();
    assert!(in_clear);
    assert!(phc.starts_with("$argon2id$"));
    let wrapped = pii.wrap_hash("u1", &phc);
    assert!(wrapped.starts_with("v1.0000aaaa."));
    assert_eq!(
        pii.open_hash("password-hash:u1", &wrapped, "u1").unwrap(),
        (phc.clone(), false)
    );
    // Wrapped for one user, it is nobody else's.
    assert!(pii.open_hash("password-hash:u2", &wrapped, "u2").is_err());
}

async fn store_with_org(dir: &tempfile::TempDir) -> (Store, String) {
    let store = testing::sqlite(dir, 2).await;
    let org = store
        .transaction(|c| {
            orgs::insert(
                c,
                &OrgName::parse("default").unwrap(),
                "Default",
                &OrgPolicy::default(),
                t0(),
            )
        })
        .await
        .unwrap();
    (store, org.id)
}

fn new_user(org: &str, name: &str, email: &str, display: Option<&str>) -> NewUser {
    NewUser {
        org_id: org.into(),
        username: Username::parse(name).unwrap(),
        email: Email::parse(email).unwrap(),
        display_name: display.map(str::to_owned),
        role: Role::User,
        password_hash: Some(format!("$argon2id$v=19$m=64,t=1,p=1$c2FsdA${name}")),
        must_change_password: false,
    }
}

/// Every text column of `users` and `password_history`, as stored.
fn raw_user_text(c: &mut DbConnection) -> String {
    let rows: Vec<(String, String, Option<String>, Option<String>)> = users::table
        .select((
            users::username,
            users::email_sealed,
            users::display_name_sealed,
            users::password_hash,
        ))
        .load(c)
        .unwrap();
    let history: Vec<String> = password_history::table
        .select(password_history::password_hash)
        .load(c)
        .unwrap();
    format!("{rows:?} {history:?}")
}

#[tokio::test]
async fn users_are_stored_sealed_and_read_back_clear() {
    let dir = tempfile::tempdir().unwrap();
    let (store, org) = store_with_org(&dir).await;
    let pii = testing::pii();
    let new = new_user(&org, "pat", "Pat.Doe@Example.org", Some("Pat Doe"));
    let p = pii.clone();
    let user = store
        .transaction(move |c| accounts::insert(c, &p, &new, t0()))
        .await
        .unwrap();
    assert_eq!(user.email, "Pat.Doe@example.org");
    assert_eq!(user.display_name.as_deref(), Some("Pat Doe"));
    assert!(
        user.password_hash
            .as_deref()
            .unwrap()
            .starts_with("$argon2id$")
    );
    assert!(!user.password_hash_in_clear);
    let raw = store.run(|c| Ok(raw_user_text(c))).await.unwrap();
    for clear in ["Pat.Doe", "pat.doe", "Pat Doe", "$argon2"] {
        assert!(!raw.contains(clear), "{clear} in {raw}");
    }
    // Debug output (logs) shows none of it either.
    let debug = format!("{user:?}");
    assert!(
        !debug.contains("Pat") && !debug.contains("argon2"),
        "{debug}"
    );
}

#[tokio::test]
async fn a_sealed_field_copied_into_another_row_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let (store, org) = store_with_org(&dir).await;
    let pii = testing::pii();
    let (a, b) = (
        new_user(&org, "ann", "ann@example.org", None),
        new_user(&org, "ben", "ben@example.org", None),
    );
    let p = pii.clone();
    let (ann, ben) = store
        .transaction(move |c| {
            Ok((
                accounts::insert(c, &p, &a, t0())?,
                accounts::insert(c, &p, &b, t0())?,
            ))
        })
        .await
        .unwrap();
    let (ann_id, ben_id) = (ann.id.clone(), ben.id.clone());
    let p = pii.clone();
    let read = store
        .run(move |c| {
            let theirs: String = users::table
                .find(&ann_id)
                .select(users::email_sealed)
                .first(c)?;
            diesel::update(users::table.find(&ben_id))
                .set(users::email_sealed.eq(theirs))
                .execute(c)?;
            accounts::find_by_id(c, &p, &ben_id)
        })
        .await;
    let Err(StoreError::Query(message)) = read else {
        panic!("a swapped address opened: {read:?}");
    };
    assert!(message.contains(&ben.id), "{message}");
    assert!(!message.contains("ann@"), "{message}");
}

#[tokio::test]
async fn lookups_by_address_use_the_blind_index_whole_and_in_any_case() {
    let dir = tempfile::tempdir().unwrap();
    let (store, org) = store_with_org(&dir).await;
    let pii = testing::pii();
    let rows = vec![
        new_user(&org, "pat1", "Pat@Example.org", None),
        new_user(&org, "pat2", "pat@example.org", None),
        new_user(&org, "quinn", "quinn@example.org", None),
    ];
    let p = pii.clone();
    store
        .transaction(move |c| {
            for r in &rows {
                accounts::insert(c, &p, r, t0())?;
            }
            Ok(())
        })
        .await
        .unwrap();
    let p = pii.clone();
    let orgs = vec![org.clone()];
    let (by_email, exact, part, name) = store
        .run(move |c| {
            let email = Email::parse("PAT@EXAMPLE.ORG").unwrap();
            Ok((
                accounts::find_by_email(c, &p, &email, 10)?,
                accounts::search(c, &p, &orgs, "QUINN@example.org", 10)?,
                accounts::search(c, &p, &orgs, "example.org", 10)?,
                accounts::search(c, &p, &orgs, "pat", 10)?,
            ))
        })
        .await
        .unwrap();
    let names = |rows: Vec<crate::store::users::UserRow>| {
        rows.into_iter().map(|u| u.username).collect::<Vec<_>>()
    };
    assert_eq!(
        names(by_email),
        ["pat1", "pat2"],
        "both accounts at one address"
    );
    assert_eq!(names(exact), ["quinn"]);
    assert!(part.is_empty(), "a part of an address matches nobody");
    assert_eq!(names(name), ["pat1", "pat2"]);
}

/// Rows as the schema migration leaves those of an earlier release: clear text in the
/// renamed columns, no blind index, clear PHC strings, an outbox row's recipient waiting
/// in `legacy_recipient`.
fn write_legacy_rows(c: &mut DbConnection, org: &str) -> QueryResult<()> {
    diesel::sql_query(format!(
        "INSERT INTO users (id, org_id, username, email_sealed, display_name_sealed, role, \
         status, password_hash, must_change_password, created_at, updated_at) VALUES \
         ('old-1', '{org}', 'olga', 'Olga@Example.org', 'Olga Old', 'user', 'active', \
          '$argon2id$v=19$m=64,t=1,p=1$c2FsdA$b2xnYQ', 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00'), \
         ('old-2', '{org}', 'oscar', 'oscar@example.org', NULL, 'user', 'active', NULL, 0, \
          '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
    ))
    .execute(c)?;
    diesel::sql_query(
        "INSERT INTO password_history (id, user_id, password_hash, created_at) VALUES \
         ('h-1', 'old-1', '$argon2id$v=19$m=64,t=1,p=1$c2FsdA$b2xnYQ', '2026-01-01 00:00:00')",
    )
    .execute(c)?;
    diesel::sql_query(
        "INSERT INTO outbox (id, kind, recipient_sealed, legacy_recipient, subject, attempts, \
         next_attempt_at, status, created_at) VALUES ('m-1', 'email', '', 'Olga@Example.org', \
         'Reset your password', 0, '2026-01-01 00:00:00', 'pending', '2026-01-01 00:00:00')",
    )
    .execute(c)?;
    Ok(())
}

#[tokio::test]
async fn legacy_rows_are_sealed_in_place_once() {
    let dir = tempfile::tempdir().unwrap();
    let (store, org) = store_with_org(&dir).await;
    store
        .run(move |c| Ok(write_legacy_rows(c, &org)?))
        .await
        .unwrap();
    let pii = testing::pii();
    // Not readable before the data migration: never taken for sealed data.
    let p = pii.clone();
    assert!(
        store
            .run(move |c| accounts::find_by_id(c, &p, "old-1"))
            .await
            .is_err()
    );

    let done = seal_legacy(&store, &pii, 1).await.unwrap();
    assert_eq!(
        done,
        LegacySealed {
            users: 2,
            password_history: 1,
            outbox: 1
        }
    );
    assert_eq!(
        seal_legacy(&store, &pii, 1).await.unwrap(),
        LegacySealed::default()
    );

    let raw = store.run(|c| Ok(raw_user_text(c))).await.unwrap();
    for clear in ["Olga@", "olga@", "Olga Old", "oscar@", "$argon2"] {
        assert!(!raw.contains(clear), "{clear} in {raw}");
    }
    let p = pii.clone();
    let (olga, found, history, mail) = store
        .run(move |c| {
            let email = Email::parse("OLGA@example.org").unwrap();
            Ok((
                accounts::find_by_id(c, &p, "old-1")?.unwrap(),
                accounts::find_by_email(c, &p, &email, 10)?,
                accounts::recent_password_hashes(c, &p, "old-1", 5)?,
                crate::store::outbox::find(c, "m-1")?.unwrap(),
            ))
        })
        .await
        .unwrap();
    assert_eq!(olga.email, "Olga@Example.org");
    assert_eq!(olga.display_name.as_deref(), Some("Olga Old"));
    assert!(!olga.password_hash_in_clear, "wrapped at start-up");
    assert_eq!(found.len(), 1);
    assert_eq!(history, [olga.password_hash.clone().unwrap()]);
    assert_eq!(
        mail.open_recipient(pii.sealer()).unwrap(),
        "Olga@Example.org"
    );
    let legacy: Option<String> = store
        .run(|c| {
            Ok(outbox::table
                .find("m-1")
                .select(outbox::legacy_recipient)
                .first(c)?)
        })
        .await
        .unwrap();
    assert_eq!(legacy, None);
}

#[tokio::test]
async fn a_clear_hash_is_wrapped_unless_it_changed_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let (store, org) = store_with_org(&dir).await;
    let pii = testing::pii();
    let new = new_user(&org, "kim", "kim@example.org", None);
    let p = pii.clone();
    let kim = store
        .transaction(move |c| accounts::insert(c, &p, &new, t0()))
        .await
        .unwrap();
    let (id, phc) = (kim.id.clone(), kim.password_hash.clone().unwrap());
    let p = pii.clone();
    let (stale, fresh, row) = store
        .run(move |c| {
            diesel::update(users::table.find(&id))
                .set(users::password_hash.eq(&phc))
                .execute(c)?;
            let read = accounts::find_by_id(c, &p, &id)?.unwrap();
            assert!(read.password_hash_in_clear);
            let stale = accounts::wrap_clear_hash(c, &p, &id, "$argon2id$another")?;
            let fresh = accounts::wrap_clear_hash(c, &p, &id, &phc)?;
            Ok((stale, fresh, accounts::find_by_id(c, &p, &id)?.unwrap()))
        })
        .await
        .unwrap();
    assert!(!stale && fresh);
    assert!(!row.password_hash_in_clear);
    assert_eq!(row.password_hash, kim.password_hash);
}

#[tokio::test]
async fn reseal_moves_every_value_to_the_new_key_and_they_still_open() {
    let dir = tempfile::tempdir().unwrap();
    let (store, org) = store_with_org(&dir).await;
    let old = testing::pii();
    let rows = vec![
        new_user(&org, "ann", "ann@example.org", Some("Ann")),
        new_user(&org, "ben", "ben@example.org", None),
        new_user(&org, "cy", "cy@example.org", Some("Cy")),
    ];
    let p = old.clone();
    let ids: Vec<String> = store
        .transaction(move |c| {
            let mut ids = Vec::new();
            for r in &rows {
                ids.push(accounts::insert(c, &p, r, t0())?.id);
            }
            Ok(ids)
        })
        .await
        .unwrap();
    // During a rotation: seals under the new key, opens both.
    let rotating = TestSealer {
        kid: "0000bbbb".into(),
        opens: vec!["0000aaaa".into(), "0000bbbb".into()],
    };
    let mut passes = Vec::new();
    let total = store
        .run(move |c| {
            let mut total = 0;
            loop {
                let n = rotate_users(c, &rotating, "0000aaaa", 2)?;
                passes.push(n);
                if n == 0 {
                    return Ok((total, passes));
                }
                total += n;
            }
        })
        .await
        .unwrap();
    // Three emails, two display names, three hashes and three history rows; then done.
    assert_eq!(total.0, 11, "{:?}", total.1);
    let raw = store.run(|c| Ok(raw_user_text(c))).await.unwrap();
    assert!(!raw.contains("v1.0000aaaa."), "{raw}");
    let after = pii_with(TestSealer::new("0000bbbb"), 7);
    let read = store
        .run(move |c| {
            let mut out = Vec::new();
            for id in &ids {
                let u = accounts::find_by_id(c, &after, id)?.unwrap();
                out.push((u.username, u.email, u.display_name));
            }
            let hashes = accounts::recent_password_hashes(c, &after, &ids[0], 5)?;
            let by_email =
                accounts::find_by_email(c, &after, &Email::parse("ANN@example.org").unwrap(), 5)?;
            Ok((out, hashes, by_email.len()))
        })
        .await
        .unwrap();
    assert_eq!(
        read.0[0],
        ("ann".into(), "ann@example.org".into(), Some("Ann".into()))
    );
    assert_eq!(read.1.len(), 1);
    assert_eq!(read.2, 1, "the blind index did not change");
}

#[tokio::test]
async fn reseal_names_the_row_whose_value_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let (store, org) = store_with_org(&dir).await;
    let new = new_user(&org, "dee", "dee@example.org", None);
    let user = store
        .transaction(move |c| accounts::insert(c, &testing::pii(), &new, t0()))
        .await
        .unwrap();
    // A sealer that cannot open the old key's values.
    let stranger = TestSealer::new("0000cccc");
    let id = user.id.clone();
    let result = store
        .run(move |c| rotate_users(c, &stranger, "0000aaaa", 10))
        .await;
    let Err(StoreError::Query(message)) = result else {
        panic!("{result:?}");
    };
    assert!(
        message.contains(&id) && message.contains("users."),
        "{message}"
    );
    // Nothing was changed.
    let raw = store.run(|c| Ok(raw_user_text(c))).await.unwrap();
    assert!(raw.contains("v1.0000aaaa."));
    // A kid that is no kid is refused before any query.
    let bad = store
        .run(|c| rotate_users(c, &TestSealer::new("0000bbbb"), "%", 10))
        .await;
    assert!(bad.is_err());
}

/// One pass of every users re-sealer of the rotation's registry, through a rewrap made
/// of `sealer`, as `keys::master` makes one of the master key.
fn rotate_users(
    c: &mut DbConnection,
    sealer: &TestSealer,
    from_kid: &str,
    limit: i64,
) -> Result<usize, StoreError> {
    use secrecy::ExposeSecret as _;
    let rewrap = |context: &str, sealed: &str| {
        let clear = sealer.open(context, sealed)?;
        Ok(sealer.seal(context, clear.expose_secret()))
    };
    let mut done = 0;
    for reseal in [
        accounts::rotate_emails,
        accounts::rotate_display_names,
        accounts::rotate_password_hashes,
        accounts::rotate_password_history,
    ] {
        done += reseal(c, &rewrap, from_kid, limit)?;
    }
    Ok(done)
}
