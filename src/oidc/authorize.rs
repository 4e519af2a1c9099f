//! `/authorize` (OIDC Core §3.1.2): validates the request, then either answers at once
//! from a live SSO session or starts a login transaction that answers it later.
//!
//! The request is the query's (or form's) parameters, those of a signed request object
//! it carries (`request`, RFC 9101, see `request_object`), or a request the client pushed
//! beforehand (`request_uri`, RFC 9126, see `par`).
//!
//! Until the client and its redirect URI are known to be genuine, every error is a page
//! here (never a redirect: no open redirector). After that, errors go back to the client
//! per RFC 6749 §4.1.2.1, with `state` and `iss` (RFC 9207).

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use serde::{Deserialize, Serialize};
use url::Url;

use super::{OAuthError, Params, clients::GRANT_CODE, par, parse_scope, request_object};
use crate::web::cookies;
use crate::{
    audit::{AuditEvent, EventType, Outcome},
    auth::{
        emergency::{ACR_EMERGENCY, EmergencyAsk},
        random_token,
        session::{self, SsoSession},
        step_up::{self, SessionAsk, Standing},
        token_hash,
        transaction::Resume,
    },
    domain::ContextLabel,
    pages::login::{AnswerSignIn, Finished, SignInRequest, see_other, start_sign_in_with},
    startup::AppState,
    store::{clients, new_id, orgs},
    web::{
        RequestContext,
        error::AppError,
        pages::{PageError, continue_to, message},
    },
};

/// Longest `state` / `nonce` accepted.
const MAX_STATE_LEN: usize = 2048;
/// How long a used code is remembered, so replaying it revokes what it issued.
const USED_CODE_MEMORY: Duration = Duration::from_secs(24 * 3600);

/// A validated authorization request, carried through the login transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizeRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    /// The thumbprint of the DPoP key the code is bound to (RFC 9449 §10): the code
    /// exchange must prove possession of that key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
    /// The client asked for emergency access (`acr_values` naming
    /// `urn:gatehouse:acr:emergency`, DESIGN §15), offering these context labels
    /// (`emergency_context`, `|`-separated) to pick from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency: Option<EmergencyAsk>,
}

/// What a code stands for, kept in the ephemeral store under the code's hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeData {
    pub request: AuthorizeRequest,
    pub user_id: String,
    pub session_handle: String,
    pub auth_time: i64,
    pub amr: Vec<String>,
    /// Created when the code is exchanged; named now so a replay can revoke it.
    pub grant_id: String,
    /// The emergency window the code was issued under, when the client asked for
    /// emergency access and the session had it open (DESIGN §15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency_id: Option<String>,
    /// Unix seconds, by the application's clock.
    pub expires_at: i64,
}

pub fn code_key(code: &str) -> String {
    format!("code:{}", token_hash(code))
}

pub fn used_code_key(code: &str) -> String {
    format!("code-used:{}", token_hash(code))
}

fn error_page(text: &str) -> HttpResponse {
    message(
        StatusCode::BAD_REQUEST,
        "This sign-in link is not valid",
        text,
        None,
    )
}

/// Where an error for a genuine client goes.
struct Reply<'a> {
    issuer: &'a str,
    redirect_uri: &'a str,
    state: Option<&'a str>,
}

impl Reply<'_> {
    fn url(&self, pairs: &[(&str, &str)]) -> Option<String> {
        let mut url = Url::parse(self.redirect_uri).ok()?;
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in pairs {
                q.append_pair(k, v);
            }
            if let Some(state) = self.state {
                q.append_pair("state", state);
            }
            q.append_pair("iss", self.issuer);
        }
        Some(url.into())
    }

    fn redirect(&self, pairs: &[(&str, &str)]) -> HttpResponse {
        match self.url(pairs) {
            Some(url) => see_other(&url),
            None => error_page("The application's return address is not valid."),
        }
    }

    fn error(&self, error: &str, description: &str) -> HttpResponse {
        self.redirect(&[("error", error), ("error_description", description)])
    }
}

pub async fn authorize_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
) -> Result<HttpResponse, PageError> {
    let raw = req.query_string().as_bytes().to_vec();
    authorize(state, req, ctx, &raw).await
}

pub async fn authorize_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    match super::form_params(&req, &body) {
        Ok(_) => authorize(state, req, ctx, &body).await,
        Err(_) => Ok(error_page(
            "The request was not a form Gatehouse understands.",
        )),
    }
}

async fn authorize(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    raw: &[u8],
) -> Result<HttpResponse, PageError> {
    let params = match Params::parse(raw) {
        Ok(params) => params,
        Err(e) => {
            let why = e.error_description.unwrap_or_default();
            return Ok(error_page(&format!(
                "The request is malformed or too long ({why})."
            )));
        }
    };
    let client = match named_client(&state, &params).await? {
        Ok(client) => client,
        Err(text) => return Ok(error_page(text)),
    };
    let Validated {
        request,
        prompt,
        max_age,
        require_mfa,
        login_hint,
        idp_hint,
    } = match asked(&state, &params, &client).await? {
        Ok(asked) => asked,
        Err(refusal) => return Ok(refusal),
    };
    // From here on the request and its return address are genuine: errors go back.
    let issuer = super::discovery::issuer(&state);
    let reply = Reply {
        issuer: &issuer,
        redirect_uri: &request.redirect_uri,
        state: request.state.as_deref(),
    };

    let ask = SessionAsk {
        reauthenticate: prompt == Prompt::Login,
        max_age,
        require_mfa,
        login_hint,
        emergency: request.emergency.is_some(),
    };
    let (had_session, require_mfa, login_hint) =
        match step_up::standing(&state, cookies::presented_session(&req).as_deref(), ask).await? {
            Standing::Usable(session) => {
                return Ok(issue_code(&state, &ctx, request, &session, false).await?);
            }
            Standing::SignIn {
                had_session,
                require_mfa,
                login_hint,
            } => (had_session, require_mfa, login_hint),
        };
    if prompt == Prompt::None {
        return Ok(if had_session {
            reply.error(
                "interaction_required",
                "the user must sign in again or complete a required step",
            )
        } else {
            reply.error("login_required", "the user is not signed in")
        });
    }
    Ok(start_sign_in_with(
        &state,
        &req,
        SignInRequest {
            emergency: request.emergency.clone(),
            resume: Resume::new(RESUME, &request)?,
            require_mfa,
            login_hint,
            idp_hint,
        },
    )
    .await?)
}

/// The name authorization requests carry through a sign-in (`Resume::kind`).
pub const RESUME: &str = "authorize";

/// A finished sign-in answers the authorization request with a code.
pub struct IssueCode;

#[async_trait::async_trait(?Send)]
impl AnswerSignIn for IssueCode {
    async fn answer(&self, done: Finished<'_>) -> Result<HttpResponse, AppError> {
        issue_code(
            done.state,
            done.ctx,
            done.resume.request()?,
            done.session,
            true,
        )
        .await
    }
}

/// The registered client the request names; until it is known, errors are shown here,
/// never sent anywhere (RFC 6749 §4.1.2.1).
async fn named_client(
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
async fn asked(
    state: &AppState,
    params: &Params,
    client: &clients::ClientRow,
) -> Result<Result<Validated, HttpResponse>, AppError> {
    let issuer = super::discovery::issuer(state);
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
            let now = state.clock.now().timestamp();
            match request_object::verify(object, client, &issuer, now) {
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
enum Prompt {
    Default,
    None,
    Login,
}

/// An authorization request that passed [`validate`]; a pushed one is kept as this.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Validated {
    request: AuthorizeRequest,
    prompt: Prompt,
    max_age: Option<i64>,
    require_mfa: bool,
    login_hint: Option<String>,
    /// `idp_hint` (or Keycloak's `kc_idp_hint`): the upstream connector to sign in
    /// through, skipping the choice (DESIGN §16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    idp_hint: Option<String>,
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
    let scope = scope(&params, client)?;
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
        },
        prompt,
        max_age,
        require_mfa,
        login_hint,
        idp_hint,
    })
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
fn scope(params: &Params, client: &clients::ClientRow) -> Result<Vec<String>, OAuthError> {
    let scope = parse_scope(params.require("scope")?)?;
    if !scope.iter().any(|s| s == "openid") {
        return Err(OAuthError::new(
            "invalid_scope",
            "the openid scope is required",
        ));
    }
    if let Some(s) = scope
        .iter()
        .find(|s| !super::known_scope(s) || !client.allows_scope(s))
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

/// `prompt` (OIDC Core §3.1.2.1): `none` alone, `login`, and `consent` (given by
/// registration: clients are registered by an administrator).
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

/// The user is signed in with everything the request needs: mint a code and send the
/// browser back to the client with it (`after_form`: the request was a sign-in form's
/// submission, see `pages::continue_to`).
pub async fn issue_code(
    state: &AppState,
    ctx: &RequestContext,
    request: AuthorizeRequest,
    session: &SsoSession,
    after_form: bool,
) -> Result<HttpResponse, AppError> {
    if !org_admitted(state, ctx, &request.client_id, session).await? {
        return Ok(message(
            StatusCode::FORBIDDEN,
            "This application is not available to you",
            "The application you came from is not open to users of your organisation, so \
             Gatehouse has not signed you in to it. If you think you should have access, \
             ask your administrator.",
            None,
        ));
    }
    let code = random_token();
    // DESIGN §15: only a client that asked for emergency access gets it, and only while
    // the session's window is open.
    let emergency_id = request
        .emergency
        .as_ref()
        .and(session.open_emergency(state.clock.now().timestamp()))
        .map(|w| w.id.clone());
    let data = CodeData {
        request,
        user_id: session.user_id.clone(),
        session_handle: session.handle.clone(),
        auth_time: session.auth_time,
        amr: session.amr.clone(),
        grant_id: new_id(),
        emergency_id,
        expires_at: state.clock.now().timestamp()
            + i64::try_from(state.config.authorization_code_secs).unwrap_or(60),
    };
    let raw = serde_json::to_vec(&data).map_err(|e| AppError::Internal(e.to_string()))?;
    let ttl = Duration::from_secs(state.config.authorization_code_secs);
    state.ephemeral.set(&code_key(&code), &raw, ttl).await?;
    state
        .ephemeral
        .set(
            &used_code_key(&code),
            data.grant_id.as_bytes(),
            USED_CODE_MEMORY,
        )
        .await?;
    let event = AuditEvent::success(EventType::TokenIssued, ctx)
        .about(&data.user_id, &session.org_id)
        .detail("issued", "authorization_code")
        .detail("client_id", data.request.client_id.as_str());
    state.audit.record(event).await?;
    let issuer = super::discovery::issuer(state);
    let reply = Reply {
        issuer: &issuer,
        redirect_uri: &data.request.redirect_uri,
        state: data.request.state.as_deref(),
    };
    if after_form {
        return Ok(match reply.url(&[("code", &code)]) {
            Some(url) => continue_to(&url),
            None => error_page("The application's return address is not valid."),
        });
    }
    Ok(reply.redirect(&[("code", &code)]))
}

/// Issue 20 item 9: whether the client admits users of the session's organisation.
/// Checked after sign-in, on every code, so a user of one hospital never gets a code
/// for another's application; a refusal is recorded and answered with a page (never a
/// redirect with a code).
async fn org_admitted(
    state: &AppState,
    ctx: &RequestContext,
    client_id: &str,
    session: &SsoSession,
) -> Result<bool, AppError> {
    let (id, org_id) = (client_id.to_owned(), session.org_id.clone());
    let (client, org) = state
        .store
        .run(move |c| Ok((clients::find(c, &id)?, orgs::find_by_id(c, &org_id)?)))
        .await?;
    let admitted = match (client, org) {
        (Some(client), Some(org)) => client.allows_org(&org.name),
        _ => false,
    };
    if !admitted {
        tracing::info!(request_id = %ctx.request_id, client_id, user_id = %session.user_id, "client not open to the user's organisation");
        let event = AuditEvent::new(EventType::TokenIssued, Outcome::Failure)
            .request(ctx)
            .about(&session.user_id, &session.org_id)
            .detail("issued", "authorization_code")
            .detail("client_id", client_id);
        let reason = "organisation not allowed for this client";
        state.audit.record(event.detail("reason", reason)).await?;
    }
    Ok(admitted)
}
