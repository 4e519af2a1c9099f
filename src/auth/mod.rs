//! The sign-in pipeline: hashing pool, login transactions, password step, required
//! actions, SSO sessions, and password recovery.

pub mod account;
pub mod emergency;
mod error;
pub mod guard;
pub mod hashing;
pub mod passkey;
pub mod password;
pub mod recovery;
pub mod session;
pub mod sign_in;
pub mod step_up;
pub mod totp;
pub mod transaction;
pub mod upstream;

pub use error::AuthError;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// 256 random bits, URL-safe: transaction ids, CSRF tokens, session cookies.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored instead of a bearer value, so a copy of the store hands out nothing usable.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two secrets without leaking where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}
