//! A master-key file sealed with an operator's passphrase (DESIGN §12, issue 27): the
//! production way to keep the key, so that nothing lies on disk that opens the
//! database's secrets without something only the operator holds.
//!
//! # File format
//!
//! Six lines of ASCII, each ending in `\n`:
//!
//! ```text
//! gatehouse-sealed-master-key v1
//! kid=f3a3ad53
//! kdf=argon2id v=19 m=65536 t=3 p=1
//! salt=<base64url, no padding, 16 bytes>
//! nonce=<base64url, no padding, 12 bytes>
//! sealed=<base64url, no padding, 32-byte key || 16-byte tag>
//! ```
//!
//! * The first line tags the file, so a loader tells it from a plaintext base64 key
//!   (which can never start with `g…-`) without a passphrase.
//! * The key encrypting the master key is argon2id (version 0x13) of the passphrase
//!   (NFC-normalised UTF-8, so the same words typed on two terminals give one key)
//!   with the file's salt and parameters, which are read back from the file: a file
//!   sealed with stronger parameters later still opens. Parameters beyond
//!   [`MAX_MEMORY_KIB`], [`MAX_ITERATIONS`] or [`MAX_PARALLELISM`] are refused before
//!   anything is allocated, so a hostile file cannot make us take gigabytes or hours.
//! * AES-256-GCM seals the key; the first five lines, exactly as written, are its
//!   associated data, so an altered version, key id, parameter, salt or nonce fails
//!   like a wrong passphrase does (AES-GCM cannot tell the two apart).
//! * `kid` is [`MasterKey::kid`] of the sealed key: readable without the passphrase,
//!   so start-up and `config check` can name the key, and checked again once opened.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit, Nonce, Tag};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox, SecretString};
use unicode_normalization::UnicodeNormalization as _;
use zeroize::Zeroizing;

use super::{
    CryptoError, MASTER_KEY_LEN, MasterKey, TempFile, check_permissions, create_temp_file,
    io_error, split_key_path, sync_dir,
};

/// The first line's tag; the version follows after one space.
const TAG: &str = "gatehouse-sealed-master-key";
/// The version this build writes and reads.
const VERSION: &str = "v1";

/// Fewest characters a new passphrase may have. Argon2 slows guessing; it does not
/// make a short passphrase long.
pub const MIN_PASSPHRASE_CHARS: usize = 12;

/// Most bytes of passphrase accepted, wherever it comes from: a passphrase is typed,
/// and a bigger input is the wrong file.
pub const MAX_PASSPHRASE_BYTES: usize = 1024;

/// Largest argon2 memory cost a file may ask for (256 MiB).
pub const MAX_MEMORY_KIB: u32 = 256 * 1024;
/// Largest argon2 iteration count a file may ask for.
pub const MAX_ITERATIONS: u32 = 16;
/// Largest argon2 parallelism a file may ask for.
pub const MAX_PARALLELISM: u32 = 8;

/// A sealed file is ~230 bytes; this bounds what a wrong path makes us read.
const MAX_FILE_LEN: u64 = 1024;

const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The argon2id cost a sealed file records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// Memory-hard enough that each guess costs 64 MiB and a noticeable fraction of a
    /// second, paid once per start.
    fn default() -> Self {
        Self {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

impl KdfParams {
    /// Within the bounds above and argon2's own minimums.
    fn check(self) -> Result<Self, &'static str> {
        if !(1..=MAX_PARALLELISM).contains(&self.parallelism) {
            return Err("argon2 parallelism is out of bounds (1 to 8)");
        }
        if !(1..=MAX_ITERATIONS).contains(&self.iterations) {
            return Err("argon2 iterations are out of bounds (1 to 16)");
        }
        if self.memory_kib < 8 * self.parallelism || self.memory_kib > MAX_MEMORY_KIB {
            return Err("argon2 memory is out of bounds (at most 262144 KiB)");
        }
        Ok(self)
    }
}

/// Seals `key` under `passphrase` into `path`, replacing it atomically (temp file
/// 0600, fsync, rename; the directory synced). Fresh random salt and nonce every time.
///
/// # Errors
///
/// [`CryptoError::PassphraseTooShort`] under [`MIN_PASSPHRASE_CHARS`];
/// [`CryptoError::KeyFileIo`] if the file cannot be written; [`CryptoError::Random`].
pub fn write_sealed_key_file(
    path: &Path,
    key: &MasterKey,
    passphrase: &SecretString,
) -> Result<(), CryptoError> {
    let text = seal(key, passphrase, KdfParams::default())?;
    let (dir, temp) = write_temp(path, &text)?;
    fs::rename(&temp.path, path).map_err(|e| io_error("replace", path, e))?;
    sync_dir(dir);
    Ok(())
}

/// As [`write_sealed_key_file`], but never replaces an existing file, even one that
/// appears while sealing: for `keys init-master`, which must not destroy a key.
///
/// # Errors
///
/// [`CryptoError::KeyFileExists`] if `path` exists; otherwise as
/// [`write_sealed_key_file`].
pub fn create_sealed_key_file(
    path: &Path,
    key: &MasterKey,
    passphrase: &SecretString,
) -> Result<(), CryptoError> {
    create_sealed_key_file_with(path, key, passphrase, KdfParams::default())
}

fn create_sealed_key_file_with(
    path: &Path,
    key: &MasterKey,
    passphrase: &SecretString,
    params: KdfParams,
) -> Result<(), CryptoError> {
    if fs::symlink_metadata(path).is_ok() {
        return Err(CryptoError::KeyFileExists {
            path: path.to_owned(),
        });
    }
    let text = seal(key, passphrase, params)?;
    let (dir, temp) = write_temp(path, &text)?;
    // link() refuses an existing name where rename() would replace it.
    match fs::hard_link(&temp.path, path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(CryptoError::KeyFileExists {
                path: path.to_owned(),
            });
        }
        Err(e) => return Err(io_error("create", path, e)),
    }
    sync_dir(dir);
    Ok(())
}

/// Opens a sealed key file. Wrong passphrase -> one clear error; truncated/garbled
/// file -> a different clear error naming the path; never panics on any content.
///
/// # Errors
///
/// [`CryptoError::KeyFileMissing`], [`CryptoError::KeyFileTooOpen`],
/// [`CryptoError::KeyFileTooLarge`], [`CryptoError::KeyFileIo`] as for a plaintext key
/// file; [`CryptoError::InvalidSealedKeyFile`] for anything that is not a whole
/// sealed file with parameters in bounds; [`CryptoError::WrongPassphrase`] when it
/// does not authenticate.
pub fn read_sealed_key_file(
    path: &Path,
    passphrase: &SecretString,
) -> Result<MasterKey, CryptoError> {
    let text = read_bounded(path)?;
    open(&text, passphrase).map_err(|problem| problem.at(path))
}

/// Whether `path` starts with the sealed file's tag (any version). Reads only the
/// start of the file; needs no passphrase.
///
/// # Errors
///
/// [`CryptoError::KeyFileMissing`] if there is no such file, [`CryptoError::KeyFileIo`]
/// if it cannot be read.
pub fn is_sealed_key_file(path: &Path) -> Result<bool, CryptoError> {
    let mut file = open_file(path)?;
    let mut start = [0u8; TAG.len() + 1];
    let mut filled = 0;
    while filled < start.len() {
        match file.read(&mut start[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error("read", path, e)),
        }
    }
    Ok(start[..filled] == *format!("{TAG} ").as_bytes())
}

/// The key id a sealed file names, read without the passphrase (for `config check`,
/// and to check a file before asking for its passphrase). Unauthenticated until the
/// file is opened.
///
/// # Errors
///
/// As [`read_sealed_key_file`], less [`CryptoError::WrongPassphrase`].
pub fn sealed_key_file_kid(path: &Path) -> Result<String, CryptoError> {
    let text = read_bounded(path)?;
    parse(&text)
        .map(|parsed| parsed.kid.to_owned())
        .map_err(|problem| problem.at(path))
}

/// What is wrong with a sealed file's contents, before the path is known.
#[derive(Debug, PartialEq, Eq)]
enum Problem {
    Invalid(&'static str),
    UnsupportedVersion,
    WrongPassphrase,
    TooLong,
    Empty,
}

impl Problem {
    fn at(self, path: &Path) -> CryptoError {
        let path = path.to_owned();
        match self {
            Self::Invalid(reason) => CryptoError::InvalidSealedKeyFile { path, reason },
            Self::UnsupportedVersion => CryptoError::InvalidSealedKeyFile {
                path,
                reason: "it is sealed in a format version this build does not read (only v1)",
            },
            Self::WrongPassphrase => CryptoError::WrongPassphrase { path },
            Self::TooLong => CryptoError::PassphraseTooLong {
                max: MAX_PASSPHRASE_BYTES,
            },
            Self::Empty => CryptoError::EmptyPassphrase,
        }
    }
}

/// The parts of a sealed file, borrowed from its text.
struct Parsed<'a> {
    kid: &'a str,
    params: KdfParams,
    salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
    sealed: Vec<u8>,
}

/// The five header lines, exactly as they are written and authenticated.
fn header(kid: &str, params: KdfParams, salt: &[u8], nonce: &[u8]) -> String {
    format!(
        "{TAG} {VERSION}\nkid={kid}\nkdf=argon2id v=19 m={} t={} p={}\nsalt={}\nnonce={}\n",
        params.memory_kib,
        params.iterations,
        params.parallelism,
        URL_SAFE_NO_PAD.encode(salt),
        URL_SAFE_NO_PAD.encode(nonce),
    )
}

fn seal(
    key: &MasterKey,
    passphrase: &SecretString,
    params: KdfParams,
) -> Result<String, CryptoError> {
    let params = params
        .check()
        .map_err(|reason| CryptoError::Kdf { reason })?;
    let normalised = normalise(passphrase).map_err(|p| p.at(Path::new("")))?;
    if normalised.chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(CryptoError::PassphraseTooShort {
            min: MIN_PASSPHRASE_CHARS,
        });
    }
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = Nonce::<Aes256Gcm>::default();
    OsRng
        .try_fill_bytes(&mut salt)
        .and_then(|()| OsRng.try_fill_bytes(&mut nonce))
        .map_err(|e| CryptoError::Random { cause: e.into() })?;
    let kek = derive(&normalised, &salt, params).map_err(|_| CryptoError::Kdf {
        reason: "argon2 refused its parameters",
    })?;
    let header = header(key.kid(), params, &salt, &nonce);

    let mut buffer = Zeroizing::new(Vec::with_capacity(MASTER_KEY_LEN + TAG_LEN));
    buffer.extend_from_slice(key.own.bytes());
    let Ok(tag) = Aes256Gcm::new((&*kek).into()).encrypt_inout_detached(
        &nonce,
        header.as_bytes(),
        (&mut buffer[..]).into(),
    ) else {
        // 32 bytes are far below AES-GCM's limit: unreachable.
        return Err(CryptoError::Kdf {
            reason: "AES-GCM refused to seal the key",
        });
    };
    buffer.extend_from_slice(&tag);
    Ok(format!(
        "{header}sealed={}\n",
        URL_SAFE_NO_PAD.encode(&*buffer)
    ))
}

fn open(text: &str, passphrase: &SecretString) -> Result<MasterKey, Problem> {
    let parsed = parse(text)?;
    let normalised = normalise(passphrase)?;
    let kek = derive(&normalised, &parsed.salt, parsed.params)
        .map_err(|_| Problem::Invalid("argon2 refused its parameters"))?;
    let header = header(parsed.kid, parsed.params, &parsed.salt, &parsed.nonce);

    let (ciphertext, tag) = parsed.sealed.split_at(MASTER_KEY_LEN);
    let tag = Tag::<Aes256Gcm>::try_from(tag).map_err(|_| Problem::Invalid("truncated"))?;
    let nonce = Nonce::<Aes256Gcm>::try_from(&parsed.nonce[..])
        .map_err(|_| Problem::Invalid("its nonce is not 12 bytes of base64url"))?;
    let mut key = SecretBox::new(Box::new([0u8; MASTER_KEY_LEN]));
    key.expose_secret_mut().copy_from_slice(ciphertext);
    Aes256Gcm::new((&*kek).into())
        .decrypt_inout_detached(
            &nonce,
            header.as_bytes(),
            (&mut key.expose_secret_mut()[..]).into(),
            &tag,
        )
        .map_err(|_| Problem::WrongPassphrase)?;
    let key = MasterKey::from_secret(key);
    // The kid is authenticated, so this holds unless the file was made by something
    // other than this code; refuse rather than run under a key misnamed everywhere.
    if key.kid() != parsed.kid {
        return Err(Problem::Invalid(
            "the key it holds does not match the key id it names",
        ));
    }
    Ok(key)
}

/// Strict: one spelling per file, so the authenticated header is exactly what was
/// written, and any other change is refused by name.
fn parse(text: &str) -> Result<Parsed<'_>, Problem> {
    let truncated = Problem::Invalid("the file is truncated (fewer than six lines)");
    let mut lines = text.split('\n');
    let first = lines.next().unwrap_or_default();
    let version = first
        .strip_prefix(TAG)
        .and_then(|rest| rest.strip_prefix(' '))
        .ok_or(Problem::Invalid(
            "it does not start with \"gatehouse-sealed-master-key\"",
        ))?;
    if version != VERSION {
        let numbered = version
            .strip_prefix('v')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        return Err(if numbered && text.contains('\n') {
            Problem::UnsupportedVersion
        } else {
            Problem::Invalid("its first line is not \"gatehouse-sealed-master-key v1\"")
        });
    }
    let kid = field(&mut lines, "kid")?;
    let kdf = field(&mut lines, "kdf")?;
    let salt = field(&mut lines, "salt")?;
    let nonce = field(&mut lines, "nonce")?;
    let sealed = field(&mut lines, "sealed")?;
    // After the last line: its newline, then nothing.
    match (lines.next(), lines.next()) {
        (Some(""), None) => {}
        (None, _) => return Err(truncated),
        _ => return Err(Problem::Invalid("there is text after the sealed key")),
    }

    if kid.len() != 8 || !kid.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(Problem::Invalid(
            "its key id is not 8 lowercase hex characters",
        ));
    }
    let params = parse_kdf(kdf)?;
    let salt = decode_exact::<SALT_LEN>(salt)
        .ok_or(Problem::Invalid("its salt is not 16 bytes of base64url"))?;
    let nonce = decode_exact::<NONCE_LEN>(nonce)
        .ok_or(Problem::Invalid("its nonce is not 12 bytes of base64url"))?;
    let sealed = URL_SAFE_NO_PAD
        .decode(sealed)
        .ok()
        .filter(|s| s.len() == MASTER_KEY_LEN + TAG_LEN)
        .ok_or(Problem::Invalid(
            "its sealed key is not 48 bytes of base64url (truncated?)",
        ))?;
    Ok(Parsed {
        kid,
        params,
        salt,
        nonce,
        sealed,
    })
}

/// The value of the next line, which must be `<name>=<value>`.
fn field<'a>(lines: &mut std::str::Split<'a, char>, name: &str) -> Result<&'a str, Problem> {
    let line = lines
        .next()
        .filter(|line| !line.is_empty())
        .ok_or(Problem::Invalid(
            "the file is truncated (fewer than six lines)",
        ))?;
    line.strip_prefix(name)
        .and_then(|l| l.strip_prefix('='))
        .ok_or(Problem::Invalid(
            "its lines are not kid, kdf, salt, nonce, sealed in that order",
        ))
}

/// `argon2id v=19 m=<KiB> t=<passes> p=<lanes>`, numbers in canonical decimal.
fn parse_kdf(text: &str) -> Result<KdfParams, Problem> {
    let shape = Problem::Invalid("its kdf line is not \"argon2id v=19 m=… t=… p=…\"");
    let rest = text.strip_prefix("argon2id v=19 ").ok_or(shape)?;
    let mut numbers = [0u32; 3];
    let mut parts = rest.split(' ');
    for (slot, name) in numbers.iter_mut().zip(["m=", "t=", "p="]) {
        let shape = Problem::Invalid("its kdf line is not \"argon2id v=19 m=… t=… p=…\"");
        let digits = parts
            .next()
            .and_then(|p| p.strip_prefix(name))
            .ok_or(shape)?;
        // Canonical only, so the authenticated header re-renders to the same text.
        if digits.is_empty()
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || (digits.len() > 1 && digits.starts_with('0'))
        {
            return Err(Problem::Invalid("its kdf parameters are not plain numbers"));
        }
        *slot = digits
            .parse()
            .map_err(|_| Problem::Invalid("its kdf parameters are out of bounds"))?;
    }
    if parts.next().is_some() {
        return Err(Problem::Invalid(
            "its kdf line is not \"argon2id v=19 m=… t=… p=…\"",
        ));
    }
    KdfParams {
        memory_kib: numbers[0],
        iterations: numbers[1],
        parallelism: numbers[2],
    }
    .check()
    .map_err(Problem::Invalid)
}

fn decode_exact<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    bytes.try_into().ok()
}

/// NFC, so one passphrase has one byte form whatever the terminal sent.
fn normalise(passphrase: &SecretString) -> Result<Zeroizing<String>, Problem> {
    let text = passphrase.expose_secret();
    if text.is_empty() {
        return Err(Problem::Empty);
    }
    if text.len() > MAX_PASSPHRASE_BYTES {
        return Err(Problem::TooLong);
    }
    let mut out = Zeroizing::new(String::with_capacity(text.len() * 3));
    out.extend(text.nfc());
    Ok(out)
}

fn derive(
    passphrase: &str,
    salt: &[u8],
    params: KdfParams,
) -> Result<Zeroizing<[u8; 32]>, argon2::Error> {
    let params = Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        Some(32),
    )?;
    let mut out = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params).hash_password_into(
        passphrase.as_bytes(),
        salt,
        &mut *out,
    )?;
    Ok(out)
}

fn open_file(path: &Path) -> Result<File, CryptoError> {
    File::open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            CryptoError::KeyFileMissing {
                path: path.to_owned(),
            }
        } else {
            io_error("open", path, e)
        }
    })
}

/// The file's text, at most [`MAX_FILE_LEN`] bytes; refused when group or others may
/// access it, as a plaintext key file is (the passphrase is then all that is left).
fn read_bounded(path: &Path) -> Result<String, CryptoError> {
    let file = open_file(path)?;
    check_permissions(&file, path)?;
    let mut bytes = Vec::with_capacity(256);
    file.take(MAX_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error("read", path, e))?;
    if bytes.len() as u64 > MAX_FILE_LEN {
        return Err(CryptoError::KeyFileTooLarge {
            path: path.to_owned(),
            max: MAX_FILE_LEN,
        });
    }
    String::from_utf8(bytes).map_err(|_| CryptoError::InvalidSealedKeyFile {
        path: path.to_owned(),
        reason: "it is not text",
    })
}

/// The sealed text in a fresh owner-only temporary file beside `path`, synced.
fn write_temp<'a>(path: &'a Path, text: &str) -> Result<(&'a Path, TempFile), CryptoError> {
    let (dir, file_name) = split_key_path(path)?;
    let (temp, mut file) = create_temp_file(dir, file_name)?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("write", &temp.path, e))?;
    Ok((dir, temp))
}

#[cfg(test)]
mod tests;
