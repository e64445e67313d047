//! A service's background work: a named thread that does one thing every period
//! until the service stops (the catalog's restocker, the order service's resolver,
//! the front-end's monitor).

use crossbeam_channel::{RecvTimeoutError, Sender};
use std::io;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// A running periodic thread. Dropping it stops the thread and waits for its current
/// round to end, so a service's `run` returns with nothing of it left running.
pub struct Periodic {
    /// Dropped to stop the thread: its wait between rounds ends at once.
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Whether the first round runs at once or after one period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstRound {
    /// At once (a probe: the state is wanted from the start).
    Now,
    /// After one period (a restock: nothing can be due before).
    AfterPeriod,
}

impl Periodic {
    /// Starts thread `name` doing `round` every `period`.
    pub fn start(
        name: &str,
        period: Duration,
        first: FirstRound,
        mut round: impl FnMut() + Send + 'static,
    ) -> io::Result<Periodic> {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let thread = thread::Builder::new().name(name.into()).spawn(move || {
            if first == FirstRound::Now {
                round();
            }
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(period) {
                round();
            }
        })?;
        Ok(Periodic {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Periodic {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
