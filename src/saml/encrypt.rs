//! Encrypted assertions (SAML Core §2.3.4, XML Encryption 1.1): the assertion is
//! encrypted with a fresh AES-128-GCM key, and that key with RSA-OAEP (MGF1, SHA-1 — the
//! `rsa-oaep-mgf1p` every SP stack implements) under the SP's encryption certificate.
//!
//! AES-GCM, not CBC: CBC in XML Encryption is open to padding-oracle attacks
//! (Jager & Somorovsky, 2011). AES-128 rather than 256 because it is what SP libraries
//! (samael among them) decrypt; the security margin is ample.

use base64::{Engine, engine::general_purpose::STANDARD};
use openssl::{rsa::Padding, symm::Cipher};

use super::xml_writer::Element;
use crate::web::error::AppError;

pub const AES128_GCM: &str = "http://www.w3.org/2009/xmlenc11#aes128-gcm";
pub const RSA_OAEP: &str = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p";

fn crypto_error(e: impl std::fmt::Display) -> AppError {
    AppError::Internal(format!("assertion encryption: {e}"))
}

/// `<saml2:EncryptedAssertion>` holding `assertion` (XML bytes) for the holder of `cert_der`.
pub fn encrypted_assertion(assertion: &[u8], cert_der: &[u8]) -> Result<String, AppError> {
    let mut key = [0u8; 16];
    let mut iv = [0u8; 12];
    openssl::rand::rand_bytes(&mut key).map_err(crypto_error)?;
    openssl::rand::rand_bytes(&mut iv).map_err(crypto_error)?;
    let mut tag = [0u8; 16];
    let ciphertext = openssl::symm::encrypt_aead(
        Cipher::aes_128_gcm(),
        &key,
        Some(&iv),
        &[],
        assertion,
        &mut tag,
    )
    .map_err(crypto_error)?;
    // XML Encryption 1.1 §5.2.4: IV ‖ ciphertext ‖ tag.
    let mut data = Vec::with_capacity(iv.len() + ciphertext.len() + tag.len());
    data.extend_from_slice(&iv);
    data.extend_from_slice(&ciphertext);
    data.extend_from_slice(&tag);

    let cert = openssl::x509::X509::from_der(cert_der).map_err(crypto_error)?;
    let rsa = cert
        .public_key()
        .and_then(|k| k.rsa())
        .map_err(crypto_error)?;
    let mut wrapped = vec![0u8; rsa.size() as usize];
    let n = rsa
        .public_encrypt(&key, &mut wrapped, Padding::PKCS1_OAEP)
        .map_err(crypto_error)?;
    wrapped.truncate(n);

    let method =
        |algorithm: &str| Element::new("xenc:EncryptionMethod").attr("Algorithm", algorithm);
    let cipher = |bytes: &[u8]| {
        Element::new("xenc:CipherData")
            .child(Element::new("xenc:CipherValue").text(STANDARD.encode(bytes)))
    };
    let key_info = Element::new("ds:KeyInfo")
        .attr("xmlns:ds", "http://www.w3.org/2000/09/xmldsig#")
        .child(
            Element::new("xenc:EncryptedKey")
                .child(
                    method(RSA_OAEP).child(
                        Element::new("ds:DigestMethod")
                            .attr("Algorithm", "http://www.w3.org/2000/09/xmldsig#sha1"),
                    ),
                )
                .child(cipher(&wrapped)),
        );
    Ok(Element::new("saml2:EncryptedAssertion")
        .attr("xmlns:saml2", "urn:oasis:names:tc:SAML:2.0:assertion")
        .child(
            Element::new("xenc:EncryptedData")
                .attr("xmlns:xenc", "http://www.w3.org/2001/04/xmlenc#")
                .attr("Type", "http://www.w3.org/2001/04/xmlenc#Element")
                .child(method(AES128_GCM))
                .child(key_info)
                .child(cipher(&data)),
        )
        .to_xml())
}
