//! The `jsonwebtoken` crate's RSA signature checks done by OpenSSL.
//!
//! `jsonwebtoken` parses and checks every JWS Gatehouse reads ([`super::jose`], and our
//! own tokens in [`super::signing::KeyRing::verify_jwt`]). Its RustCrypto backend checks
//! an RS256 signature in about 110 µs here, OpenSSL in about 15, and every `/userinfo`,
//! `/introspect` and admin API call checks one; so RSA (RS256/384/512, PS256/384/512)
//! goes to OpenSSL through the library's own provider interface, and everything else
//! (ECDSA, EdDSA, key utilities) stays with RustCrypto. Signing our tokens does not pass
//! through here: [`super::signing::RsaSigner`] keeps its OpenSSL key ready.

use std::sync::{LazyLock, Once};

use jsonwebtoken::{
    Algorithm, DecodingKey, DecodingKeyKind,
    crypto::{CryptoProvider, JwtVerifier, rust_crypto},
    errors::{Error, ErrorKind},
    signature,
};
use openssl::{
    bn::BigNum,
    hash::MessageDigest,
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
    Ok(Box::new(RsaVerifier {
        key,
        alg: *alg,
        digest,
        pss,
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

struct RsaVerifier {
    key: PKey<Public>,
    alg: Algorithm,
    digest: MessageDigest,
    pss: bool,
}

impl RsaVerifier {
    fn check(&self, message: &[u8], signature: &[u8]) -> Result<bool, openssl::error::ErrorStack> {
        let mut verifier = Verifier::new(self.digest, &self.key)?;
        if self.pss {
            // RFC 7518 §3.5: MGF1 with the same hash, a salt as long as the hash.
            verifier.set_rsa_padding(Padding::PKCS1_PSS)?;
            verifier.set_rsa_mgf1_md(self.digest)?;
            verifier.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)?;
        }
        verifier.verify_oneshot(signature, message)
    }
}

impl signature::Verifier<Vec<u8>> for RsaVerifier {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        match self.check(message, signature) {
            Ok(true) => Ok(()),
            _ => Err(signature::Error::new()),
        }
    }
}

impl JwtVerifier for RsaVerifier {
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

    #[test]
    fn the_installed_provider_is_ours() {
        install();
        let installed = CryptoProvider::try_get_default().unwrap();
        assert!(std::ptr::eq(installed, &*PROVIDER));
    }
}
