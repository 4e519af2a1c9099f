//! The browser's cookies (DESIGN §8): the SSO session and the browser binding of login
//! transactions. The sessions themselves, and what a cookie value names, live in
//! `auth::session`; this is only how they travel.

use actix_web::{
    HttpRequest,
    cookie::{Cookie, SameSite},
};

use crate::{
    auth::{
        AuthError,
        session::{self, SsoSession},
    },
    startup::AppState,
};

/// `__Host-`: Secure, path `/`, no Domain — no subdomain can set or read it.
pub const SESSION_COOKIE: &str = "__Host-gatehouse-session";
/// Binds login transactions to the browser that started them.
pub const BROWSER_COOKIE: &str = "__Host-gatehouse-browser";

/// The session cookie's value as this request presents it.
pub fn presented_session(req: &HttpRequest) -> Option<String> {
    req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned())
}

/// The live session of this request, touched; an expired one is ended.
pub async fn current_session(
    state: &AppState,
    req: &HttpRequest,
) -> Result<Option<SsoSession>, AuthError> {
    session::current(state, presented_session(req).as_deref()).await
}

fn host_cookie(name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/")
        .secure(true)
        .http_only(true)
        // SAML's POST binding arrives cross-site and must carry the session (DESIGN §8);
        // forms are protected by CSRF tokens and the Origin check instead.
        .same_site(SameSite::None)
        .finish()
}

/// A browser-session cookie: shared clinical workstations lose it when the browser
/// closes; the server enforces idle and absolute limits either way.
pub fn session_cookie(value: String) -> Cookie<'static> {
    host_cookie(SESSION_COOKIE, value)
}

pub fn browser_cookie(value: String) -> Cookie<'static> {
    host_cookie(BROWSER_COOKIE, value)
}

pub fn removal_cookie() -> Cookie<'static> {
    let mut c = host_cookie(SESSION_COOKIE, String::new());
    c.make_removal();
    c
}
