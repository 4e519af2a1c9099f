//! Whether a sign-in is strong enough for its user (DESIGN §6): the organisation's MFA
//! policy (off, admins, everyone) applied to the user's role as it is now, against the
//! methods the sign-in used (`amr`).
//!
//! This is the one rule every door that hands out power applies (issue 20 item 4): the
//! admin console and `/authorize` (a live session that falls short steps up: second
//! factor, or enrolment first), and the admin API (a token that falls short is refused).
//! A policy turned on, or a role raised, after someone signed in therefore takes effect
//! at their next request, not at their next sign-in.

use crate::{
    auth::{
        AuthError,
        session::{self, ACR_MFA, SsoSession, acr},
    },
    domain::{OrgPolicy, Role, UserStatus},
    startup::AppState,
    store::{orgs, users, users::UserRow},
};

/// What the policy asks of a sign-in, and whether it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaVerdict {
    /// The policy asks no second factor of this role.
    NotRequired,
    /// Required, and the sign-in used one.
    Satisfied,
    /// Required, and the sign-in did not use one: step up (or refuse) before granting.
    Missing,
}

impl MfaVerdict {
    /// Whether the policy asks a second factor of this role at all.
    pub fn required(self) -> bool {
        self != Self::NotRequired
    }
}

/// The rule itself, without I/O. `policy` is None when the organisation cannot be read:
/// such a user gets the strictest rule. Where the policy wants administrators'
/// second factor phishing-resistant (DESIGN §17), only a passkey satisfies it.
pub fn judge(policy: Option<&OrgPolicy>, role: Role, amr: &[String]) -> MfaVerdict {
    let phishing_resistant = policy.is_some_and(|p| p.passkeys.phishing_resistant_for(role));
    let required = phishing_resistant || policy.is_none_or(|p| p.mfa.requires(role));
    if !required {
        MfaVerdict::NotRequired
    } else if phishing_resistant {
        match amr.iter().any(|m| m == "hwk" || m == "swk") {
            true => MfaVerdict::Satisfied,
            false => MfaVerdict::Missing,
        }
    } else if acr(amr) == ACR_MFA {
        MfaVerdict::Satisfied
    } else {
        MfaVerdict::Missing
    }
}

/// [`judge`] for `user` under their organisation's current policy.
pub async fn assess(
    state: &AppState,
    user: &UserRow,
    amr: &[String],
) -> Result<MfaVerdict, AuthError> {
    let org_id = user.org_id.clone();
    let org = state
        .store
        .run(move |c| orgs::find_by_id(c, &org_id))
        .await?;
    Ok(judge(org.map(|o| o.policy()).as_ref(), user.role(), amr))
}

/// What a relying party asks of the browser's SSO session before it is answered from it.
#[derive(Debug, Clone, Default)]
pub struct SessionAsk {
    /// Sign in again whatever the session (OIDC `prompt=login`, SAML `ForceAuthn`).
    pub reauthenticate: bool,
    /// The sign-in must be at most this many seconds old (OIDC `max_age`).
    pub max_age: Option<i64>,
    /// A second factor was asked for (OIDC `acr_values`, SAML `RequestedAuthnContext`).
    pub require_mfa: bool,
    pub login_hint: Option<String>,
    /// Emergency access was asked for (DESIGN §15): only a session with its window open
    /// will do; anything else signs in again, second factor and reason included.
    pub emergency: bool,
}

/// The answer to a [`SessionAsk`].
#[derive(Debug)]
pub enum Standing {
    /// Answer from this session.
    Usable(Box<SsoSession>),
    /// A sign-in is needed first: what it must ask for (the policy may have added a
    /// second factor and the user's name), and whether there was a live session at all
    /// (a passive request's error says which).
    SignIn {
        had_session: bool,
        require_mfa: bool,
        login_hint: Option<String>,
    },
}

/// "Answer from the live session if it is good enough, else start a sign-in", the one
/// rule OIDC `/authorize` and SAML SSO share. A session is good enough when its user
/// is active with no password change pending, it is fresh enough, and it used a second
/// factor wherever one is asked — by the relying party or by the organisation's policy
/// as it is now (a password-only session then steps up as its own user, issue 20
/// item 4).
pub async fn standing(
    state: &AppState,
    presented_session: Option<&str>,
    ask: SessionAsk,
) -> Result<Standing, AuthError> {
    let SessionAsk {
        reauthenticate,
        max_age,
        mut require_mfa,
        mut login_hint,
        emergency,
    } = ask;
    let current = if reauthenticate {
        None
    } else {
        session::current(state, presented_session).await?
    };
    let Some(session) = current else {
        return Ok(Standing::SignIn {
            had_session: false,
            require_mfa,
            login_hint,
        });
    };
    let user_id = session.user_id.clone();
    let pii = state.pii.clone();
    let user = state
        .store
        .run(move |c| users::find_by_id(c, &pii, &user_id))
        .await?
        .filter(|u| u.status() == UserStatus::Active && !u.must_change_password);
    if let Some(user) = user {
        // What the policy asks of this user now: a session that falls short signs in
        // again, even where its `acr` would satisfy the relying party.
        let short = assess(state, &user, &session.amr).await? == MfaVerdict::Missing;
        if short {
            require_mfa = true;
            login_hint = login_hint.or(Some(user.username));
        }
        let now = state.clock.now().timestamp();
        let fresh = max_age.is_none_or(|m| now - session.auth_time <= m);
        let raised = !emergency || session.open_emergency(now).is_some();
        if fresh && raised && !short && (!require_mfa || session.acr() == ACR_MFA) {
            return Ok(Standing::Usable(Box::new(session)));
        }
    }
    Ok(Standing::SignIn {
        had_session: true,
        require_mfa,
        login_hint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::MfaPolicy;

    fn policy(mfa: MfaPolicy) -> OrgPolicy {
        OrgPolicy {
            mfa,
            ..OrgPolicy::default()
        }
    }

    fn amr(methods: &[&str]) -> Vec<String> {
        methods.iter().map(|m| (*m).to_owned()).collect()
    }

    #[test]
    fn a_password_only_admin_falls_short_where_admins_need_a_second_factor() {
        let admins = policy(MfaPolicy::Admins);
        let pwd = amr(&["pwd"]);
        assert_eq!(
            judge(Some(&admins), Role::OrgAdmin, &pwd),
            MfaVerdict::Missing
        );
        assert_eq!(
            judge(Some(&admins), Role::OrgAdmin, &amr(&["pwd", "otp"])),
            MfaVerdict::Satisfied
        );
        assert_eq!(
            judge(Some(&admins), Role::User, &pwd),
            MfaVerdict::NotRequired
        );
    }

    #[test]
    fn everyone_means_users_too_and_off_means_nobody() {
        let pwd = amr(&["pwd"]);
        assert_eq!(
            judge(Some(&policy(MfaPolicy::Everyone)), Role::User, &pwd),
            MfaVerdict::Missing
        );
        assert_eq!(
            judge(Some(&policy(MfaPolicy::Off)), Role::SuperAdmin, &pwd),
            MfaVerdict::NotRequired
        );
    }

    #[test]
    fn phishing_resistant_admins_need_a_passkey_and_a_code_falls_short() {
        let mut p = policy(MfaPolicy::Admins);
        p.passkeys.phishing_resistant_admins = true;
        let admin = Role::OrgAdmin;
        assert_eq!(
            judge(Some(&p), admin, &amr(&["pwd", "otp"])),
            MfaVerdict::Missing
        );
        assert_eq!(
            judge(Some(&p), admin, &amr(&["pwd", "hwk"])),
            MfaVerdict::Satisfied
        );
        assert_eq!(
            judge(Some(&p), admin, &amr(&["swk", "mfa"])),
            MfaVerdict::Satisfied
        );
        // Users keep whatever the MFA policy says.
        assert_eq!(
            judge(Some(&p), Role::User, &amr(&["pwd"])),
            MfaVerdict::NotRequired
        );
    }

    #[test]
    fn an_unreadable_organisation_gets_the_strictest_rule() {
        assert_eq!(judge(None, Role::User, &amr(&["pwd"])), MfaVerdict::Missing);
        assert!(judge(None, Role::User, &amr(&["pwd", "otp"])).required());
    }
}
