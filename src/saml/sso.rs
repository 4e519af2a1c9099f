//! `/saml/sso` (SP-initiated, HTTP-Redirect and HTTP-POST) and `/saml/sso/init`
//! (IdP-initiated): validate the AuthnRequest, answer from a live session or start a
//! login transaction, and send the Response back by the POST binding.
//!
//! Until the SP and its ACS URL are known to be genuine every error is a page here
//! (never a POST: no assertion or status goes to an address we did not register). After
//! that, errors go back to the SP as a Response with a status (Core §3.2.2.2).

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use samael::schema::AuthnRequest;
use serde::{Deserialize, Serialize};

use super::{
    acceptance::{Refusal, STALE, first_use, is_fresh, registered_sp},
    assertion::{self, Person, Statement},
    attributes, entity_id, name_id,
    post_binding::post_page,
    providers::{self, ServiceProvider},
    request::{self, Binding, MessageError},
    sso_url,
};
use crate::web::cookies;
use crate::{
    audit::{AuditEvent, EventType, Outcome},
    auth::{
        emergency::{ACR_EMERGENCY, EmergencyAsk},
        session::{self, SsoSession},
        step_up::{self, SessionAsk, Standing},
        token_hash,
        transaction::Resume,
    },
    pages::login::{AnswerSignIn, Finished, SignInRequest, start_sign_in_with},
    startup::AppState,
    store::users,
    web::{
        RequestContext,
        error::AppError,
        pages::{PageError, in_readers_language, message},
        visit::{Answer, Visit},
    },
};

/// Context classes an SP can ask for that mean "a second factor" (DESIGN §6).
const MFA_CONTEXTS: &[&str] = &[
    assertion::AC_MFA,
    session::ACR_MFA,
    "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorUnregistered",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken",
    "http://schemas.microsoft.com/claims/multipleauthn",
];

/// A validated request, carried through the login transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamlRequest {
    pub sp: String,
    /// The AuthnRequest's ID; none for IdP-initiated SSO.
    pub request_id: Option<String>,
    pub acs_url: String,
    pub relay_state: Option<String>,
    /// The NameID format its `NameIDPolicy` asked for (checked on the way in); none:
    /// the SP's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_id_format: Option<String>,
    /// The SP asked for emergency access (its `RequestedAuthnContext` names
    /// `urn:gatehouse:acr:emergency`, DESIGN §15).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub emergency: bool,
}

/// A refused AuthnRequest; `text` is the protocol's words for the developer.
fn refused_page(text: &str) -> HttpResponse {
    let text = text.to_owned();
    in_readers_language(move |tr| {
        let (title, said) = (
            tr.t("sign-in-request-invalid"),
            tr.a("protocol-refusal", "detail", &text),
        );
        message(tr, StatusCode::BAD_REQUEST, &title, &said, None)
    })
}

async fn audit_refusal(
    state: &AppState,
    ctx: &RequestContext,
    sp: Option<&str>,
    reason: &str,
) -> Result<(), AppError> {
    let mut event = AuditEvent::new(EventType::AssertionIssued, Outcome::Failure)
        .request(ctx)
        .detail("reason", reason);
    if let Some(sp) = sp {
        event = event.detail("sp", sp);
    }
    state.audit.record(event).await?;
    Ok(())
}

/// A refusal before the SP's return address is trusted: a page, and an audit event.
async fn refuse(
    state: &AppState,
    ctx: &RequestContext,
    sp: Option<&str>,
    text: &str,
) -> Result<HttpResponse, PageError> {
    tracing::info!(request_id = %ctx.request_id, sp = ?sp, reason = %text, "SAML request refused");
    audit_refusal(state, ctx, sp, text).await?;
    Ok(refused_page(text))
}

/// `/saml/sso` by either binding: HTTP-Redirect (GET) or HTTP-POST.
pub async fn sso(body: web::Bytes, Visit { state, req, ctx }: Visit) -> Answer {
    let Some((raw, binding)) = request::raw_message(&req, &body) else {
        return refuse(&state, &ctx, None, request::NOT_A_FORM).await;
    };
    receive(&state, &req, &ctx, raw, binding).await
}

/// Checks a decoded AuthnRequest's signature per SP and returns the request to act on.
async fn authenticated(
    inbound: &request::Inbound,
    unverified: AuthnRequest,
    sp: &ServiceProvider,
) -> Result<AuthnRequest, MessageError> {
    match inbound.binding {
        Binding::Redirect => {
            // Bindings §3.4.4.1: with Redirect the signature is in the query.
            if inbound.query_signed || sp.require_signed_requests {
                let raw = inbound.raw_query.as_deref().unwrap_or("");
                request::verify_query_signature(raw, "SAMLRequest", &sp.signing_certs)?;
            }
            Ok(unverified)
        }
        Binding::Post => {
            // Unsigned only if no signature is anywhere in it: one that is not directly in
            // the message was already refused as wrapping (`dsig::inspect`).
            if unverified.signature.is_none() && !inbound.shape.signed {
                return if sp.require_signed_requests {
                    Err(MessageError::Unsigned)
                } else {
                    Ok(unverified)
                };
            }
            let xml = request::verified_element(&inbound.xml, &sp.signing_certs).await?;
            let verified: AuthnRequest = xml
                .parse()
                .map_err(|_| MessageError::Parse("AuthnRequest"))?;
            let same_issuer = verified.issuer.as_ref().and_then(|i| i.value.as_deref())
                == Some(sp.entity_id.as_str());
            if verified.id != unverified.id || !same_issuer {
                return Err(MessageError::Wrapped);
            }
            Ok(verified)
        }
    }
}

async fn receive(
    state: &AppState,
    req: &HttpRequest,
    ctx: &RequestContext,
    raw: &str,
    binding: Binding,
) -> Result<HttpResponse, PageError> {
    let accepted = match accept(state, raw, binding).await? {
        Ok(accepted) => accepted,
        Err(refusal) => {
            let mut page = refuse(state, ctx, refusal.sp.as_deref(), &refusal.text).await?;
            *page.status_mut() = refusal.status;
            return Ok(page);
        }
    };
    let Accepted {
        sp,
        request,
        mut saml,
    } = accepted;
    // From here on the SP and its ACS are genuine: errors go back to it. Core §3.4.1.1:
    // a NameID format the SP may not have is refused, not swapped for another.
    let asked = request
        .name_id_policy
        .as_ref()
        .and_then(|p| p.format.clone());
    if name_id::for_request(&sp, asked.as_deref()).is_none() {
        return Ok(name_id_refused(state, ctx, &sp, &saml).await?);
    }
    saml.name_id_format = asked;
    let requested = |classes: &[&str]| {
        request
            .requested_authn_context
            .as_ref()
            .and_then(|r| r.authn_context_class_refs.as_ref())
            .is_some_and(|refs| {
                refs.iter()
                    .filter_map(|r| r.value.as_deref())
                    .any(|v| classes.contains(&v.trim()))
            })
    };
    saml.emergency = requested(&[ACR_EMERGENCY]);
    // Emergency access always needs a second factor (DESIGN §15).
    let require_mfa = requested(MFA_CONTEXTS) || saml.emergency;
    let ask = SessionAsk {
        // ForceAuthn (Core §3.4.1): the person signs in again whatever their session.
        reauthenticate: request.force_authn == Some(true),
        max_age: None,
        require_mfa,
        login_hint: request
            .subject
            .as_ref()
            .and_then(|s| s.name_id.as_ref())
            .map(|n| n.value.clone())
            .filter(|v| v.len() <= 256),
        emergency: saml.emergency,
    };
    let passive = request.is_passive == Some(true);
    answer(state, req, ctx, &sp, saml, ask, passive).await
}

/// An AuthnRequest that passed every check, from a registered SP, to one of its ACSs.
struct Accepted {
    sp: ServiceProvider,
    request: AuthnRequest,
    saml: SamlRequest,
}

/// Decodes, authenticates and checks an AuthnRequest; `Err` (inner) is a refusal.
async fn accept(
    state: &AppState,
    raw: &str,
    binding: Binding,
) -> Result<Result<Accepted, Refusal>, AppError> {
    let inbound = match request::decode(raw, "SAMLRequest", binding) {
        Ok(i) => i,
        Err(e) => return Ok(Err(Refusal::new(None, e.to_string()))),
    };
    let Ok(unverified) = inbound.xml.parse::<AuthnRequest>() else {
        return Ok(Err(Refusal::new(
            None,
            "The SAML message is not a valid AuthnRequest.",
        )));
    };
    let sp = match registered_sp(state, unverified.issuer.as_ref()).await? {
        Ok(sp) => sp,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let request = match authenticated(&inbound, unverified, &sp).await {
        Ok(r) => r,
        Err(e) => return Ok(Err(Refusal::message(Some(&sp.entity_id), &e))),
    };
    let acs_url = match check(state, &inbound, &request, &sp).await? {
        Ok(acs_url) => acs_url,
        Err(text) => return Ok(Err(Refusal::new(Some(&sp.entity_id), text))),
    };
    let saml = SamlRequest {
        sp: sp.entity_id.clone(),
        request_id: Some(request.id.clone()),
        acs_url,
        relay_state: inbound.relay_state.clone(),
        name_id_format: None,
        emergency: false,
    };
    Ok(Ok(Accepted { sp, request, saml }))
}

/// The checks of an authenticated AuthnRequest (Core §3.4, Profiles §4.1.4): version,
/// age, Destination, ID, a registered ACS, the binding, and never twice. Returns the
/// ACS to answer at; `Err` (inner) says why not.
async fn check(
    state: &AppState,
    inbound: &request::Inbound,
    request: &AuthnRequest,
    sp: &ServiceProvider,
) -> Result<Result<String, std::borrow::Cow<'static, str>>, AppError> {
    if request.version != "2.0" {
        return Ok(Err("Only SAML 2.0 requests are accepted.".into()));
    }
    if !is_fresh(state, request.issue_instant) {
        return Ok(Err(STALE.into()));
    }
    if let Err(e) = request::check_destination(
        request.destination.as_deref(),
        inbound.signed(),
        &sso_url(state),
    ) {
        return Ok(Err(e.to_string().into()));
    }
    if request.id.is_empty() || request.id.len() > 256 {
        return Ok(Err("The request has no valid ID.".into()));
    }
    let Some(acs) = sp.acs(
        request.assertion_consumer_service_url.as_deref(),
        request.assertion_consumer_service_index,
    ) else {
        return Ok(Err("The return address (AssertionConsumerServiceURL) is not registered for this application.".into()));
    };
    if request
        .protocol_binding
        .as_deref()
        .is_some_and(|b| b != providers::BINDING_POST)
    {
        return Ok(Err(
            "Gatehouse answers by the HTTP-POST binding only.".into()
        ));
    }
    // Never twice (DESIGN §10).
    if !first_use(state, "saml-authn", &sp.entity_id, &request.id).await? {
        return Ok(Err("This sign-in request was already used.".into()));
    }
    Ok(Ok(acs.location.clone()))
}

/// Answers from a live session when it is good enough, else starts a sign-in (or, for a
/// passive request, says NoPassive).
async fn answer(
    state: &AppState,
    req: &HttpRequest,
    ctx: &RequestContext,
    sp: &ServiceProvider,
    saml: SamlRequest,
    ask: SessionAsk,
    passive: bool,
) -> Result<HttpResponse, PageError> {
    // The organisation's MFA policy as it is now applies as at /authorize and the console.
    let (require_mfa, login_hint) =
        match step_up::standing(state, cookies::presented_session(req).as_deref(), ask).await? {
            Standing::Usable(session) => return Ok(respond(state, ctx, saml, &session).await?),
            Standing::SignIn {
                require_mfa,
                login_hint,
                ..
            } => (require_mfa, login_hint),
        };
    // IsPassive: no page at all, whatever is missing (Core §3.4.1).
    if passive {
        let text = if require_mfa {
            "the user must sign in with a second factor"
        } else {
            "the user is not signed in"
        };
        return Ok(fail(state, ctx, sp, &saml, assertion::STATUS_NO_PASSIVE, text).await?);
    }
    Ok(start_sign_in_with(
        state,
        req,
        SignInRequest {
            emergency: saml.emergency.then(|| EmergencyAsk {
                offered: Vec::new(),
                requested_by: Some(saml.sp.clone()),
            }),
            resume: Resume::new(RESUME, &saml)?,
            ui_locales: None,
            app: Some(saml.sp.clone()),
            org_hint: None,
            require_mfa,
            login_hint,
            idp_hint: None,
        },
    )
    .await?)
}

/// The name SAML requests carry through a sign-in (`Resume::kind`).
pub const RESUME: &str = "saml";

/// A finished sign-in answers the SP with a Response.
pub struct RespondToSp;

#[async_trait::async_trait(?Send)]
impl AnswerSignIn for RespondToSp {
    async fn answer(&self, done: Finished<'_>) -> Result<HttpResponse, AppError> {
        respond(done.state, done.ctx, done.resume.request()?, done.session).await
    }
}

#[derive(Deserialize)]
pub struct InitQuery {
    sp: Option<String>,
    #[serde(rename = "RelayState")]
    relay_state: Option<String>,
}

/// IdP-initiated SSO (Profiles §4.1.5): an unsolicited Response to the SP's default ACS.
pub async fn sso_init(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    query: web::Query<InitQuery>,
) -> Result<HttpResponse, PageError> {
    let query = query.into_inner();
    let Some(entity) = query.sp.filter(|s| !s.is_empty()) else {
        return refuse(
            &state,
            &ctx,
            None,
            "The link does not say which application to open.",
        )
        .await;
    };
    if query
        .relay_state
        .as_ref()
        .is_some_and(|r| r.len() > request::MAX_RELAY_STATE)
    {
        return refuse(&state, &ctx, None, "The RelayState is too long.").await;
    }
    let sp = match providers::find(&state.store, &entity).await {
        Ok(Some(sp)) => sp,
        Ok(None) => {
            return refuse(
                &state,
                &ctx,
                None,
                "The application is not registered with Gatehouse.",
            )
            .await;
        }
        Err(e) => return Err(AppError::Internal(e.to_string()).into()),
    };
    // Issue 20 item 12: only for an SP that opted in, and only to a RelayState it
    // registered; a link on any site reaches this endpoint.
    if let Err(refusal) = sp.idp_initiated_allows(query.relay_state.as_deref()) {
        return refuse(&state, &ctx, Some(&sp.entity_id), &refusal.to_string()).await;
    }
    let Some(acs) = sp.default_acs() else {
        return refuse(
            &state,
            &ctx,
            Some(&sp.entity_id),
            "The application has no return address.",
        )
        .await;
    };
    let saml = SamlRequest {
        sp: sp.entity_id.clone(),
        request_id: None,
        acs_url: acs.location.clone(),
        relay_state: query.relay_state,
        name_id_format: None,
        emergency: false,
    };
    answer(&state, &req, &ctx, &sp, saml, SessionAsk::default(), false).await
}

/// The SessionIndex of an SSO session (the same for every SP of it; opaque).
pub fn session_index(handle: &str) -> String {
    format!("_{}", &token_hash(&format!("saml-session:{handle}"))[..40])
}

/// An SP this session has an assertion at, for Single Logout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub sp: String,
    pub name_id: String,
    pub format: String,
}

pub fn participants_key(handle: &str) -> String {
    format!("saml-sps:{handle}")
}

/// The person is signed in with everything the request needs: the Response page.
pub async fn respond(
    state: &AppState,
    ctx: &RequestContext,
    saml: SamlRequest,
    session: &SsoSession,
) -> Result<HttpResponse, AppError> {
    let Some(sp) = providers::find(&state.store, &saml.sp)
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
    else {
        return Ok(refused_page(
            "The application is no longer registered with Gatehouse.",
        ));
    };
    // The ACS was checked on the way in; the registration may have changed meanwhile.
    if !sp.acs.iter().any(|e| e.location == saml.acs_url) {
        return Ok(refused_page(
            "The return address is no longer registered for this application.",
        ));
    }
    // So may its IdP-initiated opt-in, while the person was signing in.
    if saml.request_id.is_none()
        && let Err(refusal) = sp.idp_initiated_allows(saml.relay_state.as_deref())
    {
        return Ok(refused_page(&refusal.to_string()));
    }
    let person = person(state, &session.user_id).await?;
    // Its NameID formats may have changed too.
    let Some((format, source)) = name_id::for_request(&sp, saml.name_id_format.as_deref()) else {
        return name_id_refused(state, ctx, &sp, &saml).await;
    };
    let name_id = name_id::value(&state.master_key, source, &sp, &person);
    let xml = sign_statement(state, &saml, &sp, &person, (&name_id, &format), session)?;
    remember_participant(state, session, &sp, name_id, format).await?;
    state
        .audit
        .record(
            AuditEvent::new(EventType::AssertionIssued, Outcome::Success)
                .request(ctx)
                .subject(&person.user_id)
                .org(&session.org_id)
                .detail("sp", sp.entity_id.as_str())
                .detail("acr", assertion::authn_context(&session.amr))
                .detail("idp_initiated", saml.request_id.is_none())
                .detail("encrypted", sp.encrypt_assertions),
        )
        .await?;
    Ok(post_page(
        &saml.acs_url,
        "SAMLResponse",
        &assertion::encode(&xml),
        saml.relay_state.as_deref(),
    ))
}

/// Who the assertion is about, as they are now.
async fn person(state: &AppState, user_id: &str) -> Result<Person, AppError> {
    let user_id = user_id.to_owned();
    let pii = state.pii.clone();
    let (user, org) = state
        .store
        .run(move |c| users::find_with_org(c, &pii, &user_id))
        .await?;
    Ok(Person {
        user_id: user.id,
        username: user.username,
        email: user.email,
        display_name: user.display_name,
        role: user.role,
        organisation: org.name,
    })
}

/// The signed (and, if the SP asked, encrypted) Response for `person`.
fn sign_statement(
    state: &AppState,
    saml: &SamlRequest,
    sp: &ServiceProvider,
    person: &Person,
    (subject, name_id_format): (&str, &str),
    session: &SsoSession,
) -> Result<String, AppError> {
    let now = state.clock.now();
    let pairwise_id = name_id::pairwise(&state.master_key, &sp.entity_id, &person.user_id);
    let scope = attributes::scope(&state.config);
    let auth_time = chrono::DateTime::from_timestamp(session.auth_time, 0).unwrap_or(now);
    let issuer = entity_id(state);
    let index = session_index(&session.handle);
    let statement = Statement {
        issuer: &issuer,
        sp,
        acs_url: &saml.acs_url,
        in_response_to: saml.request_id.as_deref(),
        person,
        name_id: subject,
        name_id_format,
        release: attributes::Context {
            scope: &scope,
            pairwise_id: &pairwise_id,
        },
        auth_time,
        amr: &session.amr,
        session_index: &index,
        session_ends: chrono::DateTime::from_timestamp(session.ends_by(now.timestamp()), 0)
            .unwrap_or(now),
        now,
        lifetime: chrono::Duration::seconds(
            i64::try_from(state.config.saml_assertion_secs).unwrap_or(300),
        ),
        // DESIGN §15: only an SP that asked, and only while the window is open.
        emergency: saml
            .emergency
            .then(|| session.open_emergency(now.timestamp()))
            .flatten(),
    };
    // One RSA signature (two with a signed Response): about a millisecond, cheap enough
    // for the async worker, unlike password hashing.
    assertion::success(&statement, &state.saml_keys.current())
}

/// Notes the SP on the session, for single logout (Profiles §4.4).
async fn remember_participant(
    state: &AppState,
    session: &SsoSession,
    sp: &ServiceProvider,
    name_id: String,
    format: String,
) -> Result<(), AppError> {
    let participant = Participant {
        sp: sp.entity_id.clone(),
        name_id,
        format,
    };
    let member =
        serde_json::to_string(&participant).map_err(|e| AppError::Internal(e.to_string()))?;
    state
        .ephemeral
        .set_add(
            &participants_key(&session.handle),
            &member,
            Duration::from_secs(session.absolute_secs.max(1)),
        )
        .await?;
    // The list above is not swept: a session that runs out unnoticed is told to SOAP
    // SPs from a durable copy.
    super::lapsed::remember(state, session, sp, &participant).await
}

/// The answer to a request for a NameID format the SP may not have (Core §3.4.1.1).
async fn name_id_refused(
    state: &AppState,
    ctx: &RequestContext,
    sp: &ServiceProvider,
    saml: &SamlRequest,
) -> Result<HttpResponse, AppError> {
    fail(
        state,
        ctx,
        sp,
        saml,
        assertion::STATUS_INVALID_NAMEID_POLICY,
        "this application may not have the NameID format it asked for",
    )
    .await
}

/// An error Response to a genuine SP's ACS (Requester/<sub>).
async fn fail(
    state: &AppState,
    ctx: &RequestContext,
    sp: &ServiceProvider,
    saml: &SamlRequest,
    sub: &str,
    text: &str,
) -> Result<HttpResponse, AppError> {
    let xml = assertion::failure(
        &entity_id(state),
        sp,
        &saml.acs_url,
        saml.request_id.as_deref(),
        assertion::STATUS_REQUESTER,
        sub,
        text,
        &state.saml_keys.current(),
        state.clock.now(),
    )?;
    audit_refusal(state, ctx, Some(&sp.entity_id), sub).await?;
    Ok(post_page(
        &saml.acs_url,
        "SAMLResponse",
        &assertion::encode(&xml),
        saml.relay_state.as_deref(),
    ))
}
