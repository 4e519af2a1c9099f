#![no_main]
//! OIDC request parameters (RFC 6749 §3.1): form/query parsing, scopes, and the whole
//! `/authorize` validation against a registered client.

use gatehouse::oidc::{Params, authorize, parse_scope};
use gatehouse_fuzz_support::code_client;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(params) = Params::parse(data) else {
        return;
    };
    if let Some(scope) = params.get("scope") {
        let _ = parse_scope(scope);
    }
    if authorize::validate(&params, code_client()).is_ok() {
        assert!(
            params.clone().single().is_ok(),
            "a repeated parameter was accepted"
        );
    }
});
