//! The audit trail of the organisations the administrator may see.

// The console's pages share its entry, navigation, notices and helpers.
use super::*;
use crate::i18n::Tr;
use crate::{
    admin::service::audit::{self as audit_service, PageAsk, ReportPage, ReportQuery},
    audit::{ExportFormat, SortColumn},
};

use super::table::{Column, Dir, Heading, PAGE_SIZE, PageLink, Pager, Sorting, page_asked};

struct EventRow {
    seq: i64,
    time: String,
    event_type: String,
    outcome: String,
    actor: String,
    subject: String,
    client_ip: String,
    details: String,
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage {
    nav: Nav,
    tr: Tr,
    /// The filters as typed, shown back in the form and carried by the export forms.
    user: String,
    event_type: String,
    outcome: String,
    org: String,
    from: String,
    to: String,
    /// The order the export forms ask for: `desc` or `asc` (in time).
    order: &'static str,
    /// The table's order, when not the default: kept by the filter form.
    sort: Option<(&'static str, &'static str)>,
    /// Every event type, and whether it is the one filtered by.
    types: Vec<(&'static str, bool)>,
    /// The organisations a super administrator may pick (empty for others: they see
    /// their own only).
    orgs: Vec<(String, String, bool)>,
    events: Vec<EventRow>,
    /// The table's column headings, the sortable ones with their links.
    headings: Vec<Heading>,
    /// The links to the pages either side.
    pager: Pager,
    /// Oldest first in time (for the toggle's words).
    oldest_first: bool,
    /// The query string of the same filters in time, the other way.
    flip: String,
    error: Option<String>,
}

/// The columns the trail sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuditColumn {
    Time,
    Type,
    Outcome,
}

impl Column for AuditColumn {
    const ALL: &'static [Self] = &[Self::Time, Self::Type, Self::Outcome];

    fn key(self) -> &'static str {
        match self {
            Self::Time => "time",
            Self::Type => "type",
            Self::Outcome => "outcome",
        }
    }

    fn first(self) -> Dir {
        match self {
            Self::Time => Dir::Desc,
            Self::Type | Self::Outcome => Dir::Asc,
        }
    }
}

/// The report filters, as the form (and the export forms) send them, and the page of
/// them asked for. All text: whatever names no column, direction, page or event is
/// the default, never an error.
#[derive(Deserialize, Default)]
struct AuditQuery {
    /// A username (or user id).
    #[serde(default)]
    user: String,
    #[serde(default, rename = "type")]
    event_type: String,
    #[serde(default)]
    outcome: String,
    /// An organisation id.
    #[serde(default)]
    org: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    /// `desc` or `asc` in time: the export forms' word, and older links'.
    #[serde(default)]
    order: String,
    /// `time` (the default), `type` or `outcome`.
    #[serde(default)]
    sort: String,
    /// `asc` or `desc` (else the column's own first direction).
    #[serde(default)]
    dir: String,
    /// By another column than time: the page, from 1.
    #[serde(default)]
    page: String,
    /// In time: events before this seq (the next page newest first, the page before
    /// oldest first).
    #[serde(default)]
    before: String,
    /// In time: events after this seq.
    #[serde(default)]
    after: String,
}

impl AuditQuery {
    /// The table's order: `sort` and `dir`, or `order` as older links say it.
    fn sorting(&self) -> Sorting<AuditColumn> {
        if self.sort.trim().is_empty() && self.dir.trim().is_empty() {
            Sorting::asked("time", &self.order)
        } else {
            Sorting::asked(&self.sort, &self.dir)
        }
    }

    /// The order in time: the table's when it is sorted by time, else newest first.
    fn time_order(&self) -> Dir {
        let sorting = self.sorting();
        match sorting.column {
            AuditColumn::Time => sorting.dir,
            _ => Dir::Desc,
        }
    }

    fn report_query(&self) -> ReportQuery {
        let some = |s: &str| Some(s.to_owned());
        ReportQuery {
            user: some(&self.user),
            org: some(&self.org),
            event_type: some(&self.event_type),
            outcome: some(&self.outcome),
            from: some(&self.from),
            to: some(&self.to),
            order: some(self.time_order().as_str()),
        }
    }

    /// The filters (no order, no page) as a query string.
    fn filters(&self) -> url::form_urlencoded::Serializer<'static, String> {
        let mut out = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in [
            ("user", &self.user),
            ("type", &self.event_type),
            ("outcome", &self.outcome),
            ("org", &self.org),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            let value = value.trim();
            if !value.is_empty() {
                out.append_pair(key, value);
            }
        }
        out
    }

    /// The filters in `sorting`, as a query string.
    fn sorted(
        &self,
        sorting: Sorting<AuditColumn>,
    ) -> url::form_urlencoded::Serializer<'static, String> {
        let mut out = self.filters();
        sorting.append(&mut out);
        out
    }

    /// The page asked for: by time, the first or the one either side of a seq; by
    /// another column, a numbered one.
    fn page_ask(&self, sorting: Sorting<AuditColumn>) -> PageAsk {
        let seq = |raw: &str| raw.trim().parse::<i64>().ok();
        let ascending = sorting.dir == Dir::Asc;
        match sorting.column {
            AuditColumn::Time => {
                let (forward, back) = if ascending {
                    (seq(&self.after), seq(&self.before))
                } else {
                    (seq(&self.before), seq(&self.after))
                };
                match (forward, back) {
                    (Some(c), _) => PageAsk::Time {
                        cursor: Some(c),
                        back: false,
                    },
                    (None, Some(c)) => PageAsk::Time {
                        cursor: Some(c),
                        back: true,
                    },
                    (None, None) => PageAsk::Time {
                        cursor: None,
                        back: false,
                    },
                }
            }
            AuditColumn::Type => PageAsk::Column {
                column: SortColumn::Type,
                ascending,
                page: page_asked(&self.page),
            },
            AuditColumn::Outcome => PageAsk::Column {
                column: SortColumn::Outcome,
                ascending,
                page: page_asked(&self.page),
            },
        }
    }
}

#[get("/admin/audit")]
pub(super) async fn audit_page(query: Query<AuditQuery>, visit: Visit) -> Answer {
    let console = inside!(visit.enter().await?);
    let (who, tr) = (&console.who, console.tr());
    who.require(Action::Read).said(&tr)?;
    let q = query.into_inner();
    let shown = |s: &str| s.trim().chars().take(MAX_INPUT).collect::<String>();
    let sorting = q.sorting();
    let oldest_first = sorting
        == Sorting {
            column: AuditColumn::Time,
            dir: Dir::Asc,
        };
    let orgs = if who.role == Role::SuperAdmin {
        visit
            .state
            .store
            .run(orgs::list)
            .await?
            .into_iter()
            .map(|o| {
                let selected = o.id == q.org.trim();
                (o.id, o.display_name, selected)
            })
            .collect()
    } else {
        Vec::new()
    };
    let heading = |id: Id, column: AuditColumn| {
        Heading::sorting(&tr, tr.id(id), column, sorting, "/admin/audit", || {
            q.filters()
        })
    };
    let headings = vec![
        Heading::plain("#".to_owned()),
        heading(Id("console-time"), AuditColumn::Time),
        heading(Id("console-type"), AuditColumn::Type),
        heading(Id("console-outcome"), AuditColumn::Outcome),
        Heading::plain(tr.t("console-actor")),
        Heading::plain(tr.t("console-subject")),
        Heading::plain(tr.t("console-client-ip")),
        Heading::plain(tr.t("console-details")),
    ];
    let flip = Sorting {
        column: AuditColumn::Time,
        dir: if oldest_first { Dir::Desc } else { Dir::Asc },
    };
    let mut page = AuditPage {
        nav: console.nav(),
        tr: tr.clone(),
        user: shown(&q.user),
        event_type: shown(&q.event_type),
        outcome: shown(&q.outcome),
        org: shown(&q.org),
        from: shown(&q.from),
        to: shown(&q.to),
        order: q.time_order().as_str(),
        sort: (!sorting.is_default()).then(|| (sorting.column.key(), sorting.dir.as_str())),
        types: EventType::ALL
            .iter()
            .map(|t| (t.as_str(), t.as_str() == q.event_type.trim()))
            .collect(),
        orgs,
        events: Vec::new(),
        headings,
        pager: Pager::default(),
        oldest_first,
        flip: q.sorted(flip).finish(),
        error: None,
    };
    let report = match audit_service::report(&visit.state, who, &q.report_query()).await {
        Ok(report) => report,
        Err(e) => return refused(page, e),
    };
    let found = audit_service::page(visit.by(&console), &report, q.page_ask(sorting), PAGE_SIZE)
        .await
        .said(&tr)?;
    page.pager = pager(&tr, &q, sorting, &found);
    page.events = describe(&visit.state, &tr, found.records).await?;
    Ok(render(&page, StatusCode::OK))
}

/// The links to the pages either side of `found`: in time, older and newer events
/// past its ends; by another column, numbered pages.
fn pager(tr: &Tr, q: &AuditQuery, sorting: Sorting<AuditColumn>, found: &ReportPage) -> Pager {
    if let Some((page, pages)) = found.numbered {
        return Pager::numbered(tr, page, pages, |n| {
            let mut link = q.sorted(sorting);
            if n > 1 {
                link.append_pair("page", &n.to_string());
            }
            format!("/admin/audit?{}", link.finish())
        });
    }
    let (Some(first), Some(last)) = (found.records.first(), found.records.last()) else {
        return Pager::default();
    };
    let ascending = sorting.dir == Dir::Asc;
    let link = |key: &str, seq: i64| {
        let mut link = q.sorted(sorting);
        link.append_pair(key, &seq.to_string());
        format!("/admin/audit?{}", link.finish())
    };
    let newer = |seq| PageLink {
        id: "newer",
        label: tr.t("console-newer-events"),
        href: link("after", seq),
    };
    let older = |seq| PageLink {
        id: "older",
        label: tr.t("console-older-events"),
        href: link("before", seq),
    };
    let (prev, next) = if ascending {
        (
            found.earlier.then(|| older(first.seq)),
            found.later.then(|| newer(last.seq)),
        )
    } else {
        (
            found.earlier.then(|| newer(first.seq)),
            found.later.then(|| older(last.seq)),
        )
    };
    Pager {
        prev,
        next,
        position: None,
    }
}

/// Exports the events the filters select: a form post (with the session's CSRF token),
/// so no other site can make an administrator's browser run one.
#[post("/admin/audit/export")]
pub(super) async fn export_audit(form: Form<ExportForm>, visit: Visit) -> Answer {
    let form = form.into_inner();
    let console = inside!(visit.enter_form(&form.csrf).await?);
    let tr = console.tr();
    let format: ExportFormat = form
        .format
        .parse()
        .map_err(|_| AppError::BadRequest(tr.t("console-export-format-unknown")))?;
    let report = audit_service::report(&visit.state, &console.who, &form.filters.report_query())
        .await
        .said(&tr)?;
    let by = visit.by(&console);
    Ok(
        crate::admin::api::audit::export_response(by, report, format)
            .await
            .said(&tr)?,
    )
}

#[derive(Deserialize)]
struct ExportForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    format: String,
    #[serde(flatten)]
    filters: AuditQuery,
}

/// The page again with what was wrong with the filters: 400 for a malformed one, 404
/// for a user or organisation the administrator cannot see.
/// The service names the filter and says what is wrong with it in English (`from: …`):
/// the page says it after a lead-in in the administrator's language.
fn refused(mut page: AuditPage, e: ServiceError) -> Answer {
    let status = match &e {
        ServiceError::Invalid(_) => StatusCode::BAD_REQUEST,
        ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
        _ => return Err(refusal(&page.tr, e).into()),
    };
    page.error = Some(e.to_string());
    Ok(render(&page, status))
}

/// Events as rows, with user ids shown as usernames where they are users.
async fn describe(
    state: &AppState,
    tr: &Tr,
    records: Vec<AuditRecord>,
) -> Result<Vec<EventRow>, AppError> {
    let mut ids: Vec<String> = records
        .iter()
        .flat_map(|r| [r.actor.clone(), r.subject.clone()])
        .flatten()
        .collect();
    ids.sort();
    ids.dedup();
    let pii = state.pii.clone();
    let names: HashMap<String, String> = state
        .store
        .run(move |c| {
            let mut names = HashMap::new();
            for id in ids {
                if id.len() <= 64
                    && let Some(u) = users::find_by_id(c, &pii, &id)?
                {
                    names.insert(id, u.username);
                }
            }
            Ok(names)
        })
        .await?;
    let name = |id: &Option<String>| -> String {
        match id {
            Some(id) => names.get(id).cloned().unwrap_or_else(|| id.clone()),
            None => String::new(),
        }
    };
    Ok(records
        .into_iter()
        .map(|r| EventRow {
            seq: r.seq,
            time: tr.datetime(r.time),
            actor: name(&r.actor),
            subject: name(&r.subject),
            event_type: r.event_type,
            outcome: match r.outcome.as_str() {
                "success" => tr.t("console-outcome-success"),
                "failure" => tr.t("console-outcome-failure"),
                _ => r.outcome,
            },
            client_ip: r.client_ip.unwrap_or_default(),
            details: match &r.details {
                serde_json::Value::Object(m) if m.is_empty() => String::new(),
                other => other.to_string(),
            },
        })
        .collect())
}
