//! `/token` (authorization_code, refresh_token, client_credentials), `/revoke`
//! (RFC 7009) and `/introspect` (RFC 7662).

use actix_web::{HttpRequest, HttpResponse, post, web};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{
    OAuthError, Params,
    authorize::{CodeData, code_key, used_code_key},
    client_auth,
    clients::{GRANT_CLIENT_CREDENTIALS, GRANT_CODE, GRANT_REFRESH},
    discovery::issuer,
    form_params, no_store_json, parse_scope,
    tokens::{Grant, verify_access_token},
};
use crate::{
    audit::{AuditEvent, EventType, Outcome},
    auth::{random_token, same_secret, session, token_hash},
    domain::UserStatus,
    startup::AppState,
    store::{
        clients::ClientRow,
        grants::{self, GrantRow, NewGrant, Refresh},
        orgs,
        users::{self, UserRow},
    },
    web::RequestContext,
};

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

#[post("/token")]
pub async fn token_endpoint(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    let params = form_params(&req, &body)?.single()?;
    let client = client_auth::authenticate(&state, &req, &ctx, &params).await?;
    let grant_type = params.require("grant_type")?;
    if !matches!(
        grant_type,
        GRANT_CODE | GRANT_REFRESH | GRANT_CLIENT_CREDENTIALS
    ) {
        return Err(OAuthError::new(
            "unsupported_grant_type",
            "grant_type is not supported",
        ));
    }
    if !client.allows_grant(grant_type) {
        return Err(OAuthError::new(
            "unauthorized_client",
            "this client may not use this grant",
        ));
    }
    let response = match grant_type {
        GRANT_CODE => exchange_code(&state, &params, &client).await?,
        GRANT_REFRESH => refresh(&state, &params, &client).await?,
        _ => client_credentials(&state, &params, &client).await?,
    };
    state
        .audit
        .record(
            AuditEvent::new(EventType::TokenIssued, Outcome::Success)
                .request(&ctx)
                .actor(&client.client_id)
                .detail("grant_type", grant_type)
                .detail("client_id", client.client_id.as_str()),
        )
        .await?;
    Ok(no_store_json(&response))
}

fn pkce_matches(challenge: &str, verifier: &str) -> bool {
    // RFC 7636 §4.1: 43–128 unreserved characters.
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    well_formed
        && same_secret(
            &URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
            challenge,
        )
}

async fn exchange_code(
    state: &AppState,
    params: &Params,
    client: &ClientRow,
) -> Result<TokenResponse, OAuthError> {
    let code = params.require("code")?;
    if code.len() > 64 {
        return Err(OAuthError::invalid_grant("the code is not valid"));
    }
    let Some(raw) = state.ephemeral.take(&code_key(code)).await? else {
        // Used before (or expired): a replay revokes what the first exchange issued.
        if let Some(grant_id) = state.ephemeral.get(&used_code_key(code)).await? {
            let grant_id = String::from_utf8_lossy(&grant_id).into_owned();
            let now = state.clock.now().naive_utc();
            let revoked = state
                .store
                .run(move |c| grants::revoke(c, &grant_id, now))
                .await?;
            if revoked {
                tracing::warn!(client_id = %client.client_id, "authorization code replayed: its tokens are revoked");
                state
                    .audit
                    .record(
                        AuditEvent::new(EventType::TokenRevoked, Outcome::Success)
                            .actor(&client.client_id)
                            .detail("reason", "authorization code reused"),
                    )
                    .await?;
            }
        }
        return Err(OAuthError::invalid_grant(
            "the code is invalid, expired or already used",
        ));
    };
    let data: CodeData = serde_json::from_slice(&raw)
        .map_err(|e| crate::web::error::AppError::Internal(e.to_string()))?;
    if data.expires_at <= state.clock.now().timestamp() {
        return Err(OAuthError::invalid_grant("the code has expired"));
    }
    if data.request.client_id != client.client_id {
        return Err(OAuthError::invalid_grant(
            "the code was issued to another client",
        ));
    }
    if params.get("redirect_uri") != Some(data.request.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant("redirect_uri does not match"));
    }
    match (&data.request.code_challenge, params.get("code_verifier")) {
        (Some(challenge), Some(verifier)) if pkce_matches(challenge, verifier) => {}
        (None, None) => {}
        _ => return Err(OAuthError::invalid_grant("PKCE verification failed")),
    }
    let now = state.clock.now();
    let grant = NewGrant {
        id: data.grant_id.clone(),
        client_id: client.client_id.clone(),
        user_id: Some(data.user_id.clone()),
        session_handle: Some(data.session_handle.clone()),
        scope: data.request.scope.join(" "),
        auth_time: Some(data.auth_time),
        amr: data.amr.join(" "),
        created_at: now.naive_utc(),
    };
    let with_refresh = client.allows_grant(GRANT_REFRESH);
    let refresh_token = with_refresh.then(random_token);
    let refresh_hash = refresh_token.as_deref().map(token_hash);
    let refresh_expiry = expiry(now, state.config.refresh_token_secs);
    let user_id = data.user_id.clone();
    let admits = client.clone();
    let issued = state
        .store
        .transaction(move |c| {
            let user = users::find_by_id(c, &user_id)?;
            let org = org_name(c, user.as_ref())?;
            // Issue 20 item 9: checked again here, in case the client changed since
            // the code was issued.
            if !org.as_deref().is_some_and(|o| admits.allows_org(o)) {
                return Ok(None);
            }
            let row = grants::insert(c, &grant)?;
            if let Some(hash) = &refresh_hash {
                grants::insert_refresh(c, hash, &grant.id, grant.created_at, refresh_expiry)?;
            }
            Ok(Some((row, user, org)))
        })
        .await?;
    let Some((grant, user, org)) = issued else {
        return Err(not_admitted());
    };
    let user = usable_user(user)?;
    respond(
        state,
        client,
        Some((&grant, &user)),
        org.as_deref(),
        &data.request.scope,
        data.request.nonce.as_deref(),
        refresh_token,
    )
}

/// The name of `user`'s organisation (the `org` claim).
fn org_name(
    c: &mut crate::store::DbConnection,
    user: Option<&UserRow>,
) -> Result<Option<String>, crate::store::StoreError> {
    Ok(match user {
        Some(u) => orgs::find_by_id(c, &u.org_id)?.map(|o| o.name),
        None => None,
    })
}

fn not_admitted() -> OAuthError {
    OAuthError::invalid_grant("this client is not open to users of the user's organisation")
}

fn expiry(now: DateTime<Utc>, secs: u64) -> chrono::NaiveDateTime {
    (now + chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 2))).naive_utc()
}

fn usable_user(user: Option<UserRow>) -> Result<UserRow, OAuthError> {
    user.filter(|u| u.status() == UserStatus::Active)
        .ok_or_else(|| OAuthError::invalid_grant("the user can no longer sign in"))
}

fn respond(
    state: &AppState,
    client: &ClientRow,
    user: Option<(&GrantRow, &UserRow)>,
    org: Option<&str>,
    scope: &[String],
    nonce: Option<&str>,
    refresh_token: Option<String>,
) -> Result<TokenResponse, OAuthError> {
    let ring = state.keys.current();
    let issuer = issuer(state);
    let lifetime = i64::try_from(state.config.access_token_secs).unwrap_or(300);
    let view = Grant {
        issuer: &issuer,
        client_id: &client.client_id,
        user,
        org,
        scope,
        nonce,
        now: state.clock.now(),
        lifetime_secs: lifetime,
        id_token_alg: &client.id_token_alg,
    };
    let access_token = view.access_token(&ring);
    let id_token = match user {
        Some(_) if scope.iter().any(|s| s == "openid") => Some(
            view.id_token(&ring, &access_token)
                .map_err(crate::web::error::AppError::Internal)?,
        ),
        _ => None,
    };
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: lifetime,
        scope: scope.join(" "),
        refresh_token,
        id_token,
    })
}

async fn refresh(
    state: &AppState,
    params: &Params,
    client: &ClientRow,
) -> Result<TokenResponse, OAuthError> {
    let presented = params.require("refresh_token")?;
    if presented.len() > 64 {
        return Err(OAuthError::invalid_grant("the refresh token is not valid"));
    }
    let hash = token_hash(presented);
    let now = state.clock.now();
    let requested = params.get("scope").map(parse_scope).transpose()?;
    let new_token = random_token();
    let new_hash = token_hash(&new_token);
    let new_expiry = expiry(now, state.config.refresh_token_secs);
    let client_id = client.client_id.clone();
    let outcome = state
        .store
        .run(move |c| {
            Ok(
                match grants::rotate_refresh(
                    c,
                    &hash,
                    &new_hash,
                    &client_id,
                    now.naive_utc(),
                    new_expiry,
                )? {
                    Refresh::Rotated(found) => {
                        let (grant, user) = *found;
                        let org = org_name(c, user.as_ref())?;
                        Ok((grant, user, org))
                    }
                    Refresh::Reused(_) => Err("reused"),
                    Refresh::OtherClient => Err("the refresh token was issued to another client"),
                    Refresh::Invalid => Err("the refresh token is invalid or expired"),
                },
            )
        })
        .await?;
    let (grant, user, org) = match outcome {
        Ok(found) => found,
        Err("reused") => {
            tracing::warn!(client_id = %client.client_id, "rotated refresh token reused: the whole family is revoked");
            state
                .audit
                .record(
                    AuditEvent::new(EventType::TokenRevoked, Outcome::Success)
                        .actor(&client.client_id)
                        .detail("reason", "refresh token reused"),
                )
                .await?;
            return Err(OAuthError::invalid_grant(
                "the refresh token was already used",
            ));
        }
        Err(why) => return Err(OAuthError::invalid_grant(why)),
    };
    let user = usable_user(user)?;
    // Issue 20 item 9: a client that no longer admits the user's organisation gets no
    // more tokens for them.
    if !org.as_deref().is_some_and(|o| client.allows_org(o)) {
        return Err(not_admitted());
    }
    let granted: Vec<String> = grant.scope.split(' ').map(str::to_owned).collect();
    // Without offline_access, a refresh token lives only as long as the SSO session it
    // was issued in (idle and absolute limits included).
    if let Some(handle) = &grant.session_handle
        && !granted.iter().any(|s| s == "offline_access")
        && !session::is_live(state.ephemeral.as_ref(), state.clock.as_ref(), handle).await?
    {
        let (id, now) = (grant.id.clone(), state.clock.now().naive_utc());
        state
            .store
            .run(move |c| grants::revoke(c, &id, now))
            .await?;
        return Err(OAuthError::invalid_grant("the sign-in session has ended"));
    }
    let scope = match requested {
        Some(asked) if asked.iter().all(|s| granted.contains(s)) => asked,
        Some(_) => {
            return Err(OAuthError::new(
                "invalid_scope",
                "a refresh cannot widen the scope",
            ));
        }
        None => granted,
    };
    respond(
        state,
        client,
        Some((&grant, &user)),
        org.as_deref(),
        &scope,
        None,
        Some(new_token),
    )
}

async fn client_credentials(
    state: &AppState,
    params: &Params,
    client: &ClientRow,
) -> Result<TokenResponse, OAuthError> {
    if client.is_public() {
        return Err(OAuthError::new(
            "unauthorized_client",
            "public clients cannot use client_credentials",
        ));
    }
    let scope = params
        .get("scope")
        .map(parse_scope)
        .transpose()?
        .unwrap_or_default();
    // No user is involved: user scopes mean nothing here.
    if let Some(s) = scope
        .iter()
        .find(|s| matches!(s.as_str(), "openid" | "offline_access") || !client.allows_scope(s))
    {
        return Err(OAuthError::new(
            "invalid_scope",
            format!("scope {s} is not available with client_credentials"),
        ));
    }
    // Nothing is stored: the token stands for the client (see `tokens::AccessClaims`).
    respond(state, client, None, None, &scope, None, None)
}

/// What a presented token turned out to be.
enum Found {
    /// A live access token: of a user's grant, or (None) a client_credentials token.
    Access(Box<super::tokens::AccessClaims>, Option<GrantRow>),
    Refresh(GrantRow, chrono::NaiveDateTime, chrono::NaiveDateTime),
}

async fn find_token(state: &AppState, token: &str) -> Result<Option<Found>, OAuthError> {
    if token.len() > 16 * 1024 {
        return Ok(None);
    }
    let now = state.clock.now();
    if token.len() <= 64 {
        let hash = token_hash(token);
        let found = state
            .store
            .run(move |c| grants::refresh_grant(c, &hash, now.naive_utc()))
            .await?;
        return Ok(found.map(|(g, created, expires)| Found::Refresh(g, created, expires)));
    }
    let ring = state.keys.current();
    let Some(claims) = verify_access_token(&ring, &issuer(state), token, now) else {
        return Ok(None);
    };
    let found = access_token_holder(state, &claims).await?;
    Ok(found.map(|grant| Found::Access(Box::new(claims), grant)))
}

/// Whether a verified access token still stands, and on what: `Some(Some(grant))` for a
/// user's live grant, `Some(None)` for a client_credentials token whose client exists
/// and whose `jti` is not revoked, `None` for a token no longer valid.
pub async fn access_token_holder(
    state: &AppState,
    claims: &super::tokens::AccessClaims,
) -> Result<Option<Option<GrantRow>>, crate::store::StoreError> {
    match &claims.gid {
        Some(gid) => {
            let gid = gid.clone();
            let grant = state.store.run(move |c| grants::live(c, &gid)).await?;
            Ok(grant.map(Some))
        }
        // Only client_credentials tokens go without a grant, and their subject is the client.
        None if claims.sub == claims.client_id => {
            let (client_id, jti) = (claims.client_id.clone(), claims.jti.clone());
            let live = state
                .store
                .run(move |c| grants::client_token_live(c, &client_id, &jti))
                .await?;
            Ok(live.then_some(None))
        }
        None => Ok(None),
    }
}

#[post("/revoke")]
pub async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    let params = form_params(&req, &body)?.single()?;
    let client = client_auth::authenticate(&state, &req, &ctx, &params).await?;
    let token = params.require("token")?;
    // RFC 7009 §2.2: an unknown or foreign token is answered 200 all the same.
    let now = state.clock.now().naive_utc();
    let (revoked, subject) = match find_token(&state, token).await? {
        Some(Found::Access(_, Some(g)) | Found::Refresh(g, _, _))
            if g.client_id == client.client_id =>
        {
            let id = g.id.clone();
            let revoked = state
                .store
                .run(move |c| grants::revoke(c, &id, now))
                .await?;
            (revoked, g.user_id)
        }
        Some(Found::Access(claims, None)) if claims.client_id == client.client_id => {
            let expires_at = DateTime::from_timestamp(claims.exp, 0).map_or(now, |t| t.naive_utc());
            let revoked = state
                .store
                .run(move |c| {
                    match grants::revoke_client_token(c, &claims.client_id, &claims.jti, expires_at)
                    {
                        // Revoked at the same moment by another request.
                        Err(crate::store::StoreError::Conflict) => Ok(false),
                        other => other,
                    }
                })
                .await?;
            (revoked, None)
        }
        _ => (false, None),
    };
    if revoked {
        let mut event = AuditEvent::new(EventType::TokenRevoked, Outcome::Success)
            .request(&ctx)
            .actor(&client.client_id)
            .detail("reason", "revocation request");
        if let Some(user) = &subject {
            event = event.subject(user);
        }
        state.audit.record(event).await?;
    }
    Ok(no_store_json(&json!({})))
}

#[post("/introspect")]
pub async fn introspect(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestContext,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    let params = form_params(&req, &body)?.single()?;
    let client = client_auth::authenticate(&state, &req, &ctx, &params).await?;
    if client.is_public() {
        return Err(OAuthError::invalid_client(
            "public clients cannot introspect",
        ));
    }
    let token = params.require("token")?;
    // Issue 20 item 11 (RFC 7662 §4): a client sees only the tokens issued to it, unless
    // registered as a resource server with the introspection permission. To anyone
    // else a token is simply inactive, as an unknown one is.
    let found = find_token(&state, token).await?.filter(|found| {
        let holder = match found {
            Found::Access(claims, _) => &claims.client_id,
            Found::Refresh(grant, _, _) => &grant.client_id,
        };
        *holder == client.client_id || client.introspection
    });
    let answer: Value = match found {
        Some(Found::Access(claims, _)) => {
            let mut answer = json!({
                "active": true,
                "token_type": "Bearer",
                "scope": claims.scope,
                "client_id": claims.client_id,
                "sub": claims.sub,
                "aud": claims.aud,
                "iss": claims.iss,
                "exp": claims.exp,
                "iat": claims.iat,
                "jti": claims.jti,
            });
            if let Some(org) = claims.org {
                answer["org"] = json!(org);
            }
            answer
        }
        Some(Found::Refresh(grant, created, expires)) => {
            let user_id = grant.user_id.clone();
            let org = state
                .store
                .run(move |c| {
                    let user = match user_id {
                        Some(id) => users::find_by_id(c, &id)?,
                        None => None,
                    };
                    org_name(c, user.as_ref())
                })
                .await?;
            json!({
                "active": true,
                "token_type": "refresh_token",
                "scope": grant.scope,
                "client_id": grant.client_id,
                "sub": grant.user_id,
                "org": org,
                "iss": issuer(&state),
                "exp": expires.and_utc().timestamp(),
                "iat": created.and_utc().timestamp(),
            })
        }
        None => json!({ "active": false }),
    };
    Ok(no_store_json(&answer))
}
