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

/// XML Encryption §3.5.1: with `Type="…#Element"` the plaintext is exactly one element.
/// Shibboleth's decrypter refuses anything else ("Decryption did not result in a single
/// element"), so no XML declaration, and no whitespace (a text node) on either side.
fn single_element(xml: &str) -> Result<&str, AppError> {
    let mut rest = xml.trim();
    if let Some(after) = rest.strip_prefix("<?xml") {
        let end = after
            .find("?>")
            .ok_or_else(|| crypto_error("unterminated XML declaration"))?;
        rest = after[end + 2..].trim();
    }
    if rest.starts_with("<?")
        || rest.starts_with("<!")
        || !rest.starts_with('<')
        || !rest.ends_with('>')
    {
        return Err(crypto_error("the plaintext is not one element"));
    }
    Ok(rest)
}

/// `<saml2:EncryptedAssertion>` holding `assertion` (one element, as XML) for the holder
/// of `cert_der`.
pub fn encrypted_assertion(assertion: &str, cert_der: &[u8]) -> Result<String, AppError> {
    let assertion = single_element(assertion)?.as_bytes();
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

#[cfg(test)]
mod tests {
    use openssl::{
        asn1::Asn1Time, hash::MessageDigest, pkey::PKey, rsa::Rsa, x509::X509NameBuilder,
    };

    use super::*;

    fn cipher_values(xml: &str) -> Vec<Vec<u8>> {
        xml.split("<xenc:CipherValue>")
            .skip(1)
            .map(|r| STANDARD.decode(&r[..r.find('<').unwrap()]).unwrap())
            .collect()
    }

    #[test]
    fn the_plaintext_is_exactly_the_one_element_whatever_surrounds_it() {
        let rsa = Rsa::generate(2048).unwrap();
        let key = PKey::from_rsa(rsa.clone()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "sp").unwrap();
        let name = name.build();
        let mut b = openssl::x509::X509::builder().unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        let cert = b.build().to_der().unwrap();

        let signed = "<?xml version=\"1.0\"?>\n<saml2:Assertion ID=\"_a\">x</saml2:Assertion>\n";
        let xml = encrypted_assertion(signed, &cert).unwrap();
        let values = cipher_values(&xml);
        let (wrapped, data) = (&values[0], &values[1]);
        let mut aes = vec![0u8; rsa.size() as usize];
        let n = rsa
            .private_decrypt(wrapped, &mut aes, Padding::PKCS1_OAEP)
            .unwrap();
        let (iv, rest) = data.split_at(12);
        let (ciphertext, tag) = rest.split_at(rest.len() - 16);
        let plain = openssl::symm::decrypt_aead(
            Cipher::aes_128_gcm(),
            &aes[..n],
            Some(iv),
            &[],
            ciphertext,
            tag,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(plain).unwrap(),
            "<saml2:Assertion ID=\"_a\">x</saml2:Assertion>"
        );
        assert!(encrypted_assertion("<!-- c --><a/>", &cert).is_err());
        assert!(encrypted_assertion("text", &cert).is_err());
    }
}
