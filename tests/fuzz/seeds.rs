//! Valid messages to mutate: what a real SP, client or operator sends, built the way the
//! API tests build them (tests/api/saml.rs, tests/api/oidc.rs), so mutations start from
//! inputs that pass every check.

use base64::{Engine, engine::general_purpose::STANDARD};
use openssl::{
    asn1::Asn1Time,
    hash::MessageDigest,
    pkey::{PKey, Private},
    rsa::Rsa,
    x509::{X509, X509NameBuilder},
};
use samael::{
    crypto::{CertificateDer, Crypto, CryptoProvider},
    signature::{DigestAlgorithm, Signature},
    traits::ToXml,
};

pub const POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
pub const REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
pub const SP: &str = "https://sp.example.org/metadata";
pub const ACS: &str = "https://sp.example.org/acs";
pub const IDP: &str = "https://localhost:8443";

/// An SP's signing key and its self-signed certificate.
pub struct KeyCert {
    pub key: PKey<Private>,
    pub cert: X509,
}

impl KeyCert {
    pub fn new(cn: &str) -> Self {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(365).unwrap())
            .unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        Self {
            key,
            cert: b.build(),
        }
    }

    pub fn der(&self) -> Vec<u8> {
        self.cert.to_der().unwrap()
    }

    /// `xml` with an enveloped signature over its root element (ID `id`), after Issuer.
    pub fn sign(&self, xml: &str, id: &str) -> String {
        let mut template = Signature::template(id, &CertificateDer::from(self.der()));
        for r in &mut template.signed_info.reference {
            r.digest_method.algorithm = DigestAlgorithm::Sha256;
        }
        let template = template.to_string().unwrap();
        let at = xml.find("</saml:Issuer>").unwrap() + "</saml:Issuer>".len();
        let mut with = xml.to_owned();
        with.insert_str(at, &template);
        Crypto::sign_xml(&with, &self.key.private_key_to_pkcs8().unwrap()).unwrap()
    }
}

const NS: &str = r#"xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion""#;

pub fn authn_request(id: &str) -> String {
    format!(
        r#"<samlp:AuthnRequest {NS} ID="{id}" Version="2.0" IssueInstant="2026-12-06T02:00:00Z" Destination="{IDP}/saml/sso" AssertionConsumerServiceURL="{ACS}" ProtocolBinding="{POST}" ForceAuthn="false" IsPassive="false"><saml:Issuer>{SP}</saml:Issuer><samlp:NameIDPolicy Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent" AllowCreate="true"/><samlp:RequestedAuthnContext Comparison="exact"><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></samlp:RequestedAuthnContext></samlp:AuthnRequest>"#
    )
}

pub fn logout_request(id: &str) -> String {
    format!(
        r#"<samlp:LogoutRequest {NS} ID="{id}" Version="2.0" IssueInstant="2026-12-06T02:00:00Z" Destination="{IDP}/saml/slo"><saml:Issuer>{SP}</saml:Issuer><saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent">u-1</saml:NameID><samlp:SessionIndex>_s1</samlp:SessionIndex><samlp:SessionIndex>_s2</samlp:SessionIndex></samlp:LogoutRequest>"#
    )
}

pub fn logout_response(id: &str) -> String {
    format!(
        r#"<samlp:LogoutResponse {NS} ID="{id}" Version="2.0" IssueInstant="2026-12-06T02:00:00Z" Destination="{IDP}/saml/slo" InResponseTo="_r1"><saml:Issuer>{SP}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status></samlp:LogoutResponse>"#
    )
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The HTTP-Redirect query for `xml` (Bindings §3.4.4), signed when `key` is given.
pub fn redirect_query(
    param: &str,
    xml: &[u8],
    relay: Option<&str>,
    key: Option<&KeyCert>,
) -> String {
    let deflated = gatehouse::saml::xml::deflate(xml);
    let mut q = format!("{param}={}", enc(&STANDARD.encode(deflated)));
    if let Some(r) = relay {
        q.push_str(&format!("&RelayState={}", enc(r)));
    }
    if let Some(key) = key {
        q.push_str(&format!(
            "&SigAlg={}",
            enc("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
        ));
        let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), &key.key).unwrap();
        signer.update(q.as_bytes()).unwrap();
        q.push_str(&format!(
            "&Signature={}",
            enc(&STANDARD.encode(signer.sign_to_vec().unwrap()))
        ));
    }
    q
}

/// The HTTP-POST form body for `xml` (Bindings §3.5.4).
pub fn post_body(param: &str, xml: &[u8], relay: Option<&str>) -> String {
    let mut body = format!("{param}={}", enc(&STANDARD.encode(xml)));
    if let Some(r) = relay {
        body.push_str(&format!("&RelayState={}", enc(r)));
    }
    body
}

/// SP metadata as real SPs publish it: both key uses, SLO, several ACS endpoints.
pub fn metadata(signing: &KeyCert, encryption: &KeyCert) -> String {
    format!(
        r#"<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{SP}">
  <md:SPSSODescriptor AuthnRequestsSigned="true" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>
{sign}
    </ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:KeyDescriptor use="encryption"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{enc}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>
      <md:EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#aes128-gcm"/></md:KeyDescriptor>
    <md:SingleLogoutService Binding="{REDIRECT}" Location="https://sp.example.org/slo"/>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>
    <md:AssertionConsumerService Binding="{POST}" Location="{ACS}" index="0" isDefault="true"/>
    <md:AssertionConsumerService Binding="{POST}" Location="{ACS}/second" index="1"/>
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact" Location="{ACS}/artifact" index="2"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>"#,
        sign = STANDARD.encode(signing.der()),
        enc = STANDARD.encode(encryption.der()),
    )
}

/// `/authorize` query strings a real RP sends.
pub fn authorize_queries(client_id: &str) -> Vec<String> {
    let base = format!(
        "response_type=code&client_id={client_id}&redirect_uri={}&scope=openid%20profile%20email&state=s-1&nonce=n-1",
        enc("https://rp.example.org/cb")
    );
    vec![
        base.clone(),
        format!(
            "{base}&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
        ),
        format!("{base}&prompt=login&max_age=300&acr_values=mfa&login_hint=alice"),
        format!("{base}&prompt=none&response_mode=query"),
    ]
}

/// A configuration file as an operator writes one.
pub const CONFIG_TOML: &str = r#"# Gatehouse
bind = "0.0.0.0:8443"
tls = true
issuer = "https://idp.example.org"
data_dir = "/var/lib/gatehouse"
database_url = "postgres://gatehouse:secret-db-password@db.example.org:5432/gatehouse"
database_pool_size = 10
redis_url = "rediss://:secret-redis@redis.example.org:6379/0"
master_key = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI="
trusted_proxies = ["10.0.0.0/8", "::1"]
ip_allow_list = ["192.168.0.0/16"]
mail_from = "Gatehouse <idp@example.org>"
smtp_url = "smtp://mailer:secret-smtp@mail.example.org:587"
webhook_url = "https://hooks.example.org/T0/B0/secret-path"
webhook_secret = "whsec-0123456789abcdef"
metrics_bind = "127.0.0.1:9464"
metrics_token = "scrape-0123456789abcdef"
access_token_secs = 300
refresh_token_secs = 1209600
saml_clock_skew_secs = 120
log_level = "gatehouse=debug,info"
log_format = "json"
argon2_memory_kib = 19456
hashing_workers = 2
rate_limit_per_minute = 60
reset_token_minutes = 30
audit_retention_days = 2192
"#;
