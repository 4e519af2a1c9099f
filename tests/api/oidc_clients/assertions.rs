//! `private_key_jwt` assertions of up to an hour; every refusal says why.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use gatehouse::oidc::clients::{ClientSpec, Registered};
use reqwest::Response;
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, spawn_app},
    oidc::{register_client, rp_http},
};

/// An RSA key pair for `private_key_jwt`: the key and the client's JWKS.
fn client_key(kid: &str) -> (rsa::RsaPrivateKey, String) {
    use rsa::traits::PublicKeyParts;
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let public = key.to_public_key();
    let jwks = json!({ "keys": [{
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
    }]});
    (key, jwks.to_string())
}

fn signed(key: &rsa::RsaPrivateKey, header: Value, claims: Value) -> String {
    use rsa::signature::{SignatureEncoding, Signer};
    let header = URL_SAFE_NO_PAD.encode(header.to_string());
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key.clone());
    let sig = signer.sign(format!("{header}.{claims}").as_bytes());
    format!(
        "{header}.{claims}.{}",
        URL_SAFE_NO_PAD.encode(sig.to_bytes())
    )
}

async fn with_assertion(app: &TestApp, assertion: &str) -> Response {
    rp_http()
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
        ])
        .send()
        .await
        .unwrap()
}

/// The `error_description` of a 401 `invalid_client`.
async fn refusal(res: Response) -> String {
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client", "{body}");
    body["error_description"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn hour_long_client_assertions_pass_and_every_refusal_says_why() {
    let app = spawn_app().await;
    let (key, jwks) = client_key("k1");
    let reg: Registered = register_client(
        &app,
        ClientSpec {
            auth_method: Some("private_key_jwt".into()),
            jwks: Some(jwks),
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["profile".into()],
            ..ClientSpec::new("Lab service", &[])
        },
    )
    .await;
    let now = {
        use gatehouse::clock::Clock;
        app.clock.now().timestamp()
    };
    let id = reg.client_id.as_str();
    let aud = app.url("/token");
    let rs256 = json!({"alg": "RS256", "kid": "k1"});
    let claims = |exp: i64, iat: Option<i64>| {
        let mut c = json!({"iss": id, "sub": id, "aud": aud, "exp": exp,
                           "jti": uuid::Uuid::new_v4().to_string()});
        if let Some(iat) = iat {
            c["iat"] = json!(iat);
        }
        c
    };
    let (other_key, _) = client_key("k1");
    let mut wrong_aud = claims(now + 60, Some(now));
    wrong_aud["aud"] = json!("https://elsewhere.example/token");
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none"}).to_string()),
        URL_SAFE_NO_PAD.encode(claims(now + 60, Some(now)).to_string())
    );
    let cases: Vec<(String, &str)> = vec![
        (
            signed(&key, rs256.clone(), claims(now + 3601, Some(now))),
            "lifetime too long: 3601 s > 3600 s",
        ),
        (
            signed(&key, rs256.clone(), claims(now + 4000, None)),
            "lifetime too long: 4000 s > 3600 s",
        ),
        (
            signed(&key, rs256.clone(), claims(now - 1, Some(now - 60))),
            "expired",
        ),
        (signed(&key, rs256.clone(), wrong_aud), "wrong aud"),
        (
            signed(
                &key,
                json!({"alg": "RS256", "kid": "k9"}),
                claims(now + 60, Some(now)),
            ),
            "unknown kid \"k9\"",
        ),
        (
            signed(&other_key, rs256.clone(), claims(now + 60, Some(now))),
            "bad signature",
        ),
        (
            signed(&key, json!({"alg": "HS256"}), claims(now + 60, Some(now))),
            "client_secret_jwt is not supported",
        ),
        (unsigned, "alg none is not allowed"),
        ("not.a.jwt.at-all".into(), "not a compact JWS"),
    ];
    for (assertion, why) in cases {
        let description = refusal(with_assertion(&app, &assertion).await).await;
        assert!(description.contains(why), "{why}: {description}");
        assert!(
            !description.contains(&assertion),
            "the assertion is never echoed"
        );
    }

    // authlib's default: an hour, with iat; and an hour without iat.
    let hour = signed(&key, rs256.clone(), claims(now + 3600, Some(now)));
    assert_eq!(with_assertion(&app, &hour).await.status(), 200);
    let no_iat = signed(&key, rs256.clone(), claims(now + 3600, None));
    assert_eq!(with_assertion(&app, &no_iat).await.status(), 200);
    // 50 minutes on (by the server's clock) the hour-long assertion is still live, and its
    // jti still remembered: the replay is refused. (The TTL itself: a unit test of
    // `client_assertion::replay_memory`.)
    app.clock.advance(chrono::Duration::minutes(50));
    let description = refusal(with_assertion(&app, &hour).await).await;
    assert!(description.contains("replayed"), "{description}");
}
