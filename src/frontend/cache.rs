//! The front-end's cache of product replies: least recently used evicted first, and
//! never stale.
//!
//! **Hits take no lock every worker contends on.** Entries live in shards picked by
//! the name's hash, each behind a read-write lock: a hit takes its shard's read lock,
//! copies the reply (already serialised: a hit does no JSON work) and writes the
//! time into the entry's recency stamp (an atomic). Hits and misses are counted in
//! per-thread slots. Fills (misses, which have just called the catalog) are
//! serialised by one mutex, so the capacity is exact and eviction takes the least
//! recently used entry across all shards.
//!
//! **Never stale.** Every fill and every invalidation draws a number from one
//! sequence. A fill draws its [`Ticket`] *before* it asks the catalog; an invalidation
//! (a change pushed by the catalog, this front-end's own write) records its number
//! against the name. A fill whose name was invalidated after its ticket was drawn is
//! refused: its reply may predate the change. Losing the push channel, and a new
//! stream's hello, raise a floor under which every ticket is refused and empty the
//! cache; between the two nothing is served from it ([`Cache::usable`]).
//!
//! A pushed change removes the entry rather than replacing its value: a value a fill
//! read may already be newer than a change line still on its way, and the catalog's
//! replies carry no sequence number to tell.

use parking_lot::{Mutex, RwLock};
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Shards of the table: enough that hot products rarely share a lock.
const SHARDS: usize = 32;
/// Invalidated names a shard remembers one by one; beyond, it keeps only the newest
/// stamp for all of them (which refuses more fills, never too few).
const REMEMBERED_PER_SHARD: usize = 1024;
/// How far apart, in nanoseconds, the times the push channel was heard are recorded.
const HEARD_GRAIN: u64 = 1_000_000;
/// Slots of the hit and miss counters, picked by thread.
const COUNTER_SLOTS: usize = 16;

/// A fill's place in the sequence of fills and invalidations, drawn before it asks
/// the catalog ([`Cache::begin_fill`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

/// What `/health` and `/metrics` show of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Products it may hold.
    pub capacity: usize,
    /// Products it holds.
    pub entries: usize,
    /// Queries answered from it.
    pub hits: u64,
    /// Queries that asked the catalog.
    pub misses: u64,
    /// Entries dropped to make room.
    pub evictions: u64,
    /// Whether it may serve now (the push channel is up and was heard lately).
    pub serving: bool,
}

/// One cached product.
struct Entry {
    /// The reply to `GET /products/{name}`, as sent.
    reply: Box<[u8]>,
    /// When it was last filled or hit ([`Cache::now`]).
    last_used: AtomicU64,
    /// The ticket of the fill that read it.
    ticket: Ticket,
}

impl Entry {
    fn touch(&self, now: u64) {
        // A load first: a hot entry hit by many threads at once is written only
        // when the time moved on.
        if self.last_used.load(Ordering::Relaxed) < now {
            self.last_used.store(now, Ordering::Relaxed);
        }
    }
}

/// One shard's entries and invalidations.
#[derive(Default)]
struct Table {
    entries: HashMap<Box<str>, Entry>,
    /// The last invalidation of each name lately invalidated.
    invalidated: HashMap<Box<str>, u64>,
    /// Invalidations no longer remembered by name were all at or below this.
    forgotten: u64,
}

impl Table {
    /// Whether a fill of `name` with `ticket` may have read a value changed since.
    fn outdated(&self, name: &str, ticket: Ticket) -> bool {
        self.forgotten > ticket.0 || self.invalidated.get(name).is_some_and(|&at| at > ticket.0)
    }
}

/// A shard on a cache line of its own, so that two shards' locks do not share one.
#[repr(align(128))]
#[derive(Default)]
struct Shard(RwLock<Table>);

/// Hits and misses counted by one group of threads.
#[repr(align(128))]
#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
}

thread_local! {
    static COUNTER_SLOT: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % COUNTER_SLOTS
    };
}

/// The cache (see the module's documentation).
pub struct Cache {
    /// Products it may hold; 0: off, every query a miss.
    capacity: usize,
    shards: Box<[Shard]>,
    /// Picks a name's shard.
    hasher: RandomState,
    /// Numbers fills and invalidations, in the order they happen.
    sequence: AtomicU64,
    /// Tickets at or below are refused: drawn before the push channel was lost or
    /// before the current stream began.
    floor: AtomicU64,
    /// Serialises fills, so that eviction and the capacity are exact.
    filling: Mutex<()>,
    entries: AtomicUsize,
    evictions: AtomicU64,
    counters: [Counters; COUNTER_SLOTS],
    /// The origin of [`Cache::now`].
    origin: Instant,
    /// When the push channel was last heard from ([`Cache::now`]); 0: it is down.
    heard: AtomicU64,
    /// How long the channel may stay silent before the cache stops serving.
    silence_limit: u64,
}

impl Cache {
    /// A cache of `capacity` products (0: off) that serves only while its push
    /// channel was heard from within `silence_limit`. It starts down: nothing is
    /// served before [`Cache::hello`].
    pub fn new(capacity: usize, silence_limit: Duration) -> Cache {
        Cache {
            capacity,
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            hasher: RandomState::new(),
            sequence: AtomicU64::new(0),
            floor: AtomicU64::new(0),
            filling: Mutex::new(()),
            entries: AtomicUsize::new(0),
            evictions: AtomicU64::new(0),
            counters: Default::default(),
            origin: Instant::now(),
            heard: AtomicU64::new(0),
            silence_limit: u64::try_from(silence_limit.as_nanos()).unwrap_or(u64::MAX),
        }
    }

    /// Products it may hold; 0 when it is off.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Nanoseconds since the cache was made, at least 1 (0 means "never").
    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX) + 1
    }

    fn shard(&self, name: &str) -> &RwLock<Table> {
        let index = self.hasher.hash_one(name) as usize % SHARDS;
        &self.shards[index].0
    }

    fn counters(&self) -> &Counters {
        &self.counters[COUNTER_SLOT.with(|slot| *slot)]
    }

    fn draw(&self) -> u64 {
        self.sequence.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn usable_at(&self, now: u64) -> bool {
        let heard = self.heard.load(Ordering::Acquire);
        heard != 0 && now.saturating_sub(heard) < self.silence_limit
    }

    /// Whether it may serve now: its push channel is up and was heard from lately.
    pub fn usable(&self) -> bool {
        self.usable_at(self.now())
    }

    /// The cached reply for `name`, counted as a hit; `None` (a miss, counted) when it
    /// is not cached, or the cache is off or may not serve.
    pub fn get(&self, name: &str) -> Option<Vec<u8>> {
        let found = self.lookup(name);
        let counters = self.counters();
        let counter = if found.is_some() {
            &counters.hits
        } else {
            &counters.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    fn lookup(&self, name: &str) -> Option<Vec<u8>> {
        if self.capacity == 0 {
            return None;
        }
        let now = self.now();
        if !self.usable_at(now) {
            return None;
        }
        let table = self.shard(name).read();
        let entry = table.entries.get(name)?;
        entry.touch(now);
        Some(entry.reply.to_vec())
    }

    /// A ticket for a fill, drawn before the catalog is asked.
    pub fn begin_fill(&self) -> Ticket {
        Ticket(self.draw())
    }

    /// Caches `reply` for `name`, read from the catalog after `ticket` was drawn,
    /// evicting the least recently used entry if the cache is full. Refused (false)
    /// when `name` was invalidated since the ticket, or the push channel was lost or
    /// restarted since; and when the cache is off.
    pub fn fill(&self, name: &str, ticket: Ticket, reply: &[u8]) -> bool {
        if self.capacity == 0 || self.refused(ticket) {
            return false;
        }
        let _filling = self.filling.lock();
        let shard = self.shard(name);
        {
            let table = shard.read();
            if table.outdated(name, ticket) {
                return false;
            }
            if !table.entries.contains_key(name) {
                drop(table);
                while self.entries.load(Ordering::SeqCst) >= self.capacity && self.evict() {}
            }
        }
        // Checked again under the write lock: an invalidation or a loss of the channel
        // may have come meanwhile (a loss raises the floor before it empties a shard).
        let mut table = shard.write();
        if table.outdated(name, ticket) || self.refused(ticket) {
            return false;
        }
        let entry = Entry {
            reply: reply.into(),
            last_used: AtomicU64::new(self.now()),
            ticket,
        };
        match table.entries.get_mut(name) {
            // Two fills of one name raced: the later reader's value stays.
            Some(held) if held.ticket.0 > ticket.0 => return false,
            Some(held) => *held = entry,
            None => {
                table.entries.insert(name.into(), entry);
                self.entries.fetch_add(1, Ordering::SeqCst);
            }
        }
        true
    }

    /// Whether fills with `ticket` are refused whatever their name: drawn before the
    /// channel was lost or the current stream began, or the channel is down (what a
    /// fill reads then may change without a push; the next hello would drop it anyway).
    fn refused(&self, ticket: Ticket) -> bool {
        ticket.0 <= self.floor.load(Ordering::SeqCst) || self.heard.load(Ordering::SeqCst) == 0
    }

    /// Drops the least recently used entry; false if there was none.
    fn evict(&self) -> bool {
        let mut oldest: Option<(usize, Box<str>, u64)> = None;
        for (index, shard) in self.shards.iter().enumerate() {
            for (name, entry) in &shard.0.read().entries {
                let used = entry.last_used.load(Ordering::Relaxed);
                if oldest.as_ref().is_none_or(|(_, _, at)| used < *at) {
                    oldest = Some((index, name.clone(), used));
                }
            }
        }
        let Some((index, name, _)) = oldest else {
            return false;
        };
        if self.shards[index].0.write().entries.remove(&name).is_some() {
            self.entries.fetch_sub(1, Ordering::SeqCst);
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    /// `name` changed (pushed by the catalog, or written through this front-end):
    /// its entry goes, and fills that started before are refused.
    pub fn invalidate(&self, name: &str) {
        if self.capacity == 0 {
            return;
        }
        let at = self.draw();
        let mut table = self.shard(name).write();
        if table.entries.remove(name).is_some() {
            self.entries.fetch_sub(1, Ordering::SeqCst);
        }
        let table = &mut *table;
        if let Some(last) = table.invalidated.get_mut(name) {
            *last = (*last).max(at);
            return;
        }
        if table.invalidated.len() >= REMEMBERED_PER_SHARD {
            let newest = table.invalidated.values().copied().max().unwrap_or(0);
            table.forgotten = table.forgotten.max(newest);
            table.invalidated.clear();
        }
        table.invalidated.insert(name.into(), at);
    }

    /// Refuses every fill drawn so far and empties the cache.
    fn reset(&self) {
        self.floor.store(self.draw(), Ordering::SeqCst);
        for shard in self.shards.iter() {
            let mut table = shard.0.write();
            self.entries
                .fetch_sub(table.entries.len(), Ordering::SeqCst);
            *table = Table::default();
        }
    }

    /// The push channel is lost: nothing is served or filled until [`Cache::hello`],
    /// and nothing read before is kept.
    pub fn lost(&self) {
        self.heard.store(0, Ordering::Release);
        self.reset();
    }

    /// A new stream's hello: every change from now on will be pushed, so the cache
    /// serves again, from empty, filled only by what is read from now on.
    pub fn hello(&self) {
        self.reset();
        self.heard.store(self.now(), Ordering::Release);
    }

    /// A line came on the push channel: it is alive.
    pub fn heard(&self) {
        let now = self.now();
        // Every hit reads this: under a stream of changes, write it once a
        // millisecond, not once a line (only the push thread writes it).
        if now.saturating_sub(self.heard.load(Ordering::Relaxed)) >= HEARD_GRAIN {
            self.heard.store(now, Ordering::Release);
        }
    }

    /// Its counters and state.
    pub fn stats(&self) -> CacheStats {
        let (hits, misses) = self.counters.iter().fold((0, 0), |(h, m), c| {
            (
                h + c.hits.load(Ordering::Relaxed),
                m + c.misses.load(Ordering::Relaxed),
            )
        });
        CacheStats {
            capacity: self.capacity,
            entries: self.entries.load(Ordering::SeqCst),
            hits,
            misses,
            evictions: self.evictions.load(Ordering::Relaxed),
            serving: self.capacity > 0 && self.usable(),
        }
    }

    /// The cached products, most recently used first, with the time since each was
    /// last used.
    pub fn products(&self) -> Vec<(String, Duration)> {
        let now = self.now();
        let mut products: Vec<(String, u64)> = self
            .shards
            .iter()
            .flat_map(|shard| {
                let table = shard.0.read();
                table
                    .entries
                    .iter()
                    .map(|(name, entry)| {
                        (name.to_string(), entry.last_used.load(Ordering::Relaxed))
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        products.sort_by_key(|(_, used)| std::cmp::Reverse(*used));
        products
            .into_iter()
            .map(|(name, used)| (name, Duration::from_nanos(now.saturating_sub(used))))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long enough that no test outlives it: these tests never lose the channel by silence.
    const FOREVER: Duration = Duration::from_secs(3600);

    fn serving(capacity: usize) -> Cache {
        let cache = Cache::new(capacity, FOREVER);
        cache.hello();
        cache
    }

    fn put(cache: &Cache, name: &str) -> bool {
        let ticket = cache.begin_fill();
        cache.fill(name, ticket, name.as_bytes())
    }

    fn names(cache: &Cache) -> Vec<String> {
        cache.products().into_iter().map(|(name, _)| name).collect()
    }

    #[test]
    fn the_least_recently_used_goes_first() {
        let cache = serving(3);
        for name in ["A", "B", "C"] {
            assert!(put(&cache, name));
        }
        assert_eq!(cache.get("A").as_deref(), Some(&b"A"[..]));
        assert!(put(&cache, "D"));
        assert_eq!(names(&cache), ["D", "A", "C"]);
        assert_eq!(cache.get("B"), None);
        assert!(put(&cache, "E"));
        assert_eq!(names(&cache), ["E", "D", "A"]);
        let stats = cache.stats();
        assert_eq!((stats.entries, stats.evictions), (3, 2));
        assert_eq!((stats.hits, stats.misses), (1, 1));
    }

    #[test]
    fn a_refill_replaces_without_evicting() {
        let cache = serving(2);
        assert!(put(&cache, "A"));
        assert!(put(&cache, "B"));
        let ticket = cache.begin_fill();
        assert!(cache.fill("A", ticket, b"new"));
        assert_eq!(cache.get("A").as_deref(), Some(&b"new"[..]));
        assert_eq!(names(&cache), ["A", "B"]);
        assert_eq!(cache.stats().evictions, 0);
    }

    #[test]
    fn of_two_racing_fills_the_later_reader_wins() {
        let cache = serving(2);
        let (early, late) = (cache.begin_fill(), cache.begin_fill());
        assert!(cache.fill("A", late, b"late"));
        assert!(!cache.fill("A", early, b"early"));
        assert_eq!(cache.get("A").as_deref(), Some(&b"late"[..]));
    }

    #[test]
    fn it_never_holds_more_than_its_capacity() {
        let cache = serving(4);
        for i in 0..100 {
            assert!(put(&cache, &format!("p{i}")));
            assert!(cache.stats().entries <= 4);
        }
        assert_eq!(cache.stats().entries, 4);
        assert_eq!(cache.stats().evictions, 96);
        assert_eq!(names(&cache), ["p99", "p98", "p97", "p96"]);
    }

    #[test]
    fn off_it_caches_nothing_and_counts_every_query_a_miss() {
        let cache = serving(0);
        assert!(!put(&cache, "A"));
        assert_eq!(cache.get("A"), None);
        assert_eq!(cache.get("A"), None);
        let stats = cache.stats();
        assert_eq!(
            (stats.capacity, stats.entries, stats.hits, stats.misses),
            (0, 0, 0, 2)
        );
    }

    /// The race the cache exists to win: a fill read the catalog, the product changed,
    /// the change's invalidation arrived, and only then does the fill come back.
    #[test]
    fn a_fill_that_read_before_an_invalidation_arriving_after_it_is_refused() {
        let cache = serving(4);
        let ticket = cache.begin_fill();
        // ... the catalog answers with the old value; meanwhile the product changes:
        cache.invalidate("Tux");
        assert!(!cache.fill("Tux", ticket, b"old"));
        assert_eq!(cache.get("Tux"), None);
        // A fill that starts after the invalidation reads the new value and is kept.
        let ticket = cache.begin_fill();
        assert!(cache.fill("Tux", ticket, b"new"));
        assert_eq!(cache.get("Tux").as_deref(), Some(&b"new"[..]));
        // Another product's invalidation refuses nothing of Tux's.
        let ticket = cache.begin_fill();
        cache.invalidate("Whale");
        assert!(cache.fill("Tux", ticket, b"newer"));
    }

    #[test]
    fn an_invalidation_removes_the_entry() {
        let cache = serving(4);
        assert!(put(&cache, "Tux"));
        cache.invalidate("Tux");
        assert_eq!(cache.get("Tux"), None);
        assert_eq!(cache.stats().entries, 0);
        assert_eq!(cache.stats().evictions, 0);
    }

    #[test]
    fn forgotten_invalidations_still_refuse_older_fills() {
        let cache = serving(4);
        let ticket = cache.begin_fill();
        cache.invalidate("Tux");
        // Enough other names that every shard forgets names one by one.
        for i in 0..SHARDS * REMEMBERED_PER_SHARD * 2 {
            cache.invalidate(&format!("p{i}"));
        }
        assert!(!cache.fill("Tux", ticket, b"old"));
        assert!(put(&cache, "Tux"));
    }

    #[test]
    fn losing_the_channel_empties_it_and_refuses_older_fills_until_a_new_hello() {
        let cache = serving(4);
        assert!(put(&cache, "A"));
        let before_loss = cache.begin_fill();
        cache.lost();
        assert!(!cache.usable());
        assert_eq!(cache.stats().entries, 0);
        assert!(!cache.fill("B", before_loss, b"B"));
        // While it is down, a fill may read a value whose change will never be pushed.
        let while_down = cache.begin_fill();
        assert!(!cache.fill("C", while_down, b"C"));
        assert_eq!(
            cache.get("C"),
            None,
            "nothing is served while the channel is down"
        );
        cache.hello();
        assert!(cache.usable());
        assert!(!cache.fill("D", while_down, b"D"), "read before the hello");
        assert!(put(&cache, "D"));
        assert_eq!(cache.get("D").as_deref(), Some(&b"D"[..]));
    }

    #[test]
    fn a_silent_channel_stops_it_serving() {
        let cache = Cache::new(4, Duration::ZERO);
        cache.hello();
        assert!(put(&cache, "A"));
        assert_eq!(cache.get("A"), None);
        assert!(!cache.stats().serving);
    }

    #[test]
    fn concurrent_hits_and_fills_keep_the_counts_exact() {
        let cache = serving(8);
        let threads = 4;
        let rounds = 2000;
        std::thread::scope(|scope| {
            for t in 0..threads {
                let cache = &cache;
                scope.spawn(move || {
                    for i in 0..rounds {
                        let name = format!("p{}", (i * 7 + t) % 12);
                        if cache.get(&name).is_none() {
                            put(cache, &name);
                        }
                        if i % 50 == 0 {
                            cache.invalidate(&name);
                        }
                    }
                });
            }
        });
        let stats = cache.stats();
        assert_eq!(stats.hits + stats.misses, (threads * rounds) as u64);
        assert!(stats.entries <= 8);
        assert_eq!(stats.entries, cache.products().len());
    }
}
