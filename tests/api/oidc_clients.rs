//! Issue 25, first slice: native apps (loopback redirect URIs on any port, private-use
//! schemes), browser apps (CORS for the clients' origins only), and hour-long client
//! assertions whose refusals say why. Attacks first in each test.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use gatehouse::oidc::clients::{ClientSpec, Registered};
use reqwest::{Method, Response};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use url::Url;

use crate::{
    helpers::{TestApp, create_user, spawn_app, spawn_app_with},
    oidc::{browse_authorize, query, register_client, rp_http},
};

const PASSWORD: &str = "Correct-Horse-Battery-9";

fn pkce() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode([9u8; 32]);
    let challenge =
        URL_SAFE_NO_PAD.encode(<sha2::Sha256 as sha2::Digest>::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn authorize_url(app: &TestApp, client_id: &str, redirect_uri: &str) -> String {
    let (_, challenge) = pkce();
    let mut url = Url::parse(&app.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid profile offline_access")
        .append_pair("state", "st")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    url.into()
}

/// A public client's code exchange (PKCE, no secret), from `origin` if given.
async fn public_exchange(
    app: &TestApp,
    client_id: &str,
    code: &str,
    redirect_uri: &str,
    origin: Option<&str>,
) -> Response {
    let (verifier, _) = pkce();
    let mut req = rp_http().post(app.url("/token")).form(&[
        ("grant_type", "authorization_code"),
        ("client_id", client_id),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", &verifier),
    ]);
    if let Some(o) = origin {
        req = req.header("Origin", o);
    }
    req.send().await.unwrap()
}

fn public_spec(name: &str, redirect_uris: &[&str]) -> ClientSpec {
    ClientSpec {
        public: true,
        ..ClientSpec::new(name, redirect_uris)
    }
}

#[tokio::test]
async fn a_loopback_redirect_uri_takes_any_port_and_nothing_else_may_differ() {
    let app = spawn_app().await;
    create_user(&app, "nina", PASSWORD, false).await;
    let native = register_client(
        &app,
        public_spec(
            "Native app",
            &[
                "http://127.0.0.1/cb",
                "http://[::1]:1234/cb",
                "http://localhost/cb",
            ],
        ),
    )
    .await;
    let web = register_client(&app, ClientSpec::new("Web", &["https://rp.example.org/cb"])).await;
    let browser = app.new_client();
    for (client, presented) in [
        (&native, "http://127.0.0.2:5123/cb"),
        (&native, "http://127.0.0.1:5123/cb2"),
        (&native, "http://127.0.0.1:5123/cb?x=1"),
        (&native, "https://127.0.0.1:5123/cb"),
        (&native, "http://127.0.0.1:5123@evil.example/cb"),
        (&native, "http://127.0.0.1@evil.example/cb"),
        (&native, "http://[::1]:5123/other"),
        (&native, "http://localhost.evil.example:5123/cb"),
        (&web, "https://rp.example.org:8443/cb"),
    ] {
        let res = browser
            .get(authorize_url(&app, &client.client_id, presented))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{presented}");
        assert!(res.headers().get("location").is_none(), "{presented}");
        let page = res.text().await.unwrap();
        assert!(page.contains("not registered"), "{presented}: {page}");
    }

    // RFC 8252 §7.3: the port is the app's, picked at run time.
    let port = 40_000 + u16::from(rand::random::<u8>()) * 50;
    let redirect = format!("http://127.0.0.1:{port}/cb");
    let back = browse_authorize(
        &app,
        &browser,
        &authorize_url(&app, &native.client_id, &redirect),
        "nina",
        PASSWORD,
    )
    .await;
    assert_eq!(back.port(), Some(port));
    assert_eq!(
        back.as_str().split('?').next().unwrap(),
        redirect,
        "back to the very address asked for"
    );
    // /token compares with what /authorize got, port included (the code is spent).
    let other_port = format!("http://127.0.0.1:{}/cb", port + 1);
    let res = public_exchange(
        &app,
        &native.client_id,
        &query(&back)["code"],
        &other_port,
        None,
    )
    .await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");

    for redirect in [
        redirect.clone(),
        "http://[::1]:5555/cb".into(),
        "http://localhost:6001/cb".into(),
    ] {
        // Signed in already: straight back with a code.
        let res = browser
            .get(authorize_url(&app, &native.client_id, &redirect))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303, "{redirect}");
        let back = Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
        assert!(back.as_str().starts_with(&format!("{redirect}?")), "{back}");
        let res = public_exchange(
            &app,
            &native.client_id,
            &query(&back)["code"],
            &redirect,
            None,
        )
        .await;
        assert_eq!(res.status(), 200, "{redirect}");
    }
}

#[tokio::test]
async fn a_native_app_with_a_private_use_scheme_gets_a_code_and_tokens() {
    let app = spawn_app().await;
    create_user(&app, "nina", PASSWORD, false).await;
    let redirect = "com.example.ward:/oauth2redirect";
    let native = register_client(&app, public_spec("Ward (iOS)", &[redirect])).await;
    let browser = app.new_client();
    // Another app's scheme is not this one's.
    let res = browser
        .get(authorize_url(
            &app,
            &native.client_id,
            "com.example.evil:/oauth2redirect",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none());

    let back = browse_authorize(
        &app,
        &browser,
        &authorize_url(&app, &native.client_id, redirect),
        "nina",
        PASSWORD,
    )
    .await;
    assert_eq!(back.scheme(), "com.example.ward");
    assert_eq!(back.path(), "/oauth2redirect");
    let res = public_exchange(
        &app,
        &native.client_id,
        &query(&back)["code"],
        redirect,
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    let tokens: Value = res.json().await.unwrap();
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
}

/// An admin API token (a service client with the admin scope acts as super admin).
async fn admin_token(app: &TestApp) -> String {
    let service = register_client(
        app,
        ClientSpec {
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["gatehouse:admin".into()],
            ..ClientSpec::new("Provisioning", &[])
        },
    )
    .await;
    let tokens: Value = rp_http()
        .post(app.url("/token"))
        .basic_auth(
            &service.client_id,
            Some(service.client_secret.as_ref().unwrap().expose_secret()),
        )
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "gatehouse:admin"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tokens["access_token"].as_str().unwrap().to_owned()
}

async fn create_by_api(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    let res = rp_http()
        .post(app.url("/admin/api/v1/clients"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn registration_refuses_dangerous_redirect_uris_and_bad_origins_naming_them() {
    let app = spawn_app().await;
    let token = admin_token(&app).await;
    for uri in [
        "javascript:alert(1)",
        "JavaScript:alert(1)//x.y",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "vbscript:msgbox(1)",
        "http://127.0.0.2/cb",
        "http://rp.example.org/cb",
        "https://127.0.0.1@evil.example/cb",
        "myapp:/cb",
    ] {
        let (status, body) = create_by_api(
            &app,
            &token,
            json!({"name": "Bad", "public": true, "redirect_uris": [uri]}),
        )
        .await;
        assert_eq!(status, 400, "{uri}: {body}");
        let text = body.to_string();
        assert!(text.contains("redirect_uris"), "{uri}: {text}");
        // The URI itself is named (JSON-escaped inside the message).
        let named = serde_json::to_string(&format!("{uri:?}")).unwrap();
        assert!(text.contains(named.trim_matches('"')), "{uri}: {text}");
    }
    for origin in [
        "*",
        "null",
        "https://spa.example.org/",
        "https://spa.example.org/app",
        "http://spa.example.org",
    ] {
        let (status, body) = create_by_api(
            &app,
            &token,
            json!({"name": "SPA", "public": true, "redirect_uris": ["https://spa.example.org/cb"],
                   "allowed_origins": [origin]}),
        )
        .await;
        assert_eq!(status, 400, "{origin}: {body}");
        assert!(
            body.to_string().contains("allowed_origins"),
            "{origin}: {body}"
        );
    }

    let (status, body) = create_by_api(
        &app,
        &token,
        json!({"name": "SPA", "public": true,
               "redirect_uris": ["https://spa.example.org/cb", "http://127.0.0.1/cb", "com.example.spa:/cb"],
               "allowed_origins": ["+", "https://cdn.example.org"]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["client"]["allowed_origins"],
        json!(["+", "https://cdn.example.org"])
    );
    assert_eq!(
        body["client"]["web_origins"],
        json!([
            "http://127.0.0.1",
            "https://cdn.example.org",
            "https://spa.example.org"
        ])
    );
    let (status, body) = create_by_api(
        &app,
        &token,
        json!({"name": "Default", "public": true, "redirect_uris": ["https://spa.example.org/cb"]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["client"]["allowed_origins"], json!(["+"]));
    assert_eq!(
        body["client"]["web_origins"],
        json!(["https://spa.example.org"])
    );
    // null goes back to the default; a list replaces it.
    let id = body["client_id"].as_str().unwrap();
    let res = rp_http()
        .put(app.url(&format!("/admin/api/v1/clients/{id}")))
        .bearer_auth(&token)
        .json(&json!({"allowed_origins": ["https://other.example.org"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["client"]["web_origins"],
        json!(["https://other.example.org"])
    );
}

fn cors_origin(res: &Response) -> Option<String> {
    res.headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn discovery_and_jwks_may_be_read_from_any_origin_without_credentials() {
    let app = spawn_app().await;
    for path in ["/.well-known/openid-configuration", "/jwks"] {
        let res = rp_http()
            .get(app.url(path))
            .header("Origin", "https://anyone.example")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(cors_origin(&res).as_deref(), Some("*"), "{path}");
        assert!(
            res.headers()
                .get("access-control-allow-credentials")
                .is_none()
        );
        let res = rp_http()
            .request(Method::OPTIONS, app.url(path))
            .header("Origin", "https://anyone.example")
            .header("Access-Control-Request-Method", "GET")
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{path}");
        assert_eq!(cors_origin(&res).as_deref(), Some("*"), "{path}");
    }
}

async fn preflight(app: &TestApp, path: &str, origin: &str) -> Response {
    rp_http()
        .request(Method::OPTIONS, app.url(path))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type, dpop")
        .send()
        .await
        .unwrap()
}

const SPA: &str = "https://spa.example.org";
const OTHER: &str = "https://other.example.org";
const EVIL: &str = "https://evil.example";

#[tokio::test]
async fn the_token_endpoints_answer_cors_only_to_the_clients_own_origins() {
    let app = spawn_app().await;
    create_user(&app, "nina", PASSWORD, false).await;
    let spa_redirect = format!("{SPA}/callback");
    let spa = register_client(&app, public_spec("SPA", &[spa_redirect.as_str()])).await;
    let other_redirect = format!("{OTHER}/cb");
    register_client(&app, public_spec("Other SPA", &[other_redirect.as_str()])).await;

    // Preflights carry no client: an origin no client allows gets nothing.
    for path in ["/token", "/userinfo", "/revoke"] {
        let res = preflight(&app, path, EVIL).await;
        assert!(cors_origin(&res).is_none(), "{path}");
        let res = preflight(&app, path, SPA).await;
        assert!(res.status().is_success(), "{path}");
        assert_eq!(cors_origin(&res).as_deref(), Some(SPA), "{path}");
        let h = |n: &str| res.headers()[n].to_str().unwrap().to_ascii_lowercase();
        for header in ["authorization", "dpop", "content-type"] {
            assert!(h("access-control-allow-headers").contains(header), "{path}");
        }
        assert!(h("access-control-allow-methods").contains("post"), "{path}");
        assert!(h("access-control-max-age").parse::<u32>().unwrap() > 0);
        assert!(h("vary").contains("origin"), "{path}");
        assert!(
            res.headers()
                .get("access-control-allow-credentials")
                .is_none()
        );
    }

    let browser = app.new_client();
    let code = |browser: reqwest::Client| {
        let url = authorize_url(&app, &spa.client_id, &spa_redirect);
        let app = &app;
        async move {
            let res = browser.get(&url).send().await.unwrap();
            let back = if res.status() == 303
                && !res.headers()["location"]
                    .to_str()
                    .unwrap()
                    .starts_with("/login")
            {
                Url::parse(res.headers()["location"].to_str().unwrap()).unwrap()
            } else {
                browse_authorize(app, &browser, &url, "nina", PASSWORD).await
            };
            query(&back)["code"].clone()
        }
    };
    // Another client's origin, or a stranger's, may not read this client's answers,
    // though the request itself is answered as ever.
    for origin in [EVIL, OTHER] {
        let res = public_exchange(
            &app,
            &spa.client_id,
            &code(browser.clone()).await,
            &spa_redirect,
            Some(origin),
        )
        .await;
        assert_eq!(res.status(), 200, "{origin}");
        assert!(cors_origin(&res).is_none(), "{origin}");
    }
    // Its own origin reads the answer, errors included.
    let res = public_exchange(&app, &spa.client_id, "not-a-code", &spa_redirect, Some(SPA)).await;
    assert_eq!(res.status(), 400);
    assert_eq!(cors_origin(&res).as_deref(), Some(SPA));
    let res = public_exchange(
        &app,
        &spa.client_id,
        &code(browser.clone()).await,
        &spa_redirect,
        Some(SPA),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(cors_origin(&res).as_deref(), Some(SPA));
    assert!(res.headers()["vary"].to_str().unwrap().contains("Origin"));
    assert!(
        res.headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
    let tokens: Value = res.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();

    for (origin, allowed) in [(EVIL, false), (OTHER, false), (SPA, true)] {
        let res = rp_http()
            .get(app.url("/userinfo"))
            .bearer_auth(access)
            .header("Origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(
            cors_origin(&res).is_some(),
            allowed,
            "userinfo from {origin}"
        );
    }
    let res = rp_http()
        .get(app.url("/userinfo"))
        .bearer_auth("garbage")
        .header("Origin", EVIL)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(cors_origin(&res).is_none());
    // Who the refused token belonged to is unknown: an origin some client allows may
    // read why (nothing in it is anyone's).
    let res = rp_http()
        .get(app.url("/userinfo"))
        .bearer_auth("garbage")
        .header("Origin", OTHER)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(cors_origin(&res).as_deref(), Some(OTHER));
    assert!(
        res.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("WWW-Authenticate")
    );

    let revoke = |origin: &'static str| {
        rp_http()
            .post(app.url("/revoke"))
            .header("Origin", origin)
            .form(&[
                ("client_id", spa.client_id.as_str()),
                ("token", tokens["refresh_token"].as_str().unwrap()),
            ])
            .send()
    };
    let res = revoke(OTHER).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(cors_origin(&res).is_none());
    let res = revoke(SPA).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(cors_origin(&res).as_deref(), Some(SPA));

    // Never on pages, the admin API or SAML, whatever the origin.
    let authorize_path = authorize_url(&app, &spa.client_id, &spa_redirect).replace(&app.base, "");
    for path in [
        "/login",
        "/account",
        authorize_path.as_str(),
        "/admin",
        "/admin/api/v1/clients",
        "/admin/api/v1/openapi.json",
        "/saml/metadata",
        "/healthz",
    ] {
        let res = app
            .client
            .get(app.url(path))
            .header("Origin", SPA)
            .send()
            .await
            .unwrap();
        assert!(cors_origin(&res).is_none(), "{path}");
        let res = preflight(&app, path, SPA).await;
        assert!(cors_origin(&res).is_none(), "OPTIONS {path}");
    }
}

#[tokio::test]
async fn a_listed_origin_replaces_the_redirect_uris_origins_unless_plus_is_listed() {
    let app = spawn_app().await;
    let listed = register_client(
        &app,
        ClientSpec {
            allowed_origins: Some(vec!["https://app.example.org".into()]),
            ..public_spec("Listed", &["https://login.example.org/cb"])
        },
    )
    .await;
    let token_from = |origin: &'static str| {
        rp_http()
            .post(app.url("/token"))
            .header("Origin", origin)
            .form(&[
                ("grant_type", "authorization_code"),
                ("client_id", listed.client_id.as_str()),
                ("code", "x"),
                ("redirect_uri", "https://login.example.org/cb"),
                ("code_verifier", &pkce().0),
            ])
            .send()
    };
    let res = token_from("https://login.example.org").await.unwrap();
    assert!(cors_origin(&res).is_none());
    let res = token_from("https://app.example.org").await.unwrap();
    assert_eq!(
        cors_origin(&res).as_deref(),
        Some("https://app.example.org")
    );
}

/// `--allowed-origin` from the command line, and its `--json` output.
#[tokio::test]
async fn client_create_from_the_command_line_takes_allowed_origins() {
    let app = spawn_app_with(|c| {
        c.database_url = None;
        c.master_key = None;
    })
    .await;
    let dir = app.data_dir.path().to_owned();
    let create = |extra: &[&str]| {
        let mut args = vec!["client", "create", "--name", "SPA", "--public", "--json"];
        args.extend(["--redirect-uri", "https://spa.example.org/cb"]);
        args.extend(extra);
        crate::cli::gatehouse(&dir).args(args).output().unwrap()
    };
    let out = create(&["--allowed-origin", "https://spa.example.org/"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("allowed_origins") && err.contains("no path"),
        "{err}"
    );
    let out = create(&[
        "--allowed-origin",
        "+",
        "--allowed-origin",
        "https://cdn.example.org",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        created["allowed_origins"],
        json!(["+", "https://cdn.example.org"])
    );
    let id = created["client_id"].as_str().unwrap().to_owned();
    let out = crate::cli::gatehouse(&dir)
        .args(["client", "show", &id, "--json"])
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        shown["web_origins"],
        json!(["https://cdn.example.org", "https://spa.example.org"])
    );
}

/// An RSA key pair for `private_key_jwt`: the key and the client's JWKS.
fn client_key(kid: &str) -> (rsa::RsaPrivateKey, String) {
    use rsa::traits::PublicKeyParts;
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let public = key.to_public_key();
    let jwks = json!({ "keys": [{
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
    }]});
    (key, jwks.to_string())
}

fn signed(key: &rsa::RsaPrivateKey, header: Value, claims: Value) -> String {
    use rsa::signature::{SignatureEncoding, Signer};
    let header = URL_SAFE_NO_PAD.encode(header.to_string());
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key.clone());
    let sig = signer.sign(format!("{header}.{claims}").as_bytes());
    format!(
        "{header}.{claims}.{}",
        URL_SAFE_NO_PAD.encode(sig.to_bytes())
    )
}

async fn with_assertion(app: &TestApp, assertion: &str) -> Response {
    rp_http()
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
        ])
        .send()
        .await
        .unwrap()
}

/// The `error_description` of a 401 `invalid_client`.
async fn refusal(res: Response) -> String {
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client", "{body}");
    body["error_description"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn hour_long_client_assertions_pass_and_every_refusal_says_why() {
    let app = spawn_app().await;
    let (key, jwks) = client_key("k1");
    let reg: Registered = register_client(
        &app,
        ClientSpec {
            auth_method: Some("private_key_jwt".into()),
            jwks: Some(jwks),
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["profile".into()],
            ..ClientSpec::new("Lab service", &[])
        },
    )
    .await;
    let now = {
        use gatehouse::clock::Clock;
        app.clock.now().timestamp()
    };
    let id = reg.client_id.as_str();
    let aud = app.url("/token");
    let rs256 = json!({"alg": "RS256", "kid": "k1"});
    let claims = |exp: i64, iat: Option<i64>| {
        let mut c = json!({"iss": id, "sub": id, "aud": aud, "exp": exp,
                           "jti": uuid::Uuid::new_v4().to_string()});
        if let Some(iat) = iat {
            c["iat"] = json!(iat);
        }
        c
    };
    let (other_key, _) = client_key("k1");
    let mut wrong_aud = claims(now + 60, Some(now));
    wrong_aud["aud"] = json!("https://elsewhere.example/token");
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none"}).to_string()),
        URL_SAFE_NO_PAD.encode(claims(now + 60, Some(now)).to_string())
    );
    let cases: Vec<(String, &str)> = vec![
        (
            signed(&key, rs256.clone(), claims(now + 3601, Some(now))),
            "lifetime too long: 3601 s > 3600 s",
        ),
        (
            signed(&key, rs256.clone(), claims(now + 4000, None)),
            "lifetime too long: 4000 s > 3600 s",
        ),
        (
            signed(&key, rs256.clone(), claims(now - 1, Some(now - 60))),
            "expired",
        ),
        (signed(&key, rs256.clone(), wrong_aud), "wrong aud"),
        (
            signed(
                &key,
                json!({"alg": "RS256", "kid": "k9"}),
                claims(now + 60, Some(now)),
            ),
            "unknown kid \"k9\"",
        ),
        (
            signed(&other_key, rs256.clone(), claims(now + 60, Some(now))),
            "bad signature",
        ),
        (
            signed(&key, json!({"alg": "HS256"}), claims(now + 60, Some(now))),
            "client_secret_jwt is not supported",
        ),
        (unsigned, "alg none is not allowed"),
        ("not.a.jwt.at-all".into(), "not a compact JWS"),
    ];
    for (assertion, why) in cases {
        let description = refusal(with_assertion(&app, &assertion).await).await;
        assert!(description.contains(why), "{why}: {description}");
        assert!(
            !description.contains(&assertion),
            "the assertion is never echoed"
        );
    }

    // authlib's default: an hour, with iat; and an hour without iat.
    let hour = signed(&key, rs256.clone(), claims(now + 3600, Some(now)));
    assert_eq!(with_assertion(&app, &hour).await.status(), 200);
    let no_iat = signed(&key, rs256.clone(), claims(now + 3600, None));
    assert_eq!(with_assertion(&app, &no_iat).await.status(), 200);
    // 50 minutes on (by the server's clock) the hour-long assertion is still live, and its
    // jti still remembered: the replay is refused. (The TTL itself: a unit test of
    // `client_assertion::replay_memory`.)
    app.clock.advance(chrono::Duration::minutes(50));
    let description = refusal(with_assertion(&app, &hour).await).await;
    assert!(description.contains("replayed"), "{description}");
}

/// Python's authlib (from PyPI) as an independent client: `GATEHOUSE_TEST_AUTHLIB` names
/// the Python of a virtualenv that has it (`.ci/run` installs one).
fn authlib_python(test: &str) -> Option<String> {
    let python = std::env::var("GATEHOUSE_TEST_AUTHLIB")
        .ok()
        .filter(|s| !s.is_empty());
    if python.is_none() {
        crate::helpers::skip(
            test,
            "GATEHOUSE_TEST_AUTHLIB (a Python with authlib installed) is not set",
        );
    }
    python
}

const AUTHLIB_CLIENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/api/interop/authlib_client.py"
);

#[tokio::test]
async fn authlib_as_a_native_app_signs_in_through_a_random_loopback_port() {
    use std::io::{BufRead, BufReader};
    let Some(python) = authlib_python("oidc_clients::authlib_native") else {
        return;
    };
    let app = spawn_app().await;
    create_user(&app, "nina", PASSWORD, false).await;
    let native = register_client(&app, public_spec("Desktop tool", &["http://127.0.0.1/cb"])).await;
    let mut child = std::process::Command::new(python)
        .args([AUTHLIB_CLIENT, "native", &app.base, &native.client_id])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::task::spawn_blocking(move || {
        let line = lines.next().unwrap().unwrap();
        (line, lines)
    });
    let (first, lines) = first.await.unwrap();
    let authorize: Value = serde_json::from_str(&first).unwrap();
    let url = authorize["authorize"].as_str().unwrap();
    let back = browse_authorize(&app, &app.new_client(), url, "nina", PASSWORD).await;
    assert_eq!(back.host_str(), Some("127.0.0.1"));
    assert!(back.port().is_some(), "{back}");
    // The browser lands on the app's own listener.
    let res = reqwest::get(back.as_str()).await.unwrap();
    assert_eq!(res.status(), 200);
    let (last, status) = tokio::task::spawn_blocking(move || {
        let last = lines.map(Result::unwrap).last();
        (last, child.wait().unwrap())
    })
    .await
    .unwrap();
    assert!(status.success(), "authlib failed");
    let result: Value = serde_json::from_str(&last.expect("a result line")).unwrap();
    assert_eq!(result["userinfo"]["preferred_username"], "nina", "{result}");
    assert_eq!(result["rotated"], true, "{result}");
    assert!(
        result["redirect_uri"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
}

#[tokio::test]
async fn authlib_private_key_jwt_assertions_of_an_hour_are_accepted() {
    let Some(python) = authlib_python("oidc_clients::authlib_service") else {
        return;
    };
    let app = spawn_app().await;
    let key = openssl::rsa::Rsa::generate(2048).unwrap();
    let b64 = |n: &openssl::bn::BigNumRef| URL_SAFE_NO_PAD.encode(n.to_vec());
    let jwks = json!({"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "py1",
                                "n": b64(key.n()), "e": b64(key.e())}]});
    let reg = register_client(
        &app,
        ClientSpec {
            auth_method: Some("private_key_jwt".into()),
            jwks: Some(jwks.to_string()),
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["profile".into()],
            ..ClientSpec::new("Python service", &[])
        },
    )
    .await;
    let pem_path = app.data_dir.path().join("client-key.pem");
    std::fs::write(&pem_path, key.private_key_to_pem().unwrap()).unwrap();
    let args = [
        AUTHLIB_CLIENT.to_owned(),
        "service".into(),
        app.base.clone(),
        reg.client_id.clone(),
        pem_path.display().to_string(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(token["access_token"].is_string(), "{token}");
}
