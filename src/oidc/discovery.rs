//! `/.well-known/openid-configuration` and `/jwks`, built from `openidconnect`'s types.

use std::sync::OnceLock;

use actix_web::{
    HttpResponse,
    http::header::{self, ContentType},
    web,
};
use bytes::Bytes;
use openidconnect::{
    AdditionalProviderMetadata, AuthUrl, AuthenticationContextClass, IssuerUrl, JsonWebKeySetUrl,
    ProviderMetadata, ResponseTypes, Scope, TokenUrl, UserInfoUrl,
    core::{
        CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType,
        CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
        CoreJwsSigningAlgorithm, CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
    },
};
use serde::{Deserialize, Serialize};

use super::OAuthError;
use crate::{auth::session, crypto::signing::ALGORITHMS, startup::AppState};

/// The issuer identifier: the configured public URL without a trailing slash.
pub fn issuer(state: &AppState) -> String {
    state.config.public_base()
}

/// Metadata `openidconnect` has no field for.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ExtraMetadata {
    pub revocation_endpoint: String,
    pub introspection_endpoint: String,
    pub end_session_endpoint: String,
    pub code_challenge_methods_supported: Vec<String>,
    pub backchannel_logout_supported: bool,
    pub backchannel_logout_session_supported: bool,
    pub authorization_response_iss_parameter_supported: bool,
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// RFC 9449 §5.1: the algorithms a DPoP proof may be signed with.
    pub dpop_signing_alg_values_supported: Vec<String>,
    pub pushed_authorization_request_endpoint: String,
    /// False: each client's registration says whether it must push (`require_par`).
    pub require_pushed_authorization_requests: bool,
}
impl AdditionalProviderMetadata for ExtraMetadata {}

pub type GatehouseProviderMetadata = ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// The claims ID tokens and userinfo may carry.
const CLAIMS_SUPPORTED: &[&str] = &[
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "azp",
    "sid",
    "org",
    // DESIGN §15: while an emergency window the client asked for is open.
    "emergency",
    // DESIGN §18: a SMART app's user, as a FHIR resource URL.
    "fhirUser",
    "name",
    "preferred_username",
    "email",
];

/// What discovery says beyond the `openidconnect` crate's core fields: the other
/// endpoints, PKCE, back-channel logout, RFC 9207's `iss`, how the introspection and
/// revocation endpoints authenticate clients, DPoP's algorithms and PAR (RFC 9126 §5).
fn extra_metadata(at: &dyn Fn(&str) -> String) -> ExtraMetadata {
    let confidential_methods: Vec<String> = [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    ExtraMetadata {
        revocation_endpoint: at("/revoke"),
        introspection_endpoint: at("/introspect"),
        end_session_endpoint: at("/logout"),
        code_challenge_methods_supported: vec!["S256".into()],
        backchannel_logout_supported: true,
        backchannel_logout_session_supported: true,
        authorization_response_iss_parameter_supported: true,
        introspection_endpoint_auth_methods_supported: confidential_methods.clone(),
        revocation_endpoint_auth_methods_supported: confidential_methods,
        dpop_signing_alg_values_supported: super::dpop::algorithm_names(),
        pushed_authorization_request_endpoint: at("/par"),
        require_pushed_authorization_requests: false,
    }
}

fn metadata(state: &AppState) -> Result<GatehouseProviderMetadata, url::ParseError> {
    let base = issuer(state);
    let at = |path: &str| format!("{base}{path}");
    let auth_methods = vec![
        CoreClientAuthMethod::ClientSecretBasic,
        CoreClientAuthMethod::ClientSecretPost,
        CoreClientAuthMethod::PrivateKeyJwt,
        CoreClientAuthMethod::None,
    ];
    Ok(ProviderMetadata::new(
        IssuerUrl::new(base.clone())?,
        AuthUrl::new(at("/authorize"))?,
        JsonWebKeySetUrl::new(at("/jwks"))?,
        vec![ResponseTypes::new(vec![CoreResponseType::Code])],
        vec![CoreSubjectIdentifierType::Public],
        // id_token_signing_alg_values_supported: every algorithm there is a key ring for.
        ALGORITHMS.iter().map(|alg| alg.jws()).collect(),
        extra_metadata(&at),
    )
    .set_token_endpoint(Some(TokenUrl::new(at("/token"))?))
    .set_userinfo_endpoint(Some(UserInfoUrl::new(at("/userinfo"))?))
    .set_scopes_supported(Some(
        super::SUPPORTED_SCOPES
            .iter()
            .map(|s| Scope::new((*s).to_owned()))
            .collect(),
    ))
    .set_response_modes_supported(Some(vec![CoreResponseMode::Query]))
    .set_grant_types_supported(Some(vec![
        CoreGrantType::AuthorizationCode,
        CoreGrantType::RefreshToken,
        CoreGrantType::ClientCredentials,
    ]))
    .set_acr_values_supported(Some(vec![
        AuthenticationContextClass::new(session::ACR_PASSWORD.into()),
        AuthenticationContextClass::new(session::ACR_MFA.into()),
        AuthenticationContextClass::new(crate::auth::emergency::ACR_EMERGENCY.into()),
    ]))
    .set_token_endpoint_auth_methods_supported(Some(auth_methods))
    .set_token_endpoint_auth_signing_alg_values_supported(Some(vec![
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        CoreJwsSigningAlgorithm::RsaSsaPssSha256,
        CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    ]))
    .set_claims_supported(Some(
        CLAIMS_SUPPORTED
            .iter()
            .map(|c| CoreClaimName::new((*c).into()))
            .collect(),
    ))
    .set_claims_parameter_supported(Some(false))
    // The languages of the pages (issue 31); `ui_locales` picks among them.
    .set_ui_locales_supported(Some(
        crate::i18n::languages()
            .into_iter()
            .map(openidconnect::LanguageTag::new)
            .collect(),
    ))
    .set_request_parameter_supported(Some(true))
    .set_request_object_signing_alg_values_supported(Some(request_object_algorithms()))
    // Only the URNs `/par` hands out are accepted, never a client's URL to fetch: that
    // is PAR (advertised above), not the request_uri parameter of OIDC Core §6.2.
    .set_request_uri_parameter_supported(Some(false)))
}

/// The algorithms a request object may be signed with: those of client assertions.
fn request_object_algorithms() -> Vec<CoreJwsSigningAlgorithm> {
    crate::crypto::jose::CLIENT_ALGORITHMS
        .iter()
        .filter_map(|alg| serde_json::from_value(serde_json::json!(format!("{alg:?}"))).ok())
        .collect()
}

/// The discovery document as JSON, made at its first request: it follows from the
/// configuration alone, which does not change while the process runs.
#[derive(Default)]
pub struct Published(OnceLock<Bytes>);

impl Published {
    fn get_or_make(&self, state: &AppState) -> Result<Bytes, OAuthError> {
        if let Some(json) = self.0.get() {
            return Ok(json.clone());
        }
        let doc = metadata(state).map_err(|e| {
            crate::web::error::AppError::Internal(format!("issuer does not make valid URLs: {e}"))
        })?;
        let json = serde_json::to_vec(&doc).map_err(|e| {
            crate::web::error::AppError::Internal(format!("discovery does not serialise: {e}"))
        })?;
        Ok(self.0.get_or_init(|| json.into()).clone())
    }
}

/// Public, so a browser app on any origin may read it (CORS `*`, no credentials).
pub async fn configuration(state: web::Data<AppState>) -> Result<HttpResponse, OAuthError> {
    let json = state.discovery.get_or_make(&state)?;
    Ok(super::cors::public(
        HttpResponse::Ok()
            .insert_header(ContentType::json())
            .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
            .body(json),
    ))
}

/// Public, like discovery. Serialised once per key ring.
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    let ring = state.keys.current();
    super::cors::public(
        HttpResponse::Ok()
            .insert_header(ContentType::json())
            // Short: relying parties must see a rotation's next key well before it signs.
            .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
            .body(ring.jwks_json()),
    )
}
