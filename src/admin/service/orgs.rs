//! Organisations: creation and their policies (DESIGN §3).

use crate::{
    audit::EventType,
    domain::{Branding, Logo, OrgName, OrgPolicy, Role},
    startup::AppState,
    store::{
        StoreError,
        branding::{self, Stored},
        orgs, users,
    },
};

use super::{Acting, Action, Caller, ServiceError, object_id};

fn not_found() -> ServiceError {
    ServiceError::NotFound("no such organisation".into())
}

/// An organisation the caller may see, or not found.
pub fn visible(who: &Caller, org: Option<orgs::OrgRow>) -> Result<orgs::OrgRow, ServiceError> {
    org.filter(|o| who.sees_org(&o.id)).ok_or_else(not_found)
}

/// The organisation with id `raw_id`, when `who` may take `action` and see it.
pub async fn find(
    state: &AppState,
    who: &Caller,
    action: Action,
    raw_id: &str,
) -> Result<orgs::OrgRow, ServiceError> {
    who.require(action)?;
    let id = object_id(raw_id).map_err(|_| not_found())?;
    let org = state.store.run(move |c| orgs::find_by_id(c, &id)).await?;
    visible(who, org)
}

/// The organisation named `name` (the CLI's way of naming it), as `find`.
pub async fn find_named(
    state: &AppState,
    who: &Caller,
    action: Action,
    name: &OrgName,
) -> Result<orgs::OrgRow, ServiceError> {
    who.require(action)?;
    let lookup = name.clone();
    let org = state
        .store
        .run(move |c| orgs::find_by_name(c, &lookup))
        .await?;
    visible(who, org)
        .map_err(|_| ServiceError::NotFound(format!("no organisation named {:?}", name.as_str())))
}

/// Every organisation the caller may see.
pub async fn list(state: &AppState, who: &Caller) -> Result<Vec<orgs::OrgRow>, ServiceError> {
    who.require(Action::Read)?;
    let all = state.store.run(orgs::list).await?;
    Ok(all.into_iter().filter(|o| who.sees_org(&o.id)).collect())
}

/// Creates an organisation (super administrators only: organisations are global).
pub async fn create(
    by: Acting<'_>,
    name: OrgName,
    display_name: &str,
    policy: OrgPolicy,
) -> Result<orgs::OrgRow, ServiceError> {
    by.who.require(Action::Global)?;
    let display_name = display_name.trim().to_owned();
    if display_name.is_empty() || display_name.chars().count() > 200 {
        return Err(ServiceError::Invalid(
            "display_name: 1 to 200 characters".into(),
        ));
    }
    policy
        .validate()
        .map_err(|e| ServiceError::Invalid(format!("policy.{e}")))?;
    let now = by.state.clock.now().naive_utc();
    let org = by
        .state
        .store
        .transaction(move |c| {
            if orgs::find_by_name(c, &name)?.is_some() {
                return Err(StoreError::Conflict);
            }
            orgs::insert(c, &name, &display_name, &policy, now)
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict => {
                ServiceError::Conflict("name: an organisation of that name exists".into())
            }
            other => other.into(),
        })?;
    let event = by
        .event(EventType::AdminChange)
        .org(&org.id)
        .detail("object", "organisation")
        .detail("change", "created")
        .detail("name", org.name.as_str());
    by.state.audit.record(event).await?;
    Ok(org)
}

/// Replaces an organisation's policies after `OrgPolicy::validate`; every field out of
/// bounds is named in the error.
pub async fn set_policy(
    by: Acting<'_>,
    org: &orgs::OrgRow,
    policy: OrgPolicy,
) -> Result<(), ServiceError> {
    by.who.require(Action::Manage)?;
    if !by.who.sees_org(&org.id) {
        return Err(not_found());
    }
    outranks_everyone_governed(by.state, by.who, org).await?;
    policy
        .validate()
        .map_err(|e| ServiceError::Invalid(e.to_string()))?;
    let (id, now) = (org.id.clone(), by.state.clock.now().naive_utc());
    by.state
        .store
        .run(move |c| orgs::set_policy(c, &id, &policy, now))
        .await?;
    let event = by
        .event(EventType::AdminChange)
        .org(&org.id)
        .detail("object", "organisation_policy")
        .detail("change", "replaced");
    by.state.audit.record(event).await?;
    Ok(())
}

/// A policy governs every member of its organisation, so changing it takes rank over
/// each of them, as acting on one of them does (`Caller::may_act_on`): an org_admin may
/// not turn off the lockout or the MFA requirement that protects a super administrator
/// of the same organisation (issue 20 item 8). Disabled members count: they can be
/// enabled again.
async fn outranks_everyone_governed(
    state: &AppState,
    who: &Caller,
    org: &orgs::OrgRow,
) -> Result<(), ServiceError> {
    if who.role == Role::SuperAdmin {
        return Ok(());
    }
    let id = org.id.clone();
    let pii = state.pii.clone();
    let members = state
        .store
        .run(move |c| users::list_by_org(c, &pii, &id))
        .await?;
    if members.iter().any(|u| u.role() > who.role) {
        return Err(ServiceError::Forbidden(
            "a member of this organisation has a role above yours (super_admin): only a super administrator may change its policy",
        ));
    }
    Ok(())
}

/// An organisation's branding as set (issue 31), for whoever may read the organisation.
pub async fn branding(state: &AppState, org: &orgs::OrgRow) -> Result<Stored, ServiceError> {
    let id = org.id.clone();
    Ok(state.store.run(move |c| branding::find(c, &id)).await?)
}

/// Replaces the branding document, keeping the logo. Its colours and words are checked
/// first; every field out of bounds is named.
pub async fn set_branding(
    by: Acting<'_>,
    org: &orgs::OrgRow,
    document: Branding,
) -> Result<(), ServiceError> {
    document
        .validate()
        .map_err(|problems| ServiceError::Invalid(problems.join("; ")))?;
    change_branding(by, org, "document", move |stored| {
        stored.branding = document
    })
    .await
}

/// Sets (`Some`) or removes the logo, keeping the rest.
pub async fn set_logo(
    by: Acting<'_>,
    org: &orgs::OrgRow,
    logo: Option<Logo>,
) -> Result<(), ServiceError> {
    let change = if logo.is_some() {
        "logo"
    } else {
        "logo_removed"
    };
    change_branding(by, org, change, move |stored| stored.logo = logo).await
}

async fn change_branding(
    by: Acting<'_>,
    org: &orgs::OrgRow,
    change: &'static str,
    apply: impl FnOnce(&mut Stored) + Send + 'static,
) -> Result<(), ServiceError> {
    by.who.require(Action::Manage)?;
    if !by.who.sees_org(&org.id) {
        return Err(not_found());
    }
    let (id, now) = (org.id.clone(), by.state.clock.now().naive_utc());
    by.state
        .store
        .transaction(move |c| {
            let mut stored = branding::find(c, &id)?;
            apply(&mut stored);
            branding::save(c, &id, &stored.branding, stored.logo.as_ref(), now)
        })
        .await?;
    let event = by
        .event(EventType::AdminChange)
        .org(&org.id)
        .detail("object", "organisation_branding")
        .detail("change", change);
    by.state.audit.record(event).await?;
    Ok(())
}
