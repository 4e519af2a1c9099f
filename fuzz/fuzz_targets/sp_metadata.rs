#![no_main]
//! SP metadata import (SAML Metadata §2): the XML gate, samael's EntityDescriptor
//! parsing, certificates and endpoints.

use gatehouse::saml::providers::{ImportSettings, from_metadata};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(sp) = from_metadata(&String::from_utf8_lossy(data), &ImportSettings::default()) {
        assert!(!sp.entity_id.is_empty());
    }
});
