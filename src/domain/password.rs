use secrecy::{ExposeSecret, SecretString};

use super::ParseError;

/// A password as typed. Never printed (`Debug` is redacted by `SecretString`) and
/// bounded before anything expensive sees it: a megabyte "password" is refused here,
/// not handed to argon2.
#[derive(Debug, Clone)]
pub struct Password(SecretString);

impl Password {
    /// Hard ceiling on raw input, above any policy maximum (128 code points × 4 bytes).
    pub const MAX_INPUT_BYTES: usize = 1024;

    pub fn parse(raw: String) -> Result<Self, ParseError> {
        if raw.is_empty() {
            return Err(ParseError("password is required".into()));
        }
        if raw.len() > Self::MAX_INPUT_BYTES {
            return Err(ParseError("password is too long".into()));
        }
        Ok(Self(raw.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_megabyte_password_is_refused() {
        assert!(Password::parse("x".repeat(1 << 20)).is_err());
    }

    #[test]
    fn debug_output_does_not_show_the_password() {
        let p = Password::parse("correct horse".into()).unwrap();
        assert!(!format!("{p:?}").contains("correct"));
    }
}
