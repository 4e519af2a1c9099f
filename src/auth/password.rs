//! argon2id password hashing (DESIGN §4).

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordVerifier, Version,
    password_hash::{PasswordHasher as _, SaltString},
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
        self.argon2()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| HashError::Hash(e.to_string()))
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
        match PasswordHash::new(phc) {
            Ok(parsed) => self
                .argon2()
                .verify_password(password.expose().as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
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
