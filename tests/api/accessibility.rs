//! WCAG 2.1 AA, checked by axe-core in headless Chromium over the real pages (issue 31):
//! the sign-in page and its error, the second-factor step and its enrolment, the recovery
//! codes, the required password change, the reset request, the account pages, every
//! console page and the error page, the SMART patient picker and a required passkey, in the light and the dark colour scheme, in English
//! and in Spanish. Any violation fails, naming the page, the rule and the elements; and
//! each run first shows that it sees one, on a page it spoiled on purpose. Signing in,
//! the second factor and the reset request are also done with the keyboard alone.
//!
//! axe-core is pinned in `tests/api/axe/package-lock.json`; `.ci/run` installs it, and the
//! test runs `npm ci` there itself when it is missing (without npm: skipped). It runs
//! with `GATEHOUSE_TEST_BROWSER=1`.

use std::time::Duration;

use gatehouse::{
    auth::recovery::{self, Admin, NewInvitation},
    clock::Clock,
    domain::{Email, OrgName, PasskeyMode, Role, Username},
    oidc::clients::ClientSpec,
};

use crate::{
    browser::{Browser, sign_in},
    helpers::{
        TestApp, change_default_policy, create_user, create_user_with_role, eventually, skip,
        totp_code,
    },
    mail::{SmtpSink, app_mailing_to},
    oidc::{register_client, sign_in_url},
    spa::NpmLibrary,
    upstream_oidc::add_connector,
};

const AXE: NpmLibrary = NpmLibrary {
    dir: concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/axe"),
    name: "axe-core",
    // One file, defining the global `axe`.
    bundle: "node_modules/axe-core/axe.min.js",
    npm_args: &[],
};
const PASSWORD: &str = "Accessible-Horse-Battery-4";

/// axe-core's WCAG 2.0 and 2.1 A and AA violations on the page the browser shows, one
/// line each: the page, the rule, its impact and the elements.
async fn violations(browser: &Browser, page: &str) -> Vec<String> {
    let source = String::from_utf8(AXE.bundle_bytes()).expect("axe-core is UTF-8");
    let script = format!(
        "{source}\n;const done = arguments[arguments.length - 1];\
         axe.run(document, {{ runOnly: {{ type: 'tag', values: \
         ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] }}, resultTypes: ['violations'] }})\
         .then(r => done(r.violations), e => done([{{ id: 'axe-error', impact: String(e), \
         nodes: [] }}]));"
    );
    let found = browser
        .client()
        .execute_async(&script, Vec::new())
        .await
        .expect("axe-core runs in the page");
    // Every page here has a heading, so axe-core ran if it found one.
    assert!(
        !browser.texts("h1").await.is_empty(),
        "{page}: no page to check"
    );
    let heading = browser.text("h1").await;
    found
        .as_array()
        .expect("a list of violations")
        .iter()
        .map(|v| {
            let nodes: Vec<String> = v["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|n| format!("{} [{}]", n["html"], n["failureSummary"]))
                .collect();
            format!(
                "{page} ({heading:?}): {} ({}): {}",
                v["id"],
                v["impact"],
                nodes.join(" | ")
            )
        })
        .collect()
}

/// What a walk found wrong, and the language its pages must be in.
struct Report {
    lang: &'static str,
    problems: Vec<String>,
}

/// Checks the page the browser shows, adding what is wrong to `report`, and that it is
/// in the report's language. With `GATEHOUSE_SCREENSHOTS=DIR`, also saves it there as a
/// PNG, to look at.
async fn check(browser: &Browser, page: &str, report: &mut Report) {
    browser.wait_for("h1").await;
    report.problems.extend(violations(browser, page).await);
    let lang = page_lang(browser).await;
    if lang != report.lang {
        let wanted = report.lang;
        report
            .problems
            .push(format!("{page}: in {lang:?}, not {wanted:?}"));
    }
    if let Ok(dir) = std::env::var("GATEHOUSE_SCREENSHOTS") {
        let name: String = page
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let scheme = if prefers_dark(browser).await {
            "dark"
        } else {
            "light"
        };
        browser
            .screenshot(std::path::Path::new(&dir).join(format!("{scheme}-{lang}{name}.png")))
            .await;
    }
}

async fn visit(browser: &Browser, app: &crate::helpers::TestApp, path: &str, report: &mut Report) {
    browser.goto(&app.url(path)).await;
    let shown = browser.current_url().await;
    assert_eq!(
        shown.path(),
        path.split('?').next().unwrap(),
        "{path} itself, not a sign-in"
    );
    check(browser, path, report).await;
}

/// The path of the `kind` link (`reset`, `invite`) mailed to `to`, once it arrives.
async fn mailed_link(app: &TestApp, sink: &SmtpSink, to: &str, kind: &str) -> String {
    let prefix = format!("{}{kind}/", app.config.issuer);
    let find = || {
        sink.messages().iter().find_map(|m| {
            let text = (m.rcpt_to == [to]).then(|| m.subject_and_text().1)?;
            let start = text.find(&prefix)? + prefix.len();
            let token: String = text[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            Some(format!("/{kind}/{token}"))
        })
    };
    let arrived = eventually(Duration::from_secs(15), || async { find().is_some() }).await;
    assert!(arrived, "no {kind} link mailed to {to}");
    find().unwrap()
}

/// The language the page shown says it is in (`<html lang>`).
async fn page_lang(browser: &Browser) -> String {
    let lang = browser
        .client()
        .execute("return document.documentElement.lang;", Vec::new())
        .await
        .unwrap();
    lang.as_str().unwrap_or_default().to_owned()
}

/// Whether the page shown is in the dark colour scheme.
async fn prefers_dark(browser: &Browser) -> bool {
    let dark = browser
        .client()
        .execute(
            "return matchMedia('(prefers-color-scheme: dark)').matches;",
            Vec::new(),
        )
        .await
        .unwrap();
    dark.as_bool() == Some(true)
}

/// Forgets the session (the cookies of the page shown, one of `app`'s) and signs in as
/// `username` from the account page.
async fn sign_in_again(browser: &Browser, app: &crate::helpers::TestApp, username: &str) {
    browser.client().delete_all_cookies().await.unwrap();
    browser.goto(&app.url("/account")).await;
    browser.wait_for("form#login").await;
    sign_in(browser, username, PASSWORD).await;
}

/// The harness sees what it should: the sign-in page spoiled with an image without a
/// text alternative and a label-less field is reported, rule by rule.
async fn sees_a_violation(browser: &Browser, app: &crate::helpers::TestApp) {
    browser.goto(&app.url("/login")).await;
    browser.wait_for("h1").await;
    browser
        .client()
        .execute(
            "document.querySelector('main').insertAdjacentHTML('beforeend',              '<img src=\"/static/none.png\"><input type=\"text\" name=\"x\">');",
            Vec::new(),
        )
        .await
        .unwrap();
    let found = violations(browser, "spoiled /login").await.join("\n");
    assert!(
        found.contains("\"image-alt\"") && found.contains("\"label\""),
        "axe-core must report the spoiled page: {found}"
    );
}

/// Skipped without a browser or npm; otherwise a browser (`switches`) ready for axe-core.
async fn browser_for(test: &str, switches: &[&str]) -> Option<Browser> {
    if !Browser::enabled() {
        skip(test, "GATEHOUSE_TEST_BROWSER not set");
        return None;
    }
    if let Err(why) = AXE.installed() {
        skip(test, &why);
        return None;
    }
    Browser::start_with(switches).await
}

/// Blink's preferred colour scheme: 0 is dark.
const DARK: &str = "--blink-settings=preferredColorScheme=0";

#[tokio::test]
async fn browser_every_page_passes_axe_core_at_wcag_2_1_aa_in_light_mode() {
    let test = "browser_every_page_passes_axe_core_at_wcag_2_1_aa_in_light_mode";
    let Some(browser) = browser_for(test, &["--accept-lang=en-US"]).await else {
        return;
    };
    every_page(browser, false, "en").await;
}

#[tokio::test]
async fn browser_every_page_passes_axe_core_at_wcag_2_1_aa_in_dark_mode() {
    let test = "browser_every_page_passes_axe_core_at_wcag_2_1_aa_in_dark_mode";
    let Some(browser) = browser_for(test, &[DARK, "--accept-lang=en-US"]).await else {
        return;
    };
    every_page(browser, true, "en").await;
}

#[tokio::test]
async fn browser_every_page_passes_axe_core_at_wcag_2_1_aa_in_spanish_light() {
    let test = "browser_every_page_passes_axe_core_at_wcag_2_1_aa_in_spanish_light";
    let Some(browser) = browser_for(test, &["--accept-lang=es-419,es"]).await else {
        return;
    };
    every_page(browser, false, "es-419").await;
}

#[tokio::test]
async fn browser_every_page_passes_axe_core_at_wcag_2_1_aa_in_spanish_dark() {
    let test = "browser_every_page_passes_axe_core_at_wcag_2_1_aa_in_spanish_dark";
    let Some(browser) = browser_for(test, &[DARK, "--accept-lang=es-MX,es"]).await else {
        return;
    };
    every_page(browser, true, "es-419").await;
}

/// Walks every page in `browser`, whose colour scheme is `dark` or not and whose
/// language is `lang`, and fails on any violation.
async fn every_page(browser: Browser, dark: bool, lang: &'static str) {
    let sink = SmtpSink::start().await;
    let app = app_mailing_to(&sink).await;
    sees_a_violation(&browser, &app).await;
    assert_eq!(
        prefers_dark(&browser).await,
        dark,
        "the colour scheme asked for"
    );
    let admin = create_user_with_role(&app, "ada", PASSWORD, Role::SuperAdmin).await;
    create_user(&app, "olga", PASSWORD, true).await;
    let mut report = Report {
        lang,
        problems: Vec::new(),
    };

    // Before signing in: the sign-in page, its error, the reset request, an error page.
    visit(&browser, &app, "/login", &mut report).await;
    sign_in(&browser, "ada", "not-the-password").await;
    browser.wait_for("#error").await;
    check(&browser, "/login (wrong password)", &mut report).await;
    visit(&browser, &app, "/reset", &mut report).await;
    browser.fill("form#reset-request input#login", "olga").await;
    browser.submit("form#reset-request button#send-link").await;
    browser.wait_for("p#message").await;
    check(&browser, "reset link sent", &mut report).await;
    let reset = mailed_link(&app, &sink, "olga@example.org", "reset").await;
    visit(&browser, &app, &reset, &mut report).await;
    visit(&browser, &app, "/authorize?client_id=unknown", &mut report).await;

    // An invitation's page, from the link in its mail.
    let invitation = NewInvitation {
        org: OrgName::parse("default").unwrap(),
        username: Username::parse("ivo").unwrap(),
        email: Email::parse("ivo@example.org").unwrap(),
        display_name: None,
        role: Role::User,
    };
    let admin_actor = Admin {
        actor: "test",
        request: None,
    };
    recovery::invite(&app.state, admin_actor, invitation)
        .await
        .unwrap();
    let invite = mailed_link(&app, &sink, "ivo@example.org", "invite").await;
    visit(&browser, &app, &invite, &mut report).await;

    // An administrator's first sign-in: enrolment of the second factor, recovery codes.
    browser.goto(&app.url("/admin")).await;
    browser.wait_for("form#login").await;
    sign_in(&browser, "ada", PASSWORD).await;
    browser.wait_for("form#totp-enrol").await;
    check(&browser, "/login/totp-enrol", &mut report).await;
    let secret = browser.text("#totp-secret").await;
    let code = totp_code(&secret, app.clock.now().timestamp());
    browser.fill("form#totp-enrol input#code", &code).await;
    browser.submit("form#totp-enrol button#confirm-totp").await;
    browser.wait_for("#recovery-codes").await;
    check(&browser, "recovery codes", &mut report).await;
    browser.submit("form#continue button#continue-button").await;
    browser.wait_for("form#search").await;

    // The console, every page.
    let org = admin.org_id.clone();
    let settings = serde_json::json!({
        "oidc": {"issuer": "https://login.hospital.example", "client_id": "gatehouse"},
    });
    let domains = ["hospital.example"];
    let connector = add_connector(&app, "hospital", settings, Some("s3cret"), &domains).await;
    for path in [
        "/admin".to_owned(),
        "/admin?q=ada".to_owned(),
        format!("/admin/users/{}", admin.id),
        format!("/admin/orgs/{org}"),
        format!("/admin/orgs/{org}/branding"),
        "/admin/audit".to_owned(),
        "/admin/connectors".to_owned(),
        "/admin/connectors/new".to_owned(),
        format!("/admin/connectors/{connector}"),
        format!("/admin/confirm?action=end-all-sessions&user={}", admin.id),
        "/admin/fhir-servers".to_owned(),
        "/admin/ip-blocks".to_owned(),
        "/admin/emergency".to_owned(),
        "/account".to_owned(),
        "/account/totp".to_owned(),
        "/account/passkeys".to_owned(),
        "/account/emergency".to_owned(),
    ] {
        visit(&browser, &app, &path, &mut report).await;
    }

    // An app that asks its users' consent.
    const REDIRECT: &str = "https://rp.example.org/callback";
    let asking = register_client(
        &app,
        ClientSpec {
            ask_consent: true,
            ..ClientSpec::new("Patient diary", &[REDIRECT])
        },
    )
    .await;
    let scope = "openid profile email";
    browser
        .goto(&sign_in_url(&app, &asking.client_id, REDIRECT, scope, &[]))
        .await;
    browser.wait_for("form#consent").await;
    check(&browser, "/consent", &mut report).await;

    // Signing out.
    browser.goto(&app.url("/account")).await;
    browser.submit("form#logout button#sign-out").await;
    browser.wait_for("p#message").await;
    check(&browser, "signed out", &mut report).await;

    // The second step of a later sign-in.
    sign_in_again(&browser, &app, "ada").await;
    browser.wait_for("form#otp").await;
    check(&browser, "/login/otp", &mut report).await;

    // A password the administrator said must change.
    sign_in_again(&browser, &app, "olga").await;
    browser.wait_for("input#new_password").await;
    check(&browser, "required password change", &mut report).await;

    browser.close().await;
    let problems = report.problems;
    assert!(
        problems.is_empty(),
        "{} axe-core violations:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// The pages only some sign-ins meet: the SMART patient picker, before and after its
/// search of the FHIR server, and the passkey a policy requires at sign-in (on an issuer
/// that is a DNS name, as passkeys need). English in light, Spanish in dark.
#[tokio::test]
async fn browser_the_patient_picker_and_a_required_passkey_pass_axe_core_in_both_languages() {
    let test = "browser_the_patient_picker_and_a_required_passkey_pass_axe_core_in_both_languages";
    for (switches, lang) in [
        (&["--accept-lang=en-US"][..], "en"),
        (&[DARK, "--accept-lang=es-419,es"][..], "es-419"),
    ] {
        let Some(browser) = browser_for(test, switches).await else {
            return;
        };
        let mut report = Report {
            lang,
            problems: Vec::new(),
        };
        patient_picker(&browser, &mut report).await;
        required_passkey(&browser, &mut report).await;
        browser.close().await;
        let problems = report.problems;
        assert!(
            problems.is_empty(),
            "{} axe-core violations:\n{}",
            problems.len(),
            problems.join("\n")
        );
    }
}

/// A practitioner's standalone launch: signs in, meets the picker, searches.
async fn patient_picker(browser: &Browser, report: &mut Report) {
    let smart = crate::smart::Smart::with_fixture().await;
    let scope = "launch/patient openid fhirUser patient/*.rs";
    browser
        .goto(&smart.authorize_url(scope, &[("aud", &smart.fhir)]))
        .await;
    browser.wait_for("form#login").await;
    sign_in(browser, "drsmith", "Correct-Horse-Battery-9").await;
    browser.wait_for("form#search").await;
    check(browser, "/smart/patient", report).await;
    browser.fill("form#search input#name", "Ana").await;
    browser.submit("form#search button#search-button").await;
    browser.wait_for("table#patients").await;
    assert_eq!(browser.count("table#patients tbody tr").await, 2);
    check(browser, "/smart/patient (found)", report).await;
}

/// Where every account must have a passkey, the sign-in asks for one.
async fn required_passkey(browser: &Browser, report: &mut Report) {
    let app = crate::passkey::app().await;
    change_default_policy(&app, |p| p.passkeys.mode = PasskeyMode::RequiredForEveryone).await;
    create_user(&app, "rita", PASSWORD, false).await;
    browser.goto(&app.url("/account")).await;
    browser.wait_for("form#login").await;
    sign_in(browser, "rita", PASSWORD).await;
    browser.wait_for("form#passkey-register").await;
    check(browser, "/login/passkey-enrol", report).await;
}

/// Types `keys` into whatever has the focus: the keyboard, not a click.
async fn type_keys(browser: &Browser, keys: &str) {
    let focused = browser.client().active_element().await.unwrap();
    focused.send_keys(keys).await.unwrap();
}

fn key(k: fantoccini::key::Key) -> String {
    char::from(k).to_string()
}

#[tokio::test]
async fn browser_the_keyboard_alone_signs_in_with_a_second_factor_and_asks_for_a_reset() {
    use fantoccini::key::Key;
    let test = "browser_the_keyboard_alone_signs_in_with_a_second_factor_and_asks_for_a_reset";
    if !Browser::enabled() {
        skip(test, "GATEHOUSE_TEST_BROWSER not set");
        return;
    }
    let Some(browser) = Browser::start().await else {
        return;
    };
    let sink = SmtpSink::start().await;
    let app = app_mailing_to(&sink).await;
    create_user_with_role(&app, "kim", PASSWORD, Role::SuperAdmin).await;
    let (tab, enter) = (key(Key::Tab), key(Key::Enter));

    // The sign-in page puts the focus in the username; Tab reaches the password; Enter
    // sends the form.
    browser.goto(&app.url("/admin")).await;
    browser.wait_for("form#login").await;
    type_keys(&browser, &format!("kim{tab}{PASSWORD}{enter}")).await;
    // An administrator's first sign-in enrols a second factor: the code field has the
    // focus.
    browser.wait_for("form#totp-enrol").await;
    let secret = browser.text("#totp-secret").await;
    let code = totp_code(&secret, app.clock.now().timestamp());
    type_keys(&browser, &format!("{code}{enter}")).await;
    // The recovery codes: the first Tab reaches the one button.
    browser.wait_for("#recovery-codes").await;
    type_keys(&browser, &tab).await;
    type_keys(&browser, &enter).await;
    browser.wait_for_path("/admin").await;

    // A later sign-in: username, password, then the code, all typed.
    browser.client().delete_all_cookies().await.unwrap();
    browser.goto(&app.url("/account")).await;
    browser.wait_for("form#login").await;
    type_keys(&browser, &format!("kim{tab}{PASSWORD}{enter}")).await;
    browser.wait_for("form#otp").await;
    app.clock.advance(chrono::Duration::seconds(30));
    let code = totp_code(&secret, app.clock.now().timestamp());
    type_keys(&browser, &format!("{code}{enter}")).await;
    browser.wait_for("#account-username").await;
    assert_eq!(browser.text("#account-username").await, "kim");

    // The reset request: the field has the focus, Enter sends it.
    browser.client().delete_all_cookies().await.unwrap();
    browser.goto(&app.url("/reset")).await;
    browser.wait_for("form#reset-request").await;
    type_keys(&browser, &format!("kim{enter}")).await;
    browser.wait_for("p#message").await;
    mailed_link(&app, &sink, "kim@example.org", "reset").await;
    browser.close().await;
}
