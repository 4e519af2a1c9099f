//! Python's authlib as an independent client: a native app on a random loopback port,
//! and a service with its own hour-long `private_key_jwt` assertions.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use gatehouse::oidc::clients::ClientSpec;
use serde_json::{Value, json};

use super::{PASSWORD, public_spec};
use crate::{
    helpers::{create_user, spawn_app},
    oidc::{browse_authorize, register_client},
};

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
