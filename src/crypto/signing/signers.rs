//! One token signing key of each algorithm, ready to sign: its OpenSSL private key, its
//! public JWK and the public half as the JWS library checks with it. Each is built
//! once, when a ring is loaded (`super::ring_from_sealed`), never per token.
//!
//! How each is sealed in the store (the bytes under `MasterKey::seal`):
//!
//! | alg | sealed bytes |
//! |---|---|
//! | RS256 | the PKCS#1 DER RSA private key (2048 bits) |
//! | ES256 | the 32-byte big-endian P-256 private scalar (as the `p256` crate kept it) |
//! | EdDSA | the 32-byte Ed25519 private key (RFC 8032 §5.1.5's seed) |

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::DecodingKey;
use openidconnect::{
    JsonWebKeyId, PrivateSigningKey, SigningError,
    core::{CoreJsonCurveType, CoreJsonWebKey, CoreJwsSigningAlgorithm},
};
use openssl::{
    bn::{BigNum, BigNumContext},
    ec::{EcGroup, EcKey, EcPoint},
    ecdsa::EcdsaSig,
    hash::MessageDigest,
    nid::Nid,
    pkey::{Id, PKey, Private},
    rsa::Rsa,
    sign::Signer,
};

use super::SigningAlg;

/// The length of an ES256 private scalar, of each half of its signature, and of an
/// Ed25519 private or public key.
const LEN_32: usize = 32;

fn kid_of(kid: Option<&str>) -> Option<JsonWebKeyId> {
    kid.map(|k| JsonWebKeyId::new(k.to_owned()))
}

fn failed(e: openssl::error::ErrorStack) -> SigningError {
    SigningError::Other(e.to_string())
}

/// An RSA key signing RS256 through OpenSSL.
///
/// Not the `rsa` crate's private key: its private-key operations are not constant time
/// (RUSTSEC-2023-0071, the Marvin attack), and the token endpoint hands anyone with
/// client credentials a signature on demand, timed over the network. OpenSSL signs with
/// blinding and constant-time exponentiation, and verifies (every `/userinfo`,
/// `/introspect` and admin API call) in 15 µs where the `rsa` crate takes 110.
pub struct RsaSigner {
    key: PKey<Private>,
    pub(super) jwk: CoreJsonWebKey,
    /// The public half, as the JWS library checks with it.
    pub(super) decoding: DecodingKey,
}

/// Whether an RSA private key's parameters agree, in microseconds: `n = p·q`, `e·d ≡ 1`
/// modulo `p − 1` and `q − 1`, the CRT exponents are `d` reduced by each, and
/// `q·qInv ≡ 1 (mod p)`. What `RSA_check_key` checks, less its primality tests.
fn consistent(rsa: &Rsa<Private>) -> Result<bool, openssl::error::ErrorStack> {
    let (Some(p), Some(q), Some(dp), Some(dq), Some(qinv)) =
        (rsa.p(), rsa.q(), rsa.dmp1(), rsa.dmq1(), rsa.iqmp())
    else {
        return Ok(false);
    };
    let mut ctx = BigNumContext::new()?;
    let one = BigNum::from_u32(1)?;
    let mut n = BigNum::new()?;
    n.checked_mul(p, q, &mut ctx)?;
    if n != *rsa.n() {
        return Ok(false);
    }
    for (prime, crt_exponent) in [(p, dp), (q, dq)] {
        let mut minus_one = BigNum::new()?;
        minus_one.checked_sub(prime, &one)?;
        let mut reduced = BigNum::new()?;
        reduced.nnmod(rsa.d(), &minus_one, &mut ctx)?;
        let mut ed = BigNum::new()?;
        ed.mod_mul(rsa.e(), rsa.d(), &minus_one, &mut ctx)?;
        if reduced != *crt_exponent || ed != one {
            return Ok(false);
        }
    }
    let mut inverse = BigNum::new()?;
    inverse.mod_mul(q, qinv, p, &mut ctx)?;
    Ok(inverse == one)
}

impl RsaSigner {
    /// From a PKCS#1 DER private key (how keys are sealed in the store).
    ///
    /// Its parameters must agree ([`consistent`]). OpenSSL's `RSA_check_key` would also
    /// prove the primes prime, at 15 to 30 ms a key on every start; the keys opened here
    /// were made by OpenSSL and sealed under the master key's authenticated encryption,
    /// so they are the keys that were made.
    pub fn from_pkcs1_der(der: &[u8], kid: Option<&str>) -> Result<Self, String> {
        let rsa = Rsa::private_key_from_der(der).map_err(|e| e.to_string())?;
        if !consistent(&rsa).map_err(|e| e.to_string())? {
            return Err("inconsistent RSA key".into());
        }
        let (n, e) = (rsa.n().to_vec(), rsa.e().to_vec());
        let decoding = DecodingKey::from_rsa_raw_components(&n, &e);
        let jwk = CoreJsonWebKey::new_rsa(n, e, kid_of(kid));
        let key = PKey::from_rsa(rsa).map_err(|e| e.to_string())?;
        Ok(Self { key, jwk, decoding })
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 over `message`.
    pub fn sign_rs256(&self, message: &[u8]) -> Result<Vec<u8>, SigningError> {
        Signer::new(MessageDigest::sha256(), &self.key)
            .and_then(|mut signer| signer.sign_oneshot_to_vec(message))
            .map_err(failed)
    }

    /// RS256 signature check against this key's public half (the tests' cross-check of
    /// the library's path).
    #[cfg(test)]
    pub(super) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        openssl::sign::Verifier::new(MessageDigest::sha256(), &self.key)
            .and_then(|mut verifier| verifier.verify_oneshot(signature, message))
            .unwrap_or(false)
    }
}

/// An ECDSA P-256 key signing ES256 through OpenSSL, whose P-256 code signs several
/// times faster than RustCrypto's `p256` (which signed here before, and whose sealed
/// 32-byte scalars these keys still are).
pub struct EcSigner {
    key: PKey<Private>,
    pub(super) jwk: CoreJsonWebKey,
    pub(super) decoding: DecodingKey,
}

impl EcSigner {
    /// From the big-endian private scalar `d`, 1 ≤ d < n (how ES256 keys are sealed).
    pub fn from_scalar(scalar: &[u8], kid: &str) -> Result<Self, String> {
        Self::open(scalar, kid).map_err(|e| e.to_string())
    }

    fn open(scalar: &[u8], kid: &str) -> Result<Self, Box<dyn std::error::Error>> {
        if scalar.len() != LEN_32 {
            return Err("an ES256 private key is a 32-byte scalar".into());
        }
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
        let mut ctx = BigNumContext::new()?;
        let mut order = BigNum::new()?;
        group.order(&mut order, &mut ctx)?;
        let d = BigNum::from_slice(scalar)?;
        if d.num_bits() == 0 || d >= order {
            return Err("the ES256 scalar is not between 1 and the group order".into());
        }
        let mut public = EcPoint::new(&group)?;
        public.mul_generator2(&group, &d, &mut ctx)?;
        let ec = EcKey::from_private_components(&group, &d, &public)?;
        ec.check_key()?;
        let (mut x, mut y) = (BigNum::new()?, BigNum::new()?);
        public.affine_coordinates(&group, &mut x, &mut y, &mut ctx)?;
        let (x, y) = (x.to_vec_padded(32)?, y.to_vec_padded(32)?);
        let decoding = DecodingKey::from_ec_components(
            &URL_SAFE_NO_PAD.encode(&x),
            &URL_SAFE_NO_PAD.encode(&y),
        )?;
        let jwk = CoreJsonWebKey::new_ec(x, y, CoreJsonCurveType::P256, kid_of(Some(kid)));
        Ok(Self {
            key: PKey::from_ec_key(ec)?,
            jwk,
            decoding,
        })
    }

    /// ECDSA P-256 with SHA-256 over `message`, as JWS has it (RFC 7518 §3.4): `r || s`,
    /// each 32 bytes big-endian, zero-padded; not OpenSSL's DER.
    pub fn sign_es256(&self, message: &[u8]) -> Result<Vec<u8>, SigningError> {
        let der = Signer::new(MessageDigest::sha256(), &self.key)
            .and_then(|mut signer| signer.sign_oneshot_to_vec(message))
            .map_err(failed)?;
        let signature = EcdsaSig::from_der(&der).map_err(failed)?;
        let mut raw = signature.r().to_vec_padded(32).map_err(failed)?;
        raw.extend(signature.s().to_vec_padded(32).map_err(failed)?);
        Ok(raw)
    }
}

/// An Ed25519 key signing EdDSA (RFC 8037) through OpenSSL.
pub struct EdSigner {
    key: PKey<Private>,
    pub(super) jwk: CoreJsonWebKey,
    pub(super) decoding: DecodingKey,
}

impl EdSigner {
    /// A fresh key's 32 private bytes, to seal.
    pub fn generate() -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
        PKey::generate_ed25519()
            .and_then(|key| key.raw_private_key())
            .map(zeroize::Zeroizing::new)
            .map_err(|e| e.to_string())
    }

    /// From the 32-byte private key (how EdDSA keys are sealed).
    pub fn from_private_bytes(private: &[u8], kid: &str) -> Result<Self, String> {
        if private.len() != LEN_32 {
            return Err("an Ed25519 private key is 32 bytes".into());
        }
        let key =
            PKey::private_key_from_raw_bytes(private, Id::ED25519).map_err(|e| e.to_string())?;
        let public = key.raw_public_key().map_err(|e| e.to_string())?;
        let decoding = DecodingKey::from_ed_components(&URL_SAFE_NO_PAD.encode(&public))
            .map_err(|e| e.to_string())?;
        let jwk = CoreJsonWebKey::new_okp(public, CoreJsonCurveType::Ed25519, kid_of(Some(kid)));
        Ok(Self { key, jwk, decoding })
    }

    /// Ed25519 over `message` (PureEdDSA: the message itself, no pre-hash).
    pub fn sign_eddsa(&self, message: &[u8]) -> Result<Vec<u8>, SigningError> {
        Signer::new_without_digest(&self.key)
            .and_then(|mut signer| signer.sign_oneshot_to_vec(message))
            .map_err(failed)
    }
}

/// A key of the ring: published in the JWKS, and signing with its one algorithm.
pub enum PublishedKey {
    Rsa(RsaSigner),
    Ec(EcSigner),
    Ed(EdSigner),
}

impl PublishedKey {
    pub fn alg(&self) -> SigningAlg {
        match self {
            PublishedKey::Rsa(_) => SigningAlg::Rs256,
            PublishedKey::Ec(_) => SigningAlg::Es256,
            PublishedKey::Ed(_) => SigningAlg::EdDsa,
        }
    }

    pub(super) fn jwk(&self) -> &CoreJsonWebKey {
        match self {
            PublishedKey::Rsa(signer) => &signer.jwk,
            PublishedKey::Ec(signer) => &signer.jwk,
            PublishedKey::Ed(signer) => &signer.jwk,
        }
    }

    pub(super) fn decoding(&self) -> &DecodingKey {
        match self {
            PublishedKey::Rsa(signer) => &signer.decoding,
            PublishedKey::Ec(signer) => &signer.decoding,
            PublishedKey::Ed(signer) => &signer.decoding,
        }
    }

    /// A JWS signature over `message` with this key's algorithm.
    pub fn sign_message(&self, message: &[u8]) -> Result<Vec<u8>, SigningError> {
        match self {
            PublishedKey::Rsa(signer) => signer.sign_rs256(message),
            PublishedKey::Ec(signer) => signer.sign_es256(message),
            PublishedKey::Ed(signer) => signer.sign_eddsa(message),
        }
    }
}

/// For `openidconnect`'s ID token builder, which has no ECDSA private key type and an
/// Ed25519 one of RustCrypto's: a key signs with its own algorithm and no other.
impl PrivateSigningKey for PublishedKey {
    type VerificationKey = CoreJsonWebKey;

    fn sign(
        &self,
        signature_alg: &CoreJwsSigningAlgorithm,
        message: &[u8],
    ) -> Result<Vec<u8>, SigningError> {
        if *signature_alg != self.alg().jws() {
            return Err(SigningError::UnsupportedAlg(format!("{signature_alg:?}")));
        }
        self.sign_message(message)
    }

    fn as_verification_key(&self) -> CoreJsonWebKey {
        self.jwk().clone()
    }
}

#[cfg(test)]
mod tests {
    use rsa::{
        pkcs1::DecodeRsaPrivateKey,
        pkcs1v15::SigningKey,
        signature::{SignatureEncoding, Signer as _},
    };
    use sha2::Sha256;

    use super::*;

    const MESSAGE: &[u8] = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0";

    fn der() -> Vec<u8> {
        Rsa::generate(2048).unwrap().private_key_to_der().unwrap()
    }

    #[test]
    fn a_broken_key_is_refused() {
        let mut der = der();
        let last = der.len() - 1;
        der[last] ^= 1;
        assert!(RsaSigner::from_pkcs1_der(&der, None).is_err());
    }

    #[test]
    fn an_inconsistent_rsa_key_is_refused() {
        let (a, b) = (Rsa::generate(2048).unwrap(), Rsa::generate(2048).unwrap());
        let copy = |n: &openssl::bn::BigNumRef| BigNum::from_slice(&n.to_vec()).unwrap();
        // `a`'s modulus with `b`'s private exponent and primes.
        let mixed = Rsa::from_private_components(
            copy(a.n()),
            copy(a.e()),
            copy(b.d()),
            copy(b.p().unwrap()),
            copy(b.q().unwrap()),
            copy(b.dmp1().unwrap()),
            copy(b.dmq1().unwrap()),
            copy(b.iqmp().unwrap()),
        )
        .unwrap();
        let der = mixed.private_key_to_der().unwrap();
        let refused = RsaSigner::from_pkcs1_der(&der, Some("k1")).err().unwrap();
        assert!(refused.contains("inconsistent"), "{refused}");
        assert!(RsaSigner::from_pkcs1_der(&a.private_key_to_der().unwrap(), None).is_ok());
    }

    #[test]
    fn openssl_signs_the_same_rs256_as_any_other_implementation() {
        // PKCS#1 v1.5 is deterministic: an independent implementation must produce the
        // very same bytes from the same key and message.
        let der = der();
        let signer = RsaSigner::from_pkcs1_der(&der, Some("k1")).unwrap();
        let reference =
            SigningKey::<Sha256>::new(rsa::RsaPrivateKey::from_pkcs1_der(&der).unwrap());
        let ours = signer.sign_rs256(MESSAGE).unwrap();
        assert_eq!(ours, reference.sign(MESSAGE).to_vec());
        assert!(signer.verify(MESSAGE, &ours));
        assert!(!signer.verify(b"another message", &ours));
        assert!(
            !signer.verify(MESSAGE, &ours[..10]),
            "a truncated signature"
        );
        assert!(!signer.verify(MESSAGE, &[]), "no signature at all");
    }

    #[test]
    fn a_broken_rsa_key_is_refused() {
        let mut der = der();
        let last = der.len() - 1;
        der[last] ^= 1;
        assert!(RsaSigner::from_pkcs1_der(&der, None).is_err());
    }

    /// The independent implementation's public key of a scalar, and its verdict.
    fn p256_verifies(scalar: &[u8], message: &[u8], signature: &[u8]) -> bool {
        use p256::ecdsa::{Signature, SigningKey, signature::Verifier};
        let reference = SigningKey::from_slice(scalar).unwrap();
        Signature::from_slice(signature)
            .is_ok_and(|s| reference.verifying_key().verify(message, &s).is_ok())
    }

    #[test]
    fn our_es256_signatures_verify_with_rustcrypto_p256_and_the_jwk_is_its_key() {
        use p256::ecdsa::SigningKey;
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let scalar = EcKey::generate(&group)
            .unwrap()
            .private_key()
            .to_vec_padded(32)
            .unwrap();
        let signer = EcSigner::from_scalar(&scalar, "e1").unwrap();
        // The published key is the key of the sealed scalar.
        let point = SigningKey::from_slice(&scalar)
            .unwrap()
            .verifying_key()
            .to_sec1_point(false);
        let jwk = serde_json::to_value(&signer.jwk).unwrap();
        assert_eq!(jwk["x"], URL_SAFE_NO_PAD.encode(&point.as_bytes()[1..33]));
        assert_eq!(jwk["y"], URL_SAFE_NO_PAD.encode(&point.as_bytes()[33..65]));
        assert_eq!(
            (jwk["kty"].as_str(), jwk["crv"].as_str()),
            (Some("EC"), Some("P-256"))
        );
        // Many signatures, so that short r or s (a leading zero byte, one in 128) come up
        // and must be padded, not shortened.
        for i in 0..300u32 {
            let message = [MESSAGE, &i.to_be_bytes()].concat();
            let signature = signer.sign_es256(&message).unwrap();
            assert_eq!(signature.len(), 64);
            assert!(
                p256_verifies(&scalar, &message, &signature),
                "signature {i}"
            );
            assert!(!p256_verifies(&scalar, b"another message", &signature));
        }
    }

    #[test]
    fn es256_scalars_outside_the_group_or_of_the_wrong_length_are_refused() {
        let order = hex::decode("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551")
            .unwrap();
        assert!(EcSigner::from_scalar(&[0u8; 32], "e").is_err(), "zero");
        assert!(
            EcSigner::from_scalar(&order, "e").is_err(),
            "the order itself"
        );
        assert!(
            EcSigner::from_scalar(&[0xffu8; 32], "e").is_err(),
            "past the order"
        );
        assert!(EcSigner::from_scalar(&[1u8; 31], "e").is_err(), "31 bytes");
        assert!(EcSigner::from_scalar(&[1u8; 33], "e").is_err(), "33 bytes");
        let mut below = order.clone();
        below[31] -= 1;
        assert!(EcSigner::from_scalar(&below, "e").is_ok(), "n - 1");
    }

    #[test]
    fn our_eddsa_signatures_verify_with_ed25519_dalek_and_the_jwk_is_its_key() {
        use ed25519_dalek::{Signature, Verifier, VerifyingKey};
        let private = EdSigner::generate().unwrap();
        let signer = EdSigner::from_private_bytes(&private, "d1").unwrap();
        let seed: [u8; 32] = private.as_slice().try_into().unwrap();
        let reference = ed25519_dalek::SigningKey::from_bytes(&seed);
        let public: VerifyingKey = reference.verifying_key();
        let jwk = serde_json::to_value(&signer.jwk).unwrap();
        assert_eq!(jwk["kty"], "OKP");
        assert_eq!(jwk["crv"], "Ed25519");
        assert_eq!(jwk["x"], URL_SAFE_NO_PAD.encode(public.as_bytes()));
        let signature = signer.sign_eddsa(MESSAGE).unwrap();
        // Ed25519 is deterministic: the same bytes as the independent implementation's.
        use ed25519_dalek::Signer as _;
        assert_eq!(signature, reference.sign(MESSAGE).to_bytes().to_vec());
        let signature = Signature::from_slice(&signature).unwrap();
        assert!(public.verify(MESSAGE, &signature).is_ok());
        assert!(public.verify(b"another message", &signature).is_err());
        assert!(EdSigner::from_private_bytes(&private[..31], "d").is_err());
    }

    #[test]
    fn a_key_signs_for_openidconnect_with_its_own_algorithm_only() {
        let private = EdSigner::generate().unwrap();
        let key = PublishedKey::Ed(EdSigner::from_private_bytes(&private, "d1").unwrap());
        assert!(key.sign(&CoreJwsSigningAlgorithm::EdDsa, MESSAGE).is_ok());
        for other in [
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            CoreJwsSigningAlgorithm::EcdsaP256Sha256,
            CoreJwsSigningAlgorithm::None,
        ] {
            assert!(key.sign(&other, MESSAGE).is_err(), "{other:?}");
        }
    }
}
