//! Prometheus counters kept with atomics only, so counting a request never takes a lock; the
//! label sets are fixed (routes known at start, statuses from a short list).
//!
//! With several worker processes, a scrape lands on one of them (`SO_REUSEPORT`), yet must show
//! the whole server. Each worker counts into its own block of a memory mapping that the
//! supervisor makes before forking, and any worker renders every block, each series labelled
//! `worker="N"`. Labelled rather than merged: Prometheus' multiprocess mode merges because its
//! process ids churn without bound, while our slots are fixed (a replaced worker takes over
//! its slot and its counts), so the labels stay few; a stuck or busy worker stays visible, and
//! `sum without (worker)` gives the server's totals without merging histograms by hand.

use std::fmt::Write as _;
use std::sync::atomic::{
    AtomicI64, AtomicU32, AtomicU64, AtomicUsize,
    Ordering::{AcqRel, Acquire, Relaxed, Release},
};
use std::sync::Arc;
use std::time::Duration;

use strum::EnumCount as _;

use super::service::RouteKind;
use super::shm::Shared;

/// A route's slot in the counters; `None` is every unknown path, one slot ("other") so that
/// clients cannot grow the label set.
fn route_index(route: Option<RouteKind>) -> usize {
    route.map_or(RouteKind::COUNT, |r| r as usize)
}

const ROUTES: usize = RouteKind::COUNT + 1;

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

/// Upper bounds of the batch-size histogram: requests per call of a batch function.
const SIZE_BUCKETS: [f64; 16] = [
    1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

/// Exception types kept per worker; past it, `other`.
const ERROR_SLOTS: usize = 32;
const NAME_WORDS: usize = 12;

/// One exception type's count. The name is stored in atomic words so that the table can live
/// in memory shared between processes, where a `Mutex<BTreeMap>` cannot.
#[derive(Default)]
struct ErrorSlot {
    /// 0 free, 1 being claimed, 2 named.
    state: AtomicU32,
    len: AtomicU32,
    name: [AtomicU64; NAME_WORDS],
    count: AtomicU64,
}

impl ErrorSlot {
    fn name(&self) -> String {
        let mut bytes = Vec::with_capacity(NAME_WORDS * 8);
        for w in &self.name {
            bytes.extend_from_slice(&w.load(Acquire).to_le_bytes());
        }
        bytes.truncate(self.len.load(Acquire) as usize);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn is(&self, name: &[u8]) -> bool {
        self.len.load(Acquire) as usize == name.len() && self.name().as_bytes() == name
    }
}

/// Everything one worker counts: plain atomics, valid when zeroed, so a block can live in an
/// anonymous shared mapping as well as on the heap.
#[derive(Default)]
pub(crate) struct Block {
    requests: [[AtomicU64; STATUSES.len()]; ROUTES],
    latency: [Histogram; ROUTES],
    in_flight: AtomicI64,
    calls: AtomicU64,
    errors: [ErrorSlot; ERROR_SLOTS],
    log_dropped: AtomicU64,
    /// The worker's call threads, those in a call past `--timeout`, and 1 once every one of
    /// them has been so for longer than `--stuck-restart` (the supervisor replaces it).
    threads: AtomicU64,
    stuck: AtomicU64,
    wedged: AtomicU32,
    /// The process counting into this block, so the supervisor replaces the right one.
    pid: AtomicU32,
    connections: AtomicU64,
    connections_shed: AtomicU64,
    /// Batch functions only: requests per call, and how long each waited in the batcher's
    /// queue (the sum is in nanoseconds for both; sizes are counted as whole nanoseconds).
    batch_size: Histogram,
    queue_wait: Histogram,
}

impl Histogram {
    fn add(&self, bounds: &[f64; 16], value: f64, raw: u64) {
        if let Some(b) = bounds.iter().position(|&le| value <= le) {
            self.buckets[b].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(raw, Relaxed);
    }

    /// `NAME_bucket`, `NAME_sum` (`raw` sums divided by `scale`) and `NAME_count`. `before`
    /// holds the labels ahead of `le` (`route="/call",` or nothing), `worker` the one after it
    /// (`,worker="0"` or nothing).
    fn render(
        &self,
        out: &mut String,
        name: &str,
        bounds: &[f64; 16],
        scale: f64,
        before: &str,
        worker: &str,
    ) {
        let count = self.count.load(Relaxed);
        let mut cumulative = 0;
        for (b, le) in bounds.iter().enumerate() {
            cumulative += self.buckets[b].load(Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{before}le=\"{le}\"{worker}}} {cumulative}"
            );
        }
        let _ = writeln!(out, "{name}_bucket{{{before}le=\"+Inf\"{worker}}} {count}");
        let sum = self.sum_nanos.load(Relaxed) as f64 / scale;
        let labels = format!("{}{worker}", before.trim_end_matches(','));
        let labels = labels.strip_prefix(',').unwrap_or(&labels);
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{labels} {sum}");
        let _ = writeln!(out, "{name}_count{labels} {count}");
    }
}

#[cfg(test)]
impl Block {
    pub(crate) fn bump_for_test(&self) {
        self.calls.fetch_add(1, Relaxed);
    }

    pub(crate) fn calls_for_test(&self) -> &AtomicU64 {
        &self.calls
    }
}

enum Store {
    Heap(Box<Block>),
    Shared(Shared<Block>),
}

impl Store {
    fn blocks(&self) -> &[Block] {
        match self {
            Self::Heap(block) => std::slice::from_ref(block),
            Self::Shared(shared) => shared.as_slice(),
        }
    }
}

pub struct Metrics {
    store: Arc<Store>,
    /// Which block this process counts into.
    slot: AtomicUsize,
    route_paths: [String; ROUTES],
}

/// Counts a request as in flight until dropped.
pub struct InFlight(Arc<Store>, usize);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.blocks()[self.1].in_flight.fetch_sub(1, Relaxed);
    }
}

impl Metrics {
    /// `workers` > 1 puts the counters in memory that forked workers share.
    /// The metrics of a server of the function `name`, for tests that need no service.
    #[cfg(test)]
    pub(crate) fn for_function(name: &str, workers: usize) -> Self {
        let kinds = <RouteKind as strum::VariantArray>::VARIANTS.iter();
        Self::new(kinds.map(|k| k.endpoint(name).0), workers)
    }

    /// `paths` are the routes' labels in [`RouteKind`]'s order; `workers` > 1 puts the
    /// counters in memory that forked workers share.
    pub(crate) fn new(paths: impl Iterator<Item = String>, workers: usize) -> Self {
        let mut paths = paths.chain(std::iter::once("other".to_owned()));
        let route_paths: [String; ROUTES] =
            std::array::from_fn(|_| paths.next().expect("a path for every route"));
        let store = match workers {
            0 | 1 => Store::Heap(Box::default()),
            n => match Shared::new(n) {
                Some(shared) => Store::Shared(shared),
                // No shared mapping to be had: each worker reports only itself, as before.
                None => Store::Heap(Box::default()),
            },
        };
        Self {
            store: Arc::new(store),
            slot: AtomicUsize::new(0),
            route_paths,
        }
    }

    /// In a forked worker: count into block `slot` from now on. Requests a dead predecessor
    /// left in flight are forgotten; its counts carry on.
    pub fn set_worker(&self, slot: usize) -> bool {
        let blocks = self.store.blocks();
        if slot >= blocks.len() {
            return false;
        }
        self.slot.store(slot, Relaxed);
        let block = &blocks[slot];
        block.in_flight.store(0, Relaxed);
        block.stuck.store(0, Relaxed);
        block.wedged.store(0, Relaxed);
        block.connections.store(0, Relaxed);
        block.pid.store(std::process::id(), Release);
        true
    }

    /// The call threads as last looked at: how many, how many stuck, and whether every one
    /// has been stuck past the bound.
    pub(crate) fn set_call_threads(&self, threads: usize, stuck: usize, wedged: bool) {
        let block = self.block();
        block.threads.store(threads as u64, Relaxed);
        block.stuck.store(stuck as u64, Relaxed);
        block.wedged.store(u32::from(wedged), Release);
    }

    /// Worker slots (and their process ids) whose every call thread is stuck past the bound.
    pub fn wedged_workers(&self) -> Vec<(usize, u32)> {
        self.store
            .blocks()
            .iter()
            .enumerate()
            .filter(|(_, b)| b.wedged.load(Acquire) == 1)
            .map(|(slot, b)| (slot, b.pid.load(Acquire)))
            .collect()
    }

    pub(crate) fn set_connections(&self, open: usize) {
        self.block().connections.store(open as u64, Relaxed);
    }

    /// An idle keep-alive connection was closed to make room for a new one.
    pub(crate) fn connection_shed(&self) {
        self.block().connections_shed.fetch_add(1, Relaxed);
    }

    fn block(&self) -> &Block {
        &self.store.blocks()[self.slot.load(Relaxed)]
    }

    pub fn enter(&self) -> InFlight {
        let slot = self.slot.load(Relaxed);
        self.store.blocks()[slot].in_flight.fetch_add(1, Relaxed);
        InFlight(self.store.clone(), slot)
    }

    pub(crate) fn observe(&self, route: Option<RouteKind>, status: u16, elapsed: Duration) {
        let r = route_index(route);
        let block = self.block();
        block.requests[r][status_index(status)].fetch_add(1, Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        block.latency[r].add(&BUCKETS, elapsed.as_secs_f64(), nanos);
    }

    /// A log line found the queue full (stderr not read fast enough) and was dropped.
    pub(crate) fn log_line_dropped(&self) {
        self.block().log_dropped.fetch_add(1, Relaxed);
    }

    /// A batch function was called with `size` requests' items.
    pub(crate) fn batched(&self, size: usize) {
        self.block()
            .batch_size
            .add(&SIZE_BUCKETS, size as f64, size as u64);
    }

    /// A request's item waited `wait` in the batcher's queue before its batch was handed over.
    pub(crate) fn queued(&self, wait: Duration) {
        let nanos = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX);
        self.block()
            .queue_wait
            .add(&BUCKETS, wait.as_secs_f64(), nanos);
    }

    pub(crate) fn called(&self, n: usize) {
        self.block().calls.fetch_add(n as u64, Relaxed);
    }

    pub(crate) fn function_error(&self, kind: &str) {
        // Exception names come from user code; a fixed table keeps a misbehaving function
        // from growing the label set without end, and names past its width are cut.
        let mut name = kind.as_bytes();
        if name.len() > NAME_WORDS * 8 {
            name = &name[..NAME_WORDS * 8];
        }
        let slots = &self.block().errors;
        let (last, table) = slots.split_last().expect("the table has slots");
        for slot in table {
            loop {
                match slot.state.load(Acquire) {
                    2 if slot.is(name) => {
                        slot.count.fetch_add(1, Relaxed);
                        return;
                    }
                    2 => break,
                    1 => std::hint::spin_loop(),
                    _ => {
                        if slot.state.compare_exchange(0, 1, AcqRel, Acquire).is_ok() {
                            let mut padded = [0u8; NAME_WORDS * 8];
                            padded[..name.len()].copy_from_slice(name);
                            for (w, chunk) in slot.name.iter().zip(padded.chunks_exact(8)) {
                                let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
                                w.store(word, Release);
                            }
                            slot.len.store(name.len() as u32, Release);
                            slot.count.fetch_add(1, Relaxed);
                            slot.state.store(2, Release);
                            return;
                        }
                    }
                }
            }
        }
        if last.state.swap(2, AcqRel) != 2 {
            for (w, chunk) in last.name.iter().zip([*b"other\0\0\0"]) {
                w.store(u64::from_le_bytes(chunk), Release);
            }
            last.len.store(5, Release);
        }
        last.count.fetch_add(1, Relaxed);
    }

    /// This worker's count of answers on `route` with `status`.
    pub fn requests(&self, route: Option<RouteKind>, status: u16) -> u64 {
        self.block().requests[route_index(route)][status_index(status)].load(Relaxed)
    }

    /// The Prometheus text exposition format, version 0.0.4: every worker's series.
    pub fn render(&self) -> String {
        let blocks = self.store.blocks();
        let labelled: Vec<(String, &Block)> = if blocks.len() == 1 {
            vec![(String::new(), &blocks[0])]
        } else {
            let n = blocks.len();
            (0..n)
                .map(|i| (format!(",worker=\"{i}\""), &blocks[i]))
                .collect()
        };
        let mut out = String::with_capacity(4096 * labelled.len());
        family(
            &mut out,
            "takeout_requests_total",
            "counter",
            "HTTP requests answered, by route and status.",
        );
        for (worker, block) in &labelled {
            for route in 0..ROUTES {
                let path = escape(&self.route_paths[route]);
                for (s, &status) in STATUSES.iter().enumerate() {
                    let n = block.requests[route][s].load(Relaxed);
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
                        "takeout_requests_total{{route=\"{path}\",status=\"{status}\"{worker}}} {n}"
                    );
                }
            }
        }
        family(
            &mut out,
            "takeout_request_duration_seconds",
            "histogram",
            "Time from the request head to the response.",
        );
        for (worker, block) in &labelled {
            for route in 0..ROUTES {
                let h = &block.latency[route];
                if h.count.load(Relaxed) == 0 {
                    continue;
                }
                let path = escape(&self.route_paths[route]);
                let route = format!("route=\"{path}\",");
                h.render(
                    &mut out,
                    "takeout_request_duration_seconds",
                    &BUCKETS,
                    1e9,
                    &route,
                    worker,
                );
            }
        }
        let alone = |worker: &str| -> String {
            match worker.strip_prefix(',') {
                Some(label) => format!("{{{label}}}"),
                None => String::new(),
            }
        };
        let gauges: [Series; 7] = [
            (
                "takeout_requests_in_flight",
                "gauge",
                "Requests being handled now.",
                |b| b.in_flight.load(Relaxed).into(),
            ),
            (
                "takeout_function_calls_total",
                "counter",
                "Calls of the function.",
                |b| b.calls.load(Relaxed).into(),
            ),
            (
                "takeout_log_lines_dropped_total",
                "counter",
                "Log lines dropped because stderr was not read fast enough.",
                |b| b.log_dropped.load(Relaxed).into(),
            ),
            (
                "takeout_call_threads",
                "gauge",
                "Threads running the function.",
                |b| b.threads.load(Relaxed).into(),
            ),
            (
                "takeout_calls_stuck",
                "gauge",
                "Calls running past --timeout that have not returned (their clients got a 504).",
                |b| b.stuck.load(Relaxed).into(),
            ),
            (
                "takeout_connections_open",
                "gauge",
                "Client connections open now.",
                |b| b.connections.load(Relaxed).into(),
            ),
            (
                "takeout_connections_shed_total",
                "counter",
                "Idle keep-alive connections closed to make room under --max-connections.",
                |b| b.connections_shed.load(Relaxed).into(),
            ),
        ];
        for (name, kind, help, value) in gauges {
            family(&mut out, name, kind, help);
            for (worker, block) in &labelled {
                let _ = writeln!(out, "{name}{} {}", alone(worker), value(block));
            }
        }
        family(
            &mut out,
            "takeout_function_errors_total",
            "counter",
            "Calls that raised, by exception type.",
        );
        for (worker, block) in &labelled {
            let mut errors: Vec<(String, u64)> = block
                .errors
                .iter()
                .filter(|slot| slot.state.load(Acquire) == 2)
                .map(|slot| (slot.name(), slot.count.load(Relaxed)))
                .collect();
            errors.sort();
            for (kind, n) in errors {
                let _ = writeln!(
                    out,
                    "takeout_function_errors_total{{type=\"{}\"{worker}}} {n}",
                    escape(&kind)
                );
            }
        }
        if blocks.iter().any(|b| b.batch_size.count.load(Relaxed) > 0) {
            family(
                &mut out,
                "takeout_batch_size",
                "histogram",
                "Requests per call of the batch function.",
            );
            for (worker, block) in &labelled {
                let name = "takeout_batch_size";
                block
                    .batch_size
                    .render(&mut out, name, &SIZE_BUCKETS, 1.0, "", worker);
            }
            family(
                &mut out,
                "takeout_batch_queue_wait_seconds",
                "histogram",
                "Time a request waited in the batcher's queue for its batch call.",
            );
            for (worker, block) in &labelled {
                let name = "takeout_batch_queue_wait_seconds";
                block
                    .queue_wait
                    .render(&mut out, name, &BUCKETS, 1e9, "", worker);
            }
        }
        out
    }
}

/// One value per worker: its name, type, help and how to read it from a block (as `i128`,
/// wide enough for the signed in-flight gauge and the unsigned counters alike).
type Series = (&'static str, &'static str, &'static str, fn(&Block) -> i128);

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

    fn metrics(workers: usize) -> Metrics {
        Metrics::for_function("f", workers)
    }

    #[test]
    fn renders_counters_histograms_and_errors() {
        let m = metrics(1);
        m.observe(Some(RouteKind::Call), 200, Duration::from_micros(300));
        m.observe(Some(RouteKind::Call), 422, Duration::from_millis(2));
        m.observe(None, 404, Duration::from_micros(10));
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
        assert_eq!(m.requests(Some(RouteKind::Call), 422), 1);
    }

    #[test]
    fn workers_share_one_view_with_labels() {
        let m = metrics(2);
        m.observe(Some(RouteKind::Call), 200, Duration::from_micros(300));
        m.function_error("ValueError");
        assert!(m.set_worker(1));
        assert!(!m.set_worker(2));
        m.observe(Some(RouteKind::Call), 200, Duration::from_micros(300));
        m.observe(Some(RouteKind::Call), 200, Duration::from_micros(300));
        m.function_error("ValueError");
        m.function_error("KeyError");
        for i in 0..40 {
            m.function_error(&format!("E{i}"));
        }
        let text = m.render();
        assert!(text
            .contains("takeout_requests_total{route=\"/call\",status=\"200\",worker=\"0\"} 1\n"));
        assert!(text
            .contains("takeout_requests_total{route=\"/call\",status=\"200\",worker=\"1\"} 2\n"));
        assert!(text.contains("takeout_requests_in_flight{worker=\"1\"} 0\n"));
        assert!(
            text.contains("takeout_function_errors_total{type=\"ValueError\",worker=\"1\"} 1\n")
        );
        assert!(text.contains("takeout_function_errors_total{type=\"KeyError\",worker=\"1\"} 1\n"));
        assert!(
            text.contains("takeout_function_errors_total{type=\"other\",worker=\"1\"} 11\n"),
            "{text}"
        );
    }
}
