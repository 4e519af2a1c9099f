//! The OpenAPI 3 document of the admin API, generated from the handlers' annotations.

use actix_web::HttpResponse;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
};

use super::api;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gatehouse admin API",
        description = "Users, organisations, locks, resets, IP blocks and the audit trail. \
            Authenticate with a Gatehouse access token carrying the gatehouse:admin scope."
    ),
    paths(
        api::list_users,
        api::invite_user,
        api::show_user,
        api::unlock_user,
        api::force_reset_user,
        api::remove_totp,
        api::disable_user,
        api::enable_user,
        api::set_role,
        api::list_sessions,
        api::end_sessions,
        api::list_orgs,
        api::show_org,
        api::set_policy,
        api::force_reset_org,
        api::list_ip_blocks,
        api::unblock_ip,
        api::query_audit,
    ),
    components(schemas(super::ErrorBody)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
