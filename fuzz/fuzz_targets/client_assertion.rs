#![no_main]
//! `private_key_jwt` client assertions (RFC 7523 §3) and Basic credentials, through the
//! token endpoint's client authentication. The input is the assertion, or (after a
//! first byte of 0) an Authorization header value.

use gatehouse_fuzz_support::{authenticate, warm_up};
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: warm_up(), |data: &[u8]| {
    match data.split_first() {
        Some((0, header)) => authenticate(None, Some(header)),
        _ => authenticate(Some(&String::from_utf8_lossy(data)), None),
    }
});
