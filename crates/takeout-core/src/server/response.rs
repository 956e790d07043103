//! Responses and the error body every failure shares:
//! `{"error": {"type": ..., "message": ..., "details": [...]}}`.

use serde_json::{json, Value};

pub const JSON: &str = "application/json";
pub const TEXT: &str = "text/plain; charset=utf-8";
pub const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";
pub const HTML: &str = "text/html; charset=utf-8";

/// What a transport sends back. Plain data, so hyper and the ASGI adapter write the same bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Headers beyond `content-type` and `content-length` (`retry-after`, `allow`, ...).
    pub headers: Vec<(&'static str, String)>,
    /// The connection must not be reused (the request body was not read to its end).
    pub close: bool,
}

impl Response {
    pub fn json(status: u16, body: Vec<u8>) -> Self {
        Self {
            status,
            content_type: JSON,
            body,
            headers: Vec::new(),
            close: false,
        }
    }

    #[must_use]
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// One failure a client sees; `kind` is the error body's `type`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub kind: String,
    pub message: String,
    pub details: Vec<Value>,
    pub headers: Vec<(&'static str, String)>,
    pub close: bool,
}

impl ApiError {
    pub fn new(status: u16, kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            kind: kind.into(),
            message: message.into(),
            details: Vec::new(),
            headers: Vec::new(),
            close: false,
        }
    }

    #[must_use]
    pub fn with_details(mut self, details: Vec<Value>) -> Self {
        self.details = details;
        self
    }

    #[must_use]
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    #[must_use]
    pub fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(400, "malformed_json", message)
    }

    pub fn not_found(path: &str) -> Self {
        Self::new(
            404,
            "not_found",
            format!("no route `{}`; see `GET /openapi.json`", clip(path, 200)),
        )
    }

    pub fn method_not_allowed(method: &str, path: &str, allow: &'static str) -> Self {
        Self::new(
            405,
            "method_not_allowed",
            format!(
                "`{}` does not accept `{}`; use `{allow}`",
                clip(path, 200),
                clip(method, 20)
            ),
        )
        .with_header("allow", allow)
    }

    pub fn unauthorized(given: bool) -> Self {
        let message = if given {
            "the bearer token is wrong"
        } else {
            "this server needs a token: send `Authorization: Bearer <token>`"
        };
        Self::new(401, "unauthorized", message).with_header("www-authenticate", "Bearer")
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "body_too_large",
            format!(
                "the body is larger than the server's limit of {}; raise `--max-body` to accept it",
                human_bytes(limit)
            ),
        )
        .closing()
    }

    pub fn not_json(content_type: Option<&str>) -> Self {
        let message = match content_type {
            Some(ct) => format!(
                "the body must be `application/json`, not `{}`",
                clip(ct, 100)
            ),
            None => "the body must be `application/json`; set the `Content-Type` header".into(),
        };
        Self::new(415, "unsupported_media_type", message)
    }

    pub fn invalid(details: Vec<Value>) -> Self {
        let n = details.len();
        let first = details
            .first()
            .and_then(|d| d.get("msg"))
            .and_then(Value::as_str)
            .unwrap_or("invalid arguments")
            .to_owned();
        let message = if n > 1 {
            format!("{first} (and {} more)", n - 1)
        } else {
            first
        };
        Self::new(422, "invalid_arguments", message).with_details(details)
    }

    pub fn overloaded(limit: usize) -> Self {
        Self::new(
            503,
            "overloaded",
            format!("{limit} calls are already in flight (`--max-concurrency`); retry shortly"),
        )
        .with_header("retry-after", "1")
    }

    pub fn host_not_allowed(host: &[u8]) -> Self {
        let host = String::from_utf8_lossy(host);
        Self::new(
            403,
            "host_not_allowed",
            format!(
                "this server is bound to loopback and does not answer for the `Host` `{host}`; \
                 add the name with `--allow-host` if it is yours"
            ),
        )
        .closing()
    }

    /// A probe's answer while the call threads are stuck in calls that do not return.
    pub fn calls_stuck(message: String) -> Self {
        Self::new(503, "calls_stuck", message)
    }

    /// Past the server-wide budget for request bodies being received (`--body-budget`).
    pub fn bodies_over_budget(budget: usize) -> Self {
        Self::new(
            503,
            "overloaded",
            format!(
                "request bodies being received already take the server's budget of {} \
                 (`--body-budget`); retry shortly",
                human_bytes(budget)
            ),
        )
        .with_header("retry-after", "1")
        .closing()
    }

    /// Past `--max-connections` with no idle connection to close for room.
    pub fn too_many_connections(limit: usize) -> Self {
        Self::new(
            503,
            "overloaded",
            format!(
                "the server has {limit} connections open, all busy (`--max-connections`); \
                 retry shortly"
            ),
        )
        .with_header("retry-after", "1")
        .closing()
    }

    pub fn draining() -> Self {
        Self::new(503, "shutting_down", "the server is shutting down")
            .with_header("retry-after", "1")
            .closing()
    }

    pub fn timed_out(seconds: f64) -> Self {
        Self::new(
            504,
            "timeout",
            format!("the function did not return within {seconds} s (`--timeout`)"),
        )
    }

    pub fn body_timeout(seconds: f64) -> Self {
        Self::new(
            408,
            "request_timeout",
            format!("the request body did not arrive within {seconds} s"),
        )
        .closing()
    }

    /// Keys in the documented order (`type`, `message`, `details`), which a sorted map loses.
    pub fn body(&self) -> Vec<u8> {
        let text = |v: &str| serde_json::to_string(v).expect("a string serialises");
        let details = serde_json::to_string(&self.details).expect("JSON values serialise");
        format!(
            r#"{{"error":{{"type":{},"message":{},"details":{details}}}}}"#,
            text(&self.kind),
            text(&self.message)
        )
        .into_bytes()
    }

    pub fn into_response(self) -> Response {
        let body = self.body();
        Response {
            status: self.status,
            content_type: JSON,
            body,
            headers: self.headers,
            close: self.close,
        }
    }
}

/// One 422 detail, shaped as `FastAPI` users expect: `loc` starts at `"body"`.
pub fn issue(loc: Vec<Value>, msg: impl Into<String>, kind: &str) -> Value {
    json!({"loc": loc, "msg": msg.into(), "type": kind})
}

pub(crate) fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max).collect();
    out.push('…');
    out
}

pub fn human_bytes(n: usize) -> String {
    const UNITS: [(&str, usize); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if n >= size && n.is_multiple_of(size) {
            return format!("{} {unit}", n / size);
        }
    }
    format!("{n} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_shape() {
        let r = ApiError::overloaded(4).into_response();
        assert_eq!(r.status, 503);
        assert_eq!(r.headers, vec![("retry-after", "1".to_string())]);
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"]["type"], "overloaded");
        assert_eq!(v["error"]["details"], json!([]));
        let text = String::from_utf8(r.body).unwrap();
        assert!(
            text.starts_with(r#"{"error":{"type":"overloaded","message":"#),
            "{text}"
        );
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(10 << 20), "10 MiB");
        assert_eq!(human_bytes(1000), "1000 bytes");
        assert_eq!(clip("abcdef", 3), "abc…");
    }
}
