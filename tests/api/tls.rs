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

/// SIGHUP re-reads the certificate and key: the real binary, a real renewal.
mod reload {
    use std::{
        io::{BufRead, BufReader, Read, Write},
        net::{SocketAddr, TcpStream},
        path::Path,
        process::Command,
        sync::{Arc, Mutex},
        time::{Duration, Instant},
    };

    use rustls::{
        ClientConfig, ClientConnection, RootCertStore, StreamOwned,
        pki_types::{CertificateDer, ServerName},
    };

    use crate::cli::{gatehouse, serve_with, terminate};

    type Tls = StreamOwned<ClientConnection, TcpStream>;

    /// A fresh self-signed pair for `localhost`, written next to `live` and moved over
    /// it the way certbot or cert-manager replace files; returns the certificate (DER).
    fn renew(dir: &Path) -> Vec<u8> {
        let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        for (name, pem) in [
            ("key.pem", pair.signing_key.serialize_pem()),
            ("cert.pem", pair.cert.pem()),
        ] {
            let staged = dir.join(format!("{name}.new"));
            std::fs::write(&staged, pem).unwrap();
            std::fs::rename(&staged, dir.join(name)).unwrap();
        }
        pair.cert.der().to_vec()
    }

    fn connect(addr: SocketAddr, roots: &[&[u8]]) -> Tls {
        let mut store = RootCertStore::empty();
        for root in roots {
            store.add(CertificateDer::from(root.to_vec())).unwrap();
        }
        let config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(store)
                .with_no_client_auth();
        let conn =
            ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
                .unwrap();
        let sock = TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut tls = StreamOwned::new(conn, sock);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).expect("handshake");
        }
        tls
    }

    fn served(tls: &Tls) -> Vec<u8> {
        tls.conn.peer_certificates().unwrap()[0].to_vec()
    }

    /// One keep-alive request on an open connection; returns the status code.
    fn healthz(tls: &mut Tls) -> u16 {
        tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        tls.flush().unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            tls.read_exact(&mut byte).expect("response head");
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().unwrap())
            })
            .expect("content-length");
        let mut body = vec![0u8; length];
        tls.read_exact(&mut body).unwrap();
        head.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    fn hangup(pid: u32) {
        let ok = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    /// Polls new handshakes until one presents `want`.
    fn eventually_served(addr: SocketAddr, roots: &[&[u8]], want: &[u8]) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if served(&connect(addr, roots)) == want {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    #[test]
    fn sighup_serves_a_renewed_certificate_without_dropping_open_connections() {
        let data = tempfile::tempdir().unwrap();
        let tls_dir = tempfile::tempdir().unwrap();
        let old = renew(tls_dir.path());
        let mut cmd = gatehouse(data.path());
        cmd.env("GATEHOUSE_TLS_CERT", tls_dir.path().join("cert.pem"))
            .env("GATEHOUSE_TLS_KEY", tls_dir.path().join("key.pem"));
        let (mut child, _, base) = serve_with(cmd);
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let addr: SocketAddr = base.trim_start_matches("https://").parse().unwrap();

        let mut open = connect(addr, &[&old]);
        assert_eq!(served(&open), old);
        assert_eq!(healthz(&mut open), 200);

        let new = renew(tls_dir.path());
        assert_ne!(new, old);
        hangup(child.id());
        assert!(
            eventually_served(addr, &[&old, &new], &new),
            "no new handshake got the renewed certificate; log: {}",
            log.lock().unwrap()
        );
        // The connection opened before the reload still works, on its old session.
        assert_eq!(healthz(&mut open), 200);
        assert_eq!(served(&open), old);
        assert_eq!(healthz(&mut connect(addr, &[&new])), 200);

        // A broken renewal is refused with a logged error; the last good pair stays.
        std::fs::write(tls_dir.path().join("cert.pem"), "not a certificate").unwrap();
        hangup(child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !log.lock().unwrap().contains("not reloaded") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            log.lock().unwrap().contains("not reloaded"),
            "{}",
            log.lock().unwrap()
        );
        assert_eq!(served(&connect(addr, &[&old, &new])), new);
        assert!(child.try_wait().unwrap().is_none(), "still running");
        assert_eq!(healthz(&mut open), 200);

        assert!(terminate(&mut child).success());
        assert!(!log.lock().unwrap().contains("PRIVATE KEY"));
    }

    /// An operator's key sealed by `keys seal-tls-key` serves; the clear file can go.
    #[test]
    fn a_configured_key_sealed_by_the_cli_serves() {
        let data = tempfile::tempdir().unwrap();
        let tls_dir = tempfile::tempdir().unwrap();
        let der = renew(tls_dir.path());
        let (clear, sealed) = (
            tls_dir.path().join("key.pem"),
            tls_dir.path().join("key.sealed"),
        );
        let out = gatehouse(data.path())
            .args(["keys", "seal-tls-key", "--in"])
            .arg(&clear)
            .arg("--out")
            .arg(&sealed)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(&sealed).unwrap();
        assert!(text.starts_with("v1.") && !text.contains("PRIVATE KEY"));
        // Nothing is overwritten.
        let again = gatehouse(data.path())
            .args(["keys", "seal-tls-key", "--in"])
            .arg(&clear)
            .arg("--out")
            .arg(&sealed)
            .output()
            .unwrap();
        assert!(!again.status.success());
        assert!(String::from_utf8_lossy(&again.stderr).contains("will not overwrite"));
        assert_eq!(std::fs::read_to_string(&sealed).unwrap(), text);
        std::fs::remove_file(&clear).unwrap();

        let mut cmd = gatehouse(data.path());
        cmd.env("GATEHOUSE_TLS_CERT", tls_dir.path().join("cert.pem"))
            .env("GATEHOUSE_TLS_KEY", &sealed);
        let (mut child, _, base) = serve_with(cmd);
        let addr: SocketAddr = base.trim_start_matches("https://").parse().unwrap();
        let mut tls = connect(addr, &[&der]);
        assert_eq!(served(&tls), der);
        assert_eq!(healthz(&mut tls), 200);
        assert!(terminate(&mut child).success());

        // Under another installation's master key the sealed key does not open: the
        // start fails on one line naming the file.
        let other = tempfile::tempdir().unwrap();
        let out = gatehouse(other.path())
            .env("GATEHOUSE_TLS_CERT", tls_dir.path().join("cert.pem"))
            .env("GATEHOUSE_TLS_KEY", &sealed)
            .arg("serve")
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("cannot open sealed private key") && stderr.contains("key.sealed"),
            "{stderr}"
        );
    }
}
