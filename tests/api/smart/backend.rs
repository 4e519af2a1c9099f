//! SMART Backend Services (client_credentials with `private_key_jwt` and `system/`
//! scopes), and public apps refreshing as SMART's JavaScript client does.

use super::*;

/// A backend service (`private_key_jwt` with `key`) asking for `scope`.
pub(super) async fn backend_token(
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
        let service = register_client(&s.app, backend_service("Bulk export", key.jwks())).await;
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

/// Issue 32: a FHIR server checks a backend service's token against `/jwks`; a service
/// registered for ES256 access tokens gets its token for the server signed so.
#[tokio::test]
async fn a_backend_services_token_for_its_fhir_server_is_signed_as_it_registered() {
    let s = Smart::new().await;
    let key = ClientKey::ec("bulk-es256");
    let spec = ClientSpec {
        access_token_alg: Some("ES256".into()),
        ..backend_service("Bulk export", key.jwks())
    };
    let service = register_client(&s.app, spec).await;
    s.open_server_to(&service.client_id).await;
    let (status, body) = backend_token(
        &s,
        &service.client_id,
        &key,
        &[("scope", "system/Patient.rs")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    let (header, claims) = crate::token_algorithms::verified(&s.app, token).await;
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(claims["aud"], FHIR);
    let seen = s.introspect(token).await;
    assert_eq!(
        (seen["active"].as_bool(), seen["aud"].as_str()),
        (Some(true), Some(FHIR))
    );
}

#[tokio::test]
async fn a_public_app_refreshes_without_naming_itself_and_a_confidential_client_may_not() {
    let s = Smart::new().await;
    let (browser, _) = s.ehr_session("pat").await;
    let scope = "launch/patient openid patient/*.rs offline_access";
    let tokens = s.tokens(&browser, scope, &[("aud", FHIR)]).await;
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
