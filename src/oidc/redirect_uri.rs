//! Redirect URIs: which may be registered, and when a presented one matches a registered
//! one (DESIGN §9: exact match, with the one exception RFC 8252 §7.3 makes for native
//! apps on loopback).

use url::Url;

/// The loopback hosts a native app may listen on (RFC 8252 §7.3, and `localhost` per its
/// §8.3 advice, which many apps still use). Written exactly as registered and presented:
/// `127.0.0.2`, `127.1` or `LOCALHOST` are not these.
const LOOPBACK_HOSTS: &[&str] = &["127.0.0.1", "[::1]", "localhost"];

/// Schemes a browser runs or reads locally: a "redirect" there is script injection or a
/// local file read, never a return to an application.
const DANGEROUS_SCHEMES: &[&str] = &["javascript", "data", "file", "vbscript", "blob", "about"];

/// Why a redirect URI cannot be registered, naming it.
pub fn refusal(raw: &str) -> Option<String> {
    let url = match Url::parse(raw) {
        Ok(url) => url,
        Err(e) => return Some(format!("{raw:?}: {e}")),
    };
    if url.fragment().is_some() {
        return Some(format!("{raw:?} has a fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Some(format!("{raw:?} has user information"));
    }
    match url.scheme() {
        "https" => None,
        "http" if url.host_str().is_some_and(|h| LOOPBACK_HOSTS.contains(&h)) => None,
        "http" => Some(format!(
            "{raw:?}: http only on loopback (127.0.0.1, [::1], localhost)"
        )),
        s if DANGEROUS_SCHEMES.contains(&s) => Some(format!("{raw:?}: scheme {s}: not allowed")),
        // RFC 8252 §7.1: private-use schemes are reverse domain names (`com.example.app`).
        s if s.contains('.') => None,
        _ => Some(format!(
            "{raw:?}: use https, http on loopback, or a reverse-DNS private-use scheme \
             (com.example.app:/cb)"
        )),
    }
}

/// Whether `presented` may be used where `registered` was registered: the same string,
/// or (RFC 8252 §7.3) an `http` loopback URI that differs only in its port, which a
/// native app picks at run time. Scheme, host, path and query still match exactly.
pub fn matches(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return true;
    }
    let (Some(reg), Some(pres)) = (loopback_parts(registered), loopback_parts(presented)) else {
        return false;
    };
    reg.host == pres.host && reg.rest == pres.rest && agrees_with_url_parser(presented, &pres)
}

/// An `http` loopback URI taken apart by hand, so the comparison is of the very text the
/// browser will be sent to.
struct Loopback<'a> {
    host: &'a str,
    port: Option<u16>,
    /// Path, query (and fragment, which registration refuses, so never matches).
    rest: &'a str,
}

fn loopback_parts(raw: &str) -> Option<Loopback<'_>> {
    let after = raw.strip_prefix("http://")?;
    let end = after.find(['/', '?', '#', '\\']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    // User information (`http://127.0.0.1@evil/`) names another host.
    if authority.contains('@') {
        return None;
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let close = v6.find(']')?;
            (&authority[..close + 2], &v6[close + 1..])
        }
        None => match authority.find(':') {
            Some(colon) => (&authority[..colon], &authority[colon..]),
            None => (authority, ""),
        },
    };
    if !LOOPBACK_HOSTS.contains(&host) {
        return None;
    }
    let port = match port.strip_prefix(':') {
        None if port.is_empty() => None,
        None => return None,
        Some(digits) => {
            if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            Some(digits.parse::<u16>().ok().filter(|p| *p != 0)?)
        }
    };
    Some(Loopback { host, port, rest })
}

/// A browser parses the URI by the WHATWG rules (as `url` does); it must reach the same
/// host and port we read by hand, or the text is playing tricks.
fn agrees_with_url_parser(raw: &str, parts: &Loopback<'_>) -> bool {
    let Ok(url) = Url::parse(raw) else {
        return false;
    };
    let port = url.port_or_known_default();
    url.scheme() == "http"
        && url.username().is_empty()
        && url.password().is_none()
        && url.host_str() == Some(parts.host)
        && port == Some(parts.port.unwrap_or(80))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_redirect_uri_accepts_any_port() {
        for (registered, presented) in [
            ("http://127.0.0.1/cb", "http://127.0.0.1:51004/cb"),
            ("http://127.0.0.1:1234/cb", "http://127.0.0.1:4321/cb"),
            ("http://127.0.0.1:1234/cb", "http://127.0.0.1/cb"),
            ("http://[::1]/cb", "http://[::1]:60000/cb"),
            ("http://localhost/cb?x=1", "http://localhost:8080/cb?x=1"),
        ] {
            assert!(matches(registered, presented), "{registered} {presented}");
        }
    }

    #[test]
    fn only_the_port_of_an_http_loopback_uri_may_differ() {
        for (registered, presented) in [
            ("http://127.0.0.1/cb", "http://127.0.0.1:5000/cb2"),
            ("http://127.0.0.1/cb", "http://127.0.0.1:5000/cb?x=1"),
            ("http://127.0.0.1/cb", "http://127.0.0.1:5000/CB"),
            ("http://127.0.0.1/cb", "http://127.0.0.2:5000/cb"),
            ("http://127.0.0.1/cb", "http://[::1]:5000/cb"),
            ("http://127.0.0.1/cb", "https://127.0.0.1:5000/cb"),
            ("https://127.0.0.1/cb", "https://127.0.0.1:5000/cb"),
            ("https://rp.example.org/cb", "https://rp.example.org:444/cb"),
            ("http://127.0.0.1/cb", "http://127.0.0.1@evil.example/cb"),
            (
                "http://127.0.0.1/cb",
                "http://127.0.0.1:5000@evil.example/cb",
            ),
            (
                "http://127.0.0.1/cb",
                "http://127.0.0.1:5000\\@evil.example/cb",
            ),
            ("http://127.0.0.1/cb", "http://127.0.0.1:5000/cb#x"),
            ("http://127.0.0.1/cb", "http://127.0.0.1:0/cb"),
            ("http://127.0.0.1/cb", "http://127.0.0.1:99999/cb"),
            ("http://127.0.0.1/cb", "http://127.0.0.1:50\t00/cb"),
            ("http://127.0.0.1/cb", "http://127.0.0.1:/cb"),
            ("http://127.0.0.1/cb", "http://127.0.0.1:5000/./cb"),
            ("http://localhost/cb", "http://LOCALHOST:5000/cb"),
            (
                "http://localhost/cb",
                "http://localhost.evil.example:5000/cb",
            ),
        ] {
            assert!(!matches(registered, presented), "{registered} {presented}");
        }
    }

    #[test]
    fn dangerous_schemes_plain_http_and_user_information_are_refused_naming_the_uri() {
        for raw in [
            "javascript:alert(1)",
            "data:text/html,x",
            "file:///etc/passwd",
            "vbscript:x",
            "http://rp.example.org/cb",
            "http://127.0.0.2/cb",
            "https://user@rp.example.org/cb",
            "myapp:/cb",
            "https://rp.example.org/cb#frag",
        ] {
            let why = refusal(raw).unwrap_or_else(|| panic!("{raw} accepted"));
            assert!(why.contains(&format!("{raw:?}")), "{why}");
        }
        for raw in [
            "https://rp.example.org/cb",
            "http://127.0.0.1/cb",
            "http://[::1]:8080/cb",
            "http://localhost/cb",
            "com.example.app:/cb",
        ] {
            assert_eq!(refusal(raw), None, "{raw}");
        }
    }
}
