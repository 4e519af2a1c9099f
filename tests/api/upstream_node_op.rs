//! Issue 28: an independent OpenID Provider as the organisation's identity provider:
//! panva's `oidc-provider` from the npm registry (OpenID Certified), run by Node on
//! loopback with its development sign-in pages. Unlike Gatehouse it puts profile claims
//! in userinfo only, sends RFC 9207 `iss`, and requires PKCE: the downstream Gatehouse
//! must cope with all of it as it would with a hospital's provider.
//!
//! Run when `GATEHOUSE_TEST_NODE=1` and `node` and `npm` are on the PATH; the pinned
//! package is installed with `npm ci` if `node_modules` is missing.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::OnceLock,
};

use serde_json::{Value, json};
use url::Url;

use crate::{
    helpers::{TestApp, client, spawn_app},
    upstream_oidc::{
        account_username, add_connector, callback, hidden_href, links, location, login_page,
    },
};

const CLIENT_ID: &str = "gatehouse-downstream";
const CLIENT_SECRET: &str = "node-op-client-secret-0123456789abcdef";

fn package_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/api/node_op")
}

/// Whether oidc-provider can run here; says why not otherwise.
fn node_ready(test: &str) -> bool {
    if std::env::var("GATEHOUSE_TEST_NODE").as_deref() != Ok("1") {
        crate::helpers::skip(
            test,
            "GATEHOUSE_TEST_NODE=1 is not set (oidc-provider from npm as an upstream IdP)",
        );
        return false;
    }
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    let installed = INSTALLED.get_or_init(|| {
        if package_dir().join("node_modules/oidc-provider").exists() {
            return Ok(());
        }
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"])
            .current_dir(package_dir())
            .status()
            .map_err(|e| format!("npm: {e}"))?;
        status
            .success()
            .then_some(())
            .ok_or_else(|| format!("npm ci failed: {status}"))
    });
    match installed {
        Ok(()) => true,
        Err(e) => panic!("GATEHOUSE_TEST_NODE=1 but oidc-provider cannot be installed: {e}"),
    }
}

/// The running provider; stopped when dropped.
struct NodeOp {
    child: Child,
    issuer: String,
}

impl Drop for NodeOp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl NodeOp {
    fn start(downstream: &TestApp) -> Self {
        let setup = json!({ "client": {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": [callback(downstream, "node-op")],
            "post_logout_redirect_uris": [downstream.url("/upstream/node-op/signed-out")],
        }});
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .arg(setup.to_string())
            .current_dir(package_dir())
            .stdout(Stdio::piped())
            .stderr(
                std::fs::File::create(std::env::temp_dir().join("gatehouse-node-op.log"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            )
            .spawn()
            .expect("node starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready: Value = serde_json::from_str(&line).expect("the provider says where it is");
        Self {
            child,
            issuer: ready["issuer"].as_str().unwrap().to_owned(),
        }
    }
}

/// Submits the provider's development sign-in or consent form on `page` as `login`;
/// where it sends the browser next.
async fn submit_interaction(browser: &reqwest::Client, html: &str, login: &str) -> String {
    let action = attribute_after(html, "<form", "action");
    let mut fields: Vec<(String, String)> = Vec::new();
    for input in html.split("<input").skip(1) {
        let tag = &input[..input.find('>').unwrap()];
        let name = attribute_after(tag, "", "name");
        let value = match name.as_str() {
            "login" => login.to_owned(),
            "password" => "any-password".to_owned(),
            _ => attribute_after(tag, "", "value"),
        };
        fields.push((name, value));
    }
    let res = browser.post(&action).form(&fields).send().await.unwrap();
    location(&res)
}

/// The value of `attribute` in the first `tag` of `html`.
fn attribute_after(html: &str, tag: &str, attribute: &str) -> String {
    let start = html.find(tag).expect("the tag");
    let rest = &html[start..];
    let marker = format!("{attribute}=\"");
    let at = rest.find(&marker).map(|i| i + marker.len()).unwrap_or(0);
    if at == 0 {
        return String::new();
    }
    rest[at..at + rest[at..].find('"').unwrap()].replace("&amp;", "&")
}

/// Follows the provider's redirects and pages as `login` until it sends the browser back
/// to the downstream's callback; that URL.
async fn through_provider(
    browser: &reqwest::Client,
    op: &NodeOp,
    mut at: String,
    login: &str,
) -> Url {
    for _ in 0..12 {
        if !at.starts_with(&op.issuer) {
            return Url::parse(&at).unwrap();
        }
        let res = browser.get(&at).send().await.unwrap();
        if res.status() == 303 || res.status() == 302 {
            at = location_any(&res, &op.issuer);
            continue;
        }
        assert_eq!(res.status(), 200, "a page of the provider at {at}");
        let html = res.text().await.unwrap();
        at = submit_interaction(browser, &html, login).await;
        if at.starts_with('/') {
            at = format!("{}{at}", op.issuer);
        }
    }
    panic!("the provider never sent the browser back");
}

fn location_any(res: &reqwest::Response, base: &str) -> String {
    let to = res.headers()["location"].to_str().unwrap();
    if to.starts_with('/') {
        format!("{base}{to}")
    } else {
        to.to_owned()
    }
}

#[tokio::test]
async fn oidc_provider_from_npm_signs_people_in_as_an_upstream() {
    if !node_ready("oidc_provider_from_npm_signs_people_in_as_an_upstream") {
        return;
    }
    let downstream = spawn_app().await;
    let op = NodeOp::start(&downstream);
    let connector = add_connector(
        &downstream,
        "node-op",
        json!({ "oidc": { "issuer": op.issuer, "client_id": CLIENT_ID } }),
        Some(CLIENT_SECRET),
        &[],
    )
    .await;
    let browser = client();
    let (_, html) = login_page(&downstream, &browser).await;
    let res = browser
        .get(downstream.url(&hidden_href(&html, "upstream-node-op")))
        .send()
        .await
        .unwrap();
    let back = through_provider(&browser, &op, location(&res), "pat").await;
    assert!(
        back.as_str().starts_with(&callback(&downstream, "node-op")),
        "{back}"
    );
    let q: std::collections::HashMap<_, _> = back.query_pairs().into_owned().collect();
    assert_eq!(q["iss"], op.issuer, "RFC 9207 iss from the provider");
    let res = browser.get(back.as_str()).send().await.unwrap();
    assert_eq!(location(&res), "/account");
    // The name and address came from the provider's userinfo.
    assert_eq!(account_username(&downstream, &browser).await, "pat");
    let page = browser
        .get(downstream.url("/account"))
        .send()
        .await
        .unwrap();
    assert!(page.text().await.unwrap().contains("pat@node-op.example"));
    let linked = links(&downstream, &connector).await;
    assert_eq!(linked.len(), 1);
    assert_eq!(linked[0].subject, "pat");

    // Signing out here goes through the provider's end-session endpoint.
    let csrf = downstream.account_csrf(&browser).await;
    let res = downstream
        .post_form(&browser, "/logout", &[("csrf", &csrf)])
        .await;
    let to_op = crate::oidc::continue_link(&res.text().await.unwrap());
    assert!(
        to_op.starts_with(&format!("{}/session/end", op.issuer)),
        "{to_op}"
    );
}
