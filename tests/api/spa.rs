//! Issue 25: a browser app (SPA) on a real OIDC library, `oidc-client-ts` from npm, in
//! headless Chromium against Gatehouse: sign-in by redirect, the code exchanged by
//! `fetch` (CORS), userinfo, and silent refresh with the rotated refresh token.
//!
//! The app (`tests/api/spa/index.html`, `app.js`) is served with the library's browser
//! bundle from a small HTTP server on a random loopback port, so its origin is
//! `http://127.0.0.1:PORT`: a secure context, where WebCrypto (PKCE) works.
//!
//! Runs when `GATEHOUSE_TEST_BROWSER=1` (see `browser.rs`). The library comes from
//! `tests/api/spa/package-lock.json`: `.ci/run` installs it; if it is missing, the test
//! runs `npm ci` itself. Without npm the test says it was skipped; with npm, an install
//! that fails (no registry) is a failure, so CI cannot skip it quietly.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex},
    time::Duration,
};

use gatehouse::oidc::clients::Registered;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use crate::{
    browser::Browser,
    helpers::{TestApp, create_user, skip, spawn_app},
    oidc::{query, register_client, rp_http},
    oidc_clients::{PASSWORD, public_spec},
};

/// A browser library from npm, pinned in a test folder's `package.json` and lock file.
pub(crate) struct NpmLibrary {
    /// The folder with `package.json`; npm installs into `node_modules/` there.
    pub dir: &'static str,
    pub name: &'static str,
    /// The bundle for `<script>`, under `dir`.
    pub bundle: &'static str,
    /// More `npm ci` arguments (`--omit=optional`).
    pub npm_args: &'static [&'static str],
}

/// The app's sources and `package.json`.
const SPA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/spa");
const SPA_LIBRARY: NpmLibrary = NpmLibrary {
    dir: SPA_DIR,
    name: "oidc-client-ts",
    // One file, defining the global `oidc`.
    bundle: "node_modules/oidc-client-ts/dist/browser/oidc-client-ts.min.js",
    npm_args: &[],
};
/// Sign-in, the code exchange and userinfo, on a busy 2-core CI machine.
const FLOW: Duration = Duration::from_secs(30);

/// Whether the tests can run: `Err` is why they are skipped.
fn gate() -> Result<(), String> {
    if !Browser::enabled() {
        return Err("GATEHOUSE_TEST_BROWSER not set".into());
    }
    SPA_LIBRARY.installed()
}

impl NpmLibrary {
    /// The version `package.json` pins (exactly: no range).
    fn pinned_version(&self) -> String {
        let path = Path::new(self.dir).join("package.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: reading {}: {e}", self.name, path.display()));
        let manifest: Value = serde_json::from_str(&text).expect("package.json is JSON");
        let version = manifest["dependencies"][self.name]
            .as_str()
            .unwrap_or_else(|| panic!("package.json names no {}", self.name));
        assert!(
            version.chars().all(|c| c.is_ascii_digit() || c == '.'),
            "package.json must pin {} to an exact version, not {version:?}",
            self.name
        );
        version.to_owned()
    }

    fn installed_version(&self) -> Option<String> {
        let path = Path::new(self.dir)
            .join("node_modules")
            .join(self.name)
            .join("package.json");
        let manifest: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
        manifest["version"].as_str().map(str::to_owned)
    }

    /// Makes sure the pinned library is in `node_modules` (`npm ci` from the lock file
    /// when it is not). `Err`: npm is not there, so the test is skipped; an install that
    /// fails is a panic.
    pub(crate) fn installed(&self) -> Result<(), String> {
        // Tests may get here at once; one `npm ci` at a time.
        static INSTALL: Mutex<()> = Mutex::new(());
        let _one = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
        let (dir, name) = (Path::new(self.dir), self.name);
        let pinned = self.pinned_version();
        if self.installed_version().as_deref() == Some(pinned.as_str())
            && dir.join(self.bundle).is_file()
        {
            return Ok(());
        }
        if Command::new("npm").arg("--version").output().is_err() {
            return Err(format!(
                "npm not found, and {name} is not installed in {}/node_modules \
                 (apt-get install nodejs npm, or npm ci --prefix {})",
                self.dir, self.dir
            ));
        }
        // --ignore-scripts: nothing from the registry runs on this machine.
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"])
            .args(self.npm_args)
            .arg("--prefix")
            .arg(dir)
            .output()
            .expect("running npm");
        assert!(
            out.status.success(),
            "`npm ci --prefix {}` failed ({}), so {name} {pinned} cannot be tested; \
             GATEHOUSE_TEST_BROWSER is set, so this is a failure:\n{}{}",
            self.dir,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            self.installed_version().as_deref(),
            Some(pinned.as_str()),
            "npm ci installed another {name} than package.json pins"
        );
        Ok(())
    }

    /// The bundle's bytes.
    pub(crate) fn bundle_bytes(&self) -> Vec<u8> {
        let path = Path::new(self.dir).join(self.bundle);
        std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    }
}

pub(crate) type Files = Arc<HashMap<&'static str, (&'static str, Vec<u8>)>>;

/// The app's files: the page (also at `/callback.html`, as an SPA's host serves its one
/// page for its routes), the app, the library, and `config.js` naming Gatehouse and the
/// client.
fn app_files(app: &TestApp, client_id: &str) -> Files {
    let dir = Path::new(SPA_DIR);
    let read = |name: &str| {
        let path: PathBuf = dir.join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("spa: reading {}: {e}", path.display()))
    };
    const HTML: &str = "text/html; charset=utf-8";
    const JS: &str = "text/javascript; charset=utf-8";
    let page = read("index.html");
    let config = json!({"authority": app.base, "client_id": client_id});
    let mut files = HashMap::new();
    files.insert("/", (HTML, page.clone()));
    files.insert("/callback.html", (HTML, page));
    files.insert("/app.js", (JS, read("app.js")));
    files.insert("/oidc-client-ts.min.js", (JS, SPA_LIBRARY.bundle_bytes()));
    files.insert(
        "/config.js",
        (JS, format!("window.SPA_CONFIG = {config};\n").into_bytes()),
    );
    Arc::new(files)
}

/// A loopback listener whose origin is the app's.
pub(crate) async fn app_listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("spa: bind");
    let origin = format!("http://{}", listener.local_addr().unwrap());
    (listener, origin)
}

/// Serves `files` on `listener` (GET only, one request per connection) until the test
/// ends.
pub(crate) fn serve(listener: TcpListener, files: Files) {
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let files = files.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut chunk = [0u8; 2048];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let mut line = head.lines().next().unwrap_or("").split(' ');
                let (method, target) = (line.next(), line.next().unwrap_or(""));
                let path = target.split('?').next().unwrap_or("");
                let (status, kind, body): (&str, &str, &[u8]) = match files.get(path) {
                    Some((kind, body)) if method == Some("GET") => {
                        ("200 OK", *kind, body.as_slice())
                    }
                    _ => ("404 Not Found", "text/plain", b"not found"),
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
                     Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(reply.as_bytes()).await;
                let _ = sock.write_all(body).await;
                let _ = sock.shutdown().await;
            });
        }
    });
}

/// Waits until the page's state is `want` or a step failed; panics with what the page
/// shows otherwise.
async fn wait_for_state(browser: &Browser, want: &str) {
    let css = format!("body[data-state='{want}'], body[data-state$='-failed']");
    browser.wait_for_within(&css, FLOW).await;
    let state = browser.attr("body", "data-state").await.unwrap_or_default();
    assert_eq!(
        state,
        want,
        "spa: {}\ncalls:\n{}\nerrors:\n{}",
        browser.text("#failure").await,
        browser.text("#calls").await,
        browser.text("#errors").await
    );
}

/// Opens the app at `origin`, and signs in through Gatehouse's pages as a person does.
async fn sign_in_from(browser: &Browser, app: &TestApp, origin: &str, username: &str) {
    browser.goto(&format!("{origin}/")).await;
    browser.wait_for("body[data-state='ready']").await;
    browser.click("button#sign-in").await;
    browser.wait_for("form#login").await;
    let at = browser.current_url().await;
    assert_eq!(
        at.origin().ascii_serialization(),
        app.base,
        "the library sent the browser to Gatehouse's sign-in page, not {at}"
    );
    browser.fill("form#login input#username", username).await;
    browser.fill("form#login input#password", PASSWORD).await;
    browser.submit("form#login button#sign-in").await;
}

/// The refresh token oidc-client-ts keeps for the signed-in user (its session storage).
async fn stored_refresh_token(browser: &Browser) -> String {
    let script = "for (let i = 0; i < sessionStorage.length; i++) { \
                    const key = sessionStorage.key(i); \
                    if (key.startsWith('oidc.user:')) \
                      return JSON.parse(sessionStorage.getItem(key)).refresh_token; \
                  } \
                  return null;";
    let value = browser
        .client()
        .execute(script, Vec::new())
        .await
        .expect("spa: reading the stored user");
    value
        .as_str()
        .expect("spa: oidc-client-ts keeps a refresh token (offline_access)")
        .to_owned()
}

/// What became of a `fetch` of `url` from the page, with `credentials` ("omit",
/// "include"): `read <status>` or `refused <error>`.
async fn page_fetch(browser: &Browser, url: &str, credentials: &str) -> String {
    let script = "const done = arguments[arguments.length - 1]; \
                  fetch(arguments[0], {credentials: arguments[1]}).then( \
                    r => done('read ' + r.status), e => done('refused ' + e.name));";
    browser
        .client()
        .execute_async(script, vec![json!(url), json!(credentials)])
        .await
        .expect("spa: fetch from the page")
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn spa_client(app: &TestApp, redirect_origin: &str) -> Registered {
    let redirect = format!("{redirect_origin}/callback.html");
    register_client(app, public_spec("Ward SPA", &[redirect.as_str()])).await
}

#[tokio::test]
async fn spa_oidc_client_ts_signs_in_reads_userinfo_and_refreshes_silently() {
    let test = "spa_oidc_client_ts_signs_in_reads_userinfo_and_refreshes_silently";
    if let Err(why) = gate() {
        skip(test, &why);
        return;
    }
    let app = spawn_app().await;
    let user = create_user(&app, "nina", PASSWORD, false).await;
    let (listener, origin) = app_listener().await;
    // The default allowed origins ("+"): the redirect URI's, which is the app's.
    let client = spa_client(&app, &origin).await;
    serve(listener, app_files(&app, &client.client_id));
    let browser = Browser::start().await.expect("enabled: checked above");

    sign_in_from(&browser, &app, &origin, "nina").await;
    wait_for_state(&browser, "signed-in").await;
    assert_eq!(browser.text("#sub").await, user.id);
    assert_eq!(browser.text("#username").await, "nina");
    assert_eq!(browser.text("#email").await, "nina@example.org");
    assert_eq!(browser.text("#token-sub").await, user.id);
    let calls = browser.text("#calls").await;
    for call in [
        "GET /.well-known/openid-configuration -> 200",
        "POST /token -> 200",
        "GET /userinfo -> 200",
    ] {
        assert!(calls.contains(call), "{call} in:\n{calls}");
    }

    // Silent refresh: oidc-client-ts holds a refresh token, so it spends it at /token
    // and reads userinfo again with the new access token.
    let old_refresh = stored_refresh_token(&browser).await;
    let old_token = browser.text("#token-id").await;
    let old_exp: i64 = browser.text("#token-exp").await.parse().unwrap();
    app.clock.advance(chrono::Duration::seconds(90));
    browser.click("button#refresh").await;
    wait_for_state(&browser, "refreshed-1").await;
    assert_ne!(
        browser.text("#token-id").await,
        old_token,
        "a new access token"
    );
    let new_exp: i64 = browser.text("#token-exp").await.parse().unwrap();
    assert_eq!(
        new_exp,
        old_exp + 90,
        "the new token's expiry counts from now"
    );
    assert_eq!(browser.text("#token-sub").await, user.id);
    assert_eq!(browser.text("#username").await, "nina");
    let calls = browser.text("#calls").await;
    assert_eq!(calls.matches("POST /token -> 200").count(), 2, "{calls}");
    assert_eq!(calls.matches("GET /userinfo -> 200").count(), 2, "{calls}");
    // (Compared, never printed: they are live tokens.)
    let rotated = stored_refresh_token(&browser).await != old_refresh;
    assert!(rotated, "the refresh token was rotated");

    // Gatehouse's pages are not for scripts, not even from the client's own origin,
    // with or without the user's cookies; the public discovery document is (without:
    // `*` never admits credentials).
    for (path, credentials, want) in [
        ("/.well-known/openid-configuration", "omit", "read 200"),
        (
            "/.well-known/openid-configuration",
            "include",
            "refused TypeError",
        ),
        ("/login", "omit", "refused TypeError"),
        ("/account", "include", "refused TypeError"),
    ] {
        let got = page_fetch(&browser, &app.url(path), credentials).await;
        assert_eq!(got, want, "{path} (credentials: {credentials})");
    }
    assert_eq!(
        browser.text("#errors").await,
        "",
        "no JavaScript error through sign-in, userinfo and refresh"
    );

    // The spent refresh token is refused; presenting it ends its whole family
    // (RFC 9700 §4.14.2), which the app then meets at its next refresh.
    let res = rp_http()
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", client.client_id.as_str()),
            ("refresh_token", old_refresh.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
    browser.click("button#refresh").await;
    wait_for_state(&browser, "refresh-failed").await;
    let failure = browser.text("#failure").await;
    assert!(
        failure.starts_with("refresh failed: invalid_grant: "),
        "the app reads why (CORS on errors too): {failure}"
    );

    browser.close().await;
}

#[tokio::test]
async fn spa_on_an_origin_the_client_does_not_allow_cannot_read_its_tokens() {
    let test = "spa_on_an_origin_the_client_does_not_allow_cannot_read_its_tokens";
    if let Err(why) = gate() {
        skip(test, &why);
        return;
    }
    let app = spawn_app().await;
    create_user(&app, "nina", PASSWORD, false).await;
    // The client's app is at port A. Another local app at port B may use the loopback
    // redirect URI (RFC 8252 §7.3: any port), but its origin is not the client's.
    let (_registered, allowed) = app_listener().await;
    let (listener, other) = app_listener().await;
    let client = spa_client(&app, &allowed).await;
    serve(listener, app_files(&app, &client.client_id));
    let browser = Browser::start().await.expect("enabled: checked above");

    sign_in_from(&browser, &app, &other, "nina").await;
    wait_for_state(&browser, "callback-failed").await;
    let failure = browser.text("#failure").await;
    assert_eq!(failure, "callback failed: TypeError: Failed to fetch");
    let calls = browser.text("#calls").await;
    assert!(
        calls.contains("POST /token -> TypeError: Failed to fetch"),
        "{calls}"
    );
    assert!(!calls.contains("/userinfo"), "{calls}");

    // The browser did send the exchange and Gatehouse answered it (the code is spent);
    // only the page was not allowed to read the answer.
    let back = browser.current_url().await;
    assert_eq!(back.path(), "/callback.html");
    let code = query(&back)["code"].clone();
    let res = crate::oidc_clients::public_exchange(
        &app,
        &client.client_id,
        &code,
        &format!("{other}/callback.html"),
        Some(&other),
    )
    .await;
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("access-control-allow-origin").is_none());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("already used")),
        "{body}"
    );

    browser.close().await;
}
