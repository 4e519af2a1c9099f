//! CSRF tokens for forms shown to someone who is neither signed in nor in a login
//! transaction (`/reset`, `/reset/{token}`, `/invite/{token}`), so there is no server-side
//! state to keep a token in (DESIGN §8: every form carries one).
//!
//! The token is an HMAC, under a key derived from the master key, of the browser cookie
//! (`__Host-gatehouse-browser`) and the form's name. Showing a form stores nothing — an
//! anonymous page cannot be used to fill the ephemeral store — and a token works only in
//! the browser it was shown to, for the form it was made for: another site can neither
//! read the cookie nor compute the HMAC.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::crypto::MasterKey;

const PURPOSE: &str = "browser-form-csrf";

/// The token for `form` in the browser whose cookie value is `browser`.
pub fn form_token(key: &MasterKey, browser: &str, form: &str) -> String {
    let key = key.derive(PURPOSE);
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key.as_slice()).expect("HMAC takes any key length");
    // Length-prefixed, so ("ab", "c") and ("a", "bc") are different inputs.
    mac.update(&(browser.len() as u64).to_be_bytes());
    mac.update(browser.as_bytes());
    mac.update(form.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// Whether `presented` is the token for `form` in this browser, compared in constant time.
pub fn is_valid(key: &MasterKey, browser: &str, form: &str, presented: &str) -> bool {
    crate::auth::same_secret(presented, &form_token(key, browser, form))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_good_for_its_browser_and_form_only() {
        let key = MasterKey::generate();
        let token = form_token(&key, "browser-a", "reset");
        assert!(is_valid(&key, "browser-a", "reset", &token));
        assert!(!is_valid(&key, "browser-b", "reset", &token));
        assert!(!is_valid(&key, "browser-a", "invite", &token));
        assert!(!is_valid(
            &MasterKey::generate(),
            "browser-a",
            "reset",
            &token
        ));
        assert!(!is_valid(&key, "browser-a", "reset", ""));
        assert!(!is_valid(&key, "browser-areset", "", &token));
    }
}
