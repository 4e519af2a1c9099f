use unicode_normalization::UnicodeNormalization;

use super::ParseError;

/// A username: NFKC-normalised and lower-cased, so `Alice`, `ALICE` and a
/// full-width `ａｌｉｃｅ` are one account (DESIGN §3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    pub const MAX_CHARS: usize = 64;
    /// Longest raw input looked at, so a 10 KB field costs nothing to refuse.
    pub const MAX_INPUT_BYTES: usize = 256;

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        if raw.len() > Self::MAX_INPUT_BYTES {
            return Err(ParseError("username is too long".into()));
        }
        let normalised: String = raw.trim().nfkc().flat_map(char::to_lowercase).collect();
        let count = normalised.chars().count();
        if count == 0 {
            return Err(ParseError("username is required".into()));
        }
        if count > Self::MAX_CHARS {
            return Err(ParseError(format!(
                "username must be at most {} characters",
                Self::MAX_CHARS
            )));
        }
        if let Some(bad) = normalised
            .chars()
            .find(|c| !(c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+')))
        {
            return Err(ParseError(format!(
                "username may contain letters, digits and . _ - @ + only, not {bad:?}"
            )));
        }
        Ok(Self(normalised))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Username {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_width_variants_are_one_username() {
        let a = Username::parse("Alice").unwrap();
        assert_eq!(a, Username::parse(" ALICE ").unwrap());
        assert_eq!(a, Username::parse("ａｌｉｃｅ").unwrap());
        assert_eq!(a.as_str(), "alice");
    }

    #[test]
    fn empty_username_is_rejected() {
        assert!(Username::parse("   ").is_err());
    }

    #[test]
    fn oversized_username_is_rejected_without_normalising() {
        assert!(Username::parse(&"a".repeat(10_000)).is_err());
        assert!(Username::parse(&"a".repeat(65)).is_err());
        assert!(Username::parse(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn spaces_and_control_characters_are_rejected() {
        for bad in ["al ice", "al\u{0}ice", "al/ice", "<script>"] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }
}
