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

mod backend;
mod consent;
mod fhir_users;
mod fhirclient;
mod fixture;
mod javascript;
mod jwks_uri;
mod launch;
mod picker;

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

/// A SMART backend service named `name` (`client_credentials`, `private_key_jwt` with
/// the JWKS document `jwks`, `system/*.rs`).
pub fn backend_service(name: &str, jwks: String) -> ClientSpec {
    ClientSpec {
        grant_types: vec!["client_credentials".into()],
        scopes: vec!["system/*.rs".into()],
        auth_method: Some("private_key_jwt".into()),
        jwks: Some(jwks),
        ..ClientSpec::new(name, &[])
    }
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

    /// The names the test FHIR server was searched for.
    pub fn searches(&self) -> Vec<String> {
        let fixture = self.fixture.as_ref().expect("a FHIR server fixture");
        fixture.seen.lock().unwrap().searches.clone()
    }

    /// Marks the SMART app as one that asks for consent, through the admin API.
    pub async fn ask_consent(&self) {
        let path = format!("/admin/api/v1/clients/{}", self.smart_app.client_id);
        let res = rp_http()
            .put(self.app.url(&path))
            .bearer_auth(&self.admin)
            .json(&json!({"ask_consent": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["client"]["ask_consent"], true);
    }

    /// The app's tokens for `scope` (and `extra` parameters), from a browser signed in
    /// already: `/authorize` answers at once, and the code is exchanged.
    pub async fn tokens(
        &self,
        browser: &reqwest::Client,
        scope: &str,
        extra: &[(&str, &str)],
    ) -> Value {
        let back = self
            .authorize(browser, &self.authorize_url(scope, extra))
            .await;
        self.exchange(&query(&back)["code"]).await
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

/// The error `/authorize` sends back to the app for `url`, from a signed-in browser.
pub(crate) async fn refused(s: &Smart, browser: &reqwest::Client, url: &str) -> (String, String) {
    let back = s.authorize(browser, url).await;
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    let q = query(&back);
    assert!(!q.contains_key("code"), "{back}");
    assert_eq!(q["state"], "st-smart");
    (q["error"].clone(), q["error_description"].clone())
}
