//! SAML service providers (DESIGN §10). Global, like clients: super administrators.

use std::collections::BTreeMap;

use crate::{
    saml::{
        metadata_refresh,
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
    let now = by.state.clock.now();
    let (mut sp, created) = providers::import(&by.state.store, metadata, &settings, now).await?;
    if let Some(attributes) = attributes {
        let change = SettingsChange {
            attributes: Some(attributes),
            ..Default::default()
        };
        sp = providers::update_settings(&by.state.store, &sp.entity_id, change, now).await?;
    }
    // Imported from a file now: no longer refreshed from the URL it once came from.
    metadata_refresh::forget_source(&by.state.store, &sp.entity_id).await?;
    let change = if created { "created" } else { "updated" };
    record(by, change, &sp.entity_id).await?;
    Ok((sp, created))
}

/// Registers (or re-registers) an SP from its metadata URL and keeps it refreshed from
/// there; with `source.pinned_cert`, only metadata signed by it is accepted. `entity_id`
/// picks the SP out of a federation aggregate. True when it was new.
pub async fn import_url(
    by: Acting<'_>,
    source: metadata_refresh::Source,
    entity_id: Option<&str>,
    settings: ImportSettings,
) -> Result<(ServiceProvider, bool), ServiceError> {
    by.who.require(Action::Global)?;
    check_name(settings.name.as_ref())?;
    if entity_id.is_some_and(|e| e.is_empty() || e.len() > providers::MAX_ENTITY_ID_LEN) {
        return Err(ServiceError::Invalid(
            "entity_id: 1 to 1024 characters".into(),
        ));
    }
    let (sp, created) = metadata_refresh::import(by.state, &source, entity_id, &settings).await?;
    let change = if created { "created" } else { "updated" };
    record(by, change, &sp.entity_id).await?;
    Ok((sp, created))
}

/// Fetches a URL-imported SP's metadata again now and applies it (audited either way:
/// what changed, or why nothing could).
pub async fn refresh(
    by: Acting<'_>,
    entity_id: &str,
) -> Result<metadata_refresh::Refreshed, ServiceError> {
    by.who.require(Action::Global)?;
    if providers::find(&by.state.store, entity_id).await?.is_none() {
        return Err(not_registered(entity_id));
    }
    let outcome = metadata_refresh::refresh(by.state, entity_id).await;
    let event = metadata_refresh::event(entity_id, &outcome, Some(&by.who.actor));
    let event = match by.request {
        Some(ctx) => event.request(ctx),
        None => event,
    };
    by.state.audit.record(event).await?;
    Ok(outcome?)
}

/// Changes an SP's settings; what the change leaves out is kept.
pub async fn update(
    by: Acting<'_>,
    entity_id: &str,
    change: SettingsChange,
) -> Result<ServiceProvider, ServiceError> {
    by.who.require(Action::Global)?;
    check_name(change.name.as_ref())?;
    let sp = providers::update_settings(&by.state.store, entity_id, change, by.state.clock.now())
        .await
        .map_err(|e| match e {
            SpError::Store(StoreError::NotFound) => not_registered(entity_id),
            other => other.into(),
        })?;
    record(by, "updated", &sp.entity_id).await?;
    Ok(sp)
}

/// Forgets an SP; not found when it was not registered.
pub async fn delete(by: Acting<'_>, entity_id: &str) -> Result<(), ServiceError> {
    by.who.require(Action::Global)?;
    if !providers::remove(&by.state.store, entity_id).await? {
        return Err(not_registered(entity_id));
    }
    record(by, "deleted", entity_id).await
}

async fn record(by: Acting<'_>, change: &str, entity_id: &str) -> Result<(), ServiceError> {
    by.record_change(by.state, "saml_sp", change, ("entity_id", entity_id))
        .await
}
