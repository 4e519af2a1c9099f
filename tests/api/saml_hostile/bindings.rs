//! The hostile SP at the binding level: sizes and truncation, Destination, replays,
//! duplicated parameters, refused algorithms and keys (issue 20 items 7 and 13).

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::Utc;
use gatehouse::saml::providers::{self, ImportSettings};
use openssl::hash::MessageDigest;

use super::{
    form, fresh_client, get, id, post_raw, post_xml, refused, registered, signed_in,
    signed_logout_to, signed_request,
};
use crate::{
    helpers::spawn_app,
    saml::{KeyCert, TestSp, posted, signing_sp},
};

#[tokio::test]
async fn oversized_truncated_and_bomb_messages_get_a_clear_4xx() {
    let app = spawn_app().await;
    let sp = registered(&app, ImportSettings::default()).await;
    let client = fresh_client();
    // A DEFLATE bomb: 10 MB of spaces in a few kilobytes.
    let bomb = sp.redirect_query(
        &format!("<a>{}</a>", " ".repeat(10 * 1024 * 1024)),
        None,
        false,
    );
    refused(get(&app, &client, "/saml/sso", &bomb).await, "too large").await;
    // Past the message limit but inside the body limit.
    let (_, signed) = signed_request(&sp, &app);
    let padded = signed.replacen(
        "</saml:Issuer>",
        &format!(
            "</saml:Issuer><samlp:Extensions>{}</samlp:Extensions>",
            "x".repeat(70 * 1024)
        ),
        1,
    );
    refused(
        post_xml(&app, &client, "/saml/sso", &padded).await,
        "too large",
    )
    .await;
    // Truncated: the XML, the base64, the DEFLATE stream.
    refused(
        post_xml(&app, &client, "/saml/sso", &signed[..signed.len() / 2]).await,
        "SAML message",
    )
    .await;
    let encoded = STANDARD.encode(&signed);
    let res = post_raw(
        &app,
        &client,
        "/saml/sso",
        form(&[("SAMLRequest", &encoded[..encoded.len() - 3])]),
    )
    .await;
    refused(res, "base64").await;
    let deflated = gatehouse::saml::xml::deflate(signed.as_bytes());
    let query = form(&[(
        "SAMLRequest",
        &STANDARD.encode(&deflated[..deflated.len() / 2]),
    )]);
    let res = get(&app, &client, "/saml/sso", &query).await;
    let status = res.status();
    assert!(status.is_client_error(), "{status}");
    // Not UTF-8.
    let latin1 = form(&[("SAMLRequest", &STANDARD.encode(b"<a>\xe9</a>"))]);
    refused(post_raw(&app, &client, "/saml/sso", latin1).await, "UTF-8").await;
}

#[tokio::test]
async fn a_signed_message_must_name_this_endpoint_as_its_destination() {
    let app = spawn_app().await;
    let sp = registered(&app, ImportSettings::default()).await;
    let client = signed_in(&app, "erin").await;
    let sso = app.url("/saml/sso");
    let without = |xml: String| xml.replace(&format!(" Destination=\"{sso}\""), "");

    // Signed by POST (enveloped) and by Redirect (query), without Destination.
    let i = id();
    let xml = without(sp.authn_request(&i, &app, "", ""));
    assert!(!xml.contains("Destination"));
    refused(
        post_xml(&app, &client, "/saml/sso", &sp.sign(&xml, &i)).await,
        "Destination",
    )
    .await;
    let xml = without(sp.authn_request(&id(), &app, "", ""));
    refused(
        get(
            &app,
            &client,
            "/saml/sso",
            &sp.redirect_query(&xml, None, true),
        )
        .await,
        "Destination",
    )
    .await;
    // A signed LogoutRequest without it.
    let (_, logout) = signed_logout_to(&sp, "someone", None);
    assert!(!logout.contains("Destination"));
    refused(
        post_xml(&app, &client, "/saml/slo", &logout).await,
        "Destination",
    )
    .await;

    // Another endpoint, signed or not: a message meant for another IdP (or for SLO).
    for other in [
        "https://other-idp.example/saml/sso".to_owned(),
        app.url("/saml/slo"),
    ] {
        let i = id();
        let xml = sp.authn_request(&i, &app, "", "").replace(&sso, &other);
        refused(
            post_xml(&app, &client, "/saml/sso", &sp.sign(&xml, &i)).await,
            "another endpoint",
        )
        .await;
        let xml = sp.authn_request(&id(), &app, "", "").replace(&sso, &other);
        refused(
            get(
                &app,
                &client,
                "/saml/sso",
                &sp.redirect_query(&xml, None, false),
            )
            .await,
            "another endpoint",
        )
        .await;
    }

    // Unsigned and without Destination is still accepted (Bindings make it optional).
    let xml = without(sp.authn_request(&id(), &app, "", ""));
    let res = get(
        &app,
        &client,
        "/saml/sso",
        &sp.redirect_query(&xml, None, false),
    )
    .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn replayed_signed_requests_are_refused() {
    let app = spawn_app().await;
    let sp = registered(&app, signing_sp()).await;
    let client = signed_in(&app, "fay").await;
    let (_, genuine) = signed_request(&sp, &app);
    assert_eq!(
        post_xml(&app, &client, "/saml/sso", &genuine)
            .await
            .status(),
        200
    );
    refused(
        post_xml(&app, &client, "/saml/sso", &genuine).await,
        "already used",
    )
    .await;
    // From another browser, too.
    let other = fresh_client();
    refused(
        post_xml(&app, &other, "/saml/sso", &genuine).await,
        "already used",
    )
    .await;
    let query = sp.redirect_query(&sp.authn_request(&id(), &app, "", ""), Some("r"), true);
    assert_eq!(get(&app, &client, "/saml/sso", &query).await.status(), 200);
    refused(
        get(&app, &client, "/saml/sso", &query).await,
        "already used",
    )
    .await;
}

#[tokio::test]
async fn duplicated_binding_parameters_are_refused_and_the_signed_relay_state_is_used() {
    let app = spawn_app().await;
    let sp = registered(&app, signing_sp()).await;
    let client = signed_in(&app, "gus").await;
    let query = || sp.redirect_query(&sp.authn_request(&id(), &app, "", ""), Some("signed"), true);

    // A second RelayState after the signed one, spelt plainly or percent-encoded.
    for extra in ["&RelayState=evil", "&Relay%53tate=evil"] {
        let res = get(&app, &client, "/saml/sso", &format!("{}{extra}", query())).await;
        refused(res, "more than once").await;
    }
    // The other parameters twice.
    let q = query();
    for name in ["SAMLRequest", "SigAlg", "Signature"] {
        let pair = q
            .split('&')
            .find(|p| p.starts_with(&format!("{name}=")))
            .unwrap();
        refused(
            get(&app, &client, "/saml/sso", &format!("{q}&{pair}")).await,
            "more than once",
        )
        .await;
    }
    // A RelayState under an encoded name that the signature did not cover.
    let unsigned_relay = sp.redirect_query(&sp.authn_request(&id(), &app, "", ""), None, true);
    let res = get(
        &app,
        &client,
        "/saml/sso",
        &format!("{unsigned_relay}&Relay%53tate=evil"),
    )
    .await;
    refused(res, "signature is not valid").await;
    // The signed RelayState is the one that goes back.
    let res = get(&app, &client, "/saml/sso", &query()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        posted(&res.text().await.unwrap()).2.as_deref(),
        Some("signed")
    );

    // POST bodies: the message or RelayState twice.
    let (_, genuine) = signed_request(&sp, &app);
    let encoded = STANDARD.encode(&genuine);
    for body in [
        form(&[
            ("SAMLRequest", encoded.as_str()),
            ("SAMLRequest", encoded.as_str()),
        ]),
        form(&[
            ("SAMLRequest", encoded.as_str()),
            ("RelayState", "a"),
            ("RelayState", "b"),
        ]),
    ] {
        refused(
            post_raw(&app, &client, "/saml/sso", body).await,
            "more than once",
        )
        .await;
    }
    // A request and a response in one message.
    let body = form(&[
        ("SAMLRequest", encoded.as_str()),
        ("SAMLResponse", encoded.as_str()),
    ]);
    refused(
        post_raw(&app, &client, "/saml/slo", body).await,
        "both SAMLRequest and SAMLResponse",
    )
    .await;
}

/// A query signed with `sig_alg` and `digest`, as `TestSp::redirect_query` does.
fn query_signed_with(sp: &TestSp, xml: &str, sig_alg: &str, digest: MessageDigest) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let deflated = gatehouse::saml::xml::deflate(xml.as_bytes());
    let mut q = format!(
        "SAMLRequest={}&SigAlg={}",
        enc(&STANDARD.encode(deflated)),
        enc(sig_alg)
    );
    let mut signer = openssl::sign::Signer::new(digest, &sp.signing.key).unwrap();
    signer.update(q.as_bytes()).unwrap();
    q.push_str(&format!(
        "&Signature={}",
        enc(&STANDARD.encode(signer.sign_to_vec().unwrap()))
    ));
    q
}

#[tokio::test]
async fn refused_algorithms_and_keyinfo_keys_are_named_and_never_trusted() {
    let app = spawn_app().await;
    let sp = registered(&app, signing_sp()).await;
    // Keys first: generating them takes a while on a loaded machine.
    let impostor = TestSp {
        signing: KeyCert::new("impostor"),
        ..TestSp::new(&sp.acs)
    };
    let impostor = TestSp {
        entity_id: sp.entity_id.clone(),
        ..impostor
    };
    let bare = TestSp::new("https://bare.example.org/acs");
    let client = signed_in(&app, "hal").await;
    let sha1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
    let (_, signed) = signed_request(&sp, &app);
    let attack = signed.replace("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", sha1);
    refused(
        post_xml(&app, &client, "/saml/sso", &attack).await,
        &format!("signature algorithm {sha1} is not accepted; use RSA-SHA256"),
    )
    .await;
    let query = query_signed_with(
        &sp,
        &sp.authn_request(&id(), &app, "", ""),
        sha1,
        MessageDigest::sha1(),
    );
    refused(
        get(&app, &client, "/saml/sso", &query).await,
        &format!("signature algorithm {sha1} is not accepted"),
    )
    .await;

    // A key of the attacker's own, its certificate in KeyInfo: never used.
    let i = id();
    let forged = impostor.sign(&impostor.authn_request(&i, &app, "", ""), &i);
    refused(
        post_xml(&app, &client, "/saml/sso", &forged).await,
        "signature is not valid",
    )
    .await;
    // An SP registered without a signing certificate has nothing to check a signature with.
    let metadata = bare.metadata(false);
    let start = metadata.find("<md:KeyDescriptor use=\"signing\">").unwrap();
    let end = metadata[start..].find("</md:KeyDescriptor>").unwrap()
        + start
        + "</md:KeyDescriptor>".len();
    let metadata = format!("{}{}", &metadata[..start], &metadata[end..]);
    providers::import(
        &app.state.store,
        &metadata,
        &ImportSettings {
            encrypt_assertions: Some(false),
            ..Default::default()
        },
        Utc::now(),
    )
    .await
    .unwrap();
    let i = id();
    let signed = bare.sign(&bare.authn_request(&i, &app, "", ""), &i);
    refused(
        post_xml(&app, &client, "/saml/sso", &signed).await,
        "no signing certificate",
    )
    .await;
}
