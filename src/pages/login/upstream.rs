//! Signing in with the organisation's identity provider (DESIGN §16): the trip out
//! (`/login/upstream/{connector}`) and the way back (`/upstream/{connector}/callback`),
//! which ends like a local sign-in: the same stages, session and answer downstream.

use super::{
    TxQuery, advance, browser_id, expired, out_of_order, owned_transaction, see_other, tx_tr,
};
use crate::{
    auth::{
        token_hash,
        transaction::{Stage, Step},
        upstream::{self, Arrival, Connector, Unwelcome, UpstreamError, UpstreamIdentity, openid},
    },
    domain::UpstreamProtocol,
    i18n::{Id, Tr},
    startup::AppState,
    web::{
        RequestContext,
        error::AppError,
        pages::{PageError, message},
        visit::{Answer, Visit, browser_tr},
    },
};
use actix_web::{
    HttpRequest, HttpResponse, ResponseError, get,
    http::StatusCode,
    post,
    web::{self, Path, Query},
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(start)
        .service(callback)
        .service(signed_out_there)
        .service(back_channel_logout);
}

/// Where the browser goes to sign in through `slug` in transaction `tx`.
pub fn start_location(slug: &str, tx: &str) -> String {
    format!("/login/upstream/{slug}?tx={tx}")
}

#[get("/login/upstream/{connector}")]
async fn start(
    path: Path<String>,
    query: Query<TxQuery>,
    Visit { state, req, ctx }: Visit,
) -> Answer {
    state.guard.rate_limit(ctx.client_ip)?;
    let id = query.into_inner().tx.unwrap_or_default();
    let Some(tx) = owned_transaction(&state, &req, &id).await? else {
        return Ok(expired(&browser_tr(&req)));
    };
    let tr = tx_tr(&req, &tx);
    if tx.stage != Stage::Password {
        return Ok(see_other(&super::stage_location(&tx)));
    }
    let connector = match upstream::enabled_connector(&state, &path.into_inner()).await {
        Ok(connector) => connector,
        Err(e) => return Ok(refusal(&tr, &ctx, e, "")),
    };
    if connector.protocol == UpstreamProtocol::Saml {
        // The SAML door sends the AuthnRequest (DESIGN §1: pages name no protocol).
        return Ok(see_other(&format!(
            "/upstream/{}/saml/start?tx={}",
            connector.slug, tx.id
        )));
    }
    let went = openid::begin(
        &state,
        &connector,
        &tx.id,
        &tx.browser,
        tx.login_hint.as_deref(),
    )
    .await;
    match went {
        Ok(url) => Ok(see_other(url.as_str())),
        Err(e) => failure(&state, &tr, &ctx, &connector, e).await,
    }
}

#[get("/upstream/{connector}/callback")]
async fn callback(
    path: Path<String>,
    query: Query<openid::Callback>,
    Visit { state, req, ctx }: Visit,
) -> Answer {
    state.guard.rate_limit(ctx.client_ip)?;
    if let Some(wait) = crate::auth::guard::blocked_for(&state, ctx.client_ip).await? {
        return Err(AppError::TooManyRequests {
            retry_after_secs: wait.as_secs(),
        }
        .into());
    }
    let tr = browser_tr(&req);
    let connector = match upstream::enabled_connector(&state, &path.into_inner()).await {
        Ok(connector) => connector,
        Err(e) => return Ok(refusal(&tr, &ctx, e, "")),
    };
    let (browser, new) = browser_id(&req);
    if new {
        // No browser cookie: this is not the browser that left.
        return Ok(refusal(
            &tr,
            &ctx,
            UpstreamError::Expired,
            &connector.display_name,
        ));
    }
    let (tx_id, who) = match openid::complete(
        &state,
        &connector,
        query.into_inner(),
        &token_hash(&browser),
    )
    .await
    {
        Ok(done) => done,
        Err(e) => return failure(&state, &tr, &ctx, &connector, e).await,
    };
    arrived(&state, &req, &ctx, &connector, &tx_id, who).await
}

/// An upstream identity, checked by its protocol, arrives for login transaction `tx_id`
/// (this browser's): the sign-in goes on from there like a local one. Every protocol's
/// way back ends here.
pub async fn arrived(
    state: &AppState,
    req: &HttpRequest,
    ctx: &RequestContext,
    connector: &Connector,
    tx_id: &str,
    who: UpstreamIdentity,
) -> Result<HttpResponse, PageError> {
    let Some(mut tx) = owned_transaction(state, req, tx_id).await? else {
        return Ok(expired(&browser_tr(req)));
    };
    let tr = tx_tr(req, &tx);
    if tx.stage != Stage::Password {
        return Ok(see_other(&super::stage_location(&tx)));
    }
    let arrival = match upstream::arrive(state, ctx, connector, who).await {
        Ok(arrival) => arrival,
        Err(e) => return failure(state, &tr, ctx, connector, e).await,
    };
    match arrival {
        Arrival::SignIn {
            user,
            origin,
            amr,
            upstream_mfa,
            enrolled,
            second_factor_required,
        } => {
            tx.take(Step::Upstream {
                user_id: user.id.clone(),
                origin,
                at: state.clock.now().timestamp(),
                amr,
                upstream_mfa,
                enrolled,
                second_factor_required: tx.require_mfa || second_factor_required,
            })
            .map_err(out_of_order)?;
            tracing::info!(request_id = %ctx.request_id, user_id = %user.id, connector = %connector.slug, "upstream sign-in accepted");
            advance(state, req, ctx, tx).await
        }
        Arrival::Link(link) => {
            tracing::info!(request_id = %ctx.request_id, connector = %connector.slug, "upstream identity not linked: asking for the account's own sign-in");
            tx.pending_link = Some(link);
            tx.save(state.ephemeral.as_ref()).await?;
            Ok(see_other(&super::stage_location(&tx)))
        }
        Arrival::Refused(why) => Ok(message(
            &tr,
            StatusCode::FORBIDDEN,
            &tr.t("sign-in-refused"),
            &tr.id(match why {
                Unwelcome::Inactive => Id("upstream-account-inactive"),
                Unwelcome::Unidentified => Id("upstream-did-not-identify"),
            }),
            Some(("/account", &tr.t("start-again"))),
        )),
    }
}

#[derive(serde::Deserialize)]
struct StateQuery {
    #[serde(default)]
    state: String,
}

/// Back from the upstream's sign-out (DESIGN §16): on to where the sign-out was going.
#[get("/upstream/{connector}/signed-out")]
async fn signed_out_there(query: Query<StateQuery>, Visit { state, req, .. }: Visit) -> Answer {
    Ok(
        match upstream::logout::returned(&state, &query.state).await {
            Some(then) => see_other(&then),
            None => super::signed_out(&browser_tr(&req)),
        },
    )
}

#[derive(serde::Deserialize)]
struct LogoutTokenForm {
    #[serde(default)]
    logout_token: String,
}

/// The upstream's back-channel logout (Back-Channel Logout 1.0 §2.5): 200 when the
/// token is good (whether or not a session of ours was left), 400 otherwise.
#[post("/upstream/{connector}/backchannel-logout")]
async fn back_channel_logout(
    path: Path<String>,
    form: web::Form<LogoutTokenForm>,
    Visit { state, ctx, .. }: Visit,
) -> Answer {
    let answer = |status: StatusCode, body: serde_json::Value| {
        HttpResponse::build(status)
            .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
            .json(body)
    };
    match upstream::logout::back_channel(&state, &path.into_inner(), &form.logout_token).await {
        Ok(_) => Ok(HttpResponse::Ok()
            .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
            .finish()),
        Err(UpstreamError::Unknown) => Ok(answer(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "invalid_request", "error_description": "no such connector"}),
        )),
        Err(UpstreamError::Auth(e)) => Err(AppError::from(e).into()),
        Err(e) => {
            tracing::info!(request_id = %ctx.request_id, error = %e, "upstream logout token refused");
            Ok(answer(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": "invalid_request", "error_description": "the logout token is not valid"}),
            ))
        }
    }
}

/// Records why an upstream sign-in could not go on, and says so.
async fn failure(
    state: &AppState,
    tr: &Tr,
    ctx: &RequestContext,
    connector: &Connector,
    e: UpstreamError,
) -> Result<HttpResponse, PageError> {
    upstream::failed(
        state,
        ctx,
        connector,
        None,
        e.reason(),
        Some(&e.to_string()),
    )
    .await?;
    Ok(refusal(tr, ctx, e, &connector.display_name))
}

/// The page for an upstream sign-in that could not go on: the one place its errors
/// become answers.
pub fn refusal(tr: &Tr, ctx: &RequestContext, e: UpstreamError, name: &str) -> HttpResponse {
    let name = if name.is_empty() {
        tr.t("your-identity-provider")
    } else {
        name.to_owned()
    };
    let again = tr.t("start-again");
    let page = |status, title: Id, text: String| {
        message(tr, status, &tr.id(title), &text, Some(("/account", &again)))
    };
    match e {
        UpstreamError::Unknown => page(
            StatusCode::NOT_FOUND,
            Id("upstream-unknown"),
            tr.t("upstream-unknown-text"),
        ),
        UpstreamError::Unreachable(why) => {
            tracing::warn!(request_id = %ctx.request_id, error = %why, "upstream unreachable");
            page(
                StatusCode::BAD_GATEWAY,
                Id("upstream-unreachable"),
                tr.a("upstream-unreachable-text", "name", &name),
            )
        }
        UpstreamError::Denied(why) => {
            tracing::info!(request_id = %ctx.request_id, error = %why, "upstream denied the sign-in");
            page(
                StatusCode::UNAUTHORIZED,
                Id("upstream-denied"),
                tr.a("upstream-denied-text", "name", &name),
            )
        }
        UpstreamError::Rejected(why) => {
            tracing::warn!(request_id = %ctx.request_id, error = %why, "upstream answer rejected");
            page(
                StatusCode::BAD_REQUEST,
                Id("sign-in-refused"),
                tr.a("upstream-rejected-text", "name", &name),
            )
        }
        UpstreamError::Expired => expired(tr),
        UpstreamError::Auth(e) => PageError(AppError::from(e)).error_response(),
    }
}
