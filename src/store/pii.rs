//! Personal data sealed at field level (DESIGN §12, issue 27): what a copy of the
//! database shows of a person is ciphertext and a keyed hash, never their address, name
//! or password hash.
//!
//! * An email address and a display name are stored as `v1.<kid>.<…>` text sealed under
//!   the master key, for the row they belong to (`user-email:<user id>`,
//!   `user-display-name:<user id>`): a value copied into another row does not open.
//! * Lookups by address compare a **blind index**: HMAC-SHA-256 of the lower-cased
//!   address under a random 32-byte key of its own, kept sealed in `sealed_secrets`
//!   (`keys::pii`). It is not derived from the master key, so a master-key rotation
//!   re-seals that key and leaves every index value as it is. Equal addresses (in any
//!   case) have equal indexes; nothing else can be learned from one without the key.
//! * Password hashes (argon2id PHC strings) are wrapped the same way
//!   (`password-hash:<user id>`, `password-history:<row id>`), so a dump alone cannot
//!   be attacked offline. A clear PHC string from an earlier release is still read, and
//!   wrapped at start-up ([`seal_legacy`]) or at the owner's next sign-in.
//!
//! The store stays below cryptography (the layering test): it asks a [`Sealer`] to seal
//! and open, and `keys::pii` hands it the master key as one.

use std::sync::Arc;

use diesel::prelude::*;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{Backend, Store, StoreError};

/// What the store needs of a key to keep columns sealed: the master key is one
/// (`keys::pii`). `open` answers a one-line reason that never holds the value.
pub trait Sealer: Send + Sync {
    /// Seals `plaintext` for `context` under the current sealing key.
    fn seal(&self, context: &str, plaintext: &[u8]) -> String;
    /// Opens a value sealed for `context` (under any key the sealer knows).
    fn open(&self, context: &str, sealed: &str) -> Result<SecretSlice<u8>, String>;
    /// The id of the key [`Self::seal`] uses, as it appears in sealed text.
    fn sealing_kid(&self) -> String;
}

/// The prefix every legacy (clear) argon2 PHC string starts with; sealed text starts
/// with `v1.`.
pub const CLEAR_HASH_PREFIX: &str = "$argon2";

/// Seals and opens the personal fields of user rows, and computes their blind index.
/// Cheap to clone.
#[derive(Clone)]
pub struct Pii {
    inner: Arc<Inner>,
}

struct Inner {
    sealer: Arc<dyn Sealer>,
    index_key: Zeroizing<[u8; 32]>,
    /// Sealed stand-ins, opened when a lookup by name finds nobody, so that an unknown
    /// name costs the same work as a known one (DESIGN §4).
    dummy: [String; 3],
}

impl std::fmt::Debug for Pii {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pii").finish_non_exhaustive()
    }
}

const DUMMY_CONTEXT: &str = "user-dummy:";

impl Pii {
    /// Personal data sealed by `sealer`, addresses indexed under `index_key`.
    pub fn new(sealer: Arc<dyn Sealer>, index_key: Zeroizing<[u8; 32]>) -> Self {
        let dummy = [
            sealer.seal(DUMMY_CONTEXT, b"nobody@example.invalid"),
            sealer.seal(DUMMY_CONTEXT, b"Nobody"),
            sealer.seal(
                DUMMY_CONTEXT,
                b"$argon2id$v=19$m=19456,t=2,p=1$bm9ib2R5bm9ib2R5$bm9ib2R5bm9ib2R5bm9ib2R5bm9ib2R5bm9ib2Q",
            ),
        ];
        Self {
            inner: Arc::new(Inner {
                sealer,
                index_key,
                dummy,
            }),
        }
    }

    pub(crate) fn sealer(&self) -> &dyn Sealer {
        self.inner.sealer.as_ref()
    }

    /// The blind index of `email`: hex HMAC-SHA-256 of its lower-cased form, as the
    /// `lower(email)` comparisons it replaces treated case (every letter, not only ASCII).
    pub fn email_index(&self, email: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.inner.index_key.as_slice())
            .expect("HMAC takes any key length");
        mac.update(b"user-email\0");
        mac.update(normalise_email(email).as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// `email` sealed for user `user_id`.
    pub fn seal_email(&self, user_id: &str, email: &str) -> String {
        self.sealer()
            .seal(&email_context(user_id), email.as_bytes())
    }

    /// `name` sealed as the display name of user `user_id` (tests write rows with it).
    pub fn seal_display_name(&self, user_id: &str, name: &str) -> String {
        self.sealer()
            .seal(&display_name_context(user_id), name.as_bytes())
    }

    /// A PHC string wrapped as the current password hash of user `user_id`.
    pub fn wrap_hash(&self, user_id: &str, phc: &str) -> String {
        self.sealer().seal(&hash_context(user_id), phc.as_bytes())
    }

    /// A PHC string wrapped as the password-history row `row_id`.
    pub(crate) fn wrap_history_hash(&self, row_id: &str, phc: &str) -> String {
        self.sealer().seal(&history_context(row_id), phc.as_bytes())
    }

    /// Opens a sealed text column of row `id` (`what` names it in errors).
    pub(crate) fn open_text(
        &self,
        context: &str,
        sealed: &str,
        what: &str,
        id: &str,
    ) -> Result<String, StoreError> {
        open_text(self.sealer(), context, sealed, what, id)
    }

    /// The opened PHC string of a stored hash, and whether it was stored in clear (an
    /// earlier release's row, to be wrapped).
    pub(crate) fn open_hash(
        &self,
        context: &str,
        stored: &str,
        id: &str,
    ) -> Result<(String, bool), StoreError> {
        if stored.starts_with(CLEAR_HASH_PREFIX) {
            return Ok((stored.to_owned(), true));
        }
        Ok((
            open_text(self.sealer(), context, stored, "password hash", id)?,
            false,
        ))
    }

    /// The work of opening one user row, spent on nothing (a lookup found nobody).
    pub(crate) fn open_dummy(&self) {
        for sealed in &self.inner.dummy {
            let _ = self.sealer().open(DUMMY_CONTEXT, sealed);
        }
    }
}

/// How an address is compared: trimmed and lower-cased.
pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

pub(crate) fn email_context(user_id: &str) -> String {
    format!("user-email:{user_id}")
}

pub(crate) fn display_name_context(user_id: &str) -> String {
    format!("user-display-name:{user_id}")
}

pub(crate) fn hash_context(user_id: &str) -> String {
    format!("password-hash:{user_id}")
}

pub(crate) fn history_context(row_id: &str) -> String {
    format!("password-history:{row_id}")
}

/// Opens `sealed` for `context` as UTF-8 text; errors name the column and row only.
pub(crate) fn open_text(
    sealer: &(impl Sealer + ?Sized),
    context: &str,
    sealed: &str,
    what: &str,
    id: &str,
) -> Result<String, StoreError> {
    let opened = sealer
        .open(context, sealed)
        .map_err(|e| StoreError::Query(format!("{what} of row {id} cannot be opened: {e}")))?;
    String::from_utf8(opened.expose_secret().to_vec())
        .map_err(|_| StoreError::Query(format!("{what} of row {id} is not UTF-8")))
}

/// Rows an earlier release left in clear, sealed by one start-up pass.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LegacySealed {
    pub users: usize,
    pub password_history: usize,
    pub outbox: usize,
}

impl LegacySealed {
    pub fn any(&self) -> bool {
        self.users + self.password_history + self.outbox > 0
    }
}

/// Rows sealed per transaction by [`seal_legacy`].
pub const LEGACY_BATCH: i64 = 200;

/// The data migration of issue 27, run at start-up right after the schema migrations:
/// every user row, password-history row and outbox row still in clear (as an earlier
/// release wrote it) is sealed in place, in batches of `batch` rows, each its own
/// transaction. Every update is conditional on the row being as it was read, so two
/// instances starting at once share the work and nothing is sealed twice; a pass that
/// finds nothing costs three small queries.
///
/// On SQLite, when anything was sealed, the file is vacuumed and its WAL truncated, so
/// the clear text does not linger in free pages. (On PostgreSQL old row versions stay in
/// the table files until `VACUUM FULL`; the README says so.)
pub async fn seal_legacy(store: &Store, pii: &Pii, batch: i64) -> Result<LegacySealed, StoreError> {
    let mut done = LegacySealed::default();
    loop {
        let pii = pii.clone();
        let n = store
            .transaction(move |c| super::users::seal_legacy_users(c, &pii, batch))
            .await?;
        done.users += n;
        if n == 0 {
            break;
        }
    }
    loop {
        let pii = pii.clone();
        let n = store
            .transaction(move |c| super::users::seal_legacy_history(c, &pii, batch))
            .await?;
        done.password_history += n;
        if n == 0 {
            break;
        }
    }
    loop {
        let pii = pii.clone();
        let n = store
            .transaction(move |c| super::outbox::seal_legacy_recipients(c, pii.sealer(), batch))
            .await?;
        done.outbox += n;
        if n == 0 {
            break;
        }
    }
    if done.any() && store.backend() == Backend::Sqlite {
        // Not `run`: a large file may take longer than a request is allowed to.
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            store.run_blocking(|c| {
                diesel::sql_query("VACUUM").execute(c)?;
                diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)").execute(c)?;
                Ok(())
            })
        })
        .await
        .map_err(|e| StoreError::Query(format!("vacuum task failed: {e}")))??;
    }
    Ok(done)
}

#[cfg(test)]
mod tests;
