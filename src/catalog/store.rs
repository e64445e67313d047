//! The catalog's table: products in memory behind a lock, every change journaled.
//!
//! On disk: `catalog.snapshot` (the whole table at some record number, replaced
//! atomically) and `catalog.journal` (the changes after it). A change is applied in
//! memory and appended to the journal under the table's write lock, so the journal's
//! order is the table's; the reply waits for the group-committed fsync outside the lock.
//! Every `snapshot_every` records the table is snapshotted and the journal emptied, so
//! neither recovery time nor the file grows with the number of buys.

use crate::store::snapshot::write_atomically;
use crate::store::{DirLock, Journal, Ticket};
use crate::wire::{BuyState, CatalogBuy, ListQuery, ProductUpdate, MAX_NAME_BYTES};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
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

/// Why a catalog operation failed.
#[derive(Debug)]
pub enum CatalogError {
    /// No product of that name.
    UnknownProduct,
    /// Not enough stock.
    OutOfStock,
    /// This buy id was voided by the order service's recovery; it can never apply.
    Voided,
    /// The change could not be made durable.
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
    /// A buy id will never apply (order-service recovery).
    Void { seq: u64, buy: u64 },
    /// An admin update: the new price and stock.
    Set {
        seq: u64,
        name: String,
        price: f64,
        qty: u64,
    },
    /// The periodic restock set a sold-out product's stock.
    Restock { seq: u64, name: String, qty: u64 },
}

impl Record {
    fn seq(&self) -> u64 {
        match self {
            Record::Buy { seq, .. }
            | Record::Void { seq, .. }
            | Record::Set { seq, .. }
            | Record::Restock { seq, .. } => *seq,
        }
    }
}

/// The snapshot file's content.
#[derive(Debug, Serialize, Deserialize)]
struct Snapshot {
    /// The last record included.
    seq: u64,
    products: Vec<Product>,
    /// Buy ids the order service may still ask about.
    buys: Vec<(u64, BuyState)>,
    settled_below: u64,
}

struct Table {
    products: HashMap<String, Product>,
    /// Outcomes of buy ids not yet settled in the order log; ordered so that settled
    /// ones are dropped with one split.
    buys: BTreeMap<u64, BuyState>,
    settled_below: u64,
    seq: u64,
    /// Since when each sold-out product has been at 0 (in memory: after a restart the
    /// clock starts again at the restart).
    sold_out_since: HashMap<String, Instant>,
}

impl Table {
    fn apply(&mut self, record: &Record) {
        let name = match record {
            Record::Buy { name, .. } | Record::Set { name, .. } | Record::Restock { name, .. } => {
                Some(name)
            }
            Record::Void { .. } => None,
        };
        match record {
            Record::Buy { buy, name, qty, .. } => {
                if let Some(product) = self.products.get_mut(name) {
                    product.quantity = product.quantity.saturating_sub(*qty);
                }
                self.buys.insert(*buy, BuyState::Applied);
            }
            Record::Void { buy, .. } => {
                self.buys.insert(*buy, BuyState::Voided);
            }
            Record::Set {
                name, price, qty, ..
            } => {
                if let Some(product) = self.products.get_mut(name) {
                    product.price = *price;
                    product.quantity = *qty;
                }
            }
            Record::Restock { name, qty, .. } => {
                if let Some(product) = self.products.get_mut(name) {
                    product.quantity = *qty;
                }
            }
        }
        if let Some(product) = name.and_then(|n| self.products.get(n)) {
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

    fn settle_below(&mut self, settled_below: u64) {
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
            buys: self.buys.iter().map(|(id, state)| (*id, *state)).collect(),
            settled_below: self.settled_below,
        }
    }
}

/// The catalog: the table, its journal and where its snapshot lives.
pub struct Catalog {
    _dir: DirLock,
    table: RwLock<Table>,
    journal: Journal,
    snapshot_path: PathBuf,
    snapshot_every: u64,
}

impl Catalog {
    /// Opens the catalog in `dir`, seeding it from `seed` on first start, and replays
    /// the journal after the snapshot.
    pub fn open(dir: &Path, seed: &str, snapshot_every: u64) -> io::Result<Catalog> {
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
            write_atomically(&snapshot_path, &serde_json::to_vec(&snapshot)?)?;
        }
        let snapshot: Snapshot =
            serde_json::from_slice(&std::fs::read(&snapshot_path)?).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("catalog.snapshot: {e}"))
            })?;
        let mut table = Table {
            products: snapshot
                .products
                .into_iter()
                .map(|p| (p.name.clone(), p))
                .collect(),
            buys: snapshot.buys.into_iter().collect(),
            settled_below: snapshot.settled_below,
            seq: snapshot.seq,
            sold_out_since: HashMap::new(),
        };
        let now = Instant::now();
        for product in table.products.values().filter(|p| p.quantity == 0) {
            table.sold_out_since.insert(product.name.clone(), now);
        }
        let snapshot_seq = table.seq;
        let journal = Journal::open_json(&journal_path, |record: Record| {
            if record.seq() > snapshot_seq {
                table.apply(&record);
            }
            Ok(())
        })?;
        Ok(Catalog {
            _dir: held,
            table: RwLock::new(table),
            journal,
            snapshot_path,
            snapshot_every: snapshot_every.max(1),
        })
    }

    /// One product.
    pub fn get(&self, name: &str) -> Option<Product> {
        self.table.read().products.get(name).cloned()
    }

    /// Many products under one read lock, in the order of `names`.
    pub fn get_many<S: AsRef<str>>(&self, names: &[S]) -> Vec<Option<Product>> {
        let table = self.table.read();
        names
            .iter()
            .map(|name| table.products.get(name.as_ref()).cloned())
            .collect()
    }

    /// Products matching `query`, in seed order.
    pub fn list(&self, query: &ListQuery) -> Vec<Product> {
        let q = query.q.as_ref().map(|q| q.to_lowercase());
        let table = self.table.read();
        let mut matching: Vec<&Product> = table
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
        let (outcomes, ticket) = {
            let mut table = self.table.write();
            let outcomes: Vec<_> = buys.iter().map(|buy| self.take(&mut table, buy)).collect();
            (outcomes, self.journal.tail())
        };
        match self.wait(ticket) {
            Ok(()) => outcomes,
            Err(error) => {
                let message = error.to_string();
                outcomes
                    .into_iter()
                    .map(|o| {
                        o.and(Err(CatalogError::Storage(io::Error::other(
                            message.clone(),
                        ))))
                    })
                    .collect()
            }
        }
    }

    /// Applies one buy in memory and journals it; the caller waits for durability.
    fn take(&self, table: &mut Table, buy: &CatalogBuy) -> Result<(), CatalogError> {
        table.settle_below(buy.settled_below);
        if buy.buy_id < table.settled_below {
            // Settled and forgotten: a late duplicate must not take stock again.
            return Err(CatalogError::Voided);
        }
        match table.buys.get(&buy.buy_id) {
            Some(BuyState::Applied) => return Ok(()),
            Some(BuyState::Voided) => return Err(CatalogError::Voided),
            None => {}
        }
        let product = table
            .products
            .get(&buy.name)
            .ok_or(CatalogError::UnknownProduct)?;
        if product.quantity < buy.quantity {
            return Err(CatalogError::OutOfStock);
        }
        let record = Record::Buy {
            seq: table.seq + 1,
            buy: buy.buy_id,
            name: buy.name.clone(),
            qty: buy.quantity,
        };
        self.commit(table, record);
        Ok(())
    }

    /// The outcome of a buy id, voiding it if it never applied, so that a delayed
    /// request for it can never apply later.
    pub fn resolve(&self, buy_id: u64) -> Result<BuyState, CatalogError> {
        let (state, ticket) = {
            let mut table = self.table.write();
            match table.buys.get(&buy_id) {
                Some(state) => (*state, self.journal.tail()),
                None => {
                    let record = Record::Void {
                        seq: table.seq + 1,
                        buy: buy_id,
                    };
                    (BuyState::Voided, self.commit(&mut table, record))
                }
            }
        };
        self.wait(ticket)?;
        Ok(state)
    }

    /// Sets price and/or stock of an existing product.
    pub fn update(&self, name: &str, update: ProductUpdate) -> Result<Product, CatalogError> {
        let (ticket, product) = {
            let mut table = self.table.write();
            let product = table
                .products
                .get(name)
                .ok_or(CatalogError::UnknownProduct)?
                .clone();
            let price = update.price.unwrap_or(product.price);
            let qty = update.quantity.unwrap_or(product.quantity);
            let record = Record::Set {
                seq: table.seq + 1,
                name: name.to_string(),
                price,
                qty,
            };
            let ticket = self.commit(&mut table, record);
            (
                ticket,
                Product {
                    price,
                    quantity: qty,
                    ..product
                },
            )
        };
        self.wait(ticket)?;
        Ok(product)
    }

    /// Sets the stock of every product that has been sold out for at least
    /// `sold_out_for` to `level`; returns the names restocked. Waiting a whole period
    /// means a toy sold out just before a tick stays sold out for a while, as buyers
    /// (and tests) that just saw it sell out expect, instead of coming back at once.
    pub fn restock(&self, level: u64, sold_out_for: Duration) -> Result<Vec<String>, CatalogError> {
        let (ticket, names) = {
            let mut table = self.table.write();
            let mut names: Vec<String> = table
                .sold_out_since
                .iter()
                .filter(|(_, since)| since.elapsed() >= sold_out_for)
                .map(|(name, _)| name.clone())
                .collect();
            names.sort();
            let mut ticket = None;
            for name in &names {
                let record = Record::Restock {
                    seq: table.seq + 1,
                    name: name.clone(),
                    qty: level,
                };
                ticket = Some(self.commit(&mut table, record));
            }
            (ticket, names)
        };
        if let Some(ticket) = ticket {
            self.wait(ticket)?;
        }
        Ok(names)
    }

    /// (name, stock) of every product, for metrics.
    pub fn stock(&self) -> Vec<(String, u64)> {
        let mut stock: Vec<_> = self
            .table
            .read()
            .products
            .values()
            .map(|p| (p.name.clone(), p.quantity))
            .collect();
        stock.sort();
        stock
    }

    /// The journal, for metrics.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Applies `record` in memory and appends it to the journal. Called with the write
    /// lock held, which is what keeps memory and journal in the same order.
    fn commit(&self, table: &mut Table, record: Record) -> Ticket {
        table.apply(&record);
        self.journal.append_json(&record)
    }

    /// Waits for durability, then snapshots if the journal has grown long enough.
    fn wait(&self, ticket: Ticket) -> Result<(), CatalogError> {
        self.journal
            .wait_durable(ticket)
            .map_err(CatalogError::Storage)?;
        if self.journal.records() >= self.snapshot_every {
            self.snapshot().map_err(CatalogError::Storage)?;
        }
        Ok(())
    }

    /// Writes a snapshot and empties the journal, holding the write lock throughout so
    /// that no record falls between the two.
    fn snapshot(&self) -> io::Result<()> {
        let table = self.table.write();
        if self.journal.records() < self.snapshot_every {
            return Ok(()); // Another thread just did it.
        }
        write_atomically(&self.snapshot_path, &serde_json::to_vec(&table.snapshot())?)?;
        self.journal.truncate()?;
        self.journal.reset_records();
        Ok(())
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
        // The front-end answers longer names itself (see `wire::MAX_NAME_BYTES`).
        if [fields.get(1), fields.get(4)]
            .into_iter()
            .flatten()
            .any(|f| f.len() > MAX_NAME_BYTES)
        {
            return Err(bad(&format!(
                "name or category over {MAX_NAME_BYTES} bytes"
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
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path(), BUILTIN_SEED, 1000).unwrap();
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
        assert_eq!(catalog.resolve(1).unwrap(), BuyState::Applied);
        assert_eq!(catalog.resolve(4).unwrap(), BuyState::Voided);
        assert!(matches!(
            catalog.buy(&buy(4, "Tux", 1)),
            Err(CatalogError::Voided)
        ));
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
        assert_eq!(catalog.get("Tux").unwrap().quantity, 75);
        assert_eq!(catalog.get("Whale").unwrap().price, 1.0);
        assert_eq!(catalog.resolve(4).unwrap(), BuyState::Voided);
        assert!(
            catalog.get("Other").is_none(),
            "the seed is read only on first start"
        );
    }

    #[test]
    fn snapshots_keep_state_and_empty_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path(), BUILTIN_SEED, 3).unwrap();
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
        drop(catalog);
        let catalog = Catalog::open(dir.path(), BUILTIN_SEED, 3).unwrap();
        assert_eq!(catalog.get("Bird").unwrap().quantity, 90);
        assert_eq!(catalog.resolve(9).unwrap(), BuyState::Applied);
    }

    #[test]
    fn restock_only_touches_sold_out_products() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path(), BUILTIN_SEED, 1000).unwrap();
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
