//! Requests held for the person of one SSO session while they answer a page of
//! Gatehouse's (the consent question, the patient picker): kept in the ephemeral store
//! under the hash of a random id, found again only from that same session, and spent
//! once, only by that session, so nobody else's answer can spend or use it.

use std::time::Duration;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{
    auth::{random_token, session::SsoSession, token_hash},
    startup::AppState,
    web::error::AppError,
};

#[derive(Serialize, Deserialize)]
struct Held<T> {
    value: T,
    user_id: String,
    session_handle: String,
}

fn key(kind: &str, id: &str) -> String {
    format!("{kind}:{}", token_hash(id))
}

/// Holds `value` for `session`'s person for `ttl`; the id to find it by.
pub async fn hold<T: Serialize>(
    state: &AppState,
    kind: &str,
    value: &T,
    session: &SsoSession,
    ttl: Duration,
) -> Result<String, AppError> {
    let id = random_token();
    keep(state, kind, &id, value, session, ttl).await?;
    Ok(id)
}

/// Replaces what `id` holds (the same session's), for another `ttl`.
pub async fn keep<T: Serialize>(
    state: &AppState,
    kind: &str,
    id: &str,
    value: &T,
    session: &SsoSession,
    ttl: Duration,
) -> Result<(), AppError> {
    let held = Held {
        value,
        user_id: session.user_id.clone(),
        session_handle: session.handle.clone(),
    };
    let raw = serde_json::to_vec(&held).map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(state.ephemeral.set(&key(kind, id), &raw, ttl).await?)
}

/// What `id` holds, if it was held for `session`.
pub async fn find<T: DeserializeOwned>(
    state: &AppState,
    kind: &str,
    id: &str,
    session: &SsoSession,
) -> Result<Option<T>, AppError> {
    if id.is_empty() || id.len() > 64 {
        return Ok(None);
    }
    let Some(raw) = state.ephemeral.get(&key(kind, id)).await? else {
        return Ok(None);
    };
    let held: Held<T> =
        serde_json::from_slice(&raw).map_err(|e| AppError::Internal(e.to_string()))?;
    let theirs = held.user_id == session.user_id && held.session_handle == session.handle;
    Ok(theirs.then_some(held.value))
}

/// What `id` holds, spent: once it is known to be `session`'s, and only by the first of
/// two answers at once.
pub async fn take<T: DeserializeOwned>(
    state: &AppState,
    kind: &str,
    id: &str,
    session: &SsoSession,
) -> Result<Option<T>, AppError> {
    let Some(value) = find(state, kind, id, session).await? else {
        return Ok(None);
    };
    Ok(state
        .ephemeral
        .take(&key(kind, id))
        .await?
        .is_some()
        .then_some(value))
}
