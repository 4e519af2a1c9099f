//! Ending sessions for relying parties: RP-Initiated Logout 1.0 at `/logout` (the same
//! endpoint as the sign-out button) and Back-Channel Logout 1.0.
//!
//! Whenever an SSO session ends on purpose (sign-out, password change or reset, an
//! administrator's revoke, a user ending one of their sessions) the grants made under it
//! are revoked, so its refresh tokens and access tokens stop working, and every client of
//! those grants that registered a back-channel URI is sent a signed logout token through
//! the durable outbox (queued with the revocation, retried until it is delivered). A
//! sign-out in the browser then tells the session's SAML SPs by the front channel
//! (`saml::logout_chain`) before going on to the post_logout_redirect_uri.
//!
//! A session that runs out (idle or absolute limit) ends its grants the same way, but
//! for `offline_access` ones: when its browser comes back, or else when the janitor's
//! sweep finds it gone ([`sweep_lapsed_sessions`]).

use std::{
    collections::BTreeMap,
    sync::{Arc, OnceLock},
    time::Duration,
};

use actix_web::{
    HttpRequest, HttpResponse, get,
    http::{StatusCode, header},
    post, web,
};
use askama::Template;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use super::{Params, discovery::issuer, jwt, sid_for};
use crate::i18n::Tr;
use crate::web::cookies;
use crate::{
    audit::{Audit, AuditEvent, EventType, Outcome},
    auth::{
        AuthError, same_secret,
        session::{self, Ending, SessionEndListener},
        upstream,
    },
    clock::SharedClock,
    crypto::signing::Keys,
    mail::{Courier, Mailer, Undelivered},
    pages::login::signed_out_page as signed_out,
    saml::{
        logout_chain::{self, Chain, Finish},
        soap,
        sso::Participant,
    },
    startup::AppState,
    store::{
        DbConnection, Store, StoreError, clients,
        grants::{self, GrantRow},
        outbox::KIND_OIDC_BACKCHANNEL_LOGOUT,
    },
    web::{
        RequestContext,
        error::AppError,
        pages::{PageError, check_same_origin, continue_to, in_readers_language, message, render},
        visit::browser_tr,
    },
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(logout_page).service(logout_submit);
}

/// OIDC's part when an SSO session ends (DESIGN §8): the grants made under it are
/// revoked and their clients told by back-channel logout. A session that ran out spares
/// its `offline_access` grants, which outlive the session by design.
pub struct RevokeGrants;

#[async_trait::async_trait]
impl SessionEndListener for RevokeGrants {
    async fn session_ended(&self, state: &AppState, ending: &Ending<'_>) -> Result<(), AuthError> {
        match *ending {
            // Grants of `user_id` made under the handle are revoked even when the
            // session itself is already gone.
            Ending::One {
                user_id, handle, ..
            } => {
                end_grants(state, handle, Some(user_id), false).await?;
            }
            Ending::AllOfUser { user_id, keep, .. } => {
                let now = state.clock.now().naive_utc();
                let id = user_id.to_owned();
                let keep = keep.map(str::to_owned);
                let mailer = state.mailer.clone();
                state
                    .store
                    .transaction(move |c| {
                        let revoked = grants::revoke_for_user(c, &id, keep.as_deref(), now)?;
                        queue_logout_tokens(c, &mailer, &revoked)
                    })
                    .await?;
                state.mailer.wake();
            }
            Ending::Lapsed { handle } => {
                session_lapsed(state, handle).await?;
            }
        }
        Ok(())
    }

    /// DESIGN §15: when an emergency window ends, the clients that asked for it are told
    /// by back-channel logout, so their emergency session ends with it. Their grants stay:
    /// a refresh now gives ordinary tokens, and a new sign-in ordinary access.
    async fn emergency_ended(&self, state: &AppState, emergency_id: &str) -> Result<(), AuthError> {
        let id = emergency_id.to_owned();
        let mailer = state.mailer.clone();
        let queued = state
            .store
            .transaction(move |c| {
                let grants = grants::live_for_emergency(c, &id)?;
                queue_logout_tokens(c, &mailer, &grants)
            })
            .await?;
        if queued > 0 {
            state.mailer.wake();
        }
        Ok(())
    }
}

/// Ends what an SSO session that ran out (idle or absolute limit) left behind: the
/// grants made under it are revoked and their clients sent back-channel logout tokens,
/// except `offline_access` grants, which outlive the session by design. Its SAML SPs
/// with a SOAP SingleLogoutService are told by their own sweep
/// (`saml::lapsed::sweep_lapsed_sessions`), from a durable list; the others cannot be
/// told without a browser.
async fn session_lapsed(state: &AppState, handle: &str) -> Result<Vec<GrantRow>, AuthError> {
    end_grants(state, handle, None, true).await
}

/// Revokes the grants of session `handle` (of `owner` only, when given: see
/// `grants::revoke_for_session`) and tells their clients; returns what it revoked.
async fn end_grants(
    state: &AppState,
    handle: &str,
    owner: Option<&str>,
    spare_offline: bool,
) -> Result<Vec<GrantRow>, AuthError> {
    let now = state.clock.now().naive_utc();
    let h = handle.to_owned();
    let owner = owner.map(str::to_owned);
    let mailer = state.mailer.clone();
    let revoked = state
        .store
        .transaction(move |c| {
            let revoked = grants::revoke_for_session(c, &h, owner.as_deref(), spare_offline, now)?;
            queue_logout_tokens(c, &mailer, &revoked)?;
            Ok(revoked)
        })
        .await?;
    state.mailer.wake();
    Ok(revoked)
}

/// Finds SSO sessions that ran out while no request of theirs came in (the browser was
/// closed or left alone) and still have grants, and ends those with [`session_lapsed`].
/// Run by every instance's janitor; returns how many sessions it ended.
///
/// One read of the ephemeral store per session with live grants: a deployment with
/// 100 000 such sessions makes 100 000 small Redis reads per sweep and instance.
pub async fn sweep_lapsed_sessions(state: &AppState) -> Result<usize, AppError> {
    let handles = state.store.run(grants::sessions_with_live_grants).await?;
    let mut ended = 0;
    for handle in handles {
        if session::is_live(state.ephemeral.as_ref(), state.clock.as_ref(), &handle).await? {
            continue;
        }
        let revoked = session_lapsed(state, &handle).await?;
        let Some(user_id) = revoked.iter().find_map(|g| g.user_id.clone()) else {
            continue;
        };
        ended += 1;
        state
            .audit
            .record(
                AuditEvent::new(EventType::SessionEnded, Outcome::Success)
                    .subject(user_id)
                    .detail("reason", "lapsed")
                    .detail("grants_revoked", revoked.len()),
            )
            .await?;
    }
    Ok(ended)
}

/// What a back-channel logout token is built from when it is delivered (Back-Channel
/// Logout 1.0 §2.4): queued, sealed, in the outbox for the client named as recipient.
#[derive(Serialize, Deserialize)]
struct LogoutTokenFor {
    sub: String,
    sid: Option<String>,
}

/// Queues a back-channel logout for revoked user grants, one per client and session,
/// on `conn`: it commits with the revocation, or neither happens. Only clients that
/// registered a back-channel URI are told.
fn queue_logout_tokens(
    conn: &mut DbConnection,
    mailer: &Mailer,
    revoked: &[GrantRow],
) -> Result<usize, StoreError> {
    let mut targets: BTreeMap<(String, Option<String>), String> = BTreeMap::new();
    for g in revoked {
        if let Some(user) = &g.user_id {
            targets.insert(
                (g.client_id.clone(), g.session_handle.clone()),
                user.clone(),
            );
        }
    }
    if targets.is_empty() {
        return Ok(0);
    }
    let ids: Vec<String> = targets.keys().map(|(c, _)| c.clone()).collect();
    let registered = clients::find_many(conn, &ids)?;
    let mut queued = 0;
    for ((client_id, handle), sub) in targets {
        let listens = registered
            .iter()
            .any(|c| c.client_id == client_id && c.backchannel_logout_uri.is_some());
        if !listens {
            continue;
        }
        let payload = serde_json::to_string(&LogoutTokenFor {
            sub,
            sid: handle.as_deref().map(sid_for),
        })
        .map_err(|e| StoreError::Query(e.to_string()))?;
        mailer.enqueue_sealed(
            conn,
            KIND_OIDC_BACKCHANNEL_LOGOUT,
            &client_id,
            "back-channel logout",
            payload.as_bytes(),
        )?;
        queued += 1;
    }
    Ok(queued)
}

fn http() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client builds")
    })
}

/// Delivers queued back-channel logouts (§2.5) for the outbox, which retries a client
/// that is down with backoff until its deadline: a relying party that was unreachable
/// when the session ended still hears of it. The token is minted and signed at each
/// attempt, with a fresh `iat` and `jti`, so a late one is not refused as stale (§2.6).
pub struct BackChannelLogout {
    store: Store,
    keys: Arc<Keys>,
    issuer: String,
    clock: SharedClock,
    audit: Audit,
}

impl BackChannelLogout {
    pub fn new(state: &AppState) -> Self {
        Self {
            store: state.store.clone(),
            keys: state.keys.clone(),
            issuer: issuer(state),
            clock: state.clock.clone(),
            audit: state.audit.clone(),
        }
    }
}

#[async_trait::async_trait]
impl Courier for BackChannelLogout {
    async fn deliver(&self, client_id: &str, payload: &[u8]) -> Result<(), Undelivered> {
        let what: LogoutTokenFor = serde_json::from_slice(payload)
            .map_err(|_| Undelivered::permanent("the queued logout is damaged"))?;
        let id = client_id.to_owned();
        let client = self
            .store
            .run(move |c| clients::find(c, &id))
            .await
            .map_err(|e| Undelivered::transient(format!("database: {e}")))?;
        // Where to, and signed how, are read now: a client that moved its endpoint or
        // changed its ID token algorithm meanwhile is found there.
        let Some((uri, alg)) = client.and_then(|c| {
            let alg = c.id_token_signing_alg();
            c.backchannel_logout_uri.map(|uri| (uri, alg))
        }) else {
            return Err(Undelivered::permanent(
                "the client is gone or no longer has a back-channel logout URI",
            ));
        };
        // Another version's algorithm: an instance that knows it may deliver it.
        let alg = alg.ok_or_else(|| {
            Undelivered::transient("the client's ID token algorithm is unknown to this version")
        })?;
        let ring = self.keys.current();
        let token = jwt::logout_token(
            &ring,
            alg,
            &self.issuer,
            client_id,
            Some(&what.sub),
            what.sid.as_deref(),
            self.clock.now(),
        );
        let res = http()
            .post(&uri)
            .header(header::CACHE_CONTROL.as_str(), "no-store")
            .form(&[("logout_token", token.as_str())])
            .send()
            .await
            .map_err(|e| {
                Undelivered::transient(format!("back-channel logout: {}", e.without_url()))
            })?;
        // §2.8: 200 (or 204) means the RP logged the session out; anything else is tried again.
        if res.status().is_success() {
            Ok(())
        } else {
            Err(Undelivered::transient(format!(
                "back-channel logout: the client answered {}",
                res.status()
            )))
        }
    }

    async fn gave_up(&self, client_id: &str, payload: &[u8], error: &str) {
        let Ok(what) = serde_json::from_slice::<LogoutTokenFor>(payload) else {
            return;
        };
        let event = AuditEvent::new(EventType::SessionEnded, Outcome::Failure)
            .subject(what.sub)
            .detail("client_id", client_id)
            .detail("reason", "back_channel_logout_not_delivered")
            .detail("error", error);
        if let Err(e) = self.audit.record(event).await {
            tracing::warn!(client_id, error = %e, "could not record an undelivered back-channel logout");
        }
    }
}

/// A validated `post_logout_redirect_uri` with its `state`.
struct ReturnTo {
    uri: String,
    state: Option<String>,
}

impl ReturnTo {
    /// The address with `state`; None if it does not parse (it was registered, so never).
    fn url(&self) -> Option<String> {
        let mut url = Url::parse(&self.uri).ok()?;
        if let Some(state) = &self.state {
            url.query_pairs_mut().append_pair("state", state);
        }
        Some(url.into())
    }

    fn response(&self) -> HttpResponse {
        let mut url = match Url::parse(&self.uri) {
            Ok(u) => u,
            Err(_) => return signed_out(),
        };
        if let Some(state) = &self.state {
            url.query_pairs_mut().append_pair("state", state);
        }
        let mut res = HttpResponse::SeeOther()
            .insert_header((header::LOCATION, url.as_str()))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish();
        let _ = res.add_cookie(&cookies::removal_cookie());
        res
    }

    /// After the confirmation form: a page that navigates on (see `pages::continue_to`).
    fn response_after_form(&self) -> HttpResponse {
        let mut url = match Url::parse(&self.uri) {
            Ok(u) => u,
            Err(_) => return signed_out(),
        };
        if let Some(state) = &self.state {
            url.query_pairs_mut().append_pair("state", state);
        }
        let mut res = continue_to(url.as_str());
        let _ = res.add_cookie(&cookies::removal_cookie());
        res
    }
}

/// What an RP-initiated logout request asks for, once checked.
struct LogoutRequest {
    return_to: Option<ReturnTo>,
    /// The `sid` of a valid `id_token_hint`.
    hinted_sid: Option<String>,
    /// The raw parameters to carry through the confirmation form.
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    id_token_hint: Option<String>,
}

/// A refused sign-out request; `text` is the protocol's words for the developer.
fn refused(text: &str) -> HttpResponse {
    let text = text.to_owned();
    in_readers_language(move |tr| {
        let title = tr.t("sign-out-link-invalid");
        let said = tr.a("protocol-refusal", "detail", &text);
        message(tr, StatusCode::BAD_REQUEST, &title, &said, None)
    })
}

async fn check(
    state: &AppState,
    params: &Params,
) -> Result<Result<LogoutRequest, HttpResponse>, AppError> {
    let hint = params.get("id_token_hint");
    let mut hinted_sid = None;
    let mut client_id = params.get("client_id").map(str::to_owned);
    if let Some(hint) = hint {
        let ring = state.keys.current();
        let Some(claims) = jwt::verify_id_token_hint(&ring, &issuer(state), hint) else {
            return Ok(Err(refused(
                "The sign-out request carries a token Gatehouse did not issue.",
            )));
        };
        let aud = match claims.get("aud") {
            Some(Value::String(a)) => Some(a.clone()),
            Some(Value::Array(a)) => a.first().and_then(Value::as_str).map(str::to_owned),
            _ => None,
        };
        if client_id.is_some() && client_id != aud {
            return Ok(Err(refused(
                "The sign-out request names two different applications.",
            )));
        }
        client_id = aud;
        hinted_sid = claims.get("sid").and_then(Value::as_str).map(str::to_owned);
    }
    let post_logout = params.get("post_logout_redirect_uri").map(str::to_owned);
    let state_param = params.get("state").map(str::to_owned);
    let return_to = match &post_logout {
        None => None,
        Some(uri) => {
            let Some(id) = client_id.clone().filter(|c| c.len() <= 128) else {
                return Ok(Err(refused(
                    "The sign-out request asks to return to an application it does not name.",
                )));
            };
            let client = state.store.run(move |c| clients::find(c, &id)).await?;
            match client {
                Some(c) if c.post_logout_uri_registered(uri) => Some(ReturnTo {
                    uri: uri.clone(),
                    state: state_param.clone(),
                }),
                _ => {
                    return Ok(Err(refused(
                        "The address to return to after sign-out is not registered for this application.",
                    )));
                }
            }
        }
    };
    Ok(Ok(LogoutRequest {
        return_to,
        hinted_sid,
        client_id,
        post_logout_redirect_uri: post_logout,
        state: state_param,
        id_token_hint: hint.map(str::to_owned),
    }))
}

#[derive(Template)]
#[template(
    source = r#"{% extends "base.html" %}{% block title %}{{ tr.t("sign-out") }}{% endblock %}{% block content %}
<h1>{{ tr.t("sign-out-question") }}</h1>
<form id="logout" method="post" action="/logout">
  <input type="hidden" name="csrf" value="{{ csrf }}">
  {% if let Some(v) = client_id %}<input type="hidden" name="client_id" value="{{ v }}">{% endif %}
  {% if let Some(v) = post_logout_redirect_uri %}<input type="hidden" name="post_logout_redirect_uri" value="{{ v }}">{% endif %}
  {% if let Some(v) = state %}<input type="hidden" name="state" value="{{ v }}">{% endif %}
  {% if let Some(v) = id_token_hint %}<input type="hidden" name="id_token_hint" value="{{ v }}">{% endif %}
  <button id="sign-out" type="submit">{{ tr.t("sign-out") }}</button>
</form>{% endblock %}"#,
    ext = "html"
)]
struct LogoutPage<'a> {
    tr: &'a Tr,
    csrf: &'a str,
    client_id: Option<&'a str>,
    post_logout_redirect_uri: Option<&'a str>,
    state: Option<&'a str>,
    id_token_hint: Option<&'a str>,
}

#[get("/logout")]
async fn logout_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
) -> Result<HttpResponse, PageError> {
    let Ok(params) = Params::parse(req.query_string().as_bytes()).and_then(Params::single) else {
        return Ok(refused("The sign-out request is malformed."));
    };
    let request = match check(&state, &params).await? {
        Ok(r) => r,
        Err(page) => return Ok(page),
    };
    let Some(current) = cookies::current_session(&state, &req).await? else {
        return Ok(request.return_to.map_or_else(signed_out, |r| r.response()));
    };
    // A valid hint for this very session is the client's proof that the user asked.
    if request
        .hinted_sid
        .as_deref()
        .is_some_and(|sid| same_secret(sid, &sid_for(&current.handle)))
    {
        let saml = sign_out(&state, &ctx, &current, "rp-initiated logout").await?;
        let upstream = through_upstream(&state, &current, request.return_to.as_ref()).await;
        if !saml.is_empty() {
            let last = upstream.or_else(|| request.return_to.and_then(|r| r.url()));
            return Ok(saml_chain(&state, &ctx, &current, saml, last, false).await?);
        }
        if let Some(upstream) = upstream {
            return Ok(leave_for(&upstream, false));
        }
        return Ok(request.return_to.map_or_else(signed_out, |r| r.response()));
    }
    Ok(render(
        &LogoutPage {
            tr: &browser_tr(&req),
            csrf: &current.csrf,
            client_id: request.client_id.as_deref(),
            post_logout_redirect_uri: request.post_logout_redirect_uri.as_deref(),
            state: request.state.as_deref(),
            id_token_hint: request.id_token_hint.as_deref(),
        },
        StatusCode::OK,
    ))
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

#[post("/logout")]
async fn logout_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    check_same_origin(&req, &state.config.issuer)?;
    let Ok(params) = Params::parse(&body).and_then(Params::single) else {
        return Ok(refused("The sign-out form is malformed."));
    };
    let form = CsrfOnly {
        csrf: params.get("csrf").unwrap_or("").to_owned(),
    };
    let request = match check(&state, &params).await? {
        Ok(r) => r,
        Err(page) => return Ok(page),
    };
    let Some(current) = cookies::current_session(&state, &req).await? else {
        return Ok(request
            .return_to
            .map_or_else(signed_out, |r| r.response_after_form()));
    };
    if !same_secret(&form.csrf, &current.csrf) {
        return Err(PageError(AppError::Forbidden(
            browser_tr(&req).t("form-expired"),
        )));
    }
    let saml = sign_out(&state, &ctx, &current, "logout").await?;
    let upstream = through_upstream(&state, &current, request.return_to.as_ref()).await;
    if !saml.is_empty() {
        let last = upstream.or_else(|| request.return_to.and_then(|r| r.url()));
        return Ok(saml_chain(&state, &ctx, &current, saml, last, true).await?);
    }
    if let Some(upstream) = upstream {
        return Ok(leave_for(&upstream, true));
    }
    Ok(request
        .return_to
        .map_or_else(signed_out, |r| r.response_after_form()))
}

/// The session's SAML SPs are told by the front channel (Profiles §4.4) before the browser
/// goes where it would have gone.
async fn saml_chain(
    state: &AppState,
    ctx: &RequestContext,
    current: &session::SsoSession,
    sps: Vec<Participant>,
    return_to: Option<String>,
    after_form: bool,
) -> Result<HttpResponse, AppError> {
    let finish = Finish::Page { return_to };
    logout_chain::start(state, ctx, Chain::new(current, sps, finish), after_form).await
}

/// DESIGN §16: a session signed in through an upstream identity provider ends there
/// too. The upstream's end-session URL, which comes back to us and then goes where the
/// browser would have gone (`return_to`, else our signed-out page); None when the
/// session did not come from an upstream, or it cannot be told.
async fn through_upstream(
    state: &AppState,
    current: &session::SsoSession,
    return_to: Option<&ReturnTo>,
) -> Option<String> {
    let origin = current.upstream.as_ref()?;
    let then = return_to.and_then(ReturnTo::url);
    match upstream::logout::end_session_url(state, &origin.slug, then.clone()).await {
        Some(url) => Some(url.into()),
        // Not an OIDC upstream, or it cannot be told: SAML Single Logout, if it is one.
        None => crate::saml::upstream::logout::sign_out_location(state, origin, then).await,
    }
}

/// Sends the signed-out browser to `url` (after a form: by a page that navigates on).
fn leave_for(url: &str, after_form: bool) -> HttpResponse {
    let mut res = if after_form {
        continue_to(url)
    } else {
        HttpResponse::SeeOther()
            .insert_header((header::LOCATION, url))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish()
    };
    let _ = res.add_cookie(&cookies::removal_cookie());
    res
}

/// Ends the browser's session; returns its SAML SPs still to be told by the front
/// channel (those with only a SOAP endpoint are told by the back channel, `saml::soap`).
async fn sign_out(
    state: &AppState,
    ctx: &RequestContext,
    current: &session::SsoSession,
    reason: &str,
) -> Result<Vec<Participant>, AppError> {
    let saml = logout_chain::take_participants(state, &current.handle).await?;
    session::sign_out(state, ctx, current, reason, None).await?;
    let user = Some(current.user_id.as_str());
    Ok(soap::queue_logouts(state, soap::Browser::AtHand, user, &current.handle, saml).await?)
}
