//! Prometheus counters kept with atomics only, so counting a request never takes a lock; the
//! label sets are fixed (routes known at start, statuses from a short list).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Route labels; `Other` gathers every unknown path so clients cannot grow the label set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteLabel {
    Call,
    Predict,
    Model,
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
    Index,
    Other,
}

const ROUTES: usize = 9;

impl RouteLabel {
    fn index(self) -> usize {
        self as usize
    }

    fn all() -> [Self; ROUTES] {
        use RouteLabel::{Call, Healthz, Index, Metrics, Model, OpenApi, Other, Predict, Readyz};
        [
            Call, Predict, Model, Healthz, Readyz, Metrics, OpenApi, Index, Other,
        ]
    }
}

const STATUSES: [u16; 16] = [
    200, 400, 401, 404, 405, 408, 413, 415, 422, 431, 500, 503, 504, 0, 0, 0,
];

fn status_index(status: u16) -> usize {
    STATUSES
        .iter()
        .position(|&s| s == status)
        .unwrap_or(STATUSES.len() - 1)
}

/// Upper bounds in seconds: from well under the fastest call to past the default timeout.
const BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0, 60.0,
];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

pub struct Metrics {
    requests: [[AtomicU64; STATUSES.len()]; ROUTES],
    latency: [Histogram; ROUTES],
    in_flight: Arc<AtomicI64>,
    calls: AtomicU64,
    function_errors: Mutex<BTreeMap<String, u64>>,
    route_paths: [String; ROUTES],
}

/// Counts a request as in flight until dropped.
pub struct InFlight(Arc<AtomicI64>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl Metrics {
    pub(crate) fn new(predict_path: &str, model_path: &str) -> Self {
        let route_paths = RouteLabel::all().map(|r| {
            match r {
                RouteLabel::Call => "/call",
                RouteLabel::Predict => predict_path,
                RouteLabel::Model => model_path,
                RouteLabel::Healthz => "/healthz",
                RouteLabel::Readyz => "/readyz",
                RouteLabel::Metrics => "/metrics",
                RouteLabel::OpenApi => "/openapi.json",
                RouteLabel::Index => "/",
                RouteLabel::Other => "other",
            }
            .to_owned()
        });
        Self {
            requests: Default::default(),
            latency: Default::default(),
            in_flight: Arc::new(AtomicI64::new(0)),
            calls: AtomicU64::new(0),
            function_errors: Mutex::new(BTreeMap::new()),
            route_paths,
        }
    }

    pub fn enter(&self) -> InFlight {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight(self.in_flight.clone())
    }

    pub(crate) fn observe(&self, route: RouteLabel, status: u16, elapsed: Duration) {
        let r = route.index();
        self.requests[r][status_index(status)].fetch_add(1, Relaxed);
        let h = &self.latency[r];
        let secs = elapsed.as_secs_f64();
        if let Some(b) = BUCKETS.iter().position(|&le| secs <= le) {
            h.buckets[b].fetch_add(1, Relaxed);
        }
        h.count.fetch_add(1, Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        h.sum_nanos.fetch_add(nanos, Relaxed);
    }

    pub(crate) fn called(&self, n: usize) {
        self.calls.fetch_add(n as u64, Relaxed);
    }

    pub(crate) fn function_error(&self, kind: &str) {
        let mut errors = self
            .function_errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Exception names come from user code; a cap keeps a misbehaving function from
        // growing the label set without end.
        if errors.len() < 100 || errors.contains_key(kind) {
            *errors.entry(kind.to_owned()).or_default() += 1;
        } else {
            *errors.entry("other".to_owned()).or_default() += 1;
        }
    }

    pub fn requests(&self, route: RouteLabel, status: u16) -> u64 {
        self.requests[route.index()][status_index(status)].load(Relaxed)
    }

    /// The Prometheus text exposition format, version 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        family(
            &mut out,
            "takeout_requests_total",
            "counter",
            "HTTP requests answered, by route and status.",
        );
        for route in RouteLabel::all() {
            let path = &self.route_paths[route.index()];
            for (s, &status) in STATUSES.iter().enumerate() {
                let n = self.requests[route.index()][s].load(Relaxed);
                if n == 0 {
                    continue;
                }
                let status = if status == 0 {
                    "other".to_owned()
                } else {
                    status.to_string()
                };
                let _ = writeln!(
                    out,
                    "takeout_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                    escape(path)
                );
            }
        }
        family(
            &mut out,
            "takeout_request_duration_seconds",
            "histogram",
            "Time from the request head to the response.",
        );
        for route in RouteLabel::all() {
            let h = &self.latency[route.index()];
            let count = h.count.load(Relaxed);
            if count == 0 {
                continue;
            }
            let path = escape(&self.route_paths[route.index()]);
            let mut cumulative = 0;
            for (b, le) in BUCKETS.iter().enumerate() {
                cumulative += h.buckets[b].load(Relaxed);
                let _ = writeln!(
                    out,
                    "takeout_request_duration_seconds_bucket{{route=\"{path}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "takeout_request_duration_seconds_bucket{{route=\"{path}\",le=\"+Inf\"}} {count}"
            );
            let sum = h.sum_nanos.load(Relaxed) as f64 / 1e9;
            let _ = writeln!(
                out,
                "takeout_request_duration_seconds_sum{{route=\"{path}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "takeout_request_duration_seconds_count{{route=\"{path}\"}} {count}"
            );
        }
        family(
            &mut out,
            "takeout_requests_in_flight",
            "gauge",
            "Requests being handled now.",
        );
        let _ = writeln!(
            out,
            "takeout_requests_in_flight {}",
            self.in_flight.load(Relaxed)
        );
        family(
            &mut out,
            "takeout_function_calls_total",
            "counter",
            "Calls of the function.",
        );
        let _ = writeln!(
            out,
            "takeout_function_calls_total {}",
            self.calls.load(Relaxed)
        );
        family(
            &mut out,
            "takeout_function_errors_total",
            "counter",
            "Calls that raised, by exception type.",
        );
        let errors = self
            .function_errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (kind, n) in errors.iter() {
            let _ = writeln!(
                out,
                "takeout_function_errors_total{{type=\"{}\"}} {n}",
                escape(kind)
            );
        }
        out
    }
}

/// The `# HELP` and `# TYPE` lines that open a metric family in the text format.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_errors() {
        let m = Metrics::new("/v1/models/f:predict", "/v1/models/f");
        m.observe(RouteLabel::Call, 200, Duration::from_micros(300));
        m.observe(RouteLabel::Call, 422, Duration::from_millis(2));
        m.observe(RouteLabel::Other, 404, Duration::from_micros(10));
        m.function_error("ValueError");
        let _g = m.enter();
        let text = m.render();
        assert!(text.contains("takeout_requests_total{route=\"/call\",status=\"200\"} 1\n"));
        assert!(text.contains("takeout_requests_total{route=\"other\",status=\"404\"} 1\n"));
        assert!(text.contains(
            "takeout_request_duration_seconds_bucket{route=\"/call\",le=\"0.0005\"} 1\n"
        ));
        assert!(text
            .contains("takeout_request_duration_seconds_bucket{route=\"/call\",le=\"+Inf\"} 2\n"));
        assert!(text.contains("takeout_requests_in_flight 1\n"));
        assert!(text.contains("takeout_function_errors_total{type=\"ValueError\"} 1\n"));
        assert_eq!(m.requests(RouteLabel::Call, 422), 1);
    }
}
