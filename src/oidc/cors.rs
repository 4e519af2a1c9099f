//! CORS for browser apps (SPAs, issue 25). Discovery and JWKS are public documents: any
//! origin may read them, without credentials. `/token`, `/revoke` and `/userinfo` answer
//! an origin the client in question allows (its `allowed_origins`, by default the origins
//! of its redirect URIs, Keycloak's "+"), echoing it with `Vary: Origin`. Nothing else
//! (pages, `/authorize`, the admin API, SAML) ever sends CORS headers.
//!
//! A preflight carries no body, so it cannot name the client: it is allowed for an origin
//! that ANY client allows, and the request itself is then held to its own client's list.

use std::{collections::HashSet, sync::Arc, time::Instant};

use actix_web::{
    HttpRequest, HttpResponse,
    http::header::{self, HeaderValue},
    web,
};
use url::Url;

use super::client_auth;
use crate::{
    startup::AppState,
    store::clients::{self, ClientRow},
};

/// Stands for the origins of the client's redirect URIs in `allowed_origins`.
pub const REDIRECT_ORIGINS: &str = "+";
/// Most origins one client may list.
pub const MAX_ORIGINS: usize = 20;
/// How long a browser may reuse a preflight answer.
const PREFLIGHT_MAX_AGE_SECS: &str = "600";
/// What a browser app sends to the token endpoints: credentials, DPoP proofs, forms.
const ALLOWED_HEADERS: &str = "Authorization, Content-Type, DPoP";
/// What it may read from an answer (a refused token names why in the challenge).
const EXPOSED_HEADERS: &str = "WWW-Authenticate, DPoP-Nonce";

/// Why `raw` is not a web origin a client may list, if it is not one.
pub fn refusal(raw: &str) -> Option<String> {
    if raw == REDIRECT_ORIGINS {
        return None;
    }
    let Ok(url) = Url::parse(raw) else {
        return Some(format!(
            "{raw:?} is not an origin (scheme://host[:port], or + for the redirect URIs')"
        ));
    };
    let origin = url.origin().ascii_serialization();
    if origin != raw {
        return Some(format!(
            "{raw:?} is not an origin: write it as {origin:?} (no path, no trailing slash)"
        ));
    }
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
    match url.scheme() {
        "https" => None,
        "http" if loopback => None,
        _ => Some(format!("{raw:?}: https, or http on loopback")),
    }
}

/// The origins a browser page must have to be at one of these redirect URIs.
fn redirect_origins(redirect_uris: &[String]) -> impl Iterator<Item = String> + '_ {
    redirect_uris
        .iter()
        .filter_map(|u| Url::parse(u).ok())
        .filter(|u| matches!(u.scheme(), "https" | "http"))
        .map(|u| u.origin().ascii_serialization())
}

impl ClientRow {
    /// `allowed_origins` as registered; `["+"]` when none were given.
    pub fn allowed_origin_list(&self) -> Vec<String> {
        self.allowed_origins
            .as_deref()
            .map(|raw| serde_json::from_str(raw).unwrap_or_default())
            .unwrap_or_else(|| vec![REDIRECT_ORIGINS.to_owned()])
    }

    /// The web origins this client's browser app may call the token endpoints from.
    pub fn web_origins(&self) -> Vec<String> {
        effective(&self.allowed_origin_list(), &self.redirect_uri_list())
    }
}

fn effective(listed: &[String], redirect_uris: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for o in listed {
        if o == REDIRECT_ORIGINS {
            out.extend(redirect_origins(redirect_uris));
        } else {
            out.push(o.clone());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Every origin some client allows, from the cache while it is fresh.
async fn known_origins(state: &AppState) -> Option<Arc<HashSet<String>>> {
    if let Some(set) = state.clients.known_origins() {
        return Some(set);
    }
    let read_at = Instant::now();
    let sources = state.store.run(clients::origin_sources).await.ok()?;
    let mut set = HashSet::new();
    for (redirects, listed) in sources {
        let redirects: Vec<String> = serde_json::from_str(&redirects).unwrap_or_default();
        let listed: Vec<String> = match listed {
            Some(raw) => serde_json::from_str(&raw).unwrap_or_default(),
            None => vec![REDIRECT_ORIGINS.to_owned()],
        };
        set.extend(effective(&listed, &redirects));
    }
    let set = Arc::new(set);
    state.clients.put_known_origins(set.clone(), read_at);
    Some(set)
}

fn origin(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|o| o.len() <= 512 && *o != "null")
}

/// Whose list decides whether an answer may be read by the requesting origin.
pub enum Whose<'a> {
    /// The client the request names (`/token`, `/revoke`) or the token belongs to.
    Client(&'a str),
    /// No client is known (an invalid access token at `/userinfo`): the answer says
    /// nothing about anyone, so an origin some client allows may read why.
    AnyClient,
    /// Nothing identifies a client: no CORS.
    Nobody,
}

/// Adds CORS headers to `res` when the request's origin is allowed for `whose`.
pub async fn for_client(
    state: &AppState,
    req: &HttpRequest,
    whose: Whose<'_>,
    mut res: HttpResponse,
) -> HttpResponse {
    let Some(origin) = origin(req) else {
        return res;
    };
    let allowed = match whose {
        Whose::Client(client_id) => client_auth::find(state, client_id)
            .await
            .ok()
            .flatten()
            .is_some_and(|c| c.web_origins().iter().any(|o| o == origin)),
        Whose::AnyClient => known_origins(state)
            .await
            .is_some_and(|set| set.contains(origin)),
        Whose::Nobody => false,
    };
    let headers = res.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    if allowed && let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED_HEADERS),
        );
    }
    res
}

/// `OPTIONS` on `/token`, `/revoke`, `/userinfo`: allowed for an origin any client
/// allows; the actual request is then held to its own client's list.
pub async fn preflight(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let mut res = HttpResponse::NoContent().finish();
    let Some(origin) = origin(&req) else {
        return res;
    };
    let known = known_origins(&state)
        .await
        .is_some_and(|set| set.contains(origin));
    let headers = res.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    if known && let Ok(value) = HeaderValue::from_str(origin) {
        let methods = if req.path() == "/userinfo" {
            "GET, POST"
        } else {
            "POST"
        };
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(methods),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOWED_HEADERS),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(PREFLIGHT_MAX_AGE_SECS),
        );
    }
    res
}

/// Public documents (discovery, JWKS): any origin, never credentials.
pub fn public(mut res: HttpResponse) -> HttpResponse {
    res.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    res
}

/// `OPTIONS` on discovery and JWKS.
pub async fn public_preflight() -> HttpResponse {
    let mut res = public(HttpResponse::NoContent().finish());
    let headers = res.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Accept"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(PREFLIGHT_MAX_AGE_SECS),
    );
    res
}

/// Checks a registration's `allowed_origins`, keeping each once.
pub fn check_list(listed: &[String]) -> Result<Vec<String>, String> {
    if listed.len() > MAX_ORIGINS {
        return Err(format!("at most {MAX_ORIGINS}"));
    }
    let mut out: Vec<String> = Vec::new();
    for raw in listed {
        if let Some(why) = refusal(raw) {
            return Err(why);
        }
        if !out.contains(raw) {
            out.push(raw.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_port_only() {
        for ok in [
            "+",
            "https://app.example.org",
            "https://app.example.org:8443",
            "http://localhost:3000",
        ] {
            assert_eq!(refusal(ok), None, "{ok}");
        }
        for bad in [
            "*",
            "null",
            "https://app.example.org/",
            "https://app.example.org/cb",
            "http://app.example.org",
            "HTTPS://APP.example.org",
            "javascript:alert(1)",
        ] {
            assert!(refusal(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn plus_stands_for_the_redirect_uris_origins() {
        let redirects = vec![
            "https://app.example.org/cb".to_owned(),
            "https://app.example.org/other".to_owned(),
            "http://localhost:3000/cb".to_owned(),
            "com.example.app:/cb".to_owned(),
        ];
        assert_eq!(
            effective(&["+".into(), "https://x.example".into()], &redirects),
            vec![
                "http://localhost:3000".to_owned(),
                "https://app.example.org".to_owned(),
                "https://x.example".to_owned()
            ]
        );
        assert!(effective(&["https://x.example".into()], &redirects).len() == 1);
    }
}
