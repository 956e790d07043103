//! Memory that forked worker processes share: an anonymous `MAP_SHARED` mapping, made before
//! the fork, holding values that are valid when zeroed (the metrics' atomics).
//!
//! One of the crate's two `unsafe` places (with `malloc.rs`), kept to this file: nothing safe
//! in std or our dependencies maps memory that survives `fork` as shared, and atomics are the
//! one sound way for several processes to update the same words.
#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::ptr::NonNull;

/// Types made only of atomics (or other types whose all-zero bit pattern is a valid value
/// and which are safe to touch through `&T` from several threads and processes at once).
///
/// # Safety
/// Implementors must be valid when zeroed, `Sync`, and hold no pointers or heap data.
pub(crate) unsafe trait ZeroedShared: Sync {}

// SAFETY: `Block` is nested arrays and structs of `AtomicU32`/`AtomicU64`/`AtomicI64` only.
unsafe impl ZeroedShared for super::metrics::Block {}

pub(crate) struct Shared<T: ZeroedShared> {
    ptr: NonNull<T>,
    len: usize,
    _owns: PhantomData<T>,
}

// SAFETY: the mapping is only reached through `&T`, and `T: Sync`.
unsafe impl<T: ZeroedShared> Send for Shared<T> {}
// SAFETY: as above.
unsafe impl<T: ZeroedShared> Sync for Shared<T> {}

impl<T: ZeroedShared> Shared<T> {
    /// `len` zeroed values, or `None` when the system refuses the mapping.
    pub(crate) fn new(len: usize) -> Option<Self> {
        let bytes = std::mem::size_of::<T>().checked_mul(len)?;
        if bytes == 0 {
            return None;
        }
        // SAFETY: a fresh anonymous mapping; the kernel zero-fills it and aligns it to a page,
        // which satisfies the alignment of any atomic.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        Some(Self {
            ptr: NonNull::new(ptr.cast())?,
            len,
            _owns: PhantomData,
        })
    }

    pub(crate) fn as_slice(&self) -> &[T] {
        // SAFETY: `len` values of `T`, zero-initialised (valid per `ZeroedShared`), mapped
        // until `drop`, and only ever shared as `&T`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: ZeroedShared> Drop for Shared<T> {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, of this size; no reference outlives `self`.
        unsafe {
            libc::munmap(
                self.ptr.as_ptr().cast(),
                std::mem::size_of::<T>() * self.len,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;

    #[test]
    fn a_forked_child_writes_what_the_parent_reads() {
        let shared: Shared<super::super::metrics::Block> = Shared::new(2).unwrap();
        // Through the metrics' own API in the crate's tests; here only that the pages are
        // shared: a child process made by fork(2) bumps a counter the parent then sees.
        // SAFETY: the child only touches an atomic and exits at once.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            shared.as_slice()[1].bump_for_test();
            // SAFETY: ends the child without running the test harness's destructors.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waits for the child made above.
        unsafe { libc::waitpid(pid, &raw mut status, 0) };
        assert_eq!(shared.as_slice()[1].calls_for_test().load(Relaxed), 1);
        assert_eq!(shared.as_slice()[0].calls_for_test().load(Relaxed), 0);
    }
}
