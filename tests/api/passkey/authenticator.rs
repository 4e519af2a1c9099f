//! A software authenticator for the HTTP tests: it answers Gatehouse's WebAuthn options
//! as a browser with a platform authenticator would, with every field under the test's
//! control (origin, RP ID, flags, counter), so hostile answers can be made as easily as
//! good ones. ES256 keys from OpenSSL; the CBOR it writes is the little WebAuthn needs.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use openssl::{
    bn::{BigNum, BigNumContext},
    ec::{EcGroup, EcKey},
    ecdsa::EcdsaSig,
    nid::Nid,
    pkey::Private,
    sha::sha256,
};
use serde_json::{Value, json};

const UP: u8 = 0x01;
const UV: u8 = 0x04;
const BE: u8 = 0x08;
const BS: u8 = 0x10;
const AT: u8 = 0x40;

/// One credential, as an authenticator keeps it.
pub struct SoftKey {
    key: EcKey<Private>,
    pub credential_id: Vec<u8>,
    /// The user handle given at registration (answered with discoverable sign-ins).
    pub user_handle: Option<Vec<u8>>,
    pub counter: u32,
    pub aaguid: [u8; 16],
    /// A synced passkey (backup eligible and backed up), or one bound to its device.
    pub synced: bool,
    /// Whether the authenticator says it verified the user (PIN, biometrics).
    pub verifies_user: bool,
}

/// What a browser would send for the page: which origin and RP ID it asserts.
#[derive(Debug, Clone)]
pub struct Client {
    pub origin: String,
    pub rp_id: String,
}

pub fn b64u(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64u(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .expect("base64url")
}

impl SoftKey {
    pub fn new() -> Self {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let mut id = vec![0u8; 32];
        openssl::rand::rand_bytes(&mut id).unwrap();
        Self {
            key: EcKey::generate(&group).unwrap(),
            credential_id: id,
            user_handle: None,
            counter: 0,
            aaguid: *b"gatehouse-tests!",
            synced: false,
            verifies_user: true,
        }
    }

    fn flags(&self, extra: u8) -> u8 {
        let mut flags = UP | extra;
        if self.verifies_user {
            flags |= UV;
        }
        if self.synced {
            flags |= BE | BS;
        }
        flags
    }

    fn cose_key(&self) -> Vec<u8> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let (mut x, mut y) = (BigNum::new().unwrap(), BigNum::new().unwrap());
        let mut ctx = BigNumContext::new().unwrap();
        self.key
            .public_key()
            .affine_coordinates(&group, &mut x, &mut y, &mut ctx)
            .unwrap();
        let mut out = vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20];
        out.extend(x.to_vec_padded(32).unwrap());
        out.extend([0x22, 0x58, 0x20]);
        out.extend(y.to_vec_padded(32).unwrap());
        out
    }

    /// The answer to creation options (`navigator.credentials.create()`).
    pub fn create(&mut self, options: &Value, client: &Client) -> Value {
        let pk = &options["publicKey"];
        self.user_handle = Some(unb64u(pk["user"]["id"].as_str().expect("user.id")));
        let client_data = client_data("webauthn.create", pk, client);
        let mut auth_data = sha256(client.rp_id.as_bytes()).to_vec();
        auth_data.push(self.flags(AT));
        auth_data.extend(self.counter.to_be_bytes());
        auth_data.extend(self.aaguid);
        auth_data.extend((self.credential_id.len() as u16).to_be_bytes());
        auth_data.extend(&self.credential_id);
        auth_data.extend(self.cose_key());
        let mut object = vec![0xa3];
        object.extend(text("fmt"));
        object.extend(text("none"));
        object.extend(text("attStmt"));
        object.push(0xa0);
        object.extend(text("authData"));
        object.extend(bytes(&auth_data));
        json!({
            "id": b64u(&self.credential_id),
            "rawId": b64u(&self.credential_id),
            "type": "public-key",
            "response": {
                "attestationObject": b64u(&object),
                "clientDataJSON": b64u(client_data.as_bytes()),
            },
            "extensions": {},
        })
    }

    /// The answer to request options (`navigator.credentials.get()`); the counter goes
    /// up by one, as a hardware authenticator's does.
    pub fn get(&mut self, options: &Value, client: &Client) -> Value {
        self.counter += 1;
        self.assert(options, client)
    }

    /// An answer with the counter as it is now (a clone of the authenticator).
    pub fn assert(&self, options: &Value, client: &Client) -> Value {
        let pk = &options["publicKey"];
        let client_data = client_data("webauthn.get", pk, client);
        let mut auth_data = sha256(client.rp_id.as_bytes()).to_vec();
        auth_data.push(self.flags(0));
        auth_data.extend(self.counter.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend(sha256(client_data.as_bytes()));
        let signature = EcdsaSig::sign(&sha256(&signed), &self.key)
            .unwrap()
            .to_der()
            .unwrap();
        json!({
            "id": b64u(&self.credential_id),
            "rawId": b64u(&self.credential_id),
            "type": "public-key",
            "response": {
                "authenticatorData": b64u(&auth_data),
                "clientDataJSON": b64u(client_data.as_bytes()),
                "signature": b64u(&signature),
                "userHandle": self.user_handle.as_deref().map(b64u),
            },
            "extensions": {},
        })
    }
}

fn client_data(kind: &str, pk: &Value, client: &Client) -> String {
    json!({
        "type": kind,
        "challenge": pk["challenge"].as_str().expect("challenge"),
        "origin": client.origin,
        "crossOrigin": false,
    })
    .to_string()
}

fn head(major: u8, len: usize) -> Vec<u8> {
    match len {
        0..=23 => vec![major << 5 | len as u8],
        24..=255 => vec![major << 5 | 24, len as u8],
        _ => {
            let mut out = vec![major << 5 | 25];
            out.extend((len as u16).to_be_bytes());
            out
        }
    }
}

fn text(s: &str) -> Vec<u8> {
    let mut out = head(3, s.len());
    out.extend(s.as_bytes());
    out
}

fn bytes(b: &[u8]) -> Vec<u8> {
    let mut out = head(2, b.len());
    out.extend(b);
    out
}
