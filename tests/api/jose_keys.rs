//! A client's signing keys, as a relying party holds them: the private half to sign JWTs
//! (client assertions, request objects) with `jsonwebtoken`, the public half as the JWKS
//! it registers.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use openssl::{
    bn::{BigNum, BigNumContext},
    ec::{EcGroup, EcKey},
    nid::Nid,
    pkey::PKey,
    rsa::Rsa,
};
use serde_json::{Value, json};

pub struct ClientKey {
    pub kid: String,
    pub alg: Algorithm,
    key: EncodingKey,
    /// The public key as a JWK.
    pub public: Value,
}

impl ClientKey {
    /// A P-256 key for ES256 (allowed to every client, FAPI 2.0 ones included).
    pub fn ec(kid: &str) -> Self {
        Self::ec_on(kid, Nid::X9_62_PRIME256V1, "P-256", 32, Algorithm::ES256)
    }

    /// A P-384 key for ES384 (SMART Backend Services' own choice, with RS384).
    pub fn ec384(kid: &str) -> Self {
        Self::ec_on(kid, Nid::SECP384R1, "P-384", 48, Algorithm::ES384)
    }

    /// The same key, signing with `alg` (RS384 with an RSA key, say).
    pub fn signing_with(mut self, alg: Algorithm) -> Self {
        self.alg = alg;
        self
    }

    fn ec_on(kid: &str, curve: Nid, crv: &str, size: i32, alg: Algorithm) -> Self {
        let group = EcGroup::from_curve_name(curve).unwrap();
        let ec = EcKey::generate(&group).unwrap();
        let (mut x, mut y) = (BigNum::new().unwrap(), BigNum::new().unwrap());
        let mut ctx = BigNumContext::new().unwrap();
        ec.public_key()
            .affine_coordinates(&group, &mut x, &mut y, &mut ctx)
            .unwrap();
        let der = PKey::from_ec_key(ec)
            .unwrap()
            .private_key_to_pkcs8()
            .unwrap();
        Self {
            kid: kid.to_owned(),
            alg,
            key: EncodingKey::from_ec_der(&der),
            public: json!({
                "kty": "EC", "crv": crv, "kid": kid, "use": "sig",
                "x": URL_SAFE_NO_PAD.encode(x.to_vec_padded(size).unwrap()),
                "y": URL_SAFE_NO_PAD.encode(y.to_vec_padded(size).unwrap()),
            }),
        }
    }

    /// A 2048-bit RSA key for RS256 (refused from FAPI 2.0 clients).
    pub fn rsa(kid: &str) -> Self {
        let rsa = Rsa::generate(2048).unwrap();
        let public = json!({
            "kty": "RSA", "kid": kid, "use": "sig",
            "n": URL_SAFE_NO_PAD.encode(rsa.n().to_vec()),
            "e": URL_SAFE_NO_PAD.encode(rsa.e().to_vec()),
        });
        let der = rsa.private_key_to_der().unwrap();
        Self {
            kid: kid.to_owned(),
            alg: Algorithm::RS256,
            key: EncodingKey::from_rsa_der(&der),
            public,
        }
    }

    /// The JWKS document to register.
    pub fn jwks(&self) -> String {
        json!({ "keys": [self.public] }).to_string()
    }

    /// `claims` signed with this key, under `extra_header`'s members added to `alg` and `kid`.
    pub fn sign(&self, extra_header: Value, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        // No `typ` unless asked (the library would say "JWT").
        header.typ = None;
        let mut header = serde_json::to_value(header).unwrap();
        if let (Some(h), Some(extra)) = (header.as_object_mut(), extra_header.as_object()) {
            h.extend(extra.clone());
        }
        let header: Header = serde_json::from_value(header).unwrap();
        encode(&header, claims, &self.key)
    }
}

/// Signs after the server has set the library's crypto provider: the library keeps the
/// first provider used in the process, these tests share the server's process, and
/// `jose` sets Gatehouse's (OpenSSL for RSA) on its first use.
fn encode(header: &Header, claims: &Value, key: &EncodingKey) -> String {
    let _ = gatehouse::crypto::jose::Unverified::parse("", &[]);
    jsonwebtoken::encode(header, claims, key).unwrap()
}

/// `claims` under `alg: none`, with no signature.
pub fn unsigned(claims: &Value) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none"}).to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// `claims` signed with HS256 under `secret`: what an attacker who guessed a shared
/// secret (or took the public JWKS for one) would send.
pub fn hmac_signed(secret: &[u8], claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret).unwrap(),
    )
}
