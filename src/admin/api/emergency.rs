//! Emergency access (DESIGN §15): designating users (`/users/{id}/emergency-access`,
//! `/orgs/{id}/emergency-access`) and reviewing the windows they opened
//! (`/emergency-sessions`).

use actix_web::web;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{AdminRequest, Done, Reply, done, ok};
use crate::{
    admin::{
        Action, ApiError, ErrorBody,
        service::{
            emergency::{self as service, Designated, Listing},
            object_id,
        },
    },
    domain::ReviewNote,
    store::emergency::EmergencyRow,
};

/// A user designated for emergency access.
#[derive(Debug, Serialize, ToSchema)]
pub struct DesignationView {
    pub user_id: String,
    pub username: String,
    pub org_id: String,
    /// The administrator (user id), `client:<id>` or `cli` who designated them.
    pub granted_by: String,
    pub granted_at: DateTime<Utc>,
}

pub fn designation_view(d: Designated) -> DesignationView {
    DesignationView {
        user_id: d.row.user_id,
        username: d.username,
        org_id: d.row.org_id,
        granted_by: d.row.granted_by,
        granted_at: d.row.granted_at.and_utc(),
    }
}

/// One emergency window: who broke the glass, why, for how long, and its review.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmergencyView {
    pub id: String,
    pub org_id: String,
    pub user_id: String,
    /// The username when the window opened.
    pub username: String,
    pub reason: String,
    /// The patient or context label chosen, when the relying party offered some.
    pub context: Option<String>,
    /// The client or SP that asked for emergency access; null from the account page.
    pub requested_by: Option<String>,
    pub started_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// `expired`, `ended_by_user`, `signed_out`.
    pub end_reason: Option<String>,
    /// Whether nobody has signed it off yet.
    pub awaiting_review: bool,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<DateTime<Utc>>,
    pub review_note: Option<String>,
}

/// The session handle stays out: it names a live SSO session.
pub fn emergency_view(w: EmergencyRow) -> EmergencyView {
    EmergencyView {
        awaiting_review: w.reviewed_at.is_none(),
        id: w.id,
        org_id: w.org_id,
        user_id: w.user_id,
        username: w.username,
        reason: w.reason,
        context: w.context,
        requested_by: w.requested_by,
        started_at: w.started_at.and_utc(),
        expires_at: w.expires_at.and_utc(),
        ended_at: w.ended_at.map(|t| t.and_utc()),
        end_reason: w.end_reason,
        reviewed_by: w.reviewed_by,
        reviewed_at: w.reviewed_at.map(|t| t.and_utc()),
        review_note: w.review_note,
    }
}

/// Designates the user for emergency access in their organisation; `changed` false
/// when they already were. Nobody designates themselves.
#[utoipa::path(put, path = "/admin/api/v1/users/{id}/emergency-access", params(("id" = String, Path)),
    responses((status = 200, body = Done), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn grant_emergency_access(path: web::Path<String>, api: AdminRequest) -> Reply {
    let user = api.user(Action::Manage, &path).await?;
    done(service::grant(api.by(), &user).await?)
}

/// Withdraws the user's designation; `changed` false when there was none.
#[utoipa::path(delete, path = "/admin/api/v1/users/{id}/emergency-access", params(("id" = String, Path)),
    responses((status = 200, body = Done), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn withdraw_emergency_access(path: web::Path<String>, api: AdminRequest) -> Reply {
    let user = api.user(Action::Manage, &path).await?;
    done(service::withdraw(api.by(), &user).await?)
}

/// The users of the organisation designated for emergency access, by username.
#[utoipa::path(get, path = "/admin/api/v1/orgs/{id}/emergency-access", params(("id" = String, Path)),
    responses((status = 200, body = Vec<DesignationView>), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_emergency_access(path: web::Path<String>, api: AdminRequest) -> Reply {
    let org = api.org(Action::Read, &path).await?;
    let all = service::designated(&api.state, &api.who, &org.id).await?;
    ok(all.into_iter().map(designation_view).collect::<Vec<_>>())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EmergencyQuery {
    /// Organisation id; default: every organisation the caller sees.
    pub org: Option<String>,
    /// `awaiting` (default): awaiting review, oldest first; `all`: every window, newest
    /// first. At most 200.
    pub state: Option<String>,
}

/// Emergency windows: by default those awaiting review, oldest first.
#[utoipa::path(get, path = "/admin/api/v1/emergency-sessions", params(EmergencyQuery),
    responses((status = 200, body = Vec<EmergencyView>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_emergency_sessions(
    query: web::Query<EmergencyQuery>,
    api: AdminRequest,
) -> Reply {
    let listing = match query.state.as_deref() {
        None | Some("awaiting") => Listing::Awaiting,
        Some("all") => Listing::All,
        Some(_) => return Err(ApiError::BadRequest("state: one of awaiting, all".into())),
    };
    let org = query.org.as_deref().map(object_id).transpose()?;
    let rows = service::windows(&api.state, &api.who, org.as_deref(), listing).await?;
    ok(rows.into_iter().map(emergency_view).collect::<Vec<_>>())
}

#[utoipa::path(get, path = "/admin/api/v1/emergency-sessions/{id}", params(("id" = String, Path)),
    responses((status = 200, body = EmergencyView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn show_emergency_session(path: web::Path<String>, api: AdminRequest) -> Reply {
    let window = service::window(&api.state, &api.who, Action::Read, &path).await?;
    ok(emergency_view(window))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    /// What the reviewer found: 1 to 2000 characters, kept as one line.
    pub note: String,
}

/// Signs the window off with a note. Refused (403) to the user who opened it, and
/// (409) when it was already signed off.
#[utoipa::path(post, path = "/admin/api/v1/emergency-sessions/{id}/review", params(("id" = String, Path)), request_body = ReviewBody,
    responses((status = 200, body = EmergencyView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn review_emergency_session(
    path: web::Path<String>,
    body: web::Bytes,
    api: AdminRequest,
) -> Reply {
    let window = service::window(&api.state, &api.who, Action::Support, &path).await?;
    let body: ReviewBody = api.json(&body)?;
    let note =
        ReviewNote::parse(&body.note).map_err(|e| ApiError::BadRequest(format!("note: {e}")))?;
    ok(emergency_view(
        service::sign_off(api.by(), &window, &note).await?,
    ))
}
