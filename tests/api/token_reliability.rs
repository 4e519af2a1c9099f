//! Issue 23 items 1 and 4, written as the faults: a refresh answered 503 (its Redis
//! frozen or stopped) spends nothing, and the embedded default (SQLite) sheds no code
//! exchange when whole sign-ins run in parallel.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use gatehouse::{
    audit::EventType,
    config::Config,
    oidc::clients::{ClientSpec, Registered},
};
use secrecy::ExposeSecret;
use serde_json::Value;
use url::Url;

use crate::{
    admin::audit_events,
    helpers::{TestApp, create_user, eventually, hidden, skip, spawn_app_with, test_redis_url},
    oidc::{REDIRECT, continue_link, register_client, rp_http},
};

const PASSWORD: &str = "Correct-Horse-Battery-9";
const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// Cheap hashing and no per-IP quota: every request comes from one address, and what is
/// under test is the token endpoint, not argon2 or the rate limiter.
fn cheap(config: &mut Config) {
    config.argon2_memory_kib = 64;
    config.argon2_iterations = 1;
    config.rate_limit_per_minute = 100_000;
    config.rate_limit_burst = 10_000;
}

fn pkce_pair() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode([9u8; 32]);
    let challenge =
        URL_SAFE_NO_PAD.encode(<sha2::Sha256 as sha2::Digest>::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// One whole sign-in as a browser and its relying party would do it: `/authorize`, the
/// sign-in page, the password, the code, `/token`. The status of the first step that
/// failed, with its body, or the token response.
async fn sign_in_flow(app: &TestApp, reg: &Registered, username: &str) -> Result<Value, String> {
    let browser = app.new_client();
    let (verifier, challenge) = pkce_pair();
    let mut url = Url::parse(&app.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", &reg.client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid profile")
        .append_pair("state", "st")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let failed = |step: &str, status: u16, body: String| format!("{step}: {status} {body}");
    let res = browser
        .get(url.as_str())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if res.status() != 303 {
        return Err(failed(
            "authorize",
            res.status().as_u16(),
            res.text().await.unwrap_or_default(),
        ));
    }
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let page = browser
        .get(app.url(&location))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if page.status() != 200 {
        return Err(failed("login page", page.status().as_u16(), String::new()));
    }
    let html = page.text().await.unwrap();
    let res = app
        .post_form(
            &browser,
            "/login",
            &[
                ("tx", &hidden(&html, "tx")),
                ("csrf", &hidden(&html, "csrf")),
                ("username", username),
                ("password", PASSWORD),
            ],
        )
        .await;
    if res.status() != 200 {
        return Err(failed(
            "password",
            res.status().as_u16(),
            res.text().await.unwrap_or_default(),
        ));
    }
    let back = Url::parse(&continue_link(&res.text().await.unwrap())).unwrap();
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| format!("no code: {back}"))?;
    let res = token(
        app,
        reg,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    let status = res.status().as_u16();
    let body = res.text().await.unwrap_or_default();
    if status != 200 {
        return Err(failed("token", status, body));
    }
    Ok(serde_json::from_str(&body).unwrap())
}

async fn token(app: &TestApp, reg: &Registered, form: &[(&str, &str)]) -> reqwest::Response {
    rp_http()
        .post(app.url("/token"))
        .basic_auth(
            &reg.client_id,
            Some(reg.client_secret.as_ref().unwrap().expose_secret()),
        )
        .form(form)
        .send()
        .await
        .unwrap()
}

/// A Redis of the test's own, which it freezes, thaws, kills and starts again. Append
/// only, fsync on every write: sessions survive its restart, so what a retry finds
/// after it is what was there before the fault.
struct OwnRedis {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl OwnRedis {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = Self {
            port,
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        redis.restart().await;
        redis
    }

    async fn restart(&mut self) {
        let child = Command::new(REDIS_SERVER)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let port = self.port;
        let up = eventually(Duration::from_secs(10), || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        assert!(up, "redis-server did not listen on {port}");
        self.child = Some(child);
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let sent = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(sent.success(), "kill {signal} {pid}");
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A frozen process still dies of SIGKILL.
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A server on its own Redis, a user signed in, and the refresh token of their grant.
async fn signed_in_on(redis: &OwnRedis) -> (TestApp, Registered, String) {
    let url = redis.url();
    let app = spawn_app_with(|c| {
        cheap(c);
        c.redis_url = Some(url.parse().unwrap());
    })
    .await;
    create_user(&app, "olivia", PASSWORD, false).await;
    let reg = register_client(&app, ClientSpec::new("Ward app", &[REDIRECT])).await;
    let tokens = sign_in_flow(&app, &reg, "olivia").await.unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    (app, reg, refresh)
}

/// Presents `refresh` until an answer other than 503 comes (Redis may take a moment to
/// be reached again); that answer.
async fn refresh_after_recovery(app: &TestApp, reg: &Registered, refresh: &str) -> (u16, Value) {
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
    for _ in 0..50 {
        let res = token(app, reg, &form).await;
        let status = res.status().as_u16();
        if status != 503 {
            return (status, res.json().await.unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("still 503 ten seconds after Redis came back");
}

/// What the fault must not have cost: the retry with the same token rotated it, its
/// tokens are live, and nothing was revoked or taken for a theft.
async fn nothing_was_spent(app: &TestApp, reg: &Registered, refresh: &str) {
    let (status, body) = refresh_after_recovery(app, reg, refresh).await;
    assert_eq!(status, 200, "the retry with the same token: {body}");
    assert!(body["refresh_token"].as_str().is_some_and(|t| t != refresh));
    let revoked = audit_events(app, EventType::TokenRevoked).await;
    assert!(
        revoked.is_empty(),
        "no revocation, no replay alarm: {revoked:?}"
    );
    let active: Value = rp_http()
        .post(app.url("/introspect"))
        .basic_auth(
            &reg.client_id,
            Some(reg.client_secret.as_ref().unwrap().expose_secret()),
        )
        .form(&[("token", body["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(active["active"], true);
}

fn redis_missing(test: &str) -> bool {
    if test_redis_url().is_none() {
        skip(test, "GATEHOUSE_TEST_REDIS_URL not set");
        return true;
    }
    if !std::path::Path::new(REDIS_SERVER).exists() {
        skip(test, "no /usr/bin/redis-server");
        return true;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refresh_answered_503_while_redis_is_frozen_spends_nothing() {
    if redis_missing("a_refresh_answered_503_while_redis_is_frozen_spends_nothing") {
        return;
    }
    let redis = OwnRedis::start().await;
    let (app, reg, refresh) = signed_in_on(&redis).await;

    redis.signal("-STOP");
    let res = token(
        &app,
        &reg,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    let status = res.status().as_u16();
    redis.signal("-CONT");
    assert_eq!(status, 503, "{}", res.text().await.unwrap());

    nothing_was_spent(&app, &reg, &refresh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refresh_answered_503_while_redis_is_stopped_spends_nothing() {
    if redis_missing("a_refresh_answered_503_while_redis_is_stopped_spends_nothing") {
        return;
    }
    let mut redis = OwnRedis::start().await;
    let (app, reg, refresh) = signed_in_on(&redis).await;

    redis.kill();
    let res = token(
        &app,
        &reg,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(res.status(), 503, "{}", res.text().await.unwrap());
    redis.restart().await;

    nothing_was_spent(&app, &reg, &refresh).await;
}

/// `rounds` times `flows` whole sign-ins at once, each by its own user, on the embedded
/// default: SQLite and the in-process ephemeral store. The failures, by step.
async fn parallel_sign_ins(flows: usize, rounds: usize) -> Vec<String> {
    let app = spawn_app_with(|c| {
        cheap(c);
        c.database_url = None;
        c.master_key = None;
        c.redis_url = None;
    })
    .await;
    let reg = register_client(&app, ClientSpec::new("Ward app", &[REDIRECT])).await;
    let users: Vec<String> = (0..flows).map(|i| format!("nurse{i}")).collect();
    for user in &users {
        create_user(&app, user, PASSWORD, false).await;
    }
    let mut failed = Vec::new();
    for _ in 0..rounds {
        let runs = users.iter().map(|u| sign_in_flow(&app, &reg, u));
        let results = futures_util::future::join_all(runs).await;
        failed.extend(results.into_iter().filter_map(Result::err));
    }
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_parallel_sign_ins_on_sqlite_all_get_their_tokens() {
    let failed = parallel_sign_ins(8, 5).await;
    assert!(
        failed.is_empty(),
        "{} of 40 failed: {failed:?}",
        failed.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_parallel_sign_ins_on_sqlite_all_get_their_tokens() {
    let failed = parallel_sign_ins(32, 2).await;
    assert!(
        failed.is_empty(),
        "{} of 64 failed: {failed:?}",
        failed.len()
    );
}
