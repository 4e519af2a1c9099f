//! Users and their password history.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{DbConnection, StoreError, changed_one, new_id, schema::users};
use crate::domain::{Email, Role, UserStatus, Username};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: String,
    pub org_id: String,
    pub username: String,
    pub email: String,
    pub display_name: Option<String>,
    pub role: String,
    pub status: String,
    pub password_hash: Option<String>,
    pub password_changed_at: Option<NaiveDateTime>,
    pub must_change_password: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl UserRow {
    /// An unreadable role grants nothing.
    pub fn role(&self) -> Role {
        self.role.parse().unwrap_or(Role::User)
    }

    /// An unreadable status is treated as disabled: fail closed.
    pub fn status(&self) -> UserStatus {
        self.status.parse().unwrap_or(UserStatus::Disabled)
    }

    /// What mail calls the person: their display name, or the username when they have none.
    pub fn addressed_as(&self) -> String {
        self.display_name
            .clone()
            .unwrap_or_else(|| self.username.clone())
    }
}

diesel::define_sql_function! {
    /// SQL `lower`; applied to both sides of a comparison, so each backend agrees with
    /// itself whatever it does with non-ASCII letters (`users_email_lower` indexes it).
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// What it takes to create a user; the password hash is computed by the caller.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub org_id: String,
    pub username: Username,
    pub email: Email,
    pub display_name: Option<String>,
    pub role: Role,
    pub password_hash: Option<String>,
    pub must_change_password: bool,
}

#[derive(Insertable)]
#[diesel(table_name = users)]
struct UserInsert<'a> {
    id: &'a str,
    org_id: &'a str,
    username: &'a str,
    email: &'a str,
    display_name: Option<&'a str>,
    role: &'a str,
    status: &'a str,
    password_hash: Option<&'a str>,
    password_changed_at: Option<NaiveDateTime>,
    must_change_password: bool,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

pub fn insert(
    conn: &mut DbConnection,
    new: &NewUser,
    now: NaiveDateTime,
) -> Result<UserRow, StoreError> {
    let id = new_id();
    diesel::insert_into(users::table)
        .values(&UserInsert {
            id: &id,
            org_id: &new.org_id,
            username: new.username.as_str(),
            email: new.email.as_str(),
            display_name: new.display_name.as_deref(),
            role: new.role.as_str(),
            status: UserStatus::Active.as_str(),
            password_hash: new.password_hash.as_deref(),
            password_changed_at: new.password_hash.as_ref().map(|_| now),
            must_change_password: new.must_change_password,
            created_at: now,
            updated_at: now,
        })
        .execute(conn)?;
    if let Some(hash) = &new.password_hash {
        super::users::record_password(conn, &id, hash, now)?;
    }
    find_by_id(conn, &id)?.ok_or(StoreError::NotFound)
}

pub fn find_by_id(conn: &mut DbConnection, id: &str) -> Result<Option<UserRow>, StoreError> {
    Ok(users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}

/// The user and their organisation, both required: [`StoreError::NotFound`] otherwise.
pub fn find_with_org(
    conn: &mut DbConnection,
    id: &str,
) -> Result<(UserRow, super::orgs::OrgRow), StoreError> {
    let user = find_by_id(conn, id)?.ok_or(StoreError::NotFound)?;
    let org = super::orgs::find_by_id(conn, &user.org_id)?.ok_or(StoreError::NotFound)?;
    Ok((user, org))
}

pub fn find_by_username(
    conn: &mut DbConnection,
    username: &Username,
) -> Result<Option<UserRow>, StoreError> {
    Ok(users::table
        .filter(users::username.eq(username.as_str()))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}

/// Accounts whose address is `email`, ignoring case; at most `limit`, oldest first.
/// Addresses are not unique: one person may hold several accounts.
pub fn find_by_email(
    conn: &mut DbConnection,
    email: &Email,
    limit: i64,
) -> Result<Vec<UserRow>, StoreError> {
    Ok(users::table
        .filter(lower(users::email).eq(lower(email.as_str())))
        .order(users::created_at.asc())
        .limit(limit)
        .select(UserRow::as_select())
        .load(conn)?)
}

/// Every user of an organisation, by username.
pub fn list_by_org(conn: &mut DbConnection, org_id: &str) -> Result<Vec<UserRow>, StoreError> {
    Ok(users::table
        .filter(users::org_id.eq(org_id))
        .order(users::username.asc())
        .select(UserRow::as_select())
        .load(conn)?)
}

/// Users of `org_ids` whose username or email contains `needle` (letter case ignored
/// as the backend's `lower` does it), by username, at most `limit` of them.
pub fn search(
    conn: &mut DbConnection,
    org_ids: &[String],
    needle: &str,
    limit: i64,
) -> Result<Vec<UserRow>, StoreError> {
    let mut pattern = String::with_capacity(needle.len() + 2);
    pattern.push('%');
    for ch in needle.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern.push('%');
    Ok(users::table
        .filter(users::org_id.eq_any(org_ids))
        .filter(
            lower(users::username)
                .like(lower(pattern.clone()))
                .escape('\\')
                .or(lower(users::email).like(lower(pattern)).escape('\\')),
        )
        .order((users::username.asc(), users::org_id.asc()))
        .limit(limit)
        .select(UserRow::as_select())
        .load(conn)?)
}

pub fn set_status(
    conn: &mut DbConnection,
    user_id: &str,
    status: UserStatus,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    changed_one(
        diesel::update(users::table.find(user_id))
            .set((users::status.eq(status.as_str()), users::updated_at.eq(now)))
            .execute(conn)?,
    )
}

pub fn set_role(
    conn: &mut DbConnection,
    user_id: &str,
    role: Role,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    changed_one(
        diesel::update(users::table.find(user_id))
            .set((users::role.eq(role.as_str()), users::updated_at.eq(now)))
            .execute(conn)?,
    )
}

pub fn count_with_role(conn: &mut DbConnection, role: Role) -> Result<i64, StoreError> {
    Ok(users::table
        .filter(users::role.eq(role.as_str()))
        .count()
        .get_result(conn)?)
}

/// Appends to the password history (DESIGN §4: the last N may not be reused).
pub fn record_password(
    conn: &mut DbConnection,
    user_id: &str,
    hash: &str,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    use super::schema::password_history as ph;
    diesel::insert_into(ph::table)
        .values((
            ph::id.eq(new_id()),
            ph::user_id.eq(user_id),
            ph::password_hash.eq(hash),
            ph::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Sets a new password: clears `must_change_password`, records it in the history, and
/// voids every unused reset or invitation link (a link mailed before the change must not
/// undo it).
pub fn set_password(
    conn: &mut DbConnection,
    user_id: &str,
    hash: &str,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    let changed = diesel::update(users::table.find(user_id))
        .set((
            users::password_hash.eq(hash),
            users::password_changed_at.eq(now),
            users::must_change_password.eq(false),
            users::updated_at.eq(now),
        ))
        .execute(conn)?;
    changed_one(changed)?;
    super::recovery_tokens::void_unused(conn, user_id)?;
    record_password(conn, user_id, hash, now)
}

/// Replaces the hash of the same password (parameter upgrade); history is unchanged.
pub fn replace_hash(conn: &mut DbConnection, user_id: &str, hash: &str) -> Result<(), StoreError> {
    diesel::update(users::table.find(user_id))
        .set(users::password_hash.eq(hash))
        .execute(conn)?;
    Ok(())
}

/// The `n` most recent password hashes of a user, newest first (the current one included).
pub fn recent_password_hashes(
    conn: &mut DbConnection,
    user_id: &str,
    n: usize,
) -> Result<Vec<String>, StoreError> {
    use super::schema::password_history as ph;
    Ok(ph::table
        .filter(ph::user_id.eq(user_id))
        .order(ph::created_at.desc())
        .limit(n as i64)
        .select(ph::password_hash)
        .load(conn)?)
}

/// An administrator forced a reset (DESIGN §7): the current password stops working at
/// once — a sign-in with it fails as a wrong one does — until a reset link sets a new
/// one. The old hash stays in the history, so it cannot simply be chosen again.
pub fn revoke_password(
    conn: &mut DbConnection,
    user_id: &str,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    changed_one(
        diesel::update(users::table.find(user_id))
            .set((
                users::password_hash.eq(None::<String>),
                users::must_change_password.eq(true),
                users::updated_at.eq(now),
            ))
            .execute(conn)?,
    )
}

pub fn set_must_change_password(
    conn: &mut DbConnection,
    user_id: &str,
    value: bool,
) -> Result<(), StoreError> {
    diesel::update(users::table.find(user_id))
        .set(users::must_change_password.eq(value))
        .execute(conn)?;
    Ok(())
}

/// Renames a user; `StoreError::Conflict` when the name is taken (usernames are unique
/// across organisations), `NotFound` when the user is gone.
pub fn rename(
    conn: &mut DbConnection,
    user_id: &str,
    username: &Username,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    changed_one(
        diesel::update(users::table.find(user_id))
            .set((
                users::username.eq(username.as_str()),
                users::updated_at.eq(now),
            ))
            .execute(conn)?,
    )
}
