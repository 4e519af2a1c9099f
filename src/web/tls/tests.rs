use super::*;

fn master() -> Arc<MasterKey> {
    static KEY: std::sync::OnceLock<Arc<MasterKey>> = std::sync::OnceLock::new();
    KEY.get_or_init(|| Arc::new(MasterKey::generate())).clone()
}

fn pair(dir: &Path, name: &str, host: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    ensure_self_signed(&cert, &key, &[host.to_owned()], &master()).unwrap();
    (cert, key)
}

fn served_cert(r: &ReloadingCert) -> Vec<u8> {
    r.get().cert[0].as_ref().to_vec()
}

#[test]
fn reload_swaps_in_the_new_pair() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = pair(dir.path(), "live", "old.example");
    let reloading = ReloadingCert::load(&cert, &key, master()).unwrap();
    let before = served_cert(&reloading);
    let (new_cert, new_key) = pair(dir.path(), "new", "new.example");
    fs::rename(new_cert, &cert).unwrap();
    fs::rename(new_key, &key).unwrap();
    reloading.reload().unwrap();
    let after = served_cert(&reloading);
    assert_ne!(before, after);
    assert_eq!(
        after,
        fs::read(&cert)
            .map(|pem| {
                CertificateDer::pem_slice_iter(&pem)
                    .next()
                    .unwrap()
                    .unwrap()
                    .as_ref()
                    .to_vec()
            })
            .unwrap()
    );
}

#[test]
fn a_bad_new_pair_keeps_the_old_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = pair(dir.path(), "live", "old.example");
    let reloading = ReloadingCert::load(&cert, &key, master()).unwrap();
    let before = served_cert(&reloading);

    // A key that belongs to another certificate.
    let (_, other_key) = pair(dir.path(), "other", "other.example");
    fs::copy(&other_key, &key).unwrap();
    let err = reloading.reload().unwrap_err().to_string();
    assert!(err.contains("do not match"), "{err}");
    assert_eq!(served_cert(&reloading), before);

    // A certificate file that is not PEM at all.
    fs::write(&cert, "not a certificate").unwrap();
    assert!(reloading.reload().is_err());
    assert_eq!(served_cert(&reloading), before);
}

#[test]
fn the_generated_key_is_sealed_and_opens_only_under_its_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = pair(dir.path(), "live", "sealed.example");
    let text = fs::read_to_string(&key).unwrap();
    assert!(text.starts_with("v1."), "not sealed: {}", &text[..8]);
    assert!(!text.contains("PRIVATE KEY"));
    ReloadingCert::load(&cert, &key, master()).unwrap();

    let err = ReloadingCert::load(&cert, &key, Arc::new(MasterKey::generate()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot open sealed private key"), "{err}");
    assert!(err.contains("key.key") || err.contains("live.key"), "{err}");

    // Cut short: a clear error, never a panic.
    fs::write(&key, &text[..text.len() / 2]).unwrap();
    let err = ReloadingCert::load(&cert, &key, master())
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot open sealed private key"), "{err}");
}

#[test]
fn a_sealed_key_does_not_open_as_another_sealed_value() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = pair(dir.path(), "live", "context.example");
    let pem = rcgen::KeyPair::generate().unwrap().serialize_pem();
    // Sealed under the right master key, for another purpose.
    fs::write(&key, master().seal("totp-secret:someone", pem.as_bytes())).unwrap();
    let err = ReloadingCert::load(&cert, &key, master())
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot open sealed private key"), "{err}");
}

#[test]
fn a_clear_key_of_an_earlier_release_is_sealed_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    fs::create_dir(&tls).unwrap();
    let (cert, key) = self_signed_paths(dir.path());
    // What an earlier release left: the pair, the key in clear as key.pem.
    let (old_cert, old_key) = pair(dir.path(), "old", "legacy.example");
    let opened = master()
        .open(
            SEALED_KEY_CONTEXT,
            fs::read_to_string(&old_key).unwrap().trim(),
        )
        .unwrap();
    fs::rename(&old_cert, &cert).unwrap();
    fs::write(tls.join("key.pem"), opened.expose_secret()).unwrap();

    assert!(seal_legacy_key(&key, &master()).unwrap());
    assert!(
        !tls.join("key.pem").exists(),
        "the clear key is left behind"
    );
    assert!(fs::read_to_string(&key).unwrap().starts_with("v1."));
    assert!(!ensure_self_signed(&cert, &key, &["x".into()], &master()).unwrap());
    ReloadingCert::load(&cert, &key, master()).unwrap();
    // Once sealed, nothing more to do.
    assert!(!seal_legacy_key(&key, &master()).unwrap());
}

#[test]
fn an_operators_key_is_sealed_by_the_cli_function_without_overwriting() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, sealed) = pair(dir.path(), "live", "operator.example");
    let clear = dir.path().join("clear.pem");
    let opened = master()
        .open(
            SEALED_KEY_CONTEXT,
            fs::read_to_string(&sealed).unwrap().trim(),
        )
        .unwrap();
    fs::write(&clear, opened.expose_secret()).unwrap();
    // A clear PEM key is still accepted as configured.
    ReloadingCert::load(&cert, &clear, master()).unwrap();

    let out = dir.path().join("out.sealed");
    seal_key_file(&clear, &out, &master()).unwrap();
    ReloadingCert::load(&cert, &out, master()).unwrap();
    let before = fs::read(&out).unwrap();
    let err = seal_key_file(&clear, &out, &master())
        .unwrap_err()
        .to_string();
    assert!(err.contains("will not overwrite"), "{err}");
    assert_eq!(fs::read(&out).unwrap(), before);
    let err = seal_key_file(&out, &dir.path().join("again"), &master())
        .unwrap_err()
        .to_string();
    assert!(err.contains("already sealed"), "{err}");
    fs::write(&clear, "not a key").unwrap();
    assert!(seal_key_file(&clear, &dir.path().join("bad"), &master()).is_err());
    assert!(!dir.path().join("bad").exists());
}

#[test]
fn a_key_file_sealed_under_the_current_key_is_not_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let (_, key) = pair(dir.path(), "live", "reseal.example");
    let before = fs::read(&key).unwrap();
    assert!(!reseal_key_file(&key, &master()).unwrap());
    assert_eq!(fs::read(&key).unwrap(), before);
}

#[test]
fn an_oversized_key_file_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = pair(dir.path(), "live", "big.example");
    fs::write(&key, vec![b'v'; 70 * 1024]).unwrap();
    let err = ReloadingCert::load(&cert, &key, master())
        .unwrap_err()
        .to_string();
    assert!(err.contains("too large"), "{err}");
}
