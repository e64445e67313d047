//! The catalog's table: products in memory behind a lock, every change journaled.
//!
//! On disk: `catalog.snapshot` (the whole table at some record number, replaced
//! atomically, one checksummed record) and `catalog.journal` (the changes after it).
//! Every `snapshot_every` records the table is snapshotted and the journal emptied, so
//! neither recovery time nor the file grows with the number of buys. A snapshot that
//! fails (a full disk) changes nothing: the journal is kept and the snapshot retried
//! after another `snapshot_every` records.
//!
//! **Nothing is applied before it is durable.** The table holds two things: the
//! *durable* state, which readers see, a snapshot saves and a restart rebuilds; and the
//! *pending* records, appended to the journal (under the table's write lock, so the
//! journal's order is the table's) and not yet known to be on disk. A record moves into
//! the durable state once the journal says it is on disk, and is dropped if its write
//! failed; the writer's reply waits for that. Writers check against the durable state
//! plus the pending records, taking the worst case: a buy needs the stock that is left
//! whichever pending records fail (pending buys count as taken, pending restocks, admin
//! updates and give-backs count only where they lower the stock), so concurrent buyers
//! never oversell, and a change whose write fails leaves nothing behind to unwind. A
//! failed write is 503 `storage unavailable`; the journal tries the disk again on the
//! next change, and `/health` (503 while the last write failed) probes it.
//!
//! **Buy ids (presumed abort).** The order service names every buy with an id.
//! `buy` applies an id at most once; `resolve` settles an id as aborted: an applied id
//! not yet settled gets its stock back (a `cancel` record) and every id resolved is
//! voided, never to apply later. `settled_below` (sent with each buy) says every id
//! below it is settled in the order log, so the catalog forgets their outcomes; it is
//! capped at one above the highest id the catalog has seen, so a bogus huge value
//! cannot refuse every later buy.

use super::push::{Changes, PushLimits};
use crate::store::checksum;
use crate::store::snapshot::read_framed;
use crate::store::{DirLock, Disk, Durability, Journal, RealDisk, Ticket};
use crate::wire::{
    could_be_product_name, BuyState, CatalogBuy, ListQuery, ProductUpdate, ProductView,
    MAX_NAME_BYTES,
};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The seed built into the binary: the repository's `database.txt`.
pub const BUILTIN_SEED: &str = include_str!("../../database.txt");

/// A product of the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    /// The seed's id; lists are in this order.
    pub id: u64,
    /// Unique name, the key.
    pub name: String,
    /// Price.
    pub price: f64,
    /// Units in stock.
    pub quantity: u64,
    /// Optional category.
    #[serde(default)]
    pub category: Option<String>,
}

impl Product {
    /// As `GET /products/{name}` shows it.
    pub fn view(&self) -> ProductView {
        ProductView {
            name: self.name.clone(),
            price: self.price,
            quantity: self.quantity,
        }
    }
}

/// Why a catalog operation failed.
#[derive(Debug)]
pub enum CatalogError {
    /// No product of that name.
    UnknownProduct,
    /// Not enough stock.
    OutOfStock,
    /// This buy id was settled as aborted (resolved); it can never apply.
    Voided,
    /// The change could not be made durable, and was not made.
    Storage(io::Error),
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CatalogError::UnknownProduct => f.write_str("product not found"),
            CatalogError::OutOfStock => f.write_str("out of stock"),
            CatalogError::Voided => f.write_str("buy was voided"),
            CatalogError::Storage(e) => write!(f, "storage failure: {e}"),
        }
    }
}

impl std::error::Error for CatalogError {}

/// One journal record. `seq` numbers records across snapshots, so that records a
/// snapshot already holds are skipped if a crash came between snapshot and truncation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Record {
    /// A buy took stock.
    Buy {
        seq: u64,
        buy: u64,
        name: String,
        qty: u64,
    },
    /// A buy id that never applied is settled as aborted: it will never apply.
    Void { seq: u64, buy: u64 },
    /// An applied buy id (its buy record on disk) is settled as aborted: its stock is
    /// given back and it will never apply again.
    Cancel {
        seq: u64,
        buy: u64,
        name: String,
        qty: u64,
    },
    /// An admin update: the new price and/or stock (an absent field is unchanged).
    Set {
        seq: u64,
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        price: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        qty: Option<u64>,
    },
    /// The periodic restock set a sold-out product's stock.
    Restock { seq: u64, name: String, qty: u64 },
}

impl Record {
    fn seq(&self) -> u64 {
        match self {
            Record::Buy { seq, .. }
            | Record::Void { seq, .. }
            | Record::Cancel { seq, .. }
            | Record::Set { seq, .. }
            | Record::Restock { seq, .. } => *seq,
        }
    }

    /// The product whose stock or price the record changes.
    fn product(&self) -> Option<&str> {
        match self {
            Record::Buy { name, .. }
            | Record::Cancel { name, .. }
            | Record::Set { name, .. }
            | Record::Restock { name, .. } => Some(name),
            Record::Void { .. } => None,
        }
    }

    /// The buy id the record settles or applies, with the outcome it gives it.
    fn buy_outcome(&self) -> Option<(u64, BuyEntry)> {
        match self {
            Record::Buy { buy, name, qty, .. } => Some((
                *buy,
                BuyEntry::Applied {
                    name: name.clone(),
                    qty: *qty,
                },
            )),
            Record::Void { buy, .. } | Record::Cancel { buy, .. } => Some((*buy, BuyEntry::Voided)),
            Record::Set { .. } | Record::Restock { .. } => None,
        }
    }
}

/// What the catalog knows of a buy id not yet settled in the order log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
enum BuyEntry {
    /// It took `qty` of `name` (what a cancel gives back).
    Applied { name: String, qty: u64 },
    /// It never applies.
    Voided,
}

/// The snapshot file's content.
#[derive(Debug, Serialize, Deserialize)]
struct Snapshot {
    /// The last record included.
    seq: u64,
    products: Vec<Product>,
    /// Buy ids the order service may still ask about.
    buys: Vec<(u64, BuyEntry)>,
    settled_below: u64,
}

/// What is on disk: what readers see.
struct Durable {
    products: HashMap<String, Product>,
    /// Outcomes of buy ids not yet settled in the order log; ordered so that settled
    /// ones are dropped with one split.
    buys: BTreeMap<u64, BuyEntry>,
    settled_below: u64,
    /// One above the highest buy id seen: the cap on `settled_below`.
    next_unseen_buy: u64,
    /// The last record applied.
    seq: u64,
    /// Since when each sold-out product has been at 0 (in memory: after a restart the
    /// clock starts again at the restart).
    sold_out_since: HashMap<String, Instant>,
}

impl Durable {
    fn from_snapshot(snapshot: Snapshot) -> Durable {
        let now = Instant::now();
        let next_unseen_buy = snapshot
            .buys
            .last()
            .map_or(0, |(id, _)| id + 1)
            .max(snapshot.settled_below);
        Durable {
            sold_out_since: snapshot
                .products
                .iter()
                .filter(|p| p.quantity == 0)
                .map(|p| (p.name.clone(), now))
                .collect(),
            products: snapshot
                .products
                .into_iter()
                .map(|p| (p.name.clone(), p))
                .collect(),
            buys: snapshot.buys.into_iter().collect(),
            settled_below: snapshot.settled_below,
            next_unseen_buy,
            seq: snapshot.seq,
        }
    }

    fn apply(&mut self, record: &Record) {
        match record {
            Record::Buy { name, qty, .. } => {
                if let Some(product) = self.products.get_mut(name) {
                    product.quantity = product.quantity.saturating_sub(*qty);
                }
            }
            Record::Cancel { name, qty, .. } => {
                // Written only once the buy's own record is on disk (see `resolve`).
                if let Some(product) = self.products.get_mut(name) {
                    product.quantity = product.quantity.saturating_add(*qty);
                }
            }
            Record::Set {
                name, price, qty, ..
            } => {
                if let Some(product) = self.products.get_mut(name) {
                    product.price = price.unwrap_or(product.price);
                    product.quantity = qty.unwrap_or(product.quantity);
                }
            }
            Record::Restock { name, qty, .. } => {
                if let Some(product) = self.products.get_mut(name) {
                    product.quantity = *qty;
                }
            }
            Record::Void { .. } => {}
        }
        if let Some((buy, outcome)) = record.buy_outcome() {
            self.next_unseen_buy = self.next_unseen_buy.max(buy.saturating_add(1));
            if buy >= self.settled_below {
                self.buys.insert(buy, outcome);
            }
        }
        if let Some(product) = record.product().and_then(|n| self.products.get(n)) {
            if product.quantity == 0 {
                self.sold_out_since
                    .entry(product.name.clone())
                    .or_insert_with(Instant::now);
            } else {
                self.sold_out_since.remove(&product.name);
            }
        }
        self.seq = record.seq();
    }

    /// Forgets the outcomes below `settled_below`, capped at one above the highest buy
    /// id seen (a larger value can only be a bug or an attack).
    fn settle_below(&mut self, settled_below: u64) {
        let settled_below = settled_below.min(self.next_unseen_buy);
        if settled_below > self.settled_below {
            self.settled_below = settled_below;
            self.buys = self.buys.split_off(&settled_below);
        }
    }

    fn snapshot(&self) -> Snapshot {
        let mut products: Vec<Product> = self.products.values().cloned().collect();
        products.sort_by_key(|p| p.id);
        Snapshot {
            seq: self.seq,
            products,
            buys: self
                .buys
                .iter()
                .map(|(id, entry)| (*id, entry.clone()))
                .collect(),
            settled_below: self.settled_below,
        }
    }
}

/// The durable state and the records not yet known to be on disk.
struct Table {
    durable: Durable,
    /// Appended, not yet settled (on disk or lost), in journal order.
    pending: VecDeque<(Ticket, Record)>,
    /// The last seq handed out.
    last_seq: u64,
    /// For each product with pending records: the lowest stock any outcome of them can
    /// leave (what a buy may take).
    floor: HashMap<String, u64>,
    /// Buy ids with a pending record: the outcome it gives them and its ticket.
    pending_buys: HashMap<u64, (Ticket, BuyEntry)>,
}

impl Table {
    /// Units a buy of `name` may take, whichever pending records fail; None if unknown.
    fn available(&self, name: &str) -> Option<u64> {
        let stock = self.durable.products.get(name)?.quantity;
        Some(self.floor.get(name).copied().unwrap_or(stock))
    }

    /// A buy id's outcome, pending or durable, with the ticket to wait for if pending.
    fn buy_entry(&self, buy: u64) -> Option<(Option<Ticket>, &BuyEntry)> {
        match self.pending_buys.get(&buy) {
            Some((ticket, entry)) => Some((Some(*ticket), entry)),
            None => self.durable.buys.get(&buy).map(|entry| (None, entry)),
        }
    }

    /// Takes `record` into account for later writers' checks.
    fn project(&mut self, ticket: Ticket, record: &Record) {
        let lowered = match record {
            Record::Buy { name, qty, .. } => {
                Some((name, self.available(name).unwrap_or(0).saturating_sub(*qty)))
            }
            Record::Set {
                name,
                qty: Some(qty),
                ..
            }
            | Record::Restock { name, qty, .. } => {
                Some((name, self.available(name).unwrap_or(0).min(*qty)))
            }
            // Raising stock counts only once on disk.
            Record::Set { qty: None, .. } | Record::Cancel { .. } | Record::Void { .. } => None,
        };
        if let Some((name, floor)) = lowered {
            self.floor.insert(name.clone(), floor);
        }
        if let Some((buy, outcome)) = record.buy_outcome() {
            self.pending_buys.insert(buy, (ticket, outcome));
        }
    }

    /// Moves the records the journal has settled out of `pending`: into the durable
    /// state if on disk, nowhere if lost. Each record applied is published to `changes`
    /// there and then, under the table's write lock: visible first, and in order.
    fn settle(&mut self, journal: &Journal, changes: &Changes) {
        let mut moved = false;
        while let Some((ticket, _)) = self.pending.front() {
            let durability = journal.durability(*ticket);
            if durability == Durability::InFlight {
                break;
            }
            if let Some((_, record)) = self.pending.pop_front() {
                if durability == Durability::OnDisk {
                    self.durable.apply(&record);
                    if let Some(product) =
                        record.product().and_then(|n| self.durable.products.get(n))
                    {
                        changes.publish(|| vec![product.view()]);
                    }
                }
            }
            moved = true;
        }
        if moved {
            self.floor.clear();
            self.pending_buys.clear();
            let pending = std::mem::take(&mut self.pending);
            for (ticket, record) in &pending {
                self.project(*ticket, record);
            }
            self.pending = pending;
        }
    }

    /// Appends `record` (numbered here) to the journal and to `pending`.
    fn append(&mut self, journal: &Journal, record: impl FnOnce(u64) -> Record) -> Ticket {
        self.last_seq += 1;
        let record = record(self.last_seq);
        let ticket = journal.append_json(&record);
        self.project(ticket, &record);
        self.pending.push_back((ticket, record));
        ticket
    }
}

/// What a writer waits for before it answers: a record's durability, then its outcome.
struct Step {
    ticket: Option<Ticket>,
    outcome: Result<(), CatalogError>,
}

impl Step {
    fn done(outcome: Result<(), CatalogError>) -> Step {
        Step {
            ticket: None,
            outcome,
        }
    }
}

fn storage_failure(journal: &Journal) -> CatalogError {
    CatalogError::Storage(io::Error::other(format!(
        "{}: the write failed",
        journal.path().display()
    )))
}

/// The catalog: the table, its journal and where its snapshot lives.
pub struct Catalog {
    _dir: DirLock,
    table: RwLock<Table>,
    journal: Journal,
    /// Every change, pushed to subscribers once visible.
    changes: Arc<Changes>,
    disk: Arc<dyn Disk>,
    snapshot_path: PathBuf,
    snapshot_every: u64,
    /// Journal records at which the next snapshot is tried (later after a failure).
    snapshot_due: AtomicU64,
}

impl Catalog {
    /// Opens the catalog in `dir`, seeding it from `seed` on first start, and replays
    /// the journal after the snapshot.
    pub fn open(dir: &Path, seed: &str, snapshot_every: u64) -> io::Result<Catalog> {
        Self::open_with(Arc::new(RealDisk), dir, seed, snapshot_every)
    }

    /// [`open`](Self::open) with every write going to `disk` (the fault-injection seam).
    pub fn open_with(
        disk: Arc<dyn Disk>,
        dir: &Path,
        seed: &str,
        snapshot_every: u64,
    ) -> io::Result<Catalog> {
        let held = DirLock::take(dir, "catalog.lock")?;
        let snapshot_path = dir.join("catalog.snapshot");
        let journal_path = dir.join("catalog.journal");
        if !snapshot_path.exists() {
            if journal_path.exists() && std::fs::metadata(&journal_path)?.len() > 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "catalog.journal exists without catalog.snapshot",
                ));
            }
            let products =
                parse_seed(seed).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let snapshot = Snapshot {
                seq: 0,
                products,
                buys: Vec::new(),
                settled_below: 0,
            };
            disk.replace(
                &snapshot_path,
                &checksum::frame(&serde_json::to_vec(&snapshot)?),
            )?;
        } else {
            // On stderr: stdout's first line is the address line tests and scripts read.
            crate::logging::warn(format!(
                "catalog: using the state already in '{dir}'; the seed is read only on first start, so it is ignored (to start again from the seed, stop the catalog and remove '{dir}')",
                dir = dir.display()
            ));
        }
        let snapshot: Snapshot =
            serde_json::from_slice(&read_framed(&snapshot_path)?).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", snapshot_path.display()),
                )
            })?;
        let mut durable = Durable::from_snapshot(snapshot);
        let snapshot_seq = durable.seq;
        let journal =
            Journal::open_json_with(Arc::clone(&disk), &journal_path, |record: Record| {
                if record.seq() > snapshot_seq {
                    durable.apply(&record);
                }
                Ok(())
            })?;
        let last_seq = durable.seq;
        let snapshot_every = snapshot_every.max(1);
        Ok(Catalog {
            _dir: held,
            table: RwLock::new(Table {
                durable,
                pending: VecDeque::new(),
                last_seq,
                floor: HashMap::new(),
                pending_buys: HashMap::new(),
            }),
            journal,
            changes: Arc::new(Changes::new(PushLimits::default())),
            disk,
            snapshot_path,
            snapshot_every,
            snapshot_due: AtomicU64::new(snapshot_every),
        })
    }

    /// One product.
    pub fn get(&self, name: &str) -> Option<Product> {
        self.table.read().durable.products.get(name).cloned()
    }

    /// Many products under one read lock, in the order of `names`.
    pub fn get_many<S: AsRef<str>>(&self, names: &[S]) -> Vec<Option<Product>> {
        let table = self.table.read();
        names
            .iter()
            .map(|name| table.durable.products.get(name.as_ref()).cloned())
            .collect()
    }

    /// Products matching `query`, in seed order.
    pub fn list(&self, query: &ListQuery) -> Vec<Product> {
        let q = query.q.as_ref().map(|q| q.to_lowercase());
        let table = self.table.read();
        let mut matching: Vec<&Product> = table
            .durable
            .products
            .values()
            .filter(|p| match &query.category {
                Some(c) => p
                    .category
                    .as_ref()
                    .is_some_and(|pc| pc.eq_ignore_ascii_case(c)),
                None => true,
            })
            .filter(|p| q.as_ref().is_none_or(|q| p.name.to_lowercase().contains(q)))
            .collect();
        matching.sort_by_key(|p| p.id);
        matching
            .into_iter()
            .skip(query.offset)
            .take(query.limit)
            .cloned()
            .collect()
    }

    /// Takes stock for a buy, at most once per buy id: a repeat returns the first outcome.
    pub fn buy(&self, buy: &CatalogBuy) -> Result<(), CatalogError> {
        self.buy_many(std::slice::from_ref(buy))
            .pop()
            .unwrap_or(Err(CatalogError::UnknownProduct))
    }

    /// Takes stock for many buys under one lock and one journal flush; one outcome per
    /// buy, in order. A buy id seen before gets its first outcome again, and only once
    /// that outcome is on disk too.
    pub fn buy_many(&self, buys: &[CatalogBuy]) -> Vec<Result<(), CatalogError>> {
        let steps: Vec<Step> = {
            let mut table = self.table.write();
            buys.iter().map(|buy| self.take(&mut table, buy)).collect()
        };
        crate::failpoint::crash(crate::failpoint::Point::CatalogBuyJournaled);
        let done = self.finish(steps);
        crate::failpoint::crash(crate::failpoint::Point::CatalogBuyDurable);
        done
    }

    /// Checks one buy against the durable state and the pending records, and journals it.
    fn take(&self, table: &mut Table, buy: &CatalogBuy) -> Step {
        let durable = &mut table.durable;
        durable.settle_below(buy.settled_below);
        durable.next_unseen_buy = durable.next_unseen_buy.max(buy.buy_id.saturating_add(1));
        if buy.buy_id < durable.settled_below {
            // Settled and forgotten: a late duplicate must not take stock again.
            return Step::done(Err(CatalogError::Voided));
        }
        match table.buy_entry(buy.buy_id) {
            Some((ticket, BuyEntry::Applied { .. })) => {
                return Step {
                    ticket,
                    outcome: Ok(()),
                }
            }
            Some((ticket, BuyEntry::Voided)) => {
                return Step {
                    ticket,
                    outcome: Err(CatalogError::Voided),
                }
            }
            None => {}
        }
        match table.available(&buy.name) {
            None => return Step::done(Err(CatalogError::UnknownProduct)),
            Some(units) if units < buy.quantity => {
                return Step::done(Err(CatalogError::OutOfStock))
            }
            Some(_) => {}
        }
        let ticket = table.append(&self.journal, |seq| Record::Buy {
            seq,
            buy: buy.buy_id,
            name: buy.name.clone(),
            qty: buy.quantity,
        });
        Step {
            ticket: Some(ticket),
            outcome: Ok(()),
        }
    }

    /// Settles `buy_id` as aborted and answers `Voided`: if it applied and is not yet
    /// settled, its stock is given back; whether or not it had applied, it never applies
    /// later. An id below `settled_below` is settled already (the catalog has forgotten
    /// its outcome and refuses it anyway): nothing is written for it.
    pub fn resolve(&self, buy_id: u64) -> Result<BuyState, CatalogError> {
        let step = loop {
            let mut table = self.table.write();
            let durable = &mut table.durable;
            durable.next_unseen_buy = durable.next_unseen_buy.max(buy_id.saturating_add(1));
            if buy_id < durable.settled_below {
                break Step::done(Ok(()));
            }
            let ticket = match table.buy_entry(buy_id) {
                Some((ticket, BuyEntry::Voided)) => ticket,
                Some((Some(buy_ticket), BuyEntry::Applied { .. })) => {
                    // A cancel gives stock back unconditionally, so it must not follow a
                    // buy record that may yet be lost: settle the buy, then look again.
                    drop(table);
                    let _ = self.journal.wait_durable(buy_ticket);
                    self.table.write().settle(&self.journal, &self.changes);
                    continue;
                }
                Some((None, BuyEntry::Applied { name, qty })) => {
                    let (name, qty) = (name.clone(), *qty);
                    Some(table.append(&self.journal, |seq| Record::Cancel {
                        seq,
                        buy: buy_id,
                        name,
                        qty,
                    }))
                }
                None => Some(table.append(&self.journal, |seq| Record::Void { seq, buy: buy_id })),
            };
            break Step {
                ticket,
                outcome: Ok(()),
            };
        };
        crate::failpoint::crash(crate::failpoint::Point::CatalogResolveJournaled);
        let mut done = self.finish(vec![step]);
        crate::failpoint::crash(crate::failpoint::Point::CatalogResolveDurable);
        done.pop().unwrap_or(Ok(())).map(|()| BuyState::Voided)
    }

    /// Sets price and/or stock of an existing product; returns it as it is then.
    pub fn update(&self, name: &str, update: ProductUpdate) -> Result<Product, CatalogError> {
        let step = {
            let mut table = self.table.write();
            if !table.durable.products.contains_key(name) {
                return Err(CatalogError::UnknownProduct);
            }
            let ticket = table.append(&self.journal, |seq| Record::Set {
                seq,
                name: name.to_string(),
                price: update.price,
                qty: update.quantity,
            });
            Step {
                ticket: Some(ticket),
                outcome: Ok(()),
            }
        };
        self.finish(vec![step]).pop().unwrap_or(Ok(()))?;
        self.get(name).ok_or(CatalogError::UnknownProduct)
    }

    /// Sets the stock of every product that has been sold out for at least
    /// `sold_out_for` to `level`; returns the names restocked. Waiting a whole period
    /// means a toy sold out just before a tick stays sold out for a while, as buyers
    /// (and tests) that just saw it sell out expect, instead of coming back at once.
    pub fn restock(&self, level: u64, sold_out_for: Duration) -> Result<Vec<String>, CatalogError> {
        let (steps, names) = {
            let mut table = self.table.write();
            let mut names: Vec<String> = table
                .durable
                .sold_out_since
                .iter()
                .filter(|(_, since)| since.elapsed() >= sold_out_for)
                .map(|(name, _)| name.clone())
                .collect();
            names.sort();
            let steps: Vec<Step> = names
                .iter()
                .map(|name| Step {
                    ticket: Some(table.append(&self.journal, |seq| Record::Restock {
                        seq,
                        name: name.clone(),
                        qty: level,
                    })),
                    outcome: Ok(()),
                })
                .collect();
            (steps, names)
        };
        self.finish(steps).into_iter().collect::<Result<(), _>>()?;
        Ok(names)
    }

    /// (name, stock) of every product, for metrics.
    pub fn stock(&self) -> Vec<(String, u64)> {
        let mut stock: Vec<_> = self
            .table
            .read()
            .durable
            .products
            .values()
            .map(|p| (p.name.clone(), p.quantity))
            .collect();
        stock.sort();
        stock
    }

    /// Whether changes can be made durable now: false while the last journal write
    /// failed and a probe write still fails (for `/health`).
    pub fn writable(&self) -> bool {
        self.journal.probe()
    }

    /// The push channel of this catalog's changes.
    pub fn changes(&self) -> &Arc<Changes> {
        &self.changes
    }

    /// The journal, for metrics.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Waits until every step's record is settled, moves settled records into the
    /// durable state, snapshots if due, and answers each step: its outcome if its
    /// record is on disk (or it wrote none), a storage failure if the write failed.
    fn finish(&self, steps: Vec<Step>) -> Vec<Result<(), CatalogError>> {
        if let Some(last) = steps.iter().filter_map(|s| s.ticket).max() {
            // Ok or not, every ticket up to `last` is settled afterwards; each is
            // checked below, since a failure may have hit some and not others.
            let _ = self.journal.wait_durable(last);
            self.table.write().settle(&self.journal, &self.changes);
            self.snapshot_if_due();
        }
        steps
            .into_iter()
            .map(
                |step| match step.ticket.map(|t| self.journal.durability(t)) {
                    Some(Durability::Lost) => Err(storage_failure(&self.journal)),
                    _ => step.outcome,
                },
            )
            .collect()
    }

    /// Writes a snapshot and empties the journal once it has `snapshot_due` records,
    /// holding the write lock throughout so that no record falls between the two. A
    /// failure only delays it: the journal still holds every change.
    fn snapshot_if_due(&self) {
        if self.journal.records() < self.snapshot_due.load(Ordering::Relaxed) {
            return;
        }
        let mut table = self.table.write();
        if self.journal.records() < self.snapshot_due.load(Ordering::Relaxed) {
            return; // Another thread just did it.
        }
        // No record can be appended while we hold the lock: settle every one.
        let _ = self.journal.wait_durable(self.journal.tail());
        table.settle(&self.journal, &self.changes);
        let written = serde_json::to_vec(&table.durable.snapshot())
            .map_err(io::Error::from)
            .and_then(|json| {
                self.disk
                    .replace(&self.snapshot_path, &checksum::frame(&json))
            })
            .and_then(|()| self.journal.truncate());
        match written {
            Ok(()) => {
                self.journal.reset_records();
                self.snapshot_due
                    .store(self.snapshot_every, Ordering::Relaxed);
            }
            Err(e) => {
                crate::logging::warn(format!(
                    "catalog: snapshot failed, keeping the journal: {e}"
                ));
                self.snapshot_due.store(
                    self.journal.records() + self.snapshot_every,
                    Ordering::Relaxed,
                );
            }
        }
    }
}

/// Parses seed lines `id name price quantity [category]`; blank lines and `#` comments
/// are skipped.
pub fn parse_seed(text: &str) -> Result<Vec<Product>, String> {
    let mut products: Vec<Product> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |what: &str| format!("seed line {}: {what}: {line:?}", index + 1);
        let fields: Vec<&str> = line.split_whitespace().collect();
        if !(4..=5).contains(&fields.len()) {
            return Err(bad("expected `id name price quantity [category]`"));
        }
        let id = fields[0].parse::<u64>().map_err(|_| bad("bad id"))?;
        let price = fields[2]
            .parse::<f64>()
            .ok()
            .filter(|p| p.is_finite() && *p >= 0.0)
            .ok_or_else(|| bad("bad price"))?;
        let quantity = fields[3].parse::<u64>().map_err(|_| bad("bad quantity"))?;
        let name = fields[1].to_string();
        // The front-end and the order service answer other names themselves (see
        // `wire::could_be_product_name`).
        if !could_be_product_name(&name) || fields.get(4).is_some_and(|c| c.len() > MAX_NAME_BYTES)
        {
            return Err(bad(&format!(
                "name over {MAX_NAME_BYTES} bytes or with control characters, or category over {MAX_NAME_BYTES} bytes"
            )));
        }
        if products.iter().any(|p| p.name == name) {
            return Err(bad("duplicate name"));
        }
        products.push(Product {
            id,
            name,
            price,
            quantity,
            category: fields.get(4).map(|c| c.to_string()),
        });
    }
    if products.is_empty() {
        return Err("seed has no products".into());
    }
    Ok(products)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Fault, FaultyDisk, WRITE_FAULTS};

    fn buy(id: u64, name: &str, quantity: u64) -> CatalogBuy {
        CatalogBuy {
            buy_id: id,
            name: name.into(),
            quantity,
            settled_below: 0,
        }
    }

    #[test]
    fn seed_parsing() {
        let products = parse_seed(BUILTIN_SEED).unwrap();
        assert_eq!(
            products[0],
            Product {
                id: 1,
                name: "Tux".into(),
                price: 25.99,
                quantity: 80,
                category: Some("animal".into())
            }
        );
        // The contract: at least 10 products (Lab 3), the lab's four first.
        assert!(products.len() >= 10, "{products:?}");
        let first: Vec<_> = products[..4]
            .iter()
            .map(|p| (p.name.as_str(), p.price, p.quantity))
            .collect();
        assert_eq!(
            first,
            [
                ("Tux", 25.99, 80),
                ("Whale", 34.99, 100),
                ("Elephant", 29.99, 100),
                ("Bird", 39.99, 100)
            ]
        );
        assert!(
            products.iter().all(|p| p.category.is_some()),
            "{products:?}"
        );
        assert_eq!(parse_seed("# c\n\n7 X 1 2\n").unwrap()[0].category, None);
        for bad in [
            "1 Tux 1",
            "x Tux 1 2",
            "1 Tux -1 2",
            "1 Tux 1 -2",
            "1 A 1 1\n2 A 1 1",
            "",
            "1 a b c d e",
        ] {
            assert!(parse_seed(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn buys_apply_once_and_survive_reopen() {
        let (dir, catalog) = fresh(1000);
        catalog.buy(&buy(1, "Tux", 5)).unwrap();
        catalog.buy(&buy(1, "Tux", 5)).unwrap();
        assert!(matches!(
            catalog.buy(&buy(2, "Tux", 76)),
            Err(CatalogError::OutOfStock)
        ));
        assert!(matches!(
            catalog.buy(&buy(3, "Nope", 1)),
            Err(CatalogError::UnknownProduct)
        ));
        assert_eq!(catalog.resolve(4).unwrap(), BuyState::Voided);
        assert!(matches!(
            catalog.buy(&buy(4, "Tux", 1)),
            Err(CatalogError::Voided)
        ));
        catalog.buy(&buy(5, "Tux", 3)).unwrap();
        catalog
            .update(
                "Whale",
                ProductUpdate {
                    price: Some(1.0),
                    quantity: None,
                },
            )
            .unwrap();
        drop(catalog);
        let catalog = Catalog::open(dir.path(), "1 Other 1 1", 1000).unwrap();
        assert_eq!(catalog.get("Tux").unwrap().quantity, 72);
        assert_eq!(catalog.get("Whale").unwrap().price, 1.0);
        assert_eq!(catalog.resolve(4).unwrap(), BuyState::Voided);
        assert!(
            catalog.get("Other").is_none(),
            "the seed is read only on first start"
        );
    }

    #[test]
    fn snapshots_keep_state_and_empty_the_journal() {
        let (dir, catalog) = fresh(3);
        for id in 0..10 {
            catalog
                .buy(&CatalogBuy {
                    buy_id: id,
                    name: "Bird".into(),
                    quantity: 1,
                    settled_below: id.saturating_sub(2),
                })
                .unwrap();
        }
        assert!(catalog.journal().records() < 3);
        let catalog = reopen(catalog, dir.path(), 3);
        assert_eq!(catalog.get("Bird").unwrap().quantity, 90);
        // Buy 9 is not settled yet: the snapshot remembers it applied, so resolving it
        // gives its unit back.
        assert_eq!(catalog.resolve(9).unwrap(), BuyState::Voided);
        assert_eq!(catalog.get("Bird").unwrap().quantity, 91);
    }

    /// Presumed abort: resolving settles a buy id as aborted, whatever it did before.
    #[test]
    fn resolve_gives_an_applied_buy_back_and_voids_every_id_for_good() {
        let (dir, catalog) = fresh(1000);
        catalog.buy(&buy(1, "Tux", 5)).unwrap();
        assert_eq!(catalog.get("Tux").unwrap().quantity, 75);
        for _ in 0..2 {
            assert_eq!(catalog.resolve(1).unwrap(), BuyState::Voided);
            assert_eq!(catalog.get("Tux").unwrap().quantity, 80, "given back once");
        }
        assert!(matches!(
            catalog.buy(&buy(1, "Tux", 5)),
            Err(CatalogError::Voided)
        ));
        assert_eq!(
            catalog.resolve(2).unwrap(),
            BuyState::Voided,
            "never applied"
        );
        assert!(matches!(
            catalog.buy(&buy(2, "Tux", 1)),
            Err(CatalogError::Voided)
        ));
        let catalog = reopen(catalog, dir.path(), 1000);
        assert_eq!(catalog.get("Tux").unwrap().quantity, 80);
        assert!(matches!(
            catalog.buy(&buy(1, "Tux", 5)),
            Err(CatalogError::Voided)
        ));
    }

    /// A resolve that meets a buy in flight settles the buy first: a lost buy is voided
    /// (no stock to give back), a landed one cancelled.
    #[test]
    fn resolving_a_buy_in_flight_waits_for_it() {
        for lost in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let disk = FaultyDisk::new();
            let catalog = Arc::new(open_on(&disk, dir.path(), 1000));
            let buyer = buy_in_flight(&catalog, &disk, buy(1, "Tux", 5));
            let resolver = {
                let catalog = Arc::clone(&catalog);
                std::thread::spawn(move || catalog.resolve(1))
            };
            if lost {
                disk.fail_syncs(Some(Fault::Io));
            }
            disk.release_syncs();
            assert_eq!(buyer.join().unwrap().is_ok(), !lost);
            disk.fail_syncs(None);
            // The resolver's own record may have met the failing fsync too: then again.
            let resolved = resolver.join().unwrap().or_else(|_| catalog.resolve(1));
            assert_eq!(resolved.unwrap(), BuyState::Voided);
            assert_eq!(catalog.get("Tux").unwrap().quantity, 80, "lost {lost}");
            let catalog = reopen(catalog, dir.path(), 1000);
            assert_eq!(catalog.get("Tux").unwrap().quantity, 80, "lost {lost}");
        }
    }

    /// Finding 9: a bogus `settled_below` must not refuse every later buy.
    #[test]
    fn settled_below_is_capped_at_the_ids_seen() {
        let (_dir, catalog) = fresh(1000);
        catalog.buy(&buy(0, "Tux", 1)).unwrap();
        let hostile = CatalogBuy {
            settled_below: u64::MAX,
            ..buy(1, "Tux", 1)
        };
        catalog.buy(&hostile).unwrap();
        catalog.buy(&buy(2, "Tux", 1)).unwrap();
        assert!(
            matches!(catalog.buy(&buy(0, "Tux", 1)), Err(CatalogError::Voided)),
            "settled below 1 is fine: id 0 was seen"
        );
        assert_eq!(catalog.get("Tux").unwrap().quantity, 77);
    }

    /// A new catalog on the built-in seed in a new directory.
    fn fresh(snapshot_every: u64) -> (tempfile::TempDir, Catalog) {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path(), BUILTIN_SEED, snapshot_every).unwrap();
        (dir, catalog)
    }

    /// `catalog` (the last handle on it) closed and opened again on the real disk, as
    /// after a restart.
    fn reopen<C>(catalog: C, dir: &Path, snapshot_every: u64) -> Catalog {
        drop(catalog);
        Catalog::open(dir, BUILTIN_SEED, snapshot_every).unwrap()
    }

    fn open_on(disk: &FaultyDisk, dir: &Path, snapshot_every: u64) -> Catalog {
        Catalog::open_with(Arc::new(disk.clone()), dir, BUILTIN_SEED, snapshot_every).unwrap()
    }

    /// Starts `buy` on another thread and returns once its fsync is held.
    fn buy_in_flight(
        catalog: &Arc<Catalog>,
        disk: &FaultyDisk,
        buy: CatalogBuy,
    ) -> std::thread::JoinHandle<Result<(), CatalogError>> {
        disk.hold_syncs();
        let buyer = {
            let catalog = Arc::clone(catalog);
            std::thread::spawn(move || catalog.buy(&buy))
        };
        disk.wait_for_held_syncs(1);
        buyer
    }

    fn storage_failed<T: fmt::Debug>(result: Result<T, CatalogError>) -> bool {
        matches!(result, Err(CatalogError::Storage(_)))
    }

    fn price_update(price: f64) -> ProductUpdate {
        ProductUpdate {
            price: Some(price),
            quantity: None,
        }
    }

    /// Finding 3: a change whose write fails is refused and not applied, reads keep
    /// working, and the catalog works again by itself once the disk does.
    #[test]
    fn a_change_that_cannot_be_written_is_not_applied() {
        for (name, inject) in WRITE_FAULTS {
            let dir = tempfile::tempdir().unwrap();
            let disk = FaultyDisk::new();
            let catalog = open_on(&disk, dir.path(), 1000);
            catalog.buy(&buy(1, "Tux", 80)).unwrap();
            catalog.buy(&buy(2, "Bird", 10)).unwrap();
            inject(&disk, true);
            assert!(storage_failed(catalog.buy(&buy(3, "Whale", 5))), "{name}");
            assert!(
                storage_failed(catalog.update("Whale", price_update(1.0))),
                "{name}"
            );
            assert!(
                storage_failed(catalog.restock(100, Duration::ZERO)),
                "{name}"
            );
            assert!(storage_failed(catalog.resolve(2)), "{name}");
            let unchanged = |catalog: &Catalog| {
                let whale = catalog.get("Whale").unwrap();
                assert_eq!((whale.price, whale.quantity), (34.99, 100), "{name}");
                assert_eq!(catalog.get("Tux").unwrap().quantity, 0, "{name}");
                assert_eq!(catalog.get("Bird").unwrap().quantity, 90, "{name}");
            };
            unchanged(&catalog);
            assert!(!catalog.writable(), "{name}");
            inject(&disk, false);
            assert!(
                catalog.writable(),
                "{name}: recovered without a client write"
            );
            // Buy 3 never applied: it may apply now, once.
            catalog.buy(&buy(3, "Whale", 5)).unwrap();
            assert_eq!(catalog.get("Whale").unwrap().quantity, 95, "{name}");
            let catalog = reopen(catalog, dir.path(), 1000);
            assert_eq!(catalog.get("Whale").unwrap().quantity, 95, "{name}");
            assert_eq!(
                catalog.get("Bird").unwrap().quantity,
                90,
                "{name}: buy 2 kept"
            );
            assert_eq!(catalog.get("Tux").unwrap().quantity, 0, "{name}");
        }
    }

    /// Readers see only what is on disk; a buyer is checked against the buys in flight.
    #[test]
    fn a_change_in_flight_is_invisible_and_reserved_until_it_lands_or_fails() {
        let dir = tempfile::tempdir().unwrap();
        let disk = FaultyDisk::new();
        let catalog = Arc::new(open_on(&disk, dir.path(), 1000));
        let buyer = buy_in_flight(&catalog, &disk, buy(1, "Tux", 30));
        assert_eq!(catalog.get("Tux").unwrap().quantity, 80, "not on disk yet");
        assert!(
            matches!(
                catalog.buy(&buy(2, "Tux", 51)),
                Err(CatalogError::OutOfStock)
            ),
            "the 30 in flight are taken for others"
        );
        disk.fail_syncs(Some(Fault::Io));
        disk.release_syncs();
        assert!(storage_failed(buyer.join().unwrap()));
        assert_eq!(catalog.get("Tux").unwrap().quantity, 80);
        disk.fail_syncs(None);
        catalog.buy(&buy(2, "Tux", 80)).unwrap();
        assert_eq!(catalog.get("Tux").unwrap().quantity, 0);
    }

    /// Issue 13: a change is published once readers can see it (not while its record is
    /// on its way to disk), once per record that changed a product, and never if lost.
    #[test]
    fn a_change_is_published_once_visible_and_never_if_lost() {
        let dir = tempfile::tempdir().unwrap();
        let disk = FaultyDisk::new();
        let catalog = Arc::new(open_on(&disk, dir.path(), 1000));
        let changes = Arc::clone(catalog.changes());
        let buyer = buy_in_flight(&catalog, &disk, buy(1, "Tux", 5));
        assert_eq!(changes.seq(), 0, "not on disk, not visible: not published");
        disk.release_syncs();
        buyer.join().unwrap().unwrap();
        assert_eq!(changes.seq(), 1);
        disk.fail_syncs(Some(Fault::Io));
        assert!(storage_failed(catalog.update("Whale", price_update(1.0))));
        assert_eq!(changes.seq(), 1, "a lost change is never published");
        disk.fail_syncs(None);
        catalog.update("Whale", price_update(2.0)).unwrap();
        assert_eq!(changes.seq(), 2, "an update");
        catalog.resolve(1).unwrap();
        assert_eq!(changes.seq(), 3, "a cancel gives stock back");
        catalog.resolve(7).unwrap();
        assert_eq!(changes.seq(), 3, "a void changes no product");
        catalog.buy_many(&[buy(2, "Tux", 80), buy(3, "Bird", 100)]);
        assert_eq!(changes.seq(), 5, "one per buy of a batch");
        catalog.restock(100, Duration::ZERO).unwrap();
        assert_eq!(changes.seq(), 7, "one per product restocked");
    }

    /// A restock in flight is no stock to sell until it is on disk.
    #[test]
    fn stock_that_is_not_on_disk_yet_is_not_sold() {
        let dir = tempfile::tempdir().unwrap();
        let disk = FaultyDisk::new();
        let catalog = Arc::new(open_on(&disk, dir.path(), 1000));
        catalog.buy(&buy(1, "Tux", 80)).unwrap();
        disk.hold_syncs();
        let admin = {
            let catalog = Arc::clone(&catalog);
            std::thread::spawn(move || {
                let refill = ProductUpdate {
                    price: None,
                    quantity: Some(50),
                };
                catalog.update("Tux", refill)
            })
        };
        disk.wait_for_held_syncs(1);
        assert!(matches!(
            catalog.buy(&buy(2, "Tux", 1)),
            Err(CatalogError::OutOfStock)
        ));
        disk.release_syncs();
        assert_eq!(admin.join().unwrap().unwrap().quantity, 50);
        catalog.buy(&buy(2, "Tux", 50)).unwrap();
    }

    #[test]
    fn a_crash_before_the_fsync_loses_only_the_unanswered_change() {
        let dir = tempfile::tempdir().unwrap();
        let disk = FaultyDisk::new();
        let catalog = Arc::new(open_on(&disk, dir.path(), 1000));
        catalog.buy(&buy(1, "Tux", 1)).unwrap();
        let buyer = buy_in_flight(&catalog, &disk, buy(2, "Tux", 5));
        disk.crash();
        assert!(!matches!(buyer.join(), Ok(Ok(()))), "never acknowledged");
        let catalog = reopen(catalog, dir.path(), 1000);
        assert_eq!(catalog.get("Tux").unwrap().quantity, 79);
    }

    #[test]
    fn a_failing_snapshot_breaks_nothing_and_is_retried() {
        let dir = tempfile::tempdir().unwrap();
        let disk = FaultyDisk::new();
        let catalog = open_on(&disk, dir.path(), 2);
        disk.fail_replaces(Some(Fault::NoSpace));
        for id in 0..5 {
            catalog.buy(&buy(id, "Bird", 1)).unwrap();
        }
        assert_eq!(catalog.journal().records(), 5, "the journal is kept");
        assert!(
            !dir.path().join("catalog.tmp").exists(),
            "no half snapshot left holding space"
        );
        disk.fail_replaces(None);
        for id in 5..7 {
            catalog.buy(&buy(id, "Bird", 1)).unwrap();
        }
        assert!(catalog.journal().records() < 2, "snapshotted at last");
        let catalog = reopen(catalog, dir.path(), 2);
        assert_eq!(catalog.get("Bird").unwrap().quantity, 93);
    }

    #[test]
    fn restock_only_touches_sold_out_products() {
        let (_dir, catalog) = fresh(1000);
        catalog.buy(&buy(1, "Tux", 80)).unwrap();
        assert!(
            catalog
                .restock(100, Duration::from_secs(3600))
                .unwrap()
                .is_empty(),
            "not sold out for long enough"
        );
        assert_eq!(
            catalog.restock(100, Duration::ZERO).unwrap(),
            vec!["Tux".to_string()]
        );
        assert_eq!(catalog.get("Tux").unwrap().quantity, 100);
        assert!(catalog.restock(100, Duration::ZERO).unwrap().is_empty());
    }

    #[test]
    fn listing_filters() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(
            dir.path(),
            "1 Tux 1 1 penguin\n2 Whale 1 1 animal\n3 Elephant 1 1 animal",
            1000,
        )
        .unwrap();
        let names = |query: ListQuery| {
            catalog
                .list(&query)
                .into_iter()
                .map(|p| p.name)
                .collect::<Vec<_>>()
        };
        let all = ListQuery {
            limit: 100,
            ..ListQuery::default()
        };
        assert_eq!(names(all.clone()), ["Tux", "Whale", "Elephant"]);
        assert_eq!(
            names(ListQuery {
                category: Some("ANIMAL".into()),
                ..all.clone()
            }),
            ["Whale", "Elephant"]
        );
        assert_eq!(
            names(ListQuery {
                q: Some("le".into()),
                ..all.clone()
            }),
            ["Whale", "Elephant"]
        );
        assert_eq!(
            names(ListQuery {
                limit: 1,
                offset: 1,
                ..all
            }),
            ["Whale"]
        );
    }
}
