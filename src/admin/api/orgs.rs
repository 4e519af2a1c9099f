//! `/orgs`: organisations, their policies, and forcing a reset on all their users.

use actix_web::web;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AdminRequest, Reply, created, ok, users::ForcedResetView};
use crate::{
    admin::{
        Action, ApiError, ErrorBody,
        service::{orgs as service, users},
    },
    domain::{Branding, Logo, OrgName, OrgPolicy},
    store::{branding::Stored, orgs::OrgRow},
};

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgView {
    pub id: String,
    pub name: String,
    pub display_name: String,
    #[schema(value_type = PolicyDocument)]
    pub policy: OrgPolicy,
}

/// The organisation's policy document (`domain::OrgPolicy` as JSON), as shown and as
/// `PUT /orgs/{id}/policy` takes it: fields left out take their defaults, unknown fields
/// are refused, and every bound is checked with the failing fields named.
#[derive(Debug, ToSchema)]
pub struct PolicyDocument {
    /// Password rules: min_length, max_length, require_upper, require_lower,
    /// require_digit_or_symbol, min_strength, history, max_age_days.
    #[schema(value_type = Object)]
    pub password: (),
    /// Account lockout: threshold, lock_minutes, permanent_after,
    /// reset_failures_after_minutes.
    #[schema(value_type = Object)]
    pub lockout: (),
    /// Who must use a second factor: `off`, `admins` (default), `everyone`.
    #[schema(value_type = String, pattern = "^(off|admins|everyone)$")]
    pub mfa: (),
    /// Where lockout, IP-block and emergency access alerts go.
    #[schema(format = Email)]
    pub support_email: Option<String>,
    /// SSO session idle timeout (default 259200, 72 hours).
    pub session_idle_secs: u64,
    /// SSO session lifetime (default 2592000, 30 days).
    pub session_absolute_secs: u64,
    /// Told, with the support contact, whenever someone breaks the glass (DESIGN §15).
    #[schema(format = Email)]
    pub privacy_officer_email: Option<String>,
    /// How long an emergency window stays open: 5 to 720 (default 60); never extended.
    #[schema(minimum = 5, maximum = 720)]
    pub emergency_window_minutes: u32,
    /// After how many hours a review still open is overdue and mailed about daily: 1 to
    /// 720 (default 72).
    #[schema(minimum = 1, maximum = 720)]
    pub emergency_review_overdue_hours: u32,
    /// The language of its people's pages and mails when neither they nor their browser
    /// chose one Gatehouse speaks: `en` or `es-419`; null for English.
    #[schema(example = "es-419")]
    pub language: Option<String>,
    /// The time zone its people's dates are shown in unless they chose another (an IANA
    /// name); null for UTC.
    #[schema(example = "America/Bogota")]
    pub time_zone: Option<String>,
}

pub fn org_view(org: OrgRow) -> OrgView {
    OrgView {
        policy: org.policy(),
        id: org.id,
        name: org.name,
        display_name: org.display_name,
    }
}

#[utoipa::path(get, path = "/admin/api/v1/orgs",
    responses((status = 200, body = Vec<OrgView>), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_orgs(api: AdminRequest) -> Reply {
    let all = service::list(&api.state, &api.who).await?;
    ok(all.into_iter().map(org_view).collect::<Vec<_>>())
}

#[utoipa::path(get, path = "/admin/api/v1/orgs/{id}", params(("id" = String, Path)),
    responses((status = 200, body = OrgView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn show_org(path: web::Path<String>, api: AdminRequest) -> Reply {
    ok(org_view(api.org(Action::Read, &path).await?))
}

/// Replaces the organisation's policy. Fields left out take their defaults; unknown
/// fields are refused.
#[utoipa::path(put, path = "/admin/api/v1/orgs/{id}/policy", params(("id" = String, Path)),
    request_body(content = PolicyDocument, description = "the policy document; fields left out take their defaults"),
    responses((status = 200, body = OrgView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn set_policy(path: web::Path<String>, body: web::Bytes, api: AdminRequest) -> Reply {
    let org = api.org(Action::Manage, &path).await?;
    let policy: OrgPolicy = api.json(&body)?;
    service::set_policy(api.by(), &org, policy.clone()).await?;
    ok(OrgView {
        policy,
        ..org_view(org)
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgForcedResetView {
    pub org: String,
    pub reset: Vec<ForcedResetView>,
    pub skipped: Vec<String>,
}

#[utoipa::path(post, path = "/admin/api/v1/orgs/{id}/force-reset", params(("id" = String, Path)),
    responses((status = 200, body = OrgForcedResetView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn force_reset_org(path: web::Path<String>, api: AdminRequest) -> Reply {
    let org = api.org(Action::Manage, &path).await?;
    let done = users::force_reset_org(api.by(), &org).await?;
    ok(OrgForcedResetView {
        org: done.org,
        reset: done.reset.into_iter().map(ForcedResetView::from).collect(),
        skipped: done.skipped,
    })
}

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
    responses((status = 201, body = OrgView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn create_org(body: web::Bytes, api: AdminRequest) -> Reply {
    api.who.require(Action::Global)?;
    let body: NewOrgBody = api.json(&body)?;
    let name =
        OrgName::parse(&body.name).map_err(|e| ApiError::BadRequest(format!("name: {e}")))?;
    let policy = body.policy.unwrap_or_default();
    let org = service::create(api.by(), name, &body.display_name, policy).await?;
    created(org_view(org))
}

/// An organisation's branding document (issue 31), as shown and as
/// `PUT /orgs/{id}/branding` takes it.
#[derive(Debug, ToSchema)]
pub struct BrandingDocument {
    /// Shown on its pages and mails instead of its display name; 1 to 80 characters.
    pub display_name: Option<String>,
    /// Links and buttons in the light scheme, `#rrggbb`: refused below 4.5:1 against the
    /// page or with white text on it.
    #[schema(pattern = "^#[0-9a-fA-F]{6}$", example = "#7b1fa2")]
    pub accent: Option<String>,
    /// The same in the dark scheme: refused below 4.5:1 against the dark page or with
    /// dark text on it.
    #[schema(pattern = "^#[0-9a-fA-F]{6}$", example = "#ce93d8")]
    pub accent_dark: Option<String>,
    /// Who to ask for help, under the sign-in form, on error pages and in mails; 1 to 500
    /// characters of plain text.
    pub support_text: Option<String>,
    /// The OIDC client ids and SAML SP entity IDs whose sign-ins show this branding.
    pub apps: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LogoView {
    pub content_type: String,
    pub bytes: usize,
    /// Where pages load it from.
    pub url: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BrandingView {
    pub org: String,
    #[schema(value_type = BrandingDocument)]
    pub branding: Branding,
    pub logo: Option<LogoView>,
}

pub fn branding_view(org: &OrgRow, stored: Stored) -> BrandingView {
    BrandingView {
        org: org.id.clone(),
        branding: stored.branding,
        logo: stored.logo.map(|l| LogoView {
            content_type: l.kind.content_type().to_owned(),
            bytes: l.bytes.len(),
            url: format!("/branding/{}/logo", org.id),
        }),
    }
}

#[utoipa::path(get, path = "/admin/api/v1/orgs/{id}/branding", params(("id" = String, Path)),
    responses((status = 200, body = BrandingView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn show_branding(path: web::Path<String>, api: AdminRequest) -> Reply {
    let org = api.org(Action::Read, &path).await?;
    let stored = service::branding(&api.state, &org).await?;
    ok(branding_view(&org, stored))
}

/// Replaces the branding document (the logo stays). Fields left out are unset; unknown
/// fields are refused; colours without enough contrast are refused, naming the ratio.
#[utoipa::path(put, path = "/admin/api/v1/orgs/{id}/branding", params(("id" = String, Path)),
    request_body = BrandingDocument,
    responses((status = 200, body = BrandingView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn set_branding(path: web::Path<String>, body: web::Bytes, api: AdminRequest) -> Reply {
    let org = api.org(Action::Manage, &path).await?;
    let document: Branding = api.json(&body)?;
    service::set_branding(api.by(), &org, document).await?;
    ok(branding_view(
        &org,
        service::branding(&api.state, &org).await?,
    ))
}

/// Sets the logo: the body is the image, `Content-Type` `image/png`, `image/jpeg` or
/// `image/webp`, at most 256 KiB, and its bytes must be that kind of image.
#[utoipa::path(put, path = "/admin/api/v1/orgs/{id}/logo", params(("id" = String, Path)),
    request_body(content = Vec<u8>, content_type = "image/png", description = "a PNG, JPEG or WebP of at most 256 KiB"),
    responses((status = 200, body = BrandingView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)), security(("bearer" = [])))]
pub async fn set_logo(path: web::Path<String>, body: web::Bytes, api: AdminRequest) -> Reply {
    let org = api.org(Action::Manage, &path).await?;
    let logo = Logo::parse(api.content_type(), body.to_vec())
        .map_err(|e| ApiError::BadRequest(format!("logo: {e}")))?;
    service::set_logo(api.by(), &org, Some(logo)).await?;
    ok(branding_view(
        &org,
        service::branding(&api.state, &org).await?,
    ))
}

#[utoipa::path(delete, path = "/admin/api/v1/orgs/{id}/logo", params(("id" = String, Path)),
    responses((status = 200, body = BrandingView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn remove_logo(path: web::Path<String>, api: AdminRequest) -> Reply {
    let org = api.org(Action::Manage, &path).await?;
    service::set_logo(api.by(), &org, None).await?;
    ok(branding_view(
        &org,
        service::branding(&api.state, &org).await?,
    ))
}
