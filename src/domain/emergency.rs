//! What someone types to break the glass (DESIGN §15) and what a reviewer types to sign
//! it off. Each reaches other systems inside ID tokens, SAML attributes, mails and
//! webhooks, so it is one line of printable text: runs of whitespace (a textarea's line
//! breaks included) become one space, and anything a display name may not hold is
//! refused (see [`super::DisplayName`]).

use super::{ParseError, display_name::allowed};

/// Why emergency access is needed: 10 to 500 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmergencyReason(String);

/// The patient or context label a relying party offered and the user picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextLabel(String);

/// A reviewer's note when signing an emergency session off: 1 to 2000 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewNote(String);

/// Collapses whitespace, then checks length (in characters) and characters. `what`
/// names the field in the message.
fn one_line(raw: &str, what: &str, min: usize, max: usize) -> Result<String, ParseError> {
    // Looked at no further than this, so a megabyte costs nothing to refuse.
    if raw.len() > max * 4 + 64 {
        return Err(ParseError(format!(
            "{what} must be at most {max} characters"
        )));
    }
    let text = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    let n = text.chars().count();
    if n < min {
        return Err(ParseError(if min <= 1 {
            format!("{what} must not be empty")
        } else {
            format!("{what} must be at least {min} characters")
        }));
    }
    if n > max {
        return Err(ParseError(format!(
            "{what} must be at most {max} characters"
        )));
    }
    if let Some(bad) = text.chars().find(|&c| !allowed(c)) {
        return Err(ParseError(format!(
            "{what} may not contain U+{:04X}",
            u32::from(bad)
        )));
    }
    Ok(text)
}

impl EmergencyReason {
    pub const MIN_CHARS: usize = 10;
    pub const MAX_CHARS: usize = 500;

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        one_line(raw, "the reason", Self::MIN_CHARS, Self::MAX_CHARS).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl ContextLabel {
    pub const MAX_CHARS: usize = 100;
    /// Most labels one request may offer.
    pub const MAX_OFFERED: usize = 10;

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        one_line(raw, "the context label", 1, Self::MAX_CHARS).map(Self)
    }

    /// The labels a relying party offers, separated by `|`: at most
    /// [`Self::MAX_OFFERED`], each valid, none repeated.
    pub fn parse_offered(raw: &str) -> Result<Vec<Self>, ParseError> {
        let labels = raw
            .split('|')
            .map(Self::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if labels.len() > Self::MAX_OFFERED {
            return Err(ParseError(format!(
                "at most {} context labels may be offered",
                Self::MAX_OFFERED
            )));
        }
        if labels
            .iter()
            .enumerate()
            .any(|(i, l)| labels[..i].contains(l))
        {
            return Err(ParseError("a context label is offered twice".into()));
        }
        Ok(labels)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl ReviewNote {
    pub const MAX_CHARS: usize = 2000;

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        one_line(raw, "the review note", 1, Self::MAX_CHARS).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_reason_of_ten_to_five_hundred_characters_is_accepted_as_one_line() {
        let r = EmergencyReason::parse("  Cardiac arrest,\r\n bed 4:\tneed history ").unwrap();
        assert_eq!(r.as_str(), "Cardiac arrest, bed 4: need history");
        assert!(EmergencyReason::parse(&"é".repeat(500)).is_ok());
    }

    #[test]
    fn no_reason_a_short_one_and_a_long_one_are_refused_with_the_bound() {
        let empty = EmergencyReason::parse("   ").unwrap_err().0;
        assert!(empty.contains("at least 10"), "{empty}");
        assert!(EmergencyReason::parse("too short").is_err());
        let long = EmergencyReason::parse(&"a".repeat(501)).unwrap_err().0;
        assert!(long.contains("at most 500"), "{long}");
        assert!(EmergencyReason::parse(&"a".repeat(1_000_000)).is_err());
    }

    #[test]
    fn direction_overrides_and_control_characters_are_refused() {
        assert!(EmergencyReason::parse("patient in bed\u{202e} 4 urgent").is_err());
        assert!(EmergencyReason::parse("patient in bed\u{0} 4 urgent").is_err());
    }

    #[test]
    fn offered_labels_are_bounded_and_distinct() {
        let labels = ContextLabel::parse_offered("Patient 123|Ward 4 ").unwrap();
        assert_eq!(labels[1].as_str(), "Ward 4");
        assert!(ContextLabel::parse_offered("a||b").is_err());
        assert!(ContextLabel::parse_offered("a|a").is_err());
        assert!(ContextLabel::parse_offered(&["x"; 11].join("|")).is_err());
        assert!(ContextLabel::parse_offered(&"x".repeat(101)).is_err());
    }

    #[test]
    fn a_review_note_must_say_something() {
        assert!(ReviewNote::parse(" \n ").is_err());
        assert_eq!(ReviewNote::parse(" ok\n").unwrap().as_str(), "ok");
    }

    proptest! {
        #[test]
        fn whatever_parses_is_one_bounded_line(raw in "\\PC{0,600}") {
            if let Ok(r) = EmergencyReason::parse(&raw) {
                let n = r.as_str().chars().count();
                prop_assert!((10..=500).contains(&n));
                prop_assert!(!r.as_str().contains('\n'));
                prop_assert_eq!(r.as_str().trim(), r.as_str());
            }
        }
    }
}
