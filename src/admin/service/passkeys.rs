//! A user's passkeys as administrators see and remove them (DESIGN §17): the one place
//! the admin API, the console and the CLI go through. Removing one is a support act on
//! the user (their rank below the caller's), mailed to the user and audited.

use super::{Acting, Action, ServiceError};
use crate::{
    audit::EventType,
    auth::{AuthError, passkey},
    store::users::UserRow,
};

pub use crate::auth::passkey::PasskeySummary;

/// The user's passkeys, oldest first.
pub async fn list(by: Acting<'_>, user: &UserRow) -> Result<Vec<PasskeySummary>, ServiceError> {
    by.who.require(Action::Read)?;
    if !by.who.sees_org(&user.org_id) {
        return Err(ServiceError::NotFound("no such user".into()));
    }
    Ok(passkey::list(by.state, &user.id)
        .await?
        .iter()
        .map(PasskeySummary::from)
        .collect())
}

/// Removes one of the user's passkeys (`passkey_id` as [`list`] names it).
pub async fn remove(
    by: Acting<'_>,
    user: &UserRow,
    passkey_id: &str,
) -> Result<PasskeySummary, ServiceError> {
    by.who.require(Action::Support)?;
    by.who.may_act_on(user)?;
    let removed = match passkey::remove(by.state, user, passkey_id, true).await {
        Ok(removed) => removed,
        Err(AuthError::NotFound) => return Err(ServiceError::NotFound("no such passkey".into())),
        Err(e) => return Err(e.into()),
    };
    let event = by
        .event(EventType::PasskeyRemoved)
        .subject(&user.id)
        .org(&user.org_id)
        .detail("credential_id", removed.id.as_str())
        .detail("name", removed.name.as_str());
    by.state.audit.record(event).await?;
    Ok(PasskeySummary::from(&removed))
}
