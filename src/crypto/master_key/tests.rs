use super::*;

/// Key bytes 0, 1, ..., 31; the expected values below were computed
/// independently (Python hashlib/hmac), pinning the kid and derivation
/// formulas so they cannot drift without a test noticing.
const FIXED_KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const FIXED_KEY_KID: &str = "f3a3ad53";
const FIXED_KEY_AUDIT_CHAIN: &str =
    "93bb3a6a7be6a1eaf3e97e9fbecd49d14453fb037fb6aa5988e451a4cf0f92eb";

fn write_file(path: &Path, contents: &str, mode: u32) {
    fs::write(path, contents).unwrap();
    set_mode(path, mode);
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) {}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn kid_is_eight_hex_chars_of_labelled_sha256() {
    let key = MasterKey::from_base64(FIXED_KEY_B64).unwrap();
    assert_eq!(key.kid(), FIXED_KEY_KID);
}

#[test]
fn kid_differs_between_keys_and_is_stable_for_one_key() {
    let a = MasterKey::generate();
    let b = MasterKey::generate();
    assert_ne!(a.kid(), b.kid());
    let a_again = MasterKey::from_base64(a.to_base64().expose_secret()).unwrap();
    assert_eq!(a.kid(), a_again.kid());
    assert_eq!(a.kid().len(), 8);
    assert!(
        a.kid()
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
}

#[test]
fn base64_key_is_accepted_with_or_without_padding_and_surrounding_whitespace() {
    let unpadded = FIXED_KEY_B64.trim_end_matches('=');
    for text in [
        FIXED_KEY_B64.to_owned(),
        unpadded.to_owned(),
        format!("  {FIXED_KEY_B64}\n"),
        format!("\t{unpadded}\r\n"),
    ] {
        assert_eq!(MasterKey::from_base64(&text).unwrap().kid(), FIXED_KEY_KID);
    }
}

#[test]
fn wrong_length_keys_are_refused_naming_the_length() {
    for len in [0usize, 1, 16, 31, 33, 64] {
        let text = KEY_BASE64.encode(vec![7u8; len]);
        let err = MasterKey::from_base64(&text).unwrap_err();
        assert!(
            matches!(err, CryptoError::WrongLength { got } if got == len),
            "{len}: {err:?}"
        );
    }
    let err = MasterKey::from_base64(&KEY_BASE64.encode([1u8; 16])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "master key must be 32 bytes (256 bits) of base64, got 16 bytes"
    );
}

#[test]
fn non_base64_keys_are_refused_without_echoing_the_input() {
    for text in [
        "this-is-my-s3cret-passphrase!not*base64",
        // Space inside, url-safe alphabet, non-canonical final symbol.
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd Hh8=",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh_=",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8==",
        "====",
    ] {
        let err = MasterKey::from_base64(text).unwrap_err();
        assert!(matches!(err, CryptoError::NotBase64), "{text:?}: {err:?}");
        assert!(!err.to_string().contains(text));
        assert!(!format!("{err:?}").contains(text));
    }
}

#[test]
fn debug_output_shows_the_kid_and_no_key_material() {
    let key = MasterKey::generate();
    let debug = format!("{key:?}");
    let alternate = format!("{key:#?}");
    let b64 = key.to_base64();
    let b64 = b64.expose_secret();
    for shown in [&debug, &alternate] {
        assert!(shown.contains(key.kid()), "{shown}");
        assert!(!shown.contains(b64));
        assert!(!shown.contains(b64.trim_end_matches('=')));
        assert!(!shown.contains(&hex::encode(key.bytes())));
        assert!(!shown.contains(&format!("{:?}", key.bytes())));
    }
    assert_eq!(debug, format!("MasterKey {{ kid: {:?}, .. }}", key.kid()));
}

#[test]
fn derived_keys_match_hmac_sha256_of_the_prefixed_purpose() {
    let key = MasterKey::from_base64(FIXED_KEY_B64).unwrap();
    // The fixed vector's purpose is no longer derived in production; the formula is
    // what it pins.
    assert_eq!(
        hex::encode(*key.own.hmac("audit-chain")),
        FIXED_KEY_AUDIT_CHAIN
    );

    // And agree with the ordinary variable-length-key HMAC constructor.
    let mut reference = <Hmac<Sha256> as Mac>::new_from_slice(key.bytes()).unwrap();
    reference.update(b"gatehouse/browser-form-csrf");
    assert_eq!(
        key.derive("browser-form-csrf").as_slice(),
        reference.finalize().into_bytes().as_slice()
    );
}

#[test]
fn derived_keys_are_deterministic_and_separate_purposes_and_master_keys() {
    let a = MasterKey::generate();
    let b = MasterKey::generate();
    let [csrf, codes] = ["browser-form-csrf", "recovery-codes"];
    assert_eq!(*a.derive(codes), *a.derive(codes));
    assert_ne!(*a.derive(codes), *a.derive(csrf));
    assert_ne!(*a.own.hmac(""), *a.derive(csrf));
    assert_ne!(*a.derive(csrf), *b.derive(csrf));
    assert_ne!(a.derive(csrf).as_slice(), a.bytes().as_slice());
}

#[test]
fn to_base64_round_trips() {
    let key = MasterKey::generate();
    let again = MasterKey::from_base64(key.to_base64().expose_secret()).unwrap();
    assert_eq!(key.bytes(), again.bytes());
    assert!(key.to_base64().expose_secret().ends_with('='));
}

#[test]
fn key_file_with_trailing_newline_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    write_file(&path, &format!("{FIXED_KEY_B64}\n"), 0o600);
    assert_eq!(MasterKey::from_file(&path).unwrap().kid(), FIXED_KEY_KID);
}

#[test]
fn missing_key_file_error_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such.key");
    let err = MasterKey::from_file(&path).unwrap_err();
    assert!(matches!(&err, CryptoError::KeyFileMissing { path: p } if *p == path));
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
}

#[cfg(unix)]
#[test]
fn group_or_other_accessible_key_file_is_refused_with_chmod_hint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    for mode in [0o640, 0o604, 0o644, 0o660, 0o601] {
        write_file(&path, FIXED_KEY_B64, mode);
        let err = MasterKey::from_file(&path).unwrap_err();
        assert!(
            matches!(err, CryptoError::KeyFileTooOpen { mode: m, .. } if m == mode),
            "{mode:o}: {err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("chmod 600"), "{message}");
        assert!(message.contains(&*path.to_string_lossy()), "{message}");
        // load_or_generate must not paper over it by generating a new key.
        assert!(matches!(
            MasterKey::load_or_generate(&path),
            Err(CryptoError::KeyFileTooOpen { .. })
        ));
    }
    for mode in [0o600, 0o400] {
        set_mode(&path, mode);
        assert_eq!(MasterKey::from_file(&path).unwrap().kid(), FIXED_KEY_KID);
    }
}

#[test]
fn key_file_with_bad_contents_names_the_path_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    write_file(&path, &KEY_BASE64.encode([9u8; 16]), 0o600);
    let err = MasterKey::from_file(&path).unwrap_err();
    assert!(matches!(
        &err,
        CryptoError::InvalidKeyFile { reason, .. }
            if matches!(**reason, CryptoError::WrongLength { got: 16 })
    ));
    assert!(err.to_string().contains(&*path.to_string_lossy()));
    assert!(err.to_string().contains("got 16 bytes"));

    fs::write(&path, [0xff, 0xfe, b'A']).unwrap();
    assert!(matches!(
        MasterKey::from_file(&path),
        Err(CryptoError::InvalidKeyFile { reason, .. }) if matches!(*reason, CryptoError::NotBase64)
    ));

    // A present-but-broken file is an error for load_or_generate too,
    // never silently replaced by a new key.
    assert!(MasterKey::load_or_generate(&path).is_err());
    assert_eq!(fs::read(&path).unwrap(), [0xff, 0xfe, b'A']);
}

#[test]
fn oversized_key_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    write_file(&path, &"A".repeat(64 * 1024), 0o600);
    assert!(matches!(
        MasterKey::from_file(&path),
        Err(CryptoError::KeyFileTooLarge { max: 1024, .. })
    ));
}

#[test]
fn generated_key_file_has_mode_0600_and_reloads_to_the_same_kid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let (key, generated) = MasterKey::load_or_generate(&path).unwrap();
    assert!(generated);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600, "{mode:o}");
    }
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.ends_with('\n'));
    assert_eq!(text.trim_end(), key.to_base64().expose_secret());
    assert_eq!(MasterKey::from_file(&path).unwrap().kid(), key.kid());
    // No temporary files left next to the key.
    assert_eq!(file_names(dir.path()), ["master.key"]);
}

#[test]
fn load_or_generate_second_call_loads_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let (first, generated_first) = MasterKey::load_or_generate(&path).unwrap();
    let (second, generated_second) = MasterKey::load_or_generate(&path).unwrap();
    assert!(generated_first);
    assert!(!generated_second);
    assert_eq!(first.kid(), second.kid());
    assert_eq!(first.bytes(), second.bytes());
}

#[test]
fn load_or_generate_uses_an_existing_file_without_rewriting_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    write_file(&path, FIXED_KEY_B64, 0o600);
    let (key, generated) = MasterKey::load_or_generate(&path).unwrap();
    assert!(!generated);
    assert_eq!(key.kid(), FIXED_KEY_KID);
    assert_eq!(fs::read_to_string(&path).unwrap(), FIXED_KEY_B64);
}

#[test]
fn publishing_loses_to_a_file_that_appeared_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    write_file(&path, FIXED_KEY_B64, 0o600);
    let ours = MasterKey::generate();
    let winner = publish_key_file(&path, &ours)
        .unwrap()
        .expect("other key wins");
    assert_eq!(winner.kid(), FIXED_KEY_KID);
    assert_eq!(fs::read_to_string(&path).unwrap(), FIXED_KEY_B64);
    assert_eq!(file_names(dir.path()), ["master.key"]);
}

#[test]
fn concurrent_load_or_generate_agrees_on_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let threads = 8;
    let barrier = std::sync::Barrier::new(threads);
    let results: Vec<(String, bool)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    let (key, generated) = MasterKey::load_or_generate(&path).unwrap();
                    (key.kid().to_owned(), generated)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        results.iter().filter(|(_, generated)| *generated).count(),
        1
    );
    let on_disk = MasterKey::from_file(&path).unwrap();
    assert!(results.iter().all(|(kid, _)| kid == on_disk.kid()));
    assert_eq!(file_names(dir.path()), ["master.key"]);
}

#[test]
fn load_or_generate_in_a_missing_directory_reports_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent").join("master.key");
    let err = MasterKey::load_or_generate(&path).unwrap_err();
    assert!(
        matches!(
            err,
            CryptoError::KeyFileIo {
                action: "create",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("absent"), "{err}");
}

// The ring during a rotation (DESIGN §12): an instance that knows both keys opens
// values under either, seals under the one the rotation says, and derives the same
// subkeys before, during and after.

#[test]
fn a_value_under_a_key_the_ring_was_not_told_of_is_refused_as_unknown() {
    let old = MasterKey::generate();
    let new = MasterKey::generate();
    let sealed = new.seal("ctx", b"secret");
    let err = old.open("ctx", &sealed).unwrap_err();
    assert!(matches!(err, CryptoError::UnknownKey { ref kid } if kid == new.kid()));
}

#[test]
fn an_announced_key_opens_but_does_not_seal() {
    let old = MasterKey::generate();
    let new = MasterKey::generate();
    old.learn(&new);
    let under_new = new.seal("ctx", b"from another instance");
    assert_eq!(
        old.open("ctx", &under_new).unwrap().expose_secret(),
        b"from another instance"
    );
    let sealed = old.seal("ctx", b"mine");
    assert!(
        sealed.starts_with(&format!("v1.{}.", old.kid())),
        "{sealed}"
    );
    assert_eq!(old.sealing_kid(), old.kid());
    assert_eq!(old.known_kids(), [old.kid(), new.kid()]);
}

#[test]
fn once_resealing_the_new_key_seals_and_both_open() {
    let old = MasterKey::generate();
    let new = MasterKey::generate();
    let before = old.seal("ctx", b"before");
    old.learn(&new);
    assert!(old.seal_with(new.kid()));
    let after = old.seal("ctx", b"after");
    assert!(after.starts_with(&format!("v1.{}.", new.kid())), "{after}");
    assert_eq!(old.sealing_kid(), new.kid());
    assert_eq!(old.kid(), old.kid(), "kid() stays the loaded key's");
    assert_eq!(old.open("ctx", &before).unwrap().expose_secret(), b"before");
    assert_eq!(new.open("ctx", &after).unwrap().expose_secret(), b"after");
}

#[test]
fn sealing_cannot_switch_to_a_key_the_ring_does_not_know() {
    let old = MasterKey::generate();
    let stranger = MasterKey::generate();
    assert!(!old.seal_with(stranger.kid()));
    assert_eq!(old.sealing_kid(), old.kid());
}

#[test]
fn after_the_rotation_the_old_key_is_forgotten() {
    let old = MasterKey::generate();
    let new = MasterKey::generate();
    let before = old.seal("ctx", b"before");
    old.learn(&new);
    assert!(old.seal_with(new.kid()));
    old.forget_other_keys();
    assert!(!old.knows(old.kid()));
    assert!(matches!(
        old.open("ctx", &before),
        Err(CryptoError::UnknownKey { .. })
    ));
    assert_eq!(old.known_kids(), [new.kid()]);
}

#[test]
fn pinned_subkeys_outlive_the_master_key_they_came_from() {
    let old = MasterKey::generate();
    let new = MasterKey::generate();
    let codes = old.derive("recovery-codes");
    assert_ne!(*codes, *new.derive("recovery-codes"));
    assert!(new.pin("recovery-codes", codes.clone()));
    assert!(new.is_pinned("recovery-codes"));
    assert_eq!(*new.derive("recovery-codes"), *codes);
    // Other purposes are untouched until pinned.
    assert_ne!(*new.derive("dpop-nonce"), *old.derive("dpop-nonce"));
}

#[test]
fn a_pin_for_an_unlisted_purpose_is_refused() {
    let key = MasterKey::generate();
    assert!(!key.pin("not-a-purpose", Zeroizing::new([7u8; 32])));
    assert!(!key.is_pinned("not-a-purpose"));
}

#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "DERIVE_PURPOSES")]
fn deriving_for_an_unlisted_purpose_panics_in_debug_builds() {
    let _ = MasterKey::generate().derive("forgotten-purpose");
}

#[test]
fn a_key_sealed_under_another_opens_to_the_same_key() {
    let old = MasterKey::generate();
    let new = MasterKey::generate();
    let sealed = old.seal_key("master-key", &new);
    assert!(!sealed.contains(new.to_base64().expose_secret().trim_end_matches('=')));
    let opened = old.open_key("master-key", &sealed).unwrap();
    assert_eq!(opened.kid(), new.kid());
    assert!(matches!(
        old.open_key("other-context", &sealed),
        Err(CryptoError::AuthenticationFailed)
    ));
    let not_a_key = old.seal("master-key", b"short");
    assert!(matches!(
        old.open_key("master-key", &not_a_key),
        Err(CryptoError::WrongLength { got: 5 })
    ));
}

#[test]
fn a_replaced_key_file_holds_the_new_key_owner_only_and_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let (old, _) = MasterKey::load_or_generate(&path).unwrap();
    let new = MasterKey::generate();
    check_key_dir_writable(&path).unwrap();
    replace_key_file(&path, &new).unwrap();
    let on_disk = MasterKey::from_file(&path).unwrap();
    assert_eq!(on_disk.kid(), new.kid());
    assert_ne!(on_disk.kid(), old.kid());
    assert_eq!(file_names(dir.path()), ["master.key"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

#[test]
fn a_key_file_that_cannot_be_replaced_is_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir").join("master.key");
    let err = replace_key_file(&path, &MasterKey::generate()).unwrap_err();
    assert!(matches!(err, CryptoError::KeyFileIo { .. }), "{err}");
    assert!(check_key_dir_writable(&path).is_err());
}
