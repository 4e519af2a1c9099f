//! Finding a user, their page, and what support can do for them.

// The console's pages share its entry, navigation, notices and helpers.
use super::*;
use crate::admin::service::emergency as emergency_service;
use crate::admin::service::fhir_servers::{self as fhir_service, FhirUser};
use crate::admin::service::passkeys as passkey_service;
use crate::domain::UserStatus;
use crate::i18n::Tr;
use crate::store::users::UserOrder;

use super::dashboard::{Dashboard, dashboard};
use super::table::{Column, Dir, Heading, PAGE_SIZE, Pager, Sorting, page_asked};

struct UserSummary {
    id: String,
    username: String,
    email: String,
    org: String,
    role: String,
    status: String,
    locked: bool,
    mfa: bool,
}

/// A user's status for people.
fn status_name(status: UserStatus) -> Id {
    match status {
        UserStatus::Active => Id("console-status-active"),
        UserStatus::Disabled => Id("console-status-disabled"),
        UserStatus::Invited => Id("console-status-invited"),
    }
}

struct OrgLink {
    id: String,
    display_name: String,
    name: String,
}

#[derive(Template)]
#[template(path = "admin/home.html")]
struct HomePage {
    nav: Nav,
    tr: Tr,
    dashboard: Dashboard,
    q: String,
    searched: bool,
    results: Vec<UserSummary>,
    /// The results' column headings, the sortable ones with their links.
    headings: Vec<Heading>,
    /// `N users match`.
    found: String,
    pager: Pager,
    orgs: Vec<OrgLink>,
}

/// The columns the search results sort by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UserColumn {
    Username,
    Organisation,
    Role,
    Status,
}

impl Column for UserColumn {
    const ALL: &'static [Self] = &[Self::Username, Self::Organisation, Self::Role, Self::Status];

    fn key(self) -> &'static str {
        match self {
            Self::Username => "username",
            Self::Organisation => "org",
            Self::Role => "role",
            Self::Status => "status",
        }
    }

    fn first(self) -> Dir {
        Dir::Asc
    }
}

impl UserColumn {
    fn order(self) -> UserOrder {
        match self {
            Self::Username => UserOrder::Username,
            Self::Organisation => UserOrder::Organisation,
            Self::Role => UserOrder::Role,
            Self::Status => UserOrder::Status,
        }
    }
}

/// The search and how its results are shown. Every field is text: whatever a query
/// says that is no column, direction or page is the default.
#[derive(Deserialize)]
struct SearchQuery {
    q: Option<String>,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    dir: String,
    #[serde(default)]
    page: String,
}

#[get("/admin")]
pub(super) async fn home(query: Query<SearchQuery>, visit: Visit) -> Answer {
    let console = inside!(visit.enter().await?);
    let tr = console.tr();
    console.who.require(Action::Read).said(&tr)?;
    let query = query.into_inner();
    let q = query.q.unwrap_or_default().trim().to_owned();
    if q.chars().count() > MAX_INPUT {
        let refusal = tr.n("console-search-too-long", "max", MAX_INPUT);
        return Err(AppError::BadRequest(refusal).into());
    }
    let sorting = Sorting::<UserColumn>::asked(&query.sort, &query.dir);
    let dashboard = dashboard(&visit.state, &console).await?;
    let visible: Vec<OrgRow> = visit
        .state
        .store
        .run(orgs::list)
        .await?
        .into_iter()
        .filter(|o| console.who.sees_org(&o.id))
        .collect();
    // The query of the search in `sorting`, as the page's links carry it.
    let base = || {
        let mut out = url::form_urlencoded::Serializer::new(String::new());
        out.append_pair("q", &q);
        out
    };
    let (results, found, pager) = if q.is_empty() {
        (Vec::new(), String::new(), Pager::default())
    } else {
        let asked = page_asked(&query.page);
        let by = visit.by(&console);
        let (results, page) = search(by, &tr, &visible, &q, sorting, asked).await?;
        let pager = Pager::numbered(&tr, page.page, page.pages, |n| {
            let mut link = base();
            sorting.append(&mut link);
            if n > 1 {
                link.append_pair("page", &n.to_string());
            }
            format!("/admin?{}", link.finish())
        });
        let found = tr.n(
            match page.more {
                true => "console-users-found-more",
                false => "console-users-found",
            },
            "count",
            usize::try_from(page.total).unwrap_or_default(),
        );
        (results, found, pager)
    };
    let heading = |id: Id, column: UserColumn| {
        Heading::sorting(&tr, tr.id(id), column, sorting, "/admin", base)
    };
    let headings = vec![
        heading(Id("username"), UserColumn::Username),
        Heading::plain(tr.t("email")),
        heading(Id("organisation"), UserColumn::Organisation),
        heading(Id("role"), UserColumn::Role),
        heading(Id("console-status"), UserColumn::Status),
        Heading::plain(tr.t("console-sign-in")),
        Heading::plain(tr.t("console-two-step")),
    ];
    let page = HomePage {
        nav: console.nav(),
        dashboard,
        searched: !q.is_empty(),
        q,
        results,
        headings,
        found,
        pager,
        orgs: visible
            .into_iter()
            .map(|o| OrgLink {
                id: o.id,
                display_name: o.display_name,
                name: o.name,
            })
            .collect(),
        tr,
    };
    Ok(render(&page, StatusCode::OK))
}

/// One page of the users of `visible` organisations whose username contains `q`, or
/// whose address is `q` (any case; sealed addresses are matched whole), in `sorting`.
async fn search(
    by: Acting<'_>,
    tr: &Tr,
    visible: &[OrgRow],
    q: &str,
    sorting: Sorting<UserColumn>,
    page: i64,
) -> Result<(Vec<UserSummary>, user_service::SearchPage), AppError> {
    let state = by.state;
    let org_names: HashMap<String, String> = visible
        .iter()
        .map(|o| (o.id.clone(), o.display_name.clone()))
        .collect();
    let org_ids: Vec<String> = visible.iter().map(|o| o.id.clone()).collect();
    let now = state.clock.now().naive_utc();
    let order = sorting.column.order();
    let descending = sorting.dir == Dir::Desc;
    let mut found = user_service::search_page(by, org_ids, q, order, descending, page, PAGE_SIZE)
        .await
        .said(tr)?;
    let matches = std::mem::take(&mut found.users);
    let states = state
        .store
        .run(move |c| {
            let mut states = Vec::with_capacity(matches.len());
            for user in matches {
                let key = crate::auth::guard::login_key(&user.username);
                let locked =
                    crate::store::lockouts::find(c, &key)?.is_some_and(|l| l.is_locked(now));
                let mfa = totp::is_enrolled(c, &user.id)?;
                states.push((user, locked, mfa));
            }
            Ok(states)
        })
        .await?;
    let results = states
        .into_iter()
        .map(|(u, locked, mfa)| UserSummary {
            org: org_names.get(&u.org_id).cloned().unwrap_or_default(),
            role: tr.id(crate::pages::role_name(u.role())),
            status: tr.id(status_name(u.status())),
            id: u.id,
            username: u.username,
            email: u.email,
            locked,
            mfa,
        })
        .collect();
    Ok((results, found))
}

// ---------------------------------------------------------------------------------------
// One user: what state they are in, and what an administrator can do about it.

struct SessionRow {
    handle: String,
    created: String,
    last_seen: String,
    /// How the session signed in.
    acr: String,
    from: String,
}

#[derive(Template)]
#[template(path = "admin/user.html")]
struct UserPage {
    nav: Nav,
    tr: Tr,
    notice: Option<String>,
    user: UserRow,
    org: String,
    role: String,
    status: String,
    locked: bool,
    mfa: bool,
    sessions: Vec<SessionRow>,
    /// Unlock, force a reset, remove TOTP, end sessions.
    can_help: bool,
    /// `user=<username>`, for the link to their audit events.
    audit_query: String,
    /// When the user was designated for emergency access (DESIGN §15), if they are.
    emergency_since: Option<String>,
    /// May designate them or withdraw it (whoever may change the user, not themself).
    can_designate: bool,
    /// Their passkeys (DESIGN §17).
    passkeys: Vec<PasskeyRow>,
    /// Who they are on each FHIR server (`fhirUser`, DESIGN §18).
    fhir_users: Vec<FhirUser>,
    /// May set or remove those (whoever may change the user).
    can_manage: bool,
}

/// A passkey as the user page lists it.
struct PasskeyRow {
    id: String,
    name: String,
    kind: String,
    added: String,
    last_used: String,
}

#[get("/admin/users/{id}")]
pub(super) async fn user_page(path: Path<String>, query: Query<DoneQuery>, visit: Visit) -> Answer {
    let console = inside!(visit.enter().await?);
    let (who, tr) = (&console.who, console.tr());
    let user = user_service::show(visit.by(&console), &path)
        .await
        .said(&tr)?;
    let org_id = user.org_id.clone();
    let org = visit
        .state
        .store
        .run(move |c| orgs::find_by_id(c, &org_id))
        .await?
        .map(|o| o.display_name)
        .unwrap_or_default();
    let standing = user_service::standing(&visit.state, &user)
        .await
        .said(&tr)?;
    let sessions = session::list(
        visit.state.ephemeral.as_ref(),
        visit.state.clock.as_ref(),
        &user.id,
    )
    .await?
    .into_iter()
    .map(|s| SessionRow {
        created: when_secs(&tr, s.created_at),
        last_seen: when_secs(&tr, s.last_seen),
        acr: tr.id(if s.amr.iter().any(|m| m == "hwk" || m == "swk") {
            Id("console-with-passkey")
        } else if s.acr() == ACR_MFA {
            Id("console-with-password-and-code")
        } else {
            Id("console-with-password")
        }),
        from: s.opened_from(),
        handle: s.handle,
    })
    .collect();
    let can_help = who.require(Action::Support).is_ok() && who.may_act_on(&user).is_ok();
    let emergency_since = emergency_service::designation(&visit.state, &user)
        .await
        .said(&tr)?
        .map(|d| when(&tr, d.granted_at));
    let passkeys = passkey_service::list(visit.by(&console), &user)
        .await
        .said(&tr)?
        .into_iter()
        .map(|p| PasskeyRow {
            kind: tr.id(if p.synced {
                Id("console-passkey-synced")
            } else {
                Id("console-passkey-one-device")
            }),
            added: tr.datetime(p.created_at),
            last_used: p
                .last_used_at
                .map(|t| tr.datetime(t))
                .unwrap_or_else(|| tr.t("never")),
            id: p.id,
            name: p.name,
        })
        .collect();
    let fhir_users = fhir_service::user_references(visit.by(&console), &user)
        .await
        .said(&tr)?;
    let can_manage = who.require(Action::Manage).is_ok() && who.may_act_on(&user).is_ok();
    let can_designate = can_manage && user.id != who.actor;
    let page = UserPage {
        nav: console.nav(),
        notice: notice(&tr, query.done.as_deref()),
        org,
        role: tr.id(crate::pages::role_name(user.role())),
        status: tr.id(status_name(user.status())),
        locked: standing.locked,
        mfa: standing.mfa_enrolled,
        sessions,
        can_help,
        audit_query: url::form_urlencoded::Serializer::new(String::new())
            .append_pair("user", &user.username)
            .finish(),
        emergency_since,
        can_designate,
        passkeys,
        fhir_users,
        can_manage,
        user,
        tr,
    };
    Ok(render(&page, StatusCode::OK))
}

#[derive(Deserialize)]
struct SessionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    session: String,
}

enum UserAction {
    Unlock,
    ForceReset,
    RemoveTotp,
    RemovePasskey(String),
    EndSession(String),
    EndAll,
    GrantEmergency,
    WithdrawEmergency,
    SetFhirUser { server: String, fhir_user: String },
    ClearFhirUser(String),
}

/// One action on one user: enter with the form's CSRF token, find the user (404 when
/// not visible), act, and show the user page again with what happened.
async fn act_on_user(visit: &Visit, raw_id: &str, csrf: &str, action: UserAction) -> Answer {
    let console = inside!(visit.enter_form(csrf).await?);
    let tr = console.tr();
    let by = visit.by(&console);
    let user = user_service::find(by.state, by.who, Action::Read, raw_id)
        .await
        .said(&tr)?;
    if let UserAction::EndSession(handle) = &action
        && !user_service::is_session_handle(handle)
    {
        return Err(AppError::BadRequest(tr.t("unknown-session")).into());
    }
    let done = act(by, &user, action).await.said(&tr)?;
    Ok(see_other(&format!("/admin/users/{}?done={done}", user.id)))
}

/// Does `action` to `user`; says what was done, as the user page's `done`.
async fn act(
    by: Acting<'_>,
    user: &UserRow,
    action: UserAction,
) -> Result<&'static str, ServiceError> {
    Ok(match action {
        UserAction::Unlock => {
            if user_service::unlock(by, user).await? {
                "unlocked"
            } else {
                "not-locked"
            }
        }
        UserAction::ForceReset => {
            user_service::force_reset(by, user).await?;
            "reset"
        }
        UserAction::RemoveTotp => {
            if user_service::remove_totp(by, user).await? {
                "totp-removed"
            } else {
                "no-totp"
            }
        }
        UserAction::RemovePasskey(id) => {
            passkey_service::remove(by, user, &id).await?;
            "passkey-removed"
        }
        UserAction::EndSession(handle) => {
            user_service::end_session(by, user, &handle).await?;
            "session-ended"
        }
        UserAction::EndAll => {
            user_service::end_all_sessions(by, user).await?;
            "sessions-ended"
        }
        UserAction::GrantEmergency => {
            if emergency_service::grant(by, user).await? {
                "emergency-granted"
            } else {
                "emergency-already"
            }
        }
        UserAction::SetFhirUser { server, fhir_user } => {
            fhir_service::set_user_reference(by, user, &server, &fhir_user).await?;
            "fhir-user-set"
        }
        UserAction::ClearFhirUser(server) => {
            fhir_service::clear_user_reference(by, user, &server).await?;
            "fhir-user-cleared"
        }
        UserAction::WithdrawEmergency => {
            if emergency_service::withdraw(by, user).await? {
                "emergency-withdrawn"
            } else {
                "emergency-not-designated"
            }
        }
    })
}

/// Unlock, force a reset, remove the second factor, designate for emergency access or
/// withdraw it: `/admin/users/{id}/{action}`.
#[post("/admin/users/{id}/{action}")]
pub(super) async fn help_user(
    path: Path<(String, String)>,
    form: Form<CsrfForm>,
    visit: Visit,
) -> Answer {
    let (id, action) = path.into_inner();
    let action = match action.as_str() {
        "unlock" => UserAction::Unlock,
        "force-reset" => UserAction::ForceReset,
        "remove-totp" => UserAction::RemoveTotp,
        "emergency-grant" => UserAction::GrantEmergency,
        "emergency-withdraw" => UserAction::WithdrawEmergency,
        _ => return Err(AppError::NotFound.into()),
    };
    act_on_user(&visit, &id, &form.csrf, action).await
}

#[post("/admin/users/{id}/sessions/end")]
pub(super) async fn end_session(
    path: Path<String>,
    form: Form<SessionForm>,
    visit: Visit,
) -> Answer {
    let form = form.into_inner();
    let action = UserAction::EndSession(form.session);
    act_on_user(&visit, &path, &form.csrf, action).await
}

#[derive(Deserialize)]
struct PasskeyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    passkey: String,
}

#[post("/admin/users/{id}/passkeys/remove")]
pub(super) async fn remove_passkey(
    path: Path<String>,
    form: Form<PasskeyForm>,
    visit: Visit,
) -> Answer {
    let form = form.into_inner();
    let action = UserAction::RemovePasskey(form.passkey);
    act_on_user(&visit, &path, &form.csrf, action).await
}

#[derive(Deserialize)]
struct FhirUserForm {
    #[serde(default)]
    csrf: String,
    /// The FHIR server's base URL (or id).
    #[serde(default)]
    server: String,
    #[serde(default)]
    fhir_user: String,
}

/// Sets (`set`) or removes (`clear`) the user's FHIR resource on one server.
#[post("/admin/users/{id}/fhir-users/{change}")]
pub(super) async fn change_fhir_user(
    path: Path<(String, String)>,
    form: Form<FhirUserForm>,
    visit: Visit,
) -> Answer {
    let (id, change) = path.into_inner();
    let form = form.into_inner();
    let action = match change.as_str() {
        "set" => UserAction::SetFhirUser {
            server: form.server,
            fhir_user: form.fhir_user,
        },
        "clear" => UserAction::ClearFhirUser(form.server),
        _ => return Err(AppError::NotFound.into()),
    };
    act_on_user(&visit, &id, &form.csrf, action).await
}

#[post("/admin/users/{id}/sessions/end-all")]
pub(super) async fn end_all_sessions(
    path: Path<String>,
    form: Form<CsrfForm>,
    visit: Visit,
) -> Answer {
    act_on_user(&visit, &path, &form.csrf, UserAction::EndAll).await
}
