//! Fuzzing of every parser that takes outside bytes (issue 20): SAML HTTP-Redirect and
//! HTTP-POST decoding and parsing (and the XML gate before them), the OIDC parameter
//! parsers and `/authorize` validation, client authentication at the token endpoint
//! (`private_key_jwt` assertions, Basic credentials), SP metadata import, and the
//! configuration (TOML file and environment).
//!
//! Property-based, so it runs on the stable toolchain inside `cargo test`: each target
//! gets random bytes and structure-aware mutations of valid messages (`fuzz/seeds.rs`,
//! `fuzz/mutate.rs`), calls the library's parsing entry points directly, and asserts no
//! panic, a bound on the time one input takes (`PER_INPUT`: a hang detector, not a
//! benchmark) and, where there is one, a security property (a mutated assertion never
//! authenticates, a secret never reaches `config check`'s output).
//!
//! Cases per target: `GATEHOUSE_FUZZ_CASES` (default 1000: well under a minute in all
//! in a debug build on 2 cores). A long run:
//!   GATEHOUSE_FUZZ_CASES=100000 cargo test --release --test fuzz -- --test-threads 1

#[path = "fuzz/mutate.rs"]
mod mutate;
#[path = "fuzz/seeds.rs"]
mod seeds;

use std::{
    fmt::Debug,
    io::Write,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use gatehouse::{
    clock::TestClock,
    config::Config,
    oidc::{self, Params, authorize, client_auth, clients::ClientSpec},
    saml::{
        providers::{self, ImportSettings},
        request::{self, Binding},
        xml::{self, MAX_MESSAGE_BYTES},
    },
    startup::{self, AppState},
    web::RequestContext,
};
use proptest::{
    prelude::*,
    test_runner::{Config as Runner, TestCaseError, TestRunner},
};
use samael::schema::{AuthnRequest, LogoutRequest, LogoutResponse};

use crate::{
    mutate::{apply, edits, input},
    seeds::KeyCert,
};

/// One input taking longer than this is reported as a hang.
const PER_INPUT: Duration = Duration::from_secs(1);

fn cases() -> u32 {
    std::env::var("GATEHOUSE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

/// Runs `check` on `cases()` inputs from `strategy`; a panic, an `Err` or a slow input
/// fails the test with the (shrunk) input that caused it.
fn fuzz<S>(target: &str, strategy: S, check: impl Fn(&S::Value) -> Result<(), String>)
where
    S: Strategy,
    S::Value: Debug,
{
    let cases = cases();
    let mut runner = TestRunner::new(Runner {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..Runner::default()
    });
    let started = Instant::now();
    let result = runner.run(&strategy, |value| {
        let t = Instant::now();
        let outcome = check(&value);
        let took = t.elapsed();
        outcome.map_err(TestCaseError::fail)?;
        if took > PER_INPUT {
            return Err(TestCaseError::fail(format!("one input took {took:?}")));
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("fuzz target {target}: {e}");
    }
    // Straight to stderr (not captured by libtest), so CI logs show what ran.
    let _ = writeln!(
        std::io::stderr(),
        "fuzz {target}: {cases} cases, no panic, no hang ({:.1}s)",
        started.elapsed().as_secs_f64()
    );
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What every decoded message must be, whatever came in: bounded, DTD-free, and parsed
/// as each message type without a panic.
fn decoded_message_holds(inbound: &request::Inbound) -> Result<(), String> {
    if inbound.xml.len() > MAX_MESSAGE_BYTES {
        return Err(format!("decoded {} bytes", inbound.xml.len()));
    }
    if inbound.xml.to_ascii_uppercase().contains("<!DOCTYPE") {
        return Err("a DTD passed the gate".into());
    }
    if inbound
        .relay_state
        .as_ref()
        .is_some_and(|r| r.len() > request::MAX_RELAY_STATE)
    {
        return Err("an oversize RelayState passed".into());
    }
    let _ = inbound.xml.parse::<AuthnRequest>();
    let _ = inbound.xml.parse::<LogoutRequest>();
    let _ = inbound.xml.parse::<LogoutResponse>();
    let _ = gatehouse::saml::dsig::inspect(&inbound.xml);
    Ok(())
}

#[test]
fn saml_redirect_binding() {
    let sp = Arc::new(KeyCert::new("sp signing"));
    let certs = vec![sp.der()];
    let messages = vec![
        seeds::authn_request("_a1").into_bytes(),
        seeds::logout_request("_l1").into_bytes(),
        seeds::logout_response("_r1").into_bytes(),
    ];
    let mut queries = Vec::new();
    for m in &messages {
        queries.push(seeds::redirect_query("SAMLRequest", m, None, None).into_bytes());
        queries.push(
            seeds::redirect_query("SAMLRequest", m, Some("deep/link?x=1"), Some(&sp)).into_bytes(),
        );
        queries.push(seeds::redirect_query("SAMLResponse", m, Some("r"), Some(&sp)).into_bytes());
    }
    // Mutated XML, correctly encoded and signed (reaches the XML parsers), and mutated
    // queries (reach the binding's decoding and the query signature).
    let key = sp.clone();
    let inside =
        (prop::sample::select(messages), edits(), any::<bool>()).prop_map(move |(m, e, signed)| {
            let xml = apply(&m, &e);
            let key = signed.then_some(key.as_ref());
            seeds::redirect_query("SAMLRequest", &xml, Some("r"), key).into_bytes()
        });
    let strategy = prop_oneof![input(queries), inside];
    fuzz("saml_redirect_binding", strategy, |q| {
        let q = lossy(q);
        for param in ["SAMLRequest", "SAMLResponse"] {
            if let Ok(inbound) = request::decode(&q, param, Binding::Redirect) {
                decoded_message_holds(&inbound)?;
            }
            let _ = request::verify_query_signature(&q, param, &certs);
        }
        Ok(())
    });
}

#[test]
fn saml_post_binding() {
    let sp = KeyCert::new("sp signing");
    let certs = vec![sp.der()];
    let signed = vec![
        sp.sign(&seeds::authn_request("_a1"), "_a1").into_bytes(),
        sp.sign(&seeds::logout_request("_l1"), "_l1").into_bytes(),
        seeds::authn_request("_a2").into_bytes(),
    ];
    let bodies: Vec<Vec<u8>> = signed
        .iter()
        .map(|x| seeds::post_body("SAMLRequest", x, Some("r")).into_bytes())
        .collect();
    // Mutations of signed XML reach xmlsec's verification with nearly valid input.
    let inside = (prop::sample::select(signed), edits())
        .prop_map(|(x, e)| seeds::post_body("SAMLRequest", &apply(&x, &e), None).into_bytes());
    let strategy = prop_oneof![1 => input(bodies), 2 => inside];
    // Verification is async (it runs on the blocking pool with a deadline).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    fuzz("saml_post_binding", strategy, |body| {
        let body = lossy(body);
        let Ok(inbound) = request::decode(&body, "SAMLRequest", Binding::Post) else {
            return Ok(());
        };
        decoded_message_holds(&inbound)?;
        let signed = gatehouse::saml::dsig::inspect(&inbound.xml).is_ok_and(|shape| shape.signed);
        if signed
            && let Ok(element) = runtime.block_on(request::verified_element(&inbound.xml, &certs))
        {
            let _ = element.parse::<AuthnRequest>();
            let _ = element.parse::<LogoutRequest>();
        }
        Ok(())
    });
}

#[test]
fn saml_xml_gate() {
    let xml_seeds = vec![
        seeds::authn_request("_a1").into_bytes(),
        seeds::logout_request("_l1").into_bytes(),
    ];
    let deflated: Vec<Vec<u8>> = xml_seeds.iter().map(|x| xml::deflate(x)).collect();
    let strategy = prop_oneof![input(xml_seeds), input(deflated)];
    fuzz("saml_xml_gate", strategy, |bytes| {
        let _ = xml::check_untrusted(&lossy(bytes), MAX_MESSAGE_BYTES);
        if let Ok(text) = xml::inflate(bytes, 4096)
            && text.len() > 4096
        {
            return Err(format!("inflated past the bound: {}", text.len()));
        }
        Ok(())
    });
}

/// An application state on a fresh SQLite file, for the entry points that need one.
struct Harness {
    rt: tokio::runtime::Runtime,
    state: AppState,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::TempDir::new().unwrap();
        let mut config = Config::for_tests(dir.path().to_owned());
        config.argon2_memory_kib = 64;
        config.argon2_iterations = 1;
        let state = rt
            .block_on(startup::build_state(config, Arc::new(TestClock::default())))
            .expect("state builds");
        Self {
            rt,
            state,
            _dir: dir,
        }
    }

    fn register(&self, spec: ClientSpec) -> (String, Option<String>) {
        use secrecy::ExposeSecret;
        let reg = self
            .rt
            .block_on(oidc::clients::register(
                &self.state.store,
                spec,
                chrono::Utc::now(),
            ))
            .expect("client registered");
        let secret = reg.client_secret.map(|s| s.expose_secret().to_owned());
        (reg.client_id, secret)
    }
}

fn query_pairs() -> impl Strategy<Value = Vec<u8>> {
    let names = prop::sample::select(vec![
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "nonce",
        "prompt",
        "max_age",
        "acr_values",
        "login_hint",
        "code_challenge",
        "code_challenge_method",
        "response_mode",
        "request",
        "request_uri",
        "grant_type",
        "code",
        "code_verifier",
        "refresh_token",
        "client_secret",
        "client_assertion",
        "client_assertion_type",
    ]);
    let value = prop_oneof![
        prop::sample::select(mutate::TOKENS).prop_map(str::to_owned),
        "[ -~]{0,64}",
        ".{0,32}",
        Just("x".repeat(5000)),
    ];
    prop::collection::vec((names, value), 0..80).prop_map(|pairs| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            q.append_pair(k, &v);
        }
        q.finish().into_bytes()
    })
}

#[test]
fn oidc_parameters_and_authorize_validation() {
    let h = Harness::new();
    let (client_id, _) = h.register(ClientSpec {
        scopes: vec!["openid".into(), "profile".into(), "email".into()],
        ..ClientSpec::new("Fuzzed RP", &["https://rp.example.org/cb"])
    });
    let (public_id, _) = h.register(ClientSpec {
        public: true,
        ..ClientSpec::new("Fuzzed SPA", &["https://rp.example.org/cb"])
    });
    let find = |id: String| {
        h.rt.block_on(
            h.state
                .store
                .run(move |c| gatehouse::store::clients::find(c, &id)),
        )
        .unwrap()
        .unwrap()
    };
    let rows = [find(client_id.clone()), find(public_id)];
    let queries: Vec<Vec<u8>> = seeds::authorize_queries(&client_id)
        .into_iter()
        .map(String::into_bytes)
        .collect();
    let strategy = prop_oneof![input(queries), query_pairs()];
    fuzz("oidc_parameters", strategy, |raw| {
        let form = actix_web::test::TestRequest::post()
            .insert_header((
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ))
            .to_http_request();
        let _ = oidc::form_params(&form, raw);
        let Ok(params) = Params::parse(raw) else {
            return Ok(());
        };
        if let Some(scope) = params.get("scope") {
            let _ = oidc::parse_scope(scope);
        }
        for client in &rows {
            if authorize::validate(&params, client).is_ok() {
                // What /authorize acts on must be unambiguous (RFC 6749 §3.1).
                if params.clone().single().is_err() {
                    return Err("a request with a repeated parameter was accepted".into());
                }
                if params.get("response_type") != Some("code") {
                    return Err("a response_type other than code was accepted".into());
                }
            }
        }
        Ok(())
    });
}

#[path = "fuzz/client_auth.rs"]
mod client_auth_targets;

#[test]
fn sp_metadata_import() {
    let signing = KeyCert::new("sp signing");
    let encryption = KeyCert::new("sp encryption");
    let documents = vec![seeds::metadata(&signing, &encryption).into_bytes()];
    let settings = ImportSettings {
        attributes: vec!["email=mail".into(), "name=".into()],
        ..ImportSettings::default()
    };
    fuzz("sp_metadata_import", input(documents), |bytes| {
        let Ok(sp) = providers::from_metadata(&lossy(bytes), &settings) else {
            return Ok(());
        };
        if sp.entity_id.is_empty() {
            return Err("imported with an empty entityID".into());
        }
        for e in sp.acs.iter().chain(sp.slo.iter()) {
            let scheme = url::Url::parse(&e.location).map(|u| u.scheme().to_owned());
            if !matches!(scheme.as_deref(), Ok("https" | "http")) {
                return Err(format!("endpoint {:?} was imported", e.location));
            }
        }
        Ok(())
    });
}

/// The secrets of a parsed configuration, each present once in the text it came from.
fn secrets_in(config: &Config, text: &str) -> Vec<String> {
    use secrecy::ExposeSecret;
    let mut out: Vec<String> = [
        &config.master_key,
        &config.webhook_secret,
        &config.metrics_token,
    ]
    .into_iter()
    .flatten()
    .map(|s| s.expose_secret().to_owned())
    .collect();
    for url in [&config.database_url, &config.redis_url, &config.smtp_url]
        .into_iter()
        .flatten()
    {
        out.extend(url.password().map(str::to_owned));
    }
    out.retain(|s| s.len() >= 12 && text.matches(s.as_str()).count() == 1);
    out
}

/// Well-formed TOML with real setting names and values of every shape, so inputs get
/// past the TOML syntax into the settings' own parsing and checks.
fn toml_settings() -> impl Strategy<Value = Vec<u8>> {
    let keys = seeds::CONFIG_TOML
        .lines()
        .filter_map(|l| l.split_once(" = ").map(|(k, _)| k.to_owned()))
        .chain(["tls_cert", "tls_key", "master_key_file", "nope"].map(str::to_owned))
        .collect::<Vec<_>>();
    let value = prop_oneof![
        ".{0,30}".prop_map(|s| format!("{s:?}")),
        prop::sample::select(mutate::TOKENS).prop_map(|s| format!("{s:?}")),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        prop::collection::vec("[0-9a-f:./]{0,20}", 0..4).prop_map(|v| format!("{v:?}")),
        Just("127.0.0.1:0".to_owned()).prop_map(|s| format!("{s:?}")),
        Just("{ a = 1 }".to_owned()),
    ];
    prop::collection::vec((prop::sample::select(keys), value), 0..12).prop_map(|pairs| {
        pairs
            .iter()
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect::<String>()
            .into_bytes()
    })
}

#[test]
fn configuration_file_and_environment() {
    let names = prop::sample::select(vec![
        "GATEHOUSE_BIND",
        "GATEHOUSE_METRICS_BIND",
        "GATEHOUSE_METRICS_TOKEN",
        "GATEHOUSE_ISSUER",
        "GATEHOUSE_DATABASE_URL",
        "GATEHOUSE_TRUSTED_PROXIES",
        "GATEHOUSE_IP_ALLOW_LIST",
        "GATEHOUSE_LOG_LEVEL",
        "GATEHOUSE_LOG_FORMAT",
        "GATEHOUSE_HASHING_WORKERS",
        "GATEHOUSE_MASTER_KEY",
        "GATEHOUSE_SMTP_URL",
        "GATEHOUSE_MAIL_FROM",
        "GATEHOUSE_TLS",
        "GATEHOUSE_ACCESS_TOKEN_SECS",
        "GATEHOUSE_",
        "GATEHOUSE_TEST_X",
        "GATEHOUSE_BINDD",
    ]);
    let env = prop::collection::vec((names, ".{0,40}"), 0..6);
    let toml = prop_oneof![
        input(vec![seeds::CONFIG_TOML.as_bytes().to_vec()]),
        toml_settings(),
    ];
    fuzz("configuration", (toml, env), |(bytes, env)| {
        let text = lossy(bytes);
        let Ok(mut config) = Config::from_toml_str(&text, Path::new("fuzz.toml")) else {
            return Ok(());
        };
        let _ = config.validate();
        let shown = config.redacted_toml();
        if let Some(secret) = secrets_in(&config, &text)
            .iter()
            .find(|s| shown.contains(s.as_str()))
        {
            return Err(format!("config check shows the secret {secret:?}"));
        }
        let pairs = env.iter().map(|(k, v)| (k.to_string(), v.clone()));
        if config.apply_env(pairs).is_ok() {
            let _ = config.validate();
        }
        Ok(())
    });
}

/// Shared by the targets in `fuzz/client_auth.rs`.
fn context() -> RequestContext {
    RequestContext {
        request_id: "fuzz".into(),
        client_ip: None,
        user_agent: None,
    }
}

fn authenticate(h: &Harness, req: &actix_web::HttpRequest, body: &[u8]) -> Option<bool> {
    let params = Params::parse(body).ok()?;
    let ctx = context();
    Some(
        h.rt.block_on(client_auth::authenticate(&h.state, req, &ctx, &params))
            .is_ok(),
    )
}

/// Writes the seeds above as the starting corpus of the cargo-fuzz targets
/// (`fuzz/seeds/<target>/`, see fuzz/README.md):
///   cargo test --test fuzz -- --ignored write_fuzz_seeds
#[test]
#[ignore = "a tool, not a check: writes fuzz/seeds/ for cargo-fuzz"]
fn write_fuzz_seeds() {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    let sp = KeyCert::new("seed sp");
    for (name, xml) in [
        ("authn", seeds::authn_request("_a1")),
        ("logout", seeds::logout_request("_l1")),
        ("logout-response", seeds::logout_response("_r1")),
    ] {
        let param = if name == "logout-response" {
            "SAMLResponse"
        } else {
            "SAMLRequest"
        };
        let q = seeds::redirect_query(param, xml.as_bytes(), Some("deep/link"), Some(&sp));
        write("saml_redirect", name, q.as_bytes());
        let plain = seeds::redirect_query(param, xml.as_bytes(), None, None);
        write(
            "saml_redirect",
            &format!("{name}-unsigned"),
            plain.as_bytes(),
        );
        let id = if name == "authn" { "_a1" } else { "_l1" };
        if name != "logout-response" {
            let body = seeds::post_body("SAMLRequest", sp.sign(&xml, id).as_bytes(), Some("r"));
            write("saml_post", name, body.as_bytes());
        }
    }
    for (i, q) in seeds::authorize_queries("gh-fuzz").iter().enumerate() {
        write("oidc_params", &format!("authorize-{i}"), q.as_bytes());
    }
    write(
        "oidc_params",
        "token",
        b"grant_type=authorization_code&code=abc&redirect_uri=https%3A%2F%2Frp.example.org%2Fcb&code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
    );
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"k1"}"#);
    let claims = URL_SAFE_NO_PAD.encode(
        r#"{"iss":"gh-fuzz","sub":"gh-fuzz","aud":"https://localhost:8443/token","exp":4102444800,"iat":1765000000,"jti":"j-1"}"#,
    );
    let mut signer =
        openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &sp.key).unwrap();
    signer
        .update(format!("{header}.{claims}").as_bytes())
        .unwrap();
    let sig = URL_SAFE_NO_PAD.encode(signer.sign_to_vec().unwrap());
    write(
        "client_assertion",
        "jwt",
        format!("{header}.{claims}.{sig}").as_bytes(),
    );
    let basic = format!(
        "\0Basic {}",
        base64::engine::general_purpose::STANDARD.encode("gh-fuzz:s3cret")
    );
    write("client_assertion", "basic", basic.as_bytes());
    let encryption = KeyCert::new("seed sp encryption");
    write(
        "sp_metadata",
        "sp",
        seeds::metadata(&sp, &encryption).as_bytes(),
    );
    write("config", "operator", seeds::CONFIG_TOML.as_bytes());
    let with_env = format!(
        "{}\n%%\nGATEHOUSE_BIND=127.0.0.1:9443\nGATEHOUSE_LOG_LEVEL=debug\n",
        seeds::CONFIG_TOML
    );
    write("config", "operator-env", with_env.as_bytes());
}

// Passkeys (issue 29): the browser's answers to WebAuthn challenges.

#[path = "api/passkey/authenticator.rs"]
#[allow(dead_code)]
mod authenticator;

/// Registration and sign-in answers, mutated, against the ceremonies' real state: no
/// panic, no hang, and no answer whose signed parts (authenticator data, client data,
/// signature) differ from an honest one ever signs in.
#[test]
fn passkey_answers() {
    use gatehouse::{
        auth::passkey::{RelyingParty, ceremony},
        domain::PasskeyPolicy,
    };
    use webauthn_rs::prelude::{PublicKeyCredential, Uuid};

    let origin = "https://login.example.org";
    let rp = RelyingParty::for_issuer(&url::Url::parse(origin).unwrap());
    let webauthn = rp.get().unwrap();
    let browser = authenticator::Client {
        origin: origin.into(),
        rp_id: "login.example.org".into(),
    };
    let handle = Uuid::new_v4();
    let policy = PasskeyPolicy::default();
    let (options, registration) =
        ceremony::begin_registration(webauthn, handle, "vera", "Vera", vec![], &policy).unwrap();
    let mut key = authenticator::SoftKey::new();
    let created = key.create(&options, &browser).to_string();
    let passkey = match ceremony::finish_registration(webauthn, &registration, &created) {
        Ok(c) => c.passkey,
        Err(why) => panic!("the honest registration is refused: {why:?}"),
    };
    let (options, discoverable) = ceremony::begin_discoverable(webauthn).unwrap();
    let by_name = key.get(&options, &browser).to_string();
    let (options, for_user) =
        ceremony::begin_for_user(webauthn, "u1", std::slice::from_ref(&passkey)).unwrap();
    let as_factor = key.get(&options, &browser).to_string();
    let honest: Vec<(Vec<u8>, PublicKeyCredential)> =
        [(&discoverable, &by_name), (&for_user, &as_factor)]
            .into_iter()
            .map(|(state, answer)| {
                let parsed = ceremony::parse_assertion(answer).expect("an honest answer parses");
                let signed_in =
                    ceremony::finish_assertion(webauthn, state, &parsed, &passkey, "u1", handle);
                assert!(signed_in.is_some(), "the honest answer signs in");
                (state.clone(), parsed)
            })
            .collect();
    let signed = |a: &PublicKeyCredential| {
        (
            a.response.authenticator_data.as_slice().to_vec(),
            a.response.client_data_json.as_slice().to_vec(),
            a.response.signature.as_slice().to_vec(),
        )
    };
    let seeds = vec![
        created.into_bytes(),
        by_name.into_bytes(),
        as_factor.into_bytes(),
    ];
    fuzz("passkey_answers", input(seeds), |raw| {
        let text = lossy(raw);
        let _ = ceremony::finish_registration(webauthn, &registration, &text);
        let Some(answer) = ceremony::parse_assertion(&text) else {
            return Ok(());
        };
        for (state, seed) in &honest {
            let result =
                ceremony::finish_assertion(webauthn, state, &answer, &passkey, "u1", handle);
            if result.is_some() && signed(&answer) != signed(seed) {
                return Err("a changed answer signed in".into());
            }
        }
        Ok(())
    });
}

// SMART on FHIR (issue 30): the scope grammar.

/// Any text as a SMART scope: no panic, and a clinical scope's normalised spellings
/// read back as the same scope.
#[test]
fn smart_scopes() {
    use gatehouse::domain::SmartScope;
    let seeds: Vec<Vec<u8>> = [
        "patient/Observation.rs",
        "user/*.cruds",
        "system/Patient.r",
        "patient/*.read",
        "user/Observation.write",
        "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory&code=1234",
        "launch/patient",
        "fhirUser",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    fuzz("smart_scopes", input(seeds), |raw| {
        let text = lossy(raw);
        let Ok(scope) = SmartScope::parse(&text) else {
            return Ok(());
        };
        let again = SmartScope::parse(&scope.spelling())
            .map_err(|e| format!("{text:?} spelled as {:?}: {e}", scope.spelling()))?;
        if again != scope {
            return Err(format!("{text:?} does not read back as itself"));
        }
        if let SmartScope::Clinical(c) = &scope {
            match SmartScope::parse(&c.to_v2()) {
                Ok(SmartScope::Clinical(v2)) if v2.permissions == c.permissions => {}
                other => return Err(format!("{text:?} in v2 reads as {other:?}")),
            }
        }
        Ok(())
    });
}
