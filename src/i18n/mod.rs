//! The words of the pages and mails, in the language of the person reading them
//! (issue 31). Strings live in Fluent files, one folder per language under `locales/`,
//! embedded at build time: adding a language is adding a folder (README, "Languages").
//! English is the fallback; a string missing from another language is a failed test
//! (`every_language_has_every_string`), and shows in English meanwhile, never as its id.
//!
//! A page's language is the first of these that Gatehouse speaks: the relying party's
//! `ui_locales` for the sign-in it started, the person's own setting, the browser's
//! `Accept-Language`, the organisation's default; English otherwise.

use std::{borrow::Cow, collections::HashMap, str::FromStr, sync::Arc};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use fluent_templates::{LanguageIdentifier, Loader, fluent_bundle::FluentValue, static_loader};

static_loader! {
    static LOCALES = {
        locales: "./locales",
        fallback_language: "en",
        // Unicode isolation marks around each argument would reach mails and page text
        // as invisible characters; our arguments are names and numbers, not prose.
        customise: |bundle| bundle.set_use_isolating(false),
    };
}

/// At most this many languages are read from an `Accept-Language` or `ui_locales`, and
/// at most this many bytes of either: anything longer is a hostile header, not a person.
const MAX_TAGS: usize = 16;
const MAX_LIST_BYTES: usize = 512;

fn english() -> LanguageIdentifier {
    LanguageIdentifier::from_str("en").expect("en is a language tag")
}

/// The languages Gatehouse speaks, as their tags (`en`, `es-419`), English first.
pub fn languages() -> Vec<String> {
    let mut tags: Vec<String> = LOCALES.locales().map(|l| l.to_string()).collect();
    tags.sort_by_key(|t| (t != "en", t.clone()));
    tags
}

/// A language Gatehouse speaks, parsed from a setting: `es`, `es-MX` and `es-419` are
/// all Spanish as spoken in Latin America while that is the only Spanish here.
pub fn supported(tag: &str) -> Option<String> {
    let wanted = LanguageIdentifier::from_str(tag.trim()).ok()?;
    best(std::slice::from_ref(&wanted)).map(|l| l.to_string())
}

/// The language of `available` that best answers `requested`, in its order.
fn best(requested: &[LanguageIdentifier]) -> Option<LanguageIdentifier> {
    let available: Vec<&LanguageIdentifier> = LOCALES.locales().collect();
    fluent_langneg::negotiate_languages(
        requested,
        &available,
        None,
        fluent_langneg::NegotiationStrategy::Lookup,
    )
    .first()
    .map(|l| (**l).clone())
}

/// The languages of an `Accept-Language` header, most wanted first (by `q`, then by
/// order); `*`, `q=0` and tags that do not parse are left out.
pub fn accept_language(header: &str) -> Vec<LanguageIdentifier> {
    let header = bounded(header);
    let mut weighted: Vec<(u16, LanguageIdentifier)> = header
        .split(',')
        .take(MAX_TAGS)
        .filter_map(|item| {
            let mut parts = item.split(';');
            let tag = parts.next()?.trim();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(Some(1000), quality)?;
            (q > 0 && tag != "*")
                .then(|| LanguageIdentifier::from_str(tag).ok())
                .flatten()
                .map(|l| (q, l))
        })
        .collect();
    weighted.sort_by_key(|w| std::cmp::Reverse(w.0));
    weighted.into_iter().map(|(_, l)| l).collect()
}

/// A `q` value in thousandths; None for one that is not a number from 0 to 1.
fn quality(raw: &str) -> Option<u16> {
    let q: f32 = raw.trim().parse().ok()?;
    (0.0..=1.0)
        .contains(&q)
        .then(|| (q * 1000.0).round() as u16)
}

/// OIDC `ui_locales` (and a setting): space-separated language tags, most wanted first.
pub fn tag_list(list: &str) -> Vec<LanguageIdentifier> {
    bounded(list)
        .split_ascii_whitespace()
        .take(MAX_TAGS)
        .filter_map(|t| LanguageIdentifier::from_str(t).ok())
        .collect()
}

fn bounded(s: &str) -> &str {
    if s.len() <= MAX_LIST_BYTES {
        return s;
    }
    let mut end = MAX_LIST_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Where a page's language may come from, most binding first (the module's order).
#[derive(Debug, Default, Clone)]
pub struct Wishes {
    /// The relying party's `ui_locales` for the sign-in it started.
    pub ui_locales: Vec<LanguageIdentifier>,
    /// The person's own setting.
    pub person: Option<String>,
    /// The browser's `Accept-Language`.
    pub browser: Vec<LanguageIdentifier>,
    /// The organisation's default language.
    pub organisation: Option<String>,
    /// The time zone dates are shown in: the person's, else the organisation's, else UTC.
    pub zone: Option<String>,
    /// The organisation the page speaks for, when it has branding.
    pub brand: Option<Brand>,
}

/// What a page shows of the organisation it speaks for (issue 31): its name, logo,
/// colours and support words. Pages speak for the organisation of the app that started
/// the sign-in, of the person signed in, or the default organisation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Brand {
    pub org_id: String,
    /// Its branding's display name, else its own.
    pub name: String,
    pub support_text: Option<String>,
    /// It has a logo (`/branding/{org_id}/logo`).
    pub logo: bool,
    /// It has colours (`/branding/{org_id}/style.css`).
    pub colours: bool,
    /// When it last changed (Unix seconds): the logo's and colours' cache key.
    pub version: i64,
}

impl Wishes {
    /// The language and time zone these wishes come to.
    pub fn tr(&self) -> Tr {
        let setting = |s: &Option<String>| {
            s.as_deref()
                .and_then(|t| LanguageIdentifier::from_str(t).ok())
        };
        let requested: Vec<LanguageIdentifier> = self
            .ui_locales
            .iter()
            .cloned()
            .chain(setting(&self.person))
            .chain(self.browser.iter().cloned())
            .chain(setting(&self.organisation))
            .collect();
        Tr {
            brand: self.brand.clone().map(Arc::new),
            lang: best(&requested).unwrap_or_else(english),
            zone: self
                .zone
                .as_deref()
                .and_then(|z| Tz::from_str(z).ok())
                .unwrap_or(Tz::UTC),
        }
    }
}

/// A time zone name Gatehouse knows (IANA, as `America/Mexico_City`).
pub fn time_zone(name: &str) -> Option<String> {
    Tz::from_str(name.trim()).ok().map(|z| z.name().to_owned())
}

/// Every time zone name, sorted, for a form's choices.
pub fn time_zones() -> &'static [&'static str] {
    static NAMES: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
        let mut names: Vec<&'static str> =
            chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()).collect();
        names.sort_unstable();
        names
    });
    &NAMES
}

/// A language's name in itself (`Español (Latinoamérica)`), for a form's choices.
pub fn own_name(tag: &str) -> String {
    Wishes {
        person: Some(tag.to_owned()),
        ..Wishes::default()
    }
    .tr()
    .t("language-name")
}

/// The id of a string held in code before a `Tr` says it (a table of messages, a
/// choice between several): written `Id("…")` so the test that every string exists
/// finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Id(pub &'static str);

/// One reader's language and time zone, and the organisation the page speaks for: what
/// the templates ask for their words.
/// Everything it returns is plain text; the templates escape it like any value.
#[derive(Debug, Clone)]
pub struct Tr {
    lang: LanguageIdentifier,
    zone: Tz,
    brand: Option<Arc<Brand>>,
}

impl Default for Tr {
    fn default() -> Self {
        Self {
            lang: english(),
            zone: Tz::UTC,
            brand: None,
        }
    }
}

impl Tr {
    /// The organisation the page speaks for, if it has branding.
    pub fn brand(&self) -> Option<&Brand> {
        self.brand.as_deref()
    }

    /// The language's tag, for `<html lang>` and `Content-Language`.
    pub fn lang(&self) -> String {
        self.lang.to_string()
    }

    /// The string `id`.
    pub fn t(&self, id: &str) -> String {
        self.lookup(id, None)
    }

    /// The string an [`Id`] names.
    pub fn id(&self, id: Id) -> String {
        self.t(id.0)
    }

    /// The string `id` with one argument.
    pub fn a(&self, id: &str, name: &str, value: &str) -> String {
        self.with(id, &[(name, value)])
    }

    /// The string `id` with two arguments.
    pub fn a2(&self, id: &str, name: &str, value: &str, name2: &str, value2: &str) -> String {
        self.with(id, &[(name, value), (name2, value2)])
    }

    /// The string `id` with a count, for plurals (a template passes it by reference).
    pub fn n(&self, id: &str, name: &str, count: impl std::borrow::Borrow<usize>) -> String {
        let count = *count.borrow();
        let args = HashMap::from([(Cow::Owned(name.to_owned()), FluentValue::from(count))]);
        self.lookup(id, Some(&args))
    }

    /// The string `id` with text arguments.
    pub fn with(&self, id: &str, args: &[(&str, &str)]) -> String {
        let args: HashMap<Cow<'static, str>, FluentValue> = args
            .iter()
            .map(|(k, v)| {
                (
                    Cow::Owned((*k).to_owned()),
                    FluentValue::from(v.to_string()),
                )
            })
            .collect();
        self.lookup(id, Some(&args))
    }

    fn lookup(&self, id: &str, args: Option<&HashMap<Cow<'static, str>, FluentValue>>) -> String {
        match LOCALES.try_lookup_complete(&self.lang, id, args) {
            Some(text) => text,
            None => {
                tracing::error!(id, "no string with this id in any language");
                id.to_owned()
            }
        }
    }

    /// A moment as the reader says it, in their time zone: `7 Dec 2026, 14:05 GMT`.
    pub fn datetime(&self, at: DateTime<Utc>) -> String {
        let local = at.with_timezone(&self.zone);
        let month = self.t(&format!("month-{}", local.format("%-m")));
        self.with(
            "date-time",
            &[
                ("day", &local.format("%-d").to_string()),
                ("month", &month),
                ("year", &local.format("%Y").to_string()),
                ("time", &local.format("%H:%M").to_string()),
                ("zone", &local.format("%Z").to_string()),
            ],
        )
    }

    /// `datetime` of a stored (UTC) timestamp.
    pub fn stored(&self, at: &chrono::NaiveDateTime) -> String {
        self.datetime(at.and_utc())
    }
}

#[cfg(test)]
mod tests;
