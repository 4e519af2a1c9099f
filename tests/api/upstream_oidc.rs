//! Signing in through an organisation's OIDC identity provider (issue 28, DESIGN §16),
//! with a second Gatehouse on loopback as the real upstream: its own users, its own
//! sign-in page, its own tokens. The downstream Gatehouse reaches it as any hospital's
//! IdP: discovery, PKCE, state, nonce, an ID token checked against its JWKS.
//!
//! The upstream answers as `localhost`, the downstream as `127.0.0.1`, so one
//! cookie-keeping client is one browser holding both sites' cookies apart.

use gatehouse::{
    oidc::clients::ClientSpec,
    store::{orgs, upstream as rows},
};
use serde_json::{Value, json};
use url::Url;

use crate::{
    helpers::{TestApp, client, create_user, hidden, spawn_app, spawn_app_with},
    oidc::{browse_authorize, continue_link, query, register_client, rp_http},
};

pub const PASSWORD: &str = "Upstream-Horse-Battery-7";

/// A Gatehouse answering as `https://localhost:{port}`: the organisation's IdP.
pub async fn upstream_idp() -> TestApp {
    spawn_app_with(|c| c.issuer = Url::parse("https://localhost:0").unwrap()).await
}

/// The downstream's callback for connector `slug`.
pub fn callback(downstream: &TestApp, slug: &str) -> String {
    downstream.url(&format!("/upstream/{slug}/callback"))
}

/// A client of `upstream` for `downstream`'s connector `slug`: (client id, secret).
pub async fn upstream_client(
    upstream: &TestApp,
    downstream: &TestApp,
    slug: &str,
) -> (String, String) {
    use secrecy::ExposeSecret;
    let reg = register_client(
        upstream,
        ClientSpec {
            post_logout_redirect_uris: vec![
                downstream.url(&format!("/upstream/{slug}/signed-out")),
            ],
            backchannel_logout_uri: Some(
                downstream.url(&format!("/upstream/{slug}/backchannel-logout")),
            ),
            ..ClientSpec::new("Downstream Gatehouse", &[&callback(downstream, slug)])
        },
    )
    .await;
    let secret = reg.client_secret.unwrap().expose_secret().to_owned();
    (reg.client_id, secret)
}

/// The settings document of an OIDC connector to `upstream`, trusting its certificate.
pub fn settings(upstream: &TestApp, client_id: &str, accounts: Value) -> Value {
    let ca = std::fs::read_to_string(upstream.data_dir.path().join("tls/cert.pem")).unwrap();
    json!({
        "oidc": { "issuer": upstream.base, "client_id": client_id, "ca_pem": ca },
        "accounts": accounts,
    })
}

/// Stores a connector in `app`'s default organisation, its secret sealed as the admin
/// service seals it; its id.
pub async fn add_connector(
    app: &TestApp,
    slug: &str,
    settings: Value,
    secret: Option<&str>,
    domains: &[&str],
) -> String {
    let state = app.state.clone();
    let org = state
        .store
        .run(|c| orgs::find_by_name(c, &gatehouse::domain::OrgName::parse("default").unwrap()))
        .await
        .unwrap()
        .unwrap();
    let now = chrono::Utc::now().naive_utc();
    let mut values = rows::ConnectorValues {
        org_id: org.id,
        slug: slug.into(),
        display_name: format!("{slug} sign-in"),
        protocol: "oidc".into(),
        enabled: true,
        settings: settings.to_string(),
        secret_sealed: None,
    };
    let row = {
        let values = values.clone();
        state
            .store
            .run(move |c| rows::insert(c, &values, now))
            .await
            .unwrap()
    };
    values.secret_sealed = secret.map(|s| {
        state
            .master_key
            .seal(&rows::secret_context(&row.id), s.as_bytes())
    });
    let domains: Vec<String> = domains.iter().map(|d| (*d).to_owned()).collect();
    let id = row.id.clone();
    state
        .store
        .run(move |c| {
            rows::update(c, &id, &values, now)?;
            rows::set_domains(c, &id, &domains)
        })
        .await
        .unwrap();
    row.id
}

/// An upstream, a downstream with connector `hospital` to it, and the upstream user
/// `uma` (her address `uma@example.org`).
pub struct Pair {
    pub upstream: TestApp,
    pub downstream: TestApp,
    pub connector_id: String,
    /// The downstream's client at the upstream.
    pub client_id: String,
    /// `uma` at the upstream.
    pub uma: gatehouse::store::users::UserRow,
}

pub async fn pair_with(accounts: Value, domains: &[&str]) -> Pair {
    let upstream = upstream_idp().await;
    let downstream = spawn_app().await;
    let uma = create_user(&upstream, "uma", PASSWORD, false).await;
    let (client_id, secret) = upstream_client(&upstream, &downstream, "hospital").await;
    let connector_id = add_connector(
        &downstream,
        "hospital",
        settings(&upstream, &client_id, accounts),
        Some(&secret),
        domains,
    )
    .await;
    Pair {
        upstream,
        downstream,
        connector_id,
        client_id,
        uma,
    }
}

/// The sign-in page of a fresh transaction on `app`: (its path with `tx`, its HTML).
pub async fn login_page(app: &TestApp, browser: &reqwest::Client) -> (String, String) {
    let res = browser.get(app.url("/login")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let html = browser
        .get(app.url(&location))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (location, html)
}

/// Where a 303 sends the browser.
pub fn location(res: &reqwest::Response) -> String {
    assert_eq!(res.status(), 303, "a redirect");
    res.headers()["location"].to_str().unwrap().to_owned()
}

/// From the downstream's button (or any URL that leads to the upstream) through the
/// upstream's sign-in as `username`: the downstream callback URL the upstream sends
/// the browser back to.
pub async fn via_upstream(
    pair: &Pair,
    browser: &reqwest::Client,
    start: &str,
    username: &str,
) -> Url {
    let res = browser
        .get(pair.downstream.url(start))
        .send()
        .await
        .unwrap();
    let to_upstream = location(&res);
    assert!(
        to_upstream.starts_with(&pair.upstream.base),
        "{to_upstream}"
    );
    let back = browse_authorize(&pair.upstream, browser, &to_upstream, username, PASSWORD).await;
    assert!(
        back.as_str()
            .starts_with(&callback(&pair.downstream, "hospital"))
    );
    back
}

/// Signs in through the button on a fresh sign-in page; the downstream's answer to the
/// callback.
pub async fn sign_in_with_button(pair: &Pair, browser: &reqwest::Client) -> reqwest::Response {
    let (_, html) = login_page(&pair.downstream, browser).await;
    let button = hidden_href(&html, "upstream-hospital");
    let back = via_upstream(pair, browser, &button, "uma").await;
    browser.get(back.as_str()).send().await.unwrap()
}

/// The `href` of the element with `id`.
pub fn hidden_href(html: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\" href=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {id} in {html}"))
        + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    crate::helpers::unescape(&html[start..end])
}

pub async fn account_username(app: &TestApp, browser: &reqwest::Client) -> String {
    let page = browser.get(app.url("/account")).send().await.unwrap();
    assert_eq!(page.status(), 200, "signed in");
    let html = page.text().await.unwrap();
    crate::helpers::element_text(&html, "account-username")
}

pub async fn links(app: &TestApp, connector_id: &str) -> Vec<rows::LinkRow> {
    let id = connector_id.to_owned();
    app.state
        .store
        .run(move |c| rows::links_of_connector(c, &id))
        .await
        .unwrap()
}

/// Registers a FHIR server at `base` in `app`, as the admin service would; its id.
pub async fn register_fhir_server(app: &TestApp, base: &str) -> String {
    use gatehouse::store::fhir_servers;
    let values = fhir_servers::FhirServerValues {
        base_url: base.to_owned(),
        display_name: "Hospital FHIR".into(),
        allowed_scopes: vec!["user/*.rs".into()],
        allowed_clients: Vec::new(),
    };
    let now = chrono::Utc::now().naive_utc();
    app.state
        .store
        .run(move |c| fhir_servers::insert(c, &values, now))
        .await
        .unwrap()
        .id
}

/// `user_id`'s FHIR resource on the server at `base`, if any.
pub async fn fhir_user_of(app: &TestApp, user_id: &str, base: &str) -> Option<String> {
    let (user_id, base) = (user_id.to_owned(), base.to_owned());
    app.state
        .store
        .run(move |c| gatehouse::store::fhir_servers::user_reference_at(c, &user_id, &base))
        .await
        .unwrap()
}

/// `app`'s audit events of `kind`, as (details) documents.
pub async fn audit_details(app: &TestApp, kind: gatehouse::audit::EventType) -> Vec<Value> {
    crate::admin::audit_events(app, kind)
        .await
        .into_iter()
        .map(|e| serde_json::to_value(&e.details).unwrap())
        .collect()
}

#[tokio::test]
async fn the_first_upstream_sign_in_creates_the_account_and_the_next_one_finds_it() {
    let pair = pair_with(json!({}), &[]).await;
    let browser = client();
    let res = sign_in_with_button(&pair, &browser).await;
    assert_eq!(location(&res), "/account");
    assert_eq!(account_username(&pair.downstream, &browser).await, "uma");
    let linked = links(&pair.downstream, &pair.connector_id).await;
    assert_eq!(linked.len(), 1, "linked to the new account");

    // Another browser, another day: the same upstream person is the same account.
    let again = client();
    let res = sign_in_with_button(&pair, &again).await;
    assert_eq!(location(&res), "/account");
    let still = links(&pair.downstream, &pair.connector_id).await;
    assert_eq!(still.len(), 1);
    assert_eq!(still[0].user_id, linked[0].user_id);

    use gatehouse::audit::EventType;
    let linked = audit_details(&pair.downstream, EventType::UpstreamLinked).await;
    assert!(
        linked.iter().any(|d| d["how"] == "just_in_time"),
        "{linked:?}"
    );
    let signed_in = audit_details(&pair.downstream, EventType::SignInSucceeded).await;
    let via = signed_in
        .iter()
        .filter(|d| d["connector"] == "hospital")
        .count();
    assert_eq!(via, 2, "{signed_in:?}");
}

#[tokio::test]
async fn a_relying_party_gets_a_code_for_the_upstream_person_with_idp_hint_skipping_the_choice() {
    use openidconnect::{
        AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
        RedirectUrl, Scope, TokenResponse,
        core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata},
    };
    use secrecy::ExposeSecret;
    let pair = pair_with(json!({}), &[]).await;
    let rp = register_client(
        &pair.downstream,
        ClientSpec::new("Ward app", &[crate::oidc::REDIRECT]),
    )
    .await;
    let http = rp_http();
    let metadata = CoreProviderMetadata::discover_async(
        IssuerUrl::new(pair.downstream.base.clone()).unwrap(),
        &http,
    )
    .await
    .unwrap();
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(rp.client_id.clone()),
        Some(ClientSecret::new(
            rp.client_secret
                .as_ref()
                .unwrap()
                .expose_secret()
                .to_owned(),
        )),
    )
    .set_redirect_uri(RedirectUrl::new(crate::oidc::REDIRECT.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_extra_param("idp_hint", "hospital")
        .set_pkce_challenge(challenge)
        .url();
    let browser = client_for_both();
    let res = browser.get(auth_url.as_str()).send().await.unwrap();
    // Straight to the upstream's door: no sign-in page in between.
    let to_start = location(&res);
    assert!(
        to_start.starts_with("/login/upstream/hospital?tx="),
        "{to_start}"
    );
    let back = via_upstream(&pair, &browser, &to_start, "uma").await;
    let res = browser.get(back.as_str()).send().await.unwrap();
    assert_eq!(res.status(), 200, "the continue page to the RP");
    let to_rp = Url::parse(&continue_link(&res.text().await.unwrap())).unwrap();
    let q = query(&to_rp);
    assert_eq!(q["state"], *csrf.secret());
    let tokens = client
        .exchange_code(AuthorizationCode::new(q["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let claims = tokens
        .id_token()
        .unwrap()
        .claims(&client.id_token_verifier(), &nonce)
        .unwrap()
        .clone();
    assert_eq!(claims.preferred_username().unwrap().as_str(), "uma");
    let linked = links(&pair.downstream, &pair.connector_id).await;
    assert_eq!(
        claims.subject().as_str(),
        linked[0].user_id,
        "the linked Gatehouse user"
    );
}

/// The browser of a test (cookies kept per host, redirects not followed).
fn client_for_both() -> reqwest::Client {
    client()
}

#[tokio::test]
async fn an_email_domain_sends_the_identifier_to_its_identity_provider() {
    let pair = pair_with(json!({ "show_on_login": false }), &["hospital.example"]).await;
    let browser = client();
    let (page, html) = login_page(&pair.downstream, &browser).await;
    assert!(!html.contains("upstream-hospital"), "no button when hidden");
    assert!(html.contains("identifier-first-hint"));
    let tx = hidden(&html, "tx");
    let csrf = hidden(&html, "csrf");
    // Another domain with no password: asked for the password, nothing else.
    let res = pair
        .downstream
        .post_form(
            &browser,
            "/login",
            &[
                ("tx", &tx),
                ("csrf", &csrf),
                ("username", "ana@clinic.example"),
                ("password", ""),
            ],
        )
        .await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("Enter your password."));
    let res = pair
        .downstream
        .post_form(
            &browser,
            "/login",
            &[
                ("tx", &tx),
                ("csrf", &csrf),
                ("username", "Uma@Hospital.Example"),
                ("password", ""),
            ],
        )
        .await;
    let start = location(&res);
    assert!(
        start.starts_with("/login/upstream/hospital?tx="),
        "{start} from {page}"
    );
    let res = browser
        .get(pair.downstream.url(&start))
        .send()
        .await
        .unwrap();
    let to_upstream = Url::parse(&location(&res)).unwrap();
    // The identifier goes along as the upstream's login_hint.
    assert_eq!(query(&to_upstream)["login_hint"], "Uma@Hospital.Example");
}

#[tokio::test]
async fn an_existing_account_with_the_same_email_is_linked_only_after_its_own_password() {
    let pair = pair_with(json!({}), &[]).await;
    // The downstream already has `uma` (uma@example.org): the upstream's `uma` with the
    // same name and address is NOT taken to be her.
    create_user(&pair.downstream, "uma", "Local-Password-Strong-5", false).await;
    let browser = client();
    let res = sign_in_with_button(&pair, &browser).await;
    let back_to_login = location(&res);
    assert!(back_to_login.starts_with("/login?tx="), "{back_to_login}");
    assert!(
        links(&pair.downstream, &pair.connector_id).await.is_empty(),
        "no link on a match"
    );
    let html = browser
        .get(pair.downstream.url(&back_to_login))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("id=\"link-notice\""), "{html}");
    assert!(
        !html.contains("upstream-hospital"),
        "no way round the password"
    );
    // A wrong password links nothing.
    let tx = hidden(&html, "tx");
    let csrf = hidden(&html, "csrf");
    let res = pair
        .downstream
        .post_form(
            &browser,
            "/login",
            &[
                ("tx", &tx),
                ("csrf", &csrf),
                ("username", "uma"),
                ("password", "Wrong-Password-Strong-5"),
            ],
        )
        .await;
    assert_eq!(res.status(), 401);
    assert!(links(&pair.downstream, &pair.connector_id).await.is_empty());
    // Her own password proves the account: now, and only now, it is linked.
    let res = pair
        .downstream
        .post_form(
            &browser,
            "/login",
            &[
                ("tx", &tx),
                ("csrf", &csrf),
                ("username", "uma"),
                ("password", "Local-Password-Strong-5"),
            ],
        )
        .await;
    assert_eq!(location(&res), "/account");
    let linked = links(&pair.downstream, &pair.connector_id).await;
    assert_eq!(linked.len(), 1);
    // The next upstream sign-in goes straight to that account.
    let other = client();
    let res = sign_in_with_button(&pair, &other).await;
    assert_eq!(location(&res), "/account");
    assert_eq!(account_username(&pair.downstream, &other).await, "uma");
}

#[tokio::test]
async fn an_account_of_another_organisation_is_never_linked() {
    let pair = pair_with(json!({ "just_in_time": false }), &[]).await;
    let other_org = gatehouse::domain::OrgName::parse("elsewhere").unwrap();
    let now = chrono::Utc::now().naive_utc();
    let state = pair.downstream.state.clone();
    state
        .store
        .run(move |c| orgs::insert(c, &other_org, "Elsewhere", &Default::default(), now))
        .await
        .unwrap();
    gatehouse::auth::account::create_account(
        &pair.downstream.state,
        gatehouse::auth::account::NewAccount {
            org: gatehouse::domain::OrgName::parse("elsewhere").unwrap(),
            username: gatehouse::domain::Username::parse("ezra").unwrap(),
            email: gatehouse::domain::Email::parse("ezra@elsewhere.example").unwrap(),
            display_name: None,
            role: gatehouse::domain::Role::User,
            password: gatehouse::domain::Password::parse("Elsewhere-Password-9".into()).unwrap(),
            must_change_password: false,
        },
    )
    .await
    .unwrap();
    let browser = client();
    let res = sign_in_with_button(&pair, &browser).await;
    let to_login = location(&res);
    let html = browser
        .get(pair.downstream.url(&to_login))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let res = pair
        .downstream
        .post_form(
            &browser,
            "/login",
            &[
                ("tx", &hidden(&html, "tx")),
                ("csrf", &hidden(&html, "csrf")),
                ("username", "ezra"),
                ("password", "Elsewhere-Password-9"),
            ],
        )
        .await;
    assert_eq!(location(&res), "/account", "ezra signs in as himself");
    assert!(
        links(&pair.downstream, &pair.connector_id).await.is_empty(),
        "but no cross-organisation link"
    );
}

#[tokio::test]
async fn a_disabled_account_or_a_blocked_address_signs_in_through_no_upstream() {
    use gatehouse::{
        domain::UserStatus,
        store::{ip_blocks, users},
    };
    let pair = pair_with(json!({}), &[]).await;
    let browser = client();
    sign_in_with_button(&pair, &browser).await;
    let user_id = links(&pair.downstream, &pair.connector_id).await[0]
        .user_id
        .clone();
    let state = pair.downstream.state.clone();
    let id = user_id.clone();
    state
        .store
        .run(move |c| {
            users::set_status(c, &id, UserStatus::Disabled, chrono::Utc::now().naive_utc())
        })
        .await
        .unwrap();
    let other = client();
    let res = sign_in_with_button(&pair, &other).await;
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("cannot sign in"));
    assert_eq!(
        other
            .get(pair.downstream.url("/account"))
            .send()
            .await
            .unwrap()
            .status(),
        303
    );

    let id = user_id.clone();
    state
        .store
        .run(move |c| users::set_status(c, &id, UserStatus::Active, chrono::Utc::now().naive_utc()))
        .await
        .unwrap();
    // The address is blocked while the person is at the upstream: no way back in.
    let third = client();
    let (_, html) = login_page(&pair.downstream, &third).await;
    let back = via_upstream(
        &pair,
        &third,
        &hidden_href(&html, "upstream-hospital"),
        "uma",
    )
    .await;
    state
        .store
        .run(|c| {
            ip_blocks::block(
                c,
                "127.0.0.1",
                chrono::Duration::seconds(600),
                "test",
                chrono::Utc::now().naive_utc(),
            )
            .map(|_| ())
        })
        .await
        .unwrap();
    let res = third.get(back.as_str()).send().await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(
        third
            .get(pair.downstream.url("/account"))
            .send()
            .await
            .unwrap()
            .status(),
        303
    );
}

#[tokio::test]
async fn private_key_jwt_authenticates_us_to_the_upstream_without_a_secret() {
    let upstream = upstream_idp().await;
    let downstream = spawn_app().await;
    let uma = create_user(&upstream, "uma", PASSWORD, false).await;
    let our_jwks = rp_http()
        .get(downstream.url("/jwks"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let reg = register_client(
        &upstream,
        ClientSpec {
            auth_method: Some("private_key_jwt".into()),
            jwks: Some(our_jwks),
            ..ClientSpec::new(
                "Downstream Gatehouse",
                &[&callback(&downstream, "hospital")],
            )
        },
    )
    .await;
    assert!(reg.client_secret.is_none());
    let mut doc = settings(&upstream, &reg.client_id, json!({}));
    doc["oidc"]["client_auth"] = json!("private_key_jwt");
    let connector_id = add_connector(&downstream, "hospital", doc, None, &[]).await;
    let pair = Pair {
        upstream,
        downstream,
        connector_id,
        client_id: reg.client_id,
        uma,
    };
    let browser = client();
    let res = sign_in_with_button(&pair, &browser).await;
    assert_eq!(location(&res), "/account");
    assert_eq!(account_username(&pair.downstream, &browser).await, "uma");
}
