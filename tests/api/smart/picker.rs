//! The patient picker of a standalone provider launch, searching the tests' FHIR server.

use super::*;

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
    assert!(s.searches().is_empty());

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
async fn only_a_practitioner_reaches_the_patient_picker() {
    let s = Smart::with_fixture().await;
    create_user(&s.app, "clerk", "Correct-Horse-Battery-9", false).await;
    let (browser, _) = s.ehr_session("clerk").await;
    let url = s.authorize_url("launch/patient openid patient/*.rs", &[("aud", &s.fhir)]);
    let (error, why) = refused(&s, &browser, &url).await;
    assert_eq!(error, "access_denied");
    assert!(why.contains("FHIR identity"), "{why}");
    assert!(s.searches().is_empty());
    // A related person is not shown every patient of the server either.
    s.set_fhir_user("pat", "RelatedPerson/rp-1").await;
    let (relative, _) = s.ehr_session("pat").await;
    let (error, why) = refused(&s, &relative, &url).await;
    assert_eq!(error, "access_denied");
    assert!(why.contains("practitioner"), "{why}");
    assert!(s.searches().is_empty());
    // A made-up pick shows nothing.
    let res = browser
        .get(s.app.url("/smart/patient?pick=made-up&name=Ana"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(s.searches().is_empty());
}
