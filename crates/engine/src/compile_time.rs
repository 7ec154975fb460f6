//! How long this thread's last [`crate::Engine::prepare`] spent compiling,
//! for the shim's metrics: `None` when the module was already prepared or
//! its compiled code came from the cache.
//!
//! A thread-local rather than a field of `Prepared`: a compile happens on
//! the thread that asked for it, deep in each engine's cache path, and the
//! one caller that cares (the shim's create) asks right after, on the same
//! thread; threading a value out through both engines' return types would
//! change every caller for the sake of one.

use std::cell::Cell;
use std::time::{Duration, Instant};

thread_local! {
    static LAST: Cell<Option<Duration>> = const { Cell::new(None) };
}

/// Clears what an earlier prepare on this thread left: call before
/// [`crate::Engine::prepare`], then [`take`] after it.
pub fn reset() {
    LAST.with(|last| last.set(None));
}

/// The compile time the last prepare on this thread recorded, cleared.
pub fn take() -> Option<Duration> {
    LAST.with(Cell::take)
}

/// Runs `compile`, recording how long it took on this thread.
#[cfg_attr(
    not(any(feature = "wasmtime", feature = "wasmedge")),
    allow(dead_code, reason = "used by the engines")
)]
pub(crate) fn timed<T>(compile: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let result = compile();
    LAST.with(|last| last.set(Some(started.elapsed())));
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_compile_is_taken_once_and_reset_clears_it() {
        reset();
        assert_eq!(take(), None);
        assert_eq!(timed(|| 7), 7);
        assert!(take().is_some());
        assert_eq!(take(), None);
        timed(|| ());
        reset();
        assert_eq!(take(), None);
        // Another thread's compile is not this thread's.
        std::thread::spawn(|| timed(|| ())).join().expect("thread");
        assert_eq!(take(), None);
    }
}
