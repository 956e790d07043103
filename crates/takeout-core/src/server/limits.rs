//! What one worker process holds for its clients at once, each with a bound: open connections
//! (`--max-connections`; idle keep-alive ones are closed first to make room), bytes of request
//! bodies being received (`--body-budget`), and the file descriptors both live on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::Notify;

use super::malloc;

/// File descriptors kept out of the connection cap: the bundle's files, the log, the event
/// loop, and the connections refused while at the cap.
pub(crate) const RESERVED_FDS: u64 = 128;

/// Raise the soft limit on open files to the hard one (Linux starts most processes at 1,024,
/// which 1,000 idle clients use up); returns the soft limit now in force, `None` if unknown.
pub(crate) fn raise_fd_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
        let limit = getrlimit(Resource::Nofile);
        // An unlimited hard limit still cannot be the soft one for open files (Linux caps it
        // at `fs.nr_open`, macOS at `OPEN_MAX`).
        let wanted = limit.maximum.unwrap_or(1 << 20);
        if limit.current.is_some_and(|soft| soft < wanted) {
            let raised = Rlimit {
                current: Some(wanted),
                maximum: limit.maximum,
            };
            if setrlimit(Resource::Nofile, raised).is_ok() {
                return Some(wanted);
            }
        }
        limit.current
    }
    #[cfg(not(unix))]
    None
}

/// One client connection, as the cap sees it.
pub(crate) struct Conn {
    /// Requests being handled on it now; a connection with none is idle.
    requests: AtomicUsize,
    /// When it last finished a request (or opened), in ns since the registry's epoch.
    last_active: AtomicU64,
    /// Set, and notified, when the connection is to close to make room.
    shedding: AtomicBool,
    pub(crate) shed: Notify,
}

impl Conn {
    /// Counts a request as running on this connection until dropped.
    pub(crate) fn enter(self: &Arc<Self>, conns: &Arc<Connections>) -> Busy {
        self.requests.fetch_add(1, Ordering::AcqRel);
        Busy {
            conn: self.clone(),
            conns: conns.clone(),
        }
    }
}

pub(crate) struct Busy {
    conn: Arc<Conn>,
    conns: Arc<Connections>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.conn
            .last_active
            .store(self.conns.now(), Ordering::Release);
        self.conn.requests.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The open connections of one server, at most `cap` (and, for a moment, those closing to
/// make room for newer ones).
pub(crate) struct Connections {
    cap: usize,
    open: Mutex<HashMap<u64, Arc<Conn>>>,
    next: AtomicU64,
    epoch: Instant,
    /// Notified whenever a connection has closed.
    closed: Notify,
}

/// A connection's place under the cap, given back when dropped.
pub(crate) struct Registered {
    id: u64,
    pub(crate) conn: Arc<Conn>,
    conns: Arc<Connections>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.conns.lock().remove(&self.id);
        self.conns.closed.notify_waiters();
    }
}

impl Connections {
    pub(crate) fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap: cap.max(1),
            open: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            epoch: Instant::now(),
            closed: Notify::new(),
        })
    }

    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// A place for a new connection: at the cap, the connection idle the longest is told to
    /// close to make room (the flag says so; [`Self::settle`] waits for it); `None` when every
    /// connection is busy.
    pub(crate) fn open(self: &Arc<Self>) -> Option<(Registered, bool)> {
        let mut open = self.lock();
        let closing = open
            .values()
            .filter(|c| c.shedding.load(Ordering::Acquire))
            .count();
        let shed = open.len() - closing >= self.cap;
        if shed && !Self::shed_in(&mut open) {
            return None;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            requests: AtomicUsize::new(0),
            last_active: AtomicU64::new(self.now()),
            shedding: AtomicBool::new(false),
            shed: Notify::new(),
        });
        open.insert(id, conn.clone());
        drop(open);
        let registered = Registered {
            id,
            conn,
            conns: self.clone(),
        };
        Some((registered, shed))
    }

    /// Close the connection idle the longest (out of file descriptors, say); false if none is.
    pub(crate) fn shed_idle(&self) -> bool {
        Self::shed_in(&mut self.lock())
    }

    fn shed_in(open: &mut HashMap<u64, Arc<Conn>>) -> bool {
        // A scan, not an ordered index: it runs only at the cap, and an index would cost every
        // request an update.
        let idle = open
            .values()
            .filter(|c| c.requests.load(Ordering::Acquire) == 0)
            .filter(|c| !c.shedding.load(Ordering::Acquire))
            .min_by_key(|c| c.last_active.load(Ordering::Acquire));
        let Some(conn) = idle else {
            return false;
        };
        conn.shedding.store(true, Ordering::Release);
        // A permit if its task is not waiting yet: it closes as soon as it looks.
        conn.shed.notify_one();
        true
    }

    /// Wait (at most `patience`) until the connections told to close have closed, so that the
    /// descriptors in use stay within the cap however fast clients connect.
    pub(crate) async fn settle(&self, patience: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            // Made before looking, so a close in between still wakes it.
            let closed = self.closed.notified();
            if self.lock().len() <= self.cap {
                return;
            }
            if tokio::time::timeout_at(deadline, closed).await.is_err() {
                return;
            }
        }
    }
}

/// Bytes of request bodies being received or parsed, across every connection of the server.
pub(crate) struct BodyBudget {
    limit: usize,
    used: AtomicUsize,
    /// The most ever reserved at once since memory was last given back.
    peak: AtomicUsize,
}

/// Bytes of the budget held for one body until dropped.
pub(crate) struct Reservation {
    budget: Arc<BodyBudget>,
    bytes: usize,
}

/// Once bodies that took this much at once are all gone, freed memory goes back to the
/// system: the allocator keeps a burst's pages otherwise, and the process stays that large.
const TRIM_AFTER: usize = 32 << 20;

/// A body without a declared length reserves in steps this large, not per chunk.
const STEP: usize = 64 << 10;

impl BodyBudget {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        })
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    fn take(&self, n: usize) -> bool {
        let taken = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&total| total <= self.limit)
            });
        match taken {
            Ok(before) => {
                self.peak.fetch_max(before + n, Ordering::AcqRel);
                true
            }
            Err(_) => false,
        }
    }

    /// `n` bytes for a body (its declared length, or 0); `None` past the budget.
    pub(crate) fn reserve(self: &Arc<Self>, n: usize) -> Option<Reservation> {
        self.take(n).then(|| Reservation {
            budget: self.clone(),
            bytes: n,
        })
    }
}

impl Reservation {
    /// Make the reservation cover `total` bytes; false past the budget.
    pub(crate) fn cover(&mut self, total: usize) -> bool {
        let Some(more) = total.checked_sub(self.bytes).filter(|&n| n > 0) else {
            return true;
        };
        let step = more.next_multiple_of(STEP);
        for n in [step, more] {
            if self.budget.take(n) {
                self.bytes += n;
                return true;
            }
        }
        false
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let budget = &self.budget;
        let left = budget.used.fetch_sub(self.bytes, Ordering::AcqRel) - self.bytes;
        if left == 0
            && budget.peak.load(Ordering::Acquire) >= TRIM_AFTER
            && budget.peak.swap(0, Ordering::AcqRel) >= TRIM_AFTER
        {
            trim_soon();
        }
    }
}

/// Give freed memory back on a thread of its own: trimming a large heap takes milliseconds,
/// which the HTTP thread must not spend.
fn trim_soon() {
    static TRIMMING: AtomicBool = AtomicBool::new(false);
    if TRIMMING.swap(true, Ordering::AcqRel) {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("takeout-trim".into())
        .spawn(|| {
            malloc::trim();
            TRIMMING.store(false, Ordering::Release);
        });
    if spawned.is_err() {
        TRIMMING.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_shared_and_given_back() {
        let budget = BodyBudget::new(100 << 10);
        let a = budget.reserve(60 << 10).expect("fits");
        assert!(budget.reserve(60 << 10).is_none());
        let mut b = budget.reserve(0).expect("nothing reserved yet");
        assert!(b.cover(30 << 10));
        assert!(!b.cover(50 << 10));
        drop(a);
        assert!(b.cover(90 << 10));
        drop(b);
        assert_eq!(budget.used.load(Ordering::Acquire), 0);
    }

    #[test]
    fn at_the_cap_the_longest_idle_connection_makes_room() {
        let conns = Connections::new(2);
        let (first, shed) = conns.open().expect("room");
        assert!(!shed);
        let (second, _) = conns.open().expect("room");
        let busy = second.conn.enter(&conns);
        let (third, shed) = conns.open().expect("the idle one makes room");
        assert!(shed);
        // `first` is told to close, and counts until it has.
        assert!(block_on(first.conn.shed.notified()));
        assert_eq!(conns.len(), 3);
        drop(first);
        assert_eq!(conns.len(), 2);
        // The second is busy, the third idle: the third goes next.
        let (_fourth, shed) = conns.open().expect("the third is idle");
        assert!(shed);
        assert!(block_on(third.conn.shed.notified()));
        drop(busy);
        drop(third);
        assert_eq!(conns.len(), 2);
    }

    #[test]
    fn with_every_connection_busy_there_is_no_room() {
        let conns = Connections::new(1);
        let (only, _) = conns.open().expect("room");
        let _busy = only.conn.enter(&conns);
        assert!(conns.open().is_none());
        assert!(!conns.shed_idle());
    }

    /// True if `fut` completes within 100 ms.
    fn block_on(fut: impl std::future::Future<Output = ()>) -> bool {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_millis(100), fut)
                .await
                .is_ok()
        })
    }
}
