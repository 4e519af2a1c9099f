//! The admin API's endpoints. Every handler resolves the caller first, checks the role
//! for the action, and answers 404 for anything in an organisation it cannot see.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use secrecy::{ExposeSecret, SecretString};

use super::{Action, ApiError, Caller, actions, caller, json_body};
use crate::{
    audit::{AuditEvent, AuditFilter, EventType, Outcome},
    auth::{
        account::{NewAccount, create_account_by},
        guard::login_key,
        recovery::{self, Admin, AdminError, NewInvitation},
        session,
    },
    domain::{DisplayName, Email, OrgName, OrgPolicy, Password, Role, UserStatus, Username},
    keys::rings,
    oidc::clients::{
        self as oidc_clients, AUTH_NONE, AUTH_PRIVATE_KEY_JWT, ClientError, ClientSpec,
    },
    saml::{
        providers::{self, ServiceProvider, SpError},
        xml::MAX_METADATA_BYTES,
    },
    startup::{AppState, keep_retired},
    store::{
        clients::{self, ClientRow},
        ip_allow, ip_blocks, lockouts, orgs, signing_keys, totp, users,
    },
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
        .route("/audit", web::get().to(query_audit))
        .route("/orgs", web::post().to(create_org))
        .route("/users/{id}/username", web::put().to(rename_user))
        .route(
            "/users/{id}/sessions/{session}",
            web::delete().to(end_one_session),
        )
        .route("/ip-allow-list", web::get().to(list_allowed))
        .route("/ip-allow-list", web::post().to(add_allowed))
        .route(
            "/ip-allow-list/{address}/{prefix}",
            web::delete().to(remove_allowed),
        )
        .route("/clients", web::get().to(list_clients))
        .route("/clients", web::post().to(create_client))
        .route("/clients/{client_id}", web::get().to(show_client))
        .route("/clients/{client_id}", web::put().to(update_client))
        .route("/clients/{client_id}", web::delete().to(delete_client))
        .route(
            "/clients/{client_id}/secret",
            web::post().to(rotate_client_secret),
        )
        .route("/saml-sps", web::get().to(list_sps))
        .service(
            // Metadata is XML inside JSON: up to 1 MiB of XML, escaped.
            web::resource("/saml-sps")
                .app_data(web::PayloadConfig::new(2 * MAX_METADATA_BYTES + 64 * 1024))
                .route(web::post().to(import_sp)),
        )
        .route("/saml-sps/{id}", web::get().to(show_sp))
        .route("/saml-sps/{id}", web::put().to(update_sp))
        .route("/saml-sps/{id}", web::delete().to(delete_sp))
        .route("/signing-keys", web::get().to(list_signing_keys))
        .route("/signing-keys/rotate", web::post().to(rotate_signing_keys));
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
    /// An initial password, checked against the organisation's policy: the account is
    /// active at once. Left out, the user is invited by mail to choose one.
    #[schema(value_type = Option<String>, format = Password)]
    pub password: Option<SecretString>,
    /// With a password: whether the user must choose a new one at first sign-in
    /// (default true, so only the user knows the password they sign in with).
    pub must_change_password: Option<bool>,
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

/// Creates a user: with `password`, an active account whose password obeys the
/// organisation's policy (like `gatehouse user create`); without, an invitation whose
/// mailed link lets the user choose one.
#[utoipa::path(post, path = "/admin/api/v1/users", request_body = InviteBody,
    responses((status = 201, body = CreatedUser), (status = 400, body = super::ErrorBody), (status = 409, body = super::ErrorBody)), security(("bearer" = [])))]
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
    let display_name = body
        .display_name
        .as_deref()
        .map(DisplayName::parse)
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("display_name: {e}")))?;
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
    if let Some(secret) = body.password {
        let password = Password::parse(secret.expose_secret().to_owned())
            .map_err(|e| ApiError::BadRequest(format!("password: {e}")))?;
        let new = NewAccount {
            org: OrgName::parse(&org_row.name).map_err(|e| ApiError::BadRequest(e.to_string()))?,
            username,
            email,
            display_name,
            role,
            password,
            must_change_password: body.must_change_password.unwrap_or(true),
        };
        return create_with_password(&state, &who, &ctx, new).await;
    }
    if body.must_change_password.is_some() {
        return Err(ApiError::BadRequest(
            "must_change_password: only with a password".into(),
        ));
    }
    let invitation = recovery::invite(
        &state,
        admin(&who, &ctx),
        NewInvitation {
            org: OrgName::parse(&org_row.name).map_err(|e| ApiError::BadRequest(e.to_string()))?,
            username,
            email,
            display_name,
            role,
        },
    )
    .await
    .map_err(from_admin)?;
    Ok(
        HttpResponse::Created().json(CreatedUser::Invitation(InvitationView {
            id: invitation.id,
            username: invitation.username,
            email: invitation.email,
            org: invitation.org,
            role: invitation.role,
            expires_at: invitation.expires_at,
            reissued: invitation.reissued,
        })),
    )
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
    let changed = actions::unlock(&state, &who, &ctx, &user).await?;
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
    let done = actions::force_reset(&state, &who, &ctx, &user).await?;
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
    let changed = actions::remove_totp(&state, &who, &ctx, &user).await?;
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
            session::end_every(state, &user.id, None).await?;
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
    let ended = actions::end_all_sessions(&state, &who, &ctx, &user).await?;
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
    actions::set_policy(&state, &who, &ctx, &org, policy.clone()).await?;
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
    // Everyone the caller could reset one by one; a super_admin, everyone.
    let spare_from = (who.role != Role::SuperAdmin).then_some(who.role);
    let done = recovery::force_reset_org(&state, admin(&who, &ctx), &name, spare_from)
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
    let changed = actions::lift_ip_block(&state, &who, &ctx, &path).await?;
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

// ---------------------------------------------------------------------------------------
// Organisations: creation.

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrgBody {
    /// a-z, 0-9 and -, 1 to 63 characters; never changes.
    pub name: String,
    /// 1 to 200 characters.
    pub display_name: String,
    /// The policy document (as in `PUT /orgs/{id}/policy`); default: the defaults.
    #[schema(value_type = Option<Object>)]
    pub policy: Option<OrgPolicy>,
}

/// Creates an organisation (super administrators only: organisations are global).
#[utoipa::path(post, path = "/admin/api/v1/orgs", request_body = NewOrgBody,
    responses((status = 201, body = OrgView), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody), (status = 409, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn create_org(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Global)?;
    let body: NewOrgBody = json_body(&req, &body)?;
    let name =
        OrgName::parse(&body.name).map_err(|e| ApiError::BadRequest(format!("name: {e}")))?;
    let display_name = body.display_name.trim().to_owned();
    if display_name.is_empty() || display_name.chars().count() > 200 {
        return Err(ApiError::BadRequest(
            "display_name: 1 to 200 characters".into(),
        ));
    }
    let policy = body.policy.unwrap_or_default();
    policy
        .validate()
        .map_err(|e| ApiError::BadRequest(format!("policy.{e}")))?;
    let now = state.clock.now().naive_utc();
    let org = state
        .store
        .transaction(move |c| {
            if orgs::find_by_name(c, &name)?.is_some() {
                return Err(crate::store::StoreError::Conflict);
            }
            orgs::insert(c, &name, &display_name, &policy, now)
        })
        .await
        .map_err(|e| match e {
            crate::store::StoreError::Conflict => {
                ApiError::Conflict("name: an organisation of that name exists".into())
            }
            other => other.into(),
        })?;
    state
        .audit
        .record(
            AuditEvent::new(EventType::AdminChange, Outcome::Success)
                .request(&ctx)
                .actor(&who.actor)
                .org(&org.id)
                .detail("object", "organisation")
                .detail("change", "created")
                .detail("name", org.name.as_str()),
        )
        .await?;
    Ok(HttpResponse::Created().json(org_view(org)))
}

// ---------------------------------------------------------------------------------------
// Users: creation with a password, rename, one session.

/// What `POST /users` created: an active account (a password was given) or an invitation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum CreatedUser {
    Account(UserView),
    Invitation(InvitationView),
}

async fn create_with_password(
    state: &AppState,
    who: &Caller,
    ctx: &RequestContext,
    new: NewAccount,
) -> Result<HttpResponse, ApiError> {
    use crate::auth::account::CreateAccountError as E;
    let user = create_account_by(state, new, Some(admin(who, ctx)))
        .await
        .map_err(|e| match e {
            E::NoSuchOrg(_) => ApiError::NotFound,
            E::Exists(_) => ApiError::Conflict("username: already taken".into()),
            E::Policy(rules) => ApiError::BadRequest(format!("password: {}", rules.join(" "))),
            E::App(a) => ApiError::App(a),
        })?;
    Ok(HttpResponse::Created().json(CreatedUser::Account(view(state, user).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsernameBody {
    pub username: String,
}

/// Renames a user (administrators only; users cannot rename themselves). Usernames are
/// unique across organisations, because the sign-in page asks for a username only.
#[utoipa::path(put, path = "/admin/api/v1/users/{id}/username", params(("id" = String, Path)), request_body = UsernameBody,
    responses((status = 200, body = Done), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn rename_user(
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
    let body: UsernameBody = json_body(&req, &body)?;
    let username = Username::parse(&body.username)
        .map_err(|e| ApiError::BadRequest(format!("username: {e}")))?;
    if username.as_str() == user.username {
        return Ok(HttpResponse::Ok().json(Done { changed: false }));
    }
    let (id, now, new_name) = (
        user.id.clone(),
        state.clock.now().naive_utc(),
        username.clone(),
    );
    // The lockout is keyed by name: it moves with the account, or a rename would lift it.
    let old_key = crate::auth::guard::login_key(&user.username);
    state
        .store
        .transaction(move |c| {
            users::rename(c, &id, &new_name, now)?;
            crate::store::lockouts::rename(c, &old_key, new_name.as_str())
        })
        .await
        .map_err(|e| match e {
            crate::store::StoreError::Conflict => {
                ApiError::Conflict("username: already taken".into())
            }
            other => other.into(),
        })?;
    state
        .audit
        .record(
            AuditEvent::new(EventType::UserUpdated, Outcome::Success)
                .request(&ctx)
                .actor(&who.actor)
                .subject(&user.id)
                .org(&user.org_id)
                .detail("username", username.as_str())
                .detail("previous_username", user.username.as_str()),
        )
        .await?;
    Ok(HttpResponse::Ok().json(Done { changed: true }))
}

/// Ends one session of the user (and revokes the tokens issued under it).
#[utoipa::path(delete, path = "/admin/api/v1/users/{id}/sessions/{session}",
    params(("id" = String, Path), ("session" = String, Path, description = "a session id from the list")),
    responses((status = 200, body = Ended), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn end_one_session(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Support)?;
    let (raw_user, handle) = path.into_inner();
    let user = load_user(&state, &who, &raw_user).await?;
    if !actions::end_session(&state, &who, &ctx, &user, &handle).await? {
        return Err(ApiError::NotFound);
    }
    Ok(HttpResponse::Ok().json(Ended { sessions_ended: 1 }))
}

// ---------------------------------------------------------------------------------------
// The guard's IP allow-list.

#[derive(Debug, Serialize, ToSchema)]
pub struct AllowEntryView {
    /// A network in CIDR form, host bits cleared (`10.20.0.0/16`, `2001:db8::/48`).
    pub cidr: String,
    pub note: String,
    /// The administrator who added it (user id or `client:<client_id>`).
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

fn allow_view(row: ip_allow::AllowRow) -> AllowEntryView {
    AllowEntryView {
        cidr: row.cidr,
        note: row.note,
        created_by: row.created_by,
        created_at: row.created_at.and_utc(),
    }
}

/// Networks never counted or blocked by the brute-force guard (the `ip_allow_list`
/// setting adds its own, not listed here).
#[utoipa::path(get, path = "/admin/api/v1/ip-allow-list",
    responses((status = 200, body = Vec<AllowEntryView>), (status = 403, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn list_allowed(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Global)?;
    let rows = state.store.run(ip_allow::list).await?;
    Ok(HttpResponse::Ok().json(rows.into_iter().map(allow_view).collect::<Vec<_>>()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllowBody {
    /// An address or a network: IPv4 /8 or narrower, IPv6 /32 or narrower.
    pub cidr: String,
    /// Why (up to 200 characters), e.g. "St Mary's outbound NAT".
    pub note: Option<String>,
}

/// The narrowest reading of an allow-list entry. A very wide network would switch the
/// guard off for a large part of the internet, so those are refused.
fn parse_allow(raw: &str) -> Result<ipnet::IpNet, String> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 64 {
        return Err("an address or a network in CIDR form".into());
    }
    let net = match raw.parse::<ipnet::IpNet>() {
        Ok(net) => net,
        Err(_) => raw
            .parse::<std::net::IpAddr>()
            .map(ipnet::IpNet::from)
            .map_err(|_| format!("{raw:?} is not an address or a network in CIDR form"))?,
    };
    let widest = match net {
        ipnet::IpNet::V4(_) => 8,
        ipnet::IpNet::V6(_) => 32,
    };
    if net.prefix_len() < widest {
        return Err(format!(
            "/{} is too wide (at most /{widest})",
            net.prefix_len()
        ));
    }
    Ok(net.trunc())
}

#[utoipa::path(post, path = "/admin/api/v1/ip-allow-list", request_body = AllowBody,
    responses((status = 201, body = AllowEntryView), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody), (status = 409, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn add_allowed(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Global)?;
    let body: AllowBody = json_body(&req, &body)?;
    let net = parse_allow(&body.cidr).map_err(|e| ApiError::BadRequest(format!("cidr: {e}")))?;
    let note = body.note.unwrap_or_default().trim().to_owned();
    if note.chars().count() > 200 {
        return Err(ApiError::BadRequest("note: at most 200 characters".into()));
    }
    let row = ip_allow::AllowRow {
        cidr: net.to_string(),
        note,
        created_by: who.actor.clone(),
        created_at: state.clock.now().naive_utc(),
    };
    let stored = row.clone();
    state
        .store
        .run(move |c| ip_allow::insert(c, &stored))
        .await
        .map_err(|e| match e {
            crate::store::StoreError::Conflict => {
                ApiError::Conflict("cidr: already on the allow-list".into())
            }
            other => other.into(),
        })?;
    state
        .audit
        .record(
            AuditEvent::new(EventType::AdminChange, Outcome::Success)
                .request(&ctx)
                .actor(&who.actor)
                .detail("object", "ip_allow_list")
                .detail("change", "added")
                .detail("cidr", row.cidr.as_str()),
        )
        .await?;
    Ok(HttpResponse::Created().json(allow_view(row)))
}

/// Removes a network: `DELETE /ip-allow-list/10.20.0.0/16`.
#[utoipa::path(delete, path = "/admin/api/v1/ip-allow-list/{address}/{prefix}",
    params(("address" = String, Path, description = "the network's address, as listed"), ("prefix" = u8, Path, description = "its prefix length")),
    responses((status = 200, body = Done), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn remove_allowed(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Global)?;
    let (address, prefix) = path.into_inner();
    let net = format!("{address}/{prefix}")
        .parse::<ipnet::IpNet>()
        .map_err(|_| ApiError::NotFound)?;
    let cidr = net.trunc().to_string();
    let key = cidr.clone();
    if !state.store.run(move |c| ip_allow::remove(c, &key)).await? {
        return Err(ApiError::NotFound);
    }
    state
        .audit
        .record(
            AuditEvent::new(EventType::AdminChange, Outcome::Success)
                .request(&ctx)
                .actor(&who.actor)
                .detail("object", "ip_allow_list")
                .detail("change", "removed")
                .detail("cidr", cidr.as_str()),
        )
        .await?;
    Ok(HttpResponse::Ok().json(Done { changed: true }))
}

// ---------------------------------------------------------------------------------------
// OpenID Connect clients. They are global (not per organisation): super administrators.

#[derive(Debug, Serialize, ToSchema)]
pub struct ClientView {
    pub client_id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    /// `client_secret_basic`, `client_secret_post`, `private_key_jwt` or `none`.
    pub token_endpoint_auth_method: String,
    pub public: bool,
    /// Whether a secret is set (never the secret: only its hash is kept).
    pub has_secret: bool,
    /// The client's public keys (`private_key_jwt`).
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
    pub backchannel_logout_uri: Option<String>,
    /// `RS256` or `ES256`.
    pub id_token_signed_response_alg: String,
    /// The organisations (by name) whose users may sign in to it; null: every
    /// organisation.
    pub allowed_orgs: Option<Vec<String>>,
    /// May introspect tokens issued to other clients (a resource server).
    pub introspection: bool,
    pub created_at: DateTime<Utc>,
}

fn client_view(row: &ClientRow) -> ClientView {
    ClientView {
        client_id: row.client_id.clone(),
        name: row.name.clone(),
        redirect_uris: row.redirect_uri_list(),
        post_logout_redirect_uris: row.post_logout_uri_list(),
        grant_types: row.grant_list(),
        scopes: row.scope_list(),
        token_endpoint_auth_method: row.token_endpoint_auth_method.clone(),
        public: row.is_public(),
        has_secret: row.secret_hash.is_some(),
        jwks: row
            .jwks
            .as_deref()
            .and_then(|j| serde_json::from_str(j).ok()),
        backchannel_logout_uri: row.backchannel_logout_uri.clone(),
        id_token_signed_response_alg: row.id_token_alg.clone(),
        allowed_orgs: row.allowed_org_list(),
        introspection: row.introspection,
        created_at: row.created_at.and_utc(),
    }
}

/// A client with its secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientWithSecret {
    pub client_id: String,
    /// Present when a new secret was issued: Gatehouse keeps only its hash.
    pub client_secret: Option<String>,
    pub client: ClientView,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClientBody {
    pub name: String,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// A public client (SPA, native app) has no secret and must use PKCE.
    #[serde(default)]
    pub public: bool,
    /// Default: authorization_code and refresh_token.
    #[serde(default)]
    pub grant_types: Vec<String>,
    /// Default: openid profile email offline_access.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Default: `client_secret_basic`, or `none` for a public client.
    pub token_endpoint_auth_method: Option<String>,
    /// A JWKS document, for `private_key_jwt`.
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
    pub backchannel_logout_uri: Option<String>,
    /// `RS256` (default) or `ES256`.
    pub id_token_signed_response_alg: Option<String>,
    /// Organisation names whose users may sign in to it. Left out or null: users of
    /// every organisation (fine with one organisation; name them where there are several).
    pub allowed_orgs: Option<Vec<String>>,
    /// May introspect tokens issued to other clients (a resource server). Default false.
    #[serde(default)]
    pub introspection: bool,
}

fn client_error(e: ClientError) -> ApiError {
    match e {
        // The library names the CLI's fields; the API names them as RFC 7591 does.
        ClientError::Invalid { field, reason } => {
            let field = match field {
                "auth_method" => "token_endpoint_auth_method",
                "id_token_alg" => "id_token_signed_response_alg",
                other => other,
            };
            ApiError::BadRequest(format!("{field}: {reason}"))
        }
        ClientError::Store(s) => s.into(),
    }
}

fn jwks_text(jwks: Option<serde_json::Value>) -> Option<String> {
    jwks.map(|j| j.to_string())
}

/// A client id that cannot be ours is simply not found.
fn client_id(raw: &str) -> Result<String, ApiError> {
    if raw.is_empty()
        || raw.len() > 128
        || !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(ApiError::NotFound);
    }
    Ok(raw.to_owned())
}

async fn load_client(state: &AppState, raw: &str) -> Result<ClientRow, ApiError> {
    let id = client_id(raw)?;
    state
        .store
        .run(move |c| clients::find(c, &id))
        .await?
        .ok_or(ApiError::NotFound)
}

/// Records an administrator's change to a global object (`object`), naming it by `id`.
async fn audit_change(
    state: &AppState,
    who: &Caller,
    ctx: &RequestContext,
    object: &str,
    change: &str,
    id: (&str, &str),
) -> Result<(), ApiError> {
    state
        .audit
        .record(
            AuditEvent::new(EventType::AdminChange, Outcome::Success)
                .request(ctx)
                .actor(&who.actor)
                .detail("object", object)
                .detail("change", change)
                .detail(id.0, id.1),
        )
        .await?;
    Ok(())
}

async fn audit_client(
    state: &AppState,
    who: &Caller,
    ctx: &RequestContext,
    change: &str,
    client_id: &str,
) -> Result<(), ApiError> {
    audit_change(
        state,
        who,
        ctx,
        "oidc_client",
        change,
        ("client_id", client_id),
    )
    .await
}

#[utoipa::path(get, path = "/admin/api/v1/clients",
    responses((status = 200, body = Vec<ClientView>), (status = 403, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn list_clients(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Global)?;
    let rows = state.store.run(clients::list).await?;
    Ok(HttpResponse::Ok().json(rows.iter().map(client_view).collect::<Vec<_>>()))
}

#[utoipa::path(get, path = "/admin/api/v1/clients/{client_id}", params(("client_id" = String, Path)),
    responses((status = 200, body = ClientView), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn show_client(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Global)?;
    Ok(HttpResponse::Ok().json(client_view(&load_client(&state, &path).await?)))
}

/// Registers a relying party (the same checks as `gatehouse client create`). The secret
/// is in this answer only.
#[utoipa::path(post, path = "/admin/api/v1/clients", request_body = NewClientBody,
    responses((status = 201, body = ClientWithSecret), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn create_client(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Global)?;
    let body: NewClientBody = json_body(&req, &body)?;
    let spec = ClientSpec {
        name: body.name,
        redirect_uris: body.redirect_uris,
        post_logout_redirect_uris: body.post_logout_redirect_uris,
        public: body.public,
        grant_types: body.grant_types,
        scopes: body.scopes,
        auth_method: body.token_endpoint_auth_method,
        jwks: jwks_text(body.jwks),
        backchannel_logout_uri: body.backchannel_logout_uri,
        id_token_alg: body.id_token_signed_response_alg,
        allowed_orgs: body.allowed_orgs,
        introspection: body.introspection,
    };
    let registered = oidc_clients::register(&state.store, spec, state.clock.now())
        .await
        .map_err(client_error)?;
    audit_client(&state, &who, &ctx, "created", &registered.client_id).await?;
    let row = load_client(&state, &registered.client_id).await?;
    Ok(HttpResponse::Created().json(ClientWithSecret {
        client_id: registered.client_id,
        client_secret: registered
            .client_secret
            .map(|s| s.expose_secret().to_owned()),
        client: client_view(&row),
    }))
}

/// A change to a client; fields left out keep their value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientUpdateBody {
    pub name: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub grant_types: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    /// Moving to `client_secret_basic`/`_post` issues a secret (in the answer); moving
    /// away from them deletes it; `none` makes the client public.
    pub token_endpoint_auth_method: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
    /// An empty string removes it.
    pub backchannel_logout_uri: Option<String>,
    pub id_token_signed_response_alg: Option<String>,
    /// Organisation names whose users may sign in to it; null admits every organisation;
    /// left out, unchanged.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_orgs: Option<Option<Vec<String>>>,
    pub introspection: Option<bool>,
}

/// A field that may be sent as null: `Some(None)` for null, `None` when left out.
fn present<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

#[utoipa::path(put, path = "/admin/api/v1/clients/{client_id}", params(("client_id" = String, Path)), request_body = ClientUpdateBody,
    responses((status = 200, body = ClientWithSecret), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn update_client(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Global)?;
    let row = load_client(&state, &path).await?;
    let body: ClientUpdateBody = json_body(&req, &body)?;
    let mut spec = row.spec();
    if let Some(v) = body.name {
        spec.name = v;
    }
    if let Some(v) = body.redirect_uris {
        spec.redirect_uris = v;
    }
    if let Some(v) = body.post_logout_redirect_uris {
        spec.post_logout_redirect_uris = v;
    }
    if let Some(v) = body.grant_types {
        spec.grant_types = v;
    }
    if let Some(v) = body.scopes {
        spec.scopes = v;
    }
    if let Some(method) = body.token_endpoint_auth_method {
        spec.public = method == AUTH_NONE;
        if method != AUTH_PRIVATE_KEY_JWT {
            spec.jwks = None;
        }
        spec.auth_method = Some(method);
    }
    if let Some(jwks) = body.jwks {
        spec.jwks = Some(jwks.to_string());
    }
    if let Some(uri) = body.backchannel_logout_uri {
        spec.backchannel_logout_uri = (!uri.is_empty()).then_some(uri);
    }
    if let Some(alg) = body.id_token_signed_response_alg {
        spec.id_token_alg = Some(alg);
    }
    if let Some(orgs) = body.allowed_orgs {
        spec.allowed_orgs = orgs;
    }
    if let Some(introspection) = body.introspection {
        spec.introspection = introspection;
    }
    let secret = oidc_clients::update(&state.store, &row.client_id, spec)
        .await
        .map_err(client_error)?;
    state.clients.forget(&row.client_id);
    audit_client(&state, &who, &ctx, "updated", &row.client_id).await?;
    let updated = load_client(&state, &row.client_id).await?;
    Ok(HttpResponse::Ok().json(ClientWithSecret {
        client_id: updated.client_id.clone(),
        client_secret: secret.map(|s| s.expose_secret().to_owned()),
        client: client_view(&updated),
    }))
}

/// Deletes a client; every grant it holds (and so every token) goes with it.
#[utoipa::path(delete, path = "/admin/api/v1/clients/{client_id}", params(("client_id" = String, Path)),
    responses((status = 200, body = Done), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn delete_client(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Global)?;
    let id = client_id(&path)?;
    let key = id.clone();
    if !state.store.run(move |c| clients::delete(c, &key)).await? {
        return Err(ApiError::NotFound);
    }
    state.clients.forget(&id);
    audit_client(&state, &who, &ctx, "deleted", &id).await?;
    Ok(HttpResponse::Ok().json(Done { changed: true }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NewSecret {
    pub client_id: String,
    /// Shown only now; the previous secret no longer works (on other instances, within
    /// two seconds).
    pub client_secret: String,
}

/// Issues a new secret for a confidential client; the old one stops working at once
/// (other instances follow within two seconds).
#[utoipa::path(post, path = "/admin/api/v1/clients/{client_id}/secret", params(("client_id" = String, Path)),
    responses((status = 200, body = NewSecret), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn rotate_client_secret(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Global)?;
    let id = client_id(&path)?;
    let secret = oidc_clients::rotate_secret(&state.store, &id)
        .await
        .map_err(client_error)?;
    state.clients.forget(&id);
    audit_client(&state, &who, &ctx, "secret_rotated", &id).await?;
    Ok(HttpResponse::Ok().json(NewSecret {
        client_id: id,
        client_secret: secret.expose_secret().to_owned(),
    }))
}

// ---------------------------------------------------------------------------------------
// SAML service providers. Global, like clients: super administrators.

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointView {
    pub binding: String,
    pub location: String,
    pub index: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SpView {
    /// The handle in paths: the entity id, base64url without padding (entity ids are URLs).
    pub id: String,
    pub entity_id: String,
    pub name: String,
    pub acs: Vec<EndpointView>,
    pub slo: Vec<EndpointView>,
    pub name_id_format: String,
    /// `pairwise`, `user_id`, `username`, `email` or `random`.
    pub name_id_source: String,
    /// Field (`email`, `name`, `username`, `roles`, `organisation`) → SAML attribute name.
    pub attributes: std::collections::BTreeMap<String, String>,
    pub sign_assertion: bool,
    pub sign_response: bool,
    pub require_signed_requests: bool,
    pub encrypt_assertions: bool,
    /// Accepts sign-ins started at `/saml/sso/init` (off unless turned on).
    pub idp_initiated: bool,
    /// The only RelayStates such a sign-in may carry (exact strings).
    pub idp_initiated_relay_states: Vec<String>,
    pub has_signing_certificate: bool,
    pub has_encryption_certificate: bool,
}

fn sp_view(sp: ServiceProvider) -> SpView {
    let endpoints = |list: &[providers::Endpoint]| {
        list.iter()
            .map(|e| EndpointView {
                binding: e.binding.clone(),
                location: e.location.clone(),
                index: e.index,
            })
            .collect()
    };
    SpView {
        id: URL_SAFE_NO_PAD.encode(&sp.entity_id),
        acs: endpoints(&sp.acs),
        slo: endpoints(&sp.slo),
        has_signing_certificate: !sp.signing_certs.is_empty(),
        has_encryption_certificate: !sp.encryption_certs.is_empty(),
        entity_id: sp.entity_id,
        name: sp.name,
        name_id_format: sp.name_id_format,
        name_id_source: sp.name_id_source.as_str().to_owned(),
        attributes: sp.attributes,
        sign_assertion: sp.sign_assertion,
        sign_response: sp.sign_response,
        require_signed_requests: sp.require_signed_requests,
        encrypt_assertions: sp.encrypt_assertions,
        idp_initiated: sp.idp_initiated,
        idp_initiated_relay_states: sp.idp_initiated_relay_states,
    }
}

fn sp_error(e: SpError) -> ApiError {
    match e {
        SpError::Metadata(_) => ApiError::BadRequest(e.to_string()),
        // The library names the CLI's options (`name-id-format`); the API its fields.
        SpError::Invalid { field, reason } => {
            let field = match field {
                "attribute" => "attributes".to_owned(),
                "relay-state" => "idp_initiated_relay_states".to_owned(),
                other => other.replace('-', "_"),
            };
            ApiError::BadRequest(format!("{field}: {reason}"))
        }
        SpError::Store(s) => s.into(),
        SpError::Damaged(_) => ApiError::App(crate::web::error::AppError::Internal(e.to_string())),
    }
}

/// The entity id behind a path handle, or 404.
fn entity_id(raw: &str) -> Result<String, ApiError> {
    if raw.is_empty() || raw.len() > 2 * providers::MAX_ENTITY_ID_LEN {
        return Err(ApiError::NotFound);
    }
    URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(ApiError::NotFound)
}

async fn load_sp(state: &AppState, raw: &str) -> Result<ServiceProvider, ApiError> {
    providers::find(&state.store, &entity_id(raw)?)
        .await
        .map_err(sp_error)?
        .ok_or(ApiError::NotFound)
}

async fn audit_sp(
    state: &AppState,
    who: &Caller,
    ctx: &RequestContext,
    change: &str,
    entity_id: &str,
) -> Result<(), ApiError> {
    audit_change(state, who, ctx, "saml_sp", change, ("entity_id", entity_id)).await
}

#[utoipa::path(get, path = "/admin/api/v1/saml-sps",
    responses((status = 200, body = Vec<SpView>), (status = 403, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn list_sps(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Global)?;
    let all = providers::list(&state.store).await.map_err(sp_error)?;
    Ok(HttpResponse::Ok().json(all.into_iter().map(sp_view).collect::<Vec<_>>()))
}

#[utoipa::path(get, path = "/admin/api/v1/saml-sps/{id}", params(("id" = String, Path, description = "as listed")),
    responses((status = 200, body = SpView), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn show_sp(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Global)?;
    Ok(HttpResponse::Ok().json(sp_view(load_sp(&state, &path).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpImportBody {
    /// The SP's metadata: one EntityDescriptor with an SPSSODescriptor (at most 1 MiB;
    /// DTDs and external entities are refused).
    pub metadata: String,
    pub name: Option<String>,
    /// `persistent` (default unless the SP asks for another), `email`, `transient`,
    /// `unspecified`.
    pub name_id_format: Option<String>,
    pub name_id_source: Option<String>,
    /// The whole attribute mapping, field → SAML attribute name (default: every field
    /// under its usual name).
    pub attributes: Option<std::collections::BTreeMap<String, String>>,
    pub sign_assertion: Option<bool>,
    pub sign_response: Option<bool>,
    pub require_signed_requests: Option<bool>,
    pub encrypt_assertions: Option<bool>,
    /// Accept sign-ins started at Gatehouse (`/saml/sso/init`); default false.
    pub idp_initiated: Option<bool>,
    /// The RelayStates such a sign-in may carry, exact strings (default none).
    pub idp_initiated_relay_states: Option<Vec<String>>,
}

/// Registers (or re-registers, same entity id) an SP from its metadata, like
/// `gatehouse sp import`.
#[utoipa::path(post, path = "/admin/api/v1/saml-sps", request_body = SpImportBody,
    responses((status = 201, description = "registered", body = SpView), (status = 200, description = "re-imported", body = SpView), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn import_sp(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Global)?;
    let body: SpImportBody = json_body(&req, &body)?;
    if body.metadata.len() > MAX_METADATA_BYTES {
        return Err(ApiError::BadRequest("metadata: at most 1 MiB".into()));
    }
    if body.name.as_ref().is_some_and(|n| n.chars().count() > 200) {
        return Err(ApiError::BadRequest("name: at most 200 characters".into()));
    }
    let settings = providers::ImportSettings {
        name: body.name,
        name_id_format: body.name_id_format,
        name_id_source: body.name_id_source,
        attributes: Vec::new(),
        sign_assertion: body.sign_assertion,
        sign_response: body.sign_response,
        require_signed_requests: body.require_signed_requests,
        encrypt_assertions: body.encrypt_assertions,
        idp_initiated: body.idp_initiated,
        idp_initiated_relay_states: body.idp_initiated_relay_states,
    };
    let (mut sp, created) =
        providers::import(&state.store, &body.metadata, &settings, state.clock.now())
            .await
            .map_err(sp_error)?;
    if let Some(attributes) = body.attributes {
        let change = providers::SettingsChange {
            attributes: Some(attributes),
            ..Default::default()
        };
        sp = providers::update_settings(&state.store, &sp.entity_id, change, state.clock.now())
            .await
            .map_err(sp_error)?;
    }
    audit_sp(
        &state,
        &who,
        &ctx,
        if created { "created" } else { "updated" },
        &sp.entity_id,
    )
    .await?;
    let status = if created {
        actix_web::http::StatusCode::CREATED
    } else {
        actix_web::http::StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(sp_view(sp)))
}

/// A change to an SP's settings; fields left out keep their value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpSettingsBody {
    pub name: Option<String>,
    pub name_id_format: Option<String>,
    /// Left out while the format changes: that format's default source.
    pub name_id_source: Option<String>,
    /// The whole mapping, field → SAML attribute name; fields left out are not sent.
    pub attributes: Option<std::collections::BTreeMap<String, String>>,
    pub sign_assertion: Option<bool>,
    pub sign_response: Option<bool>,
    pub require_signed_requests: Option<bool>,
    pub encrypt_assertions: Option<bool>,
    pub idp_initiated: Option<bool>,
    /// The whole list; left out, it is kept.
    pub idp_initiated_relay_states: Option<Vec<String>>,
}

#[utoipa::path(put, path = "/admin/api/v1/saml-sps/{id}", params(("id" = String, Path, description = "as listed")), request_body = SpSettingsBody,
    responses((status = 200, body = SpView), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn update_sp(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Global)?;
    let current = load_sp(&state, &path).await?;
    let body: SpSettingsBody = json_body(&req, &body)?;
    if body.name.as_ref().is_some_and(|n| n.chars().count() > 200) {
        return Err(ApiError::BadRequest("name: at most 200 characters".into()));
    }
    let change = providers::SettingsChange {
        name: body.name,
        name_id_format: body.name_id_format,
        name_id_source: body.name_id_source,
        attributes: body.attributes,
        sign_assertion: body.sign_assertion,
        sign_response: body.sign_response,
        require_signed_requests: body.require_signed_requests,
        encrypt_assertions: body.encrypt_assertions,
        idp_initiated: body.idp_initiated,
        idp_initiated_relay_states: body.idp_initiated_relay_states,
    };
    let sp =
        providers::update_settings(&state.store, &current.entity_id, change, state.clock.now())
            .await
            .map_err(sp_error)?;
    audit_sp(&state, &who, &ctx, "updated", &sp.entity_id).await?;
    Ok(HttpResponse::Ok().json(sp_view(sp)))
}

#[utoipa::path(delete, path = "/admin/api/v1/saml-sps/{id}", params(("id" = String, Path, description = "as listed")),
    responses((status = 200, body = Done), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn delete_sp(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Global)?;
    let id = entity_id(&path)?;
    if !providers::remove(&state.store, &id)
        .await
        .map_err(sp_error)?
    {
        return Err(ApiError::NotFound);
    }
    audit_sp(&state, &who, &ctx, "deleted", &id).await?;
    Ok(HttpResponse::Ok().json(Done { changed: true }))
}

// ---------------------------------------------------------------------------------------
// Token signing keys. Global: super administrators.

#[derive(Debug, Serialize, ToSchema)]
pub struct SigningKeyView {
    pub kid: String,
    /// `RS256` or `ES256`.
    pub alg: String,
    /// `next` (published, not yet signing), `active` (signing) or `retired` (published
    /// until what it signed has expired, then kept for the record).
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
    pub retired_at: Option<DateTime<Utc>>,
}

/// Every signing key: public facts only, never private material.
#[utoipa::path(get, path = "/admin/api/v1/signing-keys",
    responses((status = 200, body = Vec<SigningKeyView>), (status = 403, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn list_signing_keys(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Global)?;
    let rows = state.store.run(signing_keys::list).await?;
    let out: Vec<SigningKeyView> = rows
        .into_iter()
        .map(|r| SigningKeyView {
            kid: r.kid,
            alg: r.alg,
            state: r.state,
            created_at: r.created_at.and_utc(),
            activated_at: r.activated_at.map(|t| t.and_utc()),
            retired_at: r.retired_at.map(|t| t.and_utc()),
        })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedView {
    pub alg: String,
    /// The key that signs from now on (it was published as `next`).
    pub active_kid: String,
    /// The newly published key that signs at the next rotation.
    pub next_kid: String,
}

/// Rotates every algorithm's key, like `gatehouse keys rotate`: the published `next` key
/// starts signing, the active one retires (still published), a new `next` is published.
/// This instance switches at once; others within `signing_key_reload_secs`.
#[utoipa::path(post, path = "/admin/api/v1/signing-keys/rotate",
    responses((status = 200, body = Vec<RotatedView>), (status = 403, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn rotate_signing_keys(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
) -> Result<HttpResponse, ApiError> {
    let who = caller(&state, &req).await?;
    who.require(Action::Global)?;
    let key_error = |e: rings::RingError| match e {
        rings::RingError::Store(s) => ApiError::from(s),
        other => ApiError::App(crate::web::error::AppError::Internal(format!(
            "signing keys: {other}"
        ))),
    };
    let rotated = rings::rotate(&state.store, state.master_key.clone(), state.clock.now())
        .await
        .map_err(key_error)?;
    let ring = rings::reload(
        &state.store,
        state.master_key.clone(),
        state.clock.now(),
        keep_retired(&state.config),
        Some(state.keys.current()),
    )
    .await
    .map_err(key_error)?;
    state.keys.replace(ring);
    for r in &rotated {
        state
            .audit
            .record(
                AuditEvent::new(EventType::KeyRotated, Outcome::Success)
                    .request(&ctx)
                    .actor(&who.actor)
                    .detail("alg", r.alg)
                    .detail("active_kid", r.active_kid.as_str())
                    .detail("next_kid", r.next_kid.as_str()),
            )
            .await?;
    }
    let out: Vec<RotatedView> = rotated
        .into_iter()
        .map(|r| RotatedView {
            alg: r.alg.to_owned(),
            active_kid: r.active_kid,
            next_kid: r.next_kid,
        })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

#[cfg(test)]
mod tests {
    use super::parse_allow;

    #[test]
    fn an_address_is_allow_listed_as_its_host_network() {
        assert_eq!(
            parse_allow("192.0.2.7").unwrap().to_string(),
            "192.0.2.7/32"
        );
        assert_eq!(
            parse_allow("2001:db8::1").unwrap().to_string(),
            "2001:db8::1/128"
        );
    }

    #[test]
    fn host_bits_are_cleared_so_one_network_has_one_spelling() {
        assert_eq!(
            parse_allow(" 10.1.2.3/16 ").unwrap().to_string(),
            "10.1.0.0/16"
        );
        assert_eq!(
            parse_allow("2001:db8:1:2::5/48").unwrap().to_string(),
            "2001:db8:1::/48"
        );
    }

    #[test]
    fn networks_wide_enough_to_switch_the_guard_off_are_refused() {
        for wide in ["0.0.0.0/0", "10.0.0.0/7", "::/0", "2001:db8::/31"] {
            assert!(parse_allow(wide).is_err(), "{wide}");
        }
        assert!(parse_allow("10.0.0.0/8").is_ok());
        assert!(parse_allow("2001:db8::/32").is_ok());
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "localhost",
            "10.0.0.0/33",
            "10.0.0/8",
            "1".repeat(100).as_str(),
        ] {
            assert!(parse_allow(bad).is_err(), "{bad}");
        }
    }
}
