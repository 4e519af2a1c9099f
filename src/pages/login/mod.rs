//! The sign-in pages: password step, required password change, completion into an SSO
//! session, and sign-out; the second-factor steps are in `second_factor`. Handlers
//! stay thin: parse → check the transaction → call the capability → render.

use actix_web::{
    HttpRequest, HttpResponse, get,
    http::{StatusCode, header},
    post,
    web::{self, Form, Query},
};
use askama::Template;
use serde::Deserialize;

use crate::auth::{
    account::{PasswordChange, change_password},
    emergency::EmergencyAsk,
    guard::{Verdict, password_attempt},
    same_secret,
    sign_in::{self, SignedIn},
    token_hash, totp,
    transaction::{LoginTransaction, MAX_TOKEN_LEN, OutOfOrder, Resume, Stage, Step},
};
use crate::web::cookies;
use crate::web::visit::{Answer, Visit, browser_wishes, speak};
use crate::{
    domain::{Password, Username},
    i18n::{Tr, Wishes, tag_list},
    startup::AppState,
    store::{orgs, users, users::UserRow},
    web::{
        RequestContext,
        error::AppError,
        pages::{PageError, check_same_origin, in_readers_language, message, render},
    },
};

mod answer;
mod emergency;
mod passkey;
mod second_factor;
mod upstream;

pub use upstream::{arrived as upstream_arrived, refusal as upstream_refusal};

pub use answer::{AnswerSignIn, Finished, SignInAnswers};

pub(crate) use emergency::{EmergencyPage, bounded, check as check_emergency};
pub(crate) use passkey::options_json;
pub(crate) use second_factor::{EnrolPage, RecoveryCodesPage};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(login_page)
        .service(login_submit)
        .service(password_page)
        .service(password_submit);
    second_factor::routes(cfg);
    passkey::routes(cfg);
    emergency::routes(cfg);
    upstream::routes(cfg);
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    tr: &'a Tr,
    tx: &'a str,
    csrf: &'a str,
    username: &'a str,
    error: Option<&'a str>,
    /// The organisations' identity providers offered as buttons (DESIGN §16).
    upstreams: &'a [crate::auth::upstream::Offer],
    /// Some email domain leads to an identity provider: the password may be left
    /// empty, so the identifier alone can be sent.
    identifier_first: bool,
    /// An upstream identity waits to be linked: why the person is asked to sign in.
    link: Option<&'a crate::auth::upstream::PendingLink>,
    /// Passkeys can sign in here (DESIGN §17): the page offers them.
    passkeys: bool,
}

/// What the sign-in page offers besides the password form.
struct LoginChoices {
    upstreams: Vec<crate::auth::upstream::Offer>,
    identifier_first: bool,
}

impl LoginChoices {
    /// The sign-in page of `tx` offering these, with `username` filled in.
    fn page(
        &self,
        state: &AppState,
        tr: &Tr,
        tx: &LoginTransaction,
        username: &str,
        error: Option<&str>,
        status: StatusCode,
    ) -> HttpResponse {
        let page = LoginPage {
            tr,
            tx: &tx.id,
            csrf: &tx.csrf,
            username,
            error,
            upstreams: &self.upstreams,
            identifier_first: self.identifier_first,
            link: tx.pending_link.as_ref(),
            passkeys: state.passkeys.available(),
        };
        render(&page, status)
    }
}

/// The page's choices. The sign-in page shows even while the database cannot be read
/// (the password step then says it is unavailable, DESIGN §14): without its choices.
async fn login_choices(state: &AppState, tx: &LoginTransaction) -> LoginChoices {
    let none = LoginChoices {
        upstreams: Vec::new(),
        identifier_first: false,
    };
    // Someone linking an upstream identity signs in with a Gatehouse account here.
    if tx.pending_link.is_some() {
        return none;
    }
    match crate::auth::upstream::offered(state).await {
        Ok((upstreams, identifier_first)) => LoginChoices {
            upstreams,
            identifier_first,
        },
        Err(e) => {
            tracing::warn!(error = %e, "sign-in page without its identity providers");
            none
        }
    }
}

#[derive(Template)]
#[template(path = "change_password.html")]
struct ChangePasswordPage<'a> {
    tr: &'a Tr,
    tx: &'a str,
    csrf: &'a str,
    username: &'a str,
    errors: Vec<String>,
}

#[derive(Deserialize)]
struct TxQuery {
    tx: Option<String>,
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    tx: String,
    #[serde(default)]
    csrf: String,
    username: String,
    password: String,
}

#[derive(Deserialize)]
struct NewPasswordForm {
    #[serde(default)]
    tx: String,
    #[serde(default)]
    csrf: String,
    new_password: String,
    confirm_password: String,
}

/// The browser cookie's value, and whether it has to be set now.
pub(crate) fn browser_id(req: &HttpRequest) -> (String, bool) {
    match req.cookie(cookies::BROWSER_COOKIE) {
        Some(c) if !c.value().is_empty() && c.value().len() <= MAX_TOKEN_LEN => {
            (c.value().to_owned(), false)
        }
        _ => (crate::auth::random_token(), true),
    }
}

/// Starts a transaction and sends the browser to the sign-in page.
pub(crate) async fn start_sign_in(
    state: &AppState,
    req: &HttpRequest,
    resume: Resume,
) -> Result<HttpResponse, AppError> {
    start_sign_in_with(
        state,
        req,
        SignInRequest {
            resume,
            require_mfa: false,
            login_hint: None,
            emergency: None,
            idp_hint: None,
            ui_locales: None,
            app: None,
            org_hint: None,
        },
    )
    .await
}

/// What a protocol asks of a sign-in.
pub struct SignInRequest {
    pub resume: Resume,
    /// The relying party's `ui_locales`: the languages of the sign-in's pages.
    pub ui_locales: Option<String>,
    /// The app (client id or SP entity ID) and the organisation (an `org` hint, or the
    /// only one the app is open to) whose branding the sign-in's pages show.
    pub app: Option<String>,
    pub org_hint: Option<String>,
    /// The relying party named the identity provider to use (`idp_hint`, DESIGN §16):
    /// the person goes straight there when it is an enabled connector.
    pub idp_hint: Option<String>,
    /// The relying party asked for a second factor (OIDC `acr_values`).
    pub require_mfa: bool,
    pub login_hint: Option<String>,
    /// The relying party asked for emergency access (DESIGN §15).
    pub emergency: Option<EmergencyAsk>,
}

pub async fn start_sign_in_with(
    state: &AppState,
    req: &HttpRequest,
    ask: SignInRequest,
) -> Result<HttpResponse, AppError> {
    let (browser, new) = browser_id(req);
    let mut tx =
        LoginTransaction::begin(state.ephemeral.as_ref(), ask.resume, token_hash(&browser)).await?;
    let ui_locales = ask.ui_locales.filter(|l| !tag_list(l).is_empty());
    let brand = super::branding::for_sign_in(state, ask.app.as_deref(), ask.org_hint.as_deref())
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "sign-in without its organisation's branding");
            None
        });
    if ask.require_mfa
        || ask.login_hint.is_some()
        || ask.emergency.is_some()
        || ui_locales.is_some()
        || brand.is_some()
    {
        tx.brand = brand;
        // Emergency access always needs a second factor (DESIGN §15).
        tx.require_mfa = ask.require_mfa || ask.emergency.is_some();
        tx.login_hint = ask.login_hint;
        tx.emergency = ask.emergency;
        tx.ui_locales = ui_locales;
        tx.save(state.ephemeral.as_ref()).await?;
    }
    let hinted = match ask.idp_hint.as_deref() {
        Some(hint) => crate::auth::upstream::enabled_connector(state, hint)
            .await
            .ok()
            .map(|c| upstream::start_location(c.slug.as_str(), &tx.id)),
        None => None,
    };
    let mut res = see_other(&hinted.unwrap_or_else(|| format!("/login?tx={}", tx.id)));
    if new {
        res.add_cookie(&cookies::browser_cookie(browser))
            .map_err(|e| AppError::Internal(e.to_string()))?;
    }
    Ok(res)
}

pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

fn expired(tr: &Tr) -> HttpResponse {
    message(
        tr,
        StatusCode::BAD_REQUEST,
        &tr.t("sign-in-expired"),
        &tr.t("sign-in-expired-text"),
        Some(("/account", &tr.t("start-again"))),
    )
}

/// The language of `tx`'s pages: the relying party's `ui_locales`, then the person's
/// own setting once the password told who they are, then the browser's.
pub(crate) fn tx_tr(req: &HttpRequest, tx: &LoginTransaction) -> Tr {
    speak(
        req,
        Wishes {
            ui_locales: tag_list(tx.ui_locales.as_deref().unwrap_or_default()),
            person: tx.language.clone(),
            organisation: tx.org_language.clone(),
            zone: tx.time_zone.clone(),
            brand: tx.brand.clone(),
            ..browser_wishes(req)
        },
    )
}

/// A step at a stage it does not belong to, after the handler checked the stage: a bug.
fn out_of_order(e: OutOfOrder) -> AppError {
    AppError::Internal(e.to_string())
}

fn csrf_refused(tr: &Tr) -> PageError {
    PageError(AppError::Forbidden(tr.t("form-expired")))
}

/// The live transaction for `id`, if it belongs to this browser.
pub(crate) async fn owned_transaction(
    state: &AppState,
    req: &HttpRequest,
    id: &str,
) -> Result<Option<LoginTransaction>, AppError> {
    let Some(tx) = LoginTransaction::load(state.ephemeral.as_ref(), id).await? else {
        return Ok(None);
    };
    let (browser, new) = browser_id(req);
    Ok((!new && same_secret(&token_hash(&browser), &tx.browser)).then_some(tx))
}

fn stage_location(tx: &LoginTransaction) -> String {
    match tx.stage {
        Stage::Password => format!("/login?tx={}", tx.id),
        Stage::Otp => format!("/login/otp?tx={}", tx.id),
        Stage::EnrolTotp => format!("/login/totp-enrol?tx={}", tx.id),
        Stage::EnrolPasskey => format!("/login/passkey-enrol?tx={}", tx.id),
        Stage::ChangePassword => format!("/login/password?tx={}", tx.id),
        Stage::Emergency => format!("/login/emergency?tx={}", tx.id),
        Stage::Done => format!("/login?tx={}", tx.id),
    }
}

#[get("/login")]
async fn login_page(query: Query<TxQuery>, Visit { state, req, .. }: Visit) -> Answer {
    let Some(id) = query.into_inner().tx else {
        return Ok(start_sign_in(&state, &req, Resume::to(super::account::RESUME)).await?);
    };
    let Some(tx) = owned_transaction(&state, &req, &id).await? else {
        return Ok(expired(&crate::web::visit::browser_tr(&req)));
    };
    if tx.stage != Stage::Password {
        return Ok(see_other(&stage_location(&tx)));
    }
    let tr = tx_tr(&req, &tx);
    Ok(login_again(&state, &tr, &tx, None, StatusCode::OK).await)
}

#[post("/login")]
async fn login_submit(form: Form<LoginForm>, Visit { state, req, ctx }: Visit) -> Answer {
    check_same_origin(&req, &state.config.issuer)?;
    let form = form.into_inner();
    let Some(mut tx) = owned_transaction(&state, &req, &form.tx).await? else {
        return Ok(expired(&crate::web::visit::browser_tr(&req)));
    };
    let tr = tx_tr(&req, &tx);
    // Refused before any lookup or hashing: no account has such a name or password.
    if form.username.len() > Username::MAX_INPUT_BYTES {
        return Err(AppError::BadRequest(tr.t("username-too-long")).into());
    }
    if !same_secret(&form.csrf, &tx.csrf) {
        return Err(csrf_refused(&tr));
    }
    if tx.stage != Stage::Password {
        return Ok(see_other(&stage_location(&tx)));
    }
    let choices = login_choices(&state, &tx).await;
    let page = |message: String, status| {
        choices.page(&state, &tr, &tx, &form.username, Some(&message), status)
    };
    if form.password.is_empty() {
        // Home-realm discovery (DESIGN §16): an address of a domain mapped to an
        // identity provider, sent without a password, goes there.
        if choices.identifier_first
            && let Some(slug) =
                crate::auth::upstream::for_identifier(&state, &form.username).await?
        {
            tx.login_hint = Some(form.username.trim().to_owned());
            tx.save(state.ephemeral.as_ref()).await?;
            return Ok(see_other(&upstream::start_location(&slug, &tx.id)));
        }
        return Ok(page(tr.t("enter-your-password"), StatusCode::BAD_REQUEST));
    }
    // Empty was answered above: what is left is a password longer than any allowed.
    let password = Password::parse(form.password)
        .map_err(|_| AppError::BadRequest(tr.t("password-too-long")))?;

    state.guard.rate_limit(ctx.client_ip)?;
    let refused = |message| page(message, StatusCode::UNAUTHORIZED);
    let user = match password_attempt(&state, &ctx, &form.username, password.clone()).await? {
        Verdict::Success(user) => *user,
        Verdict::Failure => {
            tracing::info!(request_id = %ctx.request_id, client_ip = ?ctx.client_ip, "sign-in failed");
            // One message for every failed sign-in, whatever the reason (DESIGN §4).
            return Ok(refused(tr.t("sign-in-failed")));
        }
        Verdict::Locked => {
            tracing::info!(request_id = %ctx.request_id, client_ip = ?ctx.client_ip, "sign-in refused: locked");
            // Shown for real and unknown names alike (both are counted and locked),
            // so it tells nothing about whether an account exists.
            return Ok(refused(tr.t("sign-in-locked")));
        }
        Verdict::IpBlocked { retry_after } => {
            return Err(AppError::TooManyRequests {
                retry_after_secs: retry_after.as_secs(),
            }
            .into());
        }
    };
    upgrade_hash_in_background(&state, &user, password);

    let now = state.clock.now();
    let org = state
        .store
        .run({
            let org_id = user.org_id.clone();
            move |c| orgs::find_by_id(c, &org_id)
        })
        .await?
        .ok_or(AppError::Internal("user without organisation".into()))?;
    let expired_password = user
        .password_changed_at
        .is_some_and(|at| org.policy().password.is_expired(at.and_utc(), now));
    let policy = org.policy();
    let factors = second_factors(&state, &user, &policy).await?;
    tx.take(Step::Password {
        user_id: user.id.clone(),
        at: now.timestamp(),
        enrolled: factors.enrolled,
        second_factor_required: tx.require_mfa || policy.mfa.requires(user.role()),
        must_change_password: user.must_change_password || expired_password,
        passkey_due: factors.passkey_due,
    })
    .map_err(out_of_order)?;
    tracing::info!(request_id = %ctx.request_id, user_id = %user.id, "password accepted");
    advance(&state, &req, &ctx, tx).await
}

/// What a user's second factors are, once the password is right.
struct Factors {
    /// Some second factor to give: TOTP, or a passkey this server can use.
    enrolled: bool,
    /// The organisation requires a passkey of this user, who has none (DESIGN §17).
    passkey_due: bool,
}

async fn second_factors(
    state: &AppState,
    user: &UserRow,
    policy: &crate::domain::OrgPolicy,
) -> Result<Factors, AppError> {
    let passkeys = &policy.passkeys;
    let usable = state.passkeys.available() && passkeys.allowed();
    let has_passkey = usable && crate::auth::passkey::has_any(state, &user.id).await?;
    if !usable && passkeys.required_for(user.role()) {
        tracing::warn!(user_id = %user.id, "the organisation requires passkeys, which this server cannot offer");
    }
    Ok(Factors {
        // A TOTP code is asked for even where only a passkey completes the sign-in: it
        // is what lets such a person register one (`second_factor::otp_submit`).
        enrolled: has_passkey || totp::is_enrolled(state, &user.id).await?,
        passkey_due: usable && passkeys.required_for(user.role()) && !has_passkey,
    })
}

/// DESIGN §4: hashes made with older parameters are replaced after a successful sign-in,
/// off the response path; one an earlier release stored in clear is wrapped under the
/// master key (DESIGN §12), which needs no new hash.
fn upgrade_hash_in_background(state: &web::Data<AppState>, user: &UserRow, password: Password) {
    let Some(current) = user.password_hash.clone() else {
        return;
    };
    let rehash = state.hashing.hasher().needs_rehash(&current);
    if !rehash && !user.password_hash_in_clear {
        return;
    }
    let state = state.clone();
    let user_id = user.id.clone();
    tokio::spawn(async move {
        let pii = state.pii.clone();
        let result = if rehash {
            let Ok(hash) = state.hashing.hash(password).await else {
                return;
            };
            state
                .store
                .run(move |c| users::replace_hash(c, &pii, &user_id, &hash))
                .await
        } else {
            state
                .store
                .run(move |c| users::wrap_clear_hash(c, &pii, &user_id, &current).map(|_| ()))
                .await
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "password hash upgrade failed");
        }
    });
}

/// Sends the browser to the transaction's next page, or finishes it.
async fn advance(
    state: &AppState,
    req: &HttpRequest,
    ctx: &RequestContext,
    tx: LoginTransaction,
) -> Result<HttpResponse, PageError> {
    if tx.stage != Stage::Done {
        let mut tx = tx;
        learn_languages(state, &mut tx).await?;
        tx.save(state.ephemeral.as_ref()).await?;
        return Ok(see_other(&stage_location(&tx)));
    }
    complete(state, req, ctx, tx).await
}

/// Once the sign-in knows who the person is, its pages speak their language: their own
/// setting and their organisation's are kept in the transaction (read once).
async fn learn_languages(state: &AppState, tx: &mut LoginTransaction) -> Result<(), AppError> {
    let Some(user_id) = tx.user_id.clone() else {
        return Ok(());
    };
    if tx.language.is_some() || tx.org_language.is_some() || tx.time_zone.is_some() {
        return Ok(());
    }
    let pii = state.pii.clone();
    let found = state
        .store
        .run(move |c| {
            let Some(user) = users::find_by_id(c, &pii, &user_id)? else {
                return Ok(None);
            };
            let chosen = crate::store::preferences::find(c, &user.id)?;
            let policy = orgs::find_by_id(c, &user.org_id)?
                .map(|o| o.policy())
                .unwrap_or_default();
            Ok(Some((chosen, policy)))
        })
        .await?;
    if let Some((chosen, policy)) = found {
        tx.language = chosen.language;
        tx.org_language = policy.language;
        tx.time_zone = chosen.time_zone.or(policy.time_zone);
    }
    Ok(())
}

/// The person is signed in: the SSO session replaces this browser's previous one, and
/// the door that started the sign-in answers its request.
async fn complete(
    state: &AppState,
    req: &HttpRequest,
    ctx: &RequestContext,
    tx: LoginTransaction,
) -> Result<HttpResponse, PageError> {
    let previous = cookies::current_session(state, req).await?;
    let tr = tx_tr(req, &tx);
    let Some(SignedIn {
        session,
        cookie,
        resume,
    }) = sign_in::finish(state, ctx, tx, previous).await?
    else {
        return Ok(expired(&tr));
    };
    let Some(answer) = state.sign_in_answers.get(&resume.kind).cloned() else {
        // A transaction from a version that had a door this one lacks.
        tracing::warn!(request_id = %ctx.request_id, kind = %resume.kind, "sign-in for an unknown door");
        return Ok(expired(&tr));
    };
    let done = Finished {
        state,
        ctx,
        resume,
        session: &session,
    };
    let mut res = answer.answer(done).await?;
    res.add_cookie(&cookies::session_cookie(cookie))
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(res)
}

/// The sign-in page of `tx`, with the relying party's `login_hint` and `error`, if any.
async fn login_again(
    state: &AppState,
    tr: &Tr,
    tx: &LoginTransaction,
    error: Option<&str>,
    status: StatusCode,
) -> HttpResponse {
    let username = tx.login_hint.as_deref().unwrap_or("");
    login_choices(state, tx)
        .await
        .page(state, tr, tx, username, error, status)
}

#[get("/login/password")]
async fn password_page(query: Query<TxQuery>, Visit { state, req, .. }: Visit) -> Answer {
    let id = query.into_inner().tx.unwrap_or_default();
    let Some(tx) = owned_transaction(&state, &req, &id).await? else {
        return Ok(expired(&crate::web::visit::browser_tr(&req)));
    };
    if tx.stage != Stage::ChangePassword {
        return Ok(see_other(&stage_location(&tx)));
    }
    let username = transaction_username(&state, &tx).await?;
    Ok(render(
        &ChangePasswordPage {
            tr: &tx_tr(&req, &tx),
            tx: &tx.id,
            csrf: &tx.csrf,
            username: &username,
            errors: Vec::new(),
        },
        StatusCode::OK,
    ))
}

async fn transaction_username(state: &AppState, tx: &LoginTransaction) -> Result<String, AppError> {
    let user_id = tx.user_id.clone().unwrap_or_default();
    let pii = state.pii.clone();
    let user = state
        .store
        .run(move |c| users::find_by_id(c, &pii, &user_id))
        .await?;
    Ok(user.map(|u| u.username).unwrap_or_default())
}

#[post("/login/password")]
async fn password_submit(form: Form<NewPasswordForm>, Visit { state, req, ctx }: Visit) -> Answer {
    check_same_origin(&req, &state.config.issuer)?;
    let form = form.into_inner();
    let Some(mut tx) = owned_transaction(&state, &req, &form.tx).await? else {
        return Ok(expired(&crate::web::visit::browser_tr(&req)));
    };
    let tr = tx_tr(&req, &tx);
    if !same_secret(&form.csrf, &tx.csrf) {
        return Err(csrf_refused(&tr));
    }
    if tx.stage != Stage::ChangePassword {
        return Ok(see_other(&stage_location(&tx)));
    }
    let user_id = tx.user_id.clone().unwrap_or_default();
    let pii = state.pii.clone();
    let user = state
        .store
        .run(move |c| users::find_by_id(c, &pii, &user_id))
        .await?
        .ok_or(AppError::NotFound)?;
    let change = PasswordChange {
        new: form.new_password,
        confirm: form.confirm_password,
    };
    match change_password(&state, &ctx, &user, change, None, "required_action").await? {
        Err(problems) => Ok(render(
            &ChangePasswordPage {
                tr: &tr,
                tx: &tx.id,
                csrf: &tx.csrf,
                username: &user.username,
                errors: problems.iter().map(|p| p.said(&tr)).collect(),
            },
            StatusCode::BAD_REQUEST,
        )),
        Ok(()) => {
            tx.take(Step::PasswordChanged).map_err(out_of_order)?;
            advance(&state, &req, &ctx, tx).await
        }
    }
}

/// [`signed_out`] for protocol code, which knows nothing of the reader.
pub fn signed_out_page() -> HttpResponse {
    in_readers_language(signed_out)
}

pub fn signed_out(tr: &Tr) -> HttpResponse {
    let mut res = message(
        tr,
        StatusCode::OK,
        &tr.t("signed-out"),
        &tr.t("signed-out-text"),
        Some(("/account", &tr.t("sign-in-again"))),
    );
    let _ = res.add_cookie(&cookies::removal_cookie());
    res
}
