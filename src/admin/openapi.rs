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
            OpenID Connect clients, SAML service providers, signing keys, emergency access \
            designations and reviews, upstream identity providers and their links, users' \
            passkeys, FHIR servers (SMART on FHIR resource servers), and the audit trail. \
            Authenticate with a Gatehouse access token carrying the gatehouse:admin scope."
    ),
    paths(
        api::users::list_users,
        api::users::invite_user,
        api::users::show_user,
        api::users::unlock_user,
        api::users::force_reset_user,
        api::users::remove_totp,
        api::users::disable_user,
        api::users::enable_user,
        api::users::set_role,
        api::sessions::list_sessions,
        api::sessions::end_sessions,
        api::passkeys::list_passkeys,
        api::passkeys::remove_passkey,
        api::fhir_servers::list_fhir_servers,
        api::fhir_servers::create_fhir_server,
        api::fhir_servers::show_fhir_server,
        api::fhir_servers::update_fhir_server,
        api::fhir_servers::delete_fhir_server,
        api::fhir_servers::list_fhir_users,
        api::fhir_servers::set_fhir_user,
        api::fhir_servers::clear_fhir_user,
        api::orgs::list_orgs,
        api::orgs::show_org,
        api::orgs::set_policy,
        api::orgs::force_reset_org,
        api::orgs::show_branding,
        api::orgs::set_branding,
        api::orgs::set_logo,
        api::orgs::remove_logo,
        api::network::list_ip_blocks,
        api::network::unblock_ip,
        api::audit::query_audit,
        api::audit::export_audit,
        api::orgs::create_org,
        api::users::rename_user,
        api::sessions::end_one_session,
        api::network::list_allowed,
        api::network::add_allowed,
        api::network::remove_allowed,
        api::clients::list_clients,
        api::clients::show_client,
        api::clients::create_client,
        api::clients::update_client,
        api::clients::delete_client,
        api::clients::rotate_client_secret,
        api::saml::list_sps,
        api::saml::show_sp,
        api::saml::import_sp,
        api::saml::update_sp,
        api::saml::delete_sp,
        api::saml::import_sp_from_url,
        api::saml::refresh_sp,
        api::keys::list_signing_keys,
        api::keys::rotate_signing_keys,
        api::emergency::grant_emergency_access,
        api::emergency::withdraw_emergency_access,
        api::emergency::list_emergency_access,
        api::emergency::list_emergency_sessions,
        api::emergency::show_emergency_session,
        api::emergency::review_emergency_session,
        api::upstream::list_connectors,
        api::upstream::create_connector,
        api::upstream::show_connector,
        api::upstream::update_connector,
        api::upstream::delete_connector,
        api::upstream::list_connector_links,
        api::upstream::add_connector_link,
        api::upstream::remove_connector_link,
        api::upstream::list_user_links,
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
