//! Backend services whose keys are published at a `jwks_uri` (SMART Backend Services
//! §"Registering a client"): read when first needed, kept, read again when the client
//! signs with a key not among them (rotation), never more often than the gap allows,
//! whoever sends made-up `kid`s; and every way the URL can fail refuses the client
//! saying why.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};

use actix_web::{App, HttpResponse, HttpServer, http::StatusCode, web};

use super::{backend::backend_token, *};

/// A client's key host: answers `GET /jwks.json` with what it was told to publish, and
/// counts the reads.
struct KeyHost {
    url: String,
    answer: Arc<Mutex<(u16, String)>>,
    reads: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct Published {
    answer: Arc<Mutex<(u16, String)>>,
    reads: Arc<AtomicUsize>,
}

async fn serve(published: web::Data<Published>) -> HttpResponse {
    published.reads.fetch_add(1, Ordering::SeqCst);
    let (status, body) = published.answer.lock().unwrap().clone();
    let mut answer = HttpResponse::build(StatusCode::from_u16(status).unwrap());
    if status == 302 {
        // A redirect elsewhere is never followed.
        answer.insert_header(("location", "http://127.0.0.1:9/jwks.json"));
    }
    answer.content_type("application/json").body(body)
}

impl KeyHost {
    fn start(status: u16, body: String) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let published = Published {
            answer: Arc::new(Mutex::new((status, body))),
            reads: Arc::default(),
        };
        let host = Self {
            url: format!("http://127.0.0.1:{port}/jwks.json"),
            answer: published.answer.clone(),
            reads: published.reads.clone(),
        };
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(published.clone()))
                .route("/jwks.json", web::get().to(serve))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        host
    }

    /// A host publishing `keys`.
    fn publishing(keys: &[&ClientKey]) -> Self {
        let host = Self::start(200, String::new());
        host.publish(keys);
        host
    }

    fn publish(&self, keys: &[&ClientKey]) {
        let keys: Vec<&Value> = keys.iter().map(|k| &k.public).collect();
        *self.answer.lock().unwrap() = (200, json!({ "keys": keys }).to_string());
    }

    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

/// Registers a backend service with `jwks_uri` through the admin API.
async fn register_backend(s: &Smart, jwks_uri: &str) -> reqwest::Response {
    s.admin_post(
        "/admin/api/v1/clients",
        json!({"name": "Bulk export", "grant_types": ["client_credentials"],
               "scopes": ["system/*.rs"], "token_endpoint_auth_method": "private_key_jwt",
               "jwks_uri": jwks_uri}),
    )
    .await
}

async fn backend_at(s: &Smart, jwks_uri: &str) -> String {
    let res = register_backend(s, jwks_uri).await;
    assert_eq!(res.status(), 201);
    let made: Value = res.json().await.unwrap();
    assert_eq!(made["client"]["jwks_uri"], jwks_uri);
    assert_eq!(made["client"]["jwks"], Value::Null);
    assert_eq!(made["client_secret"], Value::Null);
    let id = made["client_id"].as_str().unwrap().to_owned();
    s.open_server_to(&id).await;
    id
}

const SCOPE: [(&str, &str); 1] = [("scope", "system/Patient.rs")];

/// The `error_description` of a refused backend token request.
async fn refused_because(s: &Smart, client_id: &str, key: &ClientKey) -> String {
    let (status, body) = backend_token(s, client_id, key, &SCOPE).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    body["error_description"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn published_keys_are_read_once_reread_for_a_rotated_key_and_not_for_a_strangers_kid() {
    let s = Smart::new().await;
    let first = ClientKey::ec384("2026-12");
    let host = KeyHost::publishing(&[&first]);
    let id = backend_at(&s, &host.url).await;
    assert_eq!(
        host.reads(),
        0,
        "read when first needed, not when registered"
    );

    for _ in 0..3 {
        let (status, body) = backend_token(&s, &id, &first, &SCOPE).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            claims_of(body["access_token"].as_str().unwrap())["aud"],
            FHIR
        );
    }
    assert_eq!(host.reads(), 1, "kept between assertions");

    // The client rotates: its next assertion names a key we have not read. Not within
    // 30 s of the last read...
    let next = ClientKey::rsa("2027-01").signing_with(jsonwebtoken::Algorithm::RS384);
    host.publish(&[&next]);
    let why = refused_because(&s, &id, &next).await;
    assert!(why.contains("unknown kid"), "{why}");
    assert_eq!(host.reads(), 1);
    // ...but after.
    s.app.clock.advance(chrono::Duration::seconds(31));
    let (status, body) = backend_token(&s, &id, &next, &SCOPE).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(host.reads(), 2);
    // The withdrawn key stopped working with that read.
    let why = refused_because(&s, &id, &first).await;
    assert!(why.contains("unknown kid"), "{why}");

    // A stranger's made-up kids make one read per gap, however many they send.
    let made_up = |n: usize| ClientKey::ec384(&format!("made-up-{n}"));
    for n in 0..5 {
        let why = refused_because(&s, &id, &made_up(n)).await;
        assert!(why.contains("unknown kid"), "{why}");
    }
    assert_eq!(host.reads(), 2);
    s.app.clock.advance(chrono::Duration::seconds(31));
    for n in 0..5 {
        refused_because(&s, &id, &made_up(n)).await;
    }
    assert_eq!(host.reads(), 3);

    // Kept five minutes: then even a known key reads them again.
    let (status, _) = backend_token(&s, &id, &next, &SCOPE).await;
    assert_eq!((status, host.reads()), (200, 3));
    s.app.clock.advance(chrono::Duration::minutes(5));
    let (status, _) = backend_token(&s, &id, &next, &SCOPE).await;
    assert_eq!((status, host.reads()), (200, 4));
}

#[tokio::test]
async fn a_jwks_uri_that_cannot_be_read_refuses_the_client_saying_why() {
    let s = Smart::new().await;
    let key = ClientKey::ec384("k");
    for (status, body, why) in [
        (500, String::new(), "answered 500"),
        (200, "<html>".to_owned(), "not a JWKS"),
        (200, r#"{"keys":[]}"#.to_owned(), "no signature key"),
        (
            200,
            r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#.to_owned(),
            "no signature key",
        ),
        (302, String::new(), "answered 302"),
    ] {
        let host = KeyHost::start(status, body);
        let id = backend_at(&s, &host.url).await;
        let said = refused_because(&s, &id, &key).await;
        assert!(said.contains("jwks_uri could not be read"), "{said}");
        assert!(said.contains(why), "{status}: {said}");
        // Failing again at once does not read again.
        refused_because(&s, &id, &key).await;
        assert_eq!(host.reads(), 1, "{status}: {said}");
    }
    // Nobody listening.
    let id = backend_at(&s, "http://127.0.0.1:9/jwks.json").await;
    let said = refused_because(&s, &id, &key).await;
    assert!(said.contains("could not connect"), "{said}");
}

#[tokio::test]
async fn a_jwks_uri_is_https_or_loopback_and_instead_of_a_jwks() {
    let s = Smart::new().await;
    let key = ClientKey::ec384("k");
    for (uri, why) in [
        (
            "http://keys.example.org/jwks.json",
            "https (or http on loopback)",
        ),
        ("ftp://127.0.0.1/jwks.json", "https (or http on loopback)"),
        (
            "https://user:pw@keys.example.org/jwks.json",
            "no credentials",
        ),
        ("https://keys.example.org/jwks.json#k", "no credentials"),
        ("not a url", "jwks_uri"),
    ] {
        let res = register_backend(&s, uri).await;
        assert_eq!(res.status(), 400, "{uri}");
        let body: Value = res.json().await.unwrap();
        let said = body.to_string();
        assert!(
            said.contains("jwks_uri") && said.contains(why),
            "{uri}: {said}"
        );
    }
    let both = s
        .admin_post(
            "/admin/api/v1/clients",
            json!({"name": "Both", "grant_types": ["client_credentials"],
                   "token_endpoint_auth_method": "private_key_jwt",
                   "jwks": serde_json::from_str::<Value>(&key.jwks()).unwrap(),
                   "jwks_uri": "https://keys.example.org/jwks.json"}),
        )
        .await;
    assert_eq!(both.status(), 400);
    let with_secret = s
        .admin_post(
            "/admin/api/v1/clients",
            json!({"name": "Secret", "grant_types": ["client_credentials"],
                   "jwks_uri": "https://keys.example.org/jwks.json"}),
        )
        .await;
    assert_eq!(with_secret.status(), 400);

    // An update to a jwks_uri replaces the registered JWKS, and back.
    let host = KeyHost::publishing(&[&key]);
    let id = register_client(
        &s.app,
        backend_service("Moving", ClientKey::ec384("old").jwks()),
    )
    .await
    .client_id;
    s.open_server_to(&id).await;
    let path = format!("/admin/api/v1/clients/{id}");
    let put = |body: Value| {
        rp_http()
            .put(s.app.url(&path))
            .bearer_auth(&s.admin)
            .json(&body)
            .send()
    };
    let res = put(json!({ "jwks_uri": host.url })).await.unwrap();
    assert_eq!(res.status(), 200);
    let view: Value = res.json().await.unwrap();
    assert_eq!(
        (&view["client"]["jwks_uri"], &view["client"]["jwks"]),
        (&json!(host.url), &Value::Null)
    );
    let (status, body) = backend_token(&s, &id, &key, &SCOPE).await;
    assert_eq!(status, 200, "{body}");
    let res = put(json!({ "jwks": serde_json::from_str::<Value>(&key.jwks()).unwrap() }))
        .await
        .unwrap();
    let view: Value = res.json().await.unwrap();
    assert_eq!(view["client"]["jwks_uri"], Value::Null);
}

#[tokio::test]
async fn a_request_object_is_checked_against_the_published_keys() {
    use gatehouse::clock::Clock;
    let s = Smart::new().await;
    let key = ClientKey::ec("ro-1");
    let host = KeyHost::publishing(&[&key]);
    let id = register_client(
        &s.app,
        ClientSpec {
            auth_method: Some("private_key_jwt".into()),
            jwks_uri: Some(host.url.clone()),
            ..ClientSpec::new("Signed requests", &[crate::oidc::REDIRECT])
        },
    )
    .await
    .client_id;
    let now = s.app.clock.now().timestamp();
    let push = |signer: &ClientKey| {
        let object = signer.sign(
            json!({"typ": "oauth-authz-req+jwt"}),
            &json!({"iss": id, "aud": s.app.base, "client_id": id, "exp": now + 300,
                    "nbf": now, "iat": now, "response_type": "code",
                    "redirect_uri": crate::oidc::REDIRECT, "scope": "openid",
                    "code_challenge": challenge(), "code_challenge_method": "S256"}),
        );
        let assertion = key.sign(
            json!({}),
            &json!({"iss": id, "sub": id, "aud": s.app.base, "exp": now + 60,
                    "jti": uuid::Uuid::new_v4().to_string()}),
        );
        rp_http()
            .post(s.app.url("/par"))
            .form(&[
                ("request", object.as_str()),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion.as_str()),
            ])
            .send()
    };
    let res = push(&key).await.unwrap();
    assert_eq!(res.status(), 201);
    let res = push(&ClientKey::ec("not-published")).await.unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request_object", "{body}");
    assert_eq!(
        host.reads(),
        1,
        "one read for the assertion, kept for the object"
    );
}
