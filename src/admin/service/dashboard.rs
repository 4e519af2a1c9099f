//! The console's dashboard: over the organisations an administrator sees, what the
//! last day brought and what waits for someone now. Counts only, each one bounded
//! query (`COUNT`, within a time window where it is about events); never rows, so
//! nothing personal is read and the read is not itself recorded.

use chrono::Duration;

use super::{Action, Caller, ServiceError};
use crate::{
    audit::{AuditFilter, EventType, Outcome},
    domain::Role,
    startup::AppState,
    store::{emergency, ip_blocks, lockouts, outbox},
};

/// The window the event figures cover.
pub const WINDOW: Duration = Duration::hours(24);

/// What the dashboard shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figures {
    /// `sign_in.succeeded` events in the window.
    pub sign_ins: i64,
    /// `sign_in.failed` events in the window (of known accounts only, outside a
    /// super administrator's view: a guess at no account belongs to no organisation).
    pub failures: i64,
    /// Accounts whose sign-in is locked now.
    pub locked: i64,
    /// Emergency sessions awaiting a second administrator's review.
    pub emergency: i64,
    /// What spans organisations, for a super administrator only.
    pub global: Option<GlobalFigures>,
}

/// The figures no organisation owns: IP blocks and the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalFigures {
    /// IP blocks in force now.
    pub ip_blocks: i64,
    /// Mails (and other deliveries) waiting in the outbox.
    pub outbox_pending: i64,
    /// Deliveries the outbox gave up on, until they are purged.
    pub outbox_failed: i64,
}

/// The figures for `who`: every organisation for a super administrator, their own for
/// support and organisation administrators.
pub async fn figures(state: &AppState, who: &Caller) -> Result<Figures, ServiceError> {
    who.require(Action::Read)?;
    let scope: Option<Vec<String>> = match who.role {
        Role::SuperAdmin => None,
        _ => Some(who.org_id.iter().cloned().collect()),
    };
    let now = state.clock.now();
    let counted = |event_type, outcome| AuditFilter {
        org_id: scope.as_ref().and_then(|s| s.first().cloned()),
        event_type: Some(event_type),
        outcome: Some(outcome),
        from: Some(now - WINDOW),
        ..AuditFilter::default()
    };
    // Someone of no organisation (never an administrator here) sees nothing.
    let nothing = scope.as_ref().is_some_and(Vec::is_empty);
    let (sign_ins, failures) = if nothing {
        (0, 0)
    } else {
        let audit = &state.audit;
        let ok = audit.select(counted(EventType::SignInSucceeded, Outcome::Success));
        let failed = audit.select(counted(EventType::SignInFailed, Outcome::Failure));
        (ok.await?.rows, failed.await?.rows)
    };
    let global = who.require(Action::Global).is_ok();
    let at = now.naive_utc();
    let (locked, emergency, global) = state
        .store
        .run(move |c| {
            let scope = scope.as_deref();
            let locked = lockouts::count_locked_accounts(c, scope, at)?;
            let emergency = emergency::count_awaiting_review(c, scope)?;
            let global = if global {
                Some(GlobalFigures {
                    ip_blocks: ip_blocks::count_active(c, at)?,
                    outbox_pending: outbox::pending_count(c)?,
                    outbox_failed: outbox::failed_count(c)?,
                })
            } else {
                None
            };
            Ok((locked, emergency, global))
        })
        .await?;
    Ok(Figures {
        sign_ins,
        failures,
        locked,
        emergency,
        global,
    })
}
