//! Reading the audit trail (ONC 170.315 (d)(3)): reports filtered by time, user, type,
//! outcome and organisation, in either order, and exports of the same selection. Each
//! read is itself recorded (`admin.read`, (d)(2)): who looked, at what, how many rows.
//!
//! Role scoping is the API's of old: a super administrator sees every organisation,
//! support and organisation administrators their own only, whether they name it, name
//! another (not found) or name none (their own).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use futures_util::Stream;
use serde_json::{Map, Value};

use super::{Acting, Action, Caller, ServiceError, object_id};
use crate::{
    audit::{
        AuditError, AuditFilter, AuditRecord, EventType, ExportFormat, Order, Outcome, Selection,
        SortColumn,
    },
    domain::{Role, Username},
    startup::AppState,
    store::users,
};

/// Longest filter value accepted.
const MAX_TEXT: usize = 256;

/// A report's filters as a door received them: text, each optional (an empty one is
/// left out), checked by [`report`].
#[derive(Debug, Clone, Default)]
pub struct ReportQuery {
    /// A user id or username: events whose subject or actor they are. `client:…` and
    /// `cli:…` actors are taken as they are.
    pub user: Option<String>,
    /// An organisation id.
    pub org: Option<String>,
    pub event_type: Option<String>,
    /// `success` or `failure`.
    pub outcome: Option<String>,
    /// Inclusive: RFC 3339, or a UTC date (`2026-12-01`) or date and time
    /// (`2026-12-01T08:30`, as a browser's date-time field sends it).
    pub from: Option<String>,
    /// Exclusive, as `from`.
    pub to: Option<String>,
    /// `desc` (newest first, the default) or `asc`.
    pub order: Option<String>,
}

/// A checked report: the filter (scoped to what the caller may see) and order.
#[derive(Debug, Clone)]
pub struct Report {
    pub filter: AuditFilter,
    pub order: Order,
    /// The filters as asked, for the `admin.read` event.
    asked: Map<String, Value>,
}

/// Checks `q` and scopes it to what `who` may see.
pub async fn report(
    state: &AppState,
    who: &Caller,
    q: &ReportQuery,
) -> Result<Report, ServiceError> {
    who.require(Action::Read)?;
    let text = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
    };
    let mut asked = Map::new();
    for (key, value) in [
        ("user", &q.user),
        ("org", &q.org),
        ("type", &q.event_type),
        ("outcome", &q.outcome),
        ("from", &q.from),
        ("to", &q.to),
        ("order", &q.order),
    ] {
        if let Some(v) = text(value) {
            if v.chars().count() > MAX_TEXT {
                return Err(ServiceError::Invalid(format!(
                    "{key}: at most {MAX_TEXT} characters"
                )));
            }
            asked.insert(key.into(), v.into());
        }
    }
    let event_type = text(&q.event_type)
        .map(|t| t.parse::<EventType>())
        .transpose()
        .map_err(|_| ServiceError::Invalid("type: not a known event type".into()))?;
    let outcome = text(&q.outcome)
        .map(|o| o.parse::<Outcome>())
        .transpose()
        .map_err(|_| ServiceError::Invalid("outcome: success or failure".into()))?;
    let order = text(&q.order)
        .map(|o| o.parse::<Order>())
        .transpose()
        .map_err(|e| ServiceError::Invalid(format!("order: {e}")))?
        .unwrap_or_default();
    let from = text(&q.from).map(|t| parse_time("from", &t)).transpose()?;
    let to = text(&q.to).map(|t| parse_time("to", &t)).transpose()?;
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(ServiceError::Invalid("from: must not be after to".into()));
    }
    let org_id = scope_org(who, text(&q.org).as_deref())?;
    let user = match text(&q.user) {
        Some(u) => Some(user_id(state, who, &u).await?),
        None => None,
    };
    Ok(Report {
        filter: AuditFilter {
            user,
            org_id,
            event_type,
            outcome,
            from,
            to,
        },
        order,
        asked,
    })
}

/// The organisation a report is confined to: the one asked for if the caller sees it,
/// else (none asked) the caller's own, or every one for a super administrator.
fn scope_org(who: &Caller, asked: Option<&str>) -> Result<Option<String>, ServiceError> {
    match asked {
        Some(raw) => {
            let id = object_id(raw)?;
            if !who.sees_org(&id) {
                return Err(ServiceError::NotFound(format!(
                    "no organisation with id {id:?}"
                )));
            }
            Ok(Some(id))
        }
        None if who.role == Role::SuperAdmin => Ok(None),
        None => who
            .org_id
            .clone()
            .map(Some)
            .ok_or(ServiceError::Forbidden("your role does not allow this")),
    }
}

/// The id of the user `text` names (an id or a username) among those `who` sees; an
/// actor that is no user (`client:…`, `cli:…`) as it is.
async fn user_id(state: &AppState, who: &Caller, text: &str) -> Result<String, ServiceError> {
    if text.contains(':') {
        return Ok(text.to_owned());
    }
    let (id, name) = (text.to_owned(), Username::parse(text).ok());
    let pii = state.pii.clone();
    let found = state
        .store
        .run(move |c| {
            let by_id = if id.len() <= 64 {
                users::find_by_id(c, &pii, &id)?
            } else {
                None
            };
            match (by_id, name) {
                (Some(user), _) => Ok(Some(user)),
                (None, Some(name)) => users::find_by_username(c, &pii, &name),
                (None, None) => Ok(None),
            }
        })
        .await?;
    who.visible_user(found)
        .map(|u| u.id)
        .map_err(|_| ServiceError::NotFound(format!("user: no user {text:?}")))
}

/// A time bound: RFC 3339, or a date and time without zone (UTC), or a date (midnight
/// UTC).
fn parse_time(field: &str, text: &str) -> Result<DateTime<Utc>, ServiceError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(t.and_utc());
    }
    Err(ServiceError::Invalid(format!(
        "{field}: not a time; use RFC 3339 (2026-12-01T08:30:00Z) or a UTC date (2026-12-01)"
    )))
}

/// One page of `report`, recorded as read.
pub async fn search(
    by: Acting<'_>,
    report: &Report,
    limit: i64,
    cursor: Option<i64>,
) -> Result<Vec<AuditRecord>, ServiceError> {
    by.who.require(Action::Read)?;
    let records = by
        .state
        .audit
        .report(report.filter.clone(), report.order, limit, cursor)
        .await?;
    let mut asked = report.asked.clone();
    if let Some(c) = cursor {
        asked.insert("cursor".into(), c.into());
    }
    read_event(by, report, "audit", asked, records.len(), None).await?;
    Ok(records)
}

/// Which page of a report a console asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageAsk {
    /// In time (the report's order), from the start: the first page; past `cursor`
    /// (the last seq of the page before it); or, `back`, the page that ends just before
    /// `cursor` (the first seq of the page after it).
    Time { cursor: Option<i64>, back: bool },
    /// By `column` (ascending or not), page `page` from 1; the last one when there are
    /// fewer.
    Column {
        column: SortColumn,
        ascending: bool,
        page: i64,
    },
}

/// A page of a report, and whether there are pages either side of it.
#[derive(Debug)]
pub struct ReportPage {
    pub records: Vec<AuditRecord>,
    /// There is a page before this one.
    pub earlier: bool,
    /// There is a page after this one.
    pub later: bool,
    /// For a column's order: the page shown and how many there are.
    pub numbered: Option<(i64, i64)>,
}

/// One page of `report`, at most `per` events, as `ask` says; recorded as read (one
/// `admin.read` event, `audit`, whatever it took to find the page).
pub async fn page(
    by: Acting<'_>,
    report: &Report,
    ask: PageAsk,
    per: i64,
) -> Result<ReportPage, ServiceError> {
    by.who.require(Action::Read)?;
    let audit = &by.state.audit;
    let per = per.clamp(1, crate::audit::MAX_QUERY_LIMIT - 1);
    let filter = || report.filter.clone();
    let mut asked = report.asked.clone();
    let found = match ask {
        PageAsk::Time { cursor, back } => {
            let reverse = match report.order {
                Order::Newest => Order::Oldest,
                Order::Oldest => Order::Newest,
            };
            let mut page = None;
            if let (Some(c), true) = (cursor, back) {
                asked.insert("cursor".into(), c.into());
                asked.insert("back".into(), true.into());
                let mut records = audit.report(filter(), reverse, per + 1, Some(c)).await?;
                let earlier = records.len() as i64 > per;
                records.truncate(per as usize);
                records.reverse();
                // Back at the start: the first page, full, as it reads now.
                if earlier {
                    page = Some(ReportPage {
                        records,
                        earlier,
                        later: true,
                        numbered: None,
                    });
                }
            }
            match page {
                Some(page) => page,
                None => {
                    let forward = cursor.filter(|_| !back);
                    if let Some(c) = forward {
                        asked.insert("cursor".into(), c.into());
                    }
                    let mut records = audit
                        .report(filter(), report.order, per + 1, forward)
                        .await?;
                    let later = records.len() as i64 > per;
                    records.truncate(per as usize);
                    ReportPage {
                        records,
                        earlier: forward.is_some(),
                        later,
                        numbered: None,
                    }
                }
            }
        }
        PageAsk::Column {
            column,
            ascending,
            page,
        } => {
            let rows = audit.select(filter()).await?.rows;
            let pages = ((rows + per - 1) / per).max(1);
            let page = page.clamp(1, pages);
            asked.insert(
                "sort".into(),
                match column {
                    SortColumn::Type => "type",
                    SortColumn::Outcome => "outcome",
                }
                .into(),
            );
            asked.insert("dir".into(), if ascending { "asc" } else { "desc" }.into());
            asked.insert("page".into(), page.into());
            let records = audit
                .report_by(filter(), column, ascending, (page - 1) * per, per)
                .await?;
            ReportPage {
                records,
                earlier: page > 1,
                later: page < pages,
                numbered: Some((page, pages)),
            }
        }
    };
    read_event(by, report, "audit", asked, found.records.len(), None).await?;
    Ok(found)
}

/// Every event of `report`, as a stream of `format` chunks. Its `admin.read` event is
/// recorded first (no export leaves without one) and the export stops at the head as it
/// was then, so the rows it names are the rows written.
pub async fn export(
    by: Acting<'_>,
    report: Report,
    format: ExportFormat,
) -> Result<
    (
        Selection,
        impl Stream<Item = Result<Vec<u8>, AuditError>> + 'static,
    ),
    ServiceError,
> {
    by.who.require(Action::Read)?;
    let audit = &by.state.audit;
    let selection = audit.select(report.filter.clone()).await?;
    let rows = usize::try_from(selection.rows).unwrap_or(usize::MAX);
    let asked = report.asked.clone();
    read_event(by, &report, "audit_export", asked, rows, Some(format)).await?;
    Ok((
        selection,
        audit.export_stream(report.filter, report.order, selection, format),
    ))
}

async fn read_event(
    by: Acting<'_>,
    report: &Report,
    object: &str,
    asked: Map<String, Value>,
    rows: usize,
    format: Option<ExportFormat>,
) -> Result<(), ServiceError> {
    let mut event = by
        .event(EventType::AdminRead)
        .detail("object", object)
        .detail("filter", Value::Object(asked))
        .detail("rows", rows);
    if let Some(format) = format {
        event = event.detail("format", format.as_str());
    }
    if let Some(org) = &report.filter.org_id {
        event = event.org(org);
    }
    if let Some(user) = &report.filter.user {
        event = event.subject(user);
    }
    by.state.audit.record(event).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_in_the_forms_people_and_browsers_send() {
        let at = |s: &str| parse_time("from", s).unwrap().to_rfc3339();
        assert_eq!(at("2026-12-01T08:30:00Z"), "2026-12-01T08:30:00+00:00");
        assert_eq!(at("2026-12-01T09:30:00+01:00"), "2026-12-01T08:30:00+00:00");
        assert_eq!(at("2026-12-01T08:30"), "2026-12-01T08:30:00+00:00");
        assert_eq!(at("2026-12-01"), "2026-12-01T00:00:00+00:00");
        for bad in ["yesterday", "2026-13-01", "2026-12-01T25:00", "1"] {
            let err = parse_time("to", bad).unwrap_err().to_string();
            assert!(err.starts_with("to: not a time"), "{bad}: {err}");
        }
    }

    #[test]
    fn an_org_admin_is_kept_to_their_organisation() {
        let admin = Caller {
            actor: "a".into(),
            role: Role::OrgAdmin,
            org_id: Some("org-a".into()),
        };
        assert_eq!(scope_org(&admin, None).unwrap().as_deref(), Some("org-a"));
        assert_eq!(
            scope_org(&admin, Some("org-a")).unwrap().as_deref(),
            Some("org-a")
        );
        assert!(matches!(
            scope_org(&admin, Some("org-b")),
            Err(ServiceError::NotFound(_))
        ));
        let root = Caller::cli("alice@host");
        assert_eq!(scope_org(&root, None).unwrap(), None);
        assert_eq!(
            scope_org(&root, Some("org-b")).unwrap().as_deref(),
            Some("org-b")
        );
    }
}
