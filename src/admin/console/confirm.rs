//! Confirmation of the console's destructive actions (issue 31), without JavaScript.
//!
//! The buttons for them are small `GET` forms to `/admin/confirm`: the page says what
//! will happen, to whom, in the administrator's language, and carries the real form —
//! the same `POST` to the same action, with the session's CSRF token — to a Confirm
//! button, beside a Cancel link back to where the administrator was. Nothing changes
//! until that form is sent; the actions themselves are as they were (a form posted to
//! one directly still acts, as the API's and the tests' do).
//!
//! The page checks what the action will: the role, the rank over the user, that the
//! user, session, passkey, server, link or block exists and is visible (else the same
//! 403 or 404 the action would give), so nobody is asked to confirm what would be
//! refused.

// The console's pages share its entry, navigation, notices and helpers.
use super::*;
use crate::admin::service::emergency as emergency_service;
use crate::admin::service::fhir_servers as fhir_service;
use crate::admin::service::passkeys as passkey_service;
use crate::admin::service::upstream as upstream_service;
use crate::i18n::Tr;

/// What a button asks to confirm: the action, and whatever names its object.
#[derive(Deserialize)]
pub(super) struct ConfirmQuery {
    #[serde(default)]
    action: String,
    /// A user id.
    #[serde(default)]
    user: String,
    /// A session handle of the user.
    #[serde(default)]
    session: String,
    /// A passkey id of the user.
    #[serde(default)]
    passkey: String,
    /// A FHIR server id, for the user's resource on it.
    #[serde(default)]
    server: String,
    /// A FHIR server id, to remove it.
    #[serde(default)]
    id: String,
    #[serde(default)]
    ip: String,
    /// A connector (identity provider) id.
    #[serde(default)]
    connector: String,
    /// An upstream identity linked through the connector.
    #[serde(default)]
    subject: String,
    /// An organisation id, for its logo.
    #[serde(default)]
    org: String,
}

/// What the page asks, and the form that does it.
struct Confirmation {
    /// The question (`End every session of vic?`).
    title: String,
    /// What will happen.
    what: String,
    /// Where the form posts: the action's own address.
    action: String,
    /// The form's fields besides the CSRF token.
    fields: Vec<(&'static str, String)>,
    /// Where Cancel goes back to.
    back: String,
}

#[derive(Template)]
#[template(path = "admin/confirm.html")]
struct ConfirmPage {
    nav: Nav,
    tr: Tr,
    /// The action's name, for the form's id.
    kind: String,
    title: String,
    what: String,
    action: String,
    fields: Vec<(&'static str, String)>,
    back: String,
}

#[get("/admin/confirm")]
pub(super) async fn confirm_page(query: Query<ConfirmQuery>, visit: Visit) -> Answer {
    let console = inside!(visit.enter().await?);
    let q = query.into_inner();
    let confirmation = match q.action.as_str() {
        "end-all-sessions" | "end-session" | "force-reset" | "remove-totp" | "remove-passkey"
        | "clear-fhir-user" | "emergency-withdraw" => on_user(&visit, &console, &q).await?,
        "delete-connector" | "remove-link" => on_connector(&visit, &console, &q).await?,
        "delete-fhir-server" => fhir_server(&visit, &console, &q).await?,
        "lift-ip-block" => ip_block(&visit, &console, &q).await?,
        "remove-logo" => logo(&visit, &console, &q).await?,
        _ => return Err(AppError::NotFound.into()),
    };
    let page = ConfirmPage {
        nav: console.nav(),
        tr: console.tr(),
        kind: q.action,
        title: confirmation.title,
        what: confirmation.what,
        action: confirmation.action,
        fields: confirmation.fields,
        back: confirmation.back,
    };
    Ok(render(&page, StatusCode::OK))
}

/// An action on one user: found as the action finds them, with the role and rank it
/// needs; the look at them is recorded as any look at a user is.
async fn on_user(
    visit: &Visit,
    console: &Console,
    q: &ConfirmQuery,
) -> Result<Confirmation, PageError> {
    let (who, tr) = (&console.who, &console.tr);
    let state = &visit.state;
    let needs = match q.action.as_str() {
        "clear-fhir-user" | "emergency-withdraw" => Action::Manage,
        _ => Action::Support,
    };
    let user = user_service::find(state, who, needs, &q.user)
        .await
        .said(tr)?;
    who.may_act_on(&user).said(tr)?;
    let by = visit.by(console);
    user_service::viewed(by, &user).await.said(tr)?;
    let name = user.username.as_str();
    let path = format!("/admin/users/{}", user.id);
    let plain = |title: Id, what: Id, action: &str| Confirmation {
        title: tr.a(title.0, "user", name),
        what: tr.a(what.0, "user", name),
        action: format!("{path}/{action}"),
        fields: Vec::new(),
        back: path.clone(),
    };
    Ok(match q.action.as_str() {
        "end-all-sessions" => plain(
            Id("console-confirm-end-all-title"),
            Id("console-confirm-end-all-what"),
            "sessions/end-all",
        ),
        "force-reset" => plain(
            Id("console-confirm-force-reset-title"),
            Id("console-confirm-force-reset-what"),
            "force-reset",
        ),
        "remove-totp" => plain(
            Id("console-confirm-remove-totp-title"),
            Id("console-confirm-remove-totp-what"),
            "remove-totp",
        ),
        "emergency-withdraw" => {
            if user.id == who.actor {
                let own =
                    ServiceError::Conflict("you cannot change your own emergency access".into());
                return Err(refusal(tr, own).into());
            }
            emergency_service::designation(state, &user)
                .await
                .said(tr)?
                .ok_or(AppError::NotFound)?;
            plain(
                Id("console-confirm-emergency-withdraw-title"),
                Id("console-confirm-emergency-withdraw-what"),
                "emergency-withdraw",
            )
        }
        "end-session" => {
            let handle = q.session.trim();
            if !user_service::is_session_handle(handle) {
                return Err(AppError::NotFound.into());
            }
            let session = session::list(state.ephemeral.as_ref(), state.clock.as_ref(), &user.id)
                .await?
                .into_iter()
                .find(|s| s.handle == handle)
                .ok_or(AppError::NotFound)?;
            let started = when_secs(tr, session.created_at);
            let from = match session.opened_from() {
                from if from.is_empty() => tr.t("console-unknown-place"),
                from => from,
            };
            Confirmation {
                title: tr.a("console-confirm-end-session-title", "user", name),
                what: tr.with(
                    "console-confirm-end-session-what",
                    &[("user", name), ("started", &started), ("from", &from)],
                ),
                action: format!("{path}/sessions/end"),
                fields: vec![("session", session.handle)],
                back: path,
            }
        }
        "remove-passkey" => {
            let passkey = passkey_service::list(by, &user)
                .await
                .said(tr)?
                .into_iter()
                .find(|p| p.id == q.passkey.trim())
                .ok_or(AppError::NotFound)?;
            Confirmation {
                title: tr.a2(
                    "console-confirm-remove-passkey-title",
                    "name",
                    &passkey.name,
                    "user",
                    name,
                ),
                what: tr.a("console-confirm-remove-passkey-what", "user", name),
                action: format!("{path}/passkeys/remove"),
                fields: vec![("passkey", passkey.id)],
                back: path,
            }
        }
        "clear-fhir-user" => {
            let resource = fhir_service::user_references(by, &user)
                .await
                .said(tr)?
                .into_iter()
                .find(|f| f.fhir_server == q.server.trim())
                .ok_or(AppError::NotFound)?;
            Confirmation {
                title: tr.a2(
                    "console-confirm-clear-fhir-user-title",
                    "user",
                    name,
                    "server",
                    &resource.base_url,
                ),
                what: tr.with(
                    "console-confirm-clear-fhir-user-what",
                    &[
                        ("user", name),
                        ("server", &resource.base_url),
                        ("resource", &resource.fhir_user),
                    ],
                ),
                action: format!("{path}/fhir-users/clear"),
                fields: vec![("server", resource.fhir_server)],
                back: path,
            }
        }
        _ => return Err(AppError::NotFound.into()),
    })
}

/// Deleting an identity provider, or removing one link through it.
async fn on_connector(
    visit: &Visit,
    console: &Console,
    q: &ConfirmQuery,
) -> Result<Confirmation, PageError> {
    let (state, who, tr) = (&visit.state, &console.who, &console.tr);
    let connector = upstream_service::show_connector(state, who, &q.connector)
        .await
        .said(tr)?;
    let path = format!("/admin/connectors/{}", connector.id);
    let provider = connector.display_name.as_str();
    if q.action == "delete-connector" {
        return Ok(Confirmation {
            title: tr.a("console-confirm-delete-connector-title", "name", provider),
            what: tr.a("console-confirm-delete-connector-what", "name", provider),
            action: format!("{path}/delete"),
            fields: vec![("confirm", "on".to_owned())],
            back: path,
        });
    }
    let link = upstream_service::list_links(state, who, &connector.id)
        .await
        .said(tr)?
        .into_iter()
        .find(|l| l.subject == q.subject)
        .ok_or(AppError::NotFound)?;
    let (pii, user_id) = (state.pii.clone(), link.user_id.clone());
    let account = state
        .store
        .run(move |c| users::find_by_id(c, &pii, &user_id))
        .await?
        .map_or(link.user_id, |u| u.username);
    Ok(Confirmation {
        title: tr.a(
            "console-confirm-remove-link-title",
            "subject",
            &link.subject,
        ),
        what: tr.with(
            "console-confirm-remove-link-what",
            &[
                ("subject", &link.subject),
                ("provider", provider),
                ("user", &account),
            ],
        ),
        action: format!("{path}/links/remove"),
        fields: vec![("subject", link.subject)],
        back: path,
    })
}

/// Removing a registered FHIR server (a super administrator's).
async fn fhir_server(
    visit: &Visit,
    console: &Console,
    q: &ConfirmQuery,
) -> Result<Confirmation, PageError> {
    let tr = &console.tr;
    let server = fhir_service::show(&visit.state, &console.who, q.id.trim())
        .await
        .said(tr)?;
    Ok(Confirmation {
        title: tr.a(
            "console-confirm-delete-fhir-server-title",
            "name",
            &server.display_name,
        ),
        what: tr.a(
            "console-confirm-delete-fhir-server-what",
            "url",
            &server.base_url,
        ),
        action: "/admin/fhir-servers/delete".to_owned(),
        fields: vec![("id", server.id)],
        back: "/admin/fhir-servers".to_owned(),
    })
}

/// Removing an organisation's logo (its administrator's): there must be one.
async fn logo(
    visit: &Visit,
    console: &Console,
    q: &ConfirmQuery,
) -> Result<Confirmation, PageError> {
    let tr = &console.tr;
    let org = org_service::find(&visit.state, &console.who, Action::Manage, q.org.trim())
        .await
        .said(tr)?;
    let stored = org_service::branding(&visit.state, &org).await.said(tr)?;
    if stored.logo.is_none() {
        return Err(AppError::NotFound.into());
    }
    Ok(Confirmation {
        title: tr.a(
            "console-confirm-remove-logo-title",
            "name",
            &org.display_name,
        ),
        what: tr.t("console-confirm-remove-logo-what"),
        action: format!("/admin/orgs/{}/logo/remove", org.id),
        fields: Vec::new(),
        back: format!("/admin/orgs/{}/branding", org.id),
    })
}

/// Lifting an IP block in force (a super administrator's).
async fn ip_block(
    visit: &Visit,
    console: &Console,
    q: &ConfirmQuery,
) -> Result<Confirmation, PageError> {
    let tr = &console.tr;
    let block = network::blocks(&visit.state, &console.who)
        .await
        .said(tr)?
        .into_iter()
        .find(|b| b.ip == q.ip.trim())
        .ok_or(AppError::NotFound)?;
    let until = when(tr, block.blocked_until);
    Ok(Confirmation {
        title: tr.a("console-confirm-lift-title", "ip", &block.ip),
        what: tr.a2(
            "console-confirm-lift-what",
            "ip",
            &block.ip,
            "until",
            &until,
        ),
        action: "/admin/ip-blocks/lift".to_owned(),
        fields: vec![("ip", block.ip)],
        back: "/admin/ip-blocks".to_owned(),
    })
}
