//! `/ip-blocks` and `/ip-allow-list`: the brute-force guard's addresses (DESIGN §5).

use actix_web::web;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AdminRequest, Done, Reply, created, done, ok};
use crate::{
    admin::{ErrorBody, service::network as service},
    store::ip_allow::AllowRow,
};

#[derive(Debug, Serialize, ToSchema)]
pub struct IpBlockView {
    /// An IPv4 address or an IPv6 /64.
    pub ip: String,
    pub blocked_until: DateTime<Utc>,
    pub block_count: i32,
    pub reason: String,
}

#[utoipa::path(get, path = "/admin/api/v1/ip-blocks",
    responses((status = 200, body = Vec<IpBlockView>), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_ip_blocks(api: AdminRequest) -> Reply {
    let out: Vec<IpBlockView> = service::blocks(&api.state, &api.who)
        .await?
        .into_iter()
        .map(|r| IpBlockView {
            ip: r.ip,
            blocked_until: r.blocked_until.and_utc(),
            block_count: r.block_count,
            reason: r.reason,
        })
        .collect();
    ok(out)
}

#[utoipa::path(delete, path = "/admin/api/v1/ip-blocks/{ip}", params(("ip" = String, Path, description = "as listed")),
    responses((status = 200, body = Done), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn unblock_ip(path: web::Path<String>, api: AdminRequest) -> Reply {
    done(service::lift_ip_block(api.by(), &path).await?)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AllowEntryView {
    /// A network in CIDR form, host bits cleared (`10.20.0.0/16`, `2001:db8::/48`).
    pub cidr: String,
    pub note: String,
    /// The administrator who added it (user id or `client:<client_id>`).
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

pub fn allow_view(row: AllowRow) -> AllowEntryView {
    AllowEntryView {
        cidr: row.cidr,
        note: row.note,
        created_by: row.created_by,
        created_at: row.created_at.and_utc(),
    }
}

/// Networks never counted or blocked by the brute-force guard (the `ip_allow_list`
/// setting adds its own, not listed here).
#[utoipa::path(get, path = "/admin/api/v1/ip-allow-list",
    responses((status = 200, body = Vec<AllowEntryView>), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_allowed(api: AdminRequest) -> Reply {
    let rows = service::allowed(&api.state, &api.who).await?;
    ok(rows.into_iter().map(allow_view).collect::<Vec<_>>())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllowBody {
    /// An address or a network: IPv4 /8 or narrower, IPv6 /32 or narrower.
    pub cidr: String,
    /// Why (up to 200 characters), e.g. "St Mary's outbound NAT".
    pub note: Option<String>,
}

#[utoipa::path(post, path = "/admin/api/v1/ip-allow-list", request_body = AllowBody,
    responses((status = 201, body = AllowEntryView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn add_allowed(body: web::Bytes, api: AdminRequest) -> Reply {
    api.who.require(crate::admin::Action::Global)?;
    let body: AllowBody = api.json(&body)?;
    let by = api.by();
    let row = service::allow(by, &body.cidr, body.note.as_deref()).await?;
    created(allow_view(row))
}

/// Removes a network: `DELETE /ip-allow-list/10.20.0.0/16`.
#[utoipa::path(delete, path = "/admin/api/v1/ip-allow-list/{address}/{prefix}",
    params(("address" = String, Path, description = "the network's address, as listed"), ("prefix" = u8, Path, description = "its prefix length")),
    responses((status = 200, body = Done), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn remove_allowed(path: web::Path<(String, String)>, api: AdminRequest) -> Reply {
    let (address, prefix) = path.into_inner();
    let cidr = format!("{address}/{prefix}");
    service::disallow(api.by(), &cidr).await?;
    done(true)
}
