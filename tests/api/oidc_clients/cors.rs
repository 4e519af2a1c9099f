//! CORS: public documents to anyone, the token endpoints to each client's own origins,
//! nothing elsewhere.

use gatehouse::oidc::clients::{ClientSpec, Registered};
use reqwest::{Method, Response};
use serde_json::Value;
use url::Url;

use super::{PASSWORD, authorize_url, pkce, public_exchange, public_spec};
use crate::{
    helpers::{TestApp, create_user, spawn_app},
    oidc::{browse_authorize, query, register_client, rp_http},
};

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

/// The SPA at `SPA`, another at `OTHER`, and a user.
async fn two_spas() -> (TestApp, Registered, String) {
    let app = spawn_app().await;
    create_user(&app, "nina", PASSWORD, false).await;
    let spa_redirect = format!("{SPA}/callback");
    let spa = register_client(&app, public_spec("SPA", &[spa_redirect.as_str()])).await;
    let other_redirect = format!("{OTHER}/cb");
    register_client(&app, public_spec("Other SPA", &[other_redirect.as_str()])).await;
    (app, spa, spa_redirect)
}

#[tokio::test]
async fn a_preflight_is_allowed_for_an_origin_some_client_allows() {
    let (app, _, _) = two_spas().await;
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
}

#[tokio::test]
async fn the_token_endpoints_answer_cors_only_to_the_clients_own_origins() {
    let (app, spa, spa_redirect) = two_spas().await;
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
}

#[tokio::test]
async fn pages_the_admin_api_and_saml_never_answer_cors() {
    let (app, spa, spa_redirect) = two_spas().await;
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
