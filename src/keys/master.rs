//! Changing the master key while instances run (DESIGN §12, issue 27).
//!
//! `gatehouse keys rotate-master` records the rotation in the database
//! (`store::master_rotation`): the new key sealed under the old and the old under the
//! new. Every instance polls that row ([`Follower`]) and changes its key ring in step:
//!
//! 1. `announced`: instances learn the new key and open values under it, but still seal
//!    under the old one. The command waits a grace period (at least two polls), so that
//!    no instance ever meets a value under a key it does not know.
//! 2. `resealing`: instances seal under the new key; the command re-seals every sealed
//!    column in batches (each its own transaction, each row only if unchanged since
//!    read), waits a grace period again so no instance still seals under the old key,
//!    and checks that no value is left under it.
//! 3. `finished`: the new key replaces the old where the old came from, then the row is
//!    deleted and instances forget the old key.
//!
//! Derived subkeys must not change (recovery code hashes and pairwise NameIDs are
//! stored by us and by SPs): before the key changes, the subkey of every purpose in
//! `crypto::DERIVE_PURPOSES` is stored sealed in `sealed_secrets` as
//! `derived:<purpose>`, and every `MasterKey` handle derives from those pins from then
//! on.
//!
//! The command holds a lease on the row, renewed at every batch. Killed anywhere, it is
//! run again: once the lease has run out it takes the rotation over where it stood.

use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::{
    crypto::{CryptoError, DERIVE_PURPOSES, MasterKey},
    store::{
        Store, StoreError,
        master_rotation::{self as rows, ANNOUNCED, RotationRow, SealedColumn},
        outbox, saml, saml_soap_participants, secrets, signing_keys, totp, upstream, users,
    },
};

mod rotate;

pub use rotate::{Finished, Rotation, Step, rotate};

/// Every column holding values sealed under the master key. A new sealed column must be
/// added here, or a rotation would leave it under a key that is then forgotten (the
/// final check would refuse to finish: it counts only these columns, so add it).
pub const SEALED_COLUMNS: &[SealedColumn] = &[
    SealedColumn {
        table: "sealed_secrets",
        column: "value",
        row_id: "name",
        reseal: secrets::reseal,
    },
    SealedColumn {
        table: "totp_credentials",
        column: "secret_sealed",
        row_id: "user_id",
        reseal: totp::reseal,
    },
    SealedColumn {
        table: "signing_keys",
        column: "private_sealed",
        row_id: "kid",
        reseal: signing_keys::reseal,
    },
    SealedColumn {
        table: "saml_keys",
        column: "private_sealed",
        row_id: "id",
        reseal: saml::reseal_keys,
    },
    SealedColumn {
        table: "saml_soap_participants",
        column: "subject_sealed",
        row_id: "session_handle || ' ' || sp_entity_id",
        reseal: saml_soap_participants::reseal,
    },
    SealedColumn {
        table: "outbox",
        column: "body_text",
        row_id: "id",
        reseal: outbox::reseal_body_text,
    },
    SealedColumn {
        table: "outbox",
        column: "body_html",
        row_id: "id",
        reseal: outbox::reseal_body_html,
    },
    SealedColumn {
        table: "outbox",
        column: "payload",
        row_id: "id",
        reseal: outbox::reseal_payload,
    },
    SealedColumn {
        table: "outbox",
        column: "recipient_sealed",
        row_id: "id",
        reseal: outbox::rotate_recipients,
    },
    SealedColumn {
        table: "users",
        column: "email_sealed",
        row_id: "id",
        reseal: users::rotate_emails,
    },
    SealedColumn {
        table: "users",
        column: "display_name_sealed",
        row_id: "id",
        reseal: users::rotate_display_names,
    },
    SealedColumn {
        table: "users",
        column: "password_hash",
        row_id: "id",
        reseal: users::rotate_password_hashes,
    },
    SealedColumn {
        table: "password_history",
        column: "password_hash",
        row_id: "id",
        reseal: users::rotate_password_history,
    },
    SealedColumn {
        table: "upstream_connectors",
        column: "secret_sealed",
        row_id: "id",
        reseal: upstream::reseal,
    },
];

/// Name prefix of the pinned derived subkeys in `sealed_secrets`.
const PIN_PREFIX: &str = "derived:";

/// Passes over every column before the command gives up on values that keep
/// reappearing under the old key (an instance that cannot reach the database to learn
/// of the rotation would do that).
const MAX_PASSES: usize = 5;

/// How many leftover rows a refusal names.
const SHOW_ROWS: i64 = 10;

/// The context the new key is sealed for, under the old one.
fn new_key_context(kid: &str) -> String {
    format!("master-key-rotation:new:{kid}")
}

/// The context the old key is sealed for, under the new one.
fn old_key_context(kid: &str) -> String {
    format!("master-key-rotation:old:{kid}")
}

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(
        "a rotation is already under way (new key id {new_kid}, held by {holder} until {until})"
    )]
    UnderWay {
        new_kid: String,
        holder: String,
        until: String,
    },
    #[error(
        "the master key loaded (key id {loaded}) is neither the old ({old}) nor the new ({new}) key of the rotation under way: run with one of them"
    )]
    ForeignKey {
        loaded: String,
        old: String,
        new: String,
    },
    #[error(
        "this command lost its claim on the rotation (its lease ran out and another rotate-master took it over); it stopped"
    )]
    LeaseLost,
    #[error("{0}")]
    Store(String),
    #[error("{what}: {source}")]
    Crypto {
        what: &'static str,
        source: CryptoError,
    },
    #[error("the rotation record names key {claimed} but holds key {found}; refusing it")]
    Mismatch { claimed: String, found: String },
    #[error(
        "sealed values under no key this rotation knows were left as they are, and the rotation cannot finish: {0}"
    )]
    Strays(String),
    #[error(
        "values keep appearing under the old key after {passes} passes ({left}); run the command again"
    )]
    Unfinished { passes: usize, left: String },
    #[error(
        "could not store the new master key: {0}; the rotation is finished in the database, run the command again once this is fixed"
    )]
    Persist(String),
}

impl From<StoreError> for RotationError {
    fn from(e: StoreError) -> Self {
        match e {
            // Re-sealers name the column and row in a `Query` message; say just that.
            StoreError::Query(m) => Self::Store(m),
            other => Self::Store(other.to_string()),
        }
    }
}

impl From<crate::audit::AuditError> for RotationError {
    fn from(e: crate::audit::AuditError) -> Self {
        Self::Store(e.to_string())
    }
}

/// Learns, from the rotation row, the key `key` does not know yet.
fn learn_other(key: &MasterKey, row: &RotationRow) -> Result<(), RotationError> {
    let foreign = || RotationError::ForeignKey {
        loaded: key.kid().to_owned(),
        old: row.old_kid.clone(),
        new: row.new_kid.clone(),
    };
    if !key.knows(&row.new_kid) {
        if !key.knows(&row.old_kid) {
            return Err(foreign());
        }
        let new = open_key(key, &new_key_context(&row.new_kid), &row.new_key_sealed)?;
        check_kid(&new, &row.new_kid)?;
        key.learn(&new);
    }
    if !key.knows(&row.old_kid) {
        let old = open_key(key, &old_key_context(&row.old_kid), &row.old_key_sealed)?;
        check_kid(&old, &row.old_kid)?;
        key.learn(&old);
    }
    Ok(())
}

fn open_key(key: &MasterKey, context: &str, sealed: &str) -> Result<MasterKey, RotationError> {
    key.open_key(context, sealed)
        .map_err(|source| RotationError::Crypto {
            what: "the key in the rotation record cannot be opened",
            source,
        })
}

fn check_kid(key: &MasterKey, claimed: &str) -> Result<(), RotationError> {
    if key.kid() == claimed {
        Ok(())
    } else {
        Err(RotationError::Mismatch {
            claimed: claimed.to_owned(),
            found: key.kid().to_owned(),
        })
    }
}

/// Loads the pinned derived subkeys `key` can open and has not pinned yet. A pin under
/// a key not learnt yet is left for a later poll.
async fn load_pins(store: &Store, key: &MasterKey) -> Result<(), RotationError> {
    let stored = store.run(|c| secrets::with_prefix(c, PIN_PREFIX)).await?;
    for (name, sealed) in stored {
        let Some(purpose) = name.strip_prefix(PIN_PREFIX) else {
            continue;
        };
        if key.is_pinned(purpose) || !DERIVE_PURPOSES.contains(&purpose) {
            continue;
        }
        let opened = match key.open(&secrets::seal_context(&name), &sealed) {
            Ok(opened) => opened,
            Err(CryptoError::UnknownKey { .. }) => continue,
            Err(source) => {
                return Err(RotationError::Crypto {
                    what: "a pinned derived key cannot be opened",
                    source,
                });
            }
        };
        let bytes = opened.expose_secret();
        if bytes.len() != 32 {
            return Err(RotationError::Crypto {
                what: "a pinned derived key cannot be opened",
                source: CryptoError::WrongLength { got: bytes.len() },
            });
        }
        let mut pinned = Zeroizing::new([0u8; 32]);
        pinned.copy_from_slice(bytes);
        key.pin(purpose, pinned);
    }
    Ok(())
}

/// What an instance has seen of the rotation, from one poll to the next.
#[derive(Debug, Default)]
pub struct Follower {
    /// The new key of the rotation last seen under way.
    new_kid: Option<String>,
}

impl Follower {
    /// Brings `key` in step with the rotation recorded in the database: learns the
    /// other key, seals under the one the state says, forgets the old key once the
    /// rotation is gone, and loads pinned derived keys. Run at start-up before anything
    /// is opened, then every `master_key_poll_secs`.
    ///
    /// # Errors
    ///
    /// The database cannot be read, or the rotation row cannot be opened with `key`
    /// (another installation's key): `key` is then unchanged.
    pub async fn sync(&mut self, store: &Store, key: &MasterKey) -> Result<(), RotationError> {
        match store.run(rows::find).await? {
            None => {
                if let Some(new_kid) = self.new_kid.take()
                    && key.seal_with(&new_kid)
                {
                    key.forget_other_keys();
                    tracing::info!(kid = %new_kid, "master key rotation finished: sealing under the new key, the old key is forgotten");
                }
            }
            Some(row) => {
                learn_other(key, &row)?;
                let sealing = if row.state == ANNOUNCED {
                    &row.old_kid
                } else {
                    &row.new_kid
                };
                if key.sealing_kid() != *sealing {
                    key.seal_with(sealing);
                    tracing::info!(state = %row.state, old = %row.old_kid, new = %row.new_kid, sealing = %sealing, "master key rotation under way");
                }
                self.new_kid = Some(row.new_kid);
            }
        }
        load_pins(store, key).await
    }
}

#[cfg(test)]
mod tests;
