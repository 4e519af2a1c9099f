//! The JSON log line, written straight into the line's buffer: `timestamp`, `level`, the
//! event's fields in the order it gives them (`message` among them), then `target`.
//!
//! tracing-subscriber's own JSON format made a map of owned values for every line before
//! writing it: an allocation per field, on every request (the access log). This writes
//! each value as it is visited. Every string is escaped here, whoever sent it, so a value
//! cannot end its string or start a line.

use std::fmt::{self, Write};

use chrono::{Datelike, Timelike, Utc};
use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
    registry::LookupSpan,
};

/// The format (`log_format = "json"`).
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write_line(&mut writer, event)
    }
}

fn write_line(out: &mut dyn Write, event: &Event<'_>) -> fmt::Result {
    let meta = event.metadata();
    let now = Utc::now();
    write!(
        out,
        "{{\"timestamp\":\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z\",\"level\":\"{}\"",
        now.year(),
        now.month(),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.timestamp_subsec_micros(),
        meta.level()
    )?;
    let mut fields = Fields {
        out,
        result: Ok(()),
    };
    event.record(&mut fields);
    fields.result?;
    out.write_str(",\"target\":")?;
    string(out, meta.target())?;
    out.write_str("}\n")
}

/// Writes each field as `,"name":value`, keeping the first error.
struct Fields<'a> {
    out: &'a mut dyn Write,
    result: fmt::Result,
}

impl Fields<'_> {
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut dyn Write) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            self.out.write_char(',')?;
            string(self.out, field.name())?;
            self.out.write_char(':')?;
            value(self.out)
        })();
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, |out| string(out, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, |out| {
            out.write_char('"')?;
            write!(Escaped(out), "{value:?}")?;
            out.write_char('"')
        });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.field(field, |out| {
            out.write_char('"')?;
            write!(Escaped(out), "{value}")?;
            out.write_char('"')
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity.
        self.field(field, |out| match value.is_finite() {
            true => write!(out, "{value}"),
            false => out.write_str("null"),
        });
    }
}

/// `s` as a JSON string.
fn string(out: &mut dyn Write, s: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaped(out).write_str(s)?;
    out.write_char('"')
}

/// Writes what it is given as the inside of a JSON string (RFC 8259 §7).
struct Escaped<'a>(&'a mut dyn Write);

impl Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut plain = 0;
        for (i, b) in s.bytes().enumerate() {
            let escape = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f | 0x7f => "",
                _ => continue,
            };
            self.0.write_str(&s[plain..i])?;
            match escape {
                "" => write!(self.0, "\\u{b:04x}")?,
                _ => self.0.write_str(escape)?,
            }
            plain = i + 1;
        }
        self.0.write_str(&s[plain..])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use proptest::prelude::*;
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// Lines logged while `log` runs, each parsed as JSON.
    fn logged(log: impl FnOnce()) -> Vec<serde_json::Value> {
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        impl<'a> MakeWriter<'a> for Sink {
            type Writer = Sink;
            fn make_writer(&'a self) -> Sink {
                self.clone()
            }
        }
        let sink = Sink::default();
        let subscriber = tracing_subscriber::fmt()
            .event_format(JsonLines)
            .with_writer(sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let bytes = sink.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    #[test]
    fn a_line_has_the_shape_of_the_access_log() {
        let ip: Option<std::net::IpAddr> = Some([10, 0, 0, 1].into());
        let lines = logged(|| {
            tracing::info!(
                target: "gatehouse::access",
                method = %"GET",
                status = 200u16,
                latency_ms = 0.25,
                negative = -3i64,
                ok = true,
                nan = f64::NAN,
                client_ip = ?ip,
                "request"
            );
        });
        let line = &lines[0];
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "request");
        assert_eq!(line["method"], "GET");
        assert_eq!(line["status"], 200);
        assert_eq!(line["latency_ms"], 0.25);
        assert_eq!(line["negative"], -3);
        assert_eq!(line["ok"], true);
        assert!(line["nan"].is_null());
        assert_eq!(line["client_ip"], "Some(10.0.0.1)");
        assert_eq!(line["target"], "gatehouse::access");
        let at = line["timestamp"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");
    }

    #[test]
    fn an_error_is_written_as_its_message() {
        let e = std::io::Error::other("disk \"full\"\n");
        let lines = logged(|| tracing::warn!(error = &e as &dyn std::error::Error, "x"));
        assert_eq!(lines[0]["error"], "disk \"full\"\n");
    }

    proptest! {
        /// Whatever a field holds, the line is one line of JSON and says it back.
        #[test]
        fn any_value_stays_inside_its_string(value in any::<String>()) {
            let lines = logged(|| {
                tracing::info!(as_str = value.as_str(), as_display = %value, as_debug = ?value, "{value}");
            });
            prop_assert_eq!(lines.len(), 1);
            prop_assert_eq!(&lines[0]["as_str"], &serde_json::json!(value));
            prop_assert_eq!(&lines[0]["as_display"], &serde_json::json!(value));
            prop_assert_eq!(&lines[0]["as_debug"], &serde_json::json!(format!("{value:?}")));
            prop_assert_eq!(&lines[0]["message"], &serde_json::json!(value));
        }
    }
}
