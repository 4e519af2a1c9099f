//! `/audit`: reports on the audit trail of the organisations the caller may see, and
//! exports of the same selection (DESIGN §11, ONC 170.315 (d)(3)).

use actix_web::{HttpResponse, http::header, web};
use futures_util::StreamExt;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{AdminRequest, Reply, ok};
use crate::{
    admin::{
        ApiError, ErrorBody,
        service::audit::{self as service, ReportQuery},
    },
    audit::ExportFormat,
};

/// The filters every report and export takes.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// A user id or username: events whose subject or actor they are.
    pub user: Option<String>,
    /// Organisation id (default: the caller's own, for support and organisation
    /// administrators; every organisation for a super administrator).
    pub org: Option<String>,
    /// Event type, e.g. `sign_in.failed`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// `success` or `failure`.
    pub outcome: Option<String>,
    /// Inclusive: RFC 3339, or a UTC date (`2026-12-01`).
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// Exclusive: RFC 3339, or a UTC date.
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
    /// `desc` (newest first, the default) or `asc` (oldest first).
    #[param(pattern = "^(asc|desc)$")]
    pub order: Option<String>,
    /// 1–1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Newest first: events before this sequence number (the next page).
    pub before: Option<i64>,
    /// Oldest first: events after this sequence number (the next page).
    pub after: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `jsonl` (one JSON object a line, the default) or `csv` (RFC 4180).
    #[param(pattern = "^(jsonl|csv)$")]
    pub format: Option<String>,
    /// As for `/audit`.
    pub user: Option<String>,
    pub org: Option<String>,
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    pub outcome: Option<String>,
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
    /// `asc` (oldest first, the default for exports) or `desc`.
    #[param(pattern = "^(asc|desc)$")]
    pub order: Option<String>,
}

#[utoipa::path(get, path = "/admin/api/v1/audit", params(AuditQuery),
    responses((status = 200, description = "audit events in the order asked (newest first by default)", body = Vec<Object>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn query_audit(query: web::Query<AuditQuery>, api: AdminRequest) -> Reply {
    let q = query.into_inner();
    if q.limit.is_some_and(|l| !(1..=1000).contains(&l)) {
        return Err(ApiError::BadRequest("limit: between 1 and 1000".into()));
    }
    let report = service::report(
        &api.state,
        &api.who,
        &ReportQuery {
            user: q.user,
            org: q.org,
            event_type: q.event_type,
            outcome: q.outcome,
            from: q.from,
            to: q.to,
            order: q.order,
        },
    )
    .await?;
    let cursor = match (report.order, q.before, q.after) {
        (_, Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "before, after: give one at most".into(),
            ));
        }
        (crate::audit::Order::Newest, cursor, None) => cursor,
        (crate::audit::Order::Oldest, None, cursor) => cursor,
        (crate::audit::Order::Newest, None, Some(_)) => {
            return Err(ApiError::BadRequest(
                "after: pages oldest first (order=asc); use before".into(),
            ));
        }
        (crate::audit::Order::Oldest, Some(_), None) => {
            return Err(ApiError::BadRequest(
                "before: pages newest first (order=desc); use after".into(),
            ));
        }
    };
    let records = service::search(api.by(), &report, q.limit.unwrap_or(100), cursor).await?;
    ok(records)
}

#[utoipa::path(get, path = "/admin/api/v1/audit/export", params(ExportQuery),
    responses(
        (status = 200, description = "the selected events, streamed: JSON lines or CSV (header line first; cells a spreadsheet would run as formulas start with `'`)",
            content((String = "application/jsonl"), (String = "text/csv"))),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn export_audit(query: web::Query<ExportQuery>, api: AdminRequest) -> Reply {
    let q = query.into_inner();
    let format = match q.format.as_deref() {
        None | Some("") => ExportFormat::JsonLines,
        Some(f) => f
            .parse()
            .map_err(|e| ApiError::BadRequest(format!("format: {e}")))?,
    };
    let report = service::report(
        &api.state,
        &api.who,
        &ReportQuery {
            user: q.user,
            org: q.org,
            event_type: q.event_type,
            outcome: q.outcome,
            from: q.from,
            to: q.to,
            order: Some(q.order.unwrap_or_else(|| "asc".into())),
        },
    )
    .await?;
    Ok(export_response(api.by(), report, format).await?)
}

/// The streamed answer to an export (the console's too): the body is written a page at
/// a time as the client reads it.
pub async fn export_response(
    by: crate::admin::service::Acting<'_>,
    report: service::Report,
    format: ExportFormat,
) -> Result<HttpResponse, crate::admin::ServiceError> {
    let (selection, chunks) = service::export(by, report, format).await?;
    let body = chunks.map(|chunk| {
        chunk.map(web::Bytes::from).map_err(|e| {
            // The status line has gone: the client sees a cut-off body; the log says why.
            tracing::error!(error = %e, "audit export stopped");
            actix_web::error::ErrorInternalServerError("audit export stopped")
        })
    });
    let filename = format!(
        "attachment; filename=\"gatehouse-audit.{}\"",
        format.as_str()
    );
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header((header::CONTENT_DISPOSITION, filename))
        .insert_header(("X-Audit-Rows", selection.rows.to_string()))
        .streaming(body))
}
