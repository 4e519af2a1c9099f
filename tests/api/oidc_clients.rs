//! Issue 25, first slice: native apps (loopback redirect URIs on any port, private-use
//! schemes), browser apps (CORS for the clients' origins only), and hour-long client
//! assertions whose refusals say why. Attacks first in each test.

mod assertions;
mod authlib;
mod cors;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use gatehouse::oidc::clients::ClientSpec;
use reqwest::Response;
use serde_json::{Value, json};
use url::Url;

use crate::{
    helpers::{TestApp, create_user, spawn_app, spawn_app_with},
    oidc::{browse_authorize, query, register_client, rp_http},
};

pub(crate) const PASSWORD: &str = "Correct-Horse-Battery-9";

pub(crate) fn pkce() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode([9u8; 32]);
    let challenge =
        URL_SAFE_NO_PAD.encode(<sha2::Sha256 as sha2::Digest>::digest(verifier.as_bytes()));
    (verifier, challenge)
}

pub(crate) fn authorize_url(app: &TestApp, client_id: &str, redirect_uri: &str) -> String {
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
pub(crate) async fn public_exchange(
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

pub(crate) fn public_spec(name: &str, redirect_uris: &[&str]) -> ClientSpec {
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
    let token = crate::oidc::admin_token(&app).await;
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
