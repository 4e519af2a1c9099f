//! Messages the outbox carries for others (issue 24 item 5): the protocols' back-channel
//! logouts. The outbox owns when a message goes out (claim, lease, backoff, deadline,
//! metrics); the module that registered a [`Courier`] for the row's kind owns what goes
//! out and how. It builds the message at each attempt, so a late delivery carries fresh
//! timestamps and a new message id instead of one the receiver would refuse as stale or
//! replayed.
//!
//! The outbox stores only what the courier needs to build the message (who, which
//! session), sealed under the master key like mail bodies.

use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock},
};

/// Why one attempt failed, for every kind of row (mail and webhooks too). The message
/// is stored and logged: no body, no token, no key, no webhook URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undelivered {
    pub message: String,
    /// Retrying cannot help (a malformed row, a receiver deregistered): give up now.
    pub permanent: bool,
}

impl Undelivered {
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: true,
        }
    }
}

/// Delivers the outbox rows of one kind.
#[async_trait::async_trait]
pub trait Courier: Send + Sync {
    /// One attempt: builds the message for `recipient` from `payload` (as queued, opened)
    /// and sends it. Ok once the receiver confirmed it.
    async fn deliver(&self, recipient: &str, payload: &[u8]) -> Result<(), Undelivered>;

    /// The outbox gave up on the message (deadline passed, or a permanent failure): the
    /// courier records it where an operator looks (the audit trail).
    async fn gave_up(&self, recipient: &str, payload: &[u8], error: &str);
}

/// The couriers by kind; registered once at start-up, read at every delivery.
#[derive(Default)]
pub(super) struct Couriers(RwLock<BTreeMap<&'static str, Arc<dyn Courier>>>);

impl Couriers {
    pub(super) fn register(&self, kind: &'static str, courier: Arc<dyn Courier>) {
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(kind, courier);
    }

    pub(super) fn get(&self, kind: &str) -> Option<Arc<dyn Courier>> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(kind)
            .cloned()
    }
}
