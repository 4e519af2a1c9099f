//! SAML 2.0 IdP state (DESIGN §10): the IdP's signing key and certificate, and the
//! registered service providers.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{
    DbConnection, StoreError,
    schema::{saml_keys, saml_service_providers, saml_sp_metadata_sources},
};

pub const KEY_ACTIVE: &str = "active";
/// Published in the metadata, not signing yet.
pub const KEY_NEXT: &str = "next";
/// No longer signing; published until its grace period is over.
pub const KEY_RETIRED: &str = "retired";

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = saml_keys)]
pub struct SamlKeyRow {
    pub id: String,
    pub state: String,
    pub private_sealed: String,
    pub certificate: String,
    pub created_at: NaiveDateTime,
    pub activated_at: Option<NaiveDateTime>,
    pub retired_at: Option<NaiveDateTime>,
}

pub fn insert_key(conn: &mut DbConnection, row: &SamlKeyRow) -> Result<(), StoreError> {
    diesel::insert_into(saml_keys::table)
        .values((
            saml_keys::id.eq(&row.id),
            saml_keys::state.eq(&row.state),
            saml_keys::private_sealed.eq(&row.private_sealed),
            saml_keys::certificate.eq(&row.certificate),
            saml_keys::created_at.eq(row.created_at),
            saml_keys::activated_at.eq(row.activated_at),
            saml_keys::retired_at.eq(row.retired_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// The newest key in `state`, if any.
pub fn newest_key(conn: &mut DbConnection, state: &str) -> Result<Option<SamlKeyRow>, StoreError> {
    Ok(saml_keys::table
        .filter(saml_keys::state.eq(state))
        // Promotion leaves one active key; `ensure` racing on two instances may leave two,
        // and every instance then agrees on the newest.
        .order((saml_keys::created_at.desc(), saml_keys::id.desc()))
        .select(SamlKeyRow::as_select())
        .first(conn)
        .optional()?)
}

/// The newest active key, if any.
pub fn active_key(conn: &mut DbConnection) -> Result<Option<SamlKeyRow>, StoreError> {
    newest_key(conn, KEY_ACTIVE)
}

/// Every key the metadata publishes: next and active ones, and those retired after `since`.
pub fn published_keys(
    conn: &mut DbConnection,
    since: NaiveDateTime,
) -> Result<Vec<SamlKeyRow>, StoreError> {
    Ok(saml_keys::table
        .filter(
            saml_keys::state
                .eq_any([KEY_ACTIVE, KEY_NEXT])
                .or(saml_keys::state
                    .eq(KEY_RETIRED)
                    .and(saml_keys::retired_at.gt(since))),
        )
        .order((saml_keys::created_at.asc(), saml_keys::id.asc()))
        .select(SamlKeyRow::as_select())
        .load(conn)?)
}

/// `id` (the next key) starts signing; every other active key retires.
pub fn promote_key(
    conn: &mut DbConnection,
    id: &str,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    diesel::update(
        saml_keys::table
            .filter(saml_keys::state.eq(KEY_ACTIVE))
            .filter(saml_keys::id.ne(id)),
    )
    .set((
        saml_keys::state.eq(KEY_RETIRED),
        saml_keys::retired_at.eq(Some(now)),
    ))
    .execute(conn)?;
    diesel::update(saml_keys::table.find(id))
        .set((
            saml_keys::state.eq(KEY_ACTIVE),
            saml_keys::activated_at.eq(Some(now)),
        ))
        .execute(conn)?;
    Ok(())
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = saml_service_providers)]
pub struct ServiceProviderRow {
    pub entity_id: String,
    pub name: String,
    pub acs_endpoints: String,
    pub slo_endpoints: String,
    pub signing_certs: String,
    pub encryption_certs: String,
    pub name_id_format: String,
    pub name_id_source: String,
    pub attribute_map: String,
    pub sign_assertion: bool,
    pub sign_response: bool,
    pub require_signed_requests: bool,
    pub encrypt_assertions: bool,
    pub idp_initiated: bool,
    /// JSON array of strings.
    pub idp_initiated_relay_states: String,
    pub metadata: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

pub fn find_sp(
    conn: &mut DbConnection,
    entity_id: &str,
) -> Result<Option<ServiceProviderRow>, StoreError> {
    Ok(saml_service_providers::table
        .find(entity_id)
        .select(ServiceProviderRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn find_sps(
    conn: &mut DbConnection,
    entity_ids: &[String],
) -> Result<Vec<ServiceProviderRow>, StoreError> {
    Ok(saml_service_providers::table
        .filter(saml_service_providers::entity_id.eq_any(entity_ids))
        .select(ServiceProviderRow::as_select())
        .load(conn)?)
}

/// Inserts a new SP or replaces a registered one (re-import), keeping its creation time.
/// Returns true when it was new.
pub fn upsert_sp(conn: &mut DbConnection, row: &ServiceProviderRow) -> Result<bool, StoreError> {
    // MultiConnection has no `on_conflict` (STACK-NOTES): look, then insert or update,
    // inside the caller's transaction.
    match find_sp(conn, &row.entity_id)? {
        Some(existing) => {
            let mut updated = row.clone();
            updated.created_at = existing.created_at;
            diesel::update(saml_service_providers::table.find(&row.entity_id))
                .set(&updated)
                .execute(conn)?;
            Ok(false)
        }
        None => {
            diesel::insert_into(saml_service_providers::table)
                .values(row.clone())
                .execute(conn)?;
            Ok(true)
        }
    }
}

pub fn list_sps(conn: &mut DbConnection) -> Result<Vec<ServiceProviderRow>, StoreError> {
    Ok(saml_service_providers::table
        .order(saml_service_providers::entity_id.asc())
        .select(ServiceProviderRow::as_select())
        .load(conn)?)
}

pub fn delete_sp(conn: &mut DbConnection, entity_id: &str) -> Result<bool, StoreError> {
    Ok(diesel::delete(saml_service_providers::table.find(entity_id)).execute(conn)? > 0)
}

/// Replaces a registered SP's row, keeping its creation time; `NotFound` when it is gone.
pub fn update_sp(conn: &mut DbConnection, row: &ServiceProviderRow) -> Result<(), StoreError> {
    let existing = find_sp(conn, &row.entity_id)?.ok_or(StoreError::NotFound)?;
    let mut updated = row.clone();
    updated.created_at = existing.created_at;
    diesel::update(saml_service_providers::table.find(&row.entity_id))
        .set(&updated)
        .execute(conn)?;
    Ok(())
}

/// Where a URL-imported SP's metadata comes from (issue 24 item 6).
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = saml_sp_metadata_sources, treat_none_as_null = true)]
pub struct MetadataSourceRow {
    pub entity_id: String,
    pub url: String,
    /// Base64 DER of the certificate the metadata must be signed by.
    pub pinned_cert: Option<String>,
    pub refreshed_at: NaiveDateTime,
    pub next_refresh_at: NaiveDateTime,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
}

pub fn find_metadata_source(
    conn: &mut DbConnection,
    entity_id: &str,
) -> Result<Option<MetadataSourceRow>, StoreError> {
    Ok(saml_sp_metadata_sources::table
        .find(entity_id)
        .select(MetadataSourceRow::as_select())
        .first(conn)
        .optional()?)
}

/// Records (or replaces) where an SP's metadata is fetched from, keeping its creation time.
pub fn put_metadata_source(
    conn: &mut DbConnection,
    row: &MetadataSourceRow,
) -> Result<(), StoreError> {
    match find_metadata_source(conn, &row.entity_id)? {
        Some(existing) => {
            let mut updated = row.clone();
            updated.created_at = existing.created_at;
            diesel::update(saml_sp_metadata_sources::table.find(&row.entity_id))
                .set(&updated)
                .execute(conn)?;
        }
        None => {
            diesel::insert_into(saml_sp_metadata_sources::table)
                .values(row.clone())
                .execute(conn)?;
        }
    }
    Ok(())
}

/// Forgets an SP's metadata URL (it was imported again from a file).
pub fn delete_metadata_source(conn: &mut DbConnection, entity_id: &str) -> Result<(), StoreError> {
    diesel::delete(saml_sp_metadata_sources::table.find(entity_id)).execute(conn)?;
    Ok(())
}

/// The entity ids whose metadata is due for a refresh at `now`, oldest first.
pub fn due_metadata_sources(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    Ok(saml_sp_metadata_sources::table
        .filter(saml_sp_metadata_sources::next_refresh_at.le(now))
        .order(saml_sp_metadata_sources::next_refresh_at.asc())
        .limit(limit)
        .select(saml_sp_metadata_sources::entity_id)
        .load(conn)?)
}

/// Claims a due refresh: moves `next_refresh_at` to `until` if it is still due at `now`.
/// True for the one instance whose update won.
pub fn claim_metadata_refresh(
    conn: &mut DbConnection,
    entity_id: &str,
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> Result<bool, StoreError> {
    let claimed = diesel::update(
        saml_sp_metadata_sources::table
            .find(entity_id)
            .filter(saml_sp_metadata_sources::next_refresh_at.le(now)),
    )
    .set(saml_sp_metadata_sources::next_refresh_at.eq(until))
    .execute(conn)?;
    Ok(claimed == 1)
}

/// The outcome of a refresh attempt: when to try next and, on failure, why.
pub fn record_metadata_attempt(
    conn: &mut DbConnection,
    entity_id: &str,
    refreshed_at: Option<NaiveDateTime>,
    next_refresh_at: NaiveDateTime,
    last_error: Option<&str>,
) -> Result<(), StoreError> {
    let target = saml_sp_metadata_sources::table.find(entity_id);
    match refreshed_at {
        Some(at) => diesel::update(target)
            .set((
                saml_sp_metadata_sources::refreshed_at.eq(at),
                saml_sp_metadata_sources::next_refresh_at.eq(next_refresh_at),
                saml_sp_metadata_sources::last_error.eq(last_error),
            ))
            .execute(conn)?,
        None => diesel::update(target)
            .set((
                saml_sp_metadata_sources::next_refresh_at.eq(next_refresh_at),
                saml_sp_metadata_sources::last_error.eq(last_error),
            ))
            .execute(conn)?,
    };
    Ok(())
}

/// What a SAML private key is sealed for: its row (DESIGN §12). Here, beside the
/// column, so that the master-key rotation can re-seal it.
pub fn key_seal_context(id: &str) -> String {
    format!("saml-signing-key:{id}")
}

super::master_rotation::column_resealer!(
    /// Re-seals SAML private keys for a master-key rotation.
    reseal_keys, saml_keys, id, private_sealed, |id| key_seal_context(id)
);
