//! One line per event on stderr, as text or JSON (`--log-format`). Nothing is logged per request
//! unless access logging is asked for: per-request logging is what makes other model servers slow.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

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

    fn emit(&self, level: &str, msg: &str, fields: &[(&str, Value)]) {
        if self.quiet {
            return;
        }
        let line = format_line(self.format, SystemTime::now(), level, msg, fields);
        // One write of a whole line, so lines from several threads never interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
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
    match format {
        LogFormat::Json => {
            let mut map = Map::new();
            map.insert("ts".into(), ts.into());
            map.insert("level".into(), level.into());
            map.insert("logger".into(), "takeout.serve".into());
            map.insert("msg".into(), msg.into());
            for (k, v) in fields {
                map.insert((*k).to_owned(), v.clone());
            }
            let mut line = Value::Object(map).to_string();
            line.push('\n');
            line
        }
        LogFormat::Text => {
            let mut line = format!("{ts} {:<7} takeout.serve: {msg}", level.to_uppercase());
            for (k, v) in fields {
                match v {
                    Value::String(s) if !s.contains([' ', '"', '=']) && !s.is_empty() => {
                        let _ = write!(line, " {k}={s}");
                    }
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
}
