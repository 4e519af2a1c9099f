//! The `jsonwebtoken` crate's RSA and ES256 signature checks done by OpenSSL.
//!
//! `jsonwebtoken` parses and checks every JWS Gatehouse reads ([`super::jose`], and our
//! own tokens in [`super::signing::KeyRing::verify_jwt`]). Its RustCrypto backend checks
//! an RS256 signature in about 110 µs here, OpenSSL in about 15, and every `/userinfo`,
//! `/introspect` and admin API call checks one; so RSA (RS256/384/512, PS256/384/512)
//! goes to OpenSSL through the library's own provider interface. So does ES256, which
//! clients may have their access tokens signed with (issue 32): RustCrypto's `p256`
//! checks one in about 170 µs, OpenSSL several times faster. Everything else (ES384,
//! EdDSA, key utilities) stays with RustCrypto. Signing our tokens does not pass through
//! here: [`super::signing::PublishedKey`] keeps its OpenSSL key ready.

use std::sync::{LazyLock, Once};

use jsonwebtoken::{
    Algorithm, DecodingKey, DecodingKeyKind,
    crypto::{CryptoProvider, JwtVerifier, rust_crypto},
    errors::{Error, ErrorKind},
    signature,
};
use openssl::{
    bn::{BigNum, BigNumContext},
    ec::{EcGroup, EcKey, EcPoint},
    ecdsa::EcdsaSig,
    hash::MessageDigest,
    nid::Nid,
    pkey::{PKey, Public},
    rsa::{Padding, Rsa},
    sign::{RsaPssSaltlen, Verifier},
};

static PROVIDER: LazyLock<CryptoProvider> = LazyLock::new(|| CryptoProvider {
    signer_factory: rust_crypto::DEFAULT_PROVIDER.signer_factory,
    verifier_factory: new_verifier,
    key_utils: rust_crypto::DEFAULT_PROVIDER.key_utils.clone(),
});

/// Makes this the process's provider. Called before every use of the library (it is a
/// load of an atomic after the first call); every such use is in `crate::crypto`, so
/// no other provider can have been installed first.
pub fn install() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        if CryptoProvider::install_default(&PROVIDER).is_err() {
            tracing::warn!("another JWS crypto provider was installed first");
        }
    });
}

fn new_verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    let (digest, pss) = match alg {
        Algorithm::RS256 => (MessageDigest::sha256(), false),
        Algorithm::RS384 => (MessageDigest::sha384(), false),
        Algorithm::RS512 => (MessageDigest::sha512(), false),
        Algorithm::PS256 => (MessageDigest::sha256(), true),
        Algorithm::PS384 => (MessageDigest::sha384(), true),
        Algorithm::PS512 => (MessageDigest::sha512(), true),
        Algorithm::ES256 => {
            let key =
                p256_public_key(key.kind()).map_err(|_| Error::from(ErrorKind::InvalidEcdsaKey))?;
            return Ok(Box::new(OpenSslVerifier {
                key,
                alg: *alg,
                scheme: Scheme::Es256,
            }));
        }
        Algorithm::EdDSA => {
            // The library's Ed25519 verifier slices the key's first 32 bytes: a shorter
            // `x` (a DPoP proof's header carries any key anyone likes) would panic the
            // worker. RFC 8037 §2: an Ed25519 public key is exactly 32 bytes.
            if !matches!(key.kind(), DecodingKeyKind::SecretOrDer(x) if x.len() == 32) {
                return Err(ErrorKind::InvalidEddsaKey.into());
            }
            return (rust_crypto::DEFAULT_PROVIDER.verifier_factory)(alg, key);
        }
        _ => return (rust_crypto::DEFAULT_PROVIDER.verifier_factory)(alg, key),
    };
    let key =
        public_key(key.kind()).map_err(|e| Error::from(ErrorKind::InvalidRsaKey(e.to_string())))?;
    Ok(Box::new(OpenSslVerifier {
        key,
        alg: *alg,
        scheme: Scheme::Rsa { digest, pss },
    }))
}

/// The OpenSSL public key of a decoding key. Built for each check, never cached: the
/// keys checked with include any a DPoP proof carries, so a cache keyed by their bytes
/// would be the attacker's to fill (and, with an ambiguous key, to poison with a key
/// that answers for ours).
fn public_key(kind: &DecodingKeyKind) -> Result<PKey<Public>, openssl::error::ErrorStack> {
    let rsa = match kind {
        DecodingKeyKind::RsaModulusExponent { n, e } => {
            Rsa::from_public_components(BigNum::from_slice(n)?, BigNum::from_slice(e)?)
        }
        DecodingKeyKind::SecretOrDer(der) => Rsa::public_key_from_der_pkcs1(der),
    }?;
    PKey::from_rsa(rsa)
}

/// The OpenSSL public key of a P-256 point, as the library keeps an EC key's components:
/// `0x04 || x || y`, each 32 bytes. Only that uncompressed form: a single `0x00` would be
/// the point at infinity, which OpenSSL would take. `EC_POINT_oct2point` refuses a point
/// not on the curve (whose cofactor is 1: on the curve is in the group). Not cached, like
/// RSA keys.
fn p256_public_key(kind: &DecodingKeyKind) -> Result<PKey<Public>, Box<dyn std::error::Error>> {
    let DecodingKeyKind::SecretOrDer(point) = kind else {
        return Err("not an EC key".into());
    };
    if point.len() != 65 || point[0] != 0x04 {
        return Err("not an uncompressed P-256 point".into());
    }
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let mut ctx = BigNumContext::new()?;
    let point = EcPoint::from_bytes(&group, point, &mut ctx)?;
    Ok(PKey::from_ec_key(EcKey::from_public_key(&group, &point)?)?)
}

/// How a signature is checked.
enum Scheme {
    Rsa {
        digest: MessageDigest,
        pss: bool,
    },
    /// ECDSA P-256 with SHA-256, the signature as JWS has it (RFC 7518 §3.4): `r || s`,
    /// 32 bytes each.
    Es256,
}

struct OpenSslVerifier {
    key: PKey<Public>,
    alg: Algorithm,
    scheme: Scheme,
}

impl OpenSslVerifier {
    fn check(&self, message: &[u8], signature: &[u8]) -> Result<bool, openssl::error::ErrorStack> {
        match self.scheme {
            Scheme::Rsa { digest, pss } => {
                let mut verifier = Verifier::new(digest, &self.key)?;
                if pss {
                    // RFC 7518 §3.5: MGF1 with the same hash, a salt as long as the hash.
                    verifier.set_rsa_padding(Padding::PKCS1_PSS)?;
                    verifier.set_rsa_mgf1_md(digest)?;
                    verifier.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)?;
                }
                verifier.verify_oneshot(signature, message)
            }
            Scheme::Es256 => {
                if signature.len() != 64 {
                    return Ok(false);
                }
                // OpenSSL reads ECDSA signatures as DER, and refuses r or s outside
                // 1..n-1 when it checks.
                let (r, s) = signature.split_at(32);
                let der = EcdsaSig::from_private_components(
                    BigNum::from_slice(r)?,
                    BigNum::from_slice(s)?,
                )?
                .to_der()?;
                Verifier::new(MessageDigest::sha256(), &self.key)?.verify_oneshot(&der, message)
            }
        }
    }
}

impl signature::Verifier<Vec<u8>> for OpenSslVerifier {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        match self.check(message, signature) {
            Ok(true) => Ok(()),
            _ => Err(signature::Error::new()),
        }
    }
}

impl JwtVerifier for OpenSslVerifier {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

#[cfg(test)]
mod tests {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    use jsonwebtoken::EncodingKey;

    use super::*;

    /// RustCrypto signs (the library's own signer), OpenSSL checks: two implementations
    /// agree on every RSA algorithm, and a changed message or signature fails.
    #[test]
    fn openssl_checks_what_rustcrypto_signs_for_every_rsa_algorithm() {
        install();
        let rsa = Rsa::generate(2048).unwrap();
        let encoding = EncodingKey::from_rsa_der(&rsa.private_key_to_der().unwrap());
        let decoding = DecodingKey::from_rsa_raw_components(&rsa.n().to_vec(), &rsa.e().to_vec());
        for alg in [
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ] {
            let message = b"eyJhbGciOiJQUzI1NiJ9.eyJzdWIiOiJ4In0";
            let signature = jsonwebtoken::crypto::sign(message, &encoding, alg).unwrap();
            let verifier = new_verifier(&alg, &decoding).unwrap();
            let raw = URL_SAFE_NO_PAD.decode(&signature).unwrap();
            assert!(
                signature::Verifier::verify(verifier.as_ref(), message, &raw).is_ok(),
                "{alg:?}"
            );
            assert!(signature::Verifier::verify(verifier.as_ref(), b"other", &raw).is_err());
            let mut flipped = raw.clone();
            flipped[10] ^= 1;
            assert!(signature::Verifier::verify(verifier.as_ref(), message, &flipped).is_err());
            assert!(signature::Verifier::verify(verifier.as_ref(), message, &Vec::new()).is_err());
        }
    }

    /// A fresh P-256 key: the library's signing key, and its public key as a JWK's
    /// components give it.
    fn p256_pair() -> (EncodingKey, DecodingKey) {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let ec = EcKey::generate(&group).unwrap();
        let (mut x, mut y) = (BigNum::new().unwrap(), BigNum::new().unwrap());
        let mut ctx = BigNumContext::new().unwrap();
        ec.public_key()
            .affine_coordinates(&group, &mut x, &mut y, &mut ctx)
            .unwrap();
        let b64 = |n: &BigNum| URL_SAFE_NO_PAD.encode(n.to_vec_padded(32).unwrap());
        let decoding = DecodingKey::from_ec_components(&b64(&x), &b64(&y)).unwrap();
        let der = PKey::from_ec_key(ec)
            .unwrap()
            .private_key_to_pkcs8()
            .unwrap();
        (EncodingKey::from_ec_der(&der), decoding)
    }

    /// RustCrypto signs ES256, OpenSSL checks; and on every variant of the signature the
    /// two implementations agree.
    #[test]
    fn openssl_checks_es256_as_rustcrypto_does() {
        install();
        let (encoding, decoding) = p256_pair();
        let message = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0";
        let signature = jsonwebtoken::crypto::sign(message, &encoding, Algorithm::ES256).unwrap();
        let raw = URL_SAFE_NO_PAD.decode(&signature).unwrap();
        let ours = new_verifier(&Algorithm::ES256, &decoding).unwrap();
        let reference =
            (rust_crypto::DEFAULT_PROVIDER.verifier_factory)(&Algorithm::ES256, &decoding).unwrap();
        let order = BigNum::from_hex_str(
            "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551",
        )
        .unwrap();
        let (r, s) = raw.split_at(32);
        let mut high_s = BigNum::new().unwrap();
        high_s
            .checked_sub(&order, &BigNum::from_slice(s).unwrap())
            .unwrap();
        let with_s = |s: &[u8]| [r, s].concat();
        let mut flipped = raw.clone();
        flipped[10] ^= 1;
        let cases: Vec<(&str, &[u8], Vec<u8>, bool)> = vec![
            ("as signed", message, raw.clone(), true),
            ("another message", b"other", raw.clone(), false),
            ("a flipped bit", message, flipped, false),
            (
                "n - s, the same signature's other form",
                message,
                with_s(&high_s.to_vec_padded(32).unwrap()),
                true,
            ),
            ("s = 0", message, with_s(&[0; 32]), false),
            (
                "s = n",
                message,
                with_s(&order.to_vec_padded(32).unwrap()),
                false,
            ),
            ("r = 0", message, [&[0; 32], s].concat(), false),
            ("63 bytes", message, raw[..63].to_vec(), false),
            (
                "DER instead of r || s",
                message,
                {
                    let sig = EcdsaSig::from_private_components(
                        BigNum::from_slice(r).unwrap(),
                        BigNum::from_slice(s).unwrap(),
                    )
                    .unwrap();
                    sig.to_der().unwrap()
                },
                false,
            ),
            ("nothing", message, Vec::new(), false),
        ];
        for (what, message, signature, valid) in cases {
            let verdict =
                |v: &dyn JwtVerifier| signature::Verifier::verify(v, message, &signature).is_ok();
            assert_eq!(verdict(ours.as_ref()), valid, "{what}");
            assert_eq!(verdict(reference.as_ref()), valid, "RustCrypto: {what}");
        }
    }

    #[test]
    fn an_es256_key_that_is_not_a_point_of_the_curve_is_refused() {
        install();
        let (_, decoding) = p256_pair();
        let DecodingKeyKind::SecretOrDer(point) = decoding.kind() else {
            panic!("an EC key is its point");
        };
        assert!(new_verifier(&Algorithm::ES256, &decoding).is_ok());
        let mut off = point.clone();
        off[64] ^= 1;
        let compressed = [&[2 + (point[64] & 1)], &point[1..33]].concat();
        for (what, bytes) in [
            ("off the curve", off),
            ("the point at infinity", vec![0]),
            ("compressed", compressed),
            ("x alone", point[..33].to_vec()),
        ] {
            let key = DecodingKey::from_ec_der(&bytes);
            assert!(new_verifier(&Algorithm::ES256, &key).is_err(), "{what}");
        }
    }

    #[test]
    fn the_installed_provider_is_ours() {
        install();
        let installed = CryptoProvider::try_get_default().unwrap();
        assert!(std::ptr::eq(installed, &*PROVIDER));
    }
}
