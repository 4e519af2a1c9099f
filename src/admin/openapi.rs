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
        description = "Users, organisations, locks, resets, IP blocks and the allow-list, \
            OpenID Connect clients, SAML service providers, signing keys and the audit trail. \
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
        api::create_org,
        api::rename_user,
        api::end_one_session,
        api::list_allowed,
        api::add_allowed,
        api::remove_allowed,
        api::list_clients,
        api::show_client,
        api::create_client,
        api::update_client,
        api::delete_client,
        api::rotate_client_secret,
        api::list_sps,
        api::show_sp,
        api::import_sp,
        api::update_sp,
        api::delete_sp,
        api::list_signing_keys,
        api::rotate_signing_keys,
    ),
    components(schemas(super::ErrorBody)),
    modifiers(&BearerAuth, &CommonErrors)
)]
pub struct ApiDoc;

/// Answers any operation may give, documented on every one so clients (and
/// schemathesis) can rely on the document.
struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{Content, Ref, ResponseBuilder};
        let common = [
            ("400", "malformed request: the message names the field"),
            (
                "401",
                "no bearer token, or not one with the gatehouse:admin scope",
            ),
            ("403", "the caller's role does not allow this"),
            ("404", "no such resource, or one the caller cannot see"),
            ("413", "the body is too large"),
            ("429", "too many requests"),
            ("503", "the database or Redis is unreachable; retry"),
        ];
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                for (code, description) in common {
                    let response = ResponseBuilder::new()
                        .description(description)
                        .content(
                            "application/json",
                            Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                        )
                        .build();
                    operation
                        .responses
                        .responses
                        .entry(code.to_owned())
                        .or_insert(response.into());
                }
            }
        }
    }
}

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
