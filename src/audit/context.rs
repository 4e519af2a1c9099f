//! Who is asking: the request an audited act came with. The web layer fills it in for
//! every request (`web::context`); the CLI acts without one.

use std::net::IpAddr;

/// Who is asking, for the audit trail and the brute-force guard.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub client_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}
