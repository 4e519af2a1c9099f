//! Who hears of emergency access (DESIGN §15): the organisation's support contact and
//! privacy officer by mail, and the webhook, at once when a window opens; the webhook
//! when it ends; and both contacts daily while a review is overdue.
//!
//! Owned by the emergency-admin helper (issue 26): bodies to be written.

use url::Url;

use crate::{
    auth::AuthError,
    mail::Mailer,
    startup::AppState,
    store::{DbConnection, StoreError, emergency::EmergencyRow, orgs::OrgRow},
};

/// Queued on the caller's connection, in the transaction that opens the window: a
/// window never exists without its alerts.
pub(super) fn queue_started(
    _c: &mut DbConnection,
    _mailer: &Mailer,
    _issuer: &Url,
    _org: &OrgRow,
    _window: &EmergencyRow,
) -> Result<(), StoreError> {
    Ok(())
}

/// Queued in the transaction that ends the window.
pub(super) fn queue_ended(
    _c: &mut DbConnection,
    _mailer: &Mailer,
    _issuer: &Url,
    _org: &OrgRow,
    _window: &EmergencyRow,
) -> Result<(), StoreError> {
    Ok(())
}

/// Mails each organisation's contacts about reviews open longer than its policy's
/// `emergency_review_overdue_hours`, at most once a day per review. Called by the
/// emergency worker every minute or so; returns how many reviews were mailed about.
pub async fn mail_overdue(_state: &AppState) -> Result<usize, AuthError> {
    Ok(0)
}
