//! The HTTP-POST binding (Bindings §3.5.4) as a page: a form that submits itself to the
//! SP, allowed by its own Content-Security-Policy.

use std::sync::OnceLock;

use actix_web::{HttpResponse, http::StatusCode, http::header};
use askama::Template;
use base64::{Engine, engine::general_purpose::STANDARD};
use sha2::{Digest, Sha256};

use crate::{
    i18n::Tr,
    web::pages::{in_readers_language, render},
};

/// The auto-submit script; its hash is what the page's CSP allows (DESIGN §13).
const AUTO_SUBMIT: &str = r#"document.getElementById("saml-post").submit();"#;

fn script_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| format!("'sha256-{}'", STANDARD.encode(Sha256::digest(AUTO_SUBMIT))))
}

#[derive(Template)]
#[template(
    source = r#"<!doctype html>
<html lang="{{ tr.lang() }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ tr.t("continue") }} · Gatehouse</title>
<link rel="stylesheet" href="/static/gatehouse.css">
</head>
<body>
<main>
<form id="saml-post" method="post" action="{{ action }}">
<input type="hidden" name="{{ field }}" value="{{ value }}">
{% if let Some(r) = relay_state %}<input type="hidden" name="RelayState" value="{{ r }}">{% endif %}
<h1>{{ tr.t("continue") }}</h1>
<p id="message">{{ tr.t("returning-to-app") }}</p>
<button id="continue" type="submit">{{ tr.t("continue") }}</button>
</form>
{% if let Some(s) = skip %}<p><a id="skip" href="{{ s }}">{{ tr.t("skip-silent-app") }}</a></p>{% endif %}
</main>
<script>{{ script|safe }}</script>
</body>
</html>"#,
    ext = "html"
)]
struct PostPage<'a> {
    tr: &'a Tr,
    action: &'a str,
    field: &'a str,
    value: &'a str,
    relay_state: Option<&'a str>,
    script: &'a str,
    skip: Option<&'a str>,
}

/// The HTTP-POST binding (Bindings §3.5.4): a form that submits itself, allowed by its
/// own CSP — `form-action` names the destination's origin, the script is allowed by its
/// hash — and a visible button for browsers without JavaScript.
pub fn post_page(
    action: &str,
    field: &str,
    value: &str,
    relay_state: Option<&str>,
) -> HttpResponse {
    post_page_for(action, field, value, relay_state, false, None)
}

/// The POST binding for Single Logout, where the SP answers by redirecting the browser
/// back to us: CSP `form-action` also covers redirects after the submission, so it allows
/// our own origin too. `skip` is the link that gives up on an SP that never answers.
pub fn post_page_with_self(
    action: &str,
    field: &str,
    value: &str,
    relay_state: Option<&str>,
    skip: Option<&str>,
) -> HttpResponse {
    post_page_for(action, field, value, relay_state, true, skip)
}

/// The page, [`in_readers_language`]: the protocol code that sends it has no reader.
fn post_page_for(
    action: &str,
    field: &str,
    value: &str,
    relay_state: Option<&str>,
    allow_self: bool,
    skip: Option<&str>,
) -> HttpResponse {
    let (action, field, value) = (action.to_owned(), field.to_owned(), value.to_owned());
    let (relay_state, skip) = (relay_state.map(str::to_owned), skip.map(str::to_owned));
    in_readers_language(move |tr| {
        post_page_in(
            tr,
            &action,
            &field,
            &value,
            relay_state.as_deref(),
            allow_self,
            skip.as_deref(),
        )
    })
}

fn post_page_in(
    tr: &Tr,
    action: &str,
    field: &str,
    value: &str,
    relay_state: Option<&str>,
    allow_self: bool,
    skip: Option<&str>,
) -> HttpResponse {
    let origin = url::Url::parse(action)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| "'none'".to_owned());
    let also = if allow_self { " 'self'" } else { "" };
    let csp = format!(
        "default-src 'none'; script-src {}; style-src 'self'; img-src 'self' data:; \
         form-action {origin}{also}; frame-ancestors 'none'; base-uri 'none'",
        script_hash()
    );
    let mut res = render(
        &PostPage {
            tr,
            action,
            field,
            value,
            relay_state,
            script: AUTO_SUBMIT,
            skip,
        },
        StatusCode::OK,
    );
    if let Ok(v) = header::HeaderValue::from_str(&csp) {
        res.headers_mut().insert(
            header::HeaderName::from_static("content-security-policy"),
            v,
        );
    }
    res
}
