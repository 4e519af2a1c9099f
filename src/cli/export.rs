//! `gatehouse audit export`: the trail (or what `--since` leaves of it) on standard
//! output, through the admin service like the API's export, so the operator's read is
//! recorded (`admin.read`, ONC 170.315 (d)(2)).

use std::io::Write;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use gatehouse::{
    admin::service::audit::{self as service, ReportQuery},
    audit::ExportFormat,
    config::Config,
};

use super::{Operator, failed};

pub async fn run(config: Config, since: Option<DateTime<Utc>>, format: &str) -> Result<(), String> {
    let format: ExportFormat = format.parse().map_err(|e| format!("--format: {e}"))?;
    let op = Operator::open(config).await?;
    let query = ReportQuery {
        from: since.map(|t| t.to_rfc3339()),
        order: Some("asc".into()),
        ..ReportQuery::default()
    };
    let report = service::report(&op.state, &op.who, &query)
        .await
        .map_err(failed)?;
    let (_, chunks) = service::export(op.by(), report, format)
        .await
        .map_err(failed)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut chunks = std::pin::pin!(chunks);
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        out.write_all(&chunk)
            .map_err(|e| format!("cannot write the export: {e}"))?;
    }
    out.flush()
        .map_err(|e| format!("cannot write the export: {e}"))
}
