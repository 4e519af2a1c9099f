//! Issue 32: tokens signed with the algorithm a client registered. Access tokens
//! (`access_token_signed_response_alg`), ID tokens (`id_token_signed_response_alg`) and
//! back-channel logout tokens (which follow the ID tokens) may be RS256, ES256 or EdDSA.
//!
//! Every signature here is checked against what `/jwks` publishes with RustCrypto
//! (`openidconnect`'s keys: `rsa`, `p256`, `ed25519-dalek`), never with the OpenSSL code
//! that made it; and the attacks a choice of algorithms invites are tried.

use std::collections::HashMap;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use gatehouse::{
    crypto::signing::SigningAlg,
    oidc::clients::{ClientSpec, Registered},
};
use openidconnect::{
    JsonWebKey,
    core::{CoreJsonWebKeySet, CoreJwsSigningAlgorithm},
};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use url::Url;

use crate::{
    helpers::{TestApp, create_user, spawn_app},
    oidc::{REDIRECT, admin_token, browse_authorize, query, register_client, rp_http, rp_listener},
};

const PASSWORD: &str = "Correct-Horse-Battery-9";

fn decoded(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// A JWS checked against the key of `/jwks` its `kid` names, with the algorithm its
/// header names (`openidconnect` refuses a key of another type); its header and claims.
pub(crate) async fn verified(app: &TestApp, jwt: &str) -> (Value, Value) {
    let jwks: CoreJsonWebKeySet = rp_http()
        .get(app.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "a compact JWS");
    let header = decoded(parts[0]);
    let alg: CoreJwsSigningAlgorithm = serde_json::from_value(header["alg"].clone()).unwrap();
    let key = jwks
        .keys()
        .iter()
        .find(|k| k.key_id().map(|k| k.as_str()) == header["kid"].as_str())
        .expect("the signing key is published");
    key.verify_signature(
        &alg,
        format!("{}.{}", parts[0], parts[1]).as_bytes(),
        &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
    )
    .unwrap_or_else(|e| panic!("{alg:?} signature verifies against the JWKS: {e}"));
    (header, decoded(parts[1]))
}

fn active_kid(app: &TestApp, alg: &str) -> String {
    let alg = SigningAlg::parse(alg).unwrap();
    app.state.keys.current().active_kid(alg).to_owned()
}

/// A token that says `alg` and is by the key that signs `alg` now.
async fn assert_signed_with(app: &TestApp, jwt: &str, alg: &str, typ: Option<&str>) -> Value {
    let (header, claims) = verified(app, jwt).await;
    assert_eq!(header["alg"], alg, "{header}");
    assert_eq!(header["kid"], active_kid(app, alg).as_str(), "{header}");
    assert_eq!(header["typ"].as_str(), typ, "{header}");
    claims
}

/// A confidential relying party of `app` and the browser of its user `olivia`.
struct Rp {
    app: TestApp,
    client_id: String,
    secret: String,
    browser: reqwest::Client,
}

impl Rp {
    async fn registered(app: TestApp, reg: Registered) -> Self {
        create_user(&app, "olivia", PASSWORD, false).await;
        let browser = app.new_client();
        Self {
            client_id: reg.client_id,
            secret: reg.client_secret.unwrap().expose_secret().to_owned(),
            app,
            browser,
        }
    }

    async fn with(spec: ClientSpec) -> Self {
        let app = spawn_app().await;
        let reg = register_client(&app, spec).await;
        Self::registered(app, reg).await
    }

    async fn token(&self, form: &[(&str, &str)]) -> Value {
        let res = rp_http()
            .post(self.app.url("/token"))
            .basic_auth(&self.client_id, Some(&self.secret))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The token response of a whole code flow (PKCE, nonce) for `scope`.
    async fn code_flow(&self, scope: &str) -> Value {
        let verifier = URL_SAFE_NO_PAD.encode([9u8; 32]);
        let challenge =
            URL_SAFE_NO_PAD.encode(<sha2::Sha256 as sha2::Digest>::digest(verifier.as_bytes()));
        let mut url = Url::parse(&self.app.url("/authorize")).unwrap();
        url.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("response_type", "code")
            .append_pair("scope", scope)
            .append_pair("state", "st-1")
            .append_pair("nonce", "n-1")
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        let back =
            browse_authorize(&self.app, &self.browser, url.as_str(), "olivia", PASSWORD).await;
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", &query(&back)["code"]),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ])
        .await
    }

    async fn userinfo(&self, access_token: &str) -> (u16, Value) {
        let res = rp_http()
            .get(self.app.url("/userinfo"))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn introspect(&self, token: &str) -> Value {
        rp_http()
            .post(self.app.url("/introspect"))
            .basic_auth(&self.client_id, Some(&self.secret))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap()
}

/// A client registered over the admin API for `alg` access tokens gets them from
/// client_credentials, the code flow and refresh, and they work where tokens are used.
async fn every_grant_signs_access_tokens_with(alg: &str) {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let res = rp_http()
        .post(app.url("/admin/api/v1/clients"))
        .bearer_auth(&admin)
        .json(&json!({
            "name": "Ward app",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
            "scopes": ["openid", "profile", "offline_access"],
            "access_token_signed_response_alg": alg,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["client"]["access_token_signed_response_alg"], alg);
    assert_eq!(created["client"]["id_token_signed_response_alg"], "RS256");
    let reg = Registered {
        client_id: text(&created["client_id"]).to_owned(),
        client_secret: Some(text(&created["client_secret"]).to_owned().into()),
    };
    let rp = Rp::registered(app, reg).await;
    let at = Some("at+jwt");

    let service = rp.token(&[("grant_type", "client_credentials")]).await;
    let service = text(&service["access_token"]);
    let claims = assert_signed_with(&rp.app, service, alg, at).await;
    assert_eq!(claims["sub"], rp.client_id.as_str());
    assert_eq!(rp.introspect(service).await["active"], true);

    let tokens = rp.code_flow("openid profile offline_access").await;
    let access = text(&tokens["access_token"]);
    let claims = assert_signed_with(&rp.app, access, alg, at).await;
    // The ID token keeps its own algorithm.
    assert_signed_with(&rp.app, text(&tokens["id_token"]), "RS256", None).await;
    let (status, info) = rp.userinfo(access).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["sub"], claims["sub"]);
    let introspected = rp.introspect(access).await;
    assert_eq!(introspected["active"], true, "{introspected}");
    assert_eq!(introspected["sub"], claims["sub"]);

    let refreshed = rp
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", text(&tokens["refresh_token"])),
        ])
        .await;
    let renewed = text(&refreshed["access_token"]);
    assert_signed_with(&rp.app, renewed, alg, at).await;
    assert_eq!(rp.userinfo(renewed).await.0, 200);
    assert_eq!(rp.introspect(renewed).await["active"], true);
    // Revoking an access token of this algorithm works too (RFC 7009).
    let res = rp_http()
        .post(rp.app.url("/revoke"))
        .basic_auth(&rp.client_id, Some(&rp.secret))
        .form(&[("token", renewed)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(rp.introspect(renewed).await["active"], false);
}

#[tokio::test]
async fn a_client_registered_for_es256_access_tokens_gets_them_from_every_grant() {
    every_grant_signs_access_tokens_with("ES256").await;
}

#[tokio::test]
async fn a_client_registered_for_eddsa_access_tokens_gets_them_from_every_grant() {
    every_grant_signs_access_tokens_with("EdDSA").await;
}

#[tokio::test]
async fn rs256_is_the_default_and_other_algorithms_are_refused_naming_the_field() {
    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let api = |path: &str| app.url(&format!("/admin/api/v1{path}"));
    let call = |method: reqwest::Method, path: String, body: Value| {
        let request = rp_http()
            .request(method, api(&path))
            .bearer_auth(&admin)
            .json(&body);
        async move {
            let res = request.send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };
    let plain = json!({
        "name": "Lab feed",
        "grant_types": ["client_credentials"],
        "scopes": ["profile"],
    });
    let (status, created) = call(reqwest::Method::POST, "/clients".into(), plain.clone()).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["client"]["access_token_signed_response_alg"],
        "RS256"
    );
    assert_eq!(created["client"]["id_token_signed_response_alg"], "RS256");
    let id = text(&created["client_id"]).to_owned();
    let secret = text(&created["client_secret"]).to_owned();
    let cc_token = async || {
        let tokens: Value = rp_http()
            .post(app.url("/token"))
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        text(&tokens["access_token"]).to_owned()
    };
    assert_signed_with(&app, &cc_token().await, "RS256", Some("at+jwt")).await;
    let (_, before) = call(reqwest::Method::GET, "/clients".into(), Value::Null).await;

    for field in [
        "access_token_signed_response_alg",
        "id_token_signed_response_alg",
    ] {
        for bad in ["HS256", "none", "ES512", "", "eddsa", "RS256 "] {
            let mut body = plain.clone();
            body[field] = json!(bad);
            let (status, refused) = call(reqwest::Method::POST, "/clients".into(), body).await;
            assert_eq!(status, 400, "{field} {bad:?}: {refused}");
            assert_eq!(
                refused["message"],
                format!("{field}: RS256, ES256 or EdDSA"),
                "{bad:?}"
            );
            let mut change = json!({});
            change[field] = json!(bad);
            let (status, refused) =
                call(reqwest::Method::PUT, format!("/clients/{id}"), change).await;
            assert_eq!(status, 400, "{field} {bad:?}: {refused}");
            assert!(text(&refused["message"]).starts_with(field), "{refused}");
        }
    }
    // Nothing of the refused requests was stored.
    let (_, after) = call(reqwest::Method::GET, "/clients".into(), Value::Null).await;
    assert_eq!(after, before);
    assert_signed_with(&app, &cc_token().await, "RS256", Some("at+jwt")).await;

    // A change takes effect with the next token.
    let change = json!({ "access_token_signed_response_alg": "EdDSA" });
    let (status, updated) = call(reqwest::Method::PUT, format!("/clients/{id}"), change).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(
        updated["client"]["access_token_signed_response_alg"],
        "EdDSA"
    );
    assert_signed_with(&app, &cc_token().await, "EdDSA", Some("at+jwt")).await;

    // The OpenAPI document describes the field wherever a client is read or written.
    let doc: Value = rp_http()
        .get(api("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for schema in ["NewClientBody", "ClientUpdateBody", "ClientView"] {
        let properties = &doc["components"]["schemas"][schema]["properties"];
        assert!(
            properties["access_token_signed_response_alg"].is_object(),
            "{schema}: {properties}"
        );
    }
}

#[tokio::test]
async fn an_eddsa_id_token_verifies_against_the_jwks_and_is_a_valid_hint() {
    use openidconnect::{
        AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
        OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, TokenResponse,
        core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata},
    };
    let rp = Rp::with(ClientSpec {
        id_token_alg: Some("EdDSA".into()),
        ..ClientSpec::new("Ed app", &[REDIRECT])
    })
    .await;
    let http = rp_http();
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(rp.app.base.clone()).unwrap(), &http)
            .await
            .unwrap();
    let advertised: Vec<_> = metadata.id_token_signing_alg_values_supported().to_vec();
    assert_eq!(
        advertised,
        [
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            CoreJwsSigningAlgorithm::EcdsaP256Sha256,
            CoreJwsSigningAlgorithm::EdDsa,
        ]
    );
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(rp.client_id.clone()),
        Some(ClientSecret::new(rp.secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, _, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .url();
    let back = browse_authorize(&rp.app, &rp.browser, auth_url.as_str(), "olivia", PASSWORD).await;
    let tokens = client
        .exchange_code(AuthorizationCode::new(query(&back)["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let id_token = tokens.id_token().unwrap();
    assert_eq!(
        *id_token.signing_alg().unwrap(),
        CoreJwsSigningAlgorithm::EdDsa
    );
    assert_signed_with(&rp.app, &id_token.to_string(), "EdDSA", None).await;
    // A relying party that allows only RS256 refuses it; one that allows EdDSA verifies
    // it against the Ed25519 key in the JWKS, and at_hash (SHA-512 for Ed25519) binds it
    // to the access token, which stays RS256.
    let rs_only = client
        .id_token_verifier()
        .set_allowed_algs(vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256]);
    assert!(id_token.claims(&rs_only, &nonce).is_err());
    let verifier = client
        .id_token_verifier()
        .set_allowed_algs(vec![CoreJwsSigningAlgorithm::EdDsa]);
    let claims = id_token
        .claims(&verifier, &nonce)
        .expect("EdDSA ID token verifies");
    let at_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&at_hash));
    let access = tokens.access_token().secret();
    assert_signed_with(&rp.app, access, "RS256", Some("at+jwt")).await;
    // An EdDSA ID token is a valid id_token_hint.
    let mut url = Url::parse(&rp.app.url("/logout")).unwrap();
    url.query_pairs_mut()
        .append_pair("id_token_hint", &id_token.to_string());
    let res = rp.browser.get(url.as_str()).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

/// A compact JWS with exactly `header` over `claims`, signed by the server's own active
/// key of `by`: a genuine signature, whatever the header says.
fn signed_by_our_key(app: &TestApp, by: SigningAlg, header: Value, claims: &str) -> String {
    let input = format!("{}.{claims}", URL_SAFE_NO_PAD.encode(header.to_string()));
    let signature = app
        .state
        .keys
        .current()
        .signing_key(by)
        .sign_message(input.as_bytes())
        .unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

#[tokio::test]
async fn a_header_naming_another_algorithm_than_its_key_is_refused_at_userinfo() {
    let rp = Rp::with(ClientSpec {
        access_token_alg: Some("EdDSA".into()),
        ..ClientSpec::new("Ed app", &[REDIRECT])
    })
    .await;
    let tokens = rp.code_flow("openid profile").await;
    let access = text(&tokens["access_token"]);
    assert_eq!(rp.userinfo(access).await.0, 200);
    let claims = access.split('.').nth(1).unwrap();
    let kid = |alg| active_kid(&rp.app, alg);
    let header = |alg: &str, kid: String| json!({ "alg": alg, "typ": "at+jwt", "kid": kid });
    // The same claims, signed again the right way: accepted, so what is refused below is
    // refused for its header and key alone.
    let genuine = signed_by_our_key(
        &rp.app,
        SigningAlg::EdDsa,
        header("EdDSA", kid("EdDSA")),
        claims,
    );
    assert_eq!(rp.userinfo(&genuine).await.0, 200);
    for (said, kid_of, signer) in [
        ("RS256", "EdDSA", SigningAlg::Rs256),
        ("EdDSA", "RS256", SigningAlg::EdDsa),
        ("ES256", "EdDSA", SigningAlg::Es256),
        ("EdDSA", "ES256", SigningAlg::EdDsa),
        ("RS256", "ES256", SigningAlg::Rs256),
    ] {
        let forged = signed_by_our_key(&rp.app, signer, header(said, kid(kid_of)), claims);
        let (status, _) = rp.userinfo(&forged).await;
        assert_eq!(status, 401, "alg {said} under the {kid_of} key's kid");
        assert_eq!(rp.introspect(&forged).await["active"], false);
    }
    // No signature at all, or an HMAC keyed with the published key, under that kid.
    let unsigned = format!(
        "{}.{claims}.",
        URL_SAFE_NO_PAD.encode(header("none", kid("EdDSA")).to_string())
    );
    assert_eq!(rp.userinfo(&unsigned).await.0, 401);
    let input = format!(
        "{}.{claims}",
        URL_SAFE_NO_PAD.encode(header("HS256", kid("EdDSA")).to_string())
    );
    let jwks: Value = rp_http()
        .get(rp.app.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let public = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid("EdDSA").as_str())
        .unwrap();
    let mac = {
        use hmac::Mac;
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(public.to_string().as_bytes()).unwrap();
        mac.update(input.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    };
    assert_eq!(rp.userinfo(&format!("{input}.{mac}")).await.0, 401);
}

#[tokio::test]
async fn a_back_channel_logout_token_follows_the_id_token_algorithm() {
    let (base, mut received) = rp_listener().await;
    let rp = Rp::with(ClientSpec {
        id_token_alg: Some("ES256".into()),
        backchannel_logout_uri: Some(format!("{base}/bc")),
        post_logout_redirect_uris: vec!["https://rp.example.org/bye".into()],
        ..ClientSpec::new("EC app", &[REDIRECT])
    })
    .await;
    let tokens = rp.code_flow("openid profile").await;
    let id_token = text(&tokens["id_token"]);
    let id_claims = assert_signed_with(&rp.app, id_token, "ES256", None).await;
    // The access token stays RS256: the two settings are apart.
    assert_signed_with(
        &rp.app,
        text(&tokens["access_token"]),
        "RS256",
        Some("at+jwt"),
    )
    .await;

    let mut url = Url::parse(&rp.app.url("/logout")).unwrap();
    url.query_pairs_mut()
        .append_pair("id_token_hint", id_token)
        .append_pair("post_logout_redirect_uri", "https://rp.example.org/bye");
    let res = rp.browser.get(url.as_str()).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let (line, body) = tokio::time::timeout(std::time::Duration::from_secs(10), received.recv())
        .await
        .expect("back-channel logout arrives")
        .unwrap();
    assert!(line.starts_with("POST /bc "), "{line}");
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let claims =
        assert_signed_with(&rp.app, &form["logout_token"], "ES256", Some("logout+jwt")).await;
    assert_eq!(claims["aud"], rp.client_id.as_str());
    assert_eq!(claims["sub"], id_claims["sub"]);
    assert_eq!(claims["sid"], id_claims["sid"]);
}

/// `--access-token-alg` and `--id-token-alg` from the command line, on the database a
/// running server uses: its next tokens follow; a bad name is refused, naming the option's
/// field, and changes nothing.
#[tokio::test]
async fn the_command_line_sets_and_changes_a_clients_token_algorithms() {
    let app = crate::helpers::spawn_app_with(|c| {
        c.database_url = None;
        c.master_key = None;
    })
    .await;
    let dir = app.data_dir.path().to_owned();
    let cli = |args: &[&str]| crate::cli::gatehouse(&dir).args(args).output().unwrap();
    let json_of = |out: std::process::Output| -> Value {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let created = json_of(cli(&[
        "client",
        "create",
        "--name",
        "Lab feed",
        "--grant",
        "client_credentials",
        "--scope",
        "profile",
        "--access-token-alg",
        "ES256",
        "--id-token-alg",
        "EdDSA",
        "--json",
    ]));
    let id = text(&created["client_id"]).to_owned();
    let secret = text(&created["client_secret"]).to_owned();
    let shown = json_of(cli(&["client", "show", &id, "--json"]));
    assert_eq!(shown["access_token_signed_response_alg"], "ES256");
    assert_eq!(shown["id_token_signed_response_alg"], "EdDSA");
    let cc_token = async || {
        let tokens: Value = rp_http()
            .post(app.url("/token"))
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        text(&tokens["access_token"]).to_owned()
    };
    assert_signed_with(&app, &cc_token().await, "ES256", Some("at+jwt")).await;

    let out = cli(&["client", "update", &id, "--access-token-alg", "HS256"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("access_token_alg: RS256, ES256 or EdDSA"),
        "{err}"
    );
    let shown = json_of(cli(&["client", "show", &id, "--json"]));
    assert_eq!(shown["access_token_signed_response_alg"], "ES256");

    let updated = json_of(cli(&[
        "client",
        "update",
        &id,
        "--access-token-alg",
        "EdDSA",
        "--json",
    ]));
    assert_eq!(
        updated["client"]["access_token_signed_response_alg"],
        "EdDSA"
    );
    assert_eq!(updated["client"]["id_token_signed_response_alg"], "EdDSA");
    // The server keeps a client's registration up to 2 s (README); a CLI change follows.
    let followed = crate::helpers::eventually(std::time::Duration::from_secs(10), || async {
        let token = cc_token().await;
        decoded(token.split('.').next().unwrap())["alg"] == "EdDSA"
    })
    .await;
    assert!(
        followed,
        "the running server signs the client's tokens with EdDSA"
    );
    assert_signed_with(&app, &cc_token().await, "EdDSA", Some("at+jwt")).await;
}
