use super::*;

/// Cheap parameters, so tests run argon2 hundreds of times; reading always uses what
/// the file says.
const FAST: KdfParams = KdfParams {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

const PASS: &str = "correct horse battery staple";

fn pass(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) {}

/// `text` as an owner-only file in a fresh directory.
fn file_with(text: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    fs::write(&path, text).unwrap();
    set_mode(&path, 0o600);
    (dir, path)
}

fn sealed_text(key: &MasterKey) -> String {
    seal(key, &pass(PASS), FAST).unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn sealed_file_has_six_tagged_lines_and_names_the_kid() {
    let key = MasterKey::generate();
    let text = sealed_text(&key);
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert_eq!(lines[0], "gatehouse-sealed-master-key v1");
    assert_eq!(lines[1], format!("kid={}", key.kid()));
    assert_eq!(lines[2], "kdf=argon2id v=19 m=64 t=1 p=1");
    assert_eq!(lines[3].len(), "salt=".len() + 22);
    assert_eq!(lines[4].len(), "nonce=".len() + 16);
    assert_eq!(lines[5].len(), "sealed=".len() + 64);
    assert!(text.ends_with('\n'));
    // Nothing of the key in any form.
    let b64 = key.to_base64();
    assert!(!text.contains(b64.expose_secret().trim_end_matches('=')));
    assert!(!text.contains(&URL_SAFE_NO_PAD.encode(key.bytes())));
    assert!(!text.contains(&hex::encode(key.bytes())));
}

#[test]
fn default_parameters_are_memory_hard() {
    let params = KdfParams::default();
    assert_eq!(params.memory_kib, 65_536);
    assert_eq!(params.iterations, 3);
    assert_eq!(params.parallelism, 1);
    assert!(params.check().is_ok());
}

#[test]
fn a_sealed_file_opens_with_its_passphrase_to_the_same_key() {
    let key = MasterKey::generate();
    let (_dir, path) = file_with(sealed_text(&key).as_bytes());
    let opened = read_sealed_key_file(&path, &pass(PASS)).unwrap();
    assert_eq!(opened.kid(), key.kid());
    assert_eq!(opened.bytes(), key.bytes());
    assert_eq!(sealed_key_file_kid(&path).unwrap(), key.kid());
}

#[test]
fn two_seals_of_one_key_differ_in_salt_nonce_and_ciphertext() {
    let key = MasterKey::generate();
    let (a, b) = (sealed_text(&key), sealed_text(&key));
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    assert_eq!(a[..3], b[..3]);
    for line in 3..6 {
        assert_ne!(a[line], b[line], "line {line} repeats");
    }
    for text in [a.join("\n") + "\n", b.join("\n") + "\n"] {
        assert_eq!(open(&text, &pass(PASS)).unwrap().kid(), key.kid());
    }
}

#[test]
fn wrong_passphrase_is_one_clear_line_naming_the_path() {
    let key = MasterKey::generate();
    let (_dir, path) = file_with(sealed_text(&key).as_bytes());
    for wrong in [
        "correct horse battery stapler",
        "Correct horse battery staple",
        // Short, and made of what no temporary path holds, so that the check below
        // that the message does not repeat it cannot trip on the path.
        "%%",
    ] {
        let err = read_sealed_key_file(&path, &pass(wrong)).unwrap_err();
        assert!(matches!(&err, CryptoError::WrongPassphrase { path: p } if *p == path));
        let message = err.to_string();
        assert_eq!(
            message,
            format!("master key file {path:?}: wrong passphrase (or the file was altered)")
        );
        assert!(!message.contains(wrong));
        assert!(!message.contains('\n'));
    }
    assert!(matches!(
        read_sealed_key_file(&path, &pass("")),
        Err(CryptoError::EmptyPassphrase)
    ));
}

#[test]
fn passphrase_is_compared_after_unicode_normalisation() {
    let key = MasterKey::generate();
    let composed = "passphrase caf\u{e9} au lait";
    let decomposed = "passphrase cafe\u{301} au lait";
    let text = seal(&key, &pass(composed), FAST).unwrap();
    assert_eq!(open(&text, &pass(decomposed)).unwrap().kid(), key.kid());
}

#[test]
fn every_altered_header_field_is_refused() {
    let key = MasterKey::generate();
    let text = sealed_text(&key);
    let other = MasterKey::generate();
    let swaps: Vec<(String, String)> = vec![
        (format!("kid={}", key.kid()), format!("kid={}", other.kid())),
        ("m=64 ".into(), "m=72 ".into()),
        ("t=1 ".into(), "t=2 ".into()),
        (" v1\n".into(), " v2\n".into()),
    ];
    for (from, to) in swaps {
        let altered = text.replacen(&from, &to, 1);
        assert_ne!(altered, text);
        assert!(open(&altered, &pass(PASS)).is_err(), "{from} -> {to}");
    }
    // Every single character of the header, salt, nonce and seal, changed.
    for at in 0..text.len() - 1 {
        let mut bytes = text.clone().into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let Ok(altered) = String::from_utf8(bytes) else {
            continue;
        };
        if altered == text {
            continue;
        }
        assert!(
            open(&altered, &pass(PASS)).is_err(),
            "byte {at} changed and still opened"
        );
    }
}

#[test]
fn truncated_files_are_invalid_not_a_wrong_passphrase() {
    let key = MasterKey::generate();
    let text = sealed_text(&key);
    for len in 0..text.len() - 1 {
        let problem = open(&text[..len], &pass(PASS)).unwrap_err();
        assert!(matches!(problem, Problem::Invalid(_)), "{len}: {problem:?}");
    }
    let (_dir, path) = file_with(&text.as_bytes()[..150]);
    let err = read_sealed_key_file(&path, &pass(PASS)).unwrap_err();
    assert!(matches!(err, CryptoError::InvalidSealedKeyFile { .. }));
    let message = err.to_string();
    assert!(message.contains(&*path.to_string_lossy()), "{message}");
    assert!(
        message.contains("not a usable sealed key file"),
        "{message}"
    );
}

#[test]
fn trailing_garbage_and_crlf_are_refused() {
    let text = sealed_text(&MasterKey::generate());
    for altered in [
        format!("{text}extra\n"),
        format!("{text}\n"),
        text.replace('\n', "\r\n"),
        text.trim_end().to_owned(),
    ] {
        assert!(
            matches!(open(&altered, &pass(PASS)), Err(Problem::Invalid(_))),
            "{altered:?}"
        );
    }
}

#[test]
fn hostile_kdf_parameters_are_refused_before_any_work() {
    let text = sealed_text(&MasterKey::generate());
    for (kdf, why) in [
        ("m=4194304 t=1 p=1", "memory"),
        ("m=262145 t=1 p=1", "memory"),
        ("m=4294967295 t=1 p=1", "memory"),
        ("m=64 t=1000000 p=1", "iterations"),
        ("m=64 t=17 p=1", "iterations"),
        ("m=64 t=0 p=1", "iterations"),
        ("m=64 t=1 p=255", "parallelism"),
        ("m=64 t=1 p=0", "parallelism"),
        ("m=4 t=1 p=1", "memory"),
        ("m=99999999999 t=1 p=1", "out of bounds"),
        ("m=064 t=1 p=1", "plain numbers"),
        ("m=+64 t=1 p=1", "plain numbers"),
        ("m=64 t=1", "kdf line"),
        ("m=64 t=1 p=1 x=2", "kdf line"),
    ] {
        let altered = text.replacen("m=64 t=1 p=1", kdf, 1);
        let started = std::time::Instant::now();
        let Err(Problem::Invalid(reason)) = open(&altered, &pass(PASS)) else {
            panic!("{kdf} was not refused as invalid");
        };
        assert!(reason.contains(why), "{kdf}: {reason}");
        // Refused by reading, not by trying: no gigabyte was allocated.
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
    let other_kdf = text.replacen("argon2id v=19", "argon2i v=19", 1);
    assert!(matches!(
        open(&other_kdf, &pass(PASS)),
        Err(Problem::Invalid(_))
    ));
}

#[test]
fn a_newer_format_version_is_named_as_such() {
    let text = sealed_text(&MasterKey::generate()).replacen(" v1\n", " v2\n", 1);
    let (_dir, path) = file_with(text.as_bytes());
    let message = read_sealed_key_file(&path, &pass(PASS))
        .unwrap_err()
        .to_string();
    assert!(message.contains("format version"), "{message}");
    assert!(is_sealed_key_file(&path).unwrap());
}

#[test]
fn arbitrary_contents_never_panic() {
    use proptest::prelude::*;
    let text = sealed_text(&MasterKey::generate());
    proptest!(ProptestConfig::with_cases(300), |(
        garbage in ".{0,300}",
        cut in 0usize..260,
        insert in "[ -~\n]{0,4}",
    )| {
        let _ = open(&garbage, &pass(PASS));
        let at = cut.min(text.len());
        let spliced = format!("{}{}{}", &text[..at], insert, &text[at..]);
        if spliced != text {
            prop_assert!(open(&spliced, &pass(PASS)).is_err());
        }
    });
}

#[test]
fn is_sealed_tells_sealed_from_plaintext_and_missing() {
    let key = MasterKey::generate();
    let (dir, sealed) = file_with(sealed_text(&key).as_bytes());
    assert!(is_sealed_key_file(&sealed).unwrap());
    let plain = dir.path().join("plain.key");
    fs::write(&plain, format!("{}\n", key.to_base64().expose_secret())).unwrap();
    set_mode(&plain, 0o600);
    assert!(!is_sealed_key_file(&plain).unwrap());
    let empty = dir.path().join("empty.key");
    fs::write(&empty, "").unwrap();
    assert!(!is_sealed_key_file(&empty).unwrap());
    assert!(matches!(
        is_sealed_key_file(&dir.path().join("absent.key")),
        Err(CryptoError::KeyFileMissing { .. })
    ));
    // A plaintext key file is not mistaken for a broken sealed one by the loader.
    assert!(matches!(
        read_sealed_key_file(&plain, &pass(PASS)),
        Err(CryptoError::InvalidSealedKeyFile { .. })
    ));
}

#[cfg(unix)]
#[test]
fn group_or_other_accessible_sealed_file_is_refused() {
    let (_dir, path) = file_with(sealed_text(&MasterKey::generate()).as_bytes());
    for mode in [0o640, 0o604, 0o644] {
        set_mode(&path, mode);
        let err = read_sealed_key_file(&path, &pass(PASS)).unwrap_err();
        assert!(
            matches!(err, CryptoError::KeyFileTooOpen { mode: m, .. } if m == mode),
            "{err:?}"
        );
    }
}

#[test]
fn oversized_file_is_refused() {
    let (_dir, path) = file_with(&vec![b'g'; 64 * 1024]);
    assert!(matches!(
        read_sealed_key_file(&path, &pass(PASS)),
        Err(CryptoError::KeyFileTooLarge { .. })
    ));
}

#[test]
fn creating_refuses_a_short_passphrase_and_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let key = MasterKey::generate();
    let err = create_sealed_key_file_with(&path, &key, &pass("eleven char"), FAST).unwrap_err();
    assert!(matches!(err, CryptoError::PassphraseTooShort { min: 12 }));
    assert_eq!(
        err.to_string(),
        "the passphrase must be at least 12 characters"
    );
    assert!(names(dir.path()).is_empty());

    create_sealed_key_file_with(&path, &key, &pass("twelve chars"), FAST).unwrap();
    let before = fs::read(&path).unwrap();
    let err =
        create_sealed_key_file_with(&path, &MasterKey::generate(), &pass(PASS), FAST).unwrap_err();
    assert!(matches!(err, CryptoError::KeyFileExists { .. }));
    assert_eq!(fs::read(&path).unwrap(), before);
    assert_eq!(names(dir.path()), ["master.key"]);
}

#[test]
fn writing_replaces_the_file_owner_only_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let key = MasterKey::generate();
    fs::write(&path, "old contents").unwrap();
    write_sealed_key_file(&path, &key, &pass(PASS)).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600, "{mode:o}");
    }
    assert_eq!(names(dir.path()), ["master.key"]);
    let text = fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("kdf=argon2id v=19 m=65536 t=3 p=1\n"),
        "{text}"
    );
    assert_eq!(
        read_sealed_key_file(&path, &pass(PASS)).unwrap().kid(),
        key.kid()
    );
}
