#![no_main]
//! SAML HTTP-POST binding (Bindings §3.5): the form's decoding, the XML gate, samael's
//! parsing, and libxmlsec's verification of an enveloped signature.

use std::sync::OnceLock;

use gatehouse::saml::{
    dsig,
    request::{self, Binding},
};
use gatehouse_fuzz_support::{parse_every_message, sp_cert};
use libfuzzer_sys::fuzz_target;

/// Verification is async (blocking pool, deadline), as the endpoints call it.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let body = String::from_utf8_lossy(data);
    let Ok(inbound) = request::decode(&body, "SAMLRequest", Binding::Post) else {
        return;
    };
    parse_every_message(&inbound.xml);
    let signed = dsig::inspect(&inbound.xml).is_ok_and(|shape| shape.signed);
    if signed
        && let Ok(element) = runtime().block_on(request::verified_element(&inbound.xml, sp_cert()))
    {
        parse_every_message(&element);
    }
});
