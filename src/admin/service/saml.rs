//! SAML service providers (DESIGN §10). Global, like clients: super administrators.

use std::collections::BTreeMap;

use crate::{
    saml::{
        providers::{self, ImportSettings, ServiceProvider, SettingsChange, SpError},
        xml::MAX_METADATA_BYTES,
    },
    startup::AppState,
    store::StoreError,
};

use super::{Acting, Action, Caller, ServiceError};

fn not_registered(entity_id: &str) -> ServiceError {
    ServiceError::NotFound(format!("service provider {entity_id} is not registered"))
}

pub async fn list(state: &AppState, who: &Caller) -> Result<Vec<ServiceProvider>, ServiceError> {
    who.require(Action::Global)?;
    Ok(providers::list(&state.store).await?)
}

pub async fn find(
    state: &AppState,
    who: &Caller,
    entity_id: &str,
) -> Result<ServiceProvider, ServiceError> {
    who.require(Action::Global)?;
    providers::find(&state.store, entity_id)
        .await?
        .ok_or_else(|| not_registered(entity_id))
}

fn check_name(name: Option<&String>) -> Result<(), ServiceError> {
    if name.is_some_and(|n| n.chars().count() > 200) {
        return Err(ServiceError::Invalid("name: at most 200 characters".into()));
    }
    Ok(())
}

/// Registers (or re-registers, same entity id) an SP from its metadata; `attributes`,
/// when given, replaces the whole attribute mapping. True when it was new.
pub async fn import(
    state: &AppState,
    by: Acting<'_>,
    metadata: &str,
    settings: ImportSettings,
    attributes: Option<BTreeMap<String, String>>,
) -> Result<(ServiceProvider, bool), ServiceError> {
    by.who.require(Action::Global)?;
    if metadata.len() > MAX_METADATA_BYTES {
        return Err(ServiceError::Invalid("metadata: at most 1 MiB".into()));
    }
    check_name(settings.name.as_ref())?;
    let now = state.clock.now();
    let (mut sp, created) = providers::import(&state.store, metadata, &settings, now).await?;
    if let Some(attributes) = attributes {
        let change = SettingsChange {
            attributes: Some(attributes),
            ..Default::default()
        };
        sp = providers::update_settings(&state.store, &sp.entity_id, change, now).await?;
    }
    let change = if created { "created" } else { "updated" };
    record(state, by, change, &sp.entity_id).await?;
    Ok((sp, created))
}

/// Changes an SP's settings; what the change leaves out is kept.
pub async fn update(
    state: &AppState,
    by: Acting<'_>,
    entity_id: &str,
    change: SettingsChange,
) -> Result<ServiceProvider, ServiceError> {
    by.who.require(Action::Global)?;
    check_name(change.name.as_ref())?;
    let sp = providers::update_settings(&state.store, entity_id, change, state.clock.now())
        .await
        .map_err(|e| match e {
            SpError::Store(StoreError::NotFound) => not_registered(entity_id),
            other => other.into(),
        })?;
    record(state, by, "updated", &sp.entity_id).await?;
    Ok(sp)
}

/// Forgets an SP; not found when it was not registered.
pub async fn delete(state: &AppState, by: Acting<'_>, entity_id: &str) -> Result<(), ServiceError> {
    by.who.require(Action::Global)?;
    if !providers::remove(&state.store, entity_id).await? {
        return Err(not_registered(entity_id));
    }
    record(state, by, "deleted", entity_id).await
}

async fn record(
    state: &AppState,
    by: Acting<'_>,
    change: &str,
    entity_id: &str,
) -> Result<(), ServiceError> {
    by.record_change(state, "saml_sp", change, ("entity_id", entity_id))
        .await
}
