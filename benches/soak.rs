//! Soak benchmark (issue 32). Run with `cargo bench --bench soak`; needs
//! `GATEHOUSE_TEST_DATABASE_URL` (PostgreSQL: a fresh schema is made there) and
//! `redis-server` on the PATH (a Redis of its own, so its client count is Gatehouse's).
//! `BENCH_SOAK_MINUTES` shortens it (default 30).
//!
//! It starts the real `gatehouse serve` (release build, default argon2, audit and lockout
//! on, logs at `info` into `target/tmp/soak-server.log`) and keeps a mixed load on it:
//! new browsers signing in through the OIDC code flow, refreshes, userinfo, and SAML
//! SP-initiated SSO from signed-in browsers. Every minute it prints the server's RSS,
//! open file descriptors and threads, its PostgreSQL and Redis connections, and each
//! operation's rate and p99; at the end, the growth after the warm-up (the first two
//! minutes) and the p99 of the first five minutes against the last five.

use std::{
    collections::{BTreeMap, VecDeque},
    io::{BufRead, BufReader, Write},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{SecondsFormat, Utc};
use diesel::{Connection, PgConnection, RunQueryDsl};
use gatehouse::crypto::MasterKey;
use secrecy::ExposeSecret;

// The in-process server and the raw bound are not needed here: only the password and
// percentiles.
#[allow(dead_code)]
mod common;
#[path = "common/hashing.rs"]
#[allow(dead_code)]
mod hashing;

use common::PASSWORD;
use hashing::percentile;

const USERS: usize = 20;
const REDIRECT: &str = "https://rp.example.org/callback";
const ACS: &str = "https://sp.example.org/acs";
const SP: &str = "https://sp.example.org/metadata";
const APPLICATION: &str = "gatehouse-soak";
const LOG: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/soak-server.log");

/// The operations of the mix: (name, workers, pause after each).
const MIX: [(&str, usize, Duration); 4] = [
    ("sign-in", 2, Duration::from_millis(400)),
    ("refresh", 4, Duration::from_millis(50)),
    ("userinfo", 4, Duration::from_millis(10)),
    ("saml", 2, Duration::from_millis(40)),
];

/// Latencies and failures per operation since the last sample.
#[derive(Default)]
struct Tally {
    took: BTreeMap<&'static str, Vec<Duration>>,
    failed: BTreeMap<&'static str, u64>,
}

/// Refresh and access tokens in circulation: a refresh takes one out and puts its
/// successor back.
type Grants = Arc<Mutex<VecDeque<(String, String)>>>;

struct Server {
    base: String,
    client_id: String,
    client_secret: String,
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks benchmarks to list themselves
    }
    let Some(database) = std::env::var("GATEHOUSE_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())
    else {
        println!("soak skipped: set GATEHOUSE_TEST_DATABASE_URL (PostgreSQL)");
        return;
    };
    let minutes: u64 = std::env::var("BENCH_SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(30);
    let data = tempfile::tempdir().unwrap();
    let mut children = Reaper(Vec::new());
    let redis_port = free_port();
    let redis_url = format!("redis://127.0.0.1:{redis_port}");
    children.0.push(
        Command::new("redis-server")
            .args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on PATH"),
    );
    let schema = format!("soak_{}", uuid::Uuid::new_v4().simple());
    let mut pg = PgConnection::establish(&database).expect("PostgreSQL reachable");
    diesel::sql_query(format!("CREATE SCHEMA {schema}"))
        .execute(&mut pg)
        .unwrap();
    let sep = if database.contains('?') { '&' } else { '?' };
    let port = free_port();
    let env = vec![
        ("GATEHOUSE_DATA_DIR", data.path().display().to_string()),
        ("GATEHOUSE_BIND", format!("127.0.0.1:{port}")),
        ("GATEHOUSE_ISSUER", format!("https://127.0.0.1:{port}")),
        (
            "GATEHOUSE_DATABASE_URL",
            format!(
                "{database}{sep}options=-csearch_path%3D{schema}&application_name={APPLICATION}"
            ),
        ),
        ("GATEHOUSE_REDIS_URL", redis_url.clone()),
        (
            "GATEHOUSE_MASTER_KEY",
            MasterKey::generate().to_base64().expose_secret().to_owned(),
        ),
        // One load generator is one client address.
        ("GATEHOUSE_RATE_LIMIT_PER_MINUTE", "1000000".into()),
        ("GATEHOUSE_RATE_LIMIT_BURST", "100000".into()),
    ];
    let server = start(&env, data.path(), &mut children);
    let pid = children.0.last().unwrap().id();
    println!(
        "soak: {minutes} min, PostgreSQL + Redis, server pid {pid}, logs in {LOG}\n\
         mix: {}",
        MIX.iter()
            .map(|(op, workers, pause)| format!("{op} ×{workers} (pause {pause:?})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let server = Arc::new(server);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let grants: Grants = Arc::default();
    // Enough grants in circulation before the refreshes start.
    for i in 0..8 {
        let (refresh, access) = oidc_sign_in(&server, &user(i)).await.unwrap();
        grants.lock().unwrap().push_back((refresh, access));
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60 * minutes);
    let mut workers = Vec::new();
    for (op, count, pause) in MIX {
        for w in 0..count {
            let (server, tally, grants) = (server.clone(), tally.clone(), grants.clone());
            workers.push(tokio::spawn(async move {
                let mut n = w;
                let browser = match op {
                    "saml" => Some(saml_browser(&server, &user(w)).await),
                    _ => None,
                };
                while Instant::now() < deadline {
                    n += count;
                    let t = Instant::now();
                    let ok = match op {
                        "sign-in" => match oidc_sign_in(&server, &user(n)).await {
                            Ok(grant) => {
                                let mut grants = grants.lock().unwrap();
                                grants.push_back(grant);
                                // Older grants are left to expire, as abandoned ones do.
                                while grants.len() > 64 {
                                    grants.pop_front();
                                }
                                true
                            }
                            Err(_) => false,
                        },
                        "refresh" => refresh(&server, &grants).await,
                        "userinfo" => userinfo(&server, &grants).await,
                        _ => match &browser {
                            Some(browser) => saml_sso(&server, browser).await,
                            None => false,
                        },
                    };
                    let took = t.elapsed();
                    {
                        let mut tally = tally.lock().unwrap();
                        if ok {
                            tally.took.entry(op).or_default().push(took);
                        } else {
                            *tally.failed.entry(op).or_default() += 1;
                        }
                    }
                    tokio::time::sleep(pause).await;
                }
            }));
        }
    }
    let samples = sample_every_minute(pid, &redis_url, &mut pg, &tally, minutes).await;
    for w in workers {
        w.await.unwrap();
    }
    summarise(&samples);
    diesel::sql_query(format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&mut pg)
        .ok();
}

fn user(i: usize) -> String {
    format!("soak-{}", i % USERS)
}

/// Starts `gatehouse serve` with `env`, creates the users, the OIDC client and the SAML
/// SP through its CLI, and waits until it serves.
fn start(env: &[(&str, String)], data: &std::path::Path, children: &mut Reaper) -> Server {
    let log = std::fs::File::create(LOG).expect("the benchmark's temporary directory");
    let mut server = gatehouse(env)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let stdout = server.stdout.take().unwrap();
    children.0.push(server);
    let base = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("Gatehouse listening on ").map(str::to_owned))
        .expect("the server started");
    for i in 0..USERS {
        let mut create = gatehouse(env)
            .args(["user", "create", "--username", &user(i)])
            .args(["--email", &format!("{}@example.org", user(i))])
            .arg("--password-stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        writeln!(create.stdin.take().unwrap(), "{PASSWORD}").unwrap();
        assert!(create.wait().unwrap().success(), "user create");
    }
    let out = gatehouse(env)
        .args([
            "client",
            "create",
            "--name",
            "Soak web",
            "--redirect-uri",
            REDIRECT,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "client create");
    let out = String::from_utf8(out.stdout).unwrap();
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} in {out}"))
    };
    let (client_id, client_secret) = (field("client_id:"), field("client_secret:"));
    let metadata = data.join("sp.xml");
    std::fs::write(
        &metadata,
        format!(
            r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{SP}"><md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{ACS}" index="0"/></md:SPSSODescriptor></md:EntityDescriptor>"#
        ),
    )
    .unwrap();
    let status = gatehouse(env)
        .args(["sp", "import", "--metadata"])
        .arg(&metadata)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "sp import");
    Server {
        base,
        client_id,
        client_secret,
    }
}

/// The server binary: `cargo bench` builds it in release; `BENCH_GATEHOUSE_BIN` names
/// another.
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Reaper(Vec<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for child in self.0.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    Some(html[start..start + html[start..].find('"')?].to_owned())
}

/// The sign-in page at `location`, then the password; the page the password gets.
async fn sign_in(
    browser: &reqwest::Client,
    base: &str,
    location: &str,
    user: &str,
) -> Option<String> {
    let url = match location.strip_prefix('/') {
        Some(_) => format!("{base}{location}"),
        None => location.to_owned(),
    };
    let page = browser.get(url).send().await.ok()?.text().await.ok()?;
    let res = browser
        .post(format!("{base}/login"))
        .header("Origin", base)
        .form(&[
            ("tx", hidden(&page, "tx")?.as_str()),
            ("csrf", &hidden(&page, "csrf")?),
            ("username", user),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .ok()?;
    if !res.status().is_success() && !res.status().is_redirection() {
        return None;
    }
    res.text().await.ok()
}

/// A new browser through the code flow: its (refresh token, access token).
async fn oidc_sign_in(server: &Server, user: &str) -> Result<(String, String), ()> {
    let browser = browser();
    let base = &server.base;
    let authorize = format!(
        "{base}/authorize?client_id={}&redirect_uri={}&response_type=code\
         &scope=openid+offline_access&state=s&nonce=n",
        server.client_id,
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    );
    let res = browser.get(authorize).send().await.map_err(drop)?;
    let location = res
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .ok_or(())?
        .to_owned();
    let page = sign_in(&browser, base, &location, user).await.ok_or(())?;
    let start = page.find("id=\"continue\" href=\"").ok_or(())? + 20;
    let back = page[start..start + page[start..].find('"').ok_or(())?].replace("&amp;", "&");
    let code = url::Url::parse(&back)
        .map_err(drop)?
        .query_pairs()
        .find(|(k, _)| k == "code")
        .ok_or(())?
        .1
        .into_owned();
    let tokens: serde_json::Value = browser
        .post(format!("{base}/token"))
        .basic_auth(&server.client_id, Some(&server.client_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .map_err(drop)?
        .json()
        .await
        .map_err(drop)?;
    Ok((
        tokens["refresh_token"].as_str().ok_or(())?.to_owned(),
        tokens["access_token"].as_str().ok_or(())?.to_owned(),
    ))
}

thread_local! {
    /// Each worker thread's connection pool to the server, for the token endpoint and
    /// userinfo (a relying party keeps its connections).
    static RP: reqwest::Client = browser();
}

async fn refresh(server: &Server, grants: &Grants) -> bool {
    let Some((refresh_token, _)) = grants.lock().unwrap().pop_front() else {
        return true; // nothing to refresh yet
    };
    let res = RP
        .with(Clone::clone)
        .post(format!("{}/token", server.base))
        .basic_auth(&server.client_id, Some(&server.client_secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.as_str()),
        ])
        .send()
        .await;
    let tokens: serde_json::Value = match res.and_then(|r| r.error_for_status()) {
        Ok(res) => match res.json().await {
            Ok(tokens) => tokens,
            Err(_) => return false,
        },
        Err(_) => return false,
    };
    match (
        tokens["refresh_token"].as_str(),
        tokens["access_token"].as_str(),
    ) {
        (Some(r), Some(a)) => {
            grants
                .lock()
                .unwrap()
                .push_back((r.to_owned(), a.to_owned()));
            true
        }
        _ => false,
    }
}

async fn userinfo(server: &Server, grants: &Grants) -> bool {
    let Some(access) = grants.lock().unwrap().back().map(|g| g.1.clone()) else {
        return true;
    };
    RP.with(Clone::clone)
        .get(format!("{}/userinfo", server.base))
        .bearer_auth(access)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// A browser signed in to the IdP, for SSO from an SP.
async fn saml_browser(server: &Server, user: &str) -> reqwest::Client {
    let browser = browser();
    let res = browser
        .get(format!("{}/login", server.base))
        .send()
        .await
        .unwrap();
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    sign_in(&browser, &server.base, &location, user)
        .await
        .expect("the SAML browser signs in");
    browser
}

/// SP-initiated SSO from a signed-in browser: the AuthnRequest gets the Response page.
async fn saml_sso(server: &Server, browser: &reqwest::Client) -> bool {
    let base = &server.base;
    let xml = format!(
        r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_{}" Version="2.0" IssueInstant="{}" Destination="{base}/saml/sso" AssertionConsumerServiceURL="{ACS}"><saml:Issuer>{SP}</saml:Issuer></samlp:AuthnRequest>"#,
        uuid::Uuid::new_v4().simple(),
        Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
    );
    let query = url::form_urlencoded::byte_serialize(
        STANDARD
            .encode(gatehouse::saml::xml::deflate(xml.as_bytes()))
            .as_bytes(),
    )
    .collect::<String>();
    match browser
        .get(format!("{base}/saml/sso?SAMLRequest={query}"))
        .send()
        .await
    {
        Ok(res) if res.status().is_success() => res
            .text()
            .await
            .is_ok_and(|page| page.contains("SAMLResponse")),
        _ => false,
    }
}

/// One minute's look at the server.
struct Sample {
    rss_kib: u64,
    fds: usize,
    threads: u64,
    pg: i64,
    redis: u64,
    /// Per operation: requests, p99, failures.
    ops: BTreeMap<&'static str, (usize, Duration, u64)>,
}

async fn sample_every_minute(
    pid: u32,
    redis_url: &str,
    pg: &mut PgConnection,
    tally: &Mutex<Tally>,
    minutes: u64,
) -> Vec<Sample> {
    let redis = redis::Client::open(redis_url).unwrap();
    let mut redis = redis.get_multiplexed_async_connection().await.unwrap();
    print!(
        "{:>3} {:>8} {:>5} {:>7} {:>3} {:>5}",
        "min", "RSS MiB", "fds", "threads", "pg", "redis"
    );
    for (op, _, _) in MIX {
        print!("  {op:>20}");
    }
    println!(
        "\n{:>36}{}",
        "",
        "  requests/s p99 ms failed".repeat(MIX.len())
    );
    let mut samples = Vec::new();
    let mut every = tokio::time::interval(Duration::from_secs(60));
    every.tick().await;
    for minute in 1..=minutes {
        every.tick().await;
        let Tally { took, failed } = std::mem::take(&mut *tally.lock().unwrap());
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let info: String = redis::cmd("INFO")
            .arg("clients")
            .query_async(&mut redis)
            .await
            .unwrap_or_default();
        // Ours is one of them.
        let redis_clients = info
            .lines()
            .find_map(|l| l.strip_prefix("connected_clients:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(1)
            - 1;
        let sample = Sample {
            rss_kib: field("VmRSS:"),
            fds: std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count),
            threads: field("Threads:"),
            pg: pg_connections(pg),
            redis: redis_clients,
            ops: MIX
                .iter()
                .map(|(op, _, _)| {
                    let mut took = took.get(op).cloned().unwrap_or_default();
                    took.sort();
                    let failed = failed.get(op).copied().unwrap_or(0);
                    (*op, (took.len(), percentile(&took, 0.99), failed))
                })
                .collect(),
        };
        print!(
            "{minute:>3} {:>8.1} {:>5} {:>7} {:>3} {:>5}",
            sample.rss_kib as f64 / 1024.0,
            sample.fds,
            sample.threads,
            sample.pg,
            sample.redis
        );
        for (n, p99, failed) in MIX.iter().map(|(op, _, _)| &sample.ops[op]) {
            print!(
                "  {:>10.1} {:>6.1} {failed:>6}",
                *n as f64 / 60.0,
                p99.as_secs_f64() * 1000.0
            );
        }
        println!();
        samples.push(sample);
    }
    samples
}

/// The server's connections to PostgreSQL (they carry its application name).
fn pg_connections(pg: &mut PgConnection) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query(format!(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = '{APPLICATION}'"
    ))
    .get_result::<Count>(pg)
    .map_or(-1, |c| c.n)
}

/// Growth after the warm-up, and the p99 of the first five minutes against the last five.
fn summarise(samples: &[Sample]) {
    let Some(warm) = samples.get(1).or(samples.first()) else {
        return;
    };
    let last = samples.last().unwrap();
    let peak = samples.iter().skip(1).map(|s| s.rss_kib).max().unwrap_or(0);
    println!(
        "\nafter the warm-up (minute {}): RSS {:.1} MiB → {:.1} MiB at the end ({:+.1} %), \
         peak {:.1} MiB; fds {} → {}; threads {} → {}; PostgreSQL connections {} → {}; \
         Redis connections {} → {}",
        samples.len().min(2),
        warm.rss_kib as f64 / 1024.0,
        last.rss_kib as f64 / 1024.0,
        100.0 * (last.rss_kib as f64 / warm.rss_kib as f64 - 1.0),
        peak as f64 / 1024.0,
        warm.fds,
        last.fds,
        warm.threads,
        last.threads,
        warm.pg,
        last.pg,
        warm.redis,
        last.redis,
    );
    let window = 5.min(samples.len() / 2).max(1);
    for (op, _, _) in MIX {
        let p99s = |part: &[Sample]| {
            let mut v: Vec<Duration> = part.iter().map(|s| s.ops[op].1).collect();
            v.sort();
            percentile(&v, 0.5)
        };
        let (first, end) = (
            p99s(&samples[..window]),
            p99s(&samples[samples.len() - window..]),
        );
        let failed: u64 = samples.iter().map(|s| s.ops[op].2).sum();
        println!(
            "{op:<9} p99 (median of the minutes) first {window} min {:.1} ms, last {window} min \
             {:.1} ms; {failed} failed in all",
            first.as_secs_f64() * 1000.0,
            end.as_secs_f64() * 1000.0
        );
    }
}
