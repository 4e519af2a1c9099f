//! Outbound mail and webhooks (DESIGN §14).

pub mod eml;
pub mod notice;
pub mod smtp;
pub mod webhook;

pub use notice::{Alert, Notice, RenderedMail};

/// No line breaks or other control characters, whatever the input: subjects become
/// header lines, errors become log lines.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
