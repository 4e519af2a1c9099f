//! Users: creation and invitation, locks, forced resets, second factors, status, role,
//! username and sessions (DESIGN §3, §5–§8).

use crate::{
    audit::EventType,
    auth::{
        account::{NewAccount, create_account_by},
        guard::login_key,
        recovery::{self, ForcedReset, Invitation, NewInvitation, OrgForcedReset},
        session,
    },
    domain::{OrgName, Role, UserStatus, Username},
    startup::AppState,
    store::{
        StoreError, lockouts, orgs, totp,
        users::{self, UserRow},
    },
};

use super::{Acting, Action, Caller, ServiceError, object_id};

/// The user with id `raw_id`, when `who` may take `action` and see them; else an error
/// (the role's refusal first, so a refused caller learns nothing of who exists).
pub async fn find(
    state: &AppState,
    who: &Caller,
    action: Action,
    raw_id: &str,
) -> Result<UserRow, ServiceError> {
    who.require(action)?;
    let id = object_id(raw_id)?;
    let pii = state.pii.clone();
    let user = state
        .store
        .run(move |c| users::find_by_id(c, &pii, &id))
        .await?;
    who.visible_user(user)
}

/// The user named `username` (the CLI's way of naming them), as `find`.
pub async fn find_named(
    state: &AppState,
    who: &Caller,
    action: Action,
    username: &Username,
) -> Result<UserRow, ServiceError> {
    who.require(action)?;
    let lookup = username.clone();
    let pii = state.pii.clone();
    let user = state
        .store
        .run(move |c| users::find_by_username(c, &pii, &lookup))
        .await?;
    who.visible_user(user)
        .map_err(|_| ServiceError::NotFound(format!("no user named {:?}", username.as_str())))
}

/// What administrators see of a user beside the row: second factor and lock.
#[derive(Debug, Clone, Copy)]
pub struct Standing {
    pub mfa_enrolled: bool,
    /// Sign-in is locked for this username (temporarily or until unlocked).
    pub locked: bool,
}

pub async fn standing(state: &AppState, user: &UserRow) -> Result<Standing, ServiceError> {
    let (id, key) = (user.id.clone(), login_key(&user.username));
    let now = state.clock.now().naive_utc();
    let (mfa_enrolled, locked) = state
        .store
        .run(move |c| {
            let mfa = totp::is_enrolled(c, &id)?;
            let locked = lockouts::find(c, &key)?.is_some_and(|l| l.is_locked(now));
            Ok((mfa, locked))
        })
        .await?;
    Ok(Standing {
        mfa_enrolled,
        locked,
    })
}

/// The user with id `raw_id`, shown to the caller: recorded as read (ONC 170.315
/// (d)(2): viewing someone's account is an access worth a trace).
pub async fn show(by: Acting<'_>, raw_id: &str) -> Result<UserRow, ServiceError> {
    let user = find(by.state, by.who, Action::Read, raw_id).await?;
    viewed(by, &user).await?;
    Ok(user)
}

/// Records that the caller looked at `user` (found by `find` or `find_named`).
pub async fn viewed(by: Acting<'_>, user: &UserRow) -> Result<(), ServiceError> {
    let event = by
        .event(EventType::AdminRead)
        .subject(&user.id)
        .org(&user.org_id)
        .detail("object", "user")
        .detail("rows", 1);
    by.state.audit.record(event).await?;
    Ok(())
}

/// Users of organisation `org_id` whose username contains `needle`, or whose email
/// address is `needle` (any case), recorded as read.
pub async fn list(
    by: Acting<'_>,
    org_id: &str,
    needle: Option<&str>,
) -> Result<Vec<UserRow>, ServiceError> {
    let who = by.who;
    who.require(Action::Read)?;
    if !who.sees_org(org_id) {
        return Err(ServiceError::NotFound(format!(
            "no organisation with id {org_id:?}"
        )));
    }
    let needle = needle.map(str::to_lowercase);
    if needle.as_ref().is_some_and(|n| n.len() > 256) {
        return Err(ServiceError::Invalid("q: at most 256 characters".into()));
    }
    let org = org_id.to_owned();
    let pii = by.state.pii.clone();
    let lookup = needle.clone();
    // Matched in the database, as `search` does it (usernames by any part, addresses
    // whole: DESIGN §12, a sealed address has no parts to match), so that only the
    // users found are read and opened, however large the organisation.
    let found = by
        .state
        .store
        .run(move |c| match lookup {
            Some(needle) => users::search(c, &pii, &[org], &needle, i64::MAX),
            None => users::list_by_org(c, &pii, &org),
        })
        .await?;
    listed(by, Some(org_id), needle.as_deref(), found.len()).await?;
    Ok(found)
}

/// Users of the organisations `org_ids` (all of which the caller must see) whose
/// username contains `needle` or whose address is `needle`, at most `limit`, recorded
/// as read.
pub async fn search(
    by: Acting<'_>,
    org_ids: Vec<String>,
    needle: &str,
    limit: i64,
) -> Result<Vec<UserRow>, ServiceError> {
    by.who.require(Action::Read)?;
    if !org_ids.iter().all(|o| by.who.sees_org(o)) {
        return Err(ServiceError::NotFound("no such organisation".into()));
    }
    if needle.chars().count() > 256 {
        return Err(ServiceError::Invalid("q: at most 256 characters".into()));
    }
    let lookup = needle.to_owned();
    let pii = by.state.pii.clone();
    let found = by
        .state
        .store
        .run(move |c| users::search(c, &pii, &org_ids, &lookup, limit))
        .await?;
    let org = (by.who.role != Role::SuperAdmin)
        .then_some(by.who.org_id.as_deref())
        .flatten();
    listed(by, org, Some(needle), found.len()).await?;
    Ok(found)
}

/// Most matches a user search counts (`SearchPage::more`). Counting every match of a
/// broad search reads every one of them: a million for a search by one letter, where
/// nobody pages past the first few hundred anyway.
pub const MOST_COUNTED: i64 = 1000;

/// One page of a user search, and where it is among the others.
#[derive(Debug)]
pub struct SearchPage {
    pub users: Vec<UserRow>,
    /// How many users match in all, up to [`MOST_COUNTED`].
    pub total: i64,
    /// More than [`MOST_COUNTED`] match: the pages stop there (a narrower search finds
    /// the rest).
    pub more: bool,
    /// The page shown (1-based): the one asked for, or the last there is when it was
    /// past it.
    pub page: i64,
    /// How many pages there are (at least one, even of nothing).
    pub pages: i64,
}

/// What `search` finds, a page of `per_page` at a time in `order` (the column
/// `descending` or not): page `page`, or the last one when there are fewer. Recorded as
/// read like `search`.
#[allow(clippy::too_many_arguments)]
pub async fn search_page(
    by: Acting<'_>,
    org_ids: Vec<String>,
    needle: &str,
    order: users::UserOrder,
    descending: bool,
    page: i64,
    per_page: i64,
) -> Result<SearchPage, ServiceError> {
    by.who.require(Action::Read)?;
    if !org_ids.iter().all(|o| by.who.sees_org(o)) {
        return Err(ServiceError::NotFound("no such organisation".into()));
    }
    if needle.chars().count() > 256 {
        return Err(ServiceError::Invalid("q: at most 256 characters".into()));
    }
    let per_page = per_page.max(1);
    let lookup = needle.to_owned();
    let pii = by.state.pii.clone();
    let found = by
        .state
        .store
        .run(move |c| {
            let counted = users::count_matching(c, &pii, &org_ids, &lookup, MOST_COUNTED)?;
            let (total, more) = (counted.min(MOST_COUNTED), counted > MOST_COUNTED);
            let pages = ((total + per_page - 1) / per_page).max(1);
            let page = page.clamp(1, pages);
            let offset = (page - 1) * per_page;
            let users = users::search_page(
                c, &pii, &org_ids, &lookup, order, descending, offset, per_page,
            )?;
            Ok(SearchPage {
                users,
                total,
                more,
                page,
                pages,
            })
        })
        .await?;
    let org = (by.who.role != Role::SuperAdmin)
        .then_some(by.who.org_id.as_deref())
        .flatten();
    listed(by, org, Some(needle), found.users.len()).await?;
    Ok(found)
}

/// Records that the caller listed or searched users.
async fn listed(
    by: Acting<'_>,
    org_id: Option<&str>,
    needle: Option<&str>,
    rows: usize,
) -> Result<(), ServiceError> {
    let mut filter = serde_json::Map::new();
    if let Some(org) = org_id {
        filter.insert("org".into(), org.into());
    }
    if let Some(q) = needle {
        // An address typed to find someone is theirs: the trail keeps its blind index,
        // which names the same people to whoever holds the key, and nothing in clear.
        if q.contains('@') {
            filter.insert("q_index".into(), by.state.pii.email_index(q).into());
        } else {
            filter.insert("q".into(), q.into());
        }
    }
    let mut event = by
        .event(EventType::AdminRead)
        .detail("object", "users")
        .detail("filter", serde_json::Value::Object(filter))
        .detail("rows", rows);
    if let Some(org) = org_id {
        event = event.org(org);
    }
    by.state.audit.record(event).await?;
    Ok(())
}

/// The organisation named `name`, when `who` may see it.
async fn visible_org_named(
    state: &AppState,
    who: &Caller,
    name: &OrgName,
) -> Result<orgs::OrgRow, ServiceError> {
    let lookup = name.clone();
    state
        .store
        .run(move |c| orgs::find_by_name(c, &lookup))
        .await?
        .filter(|o| who.sees_org(&o.id))
        .ok_or_else(|| ServiceError::NotFound(format!("no organisation named {:?}", name.as_str())))
}

/// Creates an active account whose password obeys its organisation's policy.
pub async fn create(by: Acting<'_>, new: NewAccount) -> Result<UserRow, ServiceError> {
    by.who.require(Action::Manage)?;
    by.who.may_grant(new.role)?;
    visible_org_named(by.state, by.who, &new.org).await?;
    Ok(create_account_by(by.state, new, Some(by.recovery())).await?)
}

/// Creates an account without a password and mails a link to choose one (DESIGN §7).
pub async fn invite(by: Acting<'_>, new: NewInvitation) -> Result<Invitation, ServiceError> {
    by.who.require(Action::Manage)?;
    by.who.may_grant(new.role)?;
    visible_org_named(by.state, by.who, &new.org).await?;
    Ok(recovery::invite(by.state, by.recovery(), new).await?)
}

/// Lifts a lockout of `user` (DESIGN §5: a permanent one only an administrator can
/// lift). True when there was one.
pub async fn unlock(by: Acting<'_>, user: &UserRow) -> Result<bool, ServiceError> {
    may_act(by, Action::Support, user)?;
    lift_lock(by, &user.username, Some(user)).await
}

/// Lifts the lock of a username, whether or not an account has it: unknown names are
/// counted and locked like known ones (DESIGN §5), so only a super administrator (the
/// CLI) may clear one that no account answers to.
pub async fn unlock_name(by: Acting<'_>, username: &Username) -> Result<bool, ServiceError> {
    match find_named(by.state, by.who, Action::Support, username).await {
        Ok(user) => unlock(by, &user).await,
        Err(ServiceError::NotFound(_)) => {
            by.who.require(Action::Global)?;
            lift_lock(by, username.as_str(), None).await
        }
        Err(e) => Err(e),
    }
}

async fn lift_lock(
    by: Acting<'_>,
    username: &str,
    user: Option<&UserRow>,
) -> Result<bool, ServiceError> {
    let key = login_key(username);
    let changed = by
        .state
        .store
        .run(move |c| lockouts::unlock(c, &key))
        .await?;
    let mut event = by
        .event(EventType::AccountUnlocked)
        .detail("was_locked", changed);
    if let Some(user) = user {
        event = event.subject(&user.id).org(&user.org_id);
    }
    by.state.audit.record(event).await?;
    Ok(changed)
}

/// DESIGN §7 admin-forced reset of one user (audited by `recovery::force_reset`).
pub async fn force_reset(by: Acting<'_>, user: &UserRow) -> Result<ForcedReset, ServiceError> {
    may_act(by, Action::Support, user)?;
    Ok(recovery::force_reset(by.state, by.recovery(), user).await?)
}

/// The forced reset of every active user of `org` the caller could reset one by one
/// (a super administrator: everyone).
pub async fn force_reset_org(
    by: Acting<'_>,
    org: &orgs::OrgRow,
) -> Result<OrgForcedReset, ServiceError> {
    by.who.require(Action::Manage)?;
    if !by.who.sees_org(&org.id) {
        return Err(ServiceError::NotFound("no such organisation".into()));
    }
    let name = OrgName::parse(&org.name).map_err(|e| ServiceError::Invalid(e.to_string()))?;
    let spare_from = (by.who.role != Role::SuperAdmin).then_some(by.who.role);
    Ok(recovery::force_reset_org(by.state, by.recovery(), &name, spare_from).await?)
}

/// DESIGN §6: an administrator removes a user's second factor; the user is told by
/// mail. True when there was one.
pub async fn remove_totp(by: Acting<'_>, user: &UserRow) -> Result<bool, ServiceError> {
    may_act(by, Action::Support, user)?;
    let changed = crate::auth::totp::remove(by.state, &user.id, true).await?;
    if changed {
        record(by, EventType::MfaRemoved, user, &[]).await?;
    }
    Ok(changed)
}

/// Disables (sign-in refused, every session ended, every grant revoked) or enables a
/// user. True when the status changed.
pub async fn set_status(
    by: Acting<'_>,
    user: &UserRow,
    status: UserStatus,
) -> Result<bool, ServiceError> {
    may_act(by, Action::Manage, user)?;
    not_oneself(by, user, "status")?;
    if user.status() == UserStatus::Invited {
        return Err(ServiceError::Conflict(
            "the user has not accepted the invitation".into(),
        ));
    }
    if user.status() == status {
        return Ok(false);
    }
    let (id, now) = (user.id.clone(), by.state.clock.now().naive_utc());
    by.state
        .store
        .run(move |c| users::set_status(c, &id, status, now))
        .await?;
    let event_type = if status == UserStatus::Disabled {
        session::end_every(by.state, &user.id, None).await?;
        EventType::UserDisabled
    } else {
        EventType::UserEnabled
    };
    record(by, event_type, user, &[]).await?;
    Ok(true)
}

/// Gives `user` another role; nobody grants more than they have, nor changes their own.
pub async fn set_role(by: Acting<'_>, user: &UserRow, role: Role) -> Result<bool, ServiceError> {
    may_act(by, Action::Manage, user)?;
    by.who.may_grant(role)?;
    not_oneself(by, user, "role")?;
    if user.role() == role {
        return Ok(false);
    }
    let (id, now) = (user.id.clone(), by.state.clock.now().naive_utc());
    by.state
        .store
        .run(move |c| users::set_role(c, &id, role, now))
        .await?;
    let details = [
        ("role", role.as_str().into()),
        ("previous_role", user.role().as_str().into()),
    ];
    record(by, EventType::UserUpdated, user, &details).await?;
    Ok(true)
}

/// Renames a user (DESIGN §3: an administrator can, the user cannot). Usernames are
/// unique across organisations, because the sign-in page asks for a username only.
pub async fn rename(
    by: Acting<'_>,
    user: &UserRow,
    username: Username,
) -> Result<bool, ServiceError> {
    may_act(by, Action::Manage, user)?;
    if username.as_str() == user.username {
        return Ok(false);
    }
    let (id, now, new_name) = (
        user.id.clone(),
        by.state.clock.now().naive_utc(),
        username.clone(),
    );
    // The lockout is keyed by name: it moves with the account, or a rename would lift it.
    let old_key = login_key(&user.username);
    by.state
        .store
        .transaction(move |c| {
            users::rename(c, &id, &new_name, now)?;
            lockouts::rename(c, &old_key, new_name.as_str())
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict => ServiceError::Conflict("username: already taken".into()),
            other => other.into(),
        })?;
    let details = [
        ("username", username.as_str().into()),
        ("previous_username", user.username.as_str().into()),
    ];
    record(by, EventType::UserUpdated, user, &details).await?;
    Ok(true)
}

/// The role check for `action` and rank over `user`: what every change to one user needs.
fn may_act(by: Acting<'_>, action: Action, user: &UserRow) -> Result<(), ServiceError> {
    by.who.require(action)?;
    by.who.may_act_on(user)
}

/// An administrator changes others' status and role, never their own.
fn not_oneself(by: Acting<'_>, user: &UserRow, what: &str) -> Result<(), ServiceError> {
    if user.id == by.who.actor {
        return Err(ServiceError::Conflict(format!(
            "you cannot change your own {what}"
        )));
    }
    Ok(())
}

/// Records `event` (a success by `by`) about `user`.
async fn record(
    by: Acting<'_>,
    event_type: EventType,
    user: &UserRow,
    details: &[(&str, serde_json::Value)],
) -> Result<(), ServiceError> {
    let mut event = by.event(event_type).subject(&user.id).org(&user.org_id);
    for (key, value) in details {
        event = event.detail(key, value.clone());
    }
    by.state.audit.record(event).await?;
    Ok(())
}

/// Whether `handle` has the shape of a session handle at all.
pub fn is_session_handle(handle: &str) -> bool {
    handle.len() == 64 && handle.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Ends one session of `user` (its grants revoked, with back-channel logout). False
/// when it was not theirs, already gone, or not a session handle at all.
pub async fn end_session(
    by: Acting<'_>,
    user: &UserRow,
    handle: &str,
) -> Result<bool, ServiceError> {
    may_act(by, Action::Support, user)?;
    if !is_session_handle(handle) {
        return Ok(false);
    }
    let ended = session::end_one(by.state, &user.id, handle).await?;
    if ended {
        revoked(by, user, 1).await?;
    }
    Ok(ended)
}

/// Ends every session of `user` and revokes their tokens. How many ended.
pub async fn end_all_sessions(by: Acting<'_>, user: &UserRow) -> Result<usize, ServiceError> {
    may_act(by, Action::Support, user)?;
    let ended = session::end_every(by.state, &user.id, None).await?;
    revoked(by, user, ended).await?;
    Ok(ended)
}

/// Records that an administrator ended `count` sessions of `user`.
async fn revoked(by: Acting<'_>, user: &UserRow, count: usize) -> Result<(), ServiceError> {
    let details = [
        ("reason", "revoked".into()),
        ("sessions_ended", count.into()),
    ];
    record(by, EventType::SessionEnded, user, &details).await
}
