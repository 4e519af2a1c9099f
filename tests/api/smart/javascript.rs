//! The SMART on FHIR JavaScript client (`fhirclient` from npm) as an app in headless
//! Chromium: an EHR launch, a standalone patient launch with refresh, and a standalone
//! provider launch through the patient picker, against Gatehouse and the tests' FHIR
//! server. The app is served from a loopback origin, so its code exchange and its FHIR
//! reads are real cross-origin `fetch`es.
//!
//! Runs when `GATEHOUSE_TEST_BROWSER=1`; the library comes from
//! `tests/api/smart_js/package-lock.json` (`.ci/run` installs it).

use std::{collections::HashMap, sync::Arc, time::Duration};

use gatehouse::oidc::clients::{ClientSpec, Registered};
use serde_json::json;

use super::Smart;
use crate::{
    browser::{Browser, sign_in},
    helpers::skip,
    oidc::register_client,
    spa::{Files, NpmLibrary, app_listener, serve},
};

const APP_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/smart_js");
const LIBRARY: NpmLibrary = NpmLibrary {
    dir: APP_DIR,
    name: "fhirclient",
    // The browser build: one file, defining the global `FHIR`.
    bundle: "node_modules/fhirclient/build/fhir-client.min.js",
    // Its React Native and Expo options are not for browsers.
    npm_args: &["--omit=optional", "--omit=peer"],
};
/// Discovery, sign-in, the code exchange and a FHIR read, on a busy 2-core machine.
const FLOW: Duration = Duration::from_secs(30);

fn gate() -> Result<(), String> {
    if !Browser::enabled() {
        return Err("GATEHOUSE_TEST_BROWSER not set".into());
    }
    LIBRARY.installed()
}

/// The app: served at `origin`, registered as a public client whose return address is
/// its `index.html`, open to the FHIR server; `scope` is what it asks for.
async fn app(s: &Smart, scope: &str) -> (Browser, String, Registered) {
    let (listener, origin) = app_listener().await;
    let client = register_client(
        &s.app,
        ClientSpec {
            public: true,
            scopes: [
                "openid",
                "fhirUser",
                "launch",
                "launch/patient",
                "offline_access",
                "patient/*.rs",
                "user/*.rs",
            ]
            .map(String::from)
            .to_vec(),
            ..ClientSpec::new("Growth charts (JS)", &[&format!("{origin}/index.html")])
        },
    )
    .await;
    s.open_server_to(&client.client_id).await;
    let read = |name: &str| {
        std::fs::read(format!("{APP_DIR}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    const HTML: &str = "text/html; charset=utf-8";
    const JS: &str = "text/javascript; charset=utf-8";
    let config = json!({"client_id": client.client_id, "scope": scope, "iss": s.fhir});
    let mut files: HashMap<&'static str, (&'static str, Vec<u8>)> = HashMap::new();
    files.insert("/launch.html", (HTML, read("launch.html")));
    files.insert("/launch.js", (JS, read("launch.js")));
    files.insert("/index.html", (HTML, read("index.html")));
    files.insert("/app.js", (JS, read("app.js")));
    files.insert("/fhir-client.js", (JS, LIBRARY.bundle_bytes()));
    files.insert(
        "/config.js",
        (
            JS,
            format!("window.SMART_CONFIG = {config};\n").into_bytes(),
        ),
    );
    let files: Files = Arc::new(files);
    serve(listener, files);
    let browser = Browser::start().await.expect("enabled: checked");
    (browser, origin, client)
}

/// Waits until the app's state is `want` (or a step failed, which fails the test).
async fn wait_for_state(browser: &Browser, want: &str) {
    let css = format!("body[data-state='{want}'], body[data-state$='-failed']");
    browser.wait_for_within(&css, FLOW).await;
    let state = browser.attr("body", "data-state").await.unwrap_or_default();
    assert_eq!(state, want, "{}", browser.text("#failure").await);
}

/// Signs in at Gatehouse's page, where the library sent the browser.
async fn sign_in_at_gatehouse(s: &Smart, browser: &Browser, username: &str) {
    browser.wait_for_within("form#login", FLOW).await;
    let at = browser.current_url().await;
    assert_eq!(at.origin().ascii_serialization(), s.app.base, "{at}");
    sign_in(browser, username, "Correct-Horse-Battery-9").await;
}

#[tokio::test]
async fn fhirclient_js_runs_an_ehr_launch() {
    if let Err(why) = gate() {
        skip("smart::fhirclient_js_ehr", &why);
        return;
    }
    let s = Smart::with_fixture().await;
    let (browser, origin, client) = app(&s, "launch openid fhirUser patient/*.rs").await;
    let (_, ehr_token) = s.ehr_session("drsmith").await;
    let res = s
        .register_launch(
            &ehr_token,
            json!({"client_id": client.client_id, "aud": s.fhir, "patient": "p-7",
                   "encounter": "enc-3", "need_patient_banner": true}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let launch: serde_json::Value = res.json().await.unwrap();
    let launch = launch["launch"].as_str().unwrap();
    let mut url = url::Url::parse(&format!("{origin}/launch.html")).unwrap();
    url.query_pairs_mut()
        .append_pair("iss", &s.fhir)
        .append_pair("launch", launch);
    browser.goto(url.as_str()).await;
    sign_in_at_gatehouse(&s, &browser, "drsmith").await;
    wait_for_state(&browser, "ready").await;
    assert_eq!(browser.text("#patient-id").await, "p-7");
    assert_eq!(browser.text("#patient-name").await, "Bo Chen");
    assert_eq!(browser.text("#encounter").await, "enc-3");
    assert_eq!(browser.text("#banner").await, "true");
    // The library gives fhirUser as Type/id (of the absolute URL in the ID token).
    assert_eq!(browser.text("#fhir-user").await, "Practitioner/dr-7");
    browser.close().await;
}

#[tokio::test]
async fn fhirclient_js_runs_a_standalone_patient_launch_and_refreshes() {
    if let Err(why) = gate() {
        skip("smart::fhirclient_js_patient", &why);
        return;
    }
    let s = Smart::with_fixture().await;
    let scope = "launch/patient openid fhirUser patient/*.rs offline_access";
    let (browser, origin, _) = app(&s, scope).await;
    browser.goto(&format!("{origin}/launch.html")).await;
    sign_in_at_gatehouse(&s, &browser, "pat").await;
    wait_for_state(&browser, "ready").await;
    assert_eq!(browser.text("#patient-id").await, "p-42");
    assert_eq!(browser.text("#patient-name").await, "Ana López");
    browser.click("button#refresh").await;
    wait_for_state(&browser, "refreshed").await;
    assert_eq!(browser.text("#refreshed").await, "p-42");
    browser.close().await;
}

#[tokio::test]
async fn fhirclient_js_runs_a_provider_launch_through_the_patient_picker_by_keyboard() {
    if let Err(why) = gate() {
        skip("smart::fhirclient_js_provider", &why);
        return;
    }
    let s = Smart::with_fixture().await;
    let (browser, origin, _) = app(&s, "launch/patient openid fhirUser user/*.rs").await;
    browser.goto(&format!("{origin}/launch.html")).await;
    sign_in_at_gatehouse(&s, &browser, "drsmith").await;
    // The picker: the search field has the focus; typing and Enter search.
    browser
        .wait_for_within("form#search input#name", FLOW)
        .await;
    let focused = browser
        .client()
        .execute("return document.activeElement.id;", Vec::new())
        .await
        .unwrap();
    assert_eq!(focused, json!("name"), "the search field has the focus");
    let field = browser.wait_for("input#name").await;
    field.send_keys("Chen\u{E007}").await.unwrap();
    browser.wait_for_within("table#patients", FLOW).await;
    assert_eq!(browser.count("table#patients tbody tr").await, 1);
    // Enter on the one Choose button (a real button in a form: no script needed).
    let choose = browser.wait_for("form.choose button").await;
    choose.send_keys("\u{E007}").await.unwrap();
    wait_for_state(&browser, "ready").await;
    assert_eq!(browser.text("#patient-id").await, "p-7");
    assert_eq!(browser.text("#patient-name").await, "Bo Chen");
    browser.close().await;
}
