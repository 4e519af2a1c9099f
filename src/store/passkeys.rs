//! Passkeys (DESIGN §17): one row per WebAuthn credential of an account. The row keeps
//! what the WebAuthn library stores of a credential (public key, counter, flags) as
//! JSON; the store neither reads nor checks it.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{DbConnection, StoreError, changed_one, new_id, schema::passkeys};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = passkeys)]
pub struct PasskeyRow {
    pub id: String,
    pub user_id: String,
    pub credential_id: String,
    pub name: String,
    pub credential: String,
    pub aaguid: Option<String>,
    pub backup_eligible: bool,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
}

/// A credential to record for a user.
#[derive(Debug, Clone)]
pub struct NewPasskey {
    pub user_id: String,
    pub credential_id: String,
    pub name: String,
    pub credential: String,
    pub aaguid: Option<String>,
    pub backup_eligible: bool,
}

/// The most passkeys one account keeps: enough for every device a person owns, few
/// enough that the sign-in's list of allowed credentials stays small.
pub const MAX_PER_USER: i64 = 20;

/// Records a passkey; `Conflict` when the credential is already registered (to anyone)
/// or the account has [`MAX_PER_USER`].
pub fn insert(
    conn: &mut DbConnection,
    new: &NewPasskey,
    now: NaiveDateTime,
) -> Result<PasskeyRow, StoreError> {
    if count_for(conn, &new.user_id)? >= MAX_PER_USER {
        return Err(StoreError::Conflict);
    }
    let id = new_id();
    diesel::insert_into(passkeys::table)
        .values((
            passkeys::id.eq(&id),
            passkeys::user_id.eq(&new.user_id),
            passkeys::credential_id.eq(&new.credential_id),
            passkeys::name.eq(&new.name),
            passkeys::credential.eq(&new.credential),
            passkeys::aaguid.eq(&new.aaguid),
            passkeys::backup_eligible.eq(new.backup_eligible),
            passkeys::created_at.eq(now),
        ))
        .execute(conn)?;
    find(conn, &id)?.ok_or(StoreError::NotFound)
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<PasskeyRow>, StoreError> {
    Ok(passkeys::table
        .find(id)
        .select(PasskeyRow::as_select())
        .first(conn)
        .optional()?)
}

/// The passkey with this credential id, whoever it belongs to.
pub fn by_credential(
    conn: &mut DbConnection,
    credential_id: &str,
) -> Result<Option<PasskeyRow>, StoreError> {
    Ok(passkeys::table
        .filter(passkeys::credential_id.eq(credential_id))
        .select(PasskeyRow::as_select())
        .first(conn)
        .optional()?)
}

/// The user's passkeys, oldest first.
pub fn for_user(conn: &mut DbConnection, user_id: &str) -> Result<Vec<PasskeyRow>, StoreError> {
    Ok(passkeys::table
        .filter(passkeys::user_id.eq(user_id))
        .order((passkeys::created_at.asc(), passkeys::id.asc()))
        .select(PasskeyRow::as_select())
        .load(conn)?)
}

pub fn count_for(conn: &mut DbConnection, user_id: &str) -> Result<i64, StoreError> {
    Ok(passkeys::table
        .filter(passkeys::user_id.eq(user_id))
        .count()
        .get_result(conn)?)
}

/// After a sign-in with it: the credential's new state (counter, backup flags) and when.
pub fn used(
    conn: &mut DbConnection,
    id: &str,
    credential: Option<&str>,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    let row = passkeys::table.find(id);
    let rows = match credential {
        Some(c) => diesel::update(row)
            .set((passkeys::credential.eq(c), passkeys::last_used_at.eq(now)))
            .execute(conn)?,
        None => diesel::update(row)
            .set(passkeys::last_used_at.eq(now))
            .execute(conn)?,
    };
    changed_one(rows)
}

/// Renames one of `user_id`'s passkeys; the name it had, or `NotFound`.
pub fn rename(
    conn: &mut DbConnection,
    user_id: &str,
    id: &str,
    name: &str,
) -> Result<String, StoreError> {
    let previous = find(conn, id)?
        .filter(|r| r.user_id == user_id)
        .ok_or(StoreError::NotFound)?
        .name;
    changed_one(
        diesel::update(
            passkeys::table
                .filter(passkeys::id.eq(id))
                .filter(passkeys::user_id.eq(user_id)),
        )
        .set(passkeys::name.eq(name))
        .execute(conn)?,
    )?;
    Ok(previous)
}

/// Removes one of `user_id`'s passkeys: the row it was, or `NotFound`.
pub fn remove(conn: &mut DbConnection, user_id: &str, id: &str) -> Result<PasskeyRow, StoreError> {
    let row = find(conn, id)?
        .filter(|r| r.user_id == user_id)
        .ok_or(StoreError::NotFound)?;
    changed_one(diesel::delete(passkeys::table.find(id)).execute(conn)?)?;
    Ok(row)
}
