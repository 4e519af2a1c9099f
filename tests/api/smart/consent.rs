//! Consent for patient-facing apps: asked in plain words, scopes withheld, remembered,
//! and withdrawn on the account page.

use super::*;

/// Where a signed-in browser is sent for `url`: a path on Gatehouse (a question) or the
/// client's address.
async fn first_stop(browser: &reqwest::Client, url: &str) -> String {
    let res = browser.get(url).send().await.unwrap();
    assert_eq!(res.status(), 303);
    res.headers()["location"].to_str().unwrap().to_owned()
}

/// Answers the consent question at `path` with `decision`, allowing `scopes` (and
/// anything else the form is sent with, in `extra`); where the browser goes next.
async fn answer_consent(
    s: &Smart,
    browser: &reqwest::Client,
    path: &str,
    decision: &str,
    scopes: &[&str],
) -> Url {
    let html = s.app.page(browser, path).await;
    let mut form: Vec<(&str, String)> = vec![
        ("csrf", crate::helpers::hidden(&html, "csrf")),
        ("c", crate::helpers::hidden(&html, "c")),
        ("decision", decision.to_owned()),
    ];
    form.extend(scopes.iter().map(|s| ("scope", (*s).to_owned())));
    let res = browser
        .post(s.app.url("/consent"))
        .header("Origin", &s.app.base)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    Url::parse(&crate::oidc::continue_link(&res.text().await.unwrap())).unwrap()
}

#[tokio::test]
async fn a_patient_facing_app_gets_what_the_patient_allows_remembered_until_withdrawn() {
    let s = Smart::new().await;
    // The administrator marks the app as one that asks.
    s.ask_consent().await;

    let (browser, _) = s.ehr_session("pat").await;
    let scope = "launch/patient openid fhirUser patient/*.rs offline_access";
    let url = s.authorize_url(scope, &[("aud", FHIR)]);
    let question = first_stop(&browser, &url).await;
    assert!(question.starts_with("/consent?c="), "{question}");
    let html = s.app.page(&browser, &question).await;
    for words in [
        "Growth charts",
        "Read and search all of the patient&#39;s records",
        "Know who you are in the clinical record",
        "Keep access after you sign out",
    ] {
        let alt = words.replace("&#39;", "&#x27;");
        assert!(
            html.contains(words) || html.contains(&alt),
            "{words} in {html}"
        );
    }

    // Another person's browser cannot answer it.
    let (other, _) = s.ehr_session("drsmith").await;
    let other_page = s.app.page(&other, "/account").await;
    let res = other
        .post(s.app.url("/consent"))
        .header("Origin", &s.app.base)
        .form(&[
            ("csrf", crate::helpers::hidden(&other_page, "csrf")),
            ("c", question.split("c=").nth(1).unwrap().to_owned()),
            ("decision", "allow".to_owned()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);

    // Allowed without fhirUser; a scope slipped into the form that was not asked is
    // not granted.
    let back = answer_consent(
        &s,
        &browser,
        &question,
        "allow",
        &[
            "launch/patient",
            "patient/*.rs",
            "offline_access",
            "patient/*.cruds",
        ],
    )
    .await;
    let tokens = s.exchange(&query(&back)["code"]).await;
    assert_eq!(
        tokens["scope"],
        "launch/patient openid patient/*.rs offline_access"
    );
    assert!(claims_of(tokens["id_token"].as_str().unwrap())["fhirUser"].is_null());
    // Withheld from the app, which can read its access token too; the FHIR server still
    // learns who the user is, by introspection.
    let access = tokens["access_token"].as_str().unwrap();
    assert!(claims_of(access)["fhirUser"].is_null());
    assert_eq!(
        s.introspect(access).await["fhirUser"],
        format!("{FHIR}/Patient/p-42")
    );
    assert_eq!(tokens["patient"], "p-42");
    // The question was answered once.
    let res = browser.get(s.app.url(&question)).send().await.unwrap();
    assert_eq!(res.status(), 400);

    // Remembered: the same request is answered at once, with the same scopes.
    let back = Url::parse(&first_stop(&browser, &url).await).unwrap();
    let again = s.exchange(&query(&back)["code"]).await;
    assert_eq!(again["scope"], tokens["scope"]);
    // Asking for more asks again; denying sends the app an error.
    let more = s.authorize_url(&format!("{scope} user/*.rs"), &[("aud", FHIR)]);
    let question = first_stop(&browser, &more).await;
    assert!(question.starts_with("/consent?c="), "{question}");
    let back = answer_consent(&s, &browser, &question, "deny", &[]).await;
    assert_eq!(query(&back)["error"], "access_denied");
    assert_eq!(query(&back)["state"], "st-smart");

    // The account page lists the app; withdrawing ends its tokens and asks again.
    let account = s.app.page(&browser, "/account").await;
    assert!(account.contains("Apps you allowed") && account.contains("Growth charts"));
    let res = s
        .app
        .post_form(
            &browser,
            "/account/consents/withdraw",
            &[
                ("csrf", &crate::helpers::hidden(&account, "csrf")),
                ("client", &s.smart_app.client_id),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let seen = s.introspect(again["access_token"].as_str().unwrap()).await;
    assert_eq!(seen["active"], false, "the app's tokens ended");
    let res = rp_http()
        .post(s.app.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", s.smart_app.client_id.as_str()),
            ("refresh_token", again["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(first_stop(&browser, &url).await.starts_with("/consent?c="));

    let given = crate::admin::audit_events(&s.app, EventType::ConsentGiven).await;
    assert_eq!(given.len(), 1);
    assert_eq!(given[0].details["withheld"], "fhirUser");
    let withdrawn = crate::admin::audit_events(&s.app, EventType::ConsentWithdrawn).await;
    assert_eq!(withdrawn.len(), 1);
}

#[tokio::test]
async fn prompt_consent_asks_again_and_prompt_none_cannot_ask() {
    let s = Smart::new().await;
    // The administrator marks the app as one that asks.
    s.ask_consent().await;
    let (browser, _) = s.ehr_session("pat").await;
    let scope = "launch/patient openid patient/*.rs";

    // Not asked yet, and no page may be shown: the app hears so.
    let silent = s.authorize_url(scope, &[("aud", FHIR), ("prompt", "none")]);
    let back = Url::parse(&first_stop(&browser, &silent).await).unwrap();
    assert_eq!(query(&back)["error"], "consent_required");

    let url = s.authorize_url(scope, &[("aud", FHIR)]);
    let question = first_stop(&browser, &url).await;
    let back = answer_consent(
        &s,
        &browser,
        &question,
        "allow",
        &["launch/patient", "patient/*.rs"],
    )
    .await;
    assert!(query(&back).contains_key("code"));
    // Remembered now, even for prompt=none; prompt=consent asks again, and the new
    // answer is the one remembered.
    let back = Url::parse(&first_stop(&browser, &silent).await).unwrap();
    assert!(query(&back).contains_key("code"), "{back}");
    let again = s.authorize_url(scope, &[("aud", FHIR), ("prompt", "consent")]);
    let question = first_stop(&browser, &again).await;
    assert!(question.starts_with("/consent?c="), "{question}");
    let back = answer_consent(&s, &browser, &question, "allow", &["launch/patient"]).await;
    let tokens = s.exchange(&query(&back)["code"]).await;
    assert_eq!(tokens["scope"], "launch/patient openid");
    let back = Url::parse(&first_stop(&browser, &url).await).unwrap();
    let tokens = s.exchange(&query(&back)["code"]).await;
    assert_eq!(tokens["scope"], "launch/patient openid");
}
