//! `wrk` runs, and where the machine's CPU went during each.

use std::{path::Path, process::Command};

/// Seconds each wrk run lasts.
pub const SECONDS: u32 = 10;

/// Seconds of CPU so far: this process (every thread; Gatehouse runs in it) and its
/// finished children (each wrk run), from `/proc/self/stat`.
pub fn process_cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // utime, stime, cutime and cstime: the 14th to 17th fields.
    (
        stat_seconds(&stat, 11) + stat_seconds(&stat, 12),
        stat_seconds(&stat, 13) + stat_seconds(&stat, 14),
    )
}

/// Seconds of CPU process `pid` has used so far.
fn pid_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat_seconds(&stat, 11) + stat_seconds(&stat, 12)
}

/// Field `i` after the parenthesised command name of a `stat` line, in seconds.
fn stat_seconds(stat: &str, i: usize) -> f64 {
    // Linux reports these in USER_HZ, which is 100 on every architecture it exposes.
    stat.rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .nth(i)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 100.0
}

/// Seconds of CPU the whole machine spent busy and idle so far (`/proc/stat`).
fn machine_cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let values: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    let at = |i: usize| values.get(i).copied().unwrap_or(0.0) / 100.0;
    // user nice system idle iowait irq softirq steal
    let idle = at(3) + at(4);
    let busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
    (busy, idle)
}

/// Where the machine's CPU went during one run.
#[derive(Clone, Copy)]
struct Cpu {
    server: f64,
    wrk: f64,
    busy: f64,
    idle: f64,
}

impl Cpu {
    /// `server` is the server's pid; None for Gatehouse, which is this process.
    fn now(server: Option<u32>) -> Self {
        let ((this, wrk), (busy, idle)) = (process_cpu_seconds(), machine_cpu_seconds());
        Self {
            server: server.map_or(this, pid_cpu_seconds),
            wrk,
            busy,
            idle,
        }
    }

    fn since(self, before: Self) -> Self {
        Self {
            server: self.server - before.server,
            wrk: self.wrk - before.wrk,
            busy: self.busy - before.busy,
            idle: self.idle - before.idle,
        }
    }
}

/// One wrk run.
pub struct Run<'a> {
    pub label: &'static str,
    pub url: &'a str,
    pub threads: u32,
    pub connections: u32,
    pub script: Option<&'a str>,
    /// The server's pid when it is not this process (the peer).
    pub server: Option<u32>,
}

impl<'a> Run<'a> {
    pub fn get(label: &'static str, url: &'a str, script: Option<&'a str>) -> Self {
        Self {
            label,
            url,
            threads: 2,
            connections: 32,
            script,
            server: None,
        }
    }

    /// The same run against the peer, process `pid`.
    pub fn on(self, pid: u32) -> Self {
        Self {
            server: Some(pid),
            ..self
        }
    }
}

/// What one run measured.
#[derive(Clone, Copy)]
pub struct Measured {
    pub label: &'static str,
    pub requests_per_sec: f64,
    /// The server's CPU seconds per request.
    pub server_cpu: f64,
    /// The share of the run the machine's cores were idle.
    pub idle: f64,
}

/// Runs each of `runs` (wrk pinned to `wrk_cpus` if given) and prints a line per run:
/// throughput, p99, and the machine's CPU per request split into the server, wrk and
/// the rest (PostgreSQL, Redis, the kernel's own threads), with the idle share.
pub fn measure(dir: &Path, runs: &[Run<'_>], wrk_cpus: Option<&str>) -> Vec<Measured> {
    println!(
        "{:<24} {:>11} {:>9}   CPU ms/request: {:>6} {:>6} {:>6}  {:>5}  errors",
        "endpoint", "requests/s", "p99", "server", "wrk", "rest", "idle"
    );
    let mut measured = Vec::new();
    for run in runs {
        let before = Cpu::now(run.server);
        let r = wrk(dir, run, wrk_cpus);
        let cpu = Cpu::now(run.server).since(before);
        let requests = (r.requests_per_sec * f64::from(SECONDS)).max(1.0);
        let per = |seconds: f64| 1000.0 * seconds / requests;
        let idle = cpu.idle / (cpu.busy + cpu.idle).max(f64::MIN_POSITIVE);
        println!(
            "{:<24} {:>11.0} {:>9}   {:>21.3} {:>6.3} {:>6.3}  {:>4.0}%  {}",
            run.label,
            r.requests_per_sec,
            r.p99,
            per(cpu.server),
            per(cpu.wrk),
            per((cpu.busy - cpu.server - cpu.wrk).max(0.0)),
            100.0 * idle,
            if r.errors.is_empty() {
                "none"
            } else {
                &r.errors
            }
        );
        measured.push(Measured {
            label: run.label,
            requests_per_sec: r.requests_per_sec,
            server_cpu: cpu.server / requests,
            idle,
        });
    }
    measured
}

struct WrkResult {
    requests_per_sec: f64,
    p99: String,
    errors: String,
}

fn wrk(dir: &Path, run: &Run<'_>, cpus: Option<&str>) -> WrkResult {
    let mut cmd = match cpus {
        Some(cpus) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", cpus, "wrk"]);
            cmd
        }
        None => Command::new("wrk"),
    };
    cmd.args([
        format!("-t{}", run.threads),
        format!("-c{}", run.connections),
        format!("-d{SECONDS}s"),
        "--latency".into(),
    ]);
    if let Some(script) = run.script {
        let path = dir.join(format!("{}.lua", run.label.replace(' ', "_")));
        std::fs::write(&path, script).unwrap();
        cmd.arg("-s").arg(path);
    }
    let out = cmd
        .arg(run.url)
        .output()
        .expect("wrk runs (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let requests_per_sec = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("wrk output without Requests/sec:\n{text}"));
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| v.trim().to_owned())
        .unwrap_or_default();
    let errors = text
        .lines()
        .filter(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ");
    WrkResult {
        requests_per_sec,
        p99,
        errors,
    }
}

/// A wrk script for client_credentials with HTTP Basic `basic`.
pub fn client_credentials_script(basic: &str) -> String {
    format!(
        "wrk.method = \"POST\"\nwrk.body = \"grant_type=client_credentials&scope=profile\"\n\
         wrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"\n\
         wrk.headers[\"Authorization\"] = \"Basic {basic}\"\n"
    )
}
