//! One line per event on stderr, as text or JSON (`--log-format`). Nothing is logged per request
//! unless access logging is asked for: per-request logging is what makes other model servers slow.
//!
//! Serving never waits for a log line: lines go into a bounded queue that a thread of their own
//! writes out, and a line that finds the queue full (stderr is a pipe nobody reads) is dropped
//! and counted in `/metrics`. That thread writes to a duplicate of fd 2 made when the server
//! starts, so a function that closes fd 2 cannot make a client's socket, which may then get
//! that number, receive log lines. Text that comes from outside (exception messages, paths) is
//! escaped, so it cannot forge a line, and capped.

use std::fmt::Write as _;
// A duplicated descriptor has no path for `fs_err::File` to name.
#[allow(clippy::disallowed_types)]
use std::fs::File;
use std::io::Write as _;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::metrics::Metrics;

/// Lines waiting for the writer; past it, lines are dropped.
const QUEUE: usize = 4096;

/// The longest text of one field (or message) logged; the rest is replaced by its length.
pub const MAX_TEXT: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!(
                "unknown log format `{other}`; use `text` or `json`"
            )),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Logger {
    pub format: LogFormat,
    pub access: bool,
    /// Silences everything (tests and the in-process handle of a notebook).
    pub quiet: bool,
    /// Shared by the clones: one queue and one writer per process.
    pub sink: Arc<Sink>,
}

/// The queue and its writer thread. Made again after a fork (the thread does not survive it).
#[derive(Default)]
pub struct Sink {
    writer: Mutex<Option<Writer>>,
    /// Where dropped lines are counted.
    metrics: OnceLock<Arc<Metrics>>,
    /// Lines queued and not yet written.
    pending: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("pending", &self.pending.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

struct Writer {
    pid: u32,
    tx: SyncSender<String>,
}

impl Sink {
    /// This process's writer, started if it has none yet (first line, or after a fork).
    fn writer(&self) -> std::sync::MutexGuard<'_, Option<Writer>> {
        let mut writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if writer.as_ref().is_none_or(|w| w.pid != std::process::id()) {
            *writer = Writer::start(self.pending.clone());
        }
        writer
    }

    fn send(&self, line: String) {
        let writer = self.writer();
        let sent = writer.as_ref().is_some_and(|w| {
            self.pending.fetch_add(1, Ordering::AcqRel);
            let ok = w.tx.try_send(line).is_ok();
            if !ok {
                self.pending.fetch_sub(1, Ordering::AcqRel);
            }
            ok
        });
        drop(writer);
        if !sent {
            if let Some(metrics) = self.metrics.get() {
                metrics.log_line_dropped();
            }
        }
    }
}

impl Writer {
    fn start(pending: Arc<AtomicUsize>) -> Option<Self> {
        // `try_clone_to_owned` duplicates with `F_DUPFD_CLOEXEC`: a number of 3 or more that
        // the function's own `os.close(2)` does not touch, and no child process inherits.
        let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
        let (tx, rx) = mpsc::sync_channel::<String>(QUEUE);
        thread::Builder::new()
            .name("takeout-log".into())
            .spawn(move || {
                #[allow(clippy::disallowed_types)]
                let mut out = File::from(fd);
                for line in rx {
                    // One write of a whole line, so lines never interleave.
                    let _ = out.write_all(line.as_bytes());
                    pending.fetch_sub(1, Ordering::AcqRel);
                }
            })
            .ok()?;
        Some(Self {
            pid: std::process::id(),
            tx,
        })
    }
}

impl Logger {
    pub fn info(&self, msg: &str, fields: &[(&str, Value)]) {
        self.emit("info", msg, fields);
    }

    pub fn warn(&self, msg: &str, fields: &[(&str, Value)]) {
        self.emit("warning", msg, fields);
    }

    pub fn error(&self, msg: &str, fields: &[(&str, Value)]) {
        self.emit("error", msg, fields);
    }

    pub fn access(&self, method: &str, path: &str, status: u16, elapsed: Duration) {
        if self.access {
            self.emit(
                "info",
                "request",
                &[
                    ("method", method.into()),
                    ("path", path.into()),
                    ("status", status.into()),
                    ("ms", (elapsed.as_secs_f64() * 1000.0).into()),
                ],
            );
        }
    }

    /// Count dropped lines in `metrics` (once; the service does it when it is made).
    pub fn count_drops_in(&self, metrics: Arc<Metrics>) {
        let _ = self.sink.metrics.set(metrics);
    }

    /// Start the writer now, while fd 2 is still the process's stderr (before any call).
    pub fn start(&self) {
        if !self.quiet {
            drop(self.sink.writer());
        }
    }

    /// Wait at most `timeout` for the queued lines to be written (before the process exits).
    pub fn flush(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.sink.pending.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(2));
        }
    }

    fn emit(&self, level: &str, msg: &str, fields: &[(&str, Value)]) {
        if self.quiet {
            return;
        }
        let line = format_line(self.format, SystemTime::now(), level, msg, fields);
        self.sink.send(line);
    }
}

/// `text` cut to [`MAX_TEXT`] bytes (on a character boundary), saying how much was left out.
fn capped(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_TEXT {
        return text.into();
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} more bytes)", &text[..end], text.len() - end).into()
}

/// Control characters (a newline above all) as escapes: outside text must stay on its line.
fn escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

fn capped_value(v: &Value) -> Value {
    match v {
        Value::String(s) if s.len() > MAX_TEXT => Value::String(capped(s).into_owned()),
        other => other.clone(),
    }
}

fn format_line(
    format: LogFormat,
    now: SystemTime,
    level: &str,
    msg: &str,
    fields: &[(&str, Value)],
) -> String {
    let ts = rfc3339(now);
    let msg = capped(msg);
    match format {
        LogFormat::Json => {
            let mut map = Map::new();
            map.insert("ts".into(), ts.into());
            map.insert("level".into(), level.into());
            map.insert("logger".into(), "takeout.serve".into());
            map.insert("msg".into(), msg.into());
            for (k, v) in fields {
                map.insert((*k).to_owned(), capped_value(v));
            }
            let mut line = Value::Object(map).to_string();
            line.push('\n');
            line
        }
        LogFormat::Text => {
            let mut line = format!(
                "{ts} {:<7} takeout.serve: {}",
                level.to_uppercase(),
                escaped(&msg)
            );
            for (k, v) in fields {
                match capped_value(v) {
                    Value::String(s)
                        if !s.contains([' ', '"', '='])
                            && !s.is_empty()
                            && !s.chars().any(char::is_control) =>
                    {
                        let _ = write!(line, " {k}={s}");
                    }
                    // JSON's own escapes: quoted, control characters written as `\n`, `\u0000`.
                    other => {
                        let _ = write!(line, " {k}={other}");
                    }
                }
            }
            line.push('\n');
            line
        }
    }
}

/// `2026-01-02T03:04:05.678Z`, without a date library: civil-from-days (Howard Hinnant).
fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_formats() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let text = format_line(
            LogFormat::Text,
            t,
            "info",
            "listening",
            &[
                ("url", "http://127.0.0.1:8000".into()),
                ("workers", 2.into()),
            ],
        );
        assert_eq!(
            text,
            "2023-11-14T22:13:20.123Z INFO    takeout.serve: listening url=http://127.0.0.1:8000 workers=2\n"
        );
        let json = format_line(
            LogFormat::Json,
            t,
            "warning",
            "raised",
            &[("type", "E".into())],
        );
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["level"], "warning");
        assert_eq!(v["type"], "E");
    }

    #[test]
    fn outside_text_stays_on_its_line_and_is_capped() {
        let t = UNIX_EPOCH;
        let forged = "x\n1970-01-01T00:00:00.000Z ERROR   takeout.serve: forged\r\u{1b}[2J";
        for format in [LogFormat::Text, LogFormat::Json] {
            let line = format_line(
                format,
                t,
                "warning",
                forged,
                &[("message", forged.into()), ("bare", "a\nb".into())],
            );
            assert_eq!(line.matches('\n').count(), 1, "{line}");
            assert!(line.ends_with('\n'));
            assert!(!line.contains('\r') && !line.contains('\u{1b}'), "{line}");
        }
        let huge = "é".repeat(10 << 20);
        let line = format_line(
            LogFormat::Text,
            t,
            "info",
            &huge,
            &[("m", huge.clone().into())],
        );
        assert!(line.len() < 3 * MAX_TEXT, "{}", line.len());
        assert!(line.contains("more bytes)"));
    }
}
