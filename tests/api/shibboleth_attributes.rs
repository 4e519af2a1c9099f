//! Attribute release to a real Shibboleth SP 3 with Debian's default `attribute-map.xml`
//! (issue 24 item 7): attributes released by their standard URI names reach the
//! application under the ids that file gives them, with nothing added to it, and the
//! scoped ones pass its default `attribute-policy.xml`, which checks their scope against
//! the `<shibmd:Scope>` in Gatehouse's metadata. Runs when `GATEHOUSE_TEST_SHIBBOLETH=1`.

use crate::{
    helpers::create_user,
    shibboleth::{PASSWORD, Shibboleth, SpSetup, enabled, gatehouse, sign_in, variables},
};

/// The variable the CGI page shows for attribute `id` (Apache passes `-` on as `_`).
fn var<'a>(vars: &'a std::collections::BTreeMap<String, String>, id: &str) -> Option<&'a str> {
    vars.get(id)
        .or_else(|| vars.get(&id.replace('-', "_")))
        .map(String::as_str)
}

#[tokio::test]
async fn shibboleth_with_its_default_attribute_map_receives_the_standard_attributes() {
    if !enabled("shibboleth_with_its_default_attribute_map_receives_the_standard_attributes") {
        return;
    }
    let app = gatehouse().await;
    let user_id = create_user(&app, "nurse.ada", PASSWORD, false).await.id;
    let setup = SpSetup {
        debian_attribute_map: true,
        ..SpSetup::default()
    };
    let sp = Shibboleth::launch(&app, &setup).await;
    let imported = sp.import(
        &app,
        &[
            "--attribute=email=",
            "--attribute=name=",
            "--attribute=username=",
            "--attribute=roles=",
            "--attribute=organisation=",
            "--attribute=eduPersonPrincipalName",
            "--attribute=urn:oid:1.3.6.1.4.1.5923.1.1.1.9",
            "--attribute=subject-id",
            "--attribute=pairwise-id",
        ],
    );
    assert_eq!(
        imported["attributes"],
        serde_json::json!({
            "eduPersonPrincipalName": "urn:oid:1.3.6.1.4.1.5923.1.1.1.6",
            "eduPersonScopedAffiliation": "urn:oid:1.3.6.1.4.1.5923.1.1.1.9",
            "subject-id": "urn:oasis:names:tc:SAML:attribute:subject-id",
            "pairwise-id": "urn:oasis:names:tc:SAML:attribute:pairwise-id",
        })
    );
    let (page, browser) = sign_in(&app, &sp, "nurse.ada").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.url, sp.url("/secure/env"), "{}", page.body);
    let vars = variables(&page);
    let scope = url::Url::parse(&app.base)
        .unwrap()
        .host_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        var(&vars, "eppn"),
        Some(format!("nurse.ada@{scope}").as_str()),
        "{vars:?}\n{}",
        sp.logs()
    );
    assert_eq!(
        var(&vars, "affiliation"),
        Some(format!("member@{scope}").as_str()),
        "{vars:?}"
    );
    assert_eq!(
        var(&vars, "subject-id"),
        Some(format!("{}@{scope}", user_id.to_ascii_lowercase()).as_str()),
        "{vars:?}"
    );
    let pairwise =
        gatehouse::saml::name_id::pairwise(&app.state.master_key, &sp.entity_id, &user_id);
    assert_eq!(
        var(&vars, "pairwise-id"),
        Some(format!("{pairwise}@{scope}").as_str()),
        "{vars:?}"
    );
    // Only what was released: none of Gatehouse's default fields went out.
    let response = browser.messages("SAMLResponse");
    assert_eq!(response.len(), 1);
    assert!(
        !vars.values().any(|v| v.contains("nurse.ada@example.org")),
        "the email address was not released: {vars:?}"
    );
}
