//! Coalescing concurrent calls into batches: one round trip (or one fsync) for many
//! callers, the way the journal's group commit shares an fsync.
//!
//! Every caller of [`Batcher::submit`] queues its item. If fewer batches than allowed
//! are in flight (one, or a few to keep a slow pipeline full), the caller becomes a
//! *leader*: it takes the oldest queued items and runs them as one batch on its own
//! thread, handing each caller its result; callers that arrive meanwhile queue up and
//! sleep. A leader leads until its own item has been run, then passes the lead to the
//! oldest waiting caller, which runs the next batch; nobody waiting, the lead lapses.
//!
//! So an item is always run by a batch that *started after it was queued*: a caller
//! never gets a result read before its call began (a query right after a buy sees the
//! buy). Alone, a caller leads a batch of one with no thread switch; under load the
//! batches grow by themselves to however many callers wait out one round trip.
//!
//! A caller may give a deadline ([`Batcher::submit_by`]): it is the caller's whole
//! budget, the wait in the queue included. A batch is sent with the earliest deadline
//! among its items (its oldest), so it ends in time for every one of them; an item
//! whose deadline passes while it is still queued leaves the queue and its caller hears
//! so at once, rather than waiting out the batch ahead and then a call of its own.
//!
//! Batches are sized by the bytes their items take as JSON ([`json_len`]), so that a
//! batch's body stays under the peer's body limit whatever the items hold.

use crate::http::limits::DEFAULT_MAX_BODY_BYTES;
use parking_lot::{Condvar, Mutex};
use serde::Serialize;
use std::collections::VecDeque;
use std::io;
use std::mem;
use std::sync::Arc;
use std::time::Instant;

/// Items a batch between services carries at most.
pub const MAX_ITEMS: usize = 256;
/// Bytes of JSON items a batch carries at most: a quarter of the peers' body limit,
/// which leaves room for the envelope and for the order service passing a batch on to
/// the catalog with larger items (a buy id and more per item, at most [`MAX_ITEMS`]).
pub const MAX_BYTES: usize = DEFAULT_MAX_BODY_BYTES / 4;

/// The bytes `item` takes as JSON, exactly as serde_json writes it, without writing it
/// anywhere. Escapes make this up to six times a string's length (`\u0001`).
pub fn json_len<T: Serialize + ?Sized>(item: &T) -> usize {
    struct Count(usize);
    impl io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing to a counter cannot fail, and our items are plain structs.
    let _ = serde_json::to_writer(&mut count, item);
    count.0
}

/// An item's share of a batch: its JSON and the comma that separates it from the next.
/// `None` when it alone would be over [`MAX_BYTES`]: it cannot travel in any batch.
pub fn share<T: Serialize + ?Sized>(item: &T) -> Option<usize> {
    Some(json_len(item) + 1).filter(|&bytes| bytes <= MAX_BYTES)
}

/// Splits a batch of `(item, context)` into its items and the context the batch travels
/// under (request id, deadline): its leader's, the first and oldest.
pub fn with_leader_id<T, C: Default>(batch: Vec<(T, C)>) -> (Vec<T>, C) {
    let mut leader = None;
    let items = batch
        .into_iter()
        .map(|(item, context)| {
            leader.get_or_insert(context);
            item
        })
        .collect();
    (items, leader.unwrap_or_default())
}

/// Runs the items of a batch that pass `check` and gives every item its outcome, in
/// order: its check's error, or its result from `run` (one per item it is given).
pub fn run_checked<T, R, E>(
    items: Vec<T>,
    check: impl Fn(&T) -> Result<(), E>,
    run: impl FnOnce(Vec<T>) -> Vec<Result<R, E>>,
) -> Vec<Result<R, E>> {
    let mut checks = Vec::with_capacity(items.len());
    let mut valid = Vec::with_capacity(items.len());
    for item in items {
        let checked = check(&item);
        if checked.is_ok() {
            valid.push(item);
        }
        checks.push(checked);
    }
    let mut results = run(valid).into_iter();
    checks
        .into_iter()
        .map(|checked| checked.and_then(|()| results.next().expect("one result per item run")))
        .collect()
}

/// A function that runs a batch: one result per item, in order.
pub type RunBatch<T, R> = Box<dyn Fn(Vec<T>) -> Vec<R> + Send + Sync>;

/// Coalesces concurrent [`submit`](Batcher::submit) calls into batches run by `run`.
pub struct Batcher<T, R> {
    gather: Mutex<Gather<T, R>>,
    run: RunBatch<T, R>,
    flights: usize,
    max_items: usize,
    max_bytes: usize,
}

struct Gather<T, R> {
    /// Items not yet taken into a batch, oldest first.
    queue: VecDeque<Queued<T, R>>,
    /// Leads held: callers leading a batch, or offered the lead and not yet awake.
    leads: usize,
}

struct Queued<T, R> {
    item: T,
    bytes: usize,
    /// When the caller stops waiting, if it gave a deadline.
    deadline: Option<Instant>,
    slot: Arc<Slot<R>>,
    /// This caller has been offered a lead (so no second lead goes to it).
    offered: bool,
}

/// Where a caller sleeps until it has its result or is offered the lead.
struct Slot<R> {
    state: Mutex<SlotState<R>>,
    ready: Condvar,
}

struct SlotState<R> {
    result: Option<R>,
    /// A finishing leader passed its lead here.
    lead: bool,
    /// The batch holding this item panicked.
    lost: bool,
    /// The item's deadline passed while it was queued: it left the queue unrun.
    expired: bool,
}

/// What a caller found when it woke.
struct Woke<R> {
    result: Option<R>,
    offered: bool,
    lost: bool,
    expired: bool,
}

impl<R> Slot<R> {
    fn update(&self, change: impl FnOnce(&mut SlotState<R>)) {
        change(&mut self.state.lock());
        self.ready.notify_one();
    }

    /// Takes what arrived, waiting for something to arrive when `block`, until `until`
    /// if given.
    fn take(&self, block: bool, until: Option<Instant>) -> Woke<R> {
        let mut state = self.state.lock();
        while block && state.result.is_none() && !state.lead && !state.lost && !state.expired {
            match until {
                Some(until) => {
                    if self.ready.wait_until(&mut state, until).timed_out() {
                        break;
                    }
                }
                None => self.ready.wait(&mut state),
            }
        }
        Woke {
            result: state.result.take(),
            offered: mem::take(&mut state.lead),
            lost: state.lost,
            expired: state.expired,
        }
    }
}

impl<T, R> Batcher<T, R> {
    /// A batcher that runs up to `flights` batches at once, each holding at most
    /// `max_items` items and, beyond the first item, at most `max_bytes` of their
    /// declared sizes (so that a batch's request stays under the peer's body limit).
    pub fn new(flights: usize, max_items: usize, max_bytes: usize, run: RunBatch<T, R>) -> Self {
        Batcher {
            gather: Mutex::new(Gather {
                queue: VecDeque::new(),
                leads: 0,
            }),
            run,
            flights: flights.max(1),
            max_items: max_items.max(1),
            max_bytes,
        }
    }

    /// Runs `item` in a batch and returns its result. `bytes` is its share of the
    /// batch's size. Blocks until a batch that started after this call has run.
    pub fn submit(&self, item: T, bytes: usize) -> R {
        self.submit_within(item, bytes, None)
            .expect("an item without a deadline never expires")
    }

    /// Like [`submit`](Batcher::submit), but `None` once `deadline` has passed with the
    /// item still queued; a batch holding the item is run with a deadline no later.
    pub fn submit_by(&self, item: T, bytes: usize, deadline: Instant) -> Option<R> {
        self.submit_within(item, bytes, Some(deadline))
    }

    /// A leader runs batches from the head of the queue until its own item has been
    /// run (by it or by another leader), then passes its lead to the oldest caller not
    /// yet offered one, or gives it up when nobody waits.
    fn submit_within(&self, item: T, bytes: usize, deadline: Option<Instant>) -> Option<R> {
        let slot = Arc::new(Slot {
            state: Mutex::new(SlotState {
                result: None,
                lead: false,
                lost: false,
                expired: false,
            }),
            ready: Condvar::new(),
        });
        let leads = {
            let mut gather = self.gather.lock();
            gather.queue.push_back(Queued {
                item,
                bytes,
                deadline,
                slot: Arc::clone(&slot),
                offered: false,
            });
            let lead = gather.leads < self.flights;
            gather.leads += usize::from(lead);
            lead
        };
        let mut lead = Lead {
            batcher: self,
            held: leads,
        };
        // Until the deadline the caller may leave the queue; once its item is in a batch
        // it waits for that batch, which ends by the deadline too.
        let mut until = deadline;
        loop {
            // A leader whose item is in another leader's batch, with nothing left to
            // run, waits for that batch like a follower (keeping its lead).
            let ran = lead.held && self.run_batch();
            let woke = slot.take(!ran, until);
            if woke.offered && lead.held {
                // Two leads met here (a leader finished while this one was leading):
                // one is enough, the other goes on.
                self.pass_lead();
            }
            lead.held |= woke.offered;
            if woke.lost {
                panic!("the batch this call was in panicked");
            }
            if woke.result.is_some() {
                return woke.result;
            }
            if woke.expired {
                return None;
            }
            if until.is_some_and(|until| Instant::now() >= until) {
                if self.withdraw(&slot) {
                    return None;
                }
                until = None;
            }
        }
    }

    /// Takes the caller's item out of the queue; false if a batch already holds it.
    fn withdraw(&self, slot: &Arc<Slot<R>>) -> bool {
        let mut gather = self.gather.lock();
        let Some(at) = gather
            .queue
            .iter()
            .position(|queued| Arc::ptr_eq(&queued.slot, slot))
        else {
            return false;
        };
        gather.queue.remove(at);
        true
    }

    /// Runs one batch from the head of the queue and hands out its results. Returns
    /// false when the queue was empty.
    fn run_batch(&self) -> bool {
        let batch = self.take_batch();
        if batch.is_empty() {
            return false;
        }
        let mut guard = LostOnPanic {
            slots: Vec::with_capacity(batch.len()),
        };
        let mut items = Vec::with_capacity(batch.len());
        for queued in batch {
            items.push(queued.item);
            guard.slots.push(queued.slot);
        }
        let count = items.len();
        let results = (self.run)(items);
        assert_eq!(
            results.len(),
            count,
            "a batch must give one result per item"
        );
        for (slot, result) in mem::take(&mut guard.slots).into_iter().zip(results) {
            slot.update(|state| state.result = Some(result));
        }
        true
    }

    /// The oldest queued items that fit in a batch, after dropping those whose deadline
    /// has passed (their callers are told, and return at once).
    fn take_batch(&self) -> Vec<Queued<T, R>> {
        let mut gather = self.gather.lock();
        let now = Instant::now();
        gather.queue.retain(|queued| {
            let expired = queued.deadline.is_some_and(|deadline| deadline <= now);
            if expired {
                queued.slot.update(|state| state.expired = true);
            }
            !expired
        });
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

    /// Passes a lead to the oldest queued caller not yet offered one, or gives it up.
    fn pass_lead(&self) {
        let mut gather = self.gather.lock();
        match gather.queue.iter_mut().find(|queued| !queued.offered) {
            Some(next) => {
                next.offered = true;
                next.slot.update(|state| state.lead = true);
            }
            None => gather.leads -= 1,
        }
    }
}

/// A lead a caller holds: passed on when the caller returns, or when it unwinds from
/// a panic, so that a lead is never lost and the queue never stalls.
struct Lead<'a, T, R> {
    batcher: &'a Batcher<T, R>,
    held: bool,
}

impl<T, R> Drop for Lead<'_, T, R> {
    fn drop(&mut self) {
        if self.held {
            self.batcher.pass_lead();
        }
    }
}

/// Wakes the callers of a batch that panicked with the news, rather than leaving them
/// asleep forever.
struct LostOnPanic<R> {
    slots: Vec<Arc<Slot<R>>>,
}

impl<R> Drop for LostOnPanic<R> {
    fn drop(&mut self) {
        for slot in &self.slots {
            slot.update(|state| state.lost = true);
        }
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
            1,
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
            2,
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
    fn no_more_batches_run_at_once_than_flights() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (r, m) = (Arc::clone(&running), Arc::clone(&most));
        let batcher = Arc::new(Batcher::new(
            2,
            4,
            1024,
            Box::new(move |items: Vec<u32>| {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(3));
                r.fetch_sub(1, Ordering::SeqCst);
                items
            }),
        ));
        let handles: Vec<_> = (0..12u32)
            .map(|t| {
                let batcher = Arc::clone(&batcher);
                thread::spawn(move || (0..10).all(|i| batcher.submit(t * 10 + i, 1) == t * 10 + i))
            })
            .collect();
        for handle in handles {
            assert!(handle.join().unwrap());
        }
        let most = most.load(Ordering::SeqCst);
        assert!(
            (1..=2).contains(&most),
            "{most} batches ran at once with 2 flights"
        );
    }

    /// Many callers on several flights, with batches of random duration: every call
    /// returns (no lead is lost), with its own result, from a batch that started after
    /// the call was queued.
    #[test]
    fn under_stress_every_caller_gets_its_own_fresh_result() {
        for flights in [1, 2, 3] {
            let clock = Arc::new(AtomicUsize::new(0));
            let ticks = Arc::clone(&clock);
            let batcher = Arc::new(Batcher::new(
                flights,
                5,
                1024,
                Box::new(move |items: Vec<(usize, usize)>| {
                    let started = ticks.fetch_add(1, Ordering::SeqCst);
                    thread::sleep(Duration::from_micros(fastrand::u64(0..300)));
                    items
                        .into_iter()
                        .map(|(id, queued_at)| (id, queued_at < started))
                        .collect()
                }),
            ));
            let (done, finished) = crossbeam_channel::unbounded();
            for t in 0..16usize {
                let (batcher, clock, done) =
                    (Arc::clone(&batcher), Arc::clone(&clock), done.clone());
                thread::spawn(move || {
                    for i in 0..150 {
                        let id = t * 1000 + i;
                        let queued_at = clock.fetch_add(1, Ordering::SeqCst);
                        let (got, fresh) = batcher.submit((id, queued_at), 1);
                        assert_eq!(got, id, "flights {flights}: another caller's result");
                        assert!(
                            fresh,
                            "flights {flights}: run by a batch that started earlier"
                        );
                    }
                    let _ = done.send(());
                });
            }
            for _ in 0..16 {
                finished
                    .recv_timeout(Duration::from_secs(60))
                    .unwrap_or_else(|_| panic!("flights {flights}: callers stalled or failed"));
            }
        }
    }

    #[test]
    fn batches_respect_the_item_and_byte_limits() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&sizes);
        let batcher = Arc::new(Batcher::new(
            1,
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

    /// Issue 11: batches were sized by raw name length, but `\u{1}` is six bytes as
    /// JSON, and a batch went over the peers' body limit.
    #[test]
    fn json_len_is_exactly_what_serde_json_writes() {
        for name in ["Tux", "\u{1}\u{1}", "\"\\", "é€😀", "\u{7f}\u{9f}", ""] {
            let name = name.repeat(50);
            assert_eq!(json_len(&name), serde_json::to_vec(&name).unwrap().len());
            assert_eq!(share(&name), Some(json_len(&name) + 1));
        }
        let poison = "\u{1}".repeat(MAX_BYTES / 6 + 1);
        assert_eq!(share(&poison), None, "too large for any batch alone");
    }

    /// Issue 11: a request queued behind a batch in flight waited for that batch and
    /// then for a call of its own. Its deadline covers the wait: it leaves the queue then.
    #[test]
    fn a_queued_item_leaves_at_its_deadline_while_a_batch_is_stuck() {
        let (release, released) = crossbeam_channel::bounded::<()>(0);
        let batcher = Arc::new(Batcher::new(
            1,
            8,
            1024,
            Box::new(move |items: Vec<u32>| {
                if items.contains(&1) {
                    let _ = released.recv();
                }
                items
            }),
        ));
        let stuck = {
            let batcher = Arc::clone(&batcher);
            thread::spawn(move || batcher.submit(1, 1))
        };
        // Wait until the first batch is running (its item has left the queue).
        while !batcher.gather.lock().queue.is_empty() || batcher.gather.lock().leads == 0 {
            thread::yield_now();
        }
        let deadline = Instant::now() + Duration::from_millis(100);
        assert_eq!(batcher.submit_by(2, 1, deadline), None);
        assert!(
            batcher.gather.lock().queue.is_empty(),
            "the item left the queue"
        );
        release.send(()).unwrap();
        assert_eq!(stuck.join().unwrap(), 1);
        let later = Instant::now() + Duration::from_secs(60);
        assert_eq!(batcher.submit_by(3, 1, later), Some(3));
    }

    #[test]
    fn a_panicking_batch_fails_its_callers_and_the_next_batch_still_runs() {
        let batcher = Arc::new(Batcher::new(
            1,
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
