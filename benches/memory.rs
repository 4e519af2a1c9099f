//! Memory benchmark for capacity planning (README "Memory and capacity"). Run with
//! `cargo bench --bench memory` (release build; see `gatehouse()` for a quicker way). It starts the real `gatehouse serve`
//! binary with a Redis of its own and, when `GATEHOUSE_TEST_DATABASE_URL` is set, a fresh
//! PostgreSQL schema (else SQLite), signs in `SIGN_INS` times through HTTPS, each time
//! as a new browser, so every sign-in leaves one active SSO session, and prints:
//!
//! 1. the server's resident memory (VmRSS, and the peak VmHWM) after start and after
//!    the sign-ins;
//! 2. Redis `used_memory` before and after, per 10 000 sessions, with the keys left by kind.
//!
//! argon2 runs with `ARGON2_MEMORY_KIB`/`ARGON2_ITERATIONS` below, not the defaults (which
//! do ~14 sign-ins/s on two cores): hashing memory is per hashing worker and freed after
//! each hash, so it adds `workers × argon2_memory_kib` at peak, not per sign-in.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Write},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use diesel::{Connection, PgConnection, RunQueryDsl};
use gatehouse::crypto::MasterKey;
use secrecy::ExposeSecret;

/// `BENCH_SIGN_INS` overrides it for a quick trial.
const SIGN_INS: usize = 10_000;
const USERS: usize = 50;
const CONCURRENCY: usize = 8;
const ARGON2_MEMORY_KIB: &str = "1024";
const ARGON2_ITERATIONS: &str = "1";
const PASSWORD: &str = "Quiet-Harbour-42";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// (VmRSS, VmHWM) in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn fresh_database(data_dir: &std::path::Path) -> (String, &'static str) {
    match std::env::var("GATEHOUSE_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())
    {
        Some(base) => {
            let schema = format!("gh_mem_{}", uuid::Uuid::new_v4().simple());
            let mut conn = PgConnection::establish(&base).expect("PostgreSQL reachable");
            diesel::sql_query(format!("CREATE SCHEMA {schema}"))
                .execute(&mut conn)
                .unwrap();
            let sep = if base.contains('?') { '&' } else { '?' };
            (
                format!("{base}{sep}options=-csearch_path%3D{schema}"),
                "PostgreSQL",
            )
        }
        None => (
            format!("sqlite:{}", data_dir.join("gatehouse.db").display()),
            "SQLite",
        ),
    }
}

/// The server binary: `cargo bench` builds it in release; `BENCH_GATEHOUSE_BIN` names
/// another (e.g. `target/release/gatehouse` while the bench itself is built quickly with
/// `cargo test --bench memory`; the load generator's speed does not change the numbers).
fn gatehouse(env: &[(&str, String)]) -> Command {
    let binary = std::env::var("BENCH_GATEHOUSE_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_gatehouse").to_owned());
    let mut cmd = Command::new(binary);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

async fn redis_info(url: &str) -> (u64, BTreeMap<String, usize>) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await
        .unwrap();
    let used = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut kinds = BTreeMap::new();
    for key in keys {
        // gatehouse:<kind>:<id…>
        let kind = key.split(':').nth(1).unwrap_or("?").to_owned();
        *kinds.entry(kind).or_default() += 1;
    }
    (used, kinds)
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap() + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

/// One sign-in as a new browser; true when it ended signed in.
async fn sign_in(base: &str, username: &str) -> bool {
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let Ok(res) = client.get(format!("{base}/login")).send().await else {
        return false;
    };
    let Some(location) = res.headers().get("location").and_then(|l| l.to_str().ok()) else {
        return false;
    };
    let Ok(page) = client.get(format!("{base}{location}")).send().await else {
        return false;
    };
    let html = page.text().await.unwrap_or_default();
    let res = client
        .post(format!("{base}/login"))
        .header("Origin", base)
        .form(&[
            ("tx", hidden(&html, "tx").as_str()),
            ("csrf", &hidden(&html, "csrf")),
            ("username", username),
            ("password", PASSWORD),
        ])
        .send()
        .await;
    matches!(res, Ok(r) if r.status() == 303
        && r.headers().get("location").is_some_and(|l| l == "/account"))
}

struct Reaper(Vec<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::main]
async fn main() {
    let sign_ins: usize = std::env::var("BENCH_SIGN_INS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(SIGN_INS);
    let data = tempfile::tempdir().unwrap();
    let redis_port = free_port();
    let redis_url = format!("redis://127.0.0.1:{redis_port}");
    let redis = Command::new("redis-server")
        .args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server on PATH");
    let mut children = Reaper(vec![redis]);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (database_url, backend) = fresh_database(data.path());
    let port = free_port();
    let env = vec![
        ("GATEHOUSE_DATA_DIR", data.path().display().to_string()),
        ("GATEHOUSE_BIND", format!("127.0.0.1:{port}")),
        ("GATEHOUSE_DATABASE_URL", database_url),
        ("GATEHOUSE_REDIS_URL", redis_url.clone()),
        (
            "GATEHOUSE_MASTER_KEY",
            MasterKey::generate().to_base64().expose_secret().to_owned(),
        ),
        ("GATEHOUSE_ARGON2_MEMORY_KIB", ARGON2_MEMORY_KIB.into()),
        ("GATEHOUSE_ARGON2_ITERATIONS", ARGON2_ITERATIONS.into()),
        ("GATEHOUSE_RATE_LIMIT_PER_MINUTE", "1000000".into()),
        ("GATEHOUSE_RATE_LIMIT_BURST", "100000".into()),
        ("GATEHOUSE_LOG_LEVEL", "warn".into()),
    ];
    let mut server = gatehouse(&env)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = server.id();
    let stdout = server.stdout.take().unwrap();
    children.0.push(server);
    let base = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("Gatehouse listening on ").map(str::to_owned))
        .expect("server started");

    for i in 0..USERS {
        let mut create = gatehouse(&env)
            .args(["user", "create", "--username", &format!("bench-{i}")])
            .args([
                "--email",
                &format!("bench-{i}@example.org"),
                "--password-stdin",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        writeln!(create.stdin.take().unwrap(), "{PASSWORD}").unwrap();
        assert!(create.wait().unwrap().success());
    }
    // Warm up the process (pools, TLS, templates) before the baseline.
    for i in 0..20 {
        assert!(sign_in(&base, &format!("bench-{}", i % USERS)).await);
    }
    let (rss_start, _) = rss_kib(pid);
    let (redis_before, _) = redis_info(&redis_url).await;

    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (next, failed, base) = (next.clone(), failed.clone(), base.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= sign_ins {
                        return;
                    }
                    if !sign_in(&base, &format!("bench-{}", i % USERS)).await {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = started.elapsed();
    let failed = failed.load(Ordering::Relaxed);
    let (rss_end, rss_peak) = rss_kib(pid);
    let (redis_after, kinds) = redis_info(&redis_url).await;

    println!(
        "memory benchmark: {sign_ins} sign-ins, {USERS} users, {CONCURRENCY} concurrent browsers, {backend}"
    );
    println!(
        "  argon2id m={ARGON2_MEMORY_KIB} KiB t={ARGON2_ITERATIONS} p=1; {:.0} sign-ins/s; {failed} failed",
        sign_ins as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  gatehouse RSS: {:.1} MiB after start and warm-up, {:.1} MiB after {sign_ins} sign-ins (peak {:.1} MiB)",
        mib(rss_start),
        mib(rss_end),
        mib(rss_peak)
    );
    let delta = redis_after.saturating_sub(redis_before);
    println!(
        "  redis used_memory: {:.1} MiB before, {:.1} MiB after: {:.1} MiB per 10 000 sign-ins ({} bytes each)",
        redis_before as f64 / 1048576.0,
        redis_after as f64 / 1048576.0,
        delta as f64 / 1048576.0 * 10_000.0 / sign_ins as f64,
        delta / sign_ins as u64
    );
    println!("  redis keys by kind: {kinds:?}");
    assert_eq!(
        failed, 0,
        "every sign-in must succeed for the numbers to mean anything"
    );
}
