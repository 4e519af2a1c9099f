//! Links from upstream identities to accounts (DESIGN §16): listed, made and removed
//! by administrators. An identity is linked only to an account of its connector's
//! organisation that the administrator may act on: whoever signs in upstream as it
//! signs in here as the account.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Acting, Action, Caller, ServiceError, visible};
use crate::{
    audit::EventType,
    auth::upstream::MAX_SUBJECT_LEN,
    startup::AppState,
    store::{
        StoreError,
        upstream::{self as rows, LinkRow},
        users::{self, UserRow},
    },
};

/// A link from an upstream identity to an account.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LinkView {
    pub connector_id: String,
    pub connector_slug: String,
    /// The upstream's identifier for the person (`sub`).
    pub subject: String,
    pub user_id: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

fn link_view(link: LinkRow, slug: &str) -> LinkView {
    LinkView {
        connector_id: link.connector_id,
        connector_slug: slug.to_owned(),
        subject: link.subject,
        user_id: link.user_id,
        created_at: link.created_at.and_utc(),
        last_used_at: link.last_used_at.map(|t| t.and_utc()),
    }
}

/// The links of connector `raw_id`, oldest first.
pub async fn list_links(
    state: &AppState,
    who: &Caller,
    raw_id: &str,
) -> Result<Vec<LinkView>, ServiceError> {
    let row = visible(state, who, raw_id).await?;
    let id = row.id.clone();
    let links = state
        .store
        .run(move |c| rows::links_of_connector(c, &id))
        .await?;
    Ok(links.into_iter().map(|l| link_view(l, &row.slug)).collect())
}

/// The upstream identities linked to `user` (found by `users::find`), oldest first.
pub async fn links_of_user(
    state: &AppState,
    who: &Caller,
    user: &UserRow,
) -> Result<Vec<LinkView>, ServiceError> {
    who.require(Action::Manage)?;
    if !who.sees_org(&user.org_id) {
        return Err(ServiceError::NotFound("no such user".into()));
    }
    let id = user.id.clone();
    let found = state
        .store
        .run(move |c| {
            let mut out = Vec::new();
            for link in rows::links_of_user(c, &id)? {
                let slug = rows::find(c, &link.connector_id)?
                    .map(|r| r.slug)
                    .unwrap_or_default();
                out.push(link_view(link, &slug));
            }
            Ok(out)
        })
        .await?;
    Ok(found)
}

/// An upstream subject as an administrator types it: refused, not cut, when too long.
fn subject(raw: &str) -> Result<String, ServiceError> {
    if raw.is_empty() || raw.len() > MAX_SUBJECT_LEN || raw.chars().any(char::is_control) {
        return Err(ServiceError::Invalid(format!(
            "subject: 1 to {MAX_SUBJECT_LEN} bytes, no control characters"
        )));
    }
    Ok(raw.to_owned())
}

/// Links the upstream identity `subject` of connector `raw_id` to `user`: whoever signs
/// in upstream as `subject` signs in here as them, so the caller must be able to act on
/// them, and they must be of the connector's organisation.
pub async fn add_link(
    by: Acting<'_>,
    raw_id: &str,
    raw_subject: &str,
    user: &UserRow,
) -> Result<LinkView, ServiceError> {
    let row = visible(by.state, by.who, raw_id).await?;
    let subject = subject(raw_subject)?;
    if user.org_id != row.org_id {
        return Err(ServiceError::Invalid(
            "user_id: the account is of another organisation than the connector".into(),
        ));
    }
    if user.id != by.who.actor {
        by.who.may_act_on(user)?;
    }
    let (id, sub, user_id) = (row.id.clone(), subject.clone(), user.id.clone());
    let now = by.state.clock.now().naive_utc();
    let link = by
        .state
        .store
        .run(move |c| rows::insert_link(c, &id, &sub, &user_id, now))
        .await
        .map_err(|e| match e {
            StoreError::Conflict => {
                ServiceError::Conflict("subject: already linked to an account".into())
            }
            other => other.into(),
        })?;
    let event = by
        .event(EventType::UpstreamLinked)
        .org(&user.org_id)
        .subject(&user.id)
        .detail("connector", row.slug.as_str())
        .detail("upstream_subject", subject.as_str())
        .detail("how", "admin");
    by.state.audit.record(event).await?;
    Ok(link_view(link, &row.slug))
}

/// Removes the link of `subject` at connector `raw_id`; not found when there is none.
pub async fn remove_link(
    by: Acting<'_>,
    raw_id: &str,
    raw_subject: &str,
) -> Result<(), ServiceError> {
    let row = visible(by.state, by.who, raw_id).await?;
    let missing = || ServiceError::NotFound("no such link".into());
    let subject = subject(raw_subject).map_err(|_| missing())?;
    let (id, sub, pii) = (row.id.clone(), subject.clone(), by.state.pii.clone());
    let (link, user) = by
        .state
        .store
        .run(move |c| {
            let Some(link) = rows::find_link(c, &id, &sub)? else {
                return Ok((None, None));
            };
            let user = users::find_by_id(c, &pii, &link.user_id)?;
            Ok((Some(link), user))
        })
        .await?;
    let link = link.ok_or_else(missing)?;
    if let Some(user) = &user
        && user.id != by.who.actor
    {
        by.who.may_act_on(user)?;
    }
    let (id, sub) = (row.id.clone(), subject.clone());
    by.state
        .store
        .run(move |c| rows::delete_link(c, &id, &sub))
        .await
        .map_err(|e| match e {
            StoreError::NotFound => missing(),
            other => other.into(),
        })?;
    let event = by
        .event(EventType::UpstreamUnlinked)
        .org(&row.org_id)
        .subject(&link.user_id)
        .detail("connector", row.slug.as_str())
        .detail("upstream_subject", subject.as_str())
        .detail("how", "admin");
    by.state.audit.record(event).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::subject;
    use crate::auth::upstream::MAX_SUBJECT_LEN;

    #[test]
    fn subjects_out_of_bounds_are_refused_not_cut() {
        assert!(subject(&"s".repeat(MAX_SUBJECT_LEN + 1)).is_err());
        assert!(subject("").is_err());
        assert!(subject("a\u{0}b").is_err());
        assert_eq!(subject("auth0|42").unwrap(), "auth0|42");
    }
}
