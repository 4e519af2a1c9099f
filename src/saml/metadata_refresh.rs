//! SPs registered from a metadata URL, kept current (issue 24 item 6): the import records
//! where the metadata came from (URL, pinned certificate), and a refresh fetches it
//! again, applies what the SP itself owns (its endpoints and certificates) and keeps what
//! the administrator decided (name, NameID, attributes, signing and encryption flags).
//!
//! A refresh that fails (server down, bad signature, expired) changes nothing: the SP
//! keeps working on the metadata it had, and the failure is logged and audited. Never
//! is an SP dropped because its metadata server is away.

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Duration, Utc};

use super::{
    metadata_fetch::{self, FetchPolicy, Selected},
    providers::{self, ImportSettings, ServiceProvider, SpError},
};
use crate::{
    audit::{AuditEvent, EventType, Outcome},
    config::Config,
    startup::AppState,
    store::{
        Store, StoreError,
        saml::{self, MetadataSourceRow},
    },
};

/// How long an instance holds a claimed refresh before another may try.
const CLAIM: Duration = Duration::minutes(5);
/// Soonest retry after a failure, and the floor under a document's `cacheDuration`.
const RETRY: Duration = Duration::minutes(5);
/// Due refreshes one pass takes on.
const BATCH: i64 = 20;

/// Where an SP's metadata is fetched from.
#[derive(Debug, Clone)]
pub struct Source {
    pub url: String,
    /// DER of the certificate the metadata must be signed by.
    pub pinned_cert: Option<Vec<u8>>,
}

/// The fetch rules and refresh interval from the configuration.
pub fn policy(config: &Config) -> FetchPolicy {
    FetchPolicy {
        allow_local: config.saml_metadata_allow_local,
    }
}

/// When to fetch again: the configured interval, sooner if the document's
/// `cacheDuration` says so (never sooner than [`RETRY`]).
fn next_due(config: &Config, selected: &Selected, now: DateTime<Utc>) -> DateTime<Utc> {
    let every = match config.saml_metadata_refresh_secs {
        0 => Duration::hours(1),
        s => Duration::seconds(i64::try_from(s).unwrap_or(3600)),
    };
    let cache = selected
        .cache_duration
        .map(|c| c.max(RETRY.min(every)))
        .unwrap_or(every);
    now + every.min(cache)
}

/// The URL as the audit trail and logs show it: no query (it may carry a token).
pub fn shown_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "(not a URL)".into(),
    }
}

async fn fetch_selected(
    config: &Config,
    source: &Source,
    wanted: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Selected, SpError> {
    let policy = policy(config);
    let url = metadata_fetch::check_url(&source.url, policy)?;
    let document = metadata_fetch::fetch(&url, policy).await?;
    metadata_fetch::select(&document, source.pinned_cert.as_deref(), wanted, now).await
}

/// Registers (or re-registers) the SP whose metadata `source` serves (`entity_id` picks
/// one out of an aggregate) and remembers the source for refreshes. True when new.
pub async fn import(
    state: &AppState,
    source: &Source,
    entity_id: Option<&str>,
    settings: &ImportSettings,
) -> Result<(ServiceProvider, bool), SpError> {
    let now = state.clock.now();
    let selected = fetch_selected(&state.config, source, entity_id, now).await?;
    let (sp, created) = providers::import(&state.store, &selected.xml, settings, now).await?;
    let row = MetadataSourceRow {
        entity_id: sp.entity_id.clone(),
        url: source.url.clone(),
        pinned_cert: source.pinned_cert.as_ref().map(|c| STANDARD.encode(c)),
        refreshed_at: now.naive_utc(),
        next_refresh_at: next_due(&state.config, &selected, now).naive_utc(),
        last_error: None,
        created_at: now.naive_utc(),
    };
    state
        .store
        .run(move |c| saml::put_metadata_source(c, &row))
        .await?;
    Ok((sp, created))
}

/// Forgets where an SP's metadata came from (it was imported again from a file).
pub async fn forget_source(store: &Store, entity_id: &str) -> Result<(), SpError> {
    let id = entity_id.to_owned();
    Ok(store
        .run(move |c| saml::delete_metadata_source(c, &id))
        .await?)
}

/// What a refresh found.
#[derive(Debug, Clone)]
pub struct Refreshed {
    pub entity_id: String,
    pub url: String,
    /// What differs from before: `acs`, `slo`, `signing_certs`, `encryption_certs`.
    pub changed: Vec<&'static str>,
    pub sp: ServiceProvider,
}

/// What the SP's own metadata decides changes; the administrator's settings stay.
fn apply(current: &ServiceProvider, fresh: ServiceProvider) -> Result<ServiceProvider, SpError> {
    if current.require_signed_requests && fresh.signing_certs.is_empty() {
        return Err(SpError::Metadata(
            "the new metadata has no signing certificate, and this SP must sign its requests"
                .into(),
        ));
    }
    if current.encrypt_assertions && fresh.encryption_certs.is_empty() {
        return Err(SpError::Metadata(
            "the new metadata has no encryption certificate, and assertions to this SP are encrypted"
                .into(),
        ));
    }
    let mut next = current.clone();
    next.acs = fresh.acs;
    next.skipped_acs = fresh.skipped_acs;
    next.slo = fresh.slo;
    next.signing_certs = fresh.signing_certs;
    next.encryption_certs = fresh.encryption_certs;
    Ok(next)
}

fn changes(before: &ServiceProvider, after: &ServiceProvider) -> Vec<&'static str> {
    [
        ("acs", before.acs != after.acs),
        ("slo", before.slo != after.slo),
        ("signing_certs", before.signing_certs != after.signing_certs),
        (
            "encryption_certs",
            before.encryption_certs != after.encryption_certs,
        ),
    ]
    .into_iter()
    .filter_map(|(name, differs)| differs.then_some(name))
    .collect()
}

/// Fetches `entity_id`'s metadata again and applies it. On failure nothing changes but
/// the time of the next attempt and the error noted with the source.
pub async fn refresh(state: &AppState, entity_id: &str) -> Result<Refreshed, SpError> {
    let id = entity_id.to_owned();
    let found = state
        .store
        .run(move |c| Ok((saml::find_sp(c, &id)?, saml::find_metadata_source(c, &id)?)))
        .await?;
    let (Some(row), Some(source)) = found else {
        return Err(SpError::Invalid {
            field: "url",
            reason: format!("{entity_id} was not imported from a metadata URL"),
        });
    };
    let now = state.clock.now();
    let outcome = refresh_from(state, &row, &source, now).await;
    let (refreshed_at, next, error) = match &outcome {
        Ok((_, next)) => (Some(now.naive_utc()), *next, None),
        Err(e) => (None, now + RETRY, Some(e.to_string())),
    };
    let id = entity_id.to_owned();
    state
        .store
        .run(move |c| {
            saml::record_metadata_attempt(c, &id, refreshed_at, next.naive_utc(), error.as_deref())
        })
        .await?;
    let (refreshed, _) = outcome?;
    Ok(refreshed)
}

async fn refresh_from(
    state: &AppState,
    row: &saml::ServiceProviderRow,
    source: &MetadataSourceRow,
    now: DateTime<Utc>,
) -> Result<(Refreshed, DateTime<Utc>), SpError> {
    let current = ServiceProvider::from_row(row)?;
    let pinned = source
        .pinned_cert
        .as_deref()
        .map(|c| STANDARD.decode(c))
        .transpose()
        .map_err(|_| SpError::Damaged(row.entity_id.clone()))?;
    let fetched = Source {
        url: source.url.clone(),
        pinned_cert: pinned,
    };
    let selected = fetch_selected(&state.config, &fetched, Some(&row.entity_id), now).await?;
    // Read leniently: the administrator's flags are checked against it in `apply`.
    let lenient = ImportSettings {
        require_signed_requests: Some(false),
        encrypt_assertions: Some(false),
        ..ImportSettings::default()
    };
    let fresh = providers::from_metadata(&selected.xml, &lenient)?;
    let next = apply(&current, fresh)?;
    let changed = changes(&current, &next);
    let updated = next.to_row(&selected.xml, now);
    state
        .store
        .run(move |c| saml::update_sp(c, &updated))
        .await?;
    let due = next_due(&state.config, &selected, now);
    Ok((
        Refreshed {
            entity_id: row.entity_id.clone(),
            url: source.url.clone(),
            changed,
            sp: next,
        },
        due,
    ))
}

/// The audit event of a refresh (by `actor`, or the system's schedule when `None`).
pub fn event(
    entity_id: &str,
    outcome: &Result<Refreshed, SpError>,
    actor: Option<&str>,
) -> AuditEvent {
    let event = match outcome {
        Ok(r) => AuditEvent::new(EventType::SamlSpMetadataRefreshed, Outcome::Success)
            .detail("url", shown_url(&r.url))
            .detail("changed", r.changed.join(","))
            .detail(
                "acs",
                r.sp.acs
                    .iter()
                    .map(|e| e.location.clone())
                    .collect::<Vec<_>>(),
            ),
        Err(e) => AuditEvent::new(EventType::SamlSpMetadataRefreshed, Outcome::Failure).detail(
            "reason",
            e.to_string().chars().take(300).collect::<String>(),
        ),
    };
    let event = event.detail("entity_id", entity_id);
    match actor {
        Some(a) => event.actor(a),
        None => event,
    }
}

/// One pass of the schedule: every due SP this instance claims is refreshed; changes and
/// failures are audited (an unchanged refresh is not). Returns how many were tried.
pub async fn refresh_due(state: &AppState) -> Result<usize, StoreError> {
    let now = state.clock.now().naive_utc();
    let due = state
        .store
        .run(move |c| saml::due_metadata_sources(c, now, BATCH))
        .await?;
    let mut tried = 0;
    for entity_id in due {
        let (id, until) = (entity_id.clone(), now + CLAIM);
        let claimed = state
            .store
            .run(move |c| saml::claim_metadata_refresh(c, &id, now, until))
            .await?;
        if !claimed {
            continue;
        }
        tried += 1;
        let outcome = refresh(state, &entity_id).await;
        match &outcome {
            Ok(r) if r.changed.is_empty() => continue,
            Ok(r) => {
                tracing::info!(entity_id = %entity_id, changed = ?r.changed, "SP metadata refreshed")
            }
            Err(e) => {
                tracing::warn!(entity_id = %entity_id, error = %e, "SP metadata not refreshed; keeping what it had")
            }
        }
        if let Err(e) = state.audit.record(event(&entity_id, &outcome, None)).await {
            tracing::warn!(error = %e, "metadata refresh not audited");
        }
    }
    Ok(tried)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_query() {
        assert_eq!(
            shown_url("https://md.example/entities/x?token=abc#f"),
            "https://md.example/entities/x"
        );
    }
}
