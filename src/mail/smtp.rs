//! SMTP submission through lettre, configured by one URL (`smtp_url`).
//!
//! | form | connection |
//! |---|---|
//! | `smtp://user:pass@host:587` | STARTTLS, required: no credentials or mail go out before TLS |
//! | `smtps://user:pass@host:465` | implicit TLS from the first byte |
//! | `smtp://host:25?tls=none` | plaintext, only when asked for by name (a local relay, tests) |
//!
//! Credentials come from the URL's userinfo, percent-decoded. Over `tls=none` they are
//! refused unless the server is on loopback: a password in clear on a network is a
//! password given away.

use std::{net::IpAddr, time::Duration};

use lettre::{
    AsyncSmtpTransport, Tokio1Executor,
    transport::smtp::{
        PoolConfig,
        authentication::{Credentials, Mechanism},
        client::{Tls, TlsParameters},
    },
};
use percent_encoding::percent_decode_str;
use secrecy::{ExposeSecret, SecretString};
use url::{Host, Url};

/// How long one SMTP command may take before the attempt counts as failed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `smtp://`: STARTTLS, and the connection fails if the server does not offer it.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Implicit,
    /// `smtp://…?tls=none`: no encryption at all.
    None,
}

/// A parsed `smtp_url`.
#[derive(Clone)]
pub struct SmtpTarget {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: Option<String>,
    password: Option<SecretString>,
}

impl std::fmt::Debug for SmtpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl SmtpTarget {
    /// Parses `smtp_url`; the error is a sentence for `smtp_url: …`.
    pub fn from_url(url: &Url) -> Result<Self, String> {
        let mut security = match url.scheme() {
            "smtp" => Security::StartTls,
            "smtps" => Security::Implicit,
            other => {
                return Err(format!(
                    "unsupported scheme {other:?} (use smtp:// or smtps://)"
                ));
            }
        };
        for (key, value) in url.query_pairs() {
            match (key.as_ref(), value.as_ref(), security) {
                ("tls", "none", Security::StartTls | Security::None) => security = Security::None,
                ("tls", "starttls", Security::StartTls) => {}
                ("tls", _, Security::Implicit) => {
                    return Err("smtps:// always uses TLS; drop the tls parameter".into());
                }
                ("tls", other, _) => {
                    return Err(format!(
                        "tls={other:?} is not understood (use tls=starttls, the default, or tls=none)"
                    ));
                }
                (other, _, _) => return Err(format!("unknown parameter {other:?}")),
            }
        }
        let host = match url.host() {
            Some(Host::Domain(d)) if !d.is_empty() => d.to_owned(),
            Some(Host::Ipv4(ip)) => ip.to_string(),
            Some(Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err("needs a server name, e.g. smtp://mail.example.org:587".into()),
        };
        if !matches!(url.path(), "" | "/") || url.fragment().is_some() {
            return Err("takes no path or fragment".into());
        }
        let port = url.port().unwrap_or(match security {
            Security::StartTls => 587,
            Security::Implicit => 465,
            Security::None => 25,
        });
        let decode = |s: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| "credentials are not valid UTF-8 once percent-decoded".to_owned())
        };
        let (username, password) = match (url.username(), url.password()) {
            ("", None) => (None, None),
            ("", Some(_)) => return Err("has a password but no user name".into()),
            (user, Some(pass)) => (Some(decode(user)?), Some(SecretString::from(decode(pass)?))),
            (_, None) => return Err("has a user name but no password".into()),
        };
        if security == Security::None && username.is_some() && !is_loopback(&host) {
            return Err(
                "credentials over tls=none would cross the network in clear; use STARTTLS or smtps://"
                    .into(),
            );
        }
        Ok(Self {
            host,
            port,
            security,
            username,
            password,
        })
    }

    /// A pooled lettre transport. Builds inside a tokio runtime (the pool's reaper is a task).
    pub fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
        let tls = |host: &str| {
            TlsParameters::new(host.to_owned()).map_err(|e| format!("TLS settings: {e}"))
        };
        let tls = match self.security {
            Security::StartTls => Tls::Required(tls(&self.host)?),
            Security::Implicit => Tls::Wrapper(tls(&self.host)?),
            Security::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(self.port)
            .tls(tls)
            .timeout(Some(COMMAND_TIMEOUT))
            .pool_config(PoolConfig::new().max_size(4));
        if let (Some(user), Some(pass)) = (&self.username, &self.password) {
            builder = builder
                .credentials(Credentials::new(
                    user.clone(),
                    pass.expose_secret().to_owned(),
                ))
                .authentication(vec![Mechanism::Plain, Mechanism::Login]);
        }
        Ok(builder.build())
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<SmtpTarget, String> {
        SmtpTarget::from_url(&Url::parse(s).unwrap())
    }

    #[test]
    fn smtp_means_starttls_required_on_the_submission_port() {
        let t = parse("smtp://mail.example.org").unwrap();
        assert_eq!((t.security, t.port), (Security::StartTls, 587));
        assert!(t.username.is_none());
    }

    #[test]
    fn smtps_means_implicit_tls_on_465() {
        let t = parse("smtps://mail.example.org").unwrap();
        assert_eq!((t.security, t.port), (Security::Implicit, 465));
        assert!(parse("smtps://mail.example.org?tls=none").is_err());
    }

    #[test]
    fn plaintext_only_when_asked_for_by_name() {
        let t = parse("smtp://relay.internal:2525?tls=none").unwrap();
        assert_eq!((t.security, t.port), (Security::None, 2525));
        assert_eq!(parse("smtp://relay.internal?tls=none").unwrap().port, 25);
        assert!(parse("smtp://relay.internal?tls=off").is_err());
        assert!(parse("smtp://relay.internal?tsl=none").is_err());
    }

    #[test]
    fn credentials_are_percent_decoded_and_never_printed() {
        let t = parse("smtp://gh%40hospital.org:p%3Ass%2Fw%40rd@mail.example.org").unwrap();
        assert_eq!(t.username.as_deref(), Some("gh@hospital.org"));
        assert_eq!(
            t.password.as_ref().map(|p| p.expose_secret()),
            Some("p:ss/w@rd")
        );
        assert!(!format!("{t:?}").contains("p:ss"));
    }

    #[test]
    fn credentials_in_clear_are_refused_off_loopback() {
        assert!(parse("smtp://u:p@relay.internal?tls=none").is_err());
        assert!(parse("smtp://u:p@127.0.0.1:2525?tls=none").is_ok());
        assert!(parse("smtp://u:p@[::1]:2525?tls=none").is_ok());
    }

    #[test]
    fn half_credentials_paths_and_other_schemes_are_refused() {
        assert!(parse("smtp://u@mail.example.org").is_err());
        assert!(parse("smtp://:p@mail.example.org").is_err());
        assert!(parse("smtp://mail.example.org/ehlo-name").is_err());
        assert!(parse("http://mail.example.org").is_err());
    }

    #[test]
    fn ipv6_hosts_lose_their_brackets() {
        assert_eq!(parse("smtp://[::1]:25?tls=none").unwrap().host, "::1");
    }
}
