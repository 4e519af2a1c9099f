//! DESIGN §14 under a steady sign-in load: Redis restarting, PostgreSQL unreachable,
//! and an instance killed in the middle of someone's sign-in. Real servers, real Redis
//! and PostgreSQL; the faults are made by killing processes and cutting connections.

use std::{
    collections::BTreeMap,
    io::Write,
    process::{Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use gatehouse::config::Config;
use tokio::task::JoinHandle;

mod harness;
mod verdict;

use harness::{OwnRedis, free_port, observer, proxied_database};

use crate::{
    cli::{gatehouse, serve_with},
    helpers::{
        TestApp, create_user, eventually, fresh_postgres_url, hidden, skip, spawn_app_with,
        test_database_url, test_redis_url,
    },
};

const PASSWORD: &str = "Correct-Horse-Battery-9";

/// Cheap hashing and no per-IP quota: the load runs from one address for many seconds,
/// and what is under test is the dependencies, not argon2 or the rate limiter.
fn under_load(config: &mut Config) {
    config.argon2_memory_kib = 64;
    config.argon2_iterations = 1;
    config.rate_limit_per_minute = 100_000;
    config.rate_limit_burst = 10_000;
}

/// What the load saw: status codes by phase, and requests that got no answer at all.
#[derive(Default, Debug)]
struct Seen {
    statuses: BTreeMap<(String, u16), usize>,
    no_answer: Vec<String>,
    /// The longest any one request waited for its answer, by phase.
    slowest: BTreeMap<String, Duration>,
}

impl Seen {
    fn count(&self, phase: &str, pred: impl Fn(u16) -> bool) -> usize {
        self.statuses
            .iter()
            .filter(|((p, s), _)| p == phase && pred(*s))
            .map(|(_, n)| n)
            .sum()
    }

    /// Any answer a dependency outage must never produce.
    fn server_errors(&self) -> Vec<(String, u16)> {
        self.statuses
            .keys()
            .filter(|(_, s)| (500..600).contains(s) && *s != 503)
            .cloned()
            .collect()
    }
}

/// A browser signing in over and over (a few sign-ins a second), recording every status
/// under the phase the test says it is in.
struct Load {
    seen: Arc<Mutex<Seen>>,
    phase: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Load {
    fn start(base: String, username: &'static str) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let phase = Arc::new(Mutex::new("before".to_owned()));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (seen, phase, stop) = (seen.clone(), phase.clone(), stop.clone());
            async move {
                while !stop.load(Ordering::Relaxed) {
                    let client = crate::helpers::client();
                    let started = std::time::Instant::now();
                    let result = sign_in_once(&client, &base, username).await;
                    let p = phase.lock().unwrap().clone();
                    {
                        let mut seen = seen.lock().unwrap();
                        match result {
                            Ok((statuses, slowest)) => {
                                let most = seen.slowest.entry(p.clone()).or_default();
                                *most = (*most).max(slowest.min(started.elapsed()));
                                for s in statuses {
                                    *seen.statuses.entry((p.clone(), s)).or_default() += 1;
                                }
                            }
                            Err(e) => seen.no_answer.push(format!("{p}: {e}")),
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(150)).await;
                }
            }
        });
        Self {
            seen,
            phase,
            stop,
            task,
        }
    }

    /// Started, and seen to sign in a few times before any fault.
    async fn running(app: &TestApp, username: &'static str) -> Self {
        let load = Self::start(app.base.clone(), username);
        assert!(
            eventually(Duration::from_secs(20), || async {
                load.successes("before") >= 3
            })
            .await,
            "no sign-in succeeded before the fault: {:?}",
            load.seen.lock().unwrap()
        );
        load
    }

    fn phase(&self, name: &str) {
        *self.phase.lock().unwrap() = name.to_owned();
    }

    fn successes(&self, phase: &str) -> usize {
        self.seen.lock().unwrap().count(phase, |s| s == SIGNED_IN)
    }

    async fn finish(self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        Arc::try_unwrap(self.seen).unwrap().into_inner().unwrap()
    }
}

/// Recorded for a completed sign-in (the password step's 303 to the account page), so
/// "signed in" is told apart from the other 303s of the flow.
const SIGNED_IN: u16 = 1303;

/// One sign-in: start page, sign-in page, password. Stops at the first non-success and
/// returns every status seen (the password step's success as `SIGNED_IN`).
async fn sign_in_once(
    client: &reqwest::Client,
    base: &str,
    username: &str,
) -> Result<(Vec<u16>, Duration), String> {
    let (mut out, slowest, res) = submit_password(client, base, username, PASSWORD).await?;
    if let Some(res) = res {
        let status = res.status().as_u16();
        let done = status == 303
            && res.headers()["location"]
                .to_str()
                .is_ok_and(|l| !l.starts_with("/login"));
        out.push(if done { SIGNED_IN } else { status });
    }
    Ok((out, slowest))
}

/// What `submit_password` saw: the statuses before the password step, the longest
/// wait for any answer, and the password step's answer (None when an earlier step failed).
type Submitted = (Vec<u16>, Duration, Option<reqwest::Response>);

/// Start page, sign-in page, then the password form.
async fn submit_password(
    client: &reqwest::Client,
    base: &str,
    username: &str,
    password: &str,
) -> Result<Submitted, String> {
    let mut out = Vec::new();
    let slowest = Mutex::new(Duration::ZERO);
    let send = |r: reqwest::RequestBuilder| {
        let slowest = &slowest;
        async move {
            let started = std::time::Instant::now();
            let res = r.send().await.map_err(|e| format!("no answer: {e}"));
            let mut most = slowest.lock().unwrap();
            *most = (*most).max(started.elapsed());
            res
        }
    };
    let res = send(client.get(format!("{base}/login"))).await?;
    out.push(res.status().as_u16());
    if res.status() != 303 {
        return Ok((out, *slowest.lock().unwrap(), None));
    }
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let res = send(client.get(format!("{base}{location}"))).await?;
    out.push(res.status().as_u16());
    if res.status() != 200 {
        return Ok((out, *slowest.lock().unwrap(), None));
    }
    let html = res.text().await.map_err(|e| e.to_string())?;
    let res = send(
        client
            .post(format!("{base}/login"))
            .header("Origin", base)
            .form(&[
                ("tx", hidden(&html, "tx").as_str()),
                ("csrf", &hidden(&html, "csrf")),
                ("username", username),
                ("password", password),
            ]),
    )
    .await?;
    Ok((out, *slowest.lock().unwrap(), Some(res)))
}

async fn readyz(app: &TestApp) -> u16 {
    match app.client.get(app.url("/readyz")).send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// Signs `username` in with a wrong password until the account locks.
async fn lock_out(app: &TestApp, username: &str) {
    for _ in 0..5 {
        let client = app.new_client();
        let (tx, csrf) = app.open_login(&client).await;
        let res = app
            .post_form(
                &client,
                "/login",
                &[
                    ("tx", &tx),
                    ("csrf", &csrf),
                    ("username", username),
                    ("password", "Wrong-password-123"),
                ],
            )
            .await;
        assert_eq!(res.status(), 401);
    }
    assert!(is_locked(app, username).await);
}

/// The right password is refused as locked.
async fn is_locked(app: &TestApp, username: &str) -> bool {
    let client = app.new_client();
    let res = app.sign_in(&client, username, PASSWORD).await;
    res.status() == 401
        && res
            .text()
            .await
            .unwrap()
            .contains("Too many failed attempts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_and_restarted_under_load_gives_503_then_recovers() {
    if test_redis_url().is_none() {
        return skip(
            "redis_killed_and_restarted_under_load_gives_503_then_recovers",
            "GATEHOUSE_TEST_REDIS_URL not set",
        );
    }
    if !std::path::Path::new(OwnRedis::BINARY).exists() {
        return skip(
            "redis_killed_and_restarted_under_load_gives_503_then_recovers",
            "no /usr/bin/redis-server",
        );
    }
    let mut redis = OwnRedis::start(free_port()).await;
    let url = redis.url();
    let app = spawn_app_with(|c| {
        under_load(c);
        c.redis_url = Some(url.parse().unwrap());
    })
    .await;
    create_user(&app, "alice", PASSWORD, false).await;
    create_user(&app, "bob", PASSWORD, false).await;
    lock_out(&app, "bob").await;

    let load = Load::running(&app, "alice").await;

    load.phase("redis down");
    redis.kill();
    assert!(
        eventually(Duration::from_secs(10), || async {
            readyz(&app).await == 503
        })
        .await,
        "/readyz still ready with Redis down"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;

    load.phase("redis back");
    let redis = OwnRedis::start(redis.port).await;
    let back = std::time::Instant::now();
    assert!(
        eventually(Duration::from_secs(20), || async {
            load.successes("redis back") >= 1
        })
        .await,
        "sign-ins did not recover: {:?}",
        load.seen.lock().unwrap()
    );
    eprintln!(
        "redis restarted: sign-ins back {:?} after it listened",
        back.elapsed()
    );
    assert!(
        eventually(Duration::from_secs(20), || async {
            load.successes("redis back") >= 3
        })
        .await,
        "sign-ins did not recover: {:?}",
        load.seen.lock().unwrap()
    );
    assert_eq!(readyz(&app).await, 200);
    let seen = load.finish().await;

    assert!(seen.server_errors().is_empty(), "{seen:?}");
    assert!(seen.no_answer.is_empty(), "{seen:?}");
    assert!(
        seen.count("redis down", |s| s == 503) > 0,
        "the outage was never seen: {seen:?}"
    );
    assert_eq!(seen.count("redis down", |s| s == SIGNED_IN), 0, "{seen:?}");
    // Accounts and lockouts live in the database: Redis losing everything changed neither.
    assert!(is_locked(&app, "bob").await, "bob's lockout was lost");
    let client = app.new_client();
    let res = app.sign_in(&client, "alice", PASSWORD).await;
    assert_eq!(res.status(), 303);
    drop(redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_unreachable_under_load_gives_503_then_recovers_without_restart() {
    let Some(base) = test_database_url() else {
        return skip(
            "postgres_unreachable_under_load_gives_503_then_recovers_without_restart",
            "GATEHOUSE_TEST_DATABASE_URL not set",
        );
    };
    let (mut proxy, _, through_proxy) = proxied_database(&base).await;
    let app = spawn_app_with(|c| {
        under_load(c);
        c.database_url = Some(through_proxy.clone());
    })
    .await;
    create_user(&app, "alice", PASSWORD, false).await;
    let load = Load::running(&app, "alice").await;

    load.phase("database cut");
    proxy.cut().await;
    assert!(
        eventually(Duration::from_secs(15), || async {
            readyz(&app).await == 503
        })
        .await,
        "/readyz still ready with the database cut"
    );
    // Long enough for the pool's checkout timeout to be hit several times.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let client = app.new_client();
    let res = app.sign_in(&client, "alice", PASSWORD).await;
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));

    load.phase("database back");
    proxy.restore().await;
    let back = std::time::Instant::now();
    assert!(
        eventually(Duration::from_secs(30), || async {
            load.successes("database back") >= 1
        })
        .await,
        "sign-ins did not recover: {:?}",
        load.seen.lock().unwrap()
    );
    eprintln!(
        "postgres reachable again: sign-ins back {:?}",
        back.elapsed()
    );
    assert!(
        eventually(Duration::from_secs(30), || async {
            load.successes("database back") >= 3
        })
        .await,
        "sign-ins did not recover: {:?}",
        load.seen.lock().unwrap()
    );
    assert_eq!(readyz(&app).await, 200);
    let seen = load.finish().await;
    assert!(seen.server_errors().is_empty(), "{seen:?}");
    assert!(seen.no_answer.is_empty(), "{seen:?}");
    assert!(seen.count("database cut", |s| s == 503) > 0, "{seen:?}");
    assert_eq!(
        seen.count("database cut", |s| s == SIGNED_IN),
        0,
        "{seen:?}"
    );
}

/// `gatehouse` as one of several instances on the shared PostgreSQL and Redis.
fn instance(dir: &tempfile::TempDir, shared: &[(&str, String)]) -> Command {
    let mut cmd = gatehouse(dir.path());
    for (k, v) in shared {
        cmd.env(k, v);
    }
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_started_on_a_killed_instance_finishes_on_another() {
    let (Some(db), Some(redis)) = (test_database_url(), test_redis_url()) else {
        return skip(
            "a_sign_in_started_on_a_killed_instance_finishes_on_another",
            "GATEHOUSE_TEST_DATABASE_URL or GATEHOUSE_TEST_REDIS_URL not set",
        );
    };
    let key = crate::helpers::base64_key(&gatehouse::crypto::MasterKey::generate());
    // One public URL for both, as behind a load balancer.
    let issuer = "https://localhost:8443".to_owned();
    let shared = [
        ("GATEHOUSE_DATABASE_URL", fresh_postgres_url(&db)),
        ("GATEHOUSE_REDIS_URL", redis),
        (
            "GATEHOUSE_REDIS_KEY_PREFIX",
            format!("gh-test:{}:", uuid::Uuid::new_v4().simple()),
        ),
        ("GATEHOUSE_MASTER_KEY", key),
        ("GATEHOUSE_ISSUER", issuer.clone()),
        ("GATEHOUSE_ARGON2_MEMORY_KIB", "64".into()),
        ("GATEHOUSE_ARGON2_ITERATIONS", "1".into()),
    ];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut a, _, base_a) = serve_with(instance(&dir_a, &shared));
    let (mut b, _, base_b) = serve_with(instance(&dir_b, &shared));

    let mut create = instance(&dir_b, &shared);
    let mut user = create
        .args(["user", "create", "--username", "alice"])
        .args(["--email", "alice@example.org", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(user.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    assert!(user.wait().unwrap().success());
    let out = instance(&dir_b, &shared)
        .args(["client", "create", "--name", "Ward app", "--json"])
        .args(["--redirect-uri", crate::oidc::REDIRECT])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let client: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let client_id = client["client_id"].as_str().unwrap();
    let secret = client["client_secret"].as_str().unwrap();

    // The browser starts on A: authorization request, then the sign-in page.
    let browser = crate::helpers::client();
    let mut authorize = url::Url::parse(&format!("{base_a}/authorize")).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", crate::oidc::REDIRECT)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid")
        .append_pair("state", "st-killed")
        .append_pair("nonce", "n-killed");
    let res = browser.get(authorize).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let login = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(login.starts_with("/login?tx="), "{login}");
    let page = browser
        .get(format!("{base_a}{login}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();

    // A dies without a chance to hand anything over.
    a.kill().unwrap();
    a.wait().unwrap();
    assert!(
        browser
            .get(format!("{base_a}/healthz"))
            .send()
            .await
            .is_err()
    );

    // The same browser (same cookies) posts the form to B.
    let res = browser
        .post(format!("{base_b}/login"))
        .header("Origin", &issuer)
        .form(&[
            ("tx", hidden(&html, "tx").as_str()),
            ("csrf", &hidden(&html, "csrf")),
            ("username", "alice"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "B finished the sign-in A started");
    let back = url::Url::parse(&crate::oidc::continue_link(&res.text().await.unwrap())).unwrap();
    assert!(back.as_str().starts_with(crate::oidc::REDIRECT), "{back}");
    let query: BTreeMap<_, _> = back.query_pairs().into_owned().collect();
    assert_eq!(query.get("state").map(String::as_str), Some("st-killed"));
    let code = query.get("code").expect("an authorization code");

    // And B redeems the code for tokens.
    let res = crate::oidc::rp_http()
        .post(format!("{base_b}/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", crate::oidc::REDIRECT),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let tokens: serde_json::Value = res.json().await.unwrap();
    assert!(tokens["id_token"].is_string(), "{tokens}");

    crate::cli::terminate(&mut b);
}

/// How long a request may take while a dependency stalls: the configured deadline
/// (`database_timeout_secs` + 1 s, or `redis_timeout_secs`), plus room for a slow
/// test machine. Without the bounds, requests waited as long as the stall.
const STALL_BOUND: Duration = Duration::from_secs(6);
/// How long each stall lasts: well past every deadline.
const STALL: Duration = Duration::from_secs(8);

/// A sign-in while a dependency stalls: 503 with `Retry-After`, within `STALL_BOUND`.
async fn refused_in_time(app: &TestApp) {
    let started = std::time::Instant::now();
    let (steps, _, res) = submit_password(&app.new_client(), &app.base, "alice", PASSWORD)
        .await
        .unwrap();
    let status = res
        .as_ref()
        .map_or(*steps.last().unwrap(), |r| r.status().as_u16());
    assert_eq!(status, 503, "{steps:?}");
    if let Some(res) = res {
        assert!(res.headers().contains_key("retry-after"));
    }
    assert!(
        started.elapsed() < STALL_BOUND * 3,
        "three requests took {:?}",
        started.elapsed()
    );
}

/// After the stall: the time until a sign-in of the load succeeds again, and no request
/// of any phase got a 5xx other than 503, no answer, or waited past `STALL_BOUND`.
async fn recovered(load: Load, phase: &str) -> Duration {
    let resumed = std::time::Instant::now();
    assert!(
        eventually(Duration::from_secs(30), || async {
            load.successes(phase) >= 1
        })
        .await,
        "sign-ins did not recover: {:?}",
        load.seen.lock().unwrap()
    );
    let recovery = resumed.elapsed();
    let seen = load.finish().await;
    assert!(seen.server_errors().is_empty(), "{seen:?}");
    assert!(seen.no_answer.is_empty(), "{seen:?}");
    assert!(
        seen.slowest.values().all(|d| *d < STALL_BOUND),
        "a request waited as long as the stall: {seen:?}"
    );
    assert!(seen.count("stalled", |s| s == 503) > 0, "{seen:?}");
    recovery
}

/// Issue 23 item 3: PostgreSQL stalls (the relay stops forwarding; connections stay
/// open, nothing is answered). Every request is answered within the deadline — 503 with
/// `Retry-After` — never held for the length of the stall, and sign-ins come back by
/// themselves once it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_postgres_answers_503_within_the_deadline_then_recovers() {
    let Some(base) = test_database_url() else {
        return skip(
            "a_stalled_postgres_answers_503_within_the_deadline_then_recovers",
            "GATEHOUSE_TEST_DATABASE_URL not set",
        );
    };
    let (proxy, _, through_proxy) = proxied_database(&base).await;
    let app = spawn_app_with(|c| {
        under_load(c);
        c.database_url = Some(through_proxy.clone());
        c.database_timeout_secs = 2;
    })
    .await;
    create_user(&app, "alice", PASSWORD, false).await;
    let load = Load::running(&app, "alice").await;

    load.phase("stalled");
    let stalled_at = std::time::Instant::now();
    proxy.stall();
    refused_in_time(&app).await;
    tokio::time::sleep(STALL.saturating_sub(stalled_at.elapsed())).await;
    load.phase("resumed");
    proxy.resume();
    let recovery = recovered(load, "resumed").await;
    eprintln!("postgres stalled {STALL:?}: sign-ins back {recovery:?} after it ended");
}

/// Issue 23 item 3: Redis frozen (SIGSTOP: connections open, nothing answered). Requests
/// are answered 503 within the Redis timeout, and come back once it is thawed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_redis_answers_503_within_the_deadline_then_recovers() {
    if test_redis_url().is_none() || !std::path::Path::new(OwnRedis::BINARY).exists() {
        return skip(
            "a_frozen_redis_answers_503_within_the_deadline_then_recovers",
            "GATEHOUSE_TEST_REDIS_URL not set, or no /usr/bin/redis-server",
        );
    }
    let redis = OwnRedis::start(free_port()).await;
    let url = redis.url();
    let app = spawn_app_with(|c| {
        under_load(c);
        c.redis_url = Some(url.parse().unwrap());
        c.redis_timeout_secs = 1;
    })
    .await;
    create_user(&app, "alice", PASSWORD, false).await;
    let load = Load::running(&app, "alice").await;

    load.phase("stalled");
    let stalled_at = std::time::Instant::now();
    redis.signal("STOP");
    refused_in_time(&app).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            readyz(&app).await == 503
        })
        .await,
        "/readyz still ready with Redis frozen"
    );
    tokio::time::sleep(STALL.saturating_sub(stalled_at.elapsed())).await;
    load.phase("resumed");
    redis.signal("CONT");
    let recovery = recovered(load, "resumed").await;
    assert_eq!(readyz(&app).await, 200);
    eprintln!("redis frozen {STALL:?}: sign-ins back {recovery:?} after it thawed");
}
