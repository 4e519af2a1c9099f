//! Start-up time and idle memory of the embedded default (issue 32). Run with
//! `cargo bench --bench startup` (release build). It starts the real `gatehouse serve`
//! binary as a new user's `cargo run --release -- serve` does — SQLite, in-memory state,
//! self-signed TLS, a first administrator — with only its data folder and a loopback
//! port set, `RUNS` times on a new data folder (a first start) and once more on each
//! (a restart), and prints for each kind of start:
//!
//! - exec → the first `/healthz` 200, through HTTPS (the request waits in the listen
//!   queue while the server starts, so this is when it is ready, not when it bound);
//! - resident memory 5 s after ready (VmRSS), split into anonymous memory and the mapped
//!   files (the binary and its libraries), and the thread count.
//!
//! `BENCH_RUNS` overrides the number of runs; `BENCH_GATEHOUSE_BIN` another binary; any
//! `GATEHOUSE_*` variable set when it runs is passed on (`GATEHOUSE_LOG_LEVEL=warn`, say).

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

const RUNS: usize = 5;
/// When memory is read, after ready (the measure).
const SETTLE: Duration = Duration::from_secs(5);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A field of `/proc/{pid}/{file}` in KiB (or a count).
fn proc_field(pid: u32, file: &str, name: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// What one start measured.
struct Start {
    ready: Duration,
    rss_kib: u64,
    anon_kib: u64,
    threads: u64,
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM, as systemd stops it, so the next start is a clean restart.
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start(data: &std::path::Path) -> Start {
    let port = free_port();
    let binary = std::env::var("BENCH_GATEHOUSE_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_gatehouse").to_owned());
    let mut cmd = Command::new(binary);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GATEHOUSE_DATA_DIR", data)
        .env("GATEHOUSE_BIND", format!("127.0.0.1:{port}"));
    for (k, v) in std::env::vars().filter(|(k, _)| k.starts_with("GATEHOUSE_")) {
        if k != "GATEHOUSE_DATA_DIR" && k != "GATEHOUSE_BIND" {
            cmd.env(k, v);
        }
    }
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let url = format!("https://127.0.0.1:{port}/healthz");
    let began = Instant::now();
    let server = Server(
        cmd.arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the gatehouse binary"),
    );
    let ready = loop {
        match client.get(&url).send().await {
            Ok(res) if res.status() == 200 => break began.elapsed(),
            _ if began.elapsed() > Duration::from_secs(30) => panic!("not ready in 30 s"),
            _ => tokio::time::sleep(Duration::from_millis(2)).await,
        }
    };
    tokio::time::sleep(SETTLE).await;
    let pid = server.0.id();
    Start {
        ready,
        rss_kib: proc_field(pid, "status", "VmRSS:"),
        anon_kib: proc_field(pid, "smaps_rollup", "Anonymous:"),
        threads: proc_field(pid, "status", "Threads:"),
    }
}

fn report(kind: &str, starts: &[Start]) {
    let mut ready: Vec<f64> = starts.iter().map(|s| s.ready.as_secs_f64() * 1e3).collect();
    ready.sort_by(f64::total_cmp);
    let mib = |kib: u64| kib as f64 / 1024.0;
    let mut rss: Vec<u64> = starts.iter().map(|s| s.rss_kib).collect();
    rss.sort_unstable();
    let median = starts
        .iter()
        .find(|s| s.rss_kib == rss[rss.len() / 2])
        .unwrap();
    println!(
        "{kind:<12} ready in {:>6.0} ms median ({:.0}–{:.0}); RSS {:.1} MiB median \
         ({:.1}–{:.1}; of the median run {:.1} anonymous, {:.1} mapped files); {} threads",
        ready[ready.len() / 2],
        ready[0],
        ready[ready.len() - 1],
        mib(median.rss_kib),
        mib(rss[0]),
        mib(rss[rss.len() - 1]),
        mib(median.anon_kib),
        mib(median.rss_kib - median.anon_kib),
        median.threads,
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(RUNS);
    let (mut first, mut again) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let data = tempfile::tempdir().unwrap();
        first.push(start(data.path()).await);
        again.push(start(data.path()).await);
    }
    println!("{runs} runs, embedded default (SQLite, in-memory state, self-signed TLS):");
    report("first start", &first);
    report("restart", &again);
}
