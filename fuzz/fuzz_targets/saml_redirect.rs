#![no_main]
//! SAML HTTP-Redirect binding (Bindings §3.4): the query's decoding (sizes, base64,
//! DEFLATE, the XML gate), the query signature, and samael's parsing of what comes out.

use gatehouse::saml::request::{self, Binding};
use gatehouse_fuzz_support::{parse_every_message, sp_cert};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let query = String::from_utf8_lossy(data);
    for param in ["SAMLRequest", "SAMLResponse"] {
        if let Ok(inbound) = request::decode(&query, param, Binding::Redirect) {
            assert!(inbound.xml.len() <= gatehouse::saml::xml::MAX_MESSAGE_BYTES);
            parse_every_message(&inbound.xml);
        }
        let _ = request::verify_query_signature(&query, param, sp_cert());
    }
});
