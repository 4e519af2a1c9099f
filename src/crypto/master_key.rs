//! The master key itself: where it comes from, how it is identified, and the
//! subkeys derived from it.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use rand::RngCore;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox, SecretString};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::CryptoError;

pub mod passphrase;
mod ring;

pub use ring::DERIVE_PURPOSES;
use ring::Ring;

/// Length of the master key in bytes (256 bits).
pub const MASTER_KEY_LEN: usize = 32;

/// Domain-separation label for the key id, so the kid can never coincide with
/// any other hash Gatehouse computes over the key.
const KID_LABEL: &[u8] = b"gatehouse/master-key-id/v1\0";

/// Prefix of every derivation label; see [`MasterKey::derive`].
const DERIVE_PREFIX: &str = "gatehouse/";

/// HMAC-SHA-256 block size. A 32-byte HMAC key is, by definition (RFC 2104),
/// zero-padded to this length, which lets us use the infallible constructor.
const HMAC_BLOCK_LEN: usize = 64;

/// A key file holds ~45 bytes. Anything much bigger is the wrong file, and
/// capping the read keeps a mistaken path (a log, a device) from being
/// slurped into memory.
const MAX_KEY_FILE_LEN: u16 = 1024;

/// Standard alphabet; padding optional on input (people paste keys with and
/// without it), always written on output. Non-canonical trailing bits are
/// rejected so each key has exactly one text form.
const KEY_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The 256-bit master key, and during a rotation the ring of keys around it.
///
/// The bytes live in heap boxes that are zeroized on drop, so moving a
/// `MasterKey` never leaves copies behind. It is deliberately not `Clone`:
/// share it with `Arc<MasterKey>`. `Debug` shows only the [key id](Self::kid).
///
/// A running instance keeps one `MasterKey` for its whole life, while
/// `gatehouse keys rotate-master` replaces the key underneath (DESIGN §12): the
/// handle therefore holds a [ring](ring) behind a lock. [`Self::seal`] uses the
/// ring's *sealing* key, [`Self::open`] whichever known key the value names, and
/// [`Self::derive`] returns the subkeys pinned when a rotation began, so MACs and
/// blind indexes stay valid across it.
pub struct MasterKey {
    /// The key this handle was loaded or generated with.
    own: Arc<KeyMaterial>,
    ring: RwLock<Ring>,
}

/// One key and its id.
pub(super) struct KeyMaterial {
    key: SecretBox<[u8; MASTER_KEY_LEN]>,
    kid: String,
}

impl KeyMaterial {
    pub(super) fn kid(&self) -> &str {
        &self.kid
    }

    pub(super) fn bytes(&self) -> &[u8; MASTER_KEY_LEN] {
        self.key.expose_secret()
    }

    /// `HMAC-SHA-256(key, "gatehouse/" + purpose)`.
    fn hmac(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        let mut block = Zeroizing::new([0u8; HMAC_BLOCK_LEN]);
        block[..MASTER_KEY_LEN].copy_from_slice(self.bytes());
        let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new((&*block).into());
        mac.update(DERIVE_PREFIX.as_bytes());
        mac.update(purpose.as_bytes());
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&mac.finalize().into_bytes());
        out
    }
}

impl MasterKey {
    /// Wraps key bytes already in their final, zeroize-on-drop home.
    fn from_secret(key: SecretBox<[u8; MASTER_KEY_LEN]>) -> Self {
        let digest = Sha256::new()
            .chain_update(KID_LABEL)
            .chain_update(key.expose_secret())
            .finalize();
        // 32 bits is plenty to tell a handful of keys apart in error messages
        // and sealed values, and reveals nothing usable about the key.
        let kid = hex::encode(&digest[..4]);
        let own = Arc::new(KeyMaterial { key, kid });
        Self {
            ring: RwLock::new(Ring::new(own.clone())),
            own,
        }
    }

    /// A fresh random key from the operating system's CSPRNG.
    ///
    /// # Panics
    ///
    /// If the OS random number generator fails, as every other use of
    /// randomness in the process would. Use [`Self::load_or_generate`] where
    /// that must be an error instead.
    #[must_use]
    pub fn generate() -> Self {
        let mut key = SecretBox::new(Box::new([0u8; MASTER_KEY_LEN]));
        OsRng.fill_bytes(key.expose_secret_mut());
        Self::from_secret(key)
    }

    /// Like [`Self::generate`] but reports an RNG failure as an error.
    fn try_generate() -> Result<Self, CryptoError> {
        let mut key = SecretBox::new(Box::new([0u8; MASTER_KEY_LEN]));
        OsRng
            .try_fill_bytes(key.expose_secret_mut())
            .map_err(|e| CryptoError::Random { cause: e.into() })?;
        Ok(Self::from_secret(key))
    }

    /// Parses a key from standard base64 (padding optional, surrounding
    /// whitespace ignored), e.g. the output of `openssl rand -base64 32`.
    ///
    /// # Errors
    ///
    /// [`CryptoError::NotBase64`] or [`CryptoError::WrongLength`]; neither
    /// repeats any of `text`.
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let text = text.trim();
        // Decode into a buffer we own and wipe, reserved up front so decoding
        // never reallocates and strands a copy of the key on the heap.
        let mut decoded =
            Zeroizing::new(Vec::with_capacity(base64::decoded_len_estimate(text.len())));
        KEY_BASE64
            .decode_vec(text, &mut decoded)
            .map_err(|_| CryptoError::NotBase64)?;
        if decoded.len() != MASTER_KEY_LEN {
            return Err(CryptoError::WrongLength { got: decoded.len() });
        }
        let mut key = SecretBox::new(Box::new([0u8; MASTER_KEY_LEN]));
        key.expose_secret_mut().copy_from_slice(&decoded);
        Ok(Self::from_secret(key))
    }

    /// Reads a key file holding the base64 key (a trailing newline is fine).
    ///
    /// # Errors
    ///
    /// [`CryptoError::KeyFileMissing`] if there is no such file;
    /// [`CryptoError::KeyFileTooOpen`] on unix if group or others have any
    /// access to it; [`CryptoError::InvalidKeyFile`] if its contents are not a
    /// key; [`CryptoError::KeyFileTooLarge`] or [`CryptoError::KeyFileIo`]
    /// otherwise. All of them name the path.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, CryptoError> {
        let path = path.as_ref();
        read_key_file(path)?.ok_or_else(|| CryptoError::KeyFileMissing {
            path: path.to_owned(),
        })
    }

    /// Loads the key file if it exists; otherwise generates a key and creates
    /// the file (mode 0600 on unix) holding it.
    ///
    /// Returns `true` alongside the key when this call created the file, so
    /// the caller can warn, once, that a key was generated and must be backed
    /// up — losing it loses every sealed secret.
    ///
    /// The file appears atomically and complete, and if several processes
    /// start at once exactly one key wins: the others return the winner's key
    /// with `false`.
    ///
    /// # Errors
    ///
    /// As [`Self::from_file`] for an existing file; [`CryptoError::KeyFileIo`]
    /// if the file cannot be created (the directory is not created for you);
    /// [`CryptoError::Random`] if the OS RNG fails.
    pub fn load_or_generate(path: impl AsRef<Path>) -> Result<(Self, bool), CryptoError> {
        let path = path.as_ref();
        if let Some(existing) = read_key_file(path)? {
            return Ok((existing, false));
        }
        let key = Self::try_generate()?;
        match publish_key_file(path, &key)? {
            None => Ok((key, true)),
            Some(winner) => Ok((winner, false)),
        }
    }

    /// The key id of the key this handle was loaded with: the first 8 hex
    /// characters of SHA-256 over a fixed label and the key. It identifies the
    /// key in sealed values, logs and error messages without revealing
    /// anything about it. During a rotation the key that seals may be another
    /// one: see [`Self::sealing_kid`].
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.own.kid
    }

    /// Derives a 256-bit subkey for one purpose, one of [`DERIVE_PURPOSES`]:
    /// `HMAC-SHA-256(key = master key, message = "gatehouse/" + purpose)`, or
    /// the subkey pinned for that purpose when a master-key rotation began.
    ///
    /// Different purposes give independent keys, so one leaking does not
    /// expose the master key or the others. Stored values depend on some of
    /// them (recovery code hashes, pairwise SAML NameIDs), so a rotation pins
    /// every listed purpose's subkey first ([`Self::pin`]) and they never
    /// change afterwards. A purpose missing from the list would escape the
    /// pinning and change at the next rotation: debug builds panic on one.
    #[must_use]
    pub fn derive(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        debug_assert!(
            DERIVE_PURPOSES.contains(&purpose),
            "derive({purpose:?}): add the purpose to DERIVE_PURPOSES so rotations pin it"
        );
        if let Some(pinned) = self.pinned(purpose) {
            return pinned;
        }
        self.own.hmac(purpose)
    }

    /// The key as standard base64 with padding — the format every loader
    /// accepts — for the CLI that generates and prints a key.
    #[must_use]
    pub fn to_base64(&self) -> SecretString {
        // `encode` allocates exactly, so converting into the boxed secret does
        // not reallocate and leave an unwiped copy behind.
        SecretString::from(KEY_BASE64.encode(self.own.bytes()))
    }

    /// The raw key of this handle's own key, for tests of the formulas.
    #[cfg(test)]
    pub(super) fn bytes(&self) -> &[u8; MASTER_KEY_LEN] {
        self.own.bytes()
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("kid", &self.own.kid)
            .finish_non_exhaustive()
    }
}

fn io_error(action: &'static str, path: &Path, cause: io::Error) -> CryptoError {
    CryptoError::KeyFileIo {
        action,
        path: path.to_owned(),
        cause,
    }
}

/// Reads and parses a key file; `Ok(None)` if it does not exist, so that
/// `load_or_generate` can tell "absent" from "present but broken".
fn read_key_file(path: &Path) -> Result<Option<MasterKey>, CryptoError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("open", path, e)),
    };
    // Check the handle we read from, not the path, so a swap between the check
    // and the read cannot slip a different file past it.
    check_permissions(&file, path)?;

    let mut text = Zeroizing::new(Vec::with_capacity(usize::from(MAX_KEY_FILE_LEN) + 1));
    file.take(u64::from(MAX_KEY_FILE_LEN) + 1)
        .read_to_end(&mut text)
        .map_err(|e| io_error("read", path, e))?;
    if text.len() > usize::from(MAX_KEY_FILE_LEN) {
        return Err(CryptoError::KeyFileTooLarge {
            path: path.to_owned(),
            max: u64::from(MAX_KEY_FILE_LEN),
        });
    }
    let invalid = |reason| CryptoError::InvalidKeyFile {
        path: path.to_owned(),
        reason: Box::new(reason),
    };
    let text = std::str::from_utf8(&text).map_err(|_| invalid(CryptoError::NotBase64))?;
    MasterKey::from_base64(text).map(Some).map_err(invalid)
}

/// The master key protects everything, so a key file other local accounts can
/// read is a misconfiguration we refuse rather than warn about.
#[cfg(unix)]
fn check_permissions(file: &File, path: &Path) -> Result<(), CryptoError> {
    use std::os::unix::fs::PermissionsExt as _;

    let mode = file
        .metadata()
        .map_err(|e| io_error("inspect", path, e))?
        .permissions()
        .mode()
        & 0o7777;
    if mode & 0o077 != 0 {
        return Err(CryptoError::KeyFileTooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_file: &File, _path: &Path) -> Result<(), CryptoError> {
    // No portable owner-only notion to check; protect the file with ACLs.
    Ok(())
}

/// Removes the temporary file on every exit path. Failure to remove is
/// ignored: after a successful rename the name is already gone, and a stray
/// temp file must not turn a working startup into an error.
struct TempFile {
    path: PathBuf,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Writes `key` to `path` without ever exposing a partial file and without
/// replacing a file someone else created meanwhile.
///
/// Returns `None` if our key was published, or `Some(winner)` if another
/// process created the file first (its key must be used, or the two processes
/// would seal under different keys).
fn publish_key_file(path: &Path, key: &MasterKey) -> Result<Option<MasterKey>, CryptoError> {
    // Same directory, so the final link/rename stays on one filesystem.
    let (dir, file_name) = split_key_path(path)?;

    let (temp, mut file) = create_temp_file(dir, file_name)?;
    let encoded = key.to_base64();
    file.write_all(encoded.expose_secret().as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        // The file must be durable before it becomes visible: a key that is
        // lost after secrets were sealed with it loses those secrets.
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("write", &temp.path, e))?;
    drop(file);

    // rename() would silently replace a file another process published in the
    // meantime; link() fails instead, which is exactly the "create_new" we
    // need for the final name.
    match fs::hard_link(&temp.path, path) {
        Ok(()) => {
            sync_dir(dir);
            Ok(None)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => adopt_existing(path),
        Err(_) => {
            // Some filesystems (FAT, some network/FUSE mounts) lack hard
            // links. Fall back to rename, narrowing the race to this check.
            if fs::symlink_metadata(path).is_ok() {
                return adopt_existing(path);
            }
            fs::rename(&temp.path, path).map_err(|e| io_error("create", path, e))?;
            sync_dir(dir);
            Ok(None)
        }
    }
}

/// Replaces the key file at `path` with `key` (its own key) atomically: the file at
/// `path` holds the old key or the new one, whole, at every instant, and the new one
/// is on disk before it takes the old one's place.
///
/// For `gatehouse keys rotate-master`, once every sealed value is under `key`.
///
/// # Errors
///
/// [`CryptoError::KeyFileIo`] naming the path; the old file is then untouched.
pub fn replace_key_file(path: &Path, key: &MasterKey) -> Result<(), CryptoError> {
    let (dir, file_name) = split_key_path(path)?;
    let (temp, mut file) = create_temp_file(dir, file_name)?;
    let encoded = key.to_base64();
    file.write_all(encoded.expose_secret().as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("write", &temp.path, e))?;
    drop(file);
    fs::rename(&temp.path, path).map_err(|e| io_error("replace", path, e))?;
    sync_dir(dir);
    Ok(())
}

/// Whether a key file can be written next to `path` (a temporary file is created and
/// removed): checked before a rotation starts, so that it does not stop at the end.
///
/// # Errors
///
/// [`CryptoError::KeyFileIo`] naming the directory.
pub fn check_key_dir_writable(path: &Path) -> Result<(), CryptoError> {
    let (dir, file_name) = split_key_path(path)?;
    create_temp_file(dir, file_name).map(drop)
}

fn split_key_path(path: &Path) -> Result<(&Path, &std::ffi::OsStr), CryptoError> {
    let file_name = path.file_name().ok_or_else(|| {
        io_error(
            "create",
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"),
        )
    })?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    Ok((dir, file_name))
}

/// Another process won the race to create the key file: use its key.
fn adopt_existing(path: &Path) -> Result<Option<MasterKey>, CryptoError> {
    match read_key_file(path)? {
        Some(winner) => Ok(Some(winner)),
        // It existed a moment ago; someone deleted it again. Don't guess.
        None => Err(io_error(
            "create",
            path,
            io::Error::other("the file was created and removed concurrently"),
        )),
    }
}

/// Creates a fresh temporary file next to the key file, owner-only from the
/// moment it exists (never briefly world-readable) and never reusing a name.
fn create_temp_file(
    dir: &Path,
    file_name: &std::ffi::OsStr,
) -> Result<(TempFile, File), CryptoError> {
    const ATTEMPTS: usize = 8;
    let mut last_error = None;
    for _ in 0..ATTEMPTS {
        let mut suffix = [0u8; 8];
        OsRng
            .try_fill_bytes(&mut suffix)
            .map_err(|e| CryptoError::Random { cause: e.into() })?;
        let mut name = OsString::from(".");
        name.push(file_name);
        name.push(format!(
            ".tmp-{}-{}",
            std::process::id(),
            hex::encode(suffix)
        ));
        let temp_path = dir.join(name);

        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        match options.open(&temp_path) {
            Ok(file) => return Ok((TempFile { path: temp_path }, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_error = Some(e),
            Err(e) => return Err(io_error("create", &temp_path, e)),
        }
    }
    Err(io_error(
        "create",
        dir,
        last_error.unwrap_or_else(|| io::Error::other("no free temporary file name")),
    ))
}

/// Makes the new directory entry durable. Best effort: some filesystems refuse
/// to fsync a directory, and the key file itself is already synced.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    {
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
    }
}

#[cfg(test)]
mod tests;
