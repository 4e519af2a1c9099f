//! Client authentication at the token endpoint, fuzzed through
//! `client_auth::authenticate`: `private_key_jwt` assertions with mutated headers,
//! claims, signatures and bytes (RFC 7523 §3), and Basic / form credentials.
//!
//! The property beyond "no panic, no hang": an assertion authenticates only when every
//! part of it is the valid one. Anything changed — a byte, the algorithm, a claim, the
//! signature — must be refused.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use rsa::{
    pkcs1v15::SigningKey,
    signature::{SignatureEncoding, Signer},
    traits::PublicKeyParts,
};
use serde_json::{Value, json};

use super::*;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[derive(Debug, Clone)]
enum Header {
    Valid,
    NoKid,
    OtherKid,
    AlgNone,
    Hs256,
    Rs512,
    Es256,
    AlgNumber,
    AlgMissing,
    KidNumber,
    Crit,
    EmbeddedJwk,
    NotAnObject,
}

impl Header {
    /// `attacker` is the JWK of a key that is not registered: embedding it must not make
    /// its signatures count.
    fn json(&self, attacker: &Value) -> Value {
        match self {
            Self::Valid => json!({"alg": "RS256", "kid": "k1", "typ": "JWT"}),
            Self::NoKid => json!({"alg": "RS256"}),
            Self::OtherKid => json!({"alg": "RS256", "kid": "k2"}),
            Self::AlgNone => json!({"alg": "none", "kid": "k1"}),
            Self::Hs256 => json!({"alg": "HS256", "kid": "k1"}),
            Self::Rs512 => json!({"alg": "RS512", "kid": "k1"}),
            Self::Es256 => json!({"alg": "ES256", "kid": "k1"}),
            Self::AlgNumber => json!({"alg": 256, "kid": "k1"}),
            Self::AlgMissing => json!({"kid": "k1"}),
            Self::KidNumber => json!({"alg": "RS256", "kid": 1}),
            Self::Crit => json!({"alg": "RS256", "kid": "k1", "crit": ["exp"]}),
            Self::EmbeddedJwk => json!({"alg": "RS256", "kid": "k2", "jwk": attacker}),
            Self::NotAnObject => json!(["RS256"]),
        }
    }

    /// Headers that may pass with the registered key's signature. `kid` is only a hint
    /// (RFC 7515 §4.1.4): absent or not a string, every registered key is tried. `crit`
    /// is not checked by the verifier (noted in the report: RFC 7515 §4.1.11 says an
    /// extension not understood makes the JWS invalid).
    fn acceptable(&self) -> bool {
        matches!(
            self,
            Self::Valid | Self::NoKid | Self::KidNumber | Self::Crit
        )
    }
}

#[derive(Debug, Clone)]
enum Claims {
    Valid,
    AudArray,
    AudIssuer,
    NoIss,
    IssNumber,
    SubOther,
    AudWrong,
    AudMissing,
    ExpPast,
    ExpFar,
    ExpString,
    ExpHuge,
    ExpFloat,
    JtiEmpty,
    JtiLong,
    JtiMissing,
    Deep,
}

impl Claims {
    fn json(&self, client_id: &str, aud: &str, now: i64, jti: &str) -> Value {
        let mut c = json!({
            "iss": client_id, "sub": client_id, "aud": aud,
            "exp": now + 60, "iat": now, "jti": jti,
        });
        let o = c.as_object_mut().unwrap();
        match self {
            Self::Valid => {}
            Self::AudArray => drop(o.insert("aud".into(), json!(["https://x.example", aud]))),
            Self::AudIssuer => drop(o.insert("aud".into(), json!(seeds::IDP))),
            Self::NoIss => drop(o.remove("iss")),
            Self::IssNumber => drop(o.insert("iss".into(), json!(7))),
            Self::SubOther => drop(o.insert("sub".into(), json!("someone-else"))),
            Self::AudWrong => drop(o.insert("aud".into(), json!("https://evil.example/token"))),
            Self::AudMissing => drop(o.remove("aud")),
            Self::ExpPast => drop(o.insert("exp".into(), json!(now - 1))),
            Self::ExpFar => drop(o.insert("exp".into(), json!(now + 100_000))),
            Self::ExpString => drop(o.insert("exp".into(), json!((now + 60).to_string()))),
            Self::ExpHuge => drop(o.insert("exp".into(), json!(u64::MAX))),
            Self::ExpFloat => drop(o.insert("exp".into(), json!(now as f64 + 60.5))),
            Self::JtiEmpty => drop(o.insert("jti".into(), json!(""))),
            Self::JtiLong => drop(o.insert("jti".into(), json!("j".repeat(10_000)))),
            Self::JtiMissing => drop(o.remove("jti")),
            Self::Deep => {
                let mut v = json!(1);
                for _ in 0..100 {
                    v = json!([v]);
                }
                o.insert("x".into(), v);
            }
        }
        c
    }

    fn acceptable(&self) -> bool {
        // A NumericDate may have a fraction (RFC 7519 §2: "non-integer values can be
        // represented"); Python clients send `time.time()` as is (issue 25).
        matches!(
            self,
            Self::Valid | Self::AudArray | Self::AudIssuer | Self::Deep | Self::ExpFloat
        )
    }
}

#[derive(Debug, Clone)]
enum Sig {
    Valid,
    Empty,
    Flip(usize, u8),
    Truncate(usize),
    Random(Vec<u8>),
    OtherKey,
}

#[derive(Debug, Clone)]
struct Case {
    header: Header,
    claims: Claims,
    sig: Sig,
    edits: Option<Vec<mutate::Edit>>,
    with_client_id: bool,
    right_type: bool,
}

fn case() -> impl Strategy<Value = Case> {
    let header = prop_oneof![
        4 => Just(Header::Valid),
        1 => prop::sample::select(vec![
            Header::NoKid, Header::OtherKid, Header::AlgNone, Header::Hs256, Header::Rs512,
            Header::Es256, Header::AlgNumber, Header::AlgMissing, Header::KidNumber,
            Header::Crit, Header::EmbeddedJwk, Header::NotAnObject,
        ]),
    ];
    let claims = prop_oneof![
        4 => Just(Claims::Valid),
        1 => prop::sample::select(vec![
            Claims::AudArray, Claims::AudIssuer, Claims::NoIss, Claims::IssNumber,
            Claims::SubOther, Claims::AudWrong, Claims::AudMissing, Claims::ExpPast,
            Claims::ExpFar, Claims::ExpString, Claims::ExpHuge, Claims::ExpFloat,
            Claims::JtiEmpty, Claims::JtiLong, Claims::JtiMissing, Claims::Deep,
        ]),
    ];
    let sig = prop_oneof![
        4 => Just(Sig::Valid),
        1 => Just(Sig::Empty),
        1 => (any::<usize>(), 0u8..8).prop_map(|(i, b)| Sig::Flip(i, b)),
        1 => any::<usize>().prop_map(Sig::Truncate),
        1 => prop::collection::vec(any::<u8>(), 0..300).prop_map(Sig::Random),
        1 => Just(Sig::OtherKey),
    ];
    let edits = prop::option::weighted(0.4, mutate::edits());
    (
        header,
        claims,
        sig,
        edits,
        any::<bool>(),
        prop::bool::weighted(0.9),
    )
        .prop_map(
            |(header, claims, sig, edits, with_client_id, right_type)| Case {
                header,
                claims,
                sig,
                edits,
                with_client_id,
                right_type,
            },
        )
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn jwk(key: &rsa::RsaPrivateKey, kid: &str) -> Value {
    let public = key.to_public_key();
    json!({
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
        "n": b64(&public.n().to_bytes_be()),
        "e": b64(&public.e().to_bytes_be()),
    })
}

fn sign(key: &rsa::RsaPrivateKey, message: &[u8]) -> Vec<u8> {
    SigningKey::<sha2::Sha256>::new(key.clone())
        .sign(message)
        .to_vec()
}

#[test]
fn client_assertions() {
    let h = Harness::new();
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let other = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let jwks = json!({ "keys": [jwk(&key, "k1")] }).to_string();
    let other_jwk = jwk(&other, "k2");
    let (client_id, _) = h.register(ClientSpec {
        auth_method: Some("private_key_jwt".into()),
        jwks: Some(jwks),
        grant_types: vec!["client_credentials".into()],
        scopes: vec!["profile".into()],
        ..ClientSpec::new("Fuzzed signed client", &[])
    });
    let aud = format!("{}/token", seeds::IDP);
    let req = actix_web::test::TestRequest::post().to_http_request();
    let jti = AtomicU64::new(0);
    let accepted = AtomicUsize::new(0);
    fuzz("client_assertions", case(), |c| {
        let now = h.state.clock.now().timestamp();
        let jti = format!("fuzz-{}", jti.fetch_add(1, Ordering::Relaxed));
        let header = c.header.json(&other_jwk).to_string();
        let claims = c.claims.json(&client_id, &aud, now, &jti).to_string();
        let signed = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
        let valid_sig = sign(&key, signed.as_bytes());
        let sig = match &c.sig {
            Sig::Valid => valid_sig.clone(),
            Sig::Empty => Vec::new(),
            Sig::Flip(i, b) => {
                let mut s = valid_sig.clone();
                let i = i % s.len();
                s[i] ^= 1 << b;
                s
            }
            Sig::Truncate(i) => valid_sig[..i % valid_sig.len()].to_vec(),
            Sig::Random(bytes) => bytes.clone(),
            Sig::OtherKey => sign(&other, signed.as_bytes()),
        };
        let built = format!("{signed}.{}", b64(&sig));
        let assertion = match &c.edits {
            Some(e) => lossy(&apply(built.as_bytes(), e)),
            None => built.clone(),
        };
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        let kind = if c.right_type { JWT_BEARER } else { "urn:x" };
        form.append_pair("client_assertion_type", kind);
        form.append_pair("client_assertion", &assertion);
        if c.with_client_id {
            form.append_pair("client_id", &client_id);
        }
        let acceptable = c.header.acceptable()
            && c.claims.acceptable()
            && matches!(c.sig, Sig::Valid)
            && assertion == built
            && c.right_type;
        match authenticate(&h, &req, form.finish().as_bytes()) {
            Some(true) if !acceptable => Err(format!("accepted: {assertion}")),
            Some(true) => {
                accepted.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            _ => Ok(()),
        }
    });
    // The harness must be able to succeed, or "nothing was accepted" proves nothing.
    assert!(
        cases() < 20 || accepted.load(Ordering::Relaxed) > 0,
        "no valid assertion was accepted: the harness is broken"
    );
}

#[test]
fn client_secrets_basic_and_post() {
    let h = Harness::new();
    let (client_id, secret) = h.register(ClientSpec::new(
        "Fuzzed confidential client",
        &["https://rp.example.org/cb"],
    ));
    let secret = secret.expect("a confidential client has a secret");
    let basic = format!("Basic {}", STANDARD.encode(format!("{client_id}:{secret}")));
    let seeds_ = vec![
        basic.clone().into_bytes(),
        format!("basic {}", STANDARD.encode(format!("{client_id}:"))).into_bytes(),
        format!("Basic {}", STANDARD.encode("a%3Ab:c%zz")).into_bytes(),
    ];
    let bodies = vec![
        format!("grant_type=client_credentials&client_id={client_id}").into_bytes(),
        format!("grant_type=client_credentials&client_id={client_id}&client_secret={secret}")
            .into_bytes(),
    ];
    let strategy = (input(seeds_), input(bodies), any::<bool>());
    fuzz("client_secrets", strategy, |(header, body, send_header)| {
        let mut req = actix_web::test::TestRequest::post();
        if *send_header {
            match actix_web::http::header::HeaderValue::from_bytes(header) {
                Ok(v) => req = req.insert_header(("authorization", v)),
                Err(_) => return Ok(()),
            }
        }
        let _ = authenticate(&h, &req.to_http_request(), body);
        Ok(())
    });
}
