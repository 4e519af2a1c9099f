//! OpenID Provider load benchmark (issue 32, footprint and scale). Run with
//! `cargo bench --bench oidc_load`; needs `wrk` on the PATH (Debian: `apt-get install wrk`)
//! and `taskset` (util-linux), and for the peer `node` with `npm ci` done in
//! `tests/api/node_op`. Uses PostgreSQL and Redis when `GATEHOUSE_TEST_DATABASE_URL` /
//! `GATEHOUSE_TEST_REDIS_URL` are set (as in production), SQLite and memory otherwise.
//!
//! Both servers listen on plain HTTP, as behind a proxy that ends TLS: Gatehouse's issuer
//! is `https://`, its listener is not. Gatehouse logs as in production (JSON at `info`,
//! one access line per request) into `target/tmp/oidc_load-server.log`;
//! `GATEHOUSE_BENCH_LOG_LEVEL=error` turns the access log off. The peer is panva's
//! oidc-provider (`tests/api/node_op/load_peer.mjs`, one Node process) issuing RS256 JWT
//! access tokens to a client_credentials client.
//!
//! Two phases, each in a child process of its own:
//! 1. Everything on all cores: raw RS256 and ES256 signatures per second, then `wrk`
//!    against Gatehouse's `/healthz`, discovery, JWKS, userinfo, client_credentials with
//!    RS256 and with ES256 access tokens, and refresh; then the peer's discovery, JWKS
//!    and RS256 client_credentials. wrk, PostgreSQL and Redis share the cores.
//! 2. Gatehouse and the peer on core 0 only (so each sizes itself for one core, as on a
//!    machine of its own), wrk on the other cores: the token runs again. PostgreSQL and
//!    Redis are not pinned (they are the machine's services).
//!
//! Each run shows where the machine's CPU went per request: the server (Gatehouse is
//! this process, the peer its own), wrk, and the rest (PostgreSQL, Redis, the kernel).

use std::{
    fs::File,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use gatehouse::{
    crypto::signing::{EcSigner, RsaSigner},
    oidc::clients::{ClientSpec, register},
};
use secrecy::ExposeSecret;
use serde_json::Value;

#[path = "../common/mod.rs"]
mod common;
mod measure;
mod peer;

use common::PASSWORD;
use measure::{Measured, Run, client_credentials_script, measure, process_cpu_seconds};
use peer::Peer;

const REDIRECT: &str = "https://rp.example.org/callback";

/// Names the phase a child process runs: `shared`, or `pinned:<cores wrk may use>`.
const PHASE: &str = "OIDC_LOAD_PHASE";
/// The database pool size, handed to both phases.
const POOL_SIZE: &str = "OIDC_LOAD_POOL_SIZE";
/// Where both phases' server logs go.
const LOG: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/oidc_load-server.log");

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks benchmarks to list themselves
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    if let Ok(phase) = std::env::var(PHASE) {
        let pool = std::env::var(POOL_SIZE)
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(4);
        match phase.strip_prefix("pinned:") {
            Some(wrk_cpus) => pinned_phase(wrk_cpus, pool).await,
            None => shared_phase(cores, pool).await,
        }
        return;
    }
    // Two connections per core: with the database on the same cores, every busy
    // connection is one more runnable backend, and a pool of 16 on 2 cores gave the
    // DB-bound endpoints a p99 of 100-500 ms for no more throughput (README).
    let pool = 2 * cores;
    let log = File::create(LOG).expect("the benchmark's temporary directory is writable");
    let level = std::env::var(common::LOG_LEVEL_VAR).unwrap_or_else(|_| "info".into());
    println!("server logs ({level}): {LOG}");
    let phase = |name: String, pinned: bool| {
        let mut cmd = if pinned {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", "0"])
                .arg(std::env::current_exe().expect("the benchmark knows its own path"));
            cmd
        } else {
            Command::new(std::env::current_exe().expect("the benchmark knows its own path"))
        };
        let status = cmd
            .env(PHASE, name)
            .env(POOL_SIZE, pool.to_string())
            .env(common::LOG_LEVEL_VAR, &level)
            .stderr(Stdio::from(log.try_clone().unwrap()))
            .status()
            .expect("the phase starts");
        assert!(status.success(), "a phase failed (its log: {LOG})");
    };
    phase("shared".into(), false);
    if cores >= 2 {
        // A fresh process started on core 0 alone, so the server sizes itself (actix
        // workers, tokio workers) for the one core it has.
        phase(format!("pinned:1-{}", cores - 1), true);
    }
}

/// Phase 1: the servers, wrk, PostgreSQL and Redis all on every core.
async fn shared_phase(cores: usize, pool: usize) {
    println!("== raw signatures on all {cores} cores");
    let raw = raw_signatures(cores, "all cores");
    let bench = Bench::start(pool).await;
    println!(
        "\n== Gatehouse: release build, {}, {pool} database connections, plain HTTP, \
         log {}, everything on all {cores} cores, {} s per run",
        bench.backend,
        std::env::var(common::LOG_LEVEL_VAR).unwrap_or_default(),
        measure::SECONDS
    );
    let (refresh_script, userinfo_script) = bench.refresh_script().await;
    let token_url = bench.token_url();
    let (rs256_script, es256_script) = (
        client_credentials_script(&bench.rs256_basic),
        client_credentials_script(&bench.es256_basic),
    );
    let healthz_url = format!("{}/healthz", bench.base);
    let discovery_url = format!("{}/.well-known/openid-configuration", bench.base);
    let jwks_url = format!("{}/jwks", bench.base);
    let userinfo_url = format!("{}/userinfo", bench.base);
    let runs = [
        Run::get("healthz", &healthz_url, None),
        Run::get("discovery", &discovery_url, None),
        Run::get("jwks", &jwks_url, None),
        Run::get("userinfo", &userinfo_url, Some(&userinfo_script)),
        Run::get("client_credentials RS256", &token_url, Some(&rs256_script)),
        Run::get("client_credentials ES256", &token_url, Some(&es256_script)),
        refresh_run(&token_url, &refresh_script),
    ];
    let ours = measure(bench.dir.path(), &runs, None);
    summarise(&ours, &raw, "all cores");

    let peer = match Peer::start() {
        Ok(peer) => peer,
        Err(why) => {
            println!("\n== the peer (oidc-provider) is skipped: {why}");
            return;
        }
    };
    println!("\n== the peer: panva's oidc-provider, one Node process, plain HTTP");
    let (peer_discovery, peer_jwks, peer_token) = (
        format!("{}/.well-known/openid-configuration", peer.base),
        format!("{}/jwks", peer.base),
        format!("{}/token", peer.base),
    );
    let peer_script = client_credentials_script(&peer.basic());
    let runs = [
        Run::get("discovery", &peer_discovery, None).on(peer.pid),
        Run::get("jwks", &peer_jwks, None).on(peer.pid),
        Run::get("client_credentials RS256", &peer_token, Some(&peer_script)).on(peer.pid),
    ];
    let theirs = measure(bench.dir.path(), &runs, None);
    compare(&ours, &theirs, &raw);
}

/// Phase 2, in a process pinned to core 0: each server alone there, wrk on `wrk_cpus`,
/// as it would be with the load generator and PostgreSQL on other machines.
async fn pinned_phase(wrk_cpus: &str, pool: usize) {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "\n== core 0 alone ({workers} worker), wrk on cores {wrk_cpus}; PostgreSQL and \
         Redis unpinned"
    );
    let raw = raw_signatures(1, "core 0");
    let bench = Bench::start(pool).await;
    println!("Gatehouse, {}, {pool} database connections", bench.backend);
    let (refresh_script, _) = bench.refresh_script().await;
    let token_url = bench.token_url();
    let (rs256_script, es256_script) = (
        client_credentials_script(&bench.rs256_basic),
        client_credentials_script(&bench.es256_basic),
    );
    let runs = [
        Run::get("client_credentials RS256", &token_url, Some(&rs256_script)),
        Run::get("client_credentials ES256", &token_url, Some(&es256_script)),
        refresh_run(&token_url, &refresh_script),
    ];
    let ours = measure(bench.dir.path(), &runs, Some(wrk_cpus));
    summarise(&ours, &raw, "core 0");
    match Peer::start() {
        Ok(peer) => {
            println!("the peer (oidc-provider) on core 0");
            let (url, script) = (
                format!("{}/token", peer.base),
                client_credentials_script(&peer.basic()),
            );
            let runs = [Run::get("client_credentials RS256", &url, Some(&script)).on(peer.pid)];
            let theirs = measure(bench.dir.path(), &runs, Some(wrk_cpus));
            compare(&ours, &theirs, &raw);
        }
        Err(why) => println!("the peer (oidc-provider) is skipped: {why}"),
    }
}

/// One connection per wrk thread: a refresh chain must not have two requests in flight.
fn refresh_run<'a>(url: &'a str, script: &'a str) -> Run<'a> {
    Run {
        threads: REFRESH_CONNECTIONS,
        connections: REFRESH_CONNECTIONS,
        ..Run::get("refresh", url, Some(script))
    }
}

fn find(measured: &[Measured], label: &str) -> Option<Measured> {
    measured.iter().find(|m| m.label == label).copied()
}

/// The token endpoint against its signing bound, and what bounds the ES256 runs.
fn summarise(measured: &[Measured], raw: &Raw, cores: &str) {
    if let Some(cc) = find(measured, "client_credentials RS256") {
        println!(
            "client_credentials RS256, one signature per response: {:.0} % of the raw bound \
             on {cores} ({:.0}/s); the signature is {:.0} % of the server's CPU per request",
            100.0 * cc.requests_per_sec / raw.rs256.0,
            raw.rs256.0,
            100.0 * raw.rs256.1 / cc.server_cpu
        );
    }
    if let Some(cc) = find(measured, "client_credentials ES256") {
        println!(
            "client_credentials ES256: the signature is {:.0} % of the server's CPU per \
             request ({:.3} of {:.3} ms); the cores were {:.0} % idle",
            100.0 * raw.es256.1 / cc.server_cpu,
            raw.es256.1 * 1000.0,
            cc.server_cpu * 1000.0,
            100.0 * cc.idle
        );
    }
    if let Some(refresh) = find(measured, "refresh") {
        println!(
            "refresh, two RS256 signatures per response (access + ID token): {:.0} % of the \
             raw bound on {cores} ({:.0}/s); the signatures are {:.0} % of the server's CPU \
             per request",
            100.0 * refresh.requests_per_sec / (raw.rs256.0 / 2.0),
            raw.rs256.0 / 2.0,
            100.0 * 2.0 * raw.rs256.1 / refresh.server_cpu
        );
    }
}

/// Gatehouse against the peer in the same run.
fn compare(ours: &[Measured], theirs: &[Measured], raw: &Raw) {
    println!("-- Gatehouse against oidc-provider, server CPU per request:");
    let ratio = |our: &str, their: &str| {
        if let (Some(a), Some(b)) = (find(ours, our), find(theirs, their)) {
            println!(
                "   {our:<10} {:.3} ms against their {their} {:.3} ms: 1/{:.1}",
                a.server_cpu * 1000.0,
                b.server_cpu * 1000.0,
                b.server_cpu / a.server_cpu
            );
        }
    };
    ratio("discovery", "discovery");
    ratio("jwks", "jwks");
    // oidc-provider has no health endpoint: its cheapest is JWKS.
    ratio("healthz", "jwks");
    let label = "client_credentials RS256";
    if let (Some(a), Some(b)) = (find(ours, label), find(theirs, label)) {
        // Node signs with OpenSSL too: one RS256 signature costs it about what it costs us.
        println!(
            "   an RS256 token beyond its signature ({:.3} ms): {:.3} ms against their \
             {:.3} ms: 1/{:.1}",
            raw.rs256.1 * 1000.0,
            (a.server_cpu - raw.rs256.1) * 1000.0,
            (b.server_cpu - raw.rs256.1) * 1000.0,
            (b.server_cpu - raw.rs256.1) / (a.server_cpu - raw.rs256.1)
        );
        if let Some(es) = find(ours, "client_credentials ES256") {
            println!(
                "   client_credentials: Gatehouse ES256 {:.0}/s, RS256 {:.0}/s; \
                 oidc-provider RS256 {:.0}/s: ES256 is {:.1}x theirs",
                es.requests_per_sec,
                a.requests_per_sec,
                b.requests_per_sec,
                es.requests_per_sec / b.requests_per_sec
            );
        }
    }
}

/// An algorithm Gatehouse signs tokens with, for the raw signing runs.
#[derive(Clone, Copy)]
enum Alg {
    Rs256,
    Es256,
}

impl Alg {
    fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
        }
    }

    /// A fresh key's signing function: the very signers the token endpoint uses.
    fn signer(self) -> Sign {
        match self {
            Alg::Rs256 => {
                let der = openssl::rsa::Rsa::generate(2048)
                    .unwrap()
                    .private_key_to_der()
                    .unwrap();
                let signer = RsaSigner::from_pkcs1_der(&der, None).unwrap();
                Box::new(move |m| drop(signer.sign_rs256(m).unwrap()))
            }
            Alg::Es256 => {
                let group =
                    openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)
                        .unwrap();
                let key = openssl::ec::EcKey::generate(&group).unwrap();
                let scalar = key.private_key().to_vec_padded(32).unwrap();
                let signer = EcSigner::from_scalar(&scalar, "bench").unwrap();
                Box::new(move |m| drop(signer.sign_es256(m).unwrap()))
            }
        }
    }
}

/// Signs a message (and drops the signature).
type Sign = Box<dyn Fn(&[u8]) + Send>;

/// Raw signatures per second and CPU seconds per signature, per algorithm.
#[derive(Default, Clone, Copy)]
struct Raw {
    rs256: (f64, f64),
    es256: (f64, f64),
}

/// Signatures per second with `alg` and one signing thread per core of `threads`, and
/// the CPU seconds one signature costs.
fn raw_signatures_per_second(alg: Alg, threads: usize, seconds: u64) -> (f64, f64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let cpu_before = process_cpu_seconds().0;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let sign = alg.signer();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    sign(format!("header.claims-{n}").as_bytes());
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

/// Raw signatures of both algorithms on `threads` cores, printed.
fn raw_signatures(threads: usize, on: &str) -> Raw {
    let mut raw = Raw::default();
    for alg in [Alg::Rs256, Alg::Es256] {
        let (per_second, cpu) = raw_signatures_per_second(alg, threads, 5);
        println!(
            "raw {} signatures/s on {on}: {per_second:.0} ({:.3} ms of CPU each)",
            alg.name(),
            cpu * 1000.0
        );
        match alg {
            Alg::Rs256 => raw.rs256 = (per_second, cpu),
            Alg::Es256 => raw.es256 = (per_second, cpu),
        }
    }
    raw
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
            // The browser's origin is the issuer's: TLS ends at the proxy.
            .header("Origin", base.replacen("http://", "https://", 1))
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

/// A running server with a user, a web client (code flow, refresh) and a service
/// client (client_credentials).
struct Bench {
    dir: tempfile::TempDir,
    backend: &'static str,
    base: String,
    web_id: String,
    web_secret: String,
    /// HTTP Basic of the client_credentials clients: RS256 and ES256 access tokens.
    rs256_basic: String,
    es256_basic: String,
}

impl Bench {
    async fn start(pool: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = common::config(dir.path());
        config.tls = false;
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
        let mut service_basic = Vec::new();
        for alg in ["RS256", "ES256"] {
            let service = register(
                &state.store,
                ClientSpec {
                    grant_types: vec!["client_credentials".into()],
                    scopes: vec!["profile".into()],
                    access_token_alg: Some(alg.into()),
                    ..ClientSpec::new(&format!("Bench service {alg}"), &[])
                },
                chrono::Utc::now(),
            )
            .await
            .unwrap();
            service_basic.push(basic(&service.client_id, &secret(&service)));
        }
        let [rs256_basic, es256_basic] = <[String; 2]>::try_from(service_basic).unwrap();
        Self {
            dir,
            backend,
            base,
            web_secret: secret(&web),
            web_id: web.client_id,
            rs256_basic,
            es256_basic,
        }
    }

    fn token_url(&self) -> String {
        format!("{}/token", self.base)
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
