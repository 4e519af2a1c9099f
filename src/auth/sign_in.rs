//! The end of a sign-in, whatever door started it (DESIGN §1): once every stage of the
//! login transaction is passed, the guard's counts restart, the browser's previous
//! session gives way, and a new SSO session is made and recorded. The door that
//! started the sign-in answers its request from there (`login::AnswerSignIn`).

use super::{
    emergency, guard, session,
    session::SsoSession,
    transaction::{LoginTransaction, Resume},
    upstream,
};
use crate::{
    audit::{AuditEvent, EventType, RequestContext},
    auth::AuthError,
    startup::AppState,
    store::users,
};

/// A finished sign-in: its session, the cookie value for the browser (never stored),
/// and the request to answer.
pub struct SignedIn {
    pub session: SsoSession,
    pub cookie: String,
    pub resume: Resume,
}

/// Finishes `tx` (at stage `Done`): None when it was already finished, by a form sent
/// twice or another tab, so a sign-in answers its request exactly once. `previous` is
/// the browser's live session, which the new one replaces.
pub async fn finish(
    state: &AppState,
    ctx: &RequestContext,
    tx: LoginTransaction,
    previous: Option<SsoSession>,
) -> Result<Option<SignedIn>, AuthError> {
    if !tx.finish(state.ephemeral.as_ref()).await? {
        return Ok(None);
    }
    let user_id = tx.user_id.clone().ok_or(AuthError::Internal(
        "finished transaction without user".into(),
    ))?;
    let pii = state.pii.clone();
    let (user, org) = state
        .store
        .run(move |c| users::find_with_org(c, &pii, &user_id))
        .await?;
    // Every factor this sign-in needed was right: only now do the failure count and the
    // run of consecutive locks restart (issue 20 item 6).
    guard::sign_in_completed(state, &user.username).await?;
    // A browser holds one session: signing in again replaces the previous one.
    if let Some(previous) = previous {
        session::end_one(state, &previous.user_id, &previous.handle).await?;
    }
    let policy = org.policy();
    let (mut session, cookie) = session::create(
        state.ephemeral.as_ref(),
        state.clock.as_ref(),
        session::NewSession {
            user_id: user.id.clone(),
            org_id: org.id.clone(),
            auth_time: tx
                .auth_time
                .unwrap_or_else(|| state.clock.now().timestamp()),
            amr: tx.amr.clone(),
            idle_secs: policy.session_idle_secs,
            absolute_secs: policy.session_absolute_secs,
            client_ip: ctx.client_ip.map(|ip| ip.to_string()),
            user_agent: ctx.user_agent.clone(),
            upstream: tx.origin.clone(),
        },
    )
    .await?;
    tracing::info!(request_id = %ctx.request_id, user_id = %user.id, "signed in");
    let mut event = AuditEvent::success(EventType::SignInSucceeded, ctx)
        .about(&user.id, &user.org_id)
        .detail("amr", tx.amr.join(" "))
        .detail("acr", session::acr(&tx.amr));
    if let Some(origin) = &tx.origin {
        event = event
            .detail("method", "upstream")
            .detail("connector", origin.slug.as_str());
    }
    state.audit.record(event).await?;
    // DESIGN §16: the person proved this account's own credentials with an upstream
    // identity waiting: only now is it linked.
    if let Some(link) = &tx.pending_link
        && !upstream::link_after_sign_in(state, ctx, link, &user).await?
    {
        tracing::info!(request_id = %ctx.request_id, user_id = %user.id, "upstream link refused");
    }
    // DESIGN §15: the emergency stage's reason raises the new session. A refusal here
    // (the designation withdrawn meanwhile) is recorded by `raise`, and the sign-in
    // goes on as an ordinary one.
    if let Some(choice) = &tx.emergency_choice {
        let ask = tx.emergency.clone().unwrap_or_default();
        let raised = emergency::raise(
            state,
            ctx,
            &session,
            emergency::Raise {
                reason: &choice.reason,
                context: choice.context.as_deref(),
                offered: &ask.offered,
                requested_by: ask.requested_by.as_deref(),
            },
        )
        .await?;
        if let Ok(window) = raised {
            session.emergency = Some(window);
        }
    }
    Ok(Some(SignedIn {
        session,
        cookie,
        resume: tx.resume,
    }))
}
