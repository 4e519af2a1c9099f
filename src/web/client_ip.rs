//! The client's address (DESIGN §5): the socket peer, unless that peer is a trusted
//! proxy; then the nearest untrusted hop of `X-Forwarded-For` (or `Forwarded`).
//!
//! Read right to left: each trusted proxy appends the address it saw, so entries to
//! the left of the first untrusted hop were written by the client and prove nothing.
//! A malformed entry means the chain cannot be trusted, and the peer is used.

use std::net::{IpAddr, SocketAddr};

use actix_web::http::header::HeaderMap;
use ipnet::IpNet;

/// More hops than any real deployment has; a longer chain is an attempt to waste time.
const MAX_HOPS: usize = 32;

pub fn client_ip(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer.map(|p| canonical(p.ip()))?;
    if !is_trusted(peer, trusted) {
        return Some(peer);
    }
    let hops = forwarded_for(headers).or_else(|| forwarded(headers));
    let Some(hops) = hops else {
        return Some(peer);
    };
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) if is_trusted(*ip, trusted) => continue,
            Some(ip) => return Some(*ip),
            None => return Some(peer),
        }
    }
    // Every hop is a proxy of ours: the left-most is the nearest to the client we know.
    Some(hops.first().copied().flatten().unwrap_or(peer))
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// IPv4-mapped IPv6 (`::ffff:10.0.0.1`) is the IPv4 address, for allow-lists and blocks alike.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// `None` entries are malformed hops. `None` overall: no usable header.
fn forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let text = value.to_str().ok()?;
        for part in text.split(',') {
            if hops.len() >= MAX_HOPS {
                return Some(vec![None]);
            }
            hops.push(parse_hop(part));
        }
    }
    (!hops.is_empty()).then_some(hops)
}

/// RFC 7239: `Forwarded: for=192.0.2.60;proto=https, for="[2001:db8::1]:4711"`.
fn forwarded(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    for value in headers.get_all("forwarded") {
        let text = value.to_str().ok()?;
        for element in text.split(',') {
            if hops.len() >= MAX_HOPS {
                return Some(vec![None]);
            }
            let node = element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then_some(v)
            });
            hops.push(node.and_then(parse_hop));
        }
    }
    (!hops.is_empty()).then_some(hops)
}

/// One hop: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]:443`, optionally quoted.
fn parse_hop(raw: &str) -> Option<IpAddr> {
    let s = raw.trim().trim_matches('"');
    if s.len() > 64 {
        return None;
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sock) = s.parse::<SocketAddr>() {
        return Some(canonical(sock.ip()));
    }
    s.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|r| r.parse::<IpAddr>().ok())
        .map(canonical)
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    fn peer(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    /// The address found for a request from `from`, through the `trusted` networks.
    fn found(map: &HeaderMap, from: &str, trusted: &[&str]) -> String {
        let ip = client_ip(peer(from), map, &nets(trusted));
        ip.expect("an address").to_string()
    }

    #[test]
    fn forwarded_for_from_an_untrusted_peer_is_ignored() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(
            found(&h, "203.0.113.9:5000", &["10.0.0.0/8"]),
            "203.0.113.9"
        );
    }

    #[test]
    fn forwarded_for_from_a_trusted_proxy_is_honoured() {
        let h = headers(&[("x-forwarded-for", "198.51.100.7, 10.0.0.2")]);
        assert_eq!(found(&h, "10.0.0.1:5000", &["10.0.0.0/8"]), "198.51.100.7");
    }

    #[test]
    fn a_spoofed_left_entry_does_not_win() {
        // The client wrote "6.6.6.6"; our proxy appended the address it really saw.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7")]);
        assert_eq!(found(&h, "10.0.0.1:5000", &["10.0.0.0/8"]), "198.51.100.7");
    }

    #[test]
    fn malformed_chains_fall_back_to_the_peer() {
        for bad in [
            "not-an-ip",
            "1.2.3.4, ,",
            "999.1.1.1",
            &"1.1.1.1,".repeat(100),
            "\u{7f}",
        ] {
            let mut map = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(bad) {
                map.insert(HeaderName::from_static("x-forwarded-for"), v);
            }
            assert_eq!(
                found(&map, "10.0.0.1:5000", &["10.0.0.0/8"]),
                "10.0.0.1",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn non_utf8_header_falls_back_to_the_peer() {
        let mut map = HeaderMap::new();
        map.insert(
            HeaderName::from_static("x-forwarded-for"),
            HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
        );
        assert_eq!(found(&map, "10.0.0.1:1", &["10.0.0.0/8"]), "10.0.0.1");
    }

    #[test]
    fn rfc7239_forwarded_with_ipv6_is_understood() {
        let h = headers(&[("forwarded", "for=\"[2001:db8::17]:4711\";proto=https")]);
        assert_eq!(found(&h, "[::1]:443", &["::1/128"]), "2001:db8::17");
    }

    #[test]
    fn ipv4_mapped_peers_are_ipv4() {
        assert_eq!(
            found(&HeaderMap::new(), "[::ffff:192.0.2.1]:1", &[]),
            "192.0.2.1"
        );
    }
}
