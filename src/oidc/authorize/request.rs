//! What an authorization request asks, checked: the client and its return address first
//! (until they are known to be genuine, errors are pages), then the request itself,
//! whether sent as parameters, in a signed request object, or pushed beforehand.

use serde::{Deserialize, Serialize};

use super::{AuthorizeRequest, MAX_STATE_LEN, Reply, error_page};
use crate::{
    auth::{
        emergency::{ACR_EMERGENCY, EmergencyAsk},
        session,
    },
    domain::{ContextLabel, SmartScope},
    oidc::{
        OAuthError, Params, clients::GRANT_CODE, known_scope, par, parse_scope, request_object,
        smart,
    },
    startup::AppState,
    store::clients,
    web::error::AppError,
};
use actix_web::HttpResponse;

/// The registered client the request names; until it is known, errors are shown here,
/// never sent anywhere (RFC 6749 §4.1.2.1).
pub(super) async fn named_client(
    state: &AppState,
    params: &Params,
) -> Result<Result<clients::ClientRow, &'static str>, AppError> {
    if params.is_duplicated("client_id") {
        return Ok(Err("The request names its application more than once."));
    }
    let Some(client_id) = params.get("client_id").map(str::to_owned) else {
        return Ok(Err("The request does not say which application it is for."));
    };
    match state
        .store
        .run(move |c| clients::find(c, &client_id))
        .await?
    {
        Some(client) => Ok(Ok(client)),
        None => Ok(Err("The application is not registered with Gatehouse.")),
    }
}

/// The return address `params` name, if it is registered for `client`.
fn registered_redirect<'a>(
    params: &'a Params,
    client: &clients::ClientRow,
) -> Result<&'a str, &'static str> {
    if params.is_duplicated("redirect_uri") {
        return Err("The request names its return address more than once.");
    }
    let Some(redirect_uri) = params.get("redirect_uri") else {
        return Err("The request has no return address (redirect_uri).");
    };
    if !client.redirect_uri_registered(redirect_uri) {
        return Err("The return address is not registered for this application.");
    }
    Ok(redirect_uri)
}

/// `state` as sent, if it can be sent back.
fn state_param(params: &Params) -> Option<&str> {
    (!params.is_duplicated("state"))
        .then(|| params.get("state"))
        .flatten()
        .filter(|s| s.len() <= MAX_STATE_LEN)
}

/// What the request asks: the pushed request its `request_uri` names (RFC 9126 §4: then
/// nothing else but `client_id` counts), or the parameters of the request object it
/// carries (RFC 9101 §6.3: likewise), or its own. `Err` is the answer already: a page
/// while no return address is trusted, a redirect to the client after.
pub(super) async fn asked(
    state: &AppState,
    params: &Params,
    client: &clients::ClientRow,
) -> Result<Result<Validated, HttpResponse>, AppError> {
    let issuer = crate::oidc::discovery::issuer(state);
    if let Some(uri) = params.get("request_uri") {
        if !uri.starts_with(par::REQUEST_URI_PREFIX) {
            return Ok(Err(early_refusal(
                params,
                client,
                &issuer,
                "request_uri_not_supported",
                "request_uri must be one /par gave; Gatehouse fetches no request objects",
            )));
        }
        if params.is_duplicated("request_uri") {
            return Ok(Err(error_page(
                "The request names its sign-in request more than once.",
            )));
        }
        // The pushed request was checked when pushed; its return address is checked
        // again in case the registration changed in between.
        return Ok(match par::take(state, uri, &client.client_id).await? {
            Ok(pushed) if client.redirect_uri_registered(&pushed.request.redirect_uri) => {
                Ok(pushed)
            }
            Ok(_) => Err(error_page(
                "The return address is not registered for this application.",
            )),
            Err(why) => Err(error_page(&why.to_string())),
        });
    }
    if params.is_duplicated("request") {
        return Ok(Err(early_refusal(
            params,
            client,
            &issuer,
            "invalid_request",
            "parameter request was sent more than once",
        )));
    }
    let inner;
    let by_object = params.get("request").is_some();
    let asked = match params.get("request") {
        None => params,
        Some(object) => {
            let now = state.clock.now();
            match request_object::verify(object, client, &state.client_keys, &issuer, now).await {
                Ok(parameters) => {
                    inner = parameters;
                    &inner
                }
                Err(e) => {
                    let why = e.error_description.as_deref().unwrap_or("");
                    return Ok(Err(early_refusal(params, client, &issuer, e.error, why)));
                }
            }
        }
    };
    let redirect_uri = match registered_redirect(asked, client) {
        Ok(redirect_uri) => redirect_uri,
        Err(text) => return Ok(Err(error_page(text))),
    };
    let reply = Reply {
        issuer: &issuer,
        redirect_uri,
        state: state_param(asked),
    };
    if client.require_par || client.fapi2 {
        return Ok(Err(reply.error(
            "invalid_request",
            "this client must push its authorization request (PAR)",
        )));
    }
    // OIDC Core §6.1: a response_type sent beside a request object is the one inside.
    let outer_type = params.get("response_type");
    if by_object && outer_type.is_some_and(|t| asked.get("response_type") != Some(t)) {
        return Ok(Err(reply.error(
            "invalid_request_object",
            "response_type outside the request object is not the one inside",
        )));
    }
    Ok(validate(asked, client)
        .map_err(|e| reply.error(e.error, e.error_description.as_deref().unwrap_or(""))))
}

/// A refusal before the request is trusted: sent to the return address the browser's
/// own parameters name if it is registered for the client (anyone may send a request
/// there with this client's id, so nothing is opened by it), else shown on a page.
fn early_refusal(
    params: &Params,
    client: &clients::ClientRow,
    issuer: &str,
    error: &str,
    description: &str,
) -> HttpResponse {
    match registered_redirect(params, client) {
        Ok(redirect_uri) => Reply {
            issuer,
            redirect_uri,
            state: state_param(params),
        }
        .error(error, description),
        Err(_) => error_page(&format!(
            "The application's request was refused ({error}): {description}."
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Prompt {
    Default,
    None,
    Login,
}

/// An authorization request that passed [`validate`]; a pushed one is kept as this.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Validated {
    pub(super) request: AuthorizeRequest,
    pub(super) prompt: Prompt,
    pub(super) max_age: Option<i64>,
    pub(super) require_mfa: bool,
    pub(super) login_hint: Option<String>,
    /// `idp_hint` (or Keycloak's `kc_idp_hint`): the upstream connector to sign in
    /// through, skipping the choice (DESIGN §16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) idp_hint: Option<String>,
    /// The `launch` value of a SMART EHR launch, as sent; taken at `/authorize`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) launch: Option<String>,
    /// `ui_locales` (OIDC Core §3.1.2.1): the languages of the sign-in's pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) ui_locales: Option<String>,
    /// `org`: the organisation whose branding the sign-in's pages show (issue 31).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) org: Option<String>,
}

impl Validated {
    /// Binds the code to come to the DPoP key a proof at `/par` was made with (RFC 9449
    /// §10.1); a `dpop_jkt` sent as well must name the same key.
    pub fn bind_dpop(&mut self, jkt: String) -> Result<(), OAuthError> {
        if self
            .request
            .dpop_jkt
            .as_ref()
            .is_some_and(|asked| *asked != jkt)
        {
            return Err(OAuthError::invalid_request(
                "dpop_jkt does not match the key of the DPoP proof",
            ));
        }
        self.request.dpop_jkt = Some(jkt);
        Ok(())
    }
}

/// Emergency access asked for (DESIGN §15), with the context labels offered; labels
/// without the request are refused, so a mistyped `acr_values` does not pass unseen.
fn emergency_ask(
    params: &Params,
    client: &clients::ClientRow,
    asked: bool,
) -> Result<Option<EmergencyAsk>, OAuthError> {
    let offered = params
        .get("emergency_context")
        .map(|raw| {
            ContextLabel::parse_offered(raw)
                .map_err(|e| OAuthError::invalid_request(format!("emergency_context: {e}")))
        })
        .transpose()?;
    match (asked, offered) {
        (false, None) => Ok(None),
        (false, Some(_)) => Err(OAuthError::invalid_request(
            "emergency_context is only meaningful with acr_values=urn:gatehouse:acr:emergency",
        )),
        (true, offered) => Ok(Some(EmergencyAsk {
            offered: offered
                .unwrap_or_default()
                .into_iter()
                .map(|l| l.as_str().to_owned())
                .collect(),
            requested_by: Some(client.client_id.clone()),
        })),
    }
}

pub fn validate(params: &Params, client: &clients::ClientRow) -> Result<Validated, OAuthError> {
    let params = params.clone().single()?;
    check_flow(&params, client)?;
    let audience = smart::named_audience(params.get("aud"), params.get("resource"))?;
    let scope = scope(&params, client, audience.is_some())?;
    if audience.is_none() && smart::asks_smart(&scope) {
        return Err(OAuthError::invalid_request(
            "SMART scopes need aud: the base URL of the FHIR server",
        ));
    }
    let launch = launch_param(&params, &scope)?;
    let code_challenge = code_challenge(&params, client)?;
    let prompt = prompt(&params)?;
    let max_age = params
        .get("max_age")
        .map(|m| {
            m.parse::<i64>()
                .ok()
                .filter(|m| (0..=10 * 365 * 86_400).contains(m))
                .ok_or_else(|| OAuthError::invalid_request("max_age must be a number of seconds"))
        })
        .transpose()?;
    let asks_acr = |class: &str| {
        params
            .get("acr_values")
            .is_some_and(|a| a.split(' ').any(|v| v == class))
    };
    let emergency = emergency_ask(&params, client, asks_acr(ACR_EMERGENCY))?;
    // Emergency access always needs a second factor (DESIGN §15).
    let require_mfa = asks_acr(session::ACR_MFA) || emergency.is_some();
    let state = params.get("state").map(str::to_owned);
    let nonce = params.get("nonce").map(str::to_owned);
    if state.as_ref().is_some_and(|s| s.len() > MAX_STATE_LEN)
        || nonce.as_ref().is_some_and(|n| n.len() > MAX_STATE_LEN)
    {
        return Err(OAuthError::invalid_request("state or nonce is too long"));
    }
    let login_hint = params
        .get("login_hint")
        .filter(|h| h.len() <= 256)
        .map(str::to_owned);
    let idp_hint = params
        .get("idp_hint")
        .or_else(|| params.get("kc_idp_hint"))
        .filter(|h| h.len() <= 64)
        .map(str::to_owned);
    let ui_locales = params
        .get("ui_locales")
        .filter(|l| l.len() <= 256)
        .map(str::to_owned);
    let org = params
        .get("org")
        .filter(|o| o.len() <= 64)
        .map(str::to_owned);
    Ok(Validated {
        request: AuthorizeRequest {
            client_id: client.client_id.clone(),
            redirect_uri: params.require("redirect_uri")?.to_owned(),
            scope,
            state,
            nonce,
            code_challenge,
            dpop_jkt: dpop_jkt(&params)?,
            emergency,
            audience: audience.map(|a| a.as_str().to_owned()),
            launch: None,
            patient: None,
            prompt_consent: params
                .get("prompt")
                .is_some_and(|p| p.split(' ').any(|v| v == "consent")),
            prompt_none: prompt == Prompt::None,
        },
        prompt,
        max_age,
        require_mfa,
        login_hint,
        idp_hint,
        launch,
        ui_locales,
        org,
    })
}

/// `launch` (SMART EHR launch): sent with the `launch` scope, and only with it.
fn launch_param(params: &Params, scope: &[String]) -> Result<Option<String>, OAuthError> {
    let launch = params.get("launch");
    match (smart::launch::asks_ehr_launch(scope), launch) {
        (true, None) => Err(OAuthError::invalid_request(
            "the launch scope needs the launch parameter the EHR gave",
        )),
        (false, Some(_)) => Err(OAuthError::new(
            "invalid_scope",
            "the launch parameter needs the launch scope",
        )),
        (_, launch) if launch.is_some_and(|l| l.len() > 128) => {
            Err(OAuthError::invalid_request("launch is not valid"))
        }
        (_, launch) => Ok(launch.map(str::to_owned)),
    }
}

/// The flow asked for is the one offered: the authorization code, answered in the query,
/// to a client allowed to use it.
fn check_flow(params: &Params, client: &clients::ClientRow) -> Result<(), OAuthError> {
    if params.require("response_type")? != "code" {
        return Err(OAuthError::new(
            "unsupported_response_type",
            "only response_type=code is supported",
        ));
    }
    if params.get("response_mode").is_some_and(|m| m != "query") {
        return Err(OAuthError::invalid_request(
            "only response_mode=query is supported",
        ));
    }
    if !client.allows_grant(GRANT_CODE) {
        return Err(OAuthError::new(
            "unauthorized_client",
            "this client may not use the authorization code flow",
        ));
    }
    Ok(())
}

/// The scopes asked for: `openid` among them, each known and allowed to the client.
/// The scopes asked for, each known and allowed to the client (a clinical scope: covered
/// by one it is registered with). `openid` must be among them, unless the request names
/// a FHIR server (`smart_app`): a SMART app may ask for clinical scopes alone.
fn scope(
    params: &Params,
    client: &clients::ClientRow,
    smart_app: bool,
) -> Result<Vec<String>, OAuthError> {
    let scope = parse_scope(params.require("scope")?)?;
    if !smart_app && !scope.iter().any(|s| s == "openid") {
        return Err(OAuthError::new(
            "invalid_scope",
            "the openid scope is required",
        ));
    }
    if let Some(e) = scope.iter().find_map(|s| SmartScope::parse(s).err()) {
        return Err(OAuthError::new("invalid_scope", e.0));
    }
    if let Some(s) = scope
        .iter()
        .find(|s| !known_scope(s) || !client.allows_scope(s))
    {
        return Err(OAuthError::new(
            "invalid_scope",
            format!("scope {s} is not available to this client"),
        ));
    }
    Ok(scope)
}

/// PKCE (RFC 7636): S256 only, and required of public clients.
fn code_challenge(
    params: &Params,
    client: &clients::ClientRow,
) -> Result<Option<String>, OAuthError> {
    let code_challenge = match (
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    ) {
        (None, None) => None,
        (Some(c), Some("S256")) => {
            if !is_sha256_base64url(c) {
                return Err(OAuthError::invalid_request("code_challenge is malformed"));
            }
            Some(c.to_owned())
        }
        (Some(_), _) => {
            return Err(OAuthError::invalid_request(
                "code_challenge_method must be S256",
            ));
        }
        (None, Some(_)) => {
            return Err(OAuthError::invalid_request("code_challenge is missing"));
        }
    };
    if client.is_public() && code_challenge.is_none() {
        return Err(OAuthError::invalid_request(
            "public clients must use PKCE (S256)",
        ));
    }
    // The FAPI 2.0 Security Profile requires PKCE with S256 of every client.
    if client.fapi2 && code_challenge.is_none() {
        return Err(OAuthError::invalid_request(
            "FAPI 2.0 clients must use PKCE (S256)",
        ));
    }
    Ok(code_challenge)
}

/// A SHA-256 digest in base64url without padding: 43 characters of its alphabet.
fn is_sha256_base64url(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `dpop_jkt` (RFC 9449 §10): the key the code will be bound to, by its RFC 7638
/// SHA-256 thumbprint; the code exchange must then prove possession of that key.
fn dpop_jkt(params: &Params) -> Result<Option<String>, OAuthError> {
    params
        .get("dpop_jkt")
        .map(|jkt| {
            is_sha256_base64url(jkt).then(|| jkt.to_owned()).ok_or_else(|| {
                OAuthError::invalid_request(
                    "dpop_jkt must be the base64url SHA-256 thumbprint of a key (43 characters)",
                )
            })
        })
        .transpose()
}

/// `prompt` (OIDC Core §3.1.2.1): `none` alone, `login`, and `consent` (asked again of a
/// client registered to ask for consent; for the others, given by registration).
fn prompt(params: &Params) -> Result<Prompt, OAuthError> {
    let mut prompt = Prompt::Default;
    let Some(raw) = params.get("prompt") else {
        return Ok(prompt);
    };
    let values: Vec<&str> = raw.split(' ').filter(|s| !s.is_empty()).collect();
    for v in &values {
        match *v {
            "none" if values.len() == 1 => prompt = Prompt::None,
            "none" => {
                return Err(OAuthError::invalid_request(
                    "prompt=none cannot be combined with other values",
                ));
            }
            "login" => prompt = Prompt::Login,
            "consent" => {}
            other => {
                return Err(OAuthError::invalid_request(format!(
                    "prompt value {other} is not supported"
                )));
            }
        }
    }
    Ok(prompt)
}
