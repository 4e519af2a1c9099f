//! A hostile OIDC upstream (issue 28): an identity provider that answers discovery and
//! JWKS honestly but hands back ID tokens an attacker made — another audience, another
//! issuer, another nonce, no signature, an HMAC with the client secret, a key it never
//! published — and the downstream Gatehouse must refuse each with a clear page, sign
//! no one in, and record why. The same server answering honestly signs in, so every
//! refusal below is the check's doing, not a broken fixture.

use std::{
    net::TcpListener,
    sync::{Arc, Mutex},
};

use actix_web::{App, HttpResponse, HttpServer, web};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use url::Url;

use crate::{
    helpers::{TestApp, client, spawn_app},
    upstream_oidc::{add_connector, hidden_href, links, location, login_page},
};

const CLIENT_ID: &str = "downstream-gatehouse";
const CLIENT_SECRET: &str = "a-client-secret-of-some-length-0123456789";

/// How the hostile upstream's token endpoint answers.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Honest,
    OtherAudience,
    OtherIssuer,
    OtherNonce,
    Unsigned,
    HmacWithSecret,
    Expired,
    ForgedSignature,
    /// Signed with key B, which the JWKS lists only after the first fetch.
    RotatedKey,
    TokenError,
    Huge,
}

struct Op {
    mode: Mode,
    nonce: String,
    key_a: rsa::RsaPrivateKey,
    key_b: rsa::RsaPrivateKey,
    publish_b: bool,
    jwks_fetches: usize,
    issuer: String,
    /// The `amr` the ID token carries.
    amr: Vec<&'static str>,
    /// The `fhirUser` it carries, if any.
    fhir_user: Option<&'static str>,
}

struct Hostile {
    issuer: String,
    op: Arc<Mutex<Op>>,
}

fn jwk(key: &rsa::RsaPrivateKey, kid: &str) -> Value {
    use rsa::traits::PublicKeyParts;
    let public = key.to_public_key();
    json!({
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
    })
}

fn sign(key: &rsa::RsaPrivateKey, header: &Value, claims: &Value) -> String {
    use rsa::signature::{SignatureEncoding, Signer};
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key.clone());
    let sig = signer.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

fn hmac(secret: &str, header: &Value, claims: &Value) -> String {
    use hmac::{Hmac, Mac};
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

fn id_token(op: &Op) -> String {
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "iss": op.issuer, "sub": "hostile-sub-1", "aud": CLIENT_ID,
        "iat": now, "exp": now + 300, "nonce": op.nonce,
        "preferred_username": "hugo", "email": "hugo@op.example", "amr": op.amr,
        "groups": ["nurses", "ward-admins"],
    });
    if let Some(fhir_user) = op.fhir_user {
        claims["fhirUser"] = json!(fhir_user);
    }
    let header = json!({"alg": "RS256", "kid": "a", "typ": "JWT"});
    match op.mode {
        Mode::Honest | Mode::TokenError | Mode::Huge => sign(&op.key_a, &header, &claims),
        Mode::OtherAudience => {
            claims["aud"] = json!("another-client");
            sign(&op.key_a, &header, &claims)
        }
        Mode::OtherIssuer => {
            claims["iss"] = json!("https://evil.example");
            sign(&op.key_a, &header, &claims)
        }
        Mode::OtherNonce => {
            claims["nonce"] = json!("not-the-nonce-we-sent");
            sign(&op.key_a, &header, &claims)
        }
        Mode::Unsigned => format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(json!({"alg": "none"}).to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        ),
        Mode::HmacWithSecret => hmac(CLIENT_SECRET, &json!({"alg": "HS256"}), &claims),
        Mode::Expired => {
            claims["iat"] = json!(now - 7200);
            claims["exp"] = json!(now - 3600);
            sign(&op.key_a, &header, &claims)
        }
        Mode::ForgedSignature => sign(&op.key_b, &header, &claims),
        Mode::RotatedKey => sign(&op.key_b, &json!({"alg": "RS256", "kid": "b"}), &claims),
    }
}

impl Hostile {
    async fn start(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let issuer = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let key = || rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        let op = Arc::new(Mutex::new(Op {
            mode,
            nonce: String::new(),
            key_a: key(),
            key_b: key(),
            publish_b: false,
            jwks_fetches: 0,
            issuer: issuer.clone(),
            amr: vec!["pwd"],
            fhir_user: None,
        }));
        let shared = web::Data::new(op.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .route(
                    "/.well-known/openid-configuration",
                    web::get().to(discovery),
                )
                .route("/jwks", web::get().to(jwks))
                .route("/token", web::post().to(token))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Self { issuer, op }
    }
}

async fn discovery(op: web::Data<Arc<Mutex<Op>>>) -> HttpResponse {
    let issuer = op.lock().unwrap().issuer.clone();
    HttpResponse::Ok().json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

async fn jwks(op: web::Data<Arc<Mutex<Op>>>) -> HttpResponse {
    let mut op = op.lock().unwrap();
    op.jwks_fetches += 1;
    let mut keys = vec![jwk(&op.key_a, "a")];
    if op.publish_b {
        keys.push(jwk(&op.key_b, "b"));
    }
    // From the second fetch on, the rotated key is published.
    if op.mode == Mode::RotatedKey {
        op.publish_b = true;
    }
    HttpResponse::Ok().json(json!({ "keys": keys }))
}

async fn token(op: web::Data<Arc<Mutex<Op>>>) -> HttpResponse {
    let op = op.lock().unwrap();
    match op.mode {
        Mode::TokenError => HttpResponse::BadRequest().json(json!({"error": "invalid_grant"})),
        Mode::Huge => HttpResponse::Ok().json(json!({
            "access_token": "x".repeat(300 * 1024), "token_type": "Bearer", "id_token": id_token(&op),
        })),
        _ => HttpResponse::Ok().json(json!({
            "access_token": "opaque-access-token", "token_type": "Bearer", "expires_in": 300,
            "id_token": id_token(&op),
        })),
    }
}

/// A downstream with connector `hospital` to a hostile upstream answering in `mode`.
async fn world(mode: Mode) -> (TestApp, Hostile, String) {
    world_with(mode, json!({})).await
}

async fn world_with(mode: Mode, accounts: Value) -> (TestApp, Hostile, String) {
    let hostile = Hostile::start(mode).await;
    let downstream = spawn_app().await;
    let id = add_connector(
        &downstream,
        "hospital",
        json!({
            "oidc": { "issuer": hostile.issuer, "client_id": CLIENT_ID },
            "accounts": accounts,
        }),
        Some(CLIENT_SECRET),
        &[],
    )
    .await;
    (downstream, hostile, id)
}

/// Starts the trip in `browser` and plays the upstream's redirect back with a code: the
/// callback URL the browser is sent to.
async fn trip(downstream: &TestApp, hostile: &Hostile, browser: &reqwest::Client) -> Url {
    let (_, html) = login_page(downstream, browser).await;
    let res = browser
        .get(downstream.url(&hidden_href(&html, "upstream-hospital")))
        .send()
        .await
        .unwrap();
    let to_upstream = Url::parse(&location(&res)).unwrap();
    assert!(to_upstream.as_str().starts_with(&hostile.issuer));
    let q: std::collections::HashMap<_, _> = to_upstream.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256", "PKCE");
    assert!(q["scope"].split(' ').any(|s| s == "openid"));
    hostile.op.lock().unwrap().nonce = q["nonce"].clone();
    let mut back = Url::parse(&q["redirect_uri"]).unwrap();
    back.query_pairs_mut()
        .append_pair("code", "upstream-code-1")
        .append_pair("state", &q["state"]);
    back
}

async fn refused(mode: Mode, status: u16, says: &str) {
    let (downstream, hostile, id) = world(mode).await;
    let browser = client();
    let back = trip(&downstream, &hostile, &browser).await;
    let res = browser.get(back.as_str()).send().await.unwrap();
    assert_eq!(res.status(), status, "{mode:?}");
    let html = res.text().await.unwrap();
    assert!(html.contains(says), "{mode:?}: {html}");
    assert!(
        links(&downstream, &id).await.is_empty(),
        "{mode:?}: nobody signed in"
    );
    let account = browser
        .get(downstream.url("/account"))
        .send()
        .await
        .unwrap();
    assert_eq!(account.status(), 303, "{mode:?}: no session");
}

const UNTRUSTED: &str = "could not be trusted";

#[tokio::test]
async fn the_hostile_upstream_answering_honestly_signs_in() {
    let (downstream, hostile, id) = world(Mode::Honest).await;
    let browser = client();
    let back = trip(&downstream, &hostile, &browser).await;
    let res = browser.get(back.as_str()).send().await.unwrap();
    assert_eq!(location(&res), "/account");
    assert_eq!(links(&downstream, &id).await.len(), 1);
    // The same answer again is a replay: nothing waits for it any more.
    let again = browser.get(back.as_str()).send().await.unwrap();
    assert_eq!(again.status(), 400);
    assert!(again.text().await.unwrap().contains("expired"));
}

#[tokio::test]
async fn an_id_token_for_another_audience_is_refused() {
    refused(Mode::OtherAudience, 400, UNTRUSTED).await;
}

#[tokio::test]
async fn an_id_token_from_another_issuer_is_refused() {
    refused(Mode::OtherIssuer, 400, UNTRUSTED).await;
}

#[tokio::test]
async fn an_id_token_with_another_nonce_is_refused() {
    refused(Mode::OtherNonce, 400, UNTRUSTED).await;
}

#[tokio::test]
async fn an_unsigned_id_token_is_refused() {
    refused(Mode::Unsigned, 400, UNTRUSTED).await;
}

#[tokio::test]
async fn an_id_token_signed_with_the_client_secret_is_refused() {
    refused(Mode::HmacWithSecret, 400, UNTRUSTED).await;
}

#[tokio::test]
async fn an_expired_id_token_is_refused() {
    refused(Mode::Expired, 400, UNTRUSTED).await;
}

#[tokio::test]
async fn an_id_token_signed_by_a_key_the_upstream_never_published_is_refused() {
    refused(Mode::ForgedSignature, 400, UNTRUSTED).await;
}

#[tokio::test]
async fn a_refused_code_at_the_token_endpoint_is_a_clear_page() {
    refused(Mode::TokenError, 401, "did not sign you in").await;
}

#[tokio::test]
async fn an_oversized_token_response_is_not_read() {
    refused(Mode::Huge, 502, "could not be reached").await;
}

#[tokio::test]
async fn a_rotated_upstream_key_is_fetched_once_and_then_not_again_for_a_while() {
    let (downstream, hostile, id) = world(Mode::RotatedKey).await;
    let browser = client();
    let back = trip(&downstream, &hostile, &browser).await;
    let res = browser.get(back.as_str()).send().await.unwrap();
    assert_eq!(location(&res), "/account", "the new key was fetched");
    assert_eq!(links(&downstream, &id).await.len(), 1);
    assert_eq!(hostile.op.lock().unwrap().jwks_fetches, 2);
}

#[tokio::test]
async fn forged_replayed_and_foreign_answers_find_no_sign_in() {
    let (downstream, hostile, id) = world(Mode::Honest).await;
    let browser = client();
    let back = trip(&downstream, &hostile, &browser).await;
    // A state nobody issued.
    let mut forged = back.clone();
    forged.set_query(Some("code=upstream-code-1&state=forged-state"));
    let res = browser.get(forged.as_str()).send().await.unwrap();
    assert_eq!(res.status(), 400);
    // The genuine answer, brought by another browser (an attacker's link): refused,
    // and used up.
    let other = client();
    let _ = login_page(&downstream, &other).await;
    let res = other.get(back.as_str()).send().await.unwrap();
    assert_eq!(res.status(), 400);
    let res = browser.get(back.as_str()).send().await.unwrap();
    assert_eq!(
        res.status(),
        400,
        "a state is taken once, whoever brings it"
    );
    assert!(links(&downstream, &id).await.is_empty());
}

#[tokio::test]
async fn the_upstream_saying_no_is_shown_and_recorded_with_its_error() {
    let (downstream, hostile, _) = world(Mode::Honest).await;
    let browser = client();
    let back = trip(&downstream, &hostile, &browser).await;
    let q: std::collections::HashMap<_, _> = back.query_pairs().into_owned().collect();
    let mut denied = back.clone();
    denied.set_query(None);
    denied
        .query_pairs_mut()
        .append_pair("error", "access_denied")
        .append_pair("error_description", "user cancelled")
        .append_pair("state", &q["state"]);
    let res = browser.get(denied.as_str()).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let failures =
        crate::upstream_oidc::audit_details(&downstream, gatehouse::audit::EventType::SignInFailed)
            .await;
    assert!(
        failures.iter().any(|d| d["connector"] == "hospital"
            && d["reason"] == "upstream_denied"
            && d["upstream_error"]
                .as_str()
                .unwrap_or("")
                .contains("access_denied")),
        "{failures:?}"
    );
}

#[tokio::test]
async fn a_mixed_up_issuer_in_the_answer_is_refused() {
    let (downstream, hostile, id) = world(Mode::Honest).await;
    let browser = client();
    let mut back = trip(&downstream, &hostile, &browser).await;
    back.query_pairs_mut()
        .append_pair("iss", "https://other-idp.example");
    let res = browser.get(back.as_str()).send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert!(links(&downstream, &id).await.is_empty());
}

#[tokio::test]
async fn a_disabled_connector_and_an_upstream_that_is_down_get_clear_pages() {
    let downstream = spawn_app().await;
    // Nothing listens there.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    add_connector(
        &downstream,
        "hospital",
        json!({ "oidc": { "issuer": format!("http://127.0.0.1:{port}"), "client_id": CLIENT_ID } }),
        Some(CLIENT_SECRET),
        &[],
    )
    .await;
    let browser = client();
    let (_, html) = login_page(&downstream, &browser).await;
    let start = hidden_href(&html, "upstream-hospital");
    let res = browser.get(downstream.url(&start)).send().await.unwrap();
    assert_eq!(res.status(), 502);
    assert!(res.text().await.unwrap().contains("could not be reached"));

    let state = downstream.state.clone();
    state
        .store
        .run(|c| {
            use diesel::prelude::*;
            use gatehouse::store::schema::upstream_connectors as uc;
            diesel::update(uc::table)
                .set(uc::enabled.eq(false))
                .execute(c)?;
            Ok(())
        })
        .await
        .unwrap();
    let res = browser.get(downstream.url(&start)).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let res = browser
        .get(downstream.url("/upstream/hospital/callback?code=x&state=y"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // Switched off behind this instance's back (another instance, or by hand): its
    // sign-in page stops offering it within seconds.
    let offered = || async {
        let (_, html) = login_page(&downstream, &client()).await;
        !html.contains("upstream-hospital")
    };
    assert!(
        crate::helpers::eventually(std::time::Duration::from_secs(15), offered).await,
        "a disabled connector is not offered"
    );
}

#[tokio::test]
async fn tokens_naming_unknown_keys_cannot_make_us_hammer_the_upstream() {
    let (downstream, hostile, id) = world(Mode::ForgedSignature).await;
    hostile.op.lock().unwrap().mode = Mode::RotatedKey;
    // Key b is never published in this run: fetches stop at the first refetch.
    hostile.op.lock().unwrap().publish_b = false;
    for _ in 0..3 {
        let browser = client();
        let back = trip(&downstream, &hostile, &browser).await;
        hostile.op.lock().unwrap().publish_b = false;
        let res = browser.get(back.as_str()).send().await.unwrap();
        assert_eq!(res.status(), 400);
    }
    assert!(links(&downstream, &id).await.is_empty());
    // Discovery's fetch, and one more for the first unknown key: not one per token.
    assert_eq!(hostile.op.lock().unwrap().jwks_fetches, 2);
}

/// Everyone in the downstream's default organisation must use a second factor.
async fn mfa_for_everyone(app: &TestApp) {
    use gatehouse::{domain::MfaPolicy, store::orgs};
    let state = app.state.clone();
    state
        .store
        .run(|c| {
            let org =
                orgs::find_by_name(c, &gatehouse::domain::OrgName::parse("default").unwrap())?
                    .unwrap();
            let mut policy = org.policy();
            policy.mfa = MfaPolicy::Everyone;
            orgs::set_policy(c, &org.id, &policy, chrono::Utc::now().naive_utc())
        })
        .await
        .unwrap();
}

/// Where the downstream sends the browser after the upstream vouched for `amr`, under
/// a policy asking everyone for a second factor.
async fn after_upstream_mfa(trust: bool, amr: Vec<&'static str>) -> String {
    let (downstream, hostile, _) = world_with(
        Mode::Honest,
        json!({ "trust_upstream_mfa": trust, "mfa_acr_values": ["urn:hospital:mfa"] }),
    )
    .await;
    mfa_for_everyone(&downstream).await;
    hostile.op.lock().unwrap().amr = amr;
    let browser = client();
    let back = trip(&downstream, &hostile, &browser).await;
    let res = browser.get(back.as_str()).send().await.unwrap();
    location(&res)
}

#[tokio::test]
async fn the_upstreams_mfa_counts_only_where_its_connector_trusts_it() {
    assert_eq!(
        after_upstream_mfa(true, vec!["pwd", "mfa"]).await,
        "/account"
    );
    assert_eq!(
        after_upstream_mfa(true, vec!["pwd", "otp"]).await,
        "/account"
    );
    let untrusted = after_upstream_mfa(false, vec!["pwd", "mfa"]).await;
    assert!(
        untrusted.starts_with("/login/totp-enrol?tx="),
        "{untrusted}"
    );
    let password_only = after_upstream_mfa(true, vec!["pwd"]).await;
    assert!(
        password_only.starts_with("/login/totp-enrol?tx="),
        "{password_only}"
    );
}

/// A logout token from the hostile upstream, `change` applied to its claims first.
fn logout_token(hostile: &Hostile, change: impl FnOnce(&mut Value)) -> String {
    let op = hostile.op.lock().unwrap();
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "iss": op.issuer, "aud": CLIENT_ID, "iat": now, "exp": now + 120,
        "jti": uuid::Uuid::new_v4().to_string(), "sub": "hostile-sub-1",
        "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
    });
    change(&mut claims);
    sign(
        &op.key_a,
        &json!({"alg": "RS256", "kid": "a", "typ": "logout+jwt"}),
        &claims,
    )
}

#[tokio::test]
async fn only_a_well_formed_logout_token_from_the_upstream_ends_sessions() {
    let (downstream, hostile, _) = world(Mode::Honest).await;
    let browser = client();
    let back = trip(&downstream, &hostile, &browser).await;
    assert_eq!(
        location(&browser.get(back.as_str()).send().await.unwrap()),
        "/account"
    );
    let post = |token: String| {
        let url = downstream.url("/upstream/hospital/backchannel-logout");
        async move {
            client()
                .post(url)
                .form(&[("logout_token", token)])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let now = chrono::Utc::now().timestamp();
    for (what, token) in [
        (
            "a nonce",
            logout_token(&hostile, |c| c["nonce"] = json!("n")),
        ),
        (
            "no event",
            logout_token(&hostile, |c| c["events"] = json!({})),
        ),
        (
            "no jti",
            logout_token(&hostile, |c| {
                c.as_object_mut()
                    .unwrap()
                    .remove("jti")
                    .map(|_| ())
                    .unwrap_or(())
            }),
        ),
        (
            "no sub nor sid",
            logout_token(&hostile, |c| {
                c.as_object_mut()
                    .unwrap()
                    .remove("sub")
                    .map(|_| ())
                    .unwrap_or(())
            }),
        ),
        (
            "a stale iat",
            logout_token(&hostile, |c| c["iat"] = json!(now - 3600)),
        ),
        (
            "another issuer",
            logout_token(&hostile, |c| c["iss"] = json!("https://evil.example")),
        ),
        (
            "an HMAC",
            hmac(
                CLIENT_SECRET,
                &json!({"alg": "HS256"}),
                &json!({"iss": hostile.issuer, "aud": CLIENT_ID, "iat": now, "jti": "j", "sub": "hostile-sub-1", "events": {"http://schemas.openid.net/event/backchannel-logout": {}}}),
            ),
        ),
    ] {
        assert_eq!(post(token).await, 400, "{what}");
        assert_eq!(
            browser
                .get(downstream.url("/account"))
                .send()
                .await
                .unwrap()
                .status(),
            200,
            "{what} ended nothing"
        );
    }
    assert_eq!(post(logout_token(&hostile, |_| {})).await, 200);
    assert_eq!(
        browser
            .get(downstream.url("/account"))
            .send()
            .await
            .unwrap()
            .status(),
        303
    );
}

#[tokio::test]
async fn a_just_in_time_account_gets_the_role_its_upstream_groups_map_to() {
    let (downstream, hostile, id) = world_with(
        Mode::Honest,
        json!({ "groups_claim": "groups", "role_map": { "ward-admins": "support", "it": "super_admin" } }),
    )
    .await;
    let browser = client();
    let back = trip(&downstream, &hostile, &browser).await;
    // An administrator's role: the default policy asks administrators for a second
    // factor, so the new account enrols one before going on.
    let next = location(&browser.get(back.as_str()).send().await.unwrap());
    assert!(next.starts_with("/login/totp-enrol?tx="), "{next}");
    let user_id = links(&downstream, &id).await[0].user_id.clone();
    let pii = downstream.state.pii.clone();
    let user = downstream
        .state
        .store
        .run(move |c| gatehouse::store::users::find_by_id(c, &pii, &user_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        user.role, "support",
        "mapped from ward-admins; unmapped nurses add nothing"
    );
    assert_eq!(user.username, "hugo");
    assert!(user.password_hash.is_none(), "no password of ours");
}

#[tokio::test]
async fn a_mapped_fhir_user_claim_sets_the_persons_fhir_resource_on_that_server() {
    use gatehouse::audit::EventType;
    const FHIR: &str = "https://fhir.example.org/r4";
    let (downstream, hostile, id) = world_with(
        Mode::Honest,
        json!({ "fhir_user": { "claim": "fhirUser", "fhir_server": FHIR } }),
    )
    .await;
    crate::upstream_oidc::register_fhir_server(&downstream, FHIR).await;
    let sign_in_saying = |said: Option<&'static str>| {
        hostile.op.lock().unwrap().fhir_user = said;
        let (downstream, hostile) = (&downstream, &hostile);
        async move {
            let browser = client();
            let back = trip(downstream, hostile, &browser).await;
            let res = browser.get(back.as_str()).send().await.unwrap();
            assert_eq!(location(&res), "/account", "{said:?} never stops a sign-in");
        }
    };
    let fhir_user = || async {
        let user_id = links(&downstream, &id).await[0].user_id.clone();
        crate::upstream_oidc::fhir_user_of(&downstream, &user_id, FHIR).await
    };
    let set_events =
        || async { crate::upstream_oidc::audit_details(&downstream, EventType::FhirUserSet).await };

    // Its absolute URL on the mapped server, at the first sign-in (the account is new).
    sign_in_saying(Some("https://fhir.example.org/r4/Practitioner/dr-7")).await;
    assert_eq!(fhir_user().await.as_deref(), Some("Practitioner/dr-7"));
    let events = set_events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (&events[0]["connector"], &events[0]["fhir_user"]),
        (&json!("hospital"), &json!("Practitioner/dr-7"))
    );
    // The same again changes nothing; a new one follows the upstream.
    sign_in_saying(Some("Practitioner/dr-7")).await;
    assert_eq!(set_events().await.len(), 1);
    sign_in_saying(Some("Practitioner/dr-8")).await;
    assert_eq!(fhir_user().await.as_deref(), Some("Practitioner/dr-8"));
    assert_eq!(set_events().await.len(), 2);
    // A resource on another server, a type that is not a user, or nothing: left out.
    for said in [
        Some("https://evil.example.org/r4/Practitioner/x"),
        Some("Organization/1"),
        Some("Practitioner/has spaces"),
        None,
    ] {
        sign_in_saying(said).await;
        assert_eq!(fhir_user().await.as_deref(), Some("Practitioner/dr-8"));
    }
    assert_eq!(set_events().await.len(), 2);
}
