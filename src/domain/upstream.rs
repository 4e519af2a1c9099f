//! Upstream identity providers (DESIGN §16), as values: a connector's name in URLs, the
//! email domains that send people to it, and its settings document.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use url::Url;

use super::{FhirBaseUrl, FhirUserRef, ParseError, Role};

/// A connector's name in URLs (`/login/upstream/{slug}`, its callback and SP metadata):
/// 1–40 of `a-z 0-9 -`, starting with a letter or digit. Unique across organisations.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnectorSlug(String);

impl ConnectorSlug {
    pub const MAX_LEN: usize = 40;

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let ok = !raw.is_empty()
            && raw.len() <= Self::MAX_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !raw.starts_with('-');
        if !ok {
            return Err(ParseError(format!(
                "a connector name is 1 to {} of a-z, 0-9 and -, not starting with -",
                Self::MAX_LEN
            )));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ConnectorSlug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email domain for home-realm discovery, lower case (`hospital.example`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MailDomain(String);

impl MailDomain {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let domain = raw.trim().to_ascii_lowercase();
        let ok = domain.len() <= 253
            && domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !ok {
            return Err(ParseError(format!("{raw:?} is not an email domain")));
        }
        Ok(Self(domain))
    }

    /// The domain of what someone typed as their identifier, if it is an address.
    pub fn of_identifier(identifier: &str) -> Option<Self> {
        let (local, domain) = identifier.trim().rsplit_once('@')?;
        if local.is_empty() {
            return None;
        }
        Self::parse(domain).ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// The protocol a connector speaks to its upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    Oidc,
    Saml,
}

impl UpstreamProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Oidc => "oidc",
            Self::Saml => "saml",
        }
    }
}

/// How Gatehouse authenticates to the upstream's token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamClientAuth {
    #[default]
    ClientSecretBasic,
    ClientSecretPost,
    /// A JWT signed with Gatehouse's own signing key (RFC 7523); the upstream reads our
    /// `/jwks`. No secret is kept.
    PrivateKeyJwt,
}

/// An OIDC upstream: where it is and who we are to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcUpstream {
    /// The upstream's issuer; its discovery document is read from
    /// `{issuer}/.well-known/openid-configuration` and must name the same issuer.
    pub issuer: Url,
    pub client_id: String,
    #[serde(default)]
    pub client_auth: UpstreamClientAuth,
    /// Asked for besides `openid`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// A PEM certificate (or chain) to trust for this upstream besides the system's
    /// roots: a hospital's internal certificate authority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// Signing out of Gatehouse also ends the session at the upstream (RP-Initiated
    /// Logout), when its discovery names an end-session endpoint.
    #[serde(default = "yes")]
    pub end_upstream_session: bool,
}

fn default_scopes() -> Vec<String> {
    vec!["profile".into(), "email".into()]
}

/// What a connector's upstream says becomes a Gatehouse account: which claims (or SAML
/// attributes) name it, and what the upstream's word is worth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountMapping {
    /// Create the account at the first sign-in when no link exists and the name is free.
    #[serde(default = "yes")]
    pub just_in_time: bool,
    /// The upstream's MFA (OIDC `amr`/`acr`, SAML AuthnContext) satisfies ours; when
    /// false, a second factor Gatehouse asks for is always Gatehouse's own.
    #[serde(default)]
    pub trust_upstream_mfa: bool,
    /// `acr` values (or SAML AuthnContextClassRefs) that mean the upstream did MFA.
    #[serde(default)]
    pub mfa_acr_values: Vec<String>,
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    #[serde(default = "default_email_claim")]
    pub email_claim: String,
    #[serde(default = "default_name_claim")]
    pub name_claim: String,
    /// A claim holding a list of groups (or roles), read for `role_map`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_claim: Option<String>,
    /// Upstream group → Gatehouse role, for accounts created just in time; the
    /// strongest role any of the person's groups maps to wins.
    #[serde(default)]
    pub role_map: BTreeMap<String, Role>,
    #[serde(default = "default_role")]
    pub default_role: Role,
    /// Offer the connector as a button on the sign-in page (otherwise only its email
    /// domains and the relying party's `idp_hint` lead there).
    #[serde(default = "yes")]
    pub show_on_login: bool,
    /// Where the person's FHIR resource (SMART `fhirUser`) comes from, if the upstream
    /// says: set at each sign-in that carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fhir_user: Option<FhirUserMapping>,
}

/// A claim (or SAML attribute Name) holding the person's FHIR resource on a registered
/// FHIR server: `Practitioner/123`, or its absolute URL on that server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FhirUserMapping {
    pub claim: String,
    /// The FHIR server's base URL, as registered.
    pub fhir_server: String,
}

impl FhirUserMapping {
    fn check(&self) -> Result<(), ParseError> {
        if self.claim.is_empty() || self.claim.len() > 200 {
            return Err(ParseError("claim names are 1 to 200 characters".into()));
        }
        FhirBaseUrl::parse(&self.fhir_server)
            .map(|_| ())
            .map_err(|e| ParseError(format!("fhir_user.fhir_server: {}", e.0)))
    }

    /// The FHIR server's base URL in its one spelling.
    pub fn server(&self) -> Result<FhirBaseUrl, ParseError> {
        FhirBaseUrl::parse(&self.fhir_server)
    }

    /// The resource a claim's `value` names: `Type/id`, or the same as an absolute URL
    /// on this mapping's server (and on no other).
    pub fn reference(&self, value: &str) -> Result<FhirUserRef, ParseError> {
        let base = self.server()?;
        let relative = match value.strip_prefix(base.as_str()) {
            Some(rest) => rest
                .strip_prefix('/')
                .ok_or_else(|| ParseError("not a resource on the FHIR server".into()))?,
            None if value.contains(':') => {
                return Err(ParseError(
                    "an absolute reference to another server than the one mapped".into(),
                ));
            }
            None => value,
        };
        FhirUserRef::parse(relative)
    }
}

fn yes() -> bool {
    true
}
fn default_username_claim() -> String {
    "preferred_username".into()
}
fn default_email_claim() -> String {
    "email".into()
}
fn default_name_claim() -> String {
    "name".into()
}
fn default_role() -> Role {
    Role::User
}

impl Default for AccountMapping {
    fn default() -> Self {
        Self {
            just_in_time: true,
            trust_upstream_mfa: false,
            mfa_acr_values: Vec::new(),
            username_claim: default_username_claim(),
            email_claim: default_email_claim(),
            name_claim: default_name_claim(),
            groups_claim: None,
            role_map: BTreeMap::new(),
            default_role: default_role(),
            show_on_login: true,
            fhir_user: None,
        }
    }
}

impl AccountMapping {
    /// The role for an account created from someone in `groups`.
    pub fn role_for(&self, groups: &[String]) -> Role {
        groups
            .iter()
            .filter_map(|g| self.role_map.get(g).copied())
            .max()
            .unwrap_or(self.default_role)
    }
}

/// RFC 8176 methods that are a factor beyond a password, or say outright that more
/// than one factor was used.
const STRONG_METHODS: &[&str] = &[
    "mfa", "otp", "hwk", "swk", "sc", "fpt", "face", "iris", "retina", "vbm",
];

/// Every method RFC 8176 registers: only these are carried into our own `amr`.
pub const REGISTERED_METHODS: &[&str] = &[
    "face", "fpt", "geo", "hwk", "iris", "kba", "mca", "mfa", "otp", "pin", "pop", "pwd", "rba",
    "retina", "sc", "sms", "swk", "tel", "user", "vbm", "wia",
];

impl AccountMapping {
    /// Whether the upstream says it did MFA: a strong method in `amr`, or an `acr` the
    /// connector names as MFA. Only worth anything when `trust_upstream_mfa` is set.
    pub fn upstream_did_mfa(&self, amr: &[String], acr: Option<&str>) -> bool {
        amr.iter().any(|m| STRONG_METHODS.contains(&m.as_str()))
            || acr.is_some_and(|acr| self.mfa_acr_values.iter().any(|v| v == acr))
    }
}

/// A connector's settings document: its protocol's part and the account mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcUpstream>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saml: Option<SamlUpstream>,
    #[serde(default)]
    pub accounts: AccountMapping,
}

/// A SAML upstream (Gatehouse as its SP): where its metadata comes from and what is
/// required of its assertions. The NameID is the subject; the account mapping's claim
/// names are SAML attribute Names (`urn:oid:0.9.2342.19200300.100.1.3` for mail).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamlUpstream {
    /// The IdP's metadata document, pasted (exclusive with `metadata_url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_xml: Option<String>,
    /// Where the IdP publishes its metadata (exclusive with `metadata_xml`), fetched with
    /// the bounds and address rules of SP metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_url: Option<Url>,
    /// The IdP to use when the metadata describes several (a federation aggregate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<String>,
    /// Refuse an assertion that arrives in clear.
    #[serde(default)]
    pub require_encrypted_assertions: bool,
}

/// Largest metadata document kept in a connector's settings (as SP metadata imports).
pub const MAX_SAML_METADATA_BYTES: usize = 1024 * 1024;

impl ConnectorSettings {
    /// Refuses settings that could not work, naming what is wrong.
    pub fn check(&self, protocol: UpstreamProtocol) -> Result<(), ParseError> {
        match (protocol, &self.oidc) {
            (UpstreamProtocol::Oidc, Some(oidc)) => check_oidc(oidc),
            (UpstreamProtocol::Oidc, None) => Err(ParseError(
                "an OIDC connector needs its `oidc` settings".into(),
            )),
            (UpstreamProtocol::Saml, Some(_)) => Err(ParseError(
                "a SAML connector has `saml` settings, not `oidc`".into(),
            )),
            (UpstreamProtocol::Saml, None) => match &self.saml {
                Some(saml) => check_saml(saml),
                None => Err(ParseError(
                    "a SAML connector needs its `saml` settings".into(),
                )),
            },
        }?;
        if protocol == UpstreamProtocol::Oidc && self.saml.is_some() {
            return Err(ParseError(
                "an OIDC connector has `oidc` settings, not `saml`".into(),
            ));
        }
        for claim in [
            &self.accounts.username_claim,
            &self.accounts.email_claim,
            &self.accounts.name_claim,
        ] {
            if claim.is_empty() || claim.len() > 200 {
                return Err(ParseError("claim names are 1 to 200 characters".into()));
            }
        }
        self.accounts
            .fhir_user
            .as_ref()
            .map_or(Ok(()), FhirUserMapping::check)
    }
}

fn check_oidc(oidc: &OidcUpstream) -> Result<(), ParseError> {
    let issuer = &oidc.issuer;
    let loopback = matches!(issuer.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    // An issuer in clear could be anyone: only a loopback one (a test, or a sidecar) may
    // be plain HTTP, as RFC 8252 allows for loopback redirects.
    if issuer.scheme() != "https" && !(issuer.scheme() == "http" && loopback) {
        return Err(ParseError(
            "the upstream issuer must be an https URL".into(),
        ));
    }
    if issuer.query().is_some() || issuer.fragment().is_some() {
        return Err(ParseError(
            "the upstream issuer has no query or fragment".into(),
        ));
    }
    if oidc.client_id.is_empty() || oidc.client_id.len() > 255 {
        return Err(ParseError("the client id is 1 to 255 characters".into()));
    }
    if oidc.scopes.len() > 20
        || oidc
            .scopes
            .iter()
            .any(|s| !super::valid_scope(s) || s == "openid")
    {
        return Err(ParseError(
            "scopes are at most 20 valid scope tokens, `openid` being implied".into(),
        ));
    }
    if let Some(pem) = &oidc.ca_pem
        && (pem.len() > 64 * 1024 || !pem.contains("-----BEGIN CERTIFICATE-----"))
    {
        return Err(ParseError(
            "the CA certificate must be PEM, at most 64 KiB".into(),
        ));
    }
    Ok(())
}

fn check_saml(saml: &SamlUpstream) -> Result<(), ParseError> {
    match (&saml.metadata_xml, &saml.metadata_url) {
        (Some(xml), None) => {
            if xml.len() > MAX_SAML_METADATA_BYTES || !xml.trim_start().starts_with('<') {
                return Err(ParseError(
                    "the IdP metadata must be an XML document of at most 1 MiB".into(),
                ));
            }
        }
        (None, Some(url)) => {
            if !matches!(url.scheme(), "https" | "http") || url.as_str().len() > 2048 {
                return Err(ParseError(
                    "the IdP metadata URL must be an http(s) URL of at most 2048 characters".into(),
                ));
            }
        }
        _ => {
            return Err(ParseError(
                "give exactly one of `metadata_xml` and `metadata_url`".into(),
            ));
        }
    }
    if let Some(id) = &saml.entity_id
        && (id.is_empty() || id.len() > 1024)
    {
        return Err(ParseError("the entity id is 1 to 1024 characters".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_url_safe_names() {
        assert!(ConnectorSlug::parse("st-mary-entra").is_ok());
        for bad in ["", "-x", "Upper", "a/b", "a b", &"x".repeat(41), "é"] {
            assert!(ConnectorSlug::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_domain_of_an_identifier_is_found_in_lower_case() {
        assert_eq!(
            MailDomain::of_identifier("Ana@Hospital.Example")
                .unwrap()
                .as_str(),
            "hospital.example"
        );
        assert!(MailDomain::of_identifier("ana").is_none());
        assert!(MailDomain::of_identifier("@hospital.example").is_none());
        assert!(MailDomain::parse("localhost").is_err());
    }

    #[test]
    fn the_strongest_mapped_role_wins_and_unknown_groups_give_the_default() {
        let mut m = AccountMapping::default();
        m.role_map.insert("it-admins".into(), Role::OrgAdmin);
        m.role_map.insert("helpdesk".into(), Role::Support);
        assert_eq!(
            m.role_for(&["helpdesk".into(), "it-admins".into()]),
            Role::OrgAdmin
        );
        assert_eq!(m.role_for(&["nurses".into()]), Role::User);
    }

    #[test]
    fn mfa_is_read_from_strong_methods_or_named_acr_values() {
        let mut m = AccountMapping::default();
        assert!(!m.upstream_did_mfa(&["pwd".into()], None));
        assert!(m.upstream_did_mfa(&["pwd".into(), "mfa".into()], None));
        assert!(!m.upstream_did_mfa(&[], Some("urn:x:mfa")));
        m.mfa_acr_values.push("urn:x:mfa".into());
        assert!(m.upstream_did_mfa(&[], Some("urn:x:mfa")));
    }

    #[test]
    fn an_issuer_in_clear_is_refused_unless_it_is_loopback() {
        let settings = |issuer: &str| ConnectorSettings {
            oidc: Some(OidcUpstream {
                issuer: Url::parse(issuer).unwrap(),
                client_id: "gatehouse".into(),
                client_auth: UpstreamClientAuth::default(),
                scopes: default_scopes(),
                ca_pem: None,
                end_upstream_session: true,
            }),
            saml: None,
            accounts: AccountMapping::default(),
        };
        assert!(
            settings("https://login.example")
                .check(UpstreamProtocol::Oidc)
                .is_ok()
        );
        assert!(
            settings("http://127.0.0.1:9000")
                .check(UpstreamProtocol::Oidc)
                .is_ok()
        );
        assert!(
            settings("http://login.example")
                .check(UpstreamProtocol::Oidc)
                .is_err()
        );
    }

    #[test]
    fn a_mapped_fhir_user_is_a_reference_on_the_mapped_server_and_no_other() {
        let m = FhirUserMapping {
            claim: "fhirUser".into(),
            fhir_server: "https://fhir.example.org/r4/".into(),
        };
        assert!(m.check().is_ok());
        let named = |v: &str| m.reference(v).map(|r| r.to_string());
        assert_eq!(named("Practitioner/dr-7").unwrap(), "Practitioner/dr-7");
        assert_eq!(
            named("https://fhir.example.org/r4/Practitioner/dr-7").unwrap(),
            "Practitioner/dr-7"
        );
        for bad in [
            "https://fhir.example.org/r4x/Practitioner/dr-7",
            "https://evil.example.org/r4/Practitioner/dr-7",
            "Organization/1",
            "Practitioner/",
            "Practitioner/a/b",
            "",
        ] {
            assert!(named(bad).is_err(), "{bad}");
        }
        let unusable = FhirUserMapping {
            fhir_server: "http://fhir.example.org/r4".into(),
            ..m.clone()
        };
        assert!(unusable.check().is_err());
        let unnamed = FhirUserMapping {
            claim: String::new(),
            ..m
        };
        assert!(unnamed.check().is_err());
    }

    #[test]
    fn unknown_settings_are_refused_not_ignored() {
        let doc = r#"{"oidc":{"issuer":"https://a.example","client_id":"c","scopez":[]}}"#;
        assert!(serde_json::from_str::<ConnectorSettings>(doc).is_err());
    }

    #[test]
    fn a_saml_connector_takes_exactly_one_metadata_source() {
        let saml = |xml: Option<&str>, url: Option<&str>| ConnectorSettings {
            oidc: None,
            saml: Some(SamlUpstream {
                metadata_xml: xml.map(str::to_owned),
                metadata_url: url.map(|u| Url::parse(u).unwrap()),
                entity_id: None,
                require_encrypted_assertions: false,
            }),
            accounts: AccountMapping::default(),
        };
        let ok = saml(Some("<md:EntityDescriptor/>"), None);
        assert!(ok.check(UpstreamProtocol::Saml).is_ok());
        assert!(
            ok.check(UpstreamProtocol::Oidc).is_err(),
            "not OIDC settings"
        );
        let by_url = saml(None, Some("https://idp.example/metadata"));
        assert!(by_url.check(UpstreamProtocol::Saml).is_ok());
        for bad in [
            saml(None, None),
            saml(Some("<x/>"), Some("https://idp.example/metadata")),
            saml(Some("not xml"), None),
            saml(None, Some("ftp://idp.example/metadata")),
        ] {
            assert!(bad.check(UpstreamProtocol::Saml).is_err(), "{bad:?}");
        }
        let doc = r#"{"saml":{"metadata_url":"https://a.example/m","sign_requests":true}}"#;
        assert!(serde_json::from_str::<ConnectorSettings>(doc).is_err());
    }
}
