//! Coalescing concurrent calls into batches: one round trip (or one fsync) for many
//! callers, the way the journal's group commit shares an fsync.
//!
//! Every caller of [`Batcher::submit`] queues its item. If no batch is in flight, the
//! caller becomes the *leader*: it takes everything queued (its own item first) and
//! runs it as one batch on its own thread; callers that arrive meanwhile queue up and
//! sleep. When the batch is done the leader hands each follower its result and, if
//! items queued up during the flight, wakes the oldest of them to lead the next batch.
//!
//! So an item is always run by a batch that *started after it was queued*: a caller
//! never gets a result read before its call began (a query right after a buy sees the
//! buy). Alone, a caller leads a batch of one with no thread switch; under load the
//! batches grow by themselves to however many callers wait out one round trip.

use parking_lot::{Condvar, Mutex};
use std::mem;
use std::sync::Arc;

/// A function that runs a batch: one result per item, in order.
pub type RunBatch<T, R> = Box<dyn Fn(Vec<T>) -> Vec<R> + Send + Sync>;

/// Coalesces concurrent [`submit`](Batcher::submit) calls into batches run by `run`.
pub struct Batcher<T, R> {
    gather: Mutex<Gather<T, R>>,
    run: RunBatch<T, R>,
    max_items: usize,
    max_bytes: usize,
}

struct Gather<T, R> {
    queue: Vec<Queued<T, R>>,
    leading: bool,
}

struct Queued<T, R> {
    item: T,
    bytes: usize,
    slot: Arc<Slot<R>>,
}

/// Where a follower sleeps until the leader signals it.
struct Slot<R> {
    signal: Mutex<Option<Signal<R>>>,
    ready: Condvar,
}

enum Signal<R> {
    Done(R),
    Lead,
    /// The leader's batch panicked.
    Lost,
}

impl<R> Slot<R> {
    fn send(&self, signal: Signal<R>) {
        *self.signal.lock() = Some(signal);
        self.ready.notify_one();
    }

    fn wait(&self) -> Signal<R> {
        let mut signal = self.signal.lock();
        loop {
            if let Some(s) = signal.take() {
                return s;
            }
            self.ready.wait(&mut signal);
        }
    }
}

impl<T, R> Batcher<T, R> {
    /// A batcher whose batches hold at most `max_items` items and, beyond the first
    /// item, at most `max_bytes` of their declared sizes (so that a batch's request
    /// stays under the peer's body limit).
    pub fn new(max_items: usize, max_bytes: usize, run: RunBatch<T, R>) -> Self {
        Batcher {
            gather: Mutex::new(Gather {
                queue: Vec::new(),
                leading: false,
            }),
            run,
            max_items: max_items.max(1),
            max_bytes,
        }
    }

    /// Runs `item` in a batch and returns its result. `bytes` is its share of the
    /// batch's size. Blocks until a batch that started after this call has run.
    pub fn submit(&self, item: T, bytes: usize) -> R {
        let slot = Arc::new(Slot {
            signal: Mutex::new(None),
            ready: Condvar::new(),
        });
        let lead = {
            let mut gather = self.gather.lock();
            gather.queue.push(Queued {
                item,
                bytes,
                slot: Arc::clone(&slot),
            });
            !mem::replace(&mut gather.leading, true)
        };
        if !lead {
            match slot.wait() {
                Signal::Done(result) => return result,
                Signal::Lead => {}
                Signal::Lost => panic!("the batch this call was in panicked"),
            }
        }
        self.lead(&slot)
    }

    /// Takes the head of the queue (led by `own`, which is first), runs it, hands out
    /// the results and passes the lead on. Returns `own`'s result.
    fn lead(&self, own: &Arc<Slot<R>>) -> R {
        let batch = self.take_batch();
        debug_assert!(Arc::ptr_eq(&batch[0].slot, own));
        let mut handoff = Handoff {
            batcher: self,
            slots: Vec::with_capacity(batch.len()),
        };
        let mut items = Vec::with_capacity(batch.len());
        for queued in batch {
            items.push(queued.item);
            handoff.slots.push(queued.slot);
        }
        let count = items.len();
        let results = (self.run)(items);
        assert_eq!(
            results.len(),
            count,
            "a batch must give one result per item"
        );
        let mut slots = mem::take(&mut handoff.slots).into_iter();
        let mut results = results.into_iter();
        slots.next();
        let own_result = results.next();
        for (slot, result) in slots.zip(results) {
            slot.send(Signal::Done(result));
        }
        drop(handoff);
        own_result.expect("one result per item")
    }

    fn take_batch(&self) -> Vec<Queued<T, R>> {
        let mut gather = self.gather.lock();
        let mut bytes = 0;
        let mut take = 0;
        for queued in &gather.queue {
            if take == self.max_items || (take > 0 && bytes + queued.bytes > self.max_bytes) {
                break;
            }
            bytes += queued.bytes;
            take += 1;
        }
        gather.queue.drain(..take).collect()
    }

    /// After a batch (or a panic in one): the lead passes to the oldest queued caller.
    fn pass_lead(&self) {
        let mut gather = self.gather.lock();
        match gather.queue.first() {
            Some(next) => next.slot.send(Signal::Lead),
            None => gather.leading = false,
        }
    }
}

/// Passes the lead on when a batch ends, and if the batch panicked, wakes its
/// followers with the news rather than leaving them asleep forever.
struct Handoff<'a, T, R> {
    batcher: &'a Batcher<T, R>,
    slots: Vec<Arc<Slot<R>>>,
}

impl<T, R> Drop for Handoff<'_, T, R> {
    fn drop(&mut self) {
        for slot in self.slots.iter().skip(1) {
            slot.send(Signal::Lost);
        }
        self.batcher.pass_lead();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Barrier;
    use std::thread;
    use std::time::Duration;

    #[test]
    fn a_lone_caller_runs_a_batch_of_one() {
        let batcher = Batcher::new(
            8,
            1024,
            Box::new(|items: Vec<u32>| items.iter().map(|i| i * 2).collect()),
        );
        assert_eq!(batcher.submit(21, 1), 42);
        assert_eq!(batcher.submit(5, 1), 10);
    }

    #[test]
    fn concurrent_callers_share_batches_and_get_their_own_results() {
        let batches = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&batches);
        let batcher = Arc::new(Batcher::new(
            64,
            1 << 20,
            Box::new(move |items: Vec<u64>| {
                counted.fetch_add(1, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(5));
                items.iter().map(|i| i + 1000).collect()
            }),
        ));
        let barrier = Arc::new(Barrier::new(16));
        let handles: Vec<_> = (0..16u64)
            .map(|t| {
                let (batcher, barrier) = (Arc::clone(&batcher), Arc::clone(&barrier));
                thread::spawn(move || {
                    barrier.wait();
                    (0..20)
                        .map(|i| t * 100 + i)
                        .all(|item| batcher.submit(item, 1) == item + 1000)
                })
            })
            .collect();
        for handle in handles {
            assert!(handle.join().unwrap(), "a caller got someone else's result");
        }
        let batches = batches.load(Ordering::Relaxed);
        assert!(
            batches < 16 * 20,
            "{batches} batches for 320 calls: nothing was shared"
        );
    }

    #[test]
    fn batches_respect_the_item_and_byte_limits() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&sizes);
        let batcher = Arc::new(Batcher::new(
            3,
            100,
            Box::new(move |items: Vec<usize>| {
                seen.lock().push(items.clone());
                thread::sleep(Duration::from_millis(20));
                items
            }),
        ));
        let handles: Vec<_> = (0..10)
            .map(|i| {
                let batcher = Arc::clone(&batcher);
                thread::spawn(move || batcher.submit(i, if i == 5 { 500 } else { 40 }))
            })
            .collect();
        for (i, handle) in handles.into_iter().enumerate() {
            assert_eq!(handle.join().unwrap(), i);
        }
        for batch in sizes.lock().iter() {
            let bytes: usize = batch.iter().map(|&i| if i == 5 { 500 } else { 40 }).sum();
            assert!(batch.len() <= 3, "{batch:?}");
            assert!(batch.len() == 1 || bytes <= 100, "{batch:?}");
        }
    }

    #[test]
    fn a_panicking_batch_fails_its_callers_and_the_next_batch_still_runs() {
        let batcher = Arc::new(Batcher::new(
            8,
            1024,
            Box::new(|items: Vec<u32>| {
                thread::sleep(Duration::from_millis(10));
                if items.contains(&13) {
                    panic!("unlucky");
                }
                items
            }),
        ));
        let handles: Vec<_> = [13, 1, 2, 3]
            .into_iter()
            .map(|i| {
                let batcher = Arc::clone(&batcher);
                thread::spawn(move || batcher.submit(i, 1))
            })
            .collect();
        let outcomes: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
        assert!(outcomes[0].is_err(), "the batch holding 13 must fail");
        for (i, outcome) in outcomes.iter().enumerate().skip(1) {
            if let Ok(v) = outcome {
                assert_eq!(*v as usize, i);
            }
        }
        assert_eq!(batcher.submit(7, 1), 7, "the batcher must survive a panic");
    }
}
