//! What the fuzz targets share: a certificate to verify against, a registered client,
//! and (for client authentication) an application state on a throw-away SQLite file,
//! each made once per process.

use std::sync::{Arc, OnceLock};

use gatehouse::{
    clock::TestClock,
    config::Config,
    oidc::{Params, client_auth},
    startup::{self, AppState},
    store::clients::{self, ClientRow, NewClient},
    web::RequestContext,
};
use openssl::{
    asn1::Asn1Time,
    hash::MessageDigest,
    pkey::PKey,
    rsa::Rsa,
    x509::{X509, X509NameBuilder},
};
use samael::schema::{AuthnRequest, LogoutRequest, LogoutResponse};

/// A self-signed SP signing certificate, DER.
pub fn sp_cert() -> &'static [Vec<u8>] {
    static CERT: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CERT.get_or_init(|| {
        let key = PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("pkey");
        let mut name = X509NameBuilder::new().expect("name");
        name.append_entry_by_text("CN", "fuzz sp").expect("cn");
        let name = name.build();
        let mut b = X509::builder().expect("builder");
        b.set_version(2).expect("version");
        b.set_subject_name(&name).expect("subject");
        b.set_issuer_name(&name).expect("issuer");
        b.set_pubkey(&key).expect("pubkey");
        b.set_not_before(&Asn1Time::days_from_now(0).expect("time"))
            .expect("nb");
        b.set_not_after(&Asn1Time::days_from_now(365).expect("time"))
            .expect("na");
        b.sign(&key, MessageDigest::sha256()).expect("sign");
        vec![b.build().to_der().expect("der")]
    })
}

/// Parses `xml` as every message type the IdP receives.
pub fn parse_every_message(xml: &str) {
    let _ = xml.parse::<AuthnRequest>();
    let _ = xml.parse::<LogoutRequest>();
    let _ = xml.parse::<LogoutResponse>();
}

/// A confidential client allowed the code flow, as a stored row.
pub fn code_client() -> &'static ClientRow {
    static CLIENT: OnceLock<ClientRow> = OnceLock::new();
    CLIENT.get_or_init(|| ClientRow {
        client_id: "gh-fuzz".into(),
        name: "Fuzz RP".into(),
        secret_hash: None,
        redirect_uris: r#"["https://rp.example.org/cb"]"#.into(),
        post_logout_redirect_uris: "[]".into(),
        grant_types: r#"["authorization_code","refresh_token"]"#.into(),
        scopes: r#"["openid","profile","email","offline_access"]"#.into(),
        token_endpoint_auth_method: "client_secret_basic".into(),
        jwks: None,
        backchannel_logout_uri: None,
        id_token_alg: "RS256".into(),
        created_at: chrono::DateTime::UNIX_EPOCH.naive_utc(),
        allowed_orgs: None,
        introspection: false,
        allowed_origins: None,
        require_par: false,
        require_dpop: false,
        fapi2: false,
    })
}

/// A JWKS with one fresh RSA key (its private half is dropped: the fuzzer cannot sign,
/// it reaches the signature check with whatever it makes).
fn jwks() -> String {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let rsa = Rsa::generate(2048).expect("rsa");
    let b64 = |n: &openssl::bn::BigNumRef| URL_SAFE_NO_PAD.encode(n.to_vec());
    format!(
        r#"{{"keys":[{{"kty":"RSA","use":"sig","alg":"RS256","kid":"k1","n":"{}","e":"{}"}}]}}"#,
        b64(rsa.n()),
        b64(rsa.e())
    )
}

struct Harness {
    rt: tokio::runtime::Runtime,
    state: AppState,
    _dir: tempfile::TempDir,
}

/// Builds the server state (migrations, keys) before the first input, so that its
/// seconds of set-up are not read by libFuzzer as a hang of that input.
pub fn warm_up() {
    let _ = harness();
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::TempDir::new().expect("temp dir");
        let mut config = Config::for_tests(dir.path().to_owned());
        config.argon2_memory_kib = 64;
        config.argon2_iterations = 1;
        let state = rt
            .block_on(startup::build_state(config, Arc::new(TestClock::default())))
            .expect("state");
        let client = NewClient {
            client_id: "gh-fuzz".into(),
            name: "Fuzz signed client".into(),
            secret_hash: None,
            redirect_uris: "[]".into(),
            post_logout_redirect_uris: "[]".into(),
            grant_types: r#"["client_credentials"]"#.into(),
            scopes: r#"["profile"]"#.into(),
            token_endpoint_auth_method: "private_key_jwt".into(),
            jwks: Some(jwks()),
            backchannel_logout_uri: None,
            id_token_alg: "RS256".into(),
            created_at: chrono::DateTime::UNIX_EPOCH.naive_utc(),
            allowed_orgs: None,
            introspection: false,
            allowed_origins: None,
            require_par: false,
            require_dpop: false,
            fapi2: false,
        };
        rt.block_on(state.store.run(move |c| clients::insert(c, &client)))
            .expect("client");
        Harness {
            rt,
            state,
            _dir: dir,
        }
    })
}

/// Client authentication as the token endpoint runs it, with `assertion` as a
/// `private_key_jwt` client assertion and/or `authorization` as the header.
pub fn authenticate(assertion: Option<&str>, authorization: Option<&[u8]>) {
    let h = harness();
    let mut form = String::from("grant_type=client_credentials");
    if let Some(a) = assertion {
        form.push_str(
            "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=",
        );
        form.extend(url_encode(a));
    }
    let Ok(params) = Params::parse(form.as_bytes()) else {
        return;
    };
    let mut req = actix_web::test::TestRequest::post();
    if let Some(value) = authorization {
        match actix_web::http::header::HeaderValue::from_bytes(value) {
            Ok(v) => req = req.insert_header(("authorization", v)),
            Err(_) => return,
        }
    }
    let ctx = RequestContext {
        request_id: "fuzz".into(),
        client_ip: None,
        user_agent: None,
    };
    let req = req.to_http_request();
    let _ =
        h.rt.block_on(client_auth::authenticate(&h.state, &req, &ctx, &params));
}

fn url_encode(s: &str) -> impl Iterator<Item = char> + '_ {
    s.bytes().flat_map(|b| {
        let keep = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~');
        let text = if keep {
            (b as char).to_string()
        } else {
            format!("%{b:02X}")
        };
        text.chars().collect::<Vec<_>>()
    })
}
