//! The faults' machinery: a Redis of the test's own (killed, restarted, frozen) and a
//! proxy in front of PostgreSQL (cut, restored, stalled).

use std::{
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::{net::TcpListener, task::JoinHandle};

use crate::helpers::{eventually, fresh_postgres_url};

pub(super) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Redis of the test's own, which it may kill and start again on the same port.
pub(super) struct OwnRedis {
    pub(super) port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    pub(super) const BINARY: &str = "/usr/bin/redis-server";

    pub(super) async fn start(port: u16) -> Self {
        let child = Command::new(Self::BINARY)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let up = eventually(Duration::from_secs(10), || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        assert!(up, "redis-server did not listen on {port}");
        Self {
            port,
            child: Some(child),
        }
    }

    pub(super) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub(super) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `STOP` freezes it (connections stay open, nothing is answered); `CONT` thaws it.
    pub(super) fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal} {pid}");
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The accept loop and the connections it is piping.
type Running = (JoinHandle<()>, Arc<Mutex<Vec<JoinHandle<()>>>>);

/// A TCP proxy in front of PostgreSQL that the test can cut (every connection closed,
/// new ones refused) and restore on the same port.
pub(super) struct CuttableProxy {
    pub(super) addr: SocketAddr,
    upstream: SocketAddr,
    running: Option<Running>,
    /// While set, nothing is read or forwarded either way, and every connection stays
    /// open: a network partition as the server sees it.
    stalled: Arc<AtomicBool>,
}

impl CuttableProxy {
    pub(super) async fn start(upstream: SocketAddr) -> Self {
        let mut proxy = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstream,
            running: None,
            stalled: Arc::new(AtomicBool::new(false)),
        };
        proxy.restore().await;
        proxy
    }

    pub(super) async fn restore(&mut self) {
        let listener = TcpListener::bind(self.addr).await.expect("proxy binds");
        self.addr = listener.local_addr().unwrap();
        let upstream = self.upstream;
        let connections = Arc::new(Mutex::new(Vec::new()));
        let accept = tokio::spawn({
            let (connections, stalled) = (connections.clone(), self.stalled.clone());
            async move {
                while let Ok((inbound, _)) = listener.accept().await {
                    let stalled = stalled.clone();
                    let pipe = tokio::spawn(async move {
                        if let Ok(outbound) = tokio::net::TcpStream::connect(upstream).await {
                            let (from_client, to_client) = inbound.into_split();
                            let (from_server, to_server) = outbound.into_split();
                            tokio::join!(
                                forward(from_client, to_server, stalled.clone()),
                                forward(from_server, to_client, stalled),
                            );
                        }
                    });
                    connections.lock().unwrap().push(pipe);
                }
            }
        });
        self.running = Some((accept, connections));
    }

    /// Stops forwarding, leaving every connection open (new ones are accepted too).
    pub(super) fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
    }

    pub(super) fn resume(&self) {
        self.stalled.store(false, Ordering::SeqCst);
    }

    /// Closes the listener (new connections are refused) and every open connection.
    pub(super) async fn cut(&mut self) {
        if let Some((accept, connections)) = self.running.take() {
            accept.abort();
            let _ = accept.await;
            for pipe in connections.lock().unwrap().drain(..) {
                pipe.abort();
            }
        }
        // The listener is gone once the aborted task is dropped.
        assert!(tokio::net::TcpStream::connect(self.addr).await.is_err());
    }
}

/// A fresh database, a proxy in front of it, and its URL directly and through the proxy.
pub(super) async fn proxied_database(base: &str) -> (CuttableProxy, url::Url, url::Url) {
    let direct = url::Url::parse(&fresh_postgres_url(base)).unwrap();
    let host = direct.host_str().unwrap();
    let upstream = tokio::net::lookup_host((host, direct.port().unwrap_or(5432)))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = CuttableProxy::start(upstream).await;
    let mut through_proxy = direct.clone();
    through_proxy.set_host(Some("127.0.0.1")).unwrap();
    through_proxy.set_port(Some(proxy.addr.port())).unwrap();
    (proxy, direct, through_proxy)
}

/// Copies one direction of a proxied connection, holding still while `stalled`.
async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    stalled: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let hold = || async {
        while stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        hold().await;
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        hold().await;
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}

/// A direct connection to the test's PostgreSQL database, beside the proxy the server
/// uses: it sees what was committed while the server's path is cut.
pub(super) async fn observer(direct: &url::Url) -> gatehouse::store::Store {
    let target = gatehouse::config::DatabaseTarget::Postgres(direct.to_string());
    tokio::task::spawn_blocking(move || gatehouse::store::Store::connect(&target, 1))
        .await
        .unwrap()
        .unwrap()
}
