//! `/users/{id}/sessions`: a user's SSO sessions, and ending them.

use actix_web::web;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{AdminRequest, Reply, ok};
use crate::{
    admin::{Action, ApiError, ErrorBody, service::users as service},
    auth::session,
};

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// The handle to end it by.
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// `urn:gatehouse:acr:pwd` or `urn:gatehouse:acr:mfa`.
    pub acr: String,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
}

#[utoipa::path(get, path = "/admin/api/v1/users/{id}/sessions", params(("id" = String, Path)),
    responses((status = 200, body = Vec<SessionView>), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_sessions(path: web::Path<String>, api: AdminRequest) -> Reply {
    let user = api.user(Action::Read, &path).await?;
    let live = session::list(
        api.state.ephemeral.as_ref(),
        api.state.clock.as_ref(),
        &user.id,
    )
    .await?;
    let at = |t: i64| DateTime::<Utc>::from_timestamp(t, 0).unwrap_or_default();
    let out: Vec<SessionView> = live
        .into_iter()
        .map(|s| SessionView {
            acr: s.acr().to_owned(),
            id: s.handle,
            created_at: at(s.created_at),
            last_seen: at(s.last_seen),
            client_ip: s.client_ip,
            user_agent: s.user_agent,
        })
        .collect();
    ok(out)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Ended {
    pub sessions_ended: usize,
}

/// Ends every session of the user (and revokes their tokens, with back-channel logout).
#[utoipa::path(delete, path = "/admin/api/v1/users/{id}/sessions", params(("id" = String, Path)),
    responses((status = 200, body = Ended), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn end_sessions(path: web::Path<String>, api: AdminRequest) -> Reply {
    let user = api.user(Action::Support, &path).await?;
    let sessions_ended = service::end_all_sessions(api.by(), &user).await?;
    ok(Ended { sessions_ended })
}

/// Ends one session of the user (and revokes the tokens issued under it).
#[utoipa::path(delete, path = "/admin/api/v1/users/{id}/sessions/{session}",
    params(("id" = String, Path), ("session" = String, Path, description = "a session id from the list")),
    responses((status = 200, body = Ended), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn end_one_session(path: web::Path<(String, String)>, api: AdminRequest) -> Reply {
    let (raw_user, handle) = path.into_inner();
    let user = api.user(Action::Support, &raw_user).await?;
    if !service::end_session(api.by(), &user, &handle).await? {
        return Err(ApiError::NotFound);
    }
    ok(Ended { sessions_ended: 1 })
}
