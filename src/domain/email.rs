use super::ParseError;

/// An email address, checked for shape only: deliverability is proven by the mail.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// RFC 5321's path limit.
    pub const MAX_LEN: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let raw = raw.trim();
        if raw.len() > Self::MAX_LEN {
            return Err(ParseError("email address is too long".into()));
        }
        let Some((local, domain)) = raw.rsplit_once('@') else {
            return Err(ParseError("email address needs an @".into()));
        };
        if local.is_empty() || local.len() > 64 {
            return Err(ParseError(
                "email address has no valid name before the @".into(),
            ));
        }
        let domain_ok = !domain.is_empty()
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !domain_ok {
            return Err(ParseError(
                "email address has no valid domain after the @".into(),
            ));
        }
        // Headers are built from addresses: no way to smuggle a line break or a second address.
        if raw.chars().any(|c| {
            c.is_control() || c.is_whitespace() || matches!(c, '<' | '>' | ',' | ';' | '"')
        }) {
            return Err(ParseError(
                "email address contains characters that are not allowed".into(),
            ));
        }
        // Domains are case-insensitive; local parts are kept as given.
        Ok(Self(format!("{local}@{}", domain.to_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_addresses_are_accepted_and_domain_lowercased() {
        assert_eq!(
            Email::parse("Dr.Who@Example.ORG").unwrap().as_str(),
            "Dr.Who@example.org"
        );
        assert!(Email::parse("admin@localhost").is_ok());
    }

    #[test]
    fn email_missing_at_symbol_is_rejected() {
        assert!(Email::parse("example.org").is_err());
    }

    #[test]
    fn header_injection_is_rejected() {
        for bad in [
            "a@b.org\r\nBcc: x@y.org",
            "a@b.org, c@d.org",
            "<a@b.org>",
            "a b@c.org",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn oversized_email_is_rejected() {
        assert!(Email::parse(&format!("{}@example.org", "a".repeat(300))).is_err());
    }
}
