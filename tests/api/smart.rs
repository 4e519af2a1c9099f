//! SMART on FHIR (issue 30, DESIGN §18) over HTTP, as an app, an EHR and a FHIR server
//! drive it: `aud` naming a registered FHIR server, the EHR launch with its single-use
//! `launch`, the launch context in the token response and in introspection, `fhirUser`,
//! refresh, backend services, and each hostile variant refused with its error.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use std::collections::HashMap;

use gatehouse::{
    audit::EventType,
    oidc::clients::{ClientSpec, Registered},
};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use url::Url;

mod fhirclient;
mod fixture;
mod javascript;

pub use fixture::FhirFixture;

use crate::{
    helpers::{TestApp, create_user, spawn_app_with},
    jose_keys::ClientKey,
    oidc::{REDIRECT, admin_token, browse_authorize, query, register_client, rp_http},
};

pub const FHIR: &str = "https://fhir.example.org/r4";
const EHR_REDIRECT: &str = "https://ehr.example.org/cb";
const VERIFIER: &str = "a-long-enough-pkce-verifier-for-the-smart-app-0123456789";

/// Gatehouse with a FHIR server, a SMART app (public, PKCE), an EHR that launches it, a
/// resource server that introspects, a practitioner and a patient.
pub struct Smart {
    pub app: TestApp,
    pub smart_app: Registered,
    pub ehr: Registered,
    pub resource_server: Registered,
    pub admin: String,
    /// The FHIR server's id in the admin API.
    pub fhir_server: String,
    /// The practitioner's and the patient's user ids.
    pub users: HashMap<&'static str, String>,
    /// The FHIR server's base URL: [`FHIR`], or the running fixture's.
    pub fhir: String,
    pub fixture: Option<FhirFixture>,
}

pub fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn challenge() -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()))
}

fn secret(reg: &Registered) -> String {
    reg.client_secret
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_owned()
}

impl Smart {
    pub async fn new() -> Self {
        Self::build(|_| {}, false).await
    }

    /// [`Smart::new`] on a server configured by `customise`.
    pub async fn with(customise: impl FnOnce(&mut gatehouse::config::Config)) -> Self {
        Self::build(customise, false).await
    }

    /// [`Smart::new`] with a running FHIR server ([`FhirFixture`]) as the FHIR server.
    pub async fn with_fixture() -> Self {
        Self::build(|_| {}, true).await
    }

    async fn build(customise: impl FnOnce(&mut gatehouse::config::Config), fixture: bool) -> Self {
        let app = spawn_app_with(customise).await;
        let mut users = HashMap::new();
        for name in ["drsmith", "pat"] {
            let user = create_user(&app, name, "Correct-Horse-Battery-9", false).await;
            users.insert(name, user.id);
        }
        let smart_app = register_client(
            &app,
            ClientSpec {
                public: true,
                scopes: [
                    "openid",
                    "fhirUser",
                    "profile",
                    "launch",
                    "launch/patient",
                    "offline_access",
                    "patient/*.rs",
                    "user/*.rs",
                ]
                .map(String::from)
                .to_vec(),
                ..ClientSpec::new("Growth charts", &[REDIRECT])
            },
        )
        .await;
        let ehr = register_client(
            &app,
            ClientSpec {
                scopes: ["openid", "gatehouse:smart_launch"]
                    .map(String::from)
                    .to_vec(),
                ..ClientSpec::new("EHR", &[EHR_REDIRECT])
            },
        )
        .await;
        let resource_server = register_client(
            &app,
            ClientSpec {
                grant_types: vec!["client_credentials".into()],
                scopes: vec![],
                introspection: true,
                ..ClientSpec::new("FHIR server", &[])
            },
        )
        .await;
        let admin = admin_token(&app).await;
        let fixture = match fixture {
            true => Some(
                FhirFixture::start(
                    &app.base,
                    &resource_server.client_id,
                    &secret(&resource_server),
                )
                .await,
            ),
            false => None,
        };
        let fhir = fixture.as_ref().map_or(FHIR.to_owned(), |f| f.base.clone());
        let mut smart = Self {
            app,
            smart_app,
            ehr,
            resource_server,
            admin,
            fhir_server: String::new(),
            users,
            fhir,
            fixture,
        };
        let res = smart
            .admin_post(
                "/admin/api/v1/fhir-servers",
                json!({
                    "base_url": smart.fhir,
                    "display_name": "St Mary's FHIR",
                    "allowed_scopes": ["patient/*.rs", "user/*.rs", "system/*.rs"],
                    "allowed_clients": [smart.smart_app.client_id, smart.ehr.client_id],
                }),
            )
            .await;
        assert_eq!(res.status(), 201);
        let made: Value = res.json().await.unwrap();
        smart.fhir_server = made["id"].as_str().unwrap().to_owned();
        smart.set_fhir_user("drsmith", "Practitioner/dr-7").await;
        smart.set_fhir_user("pat", "Patient/p-42").await;
        smart
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> reqwest::Response {
        rp_http()
            .post(self.app.url(path))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// `PUT /users/{id}/fhir-users/{server}` for `username` on the FHIR server.
    pub async fn put_fhir_user(&self, username: &str, reference: &str) -> reqwest::Response {
        let path = format!(
            "/admin/api/v1/users/{}/fhir-users/{}",
            self.users[username], self.fhir_server
        );
        rp_http()
            .put(self.app.url(&path))
            .bearer_auth(&self.admin)
            .json(&json!({ "fhir_user": reference }))
            .send()
            .await
            .unwrap()
    }

    /// Adds `client_id` to the FHIR server's allowed clients, through the admin API.
    pub async fn open_server_to(&self, client_id: &str) {
        let path = format!("/admin/api/v1/fhir-servers/{}", self.fhir_server);
        let server: Value = rp_http()
            .get(self.app.url(&path))
            .bearer_auth(&self.admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut clients = server["allowed_clients"].as_array().unwrap().clone();
        clients.push(json!(client_id));
        let res = rp_http()
            .put(self.app.url(&path))
            .bearer_auth(&self.admin)
            .json(
                &json!({"base_url": server["base_url"], "display_name": server["display_name"],
                          "allowed_scopes": server["allowed_scopes"], "allowed_clients": clients}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }

    /// Sets `username`'s FHIR resource on the FHIR server through the admin API.
    pub async fn set_fhir_user(&self, username: &str, reference: &str) {
        let res = self.put_fhir_user(username, reference).await;
        assert_eq!(res.status(), 200);
    }

    /// The app's authorization URL for `scope`, with `extra` parameters (aud, launch).
    pub fn authorize_url(&self, scope: &str, extra: &[(&str, &str)]) -> String {
        let mut url = Url::parse(&self.app.url("/authorize")).unwrap();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.smart_app.client_id)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("scope", scope)
            .append_pair("state", "st-smart")
            .append_pair("code_challenge", &challenge())
            .append_pair("code_challenge_method", "S256");
        for (k, v) in extra {
            url.query_pairs_mut().append_pair(k, v);
        }
        url.into()
    }

    /// A browser signed in as `username` through the EHR, and the EHR's access token
    /// for that user (with the launcher scope).
    pub async fn ehr_session(&self, username: &str) -> (reqwest::Client, String) {
        let browser = self.app.new_client();
        let mut url = Url::parse(&self.app.url("/authorize")).unwrap();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.ehr.client_id)
            .append_pair("redirect_uri", EHR_REDIRECT)
            .append_pair("scope", "openid gatehouse:smart_launch")
            .append_pair("state", "st-ehr");
        let back = browse_authorize(
            &self.app,
            &browser,
            url.as_str(),
            username,
            "Correct-Horse-Battery-9",
        )
        .await;
        let code = query(&back)["code"].clone();
        let tokens: Value = rp_http()
            .post(self.app.url("/token"))
            .basic_auth(&self.ehr.client_id, Some(secret(&self.ehr)))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", EHR_REDIRECT),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (browser, tokens["access_token"].as_str().unwrap().to_owned())
    }

    /// `POST /smart/launch` with `token` and `body`.
    pub async fn register_launch(&self, token: &str, body: Value) -> reqwest::Response {
        rp_http()
            .post(self.app.url("/smart/launch"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// A launch for the SMART app with a patient, an encounter and the rest.
    pub async fn launch(&self, token: &str) -> String {
        let res = self
            .register_launch(
                token,
                json!({
                    "client_id": self.smart_app.client_id,
                    "aud": self.fhir,
                    "patient": "p-42",
                    "encounter": "enc-9",
                    "fhirContext": [{"reference": "DiagnosticReport/dr-1"}],
                    "intent": "reconcile-medications",
                    "need_patient_banner": false,
                    "smart_style_url": "https://ehr.example.org/smart-style.json",
                }),
            )
            .await;
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["expires_in"], 300);
        body["launch"].as_str().unwrap().to_owned()
    }

    /// Where `/authorize` sends a browser that is signed in already.
    pub async fn authorize(&self, browser: &reqwest::Client, url: &str) -> Url {
        let res = browser.get(url).send().await.unwrap();
        assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
        Url::parse(res.headers()["location"].to_str().unwrap()).unwrap()
    }

    /// Where `/authorize` finally sends a signed-in browser, through the patient picker
    /// when Gatehouse asks for a patient: searched by `name`, `patient` chosen.
    pub async fn through_picker(
        &self,
        browser: &reqwest::Client,
        url: &str,
        name: &str,
        patient: &str,
    ) -> Url {
        let res = browser.get(url).send().await.unwrap();
        assert_eq!(res.status(), 303);
        let picker = res.headers()["location"].to_str().unwrap().to_owned();
        assert!(picker.starts_with("/smart/patient?pick="), "{picker}");
        let pick = picker.split("pick=").nth(1).unwrap().to_owned();
        let html = self
            .app
            .page(browser, &format!("{picker}&name={name}"))
            .await;
        let csrf = crate::helpers::hidden(&html, "csrf");
        let res = self
            .app
            .post_form(
                browser,
                "/smart/patient",
                &[("csrf", &csrf), ("pick", &pick), ("patient", patient)],
            )
            .await;
        assert_eq!(res.status(), 200);
        Url::parse(&crate::oidc::continue_link(&res.text().await.unwrap())).unwrap()
    }

    /// The app's code exchange (public client, PKCE).
    pub async fn exchange(&self, code: &str) -> Value {
        let res = rp_http()
            .post(self.app.url("/token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("client_id", &self.smart_app.client_id),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    /// What the FHIR server learns of `token` by introspection.
    pub async fn introspect(&self, token: &str) -> Value {
        rp_http()
            .post(self.app.url("/introspect"))
            .basic_auth(
                &self.resource_server.client_id,
                Some(secret(&self.resource_server)),
            )
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn an_ehr_launch_gives_the_app_its_context_fhir_user_and_a_token_for_the_fhir_server() {
    let s = Smart::new().await;
    let (browser, ehr_token) = s.ehr_session("drsmith").await;
    let launch = s.launch(&ehr_token).await;
    let back = s
        .authorize(
            &browser,
            &s.authorize_url(
                "launch openid fhirUser patient/*.rs offline_access",
                &[("aud", FHIR), ("launch", &launch)],
            ),
        )
        .await;
    let q = query(&back);
    assert_eq!(q["state"], "st-smart");
    let tokens = s.exchange(&q["code"]).await;
    assert_eq!(tokens["patient"], "p-42");
    assert_eq!(tokens["encounter"], "enc-9");
    assert_eq!(
        tokens["fhirContext"],
        json!([{"reference": "DiagnosticReport/dr-1"}])
    );
    assert_eq!(tokens["intent"], "reconcile-medications");
    assert_eq!(tokens["need_patient_banner"], false);
    assert_eq!(
        tokens["smart_style_url"],
        "https://ehr.example.org/smart-style.json"
    );
    assert_eq!(
        tokens["scope"],
        "launch openid fhirUser patient/*.rs offline_access"
    );
    let access = claims_of(tokens["access_token"].as_str().unwrap());
    assert_eq!(access["aud"], FHIR, "the token is for the FHIR server");
    assert_eq!(access["patient"], "p-42");
    let id_token = claims_of(tokens["id_token"].as_str().unwrap());
    assert_eq!(id_token["fhirUser"], format!("{FHIR}/Practitioner/dr-7"));
    assert_eq!(id_token["aud"], json!([s.smart_app.client_id]));

    let seen = s.introspect(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(seen["active"], true);
    assert_eq!(seen["aud"], FHIR);
    assert_eq!(seen["patient"], "p-42");
    assert_eq!(seen["encounter"], "enc-9");
    assert_eq!(seen["fhirUser"], format!("{FHIR}/Practitioner/dr-7"));
    assert_eq!(seen["client_id"], s.smart_app.client_id);
    assert_eq!(
        seen["scope"],
        "launch openid fhirUser patient/*.rs offline_access"
    );
    assert!(seen["sub"].is_string() && seen["exp"].is_number());

    // A refresh keeps the server and the context.
    let refreshed: Value = rp_http()
        .post(s.app.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", &s.smart_app.client_id),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(refreshed["patient"], "p-42", "{refreshed}");
    assert_eq!(refreshed["encounter"], "enc-9");
    let access = claims_of(refreshed["access_token"].as_str().unwrap());
    assert_eq!(access["aud"], FHIR);
    assert_eq!(access["fhirUser"], format!("{FHIR}/Practitioner/dr-7"));

    // userinfo says who the user is on the FHIR server.
    let info: Value = rp_http()
        .get(s.app.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["fhirUser"], format!("{FHIR}/Practitioner/dr-7"));

    let events = crate::admin::audit_events(&s.app, EventType::SmartLaunchCreated).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].details["client_id"], s.smart_app.client_id);
}

/// The error `/authorize` sends back to the app for `url`, from a signed-in browser.
async fn refused(s: &Smart, browser: &reqwest::Client, url: &str) -> (String, String) {
    let back = s.authorize(browser, url).await;
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    let q = query(&back);
    assert!(!q.contains_key("code"), "{back}");
    assert_eq!(q["state"], "st-smart");
    (q["error"].clone(), q["error_description"].clone())
}

#[tokio::test]
async fn a_launch_is_single_use_bound_to_its_app_its_user_and_its_server() {
    let s = Smart::new().await;
    let (browser, ehr_token) = s.ehr_session("drsmith").await;
    let scope = "launch openid fhirUser patient/*.rs";

    // Used once, then gone.
    let launch = s.launch(&ehr_token).await;
    let url = s.authorize_url(scope, &[("aud", FHIR), ("launch", &launch)]);
    assert!(query(&s.authorize(&browser, &url).await).contains_key("code"));
    let (error, why) = refused(&s, &browser, &url).await;
    assert_eq!(error, "invalid_request");
    assert!(why.contains("already used"), "{why}");

    // Made up.
    let url = s.authorize_url(scope, &[("aud", FHIR), ("launch", "made-up")]);
    assert_eq!(refused(&s, &browser, &url).await.0, "invalid_request");

    // Registered for another app: spent by the attempt, refused.
    let other = register_client(
        &s.app,
        ClientSpec {
            scopes: ["openid", "launch", "patient/*.rs"]
                .map(String::from)
                .to_vec(),
            ..ClientSpec::new("Other app", &[REDIRECT])
        },
    )
    .await;
    let res = s
        .register_launch(
            &ehr_token,
            json!({"client_id": other.client_id, "patient": "p-42"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let foreign: Value = res.json().await.unwrap();
    let url = s.authorize_url(
        scope,
        &[
            ("aud", FHIR),
            ("launch", foreign["launch"].as_str().unwrap()),
        ],
    );
    let (error, why) = refused(&s, &browser, &url).await;
    assert_eq!(error, "invalid_request");
    assert!(why.contains("another app"), "{why}");

    // Registered by drsmith's EHR session, brought by a browser signed in as someone
    // else: no code for them.
    let launch = s.launch(&ehr_token).await;
    let (other_browser, _) = s.ehr_session("pat").await;
    let url = s.authorize_url(scope, &[("aud", FHIR), ("launch", &launch)]);
    let (error, why) = refused(&s, &other_browser, &url).await;
    assert_eq!(error, "access_denied");
    assert!(why.contains("another user"), "{why}");

    // The launch scope without a launch, and a launch without the scope.
    let url = s.authorize_url(scope, &[("aud", FHIR)]);
    assert_eq!(refused(&s, &browser, &url).await.0, "invalid_request");
    let launch = s.launch(&ehr_token).await;
    let url = s.authorize_url("openid patient/*.rs", &[("aud", FHIR), ("launch", &launch)]);
    assert_eq!(refused(&s, &browser, &url).await.0, "invalid_scope");
}

#[tokio::test]
async fn aud_must_name_a_registered_server_open_to_the_app_and_scopes_must_be_registered() {
    let s = Smart::new().await;
    let (browser, _) = s.ehr_session("pat").await;
    /// The scope and parameters asked, the error expected, and what its description says.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case] = &[
        // An unregistered FHIR server, and one spelled badly.
        (
            "openid patient/*.rs",
            &[("aud", "https://evil.example.org/fhir")],
            "invalid_target",
            "not a FHIR server",
        ),
        (
            "openid patient/*.rs",
            &[("aud", "http://fhir.example.org/r4")],
            "invalid_target",
            "https",
        ),
        // aud and resource disagreeing.
        (
            "openid patient/*.rs",
            &[("aud", FHIR), ("resource", "https://other.example.org")],
            "invalid_target",
            "different",
        ),
        // SMART scopes without aud.
        ("openid patient/*.rs", &[], "invalid_request", "aud"),
        // A scope beyond the app's registration, and beyond the server's.
        (
            "openid patient/*.cruds",
            &[("aud", FHIR)],
            "invalid_scope",
            "not available to this client",
        ),
        (
            "openid system/*.rs",
            &[("aud", FHIR)],
            "invalid_scope",
            "not available",
        ),
        // v2 syntax errors, named.
        (
            "openid patient/Observation.sr",
            &[("aud", FHIR)],
            "invalid_scope",
            "invalid SMART scope",
        ),
        (
            "openid patient/Observation.rs?category",
            &[("aud", FHIR)],
            "invalid_scope",
            "name=value",
        ),
    ];
    for (scope, extra, error, says) in cases {
        let (got, why) = refused(&s, &browser, &s.authorize_url(scope, extra)).await;
        assert_eq!(got, *error, "{scope} {extra:?}: {why}");
        assert!(why.contains(says), "{scope} {extra:?}: {why}");
    }

    // A server that does not list the app.
    let res = s
        .admin_post(
            "/admin/api/v1/fhir-servers",
            json!({"base_url": "https://lab.example.org/fhir", "display_name": "Lab",
                   "allowed_scopes": ["patient/*.rs"], "allowed_clients": []}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let url = s.authorize_url(
        "openid patient/*.rs",
        &[("aud", "https://lab.example.org/fhir")],
    );
    assert_eq!(refused(&s, &browser, &url).await.0, "invalid_target");

    // A public app without PKCE never gets as far as its scopes.
    let mut url = Url::parse(&s.app.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &s.smart_app.client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid patient/*.rs")
        .append_pair("aud", FHIR)
        .append_pair("state", "st-smart");
    let (error, why) = refused(&s, &browser, url.as_str()).await;
    assert_eq!(error, "invalid_request");
    assert!(why.contains("PKCE"), "{why}");
}

#[tokio::test]
async fn a_standalone_patient_launch_puts_the_patient_user_in_context() {
    let s = Smart::new().await;
    let (browser, _) = s.ehr_session("pat").await;
    let back = s
        .authorize(
            &browser,
            &s.authorize_url(
                "launch/patient openid fhirUser patient/*.rs",
                &[("aud", FHIR)],
            ),
        )
        .await;
    let tokens = s.exchange(&query(&back)["code"]).await;
    assert_eq!(tokens["patient"], "p-42");
    let id_token = claims_of(tokens["id_token"].as_str().unwrap());
    assert_eq!(id_token["fhirUser"], format!("{FHIR}/Patient/p-42"));
    assert_eq!(
        claims_of(tokens["access_token"].as_str().unwrap())["aud"],
        FHIR
    );
}

#[tokio::test]
async fn only_an_ehr_user_token_with_the_launcher_scope_registers_a_sound_launch() {
    let s = Smart::new().await;
    let (_, ehr_token) = s.ehr_session("drsmith").await;
    let good = json!({"client_id": s.smart_app.client_id, "patient": "p-42"});

    // No token, a made-up one, and a token without the launcher scope.
    let res = rp_http()
        .post(s.app.url("/smart/launch"))
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        s.register_launch("not-a-token", good.clone())
            .await
            .status(),
        401
    );
    let backend = register_client(
        &s.app,
        ClientSpec {
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["gatehouse:smart_launch".into()],
            ..ClientSpec::new("Batch", &[])
        },
    )
    .await;
    let service_token: Value = rp_http()
        .post(s.app.url("/token"))
        .basic_auth(&backend.client_id, Some(secret(&backend)))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "gatehouse:smart_launch"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let res = s
        .register_launch(
            service_token["access_token"].as_str().unwrap(),
            good.clone(),
        )
        .await;
    assert_eq!(res.status(), 401, "a launch needs a user");
    let res = s.register_launch(&s.admin, good.clone()).await;
    assert_eq!(
        res.status(),
        403,
        "the admin scope is not the launcher scope"
    );

    for (body, says) in [
        (json!({"client_id": "nobody"}), "client_id"),
        (
            json!({"client_id": s.resource_server.client_id}),
            "client_id",
        ),
        (
            json!({"client_id": s.smart_app.client_id, "patient": "p 42"}),
            "patient",
        ),
        (
            json!({"client_id": s.smart_app.client_id, "encounter": ""}),
            "encounter",
        ),
        (
            json!({"client_id": s.smart_app.client_id, "fhirContext": [{"reference": "x"}]}),
            "fhirContext",
        ),
        (
            json!({"client_id": s.smart_app.client_id, "fhirContext": ["DiagnosticReport/1"]}),
            "fhirContext",
        ),
        (
            json!({"client_id": s.smart_app.client_id, "smart_style_url": "javascript:alert(1)"}),
            "smart_style_url",
        ),
        (
            json!({"client_id": s.smart_app.client_id, "intent": "a\u{0}b"}),
            "intent",
        ),
        (
            json!({"client_id": s.smart_app.client_id, "aud": "https://evil.example.org"}),
            "not a FHIR server",
        ),
        (
            json!({"client_id": s.smart_app.client_id, "tenant": "x"}),
            "unknown field",
        ),
    ] {
        let res = s.register_launch(&ehr_token, body.clone()).await;
        assert_eq!(res.status(), 400, "{body}");
        let answer: Value = res.json().await.unwrap();
        let why = answer["error_description"].as_str().unwrap_or_default();
        assert!(why.contains(says), "{body}: {answer}");
    }
    let res = rp_http()
        .post(s.app.url("/smart/launch"))
        .bearer_auth(&ehr_token)
        .body("client_id=x")
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(
        crate::admin::audit_events(&s.app, EventType::SmartLaunchCreated)
            .await
            .is_empty()
    );
}

/// A backend service (`private_key_jwt` with `key`) asking for `scope`.
async fn backend_token(
    s: &Smart,
    client_id: &str,
    key: &ClientKey,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    use gatehouse::clock::Clock;
    let now = s.app.clock.now().timestamp();
    let assertion = key.sign(
        json!({"typ": "JWT"}),
        &json!({"iss": client_id, "sub": client_id, "aud": s.app.url("/token"),
                "exp": now + 300, "jti": uuid::Uuid::new_v4().to_string()}),
    );
    let mut form = vec![
        ("grant_type", "client_credentials"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion.as_str()),
    ];
    form.extend_from_slice(extra);
    let res = rp_http()
        .post(s.app.url("/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test]
async fn a_backend_service_signs_with_rs384_or_es384_and_gets_system_scopes_for_its_server() {
    let s = Smart::new().await;
    for key in [
        ClientKey::ec384("bulk-es384"),
        ClientKey::rsa("bulk-rs384").signing_with(jsonwebtoken::Algorithm::RS384),
    ] {
        let service = register_client(
            &s.app,
            ClientSpec {
                grant_types: vec!["client_credentials".into()],
                scopes: vec!["system/*.rs".into()],
                auth_method: Some("private_key_jwt".into()),
                jwks: Some(key.jwks()),
                ..ClientSpec::new("Bulk export", &[])
            },
        )
        .await;
        // Not yet open to the FHIR server.
        let (status, body) = backend_token(
            &s,
            &service.client_id,
            &key,
            &[("scope", "system/Patient.rs")],
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_target")),
            "{body}"
        );
        s.open_server_to(&service.client_id).await;

        let (status, body) = backend_token(
            &s,
            &service.client_id,
            &key,
            &[("scope", "system/Patient.rs")],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["scope"], "system/Patient.rs");
        let access = claims_of(body["access_token"].as_str().unwrap());
        assert_eq!(access["aud"], FHIR, "the only server open to it");
        assert_eq!(access["sub"], service.client_id);
        let seen = s.introspect(body["access_token"].as_str().unwrap()).await;
        assert_eq!(
            (seen["active"].as_bool(), seen["aud"].as_str()),
            (Some(true), Some(FHIR))
        );

        // Named with resource; a server it is not open to; user and patient scopes.
        let (status, body) = backend_token(
            &s,
            &service.client_id,
            &key,
            &[("scope", "system/*.rs"), ("resource", FHIR)],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        for (extra, error) in [
            (
                [
                    ("scope", "system/*.rs"),
                    ("resource", "https://evil.example.org"),
                ],
                "invalid_target",
            ),
            (
                [("scope", "patient/*.rs"), ("resource", FHIR)],
                "invalid_scope",
            ),
            (
                [("scope", "system/*.cruds"), ("resource", FHIR)],
                "invalid_scope",
            ),
            ([("scope", "launch"), ("resource", FHIR)], "invalid_scope"),
        ] {
            let (status, body) = backend_token(&s, &service.client_id, &key, &extra).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (400, Some(error)),
                "{extra:?}: {body}"
            );
        }
    }
}

#[tokio::test]
async fn smart_configuration_lists_the_endpoints_and_what_works() {
    let s = Smart::new().await;
    let res = s.app.get("/.well-known/smart-configuration").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["issuer"], s.app.base);
    assert_eq!(doc["authorization_endpoint"], s.app.url("/authorize"));
    assert_eq!(doc["token_endpoint"], s.app.url("/token"));
    assert_eq!(doc["introspection_endpoint"], s.app.url("/introspect"));
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    let algs = doc["token_endpoint_auth_signing_alg_values_supported"]
        .as_array()
        .unwrap();
    for alg in ["RS384", "ES384", "RS256", "ES256"] {
        assert!(algs.contains(&json!(alg)), "{alg}");
    }
    let capabilities: Vec<&str> = doc["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for c in [
        "launch-ehr",
        "client-public",
        "context-ehr-patient",
        "permission-v2",
        "sso-openid-connect",
    ] {
        assert!(capabilities.contains(&c), "{c}");
    }
}

#[tokio::test]
async fn administrators_set_list_and_clear_a_users_fhir_identity_with_each_change_audited() {
    let s = Smart::new().await;
    let list = |user: &'static str| {
        let path = format!("/admin/api/v1/users/{}/fhir-users", s.users[user]);
        let (http, token, url) = (rp_http(), s.admin.clone(), s.app.url(&path));
        async move {
            let res = http.get(url).bearer_auth(token).send().await.unwrap();
            assert_eq!(res.status(), 200);
            res.json::<Value>().await.unwrap()
        }
    };
    assert_eq!(
        list("drsmith").await,
        json!([{"fhir_server": s.fhir_server, "base_url": FHIR, "fhir_user": "Practitioner/dr-7"}])
    );
    // Replaced, not added.
    s.set_fhir_user("drsmith", " Practitioner/dr-8 ").await;
    assert_eq!(list("drsmith").await[0]["fhir_user"], "Practitioner/dr-8");
    for bad in [
        "Observation/1",
        "Practitioner/",
        "Practitioner/a b",
        "dr-8",
        "",
    ] {
        let res = s.put_fhir_user("drsmith", bad).await;
        assert_eq!(res.status(), 400, "{bad}");
        let body: Value = res.json().await.unwrap();
        assert!(
            body["message"].as_str().unwrap().contains("fhir_user"),
            "{body}"
        );
    }
    let no_server = format!(
        "/admin/api/v1/users/{}/fhir-users/no-such-server",
        s.users["drsmith"]
    );
    let res = rp_http()
        .put(s.app.url(&no_server))
        .bearer_auth(&s.admin)
        .json(&json!({"fhir_user": "Practitioner/1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    let one = format!(
        "/admin/api/v1/users/{}/fhir-users/{}",
        s.users["drsmith"], s.fhir_server
    );
    let res = rp_http()
        .delete(s.app.url(&one))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap()["fhir_user"],
        "Practitioner/dr-8"
    );
    assert_eq!(list("drsmith").await, json!([]));
    let again = rp_http()
        .delete(s.app.url(&one))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);

    // Without a FHIR identity the app's token says nothing of one.
    let (browser, _) = s.ehr_session("drsmith").await;
    let back = s
        .authorize(
            &browser,
            &s.authorize_url("openid fhirUser patient/*.rs", &[("aud", FHIR)]),
        )
        .await;
    let tokens = s.exchange(&query(&back)["code"]).await;
    assert!(claims_of(tokens["id_token"].as_str().unwrap())["fhirUser"].is_null());

    let set = crate::admin::audit_events(&s.app, EventType::FhirUserSet).await;
    assert_eq!(set.len(), 3, "two at set-up, one replacement");
    assert_eq!(set[0].details["fhir_user"], "Practitioner/dr-8");
    assert_eq!(set[0].subject.as_deref(), Some(s.users["drsmith"].as_str()));
    let cleared = crate::admin::audit_events(&s.app, EventType::FhirUserCleared).await;
    assert_eq!(cleared.len(), 1);
    assert_eq!(cleared[0].details["base_url"], FHIR);
}

#[tokio::test]
async fn the_command_line_and_the_console_set_and_clear_a_fhir_identity() {
    use crate::cli::gatehouse;
    use gatehouse::domain::{MfaPolicy, Role};
    // The command line shares the server's database: the embedded one, in its data
    // directory, with its master key.
    let s = Smart::with(|c| {
        c.database_url = None;
        c.master_key = None;
    })
    .await;
    let dir = s.app.data_dir.path();
    let run = |args: &[&str]| {
        let out = gatehouse(dir).args(args).arg("--json").output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let set = run(&[
        "fhir-server",
        "set-user",
        "pat",
        &format!("{FHIR}/"),
        "RelatedPerson/rp-1",
    ]);
    assert_eq!(set[0]["fhir_user"], "RelatedPerson/rp-1");
    assert_eq!(run(&["fhir-server", "users", "pat"])[0]["base_url"], FHIR);
    run(&["fhir-server", "clear-user", "pat", FHIR]);
    assert_eq!(run(&["fhir-server", "users", "pat"]), json!([]));
    let bad = gatehouse(dir)
        .args(["fhir-server", "set-user", "pat", FHIR, "Encounter/1"])
        .output()
        .unwrap();
    assert!(!bad.status.success());

    crate::helpers::change_default_policy(&s.app, |p| p.mfa = MfaPolicy::Off).await;
    crate::helpers::create_user_with_role(&s.app, "root", "Quiet-Harbour-42", Role::SuperAdmin)
        .await;
    let root = s.app.new_client();
    assert_eq!(
        s.app
            .sign_in(&root, "root", "Quiet-Harbour-42")
            .await
            .status(),
        303
    );
    let page_path = format!("/admin/users/{}", s.users["pat"]);
    let html = s.app.page(&root, &page_path).await;
    assert!(html.contains("no-fhir-users"), "{html}");
    let csrf = crate::helpers::hidden(&html, "csrf");
    let res = s
        .app
        .post_form(
            &root,
            &format!("/admin/users/{}/fhir-users/set", s.users["pat"]),
            &[
                ("csrf", &csrf),
                ("server", FHIR),
                ("fhir_user", "Patient/p-43"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let html = s.app.page(&root, &page_path).await;
    assert!(html.contains("Patient/p-43"), "{html}");
    let res = s
        .app
        .post_form(
            &root,
            &format!("/admin/users/{}/fhir-users/set", s.users["pat"]),
            &[("csrf", &csrf), ("server", FHIR), ("fhir_user", "<script>")],
        )
        .await;
    assert_eq!(res.status(), 400);
    let res = s
        .app
        .post_form(
            &root,
            &format!("/admin/users/{}/fhir-users/clear", s.users["pat"]),
            &[("csrf", &csrf), ("server", &s.fhir_server)],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert!(
        s.app
            .page(&root, &page_path)
            .await
            .contains("no-fhir-users")
    );
}

/// Follows a `continue_to` page (or a redirect) to where it sends the browser.
fn sent_to(status: u16, location: Option<&str>, html: &str) -> String {
    match status {
        303 => location.unwrap().to_owned(),
        200 => crate::oidc::continue_link(html),
        other => panic!("{other}: {html}"),
    }
}

#[tokio::test]
async fn a_practitioner_chooses_the_patient_of_a_standalone_launch_from_the_fhir_servers_search() {
    let s = Smart::with_fixture().await;
    let fhir = s.fhir.clone();
    let (browser, _) = s.ehr_session("drsmith").await;
    let scope = "launch/patient openid fhirUser patient/*.rs";
    let res = browser
        .get(s.authorize_url(scope, &[("aud", &fhir)]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let picker = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(picker.starts_with("/smart/patient?pick="), "{picker}");
    let pick = picker.split("pick=").nth(1).unwrap().to_owned();
    let html = s.app.page(&browser, &picker).await;
    assert!(
        html.contains("Growth charts") && html.contains("id=\"name\""),
        "{html}"
    );

    // Too short a name is refused before anything is asked of the FHIR server.
    let res = browser
        .get(s.app.url(&format!("{picker}&name=a")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(
        s.fixture
            .as_ref()
            .unwrap()
            .seen
            .lock()
            .unwrap()
            .searches
            .is_empty()
    );

    let html = s.app.page(&browser, &format!("{picker}&name=Ana")).await;
    assert!(
        html.contains("Ana López") && html.contains("Ana Ruiz"),
        "{html}"
    );
    assert!(
        html.contains("1980-02-03") && html.contains("MRN-8"),
        "{html}"
    );
    assert!(!html.contains("Bo Chen"));
    {
        let seen = s.fixture.as_ref().unwrap().seen.lock().unwrap();
        assert_eq!(seen.searches, ["ana"]);
        let token = &seen.introspected[0];
        assert_eq!(token["active"], true);
        assert_eq!(
            token["aud"],
            fhir.as_str(),
            "Gatehouse's token is for that server"
        );
        assert_eq!(token["scope"], "system/Patient.rs");
    }
    let csrf = crate::helpers::hidden(&html, "csrf");

    // Only a patient the search showed can be chosen.
    let res = s
        .app
        .post_form(
            &browser,
            "/smart/patient",
            &[("csrf", &csrf), ("pick", &pick), ("patient", "p-7")],
        )
        .await;
    assert_eq!(res.status(), 400);
    // Nor can another browser (another user) use the pick.
    let (other, _) = s.ehr_session("pat").await;
    let other_page = s.app.page(&other, "/account").await;
    let res = s
        .app
        .post_form(
            &other,
            "/smart/patient",
            &[
                ("csrf", &crate::helpers::hidden(&other_page, "csrf")),
                ("pick", &pick),
                ("patient", "p-8"),
            ],
        )
        .await;
    assert_eq!(res.status(), 400);

    let form = [
        ("csrf", csrf.as_str()),
        ("pick", pick.as_str()),
        ("patient", "p-8"),
    ];
    let res = s.app.post_form(&browser, "/smart/patient", &form).await;
    let status = res.status().as_u16();
    let location = res
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    let back = sent_to(status, location.as_deref(), &res.text().await.unwrap());
    let back = Url::parse(&back).unwrap();
    let tokens = s.exchange(&query(&back)["code"]).await;
    assert_eq!(tokens["patient"], "p-8");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(claims_of(access)["aud"], fhir.as_str());

    // The FHIR server holds the app to the chosen patient.
    let read = |id: &str| {
        rp_http()
            .get(format!("{fhir}/Patient/{id}"))
            .bearer_auth(access)
            .send()
    };
    assert_eq!(read("p-8").await.unwrap().status(), 200);
    assert_eq!(read("p-42").await.unwrap().status(), 403);

    // The choice is taken once.
    let res = s.app.post_form(&browser, "/smart/patient", &form).await;
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn a_user_without_a_fhir_identity_cannot_reach_the_patient_picker() {
    let s = Smart::with_fixture().await;
    create_user(&s.app, "clerk", "Correct-Horse-Battery-9", false).await;
    let (browser, _) = s.ehr_session("clerk").await;
    let url = s.authorize_url("launch/patient openid patient/*.rs", &[("aud", &s.fhir)]);
    let (error, why) = refused(&s, &browser, &url).await;
    assert_eq!(error, "access_denied");
    assert!(why.contains("FHIR identity"), "{why}");
    assert!(
        s.fixture
            .as_ref()
            .unwrap()
            .seen
            .lock()
            .unwrap()
            .searches
            .is_empty()
    );
    // A made-up pick shows nothing.
    let res = browser
        .get(s.app.url("/smart/patient?pick=made-up&name=Ana"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(
        s.fixture
            .as_ref()
            .unwrap()
            .seen
            .lock()
            .unwrap()
            .searches
            .is_empty()
    );
}

#[tokio::test]
async fn a_public_app_refreshes_without_naming_itself_and_a_confidential_client_may_not() {
    let s = Smart::new().await;
    let (browser, _) = s.ehr_session("pat").await;
    let back = s
        .authorize(
            &browser,
            &s.authorize_url(
                "launch/patient openid patient/*.rs offline_access",
                &[("aud", FHIR)],
            ),
        )
        .await;
    let tokens = s.exchange(&query(&back)["code"]).await;
    let first = tokens["refresh_token"].as_str().unwrap();
    let refresh = |token: &str| {
        rp_http()
            .post(s.app.url("/token"))
            .header("Origin", "https://rp.example.org")
            .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
            .send()
    };
    // SMART's JavaScript client sends no client_id with a refresh: the token names its
    // (public) client, and the browser may read the answer.
    let res = refresh(first).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://rp.example.org"
    );
    let refreshed: Value = res.json().await.unwrap();
    assert_eq!(refreshed["patient"], "p-42");
    // The spent token again: a replay, which ends the family.
    let res = refresh(first).await.unwrap();
    assert_eq!(res.status(), 400);
    let res = refresh(refreshed["refresh_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "the family ended with the replay");
    // A made-up token names no client.
    assert_eq!(refresh("made-up").await.unwrap().status(), 401);

    // A confidential client's refresh token still needs the client's credentials.
    let ehr_browser = s.app.new_client();
    let ehr = register_client(
        &s.app,
        ClientSpec {
            scopes: ["openid", "offline_access"].map(String::from).to_vec(),
            ..ClientSpec::new("Confidential", &[EHR_REDIRECT])
        },
    )
    .await;
    let mut url = Url::parse(&s.app.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &ehr.client_id)
        .append_pair("redirect_uri", EHR_REDIRECT)
        .append_pair("scope", "openid offline_access");
    let back = browse_authorize(
        &s.app,
        &ehr_browser,
        url.as_str(),
        "drsmith",
        "Correct-Horse-Battery-9",
    )
    .await;
    let tokens: Value = rp_http()
        .post(s.app.url("/token"))
        .basic_auth(&ehr.client_id, Some(secret(&ehr)))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &query(&back)["code"]),
            ("redirect_uri", EHR_REDIRECT),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let res = refresh(tokens["refresh_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}
