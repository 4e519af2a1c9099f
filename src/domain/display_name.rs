use super::ParseError;

/// A person's display name: printable text that every protocol can carry as it is.
///
/// It reaches other systems inside signed SAML assertions, ID tokens and mails (DESIGN
/// §10, §13), so it is refused when it holds control characters (which XML 1.0 cannot
/// carry at all), line or paragraph separators and other whitespace than the plain space
/// (a value that looks like one line but is two), bidirectional overrides (text that
/// reads differently from what it is) or noncharacters. Markup characters are fine: a
/// name such as `Smith & Jones <Lab>` is escaped wherever it is written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DisplayName(String);

impl DisplayName {
    pub const MAX_CHARS: usize = 200;
    /// Longest raw input looked at, so a 10 KB field costs nothing to refuse.
    pub const MAX_INPUT_BYTES: usize = 1024;

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        if raw.len() > Self::MAX_INPUT_BYTES {
            return Err(ParseError(format!(
                "at most {} characters",
                Self::MAX_CHARS
            )));
        }
        let name = raw.trim();
        if name.is_empty() {
            return Err(ParseError(
                "must not be empty (leave it out for none)".into(),
            ));
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(ParseError(format!(
                "at most {} characters",
                Self::MAX_CHARS
            )));
        }
        if let Some(bad) = name.chars().find(|&c| !allowed(c)) {
            return Err(ParseError(format!(
                "may not contain U+{:04X} (control characters, line breaks, other \
                 whitespace than the space, and direction overrides are refused)",
                u32::from(bad)
            )));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

pub(super) fn allowed(c: char) -> bool {
    let bidi_control = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    let noncharacter = matches!(c, '\u{fdd0}'..='\u{fdef}') || (u32::from(c) & 0xfffe) == 0xfffe;
    !(c.is_control()
        || (c.is_whitespace() && c != ' ')
        || bidi_control
        || noncharacter
        || c == '\u{feff}')
}

impl std::fmt::Display for DisplayName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn names_with_markup_accents_and_scripts_are_accepted_as_given() {
        for good in [
            "Dr. Ada O'Brien-Lovelace",
            "Smith & Jones <Lab>",
            "Zoë Ångström",
            "مريم الحسن",
            "李小龍",
            "Ana 😀",
        ] {
            assert_eq!(DisplayName::parse(good).unwrap().as_str(), good);
        }
        // Whitespace around the name is dropped, as a pasted line break would be.
        assert_eq!(DisplayName::parse(" Ada\n").unwrap().as_str(), "Ada");
    }

    #[test]
    fn control_characters_and_odd_whitespace_are_rejected() {
        for bad in [
            "Ada\nLovelace",
            "Ada\tLovelace",
            "Ada\rX",
            "Ada\u{0}",
            "Ada\u{7}",
            "Ada\u{85}X",
            "Ada\u{2028}Admin",
            "Ada\u{2029}X",
            "Ada\u{a0}Lovelace",
            "Ada\u{202e}ecalevoL",
            "Ada\u{2066}",
            "Ada\u{feff}",
            "Ada\u{ffff}",
            "Ada\u{fdd0}",
        ] {
            assert!(DisplayName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn empty_and_oversized_names_are_rejected() {
        assert!(DisplayName::parse("").is_err());
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"é".repeat(200)).is_ok());
        assert!(DisplayName::parse(&"é".repeat(201)).is_err());
        assert!(DisplayName::parse(&"a".repeat(100_000)).is_err());
    }

    proptest! {
        #[test]
        fn an_accepted_name_is_printable_trimmed_and_bounded(raw in any::<String>()) {
            if let Ok(name) = DisplayName::parse(&raw) {
                let s = name.as_str();
                prop_assert!(!s.is_empty() && s.chars().count() <= DisplayName::MAX_CHARS);
                prop_assert_eq!(s, s.trim());
                prop_assert!(s.chars().all(|c| !c.is_control() && (c == ' ' || !c.is_whitespace())));
                prop_assert_eq!(DisplayName::parse(s).unwrap(), name.clone());
            }
        }
    }
}
