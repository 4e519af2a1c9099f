//! Emergency access reviews (DESIGN §15): every window someone opened, awaiting a second
//! administrator's sign-off, oldest first; and the recent ones signed off.

// The console's pages share its entry, navigation, notices and helpers.
use super::*;
use crate::i18n::Tr;
use crate::{
    admin::service::emergency::{self as emergency_service, Listing},
    domain::ReviewNote,
    store::emergency::EmergencyRow,
};

/// Signed-off windows shown under the open ones.
const RECENTLY_SIGNED: usize = 20;

struct WindowRow {
    id: String,
    user_id: String,
    username: String,
    org: String,
    reason: String,
    context: String,
    requested_by: String,
    started: String,
    /// When it ends or ended, and how.
    ends: String,
    /// The administrator is the one who opened it: no sign-off form for them.
    own: bool,
    reviewed: String,
    reviewed_by: String,
    note: String,
}

#[derive(Template)]
#[template(path = "admin/emergency.html")]
struct EmergencyPage {
    nav: Nav,
    tr: Tr,
    notice: Option<String>,
    awaiting: Vec<WindowRow>,
    signed: Vec<WindowRow>,
    /// May sign off (support and above).
    can_review: bool,
}

#[get("/admin/emergency")]
pub(super) async fn emergency_page(query: Query<DoneQuery>, visit: Visit) -> Answer {
    let console = inside!(visit.enter().await?);
    let (who, tr) = (&console.who, console.tr());
    let state = &visit.state;
    let awaiting = emergency_service::windows(state, who, None, Listing::Awaiting)
        .await
        .said(&tr)?;
    let signed: Vec<EmergencyRow> = emergency_service::windows(state, who, None, Listing::All)
        .await
        .said(&tr)?
        .into_iter()
        .filter(|w| w.reviewed_at.is_some())
        .take(RECENTLY_SIGNED)
        .collect();
    let names: HashMap<String, String> = state
        .store
        .run(orgs::list)
        .await?
        .into_iter()
        .map(|o| (o.id, o.display_name))
        .collect();
    let now = state.clock.now().naive_utc();
    let row = |w: EmergencyRow| window_row(&tr, w, &names, &who.actor, now);
    let page = EmergencyPage {
        nav: console.nav(),
        notice: notice(&tr, query.done.as_deref()),
        awaiting: awaiting.into_iter().map(row).collect(),
        signed: signed.into_iter().map(row).collect(),
        can_review: who.require(Action::Support).is_ok(),
        tr,
    };
    Ok(render(&page, StatusCode::OK))
}

fn window_row(
    tr: &Tr,
    w: EmergencyRow,
    names: &HashMap<String, String>,
    actor: &str,
    now: NaiveDateTime,
) -> WindowRow {
    let (id, at) = match (w.ended_at, w.end_reason.as_deref()) {
        (Some(at), Some("expired")) => (Id("console-window-expired"), at),
        (Some(at), Some("ended_by_user")) => (Id("console-window-ended-by-user"), at),
        (Some(at), Some("signed_out")) => (Id("console-window-signed-out"), at),
        (Some(at), _) => (Id("console-window-ended"), at),
        (None, _) if w.is_open(now) => (Id("console-window-open-until"), w.expires_at),
        (None, _) => (Id("console-window-lapsed"), w.expires_at),
    };
    let ends = tr.a(id.0, "at", &when(tr, at));
    WindowRow {
        own: w.user_id == actor,
        org: names.get(&w.org_id).cloned().unwrap_or_default(),
        started: when(tr, w.started_at),
        ends,
        reviewed: w.reviewed_at.map(|t| when(tr, t)).unwrap_or_default(),
        reviewed_by: w.reviewed_by.unwrap_or_default(),
        note: w.review_note.unwrap_or_default(),
        context: w.context.unwrap_or_default(),
        requested_by: w
            .requested_by
            .unwrap_or_else(|| tr.t("console-requested-on-account-page")),
        id: w.id,
        user_id: w.user_id,
        username: w.username,
        reason: w.reason,
    }
}

#[derive(Deserialize)]
struct ReviewForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    note: String,
}

/// Signs one window off. Refusals (a bad note, one's own window, one signed off
/// already) are pages saying so; nothing changes.
#[post("/admin/emergency/{id}/review")]
pub(super) async fn review(path: Path<String>, form: Form<ReviewForm>, visit: Visit) -> Answer {
    let form = form.into_inner();
    let console = inside!(visit.enter_form(&form.csrf).await?);
    let (by, tr) = (visit.by(&console), console.tr());
    let window = emergency_service::window(by.state, by.who, Action::Support, &path)
        .await
        .said(&tr)?;
    let note = ReviewNote::parse(&form.note).map_err(|_| {
        AppError::BadRequest(if form.note.trim().is_empty() {
            tr.t("console-review-note-missing")
        } else {
            tr.n("console-review-note-invalid", "max", ReviewNote::MAX_CHARS)
        })
    })?;
    emergency_service::sign_off(by, &window, &note)
        .await
        .said(&tr)?;
    Ok(see_other("/admin/emergency?done=reviewed"))
}
