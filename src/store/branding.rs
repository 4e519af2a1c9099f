//! Organisations' branding (issue 31): the document and the logo, one row per
//! organisation that set either.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{DbConnection, StoreError, schema::org_branding};
use crate::{
    domain::{Branding, Logo, LogoKind},
    i18n::Brand,
};

/// What an organisation set of its branding. A document that no longer parses reads as
/// none, and says so in the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    pub branding: Branding,
    pub logo: Option<Logo>,
    pub updated_at: Option<NaiveDateTime>,
}

type Row = (String, Option<Vec<u8>>, Option<String>, NaiveDateTime);

fn stored(org_id: &str, (document, logo, logo_type, updated_at): Row) -> Stored {
    let branding = serde_json::from_str(&document).unwrap_or_else(|e| {
        tracing::error!(org_id, error = %e, "organisation branding unreadable; showing none");
        Branding::default()
    });
    let logo = match (
        logo,
        logo_type.as_deref().and_then(LogoKind::from_content_type),
    ) {
        (Some(bytes), Some(kind)) => Some(Logo { kind, bytes }),
        _ => None,
    };
    Stored {
        branding,
        logo,
        updated_at: Some(updated_at),
    }
}

pub fn find(conn: &mut DbConnection, org_id: &str) -> Result<Stored, StoreError> {
    let row: Option<Row> = org_branding::table
        .find(org_id)
        .select((
            org_branding::document,
            org_branding::logo,
            org_branding::logo_type,
            org_branding::updated_at,
        ))
        .first(conn)
        .optional()?;
    Ok(row.map(|r| stored(org_id, r)).unwrap_or_default())
}

/// Every organisation's branding, for finding the one an app shows (few organisations).
pub fn all(conn: &mut DbConnection) -> Result<Vec<(String, Stored)>, StoreError> {
    let rows: Vec<(String, Row)> = org_branding::table
        .select((
            org_branding::org_id,
            (
                org_branding::document,
                org_branding::logo,
                org_branding::logo_type,
                org_branding::updated_at,
            ),
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, row)| {
            let s = stored(&id, row);
            (id, s)
        })
        .collect())
}

/// Replaces what `org_id` set (delete, then insert: no `on_conflict` through the
/// MultiConnection; call in a transaction).
pub fn save(
    conn: &mut DbConnection,
    org_id: &str,
    branding: &Branding,
    logo: Option<&Logo>,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    let document = serde_json::to_string(branding).map_err(|e| StoreError::Query(e.to_string()))?;
    diesel::delete(org_branding::table.find(org_id)).execute(conn)?;
    diesel::insert_into(org_branding::table)
        .values((
            org_branding::org_id.eq(org_id),
            org_branding::document.eq(document),
            org_branding::logo.eq(logo.map(|l| l.bytes.as_slice())),
            org_branding::logo_type.eq(logo.map(|l| l.kind.content_type())),
            org_branding::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// What pages and mails show of organisation `org_id`: None when it has no such
/// organisation or set no branding (then they look like Gatehouse's own).
pub fn brand(conn: &mut DbConnection, org_id: &str) -> Result<Option<Brand>, StoreError> {
    let Some(org) = super::orgs::find_by_id(conn, org_id)? else {
        return Ok(None);
    };
    let stored = find(conn, org_id)?;
    let Some(updated_at) = stored.updated_at else {
        return Ok(None);
    };
    let b = stored.branding;
    Ok(Some(Brand {
        name: b.display_name.unwrap_or(org.display_name),
        support_text: b.support_text,
        logo: stored.logo.is_some(),
        colours: b.accent.is_some() || b.accent_dark.is_some(),
        org_id: org.id,
        version: updated_at.and_utc().timestamp(),
    }))
}
