//! DESIGN §13: TLS 1.2 and 1.3 only. Checked on the wire with hand-built ClientHellos,
//! because no modern client library will even offer TLS 1.1.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::spawn_app;

/// A minimal ClientHello with the given `legacy_version`, offering ECDHE-GCM suites and
/// the extensions a TLS 1.2 server needs to pick one.
fn client_hello(version: [u8; 2]) -> Vec<u8> {
    let mut ext = Vec::new();
    // supported_groups: x25519, secp256r1
    ext.extend_from_slice(&[0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17]);
    // ec_point_formats: uncompressed
    ext.extend_from_slice(&[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);
    // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256
    ext.extend_from_slice(&[
        0x00, 0x0d, 0x00, 0x08, 0x00, 0x06, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01,
    ]);

    let mut body = Vec::new();
    body.extend_from_slice(&version);
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // session id
    let suites: [u8; 8] = [0xc0, 0x2b, 0xc0, 0x2f, 0xc0, 0x2c, 0xc0, 0x30];
    body.extend_from_slice(&(suites.len() as u16).to_be_bytes());
    body.extend_from_slice(&suites);
    body.extend_from_slice(&[0x01, 0x00]); // compression: null
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);

    let mut handshake = vec![0x01]; // ClientHello
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);

    let mut record = vec![0x16, version[0], version[1]];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// The first record the server answers with: (content type, first payload byte).
async fn first_answer(addr: std::net::SocketAddr, hello: &[u8]) -> Option<(u8, u8)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream.write_all(hello).await.ok()?;
    let mut header = [0u8; 6];
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_exact(&mut header),
    )
    .await
    .ok()?
    .ok()?;
    Some((header[0], header[5]))
}

#[tokio::test]
async fn tls_1_2_hello_gets_a_server_hello() {
    let app = spawn_app().await;
    // 0x16 handshake record whose first message is 0x02 ServerHello: the probe itself works.
    assert_eq!(
        first_answer(app.addr, &client_hello([3, 3])).await,
        Some((0x16, 0x02))
    );
}

#[tokio::test]
async fn tls_1_1_hello_is_refused() {
    let app = spawn_app().await;
    let answer = first_answer(app.addr, &client_hello([3, 2])).await;
    // Either an alert record (0x15) or a closed connection; never a ServerHello.
    assert!(
        matches!(answer, None | Some((0x15, _))),
        "TLS 1.1 got {answer:?}"
    );
}

#[tokio::test]
async fn a_modern_client_gets_https_over_http_1_1() {
    let app = spawn_app().await;
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.version(), reqwest::Version::HTTP_11);
}
