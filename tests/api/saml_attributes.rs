//! Attribute release per SP and NameID formats (issue 24 item 7), read from the
//! assertions Gatehouse issues as an SP reads them (samael's SP parser, which checks the
//! signature): the Name, NameFormat, FriendlyName and values of every attribute, the
//! NameID's Format and value, and the refusals.

use std::collections::BTreeMap;

use gatehouse::{
    auth::account::{NewAccount, create_account},
    domain::{DisplayName, Email, OrgName, Password, Role, Username},
    saml::providers::{
        ImportSettings, NAMEID_EMAIL, NAMEID_PERSISTENT, NAMEID_TRANSIENT, NAMEID_UNSPECIFIED,
    },
};
use reqwest::Method;
use samael::schema::Assertion;
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, spawn_app, spawn_app_with},
    oidc::admin_token,
    saml::{TestSp, posted, rand_id},
    saml_outbound::admin_call,
};

const PASSWORD: &str = "Correct-Horse-9-Battery";
const URI: &str = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri";
const BASIC: &str = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic";
const MAIL: &str = "urn:oid:0.9.2342.19200300.100.1.3";
const UID: &str = "urn:oid:0.9.2342.19200300.100.1.1";
const DISPLAY_NAME: &str = "urn:oid:2.16.840.1.113730.3.1.241";
const EPPN: &str = "urn:oid:1.3.6.1.4.1.5923.1.1.1.6";
const SCOPED_AFFILIATION: &str = "urn:oid:1.3.6.1.4.1.5923.1.1.1.9";
const SUBJECT_ID: &str = "urn:oasis:names:tc:SAML:attribute:subject-id";
const PAIRWISE_ID: &str = "urn:oasis:names:tc:SAML:attribute:pairwise-id";
const INVALID_POLICY: &str = "urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy";

/// Every default field dropped: the SP gets only what a test names after these.
const NO_DEFAULTS: [&str; 5] = ["email=", "name=", "username=", "roles=", "organisation="];

/// A user with a display name and a role, signed in; returns the browser.
async fn signed_in(app: &TestApp, username: &str, role: Role) -> reqwest::Client {
    signed_in_as(app, username, role).await.0
}

/// The same, with the user's id.
async fn signed_in_as(app: &TestApp, username: &str, role: Role) -> (reqwest::Client, String) {
    let user = create_account(
        &app.state,
        NewAccount {
            org: OrgName::parse("default").unwrap(),
            username: Username::parse(username).unwrap(),
            email: Email::parse(&format!("{username}@example.org")).unwrap(),
            display_name: Some(DisplayName::parse("Pat O'Neil & Co").unwrap()),
            role,
            password: Password::parse(PASSWORD.to_owned()).unwrap(),
            must_change_password: false,
        },
    )
    .await
    .expect("user created");
    let client = app.new_client();
    assert_eq!(app.sign_in(&client, username, PASSWORD).await.status(), 303);
    (client, user.id)
}

fn settings(attributes: &[&str]) -> ImportSettings {
    ImportSettings {
        attributes: attributes.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    }
}

/// The Response an SP-initiated sign-in by `client` brings back (`inner` goes into the
/// AuthnRequest after its Issuer): (request ID, Response XML).
async fn response(
    app: &TestApp,
    sp: &TestSp,
    client: &reqwest::Client,
    inner: &str,
) -> (String, String) {
    let id = format!("_{}", rand_id());
    let xml = sp.authn_request(&id, app, "", inner);
    let res = sp.send_redirect(app, client, &xml, None, false).await;
    assert_eq!(res.status(), 200, "a live session answers at once");
    let (action, response, _) = posted(&res.text().await.unwrap());
    assert_eq!(action, sp.acs);
    (id, response)
}

/// The assertion, as samael's SP accepts it.
async fn assertion(app: &TestApp, sp: &TestSp, client: &reqwest::Client, inner: &str) -> Assertion {
    let (id, xml) = response(app, sp, client, inner).await;
    sp.samael(app, false)
        .await
        .parse_xml_response(&xml, Some(&[id.as_str()]))
        .unwrap_or_else(|e| panic!("samael accepts the Response: {e:?}\n{xml}"))
}

/// Name → (NameFormat, FriendlyName, values) of every attribute.
type Released = BTreeMap<String, (String, Option<String>, Vec<String>)>;

fn released(a: &Assertion) -> Released {
    let mut out = BTreeMap::new();
    for statement in a.attribute_statements.iter().flatten() {
        for attr in &statement.attributes {
            let name = attr.name.clone().unwrap();
            let values = attr.values.iter().filter_map(|v| v.value.clone()).collect();
            let before = out.insert(
                name.clone(),
                (
                    attr.name_format.clone().unwrap(),
                    attr.friendly_name.clone(),
                    values,
                ),
            );
            assert!(before.is_none(), "{name} released twice");
        }
    }
    out
}

fn name_id(a: &Assertion) -> (String, String) {
    let n = a.subject.as_ref().unwrap().name_id.as_ref().unwrap();
    (n.format.clone().unwrap(), n.value.clone())
}

fn uri(friendly: &str, values: &[&str]) -> (String, Option<String>, Vec<String>) {
    (
        URI.into(),
        Some(friendly.into()),
        values.iter().map(|v| v.to_string()).collect(),
    )
}

fn issuer_host(app: &TestApp) -> String {
    url::Url::parse(&app.base)
        .unwrap()
        .host_str()
        .unwrap()
        .to_owned()
}

fn policy(format: &str) -> String {
    format!(r#"<samlp:NameIDPolicy Format="{format}" AllowCreate="true"/>"#)
}

#[tokio::test]
async fn well_known_attributes_go_out_by_uri_with_their_friendly_name() {
    let app = spawn_app().await;
    let known = [
        "mail",
        "urn:oid:0.9.2342.19200300.100.1.1",
        "displayName",
        "eduPersonPrincipalName",
        "urn:mace:dir:attribute-def:eduPersonScopedAffiliation",
        "subject-id",
        "pairwise-id",
    ];
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(&app, settings(&[&NO_DEFAULTS[..], &known[..]].concat()))
        .await;
    let (client, user_id) = signed_in_as(&app, "pat", Role::User).await;
    let a = assertion(&app, &sp, &client, "").await;
    let (format, pairwise) = name_id(&a);
    assert_eq!(format, NAMEID_PERSISTENT);
    let scope = issuer_host(&app);
    let subject_id = &format!("{}@{scope}", user_id.to_ascii_lowercase());
    let got = released(&a);
    let expected: Released = [
        (MAIL, uri("mail", &["pat@example.org"])),
        (UID, uri("uid", &["pat"])),
        (DISPLAY_NAME, uri("displayName", &["Pat O'Neil & Co"])),
        (
            EPPN,
            uri("eduPersonPrincipalName", &[&format!("pat@{scope}")]),
        ),
        (
            SCOPED_AFFILIATION,
            uri("eduPersonScopedAffiliation", &[&format!("member@{scope}")]),
        ),
        (SUBJECT_ID, uri("subject-id", &[subject_id])),
        (
            PAIRWISE_ID,
            uri("pairwise-id", &[&format!("{pairwise}@{scope}")]),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(got, expected);

    // At another SP: the same subject-id, another pairwise-id.
    let other = TestSp::new("https://other.example.org/acs");
    other
        .register(&app, settings(&["subject-id", "pairwise-id"]))
        .await;
    let b = released(&assertion(&app, &other, &client, "").await);
    assert_eq!(&b[SUBJECT_ID].2[0], subject_id);
    assert_ne!(b[PAIRWISE_ID].2, got[PAIRWISE_ID].2);
}

#[tokio::test]
async fn an_sp_gets_only_the_attributes_configured_for_it() {
    let app = spawn_app().await;
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(&app, settings(&[&NO_DEFAULTS[..], &["uid"]].concat()))
        .await;
    let client = signed_in(&app, "quinn", Role::User).await;
    let (id, xml) = response(&app, &sp, &client, "").await;
    let a = sp
        .samael(&app, false)
        .await
        .parse_xml_response(&xml, Some(&[id.as_str()]))
        .unwrap();
    assert_eq!(
        released(&a).into_keys().collect::<Vec<_>>(),
        [UID],
        "nothing but what is configured"
    );
    for unconfigured in [
        "quinn@example.org",
        "Pat O&apos;Neil",
        "Pat O'Neil",
        "default",
        ">user<",
    ] {
        assert!(!xml.contains(unconfigured), "{unconfigured} leaked: {xml}");
    }

    // An SP with nothing configured gets no AttributeStatement at all.
    let bare = TestSp::new("https://bare.example.org/acs");
    bare.register(&app, settings(&NO_DEFAULTS)).await;
    let (_, xml) = response(&app, &bare, &client, "").await;
    assert!(!xml.contains("AttributeStatement"), "{xml}");
}

#[tokio::test]
async fn existing_configurations_keep_their_plain_basic_names() {
    let app = spawn_app().await;
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(&app, settings(&["roles=", "email=mail"])).await;
    let client = signed_in(&app, "rae", Role::User).await;
    let got = released(&assertion(&app, &sp, &client, "").await);
    let plain = |values: &[&str]| {
        (
            BASIC.to_owned(),
            None,
            values.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
        )
    };
    let expected: Released = [
        // The default name displayName and a field under "mail" stay plain names.
        ("displayName", plain(&["Pat O'Neil & Co"])),
        ("mail", plain(&["rae@example.org"])),
        ("organisation", plain(&["default"])),
        ("username", plain(&["rae"])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(got, expected);
}

fn with_requested_attributes(metadata: &str) -> String {
    let requested = format!(
        r#"<md:AttributeConsumingService index="0" isDefault="true">
      <md:ServiceName xml:lang="en">Ward rota</md:ServiceName>
      <md:RequestedAttribute NameFormat="{URI}" Name="{MAIL}" FriendlyName="mail" isRequired="true"/>
      <md:RequestedAttribute Name="urn:mace:dir:attribute-def:eduPersonPrincipalName"/>
      <md:RequestedAttribute NameFormat="{BASIC}" Name="displayName"/>
      <md:RequestedAttribute NameFormat="{URI}" Name="urn:oid:2.5.4.42" FriendlyName="givenName"/>
    </md:AttributeConsumingService>
  </md:SPSSODescriptor>"#
    );
    metadata.replace("</md:SPSSODescriptor>", &requested)
}

#[tokio::test]
async fn requested_attributes_in_sp_metadata_preselect_what_gatehouse_supplies() {
    let app = spawn_app().await;
    let token = admin_token(&app).await;
    let sp = TestSp::new("https://sp.example.org/acs");
    let metadata = with_requested_attributes(&sp.metadata(false));
    let (status, imported) = admin_call(
        &app,
        &token,
        Method::POST,
        "/saml-sps",
        json!({"metadata": metadata, "encrypt_assertions": false}),
    )
    .await;
    assert_eq!(status, 201, "{imported}");
    assert_eq!(
        imported["attributes"],
        json!({"mail": MAIL, "eduPersonPrincipalName": EPPN, "name": "displayName"})
    );
    assert_eq!(
        imported["unsupplied_attributes"],
        json!(["urn:oid:2.5.4.42"])
    );

    let client = signed_in(&app, "sam", Role::User).await;
    let got = released(&assertion(&app, &sp, &client, "").await);
    assert_eq!(
        got.keys().map(String::as_str).collect::<Vec<_>>(),
        ["displayName", MAIL, EPPN],
        "what was asked for, under the names asked for"
    );
    assert_eq!(got["displayName"].0, BASIC);

    // The administrator's list wins over the metadata's.
    let (status, imported) = admin_call(
        &app,
        &token,
        Method::POST,
        "/saml-sps",
        json!({"metadata": metadata, "encrypt_assertions": false, "attributes": {"uid": ""}}),
    )
    .await;
    assert_eq!(status, 200, "{imported}");
    assert_eq!(imported["attributes"], json!({"uid": UID}));
}

#[tokio::test]
async fn the_admin_api_takes_friendly_and_uri_names_and_refuses_unknown_ones() {
    let app = spawn_app().await;
    let token = admin_token(&app).await;
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(&app, ImportSettings::default()).await;
    let path = format!(
        "/saml-sps/{}",
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            &sp.entity_id
        )
    );
    let put = |attributes: Value| {
        let (app, token, path) = (&app, &token, &path);
        async move {
            admin_call(
                app,
                token,
                Method::PUT,
                path,
                json!({ "attributes": attributes }),
            )
            .await
        }
    };
    let (status, view) = put(json!({
        "mail": "",
        "urn:oid:1.3.6.1.4.1.5923.1.1.1.6": "eduPersonPrincipalName",
        "email": "contact",
    }))
    .await;
    assert_eq!(status, 200, "{view}");
    let expected = json!({"mail": MAIL, "eduPersonPrincipalName": EPPN, "email": "contact"});
    assert_eq!(view["attributes"], expected);
    for hostile in [
        json!({"givenName": ""}),
        json!({"password": "password"}),
        json!({"mail": "urn:oid:2.5.4.3"}),
        json!({"email": ""}),
        json!({"email": "x".repeat(257)}),
    ] {
        let (status, body) = put(hostile.clone()).await;
        assert_eq!(status, 400, "{hostile}: {body}");
        assert!(body.to_string().contains("attributes"), "{body}");
    }
    let (_, shown) = admin_call(&app, &token, Method::GET, &path, json!(null)).await;
    assert_eq!(
        shown["attributes"], expected,
        "a refused change changes nothing"
    );
}

#[tokio::test]
async fn name_id_policy_formats_are_honoured_when_the_sp_may_have_them() {
    let app = spawn_app().await;
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(&app, ImportSettings::default()).await;
    let client = signed_in(&app, "tess", Role::User).await;
    let first = name_id(&assertion(&app, &sp, &client, "").await);
    assert_eq!(first.0, NAMEID_PERSISTENT);
    assert_eq!(first.1.len(), 64, "pairwise: an HMAC, hex");
    assert!(!first.1.contains("tess"));

    let persistent = name_id(&assertion(&app, &sp, &client, &policy(NAMEID_PERSISTENT)).await);
    assert_eq!(persistent, first, "persistent is stable");
    let unspecified = name_id(&assertion(&app, &sp, &client, &policy(NAMEID_UNSPECIFIED)).await);
    assert_eq!(unspecified, first, "unspecified: the SP's own format");

    let email = name_id(&assertion(&app, &sp, &client, &policy(NAMEID_EMAIL)).await);
    assert_eq!(
        email,
        (NAMEID_EMAIL.to_owned(), "tess@example.org".to_owned())
    );

    let t1 = name_id(&assertion(&app, &sp, &client, &policy(NAMEID_TRANSIENT)).await);
    let t2 = name_id(&assertion(&app, &sp, &client, &policy(NAMEID_TRANSIENT)).await);
    assert_eq!(t1.0, NAMEID_TRANSIENT);
    assert_ne!(t1.1, t2.1, "transient: new in every assertion");
    assert_ne!(t1.1, first.1);
}

#[tokio::test]
async fn a_name_id_format_the_sp_may_not_have_is_answered_invalid_name_id_policy() {
    let app = spawn_app().await;
    // Not released the email address: it may not have it as its NameID either.
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(&app, settings(&["email="])).await;
    // Set to transient: no stable identifier for it.
    let transient = TestSp::new("https://transient.example.org/acs");
    transient
        .register(
            &app,
            ImportSettings {
                name_id_format: Some("transient".into()),
                ..Default::default()
            },
        )
        .await;
    let client = signed_in(&app, "uma", Role::User).await;
    let refused = [
        (&sp, NAMEID_EMAIL),
        (
            &sp,
            "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName",
        ),
        (&sp, "urn:oasis:names:tc:SAML:2.0:nameid-format:encrypted"),
        (&transient, NAMEID_PERSISTENT),
    ];
    for (sp, format) in refused {
        let (id, xml) = response(&app, sp, &client, &policy(format)).await;
        assert!(xml.contains(&format!(r#"InResponseTo="{id}""#)), "{xml}");
        assert!(
            xml.contains(&format!(r#"<saml2p:StatusCode Value="{INVALID_POLICY}"/>"#)),
            "{format}: {xml}"
        );
        assert!(!xml.contains("Assertion"), "no assertion: {xml}");
        assert!(!xml.contains("uma"), "nothing about the person: {xml}");
    }
    // Transient is granted even to the SP without the email address.
    let a = assertion(&app, &sp, &client, &policy(NAMEID_TRANSIENT)).await;
    assert_eq!(name_id(&a).0, NAMEID_TRANSIENT);
}

#[tokio::test]
async fn the_scope_is_configurable_and_published_in_the_metadata() {
    let app = spawn_app_with(|c| c.saml_scope = Some("hospital.example".into())).await;
    let metadata = app.get("/saml/metadata").await.text().await.unwrap();
    assert!(
        metadata.contains(
            r#"<shibmd:Scope xmlns:shibmd="urn:mace:shibboleth:metadata:1.0" regexp="false">hospital.example</shibmd:Scope>"#
        ),
        "{metadata}"
    );
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(&app, settings(&[&NO_DEFAULTS[..], &["eppn"]].concat()))
        .await;
    let client = signed_in(&app, "vic", Role::User).await;
    let got = released(&assertion(&app, &sp, &client, "").await);
    assert_eq!(got[EPPN].2, ["vic@hospital.example"]);

    // Without it, the issuer's host.
    let plain = spawn_app().await;
    let metadata = plain.get("/saml/metadata").await.text().await.unwrap();
    assert!(
        metadata.contains(&format!(
            r#"regexp="false">{}</shibmd:Scope>"#,
            issuer_host(&plain)
        )),
        "{metadata}"
    );
}
