//! Sealing secrets at rest: AES-256-GCM under the master key, as text.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit, Nonce, Tag};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use rand::rngs::OsRng;
use secrecy::{SecretBox, SecretSlice};
use zeroize::Zeroizing;

use super::CryptoError;
use super::master_key::{KeyMaterial, MasterKey};

/// Version tag that starts every sealed value this build writes.
pub const SEALED_VERSION: &str = "v1";

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const KID_LEN: usize = 8;

/// Longest version tag we will quote back in an error: a sane tag is short,
/// and anything else is garbage that might be someone's plaintext.
const MAX_VERSION_LEN: usize = 8;

impl KeyMaterial {
    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.bytes().into())
    }
}

impl MasterKey {
    /// Seals `plaintext` for `context`, returning
    /// `v1.<kid>.<base64url(nonce || ciphertext || tag)>`.
    ///
    /// `context` names the purpose *and* the owner of the value (e.g.
    /// `"totp-secret:<user id>"`, `"signing-key:<kid>"`); the value opens only
    /// under exactly the same context, so a sealed value copied to another row
    /// or column is useless. Every call uses a fresh random nonce, so sealing
    /// the same secret twice gives different text.
    ///
    /// # Panics
    ///
    /// If the OS random number generator fails, or if `plaintext` exceeds
    /// AES-GCM's limit of 2^36 − 32 bytes (64 GiB) — neither is reachable
    /// with the secrets stored here, and both are programming or platform
    /// failures rather than bad input.
    #[must_use]
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> String {
        // During a rotation the sealing key is the one every instance has been told
        // of, which may not be this handle's own (`MasterKey::sealing_kid`).
        let key = self.sealing_material();
        let mut nonce = Nonce::<Aes256Gcm>::default();
        OsRng.fill_bytes(&mut nonce);

        // Reserve everything up front: the plaintext is copied in and
        // encrypted in place, and a reallocation would strand a plaintext
        // copy on the heap.
        let mut payload = Zeroizing::new(Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN));
        payload.extend_from_slice(&nonce);
        payload.extend_from_slice(plaintext);
        let Ok(tag) = key.cipher().encrypt_inout_detached(
            &nonce,
            context.as_bytes(),
            (&mut payload[NONCE_LEN..]).into(),
        ) else {
            panic!("AES-GCM refused to seal a {}-byte value", plaintext.len());
        };
        payload.extend_from_slice(&tag);

        format!(
            "{SEALED_VERSION}.{}.{}",
            key.kid(),
            URL_SAFE_NO_PAD.encode(&*payload)
        )
    }

    /// Opens a value made by [`Self::seal`] with the same `context`.
    ///
    /// The plaintext comes back in a zeroize-on-drop box that does not print
    /// in `Debug`; call `expose_secret()` to read it.
    ///
    /// # Errors
    ///
    /// * [`CryptoError::UnsupportedVersion`] — not a `v1` value;
    /// * [`CryptoError::UnknownKey`] — sealed under a master key this handle
    ///   does not know (neither its own nor one a rotation added);
    /// * [`CryptoError::Malformed`] — not `v1.<kid>.<payload>` text;
    /// * [`CryptoError::AuthenticationFailed`] — altered, or sealed for a
    ///   different `context`.
    ///
    /// Never panics, whatever `sealed` contains.
    pub fn open(&self, context: &str, sealed: &str) -> Result<SecretSlice<u8>, CryptoError> {
        let malformed = |reason| CryptoError::Malformed { reason };

        let (version, rest) = sealed
            .split_once('.')
            .ok_or(malformed("expected v1.<key id>.<payload>"))?;
        if version != SEALED_VERSION {
            return Err(if looks_like_version(version) {
                CryptoError::UnsupportedVersion {
                    version: version.to_owned(),
                }
            } else {
                malformed("does not start with a version tag such as v1")
            });
        }

        let (kid, encoded) = rest
            .split_once('.')
            .ok_or(malformed("expected v1.<key id>.<payload>"))?;
        // Exact comparison (lowercase hex only), so a value whose kid was
        // altered can never match by case-folding.
        if kid.len() != KID_LEN || !kid.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(malformed("key id is not 8 lowercase hex characters"));
        }
        // Any key of the ring: during a rotation values under both keys exist.
        let Some(key) = self.material(kid) else {
            return Err(CryptoError::UnknownKey {
                kid: kid.to_owned(),
            });
        };

        // Strict decoding (no padding, canonical trailing bits), so every
        // change to the text either changes the bytes or is rejected here.
        let payload = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| malformed("payload is not unpadded base64url"))?;
        if payload.len() < NONCE_LEN + TAG_LEN {
            return Err(malformed("payload is too short to hold a nonce and tag"));
        }
        let (nonce, rest) = payload.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let (Ok(nonce), Ok(tag)) = (
            Nonce::<Aes256Gcm>::try_from(nonce),
            Tag::<Aes256Gcm>::try_from(tag),
        ) else {
            return Err(malformed("payload is too short to hold a nonce and tag"));
        };

        // Decrypt in a buffer that is wiped on drop, then copy into an
        // exactly-sized box (converting the Vec could reallocate and leave an
        // unwiped copy of the plaintext behind).
        let mut buffer = Zeroizing::new(ciphertext.to_vec());
        key.cipher()
            .decrypt_inout_detached(&nonce, context.as_bytes(), (&mut buffer[..]).into(), &tag)
            .map_err(|_| CryptoError::AuthenticationFailed)?;
        Ok(SecretBox::new(Box::from(&buffer[..])))
    }
}

/// `v` followed by a few digits: a version tag from another build, worth
/// naming in the error, as opposed to arbitrary text.
fn looks_like_version(tag: &str) -> bool {
    tag.len() <= MAX_VERSION_LEN
        && tag
            .strip_prefix('v')
            .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use secrecy::ExposeSecret;

    /// Sealed independently (Python `cryptography` AESGCM) with key bytes
    /// 0..=31, nonce bytes 100..=111, context "totp-secret:42": pins the wire
    /// format and the AAD convention so stored values keep opening.
    const FIXED_KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const FIXED_SEALED: &str =
        "v1.f3a3ad53.ZGVmZ2hpamtsbW5vAlmNMSDaEs57Kg-j6TUyrae9JtXZfaXd-2w0EhWnugw";

    const CONTEXT: &str = "totp-secret:4f6c1a2e-0000-4000-8000-000000000001";

    fn open_ok(key: &MasterKey, context: &str, sealed: &str) -> Vec<u8> {
        key.open(context, sealed).unwrap().expose_secret().to_vec()
    }

    #[test]
    fn sealed_value_opens_to_the_same_plaintext() {
        let key = MasterKey::generate();
        for plaintext in [
            &b""[..],
            b"JBSWY3DPEHPK3PXP",
            &[0u8; 1],
            &(0..=255).collect::<Vec<u8>>(),
            &vec![0xa5; 100_000],
        ] {
            let sealed = key.seal(CONTEXT, plaintext);
            assert_eq!(open_ok(&key, CONTEXT, &sealed), plaintext);
        }
    }

    #[test]
    fn value_sealed_elsewhere_with_the_same_key_opens() {
        let key = MasterKey::from_base64(FIXED_KEY_B64).unwrap();
        assert_eq!(
            open_ok(&key, "totp-secret:42", FIXED_SEALED),
            b"JBSWY3DPEHPK3PXP"
        );
    }

    #[test]
    fn sealed_text_is_version_kid_and_unpadded_base64url() {
        let key = MasterKey::generate();
        let sealed = key.seal(CONTEXT, b"secret");
        let parts: Vec<&str> = sealed.split('.').collect();
        assert_eq!(parts.len(), 3, "{sealed}");
        assert_eq!(parts[0], "v1");
        assert_eq!(parts[1], key.kid());
        let payload = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        assert_eq!(payload.len(), NONCE_LEN + b"secret".len() + TAG_LEN);
        assert!(sealed.is_ascii());
        assert!(!sealed.contains("secret"));
    }

    #[test]
    fn sealing_the_same_plaintext_twice_gives_different_values() {
        let key = MasterKey::generate();
        let a = key.seal(CONTEXT, b"same secret");
        let b = key.seal(CONTEXT, b"same secret");
        assert_ne!(a, b);
        // Different nonces, not just different tails.
        let nonce = |s: &str| {
            URL_SAFE_NO_PAD
                .decode(s.rsplit('.').next().unwrap())
                .unwrap()[..NONCE_LEN]
                .to_vec()
        };
        assert_ne!(nonce(&a), nonce(&b));
    }

    #[test]
    fn opening_under_a_different_context_is_refused() {
        let key = MasterKey::generate();
        let sealed = key.seal("totp-secret:user-1", b"JBSWY3DPEHPK3PXP");
        for other in [
            "totp-secret:user-2",
            "signing-key:user-1",
            "totp-secret:user-1 ",
            "TOTP-SECRET:user-1",
            "",
        ] {
            assert!(
                matches!(
                    key.open(other, &sealed),
                    Err(CryptoError::AuthenticationFailed)
                ),
                "{other:?}"
            );
        }
    }

    #[test]
    fn flipping_any_bit_of_the_payload_is_refused() {
        let key = MasterKey::generate();
        let sealed = key.seal(CONTEXT, b"0123456789abcdef");
        let (header, encoded) = sealed.rsplit_once('.').unwrap();
        let payload = URL_SAFE_NO_PAD.decode(encoded).unwrap();
        for byte in 0..payload.len() {
            for bit in 0..8 {
                let mut tampered = payload.clone();
                tampered[byte] ^= 1 << bit;
                let text = format!("{header}.{}", URL_SAFE_NO_PAD.encode(&tampered));
                assert!(
                    matches!(
                        key.open(CONTEXT, &text),
                        Err(CryptoError::AuthenticationFailed)
                    ),
                    "byte {byte} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn flipping_any_bit_of_the_text_is_refused() {
        let key = MasterKey::generate();
        let sealed = key.seal(CONTEXT, b"0123456789abcdef");
        for index in 0..sealed.len() {
            for bit in 0..8 {
                let mut bytes = sealed.clone().into_bytes();
                bytes[index] ^= 1 << bit;
                // Bit 7 makes invalid UTF-8, which can't reach a &str; the
                // lossy form (U+FFFD) still must not open.
                let text = String::from_utf8_lossy(&bytes);
                assert!(
                    key.open(CONTEXT, &text).is_err(),
                    "index {index} bit {bit}: {text}"
                );
            }
        }
    }

    #[test]
    fn value_sealed_under_another_key_reports_unknown_key() {
        let ours = MasterKey::generate();
        let theirs = MasterKey::generate();
        let sealed = theirs.seal(CONTEXT, b"secret");
        let err = ours.open(CONTEXT, &sealed).unwrap_err();
        assert!(
            matches!(&err, CryptoError::UnknownKey { kid } if kid == theirs.kid()),
            "{err:?}"
        );
        assert!(err.to_string().contains(theirs.kid()));
        assert_eq!(open_ok(&theirs, CONTEXT, &sealed), b"secret");
    }

    #[test]
    fn other_versions_are_reported_as_unsupported() {
        let key = MasterKey::generate();
        let sealed = key.seal(CONTEXT, b"secret");
        let v2 = sealed.replacen("v1.", "v2.", 1);
        let err = key.open(CONTEXT, &v2).unwrap_err();
        assert!(
            matches!(&err, CryptoError::UnsupportedVersion { version } if version == "v2"),
            "{err:?}"
        );
        assert!(err.to_string().contains("\"v2\""));
        // Text that isn't a version tag isn't quoted back.
        let err = key.open(CONTEXT, "hunter2.abc.def").unwrap_err();
        assert!(matches!(err, CryptoError::Malformed { .. }), "{err:?}");
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn malformed_values_are_refused_with_a_reason() {
        let key = MasterKey::generate();
        let kid = key.kid().to_owned();
        let short = URL_SAFE_NO_PAD.encode([0u8; NONCE_LEN + TAG_LEN - 1]);
        let cases = [
            String::new(),
            "v1".into(),
            "v1.".into(),
            "v1..".into(),
            format!("v1.{kid}"),
            format!("v1.{kid}."),
            format!("v1.{kid}.{short}"),
            format!("v1.{kid}.{short}=="),
            format!("v1.{kid}.not base64!"),
            format!("v1.{kid}.AAAA.AAAA"),
            format!("v1.{}.AAAA", kid.to_uppercase()),
            format!("v1.{kid}0.AAAA"),
            "v1.zzzzzzzz.AAAA".into(),
            "plain text secret".into(),
            ".v1.abc".into(),
        ];
        for case in cases {
            let result = key.open(CONTEXT, &case);
            assert!(
                matches!(result, Err(CryptoError::Malformed { .. })),
                "{case:?}: {:?}",
                result.map(|_| ())
            );
        }
    }

    #[test]
    fn garbage_truncated_and_huge_inputs_never_panic_or_open() {
        let key = MasterKey::generate();
        let sealed = key.seal(CONTEXT, b"a secret worth protecting");
        let mut rng = StdRng::seed_from_u64(0x6a7e_4053);

        // Every prefix and suffix of a real value.
        for cut in 0..sealed.len() {
            assert!(key.open(CONTEXT, &sealed[..cut]).is_err(), "prefix {cut}");
            assert!(
                key.open(CONTEXT, &sealed[cut + 1..]).is_err(),
                "suffix {cut}"
            );
        }

        // Random edits of a real value: replace, insert, delete a character.
        let alphabet: Vec<char> = "v1.0123456789abcdefABCDEF-_=+/ \u{e9}\u{1f511}\0"
            .chars()
            .collect();
        for _ in 0..5_000 {
            let mut chars: Vec<char> = sealed.chars().collect();
            let at = rng.gen_range(0..chars.len());
            let c = alphabet[rng.gen_range(0..alphabet.len())];
            match rng.gen_range(0..3) {
                0 => chars[at] = c,
                1 => chars.insert(at, c),
                _ => {
                    chars.remove(at);
                }
            }
            let text: String = chars.into_iter().collect();
            if text != sealed {
                assert!(key.open(CONTEXT, &text).is_err(), "{text}");
            }
        }

        // Random strings: arbitrary bytes (lossily UTF-8) and well-shaped
        // junk that gets past the header checks.
        for _ in 0..5_000 {
            let len = rng.gen_range(0..200);
            let bytes: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
            assert!(key.open(CONTEXT, &String::from_utf8_lossy(&bytes)).is_err());

            let body: Vec<u8> = (0..rng.gen_range(0..120)).map(|_| rng.r#gen()).collect();
            let shaped = format!("v1.{}.{}", key.kid(), URL_SAFE_NO_PAD.encode(&body));
            assert!(key.open(CONTEXT, &shaped).is_err());
        }

        // Huge inputs: large but well-formed payload, and sheer size.
        let big = format!(
            "v1.{}.{}",
            key.kid(),
            URL_SAFE_NO_PAD.encode(vec![0x42u8; 8 * 1024 * 1024])
        );
        assert!(matches!(
            key.open(CONTEXT, &big),
            Err(CryptoError::AuthenticationFailed)
        ));
        let dots = ".".repeat(4 * 1024 * 1024);
        assert!(key.open(CONTEXT, &dots).is_err());
        let junk = "\u{1f511}".repeat(1024 * 1024);
        assert!(key.open(CONTEXT, &junk).is_err());
        let huge_kid = format!("v1.{}.AAAA", "a".repeat(1024 * 1024));
        assert!(key.open(CONTEXT, &huge_kid).is_err());
        let huge_version = format!("v{}.{}.AAAA", "9".repeat(1024 * 1024), key.kid());
        let err = key.open(CONTEXT, &huge_version).unwrap_err();
        assert!(err.to_string().len() < 200, "long input must not be echoed");
    }

    #[test]
    fn opened_plaintext_does_not_show_in_debug() {
        let key = MasterKey::generate();
        let sealed = key.seal(CONTEXT, b"JBSWY3DPEHPK3PXP");
        let opened = key.open(CONTEXT, &sealed).unwrap();
        let debug = format!("{opened:?}");
        assert!(!debug.contains("74, 66, 83"), "{debug}");
        assert!(!debug.contains("JBSW"), "{debug}");
    }

    #[test]
    fn error_messages_are_single_lines() {
        let key = MasterKey::generate();
        let other = MasterKey::generate();
        let sealed = key.seal(CONTEXT, b"x");
        let errors = [
            key.open("other", &sealed).unwrap_err(),
            key.open(CONTEXT, &other.seal(CONTEXT, b"x")).unwrap_err(),
            key.open(CONTEXT, "v9.x.y").unwrap_err(),
            key.open(CONTEXT, "line one\nline two").unwrap_err(),
            MasterKey::from_base64("!!").unwrap_err(),
            MasterKey::from_base64("AAAA").unwrap_err(),
            MasterKey::from_file("/nonexistent/dir/with\nnewline.key").unwrap_err(),
        ];
        for err in errors {
            let message = err.to_string();
            assert!(!message.contains('\n'), "{message}");
            assert!(!message.is_empty());
        }
    }
}
