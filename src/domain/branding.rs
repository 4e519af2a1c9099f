//! An organisation's branding (issue 31): the name, colours, logo and support words its
//! people see on the sign-in, account and error pages and in their mails. Colours are
//! accepted only when text on and beside them stays readable (WCAG 2.1 AA, 4.5:1)
//! against the pages' own colours; a logo only when it is a small PNG, JPEG or WebP.

use serde::{Deserialize, Serialize};

use super::ParseError;

/// The pages' colours the accent must stand against (`static/gatehouse.css`).
const LIGHT_PAGE: [Colour; 2] = [Colour([0xf4, 0xf6, 0xf8]), Colour([0xff, 0xff, 0xff])];
const LIGHT_ON_ACCENT: Colour = Colour([0xff, 0xff, 0xff]);
const DARK_PAGE: [Colour; 2] = [Colour([0x0f, 0x14, 0x19]), Colour([0x16, 0x1b, 0x22])];
const DARK_ON_ACCENT: Colour = Colour([0x0b, 0x12, 0x20]);
/// WCAG 2.1 AA for text.
pub const MIN_CONTRAST: f64 = 4.5;

/// What an organisation shows of itself. Every field may be left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Branding {
    /// The name shown on its pages and mails, instead of its display name: at most 80
    /// characters on one line.
    pub display_name: Option<String>,
    /// Links and buttons in the light scheme (`#rrggbb`): at least 4.5:1 against the page
    /// and with white text on it.
    pub accent: Option<Colour>,
    /// The same in the dark scheme: at least 4.5:1 against the dark page and with dark
    /// text on it. Without it the dark scheme keeps Gatehouse's own.
    pub accent_dark: Option<Colour>,
    /// Who to ask for help, shown under the sign-in form and on error pages and in mails:
    /// at most 500 characters, one paragraph, plain text.
    pub support_text: Option<String>,
    /// The OIDC client ids and SAML SP entity IDs whose sign-ins show this branding
    /// (a client allowed for this organisation only shows it without being listed).
    pub apps: Vec<String>,
}

impl Branding {
    pub const MAX_NAME_CHARS: usize = 80;
    pub const MAX_SUPPORT_CHARS: usize = 500;
    pub const MAX_APPS: usize = 100;

    /// Every field out of bounds, each named, so a form can show them all.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let mut text = |field: &str, value: &Option<String>, max: usize| {
            let Some(value) = value else { return };
            let n = value.chars().count();
            if n == 0 || n > max || value.trim() != value {
                problems.push(format!("{field}: must be 1 to {max} characters, trimmed"));
            } else if value.chars().any(char::is_control) {
                problems.push(format!("{field}: must be one line of text"));
            }
        };
        text("display_name", &self.display_name, Self::MAX_NAME_CHARS);
        text("support_text", &self.support_text, Self::MAX_SUPPORT_CHARS);
        if let Some(c) = self.accent {
            let worst = c.worst_contrast(&LIGHT_PAGE, LIGHT_ON_ACCENT);
            if worst < MIN_CONTRAST {
                problems.push(format!(
                    "accent: {c} is {worst:.2}:1 against the page or white text; it must be at least 4.5:1 (a darker colour)"
                ));
            }
        }
        if let Some(c) = self.accent_dark {
            let worst = c.worst_contrast(&DARK_PAGE, DARK_ON_ACCENT);
            if worst < MIN_CONTRAST {
                problems.push(format!(
                    "accent_dark: {c} is {worst:.2}:1 against the dark page or dark text; it must be at least 4.5:1 (a lighter colour)"
                ));
            }
        }
        if self.apps.len() > Self::MAX_APPS {
            problems.push(format!("apps: at most {} entries", Self::MAX_APPS));
        }
        if self
            .apps
            .iter()
            .any(|a| a.is_empty() || a.len() > 1024 || a.chars().any(char::is_control))
        {
            problems.push("apps: each is a client id or an SP entity ID".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Whether sign-ins started by `app` (a client id or an SP entity ID) show it.
    pub fn brands(&self, app: &str) -> bool {
        self.apps.iter().any(|a| a == app)
    }
}

/// An sRGB colour, written `#rrggbb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Colour(pub [u8; 3]);

impl Colour {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let hex = raw
            .strip_prefix('#')
            .filter(|h| h.len() == 6 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| ParseError("a colour is written #rrggbb".into()))?;
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or_default();
        Ok(Self([byte(0), byte(2), byte(4)]))
    }

    /// WCAG 2.1 relative luminance.
    fn luminance(self) -> f64 {
        let channel = |c: u8| {
            let c = f64::from(c) / 255.0;
            if c <= 0.03928 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        let [r, g, b] = self.0;
        0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
    }

    /// WCAG 2.1 contrast ratio, 1 to 21.
    pub fn contrast(self, other: Colour) -> f64 {
        let (a, b) = (self.luminance(), other.luminance());
        (a.max(b) + 0.05) / (a.min(b) + 0.05)
    }

    /// The lowest contrast against each of `pages` and with `text` on it.
    fn worst_contrast(self, pages: &[Colour], text: Colour) -> f64 {
        pages
            .iter()
            .map(|&p| self.contrast(p))
            .chain([self.contrast(text)])
            .fold(f64::INFINITY, f64::min)
    }
}

impl std::fmt::Display for Colour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [r, g, b] = self.0;
        write!(f, "#{r:02x}{g:02x}{b:02x}")
    }
}

impl Serialize for Colour {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Colour {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Colour::parse(&raw).map_err(|e| serde::de::Error::custom(e.0))
    }
}

/// The kinds of logo Gatehouse serves: raster images a browser shows and cannot run
/// (no SVG: it can carry script and links).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoKind {
    Png,
    Jpeg,
    Webp,
}

impl LogoKind {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
        }
    }

    /// The kind named by a `Content-Type`.
    pub fn from_content_type(raw: &str) -> Option<Self> {
        match raw.split(';').next().unwrap_or_default().trim() {
            "image/png" => Some(Self::Png),
            "image/jpeg" => Some(Self::Jpeg),
            "image/webp" => Some(Self::Webp),
            _ => None,
        }
    }

    /// The kind the bytes themselves say they are.
    fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
            Some(Self::Jpeg)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(Self::Webp)
        } else {
            None
        }
    }
}

/// An organisation's logo: at most 256 KiB, a PNG, JPEG or WebP whose bytes are what its
/// `Content-Type` says.
#[derive(Clone, PartialEq, Eq)]
pub struct Logo {
    pub kind: LogoKind,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Logo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logo")
            .field("kind", &self.kind)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl Logo {
    pub const MAX_BYTES: usize = 256 * 1024;

    pub fn parse(content_type: &str, bytes: Vec<u8>) -> Result<Self, ParseError> {
        if bytes.len() > Self::MAX_BYTES {
            return Err(ParseError("a logo is at most 256 KiB".into()));
        }
        let Some(declared) = LogoKind::from_content_type(content_type) else {
            return Err(ParseError(
                "a logo is image/png, image/jpeg or image/webp".into(),
            ));
        };
        if LogoKind::sniff(&bytes) != Some(declared) {
            return Err(ParseError(format!(
                "the bytes are not a {} image",
                declared.content_type()
            )));
        }
        Ok(Self {
            kind: declared,
            bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn colour(raw: &str) -> Colour {
        Colour::parse(raw).unwrap()
    }

    #[test]
    fn contrast_is_the_wcag_ratio() {
        assert!((colour("#000000").contrast(colour("#ffffff")) - 21.0).abs() < 0.01);
        assert!((colour("#777777").contrast(colour("#ffffff")) - 4.48).abs() < 0.01);
        assert_eq!(colour("#0B5CAD").to_string(), "#0b5cad");
        for bad in ["0b5cad", "#0b5cadd", "#0b5ca", "#gg0000", "", "#", "red"] {
            assert!(Colour::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_accent_must_be_readable_in_its_scheme() {
        let with = |accent: &str, dark: Option<&str>| Branding {
            accent: Some(colour(accent)),
            accent_dark: dark.map(colour),
            ..Branding::default()
        };
        assert!(
            with("#0b5cad", Some("#6cb6ff")).validate().is_ok(),
            "Gatehouse's own"
        );
        assert!(with("#7b1fa2", None).validate().is_ok());
        let pale = with("#8ab4f8", None).validate().unwrap_err();
        assert!(pale[0].starts_with("accent:"), "{pale:?}");
        let dim = with("#0b5cad", Some("#0b5cad")).validate().unwrap_err();
        assert!(dim[0].starts_with("accent_dark:"), "{dim:?}");
        // #767676 is 4.54:1 on white but only 4.2:1 on the page's grey.
        assert!(with("#767676", None).validate().is_err());
    }

    #[test]
    fn names_and_words_are_bounded_single_lines() {
        let named = |name: &str| Branding {
            display_name: Some(name.into()),
            ..Branding::default()
        };
        assert!(named("Hospital San Rafael").validate().is_ok());
        for bad in ["", " padded ", "two\nlines", &"x".repeat(81)] {
            assert!(named(bad).validate().is_err(), "{bad:?}");
        }
        let apps = Branding {
            apps: vec!["x".into(); 101],
            ..Branding::default()
        };
        assert!(apps.validate().is_err());
        let doc = r##"{"accent":"#0b5cad","apps":["ward"]}"##;
        let parsed: Branding = serde_json::from_str(doc).unwrap();
        assert!(parsed.brands("ward") && !parsed.brands("other"));
        assert!(serde_json::from_str::<Branding>(r#"{"accent":"blue"}"#).is_err());
        assert!(serde_json::from_str::<Branding>(r#"{"logo":"x"}"#).is_err());
    }

    #[test]
    fn a_logo_is_a_small_image_of_the_kind_it_says() {
        let png = b"\x89PNG\r\n\x1a\n rest".to_vec();
        assert!(Logo::parse("image/png", png.clone()).is_ok());
        assert!(
            Logo::parse("image/jpeg", png.clone()).is_err(),
            "mislabelled"
        );
        assert!(Logo::parse("image/svg+xml", b"<svg/>".to_vec()).is_err());
        assert!(Logo::parse("text/html", b"<script>".to_vec()).is_err());
        let mut big = png;
        big.resize(Logo::MAX_BYTES + 1, 0);
        assert!(Logo::parse("image/png", big).is_err());
        let webp = b"RIFF\0\0\0\0WEBPVP8 ".to_vec();
        assert!(Logo::parse("image/webp; charset=x", webp).is_ok());
        assert!(Logo::parse("image/jpeg", vec![0xff, 0xd8, 0xff, 0xe0]).is_ok());
    }
}
