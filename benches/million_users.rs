//! A million users in PostgreSQL (issue 32): do sign-in, the admin user search and the
//! audit queries stay as fast as with a thousand?
//!
//! `GATEHOUSE_TEST_DATABASE_URL=postgres://… cargo bench --bench million_users`
//!
//! For each scale (1,000 users, then `MILLION_USERS_N`, default 1,000,000), in a fresh
//! schema of its own behind an HTTPS server on loopback:
//!
//! 1. generates the users in bulk (`users::insert_many`: one argon2id hash with the
//!    default parameters, wrapped per row; 10,000 users a transaction), and
//!    [`generate::EVENTS_PER_USER`] audit events per user over the last year through
//!    the product's audit writer, then checks the chain (`Audit::verify`);
//! 2. times `MILLION_USERS_SAMPLES` (default 300) sequential requests of each kind
//!    through HTTP: a password sign-in of a random generated user, admin API user
//!    searches (a whole username, a part five users share, a whole address), the
//!    console's user list, and admin API audit queries (by user, the last 30 days, 30
//!    days six months back, the first page);
//!
//! and prints p50 and p99 for both scales side by side. Protections stay on: argon2
//! defaults, the audit trail (each admin read is itself recorded), lockout. Each schema
//! is dropped when its scale is done (`MILLION_USERS_KEEP=1` keeps them, to look at
//! plans with psql). Without `GATEHOUSE_TEST_DATABASE_URL` it says it is skipped.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use diesel::{Connection, PgConnection, RunQueryDsl};
use gatehouse::{
    auth::account::{NewAccount, create_account},
    domain::{Email, OrgName, Password, Role, Username},
    oidc::clients::{ClientSpec, register},
    startup::AppState,
    store::totp,
};
use rand::Rng;
use secrecy::ExposeSecret;
use serde_json::Value;

mod common;
#[path = "million_users/generate.rs"]
mod generate;

use common::PASSWORD;

/// The console administrator each run signs in as.
const ADMIN: &str = "console-admin";

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks benchmarks to list themselves
    }
    let Some(db) = std::env::var("GATEHOUSE_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())
    else {
        println!(
            "million_users: skipped (set GATEHOUSE_TEST_DATABASE_URL: it measures PostgreSQL)"
        );
        return;
    };
    let number = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.replace('_', "").parse().ok())
            .unwrap_or(default)
    };
    let large = number("MILLION_USERS_N", 1_000_000);
    let samples = number("MILLION_USERS_SAMPLES", 300);
    let small = run(&db, 1000, samples).await;
    let large = run(&db, large, samples).await;
    print_table(&small, &large);
}

/// A schema of the benchmark database, dropped when this goes (a failed run too).
struct Schema {
    db: String,
    name: String,
}

impl Schema {
    fn create(db: &str) -> Self {
        let name = format!("bench_mu_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::establish(db).expect("GATEHOUSE_TEST_DATABASE_URL reachable");
        diesel::sql_query(format!("CREATE SCHEMA {name}"))
            .execute(&mut conn)
            .expect("create schema");
        Self {
            db: db.to_owned(),
            name,
        }
    }

    fn url(&self) -> url::Url {
        let sep = if self.db.contains('?') { '&' } else { '?' };
        url::Url::parse(&format!(
            "{}{sep}options=-csearch_path%3D{}",
            self.db, self.name
        ))
        .unwrap()
    }

    /// What an operator runs after a bulk import (autovacuum would, a little later):
    /// statistics for the planner, and the visibility map for index-only scans.
    fn vacuum_analyze(&self) {
        let mut conn = PgConnection::establish(self.url().as_str()).unwrap();
        diesel::sql_query("VACUUM ANALYZE")
            .execute(&mut conn)
            .unwrap();
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        if std::env::var_os("MILLION_USERS_KEEP").is_some() {
            eprintln!("schema {} kept (MILLION_USERS_KEEP)", self.name);
            return;
        }
        let dropped = PgConnection::establish(&self.db).and_then(|mut c| {
            diesel::sql_query(format!("DROP SCHEMA {} CASCADE", self.name))
                .execute(&mut c)
                .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))
        });
        if let Err(e) = dropped {
            eprintln!("could not drop schema {}: {e}", self.name);
        }
    }
}

/// Latencies of one kind of request, sorted.
struct Timings {
    label: &'static str,
    sorted: Vec<Duration>,
}

impl Timings {
    fn at(&self, p: f64) -> Duration {
        let n = self.sorted.len();
        self.sorted[((n as f64 * p).ceil() as usize).clamp(1, n) - 1]
    }
}

/// What one scale measured.
struct Run {
    users: usize,
    timings: Vec<Timings>,
}

/// Generates `n` users and their trail in a fresh schema, then times each request.
async fn run(db: &str, n: usize, samples: usize) -> Run {
    let schema = Schema::create(db);
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.database_url = Some(schema.url());
    config.database_pool_size = 8;
    config.access_token_secs = 3600;
    config.master_key =
        Some(base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32]).into());
    let (state, base) = common::serve(config, None).await;
    println!("\n== {n} users (schema {})", schema.name);

    let generated = generate::users(&state, n).await;
    println!(
        "users: {n} in {:.1} s ({:.0} users/s; the one argon2id hash took {} ms)",
        generated.inserting.as_secs_f64(),
        n as f64 / generated.inserting.as_secs_f64(),
        generated.hashing.as_millis()
    );
    let started = Instant::now();
    let events = generate::audit_trail(&state, &generated.org_id, &generated.ids).await;
    let took = started.elapsed().as_secs_f64();
    println!(
        "audit events: {events} in {took:.1} s ({:.0} events/s, hash-chained by the product's writer)",
        events as f64 / took
    );
    let started = Instant::now();
    let report = state.audit.verify().await.unwrap();
    assert!(report.intact, "the generated trail verifies: {report}");
    println!(
        "audit verify: {} events intact in {:.1} s",
        report.events_verified,
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    schema.vacuum_analyze();
    println!(
        "VACUUM ANALYZE (as after any bulk import): {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let web = Web::new(&base);
    let token = web.service_token(&state).await;
    let console = web.console(&state).await;
    let org = generated.org_id.clone();
    let pick = || rand::thread_rng().gen_range(0..n);
    let window = {
        let now = chrono::Utc::now();
        let from = (now - chrono::Duration::days(200)).to_rfc3339();
        let to = (now - chrono::Duration::days(170)).to_rfc3339();
        (from, to)
    };
    let recent = (chrono::Utc::now() - chrono::Duration::days(30)).to_rfc3339();

    let mut timings = Vec::new();
    timings.push(
        measure("sign-in (password, argon2id)", samples, &mut || {
            web.sign_in(generate::username(pick()))
        })
        .await,
    );
    timings.push(
        measure("API users: whole username", samples, &mut || {
            let q = generate::username(pick());
            web.api(
                &token,
                "/users",
                vec![("org", org.clone()), ("q", q)],
                Some(1),
            )
        })
        .await,
    );
    timings.push(
        measure("API users: part (5 users)", samples, &mut || {
            let q = generate::FEW.to_owned();
            web.api(
                &token,
                "/users",
                vec![("org", org.clone()), ("q", q)],
                Some(5),
            )
        })
        .await,
    );
    timings.push(
        measure("API users: whole address", samples, &mut || {
            let q = generate::email(pick()).to_lowercase();
            web.api(
                &token,
                "/users",
                vec![("org", org.clone()), ("q", q)],
                Some(1),
            )
        })
        .await,
    );
    timings.push(
        measure("console: user list, first page", samples, &mut || {
            web.console_page(&console, ".")
        })
        .await,
    );
    timings.push(
        measure("console: search, 5 users", samples, &mut || {
            web.console_page(&console, generate::FEW)
        })
        .await,
    );
    timings.push(
        measure("API audit: by user", samples, &mut || {
            let user = generate::username(pick());
            web.api(&token, "/audit", vec![("user", user)], None)
        })
        .await,
    );
    timings.push(
        measure("API audit: last 30 days", samples, &mut || {
            web.api(&token, "/audit", vec![("from", recent.clone())], Some(100))
        })
        .await,
    );
    timings.push(
        measure("API audit: 30 days, 6 months ago", samples, &mut || {
            let q = vec![("from", window.0.clone()), ("to", window.1.clone())];
            web.api(&token, "/audit", q, Some(100))
        })
        .await,
    );
    timings.push(
        measure("API audit: first page", samples, &mut || {
            web.api(&token, "/audit", Vec::new(), Some(100))
        })
        .await,
    );
    drop(schema);
    Run { users: n, timings }
}

/// Times `samples` sequential calls of `request` (after 20 untimed ones), each
/// returning how long its request took.
async fn measure<F, Fut>(label: &'static str, samples: usize, request: &mut F) -> Timings
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Duration>,
{
    for _ in 0..20 {
        request().await;
    }
    let mut sorted = Vec::with_capacity(samples);
    for _ in 0..samples {
        sorted.push(request().await);
    }
    sorted.sort();
    let t = Timings { label, sorted };
    println!(
        "{label:<34} p50 {:>8.2} ms  p99 {:>8.2} ms",
        ms(t.at(0.5)),
        ms(t.at(0.99))
    );
    t
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn print_table(small: &Run, large: &Run) {
    println!(
        "\n== p50 / p99 in ms: {} users vs {} users (ratio large/small)",
        small.users, large.users
    );
    println!(
        "{:<34} {:>17} {:>17} {:>13}",
        "query", "1k p50 / p99", "large p50 / p99", "ratio"
    );
    for (s, l) in small.timings.iter().zip(&large.timings) {
        println!(
            "{:<34} {:>7.2} / {:>7.2} {:>7.2} / {:>7.2} {:>5.2} / {:>5.2}",
            s.label,
            ms(s.at(0.5)),
            ms(s.at(0.99)),
            ms(l.at(0.5)),
            ms(l.at(0.99)),
            ms(l.at(0.5)) / ms(s.at(0.5)),
            ms(l.at(0.99)) / ms(s.at(0.99)),
        );
    }
}

/// The HTTP side: a browser per sign-in, an admin API token, a console session.
struct Web {
    base: String,
    http: reqwest::Client,
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

fn location(res: &reqwest::Response) -> String {
    res.headers()["location"].to_str().unwrap().to_owned()
}

impl Web {
    fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            http: browser(),
        }
    }

    /// The sign-in page of a new login transaction in `browser`: `(tx, csrf)`.
    async fn open_login(&self, browser: &reqwest::Client, start: &str) -> (String, String) {
        let res = browser
            .get(format!("{}{start}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303, "{start} sends to sign in");
        let page = browser
            .get(format!("{}{}", self.base, location(&res)))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        (hidden(&page, "tx"), hidden(&page, "csrf"))
    }

    async fn post(
        &self,
        browser: &reqwest::Client,
        path: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        browser
            .post(format!("{}{path}", self.base))
            .header("Origin", &self.base)
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// A password sign-in of `username` in a new browser; times the password step.
    async fn sign_in(&self, username: String) -> Duration {
        let browser = browser();
        let (tx, csrf) = self.open_login(&browser, "/login").await;
        let form = [
            ("tx", tx.as_str()),
            ("csrf", &csrf),
            ("username", &username),
            ("password", PASSWORD),
        ];
        let started = Instant::now();
        let res = self.post(&browser, "/login", &form).await;
        let took = started.elapsed();
        assert_eq!(res.status(), 303, "{username} signs in");
        took
    }

    /// A client_credentials token for a service client with the admin scope (it acts
    /// as a super administrator).
    async fn service_token(&self, state: &AppState) -> String {
        let spec = ClientSpec {
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["gatehouse:admin".into()],
            ..ClientSpec::new("Bench provisioning", &[])
        };
        let client = register(&state.store, spec, chrono::Utc::now())
            .await
            .unwrap();
        let tokens: Value = self
            .http
            .post(format!("{}/token", self.base))
            .basic_auth(
                &client.client_id,
                Some(client.client_secret.as_ref().unwrap().expose_secret()),
            )
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "gatehouse:admin"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        tokens["access_token"]
            .as_str()
            .expect("an access token")
            .to_owned()
    }

    /// Times one admin API GET; checks it answers 200 with an array of at least `min`
    /// entries (exactly `min` for 5, the part only five users share).
    async fn api(
        &self,
        token: &str,
        path: &str,
        query: Vec<(&'static str, String)>,
        min: Option<usize>,
    ) -> Duration {
        let started = Instant::now();
        let res = self
            .http
            .get(format!("{}/admin/api/v1{path}", self.base))
            .query(&query)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        let took = started.elapsed();
        assert_eq!(status, 200, "{path} {query:?}: {body}");
        let found = body.as_array().map_or(0, Vec::len);
        if let Some(min) = min {
            assert!(found >= min, "{path} {query:?}: {found} found");
            assert!(min != 5 || found == 5, "{path} {query:?}: {found} found");
        }
        took
    }

    /// A browser inside the console as [`ADMIN`], a super administrator with TOTP (the
    /// default policy asks administrators for a second factor).
    async fn console(&self, state: &AppState) -> reqwest::Client {
        let admin = create_account(
            state,
            NewAccount {
                org: OrgName::parse("default").unwrap(),
                username: Username::parse(ADMIN).unwrap(),
                email: Email::parse("console-admin@example.org").unwrap(),
                display_name: None,
                role: Role::SuperAdmin,
                password: Password::parse(PASSWORD.into()).unwrap(),
                must_change_password: false,
            },
        )
        .await
        .unwrap();
        let secret: [u8; 20] = rand::thread_rng().r#gen();
        let sealed = state
            .master_key
            .seal(&totp::seal_context(&admin.id), &secret);
        let now = chrono::Utc::now();
        let step = now.timestamp() / 30 - 2;
        let id = admin.id.clone();
        state
            .store
            .transaction(move |c| totp::activate(c, &id, &sealed, step, now.naive_utc()))
            .await
            .unwrap();
        let browser = browser();
        let (tx, csrf) = self.open_login(&browser, "/admin").await;
        let form = [
            ("tx", tx.as_str()),
            ("csrf", &csrf),
            ("username", ADMIN),
            ("password", PASSWORD),
        ];
        let res = self.post(&browser, "/login", &form).await;
        assert_eq!(res.status(), 303);
        let otp = location(&res);
        assert!(otp.starts_with("/login/otp"), "{otp}");
        let page = browser
            .get(format!("{}{otp}", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let code = gatehouse::auth::totp::totp(secret.to_vec(), "", 6)
            .unwrap()
            .generate(chrono::Utc::now().timestamp() as u64)
            .to_string();
        let form = [
            ("tx", hidden(&page, "tx")),
            ("csrf", hidden(&page, "csrf")),
            ("code", code),
        ];
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let res = self.post(&browser, "/login/otp", &form).await;
        assert_eq!(res.status(), 303);
        assert_eq!(
            location(&res),
            "/admin",
            "the sign-in resumes to the console"
        );
        browser
    }

    /// Times the console's home page with the user search `q` (its first page).
    async fn console_page(&self, browser: &reqwest::Client, q: &str) -> Duration {
        let started = Instant::now();
        let res = browser
            .get(format!("{}/admin", self.base))
            .query(&[("q", q)])
            .send()
            .await
            .unwrap();
        let status = res.status();
        let html = res.text().await.unwrap();
        let took = started.elapsed();
        assert_eq!(status, 200, "{html}");
        took
    }
}
