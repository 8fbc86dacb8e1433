//! The server's log: tracing-subscriber's `fmt` output (human or JSON) to stderr through a
//! writer thread ([`crate::log_sink`]).
//!
//! In the human format, the fields and the timestamp are written by the two small formatters
//! below rather than tracing-subscriber's defaults. Every request writes a log line, and
//! callgrind on `GET /Users/{id}` counted about 15,000 instructions per request in the default
//! formatters, a tenth of the request: each field went through `nu_ansi_term` styling (even
//! with colours off) and `Debug`, and the time through `Display` of a date. The line is the
//! same text: `name=value` pairs separated by spaces, strings quoted, `%`-fields as they
//! display, and the message bare.

use std::fmt;

use muster_core::clock::{Clock, SystemClock, RFC3339_MAX};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

/// Logs to stderr through a writer thread: a request's log line is formatted on its own thread
/// and handed over, so no request waits for a `write` to the terminal, file or pipe behind
/// stderr; the writer thread writes what has gathered in one go. Colours only on a terminal.
/// The guard writes what is waiting when `main` returns.
pub fn init(cfg: &Config) -> std::io::Result<crate::log_sink::SinkGuard> {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_new(&cfg.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let (writer, guard) = crate::log_sink::spawn(std::io::stderr())?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    match cfg.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
        LogFormat::Human => builder
            .fmt_fields(Fields)
            .event_format(Line::default())
            .init(),
    }
    Ok(guard)
}

/// The time of a log line: RFC 3339 in UTC with microseconds, as tracing-subscriber writes it.
#[derive(Debug, Clone, Copy)]
pub struct UtcMicros;

impl FormatTime for UtcMicros {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let mut buf = [0u8; RFC3339_MAX];
        w.write_str(SystemClock.now().write_rfc3339(6, &mut buf))
    }
}

/// A line of the human format: the text tracing-subscriber's `Full` format writes without
/// colours (time, level, the spans with their fields, target, the event's fields), written
/// piece by piece. Its own writes each went through `write!` (six per line, about 2,500 of a
/// GET's 97,000 instructions under callgrind). On a terminal (colours) and for events that
/// came through the `log` crate, the line is tracing-subscriber's own.
#[derive(Debug)]
pub struct Line {
    theirs: Format<Full, UtcMicros>,
}

impl Default for Line {
    fn default() -> Self {
        Line {
            theirs: Format::default().with_timer(UtcMicros),
        }
    }
}

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        if w.has_ansi_escapes() || meta.fields().field("log.target").is_some() {
            return self.theirs.format_event(ctx, w, event);
        }
        UtcMicros.format_time(&mut w)?;
        w.write_str(match *meta.level() {
            Level::TRACE => " TRACE ",
            Level::DEBUG => " DEBUG ",
            Level::INFO => "  INFO ",
            Level::WARN => "  WARN ",
            Level::ERROR => " ERROR ",
        })?;
        if let Some(scope) = ctx.event_scope() {
            let mut seen = false;
            for span in scope.from_root() {
                w.write_str(span.metadata().name())?;
                seen = true;
                if let Some(fields) = span.extensions().get::<FormattedFields<N>>() {
                    if !fields.is_empty() {
                        w.write_char('{')?;
                        w.write_str(fields)?;
                        w.write_char('}')?;
                    }
                }
                w.write_char(':')?;
            }
            if seen {
                w.write_char(' ')?;
            }
        }
        w.write_str(meta.target())?;
        w.write_str(": ")?;
        ctx.format_fields(w.by_ref(), event)?;
        w.write_char('\n')
    }
}

/// A line's fields: `name=value`, separated by spaces; the message bare, first.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fields;

impl<'writer> FormatFields<'writer> for Fields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut v = Visitor {
            w: writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result
    }
}

struct Visitor<'w> {
    w: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl Visitor<'_> {
    /// Writes the separator and `name=` (nothing for the message), then the value.
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        // Fields the `log` crate's records carry, as tracing-subscriber skips them.
        if name.starts_with("log.") {
            return;
        }
        self.result = (|| {
            if !self.first {
                self.w.write_char(' ')?;
            }
            self.first = false;
            if name != "message" {
                self.w.write_str(name.strip_prefix("r#").unwrap_or(name))?;
                self.w.write_char('=')?;
            }
            value(&mut self.w)
        })();
    }
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.field(field, |w| w.write_str(value));
        } else {
            self.field(field, |w| write!(w, "{value:?}"));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |w| write!(w, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, |w| write!(w, "{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use muster_core::clock::Timestamp;
    use tracing_subscriber::fmt::MakeWriter;

    /// A writer into a shared buffer, to read what a subscriber wrote.
    #[derive(Clone, Default)]
    struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    fn line(fields: Option<Fields>, f: impl FnOnce()) -> String {
        let buf = Buf::default();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .with_writer(buf.clone());
        match fields {
            Some(fields) => {
                tracing::subscriber::with_default(builder.fmt_fields(fields).finish(), f)
            }
            None => tracing::subscriber::with_default(builder.finish(), f),
        }
        let out = buf.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The lines `f` logs at every level, as the server writes them (`ours`: [`Line`] and
    /// [`Fields`]) or with tracing-subscriber's defaults and the same clock.
    fn full_lines(ours: bool, f: impl Fn()) -> String {
        let buf = Buf::default();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(Level::TRACE)
            .with_writer(buf.clone());
        if ours {
            let s = builder.fmt_fields(Fields).event_format(Line::default());
            tracing::subscriber::with_default(s.finish(), f)
        } else {
            tracing::subscriber::with_default(builder.with_timer(UtcMicros).finish(), f)
        }
        let out = buf.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Everything after the time of each line.
    fn without_times(lines: &str) -> Vec<String> {
        lines
            .lines()
            .map(|l| {
                l.split_once(' ')
                    .map(|(_, rest)| rest)
                    .unwrap_or(l)
                    .to_string()
            })
            .collect()
    }

    fn every_level() {
        tracing::trace!(a = 1, "t");
        tracing::debug!("d");
        tracing::info!(b = "x", "i");
        tracing::warn!("w");
        tracing::error!(error = %"boom", "e");
        request_line();
        tracing::info_span!("outer")
            .in_scope(|| tracing::info_span!("inner", n = 2).in_scope(|| tracing::info!("nested")));
    }

    #[test]
    fn lines_are_written_as_tracing_subscriber_writes_them() {
        let ours = full_lines(true, every_level);
        let theirs = full_lines(false, every_level);
        assert_eq!(without_times(&ours), without_times(&theirs), "{ours}");
        assert_eq!(ours.lines().count(), 7, "{ours}");
        for l in ours.lines() {
            let time = l.split(' ').next().unwrap_or_default();
            assert_eq!(time.len(), 27, "{l}");
        }
        assert!(
            ours.contains(" outer:inner{n=2}: muster::logging::tests: nested\n"),
            "{ours}"
        );
        assert!(
            ours.contains(" ERROR muster::logging::tests: e error=boom\n"),
            "{ours}"
        );
    }

    fn request_line() {
        let span = tracing::info_span!("request", request_id = %"abc", method = %"GET", path = %"/x y", provider = tracing::field::Empty);
        span.record("provider", tracing::field::display("p1"));
        span.in_scope(|| {
            tracing::info!(
                status = 200u16,
                elapsed_ms = 0.25,
                scim_type = Some("invalidValue"),
                ok = true,
                delta = -3i64,
                name = "quoted",
                "request"
            );
        });
    }

    #[test]
    fn fields_are_written_as_tracing_subscriber_writes_them() {
        let ours = line(Some(Fields), request_line);
        let theirs = line(None, request_line);
        assert_eq!(ours, theirs);
        assert!(ours.contains(
            "request{request_id=abc method=GET path=/x y provider=p1}: muster::logging::tests: request status=200 elapsed_ms=0.25 scim_type=\"invalidValue\" ok=true delta=-3 name=\"quoted\""
        ), "{ours}");
    }

    #[test]
    fn the_time_is_rfc3339_utc_with_microseconds() {
        let mut s = String::new();
        let before = SystemClock.now();
        UtcMicros.format_time(&mut Writer::new(&mut s)).ok();
        let after = SystemClock.now();
        assert_eq!(s.len(), 27, "{s}");
        assert!(s.ends_with('Z') && s.as_bytes()[10] == b'T', "{s}");
        let t = Timestamp::parse_rfc3339(&s).map(|t| t.0).unwrap_or(0);
        assert!(before.0 <= t && t <= after.0, "{s}");
    }
}
