//! Server-rendered pages: askama templates (auto-escaped), `no-store` on every
//! authentication page, HTML error pages for browser endpoints, and the same-origin
//! check on state-changing form posts (DESIGN §8, §13).

use actix_web::{
    HttpRequest, HttpResponse, ResponseError,
    http::{StatusCode, header},
};
use askama::Template;
use url::Url;

use super::error::AppError;

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage<'a> {
    pub title: &'a str,
    pub message: &'a str,
    pub link: Option<&'a str>,
    pub link_text: &'a str,
}

pub fn static_routes(cfg: &mut actix_web::web::ServiceConfig) {
    cfg.route(
        "/static/gatehouse.css",
        actix_web::web::get().to(stylesheet),
    );
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

pub fn message(
    status: StatusCode,
    title: &str,
    message: &str,
    link: Option<(&str, &str)>,
) -> HttpResponse {
    render(
        &MessagePage {
            title,
            message,
            link: link.map(|l| l.0),
            link_text: link.map(|l| l.1).unwrap_or(""),
        },
        status,
    )
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

    fn error_response(&self) -> HttpResponse {
        error_page(&self.0)
    }
}

pub fn error_page(e: &AppError) -> HttpResponse {
    let (title, text) = match e {
        AppError::BadRequest(m) => ("That did not work", m.as_str()),
        AppError::NotFound => ("Page not found", "There is nothing at this address."),
        AppError::Forbidden(m) => ("Request refused", m.as_str()),
        AppError::Unavailable(_) => (
            "Please try again",
            "The service is busy or briefly unavailable. Please try again in a moment.",
        ),
        AppError::Internal(_) => (
            "Something went wrong",
            "An internal error occurred. Please try again.",
        ),
    };
    match e {
        AppError::Unavailable(d) => tracing::warn!(detail = %d, "dependency unavailable"),
        AppError::Internal(d) => tracing::error!(detail = %d, "internal error"),
        _ => {}
    }
    let mut res = message(
        e.status_code(),
        title,
        text,
        Some(("/account", "Go to your account")),
    );
    if matches!(e, AppError::Unavailable(_)) {
        res.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("2"));
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
/// issuer's origin or this request's own host; without `Origin`, Fetch Metadata saying
/// `cross-site` is refused too. The CSRF token is checked in addition, not instead.
pub fn check_same_origin(req: &HttpRequest, issuer: &Url) -> Result<(), AppError> {
    let refused =
        || AppError::Forbidden("This form was sent from another site and was refused.".into());
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let origin = origin.to_str().map_err(|_| refused())?;
        let issuer_origin = issuer.origin().ascii_serialization();
        let own = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|host| format!("{}://{host}", issuer.scheme()));
        if origin == issuer_origin || own.as_deref() == Some(origin) {
            return Ok(());
        }
        return Err(refused());
    }
    if req
        .headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site")
    {
        return Err(refused());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn issuer() -> Url {
        Url::parse("https://idp.example.org").unwrap()
    }

    #[test]
    fn same_origin_posts_pass() {
        let req = TestRequest::post()
            .insert_header(("Origin", "https://idp.example.org"))
            .to_http_request();
        assert!(check_same_origin(&req, &issuer()).is_ok());
        let req = TestRequest::post()
            .insert_header(("Origin", "https://127.0.0.1:9443"))
            .insert_header(("Host", "127.0.0.1:9443"))
            .to_http_request();
        assert!(check_same_origin(&req, &issuer()).is_ok());
    }

    #[test]
    fn cross_origin_posts_are_refused() {
        let req = TestRequest::post()
            .insert_header(("Origin", "https://evil.example"))
            .insert_header(("Host", "idp.example.org"))
            .to_http_request();
        assert!(check_same_origin(&req, &issuer()).is_err());
        let req = TestRequest::post()
            .insert_header(("Origin", "null"))
            .to_http_request();
        assert!(check_same_origin(&req, &issuer()).is_err());
        let req = TestRequest::post()
            .insert_header(("Sec-Fetch-Site", "cross-site"))
            .to_http_request();
        assert!(check_same_origin(&req, &issuer()).is_err());
    }
}
