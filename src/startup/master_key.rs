//! The master key at start-up (DESIGN §12, issue 27): where it is loaded from, the
//! passphrase of a sealed key file, following a rotation under way, and where a
//! rotation stores the new key.

use std::path::Path;

use super::{StartupError, ensure_private_dir};
use crate::{
    audit::AuditError,
    config::{Config, MasterKeySource},
    crypto::MasterKey,
    keys::master::Follower,
    store::Store,
    web as gw,
};

/// The audit chain key is the first sealed value start-up opens: when it was sealed
/// under another master key, the operator has the wrong key (another installation's,
/// or a file from a backup), which is worth one plain line rather than a failure of
/// the audit trail (issue 27).
pub(super) fn not_this_database(e: AuditError, key: &MasterKey, config: &Config) -> StartupError {
    use crate::{crypto::CryptoError, keys::sealed::SecretError};
    if let AuditError::Key(SecretError::Open {
        source: CryptoError::UnknownKey { kid },
        ..
    }) = &e
    {
        let origin = match config.master_key_source() {
            Ok(MasterKeySource::File(path) | MasterKeySource::Generated(path)) => {
                format!("master key file {path:?}")
            }
            _ => "master key (master_key)".to_owned(),
        };
        return StartupError::MasterKey(format!(
            "{origin}: this master key (kid {}) is not the one this database was sealed with (kid {kid})",
            key.kid()
        ));
    }
    e.into()
}

/// Before anything sealed is opened: the other key of a rotation under way, and the
/// pinned derived keys (`keys::master`).
pub(super) async fn follow_master_key(
    store: &Store,
    key: &MasterKey,
) -> Result<Follower, StartupError> {
    let mut follower = Follower::default();
    follower
        .sync(store, key)
        .await
        .map_err(|e| StartupError::MasterKey(format!("master key: {e}")))?;
    Ok(follower)
}

/// Writes the new master key of a finished rotation where [`load_master_key`] found
/// the old one, replacing it atomically (`gatehouse keys rotate-master`).
///
/// An inline `GATEHOUSE_MASTER_KEY` cannot be rewritten: `rotate-master` refuses it
/// before it starts (see [`rotation_target`]).
pub fn persist_rotated_key(config: &Config, new_key: &MasterKey) -> Result<(), StartupError> {
    let err = |e: crate::crypto::CryptoError| StartupError::MasterKey(format!("master key: {e}"));
    match config.master_key_source()? {
        MasterKeySource::Inline => Err(StartupError::MasterKey(INLINE_KEY_CANNOT_ROTATE.into())),
        MasterKeySource::File(path) | MasterKeySource::Generated(path) => {
            if crate::crypto::is_sealed_key_file(&path).map_err(err)? {
                // Under the passphrase it was opened with (the prompt remembers it).
                let passphrase = config.master_key_passphrase.ask(&path).map_err(|e| {
                    StartupError::MasterKey(format!("master key file {path:?}: {e}"))
                })?;
                return crate::crypto::write_sealed_key_file(&path, new_key, &passphrase)
                    .map_err(err);
            }
            crate::crypto::replace_key_file(&path, new_key).map_err(err)
        }
    }
}

/// Re-seals this host's sealed TLS private key (the configured `tls_key` or the
/// embedded default's) under `ring`'s sealing key, during a master-key rotation while
/// the ring still opens the old one. A clear PEM key, or none, is left alone.
pub fn reseal_tls_key(config: &Config, ring: &MasterKey) -> Result<bool, StartupError> {
    let path = match &config.tls_key {
        Some(path) => path.clone(),
        None => gw::tls::self_signed_paths(&config.data_dir).1,
    };
    if !config.tls || !path.exists() {
        return Ok(false);
    }
    Ok(gw::tls::reseal_key_file(&path, ring)?)
}

const INLINE_KEY_CANNOT_ROTATE: &str = "the master key is given inline (GATEHOUSE_MASTER_KEY / master_key), where rotate-master cannot store the new one: put the key in a file (master_key_file, mode 0600) and run it again";

/// Checks, before a rotation starts, that [`persist_rotated_key`] will be able to store
/// the new key.
pub fn rotation_target(config: &Config) -> Result<(), StartupError> {
    let err = |e: crate::crypto::CryptoError| StartupError::MasterKey(format!("master key: {e}"));
    match config.master_key_source()? {
        MasterKeySource::Inline => Err(StartupError::MasterKey(INLINE_KEY_CANNOT_ROTATE.into())),
        MasterKeySource::File(path) | MasterKeySource::Generated(path) => {
            crate::crypto::check_key_dir_writable(&path).map_err(err)
        }
    }
}

/// The configured master key. A passphrase-sealed file (issue 27) is asked the
/// passphrase for through `config.master_key_passphrase`, and is never replaced by a
/// generated key.
pub fn load_master_key(config: &Config) -> Result<MasterKey, StartupError> {
    use crate::crypto::{CryptoError, is_sealed_key_file};
    use secrecy::ExposeSecret;
    let err = |e: CryptoError| StartupError::MasterKey(format!("master key: {e}"));
    match config.master_key_source()? {
        MasterKeySource::Inline => {
            let text = config
                .master_key
                .as_ref()
                .map(|k| k.expose_secret())
                .unwrap_or_default();
            MasterKey::from_base64(text).map_err(err)
        }
        MasterKeySource::File(path) => {
            if is_sealed_key_file(&path).map_err(err)? {
                return open_sealed(config, &path);
            }
            MasterKey::from_file(&path).map_err(err)
        }
        MasterKeySource::Generated(path) => {
            ensure_private_dir(&config.data_dir)?;
            match is_sealed_key_file(&path) {
                Ok(true) => return open_sealed(config, &path),
                Ok(false) | Err(CryptoError::KeyFileMissing { .. }) => {}
                Err(e) => return Err(err(e)),
            }
            let (key, generated) = MasterKey::load_or_generate(&path).map_err(err)?;
            if generated {
                tracing::warn!(
                    path = %path.display(),
                    "generated a new master key; back it up: without it, sealed secrets cannot be opened"
                );
            }
            Ok(key)
        }
    }
}

/// Checks the file's shape before asking, so a truncated or altered file is reported
/// as such and nobody types a passphrase for nothing.
fn open_sealed(config: &Config, path: &Path) -> Result<MasterKey, StartupError> {
    use crate::crypto::{read_sealed_key_file, sealed_key_file_kid};
    let plain = |e: crate::crypto::CryptoError| StartupError::MasterKey(e.to_string());
    let kid = sealed_key_file_kid(path).map_err(plain)?;
    let passphrase = config
        .master_key_passphrase
        .ask(path)
        .map_err(|e| StartupError::MasterKey(format!("master key file {path:?}: {e}")))?;
    let key = read_sealed_key_file(path, &passphrase).map_err(plain)?;
    tracing::info!(kid = %kid, "opened the passphrase-sealed master key");
    Ok(key)
}
