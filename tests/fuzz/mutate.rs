//! Structure-aware mutation: a valid message, changed by a few edits that a hostile
//! sender (or a broken one) would make, chosen so that the parsers see inputs that are
//! nearly right — the ones that reach deep code — rather than only noise.

use proptest::prelude::*;

/// Fragments that mean something to one of the parsers under test: XML syntax and the
/// DTD/entity forms the gate must stop, query and form syntax, JSON edge cases, numbers
/// at the limits, and Unicode that is awkward to slice.
pub const TOKENS: &[&str] = &[
    "<",
    ">",
    "/>",
    "</",
    "\"",
    "'",
    "&",
    "&amp;",
    "&#0;",
    "&#x110000;",
    "&lol;",
    "<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>",
    "<!ENTITY",
    "<!doctype",
    "<![CDATA[",
    "]]>",
    "<?xml version=\"1.1\" encoding=\"UTF-16\"?>",
    "<!-- -->",
    "xmlns=\"\"",
    " xmlns:samlp=\"urn:x\"",
    " ID=\"\"",
    " ID=\"a\" ID=\"b\"",
    "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">",
    "</ds:Signature>",
    "<ds:Reference URI=\"file:///etc/passwd\">",
    "\u{0}",
    "\u{feff}",
    "\u{10ffff}",
    "é",
    "\u{301}",
    "%",
    "%2",
    "%zz",
    "%00",
    "%C3%28",
    "+",
    "=",
    "==",
    "SAMLRequest=",
    "&SAMLRequest=",
    "&SAMLResponse=",
    "&RelayState=",
    "&SigAlg=",
    "&Signature=",
    "&client_id=",
    "&scope=openid",
    "&response_type=code",
    "&redirect_uri=",
    "&prompt=none",
    "&max_age=-1",
    "&code_challenge_method=plain",
    "9999999999999999999999999999",
    "-9223372036854775808",
    "1e309",
    "-0",
    "NaN",
    "null",
    "true",
    "{}",
    "[]",
    "{\"\":",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    "\"alg\":\"none\"",
    "\"alg\":\"HS256\"",
    ".",
    "..",
    "\n",
    "\r\n",
    "\t",
    " ",
    "[",
    "]",
    "[[x]]",
    "= \"\"\"",
    "'''",
    "#",
];

#[derive(Debug, Clone)]
pub enum Edit {
    Flip {
        at: usize,
        bit: u8,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Delete {
        at: usize,
        len: usize,
    },
    Duplicate {
        at: usize,
        len: usize,
    },
    Splice {
        at: usize,
        token: &'static str,
    },
    Replace {
        at: usize,
        len: usize,
        token: &'static str,
    },
    Truncate {
        at: usize,
    },
}

pub fn edit() -> impl Strategy<Value = Edit> {
    let token = || prop::sample::select(TOKENS);
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Edit::Flip { at, bit }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Edit::Insert { at, bytes }),
        (any::<usize>(), 1usize..64).prop_map(|(at, len)| Edit::Delete { at, len }),
        (any::<usize>(), 1usize..512).prop_map(|(at, len)| Edit::Duplicate { at, len }),
        (any::<usize>(), token()).prop_map(|(at, token)| Edit::Splice { at, token }),
        (any::<usize>(), 1usize..16, token()).prop_map(|(at, len, token)| Edit::Replace {
            at,
            len,
            token
        }),
        any::<usize>().prop_map(|at| Edit::Truncate { at }),
    ]
}

pub fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(edit(), 1..8)
}

/// `seed` with `edits` applied in turn; positions wrap around the current length.
pub fn apply(seed: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for e in edits {
        let at = |at: usize, out: &Vec<u8>| at % (out.len() + 1);
        match e {
            Edit::Flip { at: a, bit } => {
                if !out.is_empty() {
                    let i = a % out.len();
                    out[i] ^= 1 << bit;
                }
            }
            Edit::Insert { at: a, bytes } => {
                let i = at(*a, &out);
                out.splice(i..i, bytes.iter().copied());
            }
            Edit::Delete { at: a, len } => {
                let i = at(*a, &out);
                let end = (i + len).min(out.len());
                out.drain(i..end);
            }
            Edit::Duplicate { at: a, len } => {
                let i = at(*a, &out);
                let end = (i + len).min(out.len());
                let copy: Vec<u8> = out[i..end].to_vec();
                out.splice(end..end, copy);
            }
            Edit::Splice { at: a, token } => {
                let i = at(*a, &out);
                out.splice(i..i, token.bytes());
            }
            Edit::Replace { at: a, len, token } => {
                let i = at(*a, &out);
                let end = (i + len).min(out.len());
                out.splice(i..end, token.bytes());
            }
            Edit::Truncate { at: a } => {
                let i = at(*a, &out);
                out.truncate(i);
            }
        }
    }
    out
}

/// Random bytes, a mutation of one of `seeds`, or a seed as is.
pub fn input(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let mutated = (prop::sample::select(seeds.clone()), edits())
        .prop_map(|(seed, edits)| apply(&seed, &edits));
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..2048),
        1 => prop::sample::select(seeds),
        6 => mutated,
    ]
}
