//! Which products a front-end caches over time: `GET /cache` polled while a run
//! goes on, turned into the evaluation's timeline (a bar while a product is cached).

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::plot::Timeline;
use super::session::Session;
use crate::peer::PeerAddr;

/// How often `GET /cache` is read during a cached run: often enough to see an
/// entry that lives a fraction of a second, rarely enough to be no load.
pub const POLL_EVERY: Duration = Duration::from_millis(100);

/// What `GET /cache` showed over one run.
#[derive(Debug, Clone, Default)]
pub struct Watch {
    /// How the timeline names the run ("p = 0.2").
    pub label: String,
    /// `(seconds since the run began, products cached)`, in time order; the last
    /// is read after the run ends.
    pub samples: Vec<(f64, Vec<String>)>,
    /// Reads of `GET /cache` that failed.
    pub failed: u64,
}

/// Runs `work` while a thread polls `GET /cache` at `front` every [`POLL_EVERY`];
/// returns what `work` returned and what the polls saw.
pub fn during<T>(
    front: &PeerAddr,
    timeout: Duration,
    label: String,
    work: impl FnOnce() -> T,
) -> (T, Watch) {
    let session = &Session::new(front, timeout);
    let start = Instant::now();
    let (out, mut watch) = thread::scope(|scope| {
        // Dropping the sender ends the poller's wait at once: the run's end is not
        // rounded up to the next poll.
        let (done, wait) = mpsc::channel::<()>();
        let poller = scope.spawn(move || {
            let mut watch = Watch {
                label,
                ..Watch::default()
            };
            loop {
                sample(session, start, &mut watch);
                if !matches!(
                    wait.recv_timeout(POLL_EVERY),
                    Err(mpsc::RecvTimeoutError::Timeout)
                ) {
                    return watch;
                }
            }
        });
        let out = work();
        drop(done);
        let watch = poller
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (out, watch)
    });
    sample(session, start, &mut watch);
    (out, watch)
}

/// One read of `GET /cache`, `start` being the run's beginning.
fn sample(session: &Session, start: Instant, watch: &mut Watch) {
    match session.cached_products() {
        Ok(names) => watch.samples.push((start.elapsed().as_secs_f64(), names)),
        Err(_) => watch.failed += 1,
    }
}

/// The timeline of `watches`, laid end to end in the order given: a row per name
/// in `names` (then any other name seen, in order of appearance), a bar from each
/// sample in which a product is cached to the next sample, and a mark at the start
/// of each run. A product that leaves the cache (evicted, or dropped on an
/// invalidation) ends its bar at the first sample without it.
pub fn timeline(watches: &[&Watch], names: &[String], title: String) -> Timeline {
    let mut rows: Vec<String> = names.to_vec();
    let mut bars: Vec<(usize, f64, f64)> = Vec::new();
    let mut marks = Vec::new();
    let mut offset = 0.0;
    for watch in watches {
        marks.push((offset, watch.label.clone()));
        for pair in watch.samples.windows(2) {
            let ((from, cached), (to, _)) = (&pair[0], &pair[1]);
            for name in cached {
                let row = match rows.iter().position(|r| r == name) {
                    Some(row) => row,
                    None => {
                        rows.push(name.clone());
                        rows.len() - 1
                    }
                };
                let (from, to) = (offset + from, offset + to);
                // Extend the row's last bar when it ends where this one starts.
                match bars
                    .iter_mut()
                    .rev()
                    .find(|(r, _, _)| *r == row)
                    .filter(|(_, _, end)| *end == from)
                {
                    Some(bar) => bar.2 = to,
                    None => bars.push((row, from, to)),
                }
            }
        }
        offset += watch.samples.last().map_or(0.0, |(t, _)| *t);
    }
    Timeline {
        title,
        x_label: "seconds of cached load (the runs end to end)".into(),
        rows,
        bars,
        marks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn bars_run_from_sample_to_sample_and_end_where_a_product_left() {
        let first = Watch {
            label: "p = 0".into(),
            samples: vec![
                (0.0, names(&["Tux"])),
                (1.0, names(&["Tux", "Whale"])),
                (2.0, names(&["Whale"])),
                (3.0, names(&[])),
            ],
            failed: 0,
        };
        let second = Watch {
            label: "p = 0.5".into(),
            samples: vec![(0.0, names(&["Lego"])), (0.5, names(&["Lego"]))],
            failed: 0,
        };
        let t = timeline(
            &[&first, &second],
            &names(&["Tux", "Whale", "Bird"]),
            "t".into(),
        );
        assert_eq!(t.rows, names(&["Tux", "Whale", "Bird", "Lego"]));
        // Tux cached at 0 and 1, gone at 2; Whale from 1 to 3; Lego in the second
        // run, which starts where the first ended (3 s).
        assert_eq!(t.bars, vec![(0, 0.0, 2.0), (1, 1.0, 3.0), (3, 3.0, 3.5)]);
        assert_eq!(
            t.marks,
            vec![(0.0, "p = 0".to_string()), (3.0, "p = 0.5".to_string())]
        );
    }
}
