//! The SAML 2.0 Identity Provider (DESIGN §10): metadata, SP-initiated SSO over
//! HTTP-Redirect and HTTP-POST, IdP-initiated SSO, Single Logout both ways (HTTP-Redirect and HTTP-POST,
//! and SOAP to SPs that publish it).
//!
//! An AuthnRequest becomes a login transaction (`auth::transaction`, `Resume::Saml`) like
//! an OIDC `/authorize`; the sign-in pipeline answers it with [`sso::respond`] once the
//! person is signed in and every required action (password change, TOTP) is done.
//!
//! The IdP's entity id is the issuer followed by `/saml/metadata`: a URL that resolves to
//! the metadata it names, and distinct from the OIDC issuer.

pub mod acceptance;
pub mod assertion;
pub mod attributes;
pub mod dsig;
pub mod encrypt;
pub mod idp_initiated;
pub mod keys;
pub mod lapsed;
pub mod logout_chain;
pub mod metadata;
pub mod metadata_fetch;
pub mod metadata_refresh;
pub mod name_id;
pub mod post_binding;
pub mod providers;
pub mod request;
pub mod slo;
pub mod soap;
pub mod sso;
pub mod upstream;
pub mod xml;
pub mod xml_writer;

use actix_web::web;

use crate::startup::AppState;

/// Body limit of the POST endpoints: a maximal message, base64 and then form-encoded.
pub const MAX_POST_BODY: usize = 256 * 1024;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(metadata::metadata)
        .service(
            web::resource("/saml/sso")
                .app_data(web::PayloadConfig::new(MAX_POST_BODY))
                .route(web::get().to(sso::sso))
                .route(web::post().to(sso::sso)),
        )
        .service(web::resource("/saml/sso/init").route(web::get().to(sso::sso_init)))
        .service(
            web::resource("/saml/slo")
                .app_data(web::PayloadConfig::new(MAX_POST_BODY))
                .route(web::get().to(slo::slo))
                .route(web::post().to(slo::slo)),
        )
        .service(
            web::resource("/saml/slo/continue").route(web::get().to(logout_chain::slo_continue)),
        )
        .configure(upstream::routes);
}

fn base(state: &AppState) -> String {
    state.config.public_base()
}

/// The IdP's entity id.
pub fn entity_id(state: &AppState) -> String {
    format!("{}/saml/metadata", base(state))
}

pub fn sso_url(state: &AppState) -> String {
    format!("{}/saml/sso", base(state))
}
