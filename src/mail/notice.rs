//! What Gatehouse tells people by mail, rendered from askama templates (text + HTML)
//! under `templates/mail/`, in the reader's language and time zone: every sentence is a
//! `mail-*` string of `locales/*/mail.ftl` (issue 31), and who reads which language is
//! `mail::reader` and `mail::organisation_reader`.
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

use crate::i18n::{Id, Tr};

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
    fn fill(&self, tr: &Tr, v: &mut Vars) {
        match self {
            Alert::AccountLocked {
                username,
                until,
                ip,
            } => {
                v.username = username.clone();
                v.until = until.map(|t| tr.datetime(t)).unwrap_or_default();
                v.ip = address(ip);
            }
            Alert::IpBlocked {
                address,
                until,
                block_count,
            } => {
                v.ip_block = true;
                v.address = address.clone();
                v.until = tr.datetime(*until);
                v.block_count = *block_count as usize;
            }
            Alert::EmergencyStarted(w) => v.windows = vec![WindowLines::of(w, tr)],
            Alert::EmergencyEnded(w) => {
                v.emergency_ended = true;
                v.windows = vec![WindowLines::of(w, tr)];
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

/// Why an emergency window ended, by its stored `end_reason`, as the mails say it.
const END_REASONS: [(&str, Id); 3] = [
    ("expired", Id("mail-end-expired")),
    ("ended_by_user", Id("mail-end-ended-by-user")),
    ("signed_out", Id("mail-end-signed-out")),
];

impl WindowLines {
    fn of(w: &WindowReport, tr: &Tr) -> Self {
        let text = |s: &Option<String>| s.as_deref().map(super::one_line).unwrap_or_default();
        Self {
            username: super::one_line(&w.username),
            reason: super::one_line(&w.reason),
            context: text(&w.context),
            requested_by: text(&w.requested_by),
            started: tr.datetime(w.started_at),
            expires: tr.datetime(w.expires_at),
            ended: w.ended_at.map(|t| tr.datetime(t)).unwrap_or_default(),
            end_reason: match END_REASONS
                .iter()
                .find(|(stored, _)| w.end_reason.as_deref() == Some(*stored))
            {
                Some((_, id)) => tr.id(*id),
                None => text(&w.end_reason),
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
    block_count: usize,
    ip_block: bool,
    by_administrator: bool,
    /// `/admin/emergency`: the console's emergency access reviews.
    review_link: String,
    /// The emergency windows an alert or an overdue notice is about.
    windows: Vec<WindowLines>,
    emergency_ended: bool,
    /// How long before a review is overdue, in words ("72 hours").
    overdue_for: String,
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
            tr: &'a Tr,
        }

        #[derive(Template)]
        #[template(path = $html_path)]
        struct $html<'a> {
            v: &'a Vars,
            tr: &'a Tr,
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
    /// This notice in `tr`'s language, its moments in `tr`'s time zone, every link
    /// under `issuer`.
    pub fn render(&self, issuer: &Url, tr: &Tr) -> RenderedMail {
        let mut v = Vars {
            reset_link: link(issuer, &["reset"]),
            account_link: link(issuer, &["account"]),
            admin_link: link(issuer, &["admin"]),
            review_link: link(issuer, &["admin", "emergency"]),
            ..Vars::default()
        };
        self.fill(issuer, tr, &mut v);
        let (text, html) = self.templates(&v, tr);
        RenderedMail {
            subject: v.subject,
            text,
            html,
        }
    }

    /// What this notice says, into the variables every template shares.
    fn fill(&self, issuer: &Url, tr: &Tr, v: &mut Vars) {
        v.subject = self.subject(tr);
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
                v.until = tr.datetime(*expires_at);
            }
            Notice::Invitation {
                org,
                token,
                expires_at,
                ..
            } => {
                v.org = org.clone();
                v.link = link(issuer, &["invite", token.expose_secret()]);
                v.until = tr.datetime(*expires_at);
            }
            Notice::PasswordChanged { at, ip, .. } | Notice::TotpEnrolled { at, ip, .. } => {
                v.when = tr.datetime(*at);
                v.ip = address(ip);
            }
            Notice::TotpRemoved {
                at,
                by_administrator,
                ..
            } => {
                v.when = tr.datetime(*at);
                v.by_administrator = *by_administrator;
            }
            Notice::PasskeyAdded {
                passkey, at, ip, ..
            } => {
                v.passkey = passkey.clone();
                v.when = tr.datetime(*at);
                v.ip = address(ip);
            }
            Notice::PasskeyRemoved {
                passkey,
                at,
                by_administrator,
                ..
            } => {
                v.passkey = passkey.clone();
                v.when = tr.datetime(*at);
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
                v.when = tr.datetime(*at);
            }
            Notice::Lockout { until, ip, .. } => {
                v.until = until.map(|t| tr.datetime(t)).unwrap_or_default();
                v.ip = address(ip);
            }
            Notice::SupportAlert { org, alert } => {
                v.org = org.clone();
                alert.fill(tr, v);
            }
            Notice::EmergencyOverdue {
                org,
                overdue_hours,
                reviews,
            } => {
                v.org = org.clone();
                v.overdue_for = tr.n("mail-overdue-hours", "count", *overdue_hours as usize);
                v.windows = reviews.iter().map(|w| WindowLines::of(w, tr)).collect();
            }
        }
    }

    /// The mail's subject line. Alerts to an organisation's contacts start with
    /// `[Gatehouse]`, in every language, for their mail filters.
    fn subject(&self, tr: &Tr) -> String {
        let tagged = |s: String| format!("[Gatehouse] {s}");
        match self {
            Notice::ResetLink { .. } => tr.t("mail-reset-link-subject"),
            Notice::ForcedReset { .. } => tr.t("mail-forced-reset-subject"),
            Notice::Invitation { org, .. } => {
                tr.a("mail-invitation-subject", "org", &one_line(org))
            }
            Notice::PasswordChanged { .. } => tr.t("mail-password-changed-subject"),
            Notice::Lockout { .. } => tr.t("mail-lockout-subject"),
            Notice::TotpEnrolled { .. } => tr.t("mail-totp-enrolled-subject"),
            Notice::TotpRemoved { .. } => tr.t("mail-totp-removed-subject"),
            Notice::PasskeyAdded { .. } => tr.t("mail-passkey-added-subject"),
            Notice::PasskeyRemoved { .. } => tr.t("mail-passkey-removed-subject"),
            Notice::PasskeyRenamed { .. } => tr.t("mail-passkey-renamed-subject"),
            Notice::SupportAlert { alert, .. } => tagged(match alert {
                Alert::AccountLocked { username, .. } => {
                    tr.a("mail-alert-locked-subject", "username", &one_line(username))
                }
                Alert::IpBlocked { address, .. } => {
                    tr.a("mail-alert-blocked-subject", "address", &one_line(address))
                }
                Alert::EmergencyStarted(w) => tr.a(
                    "mail-emergency-started-subject",
                    "username",
                    &one_line(&w.username),
                ),
                Alert::EmergencyEnded(w) => tr.a(
                    "mail-emergency-ended-subject",
                    "username",
                    &one_line(&w.username),
                ),
            }),
            Notice::EmergencyOverdue { org, reviews, .. } => tagged(tr.a2(
                "mail-overdue-subject",
                "reviews",
                &tr.n("mail-overdue-reviews", "count", reviews.len()),
                "org",
                &one_line(org),
            )),
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
    fn templates(&self, v: &Vars, tr: &Tr) -> (String, String) {
        match self {
            Notice::ResetLink { .. } => pair(&ResetLinkText { v, tr }, &ResetLinkHtml { v, tr }),
            Notice::ForcedReset { .. } => {
                pair(&ForcedResetText { v, tr }, &ForcedResetHtml { v, tr })
            }
            Notice::Invitation { .. } => pair(&InvitationText { v, tr }, &InvitationHtml { v, tr }),
            Notice::PasswordChanged { .. } => pair(
                &PasswordChangedText { v, tr },
                &PasswordChangedHtml { v, tr },
            ),
            Notice::Lockout { .. } => pair(&LockoutText { v, tr }, &LockoutHtml { v, tr }),
            Notice::SupportAlert {
                alert: Alert::EmergencyStarted(_) | Alert::EmergencyEnded(_),
                ..
            } => pair(&EmergencyAlertText { v, tr }, &EmergencyAlertHtml { v, tr }),
            Notice::SupportAlert { .. } => {
                pair(&SupportAlertText { v, tr }, &SupportAlertHtml { v, tr })
            }
            Notice::EmergencyOverdue { .. } => pair(
                &EmergencyOverdueText { v, tr },
                &EmergencyOverdueHtml { v, tr },
            ),
            Notice::TotpEnrolled { .. } => {
                pair(&TotpEnrolledText { v, tr }, &TotpEnrolledHtml { v, tr })
            }
            Notice::TotpRemoved { .. } => {
                pair(&TotpRemovedText { v, tr }, &TotpRemovedHtml { v, tr })
            }
            Notice::PasskeyAdded { .. } => {
                pair(&PasskeyAddedText { v, tr }, &PasskeyAddedHtml { v, tr })
            }
            Notice::PasskeyRemoved { .. } => {
                pair(&PasskeyRemovedText { v, tr }, &PasskeyRemovedHtml { v, tr })
            }
            Notice::PasskeyRenamed { .. } => {
                pair(&PasskeyRenamedText { v, tr }, &PasskeyRenamedHtml { v, tr })
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

fn address(ip: &Option<IpAddr>) -> String {
    ip.map(|ip| ip.to_string()).unwrap_or_default()
}

/// What people typed, fit for a subject line: one line, bounded.
fn one_line(s: &str) -> String {
    super::one_line(s).chars().take(120).collect()
}

#[cfg(test)]
mod tests;
