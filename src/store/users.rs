//! Users and their password history, with their personal fields sealed at rest
//! (`store::pii`): every function here takes the [`Pii`] that seals on write and opens
//! on read, and hands the rest of the code a clear [`UserRow`].

use chrono::NaiveDateTime;
use diesel::prelude::*;

mod sealing;

pub use sealing::{
    rotate_display_names, rotate_emails, rotate_password_hashes, rotate_password_history,
    seal_legacy_history, seal_legacy_users,
};

use super::{
    DbConnection, StoreError, changed_one, new_id,
    pii::{Pii, display_name_context, email_context, hash_context, history_context},
    schema::{password_history, users},
};
use crate::domain::{Email, Role, UserStatus, Username};

/// A user as the rest of the code sees it: email, display name and password hash open.
#[derive(Clone)]
pub struct UserRow {
    pub id: String,
    pub org_id: String,
    pub username: String,
    pub email: String,
    pub display_name: Option<String>,
    pub role: String,
    pub status: String,
    /// The argon2id PHC string, unwrapped.
    pub password_hash: Option<String>,
    pub password_changed_at: Option<NaiveDateTime>,
    pub must_change_password: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// The hash is stored in clear (written by an earlier release, or edited in): the
    /// next successful sign-in wraps it ([`wrap_clear_hash`]).
    pub password_hash_in_clear: bool,
}

/// Personal fields and the hash stay out of logs, whatever prints a row.
impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("id", &self.id)
            .field("org_id", &self.org_id)
            .field("username", &self.username)
            .field("role", &self.role)
            .field("status", &self.status)
            .field("has_password", &self.password_hash.is_some())
            .field("must_change_password", &self.must_change_password)
            .finish_non_exhaustive()
    }
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

/// A user row as stored: what [`StoredUser::open`] turns into a [`UserRow`]. Other
/// store modules select it in joins.
#[derive(Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct StoredUser {
    id: String,
    org_id: String,
    username: String,
    email_sealed: String,
    email_index: Option<String>,
    display_name_sealed: Option<String>,
    role: String,
    status: String,
    password_hash: Option<String>,
    password_changed_at: Option<NaiveDateTime>,
    must_change_password: bool,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl StoredUser {
    /// Opens the sealed fields. A row an earlier release wrote (no blind index yet) is
    /// refused rather than read as clear text: start-up seals those before serving
    /// (`pii::seal_legacy`), so meeting one means the data migration has not run.
    pub fn open(self, pii: &Pii) -> Result<UserRow, StoreError> {
        if self.email_index.is_none() {
            return Err(StoreError::Query(format!(
                "user {} is not sealed yet: start `gatehouse serve` once to seal it",
                self.id
            )));
        }
        let email = pii.open_text(
            &email_context(&self.id),
            &self.email_sealed,
            "email",
            &self.id,
        )?;
        let display_name = self
            .display_name_sealed
            .as_deref()
            .map(|sealed| {
                pii.open_text(
                    &display_name_context(&self.id),
                    sealed,
                    "display name",
                    &self.id,
                )
            })
            .transpose()?;
        let (password_hash, password_hash_in_clear) = match self.password_hash.as_deref() {
            Some(stored) => {
                let (phc, in_clear) = pii.open_hash(&hash_context(&self.id), stored, &self.id)?;
                (Some(phc), in_clear)
            }
            None => (None, false),
        };
        Ok(UserRow {
            id: self.id,
            org_id: self.org_id,
            username: self.username,
            email,
            display_name,
            role: self.role,
            status: self.status,
            password_hash,
            password_changed_at: self.password_changed_at,
            must_change_password: self.must_change_password,
            created_at: self.created_at,
            updated_at: self.updated_at,
            password_hash_in_clear,
        })
    }
}

fn open_all(pii: &Pii, rows: Vec<StoredUser>) -> Result<Vec<UserRow>, StoreError> {
    rows.into_iter().map(|r| r.open(pii)).collect()
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
// NULL, not DEFAULT, for `None` (the columns default to NULL anyway): lets one INSERT
// carry a whole batch on SQLite too (`insert_many`).
#[diesel(treat_none_as_default_value = false)]
struct UserInsert<'a> {
    id: &'a str,
    org_id: &'a str,
    username: &'a str,
    email_sealed: &'a str,
    email_index: &'a str,
    display_name_sealed: Option<&'a str>,
    role: &'a str,
    status: &'a str,
    password_hash: Option<&'a str>,
    password_changed_at: Option<NaiveDateTime>,
    must_change_password: bool,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// What a new user's row stores beside `NewUser`'s clear fields: its id and the sealed
/// values, sealed for that id. One place builds them, so a row written by `insert_many`
/// is the row `insert` writes.
struct SealedUser<'a> {
    new: &'a NewUser,
    id: String,
    email_sealed: String,
    email_index: String,
    display_name_sealed: Option<String>,
    password_hash: Option<String>,
}

impl<'a> SealedUser<'a> {
    fn seal(pii: &Pii, new: &'a NewUser) -> Self {
        let id = new_id();
        Self {
            email_sealed: pii.seal_email(&id, new.email.as_str()),
            email_index: pii.email_index(new.email.as_str()),
            display_name_sealed: new
                .display_name
                .as_deref()
                .map(|name| pii.seal_display_name(&id, name)),
            password_hash: new
                .password_hash
                .as_deref()
                .map(|phc| pii.wrap_hash(&id, phc)),
            new,
            id,
        }
    }

    fn row(&self, now: NaiveDateTime) -> UserInsert<'_> {
        UserInsert {
            id: &self.id,
            org_id: &self.new.org_id,
            username: self.new.username.as_str(),
            email_sealed: &self.email_sealed,
            email_index: &self.email_index,
            display_name_sealed: self.display_name_sealed.as_deref(),
            role: self.new.role.as_str(),
            status: UserStatus::Active.as_str(),
            password_hash: self.password_hash.as_deref(),
            password_changed_at: self.new.password_hash.as_ref().map(|_| now),
            must_change_password: self.new.must_change_password,
            created_at: now,
            updated_at: now,
        }
    }
}

pub fn insert(
    conn: &mut DbConnection,
    pii: &Pii,
    new: &NewUser,
    now: NaiveDateTime,
) -> Result<UserRow, StoreError> {
    let sealed = SealedUser::seal(pii, new);
    diesel::insert_into(users::table)
        .values(&sealed.row(now))
        .execute(conn)?;
    if let Some(hash) = &new.password_hash {
        record_password(conn, pii, &sealed.id, hash, now)?;
    }
    find_by_id(conn, pii, &sealed.id)?.ok_or(StoreError::NotFound)
}

/// Creates every user of `news` as [`insert`] does (sealed the same way, each password
/// in its history), in multi-row INSERTs: a bulk import of thousands of accounts, for
/// the caller to run inside one transaction. Returns their ids, in the order of `news`;
/// `StoreError::Conflict` when a username is taken, and then nothing should be kept.
///
/// The hashes are the caller's: hashing one password per account is what makes an
/// import slow, and for accounts that are to choose their own password at first
/// sign-in one hash may serve them all (each is wrapped for its own row).
pub fn insert_many(
    conn: &mut DbConnection,
    pii: &Pii,
    news: &[NewUser],
    now: NaiveDateTime,
) -> Result<Vec<String>, StoreError> {
    use password_history as ph;
    let sealed: Vec<SealedUser<'_>> = news.iter().map(|n| SealedUser::seal(pii, n)).collect();
    let rows: Vec<UserInsert<'_>> = sealed.iter().map(|s| s.row(now)).collect();
    let history: Vec<_> = sealed
        .iter()
        .filter_map(|s| {
            let phc = s.new.password_hash.as_deref()?;
            let id = new_id();
            let wrapped = pii.wrap_history_hash(&id, phc);
            Some((
                ph::id.eq(id),
                ph::user_id.eq(s.id.as_str()),
                ph::password_hash.eq(wrapped),
                ph::created_at.eq(now),
            ))
        })
        .collect();
    // Multi-row INSERTs exist on each backend's own connection, not through the
    // MultiConnection: one arm each. Each statement stays under the backend's limit on
    // bound values (SQLite's is 32766, PostgreSQL's 65535).
    macro_rules! in_chunks {
        ($c:expr, $per_statement:expr) => {{
            for chunk in rows.chunks($per_statement) {
                diesel::insert_into(users::table)
                    .values(chunk)
                    .execute($c)?;
            }
            for chunk in history.chunks($per_statement) {
                diesel::insert_into(ph::table).values(chunk).execute($c)?;
            }
        }};
    }
    match conn {
        DbConnection::Postgresql(pg) => in_chunks!(pg, 5000),
        DbConnection::Sqlite(lite) => in_chunks!(lite, 2500),
    }
    Ok(sealed.iter().map(|s| s.id.clone()).collect())
}

pub fn find_by_id(
    conn: &mut DbConnection,
    pii: &Pii,
    id: &str,
) -> Result<Option<UserRow>, StoreError> {
    users::table
        .find(id)
        .select(StoredUser::as_select())
        .first(conn)
        .optional()?
        .map(|row| row.open(pii))
        .transpose()
}

/// The user and their organisation, both required: [`StoreError::NotFound`] otherwise.
pub fn find_with_org(
    conn: &mut DbConnection,
    pii: &Pii,
    id: &str,
) -> Result<(UserRow, super::orgs::OrgRow), StoreError> {
    let user = find_by_id(conn, pii, id)?.ok_or(StoreError::NotFound)?;
    let org = super::orgs::find_by_id(conn, &user.org_id)?.ok_or(StoreError::NotFound)?;
    Ok((user, org))
}

/// The account named `username`. A name that is nobody's costs the same opening work
/// as one that is somebody's (the guard's lookup, DESIGN §4).
pub fn find_by_username(
    conn: &mut DbConnection,
    pii: &Pii,
    username: &Username,
) -> Result<Option<UserRow>, StoreError> {
    let found = users::table
        .filter(users::username.eq(username.as_str()))
        .select(StoredUser::as_select())
        .first(conn)
        .optional()?;
    match found {
        Some(row) => row.open(pii).map(Some),
        None => {
            pii.open_dummy();
            Ok(None)
        }
    }
}

/// Accounts whose address is `email`, ignoring case (by its blind index); at most
/// `limit`, oldest first. Addresses are not unique: one person may hold several accounts.
pub fn find_by_email(
    conn: &mut DbConnection,
    pii: &Pii,
    email: &Email,
    limit: i64,
) -> Result<Vec<UserRow>, StoreError> {
    let rows = users::table
        .filter(users::email_index.eq(pii.email_index(email.as_str())))
        .order(users::created_at.asc())
        .limit(limit)
        .select(StoredUser::as_select())
        .load(conn)?;
    open_all(pii, rows)
}

/// Every user of an organisation, by username.
pub fn list_by_org(
    conn: &mut DbConnection,
    pii: &Pii,
    org_id: &str,
) -> Result<Vec<UserRow>, StoreError> {
    let rows = users::table
        .filter(users::org_id.eq(org_id))
        .order(users::username.asc())
        .select(StoredUser::as_select())
        .load(conn)?;
    open_all(pii, rows)
}

diesel::define_sql_function! {
    /// SQL `lower`, applied to both sides of a username comparison.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// Users of `org_ids` whose username contains `needle` (letter case ignored as the
/// backend's `lower` does it) or, when `needle` is an email address, whose address is
/// that one (any case: the blind index); by username, at most `limit` of them.
///
/// Sealed addresses cannot be searched by a part: `example.org` finds the usernames
/// that contain it, not everyone at that domain.
pub fn search(
    conn: &mut DbConnection,
    pii: &Pii,
    org_ids: &[String],
    needle: &str,
    limit: i64,
) -> Result<Vec<UserRow>, StoreError> {
    let (pattern, index) = needle_terms(pii, needle);
    let rows = users::table
        .filter(users::org_id.eq_any(org_ids))
        .filter(
            lower(users::username)
                .like(lower(pattern))
                .escape('\\')
                .or(users::email_index.eq(index)),
        )
        .order((users::username.asc(), users::org_id.asc()))
        .limit(limit)
        .select(StoredUser::as_select())
        .load(conn)?;
    open_all(pii, rows)
}

/// What `search` compares: the `LIKE` pattern of `needle` (its wildcards taken
/// literally), and the blind index of the address it is (one no row has when it is
/// none).
fn needle_terms(pii: &Pii, needle: &str) -> (String, String) {
    let mut pattern = String::with_capacity(needle.len() + 2);
    pattern.push('%');
    for ch in needle.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern.push('%');
    // Not an address: an index no row has.
    let index = Email::parse(needle)
        .map(|e| pii.email_index(e.as_str()))
        .unwrap_or_default();
    (pattern, index)
}

/// The order of a page of users (`search_page`): a column, then the username and the
/// organisation, so that every order is total and pages do not overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserOrder {
    #[default]
    Username,
    /// The organisation's display name.
    Organisation,
    /// By rank: user, support, org_admin, super_admin.
    Role,
    Status,
}

/// The users of `org_ids` that `search` finds for `needle`, `ORDER BY` `order` (the
/// column descending when `descending`; the username after it always ascending), the
/// `limit` after the first `offset`.
#[allow(clippy::too_many_arguments)]
pub fn search_page(
    conn: &mut DbConnection,
    pii: &Pii,
    org_ids: &[String],
    needle: &str,
    order: UserOrder,
    descending: bool,
    offset: i64,
    limit: i64,
) -> Result<Vec<UserRow>, StoreError> {
    use super::schema::organisations;
    use diesel::dsl::case_when;
    let (pattern, index) = needle_terms(pii, needle);
    let mut query = users::table
        .inner_join(organisations::table)
        .filter(users::org_id.eq_any(org_ids))
        .filter(
            lower(users::username)
                .like(lower(pattern))
                .escape('\\')
                .or(users::email_index.eq(index)),
        )
        .select(StoredUser::as_select())
        .into_boxed();
    let rank = || {
        case_when::<_, _, diesel::sql_types::Integer>(users::role.eq(Role::User.as_str()), 0)
            .when(users::role.eq(Role::Support.as_str()), 1)
            .when(users::role.eq(Role::OrgAdmin.as_str()), 2)
            .otherwise(3)
    };
    query = match (order, descending) {
        (UserOrder::Username, false) => query.order_by(users::username.asc()),
        (UserOrder::Username, true) => query.order_by(users::username.desc()),
        (UserOrder::Organisation, false) => query.order_by(organisations::display_name.asc()),
        (UserOrder::Organisation, true) => query.order_by(organisations::display_name.desc()),
        (UserOrder::Role, false) => query.order_by(rank().asc()),
        (UserOrder::Role, true) => query.order_by(rank().desc()),
        (UserOrder::Status, false) => query.order_by(users::status.asc()),
        (UserOrder::Status, true) => query.order_by(users::status.desc()),
    };
    let rows = query
        .then_order_by(users::username.asc())
        .then_order_by(users::org_id.asc())
        .offset(offset)
        .limit(limit)
        .load(conn)?;
    open_all(pii, rows)
}

/// How many users `search_page` finds, counted no further than `at_most + 1`: a search
/// that matches more says only that, at the cost of reading that many rows rather than
/// every match (a million of them, for a search by one letter).
pub fn count_matching(
    conn: &mut DbConnection,
    pii: &Pii,
    org_ids: &[String],
    needle: &str,
    at_most: i64,
) -> Result<i64, StoreError> {
    let (pattern, index) = needle_terms(pii, needle);
    let first = users::table
        .filter(users::org_id.eq_any(org_ids))
        .filter(
            lower(users::username)
                .like(lower(pattern))
                .escape('\\')
                .or(users::email_index.eq(index)),
        )
        .select(users::id)
        .limit(at_most.saturating_add(1));
    Ok(CountOf(first).get_result(conn)?)
}

/// `SELECT count(*) FROM (query)`: a count that stops where the query's LIMIT does
/// (diesel's `count()` would count every row and then apply the LIMIT to the one row of
/// the count).
#[derive(diesel::query_builder::QueryId)]
struct CountOf<Q>(Q);

impl<Q> diesel::query_builder::Query for CountOf<Q> {
    type SqlType = diesel::sql_types::BigInt;
}

impl<Q, DB> diesel::query_builder::QueryFragment<DB> for CountOf<Q>
where
    DB: diesel::backend::Backend,
    Q: diesel::query_builder::QueryFragment<DB>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> QueryResult<()> {
        out.push_sql("SELECT count(*) FROM (");
        self.0.walk_ast(out.reborrow())?;
        out.push_sql(") AS counted");
        Ok(())
    }
}

impl<Q, Conn> RunQueryDsl<Conn> for CountOf<Q> {}

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

/// Appends to the password history (DESIGN §4: the last N may not be reused), wrapped.
pub fn record_password(
    conn: &mut DbConnection,
    pii: &Pii,
    user_id: &str,
    hash: &str,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    use password_history as ph;
    let id = new_id();
    diesel::insert_into(ph::table)
        .values((
            ph::id.eq(&id),
            ph::user_id.eq(user_id),
            ph::password_hash.eq(pii.wrap_history_hash(&id, hash)),
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
    pii: &Pii,
    user_id: &str,
    hash: &str,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    let changed = diesel::update(users::table.find(user_id))
        .set((
            users::password_hash.eq(pii.wrap_hash(user_id, hash)),
            users::password_changed_at.eq(now),
            users::must_change_password.eq(false),
            users::updated_at.eq(now),
        ))
        .execute(conn)?;
    changed_one(changed)?;
    super::recovery_tokens::void_unused(conn, user_id)?;
    record_password(conn, pii, user_id, hash, now)
}

/// Replaces the hash of the same password (parameter upgrade); history is unchanged.
pub fn replace_hash(
    conn: &mut DbConnection,
    pii: &Pii,
    user_id: &str,
    hash: &str,
) -> Result<(), StoreError> {
    diesel::update(users::table.find(user_id))
        .set(users::password_hash.eq(pii.wrap_hash(user_id, hash)))
        .execute(conn)?;
    Ok(())
}

/// Wraps a hash found stored in clear (`UserRow::password_hash_in_clear`), unless it
/// changed since it was read. True when this call wrapped it.
pub fn wrap_clear_hash(
    conn: &mut DbConnection,
    pii: &Pii,
    user_id: &str,
    phc: &str,
) -> Result<bool, StoreError> {
    let changed = diesel::update(
        users::table
            .find(user_id)
            .filter(users::password_hash.eq(phc)),
    )
    .set(users::password_hash.eq(pii.wrap_hash(user_id, phc)))
    .execute(conn)?;
    Ok(changed == 1)
}

/// The `n` most recent password hashes of a user, newest first (the current one
/// included), unwrapped.
pub fn recent_password_hashes(
    conn: &mut DbConnection,
    pii: &Pii,
    user_id: &str,
    n: usize,
) -> Result<Vec<String>, StoreError> {
    use password_history as ph;
    let rows: Vec<(String, String)> = ph::table
        .filter(ph::user_id.eq(user_id))
        .order(ph::created_at.desc())
        .limit(n as i64)
        .select((ph::id, ph::password_hash))
        .load(conn)?;
    rows.into_iter()
        .map(|(id, stored)| Ok(pii.open_hash(&history_context(&id), &stored, &id)?.0))
        .collect()
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

#[cfg(test)]
mod tests;
