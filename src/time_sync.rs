//! Whether the system clock is synchronised (45 CFR 170.210(g): audit timestamps must
//! come from a clock synchronised to NTP). Shown in `/readyz` and as the gauge
//! `gatehouse_clock_synchronized` (1 synchronised, 0 not, -1 unknown); never a reason
//! to be unready.
//!
//! The kernel knows (`adjtimex` status `STA_UNSYNC`), but no maintained crate reads it
//! without `unsafe` (which this crate forbids), so the answer comes from what the
//! operating system says about it, first that answers:
//!
//! 1. `timedatectl show -p NTPSynchronized --value`: systemd-timedated reads the
//!    kernel's flag itself, whichever NTP daemon keeps the clock (yes/no);
//! 2. chrony's `chronyc -n tracking` (its "Leap status" line);
//! 3. systemd-timesyncd's `/run/systemd/timesync/synchronized`, touched on each
//!    successful synchronisation (stale: the daemon has stopped synchronising).
//!
//! None of them: **unknown**, never "synchronised" (a container usually cannot see
//! the host's clock discipline; check it on the host).

use std::{
    io::Read,
    path::PathBuf,
    process::{Command, Stdio},
    sync::RwLock,
    time::{Duration, Instant, SystemTime},
};

use prometheus::{IntGauge, Opts};
use serde::Serialize;

/// What the OS says about the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockSync {
    Synchronized,
    Unsynchronized,
    Unknown,
}

impl ClockSync {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Synchronized => "synchronized",
            Self::Unsynchronized => "unsynchronized",
            Self::Unknown => "unknown",
        }
    }

    /// The gauge's value.
    fn gauge(self) -> i64 {
        match self {
            Self::Synchronized => 1,
            Self::Unsynchronized => 0,
            Self::Unknown => -1,
        }
    }
}

/// The answer and who gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ClockStatus {
    pub sync: ClockSync,
    /// `timedatectl`, `chronyc` or `timesyncd`; `None` when nobody answered.
    pub source: Option<&'static str>,
}

impl ClockStatus {
    pub const UNKNOWN: Self = Self {
        sync: ClockSync::Unknown,
        source: None,
    };
}

/// Longest a probe command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// systemd-timesyncd polls at most every 2048 s by default; a file older than twice
/// that means it has stopped synchronising.
const TIMESYNCD_FRESH: Duration = Duration::from_secs(2 * 2048);

/// Where the answers are looked for (tests point these elsewhere).
#[derive(Debug, Clone)]
pub struct Probe {
    pub timedatectl: PathBuf,
    pub chronyc: PathBuf,
    pub timesyncd_file: PathBuf,
}

impl Default for Probe {
    fn default() -> Self {
        Self {
            timedatectl: "timedatectl".into(),
            chronyc: "chronyc".into(),
            timesyncd_file: "/run/systemd/timesync/synchronized".into(),
        }
    }
}

impl Probe {
    /// Asks each source in turn (blocking: runs commands, bounded by a timeout each).
    pub fn check(&self) -> ClockStatus {
        let answered = |sync, source| ClockStatus {
            sync,
            source: Some(source),
        };
        if let Some(sync) = run(
            &self.timedatectl,
            &["show", "-p", "NTPSynchronized", "--value"],
        )
        .as_deref()
        .and_then(from_timedatectl)
        {
            return answered(sync, "timedatectl");
        }
        if let Some(sync) = run(&self.chronyc, &["-n", "tracking"])
            .as_deref()
            .and_then(from_chronyc)
        {
            return answered(sync, "chronyc");
        }
        let modified = std::fs::metadata(&self.timesyncd_file)
            .and_then(|m| m.modified())
            .ok();
        if let Some(sync) = from_timesyncd(modified, SystemTime::now()) {
            return answered(sync, "timesyncd");
        }
        ClockStatus::UNKNOWN
    }
}

/// `NTPSynchronized` as timedatectl prints it.
fn from_timedatectl(out: &str) -> Option<ClockSync> {
    match out.trim() {
        "yes" => Some(ClockSync::Synchronized),
        "no" => Some(ClockSync::Unsynchronized),
        _ => None,
    }
}

/// chrony's "Leap status" line: `Normal`, `Insert second` and `Delete second` mean
/// synchronised, `Not synchronised` means not.
fn from_chronyc(out: &str) -> Option<ClockSync> {
    let status = out.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name.trim() == "Leap status").then(|| value.trim())
    })?;
    match status {
        "Not synchronised" => Some(ClockSync::Unsynchronized),
        "Normal" | "Insert second" | "Delete second" => Some(ClockSync::Synchronized),
        _ => None,
    }
}

/// From the time systemd-timesyncd last touched its file (`None`: no file).
fn from_timesyncd(modified: Option<SystemTime>, now: SystemTime) -> Option<ClockSync> {
    let age = now.duration_since(modified?).unwrap_or_default();
    Some(if age <= TIMESYNCD_FRESH {
        ClockSync::Synchronized
    } else {
        ClockSync::Unsynchronized
    })
}

/// The command's standard output if it ran in time and succeeded.
fn run(program: &PathBuf, args: &[&str]) -> Option<String> {
    let mut child = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    };
    if !status.success() {
        return None;
    }
    let mut out = String::new();
    child
        .stdout
        .take()?
        .take(64 * 1024)
        .read_to_string(&mut out)
        .ok()?;
    Some(out)
}

/// The last answer, refreshed in the background, and its gauge.
pub struct TimeSync {
    probe: Probe,
    status: RwLock<ClockStatus>,
    gauge: IntGauge,
}

impl std::fmt::Debug for TimeSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeSync")
            .field("status", &self.current())
            .finish_non_exhaustive()
    }
}

impl TimeSync {
    /// Unknown until the first [`TimeSync::refresh`]; registers the gauge.
    pub fn new(probe: Probe, metrics: &crate::telemetry::Metrics) -> Self {
        let gauge = IntGauge::with_opts(Opts::new(
            "clock_synchronized",
            "System clock synchronised to NTP: 1 yes, 0 no, -1 unknown",
        ))
        .expect("static metric definition");
        gauge.set(ClockSync::Unknown.gauge());
        metrics.register(Box::new(gauge.clone()));
        Self {
            probe,
            status: RwLock::new(ClockStatus::UNKNOWN),
            gauge,
        }
    }

    pub fn current(&self) -> ClockStatus {
        *self.status.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks the OS again (off the async workers).
    pub async fn refresh(&self) -> ClockStatus {
        let probe = self.probe.clone();
        let status = tokio::task::spawn_blocking(move || probe.check())
            .await
            .unwrap_or(ClockStatus::UNKNOWN);
        if status.sync != self.current().sync {
            match status.sync {
                ClockSync::Unsynchronized => {
                    tracing::warn!(source = ?status.source, "the system clock is not synchronised (NTP is required: 45 CFR 170.210(g))");
                }
                _ => {
                    tracing::info!(clock = status.sync.as_str(), source = ?status.source, "system clock synchronisation")
                }
            }
        }
        *self.status.write().unwrap_or_else(|p| p.into_inner()) = status;
        self.gauge.set(status.sync.gauge());
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timedatectl_says_yes_or_no_and_anything_else_is_no_answer() {
        assert_eq!(from_timedatectl("yes\n"), Some(ClockSync::Synchronized));
        assert_eq!(from_timedatectl("no\n"), Some(ClockSync::Unsynchronized));
        assert_eq!(from_timedatectl(""), None);
        assert_eq!(from_timedatectl("Failed to connect to bus"), None);
    }

    #[test]
    fn chrony_leap_status_decides() {
        let tracking = |leap: &str| {
            format!(
                "Reference ID    : C0A80001 (192.168.0.1)\nStratum         : 3\n\
                 System time     : 0.000001 seconds fast of NTP time\nLeap status     : {leap}\n"
            )
        };
        assert_eq!(
            from_chronyc(&tracking("Normal")),
            Some(ClockSync::Synchronized)
        );
        assert_eq!(
            from_chronyc(&tracking("Insert second")),
            Some(ClockSync::Synchronized)
        );
        assert_eq!(
            from_chronyc(&tracking("Not synchronised")),
            Some(ClockSync::Unsynchronized)
        );
        assert_eq!(from_chronyc(&tracking("Something new")), None);
        assert_eq!(from_chronyc("506 Cannot talk to daemon"), None);
    }

    #[test]
    fn a_stale_timesyncd_file_is_not_synchronised_and_no_file_is_no_answer() {
        let now = SystemTime::now();
        assert_eq!(from_timesyncd(None, now), None);
        assert_eq!(
            from_timesyncd(Some(now - Duration::from_secs(60)), now),
            Some(ClockSync::Synchronized)
        );
        assert_eq!(
            from_timesyncd(Some(now - Duration::from_secs(3 * 3600)), now),
            Some(ClockSync::Unsynchronized)
        );
    }

    fn nowhere(dir: &std::path::Path) -> Probe {
        Probe {
            timedatectl: dir.join("no-timedatectl"),
            chronyc: dir.join("no-chronyc"),
            timesyncd_file: dir.join("no-file"),
        }
    }

    #[test]
    fn when_no_source_answers_the_clock_is_unknown_never_synchronised() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(nowhere(dir.path()).check(), ClockStatus::UNKNOWN);
    }

    #[cfg(unix)]
    #[test]
    fn the_first_source_that_answers_wins() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = |name: &str, body: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path
        };
        let mut probe = nowhere(dir.path());
        std::fs::write(&probe.timesyncd_file, b"").unwrap();
        assert_eq!(
            probe.check(),
            ClockStatus {
                sync: ClockSync::Synchronized,
                source: Some("timesyncd")
            }
        );
        probe.chronyc = script("chronyc", "echo 'Leap status     : Not synchronised'");
        assert_eq!(probe.check().source, Some("chronyc"));
        assert_eq!(probe.check().sync, ClockSync::Unsynchronized);
        // A failing timedatectl (no systemd) is no answer: the next source decides.
        probe.timedatectl = script("timedatectl", "echo yes; exit 1");
        assert_eq!(probe.check().source, Some("chronyc"));
        probe.timedatectl = script("timedatectl", "echo no");
        assert_eq!(
            probe.check(),
            ClockStatus {
                sync: ClockSync::Unsynchronized,
                source: Some("timedatectl")
            }
        );
    }
}
