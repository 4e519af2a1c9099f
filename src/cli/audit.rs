//! `gatehouse audit`: check, export and prune the trail (DESIGN §11).

use std::{process::ExitCode, sync::Arc};

use chrono::{DateTime, Utc};
use clap::Subcommand;
use gatehouse::{clock::SystemClock, config::Config, startup};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain. Exit status 0: intact; 1: the first problem is named;
    /// 2: the trail could not be checked.
    Verify {
        #[arg(long)]
        json: bool,
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
        /// Prune before this time (RFC 3339) instead of the retention period.
        #[arg(long, value_parser = parse_time)]
        older_than: Option<DateTime<Utc>>,
    },
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("expected an RFC 3339 time such as 2026-11-01T00:00:00Z: {e}"))
}

pub async fn run(config: Config, command: AuditCommand) -> Result<ExitCode, String> {
    let retention_days = config.audit_retention_days;
    let opened = startup::open_audit(&config, Arc::new(SystemClock)).await;
    match command {
        AuditCommand::Verify { json } => {
            // 1 is reserved for "the chain is broken", so a script can tell tampering
            // from a database that could not be reached.
            let report = match opened {
                Ok(audit) => audit.verify().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let report = match report {
                Ok(report) => report,
                Err(e) => {
                    eprintln!("gatehouse: cannot verify the audit trail: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            if json {
                let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
                println!("{text}");
            } else {
                println!("{report}");
            }
            Ok(if report.intact {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        AuditCommand::Export { since } => {
            let audit = opened.map_err(|e| e.to_string())?;
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
            let cutoff = match older_than {
                Some(t) => t,
                None => Utc::now() - chrono::Duration::days(i64::from(retention_days)),
            };
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
