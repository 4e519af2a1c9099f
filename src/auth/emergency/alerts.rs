//! Who hears of emergency access (DESIGN §15): the organisation's support contact and
//! privacy officer by mail (in the organisation's language and time zone), and the
//! webhook, at once when a window opens; both again when it ends; and both contacts
//! daily while a review is overdue.
//!
//! Like the guard's notices (`auth::guard::notices`), the alerts of a window are queued
//! on the caller's connection, inside the transaction that opens or ends it: a window
//! never exists without its alerts, and the durable outbox sends them whatever SMTP is
//! doing. Nothing here carries a secret: no session handle, no token.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDateTime};
use url::Url;

use crate::{
    auth::AuthError,
    domain::Email,
    mail::{self, Alert, Mailer, Notice, WindowReport},
    startup::AppState,
    store::{
        DbConnection, StoreError,
        emergency::{self, EmergencyRow},
        orgs::{self, OrgRow},
    },
};

/// Overdue reviews looked at in one pass; the rest wait for the next minute.
const OVERDUE_BATCH: i64 = 500;
/// A review still open is mailed about again after this long.
const REMIND_EVERY_HOURS: i64 = 24;

/// Queued on the caller's connection, in the transaction that opens the window: a
/// window never exists without its alerts. (Public so the tests can queue them for a
/// window they insert.)
pub fn queue_started(
    c: &mut DbConnection,
    mailer: &Mailer,
    issuer: &Url,
    org: &OrgRow,
    window: &EmergencyRow,
) -> Result<(), StoreError> {
    queue_alert(
        c,
        mailer,
        issuer,
        org,
        Alert::EmergencyStarted(told(window)),
    )
}

/// Queued in the transaction that ends the window.
pub fn queue_ended(
    c: &mut DbConnection,
    mailer: &Mailer,
    issuer: &Url,
    org: &OrgRow,
    window: &EmergencyRow,
) -> Result<(), StoreError> {
    queue_alert(c, mailer, issuer, org, Alert::EmergencyEnded(told(window)))
}

fn queue_alert(
    c: &mut DbConnection,
    mailer: &Mailer,
    issuer: &Url,
    org: &OrgRow,
    alert: Alert,
) -> Result<(), StoreError> {
    let (event, payload) = alert.webhook_event(&org.name);
    mailer.enqueue_event(c, event, &payload)?;
    let contacts = contacts(org);
    if !contacts.is_empty() {
        let mail = Notice::SupportAlert {
            org: org.display_name.clone(),
            alert,
        }
        .render(issuer, &mail::organisation_reader(&org.policy()));
        for to in &contacts {
            mailer.enqueue_email(c, to, &mail)?;
        }
    }
    Ok(())
}

/// The organisation's support contact and privacy officer: both when set, one mail
/// when they are the same address, none when neither is.
pub fn contacts(org: &OrgRow) -> Vec<Email> {
    let policy = org.policy();
    let mut out: Vec<Email> = Vec::new();
    for raw in [&policy.support_email, &policy.privacy_officer_email]
        .into_iter()
        .flatten()
    {
        match Email::parse(raw) {
            Ok(email) => {
                if !out
                    .iter()
                    .any(|e| e.as_str().eq_ignore_ascii_case(email.as_str()))
                {
                    out.push(email);
                }
            }
            Err(e) => {
                tracing::warn!(org_id = %org.id, error = %e, "an emergency contact address does not parse");
            }
        }
    }
    out
}

/// What mails and webhooks tell of a window.
pub fn told(w: &EmergencyRow) -> WindowReport {
    WindowReport {
        emergency_id: w.id.clone(),
        user_id: w.user_id.clone(),
        username: w.username.clone(),
        reason: w.reason.clone(),
        context: w.context.clone(),
        requested_by: w.requested_by.clone(),
        started_at: w.started_at.and_utc(),
        expires_at: w.expires_at.and_utc(),
        ended_at: w.ended_at.map(|t| t.and_utc()),
        end_reason: w.end_reason.clone(),
    }
}

/// Mails each organisation's contacts about reviews open longer than its policy's
/// `emergency_review_overdue_hours`, at most once a day per review. Called by the
/// emergency worker every minute or so; returns how many reviews were mailed about.
pub async fn mail_overdue(state: &AppState) -> Result<usize, AuthError> {
    let now = state.clock.now().naive_utc();
    let told_before = now - Duration::hours(REMIND_EVERY_HOURS);
    let orgs: BTreeMap<String, OrgRow> = state
        .store
        .run(orgs::list)
        .await?
        .into_iter()
        .map(|o| (o.id.clone(), o))
        .collect();
    // The shortest deadline of any organisation finds every candidate; each is then held
    // to its own organisation's.
    let Some(shortest) = orgs
        .values()
        .map(|o| o.policy().emergency_review_overdue_hours)
        .min()
    else {
        return Ok(0);
    };
    let started_before = now - Duration::hours(i64::from(shortest));
    let candidates = state
        .store
        .run(move |c| emergency::overdue(c, started_before, told_before, OVERDUE_BATCH))
        .await?;
    let mut by_org: BTreeMap<String, Vec<EmergencyRow>> = BTreeMap::new();
    for row in candidates {
        let Some(org) = orgs.get(&row.org_id) else {
            continue;
        };
        if row.started_at < overdue_since(org, now) {
            by_org.entry(row.org_id.clone()).or_default().push(row);
        }
    }
    let mut mailed = 0;
    for (org_id, rows) in by_org {
        let Some(org) = orgs.get(&org_id).cloned() else {
            continue;
        };
        let (mailer, issuer) = (state.mailer.clone(), state.config.issuer.clone());
        mailed += state
            .store
            .transaction(move |c| remind(c, &mailer, &issuer, &org, rows, told_before, now))
            .await?;
    }
    Ok(mailed)
}

/// Reviews of `org` that started before this are overdue.
fn overdue_since(org: &OrgRow, now: NaiveDateTime) -> NaiveDateTime {
    now - Duration::hours(i64::from(org.policy().emergency_review_overdue_hours))
}

/// One organisation's reminder, in one transaction: the reviews this instance claims
/// (another instance may have claimed some first), then one mail to each contact
/// listing them. How many were claimed.
fn remind(
    c: &mut DbConnection,
    mailer: &Mailer,
    issuer: &Url,
    org: &OrgRow,
    rows: Vec<EmergencyRow>,
    told_before: NaiveDateTime,
    now: NaiveDateTime,
) -> Result<usize, StoreError> {
    let mut claimed = Vec::new();
    for row in rows {
        if emergency::claim_overdue_notice(c, &row.id, told_before, now)? {
            claimed.push(told(&row));
        }
    }
    if claimed.is_empty() {
        return Ok(0);
    }
    let contacts = contacts(org);
    if contacts.is_empty() {
        // Claimed all the same: asked again tomorrow, not every minute.
        tracing::warn!(org_id = %org.id, overdue = claimed.len(),
            "emergency access reviews are overdue and the organisation has no support or privacy contact");
        return Ok(0);
    }
    let policy = org.policy();
    let mail = Notice::EmergencyOverdue {
        org: org.display_name.clone(),
        overdue_hours: policy.emergency_review_overdue_hours,
        reviews: claimed.clone(),
    }
    .render(issuer, &mail::organisation_reader(&policy));
    for to in &contacts {
        mailer.enqueue_email(c, to, &mail)?;
    }
    Ok(claimed.len())
}
