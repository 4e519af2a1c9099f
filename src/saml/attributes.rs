//! Attribute release per SP (DESIGN §10 "attributes mapped per SP", issue 24 item 7).
//!
//! An SP's release list maps what it gets to the SAML attribute `Name` that carries it.
//! An entry is one of two kinds:
//! - one of the five [`FIELDS`] (`email`, `name`, `username`, `roles`, `organisation`)
//!   under a name the administrator picks: NameFormat `uri` when that name is a URN,
//!   else `basic` (what Gatehouse always did, so existing registrations read the same);
//! - a well-known attribute of the [`REGISTRY`], chosen by its friendly name (`mail`) or
//!   its SAML2 name (`urn:oid:0.9.2342.19200300.100.1.3`). It goes out under its URI name
//!   with `FriendlyName` and NameFormat `uri` (SAML V2.0 X.500/LDAP Attribute Profile,
//!   eduPerson, SAML V2.0 Subject Identifier Attributes Profile): the names SPs' default
//!   attribute maps look for.
//!
//! Nothing else is ever released: an SP gets its list and only what Gatehouse holds
//! (no `givenName`/`sn`: Gatehouse keeps one display name).

use std::collections::BTreeMap;

use samael::metadata::RequestedAttribute;

use super::{assertion::Person, xml_writer::Element};
use crate::domain::{Role, valid_scope};

pub const ATTRNAME_BASIC: &str = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic";
pub const ATTRNAME_URI: &str = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri";
pub const NS_SHIBMD: &str = "urn:mace:shibboleth:metadata:1.0";

/// Longest attribute name an administrator may pick.
pub const MAX_NAME_LEN: usize = 256;

/// Where a released value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Email,
    DisplayName,
    Username,
    Role,
    Organisation,
    /// eduPersonPrincipalName: `username@scope`. eduPerson allows one `@` only, so a
    /// username that holds one is not released under it.
    PrincipalName,
    /// eduPersonAffiliation values from the role ([`affiliations`]).
    Affiliation,
    /// The same, each `@scope`.
    ScopedAffiliation,
    /// `user-id@scope`: the same at every SP (Subject Identifier Attributes §3.3).
    SubjectId,
    /// `pairwise@scope`: different at every SP, stable at one (§3.4).
    PairwiseId,
}

/// A well-known attribute: its friendly name, SAML2 (URI) name, and other names an SP's
/// metadata may request it by (SAML 1 `urn:mace:dir:attribute-def:` names).
#[derive(Debug)]
pub struct Known {
    pub friendly_name: &'static str,
    pub name: &'static str,
    pub source: Source,
    pub aliases: &'static [&'static str],
}

const fn known(
    friendly_name: &'static str,
    name: &'static str,
    source: Source,
    aliases: &'static [&'static str],
) -> Known {
    Known {
        friendly_name,
        name,
        source,
        aliases,
    }
}

/// The attributes Gatehouse can release by their standard names.
pub const REGISTRY: &[Known] = &[
    known(
        "mail",
        "urn:oid:0.9.2342.19200300.100.1.3",
        Source::Email,
        &["urn:mace:dir:attribute-def:mail"],
    ),
    known(
        "uid",
        "urn:oid:0.9.2342.19200300.100.1.1",
        Source::Username,
        &["urn:mace:dir:attribute-def:uid"],
    ),
    known(
        "displayName",
        "urn:oid:2.16.840.1.113730.3.1.241",
        Source::DisplayName,
        &["urn:mace:dir:attribute-def:displayName"],
    ),
    known(
        "cn",
        "urn:oid:2.5.4.3",
        Source::DisplayName,
        &["urn:mace:dir:attribute-def:cn"],
    ),
    known(
        "o",
        "urn:oid:2.5.4.10",
        Source::Organisation,
        &["urn:mace:dir:attribute-def:o"],
    ),
    known(
        "eduPersonPrincipalName",
        "urn:oid:1.3.6.1.4.1.5923.1.1.1.6",
        Source::PrincipalName,
        &["urn:mace:dir:attribute-def:eduPersonPrincipalName", "eppn"],
    ),
    known(
        "eduPersonAffiliation",
        "urn:oid:1.3.6.1.4.1.5923.1.1.1.1",
        Source::Affiliation,
        &["urn:mace:dir:attribute-def:eduPersonAffiliation"],
    ),
    known(
        "eduPersonScopedAffiliation",
        "urn:oid:1.3.6.1.4.1.5923.1.1.1.9",
        Source::ScopedAffiliation,
        &["urn:mace:dir:attribute-def:eduPersonScopedAffiliation"],
    ),
    known(
        "subject-id",
        "urn:oasis:names:tc:SAML:attribute:subject-id",
        Source::SubjectId,
        &[],
    ),
    known(
        "pairwise-id",
        "urn:oasis:names:tc:SAML:attribute:pairwise-id",
        Source::PairwiseId,
        &[],
    ),
];

/// The user fields an administrator maps to a name of their choice.
pub const FIELDS: &[(&str, Source)] = &[
    ("email", Source::Email),
    ("name", Source::DisplayName),
    ("username", Source::Username),
    ("roles", Source::Role),
    ("organisation", Source::Organisation),
];

fn field(key: &str) -> Option<Source> {
    FIELDS.iter().find(|(f, _)| *f == key).map(|(_, s)| *s)
}

/// The registry entry named `name`: its friendly name (any case), URI name or an alias.
pub fn lookup(name: &str) -> Option<&'static Known> {
    let name = name.trim();
    REGISTRY.iter().find(|k| {
        k.friendly_name.eq_ignore_ascii_case(name)
            || k.name == name
            || k.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    })
}

/// The registry entry whose SAML2 name is exactly `name`.
fn by_uri(name: &str) -> Option<&'static Known> {
    REGISTRY.iter().find(|k| k.name == name)
}

/// What the entry `key` of a release list releases; `None` for a key that is neither a
/// field nor a registry attribute (such an entry releases nothing).
fn source(key: &str) -> Option<Source> {
    field(key).or_else(|| {
        REGISTRY
            .iter()
            .find(|k| k.friendly_name == key)
            .map(|k| k.source)
    })
}

fn known_names() -> String {
    let fields: Vec<&str> = FIELDS.iter().map(|(f, _)| *f).collect();
    let known: Vec<&str> = REGISTRY.iter().map(|k| k.friendly_name).collect();
    format!(
        "a field ({}) with =Name, or one of {}",
        fields.join(", "),
        known.join(", ")
    )
}

/// One entry of a release list from the administrator's words: a field with the name it
/// goes out under, or a registry attribute by any of its names (its name, when given,
/// must be one of them too). Returns (key, name) as stored.
pub fn entry(key: &str, name: Option<&str>) -> Result<(String, String), String> {
    if field(key).is_some() {
        let name = name.map(str::trim).unwrap_or_default();
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(format!(
                "{key}: an attribute name of 1 to {MAX_NAME_LEN} characters"
            ));
        }
        return Ok((key.to_owned(), name.to_owned()));
    }
    let known = lookup(key).ok_or_else(|| format!("{key}: expected {}", known_names()))?;
    match name {
        Some(n) if !n.is_empty() && lookup(n).is_none_or(|k| k.name != known.name) => Err(format!(
            "{key}: a known attribute always goes out as {} (to rename it, map a field)",
            known.name
        )),
        _ => Ok((known.friendly_name.to_owned(), known.name.to_owned())),
    }
}

/// The key a release-list entry is stored under (`mail` for `urn:oid:…100.1.3`).
fn key_of(key: &str) -> Option<String> {
    if field(key).is_some() {
        return Some(key.to_owned());
    }
    lookup(key).map(|k| k.friendly_name.to_owned())
}

/// Applies the administrator's words to `list`: `field=Name` maps a field, a registry
/// attribute's name alone adds it, and `key=` (an empty name) drops the entry.
pub fn apply(list: &mut BTreeMap<String, String>, pairs: &[String]) -> Result<(), String> {
    for pair in pairs {
        match pair.split_once('=') {
            Some((key, "")) => {
                let key =
                    key_of(key).ok_or_else(|| format!("{key}: expected {}", known_names()))?;
                list.remove(&key);
            }
            Some((key, name)) => {
                let (key, name) = entry(key, Some(name))?;
                list.insert(key, name);
            }
            None => {
                let (key, name) = entry(pair, None)?;
                list.insert(key, name);
            }
        }
    }
    Ok(())
}

/// Checks a whole release list as an administrator sends it (the admin API), and stores
/// registry attributes under their friendly name.
pub fn normalise(list: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>, String> {
    list.iter()
        .map(|(key, name)| entry(key, Some(name)))
        .collect()
}

/// Whether `list` releases the person's email address (by any name).
pub fn releases_email(list: &BTreeMap<String, String>) -> bool {
    list.keys().any(|k| source(k) == Some(Source::Email))
}

/// The entry that releases what `a` asks for under the very name it asks for: a
/// registry attribute by its URI (or SAML 1) name, or a field under a plain name that is
/// a registry attribute's friendly name (`mail`, basic).
fn requested_entry(a: &RequestedAttribute) -> Option<(String, String)> {
    let known = lookup(&a.name)?;
    if a.name.starts_with("urn:") {
        return Some((known.friendly_name.to_owned(), known.name.to_owned()));
    }
    let (field, _) = FIELDS.iter().find(|(_, s)| *s == known.source)?;
    let name = a.name.trim();
    (name.len() <= MAX_NAME_LEN).then(|| ((*field).to_owned(), name.to_owned()))
}

/// The release list an SP's metadata asks for (`<md:RequestedAttribute>`, Metadata
/// §2.4.4.1), and the names of the attributes Gatehouse cannot supply.
pub fn requested<'a>(
    asked: impl IntoIterator<Item = &'a RequestedAttribute>,
) -> (BTreeMap<String, String>, Vec<String>) {
    let mut list = BTreeMap::new();
    let mut unsupplied: Vec<String> = Vec::new();
    for a in asked {
        match requested_entry(a) {
            Some((key, name)) => {
                list.insert(key, name);
            }
            None => unsupplied.push(a.name.chars().take(MAX_NAME_LEN).collect()),
        }
    }
    unsupplied.dedup();
    (list, unsupplied)
}

/// eduPersonAffiliation from Gatehouse's role: everyone is a `member` of their
/// organisation; those who administer or support it are `staff` of it too.
pub fn affiliations(role: &str) -> Vec<&'static str> {
    match role.parse::<Role>() {
        Ok(r) if r.is_admin() => vec!["member", "staff"],
        _ => vec!["member"],
    }
}

/// The scope of Gatehouse's scoped attributes: `saml_scope`, else the issuer's host.
pub fn scope(config: &crate::config::Config) -> String {
    config
        .saml_scope
        .clone()
        .or_else(|| config.issuer.host_str().map(str::to_owned))
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// `<shibmd:Scope>` for the IdP metadata's extensions: SPs (Shibboleth's default
/// attribute-policy.xml) accept a scoped value only in a scope its IdP publishes.
pub fn scope_extension(scope: &str) -> Element {
    Element::new("shibmd:Scope")
        .attr("xmlns:shibmd", NS_SHIBMD)
        .attr("regexp", "false")
        .text(scope)
}

/// The identifiers of one person at one SP, for scoped attributes.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub scope: &'a str,
    /// The pairwise identifier (the same as a pairwise persistent NameID).
    pub pairwise_id: &'a str,
}

/// One attribute as the assertion states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    pub name: String,
    pub friendly_name: Option<&'static str>,
    pub name_format: &'static str,
    pub values: Vec<String>,
}

/// A Subject Identifier value (§3.3.1): an ASCII alphanumeric start, then letters,
/// digits, `=` and `-`, at most 127, then `@scope`.
fn identifier(unique: &str, scope: &str) -> Option<String> {
    let unique = unique.to_ascii_lowercase();
    let ok = unique
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && unique.len() <= 127
        && unique
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '=' || c == '-');
    (ok && valid_scope(scope)).then(|| format!("{unique}@{scope}"))
}

fn values(source: Source, person: &Person, cx: &Context<'_>) -> Vec<String> {
    match source {
        Source::Email => vec![person.email.clone()],
        Source::DisplayName => person.display_name.clone().into_iter().collect(),
        Source::Username => vec![person.username.clone()],
        Source::Role => vec![person.role.clone()],
        Source::Organisation => vec![person.organisation.clone()],
        Source::PrincipalName => (!person.username.contains('@') && valid_scope(cx.scope))
            .then(|| format!("{}@{}", person.username, cx.scope))
            .into_iter()
            .collect(),
        Source::Affiliation => affiliations(&person.role)
            .into_iter()
            .map(str::to_owned)
            .collect(),
        Source::ScopedAffiliation if valid_scope(cx.scope) => affiliations(&person.role)
            .into_iter()
            .map(|a| format!("{a}@{}", cx.scope))
            .collect(),
        Source::ScopedAffiliation => Vec::new(),
        Source::SubjectId => identifier(&person.user_id, cx.scope).into_iter().collect(),
        Source::PairwiseId => identifier(cx.pairwise_id, cx.scope).into_iter().collect(),
    }
}

/// What `list` releases about `person`: every entry with a value, nothing else.
pub fn release(
    list: &BTreeMap<String, String>,
    person: &Person,
    cx: &Context<'_>,
) -> Vec<Released> {
    let mut out = Vec::new();
    for (key, name) in list {
        let Some(source) = source(key) else { continue };
        let values = values(source, person, cx);
        if values.is_empty() {
            continue;
        }
        // One Attribute per Name (Core §2.7.3.1 leaves repeats to the SP to merge).
        if out.iter().any(|r: &Released| r.name == *name) {
            continue;
        }
        let uri = name.starts_with("urn:");
        out.push(Released {
            name: name.clone(),
            friendly_name: by_uri(name).map(|k| k.friendly_name),
            name_format: if uri { ATTRNAME_URI } else { ATTRNAME_BASIC },
            values,
        });
    }
    out
}

#[cfg(test)]
mod tests;
