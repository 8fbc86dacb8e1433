//! The server's log: tracing-subscriber's `fmt` output (human or JSON) to stderr through a
//! writer thread ([`crate::log_sink`]).
//!
//! A line logged while a request runs is headed by the request, as a span named `request` would
//! head it: `request{request_id=… method=… path=… provider=…}:` in the human format, the root of
//! `span`/`spans` in JSON. The request is a task-local
//! ([`muster_web::request_log::CurrentRequest`]), not a span: see there why.
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
use muster_web::request_log::CurrentRequest;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{Format, Full, Json, Writer};
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
        LogFormat::Json => builder.json().event_format(JsonLine::default()).init(),
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

/// A line of the human format: the text tracing-subscriber's `Full` format writes (time, level,
/// the request and the spans with their fields, target, the event's fields), written piece by
/// piece. Its own writes each went through `write!` (six per line, about 2,500 of a GET's
/// 97,000 instructions under callgrind). On a terminal, the time and target are dimmed, the
/// level coloured and span names bold, as tracing-subscriber does. For events that came through
/// the `log` crate, the line is tracing-subscriber's own.
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
        if meta.fields().field("log.target").is_some() {
            return self.theirs.format_event(ctx, w, event);
        }
        let ansi = w.has_ansi_escapes();
        let mut time = [0u8; RFC3339_MAX];
        paint(
            &mut w,
            ansi,
            DIM,
            SystemClock.now().write_rfc3339(6, &mut time),
        )?;
        let (level, colour) = match *meta.level() {
            Level::TRACE => ("TRACE", "\x1b[35m"),
            Level::DEBUG => ("DEBUG", "\x1b[34m"),
            Level::INFO => (" INFO", "\x1b[32m"),
            Level::WARN => (" WARN", "\x1b[33m"),
            Level::ERROR => ("ERROR", "\x1b[31m"),
        };
        w.write_char(' ')?;
        paint(&mut w, ansi, colour, level)?;
        w.write_char(' ')?;
        let mut headed = CurrentRequest::with(|r| write_request(&mut w, ansi, r))
            .transpose()?
            .is_some();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                paint(&mut w, ansi, BOLD, span.metadata().name())?;
                headed = true;
                if let Some(fields) = span.extensions().get::<FormattedFields<N>>() {
                    if !fields.is_empty() {
                        w.write_char('{')?;
                        w.write_str(fields)?;
                        w.write_char('}')?;
                    }
                }
                w.write_char(':')?;
            }
        }
        if headed {
            w.write_char(' ')?;
        }
        paint(&mut w, ansi, DIM, meta.target())?;
        w.write_str(": ")?;
        ctx.format_fields(w.by_ref(), event)?;
        w.write_char('\n')
    }
}

const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";

/// `text`, in `style` on a terminal.
fn paint(w: &mut Writer<'_>, ansi: bool, style: &str, text: &str) -> fmt::Result {
    if ansi {
        w.write_str(style)?;
        w.write_str(text)?;
        w.write_str("\x1b[0m")
    } else {
        w.write_str(text)
    }
}

/// The request a line was logged in, as tracing-subscriber writes a span named `request` with
/// the fields `request_id`, `method`, `path` and (once known) `provider`, displayed.
fn write_request(w: &mut Writer<'_>, ansi: bool, r: &CurrentRequest) -> fmt::Result {
    paint(w, ansi, BOLD, "request")?;
    w.write_str("{request_id=")?;
    w.write_str(r.id())?;
    w.write_str(" method=")?;
    w.write_str(r.method())?;
    w.write_str(" path=")?;
    w.write_str(r.path())?;
    if let Some(p) = r.provider() {
        w.write_str(" provider=")?;
        w.write_str(
            p.0.hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer()),
        )?;
    }
    w.write_str("}:")
}

/// A line of the JSON format: tracing-subscriber's (`flatten_event`, `with_current_span`, the
/// span list), with the request the line was logged in as the root of `spans` and, when no span
/// is open, as `span`: the object a span named `request` gave, its fields in the same order.
#[derive(Debug)]
pub struct JsonLine {
    theirs: Format<Json>,
}

impl Default for JsonLine {
    fn default() -> Self {
        JsonLine {
            theirs: Format::default()
                .json()
                .flatten_event(true)
                .with_current_span(true),
        }
    }
}

impl<S, N> FormatEvent<S, N> for JsonLine
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
        if CurrentRequest::with(|_| ()).is_none() {
            return self.theirs.format_event(ctx, w, event);
        }
        let mut line = String::new();
        self.theirs
            .format_event(ctx, Writer::new(&mut line), event)?;
        let spliced = CurrentRequest::with(|r| with_request(&line, r)).flatten();
        w.write_str(spliced.as_deref().unwrap_or(&line))
    }
}

/// `line` (one JSON object and a newline) with the request as the root of its spans; `None` if
/// `line` is not such an object.
fn with_request(line: &str, r: &CurrentRequest) -> Option<String> {
    let body = line.strip_suffix("}\n")?;
    let text = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let provider = r
        .provider()
        .map(|p| format!(r#""provider":"{p}","#))
        .unwrap_or_default();
    let request = format!(
        r#"{{"method":{},"path":{},{provider}"request_id":{},"name":"request"}}"#,
        text(r.method()),
        text(r.path()),
        text(r.id()),
    );
    // A string's quotes are escaped inside the line, so `"spans":[` is the key; it comes last.
    const SPANS: &str = r#""spans":["#;
    Some(match body.rfind(SPANS) {
        Some(at) => {
            let (head, tail) = body.split_at(at + SPANS.len());
            format!("{head}{request},{tail}}}\n")
        }
        None => format!(r#"{body},"span":{request},"spans":[{request}]}}"#) + "\n",
    })
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

    // Numbers through itoa and ryu rather than `write!`: the status and duration of every
    // request's line went through `core::fmt`, about 1,200 instructions of a GET's line under
    // callgrind (docs/benchmarks.md, "The request log without a span").
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // In this range ryu writes what `Debug` does (the test below compares them); outside
        // it, where both switch to exponents, they are not documented to agree.
        if value == 0.0 || (1e-4..1e15).contains(&value.abs()) {
            self.field(field, |w| {
                w.write_str(ryu::Buffer::new().format_finite(value))
            });
        } else {
            self.field(field, |w| write!(w, "{value:?}"));
        }
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

    const PROVIDER: &str = "01a24ebc-8717-71ee-a9b4-2c2afa286363";

    /// A request that authenticated as [`PROVIDER`], as the middleware and the SCIM extractor
    /// leave it.
    fn current_request(path: &str) -> CurrentRequest {
        let slot = muster_web::scim::extract::CtxSlot::default();
        if let Ok(p) = PROVIDER.parse() {
            slot.set(muster_core::ids::EnvironmentId::new(), p);
        }
        let uri = path.parse().unwrap_or_default();
        CurrentRequest::new("abc".into(), axum::http::Method::GET, uri, slot)
    }

    /// What a request logs: its line, and a warning under a span of its own.
    fn request_events() {
        tracing::info!(status = 200u16, elapsed_ms = 0.25, "request");
        tracing::info_span!("inner", n = 2).in_scope(|| tracing::warn!("nested"));
    }

    /// The same, in a span named `request` with the request's fields, as Muster logged it before
    /// the request became a task-local.
    fn request_events_in_a_span() {
        let span = tracing::info_span!("request", request_id = %"abc", method = %"GET", path = %"/scim/v2/x/Users", provider = tracing::field::Empty);
        span.record("provider", tracing::field::display(PROVIDER));
        span.in_scope(request_events);
    }

    #[test]
    fn a_requests_lines_are_headed_as_its_span_headed_them() {
        let ours = full_lines(true, || {
            current_request("/scim/v2/x/Users?filter=userName%20eq%20%22a%22")
                .sync_scope(request_events)
        });
        let theirs = full_lines(false, request_events_in_a_span);
        assert_eq!(without_times(&ours), without_times(&theirs), "{ours}");
        assert!(ours.contains(&format!(
            "  INFO request{{request_id=abc method=GET path=/scim/v2/x/Users provider={PROVIDER}}}: muster::logging::tests: request status=200 elapsed_ms=0.25\n"
        )), "{ours}");
        assert!(!ours.contains("filter"), "the query is not logged: {ours}");
        // Outside a request, nothing heads a line.
        let outside = full_lines(true, request_events);
        assert!(
            outside.contains("  INFO muster::logging::tests: request status=200"),
            "{outside}"
        );
    }

    /// The JSON lines `f` logs (`ours`: [`JsonLine`]), parsed, without their times.
    fn json_lines(ours: bool, f: impl Fn()) -> Vec<serde_json::Value> {
        let buf = Buf::default();
        let builder = tracing_subscriber::fmt()
            .with_writer(buf.clone())
            .json()
            .flatten_event(true)
            .with_current_span(true);
        if ours {
            let s = builder.event_format(JsonLine::default());
            tracing::subscriber::with_default(s.finish(), f)
        } else {
            tracing::subscriber::with_default(builder.finish(), f)
        }
        let out = buf.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&out)
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.remove("timestamp");
                }
                v
            })
            .collect()
    }

    #[test]
    fn a_requests_json_lines_carry_it_as_its_span_did() {
        let ours = json_lines(true, || {
            current_request("/scim/v2/x/Users").sync_scope(request_events)
        });
        let theirs = json_lines(false, request_events_in_a_span);
        assert_eq!(ours, theirs);
        assert_eq!(ours.len(), 2);
        assert_eq!(ours[0]["span"]["request_id"], "abc", "{:?}", ours[0]);
        assert_eq!(ours[0]["span"]["provider"], PROVIDER);
        assert_eq!(ours[1]["span"]["name"], "inner", "{:?}", ours[1]);
        assert_eq!(ours[1]["spans"][0]["name"], "request");
        assert_eq!(ours[1]["spans"][1]["n"], 2);
        // Outside a request, the line is tracing-subscriber's own.
        let outside = json_lines(true, request_events);
        assert_eq!(outside, json_lines(false, request_events));
        assert!(outside[0].get("span").is_none(), "{:?}", outside[0]);
    }

    #[test]
    fn on_a_terminal_the_request_heads_the_line_in_colour() {
        let buf = Buf::default();
        let s = tracing_subscriber::fmt()
            .with_ansi(true)
            .with_writer(buf.clone())
            .fmt_fields(Fields)
            .event_format(Line::default())
            .finish();
        tracing::subscriber::with_default(s, || {
            current_request("/x").sync_scope(|| tracing::info!(status = 200u16, "request"))
        });
        let out = String::from_utf8_lossy(&buf.0.lock().map(|b| b.clone()).unwrap_or_default())
            .into_owned();
        assert!(out.contains("\x1b[32m INFO\x1b[0m "), "{out:?}");
        assert!(
            out.contains(&format!("\x1b[1mrequest\x1b[0m{{request_id=abc method=GET path=/x provider={PROVIDER}}}: \x1b[2mmuster::logging::tests\x1b[0m: request status=200\n")),
            "{out:?}"
        );
    }

    #[test]
    fn numbers_are_written_as_tracing_subscriber_writes_them() {
        let mut values = vec![
            0.0,
            -0.0,
            0.25,
            1.116,
            2.0,
            -3.5,
            1e-4,
            0.000_123_4,
            1e14,
            123_456.789,
        ];
        // Durations in whole microseconds, as the request log has them, and a sweep of others.
        values.extend((0..20_000u32).map(|us| f64::from(us) * 7.3 / 1000.0));
        values.extend((0..2_000i32).map(|i| 1.000_1f64.powi(i * 97) * 1e-4));
        values.extend([
            f64::NAN,
            f64::INFINITY,
            1e-7,
            1e16,
            1e300,
            f64::MIN_POSITIVE,
        ]);
        let log = || {
            for (i, v) in values.iter().enumerate() {
                tracing::info!(v = *v, n = i as u64, d = -(i as i64), "x");
            }
        };
        let (ours, theirs) = (line(Some(Fields), log), line(None, log));
        assert_eq!(ours.lines().count(), values.len());
        assert_eq!(ours, theirs);
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
