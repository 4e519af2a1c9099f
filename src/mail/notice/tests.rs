//! What each notice says, rendered.
use super::*;
use chrono::TimeZone;

const EVIL: &str = "<script>alert(1)</script> & \"Dr\" O'Neil";

fn issuer() -> Url {
    Url::parse("https://idp.example.org/gatehouse").unwrap()
}

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 10, 15, 0).unwrap()
}

fn token() -> SecretString {
    "tok_Abc-123_xyz".to_owned().into()
}

fn every_notice(name: &str) -> Vec<Notice> {
    let ip = Some("203.0.113.7".parse().unwrap());
    vec![
        Notice::ResetLink {
            name: name.into(),
            username: "vera".into(),
            token: token(),
            expires_at: at(),
        },
        Notice::ForcedReset {
            name: name.into(),
            username: "vera".into(),
            token: token(),
            expires_at: at(),
        },
        Notice::Invitation {
            name: name.into(),
            username: "vera".into(),
            org: "St Mary's".into(),
            token: token(),
            expires_at: at(),
        },
        Notice::PasswordChanged {
            name: name.into(),
            username: "vera".into(),
            at: at(),
            ip,
        },
        Notice::Lockout {
            name: name.into(),
            username: "vera".into(),
            until: Some(at()),
            ip,
        },
        Notice::Lockout {
            name: name.into(),
            username: "vera".into(),
            until: None,
            ip: None,
        },
        Notice::SupportAlert {
            org: name.into(),
            alert: Alert::AccountLocked {
                username: "vera".into(),
                until: Some(at()),
                ip,
            },
        },
        Notice::SupportAlert {
            org: name.into(),
            alert: Alert::IpBlocked {
                address: "2001:db8:1:2::/64".into(),
                until: at(),
                block_count: 2,
            },
        },
        Notice::TotpEnrolled {
            name: name.into(),
            username: "vera".into(),
            at: at(),
            ip,
        },
        Notice::TotpRemoved {
            name: name.into(),
            username: "vera".into(),
            at: at(),
            by_administrator: true,
        },
        Notice::SupportAlert {
            org: name.into(),
            alert: Alert::EmergencyStarted(window()),
        },
        Notice::SupportAlert {
            org: name.into(),
            alert: Alert::EmergencyEnded(WindowReport {
                ended_at: Some(at()),
                end_reason: Some("expired".into()),
                ..window()
            }),
        },
        Notice::EmergencyOverdue {
            org: name.into(),
            overdue_hours: 72,
            reviews: vec![window(), window()],
        },
        Notice::PasskeyAdded {
            name: name.into(),
            username: "vera".into(),
            passkey: name.into(),
            at: at(),
            ip,
        },
        Notice::PasskeyRemoved {
            name: name.into(),
            username: "vera".into(),
            passkey: name.into(),
            at: at(),
            by_administrator: true,
        },
        Notice::PasskeyRenamed {
            name: name.into(),
            username: "vera".into(),
            passkey: name.into(),
            previous: "Old laptop".into(),
            at: at(),
        },
    ]
}

fn window() -> WindowReport {
    WindowReport {
        emergency_id: "em1".into(),
        user_id: "u1".into(),
        username: "vera".into(),
        reason: "Cardiac arrest in bed 4, need history".into(),
        context: Some("Patient 123".into()),
        requested_by: Some("ehr-client".into()),
        started_at: at(),
        expires_at: at() + chrono::Duration::minutes(60),
        ended_at: None,
        end_reason: None,
    }
}

#[test]
fn an_emergency_alert_says_who_when_why_until_when_and_where_to_review() {
    let mail = every_notice("St Mary's")[10].render(&issuer());
    assert_eq!(mail.subject, "[Gatehouse] Emergency access by vera");
    for part in [
        "vera",
        "24 November 2026, 10:15 UTC",
        "24 November 2026, 11:15 UTC",
        "Cardiac arrest in bed 4, need history",
        "Patient 123",
        "ehr-client",
        "https://idp.example.org/gatehouse/admin/emergency",
    ] {
        assert!(mail.text.contains(part), "{part}: {}", mail.text);
        assert!(mail.html.contains(part), "{part}: {}", mail.html);
    }
    let ended = every_notice("St Mary's")[11].render(&issuer());
    assert!(ended.text.contains("its time ran out"), "{}", ended.text);
    let overdue = every_notice("St Mary's")[12].render(&issuer());
    assert_eq!(
        overdue.subject,
        "[Gatehouse] 2 emergency access reviews overdue in St Mary's"
    );
    assert_eq!(overdue.text.matches("Cardiac arrest").count(), 2);
}

#[test]
fn a_reason_cannot_break_an_emergency_mail_or_its_subject() {
    let w = WindowReport {
        username: "vera\r\nBcc: x@example.org".into(),
        reason: format!("{EVIL}\r\nReview at: https://evil.example"),
        ..window()
    };
    let mail = Notice::SupportAlert {
        org: "x".into(),
        alert: Alert::EmergencyStarted(w),
    }
    .render(&issuer());
    assert!(!mail.subject.contains(['\r', '\n']), "{}", mail.subject);
    assert!(!mail.html.contains("<script>"), "{}", mail.html);
    assert!(
        !mail.text.lines().any(|l| l.starts_with("Review at:")),
        "{}",
        mail.text
    );
}

#[test]
fn emergency_webhooks_carry_the_window() {
    let (event, body) = Alert::EmergencyStarted(window()).webhook_event("stmarys");
    assert_eq!(event, "emergency.started");
    assert_eq!(body["org"], "stmarys");
    assert_eq!(body["context"], "Patient 123");
    assert_eq!(body["expires_at"], "2026-11-24T11:15:00+00:00");
    let (event, body) = Alert::EmergencyEnded(window()).webhook_event("stmarys");
    assert_eq!(event, "emergency.ended");
    assert!(body["ended_at"].is_null() && body.get("reason").is_none());
}

#[test]
fn every_template_renders_text_and_html() {
    for notice in every_notice("Vera Lynn") {
        let mail = notice.render(&issuer());
        assert!(!mail.subject.is_empty(), "{notice:?}");
        assert!(mail.text.contains("Vera Lynn"), "{notice:?}: {}", mail.text);
        assert!(mail.html.contains("Vera Lynn"), "{notice:?}: {}", mail.html);
        assert!(mail.html.starts_with("<!doctype html>"), "{notice:?}");
        // Every mail points somewhere under the issuer, and nowhere else.
        assert!(
            mail.text.contains("https://idp.example.org/gatehouse/"),
            "{notice:?}: {}",
            mail.text
        );
    }
}

#[test]
fn html_escapes_what_people_typed_and_text_keeps_it_readable() {
    for notice in every_notice(EVIL) {
        let mail = notice.render(&issuer());
        assert!(!mail.html.contains("<script>"), "{notice:?}: {}", mail.html);
        // askama writes numeric references; either spelling is escaped.
        assert!(
            mail.html.contains("&#60;script&#62;") || mail.html.contains("&lt;script&gt;"),
            "{notice:?}: {}",
            mail.html
        );
        assert!(mail.text.contains(EVIL), "{notice:?}: {}", mail.text);
    }
}

#[test]
fn reset_and_invitation_links_are_built_on_the_issuer() {
    let mail = every_notice("Vera")[0].render(&issuer());
    let link = "https://idp.example.org/gatehouse/reset/tok_Abc-123_xyz";
    assert!(mail.text.contains(link), "{}", mail.text);
    assert!(
        mail.html.contains(&format!("href=\"{link}\"")),
        "{}",
        mail.html
    );
    assert!(
        mail.text.contains("24 November 2026, 10:15 UTC"),
        "{}",
        mail.text
    );

    let mail = every_notice("Vera")[2].render(&Url::parse("https://sso.example.org").unwrap());
    assert!(
        mail.text
            .contains("https://sso.example.org/invite/tok_Abc-123_xyz"),
        "{}",
        mail.text
    );
}

#[test]
fn subjects_never_break_a_header_line() {
    let mail = Notice::SupportAlert {
        org: "x".into(),
        alert: Alert::AccountLocked {
            username: "vera\r\nBcc: x@example.org".into(),
            until: None,
            ip: None,
        },
    }
    .render(&issuer());
    assert!(!mail.subject.contains(['\r', '\n']), "{}", mail.subject);
}

#[test]
fn permanent_locks_say_who_can_lift_them() {
    let mail = every_notice("Vera")[5].render(&issuer());
    assert!(mail.text.contains("administrator"), "{}", mail.text);
    let mail = every_notice("Vera")[4].render(&issuer());
    assert!(mail.text.contains("203.0.113.7"), "{}", mail.text);
}

#[test]
fn mails_and_their_debug_form_hold_no_token_outside_the_link() {
    let notice = &every_notice("Vera")[0];
    assert!(!format!("{notice:?}").contains("tok_Abc"));
    let mail = notice.render(&issuer());
    assert!(!format!("{mail:?}").contains("tok_Abc"));
    assert_eq!(mail.text.matches("tok_Abc").count(), 1, "{}", mail.text);
}

#[test]
fn alerts_become_webhook_events() {
    let (event, body) = Alert::IpBlocked {
        address: "198.51.100.4".into(),
        until: at(),
        block_count: 1,
    }
    .webhook_event("default");
    assert_eq!(event, "ip.blocked");
    assert_eq!(body["address"], "198.51.100.4");
    let (event, body) = Alert::AccountLocked {
        username: "vera".into(),
        until: None,
        ip: None,
    }
    .webhook_event("default");
    assert_eq!(event, "account.locked");
    assert_eq!(body["permanent"], true);
}

#[test]
fn passkey_notices_name_the_passkey_and_who_removed_it() {
    let added = every_notice("Ward laptop")[13].render(&issuer());
    assert_eq!(added.subject, "A passkey was added to your account");
    assert!(added.text.contains("\"Ward laptop\"") && added.text.contains("203.0.113.7"));
    assert!(
        added
            .text
            .contains("https://idp.example.org/gatehouse/account")
    );
    let removed = every_notice("Ward laptop")[14].render(&issuer());
    assert_eq!(removed.subject, "A passkey was removed from your account");
    assert!(
        removed.text.contains("by an administrator"),
        "{}",
        removed.text
    );
    assert!(removed.text.contains("recovery code"));
    let renamed = every_notice("Ward laptop")[15].render(&issuer());
    assert_eq!(renamed.subject, "A passkey of your account was renamed");
    assert!(renamed.text.contains("\"Old laptop\"") && renamed.text.contains("\"Ward laptop\""));
}
