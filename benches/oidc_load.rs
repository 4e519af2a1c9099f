//! OpenID Provider load benchmark (issue: OpenID Provider). Run with
//! `cargo bench --bench oidc_load`; needs `wrk` on the PATH (Debian: `apt-get install wrk`).
//! Uses PostgreSQL and Redis when `GATEHOUSE_TEST_DATABASE_URL` / `GATEHOUSE_TEST_REDIS_URL`
//! are set (as in production), SQLite and memory otherwise.
//!
//! Prints raw RS256 signatures per second on all cores (the bound for the token
//! endpoint: a client_credentials response carries one signature, a refresh response
//! two), then requests/s and p99 measured by `wrk` for discovery, JWKS, userinfo,
//! client_credentials and refresh. `wrk` shares the machine with the server, so the
//! numbers are a lower bound.

use std::{
    path::Path,
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use gatehouse::{
    auth::account::{NewAccount, create_account},
    clock::SystemClock,
    config::Config,
    crypto::signing::RsaSigner,
    domain::{Email, OrgName, Password, Role, Username},
    oidc::clients::{ClientSpec, register},
    startup::Application,
};
use secrecy::ExposeSecret;
use serde_json::Value;

const PASSWORD: &str = "Quiet-Harbour-42";
const REDIRECT: &str = "https://rp.example.org/callback";
const SECONDS: u32 = 10;

/// CPU time of this whole process (every thread) so far, in seconds: the server runs
/// in it, so around a wrk run this is what the server spent.
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
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
    (ticks(11) + ticks(12)) / 100.0
}

/// Signatures per second on all cores, and the CPU seconds one signature costs.
fn raw_signatures_per_second(seconds: u64) -> (f64, f64) {
    // The very signer the token endpoint uses.
    let der = openssl::rsa::Rsa::generate(2048)
        .unwrap()
        .private_key_to_der()
        .unwrap();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let cpu_before = process_cpu_seconds();
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
    let cpu = process_cpu_seconds() - cpu_before;
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

fn wrk(
    dir: &Path,
    label: &str,
    url: &str,
    threads: u32,
    connections: u32,
    script: Option<&str>,
) -> WrkResult {
    let mut cmd = Command::new("wrk");
    cmd.args([
        format!("-t{threads}"),
        format!("-c{connections}"),
        format!("-d{SECONDS}s"),
        "--latency".into(),
    ]);
    if let Some(script) = script {
        let path = dir.join(format!("{label}.lua"));
        std::fs::write(&path, script).unwrap();
        cmd.arg("-s").arg(path);
    }
    let out = cmd
        .arg(url)
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

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks benchmarks to list themselves
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!("== raw RS256 (RSA-2048) signatures on {cores} cores");
    let (raw, sign_cpu) = raw_signatures_per_second(5);
    println!(
        "raw signatures/s: {raw:.0} ({:.3} ms of CPU each)",
        sign_cpu * 1000.0
    );

    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(dir.path().to_owned());
    config.log_level = "error".into();
    // Two connections per core: with the database on the same cores, every busy
    // connection is one more runnable backend, and a pool of 16 on 2 cores gave the
    // DB-bound endpoints a p99 of 100-500 ms for no more throughput (README).
    let pool = 2 * cores;
    config.database_pool_size = u32::try_from(pool).unwrap_or(4);
    config.rate_limit_per_minute = 1_000_000;
    config.rate_limit_burst = 1_000_000;
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
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    config.issuer = url::Url::parse(&format!("https://127.0.0.1:{port}")).unwrap();
    let app = Application::build_on(listener, config, Arc::new(SystemClock))
        .await
        .unwrap();
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    let base = format!("https://127.0.0.1:{port}");
    println!(
        "\n== server: release build, {backend}, {pool} database connections, HTTPS, wrk on the same machine, {SECONDS} s per run"
    );
    create_account(
        &state,
        NewAccount {
            org: OrgName::parse("default").unwrap(),
            username: Username::parse("bench").unwrap(),
            email: Email::parse("bench@example.org").unwrap(),
            display_name: None,
            role: Role::User,
            password: Password::parse(PASSWORD.into()).unwrap(),
            must_change_password: false,
        },
    )
    .await
    .unwrap();
    let web = register(
        &state.store,
        ClientSpec::new("Bench web", &[REDIRECT]),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    let web_secret = web
        .client_secret
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_owned();
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
    let service_secret = service
        .client_secret
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_owned();

    // One signed-in browser; one grant per refresh connection (rotation makes each
    // refresh token single use, so every wrk connection keeps its own chain).
    let refresh_connections = 16u32;
    let browser = client();
    let mut refresh_tokens = Vec::new();
    let mut access_token = String::new();
    for _ in 0..refresh_connections {
        let tokens = code_flow(&browser, &base, &web.client_id, &web_secret).await;
        access_token = tokens["access_token"].as_str().unwrap().to_owned();
        refresh_tokens.push(tokens["refresh_token"].as_str().unwrap().to_owned());
    }

    let basic = |id: &str, secret: &str| STANDARD.encode(format!("{id}:{secret}"));
    let userinfo_script = format!("wrk.headers[\"Authorization\"] = \"Bearer {access_token}\"\n");
    let cc_script = format!(
        "wrk.method = \"POST\"\nwrk.body = \"grant_type=client_credentials&scope=profile\"\n\
         wrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"\n\
         wrk.headers[\"Authorization\"] = \"Basic {}\"\n",
        basic(&service.client_id, &service_secret)
    );
    let token_list = refresh_tokens
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let refresh_script = format!(
        r#"local tokens = {{ {token_list} }}
local next_index = 1
function setup(thread)
  thread:set("token", tokens[next_index])
  next_index = next_index + 1
end
request = function()
  return wrk.format("POST", "/token", {{
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = "Basic {auth}",
  }}, "grant_type=refresh_token&refresh_token=" .. token)
end
response = function(status, headers, body)
  local t = body:match('"refresh_token":"([^"]+)"')
  if t then token = t end
end
"#,
        auth = basic(&web.client_id, &web_secret)
    );

    let runs: Vec<(&str, String, u32, u32, Option<&str>)> = vec![
        (
            "discovery",
            format!("{base}/.well-known/openid-configuration"),
            2,
            32,
            None,
        ),
        ("jwks", format!("{base}/jwks"), 2, 32, None),
        (
            "userinfo",
            format!("{base}/userinfo"),
            2,
            32,
            Some(&userinfo_script),
        ),
        (
            "client_credentials",
            format!("{base}/token"),
            2,
            32,
            Some(&cc_script),
        ),
        // One connection per wrk thread: a refresh chain must not have two requests in flight.
        (
            "refresh",
            format!("{base}/token"),
            refresh_connections,
            refresh_connections,
            Some(&refresh_script),
        ),
    ];
    println!(
        "{:<20} {:>12} {:>10} {:>16}  errors",
        "endpoint", "requests/s", "p99", "server CPU/req"
    );
    let mut measured = Vec::new();
    for (label, url, threads, connections, script) in runs {
        let cpu_before = process_cpu_seconds();
        let r = wrk(dir.path(), label, &url, threads, connections, script);
        let requests = r.requests_per_sec * f64::from(SECONDS);
        let cpu_per_request = (process_cpu_seconds() - cpu_before) / requests.max(1.0);
        println!(
            "{label:<20} {:>12.0} {:>10} {:>13.3} ms  {}",
            r.requests_per_sec,
            r.p99,
            cpu_per_request * 1000.0,
            if r.errors.is_empty() {
                "none"
            } else {
                &r.errors
            }
        );
        measured.push((label, r.requests_per_sec, cpu_per_request));
    }
    let find = |label: &str| *measured.iter().find(|m| m.0 == label).unwrap();
    let (_, cc, cc_cpu) = find("client_credentials");
    let (_, refresh, refresh_cpu) = find("refresh");
    println!(
        "\nclient_credentials: one signature per response: {:.0} % of the raw bound ({raw:.0}/s); \
         the signature is {:.0} % of the server's CPU per request",
        100.0 * cc / raw,
        100.0 * sign_cpu / cc_cpu
    );
    println!(
        "refresh: two signatures per response (access + ID token): {:.0} % of the raw bound ({:.0}/s); \
         the signatures are {:.0} % of the server's CPU per request",
        100.0 * refresh / (raw / 2.0),
        raw / 2.0,
        100.0 * 2.0 * sign_cpu / refresh_cpu
    );
    println!(
        "(the rest of the machine's CPU goes to PostgreSQL, Redis, wrk and the kernel, on the same cores)"
    );
}
