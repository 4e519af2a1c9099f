//! Outbound mail and webhooks (DESIGN §14).

pub mod notice;

pub use notice::{Alert, Notice, RenderedMail};
