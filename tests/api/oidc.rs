//! The OpenID Provider driven by a real relying party library (`openidconnect`), and by
//! hand where an attacker would not use one.

use std::collections::HashMap;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use gatehouse::oidc::clients::{ClientSpec, Registered, register};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, RefreshToken, Scope, TokenResponse,
    core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims},
};
use secrecy::ExposeSecret;
use serde_json::Value;
use url::Url;

use crate::helpers::{TestApp, create_user, hidden, spawn_app, spawn_app_with, test_database_url};

pub const REDIRECT: &str = "https://rp.example.org/callback";

/// The relying party's HTTP client: trusts the test certificate, never follows redirects.
pub fn rp_http() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub async fn register_client(app: &TestApp, spec: ClientSpec) -> Registered {
    register(&app.state.store, spec, app.clock_now())
        .await
        .expect("client registers")
}

/// An admin API token (a service client with the admin scope acts as super admin).
pub async fn admin_token(app: &TestApp) -> String {
    let service = register_client(
        app,
        ClientSpec {
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["gatehouse:admin".into()],
            ..ClientSpec::new("Provisioning", &[])
        },
    )
    .await;
    let tokens: Value = rp_http()
        .post(app.url("/token"))
        .basic_auth(
            &service.client_id,
            Some(service.client_secret.as_ref().unwrap().expose_secret()),
        )
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "gatehouse:admin"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tokens["access_token"].as_str().unwrap().to_owned()
}

trait Now {
    fn clock_now(&self) -> chrono::DateTime<chrono::Utc>;
}
impl Now for TestApp {
    fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        use gatehouse::clock::Clock;
        self.clock.now()
    }
}

/// A browser that follows an authorization URL through the sign-in page with
/// `username`/`password`; returns where Gatehouse finally sends it (the client's
/// redirect URI with `code` or `error`).
pub async fn browse_authorize(
    app: &TestApp,
    browser: &reqwest::Client,
    authorize_url: &str,
    username: &str,
    password: &str,
) -> Url {
    let res = browser.get(authorize_url).send().await.unwrap();
    assert_eq!(res.status(), 303, "authorize redirects");
    let mut location = res.headers()["location"].to_str().unwrap().to_owned();
    if location.starts_with("/login") {
        let page = browser.get(app.url(&location)).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        let res = app
            .post_form(
                browser,
                "/login",
                &[
                    ("tx", &hidden(&html, "tx")),
                    ("csrf", &hidden(&html, "csrf")),
                    ("username", username),
                    ("password", password),
                ],
            )
            .await;
        // The last form step ends on a page that navigates to the client by itself.
        assert_eq!(res.status(), 200, "password accepted");
        location = continue_link(&res.text().await.unwrap());
    }
    Url::parse(&location).unwrap_or_else(|_| panic!("sent to the client, not {location}"))
}

/// Where a `continue_to` page sends the browser (its refresh target and its link agree).
/// An `/authorize` URL that starts a code-flow sign-in for `client_id` with `scope` and a
/// PKCE challenge nobody redeems, plus `extra`: for tests of the pages a sign-in shows
/// rather than of its tokens.
pub fn sign_in_url(
    app: &TestApp,
    client_id: &str,
    redirect: &str,
    scope: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut url = Url::parse(&app.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect)
        .append_pair("response_type", "code")
        .append_pair("scope", scope)
        .append_pair("code_challenge", &"c".repeat(43))
        .append_pair("code_challenge_method", "S256")
        .extend_pairs(extra);
    url.into()
}

pub fn continue_link(html: &str) -> String {
    let refresh = html
        .split("content=\"0;url=")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .map(crate::helpers::unescape)
        .expect("a refresh target");
    let link = html
        .split("id=\"continue\" href=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .map(crate::helpers::unescape)
        .expect("a continue link");
    assert_eq!(refresh, link);
    link
}

pub fn query(url: &Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn introspect(app: &TestApp, reg: &Registered, token: &str) -> Value {
    rp_http()
        .post(app.url("/introspect"))
        .basic_auth(
            &reg.client_id,
            Some(reg.client_secret.as_ref().unwrap().expose_secret()),
        )
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The whole code flow with `openidconnect` as the relying party.
async fn full_flow(app: TestApp) {
    create_user(&app, "olivia", "Correct-Horse-Battery-9", false).await;
    let reg = register_client(&app, ClientSpec::new("Ward app", &[REDIRECT])).await;
    let http = rp_http();
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(app.base.clone()).unwrap(), &http)
            .await
            .expect("discovery document and JWKS");
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(reg.client_id.clone()),
        Some(ClientSecret::new(
            reg.client_secret
                .as_ref()
                .unwrap()
                .expose_secret()
                .to_owned(),
        )),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();

    let browser = app.new_client();
    let back = browse_authorize(
        &app,
        &browser,
        auth_url.as_str(),
        "olivia",
        "Correct-Horse-Battery-9",
    )
    .await;
    assert!(back.as_str().starts_with(REDIRECT));
    let q = query(&back);
    assert_eq!(q["state"], *csrf.secret());
    assert_eq!(q["iss"], app.base);
    let code = q["code"].clone();

    let tokens = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchanged");
    let id_token = tokens.id_token().expect("an ID token");
    let verifier = client.id_token_verifier();
    let claims = id_token
        .claims(&verifier, &nonce)
        .expect("ID token verifies");
    assert_eq!(claims.preferred_username().unwrap().as_str(), "olivia");
    assert_eq!(claims.email().unwrap().as_str(), "olivia@example.org");
    assert!(claims.auth_time().is_some());
    assert_eq!(
        claims.auth_context_ref().unwrap().as_str(),
        "urn:gatehouse:acr:pwd"
    );
    assert_eq!(claims.auth_method_refs().unwrap()[0].as_str(), "pwd");
    assert_eq!(claims.authorized_party().unwrap().as_str(), reg.client_id);
    let at_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&at_hash));
    let raw_id = claims_of(&id_token.to_string());
    assert_eq!(raw_id["sid"].as_str().unwrap().len(), 32, "sid claim");

    // RFC 9068 access token.
    let access = tokens.access_token().secret().clone();
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(access.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["typ"], "at+jwt");
    let at = claims_of(&access);
    assert_eq!(at["client_id"], reg.client_id.as_str());
    assert_eq!(at["iss"], app.base.as_str());

    let info: CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await
        .expect("userinfo");
    assert_eq!(info.subject(), claims.subject());
    assert_eq!(info.preferred_username().unwrap().as_str(), "olivia");

    // Refresh rotates: the new token works, the old one is a replay that ends the family.
    let first_refresh = tokens.refresh_token().expect("a refresh token").clone();
    let refreshed = client
        .exchange_refresh_token(&first_refresh)
        .unwrap()
        .request_async(&http)
        .await
        .expect("refresh");
    let second_refresh = refreshed.refresh_token().unwrap().clone();
    assert_ne!(second_refresh.secret(), first_refresh.secret());
    let new_access = refreshed.access_token().secret().clone();
    assert_eq!(introspect(&app, &reg, &new_access).await["active"], true);

    let replay = client
        .exchange_refresh_token(&first_refresh)
        .unwrap()
        .request_async(&http)
        .await;
    assert!(replay.is_err(), "a rotated refresh token is refused");
    assert_eq!(introspect(&app, &reg, &new_access).await["active"], false);
    assert_eq!(
        introspect(&app, &reg, second_refresh.secret()).await["active"],
        false,
        "the whole family is revoked"
    );
    let after = client
        .exchange_refresh_token(&RefreshToken::new(second_refresh.secret().clone()))
        .unwrap()
        .request_async(&http)
        .await;
    assert!(after.is_err());

    // The browser's SSO session answers the next request without a password.
    let (auth_url, _, _) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .url();
    let res = browser.get(auth_url.as_str()).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let location = res.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with(REDIRECT),
        "SSO: straight back with a code"
    );
    assert!(location.contains("code="));
}

#[tokio::test]
async fn code_flow_with_pkce_id_token_userinfo_and_refresh_on_sqlite() {
    let app = spawn_app_with(|c| {
        c.database_url = None;
        c.master_key = None;
    })
    .await;
    full_flow(app).await;
}

#[tokio::test]
async fn code_flow_with_pkce_id_token_userinfo_and_refresh_on_postgres() {
    if test_database_url().is_none() {
        crate::helpers::skip(
            "oidc::code_flow_on_postgres",
            "GATEHOUSE_TEST_DATABASE_URL is not set",
        );
        return;
    }
    full_flow(spawn_app().await).await;
}

const PASSWORD: &str = "Correct-Horse-Battery-9";

/// A confidential client with a signed-in user's code, by hand (no RP library): what an
/// attacker or a sloppy client would send.
struct Flow {
    app: TestApp,
    reg: Registered,
    browser: reqwest::Client,
}

fn pkce_pair() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode([7u8; 32]);
    let challenge =
        URL_SAFE_NO_PAD.encode(<sha2::Sha256 as sha2::Digest>::digest(verifier.as_bytes()));
    (verifier, challenge)
}

impl Flow {
    async fn new() -> Self {
        Self::with(ClientSpec::new("Ward app", &[REDIRECT])).await
    }

    async fn with(spec: ClientSpec) -> Self {
        let app = spawn_app().await;
        create_user(&app, "olivia", PASSWORD, false).await;
        let reg = register_client(&app, spec).await;
        let browser = app.new_client();
        Self { app, reg, browser }
    }

    fn authorize_url(&self, extra: &[(&str, &str)]) -> String {
        let (_, challenge) = pkce_pair();
        let mut url = Url::parse(&self.app.url("/authorize")).unwrap();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", &self.reg.client_id)
                .append_pair("redirect_uri", REDIRECT)
                .append_pair("response_type", "code")
                .append_pair("scope", "openid profile")
                .append_pair("state", "st-1")
                .append_pair("nonce", "n-1")
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
            for (k, v) in extra {
                q.append_pair(k, v);
            }
        }
        url.to_string()
    }

    async fn code(&self) -> String {
        let back = browse_authorize(
            &self.app,
            &self.browser,
            &self.authorize_url(&[]),
            "olivia",
            PASSWORD,
        )
        .await;
        query(&back).get("code").cloned().expect("a code")
    }

    fn secret(&self) -> String {
        self.reg
            .client_secret
            .as_ref()
            .unwrap()
            .expose_secret()
            .to_owned()
    }

    async fn token(&self, form: &[(&str, &str)]) -> reqwest::Response {
        rp_http()
            .post(self.app.url("/token"))
            .basic_auth(&self.reg.client_id, Some(self.secret()))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Two grants in the browser's one SSO session: `openid profile` (ends with the
    /// session) and `openid offline_access` (outlives it); their token responses.
    async fn online_and_offline(&self) -> (Value, Value) {
        let online = self.tokens().await;
        let (verifier, challenge) = pkce_pair();
        let url = self
            .authorize_url(&[])
            .replace("scope=openid+profile", "scope=openid+offline_access");
        assert!(url.contains(&challenge));
        // Signed in already: straight back with a code.
        let res = self.browser.get(&url).send().await.unwrap();
        let back = Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
        let offline: Value = self
            .token(&[
                ("grant_type", "authorization_code"),
                ("code", &query(&back)["code"]),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &verifier),
            ])
            .await
            .json()
            .await
            .unwrap();
        (online, offline)
    }

    /// The token response of a whole code flow.
    async fn tokens(&self) -> Value {
        self.exchange(&self.code().await)
            .await
            .json()
            .await
            .unwrap()
    }

    /// A fresh refresh token from a whole code flow.
    async fn refresh_token(&self) -> String {
        self.tokens().await["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn exchange(&self, code: &str) -> reqwest::Response {
        let (verifier, _) = pkce_pair();
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ])
        .await
    }
}

async fn oauth_error(res: reqwest::Response, status: u16, error: &str) {
    assert_eq!(res.status(), status);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
}

#[tokio::test]
async fn a_wrong_client_secret_is_401_invalid_client() {
    let f = Flow::new().await;
    let code = f.code().await;
    let (verifier, _) = pkce_pair();
    let res = rp_http()
        .post(f.app.url("/token"))
        .basic_auth(&f.reg.client_id, Some("not-the-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap();
    assert!(res.headers().contains_key("www-authenticate"));
    oauth_error(res, 401, "invalid_client").await;
    // The code survived the failed attempt for the genuine client.
    assert_eq!(f.exchange(&code).await.status(), 200);
}

#[tokio::test]
async fn the_janitor_purges_revoked_grants_and_expired_refresh_tokens_only() {
    let f = Flow::new().await;
    let (first, second) = (f.tokens().await, f.tokens().await);
    let (first_refresh, second_refresh) = (
        first["refresh_token"].as_str().unwrap(),
        second["refresh_token"].as_str().unwrap(),
    );
    assert_eq!(revoke_token(&f, first_refresh).await, 200);
    let store = &f.app.state.store;
    let config = &f.app.state.config;
    let secs = |s: u64| chrono::Duration::seconds(i64::try_from(s).unwrap());
    let now = f.app.clock_now().naive_utc();
    // Once the revoked grant's access tokens have expired, it goes; the live one stays.
    let later = now + secs(config.access_token_secs + 1);
    let lifetime = secs(config.access_token_secs);
    let gone = store
        .run(move |c| gatehouse::store::grants::purge(c, later, lifetime))
        .await
        .unwrap();
    assert_eq!(
        gone, 1,
        "the revoked grant (its refresh token goes with it)"
    );
    assert_eq!(
        introspect(&f.app, &f.reg, second_refresh).await["active"],
        true
    );
    // Past its expiry, the live refresh token goes too.
    let much_later = now + secs(config.refresh_token_secs + 1);
    let gone = store
        .run(move |c| gatehouse::store::grants::purge(c, much_later, lifetime))
        .await
        .unwrap();
    assert_eq!(gone, 1);
    assert_eq!(
        introspect(&f.app, &f.reg, second_refresh).await["active"],
        false
    );
}

#[tokio::test]
async fn a_reused_code_is_refused_and_revokes_what_it_issued() {
    let f = Flow::new().await;
    let code = f.code().await;
    let first: Value = f.exchange(&code).await.json().await.unwrap();
    let access = first["access_token"].as_str().unwrap().to_owned();
    assert_eq!(introspect(&f.app, &f.reg, &access).await["active"], true);
    oauth_error(f.exchange(&code).await, 400, "invalid_grant").await;
    assert_eq!(introspect(&f.app, &f.reg, &access).await["active"], false);
    let refresh = first["refresh_token"].as_str().unwrap();
    assert_eq!(introspect(&f.app, &f.reg, refresh).await["active"], false);
    // The trail has the code, the tokens, and the revocation for the replay.
    use crate::admin::audit_events;
    use gatehouse::audit::EventType;
    let issued = audit_events(&f.app, EventType::TokenIssued).await;
    let kinds: Vec<String> = issued
        .iter()
        .map(|e| {
            e.details["grant_type"]
                .as_str()
                .or(e.details["issued"].as_str())
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(
        kinds.contains(&"authorization_code".to_owned()),
        "{kinds:?}"
    );
    let revoked = audit_events(&f.app, EventType::TokenRevoked).await;
    assert_eq!(revoked[0].details["reason"], "authorization code reused");
    let info = rp_http()
        .get(f.app.url("/userinfo"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 401);
}

#[tokio::test]
async fn a_wrong_pkce_verifier_an_expired_code_and_a_wrong_redirect_uri_are_invalid_grant() {
    let f = Flow::new().await;
    let code = f.code().await;
    let res = f
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &URL_SAFE_NO_PAD.encode([9u8; 32])),
        ])
        .await;
    oauth_error(res, 400, "invalid_grant").await;

    let code = f.code().await;
    let (verifier, _) = pkce_pair();
    let res = f
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://rp.example.org/other"),
            ("code_verifier", &verifier),
        ])
        .await;
    oauth_error(res, 400, "invalid_grant").await;

    // Codes live 60 seconds by the application's clock.
    let code = f.code().await;
    f.app.clock.advance(chrono::Duration::seconds(61));
    oauth_error(f.exchange(&code).await, 400, "invalid_grant").await;
}

#[tokio::test]
async fn unknown_clients_and_unregistered_redirect_uris_get_a_page_never_a_redirect() {
    let f = Flow::new().await;
    for url in [
        f.authorize_url(&[]).replace(&f.reg.client_id, "gh-unknown"),
        f.authorize_url(&[])
            .replace("rp.example.org%2Fcallback", "evil.example%2Fcb"),
        f.authorize_url(&[]).replace("redirect_uri=", "x="),
        f.authorize_url(&[("redirect_uri", "https://evil.example/cb")]),
        f.authorize_url(&[("client_id", "gh-other")]),
        format!("{}&pad={}", f.authorize_url(&[]), "a".repeat(10_000)),
    ] {
        let res = f.browser.get(&url).send().await.unwrap();
        assert_eq!(res.status(), 400, "{url}");
        assert!(!res.headers().contains_key("location"));
        assert!(res.text().await.unwrap().contains("not valid"));
    }
}

#[tokio::test]
async fn protocol_errors_go_back_to_a_genuine_client_with_state() {
    let f = Flow::with(ClientSpec {
        public: true,
        ..ClientSpec::new("Public app", &[REDIRECT])
    })
    .await;
    let cases: Vec<(String, &str)> = vec![
        (
            f.authorize_url(&[])
                .replace("response_type=code", "response_type=token"),
            "unsupported_response_type",
        ),
        (
            f.authorize_url(&[])
                .replace("scope=openid+profile", "scope=profile"),
            "invalid_scope",
        ),
        (
            f.authorize_url(&[])
                .replace("code_challenge_method=S256", "code_challenge_method=plain"),
            "invalid_request",
        ),
        (f.authorize_url(&[("prompt", "none")]), "login_required"),
        (f.authorize_url(&[("max_age", "-5")]), "invalid_request"),
        (f.authorize_url(&[("state", "again")]), "invalid_request"),
        (
            f.authorize_url(&[("request", "eyJ")]),
            "invalid_request_object",
        ),
    ];
    for (url, error) in cases {
        let res = f.browser.get(&url).send().await.unwrap();
        assert_eq!(res.status(), 303, "{url}");
        let back = Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
        assert!(back.as_str().starts_with(REDIRECT));
        let q = query(&back);
        assert_eq!(q["error"], error, "{url}");
        assert_eq!(q["iss"], f.app.base);
    }
    // A public client must use PKCE.
    let mut no_pkce = Url::parse(&f.authorize_url(&[])).unwrap();
    let kept: Vec<(String, String)> = no_pkce
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| !k.starts_with("code_challenge"))
        .collect();
    no_pkce.query_pairs_mut().clear().extend_pairs(kept);
    let res = f.browser.get(no_pkce.as_str()).send().await.unwrap();
    let back = Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(query(&back)["error"], "invalid_request");
    assert_eq!(query(&back)["state"], "st-1");
}

#[tokio::test]
async fn max_age_exceeded_and_prompt_login_ask_for_the_password_again() {
    let f = Flow::new().await;
    f.code().await;
    // Signed in: a plain request comes straight back.
    let res = f.browser.get(f.authorize_url(&[])).send().await.unwrap();
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with(REDIRECT)
    );
    f.app.clock.advance(chrono::Duration::seconds(120));
    for extra in [("max_age", "60"), ("prompt", "login")] {
        let res = f
            .browser
            .get(f.authorize_url(&[extra]))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303);
        assert!(
            res.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("/login?tx="),
            "{extra:?}"
        );
    }
    let res = f
        .browser
        .get(f.authorize_url(&[("max_age", "600")]))
        .send()
        .await
        .unwrap();
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with(REDIRECT)
    );
    // Asking for MFA of a password-only session without interaction is refused.
    let res = f
        .browser
        .get(f.authorize_url(&[("prompt", "none"), ("acr_values", "urn:gatehouse:acr:mfa")]))
        .send()
        .await
        .unwrap();
    let back = Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(query(&back)["error"], "interaction_required");
}

#[tokio::test]
async fn acr_values_mfa_makes_a_user_without_totp_enrol_before_a_code() {
    let f = Flow::new().await;
    let url = f.authorize_url(&[("acr_values", "urn:gatehouse:acr:mfa")]);
    let res = f.browser.get(&url).send().await.unwrap();
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let html = f
        .browser
        .get(f.app.url(&location))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let res = f
        .app
        .post_form(
            &f.browser,
            "/login",
            &[
                ("tx", &hidden(&html, "tx")),
                ("csrf", &hidden(&html, "csrf")),
                ("username", "olivia"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let next = res.headers()["location"].to_str().unwrap();
    assert!(
        next.starts_with("/login/totp-enrol"),
        "no code before the second factor: {next}"
    );
}

#[tokio::test]
async fn bad_input_at_the_token_endpoints_is_a_json_400_never_a_500() {
    let f = Flow::new().await;
    let http = rp_http();
    let secret = f.secret();
    let long = "x".repeat(5000);
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        ("/token", vec![], "invalid_request"),
        (
            "/token",
            vec![("grant_type", "password")],
            "unsupported_grant_type",
        ),
        (
            "/token",
            vec![("grant_type", "authorization_code")],
            "invalid_request",
        ),
        (
            "/token",
            vec![("grant_type", "authorization_code"), ("code", "abc")],
            "invalid_grant",
        ),
        (
            "/token",
            vec![
                ("grant_type", "authorization_code"),
                ("grant_type", "refresh_token"),
            ],
            "invalid_request",
        ),
        (
            "/token",
            vec![("grant_type", "refresh_token"), ("refresh_token", &long)],
            "invalid_request",
        ),
        (
            "/token",
            vec![("grant_type", "refresh_token"), ("refresh_token", "%%%")],
            "invalid_grant",
        ),
        ("/revoke", vec![], "invalid_request"),
        (
            "/introspect",
            vec![("token", "a"), ("token", "b")],
            "invalid_request",
        ),
    ];
    for (path, form, error) in cases {
        let res = http
            .post(f.app.url(path))
            .basic_auth(&f.reg.client_id, Some(&secret))
            .form(&form)
            .send()
            .await
            .unwrap();
        oauth_error(res, 400, error).await;
    }
    // Not a form at all.
    let res = http
        .post(f.app.url("/token"))
        .basic_auth(&f.reg.client_id, Some(&secret))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    oauth_error(res, 400, "invalid_request").await;
    // No client authentication, or a malformed one.
    for auth in [
        None,
        Some("Basic !!!"),
        Some("Basic Og=="),
        Some("Bearer x"),
    ] {
        let mut req = http.post(f.app.url("/introspect")).form(&[("token", "x")]);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        oauth_error(req.send().await.unwrap(), 401, "invalid_client").await;
    }
    // Userinfo without or with garbage tokens.
    let res = http.get(f.app.url("/userinfo")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    for token in ["garbage", "a.b.c", &"e".repeat(20_000)] {
        let res = http
            .get(f.app.url("/userinfo"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{}", &token[..token.len().min(20)]);
    }
    // Introspecting garbage is simply inactive.
    assert_eq!(introspect(&f.app, &f.reg, "garbage").await["active"], false);
}

#[tokio::test]
async fn client_credentials_tokens_introspect_and_revoke() {
    let f = Flow::with(ClientSpec {
        grant_types: vec!["client_credentials".into()],
        scopes: vec!["profile".into()],
        ..ClientSpec::new("Lab service", &[])
    })
    .await;
    let res = f.token(&[("grant_type", "client_credentials")]).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert!(body.get("id_token").is_none() && body.get("refresh_token").is_none());
    let token = body["access_token"].as_str().unwrap();
    let info = introspect(&f.app, &f.reg, token).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["sub"], f.reg.client_id.as_str());
    let revoked = rp_http()
        .post(f.app.url("/revoke"))
        .basic_auth(&f.reg.client_id, Some(f.secret()))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(introspect(&f.app, &f.reg, token).await["active"], false);
    assert_eq!(
        revoke_token(&f, token).await,
        200,
        "revoking twice is still fine"
    );

    // Each client_credentials token is revoked alone: the client's others live on, and
    // another client can neither revoke them nor learn anything by trying.
    let second = cc_token(&f).await;
    assert_eq!(introspect(&f.app, &f.reg, &second).await["active"], true);
    let other = register_client(
        &f.app,
        ClientSpec {
            grant_types: vec!["client_credentials".into()],
            ..ClientSpec::new("Another service", &[])
        },
    )
    .await;
    let foreign = rp_http()
        .post(f.app.url("/revoke"))
        .basic_auth(
            &other.client_id,
            Some(other.client_secret.as_ref().unwrap().expose_secret()),
        )
        .form(&[("token", second.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 200);
    assert_eq!(introspect(&f.app, &f.reg, &second).await["active"], true);
    // Such a token has no user: userinfo refuses it.
    let info = rp_http()
        .get(f.app.url("/userinfo"))
        .bearer_auth(&second)
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 401);

    // openid makes no sense without a user; the code flow is not registered.
    oauth_error(
        f.token(&[("grant_type", "client_credentials"), ("scope", "openid")])
            .await,
        400,
        "invalid_scope",
    )
    .await;
    oauth_error(
        f.token(&[("grant_type", "authorization_code"), ("code", "x")])
            .await,
        400,
        "unauthorized_client",
    )
    .await;
    // Deleting the client ends every token it holds.
    let id = f.reg.client_id.clone();
    f.app
        .state
        .store
        .run(move |c| gatehouse::store::clients::delete(c, &id))
        .await
        .unwrap();
    assert_eq!(introspect(&f.app, &other, &second).await["active"], false);
}

async fn cc_token(f: &Flow) -> String {
    let res = f.token(&[("grant_type", "client_credentials")]).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn revoke_token(f: &Flow, token: &str) -> u16 {
    rp_http()
        .post(f.app.url("/revoke"))
        .basic_auth(&f.reg.client_id, Some(f.secret()))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A tiny HTTP listener standing in for a relying party's back-channel endpoint: it hands
/// every POSTed body to the test.
async fn backchannel_listener() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (base, mut rx) = rp_listener().await;
    let (tx, out) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some((_, body)) = rx.recv().await {
            let _ = tx.send(body);
        }
    });
    (format!("{base}/backchannel"), out)
}

/// A relying party's HTTP endpoint on loopback: every request's first line and body go to
/// the test; the answer is a plain 200 page.
pub async fn rp_listener() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            let line = text.lines().next().unwrap_or("").to_owned();
                            let _ = tx.send((line, text[end + 4..end + 4 + len].to_owned()));
                            break;
                        }
                    }
                }
                let _ = sock
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 41\r\nconnection: close\r\n\r\n<html><h1 id=rp>Relying party</h1></html>")
                    .await;
            });
        }
    });
    (url, rx)
}

/// Verifies a JWS against the JWKS Gatehouse publishes; returns its claims.
pub(crate) async fn verify_with_jwks(app: &TestApp, jwt: &str) -> Value {
    use openidconnect::{
        JsonWebKey,
        core::{CoreJsonWebKeySet, CoreJwsSigningAlgorithm},
    };
    let jwks: CoreJsonWebKeySet = rp_http()
        .get(app.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut parts = jwt.split('.');
    let (h, c, s) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap();
    let kid = header["kid"].as_str().unwrap();
    let key = jwks
        .keys()
        .iter()
        .find(|k| k.key_id().map(|k| k.as_str()) == Some(kid))
        .expect("the signing key is published");
    key.verify_signature(
        &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        format!("{h}.{c}").as_bytes(),
        &URL_SAFE_NO_PAD.decode(s).unwrap(),
    )
    .expect("signature verifies against the JWKS");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).unwrap()).unwrap()
}

#[tokio::test]
async fn signing_out_sends_a_verifiable_back_channel_logout_token_and_revokes_tokens() {
    let (uri, mut received) = backchannel_listener().await;
    let f = Flow::with(ClientSpec {
        backchannel_logout_uri: Some(uri),
        post_logout_redirect_uris: vec!["https://rp.example.org/bye".into()],
        ..ClientSpec::new("Ward app", &[REDIRECT])
    })
    .await;
    let tokens = f.tokens().await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();

    // RP-initiated logout with a valid id_token_hint for this session: no confirmation.
    let mut url = Url::parse(&f.app.url("/logout")).unwrap();
    url.query_pairs_mut()
        .append_pair("id_token_hint", id_token)
        .append_pair("post_logout_redirect_uri", "https://rp.example.org/bye")
        .append_pair("state", "bye-1");
    let res = f.browser.get(url.as_str()).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"].to_str().unwrap(),
        "https://rp.example.org/bye?state=bye-1"
    );

    let claims = logout_claims(&f.app, &mut received).await;
    let id_claims = claims_of(id_token);
    assert_eq!(claims["iss"], f.app.base.as_str());
    assert_eq!(claims["aud"], f.reg.client_id.as_str());
    assert_eq!(claims["sub"], id_claims["sub"]);
    assert_eq!(claims["sid"], id_claims["sid"]);
    assert!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    assert!(claims.get("nonce").is_none());

    assert_eq!(introspect(&f.app, &f.reg, refresh).await["active"], false);
    // The session is over: the next request needs a password.
    let res = f.browser.get(f.authorize_url(&[])).send().await.unwrap();
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login")
    );
}

/// A client with a back-channel URI whose user holds two grants in one SSO session: one
/// plain (ends with the session) and one with offline_access (outlives it). Returns the
/// flow, the logout listener, and the two token responses.
async fn online_and_offline_grants() -> (
    Flow,
    tokio::sync::mpsc::UnboundedReceiver<String>,
    Value,
    Value,
) {
    let (uri, received) = backchannel_listener().await;
    let f = Flow::with(ClientSpec {
        backchannel_logout_uri: Some(uri),
        ..ClientSpec::new("Ward app", &[REDIRECT])
    })
    .await;
    let (online, offline) = f.online_and_offline().await;
    (f, received, online, offline)
}

/// The next back-channel logout token the listener got, verified against the JWKS.
async fn logout_claims(
    app: &TestApp,
    received: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
) -> Value {
    let body = tokio::time::timeout(std::time::Duration::from_secs(10), received.recv())
        .await
        .expect("back-channel logout arrives")
        .unwrap();
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    verify_with_jwks(app, &form["logout_token"]).await
}

/// After the session ended: the plain grant's refresh token is dead, the offline one's
/// still live.
async fn only_offline_survives(f: &Flow, online: &Value, offline: &Value) {
    let active = |t: &Value| {
        let token = t["refresh_token"].as_str().unwrap().to_owned();
        async move { introspect(&f.app, &f.reg, &token).await["active"].clone() }
    };
    assert_eq!(active(online).await, false);
    assert_eq!(
        active(offline).await,
        true,
        "offline access outlives the session"
    );
}

#[tokio::test]
async fn a_session_that_runs_out_unnoticed_ends_its_grants_with_back_channel_logout() {
    use gatehouse::oidc::logout::sweep_lapsed_sessions;
    let (f, mut received, online, offline) = online_and_offline_grants().await;
    assert_eq!(
        sweep_lapsed_sessions(&f.app.state).await.unwrap(),
        0,
        "still live"
    );

    // The browser is closed; 73 hours later the 72-hour idle limit has passed.
    f.app.clock.advance(chrono::Duration::hours(73));
    assert_eq!(sweep_lapsed_sessions(&f.app.state).await.unwrap(), 1);
    let claims = logout_claims(&f.app, &mut received).await;
    let id_claims = claims_of(online["id_token"].as_str().unwrap());
    assert_eq!(claims["aud"], f.reg.client_id.as_str());
    assert_eq!(
        (&claims["sub"], &claims["sid"]),
        (&id_claims["sub"], &id_claims["sid"])
    );
    only_offline_survives(&f, &online, &offline).await;
    let ended = crate::admin::audit_events(&f.app, gatehouse::audit::EventType::SessionEnded).await;
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].details["reason"], "lapsed");
    assert_eq!(ended[0].subject.as_deref(), id_claims["sub"].as_str());

    // Nothing is left to end: a second sweep (or another instance's) tells no one again.
    assert_eq!(sweep_lapsed_sessions(&f.app.state).await.unwrap(), 0);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(received.try_recv().is_err(), "one logout token per session");
}

#[tokio::test]
async fn a_browser_returning_to_an_expired_session_ends_its_grants_with_back_channel_logout() {
    let (f, mut received, online, offline) = online_and_offline_grants().await;
    f.app.clock.advance(chrono::Duration::hours(73));
    let res = f.browser.get(f.authorize_url(&[])).send().await.unwrap();
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login"),
        "the session is over"
    );
    let claims = logout_claims(&f.app, &mut received).await;
    let id_claims = claims_of(online["id_token"].as_str().unwrap());
    assert_eq!(claims["sid"], id_claims["sid"]);
    only_offline_survives(&f, &online, &offline).await;
    // The sweeper finds nothing more to do for it.
    assert_eq!(
        gatehouse::oidc::logout::sweep_lapsed_sessions(&f.app.state)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn logout_refuses_unregistered_return_addresses_and_forged_hints() {
    let f = Flow::new().await;
    f.code().await;
    let mut url = Url::parse(&f.app.url("/logout")).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", &f.reg.client_id)
        .append_pair("post_logout_redirect_uri", "https://evil.example/");
    let res = f.browser.get(url.as_str()).send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert!(!res.headers().contains_key("location"));
    let mut url = Url::parse(&f.app.url("/logout")).unwrap();
    url.query_pairs_mut()
        .append_pair("id_token_hint", "eyJhbGciOiJub25lIn0.e30.");
    let res = f.browser.get(url.as_str()).send().await.unwrap();
    assert_eq!(res.status(), 400);
    // Tokens we really signed, but not ID tokens: an access token and a logout token.
    let tokens = f.tokens().await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let logout = {
        let ring = f.app.state.keys.current();
        gatehouse::oidc::jwt::logout_token(
            &ring,
            gatehouse::crypto::signing::SigningAlg::Rs256,
            f.app.base.as_str(),
            &f.reg.client_id,
            Some("someone"),
            Some("sid-1"),
            chrono::Utc::now(),
        )
    };
    for not_an_id_token in [access, logout] {
        let mut url = Url::parse(&f.app.url("/logout")).unwrap();
        url.query_pairs_mut()
            .append_pair("id_token_hint", &not_an_id_token);
        let res = f.browser.get(url.as_str()).send().await.unwrap();
        assert_eq!(res.status(), 400, "{not_an_id_token}");
    }
    // Without a hint the user is asked; the session survives the question.
    let res = f.browser.get(f.app.url("/logout")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("Sign out?"));
    let res = f.browser.get(f.authorize_url(&[])).send().await.unwrap();
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with(REDIRECT)
    );
}

#[tokio::test]
async fn after_rotation_old_tokens_still_verify_and_new_ones_use_the_published_next_key() {
    use gatehouse::keys::rings;
    let f = Flow::new().await;
    let tokens = f.tokens().await;
    let old_access = tokens["access_token"].as_str().unwrap().to_owned();
    let old_kid = claims_header_kid(&old_access);
    let jwks: Value = rp_http()
        .get(f.app.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let published: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    let rsa: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["kty"] == "RSA")
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(rsa.len(), 2, "active and next RSA keys are published");
    let of_type = |kty: &str| {
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["kty"] == kty)
            .count()
    };
    assert_eq!(
        (of_type("EC"), of_type("OKP")),
        (2, 2),
        "and the same for ES256 and EdDSA"
    );
    assert_eq!(published.len(), 6, "nothing else");
    let next = rsa.iter().find(|k| **k != old_kid).unwrap().clone();

    let state = &f.app.state;
    let rotated = rings::rotate(&state.store, state.master_key.clone(), f.app.clock_now())
        .await
        .unwrap();
    let rs = rotated.iter().find(|r| r.alg == "RS256").unwrap();
    let (active, new_next) = (rs.active_kid.clone(), rs.next_kid.clone());
    assert_eq!(
        active, next,
        "the key that signs next was already published"
    );
    state.keys.replace(
        rings::load(
            &state.store,
            state.master_key.clone(),
            f.app.clock_now(),
            gatehouse::startup::keep_retired(&state.config),
        )
        .await
        .unwrap(),
    );
    let jwks: Value = rp_http()
        .get(f.app.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let published: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    for kid in [old_kid.as_str(), next.as_str(), new_next.as_str()] {
        assert!(published.contains(&kid), "{kid} published");
    }
    // The old token still works and verifies.
    verify_with_jwks(&f.app, &old_access).await;
    let res = rp_http()
        .get(f.app.url("/userinfo"))
        .bearer_auth(&old_access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // New tokens are signed by the promoted key.
    let refreshed: Value = f
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        claims_header_kid(refreshed["access_token"].as_str().unwrap()),
        next
    );
    // Once everything the old key signed has expired, it leaves the JWKS.
    f.app.clock.advance(chrono::Duration::seconds(301 + 300));
    state.keys.replace(
        rings::load(
            &state.store,
            state.master_key.clone(),
            f.app.clock_now(),
            gatehouse::startup::keep_retired(&state.config),
        )
        .await
        .unwrap(),
    );
    let jwks: Value = rp_http()
        .get(f.app.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let published: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(!published.contains(&old_kid.as_str()));
}

fn claims_header_kid(jwt: &str) -> String {
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jwt.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// A client key pair for `private_key_jwt`, and an assertion signed with it.
fn client_key(kid: &str) -> (rsa::RsaPrivateKey, String) {
    use rsa::traits::PublicKeyParts;
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let public = key.to_public_key();
    let jwks = serde_json::json!({ "keys": [{
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
    }]});
    (key, jwks.to_string())
}

fn assertion(key: &rsa::RsaPrivateKey, kid: &str, client_id: &str, aud: &str, now: i64) -> String {
    let header = serde_json::json!({"alg": "RS256", "kid": kid});
    assertion_with_header(key, header, client_id, aud, now)
}

fn assertion_with_header(
    key: &rsa::RsaPrivateKey,
    header: serde_json::Value,
    client_id: &str,
    aud: &str,
    now: i64,
) -> String {
    use rsa::signature::{SignatureEncoding, Signer};
    let header = URL_SAFE_NO_PAD.encode(header.to_string());
    let claims = URL_SAFE_NO_PAD.encode(
        serde_json::json!({
            "iss": client_id, "sub": client_id, "aud": aud,
            "exp": now + 60, "iat": now, "jti": uuid::Uuid::new_v4().to_string(),
        })
        .to_string(),
    );
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key.clone());
    let sig = signer.sign(format!("{header}.{claims}").as_bytes());
    format!(
        "{header}.{claims}.{}",
        URL_SAFE_NO_PAD.encode(sig.to_bytes())
    )
}

/// A client_credentials request authenticated by `assertion` (`private_key_jwt`).
async fn client_credentials_with_assertion(
    token_url: String,
    assertion: String,
) -> reqwest::Response {
    rp_http()
        .post(token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.as_str()),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn private_key_jwt_accepts_the_registered_key_once_and_refuses_another() {
    let (key, jwks) = client_key("k1");
    let f = Flow::with(ClientSpec {
        auth_method: Some("private_key_jwt".into()),
        jwks: Some(jwks),
        grant_types: vec!["client_credentials".into()],
        scopes: vec!["profile".into()],
        ..ClientSpec::new("Signed client", &[])
    })
    .await;
    let now = f.app.clock_now().timestamp();
    let token_url = f.app.url("/token");
    let post = |a: String| client_credentials_with_assertion(token_url.clone(), a);
    let good = assertion(&key, "k1", &f.reg.client_id, &token_url, now);
    assert_eq!(post(good.clone()).await.status(), 200);
    oauth_error(post(good).await, 401, "invalid_client").await;
    let (other, _) = client_key("k1");
    oauth_error(
        post(assertion(&other, "k1", &f.reg.client_id, &token_url, now)).await,
        401,
        "invalid_client",
    )
    .await;
    oauth_error(
        post(assertion(
            &key,
            "k1",
            &f.reg.client_id,
            "https://elsewhere.example/token",
            now,
        ))
        .await,
        401,
        "invalid_client",
    )
    .await;
    oauth_error(
        post(assertion(
            &key,
            "k1",
            &f.reg.client_id,
            &token_url,
            now - 3600,
        ))
        .await,
        401,
        "invalid_client",
    )
    .await;
}

#[tokio::test]
async fn private_key_jwt_refuses_critical_extensions_and_malformed_key_ids() {
    let (key, jwks) = client_key("k1");
    let f = Flow::with(ClientSpec {
        auth_method: Some("private_key_jwt".into()),
        jwks: Some(jwks),
        grant_types: vec!["client_credentials".into()],
        scopes: vec!["profile".into()],
        ..ClientSpec::new("Signed client", &[])
    })
    .await;
    let now = f.app.clock_now().timestamp();
    let token_url = f.app.url("/token");
    let post = |a: String| client_credentials_with_assertion(token_url.clone(), a);
    // Validly signed by the registered key, yet naming an extension we do not
    // understand (RFC 7515 §4.1.11), or a key id that is not a string.
    for header in [
        serde_json::json!({"alg": "RS256", "kid": "k1", "crit": ["b64"], "b64": false}),
        serde_json::json!({"alg": "RS256", "kid": 1}),
        serde_json::json!({"alg": "RS256", "kid": ["k1"]}),
    ] {
        let a = assertion_with_header(&key, header.clone(), &f.reg.client_id, &token_url, now);
        let response = post(a).await;
        assert_eq!(response.status(), 401, "{header}");
    }
    // The same key with a plain header still authenticates.
    let good = assertion(&key, "k1", &f.reg.client_id, &token_url, now);
    assert_eq!(post(good).await.status(), 200);
}

#[tokio::test]
async fn client_create_and_keys_rotate_from_the_command_line_reach_the_running_server() {
    let app = spawn_app_with(|c| {
        c.database_url = None;
        c.master_key = None;
        c.signing_key_reload_secs = 1;
    })
    .await;
    let dir = app.data_dir.path().to_owned();
    let out = crate::cli::gatehouse(&dir)
        .args([
            "client",
            "create",
            "--name",
            "Ward app",
            "--redirect-uri",
            REDIRECT,
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    let client_id = created["client_id"].as_str().unwrap();
    let secret = created["client_secret"].as_str().unwrap();
    let ask = |secret: String| {
        let url = app.url("/introspect");
        let id = client_id.to_owned();
        async move {
            rp_http()
                .post(url)
                .basic_auth(id, Some(secret))
                .form(&[("token", "x")])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(ask(secret.to_owned()).await, 200);
    assert_eq!(ask(format!("{secret}x")).await, 401);

    // Bad input is named, and nothing is created.
    let out = crate::cli::gatehouse(&dir)
        .args([
            "client",
            "create",
            "--name",
            "Bad",
            "--redirect-uri",
            "http://evil.example/cb",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("redirect_uris"));

    let out = crate::cli::gatehouse(&dir)
        .args(["keys", "rotate", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rotated: Value = serde_json::from_slice(&out.stdout).unwrap();
    let next = rotated["rotated"][0]["next_kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let published = crate::helpers::eventually(std::time::Duration::from_secs(10), || {
        let url = app.url("/jwks");
        let next = next.clone();
        async move {
            let jwks: Value = rp_http()
                .get(url)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kid"] == next.as_str())
        }
    })
    .await;
    assert!(published, "the running server publishes the new next key");
    let rotated = crate::admin::audit_events(&app, gatehouse::audit::EventType::KeyRotated).await;
    assert_eq!(
        rotated.len(),
        3,
        "one event per algorithm: RS256, ES256, EdDSA"
    );
    assert!(
        rotated[0]
            .actor
            .as_deref()
            .is_some_and(|a| a.starts_with("cli:")),
        "the operator at the command line is named: {:?}",
        rotated[0].actor
    );
}

#[tokio::test]
async fn refresh_tokens_end_with_the_session_unless_offline_access_was_granted() {
    let f = Flow::new().await;
    let (online, offline) = f.online_and_offline().await;
    // Past the 72-hour idle limit the SSO session is over.
    f.app.clock.advance(chrono::Duration::hours(73));
    let res = f
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", online["refresh_token"].as_str().unwrap()),
        ])
        .await;
    oauth_error(res, 400, "invalid_grant").await;
    let res = f
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", offline["refresh_token"].as_str().unwrap()),
        ])
        .await;
    assert_eq!(res.status(), 200, "offline access outlives the session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_presentations_of_one_refresh_token_rotate_it_once_and_end_the_family() {
    let f = Flow::new().await;
    let refresh = f.refresh_token().await;
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
    ];
    let responses = futures_util::future::join_all((0..8).map(|_| f.token(&form))).await;
    let mut rotated = Vec::new();
    for res in responses {
        match res.status().as_u16() {
            200 => rotated.push(res.json::<Value>().await.unwrap()),
            400 => oauth_error(res, 400, "invalid_grant").await,
            other => panic!("{other}: {}", res.text().await.unwrap()),
        }
    }
    // One presentation spends the token; the others are replays of a spent token, and
    // end the family. On PostgreSQL a replay can revoke the family between the winner's
    // two statements, and then the winner is refused too rather than handed tokens
    // that are already dead: at most one is rotated, never two.
    assert!(rotated.len() <= 1, "{rotated:?}");
    for token in rotated
        .iter()
        .flat_map(|r| [&r["access_token"], &r["refresh_token"]])
    {
        let token = token.as_str().unwrap();
        assert_eq!(introspect(&f.app, &f.reg, token).await["active"], false);
    }
    let reused =
        crate::admin::audit_events(&f.app, gatehouse::audit::EventType::TokenRevoked).await;
    assert!(!reused.is_empty(), "a replay ends the family");
    assert_eq!(introspect(&f.app, &f.reg, &refresh).await["active"], false);
}

#[tokio::test]
async fn expired_or_foreign_refresh_tokens_are_refused_and_stay_unspent() {
    let f = Flow::new().await;
    let refresh = f.refresh_token().await;
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
    ];
    // Another confidential client presenting it is refused, and cannot burn it.
    let other = register_client(&f.app, ClientSpec::new("Other app", &[REDIRECT])).await;
    let res = rp_http()
        .post(f.app.url("/token"))
        .basic_auth(
            &other.client_id,
            Some(other.client_secret.as_ref().unwrap().expose_secret()),
        )
        .form(&form)
        .send()
        .await
        .unwrap();
    oauth_error(res, 400, "invalid_grant").await;
    assert_eq!(introspect(&f.app, &f.reg, &refresh).await["active"], true);

    // Past its lifetime it is refused, and that is not a replay: nothing is revoked.
    f.app.clock.advance(chrono::Duration::seconds(
        i64::try_from(f.app.config.refresh_token_secs).unwrap() + 1,
    ));
    oauth_error(f.token(&form).await, 400, "invalid_grant").await;
    let revoked =
        crate::admin::audit_events(&f.app, gatehouse::audit::EventType::TokenRevoked).await;
    assert!(revoked.is_empty(), "{revoked:?}");
}

#[tokio::test]
async fn a_client_that_asks_for_es256_gets_es256_id_tokens_that_verify() {
    use openidconnect::core::CoreJwsSigningAlgorithm;
    let app = spawn_app().await;
    create_user(&app, "olivia", PASSWORD, false).await;
    let reg = register_client(
        &app,
        ClientSpec {
            id_token_alg: Some("ES256".into()),
            ..ClientSpec::new("EC app", &[REDIRECT])
        },
    )
    .await;
    let http = rp_http();
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(app.base.clone()).unwrap(), &http)
            .await
            .unwrap();
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(reg.client_id.clone()),
        Some(ClientSecret::new(
            reg.client_secret
                .as_ref()
                .unwrap()
                .expose_secret()
                .to_owned(),
        )),
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
    let browser = app.new_client();
    let back = browse_authorize(&app, &browser, auth_url.as_str(), "olivia", PASSWORD).await;
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
        CoreJwsSigningAlgorithm::EcdsaP256Sha256
    );
    // A relying party that pins RS256 refuses it; one that allows ES256 verifies it
    // against the P-256 key in our JWKS.
    let rs_only = client
        .id_token_verifier()
        .set_allowed_algs(vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256]);
    assert!(id_token.claims(&rs_only, &nonce).is_err());
    let verifier = client
        .id_token_verifier()
        .set_allowed_algs(vec![CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
    let claims = id_token
        .claims(&verifier, &nonce)
        .expect("ES256 ID token verifies");
    assert_eq!(claims.audiences()[0].as_str(), reg.client_id);
    // An ES256 ID token is a valid id_token_hint.
    let mut url = Url::parse(&app.url("/logout")).unwrap();
    url.query_pairs_mut()
        .append_pair("id_token_hint", &id_token.to_string());
    assert_eq!(
        browser.get(url.as_str()).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn guessing_client_secrets_is_throttled_without_slowing_the_genuine_client() {
    let f = Flow::with(ClientSpec {
        grant_types: vec!["client_credentials".into()],
        scopes: vec!["profile".into()],
        ..ClientSpec::new("Lab service", &[])
    })
    .await;
    let mut throttled = None;
    for i in 0..40 {
        let res = rp_http()
            .post(f.app.url("/token"))
            .basic_auth(&f.reg.client_id, Some(format!("guess-{i}")))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        match res.status().as_u16() {
            401 => {}
            429 => {
                throttled = Some(res);
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    let res = throttled.expect("failed client authentication is throttled");
    assert!(res.headers().contains_key("retry-after"));
    // The genuine client, from the same address, is not held back.
    assert_eq!(
        f.token(&[("grant_type", "client_credentials")])
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_saml_logout_request_revokes_oidc_tokens_tells_the_other_sp_and_answers_the_first() {
    use crate::saml::{
        Sent, TestSp, answer_logout, check_posted_logout_request, final_response, logout_query,
        rand_id, sent, signing_sp, sso_assertion,
    };
    let (uri, mut received) = backchannel_listener().await;
    let f = Flow::with(ClientSpec {
        backchannel_logout_uri: Some(uri),
        ..ClientSpec::new("Ward app", &[REDIRECT])
    })
    .await;
    let tokens = f.tokens().await;
    let refresh = tokens["refresh_token"].as_str().unwrap();

    // The same browser session signs in to two SAML SPs; the first then asks to log out.
    let sp = TestSp::new("https://sp.example.org/acs");
    sp.register(&f.app, signing_sp()).await;
    let other = TestSp::new("https://sp-two.example.org/acs");
    other.register_slo_post(&f.app, signing_sp()).await;
    let (name_id, index) = sso_assertion(&f.app, &sp, &f.browser, true).await;
    let (other_name, _) = sso_assertion(&f.app, &other, &f.browser, true).await;
    let id = format!("_{}", rand_id());
    let res = f
        .browser
        .get(f.app.url(&format!(
            "/saml/slo?{}",
            logout_query(&sp, &f.app, &id, &name_id, &index, true)
        )))
        .send()
        .await
        .unwrap();

    // The session is over at once: OIDC back-channel logout, tokens revoked.
    let body = tokio::time::timeout(std::time::Duration::from_secs(10), received.recv())
        .await
        .expect("back-channel logout arrives")
        .unwrap();
    assert!(body.contains("logout_token="), "{body}");
    assert_eq!(introspect(&f.app, &f.reg, refresh).await["active"], false);

    // The other SP is sent a signed LogoutRequest by POST, and answers.
    let Sent::Post {
        action, xml, relay, ..
    } = sent(res).await
    else {
        panic!("the other SP's SLO endpoint is HTTP-POST");
    };
    assert_eq!(action, format!("{}/slo-post", other.acs));
    let (request_id, told_name) = check_posted_logout_request(&f.app, &xml, &other).await;
    assert_eq!(told_name, other_name);
    let res = answer_logout(
        &f.app,
        &f.browser,
        &other,
        &request_id,
        &relay.unwrap(),
        true,
    )
    .await;

    // Then the first SP gets its signed LogoutResponse: Success, no PartialLogout.
    let (response, xml, relay) = final_response(&f.app, res, &sp).await;
    assert_eq!(response.in_response_to.as_deref(), Some(id.as_str()));
    assert_eq!(relay.as_deref(), Some("after-logout"));
    assert_eq!(
        response.status.unwrap().status_code.value.as_deref(),
        Some("urn:oasis:names:tc:SAML:2.0:status:Success")
    );
    assert!(!xml.contains("PartialLogout"), "{xml}");
    let res = f.browser.get(f.app.url("/account")).send().await.unwrap();
    assert_eq!(res.status(), 303, "signed out");
}

// ---------------------------------------------------------------------------------------
// Issue 20: tenant binding (item 9) and introspection rights (item 11).

/// Binds a client to `orgs` (by name), as `PUT /admin/api/v1/clients/{id}` does.
async fn restrict_to_orgs(app: &TestApp, client_id: &str, orgs: &[&str]) {
    let id = client_id.to_owned();
    let row = app
        .state
        .store
        .run(move |c| gatehouse::store::clients::find(c, &id))
        .await
        .unwrap()
        .unwrap();
    let mut spec = row.spec();
    spec.allowed_orgs = Some(orgs.iter().map(|o| (*o).to_owned()).collect());
    gatehouse::oidc::clients::update(&app.state.store, client_id, spec)
        .await
        .unwrap();
    app.state.clients.forget(client_id);
}

/// Item 9: Hospital A's application is bound to organisation alpha. Ben, of beta, signs
/// in: an error page, no code; nor from his SSO session afterwards. Ann, of alpha, gets
/// tokens that name her organisation; once the client no longer admits alpha, her
/// refresh token is refused.
#[tokio::test]
async fn a_client_bound_to_one_organisation_gives_no_code_to_another_organisations_user() {
    use gatehouse::{
        auth::account::{NewAccount, create_account},
        domain::{Email, OrgName, OrgPolicy, Password, Role, Username},
        store::orgs,
    };
    let app = spawn_app().await;
    let now = chrono::Utc::now().naive_utc();
    app.state
        .store
        .run(move |c| {
            for name in ["alpha", "beta"] {
                let org = OrgName::parse(name).unwrap();
                orgs::insert(c, &org, name, &OrgPolicy::default(), now)?;
            }
            Ok(())
        })
        .await
        .unwrap();
    for (org, name) in [("alpha", "ann"), ("beta", "ben")] {
        create_account(
            &app.state,
            NewAccount {
                org: OrgName::parse(org).unwrap(),
                username: Username::parse(name).unwrap(),
                email: Email::parse(&format!("{name}@example.org")).unwrap(),
                display_name: None,
                role: Role::User,
                password: Password::parse(PASSWORD.into()).unwrap(),
                must_change_password: false,
            },
        )
        .await
        .unwrap();
    }
    let reg = register_client(&app, ClientSpec::new("Hospital A app", &[REDIRECT])).await;
    restrict_to_orgs(&app, &reg.client_id, &["alpha"]).await;
    let browser = app.new_client();
    let f = Flow { app, reg, browser };

    // Ben signs in: a page saying so, never the client's redirect with a code.
    let res = f.browser.get(f.authorize_url(&[])).send().await.unwrap();
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let html = f
        .browser
        .get(f.app.url(&location))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let res = f
        .app
        .post_form(
            &f.browser,
            "/login",
            &[
                ("tx", &hidden(&html, "tx")),
                ("csrf", &hidden(&html, "csrf")),
                ("username", "ben"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), 403, "an error page, not a code");
    let page = res.text().await.unwrap();
    assert!(!page.contains("code="), "{page}");
    assert!(page.contains("organisation"), "{page}");
    // His SSO session does not get one either.
    let res = f.browser.get(f.authorize_url(&[])).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("location").is_none());

    // Ann does, and every token names her organisation.
    let ann = f.app.new_client();
    let back = browse_authorize(&f.app, &ann, &f.authorize_url(&[]), "ann", PASSWORD).await;
    let tokens: Value = f
        .exchange(&query(&back)["code"])
        .await
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        claims_of(tokens["id_token"].as_str().unwrap())["org"],
        "alpha"
    );
    assert_eq!(claims_of(access)["org"], "alpha");
    let info: Value = rp_http()
        .get(f.app.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["org"], "alpha");
    assert_eq!(introspect(&f.app, &f.reg, access).await["org"], "alpha");
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(introspect(&f.app, &f.reg, refresh).await["org"], "alpha");

    // The client no longer admits alpha: Ann's refresh token is refused.
    restrict_to_orgs(&f.app, &f.reg.client_id, &["beta"]).await;
    oauth_error(
        f.token(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
            .await,
        400,
        "invalid_grant",
    )
    .await;
}

/// Item 11: a confidential client learns nothing by introspecting another client's
/// tokens; only the token's own client, or a resource server registered with the
/// introspection permission, sees them active.
#[tokio::test]
async fn a_client_cannot_introspect_another_clients_tokens_without_permission() {
    let f = Flow::new().await;
    let tokens = f.tokens().await;
    let nosy = register_client(
        &f.app,
        ClientSpec::new("Nosy app", &["https://nosy.example.org/cb"]),
    )
    .await;
    for name in ["access_token", "refresh_token"] {
        let token = tokens[name].as_str().unwrap();
        assert_eq!(
            introspect(&f.app, &nosy, token).await,
            serde_json::json!({"active": false}),
            "{name} introspected by another client"
        );
        assert_eq!(
            introspect(&f.app, &f.reg, token).await["active"],
            true,
            "{name} introspected by its own client"
        );
    }
    // A resource server registered with the permission may; and sees the organisation.
    let resource_server = register_client(
        &f.app,
        ClientSpec {
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["profile".into()],
            introspection: true,
            ..ClientSpec::new("Lab API", &[])
        },
    )
    .await;
    let access = tokens["access_token"].as_str().unwrap();
    let seen = introspect(&f.app, &resource_server, access).await;
    assert_eq!(seen["active"], true);
    assert_eq!(seen["client_id"], f.reg.client_id.as_str());
    assert_eq!(seen["org"], "default");
    // Another client learns nothing of the resource server's own client_credentials
    // token either.
    let cc: Value = rp_http()
        .post(f.app.url("/token"))
        .basic_auth(
            &resource_server.client_id,
            Some(
                resource_server
                    .client_secret
                    .as_ref()
                    .unwrap()
                    .expose_secret(),
            ),
        )
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cc = cc["access_token"].as_str().unwrap();
    assert_eq!(
        introspect(&f.app, &nosy, cc).await,
        serde_json::json!({"active": false})
    );
}

/// Items 9 and 11 from the command line: `--org` binds a new client to organisations,
/// `--introspection` makes it a resource server; an unknown organisation is named.
#[tokio::test]
async fn client_create_from_the_command_line_takes_organisations_and_introspection() {
    let app = spawn_app_with(|c| {
        c.database_url = None;
        c.master_key = None;
    })
    .await;
    let dir = app.data_dir.path().to_owned();
    let create = |extra: &[&str]| {
        let mut args = vec!["client", "create", "--name", "Ward app"];
        args.extend(["--redirect-uri", REDIRECT]);
        args.extend(extra);
        crate::cli::gatehouse(&dir).args(args).output().unwrap()
    };
    let out = create(&["--org", "default", "--introspection", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["allowed_orgs"], serde_json::json!(["default"]));
    assert_eq!(created["introspection"], true);
    let id = created["client_id"].as_str().unwrap().to_owned();
    let row = app
        .state
        .store
        .run(move |c| gatehouse::store::clients::find(c, &id))
        .await
        .unwrap()
        .unwrap();
    assert!(row.allows_org("default") && !row.allows_org("beta") && row.introspection);

    let out = create(&["--org", "nowhere"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("allowed_orgs") && err.contains("nowhere"),
        "{err}"
    );
}
