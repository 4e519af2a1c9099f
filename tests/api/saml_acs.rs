//! Only usable ACS endpoints (issue 24 item 3): Gatehouse answers by HTTP-POST only, so
//! an import registers the SP's HTTP-POST AssertionConsumerService endpoints, says
//! which others (Artifact, PAOS, SimpleSign…) it skipped, and a request naming a
//! skipped one is refused like any unregistered address.

use gatehouse::saml::providers::ImportSettings;
use reqwest::Method;
use serde_json::json;

use crate::{
    helpers::spawn_app,
    oidc::admin_token,
    saml::{TestSp, rand_id},
    saml_outbound::admin_call,
};

const ARTIFACT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact";

#[tokio::test]
async fn an_import_registers_the_post_endpoints_and_names_the_skipped_ones() {
    let app = spawn_app().await;
    let token = admin_token(&app).await;
    let sp = TestSp::new("https://sp.example.org/acs");
    // Its metadata lists two HTTP-POST endpoints and one by HTTP-Artifact (index 2).
    let (status, imported) = admin_call(
        &app,
        &token,
        Method::POST,
        "/saml-sps",
        json!({"metadata": sp.metadata(false), "encrypt_assertions": false}),
    )
    .await;
    assert_eq!(status, 201, "{imported}");
    let locations = |field: &str| -> Vec<String> {
        imported[field]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["location"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        locations("acs"),
        [sp.acs.clone(), format!("{}/second", sp.acs)]
    );
    assert_eq!(locations("skipped_acs"), [format!("{}/artifact", sp.acs)]);
    assert_eq!(imported["skipped_acs"][0]["binding"], ARTIFACT);
    // Read back, the registration holds only what it can use.
    let path = format!("/saml-sps/{}", imported["id"].as_str().unwrap());
    let (status, shown) = admin_call(&app, &token, Method::GET, &path, json!(null)).await;
    assert_eq!(status, 200);
    assert_eq!(shown["acs"].as_array().unwrap().len(), 2);
    assert_eq!(shown["skipped_acs"], json!([]));
}

#[tokio::test]
async fn a_request_naming_a_skipped_endpoint_is_refused_by_url_and_by_index() {
    let app = spawn_app().await;
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(&app, ImportSettings::default()).await;
    let client = app.new_client();
    let by_url = format!(r#"AssertionConsumerServiceURL="{}/artifact""#, sp.acs);
    let cases = [
        sp.authn_request(&format!("_{}", rand_id()), &app, "", "")
            .replace(
                &format!(r#"AssertionConsumerServiceURL="{}""#, sp.acs),
                &by_url,
            ),
        sp.authn_request(&format!("_{}", rand_id()), &app, "", "")
            .replace(
                &format!(r#"AssertionConsumerServiceURL="{}""#, sp.acs),
                r#"AssertionConsumerServiceIndex="2""#,
            ),
    ];
    for xml in cases {
        let res = sp.send_redirect(&app, &client, &xml, None, false).await;
        assert_eq!(res.status(), 400, "{xml}");
        let page = res.text().await.unwrap();
        assert!(page.contains("not registered"), "{page}");
    }
}
