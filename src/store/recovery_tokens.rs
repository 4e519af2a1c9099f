//! Single-use links mailed for a password reset or an invitation (DESIGN §7).
//!
//! Only the SHA-256 of a token is stored (`auth::token_hash`), so a copy of the database
//! hands out no working link. A user has at most one live token per purpose: issuing one
//! deletes the others in the same transaction, which is what makes an older link stop
//! working. Taking a token is one conditional UPDATE (`used_at IS NULL AND expires_at >
//! now`); both backends serialise writers to a row, so of two submissions of one link
//! exactly one wins. A new password set by any route deletes the unused tokens
//! (`users::set_password`), so a link mailed before the change is void after it.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{DbConnection, StoreError, new_id, schema::recovery_tokens};

/// What a token is for; a token of one purpose is unknown to the other's pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `/reset/{token}`: choose a new password.
    Reset,
    /// `/invite/{token}`: choose the first password of an invited account.
    Invite,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reset => "reset",
            Self::Invite => "invite",
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = recovery_tokens)]
pub struct RecoveryTokenRow {
    pub id: String,
    pub user_id: String,
    pub purpose: String,
    pub token_hash: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub used_at: Option<NaiveDateTime>,
}

/// Stores a new token for `user_id` and deletes every other token of that purpose, used
/// or not: only the newest link works.
pub fn issue(
    conn: &mut DbConnection,
    user_id: &str,
    purpose: Purpose,
    token_hash: &str,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> Result<(), StoreError> {
    diesel::delete(
        recovery_tokens::table
            .filter(recovery_tokens::user_id.eq(user_id))
            .filter(recovery_tokens::purpose.eq(purpose.as_str())),
    )
    .execute(conn)?;
    diesel::insert_into(recovery_tokens::table)
        .values((
            recovery_tokens::id.eq(new_id()),
            recovery_tokens::user_id.eq(user_id),
            recovery_tokens::purpose.eq(purpose.as_str()),
            recovery_tokens::token_hash.eq(token_hash),
            recovery_tokens::created_at.eq(now),
            recovery_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// The live token with this hash, without using it (to show the form it opens).
pub fn peek(
    conn: &mut DbConnection,
    purpose: Purpose,
    token_hash: &str,
    now: NaiveDateTime,
) -> Result<Option<RecoveryTokenRow>, StoreError> {
    Ok(recovery_tokens::table
        .filter(recovery_tokens::token_hash.eq(token_hash))
        .filter(recovery_tokens::purpose.eq(purpose.as_str()))
        .filter(recovery_tokens::used_at.is_null())
        .filter(recovery_tokens::expires_at.gt(now))
        .select(RecoveryTokenRow::as_select())
        .first(conn)
        .optional()?)
}

/// Uses the token: the user it belongs to, for the one caller that got it; `None` when
/// it is unknown, of another purpose, used, expired or void.
pub fn take(
    conn: &mut DbConnection,
    purpose: Purpose,
    token_hash: &str,
    now: NaiveDateTime,
) -> Result<Option<String>, StoreError> {
    let taken = diesel::update(
        recovery_tokens::table
            .filter(recovery_tokens::token_hash.eq(token_hash))
            .filter(recovery_tokens::purpose.eq(purpose.as_str()))
            .filter(recovery_tokens::used_at.is_null())
            .filter(recovery_tokens::expires_at.gt(now)),
    )
    .set(recovery_tokens::used_at.eq(now))
    .execute(conn)?;
    if taken != 1 {
        return Ok(None);
    }
    Ok(recovery_tokens::table
        .filter(recovery_tokens::token_hash.eq(token_hash))
        .select(recovery_tokens::user_id)
        .first(conn)
        .optional()?)
}

/// Deletes every unused token of the user, of any purpose. True if there was one.
pub fn void_unused(conn: &mut DbConnection, user_id: &str) -> Result<bool, StoreError> {
    Ok(diesel::delete(
        recovery_tokens::table
            .filter(recovery_tokens::user_id.eq(user_id))
            .filter(recovery_tokens::used_at.is_null()),
    )
    .execute(conn)?
        > 0)
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::store::{
        Store,
        testing::{self, t0},
        users,
    };

    /// A migrated SQLite store with one user; returns the store and the user's id.
    async fn store_with_user(dir: &tempfile::TempDir) -> (Store, String) {
        let store = testing::sqlite(dir, 2).await;
        let user = testing::with_user(&store, Some("$argon2id$old")).await;
        (store, user)
    }

    async fn take_at(store: &Store, purpose: Purpose, hash: &str, at: NaiveDateTime) -> bool {
        let hash = hash.to_owned();
        store
            .transaction(move |c| take(c, purpose, &hash, at))
            .await
            .unwrap()
            .is_some()
    }

    #[tokio::test]
    async fn a_token_is_taken_once_and_only_before_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let (store, user) = store_with_user(&dir).await;
        let expires = t0() + Duration::minutes(30);
        for hash in ["h1", "h2"] {
            let (user, hash) = (user.clone(), hash.to_owned());
            store
                .transaction(move |c| issue(c, &user, Purpose::Reset, &hash, t0(), expires))
                .await
                .unwrap();
        }
        assert!(
            !take_at(&store, Purpose::Reset, "h1", t0()).await,
            "the older link was voided by the newer one"
        );
        assert!(
            !take_at(&store, Purpose::Invite, "h2", t0()).await,
            "a reset token opens no invitation"
        );
        assert!(
            !take_at(&store, Purpose::Reset, "h2", expires).await,
            "expired at its expiry time"
        );
        assert!(take_at(&store, Purpose::Reset, "h2", expires - Duration::seconds(1)).await);
        assert!(
            !take_at(&store, Purpose::Reset, "h2", t0()).await,
            "used once"
        );
    }

    #[tokio::test]
    async fn of_many_concurrent_takes_exactly_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let (store, user) = store_with_user(&dir).await;
        store
            .transaction(move |c| {
                issue(
                    c,
                    &user,
                    Purpose::Reset,
                    "race",
                    t0(),
                    t0() + Duration::minutes(30),
                )
            })
            .await
            .unwrap();
        let takes = (0..16).map(|_| take_at(&store, Purpose::Reset, "race", t0()));
        let winners = futures_util::future::join_all(takes)
            .await
            .into_iter()
            .filter(|won| *won)
            .count();
        assert_eq!(winners, 1);
    }

    #[tokio::test]
    async fn a_new_password_voids_unused_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let (store, user) = store_with_user(&dir).await;
        let id = user.clone();
        store
            .transaction(move |c| {
                issue(
                    c,
                    &id,
                    Purpose::Reset,
                    "pending",
                    t0(),
                    t0() + Duration::minutes(30),
                )?;
                users::set_password(c, &testing::pii(), &id, "$argon2id$new", t0())
            })
            .await
            .unwrap();
        assert!(!take_at(&store, Purpose::Reset, "pending", t0()).await);
        let peeked = store
            .run(|c| peek(c, Purpose::Reset, "pending", t0()))
            .await
            .unwrap();
        assert!(peeked.is_none());
    }
}
