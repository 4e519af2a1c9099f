//! Login transactions (DESIGN §1): whatever starts a sign-in (the account page, an
//! OIDC `/authorize`, a SAML AuthnRequest) becomes one, stored in the ephemeral store
//! under a random id. The pages move it forward; when it is done, the original request
//! is answered. One pipeline serves every protocol.
//!
//! A transaction is bound to the browser that started it (a hash of its browser
//! cookie) and carries its own CSRF token, so a link to someone else's half-finished
//! sign-in is useless (no login CSRF, no fixation).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::random_token;
use crate::{
    auth::{
        AuthError,
        emergency::EmergencyAsk,
        upstream::{PendingLink, UpstreamOrigin},
    },
    ephemeral::Ephemeral,
};

/// How long a person may take over the sign-in pages.
pub const TRANSACTION_TTL: Duration = Duration::from_secs(15 * 60);
/// Longest id or token accepted from a form: anything longer is not ours.
pub const MAX_TOKEN_LEN: usize = 64;

/// What answers the original request once the person is signed in: the name a door
/// registered its answer under (`account`, `admin`, `authorize`, `saml`…) and the
/// request it will answer, kept as the door wrote it. The sign-in core neither knows
/// nor reads it (DESIGN §1: a protocol registers how to answer a finished sign-in).
///
/// Stored as one object, `{"kind": name, …the request's fields}`: the shape earlier
/// versions wrote, so a sign-in begun before an upgrade still finishes after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resume {
    pub kind: String,
    #[serde(flatten)]
    pub request: serde_json::Map<String, serde_json::Value>,
}

impl Resume {
    /// `request` (a struct, serialised to an object) for the door named `kind`.
    pub fn new(kind: &str, request: &impl Serialize) -> Result<Self, AuthError> {
        let request = match serde_json::to_value(request) {
            Ok(serde_json::Value::Object(map)) => map,
            Ok(_) => {
                return Err(AuthError::Internal(format!(
                    "{kind}: request is not an object"
                )));
            }
            Err(e) => return Err(AuthError::Internal(e.to_string())),
        };
        if request.contains_key("kind") {
            return Err(AuthError::Internal(format!(
                "{kind}: request has a `kind` field"
            )));
        }
        Ok(Self {
            kind: kind.to_owned(),
            request,
        })
    }

    /// A door that needs no request of its own (the account page).
    pub fn to(kind: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            request: serde_json::Map::new(),
        }
    }

    /// The request back, as the door that wrote it reads it.
    pub fn request<T: serde::de::DeserializeOwned>(self) -> Result<T, AuthError> {
        serde_json::from_value(serde_json::Value::Object(self.request))
            .map_err(|e| AuthError::Internal(format!("{}: stored request: {e}", self.kind)))
    }
}

/// How far the person has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Password,
    /// The second factor of an enrolled user.
    Otp,
    /// Required action: a user who must have MFA and has none enrols first.
    EnrolTotp,
    /// Required action: the organisation requires a passkey of this user, who has none
    /// (DESIGN §17). After the second factor, if the user has one.
    EnrolPasskey,
    /// Required action: the password must be changed.
    ChangePassword,
    /// The relying party asked for emergency access (DESIGN §15): the person gives a
    /// reason, or goes on without it. Last, after every factor and required action.
    Emergency,
    Done,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginTransaction {
    pub id: String,
    /// SHA-256 of the browser cookie that started it.
    pub browser: String,
    pub csrf: String,
    pub resume: Resume,
    pub stage: Stage,
    pub user_id: Option<String>,
    /// Methods used so far (`pwd`, later `otp`), for `amr`.
    pub amr: Vec<String>,
    /// Unix seconds of the successful password check.
    pub auth_time: Option<i64>,
    /// The relying party asked for MFA (OIDC `acr_values`, SAML `RequestedAuthnContext`).
    #[serde(default)]
    pub require_mfa: bool,
    /// Found at the password step: a password change is due after the second factor.
    #[serde(default)]
    pub must_change_password: bool,
    /// Found at the password step: a passkey must be registered before going on.
    #[serde(default)]
    pub passkey_due: bool,
    /// The relying party's `login_hint`: prefills the username field.
    #[serde(default)]
    pub login_hint: Option<String>,
    /// The relying party asked for emergency access (DESIGN §15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency: Option<EmergencyAsk>,
    /// What the person gave at the emergency stage, to raise the session with once it
    /// exists; None when they went on without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency_choice: Option<EmergencyChoice>,
    /// An upstream identity to link to the account that signs in here (DESIGN §16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_link: Option<PendingLink>,
    /// The upstream identity provider the person signed in through, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<UpstreamOrigin>,
    /// The relying party's `ui_locales`: the languages its pages are shown in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui_locales: Option<String>,
    /// Once the first step told who the person is: their own language, their
    /// organisation's, and the time zone (theirs, else the organisation's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// The organisation its pages speak for (issue 31), chosen when it began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<crate::i18n::Brand>,
}

/// The reason and context label given at the emergency stage, already checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmergencyChoice {
    pub reason: String,
    pub context: Option<String>,
}

fn key(id: &str) -> String {
    format!("tx:{id}")
}

impl LoginTransaction {
    /// A new transaction at the password stage, bound to the browser whose cookie
    /// hashes to `browser_hash`; not yet stored.
    pub fn new(resume: Resume, browser_hash: String) -> Self {
        Self {
            id: random_token(),
            browser: browser_hash,
            csrf: random_token(),
            resume,
            stage: Stage::Password,
            user_id: None,
            amr: Vec::new(),
            auth_time: None,
            require_mfa: false,
            must_change_password: false,
            passkey_due: false,
            login_hint: None,
            emergency: None,
            emergency_choice: None,
            pending_link: None,
            origin: None,
            ui_locales: None,
            language: None,
            org_language: None,
            time_zone: None,
            brand: None,
        }
    }

    pub async fn begin(
        store: &dyn Ephemeral,
        resume: Resume,
        browser_hash: String,
    ) -> Result<Self, AuthError> {
        let tx = Self::new(resume, browser_hash);
        tx.save(store).await?;
        Ok(tx)
    }

    /// The transaction, if `id` names a live one. Malformed ids are simply unknown.
    pub async fn load(store: &dyn Ephemeral, id: &str) -> Result<Option<Self>, AuthError> {
        if id.is_empty() || id.len() > MAX_TOKEN_LEN || !id.bytes().all(is_token_byte) {
            return Ok(None);
        }
        let Some(raw) = store.get(&key(id)).await? else {
            return Ok(None);
        };
        Ok(serde_json::from_slice(&raw).ok())
    }

    pub async fn save(&self, store: &dyn Ephemeral) -> Result<(), AuthError> {
        let raw = serde_json::to_vec(self).map_err(|e| AuthError::Internal(e.to_string()))?;
        store.set(&key(&self.id), &raw, TRANSACTION_TTL).await?;
        Ok(())
    }

    /// Removes the transaction; true for the one caller that got it. A finished sign-in
    /// resumes its request exactly once, even if the form is submitted twice.
    pub async fn finish(&self, store: &dyn Ephemeral) -> Result<bool, AuthError> {
        Ok(store.take(&key(&self.id)).await?.is_some())
    }
}

/// What a person just did on a sign-in page (each already checked by the guard).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The right password for `user_id`, with what the account and policy then ask.
    Password {
        user_id: String,
        /// Unix seconds of the check.
        at: i64,
        /// The user has a second factor enrolled.
        enrolled: bool,
        /// A second factor is asked for (the relying party, or the policy for the role).
        second_factor_required: bool,
        /// A one-time or expired password: it must be changed before going on.
        must_change_password: bool,
        /// The organisation requires a passkey of this user, who has none.
        passkey_due: bool,
    },
    /// A passkey signed in `user_id` without a password (DESIGN §17): user verification
    /// and possession at once, so multi-factor; `method` is `hwk` or `swk`.
    Passkey {
        user_id: String,
        at: i64,
        method: &'static str,
        /// An administrator requires a new password: it is set before going on, as
        /// after a password (the account is not usable until then).
        must_change_password: bool,
    },
    /// The organisation's identity provider vouched for `user_id` (DESIGN §16), with the
    /// methods it used; `upstream_mfa` when its connector trusts the upstream's MFA and
    /// it was done. No password of ours was involved.
    Upstream {
        user_id: String,
        origin: UpstreamOrigin,
        at: i64,
        amr: Vec<String>,
        upstream_mfa: bool,
        enrolled: bool,
        second_factor_required: bool,
    },
    /// A right TOTP or recovery code.
    SecondFactor,
    /// The second factor given with one of the account's passkeys (`hwk` or `swk`).
    PasskeyFactor(&'static str),
    /// TOTP enrolment confirmed with a right code.
    Enrolled,
    /// The passkey the organisation requires was registered (`hwk` or `swk`).
    PasskeyEnrolled(&'static str),
    /// The required password change was made.
    PasswordChanged,
    /// At the emergency stage: a reason given (`Some`), or going on without (`None`).
    EmergencyDecided(Option<EmergencyChoice>),
}

/// The transition function of a sign-in, without I/O: the stage after `step` at
/// `stage`, or None when the step does not belong there (a form replayed from another
/// page). `must_change_password` and `passkey_due` are what the password step found;
/// `emergency` whether emergency access was asked for.
///
/// The second factor comes before any required action: a stolen one-time or expired
/// password alone must not be enough to choose the next password. Emergency access
/// comes last: only someone through every other stage may break the glass.
pub fn next(
    stage: Stage,
    step: &Step,
    must_change_password: bool,
    passkey_due: bool,
    emergency: bool,
) -> Option<Stage> {
    let finished = if emergency {
        Stage::Emergency
    } else {
        Stage::Done
    };
    let after_second_factor = |must_change: bool| {
        if must_change {
            Stage::ChangePassword
        } else {
            finished
        }
    };
    // A required passkey is registered once the person has proven who they are with
    // every factor they have, before any other required action.
    let after_factors = |must_change: bool, passkey_due: bool| {
        if passkey_due {
            Stage::EnrolPasskey
        } else {
            after_second_factor(must_change)
        }
    };
    match (stage, step) {
        (
            Stage::Password,
            Step::Password {
                enrolled,
                second_factor_required,
                must_change_password,
                passkey_due,
                ..
            },
        ) => Some(if *enrolled {
            Stage::Otp
        } else if *passkey_due {
            Stage::EnrolPasskey
        } else if *second_factor_required {
            Stage::EnrolTotp
        } else {
            after_second_factor(*must_change_password)
        }),
        // Nothing is left to prove, and no password was typed that could be due.
        // Nothing is left to prove but a new password an administrator requires.
        (
            Stage::Password,
            Step::Passkey {
                must_change_password,
                ..
            },
        ) => Some(after_second_factor(*must_change_password)),
        (
            Stage::Password,
            Step::Upstream {
                upstream_mfa,
                enrolled,
                second_factor_required,
                ..
            },
        ) => Some(if *upstream_mfa {
            finished
        } else if *enrolled {
            Stage::Otp
        } else if *second_factor_required {
            Stage::EnrolTotp
        } else {
            finished
        }),
        (Stage::Otp, Step::SecondFactor) => Some(after_factors(must_change_password, passkey_due)),
        (Stage::Otp, Step::PasskeyFactor(_))
        | (Stage::EnrolTotp, Step::Enrolled)
        | (Stage::EnrolPasskey, Step::PasskeyEnrolled(_)) => {
            Some(after_second_factor(must_change_password))
        }
        (Stage::ChangePassword, Step::PasswordChanged) => Some(finished),
        (Stage::Emergency, Step::EmergencyDecided(_)) => Some(Stage::Done),
        _ => None,
    }
}

/// A step taken at a stage it does not belong to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sign-in step {step} does not belong at stage {stage:?}")]
pub struct OutOfOrder {
    pub stage: Stage,
    pub step: &'static str,
}

impl Step {
    fn name(&self) -> &'static str {
        match self {
            Self::Password { .. } => "password",
            Self::Upstream { .. } => "upstream",
            Self::Passkey { .. } => "passkey",
            Self::SecondFactor => "second_factor",
            Self::PasskeyFactor(_) => "passkey_factor",
            Self::Enrolled => "enrolled",
            Self::PasskeyEnrolled(_) => "passkey_enrolled",
            Self::PasswordChanged => "password_changed",
            Self::EmergencyDecided(_) => "emergency_decided",
        }
    }
}

impl LoginTransaction {
    /// Records `step` and moves to the stage [`next`] says, with what the step tells
    /// (`user_id`, `amr` for the tokens and assertions, `auth_time`).
    pub fn take(&mut self, step: Step) -> Result<Stage, OutOfOrder> {
        let emergency = self.emergency.is_some();
        let Some(stage) = next(
            self.stage,
            &step,
            self.must_change_password,
            self.passkey_due,
            emergency,
        ) else {
            return Err(OutOfOrder {
                stage: self.stage,
                step: step.name(),
            });
        };
        match step {
            Step::Password {
                user_id,
                at,
                must_change_password,
                passkey_due,
                ..
            } => {
                self.user_id = Some(user_id);
                self.amr = vec!["pwd".into()];
                self.auth_time = Some(at);
                self.must_change_password = must_change_password;
                self.passkey_due = passkey_due;
            }
            Step::Passkey {
                user_id,
                at,
                method,
                must_change_password,
            } => {
                // The account's own credential: an upstream identity waiting to be
                // linked to it is linked when this sign-in finishes.
                self.user_id = Some(user_id);
                // RFC 8176: the key, and `mfa` for the user verification that unlocked it.
                self.amr = vec![method.into(), "mfa".into()];
                self.auth_time = Some(at);
                self.must_change_password = must_change_password;
            }
            Step::Upstream {
                user_id,
                origin,
                at,
                amr,
                ..
            } => {
                self.user_id = Some(user_id);
                self.amr = amr;
                self.auth_time = Some(at);
                self.must_change_password = false;
                // Signed in through the upstream, not as the account to link.
                self.pending_link = None;
                self.origin = Some(origin);
            }
            Step::SecondFactor | Step::Enrolled => self.amr.push("otp".into()),
            Step::PasskeyFactor(method) => self.amr.push(method.into()),
            Step::PasskeyEnrolled(method) => {
                self.amr.push(method.into());
                self.passkey_due = false;
            }
            Step::PasswordChanged => {}
            Step::EmergencyDecided(choice) => self.emergency_choice = choice,
        }
        self.stage = stage;
        Ok(stage)
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password(enrolled: bool, required: bool, must_change: bool) -> Step {
        Step::Password {
            user_id: "u1".into(),
            at: 1_700_000_000,
            enrolled,
            second_factor_required: required,
            must_change_password: must_change,
            passkey_due: false,
        }
    }

    fn tx() -> LoginTransaction {
        LoginTransaction::new(Resume::to("account"), "b".into())
    }

    #[test]
    fn a_password_alone_finishes_when_nothing_more_is_asked() {
        assert_eq!(
            next(
                Stage::Password,
                &password(false, false, false),
                false,
                false,
                false
            ),
            Some(Stage::Done)
        );
    }

    #[test]
    fn an_enrolled_user_gives_the_code_even_when_no_policy_asks_for_it() {
        assert_eq!(
            next(
                Stage::Password,
                &password(true, false, false),
                false,
                false,
                false
            ),
            Some(Stage::Otp)
        );
    }

    #[test]
    fn a_required_second_factor_without_enrolment_enrols_first() {
        assert_eq!(
            next(
                Stage::Password,
                &password(false, true, true),
                false,
                false,
                false
            ),
            Some(Stage::EnrolTotp)
        );
    }

    #[test]
    fn the_password_change_comes_after_the_second_factor_never_before() {
        let mut t = tx();
        assert_eq!(t.take(password(true, false, true)), Ok(Stage::Otp));
        assert_eq!(t.take(Step::SecondFactor), Ok(Stage::ChangePassword));
        assert_eq!(t.take(Step::PasswordChanged), Ok(Stage::Done));
        assert_eq!(t.amr, ["pwd", "otp"]);
        assert_eq!(t.user_id.as_deref(), Some("u1"));
        assert_eq!(t.auth_time, Some(1_700_000_000));
    }

    #[test]
    fn enrolment_during_sign_in_counts_as_the_second_factor() {
        let mut t = tx();
        assert_eq!(t.take(password(false, true, false)), Ok(Stage::EnrolTotp));
        assert_eq!(t.take(Step::Enrolled), Ok(Stage::Done));
        assert_eq!(t.amr, ["pwd", "otp"]);
    }

    #[test]
    fn a_step_replayed_at_another_stage_is_refused_and_changes_nothing() {
        let mut t = tx();
        assert_eq!(
            t.take(Step::SecondFactor),
            Err(OutOfOrder {
                stage: Stage::Password,
                step: "second_factor"
            })
        );
        assert_eq!(
            t.take(Step::PasswordChanged).map_err(|e| e.stage),
            Err(Stage::Password)
        );
        assert!(t.amr.is_empty());
        t.take(password(true, false, false)).unwrap();
        // A second password at the code stage does not skip the code.
        assert!(t.take(password(false, false, false)).is_err());
        assert!(t.take(Step::Enrolled).is_err());
        assert_eq!(t.stage, Stage::Otp);
        assert_eq!(t.amr, ["pwd"]);
    }

    #[test]
    fn emergency_access_comes_after_every_factor_and_required_action() {
        let mut t = tx();
        t.emergency = Some(EmergencyAsk::default());
        assert_eq!(t.take(password(true, true, true)), Ok(Stage::Otp));
        // Nothing skips ahead to the emergency stage.
        assert!(t.take(Step::EmergencyDecided(None)).is_err());
        assert_eq!(t.take(Step::SecondFactor), Ok(Stage::ChangePassword));
        assert_eq!(t.take(Step::PasswordChanged), Ok(Stage::Emergency));
        let choice = EmergencyChoice {
            reason: "cardiac arrest in bed 4".into(),
            context: None,
        };
        assert_eq!(
            t.take(Step::EmergencyDecided(Some(choice.clone()))),
            Ok(Stage::Done)
        );
        assert_eq!(t.emergency_choice, Some(choice));
        assert_eq!(t.amr, ["pwd", "otp"]);
    }

    #[test]
    fn without_emergency_asked_there_is_no_emergency_stage() {
        let mut t = tx();
        assert_eq!(t.take(password(true, false, false)), Ok(Stage::Otp));
        assert_eq!(t.take(Step::SecondFactor), Ok(Stage::Done));
        assert!(t.take(Step::EmergencyDecided(None)).is_err());
    }

    fn upstream(upstream_mfa: bool, enrolled: bool, required: bool) -> Step {
        Step::Upstream {
            user_id: "u1".into(),
            origin: UpstreamOrigin {
                connector_id: "c1".into(),
                slug: "hospital".into(),
                subject: "s1".into(),
                sid: None,
            },
            at: 1_700_000_000,
            amr: vec!["pwd".into()],
            upstream_mfa,
            enrolled,
            second_factor_required: required,
        }
    }

    #[test]
    fn an_upstream_sign_in_needs_our_second_factor_unless_its_mfa_is_trusted() {
        let mut t = tx();
        assert_eq!(t.take(upstream(false, true, false)), Ok(Stage::Otp));
        assert_eq!(t.take(Step::SecondFactor), Ok(Stage::Done));
        assert_eq!(t.amr, ["pwd", "otp"]);
        assert_eq!(t.origin.as_ref().map(|o| o.slug.as_str()), Some("hospital"));
        let mut t = tx();
        assert_eq!(t.take(upstream(false, false, true)), Ok(Stage::EnrolTotp));
        let mut t = tx();
        assert_eq!(t.take(upstream(true, true, true)), Ok(Stage::Done));
        let mut t = tx();
        assert_eq!(t.take(upstream(false, false, false)), Ok(Stage::Done));
        // Only at the first stage: an upstream answer skips no second factor.
        let mut t = tx();
        t.take(password(true, false, false)).unwrap();
        assert!(t.take(upstream(true, false, false)).is_err());
        assert_eq!(t.stage, Stage::Otp);
    }

    #[test]
    fn a_passkey_without_a_password_is_a_whole_multi_factor_sign_in() {
        let mut t = tx();
        let step = Step::Passkey {
            user_id: "u1".into(),
            at: 1_700_000_000,
            method: "swk",
            must_change_password: false,
        };
        assert_eq!(t.take(step.clone()), Ok(Stage::Done));
        assert_eq!(t.amr, ["swk", "mfa"]);
        assert_eq!(
            crate::auth::session::acr(&t.amr),
            crate::auth::session::ACR_MFA
        );
        // Only at the first stage: a passkey's sign-in skips no stage of another.
        let mut t = tx();
        t.take(password(true, false, false)).unwrap();
        assert!(t.take(step).is_err());
    }

    #[test]
    fn a_passkey_is_a_second_factor_and_a_required_one_is_registered_after_the_factors() {
        let mut t = tx();
        t.take(password(true, false, false)).unwrap();
        assert_eq!(t.take(Step::PasskeyFactor("hwk")), Ok(Stage::Done));
        assert_eq!(t.amr, ["pwd", "hwk"]);

        // Required and missing, with TOTP enrolled: the code first, then the passkey,
        // then the password change.
        let mut t = tx();
        let due = Step::Password {
            user_id: "u1".into(),
            at: 1,
            enrolled: true,
            second_factor_required: true,
            must_change_password: true,
            passkey_due: true,
        };
        assert_eq!(t.take(due), Ok(Stage::Otp));
        assert!(t.take(Step::PasskeyEnrolled("hwk")).is_err());
        assert_eq!(t.take(Step::SecondFactor), Ok(Stage::EnrolPasskey));
        assert_eq!(
            t.take(Step::PasskeyEnrolled("hwk")),
            Ok(Stage::ChangePassword)
        );
        assert_eq!(t.amr, ["pwd", "otp", "hwk"]);
        assert!(!t.passkey_due);

        // Required and missing, nothing enrolled: straight to registering it.
        let mut t = tx();
        let due = Step::Password {
            user_id: "u1".into(),
            at: 1,
            enrolled: false,
            second_factor_required: true,
            must_change_password: false,
            passkey_due: true,
        };
        assert_eq!(t.take(due), Ok(Stage::EnrolPasskey));
        assert!(t.take(Step::Enrolled).is_err());
        assert_eq!(t.take(Step::PasskeyEnrolled("swk")), Ok(Stage::Done));
    }

    #[test]
    fn nothing_moves_a_finished_sign_in() {
        for step in [
            password(false, false, false),
            Step::SecondFactor,
            Step::Enrolled,
            Step::PasswordChanged,
        ] {
            assert_eq!(next(Stage::Done, &step, false, false, false), None);
        }
    }

    #[test]
    fn resume_keeps_the_shape_earlier_versions_stored() {
        // A transaction written before the resume became protocol-neutral still reads.
        let old = r#"{"kind":"admin","return_to":"/admin/users"}"#;
        let resume: Resume = serde_json::from_str(old).unwrap();
        assert_eq!(resume.kind, "admin");
        assert_eq!(serde_json::to_string(&resume).unwrap(), old);
        assert_eq!(
            serde_json::to_string(&Resume::to("account")).unwrap(),
            r#"{"kind":"account"}"#
        );
    }
}
