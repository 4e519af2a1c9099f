//! Browser tests: a real headless Chromium, driven over WebDriver (chromedriver and
//! fantoccini), against the real server on https://127.0.0.1 with its self-signed certificate.
//!
//! They run only when `GATEHOUSE_TEST_BROWSER=1` (Debian: `apt-get install chromium
//! chromium-driver`); otherwise each one says it was skipped. With the variable set, a
//! browser that cannot be started is a failure, not a skip.
//!
//! Each `Browser` has its own chromedriver on a free loopback port and its own profile in a
//! temporary directory, so browser tests run in parallel like the others. Dropping a
//! `Browser` kills its Chromium and its chromedriver, also when the test panics; `close()`
//! ends the WebDriver session politely first.
//!
//! `GATEHOUSE_CHROMEDRIVER` and `GATEHOUSE_CHROMIUM` override the binaries' paths.

// A toolkit: not every helper is used by every test.
#![allow(dead_code)]

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator, elements::Element, wd::TimeoutConfiguration};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::helpers::{create_user, skip, spawn_app};

const ENABLE_VAR: &str = "GATEHOUSE_TEST_BROWSER";
const SKIP_REASON: &str = "GATEHOUSE_TEST_BROWSER not set";
const DEFAULT_CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";

/// How long `wait_for`, `submit` and friends wait: generous, for a busy 2-core CI machine
/// running several browsers and argon2 at once.
pub const WAIT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(100);
/// Starting chromedriver, then Chromium through it (about 1 s each when idle).
const DRIVER_START: Duration = Duration::from_secs(30);
const SESSION_START: Duration = Duration::from_secs(60);
const PAGE_LOAD: Duration = Duration::from_secs(30);

/// A headless Chromium with its own chromedriver and profile.
pub struct Browser {
    client: Option<Client>,
    driver: Child,
    port: u16,
    /// Holds `profile/` (the user data dir), chromedriver's log, and `config/`, `cache/`,
    /// `data/` as XDG_CONFIG_HOME, XDG_CACHE_HOME, XDG_DATA_HOME: Chromium keeps its crash
    /// database and NSS store there, not in the shared ~/.config and ~/.local/share.
    dir: TempDir,
    log: PathBuf,
    /// Chromium's processes as `close()` saw them before ending the session: once the
    /// browser process has gone, its helpers are no longer chromedriver's descendants.
    closing: Vec<u32>,
}

impl Browser {
    /// Whether browser tests are asked for (`GATEHOUSE_TEST_BROWSER=1`).
    pub fn enabled() -> bool {
        matches!(
            std::env::var(ENABLE_VAR).as_deref().map(str::trim),
            Ok("1") | Ok("true") | Ok("yes")
        )
    }

    /// `None` unless `GATEHOUSE_TEST_BROWSER=1`; then a ready browser, or a panic that says
    /// what went wrong.
    pub async fn start() -> Option<Browser> {
        Self::start_with(&[]).await
    }

    /// [`Browser::start`] with more Chromium switches (`--blink-settings=…`).
    pub async fn start_with(switches: &[&str]) -> Option<Browser> {
        if !Self::enabled() {
            return None;
        }
        Some(Self::launch(switches).await)
    }

    async fn launch(switches: &[&str]) -> Browser {
        let chromedriver = binary(
            "GATEHOUSE_CHROMEDRIVER",
            DEFAULT_CHROMEDRIVER,
            "chromium-driver",
        );
        let chromium = binary("GATEHOUSE_CHROMIUM", DEFAULT_CHROMIUM, "chromium");
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-browser-")
            .tempdir()
            .expect("browser: temporary directory");
        for sub in ["profile", "config", "cache", "data"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("browser: profile directories");
        }

        // The free port is released before chromedriver binds it, so another process may take
        // it in between: chromedriver then exits ("port not available") and we try another.
        let mut failures = Vec::new();
        for attempt in 1..=3 {
            let port = free_port();
            let log = dir.path().join(format!("chromedriver-{attempt}.log"));
            let out = File::create(&log).expect("browser: chromedriver log file");
            let err = out.try_clone().expect("browser: chromedriver log file");
            let mut driver = Command::new(&chromedriver)
                .arg(format!("--port={port}"))
                .env("XDG_CONFIG_HOME", dir.path().join("config"))
                .env("XDG_CACHE_HOME", dir.path().join("cache"))
                .env("XDG_DATA_HOME", dir.path().join("data"))
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .unwrap_or_else(|e| panic!("browser: cannot run {}: {e}", chromedriver.display()));
            match driver_ready(&mut driver, port, &log).await {
                Ok(()) => {
                    let mut browser = Browser {
                        client: None,
                        driver,
                        port,
                        dir,
                        log,
                        closing: Vec::new(),
                    };
                    // A panic from here on drops `browser`, which kills chromedriver.
                    browser.open_session(&chromium, switches).await;
                    return browser;
                }
                Err(why) => {
                    let _ = driver.kill();
                    let _ = driver.wait();
                    failures.push(format!(
                        "attempt {attempt}, port {port}: {why}\n{}",
                        read_log(&log)
                    ));
                }
            }
        }
        panic!(
            "browser: chromedriver did not start ({ENABLE_VAR} is set, so this is a failure):\n{}",
            failures.join("\n")
        );
    }

    async fn open_session(&mut self, chromium: &Path, switches: &[&str]) {
        let profile = self.dir.path().join("profile");
        let mut capabilities = json!({
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "pageLoadStrategy": "normal",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--no-proxy-server",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-extensions",
                    "--password-store=basic",
                    format!("--user-data-dir={}", profile.display()),
                    "--window-size=1280,900",
                ],
            },
        });
        let args = &mut capabilities["goog:chromeOptions"]["args"];
        for switch in switches {
            args.as_array_mut()
                .expect("the switches are a list")
                .push(json!(switch));
        }
        let Value::Object(capabilities) = capabilities else {
            unreachable!("capabilities are an object")
        };
        // fantoccini's default `native-tls` feature gives `ClientBuilder::native()`; the
        // driver is plain http on loopback, so TLS is never used.
        let mut builder = ClientBuilder::native();
        builder.capabilities(capabilities);
        let driver_url = format!("http://127.0.0.1:{}", self.port);
        let connect = builder.connect(&driver_url);
        let client = match tokio::time::timeout(SESSION_START, connect).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => panic!(
                "browser: Chromium ({}) did not start through chromedriver: {e}\n{}",
                chromium.display(),
                read_log(&self.log)
            ),
            Err(_) => panic!(
                "browser: Chromium ({}) did not start within {SESSION_START:?}\n{}",
                chromium.display(),
                read_log(&self.log)
            ),
        };
        let timeouts =
            TimeoutConfiguration::new(Some(PAGE_LOAD), Some(PAGE_LOAD), Some(Duration::ZERO));
        client
            .update_timeouts(timeouts)
            .await
            .unwrap_or_else(|e| panic!("browser: setting WebDriver timeouts: {e}"));
        self.client = Some(client);
    }

    /// Ends the WebDriver session (Chromium quits), then, on drop, chromedriver.
    pub async fn close(mut self) {
        let chromium = descendants(self.driver.id());
        if let Some(client) = self.client.take()
            && let Err(e) = client.close().await
        {
            eprintln!("browser: ending the WebDriver session: {e}");
        }
        // Chromium quits by itself; give it a moment. Drop kills whatever is left.
        let deadline = Instant::now() + Duration::from_secs(5);
        while chromium.iter().any(|&pid| alive(pid)) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.closing = chromium;
    }

    /// The fantoccini client, for whatever the helpers below do not cover.
    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("browser: the session is open")
    }

    /// The temporary directory holding this browser's profile and chromedriver's log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Loads `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        if let Err(e) = self.client().goto(url).await {
            panic!("{}", self.failure(&format!("goto {url}: {e}")).await);
        }
    }

    /// The URL of the page shown now.
    pub async fn current_url(&self) -> url::Url {
        match self.client().current_url().await {
            Ok(url) => url,
            Err(e) => panic!("browser: current URL: {e}"),
        }
    }

    /// The first element matching `css`, waiting up to `WAIT` for it to appear.
    pub async fn wait_for(&self, css: &str) -> Element {
        self.wait_for_within(css, WAIT).await
    }

    /// As `wait_for`, with another limit.
    pub async fn wait_for_within(&self, css: &str, limit: Duration) -> Element {
        let deadline = Instant::now() + limit;
        loop {
            let last = match self.client().find(Locator::Css(css)).await {
                Ok(element) => return element,
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                let what = format!("no element matches `{css}` after {limit:?} ({last})");
                panic!("{}", self.failure(&what).await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits up to `WAIT` until the current URL's path is `path`.
    pub async fn wait_for_path(&self, path: &str) -> url::Url {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(url) = self.client().current_url().await
                && url.path() == path
            {
                return url;
            }
            if Instant::now() >= deadline {
                let what = format!("the browser did not reach the path {path} within {WAIT:?}");
                panic!("{}", self.failure(&what).await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Whether an element matches `css` now (no waiting).
    pub async fn exists(&self, css: &str) -> bool {
        self.count(css).await > 0
    }

    /// How many elements match `css` now (no waiting).
    pub async fn count(&self, css: &str) -> usize {
        match self.client().find_all(Locator::Css(css)).await {
            Ok(all) => all.len(),
            Err(e) => panic!("{}", self.failure(&format!("find all `{css}`: {e}")).await),
        }
    }

    /// Replaces the value of the input matching `css` (waiting for it) with `text`.
    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.wait_for(css).await;
        let typed = async {
            element.clear().await?;
            element.send_keys(text).await
        };
        if let Err(e) = typed.await {
            panic!("{}", self.failure(&format!("fill `{css}`: {e}")).await);
        }
    }

    /// Clicks the element matching `css` (waiting for it). Does not wait for what follows:
    /// for a button that leads to another page, use `submit`.
    pub async fn click(&self, css: &str) {
        let element = self.wait_for(css).await;
        if let Err(e) = element.click().await {
            panic!("{}", self.failure(&format!("click `{css}`: {e}")).await);
        }
    }

    /// Clicks the element matching `css` and waits until the browser has loaded the page it
    /// led to (a new document, even at the same URL, as when a form is shown again with an
    /// error).
    pub async fn submit(&self, css: &str) {
        let element = self.wait_for(css).await;
        let mark = uuid::Uuid::new_v4().simple().to_string();
        let marked = self
            .client()
            .execute(
                "document.__gatehouseMark = arguments[0];",
                vec![json!(mark)],
            )
            .await;
        if let Err(e) = marked {
            panic!(
                "{}",
                self.failure(&format!("mark the page before `{css}`: {e}"))
                    .await
            );
        }
        if let Err(e) = element.click().await {
            panic!("{}", self.failure(&format!("click `{css}`: {e}")).await);
        }
        let deadline = Instant::now() + WAIT;
        loop {
            // Errors are expected while the next page replaces this one: ask again.
            let state = self
                .client()
                .execute(
                    "return [document.__gatehouseMark === arguments[0], document.readyState];",
                    vec![json!(mark)],
                )
                .await;
            if let Ok(state) = state
                && state[0] == json!(false)
                && state[1] == json!("complete")
            {
                return;
            }
            if Instant::now() >= deadline {
                let what = format!("clicking `{css}` did not lead to a new page within {WAIT:?}");
                panic!("{}", self.failure(&what).await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The visible text of the element matching `css` (waiting for it), trimmed.
    pub async fn text(&self, css: &str) -> String {
        let element = self.wait_for(css).await;
        match element.text().await {
            Ok(text) => text.trim().to_owned(),
            Err(e) => panic!("{}", self.failure(&format!("text of `{css}`: {e}")).await),
        }
    }

    /// The texts of all elements matching `css` now, trimmed.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let all = match self.client().find_all(Locator::Css(css)).await {
            Ok(all) => all,
            Err(e) => panic!("{}", self.failure(&format!("find all `{css}`: {e}")).await),
        };
        let mut texts = Vec::with_capacity(all.len());
        for element in all {
            match element.text().await {
                Ok(text) => texts.push(text.trim().to_owned()),
                Err(e) => panic!("{}", self.failure(&format!("text of `{css}`: {e}")).await),
            }
        }
        texts
    }

    /// The attribute `name` of the element matching `css` (waiting for it).
    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        let element = self.wait_for(css).await;
        match element.attr(name).await {
            Ok(value) => value,
            Err(e) => panic!(
                "{}",
                self.failure(&format!("attribute {name} of `{css}`: {e}"))
                    .await
            ),
        }
    }

    /// Saves a PNG of the viewport to `path`, for looking at a page while writing a test.
    pub async fn screenshot(&self, path: impl AsRef<Path>) {
        let path = path.as_ref();
        let png = match self.client().screenshot().await {
            Ok(png) => png,
            Err(e) => panic!("{}", self.failure(&format!("screenshot: {e}")).await),
        };
        std::fs::write(path, png)
            .unwrap_or_else(|e| panic!("browser: writing {}: {e}", path.display()));
    }

    /// A panic message: what failed, where the browser is, and what the page says.
    async fn failure(&self, what: &str) -> String {
        let client = self.client();
        let url = match client.current_url().await {
            Ok(url) => url.to_string(),
            Err(e) => format!("(unknown: {e})"),
        };
        let title = client.title().await.unwrap_or_default();
        let body = match client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let mut body: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
        if body.chars().count() > 600 {
            body = body.chars().take(600).collect::<String>() + "…";
        }
        format!("browser: {what}\n  at: {url}\n  title: {title:?}\n  page text: {body:?}")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Killing chromedriver alone would leave Chromium running. Kill every process under
        // chromedriver (Chromium and its helpers), and anything naming our profile, by id.
        let marker = format!(
            "--user-data-dir={}",
            self.dir.path().join("profile").display()
        );
        let mut ours = descendants(self.driver.id());
        ours.extend(processes_mentioning(&marker));
        ours.extend(self.closing.iter().copied().filter(|&pid| alive(pid)));
        ours.sort_unstable();
        ours.dedup();
        if !ours.is_empty() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .args(ours.iter().map(u32::to_string))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        // Let them go before the profile directory is removed.
        let deadline = Instant::now() + Duration::from_secs(5);
        while ours.iter().any(|&pid| alive(pid)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn binary(var: &str, default: &str, package: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    assert!(
        path.is_file(),
        "browser: {ENABLE_VAR} is set but {} does not exist \
         (apt-get install {package}, or set {var})",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("browser: a free loopback port")
        .port()
}

/// Waits until chromedriver says it listens on `port` and answers `/status` with ready.
async fn driver_ready(driver: &mut Child, port: u16, log: &Path) -> Result<(), String> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("browser: http client");
    let status_url = format!("http://127.0.0.1:{port}/status");
    let deadline = Instant::now() + DRIVER_START;
    let mut last = String::from("no answer yet");
    loop {
        if let Ok(Some(status)) = driver.try_wait() {
            return Err(format!("chromedriver exited ({status})"));
        }
        // Only our chromedriver writes this line to our log, so the port is ours.
        if std::fs::read_to_string(log).is_ok_and(|l| l.contains("started successfully")) {
            match http.get(&status_url).send().await {
                Ok(response) => match response.json::<Value>().await {
                    Ok(body) if body["value"]["ready"] == json!(true) => return Ok(()),
                    Ok(body) => last = format!("/status: {body}"),
                    Err(e) => last = format!("/status: {e}"),
                },
                Err(e) => last = format!("/status: {e}"),
            }
        }
        if Instant::now() >= deadline {
            return Err(format!("not ready within {DRIVER_START:?}: {last}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn read_log(log: &Path) -> String {
    match std::fs::read_to_string(log) {
        Ok(text) => format!("chromedriver log ({}):\n{text}", log.display()),
        Err(e) => format!("chromedriver log {}: {e}", log.display()),
    }
}

/// `pid`'s parent and state, from /proc/PID/stat: `pid (comm) state ppid …`, where comm
/// may hold spaces and parentheses.
fn parent_and_state(pid: u32) -> Option<(u32, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut rest = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let parent = rest.next()?.parse().ok()?;
    Some((parent, state))
}

/// Whether `pid` runs (a zombie waiting for its new parent to reap it does not).
fn alive(pid: u32) -> bool {
    parent_and_state(pid).is_some_and(|(_, state)| state != 'Z' && state != 'X')
}

fn all_pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .collect()
}

/// Ids of the live processes below `root`.
fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = all_pids()
        .into_iter()
        .filter_map(|pid| match parent_and_state(pid) {
            Some((parent, state)) if state != 'Z' && state != 'X' => Some((pid, parent)),
            _ => None,
        })
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|&&(pid, p)| p == parent && !found.contains(&pid))
                .map(|&(pid, _)| pid)
                .collect::<Vec<_>>(),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// Ids of the processes whose command line contains `marker`.
fn processes_mentioning(marker: &str) -> Vec<u32> {
    let own = std::process::id();
    all_pids()
        .into_iter()
        .filter(|&pid| pid != own)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                cmdline
                    .split(|&b| b == 0)
                    .any(|arg| arg == marker.as_bytes())
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Sign-in, password change and sign-out, as a person does them.

pub async fn sign_in(browser: &Browser, username: &str, password: &str) {
    browser.fill("form#login input#username", username).await;
    browser.fill("form#login input#password", password).await;
    browser.submit("form#login button#sign-in").await;
}

fn has_tx(url: &url::Url) -> bool {
    url.query_pairs().any(|(k, v)| k == "tx" && !v.is_empty())
}

async fn assert_on_account_page(browser: &Browser, username: &str) {
    browser.wait_for("#account-username").await;
    let url = browser.current_url().await;
    assert_eq!(url.path(), "/account", "account page at {url}");
    assert_eq!(browser.text("h1").await, "Your account");
    assert_eq!(browser.text("#account-username").await, username);
}

#[tokio::test]
async fn browser_sign_in_change_password_and_see_account() {
    let test = "browser_sign_in_change_password_and_see_account";
    let Some(browser) = Browser::start().await else {
        skip(test, SKIP_REASON);
        return;
    };
    let app = spawn_app().await;
    create_user(&app, "bea", "Initial-Pass-93!", false).await;

    // Without a session, the account page sends the browser to sign in.
    browser.goto(&app.url("/account")).await;
    browser.wait_for("form#login").await;
    let url = browser.current_url().await;
    assert_eq!(url.path(), "/login", "sign-in page at {url}");
    assert!(
        has_tx(&url),
        "the sign-in page carries its transaction: {url}"
    );
    assert!(!browser.exists("#error").await, "no error before trying");

    sign_in(&browser, "bea", "Initial-Pass-93!").await;
    assert_on_account_page(&browser, "bea").await;

    // Change the password from the account page.
    browser
        .fill(
            "form#account-password input#current_password",
            "Initial-Pass-93!",
        )
        .await;
    browser
        .fill(
            "form#account-password input#new_password",
            "Second-Pass-47?",
        )
        .await;
    browser
        .fill(
            "form#account-password input#confirm_password",
            "Second-Pass-47?",
        )
        .await;
    browser
        .submit("form#account-password button#change-password")
        .await;
    browser.wait_for("#notice").await;
    let notice = browser.text("#notice").await;
    assert!(
        notice.to_lowercase().contains("password was changed"),
        "notice after the change: {notice:?}"
    );
    assert_eq!(
        browser.attr("#notice", "role").await.as_deref(),
        Some("status")
    );

    // Sign out.
    browser.submit("button#sign-out").await;
    browser.wait_for("h1").await;
    let heading = browser.text("h1").await;
    assert!(
        heading.contains("Signed out"),
        "after sign-out: {heading:?}"
    );

    // The account page asks to sign in again; the old password no longer works.
    browser.goto(&app.url("/account")).await;
    browser.wait_for("form#login").await;
    assert_eq!(browser.current_url().await.path(), "/login");
    sign_in(&browser, "bea", "Initial-Pass-93!").await;
    browser.wait_for("#error").await;
    assert_eq!(
        browser.attr("#error", "role").await.as_deref(),
        Some("alert")
    );
    assert!(
        browser.exists("form#login").await,
        "the sign-in form is shown again"
    );
    assert!(
        !browser.exists("#account-username").await,
        "the old password must not sign in"
    );

    // The new one does.
    sign_in(&browser, "bea", "Second-Pass-47?").await;
    assert_on_account_page(&browser, "bea").await;

    browser.close().await;
}

#[tokio::test]
async fn browser_required_password_change_comes_first() {
    let test = "browser_required_password_change_comes_first";
    let Some(browser) = Browser::start().await else {
        skip(test, SKIP_REASON);
        return;
    };
    let app = spawn_app().await;
    create_user(&app, "cal", "Temporary-Pass-61!", true).await;

    browser.goto(&app.url("/account")).await;
    browser.wait_for("form#login").await;
    sign_in(&browser, "cal", "Temporary-Pass-61!").await;

    // The password change comes before anything else.
    browser.wait_for("form#change-password").await;
    let url = browser.current_url().await;
    assert_eq!(url.path(), "/login/password", "password change at {url}");
    assert!(
        has_tx(&url),
        "the password change carries its transaction: {url}"
    );

    // A weak password is refused, with the reasons listed.
    browser
        .fill("form#change-password input#new_password", "short")
        .await;
    browser
        .fill("form#change-password input#confirm_password", "short")
        .await;
    browser
        .submit("form#change-password button#change-password")
        .await;
    browser.wait_for("ul#errors li").await;
    let errors = browser.texts("ul#errors li").await;
    assert!(!errors.is_empty(), "policy failures are listed");
    assert!(
        browser.exists("form#change-password").await,
        "the form is shown again after a refused password: {errors:?}"
    );
    assert!(!browser.exists("#account-username").await);

    // A good one leads to the account page.
    browser
        .fill(
            "form#change-password input#new_password",
            "Brand-New-Pass-58!",
        )
        .await;
    browser
        .fill(
            "form#change-password input#confirm_password",
            "Brand-New-Pass-58!",
        )
        .await;
    browser
        .submit("form#change-password button#change-password")
        .await;
    assert_on_account_page(&browser, "cal").await;

    browser.close().await;
}

#[tokio::test]
async fn browser_enrols_totp_from_the_page_and_signs_in_with_a_code() {
    use gatehouse::clock::Clock;
    let test = "browser_enrols_totp_from_the_page_and_signs_in_with_a_code";
    let Some(browser) = Browser::start().await else {
        skip(test, SKIP_REASON);
        return;
    };
    let app = spawn_app().await;
    create_user(&app, "dax", "Initial-Pass-93!", false).await;

    browser.goto(&app.url("/account")).await;
    browser.wait_for("form#login").await;
    sign_in(&browser, "dax", "Initial-Pass-93!").await;
    assert_on_account_page(&browser, "dax").await;

    // Enrol by reading the key off the page, as a person typing it into an app would.
    browser.click("a#manage-totp").await;
    browser.wait_for("img#qr").await;
    let secret = browser.text("#totp-secret").await;
    let code = crate::helpers::totp_code(&secret, app.clock.now().timestamp());
    browser.fill("form#totp-enrol input#code", &code).await;
    browser.submit("form#totp-enrol button#confirm-totp").await;
    browser.wait_for("#recovery-codes").await;
    assert_eq!(browser.count("#recovery-codes li").await, 10);
    browser.click("a#continue").await;
    assert_on_account_page(&browser, "dax").await;
    assert!(browser.text("#mfa-status").await.starts_with("On"));
    browser.submit("form#logout button#sign-out").await;
    browser.wait_for("h1").await;

    // The next sign-in asks for a code from the next time step.
    app.clock.advance(chrono::Duration::seconds(30));
    browser.goto(&app.url("/account")).await;
    browser.wait_for("form#login").await;
    sign_in(&browser, "dax", "Initial-Pass-93!").await;
    browser.wait_for("form#otp").await;
    assert_eq!(
        browser.attr("input#code", "autocomplete").await.as_deref(),
        Some("one-time-code")
    );
    let code = crate::helpers::totp_code(&secret, app.clock.now().timestamp());
    browser.fill("form#otp input#code", &code).await;
    browser.submit("form#otp button#verify").await;
    assert_on_account_page(&browser, "dax").await;

    browser.close().await;
}

// OpenID Connect: the redirect dance through the real sign-in pages.

#[tokio::test]
async fn browser_oidc_code_flow_through_sign_in_and_totp() {
    use gatehouse::{clock::Clock, oidc::clients::ClientSpec};
    let test = "browser_oidc_code_flow_through_sign_in_and_totp";
    let Some(browser) = Browser::start().await else {
        skip(test, SKIP_REASON);
        return;
    };
    let app = spawn_app().await;
    create_user(&app, "eli", "Initial-Pass-93!", false).await;
    // Enrol TOTP over HTTP first; the browser then meets the code step.
    let http = app.new_client();
    app.sign_in(&http, "eli", "Initial-Pass-93!").await;
    let (secret, _) = app.enrol_totp(&http).await;

    let (rp, mut requests) = crate::oidc::rp_listener().await;
    let redirect = format!("{rp}/callback");
    let reg =
        crate::oidc::register_client(&app, ClientSpec::new("Ward app", &[redirect.as_str()])).await;
    let mut authorize = url::Url::parse(&app.url("/authorize")).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("client_id", &reg.client_id)
        .append_pair("redirect_uri", &redirect)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid profile")
        .append_pair("state", "browser-state")
        .append_pair("nonce", "browser-nonce");

    browser.goto(authorize.as_str()).await;
    browser.wait_for("form#login").await;
    sign_in(&browser, "eli", "Initial-Pass-93!").await;
    browser.wait_for("form#otp").await;
    app.clock.advance(chrono::Duration::seconds(30));
    let code = crate::helpers::totp_code(&secret, app.clock.now().timestamp());
    browser.fill("form#otp input#code", &code).await;
    browser.submit("form#otp button#verify").await;
    browser.wait_for("#rp").await;

    let (line, _) = tokio::time::timeout(Duration::from_secs(10), requests.recv())
        .await
        .expect("the browser reached the relying party")
        .unwrap();
    let target = line.split(' ').nth(1).unwrap();
    let back = url::Url::parse(&format!("{rp}{target}")).unwrap();
    let q: std::collections::HashMap<String, String> = back.query_pairs().into_owned().collect();
    assert_eq!(back.path(), "/callback");
    assert_eq!(q["state"], "browser-state");
    let claims = id_token_claims(&app, &reg, &q["code"], &redirect).await;
    assert_eq!(claims["nonce"], "browser-nonce");
    assert_eq!(claims["acr"], "urn:gatehouse:acr:mfa");
    assert_eq!(claims["amr"], json!(["pwd", "otp"]));

    browser.close().await;
}

/// What a confidential client gets for `code` at `app`'s token endpoint: its ID token's
/// claims (already verified by the flows that call this; read as the RP would).
pub async fn id_token_claims(
    app: &crate::helpers::TestApp,
    reg: &gatehouse::oidc::clients::Registered,
    code: &str,
    redirect: &str,
) -> Value {
    let tokens: Value = crate::oidc::rp_http()
        .post(app.url("/token"))
        .basic_auth(
            &reg.client_id,
            Some(secrecy::ExposeSecret::expose_secret(
                reg.client_secret.as_ref().unwrap(),
            )),
        )
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id_token = tokens["id_token"].as_str().expect("an ID token");
    let payload = id_token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap()
}

// SAML 2.0: SP-initiated SSO through the real sign-in pages.

#[tokio::test]
async fn browser_saml_sp_initiated_sso_through_sign_in_and_totp() {
    use base64::{Engine, engine::general_purpose::STANDARD};
    use gatehouse::{clock::Clock, saml::providers::ImportSettings};
    let test = "browser_saml_sp_initiated_sso_through_sign_in_and_totp";
    let Some(browser) = Browser::start().await else {
        skip(test, SKIP_REASON);
        return;
    };
    let app = spawn_app().await;
    create_user(&app, "fay", "Initial-Pass-93!", false).await;
    // Enrol TOTP over HTTP first; the browser then meets the code step.
    let http = app.new_client();
    app.sign_in(&http, "fay", "Initial-Pass-93!").await;
    let (secret, _) = app.enrol_totp(&http).await;

    // The SP: its ACS is the small listener, registered from metadata naming it.
    let (sp_url, mut requests) = crate::oidc::rp_listener().await;
    let sp = crate::saml::TestSp::new(&format!("{sp_url}/acs"));
    sp.register(&app, ImportSettings::default()).await;

    // The SP sends the browser to Gatehouse with an HTTP-Redirect AuthnRequest.
    let id = format!("_{}", crate::saml::rand_id());
    let xml = sp.authn_request(&id, &app, "", "");
    let sso = app.url(&format!(
        "/saml/sso?{}",
        sp.redirect_query(&xml, Some("browser-relay"), false)
    ));
    browser.goto(&sso).await;
    browser.wait_for("form#login").await;
    sign_in(&browser, "fay", "Initial-Pass-93!").await;
    browser.wait_for("form#otp").await;
    app.clock.advance(chrono::Duration::seconds(30));
    let code = crate::helpers::totp_code(&secret, app.clock.now().timestamp());
    browser.fill("form#otp input#code", &code).await;
    browser.submit("form#otp button#verify").await;
    // The auto-submitting form posts the Response to the ACS.
    browser.wait_for("#rp").await;

    let (line, body) = tokio::time::timeout(Duration::from_secs(10), requests.recv())
        .await
        .expect("the browser reached the SP's ACS")
        .unwrap();
    assert!(line.starts_with("POST /acs "), "request line: {line}");
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
    assert_eq!(
        form.get("RelayState").map(String::as_str),
        Some("browser-relay")
    );
    let response = String::from_utf8(STANDARD.decode(&form["SAMLResponse"]).unwrap()).unwrap();

    let parsed: samael::schema::Response = response.parse().expect("a SAML Response");
    assert_eq!(parsed.in_response_to.as_deref(), Some(id.as_str()));
    let assertion = sp
        .samael(&app, false)
        .await
        .parse_xml_response(&response, Some(&[id.as_str()]))
        .expect("samael's SP accepts the Response");
    let confirmation = &assertion
        .subject
        .as_ref()
        .unwrap()
        .subject_confirmations
        .as_ref()
        .unwrap()[0];
    assert_eq!(
        confirmation
            .subject_confirmation_data
            .as_ref()
            .unwrap()
            .in_response_to
            .as_deref(),
        Some(id.as_str())
    );
    let statement = &assertion.authn_statements.as_ref().unwrap()[0];
    assert_eq!(
        statement
            .authn_context
            .as_ref()
            .unwrap()
            .value
            .as_ref()
            .unwrap()
            .value
            .as_deref(),
        Some("https://refeds.org/profile/mfa"),
        "the assertion says a second factor was used"
    );

    browser.close().await;
}
