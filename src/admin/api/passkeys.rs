//! `/users/{id}/passkeys`: a user's passkeys (DESIGN §17), and removing one.

use actix_web::web;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{AdminRequest, Reply, ok};
use crate::admin::{
    Action, ErrorBody,
    service::passkeys::{self as service, PasskeySummary},
};

/// A passkey as administrators see it: its name and kind, never its key.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyView {
    /// The id to remove it by.
    pub id: String,
    /// What its owner called it.
    pub name: String,
    /// May be synced between the owner's devices (`amr` swk), or is bound to one (hwk).
    pub synced: bool,
    /// The authenticator model it named at registration, if any.
    pub aaguid: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<PasskeySummary> for PasskeyView {
    fn from(p: PasskeySummary) -> Self {
        Self {
            id: p.id,
            name: p.name,
            synced: p.synced,
            aaguid: p.aaguid,
            created_at: p.created_at,
            last_used_at: p.last_used_at,
        }
    }
}

#[utoipa::path(get, path = "/admin/api/v1/users/{id}/passkeys", params(("id" = String, Path)),
    responses((status = 200, body = Vec<PasskeyView>), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_passkeys(path: web::Path<String>, api: AdminRequest) -> Reply {
    let user = api.user(Action::Read, &path).await?;
    let passkeys = service::list(api.by(), &user).await?;
    ok(passkeys
        .into_iter()
        .map(PasskeyView::from)
        .collect::<Vec<_>>())
}

/// Removes one of the user's passkeys; the user is told by mail.
#[utoipa::path(delete, path = "/admin/api/v1/users/{id}/passkeys/{passkey}",
    params(("id" = String, Path), ("passkey" = String, Path)),
    responses((status = 200, body = PasskeyView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn remove_passkey(path: web::Path<(String, String)>, api: AdminRequest) -> Reply {
    let (id, passkey) = path.into_inner();
    let user = api.user(Action::Support, &id).await?;
    let removed = service::remove(api.by(), &user, &passkey).await?;
    ok(PasskeyView::from(removed))
}
