//! Keys Gatehouse generates for itself (the audit chain key), stored sealed under the
//! master key (DESIGN §12).
//!
//! Each row is `MasterKey::seal("sealed-secret:<name>", ..)`: the context ties a value
//! to its name, so rows cannot be swapped, and a master-key rotation can open and
//! re-seal every row without knowing what each one is for.

use chrono::NaiveDateTime;
use rand::{RngCore, rngs::OsRng};
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::{
    crypto::{CryptoError, MasterKey},
    store::{
        Store, StoreError,
        secrets::{find, insert},
    },
};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("sealed secret {name:?} cannot be opened: {source}")]
    Open {
        name: &'static str,
        source: CryptoError,
    },
    #[error("sealed secret {name:?} holds {got} bytes, expected {expected}")]
    Length {
        name: &'static str,
        got: usize,
        expected: usize,
    },
    #[error("operating system random number generator failed: {0}")]
    Random(String),
}

fn context(name: &str) -> String {
    crate::store::secrets::seal_context(name)
}

/// The 32-byte key stored under `name`, created on first use.
///
/// Instances starting together each seal a candidate and try to insert it; the first
/// insert wins and everyone re-reads the stored row, so all of them use one key.
pub async fn load_or_create_key(
    store: &Store,
    master_key: &MasterKey,
    name: &'static str,
    now: NaiveDateTime,
) -> Result<Zeroizing<[u8; 32]>, SecretError> {
    let candidate = {
        let mut bytes = Zeroizing::new([0u8; 32]);
        OsRng
            .try_fill_bytes(&mut *bytes)
            .map_err(|e| SecretError::Random(e.to_string()))?;
        master_key.seal(&context(name), &*bytes)
    };
    // Outside a transaction on purpose: on PostgreSQL a unique violation would abort
    // the transaction and the re-read could not run in it.
    let stored = store
        .run(move |conn| {
            if let Some(existing) = find(conn, name)? {
                return Ok(existing);
            }
            match insert(conn, name, &candidate, now) {
                Ok(()) | Err(StoreError::Conflict) => {}
                Err(e) => return Err(e),
            }
            find(conn, name)?.ok_or(StoreError::NotFound)
        })
        .await?;
    let opened = master_key
        .open(&context(name), &stored)
        .map_err(|source| SecretError::Open { name, source })?;
    let opened = opened.expose_secret();
    if opened.len() != 32 {
        return Err(SecretError::Length {
            name,
            got: opened.len(),
            expected: 32,
        });
    }
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(opened);
    Ok(key)
}
