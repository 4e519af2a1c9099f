//! FHIR servers registered as resource servers (DESIGN §18). Scopes and clients are
//! stored as JSON arrays, already checked by the admin service.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{DbConnection, StoreError, changed_one, new_id, schema::fhir_servers};

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
