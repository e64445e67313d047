//! The order log: intents, commits and aborts of buys, and the order numbers they took.
//!
//! A buy is two steps across two services, so it is recorded as a small protocol with
//! **presumed abort**:
//!
//! 1. `intent {buy, name, qty, key}`: durable *before* the catalog is asked, so that
//!    after any crash we know which buy ids may have taken stock. A buy id reaches the
//!    catalog only once its intent is durable.
//! 2. The catalog applies `buy` at most once (it remembers buy ids).
//! 3. `commit {buy, number, ...}`: durable *before* the reply; the number is taken here,
//!    in log order, so only successful buys take numbers. Or `abort {buy}` when the
//!    catalog refused (out of stock, unknown product), durable before the reply too.
//!
//! An intent with neither (a crash, a catalog that stopped answering, a commit that
//! could not be written) is *open*. It is settled as aborted, never committed: the
//! catalog is asked to resolve the buy id, which gives back its stock if it applied and
//! voids the id for good, and then `abort {buy}` is logged. So a buy whose reply was a
//! failure never becomes an order later, and nothing unacknowledged stays applied.
//!
//! A buy leaves the open set only once its outcome is durable, and the catalog is told
//! it may forget every id below the lowest open one ([`OrderLog::settled_below`]).
//!
//! Buy ids are never reused, across failures and restarts: ids are handed out from
//! blocks reserved by a `reserve {below}` record that is durable before any id of the
//! block reaches the catalog (it precedes the block's first intent), and a restart
//! continues above the last reserved block.
//!
//! An Idempotency-Key is remembered with a fingerprint of its request (name and
//! quantity), from the intent; its outcome is visible to a retry only once durable. A
//! storage failure is never a key's outcome: the key is forgotten, so a retry buys once.

use super::table::OrderTable;
use crate::failpoint::{self, Point};
use crate::store::{DirLock, Journal, Ticket};
use crate::wire::OrderView;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::io;
use std::path::Path;
use std::sync::Arc;

/// Idempotency keys remembered, oldest forgotten first. Retries come within seconds;
/// this bounds memory while covering hours of traffic at benchmark rates.
const MAX_KEYS: usize = 50_000;

/// Buy ids reserved by one `reserve` record: a restart skips what is left of a block.
const ID_BLOCK: u64 = 4096;

/// The longest refusal message a record keeps (the catalog's messages are short; this
/// bounds what a misbehaving peer can make us write).
const MAX_REFUSAL_MESSAGE: usize = 200;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Record {
    /// Buy ids below `below` may be handed out.
    Reserve { below: u64 },
    Intent {
        buy: u64,
        name: String,
        qty: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    Commit {
        buy: u64,
        number: u64,
        name: String,
        qty: u64,
    },
    Abort {
        buy: u64,
        /// The refusal a retry with the same key gets again; none when it should retry.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refusal: Option<Refusal>,
    },
}

/// A definitive refusal from the catalog (404, 409), kept for idempotent replays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// The catalog's message.
    pub message: String,
}

impl Refusal {
    /// A refusal as a record keeps it: the message cut to a bounded length.
    pub fn new(status: u16, message: &str) -> Refusal {
        let mut end = message.len().min(MAX_REFUSAL_MESSAGE);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        Refusal {
            status,
            message: message[..end].to_string(),
        }
    }
}

/// The outcome of a finished buy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It took this order number.
    Placed(u64),
    /// The catalog refused it.
    Refused(Refusal),
}

/// What [`OrderLog::begin`] decided.
#[derive(Debug)]
pub enum Begin {
    /// A new buy with this id; wait for the ticket before asking the catalog.
    Started(u64, Ticket),
    /// The key was seen with this request and its outcome is durable: answer it again.
    Replay(Outcome),
    /// The key's first request has not finished yet.
    InProgress,
    /// The key was used for a different request.
    KeyReused,
}

#[derive(Debug, Clone)]
struct Intent {
    name: Arc<str>,
    qty: u64,
    key: Option<String>,
    /// A request handler is working on it (else it waits for the resolver).
    in_flight: bool,
}

struct KeyEntry {
    /// Of the request that first used the key: a retry must be the same request.
    fingerprint: u64,
    /// `None` while that request is not settled durably.
    outcome: Option<Outcome>,
}

/// What identifies a request for its Idempotency-Key. Computed again at every replay,
/// so the hasher need only be stable within one build.
fn fingerprint(name: &str, qty: u64) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    (name, qty).hash(&mut hasher);
    hasher.finish()
}

struct State {
    /// Committed orders by number, with gaps for numbers never committed durably.
    orders: OrderTable,
    next_buy: u64,
    /// Ids below this are reserved by a `reserve` record.
    reserved_below: u64,
    /// Buys whose outcome is not durable yet.
    open: BTreeMap<u64, Intent>,
    keys: HashMap<String, KeyEntry>,
    key_order: VecDeque<String>,
}

impl State {
    fn remember_key(&mut self, key: String, fingerprint: u64) {
        let entry = KeyEntry {
            fingerprint,
            outcome: None,
        };
        if self.keys.insert(key.clone(), entry).is_none() {
            self.key_order.push_back(key);
            while self.key_order.len() > MAX_KEYS {
                if let Some(old) = self.key_order.pop_front() {
                    self.keys.remove(&old);
                }
            }
        }
    }

    /// Removes a settled buy; its key gets `outcome`, or is forgotten when `None`.
    fn finish(&mut self, buy: u64, outcome: Option<Outcome>) -> Option<Intent> {
        let intent = self.open.remove(&buy)?;
        if let Some(key) = &intent.key {
            match outcome {
                Some(outcome) => {
                    if let Some(entry) = self.keys.get_mut(key) {
                        entry.outcome = Some(outcome);
                    }
                }
                None => {
                    self.keys.remove(key);
                }
            }
        }
        Some(intent)
    }

    fn apply(&mut self, record: Record) {
        match record {
            Record::Reserve { below } => {
                self.reserved_below = self.reserved_below.max(below);
            }
            Record::Intent {
                buy,
                name,
                qty,
                key,
            } => {
                if let Some(key) = &key {
                    self.remember_key(key.clone(), fingerprint(&name, qty));
                }
                self.open_intent(buy, &name, qty, key, false);
                self.next_buy = self.next_buy.max(buy + 1);
            }
            Record::Commit {
                buy,
                number,
                name,
                qty,
            } => {
                self.finish(buy, Some(Outcome::Placed(number)));
                self.orders.place(number, &name, qty);
                self.next_buy = self.next_buy.max(buy + 1);
            }
            Record::Abort { buy, refusal } => {
                self.finish(buy, refusal.map(Outcome::Refused));
            }
        }
    }

    fn open_intent(
        &mut self,
        buy: u64,
        name: &str,
        qty: u64,
        key: Option<String>,
        in_flight: bool,
    ) {
        // Not interned: a name only becomes a shared copy once an order for it commits,
        // so that names of products that do not exist are not kept forever.
        let name = Arc::from(name);
        let intent = Intent {
            name,
            qty,
            key,
            in_flight,
        };
        self.open.insert(buy, intent);
    }

    /// Hands open buys back to the resolver (their outcome is not durable).
    fn release(&mut self, buys: impl IntoIterator<Item = u64>) {
        for buy in buys {
            if let Some(intent) = self.open.get_mut(&buy) {
                intent.in_flight = false;
            }
        }
    }
}

/// The order log and the state rebuilt from it.
pub struct OrderLog {
    _dir: DirLock,
    state: Mutex<State>,
    journal: Journal,
}

impl OrderLog {
    /// Opens (or creates) `orders.log` in `dir` and replays it, rebuilding the order
    /// table `orders.idx` from it.
    pub fn open(dir: &Path) -> io::Result<OrderLog> {
        let held = DirLock::take(dir, "orders.lock")?;
        let mut state = State {
            orders: OrderTable::create(&dir.join("orders.idx"))?,
            next_buy: 0,
            reserved_below: 0,
            open: BTreeMap::new(),
            keys: HashMap::new(),
            key_order: VecDeque::new(),
        };
        let journal = Journal::open_json(&dir.join("orders.log"), |record| {
            state.apply(record);
            Ok(())
        })?;
        // Never hand out an id of a block an earlier run reserved: whatever became of
        // it there, it is not ours to reuse.
        state.next_buy = state.next_buy.max(state.reserved_below);
        if let Err(e) = state.orders.flush() {
            crate::logging::warn(format!(
                "order: {e} (orders are served from memory until it can be written)"
            ));
        }
        Ok(OrderLog {
            _dir: held,
            state: Mutex::new(state),
            journal,
        })
    }

    /// Starts a buy: records its intent (or finds the key's earlier request).
    pub fn begin(&self, name: &str, qty: u64, key: Option<&str>) -> Begin {
        let mut state = self.state.lock();
        let fingerprint = fingerprint(name, qty);
        if let Some(key) = key {
            match state.keys.get(key) {
                Some(entry) if entry.fingerprint != fingerprint => return Begin::KeyReused,
                Some(KeyEntry {
                    outcome: Some(outcome),
                    ..
                }) => return Begin::Replay(outcome.clone()),
                Some(_) => return Begin::InProgress,
                None => state.remember_key(key.to_string(), fingerprint),
            }
        }
        let buy = state.next_buy;
        state.next_buy += 1;
        if buy >= state.reserved_below {
            // Durable with the intent that follows it: the journal keeps their order.
            state.reserved_below = buy + ID_BLOCK;
            self.journal.append_json(&Record::Reserve {
                below: state.reserved_below,
            });
        }
        let key = key.map(str::to_string);
        let ticket = self.journal.append_json(&Record::Intent {
            buy,
            name: name.to_string(),
            qty,
            key: key.clone(),
        });
        state.open_intent(buy, name, qty, key, true);
        Begin::Started(buy, ticket)
    }

    /// Waits until a record is on disk.
    pub fn wait(&self, ticket: Ticket) -> io::Result<()> {
        self.journal.wait_durable(ticket)
    }

    /// The intents of `buys` did not become durable: they never reached the catalog and
    /// never will, so they are forgotten (keys too: a retry starts afresh).
    pub fn forget(&self, buys: &[u64]) {
        let mut state = self.state.lock();
        for &buy in buys {
            state.finish(buy, None);
        }
        // The `reserve` before them may be lost too: the next intent reserves afresh.
        state.reserved_below = state.next_buy;
    }

    /// The catalog applied `buys`: each takes the next order number, durably, and is
    /// readable from then on (`None` for a buy that is not open). On `Err` nothing is
    /// committed and the buys are open, for the resolver to abort.
    pub fn commit_many(&self, buys: &[u64]) -> io::Result<Vec<Option<u64>>> {
        let (numbers, ticket) = self.append_commits(buys)?;
        failpoint::crash(Point::OrderCommitAppended);
        let durable = self.wait(ticket);
        self.finish_commits(buys, &numbers, durable)?;
        Ok(numbers)
    }

    /// The first half of [`commit_many`](Self::commit_many): numbers taken, commit
    /// records appended. The buys stay open (and below [`settled_below`]) meanwhile.
    ///
    /// [`settled_below`]: Self::settled_below
    fn append_commits(&self, buys: &[u64]) -> io::Result<(Vec<Option<u64>>, Ticket)> {
        let mut state = self.state.lock();
        if let Err(e) = failpoint::fail(Point::OrderBeforeCommit) {
            state.release(buys.iter().copied());
            return Err(e);
        }
        let mut numbers = Vec::with_capacity(buys.len());
        let mut last = self.journal.tail();
        for &buy in buys {
            let Some(intent) = state.open.get(&buy) else {
                numbers.push(None);
                continue;
            };
            let (name, qty) = (intent.name.to_string(), intent.qty);
            // Numbers follow the orders of the log; a gap is a commit that never
            // became durable (never acknowledged).
            let number = state.orders.reserve();
            last = self.journal.append_json(&Record::Commit {
                buy,
                number,
                name,
                qty,
            });
            numbers.push(Some(number));
        }
        Ok((numbers, last))
    }

    /// The second half: once `durable`, the buys are settled and their orders readable;
    /// otherwise they are handed to the resolver.
    fn finish_commits(
        &self,
        buys: &[u64],
        numbers: &[Option<u64>],
        durable: io::Result<()>,
    ) -> io::Result<()> {
        let mut state = self.state.lock();
        if let Err(e) = durable {
            state.release(buys.iter().copied());
            return Err(e);
        }
        for (&buy, number) in buys.iter().zip(numbers) {
            let Some(number) = *number else { continue };
            if let Some(intent) = state.finish(buy, Some(Outcome::Placed(number))) {
                state.orders.place(number, &intent.name, intent.qty);
            }
        }
        if let Err(e) = state.orders.flush() {
            crate::logging::warn(format!(
                "order: {e} (the orders are durable in the log and served from memory)"
            ));
        }
        Ok(())
    }

    /// Settles `buys` as aborted, durably: each with the catalog's refusal (a retry with
    /// its key gets it again) or none (voided: a retry starts afresh). On `Err` the
    /// buys stay open, for the resolver.
    pub fn abort_many(&self, buys: &[(u64, Option<Refusal>)]) -> io::Result<()> {
        if buys.is_empty() {
            return Ok(());
        }
        let ticket = {
            let mut state = self.state.lock();
            if let Err(e) = failpoint::fail(Point::OrderBeforeAbort) {
                state.release(buys.iter().map(|(buy, _)| *buy));
                return Err(e);
            }
            let mut last = self.journal.tail();
            for (buy, refusal) in buys {
                if state.open.contains_key(buy) {
                    last = self.journal.append_json(&Record::Abort {
                        buy: *buy,
                        refusal: refusal.clone(),
                    });
                }
            }
            last
        };
        failpoint::crash(Point::OrderAbortAppended);
        let durable = self.wait(ticket);
        let mut state = self.state.lock();
        match durable {
            Ok(()) => {
                for (buy, refusal) in buys {
                    state.finish(*buy, refusal.clone().map(Outcome::Refused));
                }
                drop(state);
                failpoint::crash(Point::OrderAfterAbortDurable);
                Ok(())
            }
            Err(e) => {
                state.release(buys.iter().map(|(buy, _)| *buy));
                Err(e)
            }
        }
    }

    /// Hands an open buy whose outcome is unknown to the resolver.
    pub fn release(&self, buy: u64) {
        self.state.lock().release([buy]);
    }

    /// Open buys that no request handler is working on.
    pub fn unresolved(&self) -> Vec<u64> {
        self.state
            .lock()
            .open
            .iter()
            .filter(|(_, i)| !i.in_flight)
            .map(|(buy, _)| *buy)
            .collect()
    }

    /// Every buy id below this has a durable outcome here: the catalog may forget them.
    pub fn settled_below(&self) -> u64 {
        let state = self.state.lock();
        state.open.keys().next().copied().unwrap_or(state.next_buy)
    }

    /// An order by number.
    pub fn get(&self, number: u64) -> io::Result<Option<OrderView>> {
        let state = self.state.lock();
        Ok(state.orders.get(number)?.map(|(name, quantity)| OrderView {
            number,
            name: name.to_string(),
            quantity,
        }))
    }

    /// Orders committed durably.
    pub fn count(&self) -> u64 {
        self.state.lock().orders.placed()
    }

    /// Whether the log can write: after a failed write the journal tries whether the
    /// disk takes writes again, so this turns true by itself, even with no buys.
    pub fn writable(&self) -> bool {
        self.journal.probe()
    }

    /// The journal, for metrics.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(log: &OrderLog, name: &str, key: Option<&str>) -> u64 {
        match log.begin(name, 1, key) {
            Begin::Started(buy, ticket) => {
                log.wait(ticket).unwrap();
                buy
            }
            other => panic!("{other:?}"),
        }
    }

    fn commit(log: &OrderLog, buy: u64) -> Option<u64> {
        log.commit_many(&[buy]).unwrap().pop().flatten()
    }

    fn out_of_stock() -> Option<Refusal> {
        Some(Refusal::new(409, "out of stock"))
    }

    #[test]
    fn numbers_only_for_commits_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let log = OrderLog::open(dir.path()).unwrap();
        let a = start(&log, "Tux", None);
        let b = start(&log, "Tux", None);
        let c = start(&log, "Bird", None);
        assert_eq!(commit(&log, a), Some(0));
        log.abort_many(&[(b, out_of_stock())]).unwrap();
        assert_eq!(commit(&log, c), Some(1));
        assert_eq!(commit(&log, c), None, "settled once");
        assert_eq!(log.count(), 2);
        let open = start(&log, "Whale", None);
        log.release(open);
        drop(log);
        let log = OrderLog::open(dir.path()).unwrap();
        assert_eq!(
            log.get(1).unwrap(),
            Some(OrderView {
                number: 1,
                name: "Bird".into(),
                quantity: 1
            })
        );
        assert_eq!(log.get(2).unwrap(), None);
        assert_eq!(log.count(), 2);
        assert_eq!(log.unresolved(), vec![open]);
        assert_eq!(log.settled_below(), open);
        log.abort_many(&[(open, None)]).unwrap();
        assert!(log.unresolved().is_empty());
        assert!(start(&log, "Tux", None) > open, "buy ids are never reused");
    }

    /// Finding 1 of issue 11: a buy whose commit is appended but not yet durable is
    /// still open, so no batch tells the catalog to forget it; a failed commit leaves
    /// it open for the resolver.
    #[test]
    fn settled_below_never_passes_a_buy_whose_outcome_is_not_durable() {
        let dir = tempfile::tempdir().unwrap();
        let log = OrderLog::open(dir.path()).unwrap();
        let first = start(&log, "Tux", Some("k"));
        let second = start(&log, "Tux", None);
        let (numbers, _) = log.append_commits(&[first]).unwrap();
        assert_eq!(log.settled_below(), first, "passed a buy not yet durable");
        let failed = Err(io::Error::other("disk full"));
        assert!(log.finish_commits(&[first], &numbers, failed).is_err());
        assert_eq!(log.settled_below(), first);
        assert_eq!(log.unresolved(), vec![first], "the resolver aborts it");
        assert!(log.get(0).unwrap().is_none() && log.count() == 0);
        assert!(matches!(log.begin("Tux", 1, Some("k")), Begin::InProgress));
        log.abort_many(&[(first, None)]).unwrap();
        assert_eq!(log.settled_below(), second);
        assert_eq!(commit(&log, second), Some(1), "0 was never acknowledged");
    }

    #[test]
    fn idempotency_keys_replay_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let log = OrderLog::open(dir.path()).unwrap();
        let buy = start(&log, "Tux", Some("k1"));
        assert!(matches!(log.begin("Tux", 1, Some("k1")), Begin::InProgress));
        commit(&log, buy);
        assert!(matches!(
            log.begin("Tux", 1, Some("k1")),
            Begin::Replay(Outcome::Placed(0))
        ));
        let voided = start(&log, "Tux", Some("k2"));
        log.abort_many(&[(voided, None)]).unwrap();
        assert!(
            matches!(log.begin("Tux", 1, Some("k2")), Begin::Started(..)),
            "a voided buy may be retried"
        );
        let refused = start(&log, "Tux", Some("k3"));
        log.abort_many(&[(refused, out_of_stock())]).unwrap();
        drop(log);
        let log = OrderLog::open(dir.path()).unwrap();
        assert!(matches!(
            log.begin("Tux", 1, Some("k1")),
            Begin::Replay(Outcome::Placed(0))
        ));
        assert!(matches!(
            log.begin("Tux", 1, Some("k3")),
            Begin::Replay(Outcome::Refused(r)) if Some(r.clone()) == out_of_stock()
        ));
    }

    /// Finding 12 of issue 11: a key reused with another body buys nothing, also
    /// after a restart.
    #[test]
    fn a_key_reused_for_a_different_request_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = OrderLog::open(dir.path()).unwrap();
        let buy = start(&log, "Tux", Some("k"));
        assert!(matches!(log.begin("Tux", 2, Some("k")), Begin::KeyReused));
        assert!(matches!(log.begin("Bird", 1, Some("k")), Begin::KeyReused));
        commit(&log, buy);
        drop(log);
        let log = OrderLog::open(dir.path()).unwrap();
        assert!(matches!(log.begin("Whale", 1, Some("k")), Begin::KeyReused));
        assert!(matches!(log.begin("Tux", 1, Some("k")), Begin::Replay(_)));
    }

    /// Finding 2 of issue 11: a key's outcome is visible only once durable, and a
    /// failed commit is never a key's outcome: the retry buys once, afresh.
    #[test]
    fn a_key_outcome_is_visible_only_once_durable() {
        let dir = tempfile::tempdir().unwrap();
        let log = OrderLog::open(dir.path()).unwrap();
        let buy = start(&log, "Tux", Some("k"));
        let (numbers, ticket) = log.append_commits(&[buy]).unwrap();
        assert!(matches!(log.begin("Tux", 1, Some("k")), Begin::InProgress));
        let failed = Err(io::Error::other("disk full"));
        assert!(log.finish_commits(&[buy], &numbers, failed).is_err());
        assert!(matches!(log.begin("Tux", 1, Some("k")), Begin::InProgress));
        log.abort_many(&[(buy, None)]).unwrap();
        let retry = start(&log, "Tux", Some("k"));
        let (numbers, ticket2) = log.append_commits(&[retry]).unwrap();
        assert!(ticket2 > ticket);
        assert!(matches!(log.begin("Tux", 1, Some("k")), Begin::InProgress));
        log.finish_commits(&[retry], &numbers, log.wait(ticket2))
            .unwrap();
        let Begin::Replay(Outcome::Placed(number)) = log.begin("Tux", 1, Some("k")) else {
            panic!("the durable outcome is replayed")
        };
        assert_eq!(log.get(number).unwrap().map(|o| o.quantity), Some(1));
    }

    /// Finding 3 of issue 11: ids handed out in one run are never handed out again
    /// after a restart, even when their intents never reached the disk.
    #[test]
    fn buy_ids_are_not_reused_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let log = OrderLog::open(dir.path()).unwrap();
        let durable = start(&log, "Tux", None);
        // Appended, never waited for: as if the disk had refused it.
        let Begin::Started(lost, _) = log.begin("Tux", 1, None) else {
            panic!()
        };
        log.forget(&[lost]);
        drop(log);
        let log = OrderLog::open(dir.path()).unwrap();
        let next = start(&log, "Tux", None);
        assert!(
            next > lost && next > durable,
            "{next} after {durable}, {lost}"
        );
    }
}
