//! The audit trail of the organisations the administrator may see.

// The console's pages share its entry, navigation, notices and helpers.
use super::*;
use crate::i18n::Tr;
use crate::{
    admin::service::audit::{self as audit_service, ReportQuery},
    audit::ExportFormat,
};

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
    /// `desc` or `asc`.
    order: &'static str,
    /// Every event type, and whether it is the one filtered by.
    types: Vec<(&'static str, bool)>,
    /// The organisations a super administrator may pick (empty for others: they see
    /// their own only).
    orgs: Vec<(String, String, bool)>,
    events: Vec<EventRow>,
    /// The query string of the next page (older, or newer when oldest first).
    next: Option<String>,
    /// The query string of the same filters in the other order.
    flip: String,
    error: Option<String>,
}

/// The report filters, as the form (and the export forms) send them.
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
    #[serde(default)]
    order: String,
    /// Newest first: events before this seq.
    before: Option<i64>,
    /// Oldest first: events after this seq.
    after: Option<i64>,
}

impl AuditQuery {
    fn report_query(&self) -> ReportQuery {
        let some = |s: &str| Some(s.to_owned());
        ReportQuery {
            user: some(&self.user),
            org: some(&self.org),
            event_type: some(&self.event_type),
            outcome: some(&self.outcome),
            from: some(&self.from),
            to: some(&self.to),
            order: some(&self.order),
        }
    }

    /// The filters (no page) as a query string, in `order`.
    fn filters(&self, order: &str) -> url::form_urlencoded::Serializer<'static, String> {
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
        if order == "asc" {
            out.append_pair("order", "asc");
        }
        out
    }
}

#[get("/admin/audit")]
pub(super) async fn audit_page(query: Query<AuditQuery>, visit: Visit) -> Answer {
    let console = inside!(visit.enter().await?);
    let (who, tr) = (&console.who, console.tr());
    who.require(Action::Read).said(&tr)?;
    let q = query.into_inner();
    let shown = |s: &str| s.trim().chars().take(MAX_INPUT).collect::<String>();
    let order = if q.order.trim() == "asc" {
        "asc"
    } else {
        "desc"
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
    let mut page = AuditPage {
        nav: console.nav(),
        tr: tr.clone(),
        user: shown(&q.user),
        event_type: shown(&q.event_type),
        outcome: shown(&q.outcome),
        org: shown(&q.org),
        from: shown(&q.from),
        to: shown(&q.to),
        order,
        types: EventType::ALL
            .iter()
            .map(|t| (t.as_str(), t.as_str() == q.event_type.trim()))
            .collect(),
        orgs,
        events: Vec::new(),
        next: None,
        flip: q
            .filters(if order == "asc" { "desc" } else { "asc" })
            .finish(),
        error: None,
    };
    let report = match audit_service::report(&visit.state, who, &q.report_query()).await {
        Ok(report) => report,
        Err(e) => return refused(page, e),
    };
    let cursor = if order == "asc" { q.after } else { q.before };
    let records = audit_service::search(visit.by(&console), &report, AUDIT_PAGE, cursor)
        .await
        .said(&tr)?;
    page.next = next_link(&q, order, &records);
    page.events = describe(&visit.state, &tr, records).await?;
    Ok(render(&page, StatusCode::OK))
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

/// The query string of the page after a full one of `records`: the same filters and
/// order, events past the last one shown.
fn next_link(q: &AuditQuery, order: &str, records: &[AuditRecord]) -> Option<String> {
    let last = records.last()?;
    if records.len() as i64 != AUDIT_PAGE {
        return None;
    }
    let mut next = q.filters(order);
    let key = if order == "asc" { "after" } else { "before" };
    next.append_pair(key, &last.seq.to_string());
    Some(next.finish())
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
