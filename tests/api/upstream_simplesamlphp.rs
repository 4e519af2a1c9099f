//! SimpleSAMLphp 1.19 (Debian `simplesamlphp` + `php-cli`) as an organisation's SAML
//! IdP, independent of Gatehouse: its `exampleauth:UserPass` users, its own signing key,
//! assertions encrypted as it does (AES-CBC, RSA-OAEP), our AuthnRequest signature
//! checked (`validate.authnrequest`). The downstream Gatehouse reads its metadata from
//! its URL, sends the browser there and signs the person in from its Response. Runs
//! when `GATEHOUSE_TEST_SIMPLESAMLPHP=1`.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::json;
use tempfile::TempDir;

use crate::{
    helpers::{TestApp, client, hidden, skip, spawn_app_with, unescape},
    saml::KeyCert,
    upstream_oidc::{account_username, hidden_href, links, location, login_page},
    upstream_saml::{SLUG, add_saml_connector, post_response},
};

const WWW: &str = "/usr/share/simplesamlphp/www";
const USER_PASSWORD: &str = "Ssp-Upstream-Password-4";

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

/// A PHP single-quoted string literal.
fn php(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// A running SimpleSAMLphp IdP on PHP's built-in server.
struct SspIdp {
    dir: TempDir,
    base: String,
    php: Child,
}

impl Drop for SspIdp {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.dir.path().join("log/simplesamlphp.log");
            eprintln!("{}", std::fs::read_to_string(log).unwrap_or_default());
        }
        let _ = self.php.kill();
        let _ = self.php.wait();
    }
}

impl SspIdp {
    fn metadata_url(&self) -> String {
        format!("{}/saml2/idp/metadata.php", self.base)
    }

    /// Starts the IdP, with `downstream`'s connector `hospital` as its SP.
    async fn start(downstream: &TestApp) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["config", "metadata", "log", "data", "tmp", "sessions"] {
            std::fs::create_dir(d.join(sub)).unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let base = format!("http://127.0.0.1:{port}");
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
                 'session.phpsession.savepath' => {sessions},\n  'store.type' => 'phpsession',\n  \
                 'enable.saml20-idp' => true,\n  \
                 'module.enable' => ['exampleauth' => true, 'core' => true, 'saml' => true],\n];\n",
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
        write(
            &d.join("config/authsources.php"),
            &format!(
                "<?php\n$config = [\n  'example-userpass' => [\n    'exampleauth:UserPass',\n    \
                 {user} => ['uid' => ['uma'], 'mail' => ['uma@hospital.example'], \
                 'displayName' => ['Uma Upstream']],\n  ],\n];\n",
                user = php(&format!("uma:{USER_PASSWORD}")),
            ),
        );
        let idp_key = KeyCert::new("simplesamlphp idp");
        write(
            &d.join("config/idp.pem"),
            &String::from_utf8(idp_key.key.private_key_to_pem_pkcs8().unwrap()).unwrap(),
        );
        write(
            &d.join("config/idp.crt"),
            &String::from_utf8(idp_key.cert.to_pem().unwrap()).unwrap(),
        );
        write(
            &d.join("metadata/saml20-idp-hosted.php"),
            "<?php\n$metadata['__DYNAMIC:1__'] = [\n  'host' => '__DEFAULT__',\n  \
             'privatekey' => 'idp.pem',\n  'certificate' => 'idp.crt',\n  \
             'auth' => 'example-userpass',\n  'sign.logout' => true,\n  \
             'signature.algorithm' => 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',\n];\n",
        );
        // Our SP as an administrator enters it from our connector's metadata.
        let sp = |path: &str| downstream.url(&format!("/upstream/{SLUG}/saml/{path}"));
        let cert = downstream.state.saml_keys.current().certificate_base64();
        write(
            &d.join("metadata/saml20-sp-remote.php"),
            &format!(
                "<?php\n$metadata[{entity}] = [\n  'AssertionConsumerService' => [['Binding' => \
                 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST', 'Location' => {acs}]],\n  \
                 'SingleLogoutService' => [['Binding' => \
                 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect', 'Location' => {slo}]],\n  \
                 'NameIDFormat' => 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',\n  \
                 'simplesaml.nameidattribute' => 'uid',\n  'validate.authnrequest' => true,\n  \
                 'assertion.encryption' => true,\n  \
                 'keys' => [['signing' => true, 'encryption' => true, 'type' => 'X509Certificate', \
                 'X509Certificate' => {cert}]],\n];\n",
                entity = php(&sp("metadata")),
                acs = php(&sp("acs")),
                slo = php(&sp("slo")),
                cert = php(&cert),
            ),
        );
        let child = Command::new("php")
            .args(["-S", &format!("127.0.0.1:{port}"), "-t", WWW])
            .env("SIMPLESAMLPHP_CONFIG_DIR", d.join("config"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("php.stderr")).unwrap())
            .spawn()
            .expect("php runs (Debian package php-cli)");
        let idp = Self {
            dir,
            base,
            php: child,
        };
        let probe = client();
        for _ in 0..300 {
            if let Ok(res) = probe.get(idp.metadata_url()).send().await
                && res.status() == 200
            {
                return idp;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let stderr = std::fs::read_to_string(idp.dir.path().join("php.stderr")).unwrap_or_default();
        panic!("SimpleSAMLphp did not answer: {stderr}");
    }
}

/// Follows redirects on `base` until a page.
async fn follow(browser: &reqwest::Client, base: &str, mut url: String) -> (String, String) {
    for _ in 0..10 {
        let res = browser.get(&url).send().await.unwrap();
        if !res.status().is_redirection() {
            assert_eq!(res.status(), 200, "{url}");
            return (url, res.text().await.unwrap());
        }
        let next = res.headers()["location"].to_str().unwrap().to_owned();
        url = if next.starts_with("http") {
            next
        } else {
            format!("{base}{next}")
        };
    }
    panic!("too many redirects from {url}");
}

#[tokio::test]
async fn simplesamlphp_as_the_upstream_idp_signs_the_person_in_just_in_time() {
    if !enabled("simplesamlphp_as_the_upstream_idp_signs_the_person_in_just_in_time") {
        return;
    }
    let downstream = spawn_app_with(|c| c.saml_metadata_allow_local = true).await;
    let idp = SspIdp::start(&downstream).await;
    let connector_id = add_saml_connector(
        &downstream,
        SLUG,
        json!({
            "saml": { "metadata_url": idp.metadata_url(), "require_encrypted_assertions": true },
            "accounts": { "username_claim": "uid", "email_claim": "mail", "name_claim": "displayName" },
        }),
    )
    .await;
    let browser = client();
    let (_, html) = login_page(&downstream, &browser).await;
    let button = hidden_href(&html, &format!("upstream-{SLUG}"));
    let res = browser.get(downstream.url(&button)).send().await.unwrap();
    let start = location(&res);
    let res = browser.get(downstream.url(&start)).send().await.unwrap();
    let to_idp = location(&res);
    assert!(
        to_idp.starts_with(&format!(
            "{}/saml2/idp/SSOService.php?SAMLRequest=",
            idp.base
        )),
        "{to_idp}"
    );
    let (login_url, page) = follow(&browser, &idp.base, to_idp).await;
    assert!(page.contains("name=\"password\""), "{login_url}: {page}");
    let auth_state = unescape(&hidden(&page, "AuthState"));
    let res = browser
        .post(login_url.split('?').next().unwrap())
        .form(&[
            ("username", "uma"),
            ("password", USER_PASSWORD),
            ("AuthState", auth_state.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    let action = unescape(
        page.split("action=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_else(|| panic!("no form in {page}")),
    );
    assert_eq!(
        action,
        downstream.url(&format!("/upstream/{SLUG}/saml/acs"))
    );
    let response = unescape(&hidden(&page, "SAMLResponse"));
    let relay = unescape(&hidden(&page, "RelayState"));
    use base64::{Engine, engine::general_purpose::STANDARD};
    let xml = String::from_utf8(STANDARD.decode(&response).unwrap()).unwrap();
    assert!(xml.contains("EncryptedAssertion"), "{xml}");
    let res = post_response(&browser, &action, &xml, Some(&relay)).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    assert_eq!(location(&res), "/account");
    assert_eq!(account_username(&downstream, &browser).await, "uma");
    assert_eq!(links(&downstream, &connector_id).await.len(), 1);

    // Signing out here ends the SimpleSAMLphp session too (SAML Single Logout): our
    // signed LogoutRequest there, its signed LogoutResponse back to our signed-out page.
    let csrf = downstream.account_csrf(&browser).await;
    let res = downstream
        .post_form(&browser, "/logout", &[("csrf", &csrf)])
        .await;
    let to_idp = crate::oidc::continue_link(&res.text().await.unwrap());
    assert!(
        to_idp.starts_with(&format!(
            "{}/saml2/idp/SingleLogoutService.php?SAMLRequest=",
            idp.base
        )),
        "{to_idp}"
    );
    let mut url = to_idp;
    let back = loop {
        let res = browser.get(&url).send().await.unwrap();
        assert!(
            res.status().is_redirection(),
            "{url}: {}",
            res.text().await.unwrap()
        );
        let next = res.headers()["location"].to_str().unwrap().to_owned();
        if next.starts_with(&downstream.url(&format!("/upstream/{SLUG}/saml/slo"))) {
            break next;
        }
        url = if next.starts_with("http") {
            next
        } else {
            format!("{}{next}", idp.base)
        };
    };
    assert!(
        back.contains("SAMLResponse=") && back.contains("&Signature="),
        "{back}"
    );
    let res = browser.get(&back).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("You are signed out"));
    // The IdP asks for the password again: its session is over.
    let (_, html) = login_page(&downstream, &browser).await;
    let button = hidden_href(&html, &format!("upstream-{SLUG}"));
    let res = browser.get(downstream.url(&button)).send().await.unwrap();
    let res = browser
        .get(downstream.url(&location(&res)))
        .send()
        .await
        .unwrap();
    let (_, page) = follow(&browser, &idp.base, location(&res)).await;
    assert!(page.contains("name=\"password\""), "{page}");
}
