//! Gatehouse with a real SimpleSAMLphp 1.19 SP (Debian `simplesamlphp` + `php-cli`),
//! configured as the README's "Connecting a SimpleSAMLphp SP" says: a `saml:SP` auth
//! source naming Gatehouse, Gatehouse in `saml20-idp-remote.php`, the SP's metadata
//! imported with `gatehouse sp import`. SimpleSAMLphp runs on PHP's built-in server
//! with its own config directory (`SIMPLESAMLPHP_CONFIG_DIR`), on loopback. Runs when
//! `GATEHOUSE_TEST_SIMPLESAMLPHP=1`.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use tempfile::TempDir;

use crate::{
    helpers::{TestApp, create_user, skip},
    shibboleth::{Browser, PASSWORD, gatehouse},
};

const WWW: &str = "/usr/share/simplesamlphp/www";

fn enabled(test: &str) -> bool {
    if std::env::var("GATEHOUSE_TEST_SIMPLESAMLPHP").as_deref() == Ok("1") {
        return true;
    }
    skip(
        test,
        "set GATEHOUSE_TEST_SIMPLESAMLPHP=1 (needs Debian simplesamlphp and php-cli)",
    );
    false
}

/// A running SimpleSAMLphp: PHP's built-in server over its `www` directory.
struct SimpleSamlPhp {
    dir: TempDir,
    base: String,
    entity_id: String,
    php: Child,
}

impl Drop for SimpleSamlPhp {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.dir.path().join("log/simplesamlphp.log");
            eprintln!("{}", std::fs::read_to_string(log).unwrap_or_default());
        }
        let _ = self.php.kill();
        let _ = self.php.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// A PHP single-quoted string literal.
fn php(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

impl SimpleSamlPhp {
    async fn start(app: &TestApp) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["config", "metadata", "log", "data", "tmp", "sessions"] {
            std::fs::create_dir(d.join(sub)).unwrap();
        }
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let entity_id = format!("{base}/sp");
        let at = |sub: &str| php(&format!("{}/{sub}/", d.display()));
        write(
            &d.join("config/config.php"),
            &format!(
                "<?php\n$config = [\n  'baseurlpath' => {base},\n  'certdir' => {cert},\n  \
                 'loggingdir' => {log},\n  'datadir' => {data},\n  'tempdir' => {tmp},\n  \
                 'metadatadir' => {metadata},\n  'secretsalt' => {salt},\n  \
                 'auth.adminpassword' => {salt},\n  'technicalcontact_email' => 'na@example.org',\n  \
                 'timezone' => 'UTC',\n  'logging.level' => SimpleSAML\\Logger::DEBUG,\n  \
                 'logging.handler' => 'file',\n  'session.cookie.secure' => false,\n  \
                 'session.phpsession.savepath' => {sessions},\n  'store.type' => 'phpsession',\n];\n",
                base = php(&format!("{base}/")),
                cert = at("config"),
                log = at("log"),
                data = at("data"),
                tmp = at("tmp"),
                metadata = at("metadata"),
                sessions = php(&format!("{}/sessions", d.display())),
                salt = php(&crate::saml::rand_id()),
            ),
        );
        let idp = gatehouse::saml::entity_id(&app.state);
        write(
            &d.join("config/authsources.php"),
            &format!(
                "<?php\n$config = [\n  'default-sp' => [\n    'saml:SP',\n    \
                 'entityID' => {sp},\n    'idp' => {idp},\n  ],\n];\n",
                sp = php(&entity_id),
                idp = php(&idp),
            ),
        );
        let keys: Vec<String> = app
            .state
            .saml_keys
            .set()
            .published_certificates()
            .iter()
            .map(|c| {
                format!(
                    "    ['signing' => true, 'encryption' => false, 'type' => 'X509Certificate', \
                     'X509Certificate' => {}],\n",
                    php(c)
                )
            })
            .collect();
        write(
            &d.join("metadata/saml20-idp-remote.php"),
            &format!(
                "<?php\n$metadata[{idp}] = [\n  'SingleSignOnService' => {sso},\n  \
                 'SingleLogoutService' => {slo},\n  'keys' => [\n{keys}  ],\n];\n",
                idp = php(&idp),
                sso = php(&app.url("/saml/sso")),
                slo = php(&app.url("/saml/slo")),
                keys = keys.concat(),
            ),
        );
        let php = Command::new("php")
            .args(["-S", &format!("127.0.0.1:{port}"), "-t", WWW])
            .env("SIMPLESAMLPHP_CONFIG_DIR", d.join("config"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("php.stderr")).unwrap())
            .spawn()
            .expect("php runs (Debian package php-cli)");
        let sp = Self {
            dir,
            base,
            entity_id,
            php,
        };
        let metadata = sp.metadata_url();
        let client = crate::helpers::client();
        for _ in 0..300 {
            if let Ok(res) = client.get(&metadata).send().await
                && res.status() == 200
            {
                return sp;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let stderr = std::fs::read_to_string(sp.dir.path().join("php.stderr")).unwrap_or_default();
        panic!("SimpleSAMLphp did not answer at {metadata}: {stderr}");
    }

    fn metadata_url(&self) -> String {
        format!("{}/module.php/saml/sp/metadata.php/default-sp", self.base)
    }

    /// `gatehouse sp import --metadata <the SP's metadata URL> --json` + `args`.
    fn import(&self, app: &TestApp, args: &[&str]) -> serde_json::Value {
        let out = crate::cli::gatehouse(app.data_dir.path())
            .args(["sp", "import", "--metadata", &self.metadata_url(), "--json"])
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
}

#[tokio::test]
async fn simplesamlphp_signs_in_sp_initiated_and_sees_the_released_attributes() {
    if !enabled("simplesamlphp_signs_in_sp_initiated_and_sees_the_released_attributes") {
        return;
    }
    let app = gatehouse().await;
    create_user(&app, "dr.lee", PASSWORD, false).await;
    let sp = SimpleSamlPhp::start(&app).await;
    sp.import(&app, &["--attribute=roles=", "--attribute=mail"]);
    let mut browser = Browser::new("dr.lee");
    let page = browser
        .visit(
            &app,
            &format!("{}/module.php/core/authenticate.php?as=default-sp", sp.base),
        )
        .await;
    assert_eq!(browser.sign_ins, 1, "{}", page.body);
    assert_eq!(page.status, 200, "{}", page.body);
    // Its default NameIDPolicy asks for a transient NameID, which is granted.
    let requests = browser.messages("SAMLRequest");
    assert!(
        requests[0].contains("urn:oasis:names:tc:SAML:2.0:nameid-format:transient"),
        "{}",
        requests[0]
    );
    let responses = browser.messages("SAMLResponse");
    assert_eq!(responses.len(), 1);
    assert!(responses[0].contains("status:Success"), "{}", responses[0]);
    // SimpleSAMLphp's status page lists what it accepted.
    for shown in [
        "urn:oid:0.9.2342.19200300.100.1.3",
        "dr.lee@example.org",
        "username",
        "dr.lee",
        "organisation",
    ] {
        assert!(page.body.contains(shown), "{shown}: {}", page.body);
    }
    assert!(
        !page.body.contains(">roles<"),
        "not configured: {}",
        page.body
    );
}
