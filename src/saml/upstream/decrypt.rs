//! Encrypted assertions from an upstream IdP (SAML Core §2.3.4, XML Encryption 1.1),
//! opened with our SAML key: the content key wrapped with RSA-OAEP (never RSA PKCS#1
//! v1.5, open to Bleichenbacher's attack), the assertion with AES-GCM or, as older IdPs
//! send, AES-CBC. Every failure reads the same ("could not be decrypted"), so the answer
//! is no padding oracle; and what comes out is checked like a clear assertion (its
//! signature first).

use base64::{Engine, engine::general_purpose::STANDARD};
use openssl::{
    pkey::{PKey, Private},
    rsa::Padding,
    symm::Cipher,
};
use quick_xml::events::Event;

const RSA_OAEP_MGF1P: &str = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p";
const RSA_OAEP: &str = "http://www.w3.org/2009/xmlenc11#rsa-oaep";
const SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";
const MGF1_SHA1: &str = "http://www.w3.org/2009/xmlenc11#mgf1sha1";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    #[error("the encrypted assertion uses {0}, which is not accepted")]
    Algorithm(String),
    #[error("the encrypted assertion is not well-formed ({0})")]
    Malformed(&'static str),
    #[error("the encrypted assertion could not be decrypted with our key")]
    Failed,
}

/// What an `EncryptedAssertion` says, read by a pull parser.
#[derive(Debug, Default)]
struct Parts {
    data_method: Option<String>,
    data_value: Option<String>,
    key_method: Option<String>,
    key_digest: Option<String>,
    key_mgf: Option<String>,
    key_value: Option<String>,
    keys: usize,
}

fn parts(xml: &str) -> Result<Parts, DecryptError> {
    fn malformed<E>(_: E) -> DecryptError {
        DecryptError::Malformed("not XML")
    }
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut path: Vec<String> = Vec::new();
    let mut out = Parts::default();
    loop {
        let event = reader.read_event().map_err(malformed)?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                let algorithm = e
                    .try_get_attribute("Algorithm")
                    .ok()
                    .flatten()
                    .and_then(|a| {
                        a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .ok()
                            .map(|v| v.into_owned())
                    });
                let in_key = path.iter().any(|p| p == "EncryptedKey");
                match (local.as_str(), path.last().map(String::as_str)) {
                    ("EncryptedKey", _) => out.keys += 1,
                    ("RetrievalMethod", _) => {
                        return Err(DecryptError::Algorithm("a RetrievalMethod".into()));
                    }
                    ("EncryptionMethod", Some("EncryptedKey")) => out.key_method = algorithm,
                    ("EncryptionMethod", Some("EncryptedData")) => out.data_method = algorithm,
                    ("DigestMethod", Some("EncryptionMethod")) if in_key => {
                        out.key_digest = algorithm
                    }
                    ("MGF", Some("EncryptionMethod")) if in_key => out.key_mgf = algorithm,
                    _ => {}
                }
                if matches!(event, Event::Start(_)) {
                    path.push(local);
                }
            }
            Event::Text(t) if path.last().map(String::as_str) == Some("CipherValue") => {
                let text = t.decode().map_err(malformed)?.into_owned();
                let in_key = path.iter().any(|p| p == "EncryptedKey");
                let slot = if in_key {
                    &mut out.key_value
                } else {
                    &mut out.data_value
                };
                slot.get_or_insert_with(String::new).push_str(&text);
            }
            Event::End(_) => {
                path.pop();
            }
            Event::Eof => break,
            Event::DocType(_) | Event::Comment(_) | Event::CData(_) | Event::PI(_) => {
                return Err(DecryptError::Malformed("markup that is not accepted"));
            }
            _ => {}
        }
    }
    Ok(out)
}

fn base64(text: &str) -> Result<Vec<u8>, DecryptError> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD
        .decode(compact)
        .map_err(|_| DecryptError::Malformed("a CipherValue is not base64"))
}

/// The plaintext (one `Assertion` element, as text) of the `EncryptedAssertion` `xml`.
pub fn decrypt(xml: &str, key: &PKey<Private>) -> Result<String, DecryptError> {
    let p = parts(xml)?;
    if p.keys != 1 {
        return Err(DecryptError::Malformed(
            "it must carry exactly one EncryptedKey",
        ));
    }
    let key_method = p.key_method.unwrap_or_default();
    // RSA-OAEP with SHA-1 and MGF1-SHA-1: what `rsa-oaep-mgf1p` always is, and what
    // `xmlenc11#rsa-oaep` is by default.
    let oaep_sha1 = key_method == RSA_OAEP_MGF1P
        || (key_method == RSA_OAEP
            && p.key_digest.as_deref().is_none_or(|d| d == SHA1)
            && p.key_mgf.as_deref().is_none_or(|m| m == MGF1_SHA1));
    if !oaep_sha1 {
        return Err(DecryptError::Algorithm(quote(&key_method)));
    }
    let wrapped = base64(p.key_value.as_deref().unwrap_or_default())?;
    let rsa = key.rsa().map_err(|_| DecryptError::Failed)?;
    let mut content_key = vec![0u8; rsa.size() as usize];
    let n = rsa
        .private_decrypt(&wrapped, &mut content_key, Padding::PKCS1_OAEP)
        .map_err(|_| DecryptError::Failed)?;
    content_key.truncate(n);
    let data = base64(p.data_value.as_deref().unwrap_or_default())?;
    let data_method = p.data_method.unwrap_or_default();
    let plain = match data_method.as_str() {
        "http://www.w3.org/2009/xmlenc11#aes128-gcm" => {
            gcm(Cipher::aes_128_gcm(), &content_key, &data)
        }
        "http://www.w3.org/2009/xmlenc11#aes192-gcm" => {
            gcm(Cipher::aes_192_gcm(), &content_key, &data)
        }
        "http://www.w3.org/2009/xmlenc11#aes256-gcm" => {
            gcm(Cipher::aes_256_gcm(), &content_key, &data)
        }
        "http://www.w3.org/2001/04/xmlenc#aes128-cbc" => {
            cbc(Cipher::aes_128_cbc(), &content_key, &data)
        }
        "http://www.w3.org/2001/04/xmlenc#aes192-cbc" => {
            cbc(Cipher::aes_192_cbc(), &content_key, &data)
        }
        "http://www.w3.org/2001/04/xmlenc#aes256-cbc" => {
            cbc(Cipher::aes_256_cbc(), &content_key, &data)
        }
        other => return Err(DecryptError::Algorithm(quote(other))),
    }?;
    String::from_utf8(plain).map_err(|_| DecryptError::Failed)
}

fn quote(s: &str) -> String {
    let cut: String = s.chars().take(100).collect();
    format!("{cut:?}")
}

/// XML Encryption 1.1 §5.2.4: IV (96 bits) ‖ ciphertext ‖ tag (128 bits).
fn gcm(cipher: Cipher, key: &[u8], data: &[u8]) -> Result<Vec<u8>, DecryptError> {
    if key.len() != cipher.key_len() || data.len() < 12 + 16 {
        return Err(DecryptError::Failed);
    }
    let (iv, rest) = data.split_at(12);
    let (ciphertext, tag) = rest.split_at(rest.len() - 16);
    openssl::symm::decrypt_aead(cipher, key, Some(iv), &[], ciphertext, tag)
        .map_err(|_| DecryptError::Failed)
}

/// XML Encryption §5.2.1: IV ‖ ciphertext, with the spec's padding (the last byte gives
/// its length; the others are arbitrary, so not PKCS#7's check).
fn cbc(cipher: Cipher, key: &[u8], data: &[u8]) -> Result<Vec<u8>, DecryptError> {
    let block = cipher.block_size();
    if key.len() != cipher.key_len() || data.len() < 2 * block || !data.len().is_multiple_of(block)
    {
        return Err(DecryptError::Failed);
    }
    let (iv, ciphertext) = data.split_at(block);
    let mut crypter =
        openssl::symm::Crypter::new(cipher, openssl::symm::Mode::Decrypt, key, Some(iv))
            .map_err(|_| DecryptError::Failed)?;
    crypter.pad(false);
    let mut out = vec![0u8; ciphertext.len() + block];
    let mut n = crypter
        .update(ciphertext, &mut out)
        .map_err(|_| DecryptError::Failed)?;
    n += crypter
        .finalize(&mut out[n..])
        .map_err(|_| DecryptError::Failed)?;
    out.truncate(n);
    let pad = usize::from(*out.last().ok_or(DecryptError::Failed)?);
    if pad == 0 || pad > block || pad > out.len() {
        return Err(DecryptError::Failed);
    }
    out.truncate(out.len() - pad);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_and_cert() -> (PKey<Private>, Vec<u8>) {
        use openssl::{asn1::Asn1Time, hash::MessageDigest, x509::X509NameBuilder};
        let key = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
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
        (key, b.build().to_der().unwrap())
    }

    #[test]
    fn what_our_idp_encrypts_our_sp_decrypts() {
        let (key, cert) = key_and_cert();
        let assertion = r#"<saml2:Assertion xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion" ID="_a">x &amp; y</saml2:Assertion>"#;
        let encrypted = crate::saml::encrypt::encrypted_assertion(assertion, &cert).unwrap();
        assert_eq!(decrypt(&encrypted, &key).unwrap(), assertion);
        // Another key opens nothing, and says no more than that.
        let (other, _) = key_and_cert();
        assert_eq!(decrypt(&encrypted, &other), Err(DecryptError::Failed));
    }

    #[test]
    fn rsa_pkcs1_v15_key_transport_is_refused() {
        let (key, cert) = key_and_cert();
        let encrypted = crate::saml::encrypt::encrypted_assertion("<a/>", &cert)
            .unwrap()
            .replace(RSA_OAEP_MGF1P, "http://www.w3.org/2001/04/xmlenc#rsa-1_5");
        assert!(matches!(
            decrypt(&encrypted, &key),
            Err(DecryptError::Algorithm(a)) if a.contains("rsa-1_5")
        ));
    }

    #[test]
    fn a_tampered_ciphertext_is_not_decrypted() {
        let (key, cert) = key_and_cert();
        let encrypted = crate::saml::encrypt::encrypted_assertion("<a>secret</a>", &cert).unwrap();
        let at = encrypted.rfind("</xenc:CipherValue>").unwrap() - 4;
        let mut bytes = encrypted.into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(decrypt(&tampered, &key).is_err());
    }
}
