//! argon2id password hashing (DESIGN §4).

use std::cell::RefCell;

use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, Version,
    password_hash::{Output, Salt, SaltString},
};
use rand::{Rng, rngs::OsRng};
use secrecy::SecretString;

use crate::domain::Password;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    #[error("hashing failed: {0}")]
    Hash(String),
}

thread_local! {
    /// This thread's argon2 memory (19 MiB at the defaults), kept from one hash to the
    /// next. Allocated and freed for every hash, the blocks stayed behind in glibc's
    /// malloc arenas: under sign-in load an instance held four arenas of about 57 MiB
    /// each (`cargo bench --bench soak`). Grown to the largest a hash on this thread has
    /// needed; overwritten by each hash.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// The argon2 hash of `password` with `salt`, `len` bytes, in this thread's memory.
fn compute(
    argon2: &Argon2<'_>,
    password: &Password,
    salt: Salt<'_>,
    len: usize,
) -> Result<Output, argon2::password_hash::Error> {
    let mut raw_salt = [0u8; Salt::MAX_LENGTH];
    let salt = salt.decode_b64(&mut raw_salt)?;
    let blocks = argon2.params().block_count();
    MEMORY.with_borrow_mut(|memory| {
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        Output::init_with(len, |out| {
            argon2
                .hash_password_into_with_memory(
                    password.expose().as_bytes(),
                    salt,
                    out,
                    &mut memory[..blocks],
                )
                .map_err(Into::into)
        })
    })
}

/// Hashes and verifies with the configured parameters. Cheap to clone.
#[derive(Clone)]
pub struct Hasher {
    params: Params,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Hasher(m={}, t={}, p={})",
            self.params.m_cost(),
            self.params.t_cost(),
            self.params.p_cost()
        )
    }
}

impl Hasher {
    pub fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<Self, HashError> {
        let params = Params::new(memory_kib, iterations, parallelism, None)
            .map_err(|e| HashError::Params(e.to_string()))?;
        Ok(Self { params })
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// A PHC string (`$argon2id$v=19$m=…`). CPU-heavy: call from a blocking thread.
    pub fn hash(&self, password: &Password) -> Result<String, HashError> {
        let salt = SaltString::generate(&mut OsRng);
        let len = self
            .params
            .output_len()
            .unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let hash = compute(&self.argon2(), password, salt.as_salt(), len)
            .map_err(|e| HashError::Hash(e.to_string()))?;
        Ok(PasswordHash {
            algorithm: argon2::ARGON2ID_IDENT,
            version: Some(Version::V0x13.into()),
            params: argon2::password_hash::ParamsString::try_from(&self.params)
                .map_err(|e| HashError::Params(e.to_string()))?,
            salt: Some(salt.as_salt()),
            hash: Some(hash),
        }
        .to_string())
    }

    /// A PHC string with these parameters, a random salt and a random hash: checking a
    /// password against it costs what checking against a real one does, and none
    /// matches (a match would be an argon2 preimage). Made without hashing anything,
    /// so a start spends no argon2 run (and no 19 MiB block) on it.
    pub fn unmatchable(&self) -> String {
        use argon2::password_hash::{Output, ParamsString};
        let salt = SaltString::generate(&mut OsRng);
        let mut bytes = [0u8; Params::DEFAULT_OUTPUT_LEN];
        OsRng.fill(&mut bytes);
        PasswordHash {
            algorithm: argon2::ARGON2ID_IDENT,
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&self.params).expect("checked parameters print"),
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&bytes).expect("32 bytes is an argon2 output length")),
        }
        .to_string()
    }

    /// True when `password` matches `phc`. A malformed stored hash never matches.
    /// Verification uses the parameters recorded in the hash, so old hashes keep working.
    pub fn verify(&self, phc: &str, password: &Password) -> bool {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return false;
        };
        let (Ok(algorithm), Ok(version), Ok(params)) = (
            Algorithm::try_from(parsed.algorithm),
            parsed
                .version
                .map_or(Ok(Version::default()), Version::try_from),
            Params::try_from(&parsed),
        ) else {
            return false;
        };
        let argon2 = Argon2::new(algorithm, version, params);
        // `Output`'s equality is constant-time.
        compute(&argon2, password, salt, expected.len()).is_ok_and(|hash| hash == expected)
    }

    /// True when `phc` was made with other parameters than the configured ones, so it
    /// should be replaced at the next successful sign-in.
    pub fn needs_rehash(&self, phc: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return true;
        };
        let Ok(stored) = Params::try_from(&parsed) else {
            return true;
        };
        parsed.algorithm.as_str() != "argon2id"
            || stored.m_cost() != self.params.m_cost()
            || stored.t_cost() != self.params.t_cost()
            || stored.p_cost() != self.params.p_cost()
    }
}

/// A one-time password for a new administrator: 20 characters from an alphabet
/// without look-alikes (no 0/O, 1/l/I), always with upper, lower and digit, so it
/// passes any default policy.
pub fn generate_one_time_password() -> SecretString {
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const DIGIT: &[u8] = b"23456789";
    let mut rng = OsRng;
    let all: Vec<u8> = [UPPER, LOWER, DIGIT].concat();
    let mut chars: Vec<u8> = (0..17).map(|_| all[rng.gen_range(0..all.len())]).collect();
    for set in [UPPER, LOWER, DIGIT] {
        let at = rng.gen_range(0..=chars.len());
        chars.insert(at, set[rng.gen_range(0..set.len())]);
    }
    String::from_utf8_lossy(&chars).into_owned().into()
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn fast() -> Hasher {
        Hasher::new(64, 1, 1).unwrap()
    }

    #[test]
    fn the_unmatchable_hash_is_a_real_one_with_the_same_parameters_that_nothing_matches() {
        let hasher = Hasher::new(256, 2, 1).unwrap();
        let dummy = hasher.unmatchable();
        let real = hasher
            .hash(&Password::parse("Xy-123456".into()).unwrap())
            .unwrap();
        let (d, r) = (
            PasswordHash::new(&dummy).unwrap(),
            PasswordHash::new(&real).unwrap(),
        );
        assert_eq!(d.algorithm, r.algorithm);
        assert_eq!(d.version, r.version);
        assert_eq!(d.params, r.params, "so checking against it costs the same");
        assert_eq!(d.hash.unwrap().len(), r.hash.unwrap().len());
        assert!(!hasher.needs_rehash(&dummy));
        for guess in ["Xy-123456", "password", "Quiet-Harbour-42"] {
            assert!(!hasher.verify(&dummy, &Password::parse(guess.into()).unwrap()));
        }
        assert_ne!(dummy, hasher.unmatchable(), "a new salt and hash each time");
    }

    #[test]
    fn right_password_verifies_and_wrong_one_does_not() {
        let h = fast();
        let phc = h
            .hash(&Password::parse("Tr0ub4dor&3".into()).unwrap())
            .unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(h.verify(&phc, &Password::parse("Tr0ub4dor&3".into()).unwrap()));
        assert!(!h.verify(&phc, &Password::parse("Tr0ub4dor&4".into()).unwrap()));
    }

    /// Hashes stored before the thread's memory was kept were made by the argon2 crate's
    /// own PHC path: they must verify, and what we make now must verify there too.
    #[test]
    fn hashes_agree_with_the_argon2_crates_own_path() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let password = Password::parse("Tr0ub4dor&3".into()).unwrap();
        let wrong = Password::parse("Tr0ub4dor&4".into()).unwrap();
        for (m, t, p) in [(64, 1, 1), (256, 2, 2), (128, 3, 1)] {
            let ours = Hasher::new(m, t, p).unwrap();
            let theirs = ours.argon2();
            let salt = SaltString::generate(&mut OsRng);
            let old = theirs
                .hash_password(password.expose().as_bytes(), &salt)
                .unwrap()
                .to_string();
            // Verified with whatever parameters it records, by any hasher.
            assert!(fast().verify(&old, &password), "{old}");
            assert!(!fast().verify(&old, &wrong));
            let new = ours.hash(&password).unwrap();
            let parsed = PasswordHash::new(&new).unwrap();
            assert!(
                theirs
                    .verify_password(password.expose().as_bytes(), &parsed)
                    .is_ok()
            );
            assert!(
                theirs
                    .verify_password(wrong.expose().as_bytes(), &parsed)
                    .is_err()
            );
        }
        // A larger hash after a smaller one on the same thread, and back.
        let big = Hasher::new(1024, 1, 1).unwrap().hash(&password).unwrap();
        assert!(fast().verify(&big, &password));
        assert!(fast().verify(&fast().hash(&password).unwrap(), &password));
    }

    #[test]
    fn hashes_without_salt_or_output_or_with_another_algorithm_never_match() {
        let password = Password::parse("pw".into()).unwrap();
        let phc = fast().hash(&password).unwrap();
        let parsed = PasswordHash::new(&phc).unwrap();
        let (salt, hash) = (parsed.salt.unwrap(), parsed.hash.unwrap());
        for bad in [
            format!("$argon2id$v=19$m=64,t=1,p=1${salt}"),
            phc.replace("$argon2id$", "$argon2d$").replace(
                &hash.to_string(),
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            ),
            phc.replace("$argon2id$", "$scrypt$"),
        ] {
            assert!(!fast().verify(&bad, &password), "{bad}");
        }
    }

    #[test]
    fn malformed_stored_hash_never_matches() {
        assert!(!fast().verify("not-a-hash", &Password::parse("x".into()).unwrap()));
    }

    #[test]
    fn changed_parameters_ask_for_a_rehash() {
        let phc = fast().hash(&Password::parse("pw".into()).unwrap()).unwrap();
        assert!(!fast().needs_rehash(&phc));
        assert!(Hasher::new(128, 1, 1).unwrap().needs_rehash(&phc));
    }

    #[test]
    fn one_time_passwords_mix_character_classes() {
        for _ in 0..50 {
            let p = generate_one_time_password();
            let p = p.expose_secret();
            assert_eq!(p.chars().count(), 20);
            assert!(p.chars().any(|c| c.is_ascii_uppercase()));
            assert!(p.chars().any(|c| c.is_ascii_lowercase()));
            assert!(p.chars().any(|c| c.is_ascii_digit()));
        }
    }
}
