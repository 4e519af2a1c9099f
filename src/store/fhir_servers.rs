//! FHIR servers registered as resource servers (DESIGN §18). Scopes and clients are
//! stored as JSON arrays, already checked by the admin service.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{
    DbConnection, StoreError, changed_one, new_id,
    schema::{fhir_servers, fhir_users},
};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = fhir_servers)]
pub struct FhirServerRow {
    pub id: String,
    pub base_url: String,
    pub display_name: String,
    pub allowed_scopes: String,
    pub allowed_clients: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl FhirServerRow {
    pub fn scopes(&self) -> Vec<String> {
        serde_json::from_str(&self.allowed_scopes).unwrap_or_default()
    }

    pub fn clients(&self) -> Vec<String> {
        serde_json::from_str(&self.allowed_clients).unwrap_or_default()
    }
}

/// A registration's values (everything but the id and times).
#[derive(Debug, Clone)]
pub struct FhirServerValues {
    pub base_url: String,
    pub display_name: String,
    pub allowed_scopes: Vec<String>,
    pub allowed_clients: Vec<String>,
}

impl FhirServerValues {
    fn json(list: &[String]) -> Result<String, StoreError> {
        serde_json::to_string(list).map_err(|e| StoreError::Query(e.to_string()))
    }
}

/// Registers a server; `Conflict` when its base URL is registered already.
pub fn insert(
    conn: &mut DbConnection,
    values: &FhirServerValues,
    now: NaiveDateTime,
) -> Result<FhirServerRow, StoreError> {
    let id = new_id();
    diesel::insert_into(fhir_servers::table)
        .values((
            fhir_servers::id.eq(&id),
            fhir_servers::base_url.eq(&values.base_url),
            fhir_servers::display_name.eq(&values.display_name),
            fhir_servers::allowed_scopes.eq(FhirServerValues::json(&values.allowed_scopes)?),
            fhir_servers::allowed_clients.eq(FhirServerValues::json(&values.allowed_clients)?),
            fhir_servers::created_at.eq(now),
            fhir_servers::updated_at.eq(now),
        ))
        .execute(conn)?;
    find(conn, &id)?.ok_or(StoreError::NotFound)
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<FhirServerRow>, StoreError> {
    Ok(fhir_servers::table
        .find(id)
        .select(FhirServerRow::as_select())
        .first(conn)
        .optional()?)
}

/// The server whose base URL is `base_url` (as [`crate::domain::FhirBaseUrl`] spells it).
pub fn by_base_url(
    conn: &mut DbConnection,
    base_url: &str,
) -> Result<Option<FhirServerRow>, StoreError> {
    Ok(fhir_servers::table
        .filter(fhir_servers::base_url.eq(base_url))
        .select(FhirServerRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn list(conn: &mut DbConnection) -> Result<Vec<FhirServerRow>, StoreError> {
    Ok(fhir_servers::table
        .order(fhir_servers::base_url.asc())
        .select(FhirServerRow::as_select())
        .load(conn)?)
}

/// Replaces a registration's values; `NotFound` or `Conflict` (the new base URL is
/// another server's).
pub fn update(
    conn: &mut DbConnection,
    id: &str,
    values: &FhirServerValues,
    now: NaiveDateTime,
) -> Result<FhirServerRow, StoreError> {
    changed_one(
        diesel::update(fhir_servers::table.find(id))
            .set((
                fhir_servers::base_url.eq(&values.base_url),
                fhir_servers::display_name.eq(&values.display_name),
                fhir_servers::allowed_scopes.eq(FhirServerValues::json(&values.allowed_scopes)?),
                fhir_servers::allowed_clients.eq(FhirServerValues::json(&values.allowed_clients)?),
                fhir_servers::updated_at.eq(now),
            ))
            .execute(conn)?,
    )?;
    find(conn, id)?.ok_or(StoreError::NotFound)
}

/// Removes a registration: the row it was, or `NotFound`.
pub fn delete(conn: &mut DbConnection, id: &str) -> Result<FhirServerRow, StoreError> {
    let row = find(conn, id)?.ok_or(StoreError::NotFound)?;
    changed_one(diesel::delete(fhir_servers::table.find(id)).execute(conn)?)?;
    Ok(row)
}

/// Sets `user_id`'s FHIR resource on server `server_id` (a reference such as
/// `Practitioner/123`, already checked), replacing the one it had. Called in a
/// transaction by the admin service: delete, then insert (no `on_conflict` through the
/// MultiConnection).
pub fn set_user_reference(
    conn: &mut DbConnection,
    user_id: &str,
    server_id: &str,
    reference: &str,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    clear_user_reference(conn, user_id, server_id)?;
    diesel::insert_into(fhir_users::table)
        .values((
            fhir_users::user_id.eq(user_id),
            fhir_users::fhir_server_id.eq(server_id),
            fhir_users::reference.eq(reference),
            fhir_users::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Removes `user_id`'s FHIR resource on `server_id`; whether there was one.
pub fn clear_user_reference(
    conn: &mut DbConnection,
    user_id: &str,
    server_id: &str,
) -> Result<bool, StoreError> {
    let rows = diesel::delete(
        fhir_users::table.filter(
            fhir_users::user_id
                .eq(user_id)
                .and(fhir_users::fhir_server_id.eq(server_id)),
        ),
    )
    .execute(conn)?;
    Ok(rows > 0)
}

/// `user_id`'s FHIR resources: each server with the reference the user has there.
pub fn user_references(
    conn: &mut DbConnection,
    user_id: &str,
) -> Result<Vec<(FhirServerRow, String)>, StoreError> {
    Ok(fhir_users::table
        .inner_join(fhir_servers::table)
        .filter(fhir_users::user_id.eq(user_id))
        .order(fhir_servers::base_url.asc())
        .select((FhirServerRow::as_select(), fhir_users::reference))
        .load(conn)?)
}

/// `user_id`'s FHIR resource on the server at `base_url`, if the user has one.
pub fn user_reference_at(
    conn: &mut DbConnection,
    user_id: &str,
    base_url: &str,
) -> Result<Option<String>, StoreError> {
    Ok(fhir_users::table
        .inner_join(fhir_servers::table)
        .filter(
            fhir_users::user_id
                .eq(user_id)
                .and(fhir_servers::base_url.eq(base_url)),
        )
        .select(fhir_users::reference)
        .first(conn)
        .optional()?)
}
