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

mod fhir_target;
mod request;

pub use request::{Validated, validate};

use request::{Prompt, asked, named_client};

use super::{
    Params,
    smart::{self, EhrLaunch, Granted, SmartGrant},
};
use crate::web::cookies;
use crate::{
    audit::{AuditEvent, EventType, Outcome},
    auth::{
        emergency::EmergencyAsk,
        random_token,
        session::SsoSession,
        step_up::{self, SessionAsk, Standing},
        token_hash,
        transaction::Resume,
    },
    pages::login::{AnswerSignIn, Finished, SignInRequest, see_other, start_sign_in_with},
    startup::AppState,
    store::{clients, new_id, orgs},
    web::{
        RequestContext,
        error::AppError,
        pages::{PageError, continue_to, in_readers_language, message},
    },
};

/// Longest `state` / `nonce` accepted.
pub(super) const MAX_STATE_LEN: usize = 2048;
/// How long a used code is remembered, so replaying it revokes what it issued.
const USED_CODE_MEMORY: Duration = Duration::from_secs(24 * 3600);

/// A validated authorization request, carried through the login transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// The FHIR server the tokens are for (`aud` or `resource`, DESIGN §18), by its
    /// registered base URL; None: they are for the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// The EHR launch the request brought (`launch`), taken from the ephemeral store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<EhrLaunch>,
    /// The patient the user chose in the patient picker (a standalone launch's
    /// `launch/patient`, `smart::picker`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    /// `prompt=consent`: a client that asks for consent asks again, whatever was
    /// remembered (DESIGN §18).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prompt_consent: bool,
    /// `prompt=none`: no page may be shown, a question included.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prompt_none: bool,
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
    /// A SMART app's grant: its FHIR server, launch context and `fhirUser`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smart: Option<SmartGrant>,
}

pub fn code_key(code: &str) -> String {
    format!("code:{}", token_hash(code))
}

pub fn used_code_key(code: &str) -> String {
    format!("code-used:{}", token_hash(code))
}

/// A request refused before it is trusted; `text` is the protocol's own words for the
/// application's developer.
pub(super) fn error_page(text: &str) -> HttpResponse {
    let text = text.to_owned();
    in_readers_language(move |tr| {
        let title = tr.t("sign-in-link-invalid");
        let said = tr.a("protocol-refusal", "detail", &text);
        message(tr, StatusCode::BAD_REQUEST, &title, &said, None)
    })
}

/// Where an error for a genuine client goes.
pub(super) struct Reply<'a> {
    pub(super) issuer: &'a str,
    pub(super) redirect_uri: &'a str,
    pub(super) state: Option<&'a str>,
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

    pub(super) fn error(&self, error: &str, description: &str) -> HttpResponse {
        self.redirect(&[("error", error), ("error_description", description)])
    }

    /// The browser sent back with `pairs`; after a sign-in form's submission by a page
    /// that continues there (see `pages::continue_to`), else by a redirect.
    fn answer(&self, pairs: &[(&str, &str)], after_form: bool) -> HttpResponse {
        if !after_form {
            return self.redirect(pairs);
        }
        match self.url(pairs) {
            Some(url) => continue_to(&url),
            None => error_page("The application's return address is not valid."),
        }
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
        mut request,
        prompt,
        max_age,
        require_mfa,
        login_hint,
        idp_hint,
        launch,
        ui_locales,
        org,
    } = match asked(&state, &params, &client).await? {
        Ok(asked) => asked,
        Err(refusal) => return Ok(refusal),
    };
    // From here on the request and its return address are genuine: errors go back.
    let resolved = fhir_target::resolve(&state, &mut request, launch.as_deref()).await?;
    let issuer = super::discovery::issuer(&state);
    let reply = Reply {
        issuer: &issuer,
        redirect_uri: &request.redirect_uri,
        state: request.state.as_deref(),
    };
    if let Err(refused) = resolved {
        let why = refused.error_description.as_deref().unwrap_or("");
        return Ok(reply.error(refused.error, why));
    }

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
            ui_locales,
            // The `org` asked for, else the one organisation the client is open to.
            org_hint: org.or_else(|| match client.allowed_org_list().as_deref() {
                Some([only]) => Some(only.clone()),
                _ => None,
            }),
            app: Some(client.client_id.clone()),
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

/// The user is signed in with everything the request needs: mint a code and send the
/// browser back to the client with it (`after_form`: the request was a sign-in form's
/// submission, see `pages::continue_to`).
pub async fn issue_code(
    state: &AppState,
    ctx: &RequestContext,
    mut request: AuthorizeRequest,
    session: &SsoSession,
    after_form: bool,
) -> Result<HttpResponse, AppError> {
    let Some(client) = org_admitted(state, ctx, &request.client_id, session).await? else {
        return Ok(in_readers_language(|tr| {
            let (title, text) = (tr.t("app-not-for-you"), tr.t("app-not-for-you-text"));
            message(tr, StatusCode::FORBIDDEN, &title, &text, None)
        }));
    };
    // DESIGN §18: an app that must ask gets what the person allowed, once they have.
    let remembered = if request.prompt_consent && client.ask_consent {
        None
    } else {
        super::consent::decided(state, &client, &session.user_id, &request.scope).await?
    };
    match remembered {
        Some(allowed) => request.scope = allowed,
        None if request.prompt_none => {
            let why = "the user has not allowed this app yet";
            return Ok(refuse(state, &request, "consent_required", why, after_form));
        }
        None => {
            let path = super::consent::ask(state, request, session).await?;
            return Ok(if after_form {
                continue_to(&path)
            } else {
                see_other(&path)
            });
        }
    }
    let issuer = super::discovery::issuer(state);
    let smart = match &request.audience {
        None => None,
        Some(audience) => {
            let (launch, picked) = (request.launch.as_ref(), request.patient.as_deref());
            let user = session.user_id.as_str();
            match smart::grant_for(state, audience, launch, picked, &request.scope, user).await? {
                Granted::Grant(grant) => Some(grant),
                Granted::PickPatient => {
                    let path = smart::picker::start(state, request, session).await?;
                    return Ok(if after_form {
                        continue_to(&path)
                    } else {
                        see_other(&path)
                    });
                }
                Granted::Refused(why) => {
                    return Ok(refuse(state, &request, "access_denied", why, after_form));
                }
            }
        }
    };
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
        smart,
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
    let reply = Reply {
        issuer: &issuer,
        redirect_uri: &data.request.redirect_uri,
        state: data.request.state.as_deref(),
    };
    Ok(reply.answer(&[("code", &code)], after_form))
}

/// Sends the browser back to the client of a genuine `request` with `error` (after a
/// form's submission when `after_form`).
pub fn refuse(
    state: &AppState,
    request: &AuthorizeRequest,
    error: &str,
    description: &str,
    after_form: bool,
) -> HttpResponse {
    let issuer = super::discovery::issuer(state);
    let reply = Reply {
        issuer: &issuer,
        redirect_uri: &request.redirect_uri,
        state: request.state.as_deref(),
    };
    reply.answer(
        &[("error", error), ("error_description", description)],
        after_form,
    )
}

/// Issue 20 item 9: the client, if it admits users of the session's organisation.
/// Checked after sign-in, on every code, so a user of one hospital never gets a code
/// for another's application; a refusal is recorded and answered with a page (never a
/// redirect with a code).
async fn org_admitted(
    state: &AppState,
    ctx: &RequestContext,
    client_id: &str,
    session: &SsoSession,
) -> Result<Option<clients::ClientRow>, AppError> {
    let (id, org_id) = (client_id.to_owned(), session.org_id.clone());
    let (client, org) = state
        .store
        .run(move |c| Ok((clients::find(c, &id)?, orgs::find_by_id(c, &org_id)?)))
        .await?;
    let admitted = match (client, org) {
        (Some(client), Some(org)) => Some(client).filter(|c| c.allows_org(&org.name)),
        _ => None,
    };
    if admitted.is_none() {
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
