//! Server-rendered pages: askama templates (auto-escaped), `no-store` on every
//! authentication page, HTML error pages for browser endpoints, and the same-origin
//! check on state-changing form posts (DESIGN §8, §13).

use actix_web::{
    Error,
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    middleware::Next,
};
use actix_web::{
    HttpRequest, HttpResponse, ResponseError,
    http::{StatusCode, header},
};
use askama::Template;
use url::Url;

use std::rc::Rc;

use super::error::AppError;
use crate::i18n::Tr;

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage<'a> {
    pub tr: &'a Tr,
    pub title: &'a str,
    pub message: &'a str,
    pub link: Option<&'a str>,
    pub link_text: &'a str,
}

pub fn static_routes(cfg: &mut actix_web::web::ServiceConfig) {
    cfg.route(
        "/static/gatehouse.css",
        actix_web::web::get().to(stylesheet),
    )
    .route(
        "/static/passkey.js",
        actix_web::web::get().to(passkey_script),
    );
}

/// The passkey pages' script (DESIGN §17, §19): the only script, served from here so
/// the CSP's `script-src 'self'` admits it and nothing inline.
async fn passkey_script() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/javascript; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(include_str!("../../static/passkey.js"))
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/css; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(include_str!("../../static/gatehouse.css"))
}

/// Renders `page` with `status`; authentication pages are never cached.
pub fn render(page: &impl Template, status: StatusCode) -> HttpResponse {
    match page.render() {
        Ok(body) => HttpResponse::build(status)
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
            .body(body),
        Err(e) => AppError::Internal(format!("template: {e}")).error_response(),
    }
}

/// A page that says `message` under `title`, both already in `tr`'s language.
pub fn message(
    tr: &Tr,
    status: StatusCode,
    title: &str,
    message: &str,
    link: Option<(&str, &str)>,
) -> HttpResponse {
    render(
        &MessagePage {
            tr,
            title,
            message,
            link: link.map(|l| l.0),
            link_text: link.map(|l| l.1).unwrap_or(""),
        },
        status,
    )
}

#[derive(Template)]
#[template(
    source = r#"{% extends "base.html" %}{% block title %}{{ tr.t("continue") }}{% endblock %}
{% block head %}<meta http-equiv="refresh" content="0;url={{ url }}">{% endblock %}
{% block content %}<h1>{{ tr.t("continue") }}</h1>
<p id="message">{{ tr.t("continue-text") }}</p>
<p><a id="continue" href="{{ url }}">{{ tr.t("continue") }}</a></p>{% endblock %}"#,
    ext = "html"
)]
struct ContinuePage<'a> {
    tr: &'a Tr,
    url: &'a str,
}

/// Sends the browser on to another site at the end of a form submission. A 303 would be
/// refused by the browser under our CSP `form-action 'self'` (it covers redirects), so
/// the last step is a page that navigates by itself, with a link for the rare browser
/// that does not follow `refresh`.
/// Protocol code sends it, knowing nothing of the reader: it is [`in_readers_language`].
pub fn continue_to(url: &str) -> HttpResponse {
    let url = url.to_owned();
    in_readers_language(move |tr| render(&ContinuePage { tr, url: &url }, StatusCode::OK))
}

/// An error on a browser endpoint: the same mapping as `AppError`, rendered as a page.
#[derive(Debug)]
pub struct PageError(pub AppError);

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: Into<AppError>> From<E> for PageError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    /// In English: `speak_error_pages` writes it again in the page's language, which
    /// needs the request.
    fn error_response(&self) -> HttpResponse {
        match &self.0 {
            AppError::Unavailable(d) => tracing::warn!(detail = %d, "dependency unavailable"),
            AppError::Internal(d) => tracing::error!(detail = %d, "internal error"),
            _ => {}
        }
        error_page(&self.0, &Tr::default())
    }
}

/// Writes each error page in the language of the page that failed: the one its
/// handler chose ([`super::visit::Visit::speak`]), else the browser's; and each page
/// made [`in_readers_language`].
pub async fn speak_error_pages(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let res = next.call(req).await?.map_into_boxed_body();
    let rewrite = res.response().extensions().get::<Rewrite>().cloned();
    let failed = res
        .response()
        .error()
        .and_then(|e| e.as_error::<PageError>());
    if rewrite.is_none() && failed.is_none() {
        return Ok(res);
    }
    let tr = super::visit::spoken(res.request());
    if tr.lang() == "en" {
        return Ok(res);
    }
    let again = match (rewrite, failed) {
        (Some(rewrite), _) => (rewrite.0)(&tr),
        (None, Some(page)) => error_page(&page.0, &tr),
        (None, None) => return Ok(res),
    };
    let again = again.into_body();
    Ok(res.map_body(|_, _| again))
}

/// How to write a page again in another language.
#[derive(Clone)]
struct Rewrite(Rc<dyn Fn(&Tr) -> HttpResponse>);

/// A page made by protocol code that holds no request to ask its reader's language
/// (the answer to a finished sign-in, a refused request, a SAML form): made in English
/// here, and again in the request's language on its way out ([`speak_error_pages`]).
/// Only the body is written again: status, headers and cookies are this one's.
pub fn in_readers_language(page: impl Fn(&Tr) -> HttpResponse + 'static) -> HttpResponse {
    let mut res = page(&Tr::default());
    res.extensions_mut().insert(Rewrite(Rc::new(page)));
    res
}

/// The page for `e`, with its `Retry-After`. The details of a 503 or 500 stay in the
/// log; an error's own message, where it has one, is shown as it is.
pub fn error_page(e: &AppError, tr: &Tr) -> HttpResponse {
    let (title, text) = match e {
        AppError::BadRequest(m) => (tr.t("error-bad-request"), m.clone()),
        AppError::NotFound => (tr.t("error-not-found"), tr.t("error-not-found-text")),
        AppError::Forbidden(m) => (tr.t("error-forbidden"), m.clone()),
        AppError::Unavailable(_) => (tr.t("error-unavailable"), tr.t("error-unavailable-text")),
        AppError::Internal(_) => (tr.t("error-internal"), tr.t("error-internal-text")),
        AppError::TooManyRequests { .. } => (tr.t("error-too-many"), tr.t("error-too-many-text")),
    };
    let mut res = message(
        tr,
        e.status_code(),
        &title,
        &text,
        Some(("/account", &tr.t("go-to-account"))),
    );
    let retry_after = match e {
        AppError::Unavailable(_) => Some("2".to_owned()),
        AppError::TooManyRequests { retry_after_secs } => Some(retry_after_secs.to_string()),
        _ => None,
    };
    if let Some(value) = retry_after.and_then(|v| header::HeaderValue::from_str(&v).ok()) {
        res.headers_mut().insert(header::RETRY_AFTER, value);
    }
    res
}

/// True when the request wants a page rather than JSON: a browser form post or an
/// `Accept` that names HTML.
pub fn wants_html(req: &HttpRequest) -> bool {
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    form || accept
}

/// Refuses a cross-origin state-changing request (DESIGN §8). `Origin` must be our
/// issuer's origin or this request's own host. Browsers send `Origin: null` for form
/// posts from a page with `Referrer-Policy: no-referrer` (ours, DESIGN §13), but also
/// from a sandboxed iframe or a `data:` page on any site; so a null origin passes only
/// with Fetch Metadata saying `same-origin` (issue 20, item 15: without it, or with any
/// other value, nothing shows the post came from our page). `cross-site` or `same-site`
/// is refused whatever the origin. The CSRF token is checked in addition, not instead.
pub fn check_same_origin(req: &HttpRequest, issuer: &Url) -> Result<(), AppError> {
    let refused = || AppError::Forbidden(super::visit::spoken(req).t("from-another-site"));
    let fetch_site = req
        .headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok());
    if matches!(fetch_site, Some("cross-site" | "same-site")) {
        return Err(refused());
    }
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().map_err(|_| refused())?;
    if origin == "null" {
        return match fetch_site {
            Some("same-origin") => Ok(()),
            _ => Err(refused()),
        };
    }
    let issuer_origin = issuer.origin().ascii_serialization();
    let own = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|host| format!("{}://{host}", issuer.scheme()));
    if origin == issuer_origin || own.as_deref() == Some(origin) {
        Ok(())
    } else {
        Err(refused())
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    /// Whether a POST with these headers passes the same-origin check.
    fn passes(headers: &[(&'static str, &'static str)]) -> bool {
        let req = headers
            .iter()
            .fold(TestRequest::post(), |req, &h| req.insert_header(h));
        let issuer = Url::parse("https://idp.example.org").unwrap();
        check_same_origin(&req.to_http_request(), &issuer).is_ok()
    }

    #[test]
    fn same_origin_posts_pass() {
        assert!(passes(&[("Origin", "https://idp.example.org")]));
        assert!(passes(&[
            ("Origin", "https://127.0.0.1:9443"),
            ("Host", "127.0.0.1:9443")
        ]));
    }

    #[test]
    fn a_null_origin_from_our_own_no_referrer_page_passes() {
        assert!(passes(&[
            ("Origin", "null"),
            ("Sec-Fetch-Site", "same-origin")
        ]));
    }

    #[test]
    fn a_null_origin_without_same_origin_fetch_metadata_is_refused() {
        assert!(!passes(&[("Origin", "null")]));
        for site in ["none", "same-site", "cross-site", "x"] {
            let headers = [("Origin", "null"), ("Sec-Fetch-Site", site)];
            assert!(!passes(&headers), "Sec-Fetch-Site: {site}");
        }
    }

    #[test]
    fn cross_origin_posts_are_refused() {
        assert!(!passes(&[
            ("Origin", "https://evil.example"),
            ("Host", "idp.example.org")
        ]));
        assert!(!passes(&[
            ("Origin", "null"),
            ("Sec-Fetch-Site", "cross-site")
        ]));
        let sibling = [
            ("Origin", "https://idp.example.org"),
            ("Sec-Fetch-Site", "same-site"),
        ];
        assert!(!passes(&sibling), "a sibling subdomain is not us");
        assert!(!passes(&[("Sec-Fetch-Site", "cross-site")]));
    }
}
