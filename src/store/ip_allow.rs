//! Client networks the brute-force guard never counts or blocks (DESIGN §5), managed
//! over the admin API and shared by every instance.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{DbConnection, StoreError, schema::ip_allow_list};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = ip_allow_list)]
pub struct AllowRow {
    /// A network in canonical CIDR form (`ipnet::IpNet`'s `Display`, host bits cleared).
    pub cidr: String,
    pub note: String,
    /// The administrator (user id or `client:<id>`) who added it.
    pub created_by: String,
    pub created_at: NaiveDateTime,
}

pub fn list(conn: &mut DbConnection) -> Result<Vec<AllowRow>, StoreError> {
    Ok(ip_allow_list::table
        .order(ip_allow_list::cidr.asc())
        .select(AllowRow::as_select())
        .load(conn)?)
}

/// Adds a network; `StoreError::Conflict` when it is already listed.
pub fn insert(conn: &mut DbConnection, row: &AllowRow) -> Result<(), StoreError> {
    diesel::insert_into(ip_allow_list::table)
        .values(row.clone())
        .execute(conn)?;
    Ok(())
}

/// Removes a network; false when it was not listed.
pub fn remove(conn: &mut DbConnection, cidr: &str) -> Result<bool, StoreError> {
    Ok(diesel::delete(ip_allow_list::table.find(cidr)).execute(conn)? > 0)
}
