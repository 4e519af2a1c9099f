//! `gatehouse audit`: check, export and prune the trail (DESIGN §11).

use std::{process::ExitCode, sync::Arc};

use chrono::{DateTime, Utc};
use clap::Subcommand;
use gatehouse::{
    admin::service::CLI_ACTOR_PREFIX,
    audit::{AuditEvent, EventType, Outcome},
    clock::SystemClock,
    config::Config,
    startup,
};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain. Exit status 0: intact; 1: the first problem is named;
    /// 2: the trail could not be checked.
    Verify {
        #[arg(long)]
        json: bool,
        /// Also check the database against this file of anchors (`audit_anchor_file`):
        /// each line's MAC, and that every anchored event is still there.
        #[arg(long, value_name = "FILE")]
        anchor: Option<std::path::PathBuf>,
    },
    /// Write events as JSON lines to standard output, oldest first.
    Export {
        /// Only events at or after this time (RFC 3339, e.g. 2026-11-01T00:00:00Z).
        #[arg(long, value_parser = parse_time)]
        since: Option<DateTime<Utc>>,
    },
    /// Delete events older than the retention period (`audit_retention_days`), leaving
    /// a signed checkpoint so the rest still verifies.
    Prune {
        /// Prune before this time (RFC 3339) instead of the retention period; refused
        /// when it is newer than now − `audit_retention_days`.
        #[arg(long, alias = "before", value_parser = parse_time)]
        older_than: Option<DateTime<Utc>>,
    },
}

/// The chain's report and, given an anchor file, the anchors'.
async fn verify(
    audit: &gatehouse::audit::Audit,
    anchor_file: Option<&std::path::Path>,
) -> Result<
    (
        gatehouse::audit::VerifyReport,
        Option<gatehouse::audit::AnchorReport>,
    ),
    String,
> {
    let anchors = match anchor_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the anchor file {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let report = audit.verify().await.map_err(|e| e.to_string())?;
    let anchors = match anchors {
        Some(text) => Some(
            audit
                .verify_anchors(&text)
                .await
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    Ok((report, anchors))
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("expected an RFC 3339 time such as 2026-11-01T00:00:00Z: {e}"))
}

pub async fn run(config: Config, command: AuditCommand) -> Result<ExitCode, String> {
    let opened = startup::open_audit(&config, Arc::new(SystemClock)).await;
    match command {
        AuditCommand::Verify { json, anchor } => {
            // 1 is reserved for "the chain is broken", so a script can tell tampering
            // from a database that could not be reached.
            let checked = match opened {
                Ok(audit) => verify(&audit, anchor.as_deref()).await,
                Err(e) => Err(e.to_string()),
            };
            let (report, anchors) = match checked {
                Ok(checked) => checked,
                Err(e) => {
                    eprintln!("gatehouse: cannot verify the audit trail: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            let intact = report.intact && anchors.as_ref().is_none_or(|a| a.intact);
            let text = match (&anchors, json) {
                (None, true) => serde_json::to_string_pretty(&report),
                (Some(anchors), true) => serde_json::to_string_pretty(
                    &serde_json::json!({ "chain": report, "anchors": anchors }),
                ),
                (None, false) => Ok(report.to_string()),
                (Some(anchors), false) => Ok(format!("{report}\n{anchors}")),
            }
            .map_err(|e| e.to_string())?;
            println!("{text}");
            Ok(if intact {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        AuditCommand::Export { since } => {
            let audit = opened.map_err(|e| e.to_string())?;
            // ONC 170.315 (d)(2): an export is a read of the trail, recorded (before the
            // first line leaves, and so in the export itself) with the person at the
            // terminal, as the API's and the console's are.
            let asked = since.map_or(serde_json::Value::Null, |t| t.to_rfc3339().into());
            let event = AuditEvent::new(EventType::AdminRead, Outcome::Success)
                .actor(format!("{CLI_ACTOR_PREFIX}{}", super::actor::person()))
                .detail("object", "audit_export")
                .detail("filter", serde_json::json!({ "since": asked }))
                .detail("format", "jsonl");
            audit.record(event).await.map_err(|e| e.to_string())?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            audit
                .export(since, &mut out)
                .await
                .map_err(|e| e.to_string())?;
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Prune { older_than } => {
            let audit = opened.map_err(|e| e.to_string())?;
            let cutoff = older_than.unwrap_or_else(|| audit.latest_prune_cutoff());
            match audit.prune(cutoff).await.map_err(|e| e.to_string())? {
                Some(cp) => println!(
                    "pruned {} events before {}; the chain now resumes after seq {}",
                    cp.pruned_events,
                    cp.pruned_before.to_rfc3339(),
                    cp.last_seq
                ),
                None => println!("nothing older than {} to prune", cutoff.to_rfc3339()),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
