//! `/audit`: the audit trail of the organisations the caller may see (DESIGN §11).

use std::str::FromStr;

use actix_web::web;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{AdminRequest, Reply, ok};
use crate::{
    admin::{Action, ApiError, ErrorBody, service::object_id},
    audit::{AuditFilter, EventType, Outcome},
    domain::Role,
};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Events whose subject or actor is this user id.
    pub user: Option<String>,
    /// Organisation id (default: the caller's own, for organisation administrators).
    pub org: Option<String>,
    /// Event type, e.g. `signin.failed`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// `success` or `failure`.
    pub outcome: Option<String>,
    /// Inclusive, RFC 3339.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive, RFC 3339.
    pub to: Option<DateTime<Utc>>,
    /// 1–1000, default 100.
    pub limit: Option<i64>,
    /// Events before this sequence number (the next page).
    pub before: Option<i64>,
}

#[utoipa::path(get, path = "/admin/api/v1/audit", params(AuditQuery),
    responses((status = 200, description = "audit events, newest first", body = Vec<Object>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn query_audit(query: web::Query<AuditQuery>, api: AdminRequest) -> Reply {
    api.who.require(Action::Read)?;
    let q = query.into_inner();
    let org_id = match (q.org, api.who.role) {
        (Some(o), _) => {
            let o = object_id(&o)?;
            if !api.who.sees_org(&o) {
                return Err(ApiError::NotFound);
            }
            Some(o)
        }
        (None, Role::SuperAdmin) => None,
        (None, _) => api.who.org_id.clone(),
    };
    let event_type: Option<EventType> = parsed(q.event_type, "type: unknown event type")?;
    let outcome: Option<Outcome> = parsed(q.outcome, "outcome: success or failure")?;
    if q.limit.is_some_and(|l| !(1..=1000).contains(&l)) {
        return Err(ApiError::BadRequest("limit: between 1 and 1000".into()));
    }
    if q.user.as_ref().is_some_and(|u| u.len() > 64) {
        return Err(ApiError::BadRequest("user: not a user id".into()));
    }
    let filter = AuditFilter {
        user: q.user,
        org_id,
        event_type,
        outcome,
        from: q.from,
        to: q.to,
    };
    let records = api
        .state
        .audit
        .query(filter, q.limit.unwrap_or(100), q.before)
        .await?;
    ok(records)
}

/// An optional query value parsed, or a bad request saying `error`.
fn parsed<T: FromStr>(raw: Option<String>, error: &str) -> Result<Option<T>, ApiError> {
    raw.map(|r| r.parse().map_err(|_| ApiError::BadRequest(error.into())))
        .transpose()
}
