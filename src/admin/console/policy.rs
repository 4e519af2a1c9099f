//! An organisation's policies: shown, and changed through one form.

// The console's pages share its entry, navigation, notices and helpers.
use super::*;
use crate::i18n::Tr;

/// The policy form's fields as typed: what is shown, and shown again with the errors.
/// The names are `OrgPolicy::validate`'s, so every message names the field it is about.
#[derive(Deserialize, Default)]
struct PolicyForm {
    #[serde(default)]
    csrf: String,
    #[serde(rename = "password.min_length", default)]
    min_length: String,
    #[serde(rename = "password.max_length", default)]
    max_length: String,
    #[serde(rename = "password.require_upper", default)]
    require_upper: Option<String>,
    #[serde(rename = "password.require_lower", default)]
    require_lower: Option<String>,
    #[serde(rename = "password.require_digit_or_symbol", default)]
    require_digit_or_symbol: Option<String>,
    #[serde(rename = "password.min_strength", default)]
    min_strength: String,
    #[serde(rename = "password.history", default)]
    history: String,
    #[serde(rename = "password.max_age_days", default)]
    max_age_days: String,
    #[serde(rename = "lockout.threshold", default)]
    threshold: String,
    #[serde(rename = "lockout.lock_minutes", default)]
    lock_minutes: String,
    #[serde(rename = "lockout.permanent_after", default)]
    permanent_after: String,
    #[serde(rename = "lockout.reset_failures_after_minutes", default)]
    reset_failures_after_minutes: String,
    #[serde(default)]
    mfa: String,
    #[serde(default)]
    support_email: String,
    #[serde(default)]
    session_idle_secs: String,
    #[serde(default)]
    session_absolute_secs: String,
    // The emergency access fields (issue 26): a form from before them keeps their values.
    #[serde(default)]
    privacy_officer_email: Option<String>,
    #[serde(default)]
    emergency_window_minutes: Option<String>,
    #[serde(default)]
    emergency_review_overdue_hours: Option<String>,
    // The passkey fields (issue 29); `passkeys.form` says the form had them, so an
    // unticked box means "no" and an older form keeps the values.
    #[serde(rename = "passkeys.form", default)]
    passkeys_form: Option<String>,
    #[serde(rename = "passkeys.mode", default)]
    passkey_mode: Option<String>,
    #[serde(rename = "passkeys.phishing_resistant_admins", default)]
    phishing_resistant_admins: Option<String>,
    // The organisation's default language and time zone (issue 31); absent from an
    // older form, which keeps them. Empty: none.
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    time_zone: Option<String>,
}

/// A whole number typed into `raw` (at most 20 characters) into `into`, or the field named
/// in `errors`.
fn number<T: std::str::FromStr>(errors: &mut FieldErrors, field: &str, raw: &str, into: &mut T) {
    let raw = raw.trim();
    match raw.parse::<T>() {
        Ok(v) if raw.len() <= 20 => *into = v,
        _ => errors.push(Id("console-field-whole-number"), field),
    }
}

/// An optional address typed into `raw` into `into` (empty: none), or the field named
/// in `errors` when it is too long to be one.
fn contact(errors: &mut FieldErrors, field: &str, raw: &str, into: &mut Option<String>) {
    let email = raw.trim();
    if email.is_empty() {
        *into = None;
    } else if email.len() > MAX_INPUT {
        errors.push(Id("console-field-email"), field);
    } else {
        // Canonical form when it parses; `validate` names it when it does not.
        *into = Some(
            Email::parse(email)
                .map(|e| e.as_str().to_owned())
                .unwrap_or_else(|_| email.to_owned()),
        );
    }
}

fn checked(on: bool) -> Option<String> {
    on.then(|| "on".to_owned())
}

fn passkey_mode_name(m: PasskeyMode) -> &'static str {
    match m {
        PasskeyMode::Off => "off",
        PasskeyMode::Allowed => "allowed",
        PasskeyMode::RequiredForAdmins => "required_for_admins",
        PasskeyMode::RequiredForEveryone => "required_for_everyone",
    }
}

fn mfa_name(m: MfaPolicy) -> &'static str {
    match m {
        MfaPolicy::Off => "off",
        MfaPolicy::Admins => "admins",
        MfaPolicy::Everyone => "everyone",
    }
}

impl PolicyForm {
    fn from_policy(p: &OrgPolicy) -> Self {
        Self {
            csrf: String::new(),
            min_length: p.password.min_length.to_string(),
            max_length: p.password.max_length.to_string(),
            require_upper: checked(p.password.require_upper),
            require_lower: checked(p.password.require_lower),
            require_digit_or_symbol: checked(p.password.require_digit_or_symbol),
            min_strength: p.password.min_strength.to_string(),
            history: p.password.history.to_string(),
            max_age_days: p
                .password
                .max_age_days
                .map(|d| d.to_string())
                .unwrap_or_default(),
            threshold: p.lockout.threshold.to_string(),
            lock_minutes: p.lockout.lock_minutes.to_string(),
            permanent_after: p.lockout.permanent_after.to_string(),
            reset_failures_after_minutes: p.lockout.reset_failures_after_minutes.to_string(),
            mfa: mfa_name(p.mfa).to_owned(),
            support_email: p.support_email.clone().unwrap_or_default(),
            session_idle_secs: p.session_idle_secs.to_string(),
            session_absolute_secs: p.session_absolute_secs.to_string(),
            privacy_officer_email: Some(p.privacy_officer_email.clone().unwrap_or_default()),
            emergency_window_minutes: Some(p.emergency_window_minutes.to_string()),
            emergency_review_overdue_hours: Some(p.emergency_review_overdue_hours.to_string()),
            passkeys_form: Some("1".into()),
            passkey_mode: Some(passkey_mode_name(p.passkeys.mode).to_owned()),
            phishing_resistant_admins: checked(p.passkeys.phishing_resistant_admins),
            language: Some(p.language.clone().unwrap_or_default()),
            time_zone: Some(p.time_zone.clone().unwrap_or_default()),
        }
    }

    /// The policy the form describes, or every field that is wrong: the ones that are not
    /// numbers (or not a choice offered), then `OrgPolicy::validate`'s bounds on the rest.
    /// A field that does not parse keeps its current value for the bounds check, so it is
    /// named once.
    fn parse(&self, tr: &Tr, current: &OrgPolicy) -> Result<OrgPolicy, Vec<String>> {
        let mut errors = FieldErrors::new(tr);
        let mut p = current.clone();
        self.parse_password(&mut errors, &mut p);
        self.parse_lockout(&mut errors, &mut p);
        match self.mfa.as_str() {
            "off" => p.mfa = MfaPolicy::Off,
            "admins" => p.mfa = MfaPolicy::Admins,
            "everyone" => p.mfa = MfaPolicy::Everyone,
            _ => errors.push(Id("console-field-mfa-choice"), "mfa"),
        }
        contact(
            &mut errors,
            "support_email",
            &self.support_email,
            &mut p.support_email,
        );
        if self.passkeys_form.is_some() {
            self.parse_passkeys(&mut errors, &mut p);
        }
        // Checked by `OrgPolicy::validate`, which names the field.
        let chosen = |raw: &str| Some(raw.trim().to_owned()).filter(|v| !v.is_empty());
        if let Some(raw) = &self.language {
            p.language = chosen(raw);
        }
        if let Some(raw) = &self.time_zone {
            p.time_zone = chosen(raw);
        }
        if let Some(raw) = &self.privacy_officer_email {
            contact(
                &mut errors,
                "privacy_officer_email",
                raw,
                &mut p.privacy_officer_email,
            );
        }
        number(
            &mut errors,
            "session_idle_secs",
            &self.session_idle_secs,
            &mut p.session_idle_secs,
        );
        number(
            &mut errors,
            "session_absolute_secs",
            &self.session_absolute_secs,
            &mut p.session_absolute_secs,
        );
        if let Some(raw) = &self.emergency_window_minutes {
            number(
                &mut errors,
                "emergency_window_minutes",
                raw,
                &mut p.emergency_window_minutes,
            );
        }
        if let Some(raw) = &self.emergency_review_overdue_hours {
            number(
                &mut errors,
                "emergency_review_overdue_hours",
                raw,
                &mut p.emergency_review_overdue_hours,
            );
        }
        let mut errors = errors.said;
        if let Err(problems) = p.validate() {
            let named: Vec<String> = errors
                .iter()
                .filter_map(|e| e.split(':').next())
                .map(|f| format!("{f}:"))
                .collect();
            errors.extend(
                problems
                    .0
                    .into_iter()
                    .filter(|m| !named.iter().any(|f| m.starts_with(f.as_str()))),
            );
        }
        if errors.is_empty() {
            Ok(p)
        } else {
            Err(errors)
        }
    }

    /// The passkey fields into `p`: the mode (one of those offered) and the admins' box.
    fn parse_passkeys(&self, errors: &mut FieldErrors, p: &mut OrgPolicy) {
        let modes = [
            PasskeyMode::Off,
            PasskeyMode::Allowed,
            PasskeyMode::RequiredForAdmins,
            PasskeyMode::RequiredForEveryone,
        ];
        let chosen = self.passkey_mode.as_deref().unwrap_or_default();
        match modes.into_iter().find(|m| passkey_mode_name(*m) == chosen) {
            Some(mode) => p.passkeys.mode = mode,
            None => errors.push(Id("console-field-passkey-mode-choice"), "passkeys.mode"),
        }
        p.passkeys.phishing_resistant_admins = self.phishing_resistant_admins.is_some();
    }

    /// The password rules' fields into `p`, naming those that are not numbers.
    fn parse_password(&self, errors: &mut FieldErrors, p: &mut OrgPolicy) {
        number(
            errors,
            "password.min_length",
            &self.min_length,
            &mut p.password.min_length,
        );
        number(
            errors,
            "password.max_length",
            &self.max_length,
            &mut p.password.max_length,
        );
        number(
            errors,
            "password.min_strength",
            &self.min_strength,
            &mut p.password.min_strength,
        );
        number(
            errors,
            "password.history",
            &self.history,
            &mut p.password.history,
        );
        if self.max_age_days.trim().is_empty() {
            p.password.max_age_days = None;
        } else {
            let mut days = 0u32;
            let before = errors.said.len();
            number(
                errors,
                "password.max_age_days",
                &self.max_age_days,
                &mut days,
            );
            if errors.said.len() == before {
                p.password.max_age_days = Some(days);
            }
        }
        p.password.require_upper = self.require_upper.is_some();
        p.password.require_lower = self.require_lower.is_some();
        p.password.require_digit_or_symbol = self.require_digit_or_symbol.is_some();
    }

    /// The lockout rules' fields into `p`, naming those that are not numbers.
    fn parse_lockout(&self, errors: &mut FieldErrors, p: &mut OrgPolicy) {
        let l = &mut p.lockout;
        for (field, raw, into) in [
            ("lockout.threshold", &self.threshold, &mut l.threshold),
            (
                "lockout.lock_minutes",
                &self.lock_minutes,
                &mut l.lock_minutes,
            ),
            (
                "lockout.permanent_after",
                &self.permanent_after,
                &mut l.permanent_after,
            ),
            (
                "lockout.reset_failures_after_minutes",
                &self.reset_failures_after_minutes,
                &mut l.reset_failures_after_minutes,
            ),
        ] {
            number(errors, field, raw, into);
        }
    }
}

#[derive(Template)]
#[template(path = "admin/org.html")]
struct OrgPage {
    nav: Nav,
    tr: Tr,
    notice: Option<String>,
    org: OrgRow,
    form: PolicyForm,
    /// May change the policies (support may only read them).
    can_manage: bool,
    errors: Vec<String>,
    /// The languages and time zones the form offers.
    languages: Vec<(String, String)>,
    zones: &'static [&'static str],
}

/// The languages Gatehouse speaks, each named in itself, with its tag.
fn languages() -> Vec<(String, String)> {
    crate::i18n::languages()
        .into_iter()
        .map(|tag| (crate::i18n::own_name(&tag), tag))
        .collect()
}

#[get("/admin/orgs/{id}")]
pub(super) async fn org_page(path: Path<String>, query: Query<DoneQuery>, visit: Visit) -> Answer {
    let console = inside!(visit.enter().await?);
    let tr = console.tr();
    let org = org_service::find(&visit.state, &console.who, Action::Read, &path)
        .await
        .said(&tr)?;
    let page = OrgPage {
        nav: console.nav(),
        notice: notice(&tr, query.done.as_deref()),
        tr,
        form: PolicyForm::from_policy(&org.policy()),
        can_manage: console.who.require(Action::Manage).is_ok(),
        errors: Vec::new(),
        org,
        languages: languages(),
        zones: crate::i18n::time_zones(),
    };
    Ok(render(&page, StatusCode::OK))
}

#[post("/admin/orgs/{id}/policy")]
pub(super) async fn org_policy(path: Path<String>, form: Form<PolicyForm>, visit: Visit) -> Answer {
    let form = form.into_inner();
    let console = inside!(visit.enter_form(&form.csrf).await?);
    let (who, tr) = (&console.who, console.tr());
    let org = org_service::find(&visit.state, who, Action::Manage, &path)
        .await
        .said(&tr)?;
    let policy = match form.parse(&tr, &org.policy()) {
        Ok(p) => p,
        Err(errors) => {
            let page = OrgPage {
                nav: console.nav(),
                tr,
                notice: None,
                form,
                can_manage: true,
                errors,
                org,
                languages: languages(),
                zones: crate::i18n::time_zones(),
            };
            return Ok(render(&page, StatusCode::BAD_REQUEST));
        }
    };
    org_service::set_policy(visit.by(&console), &org, policy)
        .await
        .said(&tr)?;
    Ok(see_other(&format!(
        "/admin/orgs/{}?done=policy-saved",
        org.id
    )))
}
