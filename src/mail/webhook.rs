//! Signed webhook deliveries: a JSON POST a receiver can authenticate and date.
//!
//! ```text
//! X-Gatehouse-Event: account.locked
//! X-Gatehouse-Delivery: <outbox id, the same on every retry>
//! X-Gatehouse-Timestamp: <unix seconds of this attempt>
//! X-Gatehouse-Signature: sha256=<hex HMAC-SHA-256(webhook_secret, "<timestamp>.<body>")>
//! ```
//!
//! The timestamp is inside the signed material, so a captured delivery replayed later
//! fails the receiver's freshness check, and moving it breaks the signature.

use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, USER_AGENT};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use url::Url;

pub const EVENT_HEADER: &str = "X-Gatehouse-Event";
pub const DELIVERY_HEADER: &str = "X-Gatehouse-Delivery";
pub const TIMESTAMP_HEADER: &str = "X-Gatehouse-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Gatehouse-Signature";

const TIMEOUT: Duration = Duration::from_secs(10);

/// `sha256=<hex>` over `"<timestamp>." + body`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a received delivery the way a receiver should: the signature over the exact
/// body, in constant time, and a timestamp within `tolerance_secs` of `now`.
pub fn verify(
    secret: &[u8],
    timestamp: &str,
    body: &[u8],
    signature_header: &str,
    now_unix: i64,
    tolerance_secs: i64,
) -> bool {
    let Ok(ts) = timestamp.parse::<i64>() else {
        return false;
    };
    if (now_unix - ts).abs() > tolerance_secs {
        return false;
    }
    crate::auth::same_secret(&signature(secret, ts, body), signature_header)
}

pub struct WebhookSender {
    client: reqwest::Client,
    secret: Option<SecretString>,
}

/// Why a delivery did not happen; never carries the body, the secret or the URL
/// (a webhook URL often is a credential).
#[derive(Debug)]
pub struct WebhookError(pub String);

impl WebhookSender {
    pub fn new(secret: Option<SecretString>) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            // A redirect would carry a signed security event somewhere nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Gatehouse/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("webhook client: {e}"))?;
        Ok(Self { client, secret })
    }

    /// POSTs `body`; any 2xx is delivered.
    pub async fn deliver(
        &self,
        url: &Url,
        event: &str,
        delivery_id: &str,
        body: &str,
        timestamp: i64,
    ) -> Result<(), WebhookError> {
        let secret = self
            .secret
            .as_ref()
            .ok_or_else(|| WebhookError("webhook_secret is not configured".into()))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(WebhookError(format!(
                "unsupported URL scheme {:?}",
                url.scheme()
            )));
        }
        let header = |v: &str| {
            HeaderValue::from_str(v).map_err(|_| WebhookError("header value not sendable".into()))
        };
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("Gatehouse/", env!("CARGO_PKG_VERSION"))),
        );
        headers.insert(EVENT_HEADER, header(event)?);
        headers.insert(DELIVERY_HEADER, header(delivery_id)?);
        headers.insert(TIMESTAMP_HEADER, header(&timestamp.to_string())?);
        headers.insert(
            SIGNATURE_HEADER,
            header(&signature(
                secret.expose_secret().as_bytes(),
                timestamp,
                body.as_bytes(),
            ))?,
        );
        let response = self
            .client
            .post(url.clone())
            .headers(headers)
            .body(body.to_owned())
            .send()
            .await
            .map_err(|e| WebhookError(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(WebhookError(format!("receiver answered {status}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231-style check against an independent computation.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec-0123456789abcdef").unwrap();
        mac.update(b"1732400000.{\"a\":1}");
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(
            signature(b"whsec-0123456789abcdef", 1_732_400_000, b"{\"a\":1}"),
            expected
        );
    }

    #[test]
    fn verification_refuses_altered_bodies_moved_timestamps_and_stale_deliveries() {
        let key = b"whsec-0123456789abcdef";
        let body = br#"{"event":"account.locked"}"#;
        let sig = signature(key, 1000, body);
        assert!(verify(key, "1000", body, &sig, 1100, 300));
        assert!(!verify(
            key,
            "1000",
            br#"{"event":"account.unlocked"}"#,
            &sig,
            1100,
            300
        ));
        assert!(!verify(key, "1001", body, &sig, 1100, 300));
        assert!(!verify(key, "1000", body, &sig, 2000, 300));
        assert!(!verify(
            b"another-secret-entirely",
            "1000",
            body,
            &sig,
            1100,
            300
        ));
        assert!(!verify(key, "soon", body, &sig, 1100, 300));
    }
}
