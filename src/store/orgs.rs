//! Organisations.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{DbConnection, StoreError, changed_one, new_id, schema::organisations};
use crate::domain::{OrgName, OrgPolicy};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = organisations)]
pub struct OrgRow {
    pub id: String,
    pub name: String,
    pub display_name: String,
    pub policy: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl OrgRow {
    /// The stored policy; a document that no longer parses falls back to the defaults
    /// rather than locking everyone out, and says so in the log.
    pub fn policy(&self) -> OrgPolicy {
        serde_json::from_str(&self.policy).unwrap_or_else(|e| {
            tracing::error!(org = %self.name, error = %e, "organisation policy unreadable; using defaults");
            OrgPolicy::default()
        })
    }
}

#[derive(Insertable)]
#[diesel(table_name = organisations)]
struct NewOrg<'a> {
    id: &'a str,
    name: &'a str,
    display_name: &'a str,
    policy: &'a str,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

pub fn find_by_name(conn: &mut DbConnection, name: &OrgName) -> Result<Option<OrgRow>, StoreError> {
    Ok(organisations::table
        .filter(organisations::name.eq(name.as_str()))
        .select(OrgRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn list(conn: &mut DbConnection) -> Result<Vec<OrgRow>, StoreError> {
    Ok(organisations::table
        .order(organisations::name.asc())
        .select(OrgRow::as_select())
        .load(conn)?)
}

pub fn find_by_id(conn: &mut DbConnection, id: &str) -> Result<Option<OrgRow>, StoreError> {
    Ok(organisations::table
        .find(id)
        .select(OrgRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn insert(
    conn: &mut DbConnection,
    name: &OrgName,
    display_name: &str,
    policy: &OrgPolicy,
    now: NaiveDateTime,
) -> Result<OrgRow, StoreError> {
    let id = new_id();
    let policy = serde_json::to_string(policy).map_err(|e| StoreError::Query(e.to_string()))?;
    diesel::insert_into(organisations::table)
        .values(&NewOrg {
            id: &id,
            name: name.as_str(),
            display_name,
            policy: &policy,
            created_at: now,
            updated_at: now,
        })
        .execute(conn)?;
    find_by_id(conn, &id)?.ok_or(StoreError::NotFound)
}

pub fn set_policy(
    conn: &mut DbConnection,
    id: &str,
    policy: &OrgPolicy,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    let policy = serde_json::to_string(policy).map_err(|e| StoreError::Query(e.to_string()))?;
    changed_one(
        diesel::update(organisations::table.find(id))
            .set((
                organisations::policy.eq(policy),
                organisations::updated_at.eq(now),
            ))
            .execute(conn)?,
    )
}
