use super::*;
use crate::{
    domain::{OrgName, OrgPolicy},
    store::{Store, orgs, testing},
};

const PHC: &str = "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA";

async fn store_with_org(dir: &tempfile::TempDir) -> (Store, String) {
    let store = testing::sqlite(dir, 2).await;
    let org = store
        .transaction(|c| {
            orgs::insert(
                c,
                &OrgName::parse("default").unwrap(),
                "Default",
                &OrgPolicy::default(),
                testing::t0(),
            )
        })
        .await
        .unwrap();
    (store, org.id)
}

fn new_user(org: &str, n: usize) -> NewUser {
    NewUser {
        org_id: org.into(),
        username: Username::parse(&format!("user{n}")).unwrap(),
        email: Email::parse(&format!("User{n}@Example.org")).unwrap(),
        display_name: n.is_multiple_of(2).then(|| format!("User {n}")),
        role: Role::User,
        password_hash: Some(PHC.into()),
        must_change_password: false,
    }
}

#[tokio::test]
async fn users_created_in_bulk_read_back_as_one_created_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (store, org) = store_with_org(&dir).await;
    let pii = testing::pii();
    // More than one statement's worth on SQLite.
    let news: Vec<NewUser> = (0..2600).map(|n| new_user(&org, n)).collect();
    let p = pii.clone();
    let created = store
        .transaction(move |c| insert_many(c, &p, &news, testing::t0()))
        .await
        .unwrap();
    assert_eq!(created.len(), 2600);
    let p = pii.clone();
    let (user, history, by_email) = store
        .run(move |c| {
            let user = find_by_username(c, &p, &Username::parse("user2598").unwrap())?.unwrap();
            let history = recent_password_hashes(c, &p, &user.id, 5)?;
            let email = Email::parse("user2598@example.org").unwrap();
            let by_email = find_by_email(c, &p, &email, 5)?;
            Ok((user, history, by_email))
        })
        .await
        .unwrap();
    assert_eq!(user.email, "User2598@example.org");
    assert_eq!(user.display_name.as_deref(), Some("User 2598"));
    assert_eq!(user.password_hash.as_deref(), Some(PHC));
    assert!(!user.password_hash_in_clear, "the hash is wrapped");
    assert_eq!(user.status(), UserStatus::Active);
    assert_eq!(user.password_changed_at, Some(testing::t0()));
    assert_eq!(history, [PHC]);
    assert_eq!(by_email.len(), 1);
    assert_eq!(by_email[0].id, user.id);
    assert_eq!(created[2598], user.id, "ids in the order given");
}

#[tokio::test]
async fn a_taken_username_fails_the_bulk_insert_and_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, org) = store_with_org(&dir).await;
    let pii = testing::pii();
    let first = vec![new_user(&org, 7)];
    let p = pii.clone();
    store
        .transaction(move |c| insert_many(c, &p, &first, testing::t0()))
        .await
        .unwrap();
    let again: Vec<NewUser> = (0..10).map(|n| new_user(&org, n)).collect();
    let p = pii.clone();
    let refused = store
        .transaction(move |c| insert_many(c, &p, &again, testing::t0()))
        .await;
    assert!(matches!(refused, Err(StoreError::Conflict)), "{refused:?}");
    let p = pii.clone();
    let listed = store.run(move |c| list_by_org(c, &p, &org)).await.unwrap();
    assert_eq!(listed.len(), 1);
}
