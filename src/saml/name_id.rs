//! The NameID an SP gets (SAML Core §2.2.2, §8.3) and how an AuthnRequest's
//! `<NameIDPolicy Format>` is honoured (Core §3.4.1.1).
//!
//! An SP is registered with one format (its default). A request may ask for another,
//! which is granted when it tells the SP nothing its registration does not already give
//! it: `transient` always (a new random value each time), `persistent` (pairwise: stable
//! at this SP only) unless the SP is set to transient, and `emailAddress` only to an SP
//! that is released the email address anyway. Any other format is answered with
//! `InvalidNameIDPolicy`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{
    assertion::{Person, new_id},
    attributes,
    providers::{
        NAMEID_EMAIL, NAMEID_PERSISTENT, NAMEID_TRANSIENT, NAMEID_UNSPECIFIED, NameIdSource,
        ServiceProvider,
    },
};
use crate::crypto::MasterKey;

/// The person's pairwise identifier at the SP `sp_entity_id`: an HMAC keyed from the
/// master key, stable for one SP and unlinkable across SPs.
pub fn pairwise(master_key: &MasterKey, sp_entity_id: &str, user_id: &str) -> String {
    let key = master_key.derive("saml-pairwise-name-id");
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key.as_ref()).expect("HMAC accepts any key length");
    mac.update(sp_entity_id.as_bytes());
    mac.update(&[0]);
    mac.update(user_id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The NameID value for `person` at `sp`, made from `source`.
pub fn value(
    master_key: &MasterKey,
    source: NameIdSource,
    sp: &ServiceProvider,
    person: &Person,
) -> String {
    match source {
        NameIdSource::Pairwise => pairwise(master_key, &sp.entity_id, &person.user_id),
        NameIdSource::UserId => person.user_id.clone(),
        NameIdSource::Username => person.username.clone(),
        NameIdSource::Email => person.email.clone(),
        NameIdSource::Random => new_id(),
    }
}

/// The NameID format and source for a request to `sp` that asks for `requested`
/// (absent or `unspecified`: the SP's own). `None`: the SP may not have that format.
pub fn for_request(
    sp: &ServiceProvider,
    requested: Option<&str>,
) -> Option<(String, NameIdSource)> {
    let requested = requested.map(str::trim).filter(|f| !f.is_empty());
    match requested {
        None | Some(NAMEID_UNSPECIFIED) => Some((sp.name_id_format.clone(), sp.name_id_source)),
        Some(f) if f == sp.name_id_format => Some((f.to_owned(), sp.name_id_source)),
        Some(NAMEID_TRANSIENT) => Some((NAMEID_TRANSIENT.to_owned(), NameIdSource::Random)),
        // An SP that is to see a new identifier every time is not given a stable one.
        Some(NAMEID_PERSISTENT) if sp.name_id_source != NameIdSource::Random => {
            Some((NAMEID_PERSISTENT.to_owned(), NameIdSource::Pairwise))
        }
        Some(NAMEID_EMAIL) if attributes::releases_email(&sp.attributes) => {
            Some((NAMEID_EMAIL.to_owned(), NameIdSource::Email))
        }
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::saml::providers::{ImportSettings, from_metadata};

    const METADATA: &str = r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://sp.example.org"><md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://sp.example.org/acs" index="0"/></md:SPSSODescriptor></md:EntityDescriptor>"#;

    fn sp(format: &str, attributes: &[&str]) -> ServiceProvider {
        let mut sp = from_metadata(
            METADATA,
            &ImportSettings {
                name_id_format: Some(format.into()),
                ..Default::default()
            },
        )
        .unwrap();
        sp.attributes = attributes
            .iter()
            .map(|k| (k.to_string(), k.to_string()))
            .collect::<BTreeMap<_, _>>();
        sp
    }

    #[test]
    fn no_format_or_unspecified_gives_the_sps_own() {
        let sp = sp("email", &["email"]);
        for asked in [None, Some(NAMEID_UNSPECIFIED), Some("  ")] {
            assert_eq!(
                for_request(&sp, asked),
                Some((NAMEID_EMAIL.to_owned(), NameIdSource::Email))
            );
        }
    }

    #[test]
    fn transient_is_always_granted_with_a_random_value() {
        let sp = sp("persistent", &[]);
        assert_eq!(
            for_request(&sp, Some(NAMEID_TRANSIENT)),
            Some((NAMEID_TRANSIENT.to_owned(), NameIdSource::Random))
        );
    }

    #[test]
    fn persistent_is_pairwise_and_refused_to_a_transient_sp() {
        assert_eq!(
            for_request(&sp("email", &["email"]), Some(NAMEID_PERSISTENT)),
            Some((NAMEID_PERSISTENT.to_owned(), NameIdSource::Pairwise))
        );
        assert_eq!(
            for_request(&sp("transient", &[]), Some(NAMEID_PERSISTENT)),
            None
        );
    }

    #[test]
    fn email_address_only_to_an_sp_that_gets_the_email_anyway() {
        assert_eq!(
            for_request(&sp("persistent", &["mail"]), Some(NAMEID_EMAIL)),
            Some((NAMEID_EMAIL.to_owned(), NameIdSource::Email))
        );
        assert_eq!(
            for_request(&sp("persistent", &["username"]), Some(NAMEID_EMAIL)),
            None
        );
    }

    #[test]
    fn other_formats_are_refused() {
        let sp = sp("persistent", &["email"]);
        for f in [
            "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName",
            "urn:oasis:names:tc:SAML:2.0:nameid-format:encrypted",
            "urn:oasis:names:tc:SAML:2.0:nameid-format:entity",
        ] {
            assert_eq!(for_request(&sp, Some(f)), None, "{f}");
        }
    }
}
