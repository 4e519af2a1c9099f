//! `/users`: find, create or invite, unlock, force a reset, remove the second factor,
//! disable and enable, change the role and the username.

use actix_web::web;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{AdminRequest, Done, Reply, created, done, ok};
use crate::{
    admin::{
        Action, ApiError, ErrorBody,
        service::{object_id, users as service},
    },
    auth::{
        account::NewAccount,
        recovery::{ForcedReset, NewInvitation},
    },
    domain::{DisplayName, Email, OrgName, Password, Role, UserStatus, Username},
    startup::AppState,
    store::users::UserRow,
};

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

pub async fn view(state: &AppState, user: UserRow) -> Result<UserView, ApiError> {
    let standing = service::standing(state, &user).await?;
    Ok(UserView {
        id: user.id,
        org_id: user.org_id,
        username: user.username,
        email: user.email,
        display_name: user.display_name,
        role: user.role,
        status: user.status,
        must_change_password: user.must_change_password,
        mfa_enrolled: standing.mfa_enrolled,
        locked: standing.locked,
        created_at: user.created_at.and_utc(),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    /// Organisation id; default: the caller's own.
    pub org: Option<String>,
    /// Part of a username, or a whole email address (any case). Addresses are sealed
    /// at rest (DESIGN §12): a part of one (a domain) matches no address.
    pub q: Option<String>,
}

#[utoipa::path(get, path = "/admin/api/v1/users", params(UserQuery),
    responses((status = 200, body = Vec<UserView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_users(query: web::Query<UserQuery>, api: AdminRequest) -> Reply {
    api.who.require(Action::Read)?;
    let org = match (&query.org, &api.who.org_id) {
        (Some(o), _) => object_id(o)?,
        (None, Some(own)) => own.clone(),
        (None, None) => {
            return Err(ApiError::BadRequest(
                "org: required for service clients".into(),
            ));
        }
    };
    let mut out = Vec::new();
    for user in service::list(api.by(), &org, query.q.as_deref()).await? {
        out.push(view(&api.state, user).await?);
    }
    ok(out)
}

#[utoipa::path(get, path = "/admin/api/v1/users/{id}", params(("id" = String, Path)),
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn show_user(path: web::Path<String>, api: AdminRequest) -> Reply {
    let user = service::show(api.by(), &path).await?;
    ok(view(&api.state, user).await?)
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

/// What `POST /users` created: an active account (a password was given) or an invitation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum CreatedUser {
    Account(UserView),
    Invitation(InvitationView),
}

fn parse_role(raw: &str, field: &str) -> Result<Role, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "{field}: one of user, support, org_admin, super_admin"
        ))
    })
}

fn bad(field: &str) -> impl Fn(crate::domain::ParseError) -> ApiError + '_ {
    move |e| ApiError::BadRequest(format!("{field}: {e}"))
}

/// Creates a user: with `password`, an active account whose password obeys the
/// organisation's policy (like `gatehouse user create`); without, an invitation whose
/// mailed link lets the user choose one.
#[utoipa::path(post, path = "/admin/api/v1/users", request_body = InviteBody,
    responses((status = 201, body = CreatedUser), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn invite_user(body: web::Bytes, api: AdminRequest) -> Reply {
    api.who.require(Action::Manage)?;
    let body: InviteBody = api.json(&body)?;
    let org = OrgName::parse(&body.org).map_err(bad("org"))?;
    let username = Username::parse(&body.username).map_err(bad("username"))?;
    let email = Email::parse(&body.email).map_err(bad("email"))?;
    let display_name = body
        .display_name
        .as_deref()
        .map(DisplayName::parse)
        .transpose()
        .map_err(bad("display_name"))?;
    let role = match &body.role {
        Some(r) => parse_role(r, "role")?,
        None => Role::User,
    };
    let by = api.by();
    if let Some(secret) = body.password {
        let password =
            Password::parse(secret.expose_secret().to_owned()).map_err(bad("password"))?;
        let new = NewAccount {
            org,
            username,
            email,
            display_name,
            role,
            password,
            must_change_password: body.must_change_password.unwrap_or(true),
        };
        let user = service::create(by, new).await?;
        return created(CreatedUser::Account(view(&api.state, user).await?));
    }
    if body.must_change_password.is_some() {
        return Err(ApiError::BadRequest(
            "must_change_password: only with a password".into(),
        ));
    }
    let new = NewInvitation {
        org,
        username,
        email,
        display_name,
        role,
    };
    let invitation = service::invite(by, new).await?;
    created(CreatedUser::Invitation(InvitationView {
        id: invitation.id,
        username: invitation.username,
        email: invitation.email,
        org: invitation.org,
        role: invitation.role,
        expires_at: invitation.expires_at,
        reissued: invitation.reissued,
    }))
}

#[utoipa::path(post, path = "/admin/api/v1/users/{id}/unlock", params(("id" = String, Path)),
    responses((status = 200, body = Done), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn unlock_user(path: web::Path<String>, api: AdminRequest) -> Reply {
    let user = api.user(Action::Support, &path).await?;
    done(service::unlock(api.by(), &user).await?)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ForcedResetView {
    pub username: String,
    pub sessions_ended: usize,
}

impl From<ForcedReset> for ForcedResetView {
    fn from(done: ForcedReset) -> Self {
        Self {
            username: done.username,
            sessions_ended: done.sessions_ended,
        }
    }
}

#[utoipa::path(post, path = "/admin/api/v1/users/{id}/force-reset", params(("id" = String, Path)),
    responses((status = 200, body = ForcedResetView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn force_reset_user(path: web::Path<String>, api: AdminRequest) -> Reply {
    let user = api.user(Action::Support, &path).await?;
    let reset = service::force_reset(api.by(), &user).await?;
    ok(ForcedResetView::from(reset))
}

#[utoipa::path(post, path = "/admin/api/v1/users/{id}/remove-totp", params(("id" = String, Path)),
    responses((status = 200, body = Done), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn remove_totp(path: web::Path<String>, api: AdminRequest) -> Reply {
    let user = api.user(Action::Support, &path).await?;
    done(service::remove_totp(api.by(), &user).await?)
}

async fn set_status(api: &AdminRequest, raw_id: &str, status: UserStatus) -> Reply {
    let user = api.user(Action::Manage, raw_id).await?;
    done(service::set_status(api.by(), &user, status).await?)
}

/// Disables the user: sign-in refused, every session ended, every grant revoked.
#[utoipa::path(post, path = "/admin/api/v1/users/{id}/disable", params(("id" = String, Path)),
    responses((status = 200, body = Done), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn disable_user(path: web::Path<String>, api: AdminRequest) -> Reply {
    set_status(&api, &path, UserStatus::Disabled).await
}

#[utoipa::path(post, path = "/admin/api/v1/users/{id}/enable", params(("id" = String, Path)),
    responses((status = 200, body = Done), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn enable_user(path: web::Path<String>, api: AdminRequest) -> Reply {
    set_status(&api, &path, UserStatus::Active).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    /// `user`, `support`, `org_admin`, `super_admin`.
    pub role: String,
}

#[utoipa::path(put, path = "/admin/api/v1/users/{id}/role", params(("id" = String, Path)), request_body = RoleBody,
    responses((status = 200, body = Done), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn set_role(path: web::Path<String>, body: web::Bytes, api: AdminRequest) -> Reply {
    let user = api.user(Action::Manage, &path).await?;
    let body: RoleBody = api.json(&body)?;
    let role = parse_role(&body.role, "role")?;
    done(service::set_role(api.by(), &user, role).await?)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsernameBody {
    pub username: String,
}

/// Renames a user (administrators only; users cannot rename themselves). Usernames are
/// unique across organisations, because the sign-in page asks for a username only.
#[utoipa::path(put, path = "/admin/api/v1/users/{id}/username", params(("id" = String, Path)), request_body = UsernameBody,
    responses((status = 200, body = Done), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn rename_user(path: web::Path<String>, body: web::Bytes, api: AdminRequest) -> Reply {
    let user = api.user(Action::Manage, &path).await?;
    let body: UsernameBody = api.json(&body)?;
    let username = Username::parse(&body.username).map_err(bad("username"))?;
    done(service::rename(api.by(), &user, username).await?)
}
