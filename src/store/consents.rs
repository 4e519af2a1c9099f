//! What people decided when an app asked for their consent (DESIGN §18): per user and
//! client, the scopes they were asked about and those they allowed, as JSON arrays.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{
    DbConnection, StoreError,
    schema::{consents, oidc_clients, oidc_grants},
};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = consents)]
pub struct ConsentRow {
    pub user_id: String,
    pub client_id: String,
    pub asked: String,
    pub granted: String,
    pub updated_at: NaiveDateTime,
}

impl ConsentRow {
    pub fn asked(&self) -> Vec<String> {
        serde_json::from_str(&self.asked).unwrap_or_default()
    }

    pub fn granted(&self) -> Vec<String> {
        serde_json::from_str(&self.granted).unwrap_or_default()
    }
}

fn json(list: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(list).map_err(|e| StoreError::Query(e.to_string()))
}

pub fn find(
    conn: &mut DbConnection,
    user_id: &str,
    client_id: &str,
) -> Result<Option<ConsentRow>, StoreError> {
    Ok(consents::table
        .find((user_id, client_id))
        .select(ConsentRow::as_select())
        .first(conn)
        .optional()?)
}

/// Records a decision, replacing the one before (delete, then insert: no `on_conflict`
/// through the MultiConnection; call in a transaction).
pub fn save(
    conn: &mut DbConnection,
    user_id: &str,
    client_id: &str,
    asked: &[String],
    granted: &[String],
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    diesel::delete(consents::table.find((user_id, client_id))).execute(conn)?;
    diesel::insert_into(consents::table)
        .values((
            consents::user_id.eq(user_id),
            consents::client_id.eq(client_id),
            consents::asked.eq(json(asked)?),
            consents::granted.eq(json(granted)?),
            consents::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// The user's decisions, each with the client's name, newest first.
pub fn of_user(
    conn: &mut DbConnection,
    user_id: &str,
) -> Result<Vec<(ConsentRow, String)>, StoreError> {
    Ok(consents::table
        .inner_join(oidc_clients::table)
        .filter(consents::user_id.eq(user_id))
        .order(consents::updated_at.desc())
        .select((ConsentRow::as_select(), oidc_clients::name))
        .load(conn)?)
}

/// Withdraws the user's consent to the client and ends the client's grants for the user
/// (their refresh tokens, and the access tokens of those grants); whether there was one.
/// Call in a transaction.
pub fn withdraw(
    conn: &mut DbConnection,
    user_id: &str,
    client_id: &str,
    now: NaiveDateTime,
) -> Result<bool, StoreError> {
    let removed = diesel::delete(consents::table.find((user_id, client_id))).execute(conn)?;
    if removed == 0 {
        return Ok(false);
    }
    diesel::update(
        oidc_grants::table.filter(
            oidc_grants::user_id
                .eq(user_id)
                .and(oidc_grants::client_id.eq(client_id))
                .and(oidc_grants::revoked_at.is_null()),
        ),
    )
    .set(oidc_grants::revoked_at.eq(now))
    .execute(conn)?;
    Ok(true)
}
