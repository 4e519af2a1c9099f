//! Gatehouse with a real Shibboleth SP 3 (Debian `apache2` + `libapache2-mod-shib`),
//! configured as a new user would: Debian's default `shibboleth2.xml` with the entity ids,
//! Gatehouse's metadata from a file and the attribute names added
//! (`tests/api/shibboleth/`), the SP's metadata imported with `gatehouse sp import`, and
//! a sign-in driven as a browser does it, auto-submitted forms and all, to a page behind
//! `AuthType shibboleth` that shows what the SP received.
//!
//! Each test runs its own `shibd` and Apache (own directory, socket, port, logs); they
//! are killed when the test's [`Shibboleth`] is dropped. Runs when
//! `GATEHOUSE_TEST_SHIBBOLETH=1` (`.ci/run` sets it and installs the packages).

use std::{
    collections::BTreeMap,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use tempfile::TempDir;

use crate::helpers::{TestApp, create_user, hidden, skip, spawn_app_with, unescape};

pub const PASSWORD: &str = "Correct-Horse-9-Battery";
const TEMPLATES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/shibboleth");

/// Whether the Shibboleth tests run here; says so plainly when not.
pub fn enabled(test: &str) -> bool {
    if std::env::var("GATEHOUSE_TEST_SHIBBOLETH").as_deref() == Ok("1") {
        return true;
    }
    skip(
        test,
        "set GATEHOUSE_TEST_SHIBBOLETH=1 (needs Debian apache2 and libapache2-mod-shib)",
    );
    false
}

/// Gatehouse on SQLite with its master key in its data directory, so that the
/// `gatehouse` command (`sp import`) works on the same instance, as an operator's would.
pub async fn gatehouse() -> TestApp {
    spawn_app_with(|c| {
        c.database_url = None;
        c.master_key = None;
    })
    .await
}

/// What a test changes in the SP's configuration.
#[derive(Default, Clone)]
pub struct SpSetup {
    /// Extra attributes of `<ApplicationDefaults>` (`signing="true"`, …).
    pub application: String,
    /// Extra attributes of `<SSO>` (`outgoingBindings="…"`, `forceAuthn="true"`, …).
    pub sso: String,
    /// Debian's `attribute-map.xml` as installed, without Gatehouse's names added.
    pub debian_attribute_map: bool,
}

/// A running Shibboleth SP: `shibd` and Apache with `mod_shib`.
pub struct Shibboleth {
    pub dir: TempDir,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub entity_id: String,
    shibd: Child,
    apache: Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn template(name: &str) -> String {
    std::fs::read_to_string(Path::new(TEMPLATES).join(name)).unwrap()
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Shibboleth {
    /// Starts an SP that trusts `app` (its metadata saved to a file) and registers it
    /// with `gatehouse sp import --metadata <the SP's /Shibboleth.sso/Metadata>` plus
    /// `import_args`.
    pub async fn start(app: &TestApp, setup: &SpSetup, import_args: &[&str]) -> Self {
        let sp = Self::launch(app, setup).await;
        sp.import(app, import_args);
        sp
    }

    /// Starts the SP without registering it.
    pub async fn launch(app: &TestApp, setup: &SpSetup) -> Self {
        Self::launch_with_metadata_filters(app, setup, "").await
    }

    /// As [`Self::launch`], with `filters` (`<MetadataFilter>` elements) inside the
    /// provider that loads Gatehouse's metadata (tests/api/shibboleth_metadata.rs).
    pub(crate) async fn launch_with_metadata_filters(
        app: &TestApp,
        setup: &SpSetup,
        filters: &str,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Apache's workers run as www-data when the tests run as root.
        set_mode(d, 0o755);
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let entity_id = format!("{base}/shibboleth");
        let idp_metadata = app.get("/saml/metadata").await.text().await.unwrap();
        write(&d.join("gatehouse-metadata.xml"), &idp_metadata);
        let idp = gatehouse::saml::entity_id(&app.state);
        let fill = |text: String| {
            text.replace("{dir}", d.to_str().unwrap())
                .replace("{sp}", &entity_id)
                .replace("{idp}", &idp)
                .replace("{port}", &port.to_string())
                .replace("{sp_options}", &setup.application)
                .replace("{sso_options}", &setup.sso)
                .replace("{metadata_filters}", filters)
        };
        write(
            &d.join("shibboleth2.xml"),
            &fill(template("shibboleth2.xml")),
        );
        write(&d.join("apache.conf"), &fill(template("apache.conf")));
        for name in ["shibd", "native"] {
            let log = d.join(format!("{name}.log"));
            write(
                &d.join(format!("{name}.logger")),
                &template("logger").replace("{log}", log.to_str().unwrap()),
            );
            // mod_shib logs from Apache's worker, which must be able to write it.
            write(&log, "");
            set_mode(&log, 0o666);
        }
        let map = std::fs::read_to_string("/etc/shibboleth/attribute-map.xml").unwrap();
        let at = map
            .rfind("</Attributes>")
            .expect("Debian's attribute-map.xml");
        let added = if setup.debian_attribute_map {
            String::new()
        } else {
            template("attributes.xml")
        };
        write(
            &d.join("attribute-map.xml"),
            &format!("{}{added}{}", &map[..at], &map[at..]),
        );
        for pair in ["sp-signing", "sp-encrypt"] {
            run(Command::new("shib-keygen")
                .args(["-b", "-o"])
                .arg(d)
                .args(["-n", pair, "-h", "localhost", "-y", "1", "-e", &entity_id])
                .args(["-u", &whoami("-un"), "-g", &whoami("-gn")]));
        }
        std::fs::create_dir(d.join("htdocs")).unwrap();
        std::fs::create_dir(d.join("cgi")).unwrap();
        let cgi = d.join("cgi/env");
        write(&cgi, &template("env.cgi"));
        set_mode(&cgi, 0o755);

        let shibd = Command::new("shibd")
            .args(["-F", "-f", "-c"])
            .arg(d.join("shibboleth2.xml"))
            .arg("-p")
            .arg(d.join("shibd.pid"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("shibd.stderr")).unwrap())
            .spawn()
            .expect("shibd runs (Debian package libapache2-mod-shib)");
        wait_for(|| d.join("shibd.sock").exists(), "shibd's socket", d);
        let apache = Command::new("/usr/sbin/apache2")
            .arg("-f")
            .arg(d.join("apache.conf"))
            .arg("-X")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("apache.stderr")).unwrap())
            .spawn()
            .expect("apache2 runs (Debian package apache2)");
        let sp = Self {
            dir,
            base,
            entity_id,
            shibd,
            apache,
        };
        let metadata = sp.url("/Shibboleth.sso/Metadata");
        let client = crate::helpers::client();
        for _ in 0..300 {
            if let Ok(res) = client.get(&metadata).send().await
                && res.status() == 200
            {
                return sp;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the SP did not answer at {metadata}\n{}", sp.logs());
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `gatehouse sp import --metadata <URL of the SP's metadata> --json` + `args`, on
    /// `app`'s data directory; returns the printed JSON.
    pub fn import(&self, app: &TestApp, args: &[&str]) -> serde_json::Value {
        let out = crate::cli::gatehouse(app.data_dir.path())
            .args(["sp", "import", "--metadata"])
            .arg(self.url("/Shibboleth.sso/Metadata"))
            .arg("--json")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sp import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["entity_id"], self.entity_id.as_str());
        json
    }

    /// The SP's own log (`shibd.log`), where it says why it refused a message.
    pub fn shibd_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("shibd.log")).unwrap_or_default()
    }

    /// The end of every log, for a failing test's message.
    pub fn logs(&self) -> String {
        let d = self.dir.path();
        [
            "shibd.log",
            "native.log",
            "error.log",
            "shibd.stderr",
            "apache.stderr",
        ]
        .iter()
        .map(|name| {
            let text = std::fs::read_to_string(d.join(name)).unwrap_or_default();
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| !l.contains(" DEBUG ") && !l.contains(" INFO "))
                .collect();
            let tail = lines[lines.len().saturating_sub(30)..].join("\n");
            format!("--- {name}\n{tail}")
        })
        .collect::<Vec<_>>()
        .join("\n")
    }
}

impl Drop for Shibboleth {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for child in [&mut self.apache, &mut self.shibd] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn whoami(flag: &str) -> String {
    let out = Command::new("id").arg(flag).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn wait_for(ready: impl Fn() -> bool, what: &str, dir: &Path) {
    for _ in 0..300 {
        if ready() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(dir.join("shibd.stderr")).unwrap_or_default();
    panic!("no {what} after 30 s: {log}");
}

/// A browser: one cookie jar, following redirects and auto-submitted forms across
/// Gatehouse and the SP, signing in at Gatehouse's page when it comes.
pub struct Browser {
    pub client: reqwest::Client,
    /// Every SAML message the browser carried, as (field, URL it went to, base64).
    pub carried: Vec<(String, String, String)>,
    pub username: String,
    /// The TOTP secret for Gatehouse's second-factor page.
    pub totp_secret: Option<String>,
    /// How often Gatehouse asked for the password.
    pub sign_ins: usize,
}

/// Where the browser stopped: the last URL, status and page.
#[derive(Debug)]
pub struct Page {
    pub url: String,
    pub status: u16,
    pub body: String,
}

/// An HTML form: its action and hidden fields.
pub struct Form {
    pub action: String,
    pub fields: Vec<(String, String)>,
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let marker = format!("{name}=\"");
    let start = tag.find(&marker)? + marker.len();
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

/// The page's POST form that carries a SAML message (what its script would submit).
pub fn saml_form(html: &str) -> Option<Form> {
    let lower = html.to_ascii_lowercase();
    let at = lower.find("<form")?;
    let end = lower[at..].find("</form>").map_or(html.len(), |e| e + at);
    let form = &html[at..end];
    let open = &form[..form.find('>')?];
    if !open.to_ascii_lowercase().contains("method=\"post\"") {
        return None;
    }
    let action = attribute(open, "action")?;
    let fields: Vec<(String, String)> = form
        .split("<input")
        .skip(1)
        .map(|i| &i[..i.find('>').unwrap_or(i.len())])
        .filter(|i| i.contains("type=\"hidden\""))
        .filter_map(|i| Some((attribute(i, "name")?, attribute(i, "value")?)))
        .collect();
    fields
        .iter()
        .any(|(k, _)| k == "SAMLRequest" || k == "SAMLResponse")
        .then_some(Form { action, fields })
}

impl Browser {
    pub fn new(username: &str) -> Self {
        Self {
            client: crate::helpers::client(),
            carried: Vec::new(),
            username: username.to_owned(),
            totp_secret: None,
            sign_ins: 0,
        }
    }

    /// GETs `url` and goes wherever the sites send the browser, until a page that is
    /// neither a redirect, a SAML form nor Gatehouse's sign-in.
    pub async fn visit(&mut self, app: &TestApp, url: &str) -> Page {
        self.note_query(url);
        let res = self.client.get(url).send().await.unwrap();
        self.follow(app, url.to_owned(), res).await
    }

    pub async fn follow(
        &mut self,
        app: &TestApp,
        mut url: String,
        first: reqwest::Response,
    ) -> Page {
        let mut res = first;
        for _ in 0..30 {
            let status = res.status().as_u16();
            if (300..400).contains(&status) {
                let location = res.headers()["location"].to_str().unwrap().to_owned();
                url = url::Url::parse(&url)
                    .unwrap()
                    .join(&location)
                    .unwrap()
                    .to_string();
                self.note_query(&url);
                res = self.client.get(&url).send().await.unwrap();
                continue;
            }
            let body = res.text().await.unwrap();
            if let Some(form) = saml_form(&body) {
                url = url::Url::parse(&url)
                    .unwrap()
                    .join(&form.action)
                    .unwrap()
                    .to_string();
                for (k, v) in &form.fields {
                    if k.starts_with("SAML") {
                        self.carried.push((k.clone(), url.clone(), v.clone()));
                    }
                }
                res = self
                    .client
                    .post(&url)
                    .form(&form.fields)
                    .send()
                    .await
                    .unwrap();
                continue;
            }
            if url.starts_with(&app.base) && body.contains("name=\"password\"") {
                self.sign_ins += 1;
                res = self.sign_in(app, &body).await;
                url = app.url("/login");
                continue;
            }
            if url.starts_with(&app.base)
                && body.contains("name=\"code\"")
                && self.totp_secret.is_some()
            {
                res = self.second_factor(app, &body).await;
                url = app.url("/login/otp");
                continue;
            }
            return Page { url, status, body };
        }
        panic!("the browser went round in circles, last at {url}");
    }

    fn note_query(&mut self, url: &str) {
        let parsed = url::Url::parse(url).unwrap();
        for (k, v) in parsed.query_pairs() {
            if k == "SAMLRequest" || k == "SAMLResponse" {
                self.carried
                    .push((k.into_owned(), url.to_owned(), v.into_owned()));
            }
        }
    }

    async fn sign_in(&self, app: &TestApp, html: &str) -> reqwest::Response {
        let mut form = vec![
            ("tx", hidden(html, "tx")),
            ("csrf", hidden(html, "csrf")),
            ("password", PASSWORD.to_owned()),
        ];
        if !html.contains("name=\"username\" value=\"") || !html.contains("readonly") {
            form.push(("username", self.username.clone()));
        }
        self.client
            .post(app.url("/login"))
            .header("Origin", &app.base)
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    async fn second_factor(&self, app: &TestApp, html: &str) -> reqwest::Response {
        use gatehouse::clock::Clock;
        let secret = self.totp_secret.as_deref().unwrap();
        let code = crate::helpers::totp_code(secret, app.clock.now().timestamp());
        let action = html
            .split("method=\"post\" action=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .map(unescape)
            .unwrap_or_else(|| "/login/otp".to_owned());
        self.client
            .post(app.url(&action))
            .header("Origin", &app.base)
            .form(&[
                ("tx", hidden(html, "tx")),
                ("csrf", hidden(html, "csrf")),
                ("code", code),
            ])
            .send()
            .await
            .unwrap()
    }

    /// The SAML messages of kind `field` the browser carried, decoded (the Redirect
    /// binding's are inflated).
    pub fn messages(&self, field: &str) -> Vec<String> {
        use base64::{Engine, engine::general_purpose::STANDARD};
        self.carried
            .iter()
            .filter(|(k, _, _)| k == field)
            .map(|(_, url, v)| {
                let compact: String = v.split_whitespace().collect();
                let bytes = STANDARD.decode(compact).unwrap();
                if url.contains(&format!("{field}=")) {
                    inflate(&bytes)
                } else {
                    String::from_utf8(bytes).unwrap()
                }
            })
            .collect()
    }
}

fn inflate(bytes: &[u8]) -> String {
    use std::io::Read;
    let mut out = String::new();
    flate2::read::DeflateDecoder::new(bytes)
        .read_to_string(&mut out)
        .unwrap();
    out
}

/// The variables the SP's protected page (`/secure/env`, a CGI) received.
pub fn variables(page: &Page) -> BTreeMap<String, String> {
    page.body
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// A user in organisation `default`, password [`PASSWORD`].
pub async fn user(app: &TestApp, username: &str) {
    create_user(app, username, PASSWORD, false).await;
}

/// Signs `username` in at `sp`'s protected page; returns the page and what the browser
/// carried.
pub async fn sign_in(app: &TestApp, sp: &Shibboleth, username: &str) -> (Page, Browser) {
    let mut browser = Browser::new(username);
    let page = browser.visit(app, &sp.url("/secure/env")).await;
    (page, browser)
}

/// The protected page as the SP shows it to a signed-in user: the attributes Gatehouse
/// released, under the names of `attributes.xml`, and Gatehouse as the IdP.
pub(crate) fn assert_signed_in(app: &TestApp, sp: &Shibboleth, page: &Page, username: &str) {
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.url, sp.url("/secure/env"), "{}", page.body);
    let vars = variables(page);
    assert_eq!(
        vars.get("Shib_Identity_Provider").map(String::as_str),
        Some(gatehouse::saml::entity_id(&app.state).as_str()),
        "{vars:?}"
    );
    assert_eq!(
        vars.get("gh_email").map(String::as_str),
        Some(format!("{username}@example.org").as_str()),
        "{vars:?}"
    );
    assert_eq!(vars.get("gh_username").map(String::as_str), Some(username));
    assert!(
        vars.get("REMOTE_USER").is_some_and(|u| !u.is_empty()),
        "the persistent NameID is the SP's REMOTE_USER: {vars:?}"
    );
}

#[tokio::test]
async fn shibboleth_out_of_the_box_signs_in_with_an_encrypted_assertion() {
    if !enabled("shibboleth_out_of_the_box_signs_in_with_an_encrypted_assertion") {
        return;
    }
    let app = gatehouse().await;
    user(&app, "shibuser").await;
    let sp = Shibboleth::start(&app, &SpSetup::default(), &[]).await;
    let (page, browser) = sign_in(&app, &sp, "shibuser").await;
    assert_signed_in(&app, &sp, &page, "shibuser");
    let responses = browser.messages("SAMLResponse");
    assert_eq!(responses.len(), 1);
    assert!(
        responses[0].contains("EncryptedAssertion") && !responses[0].contains("<saml2:Assertion"),
        "Shibboleth's metadata carries an encryption key, so the assertion is encrypted"
    );
    assert!(!sp.shibd_log().contains("failed to decrypt"));

    // Its default logout (front channel, signed) ends the Gatehouse session too.
    let mut browser = browser;
    let page = browser.visit(&app, &sp.url("/Shibboleth.sso/Logout")).await;
    let requests = browser.messages("SAMLRequest");
    assert!(requests.last().is_some_and(|r| r.contains("LogoutRequest")));
    let (_, sent, _) = browser
        .carried
        .iter()
        .rev()
        .find(|(k, _, _)| k == "SAMLRequest")
        .unwrap();
    assert!(sent.contains("Signature="), "signed by default: {sent}");
    assert!(
        page.body.contains("Logout completed successfully"),
        "{}",
        page.body
    );
    let again = browser.visit(&app, &sp.url("/secure/env")).await;
    assert_signed_in(&app, &sp, &again, "shibuser");
    assert_eq!(
        browser.sign_ins, 2,
        "signed out at Gatehouse: a password again"
    );
}

const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";

/// Shibboleth told to sign its AuthnRequests, sent by `binding`.
fn signing_setup(binding: &str) -> SpSetup {
    SpSetup {
        application: r#"signing="true""#.into(),
        sso: format!(r#"outgoingBindings="urn:oasis:names:tc:SAML:2.0:bindings:{binding}""#),
        ..SpSetup::default()
    }
}

#[tokio::test]
async fn shibboleth_signs_its_requests_with_an_algorithm_from_our_metadata_by_post_and_redirect() {
    if !enabled(
        "shibboleth_signs_its_requests_with_an_algorithm_from_our_metadata_by_post_and_redirect",
    ) {
        return;
    }
    let app = gatehouse().await;
    user(&app, "signer").await;
    for binding in ["HTTP-POST", "HTTP-Redirect"] {
        let sp = Shibboleth::start(
            &app,
            &signing_setup(binding),
            &["--require-signed-requests", "true"],
        )
        .await;
        let (page, browser) = sign_in(&app, &sp, "signer").await;
        assert_signed_in(&app, &sp, &page, "signer");
        let (_, url, _) = browser
            .carried
            .iter()
            .find(|(k, _, _)| k == "SAMLRequest")
            .expect("an AuthnRequest");
        if binding == "HTTP-POST" {
            assert!(!url.contains("SAMLRequest="), "sent by POST: {url}");
            let xml = &browser.messages("SAMLRequest")[0];
            assert!(
                xml.contains(&format!(r#"SignatureMethod Algorithm="{RSA_SHA256}""#)),
                "Shibboleth's default for POST is RSA-SHA1; our metadata made it pick RSA-SHA256: {xml}"
            );
        } else {
            let query = url::Url::parse(url).unwrap();
            let sig_alg = query
                .query_pairs()
                .find(|(k, _)| k == "SigAlg")
                .map(|(_, v)| v.into_owned());
            assert_eq!(
                sig_alg.as_deref(),
                Some(RSA_SHA256),
                "sent by Redirect, signed: {url}"
            );
        }
    }
}

#[tokio::test]
async fn shibboleth_unsigned_logout_is_refused_and_answered_so_the_user_is_not_stranded() {
    if !enabled("shibboleth_unsigned_logout_is_refused_and_answered_so_the_user_is_not_stranded") {
        return;
    }
    let app = gatehouse().await;
    user(&app, "leaver").await;
    // `signing="false"`: Shibboleth's LogoutRequests go unsigned.
    let unsigned = SpSetup {
        application: r#"signing="false""#.into(),
        ..SpSetup::default()
    };
    let sp = Shibboleth::start(&app, &unsigned, &[]).await;
    let (page, mut browser) = sign_in(&app, &sp, "leaver").await;
    assert_signed_in(&app, &sp, &page, "leaver");

    // Its metadata has a signing key, so Gatehouse refuses an unsigned LogoutRequest (a
    // forged one would be a logout-CSRF) and says so.
    let page = browser.visit(&app, &sp.url("/Shibboleth.sso/Logout")).await;
    let (_, sent, _) = browser
        .carried
        .iter()
        .rev()
        .find(|(k, _, _)| k == "SAMLRequest")
        .unwrap();
    assert!(!sent.contains("Signature="), "unsigned: {sent}");
    assert!(page.url.starts_with(&app.base), "{page:?}");
    assert_eq!(page.status, 400, "{}", page.body);
    let text = unescape(&page.body);
    assert!(text.contains("You are still signed in"), "{text}");
    assert!(text.contains("must be signed"), "{text}");
    let link = page
        .body
        .split("id=\"continue\" href=\"")
        .nth(1)
        .map(|r| unescape(&r[..r.find('"').unwrap()]))
        .unwrap_or_else(|| panic!("a way back to the application: {}", page.body));
    assert!(link.starts_with(&sp.url("/Shibboleth.sso/SLO/")), "{link}");

    // Back at the SP, it reads our signed RequestDenied and tells its user.
    let back = browser.visit(&app, &link).await;
    assert!(back.url.starts_with(&sp.base), "{back:?}");
    let said = unescape(&back.body);
    assert!(
        said.contains("urn:oasis:names:tc:SAML:2.0:status:RequestDenied")
            && said.contains("must be signed"),
        "{said}"
    );
    let responses = browser.messages("SAMLResponse");
    assert!(
        responses
            .last()
            .is_some_and(|r| r.contains("status:RequestDenied")),
        "{responses:?}"
    );

    // The Gatehouse session is still there: the SP signs in again without a password.
    let again = browser.visit(&app, &sp.url("/secure/env")).await;
    assert_signed_in(&app, &sp, &again, "leaver");
    assert_eq!(browser.sign_ins, 1, "no second password");
}

/// `/Shibboleth.sso/Login` with `options`, back to the SP's session page.
fn login_url(sp: &Shibboleth, options: &str) -> String {
    let target: String =
        url::form_urlencoded::byte_serialize(sp.url("/Shibboleth.sso/Session").as_bytes())
            .collect();
    sp.url(&format!("/Shibboleth.sso/Login?target={target}{options}"))
}

#[tokio::test]
async fn shibboleth_force_authn_asks_for_the_password_again_and_is_passive_never_shows_a_page() {
    if !enabled(
        "shibboleth_force_authn_asks_for_the_password_again_and_is_passive_never_shows_a_page",
    ) {
        return;
    }
    let app = gatehouse().await;
    user(&app, "nurse").await;
    let sp = Shibboleth::start(&app, &SpSetup::default(), &[]).await;

    // IsPassive without a Gatehouse session: NoPassive, no page of ours.
    let mut browser = Browser::new("nurse");
    let page = browser
        .visit(&app, &login_url(&sp, "&isPassive=true"))
        .await;
    assert_eq!(browser.sign_ins, 0, "{page:?}");
    assert!(browser.messages("SAMLRequest")[0].contains(r#"IsPassive="1""#));
    assert!(browser.messages("SAMLResponse")[0].contains("status:NoPassive"));
    assert!(page.url.starts_with(&sp.base), "{page:?}");
    // Shibboleth 3.4 shows the status as an error of the IdP's.
    assert!(
        unescape(&page.body).contains("status:NoPassive"),
        "{}",
        page.body
    );

    // Signed in once; IsPassive now answers at once.
    let page = browser.visit(&app, &sp.url("/secure/env")).await;
    assert_signed_in(&app, &sp, &page, "nurse");
    let page = browser
        .visit(&app, &login_url(&sp, "&isPassive=true"))
        .await;
    assert_eq!(browser.sign_ins, 1);
    assert!(page.body.contains("Authentication Time"), "{}", page.body);

    // A new sign-in without ForceAuthn reuses the Gatehouse session; with it, the
    // password is asked again.
    browser.visit(&app, &login_url(&sp, "")).await;
    assert_eq!(browser.sign_ins, 1);
    let page = browser
        .visit(&app, &login_url(&sp, "&forceAuthn=true"))
        .await;
    assert!(
        browser
            .messages("SAMLRequest")
            .last()
            .unwrap()
            .contains(r#"ForceAuthn="1""#)
    );
    assert_eq!(browser.sign_ins, 2, "ForceAuthn: the password again");
    assert!(page.body.contains("Authentication Time"), "{}", page.body);
}

#[tokio::test]
async fn shibboleth_signs_in_an_account_with_totp_and_hears_the_mfa_context() {
    if !enabled("shibboleth_signs_in_an_account_with_totp_and_hears_the_mfa_context") {
        return;
    }
    let app = gatehouse().await;
    user(&app, "doctor").await;
    let enrolling = app.new_client();
    assert_eq!(
        app.sign_in(&enrolling, "doctor", PASSWORD).await.status(),
        303
    );
    let (secret, _) = app.enrol_totp(&enrolling).await;
    // The enrolment used this period's code; the sign-in needs the next one.
    app.clock.advance(chrono::Duration::seconds(30));
    let sp = Shibboleth::start(&app, &SpSetup::default(), &[]).await;
    let mut browser = Browser::new("doctor");
    browser.totp_secret = Some(secret);
    let page = browser.visit(&app, &sp.url("/secure/env")).await;
    assert_signed_in(&app, &sp, &page, "doctor");
    assert_eq!(
        variables(&page)
            .get("Shib_AuthnContext_Class")
            .map(String::as_str),
        Some("https://refeds.org/profile/mfa")
    );
}

#[tokio::test]
async fn shibboleth_accepts_a_signed_response_around_an_encrypted_or_a_plain_assertion() {
    if !enabled("shibboleth_accepts_a_signed_response_around_an_encrypted_or_a_plain_assertion") {
        return;
    }
    let app = gatehouse().await;
    user(&app, "porter").await;
    let variants: [(&[&str], bool); 2] = [
        (
            &["--sign-response", "true", "--sign-assertion", "false"],
            true,
        ),
        (
            &["--sign-response", "true", "--encrypt-assertions", "false"],
            false,
        ),
    ];
    for (args, encrypted) in variants {
        let sp = Shibboleth::start(&app, &SpSetup::default(), args).await;
        let (page, browser) = sign_in(&app, &sp, "porter").await;
        assert_signed_in(&app, &sp, &page, "porter");
        let response = &browser.messages("SAMLResponse")[0];
        let signature = response.find("<ds:Signature").expect("a signed Response");
        assert!(
            signature < response.find("<saml2p:Status").unwrap(),
            "the Response's own signature: {response}"
        );
        assert_eq!(
            response.contains("EncryptedAssertion"),
            encrypted,
            "{args:?}"
        );
    }
}

#[tokio::test]
async fn signing_out_at_gatehouse_ends_the_shibboleth_session_too() {
    if !enabled("signing_out_at_gatehouse_ends_the_shibboleth_session_too") {
        return;
    }
    let app = gatehouse().await;
    user(&app, "clerk").await;
    let sp = Shibboleth::start(&app, &SpSetup::default(), &[]).await;
    let (page, mut browser) = sign_in(&app, &sp, "clerk").await;
    assert_signed_in(&app, &sp, &page, "clerk");
    let session = browser
        .visit(&app, &sp.url("/Shibboleth.sso/Session"))
        .await;
    assert!(
        session.body.contains("Authentication Time"),
        "{}",
        session.body
    );

    let confirm = browser.visit(&app, &app.url("/logout")).await;
    let res = browser
        .client
        .post(app.url("/logout"))
        .header("Origin", &app.base)
        .form(&[("csrf", hidden(&confirm.body, "csrf"))])
        .send()
        .await
        .unwrap();
    let mut page = browser.follow(&app, app.url("/logout"), res).await;
    // After a form of ours, the way on is a page that navigates by itself.
    if let Some(link) = page.body.split("id=\"continue\" href=\"").nth(1) {
        let next = unescape(&link[..link.find('"').unwrap()]);
        page = browser.visit(&app, &next).await;
    }
    let requests = browser.messages("SAMLRequest");
    assert!(
        requests.last().is_some_and(|r| r.contains("LogoutRequest")),
        "Gatehouse told the SP: {page:?}"
    );
    let answers = browser.messages("SAMLResponse");
    assert!(
        answers
            .last()
            .is_some_and(|r| r.contains("status:Success") && r.contains("LogoutResponse")),
        "and the SP confirmed: {answers:?}\n{}",
        sp.logs()
    );
    assert!(page.url.starts_with(&app.base), "{page:?}");
    let session = browser
        .visit(&app, &sp.url("/Shibboleth.sso/Session"))
        .await;
    assert!(
        session.body.contains("A valid session was not found"),
        "{}",
        session.body
    );
}
