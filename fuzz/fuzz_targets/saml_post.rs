#![no_main]
//! SAML HTTP-POST binding (Bindings §3.5): the form's decoding, the XML gate, samael's
//! parsing, and libxmlsec's verification of an enveloped signature.

use gatehouse::saml::request::{self, Binding};
use gatehouse_fuzz_support::{parse_every_message, sp_cert};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let body = String::from_utf8_lossy(data);
    let Ok(inbound) = request::decode(&body, "SAMLRequest", Binding::Post) else {
        return;
    };
    parse_every_message(&inbound.xml);
    if request::has_xml_signature(&inbound.xml)
        && let Ok(element) = request::verified_element(&inbound.xml, sp_cert())
    {
        parse_every_message(&element);
    }
});
