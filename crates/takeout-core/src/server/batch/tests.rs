//! The batcher with a function double whose calls the test answers by hand, so each rule
//! (idle, full, deadline, grouping, errors) is seen in the order it happens.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::server::metrics::Metrics;

/// Hands every batch call to the test.
struct Held(Mutex<Sender<(Args, Box<dyn Reply>)>>);

impl Invoke for Held {
    fn invoke(&self, mut calls: Vec<Args>, reply: Box<dyn Reply>) {
        assert_eq!(calls.len(), 1, "one call per batch");
        let call = calls.pop().unwrap();
        self.0.lock().unwrap().send((call, reply)).unwrap();
    }
}

struct Answer(Sender<Outcome>);

impl Reply for Answer {
    fn send(self: Box<Self>, outcome: Outcome) {
        let _ = self.0.send(outcome);
    }
}

/// An answer that nobody waits for.
struct Gone;

impl Reply for Gone {
    fn send(self: Box<Self>, _: Outcome) {
        panic!("an abandoned request is not answered");
    }

    fn abandoned(&self) -> bool {
        true
    }
}

struct Rig {
    batcher: Batcher,
    calls: Receiver<(Args, Box<dyn Reply>)>,
    metrics: Arc<Metrics>,
}

fn rig(max_size: usize, max_wait: Duration) -> Rig {
    let (tx, rx) = channel();
    let metrics = Arc::new(Metrics::for_function("f", 1));
    let spec = BatchSpec {
        max_size,
        max_wait,
        parameter: "x".into(),
    };
    Rig {
        batcher: Batcher::new(spec, Arc::new(Held(Mutex::new(tx))), metrics.clone()),
        calls: rx,
        metrics,
    }
}

fn item(x: i64) -> Args {
    Args {
        positional: vec![Json::Int(x)],
        keywords: Vec::new(),
    }
}

fn with_scale(x: i64, scale: i64) -> Args {
    Args {
        positional: vec![Json::Int(x)],
        keywords: vec![("scale".into(), Json::Int(scale))],
    }
}

impl Rig {
    fn send(&self, calls: Vec<Args>) -> Receiver<Outcome> {
        let (tx, rx) = channel();
        self.batcher.invoke(calls, Box::new(Answer(tx)));
        rx
    }

    fn next(&self, within: Duration) -> Option<(Vec<i64>, Args, Box<dyn Reply>)> {
        let (mut args, reply) = self.calls.recv_timeout(within).ok()?;
        let Json::Array(items) = args.positional.remove(0) else {
            panic!("the first argument of a batch call is the list of items");
        };
        let items = items
            .into_iter()
            .map(|v| match v {
                Json::Int(n) => n,
                other => panic!("not an item: {other:?}"),
            })
            .collect();
        Some((items, args, reply))
    }

    fn none_within(&self, within: Duration) {
        assert!(self.calls.recv_timeout(within).is_err(), "no batch yet");
    }
}

/// The function's results: ten times each item, as encoded JSON.
fn times_ten(items: &[i64]) -> Vec<Vec<u8>> {
    items
        .iter()
        .map(|x| (x * 10).to_string().into_bytes())
        .collect()
}

fn results(rx: &Receiver<Outcome>) -> Vec<String> {
    let outcome = rx.recv_timeout(Duration::from_secs(5)).expect("answered");
    outcome
        .expect("a result")
        .into_iter()
        .map(|b| String::from_utf8(b).unwrap())
        .collect()
}

#[test]
fn an_idle_server_holds_a_lone_request_back_for_nothing() {
    let rig = rig(64, Duration::from_secs(30));
    let started = Instant::now();
    let answer = rig.send(vec![item(4)]);
    let (items, _, reply) = rig.next(Duration::from_secs(5)).expect("handed over");
    // Far below the 30 s wait: handed over because nothing else was running.
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(items, [4]);
    reply.send(Ok(times_ten(&items)));
    assert_eq!(results(&answer), ["40"]);
}

#[test]
fn requests_arriving_during_a_call_share_the_next_one_each_with_its_own_answer() {
    let rig = rig(64, Duration::from_secs(30));
    let first = rig.send(vec![item(1)]);
    let (items, _, running) = rig.next(Duration::from_secs(5)).unwrap();
    assert_eq!(items, [1]);
    let waiting: Vec<_> = (2..=6).map(|x| rig.send(vec![item(x)])).collect();
    rig.none_within(Duration::from_millis(50));
    running.send(Ok(times_ten(&items)));
    assert_eq!(results(&first), ["10"]);
    // The first client's next request: the batch it was waited for.
    let back = rig.send(vec![item(7)]);
    let (items, _, reply) = rig.next(Duration::from_secs(5)).unwrap();
    assert_eq!(items, [2, 3, 4, 5, 6, 7]);
    reply.send(Ok(times_ten(&items)));
    for (x, rx) in (2..=7).zip(waiting.iter().chain([&back])) {
        assert_eq!(results(rx), [format!("{}", x * 10)]);
    }
    let text = rig.metrics.render();
    assert!(text.contains("takeout_batch_size_count 2\n"), "{text}");
    assert!(text.contains("takeout_batch_size_sum 7\n"), "{text}");
    assert!(
        text.contains("takeout_batch_queue_wait_seconds_count 7\n"),
        "{text}"
    );
}

#[test]
fn a_full_queue_goes_at_once_in_chunks_of_max_size() {
    let rig = rig(4, Duration::from_secs(30));
    let _first = rig.send(vec![item(0)]);
    let (_, _, running) = rig.next(Duration::from_secs(5)).unwrap();
    // A KServe request with ten instances while a call runs.
    let answer = rig.send((1..=10).map(item).collect());
    let (a, _, ra) = rig.next(Duration::from_secs(5)).unwrap();
    let (b, _, rb) = rig.next(Duration::from_secs(5)).unwrap();
    assert_eq!((a.clone(), b.clone()), (vec![1, 2, 3, 4], vec![5, 6, 7, 8]));
    // The last two are not a full batch: they wait until no call is running.
    rig.none_within(Duration::from_millis(50));
    ra.send(Ok(times_ten(&a)));
    rb.send(Ok(times_ten(&b)));
    rig.none_within(Duration::from_millis(50));
    running.send(Ok(times_ten(&[0])));
    let _back = rig.send(vec![item(11)]);
    let (c, _, rc) = rig.next(Duration::from_secs(5)).unwrap();
    assert_eq!(c, [9, 10, 11]);
    rc.send(Ok(times_ten(&c)));
    let want: Vec<String> = (1..=10).map(|x| (x * 10).to_string()).collect();
    assert_eq!(results(&answer), want);
}

#[test]
fn a_partial_batch_goes_when_its_oldest_item_has_waited_max_wait() {
    let rig = rig(64, Duration::from_millis(100));
    let _first = rig.send(vec![item(0)]);
    let (_, _, _running) = rig.next(Duration::from_secs(5)).unwrap();
    let queued = Instant::now();
    let answers: Vec<_> = (1..=3).map(|x| rig.send(vec![item(x)])).collect();
    // The running call never answers: the deadline alone hands the three over.
    let (items, _, reply) = rig.next(Duration::from_secs(5)).unwrap();
    assert!(queued.elapsed() >= Duration::from_millis(100));
    assert_eq!(items, [1, 2, 3]);
    reply.send(Ok(times_ten(&items)));
    for (x, rx) in (1..=3).zip(&answers) {
        assert_eq!(results(rx), [format!("{}", x * 10)]);
    }
}

#[test]
fn only_items_with_equal_other_arguments_share_a_call() {
    // The first call's client does not come back: the next batch goes at its deadline.
    let rig = rig(64, Duration::from_millis(100));
    let _first = rig.send(vec![with_scale(0, 1)]);
    let (_, _, running) = rig.next(Duration::from_secs(5)).unwrap();
    let _a = rig.send(vec![with_scale(1, 2)]);
    let _b = rig.send(vec![with_scale(2, 3)]);
    let _c = rig.send(vec![with_scale(3, 2)]);
    running.send(Ok(times_ten(&[0])));
    let (items, rest, next) = rig.next(Duration::from_secs(5)).unwrap();
    assert_eq!(items, [1, 3]);
    assert_eq!(rest.keywords, [("scale".to_owned(), Json::Int(2))]);
    next.send(Ok(times_ten(&items)));
    let (items, rest, _) = rig.next(Duration::from_secs(5)).unwrap();
    assert_eq!(items, [2]);
    assert_eq!(rest.keywords, [("scale".to_owned(), Json::Int(3))]);
}

#[test]
fn a_result_of_another_length_fails_every_request_naming_both_lengths() {
    // The first call's client does not come back: the next batch goes at its deadline.
    let rig = rig(64, Duration::from_millis(100));
    let _first = rig.send(vec![item(0)]);
    let (_, _, running) = rig.next(Duration::from_secs(5)).unwrap();
    let a = rig.send(vec![item(1)]);
    let b = rig.send(vec![item(2), item(3)]);
    running.send(Ok(times_ten(&[0])));
    let (items, _, reply) = rig.next(Duration::from_secs(5)).unwrap();
    assert_eq!(items, [1, 2, 3]);
    reply.send(Ok(times_ten(&[1, 2])));
    let want = CallError::BatchResult(length_message(2, 3));
    for rx in [a, b] {
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            Err(want.clone())
        );
    }
    assert!(length_message(2, 3).contains("returned 2 results for 3 items"));
}

#[test]
fn a_raising_batch_fails_every_request_in_it_and_the_next_batch_still_runs() {
    // The first call's client does not come back: the next batch goes at its deadline.
    let rig = rig(64, Duration::from_millis(100));
    let _first = rig.send(vec![item(0)]);
    let (_, _, running) = rig.next(Duration::from_secs(5)).unwrap();
    let a = rig.send(vec![item(1)]);
    let b = rig.send(vec![item(2)]);
    running.send(Ok(times_ten(&[0])));
    let (_, _, reply) = rig.next(Duration::from_secs(5)).unwrap();
    let later = rig.send(vec![item(7)]);
    let raised = CallError::Raised {
        kind: "ValueError".into(),
        message: "bad batch".into(),
        traceback: None,
    };
    reply.send(Err(raised.clone()));
    for rx in [a, b] {
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            Err(raised.clone())
        );
    }
    let (items, _, reply) = rig.next(Duration::from_secs(5)).unwrap();
    assert_eq!(items, [7]);
    reply.send(Ok(times_ten(&items)));
    assert_eq!(results(&later), ["70"]);
}

#[test]
fn items_nobody_waits_for_are_left_out() {
    // The first call's client does not come back: the next batch goes at its deadline.
    let rig = rig(64, Duration::from_millis(100));
    let _first = rig.send(vec![item(0)]);
    let (_, _, running) = rig.next(Duration::from_secs(5)).unwrap();
    rig.batcher.invoke(vec![item(1)], Box::new(Gone));
    let kept = rig.send(vec![item(2)]);
    running.send(Ok(times_ten(&[0])));
    let (items, _, reply) = rig.next(Duration::from_secs(5)).unwrap();
    assert_eq!(items, [2]);
    reply.send(Ok(times_ten(&items)));
    assert_eq!(results(&kept), ["20"]);
}

#[test]
fn closing_hands_over_what_is_queued_at_once() {
    let rig = rig(64, Duration::from_secs(30));
    let _first = rig.send(vec![item(0)]);
    let (_, _, _running) = rig.next(Duration::from_secs(5)).unwrap();
    let waiting = rig.send(vec![item(5)]);
    rig.none_within(Duration::from_millis(30));
    rig.batcher.close();
    let (items, _, reply) = rig
        .next(Duration::from_millis(500))
        .expect("handed over on close");
    assert_eq!(items, [5]);
    reply.send(Ok(times_ten(&items)));
    assert_eq!(results(&waiting), ["50"]);
}

#[test]
fn the_item_may_come_by_keyword() {
    let args = Args {
        positional: Vec::new(),
        keywords: vec![("y".into(), Json::Int(1)), ("x".into(), Json::Int(9))],
    };
    let (value, rest) = split(args, "x").unwrap();
    assert_eq!(value, Json::Int(9));
    assert_eq!(rest.keywords, [("y".to_owned(), Json::Int(1))]);
}

#[test]
fn a_lone_client_is_not_held_back_after_its_answer_either() {
    let rig = rig(64, Duration::from_secs(30));
    for x in 1..=3 {
        let answer = rig.send(vec![item(x)]);
        // Within far less than the 30 s wait: the one item the batcher waits for is its own.
        let (items, _, reply) = rig.next(Duration::from_secs(5)).expect("handed over");
        assert_eq!(items, [x]);
        reply.send(Ok(times_ten(&items)));
        assert_eq!(results(&answer), [format!("{}", x * 10)]);
    }
}

#[test]
fn the_clients_a_batch_answered_are_waited_for_and_share_the_next_call() {
    let rig = rig(64, Duration::from_secs(30));
    let _first = rig.send(vec![item(0)]);
    let (items, _, running) = rig.next(Duration::from_secs(5)).unwrap();
    let _queued: Vec<_> = (1..=3).map(|x| rig.send(vec![item(x)])).collect();
    running.send(Ok(times_ten(&items)));
    // Three queued and one client just answered: the next batch waits for it ...
    rig.none_within(Duration::from_millis(50));
    let _back = rig.send(vec![item(4)]);
    // ... and goes as soon as it is back.
    let (items, _, running) = rig.next(Duration::from_secs(5)).unwrap();
    assert_eq!(items, [1, 2, 3, 4]);
    running.send(Ok(times_ten(&items)));
    let _again: Vec<_> = (5..=7).map(|x| rig.send(vec![item(x)])).collect();
    rig.none_within(Duration::from_millis(50));
    let _last = rig.send(vec![item(8)]);
    let (items, _, _) = rig.next(Duration::from_secs(5)).unwrap();
    assert_eq!(items, [5, 6, 7, 8]);
}

#[test]
fn a_client_that_does_not_come_back_holds_the_others_for_max_wait_at_most() {
    let rig = rig(64, Duration::from_millis(100));
    let _first = rig.send(vec![item(0)]);
    let (items, _, running) = rig.next(Duration::from_secs(5)).unwrap();
    let queued = Instant::now();
    let answer = rig.send(vec![item(1)]);
    running.send(Ok(times_ten(&items)));
    // The client of item 0 never sends again: item 1 goes at its own deadline.
    let (items, _, reply) = rig.next(Duration::from_secs(5)).expect("handed over");
    let waited = queued.elapsed();
    assert!(waited >= Duration::from_millis(100), "{waited:?}");
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    assert_eq!(items, [1]);
    reply.send(Ok(times_ten(&items)));
    assert_eq!(results(&answer), ["10"]);
}
