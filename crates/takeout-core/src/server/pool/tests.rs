//! The pool with a plain lock in place of the GIL: queue order, waking a second thread when a
//! call blocks, the pool size, parking and waking, and closing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use super::{Interpreter, Pool, Run};

/// Long enough that a missing wake-up fails the test rather than slowing it down.
const PATIENCE: Duration = Duration::from_secs(10);

/// One thread attached at a time, released around `detach`: what the pool relies on the GIL
/// for.
#[derive(Default)]
struct FakeGil {
    holder: Mutex<Option<ThreadId>>,
    free: Condvar,
    /// Threads inside `attach`, attached or detached.
    threads: AtomicUsize,
}

impl FakeGil {
    fn acquire(&self) {
        let mut holder = self.holder.lock().unwrap();
        while holder.is_some() {
            holder = self.free.wait(holder).unwrap();
        }
        *holder = Some(thread::current().id());
    }

    fn release(&self) {
        let mut holder = self.holder.lock().unwrap();
        assert_eq!(
            *holder,
            Some(thread::current().id()),
            "released by a thread that does not hold it"
        );
        *holder = None;
        self.free.notify_one();
    }

    fn held_here(&self) -> bool {
        *self.holder.lock().unwrap() == Some(thread::current().id())
    }

    fn detached<R>(&self, body: impl FnOnce() -> R) -> R {
        self.release();
        let out = body();
        self.acquire();
        out
    }
}

impl Interpreter for Arc<FakeGil> {
    type Token<'a> = &'a FakeGil;

    fn attach<R>(&self, body: impl for<'a> FnOnce(&'a FakeGil) -> R) -> R {
        self.threads.fetch_add(1, Ordering::SeqCst);
        self.acquire();
        let out = body(self);
        self.release();
        self.threads.fetch_sub(1, Ordering::SeqCst);
        out
    }

    fn detach<R: Send>(&self, token: &FakeGil, body: impl FnOnce() -> R + Send) -> R {
        assert!(
            token.held_here(),
            "detach called by a thread that is not attached"
        );
        token.detached(body)
    }
}

type Job = Box<dyn FnOnce(&FakeGil) + Send>;

fn pool(threads: usize) -> (Arc<FakeGil>, Pool<Arc<FakeGil>, Job>) {
    let gil = Arc::new(FakeGil::default());
    let pool = Pool::new(gil.clone(), threads);
    let run: Run<Arc<FakeGil>, Job> = Arc::new(|gil: &FakeGil, job: Job| {
        assert!(gil.held_here(), "a task ran without the interpreter");
        job(gil);
    });
    pool.start(&run).unwrap();
    (gil, pool)
}

fn push(pool: &Pool<Arc<FakeGil>, Job>, job: impl FnOnce(&FakeGil) + Send + 'static) {
    assert!(pool.push(Box::new(job)).is_ok(), "the pool refused a task");
}

/// A task that waits, detached, until `release` is sent; reports on `started` and `done`.
fn blocking(started: Sender<()>, release: Receiver<()>, done: Sender<()>) -> Job {
    Box::new(move |gil: &FakeGil| {
        started.send(()).unwrap();
        gil.detached(|| release.recv_timeout(PATIENCE).unwrap());
        done.send(()).unwrap();
    })
}

fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < PATIENCE, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn runs_every_task_attached_in_queue_order() {
    let (_gil, pool) = pool(1);
    let order = Arc::new(Mutex::new(Vec::new()));
    let (done, finished) = mpsc::channel();
    for i in 0..200 {
        let order = order.clone();
        let done = done.clone();
        push(&pool, move |_| {
            order.lock().unwrap().push(i);
            done.send(()).unwrap();
        });
    }
    for _ in 0..200 {
        finished.recv_timeout(PATIENCE).unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (0..200).collect::<Vec<_>>());
    pool.close();
}

/// A call that waits without the interpreter (sleep, I/O) must not hold up the next one: the
/// watchdog wakes a second thread after [`super::STALL`] without progress.
fn blocked_call_gets_a_second_thread(idle_first: Duration) {
    let (_gil, pool) = pool(2);
    thread::sleep(idle_first);
    let (started_tx, started) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let (done_a_tx, done_a) = mpsc::channel();
    pool.push(blocking(started_tx, release_rx, done_a_tx))
        .ok()
        .unwrap();
    started.recv_timeout(PATIENCE).unwrap();

    let (done_b_tx, done_b) = mpsc::channel();
    push(&pool, move |_| done_b_tx.send(()).unwrap());
    done_b
        .recv_timeout(PATIENCE)
        .expect("the second call waited for the blocked one");
    assert!(
        done_a.try_recv().is_err(),
        "the first call finished before it was released"
    );

    release.send(()).unwrap();
    done_a.recv_timeout(PATIENCE).unwrap();
    pool.close();
}

#[test]
fn a_blocked_call_gets_a_second_thread() {
    blocked_call_gets_a_second_thread(Duration::ZERO);
}

/// After a quiet spell the watchdog sleeps; the next push must wake it.
#[test]
fn a_blocked_call_gets_a_second_thread_after_an_idle_spell() {
    blocked_call_gets_a_second_thread(Duration::from_millis(300));
}

#[test]
fn never_more_threads_than_the_pool_size() {
    let (_gil, pool) = pool(2);
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (release, release_rx) = mpsc::channel::<()>();
    let release_rx = Arc::new(Mutex::new(release_rx));
    let (done_tx, done) = mpsc::channel();
    for _ in 0..3 {
        let (running, most, release_rx, done_tx) = (
            running.clone(),
            most.clone(),
            release_rx.clone(),
            done_tx.clone(),
        );
        push(&pool, move |gil| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            gil.detached(|| release_rx.lock().unwrap().recv_timeout(PATIENCE).unwrap());
            running.fetch_sub(1, Ordering::SeqCst);
            done_tx.send(()).unwrap();
        });
    }
    wait_until("two calls run", || running.load(Ordering::SeqCst) == 2);
    // Twenty stall intervals: the watchdog had every chance to start a third call.
    thread::sleep(super::STALL * 20);
    assert_eq!(running.load(Ordering::SeqCst), 2);
    for _ in 0..3 {
        release.send(()).unwrap();
    }
    for _ in 0..3 {
        done.recv_timeout(PATIENCE).unwrap();
    }
    assert_eq!(most.load(Ordering::SeqCst), 2);
    pool.close();
}

/// A thread that ran out of calls spins, then parks; a later push must wake it, with and
/// without the spin.
#[test]
fn parked_threads_wake_for_calls_that_come_later() {
    for spin in [true, false] {
        let (_gil, pool) = pool(2);
        pool.set_spin(spin);
        let (done_tx, done) = mpsc::channel();
        for _ in 0..5 {
            // Far longer than the spin: every call finds the threads parked.
            thread::sleep(Duration::from_millis(20));
            let done_tx = done_tx.clone();
            push(&pool, move |_| done_tx.send(()).unwrap());
            done.recv_timeout(PATIENCE)
                .unwrap_or_else(|_| panic!("a call that came later never ran (spin={spin})"));
        }
        pool.close();
    }
}

#[test]
fn close_finishes_what_is_queued_then_stops_the_threads() {
    let (gil, pool) = pool(2);
    wait_until("both threads started", || {
        gil.threads.load(Ordering::SeqCst) == 2
    });
    let (started_tx, started) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let (done_tx, done) = mpsc::channel();
    pool.push(blocking(started_tx, release_rx, done_tx.clone()))
        .ok()
        .unwrap();
    started.recv_timeout(PATIENCE).unwrap();
    for _ in 0..5 {
        let done_tx = done_tx.clone();
        push(&pool, move |_| done_tx.send(()).unwrap());
    }
    pool.close();
    assert!(
        pool.push(Box::new(|_| {})).is_err(),
        "a closed pool took a task"
    );

    release.send(()).unwrap();
    for _ in 0..6 {
        done.recv_timeout(PATIENCE)
            .expect("a call queued before close was dropped");
    }
    wait_until("the threads exited", || {
        gil.threads.load(Ordering::SeqCst) == 0
    });
}

#[test]
fn a_pool_not_started_hands_tasks_back_and_starts_once() {
    let gil = Arc::new(FakeGil::default());
    let pool: Pool<Arc<FakeGil>, Job> = Pool::new(gil.clone(), 3);
    assert!(!pool.started());
    assert!(
        pool.push(Box::new(|_| {})).is_err(),
        "a pool that never started took a task"
    );

    let run: Run<Arc<FakeGil>, Job> = Arc::new(|gil: &FakeGil, job: Job| job(gil));
    pool.start(&run).unwrap();
    pool.start(&run).unwrap();
    assert!(pool.started());
    wait_until("three threads started", || {
        gil.threads.load(Ordering::SeqCst) == 3
    });
    thread::sleep(Duration::from_millis(20));
    assert_eq!(
        gil.threads.load(Ordering::SeqCst),
        3,
        "a second start added threads"
    );
    pool.close();
    wait_until("the threads exited", || {
        gil.threads.load(Ordering::SeqCst) == 0
    });
}

/// A call that never returns is visible: counted once it is older than the age asked about,
/// and gone from the count once it returns.
#[test]
fn counts_calls_running_longer_than_an_age() {
    let (_gil, pool) = pool(2);
    assert_eq!(pool.threads(), 2);
    assert_eq!(pool.running_longer_than(Duration::ZERO), 0);
    let (started_tx, started) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let (done_tx, done) = mpsc::channel();
    assert!(pool.push(blocking(started_tx, release_rx, done_tx)).is_ok());
    started.recv_timeout(PATIENCE).unwrap();
    assert_eq!(pool.busy(), 1);
    assert_eq!(pool.running_longer_than(Duration::from_secs(5)), 0);
    thread::sleep(Duration::from_millis(30));
    assert_eq!(pool.running_longer_than(Duration::from_millis(20)), 1);
    release.send(()).unwrap();
    done.recv_timeout(PATIENCE).unwrap();
    wait_until("the call is no longer counted", || pool.busy() == 0);
    assert_eq!(pool.running_longer_than(Duration::ZERO), 0);
    pool.close();
}
