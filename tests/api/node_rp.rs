//! Issue 25: independent relying parties from the npm registry drive Gatehouse, as their
//! users would: `openid-client` (a confidential server-side app with `private_key_jwt`)
//! and `oauth4webapi` (a native app on a random loopback port), both OpenID-certified,
//! and both again as FAPI 2.0 clients: PAR with a signed request object (JAR), DPoP-bound
//! tokens at `/token` and `/userinfo` and on refresh.
//!
//! The Node scripts in `tests/api/node_rp/` do everything an RP does (discovery, PKCE,
//! nonce and state, client assertions, code exchange, ID token checks, userinfo,
//! refresh); this side registers the clients, is the user at the sign-in page, and
//! reads what the RP got. They trust the test server's self-signed certificate through
//! `NODE_EXTRA_CA_CERTS`: certificate checks stay on, as openid-client requires.
//!
//! Run when `GATEHOUSE_TEST_NODE=1` and `node` and `npm` are on the PATH; the pinned
//! packages are installed with `npm ci` if `node_modules` is missing.

use std::{
    io::{BufRead, BufReader, Read, Write},
    path::PathBuf,
    process::{Child, ChildStdin, Command, Stdio},
    sync::OnceLock,
    time::Duration,
};

use gatehouse::oidc::clients::ClientSpec;
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, create_user, spawn_app, spawn_app_with},
    oidc::{REDIRECT, browse_authorize, register_client},
    oidc_clients::{PASSWORD, public_spec},
};

fn package_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/api/node_rp")
}

/// Whether the Node RPs can run here; says why not otherwise. Installs the locked
/// packages once per test binary when they are missing.
fn node_ready(test: &str) -> bool {
    if std::env::var("GATEHOUSE_TEST_NODE").as_deref() != Ok("1") {
        crate::helpers::skip(
            test,
            "GATEHOUSE_TEST_NODE=1 is not set (Node RPs from npm: openid-client, oauth4webapi)",
        );
        return false;
    }
    for tool in ["node", "npm"] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            crate::helpers::skip(test, &format!("`{tool}` is not on the PATH"));
            return false;
        }
    }
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    let installed = INSTALLED.get_or_init(|| {
        if package_dir().join("node_modules/openid-client").exists() {
            return Ok(());
        }
        let out = Command::new("npm")
            .args([
                "ci",
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
                "--prefix",
            ])
            .arg(package_dir())
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    if let Err(e) = installed {
        panic!("GATEHOUSE_TEST_NODE=1 but `npm ci --prefix tests/api/node_rp` failed: {e}");
    }
    true
}

/// A Node RP script running against `app`, talking in JSON lines: what it says on
/// stdout, what the test answers on stdin. Killed if the test ends early.
struct NodeRp {
    child: Child,
    stdin: ChildStdin,
    said: tokio::sync::mpsc::UnboundedReceiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl NodeRp {
    fn start(app: &TestApp, script: &str, args: &[&str]) -> Self {
        let mut child = Command::new("node")
            .arg(package_dir().join(script))
            .args(args)
            .current_dir(package_dir())
            // The test server's self-signed certificate, trusted like a private CA.
            .env(
                "NODE_EXTRA_CA_CERTS",
                app.data_dir.path().join("tls/cert.pem"),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node starts");
        let (tx, said) = tokio::sync::mpsc::unbounded_channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Self {
            stdin: child.stdin.take().unwrap(),
            child,
            said,
            stderr: Some(stderr),
        }
    }

    /// The script's next message; if it ended instead, its stderr in the panic.
    async fn hear(&mut self) -> Value {
        match tokio::time::timeout(Duration::from_secs(60), self.said.recv()).await {
            Ok(Some(line)) => serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}")),
            Ok(None) => panic!("the RP ended early:\n{}", self.stderr()),
            Err(_) => panic!("the RP said nothing for 60 s"),
        }
    }

    fn tell(&mut self, message: Value) {
        writeln!(self.stdin, "{message}").expect("the RP reads stdin");
    }

    /// The last message, once the script has exited successfully.
    async fn result(mut self) -> Value {
        let result = self.hear().await;
        let status = tokio::task::block_in_place(|| self.child.wait()).unwrap();
        assert!(status.success(), "the RP failed:\n{}", self.stderr());
        result
    }

    fn stderr(&mut self) -> String {
        let _ = self.child.kill();
        self.stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for NodeRp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A confidential client with the JWKS the script made for itself.
async fn register_key_client(app: &TestApp, rp: &mut NodeRp, spec: ClientSpec) -> String {
    let said = rp.hear().await;
    let jwks = said["jwks"].to_string();
    let reg = register_client(
        app,
        ClientSpec {
            auth_method: Some("private_key_jwt".into()),
            jwks: Some(jwks),
            ..spec
        },
    )
    .await;
    rp.tell(json!({ "client_id": reg.client_id }));
    reg.client_id
}

/// The user signs in at the URL the RP sent; returns that URL and where Gatehouse
/// sends the browser.
async fn sign_in_for(app: &TestApp, rp: &mut NodeRp, username: &str) -> (String, url::Url) {
    let said = rp.hear().await;
    let authorize = said["authorize"].as_str().expect("an authorization URL");
    assert!(
        authorize.starts_with(&app.url("/authorize?")),
        "{authorize}"
    );
    let back = browse_authorize(app, &app.new_client(), authorize, username, PASSWORD).await;
    (authorize.to_owned(), back)
}

/// A redirect as a failure message may show it: the code is a credential, never printed.
fn without_code(url: &url::Url) -> String {
    let mut shown = url.clone();
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "code")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    shown.query_pairs_mut().clear().extend_pairs(kept);
    shown.into()
}

fn assert_refused(outcome: &Value, status: u16, error: &str, description: &str) {
    assert_eq!(outcome["status"], status, "{outcome}");
    assert_eq!(outcome["error"], error, "{outcome}");
    let said = outcome["error_description"].as_str().unwrap_or_default();
    assert!(said.contains(description), "{outcome}");
}

#[tokio::test(flavor = "multi_thread")]
async fn openid_client_signs_in_with_private_key_jwt_pkce_and_refresh_rotation() {
    if !node_ready("node_rp::openid_client_code") {
        return;
    }
    let app = spawn_app().await;
    create_user(&app, "nina", PASSWORD, false).await;
    let mut rp = NodeRp::start(&app, "openid_client_rp.mjs", &["code", &app.base, REDIRECT]);
    let client_id = register_key_client(&app, &mut rp, ClientSpec::new("Ward", &[REDIRECT])).await;
    let (_, back) = sign_in_for(&app, &mut rp, "nina").await;
    assert!(
        back.as_str().starts_with(&format!("{REDIRECT}?")),
        "{}",
        without_code(&back)
    );
    rp.tell(json!({ "callback": back.as_str() }));
    let got = rp.result().await;

    // openid-client checked the ID token (signature against /jwks, iss, aud, nonce,
    // exp) before handing over these claims.
    assert_eq!(got["claims"]["iss"], app.base, "{got}");
    assert_eq!(got["claims"]["aud"], json!([client_id]), "{got}");
    assert!(got["claims"]["nonce"].is_string(), "{got}");
    assert_eq!(got["id_token_alg"], "RS256", "the default: {got}");
    assert_eq!(got["access_token_alg"], "RS256", "the default: {got}");
    assert_eq!(got["userinfo"]["sub"], got["claims"]["sub"], "{got}");
    assert_eq!(got["userinfo"]["preferred_username"], "nina", "{got}");
    assert_eq!(got["userinfo"]["email"], "nina@example.org", "{got}");
    assert_eq!(
        got["token_type"].as_str().map(str::to_lowercase).as_deref(),
        Some("bearer")
    );
    assert_eq!(got["rotated"], true, "{got}");
    assert_eq!(got["refreshed_sub"], got["claims"]["sub"], "{got}");
    // Another key under the registered kid: refused, saying why, and the code was not
    // spent by it (the real client's exchange above succeeded).
    assert_refused(&got["wrong_key"], 401, "invalid_client", "bad signature");
    // The spent refresh token is refused, and its replay ended the new one too.
    assert_refused(&got["old_refresh"], 400, "invalid_grant", "");
    assert_refused(&got["after_replay"], 400, "invalid_grant", "");
}

/// Issue 32: openid-client, holding the client to `id_token_signed_response_alg: EdDSA`,
/// checks Gatehouse's Ed25519 ID tokens against `/jwks` (at the code exchange and at
/// refresh), and its EdDSA access tokens work at `/userinfo`.
#[tokio::test(flavor = "multi_thread")]
async fn openid_client_checks_eddsa_id_tokens_and_uses_eddsa_access_tokens() {
    if !node_ready("node_rp::openid_client_eddsa") {
        return;
    }
    let app = spawn_app().await;
    create_user(&app, "nina", PASSWORD, false).await;
    let mut rp = NodeRp::start(
        &app,
        "openid_client_rp.mjs",
        &["code", &app.base, REDIRECT, "EdDSA"],
    );
    let spec = ClientSpec {
        id_token_alg: Some("EdDSA".into()),
        access_token_alg: Some("EdDSA".into()),
        ..ClientSpec::new("Ward", &[REDIRECT])
    };
    let client_id = register_key_client(&app, &mut rp, spec).await;
    let (_, back) = sign_in_for(&app, &mut rp, "nina").await;
    rp.tell(json!({ "callback": back.as_str() }));
    let got = rp.result().await;

    assert_eq!(got["id_token_alg"], "EdDSA", "{got}");
    assert_eq!(got["refreshed_id_token_alg"], "EdDSA", "{got}");
    assert_eq!(got["access_token_alg"], "EdDSA", "{got}");
    assert_eq!(got["claims"]["aud"], json!([client_id]), "{got}");
    assert_eq!(got["userinfo"]["sub"], got["claims"]["sub"], "{got}");
    assert_eq!(got["userinfo"]["preferred_username"], "nina", "{got}");
    assert_eq!(got["refreshed_sub"], got["claims"]["sub"], "{got}");
}

#[tokio::test(flavor = "multi_thread")]
async fn oauth4webapi_native_app_receives_the_code_on_its_own_random_loopback_port() {
    if !node_ready("node_rp::oauth4webapi_native") {
        return;
    }
    let app = spawn_app().await;
    create_user(&app, "nina", PASSWORD, false).await;
    let native = register_client(
        &app,
        public_spec("Desktop tool", &["http://127.0.0.1/callback"]),
    )
    .await;
    let mut rp = NodeRp::start(
        &app,
        "oauth4webapi_rp.mjs",
        &["native", &app.base, &native.client_id],
    );
    let (_, back) = sign_in_for(&app, &mut rp, "nina").await;
    assert_eq!(back.scheme(), "http");
    assert_eq!(back.host_str(), Some("127.0.0.1"));
    assert_eq!(back.path(), "/callback");
    let port = back.port().expect("the app's port");
    // The browser goes where Gatehouse sent it: the app's own listener takes the code.
    let res = reqwest::get(back.as_str()).await.unwrap();
    assert_eq!(res.status(), 200, "the app's listener answers");
    let got = rp.result().await;

    assert_eq!(
        got["redirect_uri"],
        format!("http://127.0.0.1:{port}/callback"),
        "{got}"
    );
    assert_eq!(got["claims"]["aud"], json!([native.client_id]), "{got}");
    assert_eq!(got["userinfo"]["preferred_username"], "nina", "{got}");
    assert_eq!(got["rotated"], true, "{got}");
    assert_refused(&got["old_refresh"], 400, "invalid_grant", "");
}

/// Found by openid-client: a refusal of a client that authenticated in the body (an
/// assertion, a public client's `client_id`) carried `WWW-Authenticate: Basic`, so the
/// libraries, which read a challenge before the body, reported a bare 401 and never the
/// `error_description`. RFC 6749 §5.2 asks for the challenge only when the client used
/// the `Authorization` header.
#[tokio::test]
async fn a_client_refused_for_credentials_in_the_body_gets_no_basic_challenge() {
    let app = spawn_app().await;
    let native = register_client(&app, public_spec("Desktop tool", &["http://127.0.0.1/cb"])).await;
    let basic = register_client(&app, ClientSpec::new("Web", &[REDIRECT])).await;
    let token = |form: Vec<(&'static str, String)>| {
        crate::oidc::rp_http()
            .post(app.url("/token"))
            .form(&form)
            .send()
    };
    for (what, res) in [
        (
            "a malformed assertion",
            token(vec![
                ("grant_type", "client_credentials".into()),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ),
                ("client_assertion", "a.b.c".into()),
            ])
            .await,
        ),
        (
            "a confidential client without its secret",
            token(vec![
                ("grant_type", "refresh_token".into()),
                ("client_id", basic.client_id.clone()),
                ("refresh_token", "x".into()),
            ])
            .await,
        ),
        (
            "a public client's wrong secret in the body",
            token(vec![
                ("grant_type", "refresh_token".into()),
                ("client_id", native.client_id.clone()),
                ("client_secret", "guess".into()),
                ("refresh_token", "x".into()),
            ])
            .await,
        ),
    ] {
        let res = res.unwrap();
        assert_eq!(res.status(), 401, "{what}");
        assert!(res.headers().get("www-authenticate").is_none(), "{what}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client", "{what}: {body}");
        assert!(body["error_description"].is_string(), "{what}: {body}");
    }
    // Basic credentials still get the Basic challenge.
    let res = crate::oidc::rp_http()
        .post(app.url("/token"))
        .basic_auth(&basic.client_id, Some("not-the-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
}

/// A FAPI 2.0 client (PAR, DPoP, `private_key_jwt`, PKCE) whose ID tokens are ES256:
/// FAPI 2.0 §5.4 allows no RS256.
fn fapi2_spec(name: &str) -> ClientSpec {
    ClientSpec {
        fapi2: true,
        id_token_alg: Some("ES256".into()),
        ..ClientSpec::new(name, &[REDIRECT])
    }
}

/// A refusal of a DPoP-bound grant or token used without its key: `status`, an OAuth
/// error, and a description saying why.
fn assert_dpop_refused(outcome: &Value, status: u16) {
    assert_eq!(outcome["status"], status, "{outcome}");
    assert!(
        ["invalid_dpop_proof", "invalid_token", "invalid_grant"]
            .contains(&outcome["error"].as_str().unwrap_or_default()),
        "{outcome}"
    );
    assert!(
        outcome["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{outcome}"
    );
}

/// RFC 9449 §5: `token_type` DPoP, at the code exchange and at refresh (oauth4webapi
/// gives it in lower case: token types are case-insensitive).
fn assert_token_type_dpop(got: &Value) {
    for field in ["token_type", "refreshed_token_type"] {
        let said = got[field].as_str().unwrap_or_default();
        assert!(said.eq_ignore_ascii_case("DPoP"), "{field}: {got}");
    }
}

/// The `request_uri` the browser carried is spent: the same authorization URL again,
/// from a signed-in browser, gives no code.
async fn request_uri_is_single_use(app: &TestApp, authorize: &str) {
    let browser = app.new_client();
    app.sign_in(&browser, "nina", PASSWORD).await;
    app.account_csrf(&browser).await;
    let res = browser.get(authorize).send().await.unwrap();
    let location = res
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(!location.contains("code="), "{} {location}", res.status());
}

#[tokio::test(flavor = "multi_thread")]
async fn openid_client_fapi2_pushes_a_signed_request_and_binds_every_token_to_its_dpop_key() {
    if !node_ready("node_rp::openid_client_fapi2") {
        return;
    }
    let app = spawn_app().await;
    create_user(&app, "nina", PASSWORD, false).await;
    let mut rp = NodeRp::start(
        &app,
        "openid_client_rp.mjs",
        &["fapi2", &app.base, REDIRECT],
    );
    register_key_client(&app, &mut rp, fapi2_spec("Clinic portal")).await;
    // Twice: the first code goes to a thief with another DPoP key, the second to the RP.
    let mut authorize = String::new();
    for _ in 0..2 {
        let (url, back) = sign_in_for(&app, &mut rp, "nina").await;
        assert!(
            back.as_str().starts_with(&format!("{REDIRECT}?")),
            "{}",
            without_code(&back)
        );
        rp.tell(json!({ "callback": back.as_str() }));
        authorize = url;
    }
    let got = rp.result().await;

    assert_eq!(got["par_endpoint"], app.url("/par"), "{got}");
    // Only a reference reaches the browser; the parameters went signed, to /par.
    assert_eq!(
        got["authorize_params"],
        json!(["client_id", "request_uri"]),
        "{got}"
    );
    assert_eq!(got["claims"]["iss"], app.base, "{got}");
    assert_eq!(got["userinfo"]["preferred_username"], "nina", "{got}");
    assert_token_type_dpop(&got);
    assert_eq!(got["rotated"], true, "{got}");
    assert_eq!(
        got["userinfo_after_refresh_sub"], got["claims"]["sub"],
        "{got}"
    );
    assert_refused(&got["forged_par"], 401, "invalid_client", "bad signature");
    // The code and the access token work with the RP's DPoP key only.
    assert_dpop_refused(&got["other_dpop_key"], 400);
    assert_dpop_refused(&got["userinfo_other_key"], 401);
    assert_dpop_refused(&got["as_bearer"], 401);
    // A new DPoP key at refresh (RFC 9449 §5): the new token follows it.
    assert_eq!(got["rekeyed_userinfo_sub"], got["claims"]["sub"], "{got}");
    assert_dpop_refused(&got["old_key_after_rekey"], 401);
    request_uri_is_single_use(&app, &authorize).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oauth4webapi_fapi2_step_by_step_retrying_when_asked_for_a_dpop_nonce() {
    if !node_ready("node_rp::oauth4webapi_fapi2") {
        return;
    }
    // RFC 9449 §8: this server asks for a nonce in every proof.
    let app = spawn_app_with(|c| c.dpop_nonce_required = true).await;
    create_user(&app, "nina", PASSWORD, false).await;
    let mut rp = NodeRp::start(&app, "oauth4webapi_rp.mjs", &["fapi2", &app.base, REDIRECT]);
    register_key_client(&app, &mut rp, fapi2_spec("Lab portal")).await;
    let (authorize, back) = sign_in_for(&app, &mut rp, "nina").await;
    rp.tell(json!({ "callback": back.as_str() }));
    let got = rp.result().await;

    assert!(
        got["request_uri_expires_in"]
            .as_u64()
            .is_some_and(|s| s > 0 && s <= 600),
        "{got}"
    );
    assert_eq!(got["userinfo"]["preferred_username"], "nina", "{got}");
    assert_token_type_dpop(&got);
    assert_eq!(got["rotated"], true, "{got}");
    assert_dpop_refused(&got["as_bearer"], 401);
    // Asked for a nonce once, at its first DPoP request: every answer after it carried a
    // fresh one, which the library kept using.
    assert_eq!(got["dpop_nonce_retries"], 1, "{got}");
    request_uri_is_single_use(&app, &authorize).await;
}
