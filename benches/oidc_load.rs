//! OpenID Provider load benchmark (issue: OpenID Provider). Run with
//! `cargo bench --bench oidc_load`; needs `wrk` on the PATH (Debian: `apt-get install wrk`)
//! and `taskset` (util-linux). Uses PostgreSQL and Redis when
//! `GATEHOUSE_TEST_DATABASE_URL` / `GATEHOUSE_TEST_REDIS_URL` are set (as in
//! production), SQLite and memory otherwise.
//!
//! Two phases:
//! 1. Everything on all cores: raw RS256 signatures per second (the bound for the token
//!    endpoint: a client_credentials response carries one signature, a refresh response
//!    two), then requests/s and p99 measured by `wrk` for discovery, JWKS, userinfo,
//!    client_credentials and refresh. wrk, PostgreSQL and Redis share the cores with
//!    the server, so these numbers are a lower bound.
//! 2. A second server, started in a child process that may run on core 0 only (so it
//!    sizes its workers for one core, as on a machine of its own), with wrk on the
//!    other cores, as if the load generator and the database were on other machines:
//!    raw signatures on core 0, then the two token runs again. PostgreSQL and Redis are
//!    not pinned (they are the machine's services), so they can still take time from
//!    core 0.
//!
//! Each run also shows where the machine's CPU went per request: the server (this
//! process), wrk, and the rest (PostgreSQL, Redis, the kernel's own threads).

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use gatehouse::{
    crypto::signing::RsaSigner,
    oidc::clients::{ClientSpec, register},
};
use secrecy::ExposeSecret;
use serde_json::Value;

mod common;

use common::PASSWORD;
const REDIRECT: &str = "https://rp.example.org/callback";
const SECONDS: u32 = 10;

/// Seconds of CPU so far: this process (every thread; the server runs in it) and its
/// finished children (each wrk run), from `/proc/self/stat`.
fn process_cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name: utime, stime, cutime and cstime are
    // the 14th to 17th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Linux reports these in USER_HZ, which is 100 on every architecture it exposes.
    (
        (ticks(11) + ticks(12)) / 100.0,
        (ticks(13) + ticks(14)) / 100.0,
    )
}

/// Seconds of CPU the whole machine spent busy and idle so far (`/proc/stat`).
fn machine_cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let values: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    let at = |i: usize| values.get(i).copied().unwrap_or(0.0) / 100.0;
    // user nice system idle iowait irq softirq steal
    let idle = at(3) + at(4);
    let busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
    (busy, idle)
}

/// Where the machine's CPU went during one run.
#[derive(Clone, Copy)]
struct Cpu {
    server: f64,
    wrk: f64,
    busy: f64,
    idle: f64,
}

impl Cpu {
    fn now() -> Self {
        let ((server, wrk), (busy, idle)) = (process_cpu_seconds(), machine_cpu_seconds());
        Self {
            server,
            wrk,
            busy,
            idle,
        }
    }

    fn since(self, before: Self) -> Self {
        Self {
            server: self.server - before.server,
            wrk: self.wrk - before.wrk,
            busy: self.busy - before.busy,
            idle: self.idle - before.idle,
        }
    }
}

/// Signatures per second with one signing thread per core of `threads`, and the CPU
/// seconds one signature costs.
fn raw_signatures_per_second(threads: usize, seconds: u64) -> (f64, f64) {
    // The very signer the token endpoint uses.
    let der = openssl::rsa::Rsa::generate(2048)
        .unwrap()
        .private_key_to_der()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let cpu_before = process_cpu_seconds().0;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let der = der.clone();
            std::thread::spawn(move || {
                let signer = RsaSigner::from_pkcs1_der(&der, None).unwrap();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let message = format!("header.claims-{n}");
                    signer.sign_rs256(message.as_bytes()).unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let cpu = process_cpu_seconds().0 - cpu_before;
    (
        total as f64 / started.elapsed().as_secs_f64(),
        cpu / total as f64,
    )
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap() + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

/// One code flow through a signed-in browser; returns the token response.
async fn code_flow(browser: &reqwest::Client, base: &str, client_id: &str, secret: &str) -> Value {
    let authorize = format!(
        "{base}/authorize?client_id={client_id}&redirect_uri={}&response_type=code&scope=openid+profile&state=s",
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    );
    let res = browser.get(&authorize).send().await.unwrap();
    let mut location = res.headers()["location"].to_str().unwrap().to_owned();
    if location.starts_with("/login") {
        let html = browser
            .get(format!("{base}{location}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let page = browser
            .post(format!("{base}/login"))
            .header("Origin", base)
            .form(&[
                ("tx", hidden(&html, "tx").as_str()),
                ("csrf", &hidden(&html, "csrf")),
                ("username", "bench"),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let start = page.find("id=\"continue\" href=\"").unwrap() + 20;
        location = page[start..start + page[start..].find('"').unwrap()].replace("&amp;", "&");
    }
    let code = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    browser
        .post(format!("{base}/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

struct WrkResult {
    requests_per_sec: f64,
    p99: String,
    errors: String,
}

fn wrk(dir: &Path, run: &Run<'_>, cpus: Option<&str>) -> WrkResult {
    let mut cmd = match cpus {
        Some(cpus) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", cpus, "wrk"]);
            cmd
        }
        None => Command::new("wrk"),
    };
    cmd.args([
        format!("-t{}", run.threads),
        format!("-c{}", run.connections),
        format!("-d{SECONDS}s"),
        "--latency".into(),
    ]);
    if let Some(script) = run.script {
        let path = dir.join(format!("{}.lua", run.label));
        std::fs::write(&path, script).unwrap();
        cmd.arg("-s").arg(path);
    }
    let out = cmd
        .arg(run.url)
        .output()
        .expect("wrk runs (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let requests_per_sec = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("wrk output without Requests/sec:\n{text}"));
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| v.trim().to_owned())
        .unwrap_or_default();
    let errors = text
        .lines()
        .filter(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ");
    WrkResult {
        requests_per_sec,
        p99,
        errors,
    }
}

/// Set (to the cores wrk may use) in the child process that runs phase 2.
const PINNED_PHASE: &str = "OIDC_LOAD_PINNED_PHASE_WRK_CPUS";
/// The database pool size phase 1 chose, handed to the child of phase 2.
const POOL_SIZE: &str = "OIDC_LOAD_POOL_SIZE";

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks benchmarks to list themselves
    }
    if let Ok(wrk_cpus) = std::env::var(PINNED_PHASE) {
        let pool = std::env::var(POOL_SIZE)
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(4);
        pinned_phase(&wrk_cpus, pool).await;
        return;
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!("== raw RS256 (RSA-2048) signatures on {cores} cores");
    let (raw, sign_cpu) = raw_signatures_per_second(cores, 5);
    println!(
        "raw signatures/s: {raw:.0} ({:.3} ms of CPU each)",
        sign_cpu * 1000.0
    );
    // Two connections per core: with the database on the same cores, every busy
    // connection is one more runnable backend, and a pool of 16 on 2 cores gave the
    // DB-bound endpoints a p99 of 100-500 ms for no more throughput (README).
    let pool = 2 * cores;
    let bench = Bench::start(pool).await;
    println!(
        "\n== server: release build, {}, {pool} database connections, HTTPS, \
         everything on all {cores} cores, {SECONDS} s per run",
        bench.backend
    );
    let (refresh_script, userinfo_script) = bench.refresh_script().await;
    let (cc_script, token_url) = (bench.cc_script(), bench.token_url());
    let discovery_url = format!("{}/.well-known/openid-configuration", bench.base);
    let jwks_url = format!("{}/jwks", bench.base);
    let userinfo_url = format!("{}/userinfo", bench.base);
    let runs = [
        Run::get("discovery", &discovery_url, None),
        Run::get("jwks", &jwks_url, None),
        Run::get("userinfo", &userinfo_url, Some(&userinfo_script)),
        Run::client_credentials(&token_url, &cc_script),
        Run::refresh(&token_url, &refresh_script),
    ];
    let measured = measure(bench.dir.path(), &runs, None);
    summarise(&measured, raw, sign_cpu, "all cores");

    if cores < 2 {
        return;
    }
    // Phase 2 runs in a fresh process started on core 0 alone, so the server sizes
    // itself (actix workers, tokio workers) for the one core it has, as it would on a
    // machine of its own.
    let status = Command::new("taskset")
        .args(["-c", "0"])
        .arg(std::env::current_exe().expect("the benchmark knows its own path"))
        .env(PINNED_PHASE, format!("1-{}", cores - 1))
        .env(POOL_SIZE, pool.to_string())
        .status()
        .expect("taskset runs (util-linux)");
    assert!(status.success(), "the pinned phase failed");
}

/// Phase 2, in a process pinned to core 0: the server alone there, wrk on `wrk_cpus`,
/// as it would be with the load generator and PostgreSQL on other machines; the bound
/// is then what that one core can sign.
async fn pinned_phase(wrk_cpus: &str, pool: usize) {
    let (raw, sign_cpu) = raw_signatures_per_second(1, 5);
    let bench = Bench::start(pool).await;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "\n== server started on core 0 alone ({workers} worker), {}, {pool} database \
         connections; wrk on cores {wrk_cpus}; PostgreSQL and Redis unpinned\n\
         raw signatures/s on core 0: {raw:.0} ({:.3} ms of CPU each)",
        bench.backend,
        sign_cpu * 1000.0
    );
    let (refresh_script, _) = bench.refresh_script().await;
    let (cc_script, token_url) = (bench.cc_script(), bench.token_url());
    let runs = [
        Run::client_credentials(&token_url, &cc_script),
        Run::refresh(&token_url, &refresh_script),
    ];
    let measured = measure(bench.dir.path(), &runs, Some(wrk_cpus));
    summarise(&measured, raw, sign_cpu, "core 0");
}

/// A running server with a user, a web client (code flow, refresh) and a service
/// client (client_credentials).
struct Bench {
    dir: tempfile::TempDir,
    backend: &'static str,
    base: String,
    web_id: String,
    web_secret: String,
    service_basic: String,
}

impl Bench {
    async fn start(pool: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = common::config(dir.path());
        config.database_pool_size = u32::try_from(pool).unwrap_or(4);
        config.access_token_secs = 3600;
        let backend = match (
            std::env::var("GATEHOUSE_TEST_DATABASE_URL")
                .ok()
                .filter(|s| !s.is_empty()),
            std::env::var("GATEHOUSE_TEST_REDIS_URL")
                .ok()
                .filter(|s| !s.is_empty()),
        ) {
            (Some(db), Some(redis)) => {
                use diesel::{Connection, RunQueryDsl};
                let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
                let mut conn = diesel::PgConnection::establish(&db).unwrap();
                diesel::sql_query(format!("CREATE SCHEMA {schema}"))
                    .execute(&mut conn)
                    .unwrap();
                let sep = if db.contains('?') { '&' } else { '?' };
                config.database_url = Some(
                    url::Url::parse(&format!("{db}{sep}options=-csearch_path%3D{schema}")).unwrap(),
                );
                config.redis_url = Some(url::Url::parse(&redis).unwrap());
                config.redis_key_prefix = format!("bench:{}:", uuid::Uuid::new_v4().simple());
                config.master_key = Some(STANDARD.encode([7u8; 32]).into());
                "PostgreSQL + Redis"
            }
            _ => "SQLite + memory",
        };
        let (state, base) = common::serve(config, None).await;
        let secret = |c: &gatehouse::oidc::clients::Registered| {
            c.client_secret.as_ref().unwrap().expose_secret().to_owned()
        };
        let web = register(
            &state.store,
            ClientSpec::new("Bench web", &[REDIRECT]),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
        let service = register(
            &state.store,
            ClientSpec {
                grant_types: vec!["client_credentials".into()],
                scopes: vec!["profile".into()],
                ..ClientSpec::new("Bench service", &[])
            },
            chrono::Utc::now(),
        )
        .await
        .unwrap();
        Self {
            dir,
            backend,
            base,
            web_secret: secret(&web),
            web_id: web.client_id,
            service_basic: basic(&service.client_id, &secret(&service)),
        }
    }

    fn token_url(&self) -> String {
        format!("{}/token", self.base)
    }

    fn cc_script(&self) -> String {
        format!(
            "wrk.method = \"POST\"\nwrk.body = \"grant_type=client_credentials&scope=profile\"\n\
             wrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"\n\
             wrk.headers[\"Authorization\"] = \"Basic {}\"\n",
            self.service_basic
        )
    }

    /// A wrk script that refreshes with its own grant on each connection (rotation makes
    /// each refresh token single use, so every connection keeps its own chain), and a
    /// userinfo script with one of the access tokens issued on the way.
    async fn refresh_script(&self) -> (String, String) {
        let browser = client();
        let mut refresh_tokens = Vec::new();
        let mut access_token = String::new();
        for _ in 0..REFRESH_CONNECTIONS {
            let tokens = code_flow(&browser, &self.base, &self.web_id, &self.web_secret).await;
            access_token = tokens["access_token"].as_str().unwrap().to_owned();
            refresh_tokens.push(tokens["refresh_token"].as_str().unwrap().to_owned());
        }
        let token_list = refresh_tokens
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let basic = basic(&self.web_id, &self.web_secret);
        let script = format!(
            r#"local tokens = {{ {token_list} }}
local next_index = 1
function setup(thread)
  thread:set("token", tokens[next_index])
  next_index = next_index + 1
end
request = function()
  return wrk.format("POST", "/token", {{
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = "Basic {basic}",
  }}, "grant_type=refresh_token&refresh_token=" .. token)
end
response = function(status, headers, body)
  local t = body:match('"refresh_token":"([^"]+)"')
  if t then token = t end
end
"#
        );
        let userinfo = format!("wrk.headers[\"Authorization\"] = \"Bearer {access_token}\"\n");
        (script, userinfo)
    }
}

fn basic(id: &str, secret: &str) -> String {
    STANDARD.encode(format!("{id}:{secret}"))
}

const REFRESH_CONNECTIONS: u32 = 16;

/// One wrk run.
struct Run<'a> {
    label: &'static str,
    url: &'a str,
    threads: u32,
    connections: u32,
    script: Option<&'a str>,
}

impl<'a> Run<'a> {
    fn get(label: &'static str, url: &'a str, script: Option<&'a str>) -> Self {
        Self {
            label,
            url,
            threads: 2,
            connections: 32,
            script,
        }
    }

    fn client_credentials(url: &'a str, script: &'a str) -> Self {
        Self::get("client_credentials", url, Some(script))
    }

    /// One connection per wrk thread: a refresh chain must not have two requests in
    /// flight.
    fn refresh(url: &'a str, script: &'a str) -> Self {
        Self {
            label: "refresh",
            url,
            threads: REFRESH_CONNECTIONS,
            connections: REFRESH_CONNECTIONS,
            script: Some(script),
        }
    }
}

/// Runs each of `runs` (wrk pinned to `wrk_cpus` if given) and prints a line per run:
/// throughput, p99, and the machine's CPU per request split into the server, wrk and
/// the rest (PostgreSQL, Redis, the kernel's own threads), with the idle share.
fn measure(dir: &Path, runs: &[Run<'_>], wrk_cpus: Option<&str>) -> Vec<(&'static str, f64, f64)> {
    println!(
        "{:<20} {:>11} {:>9}   CPU ms/request: {:>6} {:>6} {:>6}  {:>5}  errors",
        "endpoint", "requests/s", "p99", "server", "wrk", "rest", "idle"
    );
    let mut measured = Vec::new();
    for run in runs {
        let before = Cpu::now();
        let r = wrk(dir, run, wrk_cpus);
        let cpu = Cpu::now().since(before);
        let requests = (r.requests_per_sec * f64::from(SECONDS)).max(1.0);
        let per = |seconds: f64| 1000.0 * seconds / requests;
        println!(
            "{:<20} {:>11.0} {:>9}   {:>21.3} {:>6.3} {:>6.3}  {:>4.0}%  {}",
            run.label,
            r.requests_per_sec,
            r.p99,
            per(cpu.server),
            per(cpu.wrk),
            per((cpu.busy - cpu.server - cpu.wrk).max(0.0)),
            100.0 * cpu.idle / (cpu.busy + cpu.idle).max(f64::MIN_POSITIVE),
            if r.errors.is_empty() {
                "none"
            } else {
                &r.errors
            }
        );
        measured.push((run.label, r.requests_per_sec, cpu.server / requests));
    }
    measured
}

/// The token endpoint against its signing bound `raw` (signatures/s on `cores`).
fn summarise(measured: &[(&str, f64, f64)], raw: f64, sign_cpu: f64, cores: &str) {
    let find = |label: &str| measured.iter().find(|m| m.0 == label).copied();
    if let Some((_, cc, cc_cpu)) = find("client_credentials") {
        println!(
            "client_credentials, one signature per response: {:.0} % of the raw bound on {cores} \
             ({raw:.0}/s); the signature is {:.0} % of the server's CPU per request",
            100.0 * cc / raw,
            100.0 * sign_cpu / cc_cpu
        );
    }
    if let Some((_, refresh, refresh_cpu)) = find("refresh") {
        println!(
            "refresh, two signatures per response (access + ID token): {:.0} % of the raw bound \
             on {cores} ({:.0}/s); the signatures are {:.0} % of the server's CPU per request",
            100.0 * refresh / (raw / 2.0),
            raw / 2.0,
            100.0 * 2.0 * sign_cpu / refresh_cpu
        );
    }
}
