//! Whole sign-in flows under load (issue 32). Run with `cargo bench --bench signin_flows`.
//!
//! Fresh browsers (no session, no connection: a new TLS handshake each) run complete
//! flows against the real HTTPS server, at the default argon2 parameters, lockout and
//! audit on:
//!
//! - OIDC: `/authorize` (PKCE) → the sign-in page → the password → the code → `/token`
//!   → the ID token checked against `/jwks` (signature, issuer, audience, nonce);
//! - SAML: an SP-initiated HTTP-Redirect AuthnRequest → the sign-in page → the password
//!   → the POST-binding Response page.
//!
//! Each kind runs for `SECONDS` with `CONCURRENCY` browsers at a time, one of `USERS`
//! accounts each, and prints flows per second against raw argon2id verifications per
//! second (the bound: one verification per flow), and p50/p99 per step. The load
//! generator shares the machine with the server, so the rate is a lower bound.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use chrono::{SecondsFormat, Utc};
use gatehouse::{
    auth::account::{NewAccount, create_account},
    domain::{Email, OrgName, Password, Role, Username},
    oidc::clients::{ClientSpec, register},
    saml::providers::{self, ImportSettings},
    startup::AppState,
};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

mod common;
#[path = "common/hashing.rs"]
mod hashing;

use common::PASSWORD;
use hashing::{percentile, raw_verifications_per_second};

const SECONDS: u64 = 20;
const CONCURRENCY: usize = 8;
const USERS: usize = 32;
const REDIRECT: &str = "https://rp.example.org/callback";
const ACS: &str = "https://sp.example.org/acs";
const SP: &str = "https://sp.example.org/metadata";

/// What a flow needs to know of the server.
struct Target {
    base: String,
    client_id: String,
    client_secret: String,
    jwks: jsonwebtoken::jwk::JwkSet,
}

/// How long each step of each flow took, by step.
type Steps = BTreeMap<&'static str, Vec<Duration>>;

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks benchmarks to list themselves
    }
    println!("== raw argon2id (defaults) on all cores");
    let raw = raw_verifications_per_second(8);
    println!("raw verifications/s: {raw:.1}");

    let dir = tempfile::tempdir().unwrap();
    let (state, base) = common::serve(common::config(dir.path()), None).await;
    create_users(&state).await;
    let web = register(
        &state.store,
        ClientSpec::new("Bench web", &[REDIRECT]),
        Utc::now(),
    )
    .await
    .unwrap();
    providers::import(
        &state.store,
        &sp_metadata(),
        &ImportSettings::default(),
        Utc::now(),
    )
    .await
    .unwrap();
    let jwks = browser()
        .get(format!("{base}/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let target = Arc::new(Target {
        base,
        client_id: web.client_id,
        client_secret: web
            .client_secret
            .as_ref()
            .unwrap()
            .expose_secret()
            .to_owned(),
        jwks,
    });

    for kind in [Kind::Oidc, Kind::Saml] {
        println!(
            "\n== {}: fresh browsers, {CONCURRENCY} at a time, {SECONDS} s",
            kind.name()
        );
        let (flows, failed, elapsed, mut steps) = run(kind, &target).await;
        let rate = flows as f64 / elapsed;
        println!(
            "flows/s: {rate:.1} ({:.0} % of raw argon2id); failed: {failed}",
            100.0 * rate / raw
        );
        println!("{:<16} {:>9} {:>9}", "step", "p50 ms", "p99 ms");
        for (step, took) in &mut steps {
            took.sort();
            println!(
                "{step:<16} {:>9.2} {:>9.2}",
                percentile(took, 0.5).as_secs_f64() * 1000.0,
                percentile(took, 0.99).as_secs_f64() * 1000.0
            );
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Oidc,
    Saml,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Oidc => "OIDC code flow",
            Kind::Saml => "SAML SP-initiated SSO",
        }
    }
}

/// `CONCURRENCY` workers running flows of `kind` back to back for `SECONDS`: the flows
/// completed, those failed, the seconds taken and the steps' times.
async fn run(kind: Kind, target: &Arc<Target>) -> (u64, u64, f64, Steps) {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(SECONDS);
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|w| {
            let target = target.clone();
            tokio::spawn(async move {
                let (mut done, mut failed, mut steps) = (0u64, 0u64, Steps::new());
                let mut n = w;
                while Instant::now() < deadline {
                    let user = format!("user{}", n % USERS);
                    n += CONCURRENCY;
                    let ok = match kind {
                        Kind::Oidc => oidc_flow(&target, &user, &mut steps).await,
                        Kind::Saml => saml_flow(&target, &user, &mut steps).await,
                    };
                    match ok {
                        Ok(()) => done += 1,
                        Err(why) => {
                            failed += 1;
                            if failed <= 3 {
                                eprintln!("a flow failed: {why}");
                            }
                        }
                    }
                }
                (done, failed, steps)
            })
        })
        .collect();
    let (mut done, mut failed, mut steps) = (0, 0, Steps::new());
    for w in workers {
        let (d, f, s) = w.await.unwrap();
        done += d;
        failed += f;
        for (step, took) in s {
            steps.entry(step).or_default().extend(took);
        }
    }
    (done, failed, started.elapsed().as_secs_f64(), steps)
}

/// A new browser: no cookies, no open connection.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Times one step into `steps`.
async fn step<T>(
    steps: &mut Steps,
    name: &'static str,
    work: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    let started = Instant::now();
    let out = work.await?;
    steps.entry(name).or_default().push(started.elapsed());
    Ok(out)
}

async fn get(browser: &reqwest::Client, url: String) -> Result<reqwest::Response, String> {
    browser.get(url).send().await.map_err(|e| e.to_string())
}

fn location(res: &reqwest::Response) -> Result<String, String> {
    res.headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| format!("{} without a Location", res.status()))
}

fn hidden(html: &str, name: &str) -> Result<String, String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .ok_or_else(|| format!("no {name} in the page"))?
        + marker.len();
    let end = html[start..].find('"').ok_or("an unterminated value")?;
    Ok(html[start..start + end].to_owned())
}

/// The sign-in page the server sent the browser to (`location`), then the password:
/// the page the server answers the password with.
async fn sign_in(
    browser: &reqwest::Client,
    base: &str,
    location: &str,
    user: &str,
    steps: &mut Steps,
) -> Result<String, String> {
    let url = if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location.to_owned()
    };
    let page = step(steps, "sign-in page", async {
        let res = get(browser, url).await?;
        res.text().await.map_err(|e| e.to_string())
    })
    .await?;
    let (tx, csrf) = (hidden(&page, "tx")?, hidden(&page, "csrf")?);
    step(steps, "password", async {
        let res = browser
            .post(format!("{base}/login"))
            .header("Origin", base)
            .form(&[
                ("tx", tx.as_str()),
                ("csrf", &csrf),
                ("username", user),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !res.status().is_success() {
            return Err(format!("the password got {}", res.status()));
        }
        res.text().await.map_err(|e| e.to_string())
    })
    .await
}

async fn oidc_flow(target: &Target, user: &str, steps: &mut Steps) -> Result<(), String> {
    let browser = browser();
    let base = &target.base;
    let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let nonce = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
    let authorize = format!(
        "{base}/authorize?client_id={}&redirect_uri={}&response_type=code&scope=openid\
         &state=s&nonce={nonce}&code_challenge={challenge}&code_challenge_method=S256",
        target.client_id,
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    );
    let to_sign_in = step(steps, "authorize", async {
        location(&get(&browser, authorize).await?)
    })
    .await?;
    let page = sign_in(&browser, base, &to_sign_in, user, steps).await?;
    let start = page
        .find("id=\"continue\" href=\"")
        .ok_or("no way back to the client")?
        + 20;
    let back =
        page[start..start + page[start..].find('"').ok_or("unterminated")?].replace("&amp;", "&");
    let code = url::Url::parse(&back)
        .map_err(|e| e.to_string())?
        .query_pairs()
        .find(|(k, _)| k == "code")
        .ok_or("no code")?
        .1
        .into_owned();
    let tokens: serde_json::Value = step(steps, "token", async {
        browser
            .post(format!("{base}/token"))
            .basic_auth(&target.client_id, Some(&target.client_secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &verifier),
            ])
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())
    })
    .await?;
    let id_token = tokens["id_token"].as_str().ok_or("no ID token")?;
    step(steps, "ID token check", async {
        check_id_token(target, id_token, &nonce)
    })
    .await
}

/// The ID token's signature against the published key its `kid` names, its issuer,
/// audience, expiry and nonce.
fn check_id_token(target: &Target, token: &str, nonce: &str) -> Result<(), String> {
    use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
    let header = decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let jwk = target.jwks.find(&kid).ok_or("an unknown kid")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[&target.client_id]);
    validation.set_issuer(&[target.base.as_str()]);
    let claims = decode::<serde_json::Value>(token, &key, &validation)
        .map_err(|e| e.to_string())?
        .claims;
    (claims["nonce"] == nonce)
        .then_some(())
        .ok_or_else(|| "the nonce differs".into())
}

async fn saml_flow(target: &Target, user: &str, steps: &mut Steps) -> Result<(), String> {
    let browser = browser();
    let base = &target.base;
    let request = format!("{base}/saml/sso?{}", redirect_query(base));
    let to_sign_in = step(steps, "AuthnRequest", async {
        location(&get(&browser, request).await?)
    })
    .await?;
    let page = sign_in(&browser, base, &to_sign_in, user, steps).await?;
    let response = hidden(&page, "SAMLResponse")?;
    let xml = STANDARD.decode(response).map_err(|e| e.to_string())?;
    let xml = String::from_utf8(xml).map_err(|e| e.to_string())?;
    (xml.contains("urn:oasis:names:tc:SAML:2.0:status:Success") && xml.contains("SignatureValue"))
        .then_some(())
        .ok_or_else(|| "the Response is not a signed success".into())
}

fn redirect_query(base: &str) -> String {
    let xml = format!(
        r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_{}" Version="2.0" IssueInstant="{}" Destination="{base}/saml/sso" AssertionConsumerServiceURL="{ACS}"><saml:Issuer>{SP}</saml:Issuer></samlp:AuthnRequest>"#,
        uuid::Uuid::new_v4().simple(),
        Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
    );
    let deflated = gatehouse::saml::xml::deflate(xml.as_bytes());
    format!(
        "SAMLRequest={}",
        url::form_urlencoded::byte_serialize(STANDARD.encode(deflated).as_bytes())
            .collect::<String>()
    )
}

fn sp_metadata() -> String {
    format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{SP}"><md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:AssertionConsumerService Binding="{}" Location="{ACS}" index="0"/></md:SPSSODescriptor></md:EntityDescriptor>"#,
        providers::BINDING_POST
    )
}

/// `USERS` accounts, `user0`…, with the benchmark's password.
async fn create_users(state: &AppState) {
    for i in 0..USERS {
        create_account(
            state,
            NewAccount {
                org: OrgName::parse("default").unwrap(),
                username: Username::parse(&format!("user{i}")).unwrap(),
                email: Email::parse(&format!("user{i}@example.org")).unwrap(),
                display_name: None,
                role: Role::User,
                password: Password::parse(PASSWORD.into()).unwrap(),
                must_change_password: false,
            },
        )
        .await
        .unwrap();
    }
}
