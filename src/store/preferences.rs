//! A person's own language and time zone (issue 31): one row once they chose either.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{DbConnection, StoreError, schema::user_preferences};

/// What a person chose; None is "as the browser and the organisation say".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preferences {
    pub language: Option<String>,
    pub time_zone: Option<String>,
}

pub fn find(conn: &mut DbConnection, user_id: &str) -> Result<Preferences, StoreError> {
    Ok(user_preferences::table
        .find(user_id)
        .select((user_preferences::language, user_preferences::time_zone))
        .first::<(Option<String>, Option<String>)>(conn)
        .optional()?
        .map(|(language, time_zone)| Preferences {
            language,
            time_zone,
        })
        .unwrap_or_default())
}

/// Replaces the person's choice (delete, then insert: no `on_conflict` through the
/// MultiConnection; call in a transaction).
pub fn save(
    conn: &mut DbConnection,
    user_id: &str,
    preferences: &Preferences,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    diesel::delete(user_preferences::table.find(user_id)).execute(conn)?;
    if *preferences == Preferences::default() {
        return Ok(());
    }
    diesel::insert_into(user_preferences::table)
        .values((
            user_preferences::user_id.eq(user_id),
            user_preferences::language.eq(&preferences.language),
            user_preferences::time_zone.eq(&preferences.time_zone),
            user_preferences::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}
