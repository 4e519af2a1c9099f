//! The master key and the sealing of secrets at rest (DESIGN §12).
//!
//! Gatehouse keeps a single 256-bit [`MasterKey`]. Everything secret that has
//! to sit in the database (TOTP seeds, private signing keys, upstream client
//! secrets, the audit chain key) is stored *sealed* under it, and other
//! long-lived symmetric keys (CSRF token MAC, ...) are *derived* from it. Stealing a
//! database dump therefore yields nothing usable without the key file.
//!
//! # Sealed text format
//!
//! [`MasterKey::seal`] produces ASCII text that fits a `TEXT` column:
//!
//! ```text
//! v1.<kid>.<base64url-no-pad(nonce[12] || ciphertext || tag[16])>
//! ```
//!
//! * `v1` — AES-256-GCM with a random 96-bit nonce, the master key used
//!   directly as the AES key, and the caller's `context` string (UTF-8 bytes,
//!   nothing added) as associated data.
//! * `<kid>` — [`MasterKey::kid`] of the sealing key, so a value sealed under a
//!   different key is reported as such ([`CryptoError::UnknownKey`]) instead of
//!   as tampering, which is what an operator needs to see after a key mix-up.
//!
//! The context (e.g. `"totp-secret:<user id>"`) makes a sealed value open only
//! for the row and purpose it was sealed for: copying it into another user's
//! row, or from a TOTP column into a signing-key column, makes it fail.
//!
//! # Key changes
//!
//! Replacing the master key by hand makes every sealed value unopenable
//! ([`CryptoError::UnknownKey`]). `gatehouse keys rotate-master` changes it
//! safely while instances run (`keys::master`): each instance's `MasterKey` is a
//! small ring that learns the new key from the database, opens values under
//! either key, seals under the one the rotation says, and returns the derived
//! subkeys pinned when the rotation began ([`DERIVE_PURPOSES`]), so recovery
//! code hashes, pairwise NameIDs and CSRF tokens survive it. The audit chain
//! key is a sealed random key and is simply re-sealed.

pub mod jose;
mod jws_openssl;
/// The JWS crypto provider (RSA and ES256 by OpenSSL) that every JWT check here goes
/// through.
pub use jws_openssl::install as install_jws_provider;
mod master_key;
mod seal;
pub mod signing;

use std::io;
use std::path::PathBuf;

pub use master_key::passphrase::{
    MAX_PASSPHRASE_BYTES, MIN_PASSPHRASE_CHARS, create_sealed_key_file, is_sealed_key_file,
    read_sealed_key_file, sealed_key_file_kid, write_sealed_key_file,
};
pub use master_key::{
    DERIVE_PURPOSES, MASTER_KEY_LEN, MasterKey, check_key_dir_writable, replace_key_file,
};
pub use seal::SEALED_VERSION;

/// Everything that can go wrong loading the master key or opening a sealed
/// value.
///
/// Every message is a single line and never contains key material, the text a
/// key was parsed from, or the contents of a sealed value: these errors end up
/// in logs and in operators' terminals.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The key decoded from base64 to the wrong number of bytes.
    #[error("master key must be 32 bytes (256 bits) of base64, got {got} bytes")]
    WrongLength {
        /// How many bytes the base64 decoded to.
        got: usize,
    },

    /// The key text is not standard base64.
    #[error(
        "master key is not valid base64 (expected 32 random bytes in standard base64, e.g. from `openssl rand -base64 32`)"
    )]
    NotBase64,

    /// [`MasterKey::from_file`] was pointed at a file that does not exist.
    #[error("master key file {path:?} does not exist")]
    KeyFileMissing {
        /// The path that was looked up.
        path: PathBuf,
    },

    /// The key file can be read by accounts other than its owner.
    #[error(
        "master key file {path:?} is accessible by group or others (mode {mode:04o}); run `chmod 600 {path:?}`"
    )]
    KeyFileTooOpen {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// The key file is far larger than any base64 master key could be.
    #[error(
        "master key file {path:?} is larger than {max} bytes, so it does not hold a base64 master key"
    )]
    KeyFileTooLarge {
        /// The key file.
        path: PathBuf,
        /// The size limit that was exceeded.
        max: u64,
    },

    /// The key file exists but its contents are not a valid master key.
    // `reason` is shown in the message rather than exposed as `source()` so
    // that error-chain printers (anyhow's `{:#}`) don't print it twice.
    #[error("master key file {path:?}: {reason}")]
    InvalidKeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with its contents ([`CryptoError::WrongLength`] or
        /// [`CryptoError::NotBase64`]).
        reason: Box<CryptoError>,
    },

    /// Reading or writing the key file failed at the OS level.
    #[error("could not {action} master key file {path:?}: {cause}")]
    KeyFileIo {
        /// What was being attempted ("open", "read", "create", ...).
        action: &'static str,
        /// The key file (or the temporary file next to it).
        path: PathBuf,
        /// The OS error.
        cause: io::Error,
    },

    /// The operating system's random number generator failed.
    #[error("operating system random number generator failed: {cause}")]
    Random {
        /// The OS error.
        cause: io::Error,
    },

    /// The sealed value has a version tag this build does not understand.
    #[error(
        "sealed value has format version {version:?}; this build only reads {SEALED_VERSION:?}"
    )]
    UnsupportedVersion {
        /// The version tag found (always `v` followed by digits).
        version: String,
    },

    /// The sealed value was sealed under a different master key.
    #[error(
        "sealed value was sealed under master key {kid}, which is not the configured master key"
    )]
    UnknownKey {
        /// Key id of the master key that sealed the value.
        kid: String,
    },

    /// The sealed value is not in the `v1.<kid>.<payload>` shape.
    #[error("sealed value is malformed: {reason}")]
    Malformed {
        /// Which part of the shape is wrong.
        reason: &'static str,
    },

    /// The ciphertext did not authenticate.
    ///
    /// AES-GCM deliberately cannot tell *why*: a modified value and a value
    /// opened under a different context look exactly the same to it.
    #[error(
        "sealed value failed authentication: it was altered, or was sealed for a different context"
    )]
    AuthenticationFailed,

    /// A passphrase-sealed key file did not open: the passphrase is wrong, or the
    /// file was changed (AES-GCM cannot tell which).
    #[error("master key file {path:?}: wrong passphrase (or the file was altered)")]
    WrongPassphrase {
        /// The sealed key file.
        path: PathBuf,
    },

    /// A file that should be a passphrase-sealed key file is not a whole one.
    #[error("master key file {path:?} is not a usable sealed key file: {reason}")]
    InvalidSealedKeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it (never any of its contents).
        reason: &'static str,
    },

    /// `keys init-master` will not replace a key file: that would lose a key.
    #[error("master key file {path:?} already exists; it is not replaced")]
    KeyFileExists {
        /// The existing file.
        path: PathBuf,
    },

    /// A new passphrase is shorter than the policy allows.
    #[error("the passphrase must be at least {min} characters")]
    PassphraseTooShort {
        /// The minimum, in characters.
        min: usize,
    },

    /// A passphrase longer than any typed one: the wrong input.
    #[error("the passphrase is longer than {max} bytes")]
    PassphraseTooLong {
        /// The maximum, in bytes.
        max: usize,
    },

    /// No passphrase was given (an empty line or an empty input).
    #[error("no passphrase was given (the input was empty)")]
    EmptyPassphrase,

    /// The passphrase key derivation could not run with the parameters asked for.
    #[error("sealing the master key failed: {reason}")]
    Kdf {
        /// Which step refused.
        reason: &'static str,
    },
}
