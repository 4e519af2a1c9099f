//! The key that keeps personal data sealed (`store::pii`): the master key seals and
//! opens, and a random blind-index key, made on first start and kept sealed in
//! `sealed_secrets` like the audit chain key, indexes addresses. Random rather than
//! derived from the master key, so that a master-key rotation (which re-seals it)
//! leaves every index value in the database valid.

use std::sync::Arc;

use chrono::NaiveDateTime;
use secrecy::SecretSlice;

use super::sealed::{SecretError, load_or_create_key};
use crate::{
    crypto::MasterKey,
    store::{Pii, Sealer, Store},
};

/// The name of the blind-index key in `sealed_secrets`.
pub const EMAIL_INDEX_KEY_NAME: &str = "pii-email-index-key";

impl Sealer for MasterKey {
    fn seal(&self, context: &str, plaintext: &[u8]) -> String {
        MasterKey::seal(self, context, plaintext)
    }

    fn open(&self, context: &str, sealed: &str) -> Result<SecretSlice<u8>, String> {
        MasterKey::open(self, context, sealed).map_err(|e| e.to_string())
    }

    fn sealing_kid(&self) -> String {
        self.kid().to_owned()
    }
}

/// The [`Pii`] of this installation: sealed under `master_key`, addresses indexed
/// under the stored blind-index key (created on the very first start).
pub async fn load(
    store: &Store,
    master_key: Arc<MasterKey>,
    now: NaiveDateTime,
) -> Result<Pii, SecretError> {
    let index_key = load_or_create_key(store, &master_key, EMAIL_INDEX_KEY_NAME, now).await?;
    Ok(Pii::new(master_key, index_key))
}
