//! Helper threads that poll while work flows and sleep after a quiet spell (the pool's
//! watchdog, the batcher's timer): work that keeps coming costs them no wake-up per item, and
//! an idle server costs them nothing.

use std::sync::{Condvar, MutexGuard};
use std::time::{Duration, Instant};

/// This long without work, the thread sleeps until the side bringing work wakes it.
pub(crate) const QUIET: Duration = Duration::from_millis(100);

/// The two fields such a thread needs in the state its mutex guards.
pub(crate) trait Parking {
    fn parked(&mut self) -> &mut bool;
    fn closed(&self) -> bool;
}

/// When the thread last had work.
pub(crate) struct Idle(Instant);

impl Idle {
    pub(crate) fn new() -> Self {
        Self(Instant::now())
    }

    /// There is work: the quiet spell starts over.
    pub(crate) fn busy(&mut self) {
        self.0 = Instant::now();
    }

    /// Nothing to do: wait `period` (or a notification), or — after [`QUIET`] without work —
    /// until [`unpark`] or closing.
    pub(crate) fn wait<'a, S: Parking>(
        &mut self,
        cv: &Condvar,
        mut st: MutexGuard<'a, S>,
        period: Duration,
    ) -> MutexGuard<'a, S> {
        if self.0.elapsed() <= QUIET {
            return cv
                .wait_timeout(st, period.min(QUIET))
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        *st.parked() = true;
        while *st.parked() && !st.closed() {
            st = cv
                .wait(st)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        self.busy();
        st
    }
}

/// Work arrived: wake the thread if it sleeps past its quiet spell.
pub(crate) fn unpark<S: Parking>(st: &mut S, cv: &Condvar) {
    let parked = st.parked();
    if *parked {
        *parked = false;
        cv.notify_one();
    }
}
