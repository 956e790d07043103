//! The threads that run Python calls, and when they run.
//!
//! One thread at a time runs calls while they are short. It keeps its interpreter thread
//! state and the GIL from one queued call to the next, so a busy server pays for no GIL
//! hand-off between calls; other threads sleep. Only when no call has started or finished for
//! [`STALL`] while work waits (the function sleeps, does I/O, or runs long numpy code without
//! the GIL) does a watchdog wake another thread, and so on up to the pool size. Handing every
//! call to whichever thread is free instead cost a GIL hand-off per call: half the
//! throughput at 8 concurrent clients on two cores (18,500 against 36,000-48,000 req/s).
//!
//! Threads start with the server (after a worker process forks) and stop on [`Pool::close`];
//! they are never woken during interpreter shutdown, which would make them take the GIL of a
//! dying interpreter.
//!
//! The pool knows the interpreter only through [`Interpreter`] (attach, detach), so this logic
//! is tested under `cargo test` with a fake lock in place of the GIL; `takeout-py` implements
//! the trait with `pyo3`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::idle::{self, Idle, Parking};

/// No progress for this long with calls waiting: wake one more thread. `CPython`'s switch
/// interval: a thread that holds the GIL but is merely descheduled by the OS rarely stays
/// still that long, and a second thread contending for the GIL would cost the first one a
/// switch interval per hand-off.
const STALL: Duration = Duration::from_millis(5);

/// How long a thread that ran out of calls looks for the next one before it sleeps. At low
/// concurrency the next call is about one client round trip away, and waking a sleeping
/// thread costs tens of microseconds on a virtual CPU.
const SPIN: Duration = Duration::from_micros(100);

/// Entering and leaving the interpreter: the GIL for Python, a plain lock in the tests.
pub trait Interpreter: Send + Sync + 'static {
    /// What a task receives while its thread is attached (`Python<'py>`).
    type Token<'a>: Copy;

    /// Run `body` attached; a pool thread stays attached from one task to the next.
    fn attach<R>(&self, body: impl for<'a> FnOnce(Self::Token<'a>) -> R) -> R;

    /// From inside [`attach`](Self::attach): run `body` detached, so that other threads can
    /// attach meanwhile.
    fn detach<R: Send>(&self, token: Self::Token<'_>, body: impl FnOnce() -> R + Send) -> R;
}

/// What a pool thread does with one task, attached.
pub type Run<I, T> = Arc<dyn for<'a> Fn(<I as Interpreter>::Token<'a>, T) + Send + Sync>;

pub struct Pool<I, T> {
    interpreter: Arc<I>,
    queue: Arc<Queue<T>>,
    threads: usize,
}

impl<I: Interpreter, T: Send + 'static> Pool<I, T> {
    pub fn new(interpreter: I, threads: usize) -> Self {
        Self {
            interpreter: Arc::new(interpreter),
            queue: Arc::new(Queue {
                state: Mutex::new(QueueState {
                    tasks: VecDeque::new(),
                    active: 0,
                    idle: 0,
                    signals: 0,
                    started: false,
                    closed: false,
                    watchdog_parked: false,
                }),
                work: Condvar::new(),
                watch: Condvar::new(),
                epoch: Instant::now(),
                progress: AtomicU64::new(0),
                queued: AtomicUsize::new(0),
                spin: AtomicBool::new(true),
                calls: (0..threads.max(1)).map(|_| AtomicU64::new(0)).collect(),
            }),
            threads: threads.max(1),
        }
    }

    pub fn started(&self) -> bool {
        self.queue.lock().started
    }

    /// Start the threads (once; before any task).
    pub fn start(&self, run: &Run<I, T>) -> std::io::Result<()> {
        let mut st = self.queue.lock();
        if st.started || st.closed {
            return Ok(());
        }
        for i in 0..self.threads {
            let interpreter = self.interpreter.clone();
            let queue = self.queue.clone();
            let run = run.clone();
            thread::Builder::new()
                .name(format!("takeout-call-{i}"))
                .spawn(move || worker(&*interpreter, &queue, i, &*run))?;
            // Counted active until it first finds the queue empty and parks.
            st.active += 1;
        }
        let queue = self.queue.clone();
        thread::Builder::new()
            .name("takeout-watchdog".into())
            .spawn(move || queue.watchdog())?;
        st.started = true;
        Ok(())
    }

    /// Queue a task; it comes back when the pool is not running.
    pub fn push(&self, task: T) -> Result<(), T> {
        self.queue.push(task)
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Calls that have been running for longer than `age` and not returned yet. A function
    /// can block forever; this is how the server sees that its threads are gone.
    pub fn running_longer_than(&self, age: Duration) -> usize {
        let now = self.queue.now();
        self.queue
            .calls
            .iter()
            .map(|c| c.load(Ordering::Acquire))
            .filter(|&since| since != 0 && Duration::from_nanos(now.saturating_sub(since)) > age)
            .count()
    }

    /// Calls running or queued: none once every call has returned and nothing waits.
    pub fn busy(&self) -> usize {
        self.running_longer_than(Duration::ZERO) + self.queue.queued.load(Ordering::Acquire)
    }

    pub fn set_spin(&self, spin: bool) {
        self.queue.spin.store(spin, Ordering::Relaxed);
    }

    /// Let the threads finish what is queued, then exit.
    pub fn close(&self) {
        let mut st = self.queue.lock();
        st.closed = true;
        self.queue.work.notify_all();
        self.queue.watch.notify_all();
    }
}

struct QueueState<T> {
    tasks: VecDeque<T>,
    /// Threads running calls (or woken to).
    active: usize,
    /// Threads asleep, waiting for a signal.
    idle: usize,
    /// Wake-ups sent and not yet taken.
    signals: usize,
    started: bool,
    closed: bool,
    /// The watchdog sleeps until notified (the queue has been empty for a while).
    watchdog_parked: bool,
}

impl<T> Parking for QueueState<T> {
    fn parked(&mut self) -> &mut bool {
        &mut self.watchdog_parked
    }

    fn closed(&self) -> bool {
        self.closed
    }
}

struct Queue<T> {
    state: Mutex<QueueState<T>>,
    work: Condvar,
    watch: Condvar,
    epoch: Instant,
    /// When a call last started or finished, in ns since `epoch`.
    progress: AtomicU64,
    /// `tasks.len()`, readable without the lock by a spinning thread.
    queued: AtomicUsize,
    /// Look for the next call a while before sleeping (`Server(spin=...)`).
    spin: AtomicBool,
    /// Per thread: when its call started (ns since `epoch`, at least 1), 0 between calls.
    calls: Box<[AtomicU64]>,
}

impl<T> Queue<T> {
    fn lock(&self) -> MutexGuard<'_, QueueState<T>> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn touch(&self) -> u64 {
        let now = self.now();
        self.progress.store(now, Ordering::Release);
        now
    }

    fn since_progress(&self) -> Duration {
        let last = Duration::from_nanos(self.progress.load(Ordering::Acquire));
        self.epoch.elapsed().saturating_sub(last)
    }

    fn push(&self, task: T) -> Result<(), T> {
        let mut st = self.lock();
        if st.closed || !st.started {
            return Err(task);
        }
        st.tasks.push_back(task);
        self.queued.store(st.tasks.len(), Ordering::Release);
        if st.active == 0 && st.signals == 0 {
            st.signals += 1;
            self.work.notify_one();
            // A thread is on its way: not a stall.
            let _ = self.touch();
        }
        idle::unpark(&mut *st, &self.watch);
        Ok(())
    }

    /// The next call, for a thread that holds the GIL.
    fn pop(&self) -> Option<T> {
        if self.queued.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut st = self.lock();
        let task = st.tasks.pop_front();
        self.queued.store(st.tasks.len(), Ordering::Release);
        task
    }

    /// Busy-wait (without the GIL) for a call, at most `budget`; true if one is queued.
    fn spin(&self, budget: Duration) -> bool {
        if !self.spin.load(Ordering::Relaxed) {
            return false;
        }
        let start = Instant::now();
        while self.queued.load(Ordering::Acquire) == 0 {
            if start.elapsed() > budget {
                return false;
            }
            // Yield rather than spin: with more busy threads than cores (several workers),
            // a pure spin would hold a core that another runnable thread is waiting for.
            thread::yield_now();
        }
        true
    }

    /// Sleep (without the GIL) until signalled; false once closed with nothing left to do.
    fn park(&self) -> bool {
        let mut st = self.lock();
        if !st.tasks.is_empty() {
            return true;
        }
        st.active -= 1;
        st.idle += 1;
        loop {
            while st.signals == 0 && !st.closed {
                st = self
                    .work
                    .wait(st)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            // Woken by the watchdog, but the running thread has moved on since: it was only
            // descheduled, and taking the GIL from it would slow both down.
            if st.closed || st.active == 0 || self.since_progress() >= STALL {
                break;
            }
            st.signals -= 1;
        }
        st.idle -= 1;
        if st.closed && st.tasks.is_empty() {
            return false;
        }
        st.signals = st.signals.saturating_sub(1);
        st.active += 1;
        true
    }

    /// Polls every [`STALL`] while calls come and go (a notification per call would cost a
    /// wake-up per call); after a quiet spell it sleeps until `push` wakes it.
    fn watchdog(&self) {
        let mut st = self.lock();
        let mut idle = Idle::new();
        let mut last_wake = Instant::now();
        loop {
            if st.closed {
                return;
            }
            if st.tasks.is_empty() {
                st = idle.wait(&self.watch, st, STALL);
                continue;
            }
            idle.busy();
            // One more thread per STALL at most, and only while no call moves.
            let stalled = self.since_progress().min(last_wake.elapsed());
            let wait = if stalled >= STALL {
                if st.idle > st.signals {
                    st.signals += 1;
                    self.work.notify_one();
                }
                last_wake = Instant::now();
                STALL
            } else {
                STALL.checked_sub(stalled).unwrap()
            };
            st = self
                .watch
                .wait_timeout(st, wait)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }
}

fn worker<I: Interpreter, T: Send>(
    interpreter: &I,
    queue: &Queue<T>,
    index: usize,
    run: &dyn for<'a> Fn(I::Token<'a>, T),
) {
    let call = &queue.calls[index];
    interpreter.attach(|token| loop {
        if let Some(task) = queue.pop() {
            call.store(queue.touch().max(1), Ordering::Release);
            run(token, task);
            call.store(0, Ordering::Release);
            queue.touch();
        } else if !interpreter.detach(token, || queue.spin(SPIN) || queue.park()) {
            break;
        }
    });
}

#[cfg(test)]
mod tests;
