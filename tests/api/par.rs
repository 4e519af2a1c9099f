//! Pushed authorization requests (RFC 9126) and signed request objects (RFC 9101): code
//! flows through `/par`, through a request object by value and through `/par` carrying
//! one; then each way a `request_uri` or a request object can be abused, refused with a
//! reason and never a redirect while the return address is not trusted.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use gatehouse::oidc::{
    authorize::{CodeData, code_key},
    clients::{ClientSpec, Registered},
};
use reqwest::Response;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use url::Url;

use crate::{
    helpers::{TestApp, create_user, spawn_app},
    jose_keys::{ClientKey, hmac_signed, unsigned},
    oidc::{REDIRECT, browse_authorize, query, register_client, rp_http},
    oidc_clients::{PASSWORD, pkce, public_exchange, public_spec},
};

const URN: &str = "urn:ietf:params:oauth:request_uri:";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn now(app: &TestApp) -> i64 {
    use gatehouse::clock::Clock;
    app.clock.now().timestamp()
}

/// A signed-key client (`private_key_jwt`), its key, and a user to sign in.
async fn key_client(
    app: &TestApp,
    spec: impl FnOnce(ClientSpec) -> ClientSpec,
) -> (String, ClientKey) {
    let key = ClientKey::ec("k1");
    let reg = register_client(
        app,
        spec(ClientSpec {
            auth_method: Some("private_key_jwt".into()),
            jwks: Some(key.jwks()),
            ..ClientSpec::new("Ward app", &[REDIRECT])
        }),
    )
    .await;
    (reg.client_id, key)
}

/// A `private_key_jwt` client assertion for `/par` and `/token`.
fn assertion(app: &TestApp, client_id: &str, key: &ClientKey) -> String {
    key.sign(
        json!({}),
        &json!({"iss": client_id, "sub": client_id, "aud": app.base, "exp": now(app) + 60,
                "jti": uuid::Uuid::new_v4().to_string()}),
    )
}

/// The authorization parameters of a code flow with PKCE.
fn asked() -> Vec<(&'static str, String)> {
    let (_, challenge) = pkce();
    vec![
        ("response_type", "code".into()),
        ("redirect_uri", REDIRECT.into()),
        ("scope", "openid profile".into()),
        ("state", "st-par".into()),
        ("nonce", "n-par".into()),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256".into()),
    ]
}

/// The claims of a request object asking for [`asked`].
fn request_claims(app: &TestApp, client_id: &str) -> Value {
    let t = now(app);
    let mut claims = json!({"iss": client_id, "aud": app.base, "client_id": client_id,
                            "exp": t + 300, "nbf": t, "iat": t,
                            "jti": uuid::Uuid::new_v4().to_string()});
    for (k, v) in asked() {
        claims[k] = json!(v);
    }
    claims
}

async fn push(app: &TestApp, form: &[(&str, String)]) -> Response {
    rp_http()
        .post(app.url("/par"))
        .form(form)
        .send()
        .await
        .unwrap()
}

/// Pushes `form` authenticated with a client assertion.
async fn push_signed(
    app: &TestApp,
    client_id: &str,
    key: &ClientKey,
    mut form: Vec<(&str, String)>,
) -> Response {
    form.push(("client_assertion_type", JWT_BEARER.into()));
    form.push(("client_assertion", assertion(app, client_id, key)));
    push(app, &form).await
}

/// The `request_uri` of a 201 answer, checked as RFC 9126 §2.2 says.
async fn pushed(res: Response) -> String {
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["expires_in"], 60, "{body}");
    let uri = body["request_uri"].as_str().unwrap().to_owned();
    assert!(uri.starts_with(URN), "{uri}");
    assert!(uri.len() > URN.len() + 40, "unguessable: {uri}");
    uri
}

fn authorize_url(app: &TestApp, pairs: &[(&str, &str)]) -> String {
    let mut url = Url::parse(&app.url("/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs(pairs);
    url.into()
}

/// The `error_description` of a JSON OAuth error.
async fn json_refusal(res: Response, status: u16, error: &str) -> String {
    assert_eq!(res.status(), status);
    assert!(res.headers().get("location").is_none());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    body["error_description"].as_str().unwrap().to_owned()
}

/// The text of an error page (400, never a redirect).
async fn page_refusal(res: Response) -> String {
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none());
    res.text().await.unwrap()
}

/// The `error_description` of an error sent back to the client's redirect URI.
fn redirect_refusal(res: &Response, error: &str) -> String {
    assert_eq!(res.status(), 303);
    let back = Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    let q = query(&back);
    assert_eq!(q["error"], error, "{back}");
    q["error_description"].clone()
}

async fn signed_exchange(app: &TestApp, client_id: &str, key: &ClientKey, code: &str) -> Value {
    let (verifier, _) = pkce();
    let res = rp_http()
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &assertion(app, client_id, key)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn id_token_claims(tokens: &Value) -> Value {
    let jwt = tokens["id_token"].as_str().unwrap();
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn a_client_that_must_push_gets_tokens_through_par_and_nothing_else() {
    let app = spawn_app().await;
    create_user(&app, "olivia", PASSWORD, false).await;
    let (id, key) = key_client(&app, |s| ClientSpec {
        require_par: true,
        ..s
    })
    .await;
    let browser = app.new_client();

    // A request through the browser, even a well-formed one, is sent back.
    let mut plain: Vec<(&str, String)> = asked();
    plain.push(("client_id", id.clone()));
    let plain: Vec<(&str, &str)> = plain.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = browser
        .get(authorize_url(&app, &plain))
        .send()
        .await
        .unwrap();
    let why = redirect_refusal(&res, "invalid_request");
    assert!(
        why.contains("must push its authorization request (PAR)"),
        "{why}"
    );

    let uri = pushed(push_signed(&app, &id, &key, asked()).await).await;
    // RFC 9126 §4: beside request_uri only client_id counts; the rest is ignored.
    let url = authorize_url(
        &app,
        &[
            ("client_id", &id),
            ("request_uri", &uri),
            ("redirect_uri", "https://evil.example/cb"),
            ("state", "forged"),
            ("scope", "openid offline_access"),
        ],
    );
    let back = browse_authorize(&app, &browser, &url, "olivia", PASSWORD).await;
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    let q = query(&back);
    assert_eq!(q["state"], "st-par");
    assert_eq!(q["iss"], app.base);
    let tokens = signed_exchange(&app, &id, &key, &q["code"]).await;
    assert_eq!(id_token_claims(&tokens)["nonce"], "n-par");
    assert_eq!(tokens["scope"], "openid profile", "{tokens}");

    // Single use: the same link again is a page, not a second code.
    let text = page_refusal(browser.get(&url).send().await.unwrap()).await;
    assert!(text.contains("already used"), "{text}");
}

#[tokio::test]
async fn a_public_client_pushes_with_its_client_id_and_pkce() {
    let app = spawn_app().await;
    create_user(&app, "olivia", PASSWORD, false).await;
    let spa = register_client(&app, public_spec("SPA", &[REDIRECT])).await;
    let id = spa.client_id.clone();

    let mut no_pkce: Vec<(&str, String)> = asked()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("code_challenge"))
        .collect();
    no_pkce.push(("client_id", id.clone()));
    let why = json_refusal(push(&app, &no_pkce).await, 400, "invalid_request").await;
    assert!(why.contains("PKCE"), "{why}");
    // Authentication is as at /token: a public client's id names it, nothing more.
    let mut form = asked();
    form.push(("client_id", "gh-nobody".into()));
    json_refusal(push(&app, &form).await, 401, "invalid_client").await;

    let mut form = asked();
    form.push(("client_id", id.clone()));
    let uri = pushed(push(&app, &form).await).await;
    let browser = app.new_client();
    let url = authorize_url(&app, &[("client_id", &id), ("request_uri", &uri)]);
    let back = browse_authorize(&app, &browser, &url, "olivia", PASSWORD).await;
    let res = public_exchange(&app, &id, &query(&back)["code"], REDIRECT, None).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_signed_request_object_by_value_or_pushed_is_the_request() {
    let app = spawn_app().await;
    create_user(&app, "olivia", PASSWORD, false).await;
    let (id, key) = key_client(&app, |s| s).await;
    let browser = app.new_client();

    // By value: the outer parameters but client_id (and a matching response_type) are
    // ignored, the object's are used.
    let object = key.sign(
        json!({"typ": "oauth-authz-req+jwt"}),
        &request_claims(&app, &id),
    );
    let url = authorize_url(
        &app,
        &[
            ("client_id", &id),
            ("response_type", "code"),
            ("request", &object),
            ("state", "outer"),
            ("scope", "openid offline_access"),
        ],
    );
    let back = browse_authorize(&app, &browser, &url, "olivia", PASSWORD).await;
    let q = query(&back);
    assert_eq!(q["state"], "st-par");
    let tokens = signed_exchange(&app, &id, &key, &q["code"]).await;
    assert_eq!(tokens["scope"], "openid profile", "{tokens}");
    assert_eq!(id_token_claims(&tokens)["nonce"], "n-par");

    // Pushed, inside /par: the browser carries only the URN.
    let mut claims = request_claims(&app, &id);
    claims["state"] = json!("st-jar-par");
    let form = vec![("request", key.sign(json!({}), &claims))];
    let uri = pushed(push_signed(&app, &id, &key, form).await).await;
    let url = authorize_url(&app, &[("client_id", &id), ("request_uri", &uri)]);
    // Signed in already: straight back with a code.
    let res = browser.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let back = Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(query(&back)["state"], "st-jar-par");
    signed_exchange(&app, &id, &key, &query(&back)["code"]).await;
}

#[tokio::test]
async fn a_request_uri_is_single_use_short_lived_and_only_for_its_client() {
    let app = spawn_app().await;
    let a = register_client(&app, public_spec("A", &[REDIRECT])).await;
    let b = register_client(&app, public_spec("B", &[REDIRECT])).await;
    let browser = app.new_client();
    let push_for = |reg: &Registered| {
        let mut form = asked();
        form.push(("client_id", reg.client_id.clone()));
        let app = &app;
        async move { pushed(push(app, &form).await).await }
    };
    let open = |client_id: &str, uri: &str| {
        browser
            .get(authorize_url(
                &app,
                &[("client_id", client_id), ("request_uri", uri)],
            ))
            .send()
    };

    // Another client cannot use it, and the attempt spends it: it has leaked.
    let uri = push_for(&a).await;
    let text = page_refusal(open(&b.client_id, &uri).await.unwrap()).await;
    assert!(text.contains("made by another application"), "{text}");
    let text = page_refusal(open(&a.client_id, &uri).await.unwrap()).await;
    assert!(text.contains("already used"), "{text}");

    // Used once: the second use is refused.
    let uri = push_for(&a).await;
    let first = open(&a.client_id, &uri).await.unwrap();
    assert_eq!(first.status(), 303);
    assert!(
        first.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login")
    );
    let text = page_refusal(open(&a.client_id, &uri).await.unwrap()).await;
    assert!(text.contains("already used"), "{text}");

    // A minute later (by the server's clock) it has expired.
    let uri = push_for(&a).await;
    app.clock.advance(chrono::Duration::seconds(61));
    let text = page_refusal(open(&a.client_id, &uri).await.unwrap()).await;
    assert!(text.contains("expired"), "{text}");

    // One never pushed.
    let guessed = format!("{URN}{}", URL_SAFE_NO_PAD.encode([7u8; 32]));
    let text = page_refusal(open(&a.client_id, &guessed).await.unwrap()).await;
    assert!(text.contains("unknown"), "{text}");

    // A client's own URL is never fetched: refused to a registered return address, or
    // on a page when there is none.
    let hosted = "https://rp.example.org/request.jwt";
    let res = browser
        .get(authorize_url(
            &app,
            &[
                ("client_id", &a.client_id),
                ("request_uri", hosted),
                ("redirect_uri", REDIRECT),
            ],
        ))
        .send()
        .await
        .unwrap();
    let why = redirect_refusal(&res, "request_uri_not_supported");
    assert!(why.contains("/par"), "{why}");
    let text = page_refusal(open(&a.client_id, hosted).await.unwrap()).await;
    assert!(text.contains("request_uri_not_supported"), "{text}");
}

#[tokio::test]
async fn request_objects_forged_stale_or_for_someone_else_are_refused_saying_why() {
    let app = spawn_app().await;
    let (id, key) = key_client(&app, |s| s).await;
    let other_key = ClientKey::ec("k1");
    let good = request_claims(&app, &id);
    let with = |name: &str, value: Value| {
        let mut c = good.clone();
        c[name] = value;
        c
    };
    let typ = json!({"typ": "oauth-authz-req+jwt"});
    let cases: Vec<(String, &str)> = vec![
        (other_key.sign(typ.clone(), &good), "bad signature"),
        (unsigned(&good), "alg none is not allowed"),
        (hmac_signed(key.jwks().as_bytes(), &good), "HMAC"),
        (hmac_signed(b"secret", &good), "HMAC"),
        (
            key.sign(
                typ.clone(),
                &with("aud", json!("https://elsewhere.example")),
            ),
            "wrong aud",
        ),
        (
            key.sign(typ.clone(), &with("exp", json!(now(&app) - 5))),
            "expired 5 s ago",
        ),
        (
            key.sign(typ.clone(), &with("client_id", json!("gh-other"))),
            "client_id",
        ),
        (
            key.sign(typ.clone(), &with("iss", json!("gh-other"))),
            "iss must be the client_id",
        ),
        (key.sign(json!({"typ": "JWT"}), &good), "typ must be"),
        (
            key.sign(
                typ.clone(),
                &with("request_uri", json!("https://rp.example.org/r")),
            ),
            "may not carry request_uri",
        ),
    ];
    for (object, why) in &cases {
        // Pushed: a JSON refusal to the client.
        let form = vec![("request", object.clone())];
        let text = json_refusal(
            push_signed(&app, &id, &key, form).await,
            400,
            "invalid_request_object",
        )
        .await;
        assert!(text.contains(why), "{why}: {text}");
        assert!(!text.contains(object.as_str()), "never echoed");
        // By value, beside a registered return address: sent back there.
        let res = rp_http()
            .get(authorize_url(
                &app,
                &[
                    ("client_id", &id),
                    ("redirect_uri", REDIRECT),
                    ("request", object),
                ],
            ))
            .send()
            .await
            .unwrap();
        let text = redirect_refusal(&res, "invalid_request_object");
        assert!(text.contains(why), "{why}: {text}");
        // By value alone: nothing trusted to send it to, so a page.
        let res = rp_http()
            .get(authorize_url(
                &app,
                &[("client_id", &id), ("request", object)],
            ))
            .send()
            .await
            .unwrap();
        let text = page_refusal(res).await;
        assert!(text.contains("invalid_request_object"), "{why}: {text}");
    }

    // Longer than 16 KiB: refused before anything is decoded.
    let huge = key.sign(typ.clone(), &with("pad", json!("x".repeat(17 * 1024))));
    let text = json_refusal(
        push_signed(&app, &id, &key, vec![("request", huge.clone())]).await,
        400,
        "invalid_request_object",
    )
    .await;
    assert!(text.contains("longer than 16384 bytes"), "{text}");
    let res = rp_http()
        .get(authorize_url(
            &app,
            &[("client_id", &id), ("request", &huge)],
        ))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());
    assert!(res.headers().get("location").is_none());

    // response_type outside must agree with the one inside (OIDC Core §6.1).
    let object = key.sign(typ.clone(), &good);
    let res = rp_http()
        .get(authorize_url(
            &app,
            &[
                ("client_id", &id),
                ("response_type", "token"),
                ("request", &object),
            ],
        ))
        .send()
        .await
        .unwrap();
    let text = redirect_refusal(&res, "invalid_request_object");
    assert!(text.contains("response_type"), "{text}");
    // Two objects: which one was meant? Neither.
    let res = rp_http()
        .get(authorize_url(
            &app,
            &[
                ("client_id", &id),
                ("redirect_uri", REDIRECT),
                ("request", &object),
                ("request", &object),
            ],
        ))
        .send()
        .await
        .unwrap();
    let text = redirect_refusal(&res, "invalid_request");
    assert!(text.contains("more than once"), "{text}");

    // A client with no registered keys has nothing to sign with.
    let web = register_client(&app, ClientSpec::new("Web", &[REDIRECT])).await;
    let res = rp_http()
        .get(authorize_url(
            &app,
            &[
                ("client_id", &web.client_id),
                ("redirect_uri", REDIRECT),
                ("request", &object),
            ],
        ))
        .send()
        .await
        .unwrap();
    let text = redirect_refusal(&res, "invalid_request_object");
    assert!(text.contains("no registered keys"), "{text}");
}

#[tokio::test]
async fn bad_pushes_get_json_errors_never_a_redirect() {
    let app = spawn_app().await;
    let web = register_client(&app, ClientSpec::new("Web", &[REDIRECT])).await;
    let secret = web
        .client_secret
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_owned();
    let basic_push = |form: Vec<(&str, String)>, secret: String| {
        rp_http()
            .post(app.url("/par"))
            .basic_auth(&web.client_id, Some(secret))
            .form(&form)
            .send()
    };
    let with = |name: &'static str, value: &str| {
        let mut form: Vec<(&str, String)> =
            asked().into_iter().filter(|(k, _)| *k != name).collect();
        form.push((name, value.to_owned()));
        form
    };
    for (form, error, why) in [
        (
            with("request_uri", &format!("{URN}abc")),
            "invalid_request",
            "request_uri cannot be pushed",
        ),
        (
            with("redirect_uri", "https://evil.example/cb"),
            "invalid_request",
            "not registered",
        ),
        (with("scope", "profile"), "invalid_scope", "openid"),
        (
            with("response_type", "token"),
            "unsupported_response_type",
            "code",
        ),
        (with("dpop_jkt", "short"), "invalid_request", "dpop_jkt"),
    ] {
        let text = json_refusal(basic_push(form, secret.clone()).await.unwrap(), 400, error).await;
        assert!(text.contains(why), "{why}: {text}");
    }
    json_refusal(
        basic_push(asked(), "wrong".into()).await.unwrap(),
        401,
        "invalid_client",
    )
    .await;
    let service = register_client(
        &app,
        ClientSpec {
            grant_types: vec!["client_credentials".into()],
            ..ClientSpec::new("Service", &[REDIRECT])
        },
    )
    .await;
    let res = rp_http()
        .post(app.url("/par"))
        .basic_auth(
            &service.client_id,
            Some(service.client_secret.as_ref().unwrap().expose_secret()),
        )
        .form(&asked())
        .send()
        .await
        .unwrap();
    json_refusal(res, 400, "unauthorized_client").await;
}

#[tokio::test]
async fn a_fapi2_client_pushes_with_pkce_and_fapi_algorithms_only() {
    let app = spawn_app().await;
    let ec = ClientKey::ec("k1");
    let rsa = ClientKey::rsa("k2");
    let jwks = json!({"keys": [ec.public, rsa.public]}).to_string();
    let reg = register_client(
        &app,
        ClientSpec {
            auth_method: Some("private_key_jwt".into()),
            jwks: Some(jwks),
            fapi2: true,
            ..ClientSpec::new("FAPI app", &[REDIRECT])
        },
    )
    .await;
    let id = reg.client_id.as_str();

    let no_pkce: Vec<(&str, String)> = asked()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("code_challenge"))
        .collect();
    let text = json_refusal(
        push_signed(&app, id, &ec, no_pkce).await,
        400,
        "invalid_request",
    )
    .await;
    assert!(text.contains("FAPI 2.0 clients must use PKCE"), "{text}");

    let claims = request_claims(&app, id);
    let rs256 = vec![("request", rsa.sign(json!({}), &claims))];
    let text = json_refusal(
        push_signed(&app, id, &ec, rs256).await,
        400,
        "invalid_request_object",
    )
    .await;
    assert!(text.contains("alg RS256 is not allowed"), "{text}");
    let mut long = claims.clone();
    long["exp"] = json!(now(&app) + 3601);
    let text = json_refusal(
        push_signed(&app, id, &ec, vec![("request", ec.sign(json!({}), &long))]).await,
        400,
        "invalid_request_object",
    )
    .await;
    assert!(text.contains("3601 s > 3600 s"), "{text}");

    pushed(
        push_signed(
            &app,
            id,
            &ec,
            vec![("request", ec.sign(json!({}), &claims))],
        )
        .await,
    )
    .await;
    pushed(push_signed(&app, id, &ec, asked()).await).await;
    // Never through the browser.
    let mut plain = asked();
    plain.push(("client_id", id.to_owned()));
    let plain: Vec<(&str, &str)> = plain.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = rp_http()
        .get(authorize_url(&app, &plain))
        .send()
        .await
        .unwrap();
    let why = redirect_refusal(&res, "invalid_request");
    assert!(why.contains("PAR"), "{why}");
}

/// RFC 9449 §10: `dpop_jkt` travels with the request to the code, for the exchange to
/// check; whether pushed or sent through the browser.
#[tokio::test]
async fn dpop_jkt_is_carried_to_the_code() {
    let app = spawn_app().await;
    create_user(&app, "olivia", PASSWORD, false).await;
    let spa = register_client(&app, public_spec("SPA", &[REDIRECT])).await;
    let id = spa.client_id.clone();
    let jkt = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
    let browser = app.new_client();

    let mut form = asked();
    form.push(("client_id", id.clone()));
    form.push(("dpop_jkt", jkt.into()));
    let uri = pushed(push(&app, &form).await).await;
    let url = authorize_url(&app, &[("client_id", &id), ("request_uri", &uri)]);
    let back = browse_authorize(&app, &browser, &url, "olivia", PASSWORD).await;
    let stored = |code: String| {
        let app = &app;
        async move {
            let raw = app
                .state
                .ephemeral
                .get(&code_key(&code))
                .await
                .unwrap()
                .unwrap();
            serde_json::from_slice::<CodeData>(&raw)
                .unwrap()
                .request
                .dpop_jkt
        }
    };
    assert_eq!(
        stored(query(&back)["code"].clone()).await.as_deref(),
        Some(jkt)
    );

    let mut plain = form.clone();
    plain.retain(|(k, _)| *k != "dpop_jkt");
    plain.push(("dpop_jkt", format!("{jkt}=")));
    let plain_pairs: Vec<(&str, &str)> = plain.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = browser
        .get(authorize_url(&app, &plain_pairs))
        .send()
        .await
        .unwrap();
    let why = redirect_refusal(&res, "invalid_request");
    assert!(why.contains("dpop_jkt"), "{why}");
    let plain_pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = browser
        .get(authorize_url(&app, &plain_pairs))
        .send()
        .await
        .unwrap();
    let back = Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(
        stored(query(&back)["code"].clone()).await.as_deref(),
        Some(jkt)
    );
}

#[tokio::test]
async fn discovery_names_the_par_endpoint_and_request_object_algorithms() {
    let app = spawn_app().await;
    let doc: Value = rp_http()
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["pushed_authorization_request_endpoint"],
        app.url("/par")
    );
    assert_eq!(doc["require_pushed_authorization_requests"], false);
    assert_eq!(doc["request_parameter_supported"], true);
    assert_eq!(doc["request_uri_parameter_supported"], false);
    let algs = doc["request_object_signing_alg_values_supported"]
        .as_array()
        .unwrap();
    for alg in ["RS256", "PS256", "ES256", "EdDSA"] {
        assert!(algs.contains(&json!(alg)), "{alg}: {doc}");
    }
    assert!(!algs.contains(&json!("none")) && !algs.contains(&json!("HS256")));
}
