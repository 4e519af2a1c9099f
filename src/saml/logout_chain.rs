//! The front-channel Single Logout chain (Profiles §4.4.3.3–4): once a session has ended,
//! each SAML SP that received an assertion in it is sent a signed LogoutRequest through
//! the browser, one after the other; each answers with a LogoutResponse at `/saml/slo`,
//! and the chain goes on. At the end the SP that started the logout gets its
//! LogoutResponse (`PartialLogout` when an SP could not be told or said no), or, when the
//! logout started at Gatehouse, the browser goes where `/logout` would have sent it.
//!
//! The session itself is over before the first SP is told: nothing an SP does (or fails
//! to do) keeps it alive. The chain's state lives in the ephemeral store under a random
//! id, which travels as the RelayState of our LogoutRequests (Bindings §3.4.3: SPs return
//! it), and expires after [`CHAIN_TTL`]. An SP that never answers does not hold the user:
//! the page that sends the browser there (and the signed-out page) offers
//! `/saml/slo/continue?chain=…`, which gives up on that SP and goes on.

use std::{collections::VecDeque, time::Duration};

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::{
    assertion::{self, LogoutSubject},
    entity_id,
    post_binding::post_page_with_self,
    providers::{self, BINDING_POST},
    request::Inbound,
    slo::{authenticated_response, go_to, redirect_location, refuse},
    soap,
    sso::{Participant, participants_key, session_index},
};
use crate::web::cookies;
use crate::{
    audit::{AuditEvent, EventType, Outcome},
    auth::{
        AuthError, random_token,
        session::{self, Ending, SessionEndListener},
        token_hash,
    },
    pages::login::signed_out_page as signed_out,
    startup::AppState,
    web::{RequestContext, error::AppError, pages::PageError},
};

/// How long a chain waits for the browser to come back from an SP.
pub const CHAIN_TTL: Duration = Duration::from_secs(600);
/// Life of our LogoutRequests (`NotOnOrAfter`).
const REQUEST_LIFETIME_SECS: i64 = 300;

fn chain_key(id: &str) -> String {
    // The id is a bearer value in URLs: only its hash names the record.
    format!("saml-slo-chain:{}", token_hash(id))
}

/// How the chain ends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Finish {
    /// SP-initiated: a LogoutResponse to the SP that asked.
    Saml {
        sp: String,
        in_response_to: String,
        relay_state: Option<String>,
    },
    /// Started at Gatehouse: this address (an OIDC client's registered
    /// post_logout_redirect_uri, with its `state`), else the signed-out page.
    Page { return_to: Option<String> },
}

/// The LogoutRequest now waiting for its answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Step {
    sp: String,
    request_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Chain {
    user_id: Option<String>,
    org_id: Option<String>,
    session_index: String,
    pending: VecDeque<Participant>,
    current: Option<Step>,
    /// An SP was not told, or did not confirm.
    partial: bool,
    /// A top-level status other than Success for the SP that asked (UnknownPrincipal).
    pub status: Option<String>,
    finish: Finish,
}

impl Chain {
    /// A chain over `others`, the session's SPs still to tell.
    pub fn new(session: &session::SsoSession, others: Vec<Participant>, finish: Finish) -> Self {
        Self {
            user_id: Some(session.user_id.clone()),
            org_id: Some(session.org_id.clone()),
            session_index: session_index(&session.handle),
            pending: others.into(),
            current: None,
            partial: false,
            status: None,
            finish,
        }
    }

    /// Nobody to tell: straight to the end.
    pub fn empty(finish: Finish) -> Self {
        Self {
            user_id: None,
            org_id: None,
            session_index: String::new(),
            pending: VecDeque::new(),
            current: None,
            partial: false,
            status: None,
            finish,
        }
    }
}

/// The session's SPs, taken off the session (so no one else tells them again).
pub async fn take_participants(
    state: &AppState,
    handle: &str,
) -> Result<Vec<Participant>, AuthError> {
    let key = participants_key(handle);
    let list = state
        .ephemeral
        .set_members(&key)
        .await?
        .iter()
        .filter_map(|m| serde_json::from_str::<Participant>(m).ok())
        .collect();
    state.ephemeral.delete(&key).await?;
    Ok(list)
}

/// SAML's part when an SSO session ends without a browser at hand (password reset, an
/// administrator's revoke, ending another of one's sessions, a session that ran out):
/// the SPs still on the session that publish a SOAP SingleLogoutService are told by the
/// back channel, through the outbox ([`super::soap`]); the others cannot be told (the
/// front channel needs the browser), and each is recorded as not told. Where a browser
/// is at hand (sign-out, SAML logout) the SPs were taken off the session first and are
/// told by the front channel (by SOAP, those that have no other endpoint).
pub struct RecordUntold;

#[async_trait::async_trait]
impl SessionEndListener for RecordUntold {
    async fn session_ended(&self, state: &AppState, ending: &Ending<'_>) -> Result<(), AuthError> {
        match *ending {
            Ending::One {
                user_id,
                handle,
                existed: true,
            } => record_untold(state, user_id, handle).await,
            Ending::AllOfUser {
                user_id, handles, ..
            } => {
                for handle in handles {
                    record_untold(state, user_id, handle).await?;
                }
                Ok(())
            }
            // Whom an expired session visited is known as long as its list lives (its
            // absolute limit): the SOAP SPs among them are told; nobody to record.
            Ending::Lapsed { handle } => {
                let sps = take_participants(state, handle).await?;
                soap::queue_logouts(state, soap::Browser::Absent, None, handle, sps).await?;
                Ok(())
            }
            Ending::One { existed: false, .. } => Ok(()),
        }
    }
}

async fn record_untold(state: &AppState, user_id: &str, handle: &str) -> Result<(), AuthError> {
    let sps = take_participants(state, handle).await?;
    for p in soap::queue_logouts(state, soap::Browser::Absent, Some(user_id), handle, sps).await? {
        state
            .audit
            .record(
                AuditEvent::new(EventType::SamlLogout, Outcome::Failure)
                    .subject(user_id)
                    .detail("sp", p.sp.as_str())
                    .detail("reason", "not_told: the session ended without a browser"),
            )
            .await?;
    }
    Ok(())
}

async fn audit_sp(
    state: &AppState,
    ctx: &RequestContext,
    chain: &Chain,
    sp: &str,
    outcome: Outcome,
    reason: &str,
) -> Result<(), AppError> {
    let mut event = AuditEvent::new(EventType::SamlLogout, outcome)
        .request(ctx)
        .detail("sp", sp)
        .detail("direction", "to_sp")
        .detail("reason", reason);
    if let Some(u) = &chain.user_id {
        event = event.subject(u);
    }
    if let Some(o) = &chain.org_id {
        event = event.org(o);
    }
    state.audit.record(event).await?;
    Ok(())
}

/// Starts telling the SPs. `after_form`: the browser just submitted one of our forms.
pub async fn start(
    state: &AppState,
    ctx: &RequestContext,
    chain: Chain,
    after_form: bool,
) -> Result<HttpResponse, AppError> {
    let id = random_token();
    let mut res = advance(state, ctx, &id, chain, after_form).await?;
    let _ = res.add_cookie(&cookies::removal_cookie());
    Ok(res)
}

/// Sends the browser to the next SP that can be told, or finishes.
async fn advance(
    state: &AppState,
    ctx: &RequestContext,
    id: &str,
    mut chain: Chain,
    after_form: bool,
) -> Result<HttpResponse, AppError> {
    while let Some(p) = chain.pending.pop_front() {
        let sp = providers::find(&state.store, &p.sp)
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let Some(endpoint) = sp.as_ref().and_then(|sp| sp.slo()).cloned() else {
            chain.partial = true;
            audit_sp(
                state,
                ctx,
                &chain,
                &p.sp,
                Outcome::Failure,
                "not_told: no SingleLogoutService by HTTP-Redirect or HTTP-POST",
            )
            .await?;
            continue;
        };
        let post = endpoint.binding == BINDING_POST;
        let key = state.saml_keys.current();
        let (request_id, xml) = assertion::logout_request(
            &entity_id(state),
            &endpoint.location,
            &LogoutSubject {
                name_id: &p.name_id,
                format: &p.format,
                session_index: &chain.session_index,
            },
            &key,
            state.clock.now(),
            chrono::Duration::seconds(REQUEST_LIFETIME_SECS),
            post,
        )?;
        chain.current = Some(Step {
            sp: p.sp.clone(),
            request_id,
        });
        save(state, id, &chain).await?;
        if post {
            return Ok(post_page_with_self(
                &endpoint.location,
                "SAMLRequest",
                &assertion::encode(&xml),
                Some(id),
                Some(&continue_url(id)),
            ));
        }
        let location = redirect_location(&endpoint.location, "SAMLRequest", &xml, Some(id), state)?;
        return Ok(go_to(&location, after_form));
    }
    state.ephemeral.delete(&chain_key(id)).await?;
    finish(state, ctx, chain, after_form).await
}

async fn save(state: &AppState, id: &str, chain: &Chain) -> Result<(), AppError> {
    let bytes = serde_json::to_vec(chain).map_err(|e| AppError::Internal(e.to_string()))?;
    state
        .ephemeral
        .set(&chain_key(id), &bytes, CHAIN_TTL)
        .await?;
    Ok(())
}

fn continue_url(id: &str) -> String {
    let enc: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
    format!("/saml/slo/continue?chain={enc}")
}

/// The end of the chain: the asking SP's LogoutResponse, or the page after sign-out.
pub async fn finish(
    state: &AppState,
    _ctx: &RequestContext,
    chain: Chain,
    after_form: bool,
) -> Result<HttpResponse, AppError> {
    match chain.finish {
        Finish::Page { return_to } => Ok(match return_to {
            Some(url) => {
                let mut res = go_to(&url, after_form);
                let _ = res.add_cookie(&cookies::removal_cookie());
                res
            }
            None => signed_out(),
        }),
        Finish::Saml {
            sp,
            in_response_to,
            relay_state,
        } => {
            let found = providers::find(&state.store, &sp)
                .await
                .map_err(|e| AppError::Internal(e.to_string()))?;
            let Some(endpoint) = found.as_ref().and_then(|sp| sp.slo()).cloned() else {
                // Deregistered while the chain ran: nowhere to answer to.
                return Ok(signed_out());
            };
            let destination = endpoint
                .response_location
                .clone()
                .unwrap_or_else(|| endpoint.location.clone());
            let post = endpoint.binding == BINDING_POST;
            let (code, sub, text) = match &chain.status {
                Some(code) => (
                    code.as_str(),
                    None,
                    Some("The request does not name this browser's session."),
                ),
                None if chain.partial => (
                    assertion::STATUS_SUCCESS,
                    Some(assertion::STATUS_PARTIAL_LOGOUT),
                    Some("Not every application of the session confirmed the sign-out."),
                ),
                None => (assertion::STATUS_SUCCESS, None, None),
            };
            let key = state.saml_keys.current();
            let xml = assertion::logout_response(
                &entity_id(state),
                &destination,
                &in_response_to,
                code,
                sub,
                text,
                &key,
                state.clock.now(),
                post,
            )?;
            if post {
                return Ok(post_page_with_self(
                    &destination,
                    "SAMLResponse",
                    &assertion::encode(&xml),
                    relay_state.as_deref(),
                    None,
                ));
            }
            let location = redirect_location(
                &destination,
                "SAMLResponse",
                &xml,
                relay_state.as_deref(),
                state,
            )?;
            Ok(go_to(&location, after_form))
        }
    }
}

/// A LogoutResponse from an SP we sent a LogoutRequest to.
pub async fn receive_response(
    state: &AppState,
    ctx: &RequestContext,
    inbound: &Inbound,
) -> Result<HttpResponse, PageError> {
    let Some(id) = inbound.relay_state.clone() else {
        return refuse(
            state,
            ctx,
            None,
            "The sign-out answer does not belong to a sign-out in progress.",
        )
        .await;
    };
    // Taken, not read: two answers racing each other cannot both move the chain.
    let Some(bytes) = state.ephemeral.take(&chain_key(&id)).await? else {
        // Finished, given up on, or expired: the session ended long ago.
        return Ok(signed_out());
    };
    let Ok(mut chain) = serde_json::from_slice::<Chain>(&bytes) else {
        return Err(AppError::Internal("damaged SAML logout chain".into()).into());
    };
    let Some(step) = chain.current.clone() else {
        save(state, &id, &chain).await?;
        return refuse(state, ctx, None, "No answer was expected.").await;
    };
    let checked = async {
        let sp = providers::find(&state.store, &step.sp)
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?
            .ok_or_else(|| {
                AppError::BadRequest("The application is no longer registered.".into())
            })?;
        let response = authenticated_response(inbound, &sp, &super::slo::slo_url(state))
            .await
            .map_err(|e| AppError::BadRequest(e.to_string()))?;
        if response.in_response_to.as_deref() != Some(step.request_id.as_str()) {
            return Err(AppError::BadRequest(
                "The answer is not to the sign-out request Gatehouse sent.".into(),
            ));
        }
        Ok::<_, AppError>(response)
    }
    .await;
    let response = match checked {
        Ok(r) => r,
        Err(AppError::BadRequest(text)) => {
            // A forged or stray answer must not derail the real one: the chain stays.
            save(state, &id, &chain).await?;
            return refuse(state, ctx, Some(&step.sp), &text).await;
        }
        Err(e) => return Err(e.into()),
    };
    let code = response
        .status
        .as_ref()
        .and_then(|s| s.status_code.value.clone())
        .unwrap_or_default();
    chain.current = None;
    if code == assertion::STATUS_SUCCESS {
        audit_sp(state, ctx, &chain, &step.sp, Outcome::Success, "confirmed").await?;
    } else {
        chain.partial = true;
        audit_sp(
            state,
            ctx,
            &chain,
            &step.sp,
            Outcome::Failure,
            &format!("answered {code}"),
        )
        .await?;
    }
    Ok(advance(state, ctx, &id, chain, false).await?)
}

#[derive(Deserialize)]
pub struct ContinueQuery {
    chain: String,
}

/// `/saml/slo/continue?chain=…`: the person gives up waiting for the SP in hand.
pub async fn slo_continue(
    state: web::Data<AppState>,
    ctx: RequestContext,
    query: web::Query<ContinueQuery>,
) -> Result<HttpResponse, PageError> {
    let state = state.get_ref();
    if query.chain.len() > 128 {
        return Ok(signed_out());
    }
    let Some(bytes) = state.ephemeral.take(&chain_key(&query.chain)).await? else {
        return Ok(signed_out());
    };
    let Ok(mut chain) = serde_json::from_slice::<Chain>(&bytes) else {
        return Err(AppError::Internal("damaged SAML logout chain".into()).into());
    };
    if let Some(step) = chain.current.take() {
        chain.partial = true;
        audit_sp(
            state,
            &ctx,
            &chain,
            &step.sp,
            Outcome::Failure,
            "no_answer: the person went on without it",
        )
        .await?;
    }
    Ok(advance(state, &ctx, &query.chain, chain, false).await?)
}
