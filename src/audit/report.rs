//! Audit reports (ONC 170.315 (d)(3)): the events a filter selects, in either order, a
//! page at a time, and exported as JSON lines or CSV without holding the trail in memory.

use std::{fmt, str::FromStr};

use futures_util::{Stream, stream};

use super::{
    Audit, AuditError, AuditFilter, AuditRecord, MAX_QUERY_LIMIT, PAGE, event,
    ledger::{self, Slice},
};

/// Which end of the trail a report starts from (events are ordered by seq, which is
/// the order they were appended in).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    #[default]
    Newest,
    Oldest,
}

impl Order {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Newest => "desc",
            Self::Oldest => "asc",
        }
    }
}

impl FromStr for Order {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "desc" => Ok(Self::Newest),
            "asc" => Ok(Self::Oldest),
            _ => Err("expected \"asc\" (oldest first) or \"desc\" (newest first)".into()),
        }
    }
}

/// A column other than time that a report can be sorted by (within one value, newest
/// first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortColumn {
    /// The event type's name.
    Type,
    /// `failure` before `success`, ascending.
    Outcome,
}

/// How an export writes events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON object a line, as `gatehouse audit export` writes them.
    JsonLines,
    /// RFC 4180, one header line, for spreadsheets.
    Csv,
}

impl ExportFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::JsonLines => "jsonl",
            Self::Csv => "csv",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::JsonLines => "application/jsonl",
            Self::Csv => "text/csv; charset=utf-8",
        }
    }
}

impl fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ExportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "jsonl" => Ok(Self::JsonLines),
            "csv" => Ok(Self::Csv),
            _ => Err("expected \"jsonl\" or \"csv\"".into()),
        }
    }
}

/// What an export will write: how many events, up to which seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selection {
    pub rows: i64,
    /// The head when the export was asked for: events appended later (the export's
    /// own audit event among them) are not part of it.
    pub upto: i64,
}

impl Audit {
    /// Events matching `filter` in `order`, at most `limit` (clamped to
    /// 1..=[`MAX_QUERY_LIMIT`]); pass the last seq of one page as `cursor` for the next.
    pub async fn report(
        &self,
        filter: AuditFilter,
        order: Order,
        limit: i64,
        cursor: Option<i64>,
    ) -> Result<Vec<AuditRecord>, AuditError> {
        let limit = limit.clamp(1, MAX_QUERY_LIMIT);
        let filter = to_micros(filter);
        let slice = Slice {
            order,
            cursor,
            upto: None,
        };
        let rows = self
            .store
            .run(move |c| ledger::search(c, &filter, limit, slice))
            .await?;
        Ok(rows.into_iter().map(AuditRecord::from).collect())
    }

    /// Events matching `filter` by `column` (ascending or not), at most `limit`
    /// (clamped to 1..=[`MAX_QUERY_LIMIT`]) after the first `offset`.
    pub async fn report_by(
        &self,
        filter: AuditFilter,
        column: SortColumn,
        ascending: bool,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, AuditError> {
        let limit = limit.clamp(1, MAX_QUERY_LIMIT);
        let offset = offset.max(0);
        let filter = to_micros(filter);
        let rows = self
            .store
            .run(move |c| ledger::search_by(c, &filter, column, ascending, offset, limit))
            .await?;
        Ok(rows.into_iter().map(AuditRecord::from).collect())
    }

    /// How many events match `filter` now, and the head they end at.
    pub async fn select(&self, filter: AuditFilter) -> Result<Selection, AuditError> {
        let filter = to_micros(filter);
        let selection = self
            .store
            .run(move |c| {
                let upto = ledger::head(c)?.map_or(0, |(seq, _)| seq);
                let rows = ledger::count(c, &filter, upto)?;
                Ok(Selection { rows, upto })
            })
            .await?;
        Ok(selection)
    }

    /// The events of `selection` matching `filter`, in `order` and `format`, as chunks
    /// of text (the CSV header first), one database page per chunk.
    pub fn export_stream(
        &self,
        filter: AuditFilter,
        order: Order,
        selection: Selection,
        format: ExportFormat,
    ) -> impl Stream<Item = Result<Vec<u8>, AuditError>> + 'static {
        let start = Export {
            audit: self.clone(),
            filter: to_micros(filter),
            order,
            upto: selection.upto,
            format,
            cursor: None,
            header: format == ExportFormat::Csv,
            done: false,
        };
        stream::unfold(start, |mut export| async move {
            if export.done {
                return None;
            }
            let chunk = export.next_chunk().await;
            if chunk.is_err() {
                export.done = true;
            }
            Some((chunk, export))
        })
    }
}

/// Where a streaming export has got to.
struct Export {
    audit: Audit,
    filter: AuditFilter,
    order: Order,
    upto: i64,
    format: ExportFormat,
    cursor: Option<i64>,
    header: bool,
    done: bool,
}

impl Export {
    async fn next_chunk(&mut self) -> Result<Vec<u8>, AuditError> {
        let mut out = Vec::new();
        if std::mem::take(&mut self.header) {
            out.extend_from_slice(CSV_HEADER.as_bytes());
        }
        let (filter, limit) = (self.filter.clone(), PAGE);
        let slice = Slice {
            order: self.order,
            cursor: self.cursor,
            upto: Some(self.upto),
        };
        let rows = self
            .audit
            .store
            .run(move |c| ledger::search(c, &filter, limit, slice))
            .await?;
        if i64::try_from(rows.len()).unwrap_or(i64::MAX) < limit {
            self.done = true;
        }
        self.cursor = rows.last().map(|r| r.seq).or(self.cursor);
        for row in rows {
            let record = AuditRecord::from(row);
            match self.format {
                ExportFormat::JsonLines => {
                    let line = serde_json::to_string(&record)
                        .map_err(|e| std::io::Error::other(e.to_string()))?;
                    out.extend_from_slice(line.as_bytes());
                    out.push(b'\n');
                }
                ExportFormat::Csv => out.extend_from_slice(csv_row(&record).as_bytes()),
            }
        }
        Ok(out)
    }
}

fn to_micros(mut filter: AuditFilter) -> AuditFilter {
    filter.from = filter.from.map(event::to_micros);
    filter.to = filter.to.map(event::to_micros);
    filter
}

/// The CSV columns: the stored fields, with the names the writer put beside the ids.
pub const CSV_HEADER: &str = "seq,time,type,outcome,org_id,org_name,actor,actor_username,\
subject,subject_username,client_ip,user_agent,request_id,details,id,prev_hash,hash\r\n";

/// One event as a CSV record (RFC 4180: CRLF line end, quoted where needed).
pub fn csv_row(r: &AuditRecord) -> String {
    let name = |key: &str| r.details.get(key).and_then(|v| v.as_str()).unwrap_or("");
    let details = match &r.details {
        serde_json::Value::Object(m) if m.is_empty() => String::new(),
        other => event::canonical_json(other),
    };
    let time = r.time.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let seq = r.seq.to_string();
    let cells: [&str; 17] = [
        &seq,
        &time,
        &r.event_type,
        &r.outcome,
        r.org_id.as_deref().unwrap_or(""),
        name(super::names::ORG_NAME),
        r.actor.as_deref().unwrap_or(""),
        name(super::names::ACTOR_USERNAME),
        r.subject.as_deref().unwrap_or(""),
        name(super::names::SUBJECT_USERNAME),
        r.client_ip.as_deref().unwrap_or(""),
        r.user_agent.as_deref().unwrap_or(""),
        r.request_id.as_deref().unwrap_or(""),
        &details,
        &r.id,
        &r.prev_hash,
        &r.hash,
    ];
    let mut line = String::new();
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        line.push_str(&csv_cell(cell));
    }
    line.push_str("\r\n");
    line
}

/// One CSV cell. A cell a spreadsheet would take for a formula (starting with `=`, `+`,
/// `-`, `@`, a tab or a carriage return: a user agent or a typed username can) gets a
/// leading `'` (OWASP, CSV injection); then RFC 4180 quoting where the text needs it.
pub fn csv_cell(text: &str) -> String {
    let neutral = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if neutral.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", neutral.replace('"', "\"\""))
    } else {
        neutral
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_as_rfc_4180_says() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell(""), "");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn csv_cells_that_a_spreadsheet_would_run_are_neutralised() {
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("+1"), "'+1");
        assert_eq!(csv_cell("-2+3"), "'-2+3");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("\tx"), "'\tx");
        assert_eq!(csv_cell("\rx"), "\"'\rx\"");
        assert_eq!(csv_cell("a=b"), "a=b");
    }

    #[test]
    fn orders_and_formats_parse_and_refuse_others() {
        assert_eq!("asc".parse::<Order>().unwrap(), Order::Oldest);
        assert_eq!("desc".parse::<Order>().unwrap(), Order::Newest);
        assert!("up".parse::<Order>().is_err());
        assert_eq!("csv".parse::<ExportFormat>().unwrap(), ExportFormat::Csv);
        assert_eq!(
            "jsonl".parse::<ExportFormat>().unwrap(),
            ExportFormat::JsonLines
        );
        assert!("xlsx".parse::<ExportFormat>().is_err());
    }

    #[test]
    fn the_header_has_a_column_for_every_cell() {
        let record = AuditRecord {
            seq: 3,
            id: "id".into(),
            time: chrono::Utc::now(),
            org_id: None,
            actor: None,
            subject: None,
            event_type: "admin.read".into(),
            outcome: "success".into(),
            client_ip: None,
            user_agent: Some("a,b".into()),
            request_id: None,
            details: serde_json::json!({}),
            prev_hash: "p".into(),
            hash: "h".into(),
        };
        let row = csv_row(&record);
        assert_eq!(
            CSV_HEADER.split(',').count(),
            row.split(',').count() - 1,
            "{row}"
        );
        assert!(row.ends_with("\r\n") && CSV_HEADER.ends_with("\r\n"));
    }
}
