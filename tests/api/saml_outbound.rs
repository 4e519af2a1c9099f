//! What Gatehouse writes to SAML SPs (DESIGN §10 "every value written into XML is
//! escaped") and who may start an IdP-initiated sign-in. Each test is an attack from the
//! security review (issue 20, items 2 and 12), checked the way an SP checks our messages:
//! samael's SP parser and `xmlsec1 --verify` against the certificate in our metadata.

use gatehouse::{
    domain::DisplayName,
    saml::{
        assertion::{self, Person, Statement},
        providers::{self, ImportSettings},
    },
};
use proptest::prelude::*;
use reqwest::Method;
use samael::schema::Assertion;
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, spawn_app},
    oidc::{admin_token, rp_http},
    saml::{TestSp, extract, idp_cert, posted, rand_id, xmlsec1_verify},
};

const PASSWORD: &str = "Correct-Horse-9-Battery";
const ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion:Assertion";
const RESPONSE: &str = "urn:oasis:names:tc:SAML:2.0:protocol:Response";

/// The review's payload: closes the display name's AttributeValue and Attribute and opens
/// a `roles` attribute of its own, which the original closing tags then complete.
const FORGED_ROLE: &str = r#"x</saml2:AttributeValue></saml2:Attribute><saml2:Attribute Name="roles"><saml2:AttributeValue>super_admin"#;

pub async fn admin_call(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let res = rp_http()
        .request(method, app.url(&format!("/admin/api/v1{path}")))
        .bearer_auth(token)
        .header("Origin", &app.base)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Creates an active user in `default` over the admin API.
async fn api_user(
    app: &TestApp,
    token: &str,
    username: &str,
    email: &str,
    display_name: &str,
) -> (u16, Value) {
    admin_call(
        app,
        token,
        Method::POST,
        "/users",
        json!({
            "org": "default",
            "username": username,
            "email": email,
            "display_name": display_name,
            "password": PASSWORD,
            "must_change_password": false,
        }),
    )
    .await
}

/// Signs `username` in and returns the SAML Response XML `sp` receives (SP-initiated).
async fn response_at(app: &TestApp, sp: &TestSp, username: &str) -> (String, String) {
    let client = app.new_client();
    assert_eq!(app.sign_in(&client, username, PASSWORD).await.status(), 303);
    let id = format!("_{}", rand_id());
    let xml = sp.authn_request(&id, app, "", "");
    let res = sp.send_redirect(app, &client, &xml, None, false).await;
    let status = res.status();
    let html = res.text().await.unwrap();
    assert_eq!(status, 200, "the session is answered at once: {html}");
    (id, posted(&html).1)
}

/// Attribute name → values, as samael's SP reads the assertion.
fn attributes(assertion: &Assertion) -> Vec<(String, Vec<String>)> {
    assertion
        .attribute_statements
        .iter()
        .flatten()
        .flat_map(|s| s.attributes.iter())
        .map(|a| {
            (
                a.name.clone().unwrap_or_default(),
                a.values.iter().filter_map(|v| v.value.clone()).collect(),
            )
        })
        .collect()
}

fn value_of(assertion: &Assertion, name: &str) -> Vec<String> {
    attributes(assertion)
        .into_iter()
        .filter(|(n, _)| n == name)
        .flat_map(|(_, v)| v)
        .collect()
}

#[tokio::test]
async fn a_display_name_that_closes_its_attribute_cannot_forge_a_signed_role() {
    let app = spawn_app().await;
    let token = admin_token(&app).await;
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(&app, ImportSettings::default()).await;
    let (status, body) =
        api_user(&app, &token, "mallory", "mallory@example.org", FORGED_ROLE).await;
    assert_eq!(
        status, 201,
        "printable text is a valid display name: {body}"
    );

    let (id, response) = response_at(&app, &sp, "mallory").await;
    let assertion = sp
        .samael(&app, false)
        .await
        .parse_xml_response(&response, Some(&[id.as_str()]))
        .expect("samael's SP accepts the Response");
    let names: Vec<String> = attributes(&assertion).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["email", "displayName", "organisation", "roles", "username"],
        "exactly the configured attributes, each once"
    );
    assert_eq!(value_of(&assertion, "roles"), ["user"], "no forged role");
    assert_eq!(value_of(&assertion, "displayName"), [FORGED_ROLE]);
    assert!(xmlsec1_verify(
        &extract(&response, "<saml2:Assertion", "</saml2:Assertion>"),
        ASSERTION,
        &idp_cert(&app).await
    ));
}

#[tokio::test]
async fn an_email_with_an_ampersand_signs_in_through_saml() {
    let app = spawn_app().await;
    let token = admin_token(&app).await;
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(
        &app,
        ImportSettings {
            name_id_format: Some("email".into()),
            sign_response: Some(true),
            ..Default::default()
        },
    )
    .await;
    let (status, body) =
        api_user(&app, &token, "tom", "tom&jerry@example.org", "Tom & Jerry").await;
    assert_eq!(status, 201, "{body}");

    let (id, response) = response_at(&app, &sp, "tom").await;
    let assertion = sp
        .samael(&app, false)
        .await
        .parse_xml_response(&response, Some(&[id.as_str()]))
        .expect("samael's SP accepts the Response");
    assert_eq!(
        assertion
            .subject
            .as_ref()
            .unwrap()
            .name_id
            .as_ref()
            .unwrap()
            .value,
        "tom&jerry@example.org"
    );
    assert_eq!(value_of(&assertion, "email"), ["tom&jerry@example.org"]);
    assert_eq!(value_of(&assertion, "displayName"), ["Tom & Jerry"]);
    let cert = idp_cert(&app).await;
    assert!(xmlsec1_verify(&response, RESPONSE, &cert));
    assert!(xmlsec1_verify(
        &extract(&response, "<saml2:Assertion", "</saml2:Assertion>"),
        ASSERTION,
        &cert
    ));
}

#[tokio::test]
async fn display_names_with_control_characters_or_odd_whitespace_are_refused() {
    let app = spawn_app().await;
    let token = admin_token(&app).await;
    for (n, bad) in [
        "Eve\u{2028}Admin",
        "Eve\nAdmin",
        "Eve\u{0}",
        "Eve\u{202e}nimdA",
        "\u{7}",
        "   ",
    ]
    .into_iter()
    .enumerate()
    {
        let (status, body) =
            api_user(&app, &token, &format!("eve{n}"), "eve@example.org", bad).await;
        assert_eq!(status, 400, "{bad:?}: {body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap_or("")
                .contains("display_name"),
            "{bad:?}: {body}"
        );
    }
    let long = "é".repeat(201);
    let (status, _) = api_user(&app, &token, "eve", "eve@example.org", &long).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_display_name_stored_before_the_check_is_still_escaped_and_signed() {
    let app = spawn_app().await;
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(&app, ImportSettings::default()).await;
    let user = crate::helpers::create_user(&app, "olga", PASSWORD, false).await;
    // Written straight to the store, as an older version (or a database edit) could have.
    let stored = format!("{FORGED_ROLE}\u{2028}\r\n\u{7}]]>");
    let (id, value) = (user.id.clone(), stored.clone());
    let sealed = app.state.pii.seal_display_name(&id, &value);
    app.state
        .store
        .run(move |c| {
            use diesel::prelude::*;
            use gatehouse::store::schema::users::dsl;
            diesel::update(dsl::users.find(&id))
                .set(dsl::display_name_sealed.eq(Some(sealed)))
                .execute(c)?;
            Ok(())
        })
        .await
        .unwrap();
    let (id, response) = response_at(&app, &sp, "olga").await;
    let assertion = sp
        .samael(&app, false)
        .await
        .parse_xml_response(&response, Some(&[id.as_str()]))
        .expect("samael's SP accepts the Response");
    assert_eq!(value_of(&assertion, "roles"), ["user"], "no forged role");
    // XML 1.0 cannot carry U+0007 at all, even as a reference: it is replaced.
    assert_eq!(
        value_of(&assertion, "displayName"),
        [stored.replace('\u{7}', "\u{fffd}")]
    );
    assert!(xmlsec1_verify(
        &extract(&response, "<saml2:Assertion", "</saml2:Assertion>"),
        ASSERTION,
        &idp_cert(&app).await
    ));
}

// IdP-initiated SSO (Profiles §4.1.5) is a per-SP opt-in with registered RelayStates.

fn init_path(sp: &TestSp, relay: Option<&str>) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let mut path = format!("/saml/sso/init?sp={}", enc(&sp.entity_id));
    if let Some(r) = relay {
        path.push_str(&format!("&RelayState={}", enc(r)));
    }
    path
}

async fn refused_page(res: reqwest::Response, needle: &str) {
    let status = res.status();
    let body = res.text().await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains(needle), "expected {needle:?} in {body}");
    assert!(!body.contains("SAMLResponse"), "nothing is posted anywhere");
}

#[tokio::test]
async fn idp_initiated_sso_is_refused_for_an_sp_that_never_opted_in() {
    let app = spawn_app().await;
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(&app, ImportSettings::default()).await;
    crate::helpers::create_user(&app, "ivan", PASSWORD, false).await;
    let client = app.new_client();
    assert_eq!(app.sign_in(&client, "ivan", PASSWORD).await.status(), 303);
    // A link on any site, followed by a signed-in browser.
    let res = client
        .get(app.url(&init_path(&sp, Some("https://evil.example"))))
        .header("Referer", "https://evil.example/")
        .send()
        .await
        .unwrap();
    refused_page(res, "does not accept sign-ins started at Gatehouse").await;
    let res = client
        .get(app.url(&init_path(&sp, None)))
        .send()
        .await
        .unwrap();
    refused_page(res, "does not accept sign-ins started at Gatehouse").await;
}

#[tokio::test]
async fn idp_initiated_sso_takes_only_a_registered_relay_state() {
    let app = spawn_app().await;
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(
        &app,
        ImportSettings {
            idp_initiated: Some(true),
            idp_initiated_relay_states: Some(vec!["https://sp.example.org/home".into()]),
            ..Default::default()
        },
    )
    .await;
    crate::helpers::create_user(&app, "judy", PASSWORD, false).await;
    let client = app.new_client();
    assert_eq!(app.sign_in(&client, "judy", PASSWORD).await.status(), 303);
    for evil in [
        "https://evil.example",
        "https://sp.example.org/home/../admin",
        "https://sp.example.org/HOME",
        "",
    ] {
        let res = client
            .get(app.url(&init_path(&sp, Some(evil))))
            .send()
            .await
            .unwrap();
        refused_page(res, "RelayState").await;
    }
    for (relay, expected) in [
        (
            Some("https://sp.example.org/home"),
            Some("https://sp.example.org/home"),
        ),
        (None, None),
    ] {
        let res = client
            .get(app.url(&init_path(&sp, relay)))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let (action, response, relay) = posted(&res.text().await.unwrap());
        assert_eq!(action, sp.acs);
        assert_eq!(relay.as_deref(), expected);
        sp.samael(&app, true)
            .await
            .parse_xml_response(&response, None)
            .expect("accepted as IdP-initiated");
    }
}

#[tokio::test]
async fn idp_initiated_settings_are_off_on_import_and_set_over_the_api() {
    let app = spawn_app().await;
    let token = admin_token(&app).await;
    let sp = TestSp::new("https://sp.example.org/acs");
    let (status, imported) = admin_call(
        &app,
        &token,
        Method::POST,
        "/saml-sps",
        json!({"metadata": sp.metadata(false), "encrypt_assertions": false}),
    )
    .await;
    assert_eq!(status, 201, "{imported}");
    assert_eq!(imported["idp_initiated"], false, "off by default");
    assert_eq!(imported["idp_initiated_relay_states"], json!([]));
    let path = format!("/saml-sps/{}", imported["id"].as_str().unwrap());
    for (body, field) in [
        (
            json!({"idp_initiated_relay_states": ["a\u{0}b"]}),
            "idp_initiated_relay_states",
        ),
        (
            json!({"idp_initiated_relay_states": ["x".repeat(2000)]}),
            "idp_initiated_relay_states",
        ),
        (
            json!({"idp_initiated_relay_states": [""]}),
            "idp_initiated_relay_states",
        ),
        (json!({"idp_initiated": "yes"}), "idp_initiated"),
    ] {
        let (status, err) = admin_call(&app, &token, Method::PUT, &path, body).await;
        assert_eq!(status, 400, "{err}");
        assert!(err["message"].as_str().unwrap().contains(field), "{err}");
    }
    let (status, updated) = admin_call(
        &app,
        &token,
        Method::PUT,
        &path,
        json!({"idp_initiated": true, "idp_initiated_relay_states": ["https://sp.example.org/home"]}),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["idp_initiated"], true);
    assert_eq!(
        updated["idp_initiated_relay_states"],
        json!(["https://sp.example.org/home"])
    );
    // Another change keeps them.
    let (_, again) = admin_call(
        &app,
        &token,
        Method::PUT,
        &path,
        json!({"sign_response": true}),
    )
    .await;
    assert_eq!(again["idp_initiated"], true);
    assert_eq!(
        again["idp_initiated_relay_states"],
        json!(["https://sp.example.org/home"])
    );

    crate::helpers::create_user(&app, "kim", PASSWORD, false).await;
    let client = app.new_client();
    assert_eq!(app.sign_in(&client, "kim", PASSWORD).await.status(), 303);
    let res = client
        .get(app.url(&init_path(&sp, Some("https://sp.example.org/home"))))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Switched off again, the link is refused.
    admin_call(
        &app,
        &token,
        Method::PUT,
        &path,
        json!({"idp_initiated": false}),
    )
    .await;
    let res = client
        .get(app.url(&init_path(&sp, Some("https://sp.example.org/home"))))
        .send()
        .await
        .unwrap();
    refused_page(res, "does not accept sign-ins started at Gatehouse").await;
}

#[tokio::test]
async fn cli_sets_idp_initiated_sso_on_import_and_update() {
    let dir = tempfile::tempdir().unwrap();
    let sp = TestSp::new("https://sp.example.org/acs");
    let file = dir.path().join("sp.xml");
    std::fs::write(&file, sp.metadata(false)).unwrap();
    let run = |args: &[&str]| {
        let out = crate::cli::gatehouse(dir.path())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            serde_json::from_slice::<Value>(&out.stdout).unwrap_or(Value::Null),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let path = file.to_str().unwrap();
    let (ok, json, err) = run(&["sp", "import", "--metadata", path, "--json"]);
    assert!(ok, "{err}");
    assert_eq!(json["idp_initiated"], false, "off by default");
    let (ok, json, err) = run(&[
        "sp",
        "update",
        &sp.entity_id,
        "--idp-initiated",
        "true",
        "--relay-state",
        "https://sp.example.org/home",
        "--relay-state",
        "/reports",
        "--json",
    ]);
    assert!(ok, "{err}");
    assert_eq!(json["idp_initiated"], true);
    assert_eq!(
        json["idp_initiated_relay_states"],
        json!(["https://sp.example.org/home", "/reports"])
    );
    let (ok, _, err) = run(&["sp", "update", &sp.entity_id, "--relay-state", "a\tb"]);
    assert!(!ok);
    assert!(err.contains("relay-state"), "{err}");
    let (ok, _, err) = run(&[
        "sp",
        "update",
        "https://nobody.example/",
        "--idp-initiated",
        "true",
    ]);
    assert!(!ok);
    assert!(err.contains("not registered"), "{err}");
    let (ok, json, err) = run(&[
        "sp",
        "import",
        "--metadata",
        path,
        "--idp-initiated",
        "true",
        "--relay-state",
        "/x",
        "--json",
    ]);
    assert!(ok, "{err}");
    assert_eq!(json["idp_initiated"], true);
    assert_eq!(json["idp_initiated_relay_states"], json!(["/x"]));
}

// The property: any display name the domain accepts comes back verbatim from an SP parser
// through a signed assertion built by `assertion::success`; anything else is refused.

/// Strings heavy in what XML and SAML parsers treat specially, plus any Unicode at all.
fn nasty() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        proptest::string::string_regex(
            "[<>&\"'=/;#xX0-9a-zA-Z \\t\\r\\n\u{0}-\u{1f}\u{7f}\u{85}\u{a0}\u{2028}\u{2029}\u{202e}\u{feff}\u{fffe}\u{ffff}é中😀]{0,80}"
        )
        .unwrap(),
        Just("]]><!--".to_owned()),
        Just("&amp;&#x41;&lt;".to_owned()),
    ]
}

/// Why a refused string was refused, stated independently of the parser.
fn must_be_refused(raw: &str) -> bool {
    let trimmed = raw.trim();
    trimmed.is_empty()
        || trimmed.chars().count() > DisplayName::MAX_CHARS
        || raw.len() > DisplayName::MAX_INPUT_BYTES
        || trimmed.chars().any(|c| {
            c.is_control()
                || (c.is_whitespace() && c != ' ')
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}' | '\u{fdd0}'..='\u{fdef}')
                || (c as u32 & 0xfffe) == 0xfffe
        })
}

#[test]
fn any_accepted_display_name_round_trips_through_a_signed_assertion() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (app, registered, samael_sp) = rt.block_on(async {
        let app = spawn_app().await;
        let sp = TestSp::new("https://sp.example.org/acs");
        sp.register(
            &app,
            ImportSettings {
                sign_response: Some(true),
                ..Default::default()
            },
        )
        .await;
        let registered = providers::find(&app.state.store, &sp.entity_id)
            .await
            .unwrap()
            .unwrap();
        let samael_sp = sp.samael(&app, false).await;
        (app, registered, samael_sp)
    });
    let key = app.state.saml_keys.current();
    let build = |display_name: &str| {
        let person = Person {
            user_id: "0b6c7f7e-0000-4000-8000-000000000000".into(),
            username: "pat".into(),
            email: "pat&co@example.org".into(),
            display_name: Some(display_name.to_owned()),
            role: "user".into(),
            organisation: "default".into(),
        };
        let now = chrono::Utc::now();
        let amr = ["pwd".to_owned()];
        let request_id = format!("_{}", rand_id());
        let statement = Statement {
            issuer: &format!("{}/saml/metadata", app.base),
            sp: &registered,
            acs_url: "https://sp.example.org/acs",
            in_response_to: Some(&request_id),
            person: &person,
            name_id: "pat",
            name_id_format: &registered.name_id_format,
            release: gatehouse::saml::attributes::Context {
                scope: "example.org",
                pairwise_id: "pat",
            },
            auth_time: now,
            amr: &amr,
            session_index: "_s",
            session_ends: now + chrono::Duration::hours(72),
            now,
            lifetime: chrono::Duration::minutes(5),
            emergency: None,
        };
        let xml = assertion::success(&statement, &key).expect("the assertion is built");
        (request_id, xml)
    };
    let config = ProptestConfig::with_cases(128);
    proptest!(config, |(raw in nasty())| {
        match DisplayName::parse(&raw) {
            Ok(name) => {
                let (id, xml) = build(name.as_str());
                let parsed = samael_sp
                    .parse_xml_response(&xml, Some(&[id.as_str()]))
                    .map_err(|e| TestCaseError::fail(format!("{e:?} for {raw:?}")))?;
                prop_assert_eq!(value_of(&parsed, "displayName"), vec![name.as_str().to_owned()]);
                prop_assert_eq!(value_of(&parsed, "roles"), vec!["user".to_owned()]);
                prop_assert_eq!(attributes(&parsed).len(), 5);
            }
            Err(_) => prop_assert!(must_be_refused(&raw), "refused without reason: {:?}", raw),
        }
    });
    // A few fixed nasty names: both signatures verify with xmlsec1 too.
    let cert = key.certificate.clone();
    for nasty in [
        FORGED_ROLE,
        "]]>&amp;<!-- -->",
        "O'Brien \"Doc\" & <Sons>",
        "مريم 😀 中",
    ] {
        let name = DisplayName::parse(nasty).unwrap();
        let (_, xml) = build(name.as_str());
        assert!(xmlsec1_verify(&xml, RESPONSE, &cert), "{nasty}");
        assert!(
            xmlsec1_verify(
                &extract(&xml, "<saml2:Assertion", "</saml2:Assertion>"),
                ASSERTION,
                &cert
            ),
            "{nasty}"
        );
    }
}
