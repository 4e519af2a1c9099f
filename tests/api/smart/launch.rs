//! The EHR launch and the request checks: `aud` naming a registered FHIR server, the
//! single-use `launch`, the launch context in the token response and in introspection,
//! `fhirUser`, refresh, a patient's standalone launch, and each hostile variant refused.

use super::*;

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
    let scope = "launch/patient openid fhirUser patient/*.rs";
    let tokens = s.tokens(&browser, scope, &[("aud", FHIR)]).await;
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
