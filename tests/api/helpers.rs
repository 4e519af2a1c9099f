//! `spawn_app`: the real server, on a random port, with fresh state per test.
//!
//! SQLite in a temporary directory by default. When `GATEHOUSE_TEST_DATABASE_URL` is
//! set, a fresh PostgreSQL schema instead; when `GATEHOUSE_TEST_REDIS_URL` is set, the
//! real Redis with a fresh key prefix.

#![allow(dead_code)]

use std::{net::SocketAddr, sync::Arc, time::Duration};

use actix_web::{dev::ServerHandle, web};
use diesel::{Connection, PgConnection, RunQueryDsl};
use gatehouse::{
    auth::account::{NewAccount, create_account},
    clock::TestClock,
    config::Config,
    crypto::MasterKey,
    domain::{Email, OrgName, Password, Role, Username},
    startup::{AppState, Application},
    store::users::UserRow,
};
use secrecy::ExposeSecret;
use tempfile::TempDir;

pub struct TestApp {
    pub addr: SocketAddr,
    /// `https://127.0.0.1:PORT`
    pub base: String,
    pub client: reqwest::Client,
    pub state: web::Data<AppState>,
    pub clock: TestClock,
    /// The one-time password of the first administrator, as printed on first start.
    pub admin_password: Option<String>,
    pub handle: ServerHandle,
    pub data_dir: Arc<TempDir>,
    pub config: Config,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    /// Stops the server gracefully (as SIGTERM would).
    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

/// A client that trusts our self-signed certificate, keeps cookies and does not follow
/// redirects (tests look at each hop).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client builds")
}

pub fn test_database_url() -> Option<String> {
    std::env::var("GATEHOUSE_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

pub fn test_redis_url() -> Option<String> {
    std::env::var("GATEHOUSE_TEST_REDIS_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

/// Says plainly that a test did not run, and why.
/// Written straight to stderr: libtest captures `eprintln!`, and a skip must be seen.
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped: {test}: {why}");
}

/// A fresh PostgreSQL schema, returned as a URL whose connections use it.
pub fn fresh_postgres_url(base: &str) -> String {
    let schema = format!("gh_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::establish(base).expect("GATEHOUSE_TEST_DATABASE_URL reachable");
    diesel::sql_query(format!("CREATE SCHEMA {schema}"))
        .execute(&mut conn)
        .expect("create schema");
    // libpq reads `options` percent-decoded but does not turn `+` into a space.
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-csearch_path%3D{schema}")
}

/// The bearer token test servers require on `/metrics` (`metrics_token`).
pub const METRICS_TOKEN: &str = "test-metrics-token-0123456789";

/// The test configuration: temp dir, port 0, cheap argon2 unless a test asks otherwise,
/// real PostgreSQL and Redis when the environment names them.
pub fn test_config(data_dir: &TempDir) -> Config {
    let mut config = Config::for_tests(data_dir.path().to_owned());
    config.metrics_token = Some(METRICS_TOKEN.to_owned().into());
    if let Some(base) = test_database_url() {
        config.database_url = Some(url::Url::parse(&fresh_postgres_url(&base)).expect("url"));
        config.master_key = Some(base64_key(&MasterKey::generate()).into());
    }
    if let Some(redis) = test_redis_url() {
        config.redis_url = Some(url::Url::parse(&redis).expect("redis url"));
        config.redis_key_prefix = format!("gh-test:{}:", uuid::Uuid::new_v4().simple());
    }
    config
}

pub fn base64_key(key: &MasterKey) -> String {
    key.to_base64().expose_secret().to_owned()
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(customise: impl FnOnce(&mut Config)) -> TestApp {
    let data_dir = TempDir::new().expect("temp dir");
    let mut config = test_config(&data_dir);
    customise(&mut config);
    spawn_with_config(config, Arc::new(data_dir)).await
}

/// Starts a server on an existing configuration (a second instance, a restart).
pub async fn spawn_with_config(mut config: Config, data_dir: Arc<TempDir>) -> TestApp {
    if std::env::var("TEST_LOG").is_ok() {
        // The subscriber is the process's for good, and so is its writer.
        std::mem::forget(gatehouse::telemetry::init_logging(&Config {
            log_level: "debug".into(),
            ..config.clone()
        }));
    }
    // Bind first, so the issuer (links, Origin checks, tokens) names the real port.
    let listener = std::net::TcpListener::bind(config.bind).expect("bind");
    let port = listener.local_addr().unwrap().port();
    // An issuer on port 0 names its host (a second server as `localhost`, so a
    // browser keeps its cookies apart from the first's): only the port is filled in.
    let named_host = config.issuer.port() == Some(0);
    if named_host {
        config.issuer.set_port(Some(port)).unwrap();
    } else if config.issuer.as_str() == "https://localhost:8443/" {
        let scheme = if config.tls { "https" } else { "http" };
        config.issuer = url::Url::parse(&format!("{scheme}://127.0.0.1:{port}")).unwrap();
    }
    config.validate().expect("test configuration is valid");
    let clock = TestClock::default();
    let mut app = Application::build_on(listener, config.clone(), Arc::new(clock.clone()))
        .await
        .expect("application builds");
    let addr = app.local_addr();
    let admin_password = app
        .take_first_admin()
        .map(|a| a.one_time_password.expose_secret().to_owned());
    let state = app.state();
    let handle = app.handle();
    app.next_keys_published().await;
    tokio::spawn(app.run_until_stopped());
    let scheme = if config.tls { "https" } else { "http" };
    let base = if named_host {
        config.issuer.as_str().trim_end_matches('/').to_owned()
    } else {
        format!("{scheme}://127.0.0.1:{}", addr.port())
    };
    TestApp {
        addr,
        base,
        client: client(),
        state,
        clock,
        admin_password,
        handle,
        data_dir,
        config,
    }
}

/// Polls `f` until it returns true or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates an active user in organisation `default` with role `user` and email
/// `{username}@example.org`, through the same capability as `gatehouse user create`.
pub async fn create_user(
    app: &TestApp,
    username: &str,
    password: &str,
    must_change_password: bool,
) -> UserRow {
    account(app, username, password, Role::User, must_change_password).await
}

/// [`create_user`] with `role`.
pub async fn create_user_with_role(
    app: &TestApp,
    username: &str,
    password: &str,
    role: Role,
) -> UserRow {
    account(app, username, password, role, false).await
}

async fn account(
    app: &TestApp,
    username: &str,
    password: &str,
    role: Role,
    must_change_password: bool,
) -> UserRow {
    account_in(
        app,
        "default",
        username,
        password,
        role,
        must_change_password,
    )
    .await
}

/// A user `username` of `role` in the organisation named `org`, with `password`.
pub async fn create_user_in(
    app: &TestApp,
    org: &str,
    username: &str,
    password: &str,
    role: Role,
) -> UserRow {
    account_in(app, org, username, password, role, false).await
}

async fn account_in(
    app: &TestApp,
    org: &str,
    username: &str,
    password: &str,
    role: Role,
    must_change_password: bool,
) -> UserRow {
    create_account(
        &app.state,
        NewAccount {
            org: OrgName::parse(org).unwrap(),
            username: Username::parse(username).unwrap(),
            email: Email::parse(&format!("{username}@example.org")).unwrap(),
            display_name: None,
            role,
            password: Password::parse(password.to_owned()).unwrap(),
            must_change_password,
        },
    )
    .await
    .expect("user created")
}

/// Changes the policy of organisation `default` with `change`.
pub async fn change_default_policy(
    app: &TestApp,
    change: impl FnOnce(&mut gatehouse::domain::OrgPolicy) + Send + 'static,
) {
    use gatehouse::store::orgs;
    app.state
        .store
        .run(move |c| {
            let org = orgs::find_by_name(c, &OrgName::parse("default").unwrap())?.unwrap();
            let mut policy = org.policy();
            change(&mut policy);
            orgs::set_policy(c, &org.id, &policy, chrono::Utc::now().naive_utc())
        })
        .await
        .unwrap();
}

/// The value of a hidden form field in a page.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in {html}"))
        + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

impl TestApp {
    /// A new browser-like client (its own cookies).
    pub fn new_client(&self) -> reqwest::Client {
        client()
    }

    /// Follows `/login` to a fresh transaction's page with `client`; returns (tx, csrf).
    pub async fn open_login(&self, client: &reqwest::Client) -> (String, String) {
        let res = client.get(self.url("/login")).send().await.unwrap();
        assert_eq!(res.status(), 303);
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        let page = client.get(self.url(&location)).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        (hidden(&html, "tx"), hidden(&html, "csrf"))
    }

    /// Posts a browser form with a same-origin `Origin` header.
    pub async fn post_form(
        &self,
        client: &reqwest::Client,
        path: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        client
            .post(self.url(path))
            .header("Origin", &self.base)
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Signs in on a fresh transaction; returns the response to the password step.
    pub async fn sign_in(
        &self,
        client: &reqwest::Client,
        username: &str,
        password: &str,
    ) -> reqwest::Response {
        let (tx, csrf) = self.open_login(client).await;
        self.post_form(
            client,
            "/login",
            &[
                ("tx", &tx),
                ("csrf", &csrf),
                ("username", username),
                ("password", password),
            ],
        )
        .await
    }

    /// The text of the page at `path`, fetched with `client` (whatever its status).
    pub async fn page(&self, client: &reqwest::Client, path: &str) -> String {
        let res = client.get(self.url(path)).send().await.unwrap();
        res.text().await.unwrap()
    }

    /// The account page's CSRF token (the client must be signed in).
    pub async fn account_csrf(&self, client: &reqwest::Client) -> String {
        let res = client.get(self.url("/account")).send().await.unwrap();
        assert_eq!(res.status(), 200, "not signed in");
        hidden(&res.text().await.unwrap(), "csrf")
    }

    /// `/metrics` as a scraper with the token reads it.
    pub async fn metrics_text(&self) -> String {
        let res = self
            .client
            .get(self.url("/metrics"))
            .bearer_auth(METRICS_TOKEN);
        let res = res.send().await.expect("request sent");
        assert_eq!(res.status(), 200, "/metrics with the token");
        res.text().await.unwrap()
    }

    /// A counter from `/metrics` (0 when absent).
    pub async fn metric(&self, line_prefix: &str) -> f64 {
        let text = self.metrics_text().await;
        text.lines()
            .find_map(|l| {
                l.strip_prefix(line_prefix)
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap_or(0.0)
    }
}

/// The code an authenticator app would show for `secret_b32` at unix time `at`.
pub fn totp_code(secret_b32: &str, at: i64) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret_b32).expect("base32 secret");
    gatehouse::auth::totp::totp(secret.as_ref().to_vec(), "", 6)
        .unwrap()
        .generate(at as u64)
        .to_string()
}

/// The text of the element with `id` in a page.
pub fn element_text(html: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\">");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no #{id} in {html}"))
        + marker.len();
    let end = html[start..].find('<').unwrap() + start;
    html[start..end].to_owned()
}

impl TestApp {
    /// Enrols TOTP from the account page of a signed-in `client`; returns the secret
    /// (base32) and the recovery codes.
    pub async fn enrol_totp(&self, client: &reqwest::Client) -> (String, Vec<String>) {
        use gatehouse::clock::Clock;
        let page = client
            .get(self.url("/account/totp"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let secret = element_text(&page, "totp-secret");
        let code = totp_code(&secret, self.clock.now().timestamp());
        let res = self
            .post_form(
                client,
                "/account/totp",
                &[("csrf", &hidden(&page, "csrf")), ("code", &code)],
            )
            .await;
        assert_eq!(res.status(), 200);
        let html = res.text().await.unwrap();
        let codes = html
            .split("<li><code>")
            .skip(1)
            .map(|s| s[..s.find('<').unwrap()].to_owned())
            .collect::<Vec<_>>();
        assert_eq!(codes.len(), 10, "{html}");
        (secret, codes)
    }
}

/// HTML character references, as askama writes them into attributes.
pub fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let end = rest[i..].find(';').expect("a complete reference") + i;
        let entity = &rest[i + 1..end];
        out.push(match entity {
            "amp" => '&',
            "quot" => '"',
            "lt" => '<',
            "gt" => '>',
            "apos" => '\'',
            e if e.starts_with("#x") => {
                char::from_u32(u32::from_str_radix(&e[2..], 16).unwrap()).unwrap()
            }
            e => char::from_u32(e[1..].parse().unwrap()).unwrap(),
        });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}
