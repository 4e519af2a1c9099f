//! What Gatehouse tells people by mail, rendered from askama templates (text + HTML)
//! under `templates/mail/`.
//!
//! Links are built from the configured `issuer`, never from a request's Host header: a
//! forged Host would otherwise make us mail a victim a reset link to the attacker's site.
//! No mail carries a password or a code; reset and invitation mails carry their link,
//! which is what they are for.

use std::net::IpAddr;

use askama::Template;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

/// A mail ready for the outbox. `Debug` shows the subject only: the bodies may hold a
/// reset link.
#[derive(Clone, PartialEq, Eq)]
pub struct RenderedMail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl std::fmt::Debug for RenderedMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderedMail")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// One variant per mail template. `name` is what the mail calls the person (their
/// display name, or the username when they have none).
#[derive(Debug, Clone)]
pub enum Notice {
    /// Self-service reset (DESIGN §7): the link `/reset/{token}`.
    ResetLink {
        name: String,
        username: String,
        token: SecretString,
        expires_at: DateTime<Utc>,
    },
    /// An administrator required a new password: the old one no longer works, and the
    /// link `/reset/{token}` sets a new one.
    ForcedReset {
        name: String,
        username: String,
        token: SecretString,
        expires_at: DateTime<Utc>,
    },
    /// An administrator created the account: the link `/invite/{token}` sets a password.
    Invitation {
        name: String,
        username: String,
        org: String,
        token: SecretString,
        expires_at: DateTime<Utc>,
    },
    /// The password was changed or reset.
    PasswordChanged {
        name: String,
        username: String,
        at: DateTime<Utc>,
        ip: Option<IpAddr>,
    },
    /// Sign-in is locked for the account; `until` None means until an administrator unlocks.
    Lockout {
        name: String,
        username: String,
        until: Option<DateTime<Utc>>,
        ip: Option<IpAddr>,
    },
    /// To the organisation's support contact.
    SupportAlert { org: String, alert: Alert },
    TotpEnrolled {
        name: String,
        username: String,
        at: DateTime<Utc>,
        ip: Option<IpAddr>,
    },
    TotpRemoved {
        name: String,
        username: String,
        at: DateTime<Utc>,
        by_administrator: bool,
    },
    /// A passkey was added (DESIGN §17); `passkey` is the name it was given.
    PasskeyAdded {
        name: String,
        username: String,
        passkey: String,
        at: DateTime<Utc>,
        ip: Option<IpAddr>,
    },
    PasskeyRemoved {
        name: String,
        username: String,
        passkey: String,
        at: DateTime<Utc>,
        by_administrator: bool,
    },
    /// A passkey was renamed from `previous` to `passkey`.
    PasskeyRenamed {
        name: String,
        username: String,
        passkey: String,
        previous: String,
        at: DateTime<Utc>,
    },
    /// To the organisation's support contact and privacy officer: emergency sessions
    /// still awaiting review past the policy's deadline (DESIGN §15), oldest first.
    EmergencyOverdue {
        org: String,
        overdue_hours: u32,
        reviews: Vec<WindowReport>,
    },
}

/// One emergency window as mails and webhooks tell of it (DESIGN §15): who, when, why
/// and until when. Nothing in it is secret: no session handle, no token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowReport {
    pub emergency_id: String,
    pub user_id: String,
    /// The username when the window opened.
    pub username: String,
    pub reason: String,
    pub context: Option<String>,
    /// The client or SP that asked for emergency access; None from the account page.
    pub requested_by: Option<String>,
    pub started_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// `expired`, `ended_by_user`, `signed_out`.
    pub end_reason: Option<String>,
}

/// What the support contact is told about (DESIGN §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alert {
    AccountLocked {
        username: String,
        /// None: locked until an administrator unlocks it.
        until: Option<DateTime<Utc>>,
        ip: Option<IpAddr>,
    },
    IpBlocked {
        /// The blocked address or IPv6 /64, as the guard keys it.
        address: String,
        until: DateTime<Utc>,
        /// How many times this address has been blocked (each block doubles).
        block_count: u32,
    },
    /// Someone broke the glass (DESIGN §15); also to the privacy officer.
    EmergencyStarted(WindowReport),
    /// An emergency window ended.
    EmergencyEnded(WindowReport),
}

impl Alert {
    /// The webhook event for this alert: its name (`X-Gatehouse-Event`) and JSON payload.
    pub fn webhook_event(&self, org: &str) -> (&'static str, serde_json::Value) {
        match self {
            Alert::AccountLocked {
                username,
                until,
                ip,
            } => (
                "account.locked",
                serde_json::json!({
                    "org": org,
                    "username": username,
                    "permanent": until.is_none(),
                    "locked_until": until.map(|t| t.to_rfc3339()),
                    "client_ip": ip.map(|ip| ip.to_string()),
                }),
            ),
            Alert::IpBlocked {
                address,
                until,
                block_count,
            } => (
                "ip.blocked",
                serde_json::json!({
                    "org": org,
                    "address": address,
                    "blocked_until": until.to_rfc3339(),
                    "block_count": block_count,
                }),
            ),
            Alert::EmergencyStarted(w) => (
                "emergency.started",
                serde_json::json!({
                    "org": org,
                    "emergency_id": w.emergency_id,
                    "user_id": w.user_id,
                    "username": w.username,
                    "reason": w.reason,
                    "context": w.context,
                    "requested_by": w.requested_by,
                    "started_at": w.started_at.to_rfc3339(),
                    "expires_at": w.expires_at.to_rfc3339(),
                }),
            ),
            Alert::EmergencyEnded(w) => (
                "emergency.ended",
                serde_json::json!({
                    "org": org,
                    "emergency_id": w.emergency_id,
                    "user_id": w.user_id,
                    "username": w.username,
                    "started_at": w.started_at.to_rfc3339(),
                    "ended_at": w.ended_at.map(|t| t.to_rfc3339()),
                    "end_reason": w.end_reason,
                }),
            ),
        }
    }

    /// What a support alert shows, beside its subject.
    fn fill(&self, v: &mut Vars) {
        match self {
            Alert::AccountLocked {
                username,
                until,
                ip,
            } => {
                v.username = username.clone();
                v.until = until.as_ref().map(time).unwrap_or_default();
                v.ip = address(ip);
            }
            Alert::IpBlocked {
                address,
                until,
                block_count,
            } => {
                v.ip_block = true;
                v.address = address.clone();
                v.until = time(until);
                v.block_count = *block_count;
            }
            Alert::EmergencyStarted(w) => v.windows = vec![WindowLines::of(w)],
            Alert::EmergencyEnded(w) => {
                v.emergency_ended = true;
                v.windows = vec![WindowLines::of(w)];
            }
        }
    }
}

/// An emergency window, formatted for a template. What people typed (the reason, the
/// context label) is one line already (`domain::EmergencyReason`); control characters
/// are blanked again here, so a stored value cannot start a line of its own in a text
/// mail, whatever wrote it.
#[derive(Debug, Default)]
struct WindowLines {
    username: String,
    reason: String,
    context: String,
    requested_by: String,
    started: String,
    expires: String,
    ended: String,
    end_reason: String,
}

impl WindowLines {
    fn of(w: &WindowReport) -> Self {
        let text = |s: &Option<String>| s.as_deref().map(super::one_line).unwrap_or_default();
        Self {
            username: super::one_line(&w.username),
            reason: super::one_line(&w.reason),
            context: text(&w.context),
            requested_by: text(&w.requested_by),
            started: time(&w.started_at),
            expires: time(&w.expires_at),
            ended: w.ended_at.as_ref().map(time).unwrap_or_default(),
            end_reason: match w.end_reason.as_deref() {
                Some("expired") => "its time ran out".into(),
                Some("ended_by_user") => "the user ended it".into(),
                Some("signed_out") => "the user signed out".into(),
                other => text(&other.map(str::to_owned)),
            },
        }
    }
}

/// Everything a template may show, already formatted. Each template uses its part.
#[derive(Debug, Default)]
struct Vars {
    subject: String,
    name: String,
    username: String,
    org: String,
    /// The mail's one action link (reset, invitation), or empty.
    link: String,
    /// `/reset`: where to ask for a reset link.
    reset_link: String,
    /// `/account`: sign in, see password and second-factor settings.
    account_link: String,
    /// `/admin`: for support alerts.
    admin_link: String,
    /// When it happened.
    when: String,
    /// When a link expires or a lock or block ends; empty when it does not end by itself.
    until: String,
    /// The client address involved, or empty when unknown.
    ip: String,
    address: String,
    block_count: u32,
    ip_block: bool,
    by_administrator: bool,
    /// `/admin/emergency`: the console's emergency access reviews.
    review_link: String,
    /// The emergency windows an alert or an overdue notice is about.
    windows: Vec<WindowLines>,
    emergency_ended: bool,
    overdue_hours: u32,
    /// The name of the passkey a notice is about.
    passkey: String,
    /// Its name before a rename.
    previous: String,
}

macro_rules! mail_template {
    ($text:ident = $text_path:tt, $html:ident = $html_path:tt) => {
        #[derive(Template)]
        #[template(path = $text_path)]
        struct $text<'a> {
            v: &'a Vars,
        }

        #[derive(Template)]
        #[template(path = $html_path)]
        struct $html<'a> {
            v: &'a Vars,
        }
    };
}

mail_template!(
    ResetLinkText = "mail/reset_link.txt",
    ResetLinkHtml = "mail/reset_link.html"
);
mail_template!(
    ForcedResetText = "mail/forced_reset.txt",
    ForcedResetHtml = "mail/forced_reset.html"
);
mail_template!(
    InvitationText = "mail/invitation.txt",
    InvitationHtml = "mail/invitation.html"
);
mail_template!(
    PasswordChangedText = "mail/password_changed.txt",
    PasswordChangedHtml = "mail/password_changed.html"
);
mail_template!(
    LockoutText = "mail/lockout.txt",
    LockoutHtml = "mail/lockout.html"
);
mail_template!(
    SupportAlertText = "mail/support_alert.txt",
    SupportAlertHtml = "mail/support_alert.html"
);
mail_template!(
    TotpEnrolledText = "mail/totp_enrolled.txt",
    TotpEnrolledHtml = "mail/totp_enrolled.html"
);
mail_template!(
    TotpRemovedText = "mail/totp_removed.txt",
    TotpRemovedHtml = "mail/totp_removed.html"
);
mail_template!(
    PasskeyAddedText = "mail/passkey_added.txt",
    PasskeyAddedHtml = "mail/passkey_added.html"
);
mail_template!(
    PasskeyRemovedText = "mail/passkey_removed.txt",
    PasskeyRemovedHtml = "mail/passkey_removed.html"
);
mail_template!(
    PasskeyRenamedText = "mail/passkey_renamed.txt",
    PasskeyRenamedHtml = "mail/passkey_renamed.html"
);
mail_template!(
    EmergencyAlertText = "mail/emergency_alert.txt",
    EmergencyAlertHtml = "mail/emergency_alert.html"
);
mail_template!(
    EmergencyOverdueText = "mail/emergency_overdue.txt",
    EmergencyOverdueHtml = "mail/emergency_overdue.html"
);

impl Notice {
    pub fn render(&self, issuer: &Url) -> RenderedMail {
        let mut v = Vars {
            reset_link: link(issuer, &["reset"]),
            account_link: link(issuer, &["account"]),
            admin_link: link(issuer, &["admin"]),
            review_link: link(issuer, &["admin", "emergency"]),
            ..Vars::default()
        };
        self.fill(issuer, &mut v);
        let (text, html) = self.templates(&v);
        RenderedMail {
            subject: v.subject,
            text,
            html,
        }
    }

    /// What this notice says, into the variables every template shares.
    fn fill(&self, issuer: &Url, v: &mut Vars) {
        v.subject = self.subject();
        if let Some((name, username)) = self.addressee() {
            v.name = name.to_owned();
            v.username = username.to_owned();
        }
        match self {
            Notice::ResetLink {
                token, expires_at, ..
            }
            | Notice::ForcedReset {
                token, expires_at, ..
            } => {
                v.link = link(issuer, &["reset", token.expose_secret()]);
                v.until = time(expires_at);
            }
            Notice::Invitation {
                org,
                token,
                expires_at,
                ..
            } => {
                v.org = org.clone();
                v.link = link(issuer, &["invite", token.expose_secret()]);
                v.until = time(expires_at);
            }
            Notice::PasswordChanged { at, ip, .. } | Notice::TotpEnrolled { at, ip, .. } => {
                v.when = time(at);
                v.ip = address(ip);
            }
            Notice::TotpRemoved {
                at,
                by_administrator,
                ..
            } => {
                v.when = time(at);
                v.by_administrator = *by_administrator;
            }
            Notice::PasskeyAdded {
                passkey, at, ip, ..
            } => {
                v.passkey = passkey.clone();
                v.when = time(at);
                v.ip = address(ip);
            }
            Notice::PasskeyRemoved {
                passkey,
                at,
                by_administrator,
                ..
            } => {
                v.passkey = passkey.clone();
                v.when = time(at);
                v.by_administrator = *by_administrator;
            }
            Notice::PasskeyRenamed {
                passkey,
                previous,
                at,
                ..
            } => {
                v.passkey = passkey.clone();
                v.previous = previous.clone();
                v.when = time(at);
            }
            Notice::Lockout { until, ip, .. } => {
                v.until = until.as_ref().map(time).unwrap_or_default();
                v.ip = address(ip);
            }
            Notice::SupportAlert { org, alert } => {
                v.org = org.clone();
                alert.fill(v);
            }
            Notice::EmergencyOverdue {
                org,
                overdue_hours,
                reviews,
            } => {
                v.org = org.clone();
                v.overdue_hours = *overdue_hours;
                v.windows = reviews.iter().map(WindowLines::of).collect();
            }
        }
    }

    /// The mail's subject line.
    fn subject(&self) -> String {
        match self {
            Notice::ResetLink { .. } => "Reset your password".into(),
            Notice::ForcedReset { .. } => "You need to choose a new password".into(),
            Notice::Invitation { org, .. } => format!("Your invitation to {}", one_line(org)),
            Notice::PasswordChanged { .. } => "Your password was changed".into(),
            Notice::Lockout { .. } => "Sign-in to your account is locked".into(),
            Notice::TotpEnrolled { .. } => "Two-step verification was turned on".into(),
            Notice::TotpRemoved { .. } => "Two-step verification was removed".into(),
            Notice::PasskeyAdded { .. } => "A passkey was added to your account".into(),
            Notice::PasskeyRemoved { .. } => "A passkey was removed from your account".into(),
            Notice::PasskeyRenamed { .. } => "A passkey of your account was renamed".into(),
            Notice::SupportAlert { alert, .. } => match alert {
                Alert::AccountLocked { username, .. } => {
                    format!("[Gatehouse] Account locked: {}", one_line(username))
                }
                Alert::IpBlocked { address, .. } => {
                    format!("[Gatehouse] Address blocked: {}", one_line(address))
                }
                Alert::EmergencyStarted(w) => {
                    format!("[Gatehouse] Emergency access by {}", one_line(&w.username))
                }
                Alert::EmergencyEnded(w) => {
                    format!(
                        "[Gatehouse] Emergency access ended: {}",
                        one_line(&w.username)
                    )
                }
            },
            Notice::EmergencyOverdue { org, reviews, .. } => format!(
                "[Gatehouse] {} emergency access review{} overdue in {}",
                reviews.len(),
                if reviews.len() == 1 { "" } else { "s" },
                one_line(org)
            ),
        }
    }

    /// The name and username of the person a notice about their own account goes to
    /// (a support alert goes to the organisation's contact instead).
    fn addressee(&self) -> Option<(&str, &str)> {
        match self {
            Notice::ResetLink { name, username, .. }
            | Notice::ForcedReset { name, username, .. }
            | Notice::Invitation { name, username, .. }
            | Notice::PasswordChanged { name, username, .. }
            | Notice::Lockout { name, username, .. }
            | Notice::TotpEnrolled { name, username, .. }
            | Notice::TotpRemoved { name, username, .. }
            | Notice::PasskeyAdded { name, username, .. }
            | Notice::PasskeyRemoved { name, username, .. }
            | Notice::PasskeyRenamed { name, username, .. } => Some((name, username)),
            Notice::SupportAlert { .. } | Notice::EmergencyOverdue { .. } => None,
        }
    }

    /// This notice's text and HTML templates over `v`.
    fn templates(&self, v: &Vars) -> (String, String) {
        match self {
            Notice::ResetLink { .. } => pair(&ResetLinkText { v }, &ResetLinkHtml { v }),
            Notice::ForcedReset { .. } => pair(&ForcedResetText { v }, &ForcedResetHtml { v }),
            Notice::Invitation { .. } => pair(&InvitationText { v }, &InvitationHtml { v }),
            Notice::PasswordChanged { .. } => {
                pair(&PasswordChangedText { v }, &PasswordChangedHtml { v })
            }
            Notice::Lockout { .. } => pair(&LockoutText { v }, &LockoutHtml { v }),
            Notice::SupportAlert {
                alert: Alert::EmergencyStarted(_) | Alert::EmergencyEnded(_),
                ..
            } => pair(&EmergencyAlertText { v }, &EmergencyAlertHtml { v }),
            Notice::SupportAlert { .. } => pair(&SupportAlertText { v }, &SupportAlertHtml { v }),
            Notice::EmergencyOverdue { .. } => {
                pair(&EmergencyOverdueText { v }, &EmergencyOverdueHtml { v })
            }
            Notice::TotpEnrolled { .. } => pair(&TotpEnrolledText { v }, &TotpEnrolledHtml { v }),
            Notice::TotpRemoved { .. } => pair(&TotpRemovedText { v }, &TotpRemovedHtml { v }),
            Notice::PasskeyAdded { .. } => pair(&PasskeyAddedText { v }, &PasskeyAddedHtml { v }),
            Notice::PasskeyRemoved { .. } => {
                pair(&PasskeyRemovedText { v }, &PasskeyRemovedHtml { v })
            }
            Notice::PasskeyRenamed { .. } => {
                pair(&PasskeyRenamedText { v }, &PasskeyRenamedHtml { v })
            }
        }
    }
}

fn pair(text: &impl Template, html: &impl Template) -> (String, String) {
    // Rendering fails only when a value's Display fails; ours are plain strings.
    let render = |t: &dyn Fn() -> askama::Result<String>| {
        t().unwrap_or_else(|e| {
            tracing::error!(error = %e, "mail template failed to render");
            String::new()
        })
    };
    (render(&|| text.render()), render(&|| html.render()))
}

/// `issuer` + path segments, each percent-encoded; keeps any path the issuer has
/// (`https://example.org/idp` + `reset` → `https://example.org/idp/reset`).
fn link(issuer: &Url, segments: &[&str]) -> String {
    let mut url = issuer.clone();
    url.set_query(None);
    url.set_fragment(None);
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url.to_string()
}

fn time(t: &DateTime<Utc>) -> String {
    t.format("%-d %B %Y, %H:%M UTC").to_string()
}

fn address(ip: &Option<IpAddr>) -> String {
    ip.map(|ip| ip.to_string()).unwrap_or_default()
}

/// What people typed, fit for a subject line: one line, bounded.
fn one_line(s: &str) -> String {
    super::one_line(s).chars().take(120).collect()
}

#[cfg(test)]
mod tests;
