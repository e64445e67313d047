//! The order log: intents, commits and aborts of buys, and the order numbers they took.
//!
//! A buy is two steps across two services, so it is recorded as a small protocol:
//!
//! 1. `intent {buy, name, qty, key}`: durable *before* the catalog is asked, so that
//!    after any crash we know which buy ids may have taken stock.
//! 2. The catalog applies `buy` at most once (it remembers buy ids).
//! 3. `commit {buy, number, ...}`: durable *before* the reply; the number is taken here,
//!    in log order, so only successful buys take numbers. Or `abort {buy}` when the
//!    catalog refused (out of stock, unknown product).
//!
//! An intent with neither (a crash, or a catalog that stopped answering) is *open*;
//! it is settled by asking the catalog to resolve the buy id: applied → commit with
//! the next number, otherwise the catalog voids the id for good → abort.

use super::table::OrderTable;
use crate::store::{DirLock, Journal, Ticket};
use crate::wire::OrderView;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::path::Path;
use std::sync::Arc;

/// Idempotency keys remembered, oldest forgotten first. Retries come within seconds;
/// this bounds memory while covering hours of traffic at benchmark rates.
const MAX_KEYS: usize = 50_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Record {
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
    /// The key was seen and finished: answer this again.
    Replay(Outcome),
    /// The key's first request has not finished yet.
    InProgress,
}

#[derive(Debug, Clone)]
struct Intent {
    name: Arc<str>,
    qty: u64,
    key: Option<String>,
    /// A request handler is working on it (else it waits for the resolver).
    in_flight: bool,
}

enum KeyState {
    Pending,
    Done(Outcome),
}

struct State {
    /// Orders by number, with gaps for numbers never committed (lost before durability).
    /// It keeps one shared copy of each product name ordered.
    orders: OrderTable,
    next_buy: u64,
    open: BTreeMap<u64, Intent>,
    keys: HashMap<String, KeyState>,
    key_order: VecDeque<String>,
}

impl State {
    fn remember_key(&mut self, key: String, state: KeyState) {
        if self.keys.insert(key.clone(), state).is_none() {
            self.key_order.push_back(key);
            while self.key_order.len() > MAX_KEYS {
                if let Some(old) = self.key_order.pop_front() {
                    self.keys.remove(&old);
                }
            }
        }
    }

    fn finish(&mut self, buy: u64, outcome: Option<Outcome>) -> Option<Intent> {
        let intent = self.open.remove(&buy)?;
        if let Some(key) = &intent.key {
            match outcome {
                Some(outcome) => self.remember_key(key.clone(), KeyState::Done(outcome)),
                None => {
                    self.keys.remove(key);
                }
            }
        }
        Some(intent)
    }

    fn apply(&mut self, record: Record) -> io::Result<()> {
        match record {
            Record::Intent {
                buy,
                name,
                qty,
                key,
            } => {
                let name = Arc::from(name);
                if let Some(key) = &key {
                    self.remember_key(key.clone(), KeyState::Pending);
                }
                self.open.insert(
                    buy,
                    Intent {
                        name,
                        qty,
                        key,
                        in_flight: false,
                    },
                );
                self.next_buy = self.next_buy.max(buy + 1);
            }
            Record::Commit {
                buy,
                number,
                name,
                qty,
            } => {
                self.finish(buy, Some(Outcome::Placed(number)));
                self.orders.place(number, &name, qty)?;
                self.next_buy = self.next_buy.max(buy + 1);
            }
            Record::Abort { buy, refusal } => {
                self.finish(buy, refusal.map(Outcome::Refused));
            }
        }
        Ok(())
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
            open: BTreeMap::new(),
            keys: HashMap::new(),
            key_order: VecDeque::new(),
        };
        let journal = Journal::open_json(&dir.join("orders.log"), |record| state.apply(record))?;
        state.orders.flush()?;
        Ok(OrderLog {
            _dir: held,
            state: Mutex::new(state),
            journal,
        })
    }

    /// Starts a buy: records its intent (or finds the key's earlier request).
    pub fn begin(&self, name: &str, qty: u64, key: Option<&str>) -> Begin {
        let mut state = self.state.lock();
        if let Some(key) = key {
            match state.keys.get(key) {
                Some(KeyState::Done(outcome)) => return Begin::Replay(outcome.clone()),
                Some(KeyState::Pending) => return Begin::InProgress,
                None => state.remember_key(key.to_string(), KeyState::Pending),
            }
        }
        let buy = state.next_buy;
        state.next_buy += 1;
        let key = key.map(str::to_string);
        let ticket = self.journal.append_json(&Record::Intent {
            buy,
            name: name.to_string(),
            qty,
            key: key.clone(),
        });
        // Not interned: a name only becomes a shared copy once an order for it commits,
        // so that names of products that do not exist are not kept forever.
        let name = Arc::from(name);
        state.open.insert(
            buy,
            Intent {
                name,
                qty,
                key,
                in_flight: true,
            },
        );
        Begin::Started(buy, ticket)
    }

    /// Waits until a record is on disk.
    pub fn wait(&self, ticket: Ticket) -> io::Result<()> {
        self.journal.wait_durable(ticket)
    }

    /// The catalog applied `buy`: takes the next order number, durably. `None` if the
    /// buy is not open (someone else settled it).
    pub fn commit(&self, buy: u64) -> io::Result<Option<u64>> {
        Ok(self.commit_many(&[buy])?.pop().flatten())
    }

    /// [`commit`](Self::commit) for many buys, with one wait for the disk.
    pub fn commit_many(&self, buys: &[u64]) -> io::Result<Vec<Option<u64>>> {
        let mut placed = Vec::with_capacity(buys.len());
        let mut last = None;
        {
            let mut state = self.state.lock();
            for &buy in buys {
                let Some(intent) = state.finish(buy, None) else {
                    placed.push(None);
                    continue;
                };
                // Numbers follow the orders of the log; a gap is a commit a crash lost
                // before it was durable (never acknowledged).
                let number = state.orders.reserve();
                if let Some(key) = intent.key.clone() {
                    state.remember_key(key, KeyState::Done(Outcome::Placed(number)));
                }
                last = Some(self.journal.append_json(&Record::Commit {
                    buy,
                    number,
                    name: intent.name.to_string(),
                    qty: intent.qty,
                }));
                placed.push(Some((number, intent.name, intent.qty)));
            }
        }
        if let Some(ticket) = last {
            self.journal.wait_durable(ticket)?;
        }
        // Readable only once durable: nobody sees an order a crash could still take back.
        let mut state = self.state.lock();
        let numbers = placed
            .into_iter()
            .map(|p| {
                p.map(|(number, name, qty)| {
                    state.orders.place(number, &name, qty)?;
                    Ok(number)
                })
                .transpose()
            })
            .collect::<io::Result<_>>()?;
        state.orders.flush()?;
        Ok(numbers)
    }

    /// The catalog refused `buy` (`refusal`), or voided it (`None`: a retry with the
    /// same key starts afresh).
    pub fn abort(&self, buy: u64, refusal: Option<Refusal>) {
        let mut state = self.state.lock();
        if state
            .finish(buy, refusal.clone().map(Outcome::Refused))
            .is_some()
        {
            // Not waited for: if lost, recovery finds the intent open and voids it again.
            self.journal.append_json(&Record::Abort { buy, refusal });
        }
    }

    /// Hands an open buy whose outcome is unknown to the resolver.
    pub fn release(&self, buy: u64) {
        if let Some(intent) = self.state.lock().open.get_mut(&buy) {
            intent.in_flight = false;
        }
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

    /// Every buy id below this is settled: the catalog may forget them.
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

    /// Orders committed (numbers handed out).
    pub fn count(&self) -> u64 {
        self.state.lock().orders.taken()
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

    #[test]
    fn numbers_only_for_commits_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let log = OrderLog::open(dir.path()).unwrap();
        let a = start(&log, "Tux", None);
        let b = start(&log, "Tux", None);
        let c = start(&log, "Bird", None);
        assert_eq!(log.commit(a).unwrap(), Some(0));
        log.abort(
            b,
            Some(Refusal {
                status: 409,
                message: "out of stock".into(),
            }),
        );
        assert_eq!(log.commit(c).unwrap(), Some(1));
        assert_eq!(log.commit(c).unwrap(), None, "settled once");
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
        assert_eq!(log.unresolved(), vec![open]);
        assert_eq!(log.settled_below(), open);
        assert_eq!(log.commit(open).unwrap(), Some(2));
        assert!(start(&log, "Tux", None) > open, "buy ids are never reused");
    }

    #[test]
    fn idempotency_keys_replay_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let log = OrderLog::open(dir.path()).unwrap();
        let buy = start(&log, "Tux", Some("k1"));
        assert!(matches!(log.begin("Tux", 1, Some("k1")), Begin::InProgress));
        log.commit(buy).unwrap();
        assert!(matches!(
            log.begin("Tux", 1, Some("k1")),
            Begin::Replay(Outcome::Placed(0))
        ));
        let voided = start(&log, "Tux", Some("k2"));
        log.abort(voided, None);
        assert!(
            matches!(log.begin("Tux", 1, Some("k2")), Begin::Started(..)),
            "a voided buy may be retried"
        );
        drop(log);
        let log = OrderLog::open(dir.path()).unwrap();
        assert!(matches!(
            log.begin("Tux", 1, Some("k1")),
            Begin::Replay(Outcome::Placed(0))
        ));
    }
}
