//! The signing keys at start-up and after it (DESIGN §9, §10, §12): the active keys made
//! or opened before the server serves, the next keys made once it serves, and the rings
//! reloaded now and then so a rotation run against the shared database reaches every
//! instance.

use std::{sync::Arc, time::Duration};

use actix_web::web;

use super::{AppState, StartupError};
use crate::{
    clock::SharedClock,
    config::Config,
    crypto::{MasterKey, signing::KeyRing},
    keys::rings,
    saml::keys::{self as saml_keys, SamlKeyError, SamlKeys},
    store::Store,
};

/// How long a retired key stays published: past the life of anything it signed.
pub fn keep_retired(config: &Config) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(config.access_token_secs).unwrap_or(86_400) + 300)
}

/// The IdP's SAML entity ID, which names its certificate.
fn saml_entity(config: &Config) -> String {
    format!("{}/saml/metadata", config.public_base())
}

/// The OIDC key rings, each with its active key (made on a first start).
pub(super) async fn load_keys(
    config: &Config,
    store: &Store,
    master_key: &Arc<MasterKey>,
    clock: &SharedClock,
) -> Result<KeyRing, StartupError> {
    let keys_error = |e: rings::RingError| StartupError::MasterKey(format!("signing keys: {e}"));
    rings::ensure_active(store, master_key.clone(), clock.now())
        .await
        .map_err(keys_error)?;
    rings::load(store, master_key.clone(), clock.now(), keep_retired(config))
        .await
        .map_err(keys_error)
}

/// The SAML signing keys, with the active one (made on a first start).
pub(super) async fn load_saml_keys(
    config: &Config,
    store: &Store,
    master_key: &Arc<MasterKey>,
    clock: &SharedClock,
) -> Result<SamlKeys, StartupError> {
    let saml_error = |e: SamlKeyError| StartupError::MasterKey(e.to_string());
    saml_keys::ensure_active(store, master_key.clone(), &saml_entity(config), clock.now())
        .await
        .map_err(saml_error)?;
    let set = saml_keys::load(
        store,
        master_key,
        clock.now(),
        saml_keys::keep_retired(config.saml_assertion_secs),
    )
    .await
    .map_err(saml_error)?;
    Ok(SamlKeys::new(set))
}

/// Loads the SAML keys again from the database (after a rotation by the CLI or another
/// instance).
pub async fn reload_saml_keys(state: &AppState) -> Result<(), SamlKeyError> {
    let set = saml_keys::load(
        &state.store,
        &state.master_key,
        state.clock.now(),
        saml_keys::keep_retired(state.config.saml_assertion_secs),
    )
    .await?;
    state.saml_keys.replace(set);
    Ok(())
}

/// Both rings again from the database, the keys already open reused; a failure is
/// logged and the rings in use stay.
async fn reload_all(state: &AppState) {
    let loaded = rings::reload(
        &state.store,
        state.master_key.clone(),
        state.clock.now(),
        keep_retired(&state.config),
        Some(state.keys.current()),
    )
    .await;
    match loaded {
        Ok(ring) => state.keys.replace(ring),
        Err(e) => tracing::warn!(error = %e, "signing keys not reloaded"),
    }
    if let Err(e) = reload_saml_keys(state).await {
        tracing::warn!(error = %e, "SAML signing keys not reloaded");
    }
}

/// The next keys of each ring (OIDC and SAML), published ahead of the rotation that makes
/// them sign (DESIGN §9): made once the server serves, since on a first start the RSA
/// ones would double the wait, then loaded. A failure is logged; the next start, or a
/// rotation, makes them.
pub(super) fn spawn_next_keys(state: &web::Data<AppState>) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let now = state.clock.now();
        let entity = saml_entity(&state.config);
        let (oidc, saml) = tokio::join!(
            rings::ensure(&state.store, state.master_key.clone(), now),
            saml_keys::ensure(&state.store, state.master_key.clone(), &entity, now),
        );
        if let Err(e) = oidc {
            tracing::error!(error = %e, "next signing keys not made; a rotation or the next start makes them");
        }
        if let Err(e) = saml {
            tracing::error!(error = %e, "next SAML key not made; a rotation or the next start makes it");
        }
        reload_all(&state).await;
    })
}

/// Reloads the signing keys now and then, so a rotation run against the shared database
/// reaches this instance; stops when the application is dropped.
pub(super) fn spawn_key_reloader(state: &web::Data<AppState>) {
    let weak = Arc::downgrade(&state.clone().into_inner());
    let every = Duration::from_secs(state.config.signing_key_reload_secs);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(state) = weak.upgrade() else { return };
            reload_all(&state).await;
        }
    });
}
