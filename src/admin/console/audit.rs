//! The audit trail of the organisations the administrator may see.

// The console's pages share its entry, navigation, notices and helpers.
use super::*;

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
    user: String,
    event_type: String,
    /// Every event type, and whether it is the one filtered by.
    types: Vec<(&'static str, bool)>,
    events: Vec<EventRow>,
    /// The query string of the next (older) page, when there may be one.
    older: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct AuditQuery {
    /// A username.
    user: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    before: Option<i64>,
}

#[get("/admin/audit")]
pub(super) async fn audit_page(query: Query<AuditQuery>, visit: Visit) -> Answer {
    let console = inside!(visit.enter().await?);
    let who = &console.who;
    who.require(Action::Read)?;
    let q = query.into_inner();
    let user_text = q.user.unwrap_or_default().trim().to_owned();
    let type_text = q.event_type.unwrap_or_default().trim().to_owned();
    let mut page = AuditPage {
        nav: console.nav(),
        user: user_text.chars().take(MAX_INPUT).collect(),
        event_type: type_text.chars().take(MAX_INPUT).collect(),
        types: EventType::ALL
            .iter()
            .map(|t| (t.as_str(), t.as_str() == type_text))
            .collect(),
        events: Vec::new(),
        older: None,
        error: None,
    };
    let event_type = if type_text.is_empty() {
        None
    } else {
        match type_text.parse::<EventType>() {
            Ok(t) => Some(t),
            Err(_) => {
                page.error = Some("type: not a known event type".into());
                return Ok(render(&page, StatusCode::BAD_REQUEST));
            }
        }
    };
    let user = if user_text.is_empty() {
        None
    } else {
        match visible_user_id(&visit.state, who, &user_text).await? {
            Some(id) => Some(id),
            None => {
                page.error = Some(format!("user: no user named {user_text:?}"));
                return Ok(render(&page, StatusCode::NOT_FOUND));
            }
        }
    };
    let filter = AuditFilter {
        user,
        org_id: match who.role {
            Role::SuperAdmin => None,
            _ => who.org_id.clone(),
        },
        event_type,
        outcome: None,
        from: None,
        to: None,
    };
    let records = visit
        .state
        .audit
        .query(filter, AUDIT_PAGE, q.before)
        .await
        .map_err(AppError::from)?;
    page.older = page.older_link(&records);
    page.events = describe(&visit.state, records).await?;
    Ok(render(&page, StatusCode::OK))
}

impl AuditPage {
    /// The query string of the page after a full one of `records`: the same filters,
    /// events before the last one shown.
    fn older_link(&self, records: &[AuditRecord]) -> Option<String> {
        let last = records.last()?;
        if records.len() as i64 != AUDIT_PAGE {
            return None;
        }
        let mut next = url::form_urlencoded::Serializer::new(String::new());
        if !self.user.is_empty() {
            next.append_pair("user", &self.user);
        }
        if !self.event_type.is_empty() {
            next.append_pair("type", &self.event_type);
        }
        next.append_pair("before", &last.seq.to_string());
        Some(next.finish())
    }
}

/// The id of the user named `text`, if the administrator may see them: someone outside
/// the administrator's organisations is as unknown as no one.
async fn visible_user_id(
    state: &AppState,
    who: &Caller,
    text: &str,
) -> Result<Option<String>, AppError> {
    let Ok(name) = Username::parse(text) else {
        return Ok(None);
    };
    let found = state
        .store
        .run(move |c| users::find_by_username(c, &name))
        .await?;
    Ok(who.visible_user(found).ok().map(|u| u.id))
}

/// Events as rows, with user ids shown as usernames where they are users.
async fn describe(state: &AppState, records: Vec<AuditRecord>) -> Result<Vec<EventRow>, AppError> {
    let mut ids: Vec<String> = records
        .iter()
        .flat_map(|r| [r.actor.clone(), r.subject.clone()])
        .flatten()
        .collect();
    ids.sort();
    ids.dedup();
    let names: HashMap<String, String> = state
        .store
        .run(move |c| {
            let mut names = HashMap::new();
            for id in ids {
                if id.len() <= 64
                    && let Some(u) = users::find_by_id(c, &id)?
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
            time: when(r.time.naive_utc()),
            actor: name(&r.actor),
            subject: name(&r.subject),
            event_type: r.event_type,
            outcome: r.outcome,
            client_ip: r.client_ip.unwrap_or_default(),
            details: match &r.details {
                serde_json::Value::Object(m) if m.is_empty() => String::new(),
                other => other.to_string(),
            },
        })
        .collect())
}
