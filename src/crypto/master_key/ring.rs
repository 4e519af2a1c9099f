//! The keys one `MasterKey` handle knows during a master-key rotation (DESIGN §12):
//! the key that seals, the keys that may still open, and the derived subkeys pinned so
//! that a rotation never changes them.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLockReadGuard, RwLockWriteGuard};

use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use super::{CryptoError, KeyMaterial, MasterKey};

/// Every purpose [`MasterKey::derive`] is called with. A rotation pins the subkey of
/// each one before the master key changes, because stored data depends on them
/// (recovery code hashes, pairwise SAML NameIDs that SPs keep) or live clients hold
/// MACs made with them (CSRF tokens, DPoP nonces). A new purpose goes here, in the
/// one place, or debug builds panic at its first use.
pub const DERIVE_PURPOSES: &[&str] = &[
    "browser-form-csrf",
    "dpop-nonce",
    "recovery-codes",
    "saml-pairwise-name-id",
];

/// What a `MasterKey` handle can do beyond its own key.
pub(in crate::crypto) struct Ring {
    /// The key new values are sealed under.
    sealing: Arc<KeyMaterial>,
    /// Every key a value may be opened with, the sealing one included.
    known: Vec<Arc<KeyMaterial>>,
    /// Derived subkeys fixed by a rotation, by purpose.
    pins: HashMap<&'static str, Zeroizing<[u8; 32]>>,
}

impl Ring {
    pub(super) fn new(own: Arc<KeyMaterial>) -> Self {
        Self {
            sealing: own.clone(),
            known: vec![own],
            pins: HashMap::new(),
        }
    }
}

impl MasterKey {
    // A panic while holding the lock leaves nothing half-changed (every write below is
    // a single assignment or push), so a poisoned lock is still safe to use.
    fn read(&self) -> RwLockReadGuard<'_, Ring> {
        self.ring.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Ring> {
        self.ring.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The key `seal` uses now.
    pub(in crate::crypto) fn sealing_material(&self) -> Arc<KeyMaterial> {
        self.read().sealing.clone()
    }

    /// The known key with id `kid`, for `open`.
    pub(in crate::crypto) fn material(&self, kid: &str) -> Option<Arc<KeyMaterial>> {
        self.read().known.iter().find(|k| k.kid == kid).cloned()
    }

    /// The id of the key new values are sealed under: this handle's own key, except
    /// while a rotation has switched sealing to the other one.
    #[must_use]
    pub fn sealing_kid(&self) -> String {
        self.read().sealing.kid.clone()
    }

    /// Whether a value sealed under `kid` can be opened.
    #[must_use]
    pub fn knows(&self, kid: &str) -> bool {
        self.material(kid).is_some()
    }

    /// Adds `other`'s key to the ring, for opening only: a rotation has announced it,
    /// and instances that already seal with it may write values under it.
    pub fn learn(&self, other: &MasterKey) {
        let mut ring = self.write();
        if !ring.known.iter().any(|k| k.kid == other.own.kid) {
            ring.known.push(other.own.clone());
        }
    }

    /// Seals under the known key `kid` from now on. False (nothing changed) if the key
    /// is not known: sealing under a key no instance could open must be impossible.
    pub fn seal_with(&self, kid: &str) -> bool {
        let mut ring = self.write();
        let Some(key) = ring.known.iter().find(|k| k.kid == kid).cloned() else {
            return false;
        };
        ring.sealing = key;
        true
    }

    /// Forgets every key but the sealing one: the rotation finished, nothing is sealed
    /// under the others any more.
    pub fn forget_other_keys(&self) {
        let mut ring = self.write();
        let sealing = ring.sealing.clone();
        ring.known.retain(|k| Arc::ptr_eq(k, &sealing));
    }

    /// The ids of every key the ring can open with, the sealing one first.
    #[must_use]
    pub fn known_kids(&self) -> Vec<String> {
        let ring = self.read();
        let mut kids = vec![ring.sealing.kid.clone()];
        kids.extend(
            ring.known
                .iter()
                .filter(|k| k.kid != ring.sealing.kid)
                .map(|k| k.kid.clone()),
        );
        kids
    }

    /// From now on `derive(purpose)` returns `key`. False (nothing changed) for a
    /// purpose outside [`DERIVE_PURPOSES`]: a stored pin nobody derives is ignored.
    pub fn pin(&self, purpose: &str, key: Zeroizing<[u8; 32]>) -> bool {
        let Some(listed) = DERIVE_PURPOSES.iter().find(|p| **p == purpose) else {
            return false;
        };
        self.write().pins.insert(listed, key);
        true
    }

    /// The subkey pinned for `purpose`, if any.
    pub(super) fn pinned(&self, purpose: &str) -> Option<Zeroizing<[u8; 32]>> {
        self.read().pins.get(purpose).cloned()
    }

    /// Whether `purpose` has a pinned subkey.
    #[must_use]
    pub fn is_pinned(&self, purpose: &str) -> bool {
        self.read().pins.contains_key(purpose)
    }

    /// Seals `other` (the key itself) under the sealing key, for `context`: how a
    /// rotation hands the new key to running instances through the database.
    #[must_use]
    pub fn seal_key(&self, context: &str, other: &MasterKey) -> String {
        self.seal(context, other.own.bytes())
    }

    /// Opens a key sealed by [`Self::seal_key`].
    ///
    /// # Errors
    ///
    /// As [`Self::open`], and [`CryptoError::WrongLength`] if the plaintext is not a
    /// 256-bit key.
    pub fn open_key(&self, context: &str, sealed: &str) -> Result<MasterKey, CryptoError> {
        let opened = self.open(context, sealed)?;
        let bytes = opened.expose_secret();
        if bytes.len() != super::MASTER_KEY_LEN {
            return Err(CryptoError::WrongLength { got: bytes.len() });
        }
        let mut key = secrecy::SecretBox::new(Box::new([0u8; super::MASTER_KEY_LEN]));
        secrecy::ExposeSecretMut::expose_secret_mut(&mut key).copy_from_slice(bytes);
        Ok(MasterKey::from_secret(key))
    }
}
