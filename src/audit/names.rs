//! Names beside ids (issue 26): every event carries, in its details, the username of its
//! subject and of its actor (when they are users) and the name of its organisation, as
//! they were when it was written. A reader of the trail (or of an export, years on,
//! after renames) needs no join to know who and where; and because the names sit in the
//! details, the hash chain covers them like everything else.
//!
//! The writer resolves them for a whole batch at once, with one query over both tables,
//! just before appending: one round trip per batch, never one per event.

use std::collections::{HashMap, HashSet};

use diesel::{IntoSql, prelude::*, sql_types::Bool};
use serde_json::{Map, Value};

use super::event::{PreparedEvent, canonical_json, clean};
use crate::store::{
    DbConnection, StoreError,
    schema::{organisations as orgs, users},
};

/// The details keys this module owns: whatever a caller put under them is replaced.
pub const SUBJECT_USERNAME: &str = "subject_username";
pub const ACTOR_USERNAME: &str = "actor_username";
pub const ORG_NAME: &str = "org_name";

/// Longest name stored (usernames and organisation names are far shorter).
const MAX_NAME_CHARS: usize = 256;

/// Fills in the names for every event of `batch` that has a subject, actor or
/// organisation, reading the users and organisations it names in one query.
pub fn resolve(conn: &mut DbConnection, batch: &mut [PreparedEvent]) -> Result<(), StoreError> {
    let mut user_ids = HashSet::new();
    let mut org_ids = HashSet::new();
    for event in batch.iter() {
        for id in [&event.subject, &event.actor].into_iter().flatten() {
            if could_be_id(id) {
                user_ids.insert(id.clone());
            }
        }
        if let Some(org) = event.org_id.as_ref().filter(|o| could_be_id(o)) {
            org_ids.insert(org.clone());
        }
    }
    if user_ids.is_empty() && org_ids.is_empty() {
        return Ok(());
    }
    let found = lookup(conn, user_ids, org_ids)?;
    let (mut usernames, mut org_names) = (HashMap::new(), HashMap::new());
    for (id, name, is_org) in found {
        let name = clean(&name, MAX_NAME_CHARS);
        if is_org {
            org_names.insert(id, name);
        } else {
            usernames.insert(id, name);
        }
    }
    for event in batch.iter_mut() {
        let name_of = |id: &Option<String>, names: &HashMap<String, String>| {
            id.as_ref().and_then(|id| names.get(id)).cloned()
        };
        let names = [
            (SUBJECT_USERNAME, name_of(&event.subject, &usernames)),
            (ACTOR_USERNAME, name_of(&event.actor, &usernames)),
            (ORG_NAME, name_of(&event.org_id, &org_names)),
        ];
        name_event(event, &names);
    }
    Ok(())
}

/// Sets (or clears) the name keys of `event`'s details, re-serialising them only when
/// something changes.
fn name_event(event: &mut PreparedEvent, names: &[(&str, Option<String>); 3]) {
    let stale = names
        .iter()
        .any(|(key, name)| name.is_some() || event.details.contains(&format!("\"{key}\"")));
    if !stale {
        return;
    }
    let mut details: Map<String, Value> = match serde_json::from_str(&event.details) {
        Ok(Value::Object(map)) => map,
        // Not reachable: details are always written as a canonical JSON object.
        _ => return,
    };
    for (key, name) in names {
        match name {
            Some(name) => details.insert((*key).to_owned(), Value::String(name.clone())),
            None => details.remove(*key),
        };
    }
    event.details = canonical_json(&Value::Object(details));
}

/// `(id, name, is_org)` for each of `user_ids` and `org_ids` that exists.
fn lookup(
    conn: &mut DbConnection,
    user_ids: HashSet<String>,
    org_ids: HashSet<String>,
) -> Result<Vec<(String, String, bool)>, StoreError> {
    let user_ids: Vec<String> = user_ids.into_iter().collect();
    let org_ids: Vec<String> = org_ids.into_iter().collect();
    let of_users = users::table.filter(users::id.eq_any(user_ids)).select((
        users::id,
        users::username,
        false.into_sql::<Bool>(),
    ));
    let of_orgs = orgs::table.filter(orgs::id.eq_any(org_ids)).select((
        orgs::id,
        orgs::name,
        true.into_sql::<Bool>(),
    ));
    macro_rules! load {
        ($c:expr) => {
            of_users
                .union_all(of_orgs)
                .load::<(String, String, bool)>($c)
        };
    }
    Ok(match conn {
        DbConnection::Postgresql(pg) => load!(pg)?,
        DbConnection::Sqlite(lite) => load!(lite)?,
    })
}

/// Ids are ours (`store::new_id`): anything else (`client:…`, `cli:…`, an SP's entity
/// id) names no user or organisation, and is not worth a lookup.
fn could_be_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditEvent, EventType, Outcome};

    fn prepared(details: serde_json::Value) -> PreparedEvent {
        PreparedEvent::new(
            AuditEvent::new(EventType::UserUpdated, Outcome::Success).details(details),
            chrono::Utc::now(),
        )
    }

    #[test]
    fn names_are_set_and_stale_ones_replaced() {
        let mut event = prepared(serde_json::json!({"role": "support", "org_name": "forged"}));
        name_event(
            &mut event,
            &[
                (SUBJECT_USERNAME, Some("rosa".into())),
                (ACTOR_USERNAME, None),
                (ORG_NAME, Some("clinic".into())),
            ],
        );
        assert_eq!(
            event.details,
            r#"{"org_name":"clinic","role":"support","subject_username":"rosa"}"#
        );
    }

    #[test]
    fn a_name_no_one_has_is_not_claimed() {
        let mut event = prepared(serde_json::json!({"actor_username": "admin"}));
        name_event(
            &mut event,
            &[
                (SUBJECT_USERNAME, None),
                (ACTOR_USERNAME, None),
                (ORG_NAME, None),
            ],
        );
        assert_eq!(event.details, "{}");
    }

    #[test]
    fn only_our_ids_are_looked_up() {
        assert!(could_be_id("0b0d5bb4-4a1c-4c43-8a57-2c6b3e1c9a10"));
        for not in ["", "client:app", "cli:alice@host", &"a".repeat(65)] {
            assert!(!could_be_id(not), "{not}");
        }
    }
}
