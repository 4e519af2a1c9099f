//! The SMART on FHIR Python client (`fhirclient` from PyPI) as an independent app
//! against Gatehouse and the tests' FHIR server: a standalone patient launch, an EHR
//! launch, refresh with `offline_access`, and SMART Backend Services.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
};

use super::backend_service;
use serde_json::{Value, json};

use super::Smart;
use crate::{jose_keys::ClientKey, oidc::register_client};

const APP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/api/interop/fhirclient_app.py"
);

/// `GATEHOUSE_TEST_FHIRCLIENT`: the Python of a virtualenv with `fhirclient` (`.ci/run`
/// makes one).
fn python(test: &str) -> Option<String> {
    let python = std::env::var("GATEHOUSE_TEST_FHIRCLIENT")
        .ok()
        .filter(|s| !s.is_empty());
    if python.is_none() {
        crate::helpers::skip(
            test,
            "GATEHOUSE_TEST_FHIRCLIENT (a Python with fhirclient installed) is not set",
        );
    }
    python
}

/// The library run by `python`, trusting the test server's own certificate.
fn fhirclient(s: &Smart, python: &str) -> Command {
    let (cert, _) = gatehouse::web::tls::self_signed_paths(&s.app.config.data_dir);
    let mut cmd = Command::new(python);
    cmd.arg(APP).env("REQUESTS_CA_BUNDLE", cert);
    cmd
}

/// Runs the app with `args`: the browser `browser` (signed in already) follows the
/// authorization URL the library makes (choosing `pick`'s patient, searched by name, in
/// the picker), and the library gets the callback URL; its result line.
async fn run_app(
    s: &Smart,
    python: &str,
    browser: &reqwest::Client,
    pick: Option<(&str, &str)>,
    args: &[&str],
) -> Value {
    let mut child = fhirclient(s, python)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (first, lines) = tokio::task::spawn_blocking(move || {
        let line = lines.next().expect("the authorization URL").unwrap();
        (line, lines)
    })
    .await
    .unwrap();
    let asked: Value = serde_json::from_str(&first).unwrap();
    let url = asked["authorize"].as_str().unwrap();
    assert!(url.starts_with(&s.app.url("/authorize")), "{url}");
    let back = match pick {
        Some((name, patient)) => s.through_picker(browser, url, name, patient).await,
        None => s.authorize(browser, url).await,
    };
    writeln!(stdin, "{back}").unwrap();
    let (last, status) = tokio::task::spawn_blocking(move || {
        let last = lines.map(Result::unwrap).last();
        (last, child.wait().unwrap())
    })
    .await
    .unwrap();
    assert!(status.success(), "fhirclient failed");
    serde_json::from_str(&last.expect("a result line")).unwrap()
}

#[tokio::test]
async fn fhirclient_py_runs_a_standalone_patient_launch_and_refreshes() {
    let Some(python) = python("smart::fhirclient_standalone") else {
        return;
    };
    let s = Smart::with_fixture().await;
    let (browser, _) = s.ehr_session("pat").await;
    let result = run_app(
        &s,
        &python,
        &browser,
        None,
        &[
            "app",
            &s.fhir,
            &s.smart_app.client_id,
            crate::oidc::REDIRECT,
            "openid fhirUser patient/*.rs offline_access",
        ],
    )
    .await;
    assert_eq!(result["patient_id"], "p-42", "{result}");
    assert_eq!(result["name"], "Ana López");
    assert_eq!(result["refreshed"], true, "{result}");
    assert_eq!(result["read_after_refresh"], "p-42");
    assert_eq!(
        result["context"]["scope"],
        "launch/patient openid fhirUser patient/*.rs offline_access"
    );
    // What the FHIR server was told of the app's token.
    let seen = s.fixture.as_ref().unwrap().seen.lock().unwrap();
    let token = seen.introspected.last().unwrap();
    assert_eq!(token["patient"], "p-42");
    assert_eq!(token["client_id"], s.smart_app.client_id);
    assert_eq!(token["fhirUser"], format!("{}/Patient/p-42", s.fhir));
}

#[tokio::test]
async fn fhirclient_py_runs_an_ehr_launch() {
    let Some(python) = python("smart::fhirclient_ehr") else {
        return;
    };
    let s = Smart::with_fixture().await;
    let (browser, ehr_token) = s.ehr_session("drsmith").await;
    let launch = s.launch(&ehr_token).await;
    let result = run_app(
        &s,
        &python,
        &browser,
        None,
        &[
            "app",
            &s.fhir,
            &s.smart_app.client_id,
            crate::oidc::REDIRECT,
            "openid fhirUser patient/*.rs",
            &launch,
        ],
    )
    .await;
    assert_eq!(result["patient_id"], "p-42", "{result}");
    assert_eq!(result["context"]["encounter"], "enc-9");
    assert_eq!(result["context"]["need_patient_banner"], false);
    assert_eq!(result["context"]["intent"], "reconcile-medications");
}

#[tokio::test]
async fn fhirclient_py_runs_a_standalone_provider_launch_through_the_patient_picker() {
    let Some(python) = python("smart::fhirclient_provider") else {
        return;
    };
    let s = Smart::with_fixture().await;
    let (browser, _) = s.ehr_session("drsmith").await;
    let result = run_app(
        &s,
        &python,
        &browser,
        Some(("Ruiz", "p-8")),
        &[
            "app",
            &s.fhir,
            &s.smart_app.client_id,
            crate::oidc::REDIRECT,
            "openid fhirUser user/*.rs patient/*.rs",
        ],
    )
    .await;
    assert_eq!(result["patient_id"], "p-8", "{result}");
    assert_eq!(result["name"], "Ana Ruiz");
    let seen = s.fixture.as_ref().unwrap().seen.lock().unwrap();
    assert_eq!(seen.searches, ["ruiz"]);
    let token = seen.introspected.last().unwrap();
    assert_eq!(token["fhirUser"], format!("{}/Practitioner/dr-7", s.fhir));
}

#[tokio::test]
async fn fhirclient_py_runs_smart_backend_services_with_an_es384_assertion() {
    use gatehouse::clock::Clock;
    let Some(python) = python("smart::fhirclient_backend") else {
        return;
    };
    let s = Smart::with_fixture().await;
    let key = ClientKey::ec384("bulk-1");
    let service = register_client(&s.app, backend_service("Population health", key.jwks())).await;
    s.open_server_to(&service.client_id).await;
    let now = s.app.clock.now().timestamp();
    let assertion = key.sign(
        json!({"typ": "JWT"}),
        &json!({"iss": service.client_id, "sub": service.client_id,
                "aud": s.app.url("/token"), "exp": now + 300,
                "jti": uuid::Uuid::new_v4().to_string()}),
    );
    let mut cmd = fhirclient(&s, &python);
    cmd.args([
        "backend",
        &s.fhir,
        &service.client_id,
        "system/Patient.rs",
        &assertion,
    ]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["ids"], json!(["p-42", "p-8"]));
    let seen = s.fixture.as_ref().unwrap().seen.lock().unwrap();
    let token = seen.introspected.last().unwrap();
    assert_eq!(token["client_id"], service.client_id);
    assert_eq!(token["scope"], "system/Patient.rs");
}
