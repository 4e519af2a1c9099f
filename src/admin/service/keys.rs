//! Signing keys: the token keys (JWKS) and the SAML key. Global: super administrators.

use crate::{
    audit::EventType,
    keys::rings::{self, RingError, Rotated},
    saml::keys::{SamlKeyError, SamlRotated},
    startup::{AppState, keep_retired, reload_saml_keys},
    store::signing_keys::{self, SigningKeyRow},
    web::error::AppError,
};

use super::{Acting, Action, Caller, ServiceError};

impl From<RingError> for ServiceError {
    fn from(e: RingError) -> Self {
        match e {
            RingError::Store(s) => s.into(),
            other => Self::Failed(AppError::Internal(format!("signing keys: {other}"))),
        }
    }
}

impl From<SamlKeyError> for ServiceError {
    fn from(e: SamlKeyError) -> Self {
        match e {
            SamlKeyError::Store(s) => s.into(),
            other => Self::Failed(AppError::Internal(other.to_string())),
        }
    }
}

/// Every token signing key: public facts only, never private material.
pub async fn list(state: &AppState, who: &Caller) -> Result<Vec<SigningKeyRow>, ServiceError> {
    who.require(Action::Global)?;
    Ok(state.store.run(signing_keys::list).await?)
}

/// Rotates every algorithm's token key: the published `next` key starts signing, the
/// active one retires (still published), a new `next` is published. This instance
/// switches at once; others within `signing_key_reload_secs`.
pub async fn rotate(by: Acting<'_>) -> Result<Vec<Rotated>, ServiceError> {
    by.who.require(Action::Global)?;
    let rotated = rings::rotate(
        &by.state.store,
        by.state.master_key.clone(),
        by.state.clock.now(),
    )
    .await?;
    let ring = rings::reload(
        &by.state.store,
        by.state.master_key.clone(),
        by.state.clock.now(),
        keep_retired(&by.state.config),
        Some(by.state.keys.current()),
    )
    .await?;
    by.state.keys.replace(ring);
    for r in &rotated {
        let event = by
            .event(EventType::KeyRotated)
            .detail("alg", r.alg)
            .detail("active_kid", r.active_kid.as_str())
            .detail("next_kid", r.next_kid.as_str());
        by.state.audit.record(event).await?;
    }
    Ok(rotated)
}

/// The SAML key published as next starts signing (DESIGN §10), the active one retires
/// and a new next key (and certificate) is published in the metadata.
pub async fn rotate_saml(by: Acting<'_>) -> Result<SamlRotated, ServiceError> {
    by.who.require(Action::Global)?;
    let entity_id = crate::saml::entity_id(by.state);
    let now = by.state.clock.now();
    let master_key = by.state.master_key.clone();
    // A database from before rotation may lack a next key: ensure publishes one first.
    crate::saml::keys::ensure(&by.state.store, master_key.clone(), &entity_id, now).await?;
    let r = crate::saml::keys::rotate(&by.state.store, master_key, &entity_id, now).await?;
    reload_saml_keys(by.state).await?;
    let event = by
        .event(EventType::KeyRotated)
        .detail("protocol", "saml")
        .detail("active_id", r.active_id.as_str())
        .detail("next_id", r.next_id.as_str());
    by.state.audit.record(event).await?;
    Ok(r)
}
