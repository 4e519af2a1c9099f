//! The admin API's endpoints. Every handler resolves the caller first, checks the role
//! for the action, and answers 404 for anything in an organisation it cannot see.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Action, ApiError, Caller, caller, json_body};
use crate::{
    audit::{AuditEvent, AuditFilter, EventType, Outcome},
    auth::{
        guard::login_key,
        recovery::{self, Admin, AdminError, NewInvitation},
        session,
    },
    domain::{Email, OrgName, OrgPolicy, Role, UserStatus, Username},
    oidc::logout,
    startup::AppState,
    store::{ip_blocks, lockouts, orgs, totp, users},
    web::RequestContext,
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/users", web::get().to(list_users))
        .route("/users", web::post().to(invite_user))
        .route("/users/{id}", web::get().to(show_user))
        .route("/users/{id}/unlock", web::post().to(unlock_user))
        .route("/users/{id}/force-reset", web::post().to(force_reset_user))
        .route("/users/{id}/remove-totp", web::post().to(remove_totp))
        .route("/users/{id}/disable", web::post().to(disable_user))
        .route("/users/{id}/enable", web::post().to(enable_user))
        .route("/users/{id}/role", web::put().to(set_role))
        .route("/users/{id}/sessions", web::get().to(list_sessions))
        .route("/users/{id}/sessions", web::delete().to(end_sessions))
        .route("/orgs", web::get().to(list_orgs))
        .route("/orgs/{id}", web::get().to(show_org))
        .route("/orgs/{id}/policy", web::put().to(set_policy))
        .route("/orgs/{id}/force-reset", web::post().to(force_reset_org))
        .route("/ip-blocks", web::get().to(list_ip_blocks))
        .route("/ip-blocks/{ip}", web::delete().to(unblock_ip))
        .route("/audit", web::get().to(query_audit));
}

/// A user as administrators see it: never a hash or a secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub org_id: String,
    pub username: String,
    pub email: String,
    pub display_name: Option<String>,
    /// `user`, `support`, `org_admin`, `super_admin`.
    pub role: String,
    /// `active`, `disabled`, `invited`.
    pub status: String,
    pub must_change_password: bool,
    pub mfa_enrolled: bool,
    /// Sign-in is locked for this username (temporarily or until unlocked).
    pub locked: bool,
    pub created_at: DateTime<Utc>,
}

async fn view(state: &AppState, user: users::UserRow) -> Result<UserView, ApiError> {
    let (id, key) = (user.id.clone(), login_key(&user.username));
    let now = state.clock.now().naive_utc();
    let (mfa, locked) = state
        .store
        .run(move |c| {
            let mfa = totp::is_enrolled(c, &id)?;
            let locked = lockouts::find(c, &key)?
                .is_some_and(|l| l.permanent || l.locked_until.is_some_and(|t| t > now));
            Ok((mfa, locked))
        })
        .await?;
    Ok(UserView {
        id: user.id,
        org_id: user.org_id,
        username: user.username,
        email: user.email,
        display_name: user.display_name,
        role: user.role,
        status: user.status,
        must_change_password: user.must_change_password,
        mfa_enrolled: mfa,
        locked,
        created_at: user.created_at.and_utc(),
    })
}

/// A path id that cannot be ours is simply not found.
fn path_id(raw: &str) -> Result<String, ApiError> {
    if raw.is_empty()
        || raw.len() > 64
        || !raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(ApiError::NotFound);
    }
    Ok(raw.to_owned())
}

async fn load_user(
    state: &AppState,
    who: &Caller,
    raw_id: &str,
) -> Result<users::UserRow, ApiError> {
    let id = path_id(raw_id)?;
    let user = state.store.run(move |c| users::find_by_id(c, &id)).await?;
    who.visible_user(user)
}

fn admin<'a>(who: &'a Caller, ctx: &'a RequestContext) -> Admin<'a> {
    Admin {
        actor: &who.actor,
        request: Some(ctx),
    }
}

fn from_admin(e: AdminError) -> ApiError {
    match e {
        AdminError::NoSuchUser(_) | AdminError::NoSuchOrg(_) => ApiError::NotFound,
        AdminError::NotActive(..) | AdminError::Exists(_) => ApiError::Conflict(e.to_string()),
        AdminError::App(a) => ApiError::App(a),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    /// Organisation id; default: the caller's own.
    pub org: Option<String>,
    /// Part of a username or email address.
    pub q: Option<String>,
}

#[utoipa::path(get, path = "/admin/api/v1/users", params(UserQuery),
    responses((status = 200, body = Vec<UserView>), (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_users(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<UserQuery>,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Read)?;
    let org = match (&query.org, &who.org_id) {
        (Some(o), _) => path_id(o)?,
        (None, Some(own)) => own.clone(),
        (None, None) => {
            return Err(ApiError::BadRequest(
                "org: required for service clients".into(),
            ));
        }
    };
    if !who.sees_org(&org) {
        return Err(ApiError::NotFound);
    }
    let needle = query.q.as_deref().map(str::to_lowercase);
    if needle.as_ref().is_some_and(|n| n.len() > 256) {
        return Err(ApiError::BadRequest("q: at most 256 characters".into()));
    }
    let members = state
        .store
        .run(move |c| users::list_by_org(c, &org))
        .await?;
    let mut out = Vec::new();
    for user in members {
        let matches = needle.as_ref().is_none_or(|n| {
            user.username.to_lowercase().contains(n.as_str())
                || user.email.to_lowercase().contains(n.as_str())
        });
        if matches {
            out.push(view(&state, user).await?);
        }
    }
    Ok(HttpResponse::Ok().json(out))
}

#[utoipa::path(get, path = "/admin/api/v1/users/{id}", params(("id" = String, Path)),
    responses((status = 200, body = UserView), (status = 404, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn show_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Read)?;
    let user = load_user(&state, &who, &path).await?;
    Ok(HttpResponse::Ok().json(view(&state, user).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteBody {
    /// Organisation name.
    pub org: String,
    pub username: String,
    pub email: String,
    pub display_name: Option<String>,
    /// Default `user`.
    pub role: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationView {
    pub id: String,
    pub username: String,
    pub email: String,
    pub org: String,
    pub role: String,
    pub expires_at: DateTime<Utc>,
    pub reissued: bool,
}

fn parse_role(raw: &str, field: &str) -> Result<Role, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "{field}: one of user, support, org_admin, super_admin"
        ))
    })
}

/// Whether `who` may hand out `role`: nobody grants more than they have.
fn may_grant(who: &Caller, role: Role) -> Result<(), ApiError> {
    let ok = match who.role {
        Role::SuperAdmin => true,
        Role::OrgAdmin => role != Role::SuperAdmin,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::Forbidden("you cannot grant this role"))
    }
}

/// Creates a user by invitation: Gatehouse never accepts a password over the API; the
/// user chooses one from the mailed link.
#[utoipa::path(post, path = "/admin/api/v1/users", request_body = InviteBody,
    responses((status = 201, body = InvitationView), (status = 400, body = super::ErrorBody), (status = 409, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn invite_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Manage)?;
    let body: InviteBody = json_body(&req, &body)?;
    let org = OrgName::parse(&body.org).map_err(|e| ApiError::BadRequest(format!("org: {e}")))?;
    let username = Username::parse(&body.username)
        .map_err(|e| ApiError::BadRequest(format!("username: {e}")))?;
    let email =
        Email::parse(&body.email).map_err(|e| ApiError::BadRequest(format!("email: {e}")))?;
    if body
        .display_name
        .as_ref()
        .is_some_and(|d| d.chars().count() > 200)
    {
        return Err(ApiError::BadRequest(
            "display_name: at most 200 characters".into(),
        ));
    }
    let role = match &body.role {
        Some(r) => parse_role(r, "role")?,
        None => Role::User,
    };
    may_grant(&who, role)?;
    let lookup = org.clone();
    let org_row = state
        .store
        .run(move |c| orgs::find_by_name(c, &lookup))
        .await?
        .filter(|o| who.sees_org(&o.id))
        .ok_or(ApiError::NotFound)?;
    let invitation = recovery::invite(
        &state,
        admin(&who, &ctx),
        NewInvitation {
            org: OrgName::parse(&org_row.name).map_err(|e| ApiError::BadRequest(e.to_string()))?,
            username,
            email,
            display_name: body.display_name,
            role,
        },
    )
    .await
    .map_err(from_admin)?;
    Ok(HttpResponse::Created().json(InvitationView {
        id: invitation.id,
        username: invitation.username,
        email: invitation.email,
        org: invitation.org,
        role: invitation.role,
        expires_at: invitation.expires_at,
        reissued: invitation.reissued,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Done {
    /// Whether anything changed (false: it already was so).
    pub changed: bool,
}

#[utoipa::path(post, path = "/admin/api/v1/users/{id}/unlock", params(("id" = String, Path)),
    responses((status = 200, body = Done), (status = 404, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn unlock_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Support)?;
    let user = load_user(&state, &who, &path).await?;
    who.may_act_on(&user)?;
    let key = login_key(&user.username);
    let changed = state.store.run(move |c| lockouts::unlock(c, &key)).await?;
    state
        .audit
        .record(
            AuditEvent::new(EventType::AccountUnlocked, Outcome::Success)
                .request(&ctx)
                .actor(&who.actor)
                .subject(&user.id)
                .org(&user.org_id)
                .detail("was_locked", changed),
        )
        .await?;
    Ok(HttpResponse::Ok().json(Done { changed }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ForcedResetView {
    pub username: String,
    pub sessions_ended: usize,
}

#[utoipa::path(post, path = "/admin/api/v1/users/{id}/force-reset", params(("id" = String, Path)),
    responses((status = 200, body = ForcedResetView), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn force_reset_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Support)?;
    let user = load_user(&state, &who, &path).await?;
    who.may_act_on(&user)?;
    let done = recovery::force_reset(&state, admin(&who, &ctx), &user)
        .await
        .map_err(from_admin)?;
    Ok(HttpResponse::Ok().json(ForcedResetView {
        username: done.username,
        sessions_ended: done.sessions_ended,
    }))
}

#[utoipa::path(post, path = "/admin/api/v1/users/{id}/remove-totp", params(("id" = String, Path)),
    responses((status = 200, body = Done), (status = 404, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn remove_totp(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Support)?;
    let user = load_user(&state, &who, &path).await?;
    who.may_act_on(&user)?;
    let changed = crate::auth::totp::remove(&state, &user.id, true).await?;
    if changed {
        state
            .audit
            .record(
                AuditEvent::new(EventType::MfaRemoved, Outcome::Success)
                    .request(&ctx)
                    .actor(&who.actor)
                    .subject(&user.id)
                    .org(&user.org_id),
            )
            .await?;
    }
    Ok(HttpResponse::Ok().json(Done { changed }))
}

async fn set_status(
    state: &AppState,
    req: &HttpRequest,
    ctx: &RequestContext,
    raw_id: &str,
    status: UserStatus,
) -> Result<HttpResponse, ApiError> {
    let who = caller(state, req).await?;
    who.require(Action::Manage)?;
    let user = load_user(state, &who, raw_id).await?;
    who.may_act_on(&user)?;
    if user.id == who.actor {
        return Err(ApiError::Conflict(
            "you cannot change your own status".into(),
        ));
    }
    if user.status() == UserStatus::Invited {
        return Err(ApiError::Conflict(
            "the user has not accepted the invitation".into(),
        ));
    }
    let changed = user.status() != status;
    if changed {
        let (id, now) = (user.id.clone(), state.clock.now().naive_utc());
        state
            .store
            .run(move |c| users::set_status(c, &id, status, now))
            .await?;
        if status == UserStatus::Disabled {
            logout::end_all_sessions(state, &user.id, None).await?;
        }
        let event = if status == UserStatus::Disabled {
            EventType::UserDisabled
        } else {
            EventType::UserEnabled
        };
        state
            .audit
            .record(
                AuditEvent::new(event, Outcome::Success)
                    .request(ctx)
                    .actor(&who.actor)
                    .subject(&user.id)
                    .org(&user.org_id),
            )
            .await?;
    }
    Ok(HttpResponse::Ok().json(Done { changed }))
}

/// Disables the user: sign-in refused, every session ended, every grant revoked.
#[utoipa::path(post, path = "/admin/api/v1/users/{id}/disable", params(("id" = String, Path)),
    responses((status = 200, body = Done), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn disable_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_status(&state, &req, &ctx, &path, UserStatus::Disabled).await
}

#[utoipa::path(post, path = "/admin/api/v1/users/{id}/enable", params(("id" = String, Path)),
    responses((status = 200, body = Done), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn enable_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_status(&state, &req, &ctx, &path, UserStatus::Active).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    /// `user`, `support`, `org_admin`, `super_admin`.
    pub role: String,
}

#[utoipa::path(put, path = "/admin/api/v1/users/{id}/role", params(("id" = String, Path)), request_body = RoleBody,
    responses((status = 200, body = Done), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn set_role(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Manage)?;
    let user = load_user(&state, &who, &path).await?;
    who.may_act_on(&user)?;
    let body: RoleBody = json_body(&req, &body)?;
    let role = parse_role(&body.role, "role")?;
    may_grant(&who, role)?;
    if user.id == who.actor {
        return Err(ApiError::Conflict("you cannot change your own role".into()));
    }
    let changed = user.role() != role;
    if changed {
        let (id, now) = (user.id.clone(), state.clock.now().naive_utc());
        state
            .store
            .run(move |c| users::set_role(c, &id, role, now))
            .await?;
        state
            .audit
            .record(
                AuditEvent::new(EventType::UserUpdated, Outcome::Success)
                    .request(&ctx)
                    .actor(&who.actor)
                    .subject(&user.id)
                    .org(&user.org_id)
                    .detail("role", role.as_str())
                    .detail("previous_role", user.role().as_str()),
            )
            .await?;
    }
    Ok(HttpResponse::Ok().json(Done { changed }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// The handle to end it by.
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// `urn:gatehouse:acr:pwd` or `urn:gatehouse:acr:mfa`.
    pub acr: String,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
}

#[utoipa::path(get, path = "/admin/api/v1/users/{id}/sessions", params(("id" = String, Path)),
    responses((status = 200, body = Vec<SessionView>), (status = 404, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn list_sessions(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Read)?;
    let user = load_user(&state, &who, &path).await?;
    let live = session::list(state.ephemeral.as_ref(), state.clock.as_ref(), &user.id).await?;
    let at = |t: i64| DateTime::<Utc>::from_timestamp(t, 0).unwrap_or_default();
    let out: Vec<SessionView> = live
        .into_iter()
        .map(|s| SessionView {
            acr: s.acr().to_owned(),
            id: s.handle,
            created_at: at(s.created_at),
            last_seen: at(s.last_seen),
            client_ip: s.client_ip,
            user_agent: s.user_agent,
        })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Ended {
    pub sessions_ended: usize,
}

/// Ends every session of the user (and revokes their tokens, with back-channel logout).
#[utoipa::path(delete, path = "/admin/api/v1/users/{id}/sessions", params(("id" = String, Path)),
    responses((status = 200, body = Ended), (status = 404, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn end_sessions(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Support)?;
    let user = load_user(&state, &who, &path).await?;
    who.may_act_on(&user)?;
    let ended = logout::end_all_sessions(&state, &user.id, None).await?;
    state
        .audit
        .record(
            AuditEvent::new(EventType::SessionEnded, Outcome::Success)
                .request(&ctx)
                .actor(&who.actor)
                .subject(&user.id)
                .org(&user.org_id)
                .detail("reason", "revoked")
                .detail("sessions_ended", ended),
        )
        .await?;
    Ok(HttpResponse::Ok().json(Ended {
        sessions_ended: ended,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgView {
    pub id: String,
    pub name: String,
    pub display_name: String,
    /// The organisation's policy document (password, lockout, mfa, support_email,
    /// session_idle_secs, session_absolute_secs).
    #[schema(value_type = Object)]
    pub policy: OrgPolicy,
}

fn org_view(org: orgs::OrgRow) -> OrgView {
    OrgView {
        policy: org.policy(),
        id: org.id,
        name: org.name,
        display_name: org.display_name,
    }
}

#[utoipa::path(get, path = "/admin/api/v1/orgs",
    responses((status = 200, body = Vec<OrgView>), (status = 401, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn list_orgs(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Read)?;
    let all = state.store.run(orgs::list).await?;
    let out: Vec<OrgView> = all
        .into_iter()
        .filter(|o| who.sees_org(&o.id))
        .map(org_view)
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

async fn load_org(state: &AppState, who: &Caller, raw_id: &str) -> Result<orgs::OrgRow, ApiError> {
    let id = path_id(raw_id)?;
    state
        .store
        .run(move |c| orgs::find_by_id(c, &id))
        .await?
        .filter(|o| who.sees_org(&o.id))
        .ok_or(ApiError::NotFound)
}

#[utoipa::path(get, path = "/admin/api/v1/orgs/{id}", params(("id" = String, Path)),
    responses((status = 200, body = OrgView), (status = 404, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn show_org(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Read)?;
    Ok(HttpResponse::Ok().json(org_view(load_org(&state, &who, &path).await?)))
}

/// Replaces the organisation's policy. Fields left out take their defaults; unknown
/// fields are refused.
#[utoipa::path(put, path = "/admin/api/v1/orgs/{id}/policy", params(("id" = String, Path)),
    request_body(content = Object, description = "an OrgPolicy document"),
    responses((status = 200, body = OrgView), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn set_policy(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Manage)?;
    let org = load_org(&state, &who, &path).await?;
    let policy: OrgPolicy = json_body(&req, &body)?;
    policy
        .validate()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let (id, now, stored) = (
        org.id.clone(),
        state.clock.now().naive_utc(),
        policy.clone(),
    );
    state
        .store
        .run(move |c| orgs::set_policy(c, &id, &stored, now))
        .await?;
    state
        .audit
        .record(
            AuditEvent::new(EventType::AdminChange, Outcome::Success)
                .request(&ctx)
                .actor(&who.actor)
                .org(&org.id)
                .detail("object", "organisation_policy")
                .detail("change", "replaced"),
        )
        .await?;
    Ok(HttpResponse::Ok().json(OrgView {
        policy,
        ..org_view(org)
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgForcedResetView {
    pub org: String,
    pub reset: Vec<ForcedResetView>,
    pub skipped: Vec<String>,
}

#[utoipa::path(post, path = "/admin/api/v1/orgs/{id}/force-reset", params(("id" = String, Path)),
    responses((status = 200, body = OrgForcedResetView), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn force_reset_org(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Manage)?;
    let org = load_org(&state, &who, &path).await?;
    let name = OrgName::parse(&org.name).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let done = recovery::force_reset_org(&state, admin(&who, &ctx), &name)
        .await
        .map_err(from_admin)?;
    Ok(HttpResponse::Ok().json(OrgForcedResetView {
        org: done.org,
        reset: done
            .reset
            .into_iter()
            .map(|r| ForcedResetView {
                username: r.username,
                sessions_ended: r.sessions_ended,
            })
            .collect(),
        skipped: done.skipped,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IpBlockView {
    /// An IPv4 address or an IPv6 /64.
    pub ip: String,
    pub blocked_until: DateTime<Utc>,
    pub block_count: i32,
    pub reason: String,
}

#[utoipa::path(get, path = "/admin/api/v1/ip-blocks",
    responses((status = 200, body = Vec<IpBlockView>), (status = 403, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn list_ip_blocks(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Global)?;
    let now = state.clock.now().naive_utc();
    let rows = state
        .store
        .run(move |c| ip_blocks::list_active(c, now))
        .await?;
    let out: Vec<IpBlockView> = rows
        .into_iter()
        .map(|r| IpBlockView {
            ip: r.ip,
            blocked_until: r.blocked_until.and_utc(),
            block_count: r.block_count,
            reason: r.reason,
        })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

#[utoipa::path(delete, path = "/admin/api/v1/ip-blocks/{ip}", params(("ip" = String, Path, description = "as listed")),
    responses((status = 200, body = Done), (status = 403, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn unblock_ip(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Global)?;
    let ip = path.into_inner();
    if ip.len() > 64 {
        return Err(ApiError::NotFound);
    }
    let (key, now) = (ip.clone(), state.clock.now().naive_utc());
    let changed = state
        .store
        .run(move |c| ip_blocks::unblock(c, &key, now))
        .await?;
    if changed {
        state
            .audit
            .record(
                AuditEvent::new(EventType::IpUnblocked, Outcome::Success)
                    .request(&ctx)
                    .actor(&who.actor)
                    .detail("ip", ip.as_str()),
            )
            .await?;
    }
    Ok(HttpResponse::Ok().json(Done { changed }))
}

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
    responses((status = 200, description = "audit events, newest first", body = Vec<Object>), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn query_audit(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Read)?;
    let q = query.into_inner();
    let org_id = match (q.org, who.role) {
        (Some(o), _) => {
            let o = path_id(&o)?;
            if !who.sees_org(&o) {
                return Err(ApiError::NotFound);
            }
            Some(o)
        }
        (None, Role::SuperAdmin) => None,
        (None, _) => who.org_id.clone(),
    };
    let event_type = q
        .event_type
        .map(|t| {
            t.parse::<EventType>()
                .map_err(|_| ApiError::BadRequest("type: unknown event type".into()))
        })
        .transpose()?;
    let outcome = q
        .outcome
        .map(|o| {
            o.parse::<Outcome>()
                .map_err(|_| ApiError::BadRequest("outcome: success or failure".into()))
        })
        .transpose()?;
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
    let records = state
        .audit
        .query(filter, q.limit.unwrap_or(100), q.before)
        .await?;
    Ok(HttpResponse::Ok().json(records))
}
