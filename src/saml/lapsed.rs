//! Telling SOAP SPs about SSO sessions that run out with no browser (issue 24 item 5).
//!
//! Which SPs a session has an assertion at is kept in the ephemeral store for the front
//! channel ([`super::sso::participants_key`]); nothing sweeps that. So an SP that
//! publishes a SOAP SingleLogoutService also gets a durable row
//! (`store::saml_soap_participants`) when it is answered. A session that ends by any
//! path that queues its SOAP logouts ([`soap::queue_logouts`]: sign-out, SAML logout, an
//! administrator's revoke, a lapse seen by the returning browser) drops its rows with
//! them. What is left belongs to sessions that ran out unnoticed: the janitor's
//! [`sweep_lapsed_sessions`] finds them and queues their SOAP logouts through the outbox.

use chrono::{DateTime, Duration};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::{
    logout_chain,
    providers::ServiceProvider,
    soap::{self, soap_endpoint},
    sso::Participant,
};
use crate::{
    audit::{AuditEvent, EventType, Outcome},
    auth::session::{self, SsoSession},
    startup::AppState,
    store::saml_soap_participants::{self as rows, SoapParticipantRow},
    web::error::AppError,
};

/// How long after its session's absolute end a row the sweep has not handled (the
/// janitor was down) is still kept for it. Past that it is purged unsent: the SP's own
/// session ended by then too (`SessionNotOnOrAfter`, never past the absolute end).
const PURGE_GRACE_HOURS: i64 = 24;

/// What the LogoutRequest is built from, sealed in the row.
#[derive(Serialize, Deserialize)]
struct Subject {
    name_id: String,
    format: String,
    user_id: String,
}

/// The sealing context: a row's subject opens only for its own session and SP.
fn context(handle: &str, sp: &str) -> String {
    crate::store::saml_soap_participants::seal_context(handle, sp)
}

/// Keeps the durable row of `participant` on `session` when its SP has a SOAP
/// SingleLogoutService, until the session's absolute end.
pub async fn remember(
    state: &AppState,
    session: &SsoSession,
    sp: &ServiceProvider,
    participant: &Participant,
) -> Result<(), AppError> {
    if soap_endpoint(sp).is_none() {
        return Ok(());
    }
    let subject = serde_json::to_vec(&Subject {
        name_id: participant.name_id.clone(),
        format: participant.format.clone(),
        user_id: session.user_id.clone(),
    })
    .map_err(|e| AppError::Internal(e.to_string()))?;
    let now = state.clock.now();
    let ends = session
        .created_at
        .saturating_add(i64::try_from(session.absolute_secs).unwrap_or(i64::MAX / 4));
    let row = SoapParticipantRow {
        subject_sealed: state
            .master_key
            .seal(&context(&session.handle, &sp.entity_id), &subject),
        session_handle: session.handle.clone(),
        sp_entity_id: sp.entity_id.clone(),
        expires_at: DateTime::from_timestamp(ends, 0).unwrap_or(now).naive_utc(),
        created_at: now.naive_utc(),
    };
    state.store.run(move |c| rows::remember(c, &row)).await?;
    Ok(())
}

/// Purges rows long past their session's end, then finds sessions with SOAP SPs that
/// are no longer live and queues their SOAP logouts (once: each row is claimed by the
/// instance that queues it). Run by every instance's janitor beside the OIDC sweep;
/// returns how many logouts it queued.
///
/// One read of the ephemeral store per session with such rows.
pub async fn sweep_lapsed_sessions(state: &AppState) -> Result<usize, AppError> {
    let before = state.clock.now().naive_utc() - Duration::hours(PURGE_GRACE_HOURS);
    state
        .store
        .transaction(move |c| rows::purge_expired(c, before))
        .await?;
    let handles = state.store.run(rows::handles).await?;
    let mut queued = 0;
    for handle in handles {
        if session::is_live(state.ephemeral.as_ref(), state.clock.as_ref(), &handle).await? {
            continue;
        }
        queued += tell_lapsed(state, &handle).await?;
    }
    Ok(queued)
}

/// Queues the SOAP logouts of lapsed session `handle` from its rows.
async fn tell_lapsed(state: &AppState, handle: &str) -> Result<usize, AppError> {
    let h = handle.to_owned();
    let listed = state.store.run(move |c| rows::of_session(c, &h)).await?;
    // The front channel's list goes too, so a browser coming back later tells no one again.
    logout_chain::take_participants(state, handle).await?;
    let mut user_id = None;
    let mut participants = Vec::with_capacity(listed.len());
    for row in &listed {
        match open(state, row) {
            Some(subject) => {
                user_id.get_or_insert(subject.user_id);
                participants.push(Participant {
                    sp: row.sp_entity_id.clone(),
                    name_id: subject.name_id,
                    format: subject.format,
                });
            }
            None => tracing::warn!(sp = %row.sp_entity_id, "a SOAP participant row does not open"),
        }
    }
    let queued = soap::queue_lapsed(state, user_id.as_deref(), handle, participants).await?;
    if queued > 0 {
        let mut event = AuditEvent::new(EventType::SessionEnded, Outcome::Success)
            .detail("reason", "lapsed")
            .detail("saml_soap_logouts", queued);
        if let Some(user) = &user_id {
            event = event.subject(user);
        }
        state.audit.record(event).await?;
    }
    Ok(queued)
}

fn open(state: &AppState, row: &SoapParticipantRow) -> Option<Subject> {
    let plain = state
        .master_key
        .open(
            &context(&row.session_handle, &row.sp_entity_id),
            &row.subject_sealed,
        )
        .ok()?;
    serde_json::from_slice(plain.expose_secret()).ok()
}
