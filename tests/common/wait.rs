//! Waiting for something to happen: poll a condition with a deadline, never sleep a
//! guessed time.

use std::thread;
use std::time::{Duration, Instant};

/// Polls `f` until it returns `Some`, or fails the test after `deadline`.
#[track_caller]
pub fn eventually<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}
