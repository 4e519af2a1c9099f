//! DPoP (RFC 9449): tokens bound to the client's key, at `/token`, `/userinfo`,
//! `/introspect` and the admin API. Attacks first: every refusal is asserted with its
//! status, error and the words that say why.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use gatehouse::oidc::clients::{ClientSpec, Registered};
use jsonwebtoken::{Algorithm, EncodingKey};
use reqwest::{RequestBuilder, Response};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    helpers::{TestApp, create_user, spawn_app, spawn_app_with},
    oidc::{browse_authorize, query, register_client, rp_http},
    oidc_clients::{PASSWORD, authorize_url, pkce, public_spec},
};

const SPA: &str = "https://spa.example.org/cb";

/// A client's DPoP key pair (P-256, made with OpenSSL): it signs proofs, and its public
/// half rides in each proof's header.
struct DpopKey {
    key: EncodingKey,
    jwk: Value,
    /// The RFC 7638 thumbprint, computed here independently of Gatehouse.
    jkt: String,
    /// The private key, as a JWK's `d`: what a careless client might leak in a header.
    d: String,
    alg: Algorithm,
}

impl DpopKey {
    /// A P-256 key (ES256), as DPoP client libraries make by default.
    fn new() -> Self {
        Self::ec(
            openssl::nid::Nid::X9_62_PRIME256V1,
            "P-256",
            32,
            Algorithm::ES256,
        )
    }

    /// A P-384 key (ES384): allowed for clients, not for FAPI 2.0 ones.
    fn p384() -> Self {
        Self::ec(openssl::nid::Nid::SECP384R1, "P-384", 48, Algorithm::ES384)
    }

    fn ec(nid: openssl::nid::Nid, crv: &str, size: i32, alg: Algorithm) -> Self {
        use openssl::{bn::BigNum, ec::EcGroup, ec::EcKey, pkey::PKey};
        let group = EcGroup::from_curve_name(nid).unwrap();
        let ec = EcKey::generate(&group).unwrap();
        let (mut x, mut y) = (BigNum::new().unwrap(), BigNum::new().unwrap());
        let mut ctx = openssl::bn::BigNumContext::new().unwrap();
        ec.public_key()
            .affine_coordinates(&group, &mut x, &mut y, &mut ctx)
            .unwrap();
        let (x, y) = (
            URL_SAFE_NO_PAD.encode(x.to_vec_padded(size).unwrap()),
            URL_SAFE_NO_PAD.encode(y.to_vec_padded(size).unwrap()),
        );
        let d = URL_SAFE_NO_PAD.encode(ec.private_key().to_vec_padded(size).unwrap());
        let pkcs8 = PKey::from_ec_key(ec)
            .unwrap()
            .private_key_to_pkcs8()
            .unwrap();
        // RFC 7638 §3.2: the required members, in lexicographic order, no spaces.
        let canonical = format!(r#"{{"crv":"{crv}","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let jkt = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        Self {
            key: EncodingKey::from_ec_der(&pkcs8),
            jwk: json!({"kty": "EC", "crv": crv, "x": x, "y": y}),
            jkt,
            d,
            alg,
        }
    }

    /// A proof with this header and these claims, signed with the key's algorithm.
    /// (The header is written by hand: a library's header type would drop what an
    /// attacker adds to it.)
    fn sign(&self, header: Value, claims: Value) -> String {
        signed_with(&self.key, self.alg, &header, &claims)
    }

    fn header(&self) -> Value {
        json!({"alg": format!("{:?}", self.alg), "typ": "dpop+jwt", "jwk": self.jwk})
    }

    /// A good proof for `method` on `url`, now by the app's clock, with `extra` claims.
    fn proof_with(&self, app: &TestApp, method: &str, url: &str, extra: Value) -> String {
        let mut claims = json!({
            "htm": method, "htu": url, "iat": now(app), "jti": uuid::Uuid::new_v4().to_string(),
        });
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        self.sign(self.header(), claims)
    }

    fn proof(&self, app: &TestApp, method: &str, path: &str) -> String {
        self.proof_with(app, method, &app.url(path), json!({}))
    }

    /// A proof for a resource request with `token` (its `ath`).
    fn resource_proof(&self, app: &TestApp, method: &str, path: &str, token: &str) -> String {
        self.proof_with(app, method, &app.url(path), json!({ "ath": ath(token) }))
    }
}

fn signed_with(key: &EncodingKey, alg: Algorithm, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).unwrap();
    format!("{input}.{signature}")
}

fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

fn now(app: &TestApp) -> i64 {
    use gatehouse::clock::Clock;
    app.clock.now().timestamp()
}

fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// The status, `error` and `error_description` of a refusal.
async fn refusal(res: Response) -> (u16, String, String) {
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
        body["error_description"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// Asserts a refusal: its status, error, and that its description has `why` in it.
async fn assert_refused(res: Response, status: u16, error: &str, why: &str) {
    let (got_status, got_error, description) = refusal(res).await;
    assert_eq!(
        (got_status, got_error.as_str()),
        (status, error),
        "{why}: {description}"
    );
    assert!(
        description.contains(why),
        "the description should say {why:?}: {description}"
    );
}

fn secret(reg: &Registered) -> &str {
    reg.client_secret.as_ref().unwrap().expose_secret()
}

/// A service client (client_credentials), as `spec` shapes it.
async fn service(app: &TestApp, spec: impl FnOnce(ClientSpec) -> ClientSpec) -> Registered {
    register_client(
        app,
        spec(ClientSpec {
            grant_types: vec!["client_credentials".into()],
            ..ClientSpec::new("Lab service", &[])
        }),
    )
    .await
}

fn client_credentials(app: &TestApp, reg: &Registered) -> RequestBuilder {
    rp_http()
        .post(app.url("/token"))
        .basic_auth(&reg.client_id, Some(secret(reg)))
        .form(&[("grant_type", "client_credentials")])
}

/// A signed-in user's code for `client_id` at `redirect`.
async fn code(app: &TestApp, browser: &reqwest::Client, client_id: &str, redirect: &str) -> String {
    let back = browse_authorize(
        app,
        browser,
        &authorize_url(app, client_id, redirect),
        "nina",
        PASSWORD,
    )
    .await;
    query(&back)["code"].clone()
}

/// A public client's code exchange, with a DPoP proof if given.
async fn exchange(app: &TestApp, client_id: &str, code: &str, proof: Option<String>) -> Response {
    let (verifier, _) = pkce();
    let mut req = rp_http().post(app.url("/token")).form(&[
        ("grant_type", "authorization_code"),
        ("client_id", client_id),
        ("code", code),
        ("redirect_uri", SPA),
        ("code_verifier", &verifier),
    ]);
    if let Some(p) = proof {
        req = req.header("DPoP", p);
    }
    req.send().await.unwrap()
}

async fn refresh(app: &TestApp, client_id: &str, token: &str, proof: Option<String>) -> Response {
    let mut req = rp_http().post(app.url("/token")).form(&[
        ("grant_type", "refresh_token"),
        ("client_id", client_id),
        ("refresh_token", token),
    ]);
    if let Some(p) = proof {
        req = req.header("DPoP", p);
    }
    req.send().await.unwrap()
}

async fn userinfo(app: &TestApp, authorization: &str, proof: Option<String>) -> Response {
    let mut req = rp_http()
        .get(app.url("/userinfo"))
        .header("Authorization", authorization);
    if let Some(p) = proof {
        req = req.header("DPoP", p);
    }
    req.send().await.unwrap()
}

/// A token answer; it carries a nonce exactly when it answers a proof (the tokens are
/// then DPoP-bound).
async fn tokens(res: Response) -> Value {
    assert_eq!(res.status(), 200);
    let has_nonce = res.headers().get("DPoP-Nonce").is_some();
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        has_nonce,
        body["token_type"] == "DPoP",
        "a nonce with every answer to a proof, and only then: {body}"
    );
    body
}

#[tokio::test]
async fn a_public_client_keeps_its_tokens_bound_to_its_key_from_code_to_userinfo_and_refresh() {
    let app = spawn_app().await;
    create_user(&app, "nina", PASSWORD, false).await;
    let spa = register_client(&app, public_spec("Ward SPA", &[SPA])).await;
    let (key, thief) = (DpopKey::new(), DpopKey::new());
    let browser = app.new_client();

    let code = code(&app, &browser, &spa.client_id, SPA).await;
    let issued = tokens(
        exchange(
            &app,
            &spa.client_id,
            &code,
            Some(key.proof(&app, "POST", "/token")),
        )
        .await,
    )
    .await;
    assert_eq!(issued["token_type"], "DPoP", "{issued}");
    let access = issued["access_token"].as_str().unwrap().to_owned();
    let refresh_token = issued["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(claims_of(&access)["cnf"]["jkt"], key.jkt.as_str());

    // At /userinfo, attacks first.
    let dpop = format!("DPoP {access}");
    let res = userinfo(&app, &format!("Bearer {access}"), None).await;
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.starts_with("DPoP algs="), "{challenge}");
    assert_refused(res, 401, "invalid_token", "bound to a DPoP key").await;
    assert_refused(
        userinfo(&app, &dpop, None).await,
        401,
        "invalid_dpop_proof",
        "needs a DPoP proof",
    )
    .await;
    let without_ath = key.proof(&app, "GET", "/userinfo");
    assert_refused(
        userinfo(&app, &dpop, Some(without_ath)).await,
        401,
        "invalid_dpop_proof",
        "ath",
    )
    .await;
    let wrong_ath = key.resource_proof(&app, "GET", "/userinfo", "another token");
    assert_refused(
        userinfo(&app, &dpop, Some(wrong_ath)).await,
        401,
        "invalid_dpop_proof",
        "ath is not the hash",
    )
    .await;
    let by_thief = thief.resource_proof(&app, "GET", "/userinfo", &access);
    assert_refused(
        userinfo(&app, &dpop, Some(by_thief)).await,
        401,
        "invalid_token",
        "not made with the key",
    )
    .await;
    let for_post = key.resource_proof(&app, "POST", "/userinfo", &access);
    assert_refused(
        userinfo(&app, &dpop, Some(for_post)).await,
        401,
        "invalid_dpop_proof",
        "htm",
    )
    .await;
    let for_token = key.resource_proof(&app, "GET", "/token", &access);
    assert_refused(
        userinfo(&app, &dpop, Some(for_token)).await,
        401,
        "invalid_dpop_proof",
        "htu",
    )
    .await;

    let good = key.resource_proof(&app, "GET", "/userinfo", &access);
    let res = userinfo(&app, &dpop, Some(good.clone())).await;
    assert_eq!(res.status(), 200);
    let info: Value = res.json().await.unwrap();
    assert_eq!(info["preferred_username"], "nina");
    assert_refused(
        userinfo(&app, &dpop, Some(good)).await,
        401,
        "invalid_dpop_proof",
        "replayed",
    )
    .await;

    // Refresh: with another key, or none, refused and nothing spent.
    let res = refresh(
        &app,
        &spa.client_id,
        &refresh_token,
        Some(thief.proof(&app, "POST", "/token")),
    )
    .await;
    assert_refused(res, 400, "invalid_dpop_proof", "bound to").await;
    let res = refresh(&app, &spa.client_id, &refresh_token, None).await;
    assert_refused(res, 400, "invalid_dpop_proof", "DPoP proof").await;
    let renewed = tokens(
        refresh(
            &app,
            &spa.client_id,
            &refresh_token,
            Some(key.proof(&app, "POST", "/token")),
        )
        .await,
    )
    .await;
    assert_eq!(renewed["token_type"], "DPoP");
    assert_eq!(
        claims_of(renewed["access_token"].as_str().unwrap())["cnf"]["jkt"],
        key.jkt.as_str()
    );
}

#[tokio::test]
async fn proofs_at_the_token_endpoint_are_refused_for_every_flaw_and_say_why() {
    let app = spawn_app().await;
    let reg = service(&app, |s| s).await;
    let key = DpopKey::new();
    let url = app.url("/token");
    let t = now(&app);
    let jti = || uuid::Uuid::new_v4().to_string();
    let claims = |extra: Value| {
        let mut c = json!({"htm": "POST", "htu": url, "iat": t, "jti": jti()});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let mut private_jwk = key.jwk.clone();
    private_jwk["d"] = json!(key.d);
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD
            .encode(json!({"alg": "none", "typ": "dpop+jwt", "jwk": key.jwk}).to_string()),
        URL_SAFE_NO_PAD.encode(claims(json!({})).to_string())
    );
    let hmac = signed_with(
        &EncodingKey::from_secret(b"a shared secret").unwrap(),
        Algorithm::HS256,
        &json!({"alg": "HS256", "typ": "dpop+jwt", "jwk": key.jwk}),
        &claims(json!({})),
    );
    // RSA keys a proof's header may not carry: too weak to prove anything, or with an
    // exponent that would make each check cost milliseconds.
    let rsa_proof = |bits: u32, e: u32| {
        use openssl::{bn::BigNum, rsa::Rsa};
        let rsa = Rsa::generate_with_e(bits, &BigNum::from_u32(e).unwrap()).unwrap();
        let jwk = json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode(rsa.n().to_vec()),
                         "e": URL_SAFE_NO_PAD.encode(rsa.e().to_vec())});
        signed_with(
            &EncodingKey::from_rsa_der(&rsa.private_key_to_der().unwrap()),
            Algorithm::PS256,
            &json!({"alg": "PS256", "typ": "dpop+jwt", "jwk": jwk}),
            &claims(json!({})),
        )
    };
    let cases: Vec<(String, &str)> = vec![
        (rsa_proof(1024, 65537), "not a public key"),
        (
            key.sign(key.header(), claims(json!({"htu": app.url("/userinfo")}))),
            "htu does not match",
        ),
        (
            key.sign(
                key.header(),
                claims(json!({"htu": "https://evil.example/token"})),
            ),
            "htu does not match",
        ),
        (
            key.sign(key.header(), claims(json!({"htm": "GET"}))),
            "htm does not match",
        ),
        (
            key.sign(key.header(), claims(json!({"iat": t - 300}))),
            "too old",
        ),
        (
            key.sign(key.header(), claims(json!({"iat": t + 300}))),
            "future",
        ),
        (
            key.sign(
                json!({"alg": "ES256", "typ": "dpop+jwt", "jwk": private_jwk}),
                claims(json!({})),
            ),
            "not a public key",
        ),
        (
            key.sign(
                json!({"alg": "ES256", "typ": "dpop+jwt"}),
                claims(json!({})),
            ),
            "jwk is missing",
        ),
        (
            key.sign(
                json!({"alg": "ES256", "typ": "JWT", "jwk": key.jwk}),
                claims(json!({})),
            ),
            "typ must be dpop+jwt",
        ),
        (unsigned, "alg none"),
        (hmac, "HMAC"),
        ("not.a.jws".into(), "DPoP proof"),
    ];
    for (proof, why) in cases {
        let res = client_credentials(&app, &reg)
            .header("DPoP", proof)
            .send()
            .await
            .unwrap();
        assert!(res.headers().get("DPoP-Nonce").is_some(), "{why}");
        assert_refused(res, 400, "invalid_dpop_proof", why).await;
    }
    let res = client_credentials(&app, &reg)
        .header("DPoP", key.proof(&app, "POST", "/token"))
        .header("DPoP", key.proof(&app, "POST", "/token"))
        .send()
        .await
        .unwrap();
    assert_refused(res, 400, "invalid_dpop_proof", "exactly one DPoP header").await;

    // The good one, once.
    let proof = key.proof(&app, "POST", "/token");
    let issued = tokens(
        client_credentials(&app, &reg)
            .header("DPoP", &proof)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(issued["token_type"], "DPoP");
    let res = client_credentials(&app, &reg)
        .header("DPoP", &proof)
        .send()
        .await
        .unwrap();
    assert_refused(res, 400, "invalid_dpop_proof", "replayed").await;

    // Introspection says what the token is bound to; its client can revoke it.
    let access = issued["access_token"].as_str().unwrap();
    let by_client = |path: &str| {
        rp_http()
            .post(app.url(path))
            .basic_auth(&reg.client_id, Some(secret(&reg)))
            .form(&[("token", access)])
            .send()
    };
    let seen: Value = by_client("/introspect")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["token_type"], "DPoP", "{seen}");
    assert_eq!(seen["cnf"]["jkt"], key.jkt.as_str(), "{seen}");
    assert_eq!(by_client("/revoke").await.unwrap().status(), 200);
    let seen: Value = by_client("/introspect")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["active"], false, "revoked: {seen}");

    // An unbound token is not taken with the DPoP scheme.
    let bearer = tokens(client_credentials(&app, &reg).send().await.unwrap()).await;
    assert_eq!(bearer["token_type"], "Bearer");
    // The audit trail says which tokens were bound, newest first.
    let issued_events = app
        .state
        .audit
        .query(
            gatehouse::audit::AuditFilter {
                event_type: Some(gatehouse::audit::EventType::TokenIssued),
                ..Default::default()
            },
            10,
            None,
        )
        .await
        .unwrap();
    let kinds: Vec<&str> = issued_events
        .iter()
        .map(|e| e.details["binding"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(kinds, ["bearer", "dpop"]);
    let plain = bearer["access_token"].as_str().unwrap();
    let res = userinfo(
        &app,
        &format!("DPoP {plain}"),
        Some(key.resource_proof(&app, "GET", "/userinfo", plain)),
    )
    .await;
    assert_refused(res, 401, "invalid_token", "not bound to a DPoP key").await;
    // A 2048-bit RSA key is fine (PS256, checked by OpenSSL behind the JWS library).
    let res = client_credentials(&app, &reg)
        .header("DPoP", rsa_proof(2048, 65537))
        .send()
        .await
        .unwrap();
    assert_eq!(tokens(res).await["token_type"], "DPoP");
}

#[tokio::test]
async fn the_admin_api_takes_a_bound_token_only_with_a_proof_by_its_key() {
    let app = spawn_app().await;
    let reg = service(&app, |s| ClientSpec {
        scopes: vec!["gatehouse:admin".into()],
        ..s
    })
    .await;
    let key = DpopKey::new();
    let admin = |token: String| {
        rp_http()
            .get(app.url("/admin/api/v1/orgs"))
            .bearer_auth(token)
            .send()
    };
    let unbound = tokens(
        client_credentials(&app, &reg)
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "gatehouse:admin"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let res = admin(unbound["access_token"].as_str().unwrap().to_owned())
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "the control: a Bearer token opens the API"
    );
    let bound = tokens(
        client_credentials(&app, &reg)
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "gatehouse:admin"),
            ])
            .header("DPoP", key.proof(&app, "POST", "/token"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(bound["token_type"], "DPoP");
    let res = admin(bound["access_token"].as_str().unwrap().to_owned())
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        401,
        "RFC 9449 §7.2: a bound token is no bearer token"
    );
    // With the DPoP scheme, a proof for this very request, by the token's key.
    let access = bound["access_token"].as_str().unwrap();
    let with_proof = |proof: String| {
        rp_http()
            .get(app.url("/admin/api/v1/orgs"))
            .header("Authorization", format!("DPoP {access}"))
            .header("DPoP", proof)
            .send()
    };
    let elsewhere = key.resource_proof(&app, "GET", "/admin/api/v1/users", access);
    assert_eq!(with_proof(elsewhere).await.unwrap().status(), 401, "htu");
    let by_other = DpopKey::new().resource_proof(&app, "GET", "/admin/api/v1/orgs", access);
    assert_eq!(with_proof(by_other).await.unwrap().status(), 401, "key");
    let good = key.resource_proof(&app, "GET", "/admin/api/v1/orgs", access);
    assert_eq!(with_proof(good).await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_client_that_requires_dpop_gets_no_token_without_a_proof() {
    let app = spawn_app().await;
    let reg = service(&app, |s| ClientSpec {
        require_dpop: true,
        ..s
    })
    .await;
    let res = client_credentials(&app, &reg).send().await.unwrap();
    assert_refused(res, 400, "invalid_dpop_proof", "DPoP is required").await;
    let key = DpopKey::new();
    let issued = tokens(
        client_credentials(&app, &reg)
            .header("DPoP", key.proof(&app, "POST", "/token"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(issued["token_type"], "DPoP");
}

/// Binds the code to `jkt`, as `/authorize` does with a `dpop_jkt` parameter (RFC 9449
/// §10): the code's record in the ephemeral store names the key.
/// A signed-in user's code whose request named `dpop_jkt` (RFC 9449 §10).
async fn bound_code(
    app: &TestApp,
    browser: &reqwest::Client,
    client_id: &str,
    jkt: &str,
) -> String {
    let url = format!("{}&dpop_jkt={jkt}", authorize_url(app, client_id, SPA));
    let back = browse_authorize(app, browser, &url, "nina", PASSWORD).await;
    query(&back)["code"].clone()
}

/// A signed-in user's code for a request pushed to `/par` with `proof` in the DPoP
/// header, and `extra` form fields.
async fn pushed_code(
    app: &TestApp,
    browser: &reqwest::Client,
    client_id: &str,
    proof: String,
    extra: &[(&str, &str)],
) -> Result<String, Response> {
    let (_, challenge) = pkce();
    let mut form = vec![
        ("client_id", client_id),
        ("response_type", "code"),
        ("redirect_uri", SPA),
        ("scope", "openid profile offline_access"),
        ("state", "st"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    form.extend_from_slice(extra);
    let res = rp_http()
        .post(app.url("/par"))
        .header("DPoP", proof)
        .form(&form)
        .send()
        .await
        .unwrap();
    if res.status() != 201 {
        return Err(res);
    }
    assert!(res.headers().get("DPoP-Nonce").is_some());
    let body: Value = res.json().await.unwrap();
    let mut url = url::Url::parse(&app.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("request_uri", body["request_uri"].as_str().unwrap());
    let back = browse_authorize(app, browser, url.as_str(), "nina", PASSWORD).await;
    Ok(query(&back)["code"].clone())
}

#[tokio::test]
async fn a_code_bound_to_a_key_is_exchanged_only_with_a_proof_by_that_key() {
    let app = spawn_app().await;
    create_user(&app, "nina", PASSWORD, false).await;
    let spa = register_client(&app, public_spec("Ward SPA", &[SPA])).await;
    let (key, other) = (DpopKey::new(), DpopKey::new());
    let browser = app.new_client();

    // Bound by dpop_jkt at /authorize: a thief with another key (or none) gets nothing.
    let stolen = bound_code(&app, &browser, &spa.client_id, &key.jkt).await;
    let res = exchange(
        &app,
        &spa.client_id,
        &stolen,
        Some(other.proof(&app, "POST", "/token")),
    )
    .await;
    assert_refused(res, 400, "invalid_dpop_proof", "dpop_jkt").await;
    // RFC 6749 §4.1.2: a code presented wrongly is spent.
    let res = exchange(
        &app,
        &spa.client_id,
        &stolen,
        Some(key.proof(&app, "POST", "/token")),
    )
    .await;
    assert_refused(res, 400, "invalid_grant", "already used").await;

    let unproved = bound_code(&app, &browser, &spa.client_id, &key.jkt).await;
    let res = exchange(&app, &spa.client_id, &unproved, None).await;
    assert_refused(res, 400, "invalid_dpop_proof", "dpop_jkt").await;

    let good = bound_code(&app, &browser, &spa.client_id, &key.jkt).await;
    let issued = tokens(
        exchange(
            &app,
            &spa.client_id,
            &good,
            Some(key.proof(&app, "POST", "/token")),
        )
        .await,
    )
    .await;
    assert_eq!(issued["token_type"], "DPoP");

    // Bound by a proof sent with the push (RFC 9449 §10.1).
    let id = spa.client_id.as_str();
    let refused = pushed_code(&app, &browser, id, key.proof(&app, "POST", "/token"), &[]).await;
    assert_refused(refused.unwrap_err(), 400, "invalid_dpop_proof", "htu").await;
    let mismatch = [("dpop_jkt", other.jkt.as_str())];
    let refused = pushed_code(
        &app,
        &browser,
        id,
        key.proof(&app, "POST", "/par"),
        &mismatch,
    );
    assert_refused(
        refused.await.unwrap_err(),
        400,
        "invalid_request",
        "dpop_jkt",
    )
    .await;
    let by_push = pushed_code(&app, &browser, id, key.proof(&app, "POST", "/par"), &[])
        .await
        .unwrap();
    let res = exchange(
        &app,
        id,
        &by_push,
        Some(other.proof(&app, "POST", "/token")),
    )
    .await;
    assert_refused(res, 400, "invalid_dpop_proof", "dpop_jkt").await;
    let by_push = pushed_code(&app, &browser, id, key.proof(&app, "POST", "/par"), &[])
        .await
        .unwrap();
    let issued =
        tokens(exchange(&app, id, &by_push, Some(key.proof(&app, "POST", "/token"))).await).await;
    assert_eq!(issued["token_type"], "DPoP");
}

#[tokio::test]
async fn with_nonces_required_a_proof_needs_a_fresh_nonce_of_ours() {
    let app = spawn_app_with(|c| c.dpop_nonce_required = true).await;
    let reg = service(&app, |s| s).await;
    let key = DpopKey::new();
    let with_nonce = |nonce: &str| {
        client_credentials(&app, &reg)
            .header(
                "DPoP",
                key.proof_with(&app, "POST", &app.url("/token"), json!({"nonce": nonce})),
            )
            .send()
    };

    let res = client_credentials(&app, &reg)
        .header("DPoP", key.proof(&app, "POST", "/token"))
        .send()
        .await
        .unwrap();
    let nonce = res.headers()["DPoP-Nonce"].to_str().unwrap().to_owned();
    assert_refused(res, 400, "use_dpop_nonce", "nonce is required").await;
    let forged = URL_SAFE_NO_PAD.encode([1u8; 16]);
    assert_refused(
        with_nonce(&forged).await.unwrap(),
        400,
        "use_dpop_nonce",
        "not one this server gave",
    )
    .await;
    let issued = tokens(with_nonce(&nonce).await.unwrap()).await;
    assert_eq!(issued["token_type"], "DPoP");

    app.clock.advance(chrono::Duration::seconds(301));
    let res = with_nonce(&nonce).await.unwrap();
    let fresh = res.headers()["DPoP-Nonce"].to_str().unwrap().to_owned();
    assert_ne!(fresh, nonce);
    assert_refused(res, 400, "use_dpop_nonce", "stale").await;
    let bound = tokens(with_nonce(&fresh).await.unwrap()).await;

    // A resource endpoint asks for one the same way, with a 401 (RFC 9449 §9).
    let access = bound["access_token"].as_str().unwrap();
    let res = userinfo(
        &app,
        &format!("DPoP {access}"),
        Some(key.resource_proof(&app, "GET", "/userinfo", access)),
    )
    .await;
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="use_dpop_nonce""#),
        "{challenge}"
    );
    let nonce = res.headers()["DPoP-Nonce"].to_str().unwrap().to_owned();
    assert_refused(res, 401, "use_dpop_nonce", "nonce is required").await;
    let proof = key.proof_with(
        &app,
        "GET",
        &app.url("/userinfo"),
        json!({"ath": ath(access), "nonce": nonce}),
    );
    // Past the proof: this token has no user to describe.
    let res = userinfo(&app, &format!("DPoP {access}"), Some(proof)).await;
    assert_refused(res, 401, "invalid_token", "does not stand for a user").await;
}

#[tokio::test]
async fn a_public_clients_refresh_tokens_without_dpop_live_only_as_long_as_the_cap() {
    let app = spawn_app_with(|c| c.public_client_refresh_secs = 3600).await;
    create_user(&app, "nina", PASSWORD, false).await;
    let spa = register_client(&app, public_spec("Ward SPA", &[SPA])).await;
    let key = DpopKey::new();
    let browser = app.new_client();
    let plain = tokens(
        exchange(
            &app,
            &spa.client_id,
            &code(&app, &browser, &spa.client_id, SPA).await,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(plain["token_type"], "Bearer");
    let bound_code = code(&app, &browser, &spa.client_id, SPA).await;
    let bound = tokens(
        exchange(
            &app,
            &spa.client_id,
            &bound_code,
            Some(key.proof(&app, "POST", "/token")),
        )
        .await,
    )
    .await;

    app.clock.advance(chrono::Duration::minutes(40));
    let plain = tokens(
        refresh(
            &app,
            &spa.client_id,
            plain["refresh_token"].as_str().unwrap(),
            None,
        )
        .await,
    )
    .await;
    app.clock.advance(chrono::Duration::minutes(21));
    // An hour after sign-in, however recently rotated.
    let res = refresh(
        &app,
        &spa.client_id,
        plain["refresh_token"].as_str().unwrap(),
        None,
    )
    .await;
    assert_refused(res, 400, "invalid_grant", "expired").await;
    // Bound to a key, it lives as long as any refresh token.
    let proof = key.proof(&app, "POST", "/token");
    tokens(
        refresh(
            &app,
            &spa.client_id,
            bound["refresh_token"].as_str().unwrap(),
            Some(proof),
        )
        .await,
    )
    .await;
}

#[tokio::test]
async fn discovery_names_the_proof_algorithms_and_browsers_may_send_proofs() {
    let app = spawn_app().await;
    let doc: Value = app
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .unwrap();
    let algs = doc["dpop_signing_alg_values_supported"].as_array().unwrap();
    for alg in ["ES256", "PS256", "EdDSA"] {
        assert!(algs.iter().any(|a| a == alg), "{alg}: {doc}");
    }
    assert!(!algs.iter().any(|a| a == "HS256" || a == "none"));
    let spa = register_client(&app, public_spec("Ward SPA", &[SPA])).await;
    let res = rp_http()
        .request(reqwest::Method::OPTIONS, app.url("/token"))
        .header("Origin", "https://spa.example.org")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "dpop, content-type")
        .send()
        .await
        .unwrap();
    let allowed = res.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(allowed.contains("DPoP"), "{allowed}");
    // The app may read the nonce of a /token answer to a request with a proof (here a
    // refusal).
    let refused = |proof: Option<String>| {
        let mut req = rp_http()
            .post(app.url("/token"))
            .header("Origin", "https://spa.example.org")
            .form(&[
                ("grant_type", "authorization_code"),
                ("client_id", spa.client_id.as_str()),
                ("code", "x"),
            ]);
        if let Some(p) = proof {
            req = req.header("DPoP", p);
        }
        req.send()
    };
    let key = DpopKey::new();
    let res = refused(Some(key.proof(&app, "POST", "/token")))
        .await
        .unwrap();
    assert!(res.headers().get("DPoP-Nonce").is_some());
    let exposed = res.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(exposed.contains("DPoP-Nonce"), "{exposed}");
    // Without a proof, none: oidc-client-ts (tests/api/spa.rs) takes an error answer
    // with a nonce for a nonce challenge, and misreports a refused refresh token.
    let res = refused(None).await.unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("DPoP-Nonce").is_none());
}

#[tokio::test]
async fn a_confidential_client_may_move_to_a_new_key_but_not_back_to_bearer() {
    let app = spawn_app().await;
    create_user(&app, "nina", PASSWORD, false).await;
    let web = register_client(&app, ClientSpec::new("Ward", &[SPA])).await;
    let (key, next) = (DpopKey::new(), DpopKey::new());
    let browser = app.new_client();
    let code = code(&app, &browser, &web.client_id, SPA).await;
    let (verifier, _) = pkce();
    let refresh_with = |token: String, proof: Option<String>| {
        let mut req = rp_http()
            .post(app.url("/token"))
            .basic_auth(&web.client_id, Some(secret(&web)))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", &token)]);
        if let Some(p) = proof {
            req = req.header("DPoP", p);
        }
        req.send()
    };
    let issued = tokens(
        rp_http()
            .post(app.url("/token"))
            .basic_auth(&web.client_id, Some(secret(&web)))
            .header("DPoP", key.proof(&app, "POST", "/token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", SPA),
                ("code_verifier", &verifier),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let refresh_token = issued["refresh_token"].as_str().unwrap().to_owned();
    let res = refresh_with(refresh_token.clone(), None).await.unwrap();
    assert_refused(res, 400, "invalid_dpop_proof", "issued with DPoP").await;
    // Authenticated, it may prove with a new key; the new access token is bound to it.
    let proof = next.proof(&app, "POST", "/token");
    let renewed = tokens(refresh_with(refresh_token, Some(proof)).await.unwrap()).await;
    assert_eq!(renewed["token_type"], "DPoP");
    let access = renewed["access_token"].as_str().unwrap();
    assert_eq!(claims_of(access)["cnf"]["jkt"], next.jkt.as_str());
    let res = userinfo(
        &app,
        &format!("DPoP {access}"),
        Some(key.resource_proof(&app, "GET", "/userinfo", access)),
    )
    .await;
    assert_refused(res, 401, "invalid_token", "not made with the key").await;
}

/// A `private_key_jwt` client assertion signed with `key`, whose JWK (with `kid` k1) the
/// client registered.
fn assertion(app: &TestApp, key: &DpopKey, client_id: &str) -> String {
    let t = now(app);
    key.sign(
        json!({"alg": "ES256", "kid": "k1"}),
        json!({
            "iss": client_id, "sub": client_id, "aud": app.base, "iat": t, "exp": t + 60,
            "jti": uuid::Uuid::new_v4().to_string(),
        }),
    )
}

#[tokio::test]
async fn a_fapi2_client_needs_a_proof_with_a_fapi_algorithm() {
    let app = spawn_app().await;
    let client_key = DpopKey::new();
    let mut jwk = client_key.jwk.clone();
    jwk["kid"] = json!("k1");
    let reg = service(&app, |s| ClientSpec {
        auth_method: Some("private_key_jwt".into()),
        jwks: Some(json!({ "keys": [jwk] }).to_string()),
        fapi2: true,
        ..s
    })
    .await;
    let request = |proof: Option<String>| {
        let mut req = rp_http().post(app.url("/token")).form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            (
                "client_assertion",
                &assertion(&app, &client_key, &reg.client_id),
            ),
        ]);
        if let Some(p) = proof {
            req = req.header("DPoP", p);
        }
        req.send()
    };
    assert_refused(
        request(None).await.unwrap(),
        400,
        "invalid_dpop_proof",
        "DPoP is required",
    )
    .await;
    let es384 = DpopKey::p384().proof(&app, "POST", "/token");
    assert_refused(
        request(Some(es384)).await.unwrap(),
        400,
        "invalid_dpop_proof",
        "ES384 is not allowed here",
    )
    .await;
    let es256 = DpopKey::new().proof(&app, "POST", "/token");
    let issued = tokens(request(Some(es256)).await.unwrap()).await;
    assert_eq!(issued["token_type"], "DPoP");
}
