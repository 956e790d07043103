//! Adaptive batching: the items of concurrent requests coalesced into one call of a batch
//! function (one that takes a list of items first and returns one result per item).
//!
//! The [`Batcher`] is an [`Invoke`] in front of the one that runs the function. Requests reach
//! it parsed and validated (on the I/O threads, per item, against the item's schema); each
//! item joins one queue with the arguments it shares with others (the rest of the call). A
//! batch is handed over — up to `max_size` items whose other arguments are equal, oldest first
//! — as soon as one of these holds:
//!
//! - no batch is running, and the clients the last batch answered are back (below): an idle
//!   server holds no request back, so under light load a lone request costs what it costs
//!   unbatched (the adaptive part);
//! - `max_size` items are queued;
//! - the oldest item has waited `max_wait` (a timer thread watches the deadline).
//!
//! While one batch runs, the requests arriving meanwhile queue up, so batches grow with the
//! load by themselves. When a batch answers, its clients are about to send their next
//! requests: the next batch waits for them — until the queue holds what it held then plus the
//! items just answered (at most `max_size`), or `max_wait` after that answer, whichever comes
//! first. Without that wait the clients split into groups that take turns (at 64 clients,
//! batches of about 20, or 11 per worker with two), each group paying the call's fixed cost
//! (most of a scikit-learn `predict`); with it they gather into batches of all of them, and
//! the cores the HTTP work also needs keep that cost: +14% req/s with two workers at 64
//! clients, +40% at 8 (bench/README.md). A lone client is never held back by it (the one item
//! it waits for is that client's own), an item after a lull longer than `max_wait` goes at
//! once, and a client that does not come back costs the others `max_wait` at most — the bound
//! the user set for an item's wait. The results are split back per item, and each request is
//! answered once all its items are (a `KServe` request's instances may span several batches).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Instant;

use super::bind::Args;
use super::idle::{self, Idle, Parking};
use super::json::Json;
use super::metrics::Metrics;
use super::params::BatchSpec;
use super::service::{CallError, Outcome};
use super::{Invoke, Reply};

pub struct Batcher {
    shared: Arc<Shared>,
}

struct Shared {
    spec: BatchSpec,
    inner: Arc<dyn Invoke>,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Item>,
    /// Batches handed to `inner` and not answered yet.
    running: usize,
    /// While none runs: the queue length at which the next batch goes ...
    gather: usize,
    /// ... or the moment it goes anyway (the last batch's answer plus its call's duration).
    gather_until: Option<Instant>,
    /// The process whose timer thread is running: threads do not survive a fork, so a forked
    /// worker starts its own.
    timer: Option<u32>,
    /// The timer sleeps until notified: the queue has been empty for a while.
    timer_parked: bool,
    closed: bool,
}

impl Parking for State {
    fn parked(&mut self) -> &mut bool {
        &mut self.timer_parked
    }

    fn closed(&self) -> bool {
        self.closed
    }
}

struct Item {
    request: Arc<Request>,
    /// Which of its request's items this is.
    index: usize,
    value: Json,
    /// The call's other arguments: items batch together only when these are equal.
    rest: Args,
    queued: Instant,
}

/// One request's items, answered together once all are done (or at the first error).
struct Request {
    state: Mutex<RequestState>,
}

struct RequestState {
    reply: Option<Box<dyn Reply>>,
    results: Vec<Option<Vec<u8>>>,
    left: usize,
}

impl Request {
    fn lock(&self) -> MutexGuard<'_, RequestState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Nobody waits any more: answered already (an error), timed out, or the client left.
    fn abandoned(&self) -> bool {
        self.lock().reply.as_ref().is_none_or(|r| r.abandoned())
    }

    fn fill(&self, index: usize, result: Vec<u8>) {
        let mut st = self.lock();
        if st.reply.is_none() || st.results[index].is_some() {
            return;
        }
        st.results[index] = Some(result);
        st.left -= 1;
        if st.left > 0 {
            return;
        }
        let reply = st.reply.take();
        let results = std::mem::take(&mut st.results);
        drop(st);
        if let Some(reply) = reply {
            reply.send(Ok(results.into_iter().flatten().collect()));
        }
    }

    fn fail(&self, err: CallError) {
        let reply = self.lock().reply.take();
        if let Some(reply) = reply {
            reply.send(Err(err));
        }
    }
}

impl Batcher {
    pub fn new(spec: BatchSpec, inner: Arc<dyn Invoke>, metrics: Arc<Metrics>) -> Self {
        Self {
            shared: Arc::new(Shared {
                spec,
                inner,
                metrics,
                state: Mutex::new(State::default()),
                wake: Condvar::new(),
            }),
        }
    }

    /// Hand over everything queued now, and every later item at once (the server is shutting
    /// down: nothing may wait for a timer that is about to stop).
    pub fn close(&self) {
        let shared = &self.shared;
        let ready = {
            let mut st = shared.lock();
            st.closed = true;
            shared.wake.notify_all();
            shared.take_ready(&mut st, Instant::now())
        };
        shared.dispatch(ready);
    }
}

impl Invoke for Batcher {
    fn invoke(&self, calls: Vec<Args>, reply: Box<dyn Reply>) {
        if calls.is_empty() {
            return reply.send(Ok(Vec::new()));
        }
        let shared = &self.shared;
        let request = Arc::new(Request {
            state: Mutex::new(RequestState {
                reply: Some(reply),
                results: vec![None; calls.len()],
                left: calls.len(),
            }),
        });
        let queued = Instant::now();
        let mut items = Vec::with_capacity(calls.len());
        for (index, args) in calls.into_iter().enumerate() {
            let Some((value, rest)) = split(args, &shared.spec.parameter) else {
                return request.fail(CallError::Internal(format!(
                    "the call has no item for the batch parameter `{}`",
                    shared.spec.parameter
                )));
            };
            items.push(Item {
                request: request.clone(),
                index,
                value,
                rest,
                queued,
            });
        }
        let ready = {
            let mut st = shared.lock();
            idle::unpark(&mut *st, &shared.wake);
            st.queue.extend(items);
            shared.start_timer(&mut st);
            shared.take_ready(&mut st, queued)
        };
        shared.dispatch(ready);
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn start_timer(self: &Arc<Self>, st: &mut State) {
        let pid = std::process::id();
        // With no wait every item is due as it arrives: nothing for a timer to do.
        if st.timer == Some(pid) || st.closed || self.spec.max_wait.is_zero() {
            return;
        }
        let shared = self.clone();
        let spawned = thread::Builder::new()
            .name("takeout-batcher".into())
            .spawn(move || shared.timer());
        // Without the thread a batch still goes when the running one answers or fills up;
        // only the deadline of a queue that nothing else moves would be missed.
        if spawned.is_ok() {
            st.timer = Some(pid);
        }
    }

    /// Hands over the batches whose oldest item reached `max_wait` while another batch runs.
    /// While requests come and go it polls an empty queue every `max_wait` (a notification
    /// each time the queue fills again would cost a wake-up per batch); after a quiet spell
    /// it sleeps until `invoke` wakes it.
    fn timer(self: &Arc<Self>) {
        let pid = std::process::id();
        let mut st = self.lock();
        let mut idle = Idle::new();
        loop {
            if st.closed || st.timer != Some(pid) {
                return;
            }
            let Some(first) = st.queue.front() else {
                st = idle.wait(&self.wake, st, self.spec.max_wait);
                continue;
            };
            idle.busy();
            let due = match st.gather_until {
                Some(until) if st.running == 0 => until.min(first.queued + self.spec.max_wait),
                _ => first.queued + self.spec.max_wait,
            };
            let now = Instant::now();
            if now < due {
                st = self
                    .wake
                    .wait_timeout(st, due - now)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
                continue;
            }
            let ready = self.take_ready(&mut st, now);
            drop(st);
            self.dispatch(ready);
            st = self.lock();
        }
    }

    /// The batches that are due now (see the module's rules), taken off the queue.
    fn take_ready(&self, st: &mut State, now: Instant) -> Vec<Vec<Item>> {
        let mut ready = Vec::new();
        while let Some(first) = st.queue.front() {
            let gathered = st.queue.len() >= st.gather || st.gather_until.is_none_or(|t| now >= t);
            let due = (st.running == 0 && gathered)
                || st.closed
                || st.queue.len() >= self.spec.max_size
                || now.saturating_duration_since(first.queued) >= self.spec.max_wait;
            if !due {
                break;
            }
            let batch = self.form(st);
            st.gather = 0;
            st.gather_until = None;
            if !batch.is_empty() {
                st.running += 1;
                ready.push(batch);
            }
        }
        ready
    }

    /// Up to `max_size` items, oldest first, that share the oldest one's other arguments; the
    /// items of requests nobody waits for any more are dropped.
    fn form(&self, st: &mut State) -> Vec<Item> {
        let max = self.spec.max_size;
        let mut batch: Vec<Item> = Vec::with_capacity(st.queue.len().min(max));
        let mut keep = VecDeque::new();
        while let Some(item) = st.queue.pop_front() {
            if batch.len() == max {
                keep.push_back(item);
                keep.extend(st.queue.drain(..));
                break;
            }
            if !batch.is_empty() && item.rest != batch[0].rest {
                keep.push_back(item);
            } else if !item.request.abandoned() {
                batch.push(item);
            }
        }
        st.queue = keep;
        batch
    }

    fn dispatch(self: &Arc<Self>, ready: Vec<Vec<Item>>) {
        for items in ready {
            let now = Instant::now();
            self.metrics.batched(items.len());
            let mut values = Vec::with_capacity(items.len());
            let mut members = Vec::with_capacity(items.len());
            let mut rest = None;
            for item in items {
                self.metrics
                    .queued(now.saturating_duration_since(item.queued));
                values.push(item.value);
                members.push((item.request, item.index));
                rest.get_or_insert(item.rest);
            }
            let mut args = rest.unwrap_or_default();
            args.positional.insert(0, Json::Array(values));
            let reply = BatchReply {
                shared: self.clone(),
                members,
                released: false,
            };
            self.inner.invoke(vec![args], Box::new(reply));
        }
    }

    /// A batch of `answered` items answered (or was dropped unrun): the next one may go once
    /// its clients are back (the module's rules).
    fn finished(self: &Arc<Self>, answered: usize) {
        let ready = {
            let mut st = self.lock();
            st.running = st.running.saturating_sub(1);
            let now = Instant::now();
            if st.running == 0 && answered > 0 {
                st.gather = (st.queue.len() + answered).min(self.spec.max_size);
                // Never earlier than a queued item's own deadline, which the timer keeps.
                st.gather_until = Some(now + self.spec.max_wait);
            }
            self.take_ready(&mut st, now)
        };
        self.dispatch(ready);
    }
}

/// The item of the batch parameter and the call's other arguments. The binder puts the
/// first parameter first among the positional arguments, or among the keywords when the body
/// named it (then there are no positional ones before it).
fn split(mut args: Args, parameter: &str) -> Option<(Json, Args)> {
    if !args.positional.is_empty() {
        let value = args.positional.remove(0);
        return Some((value, args));
    }
    let at = args.keywords.iter().position(|(k, _)| k == parameter)?;
    let (_, value) = args.keywords.remove(at);
    Some((value, args))
}

/// The message of a batch call whose result has another length than its list of items.
pub fn length_message(got: usize, items: usize) -> String {
    let count = |n: usize, noun: &str| {
        if n == 1 {
            format!("1 {noun}")
        } else {
            format!("{n} {noun}s")
        }
    };
    format!(
        "the batch function returned {} for {}; return one result per item, in order",
        count(got, "result"),
        count(items, "item")
    )
}

struct BatchReply {
    shared: Arc<Shared>,
    members: Vec<(Arc<Request>, usize)>,
    /// The batcher knows this batch is over.
    released: bool,
}

impl Reply for BatchReply {
    fn send(mut self: Box<Self>, outcome: Outcome) {
        let members = std::mem::take(&mut self.members);
        // Before the clients have their answers: a client's next request must find the
        // batcher idle, not wait behind a batch that is over (at one client, that wait was
        // the 100-250 µs the interpreter thread takes to get from here to dropping `self`).
        self.released = true;
        self.shared.finished(members.len());
        match outcome {
            Ok(results) if results.len() == members.len() => {
                for ((request, index), result) in members.into_iter().zip(results) {
                    request.fill(index, result);
                }
            }
            Ok(results) => {
                let err = CallError::BatchResult(length_message(results.len(), members.len()));
                for (request, _) in members {
                    request.fail(err.clone());
                }
            }
            Err(err) => {
                for (request, index) in members {
                    // The item that had no JSON form is named by its place in its request.
                    let err = match &err {
                        CallError::Unserializable { kind, path, .. } => CallError::Unserializable {
                            kind: kind.clone(),
                            path: path.clone(),
                            call: index,
                        },
                        other => other.clone(),
                    };
                    request.fail(err);
                }
            }
        }
    }

    fn abandoned(&self) -> bool {
        self.members.iter().all(|(request, _)| request.abandoned())
    }
}

impl Drop for BatchReply {
    fn drop(&mut self) {
        // A batch skipped unrun (all its requests abandoned) is never sent.
        if !self.released {
            self.shared.finished(0);
        }
    }
}

#[cfg(test)]
mod tests;
