//! The HTTP client that talks to upstream identity providers: no redirects (a token
//! endpoint that redirects is refused, not followed), short timeouts, a bounded body,
//! and the connector's own certificate authority when it names one.

use std::{future::Future, pin::Pin, time::Duration};

use openidconnect::{AsyncHttpClient, http};

/// Longest answer read from an upstream (discovery, JWKS, token response).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
const TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Transport(String),
    #[error("the answer is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("the connector's CA certificate is unusable: {0}")]
    Certificate(String),
}

/// One connector's client.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
}

impl Fetcher {
    pub fn new(ca_pem: Option<&str>) -> Result<Self, FetchError> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| FetchError::Certificate(e.to_string()))?;
            if certs.is_empty() {
                return Err(FetchError::Certificate("no certificate in the PEM".into()));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build()
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        Ok(Self { client })
    }

    async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, FetchError> {
        let (parts, body) = request.into_parts();
        let url = parts.uri.to_string();
        let mut outbound = self.client.request(parts.method, url).body(body);
        for (name, value) in &parts.headers {
            outbound = outbound.header(name, value);
        }
        let mut answer = outbound
            .send()
            .await
            .map_err(|e| FetchError::Transport(without_url(&e)))?;
        if answer
            .content_length()
            .is_some_and(|l| l > MAX_BODY_BYTES as u64)
        {
            return Err(FetchError::TooLarge);
        }
        let status = answer.status();
        let headers = answer.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = answer
            .chunk()
            .await
            .map_err(|e| FetchError::Transport(without_url(&e)))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let mut response = http::Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok(response)
    }
}

/// The one client of calls that trust the system's certificate authorities (a FHIR
/// server's patient search, a client's published keys), built once.
pub fn system_roots() -> Result<&'static Fetcher, String> {
    static FETCHER: std::sync::OnceLock<Result<Fetcher, String>> = std::sync::OnceLock::new();
    FETCHER
        .get_or_init(|| Fetcher::new(None).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(Clone::clone)
}

/// The body of a 2xx answer to `GET url` with `headers`, through [`system_roots`]; why
/// not, in words that name no URL.
pub async fn get(url: &str, headers: &[(http::HeaderName, String)]) -> Result<Vec<u8>, String> {
    let mut request = http::Request::get(url);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let request = request.body(Vec::new()).map_err(|e| e.to_string())?;
    let answer = system_roots()?
        .call(request)
        .await
        .map_err(|e| e.to_string())?;
    if !answer.status().is_success() {
        return Err(format!("it answered {}", answer.status()));
    }
    Ok(answer.into_body())
}

/// reqwest's message without the URL (which may carry a code in its query).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let host = e
        .url()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    format!("{kind} ({host})")
}

impl<'c> AsyncHttpClient<'c> for Fetcher {
    type Error = FetchError;
    type Future =
        Pin<Box<dyn Future<Output = Result<http::Response<Vec<u8>>, FetchError>> + Send + 'c>>;

    fn call(&'c self, request: http::Request<Vec<u8>>) -> Self::Future {
        Box::pin(self.send(request))
    }
}
