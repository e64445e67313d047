//! The front-end cache (the contract's "front-end cache" section): its counters in
//! `/health` and `/metrics`, LRU order in `GET /cache`, read-your-writes through the
//! front-end that wrote, changes through one front-end seen through another, the loss
//! of the push channel, and a randomized run through two front-ends compared with the
//! catalog at quiescence. In-process stacks; a proxy in front of the catalog delays,
//! cuts or refuses the push channel of the front-end behind it.

mod common;

use common::{eventually, Http, Stack, TEST_TOKEN};
use serde_json::Value;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use toystore::peer::PeerAddr;

/// How long a test waits for something that comes well before (the contract's
/// bounds are 1 s; a loaded machine gets more, and no test asserts a time).
const PATIENCE: Duration = Duration::from_secs(15);

/// Twelve products, more than any cache here holds.
fn seed() -> String {
    (0..12)
        .map(|i| format!("{} P{i} {}.50 10000\n", i + 1, 10 + i))
        .collect()
}

/// A stack on [`seed`] whose front-end caches `size` products.
fn stack(size: usize) -> Stack {
    Stack::in_process()
        .seed(seed())
        .frontend(move |config| config.cache_size = size)
        .start()
}

/// `/health`'s `cache` object of the front-end at `front`.
fn cache_health(http: &Http, front: &str) -> Value {
    http.get(&format!("{front}/health")).ok()["cache"].clone()
}

fn counter(http: &Http, front: &str, name: &str) -> u64 {
    cache_health(http, front)[name].as_u64().expect(name)
}

/// Waits until the front-end at `front` says its push channel is `state` (`up`: it
/// serves from its cache).
fn wait_push(http: &Http, front: &str, state: &str) {
    eventually(&format!("the push channel to be {state}"), PATIENCE, || {
        (cache_health(http, front)["push"] == state).then_some(())
    });
}

/// The product's `data` as the front-end (or the catalog) at `base` shows it.
fn product(http: &Http, base: &str, name: &str) -> Value {
    http.get(&format!("{base}/products/{name}")).ok().clone()
}

/// Queries `name` through `front` until one query is a hit: it is cached then.
fn cached(http: &Http, front: &str, name: &str) {
    eventually(
        &format!("{name} to be answered from the cache"),
        PATIENCE,
        || {
            let hits = counter(http, front, "hits");
            product(http, front, name);
            (counter(http, front, "hits") > hits).then_some(())
        },
    );
}

/// Starts another front-end of `s`, caching 4 products, that reaches the catalog (its
/// push channel included) through a [`PushProxy`], once its push channel is up.
fn behind_a_proxy(s: &mut Stack) -> (PushProxy, String) {
    let proxy = PushProxy::start(s.catalog.as_deref().unwrap());
    let catalog = proxy.peer();
    let front = s.start_frontend(move |config| {
        config.cache_size = 4;
        config.catalog = catalog;
    });
    wait_push(&s.http, &front, "up");
    (proxy, front)
}

fn admin_put(http: &Http, base: &str, name: &str, body: &str) -> Value {
    http.put(&format!("{base}/products/{name}"), body, Some(TEST_TOKEN))
        .ok()
        .clone()
}

#[test]
fn health_metrics_and_the_cache_listing_count_hits_misses_and_evictions() {
    let s = stack(3);
    let http = &s.http;
    let front = s.front.as_str();
    wait_push(http, front, "up");
    let start = cache_health(http, front);
    assert_eq!(start["capacity"], 3);
    assert_eq!(start["entries"], 0);

    cached(http, front, "P0");
    let health = cache_health(http, front);
    assert!(health["misses"].as_u64() > start["misses"].as_u64());
    assert_eq!(health["entries"], 1);
    // P0 is used again after P1 and P2, so P1 is then the least recently used: P3
    // evicts it. Whatever the cache held before, these five leave the same order; they
    // run again if the push channel dropped meanwhile (a stalled machine), which
    // empties the cache.
    let listing = eventually("P3, P0 and P2 cached, in that order", PATIENCE, || {
        for name in ["P1", "P2", "P0", "P3"] {
            cached(http, front, name);
        }
        let listing = s.get("/cache");
        let names: Vec<&str> = listing.ok()["products"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        (names == ["P3", "P0", "P2"]).then_some(listing)
    });
    assert_eq!(listing.ok()["capacity"], 3);
    let health = cache_health(http, front);
    assert_eq!(health["entries"], 3);
    assert!(health["evictions"].as_u64() >= Some(1));

    let metrics = http.get(&format!("{front}/metrics")).text;
    let value = |name: &str| -> u64 {
        let line = metrics
            .lines()
            .find(|line| line.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in /metrics:\n{metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(value("toystore_cache_entries"), 3);
    assert!(value("toystore_cache_hits_total") >= 5);
    assert!(value("toystore_cache_misses_total") >= 4);
    assert!(value("toystore_cache_evictions_total") >= 1);
}

#[test]
fn with_the_cache_off_every_query_is_a_miss() {
    let s = stack(0);
    let before = cache_health(&s.http, &s.front);
    assert_eq!(before["capacity"], 0);
    assert_eq!(before["push"], "down");
    for _ in 0..3 {
        s.get("/products/P0").ok();
    }
    let after = cache_health(&s.http, &s.front);
    assert_eq!(after["hits"], 0);
    assert_eq!(after["entries"], 0);
    assert_eq!(
        after["misses"].as_u64(),
        before["misses"].as_u64().map(|m| m + 3)
    );
    assert_eq!(s.get("/cache").ok()["products"], serde_json::json!([]));
}

/// The push channel of the front-end behind the proxy runs late, so only the
/// front-end's own invalidation can make its next answer right.
#[test]
fn a_write_through_a_front_end_shows_at_once_in_its_next_answer() {
    let mut s = stack(4);
    let (proxy, front) = behind_a_proxy(&mut s);
    proxy.set_delay(Duration::from_millis(400));
    let http = &s.http;

    cached(http, &front, "P1");
    let quantity = product(http, &front, "P1")["quantity"].as_u64().unwrap();
    let bought = http.post(&format!("{front}/orders"), r#"{"name":"P1","quantity":3}"#);
    bought.ok();
    assert_eq!(
        product(http, &front, "P1")["quantity"].as_u64(),
        Some(quantity - 3)
    );
    http.post(&format!("{front}/P1/2"), "").ok();
    assert_eq!(
        product(http, &front, "P1")["quantity"].as_u64(),
        Some(quantity - 5)
    );

    cached(http, &front, "P1");
    admin_put(http, &front, "P1", r#"{"price":99.25}"#);
    assert_eq!(product(http, &front, "P1")["price"].as_f64(), Some(99.25));
}

#[test]
fn a_change_through_one_front_end_shows_through_another() {
    let mut s = stack(4);
    let other = s.start_frontend(|config| config.cache_size = 4);
    let http = &s.http;
    let catalog = s.catalog.clone().unwrap();
    wait_push(http, &other, "up");
    cached(http, &other, "P2");

    s.buy_ok("P2", 4);
    s.admin_put("P2", r#"{"price":42.75}"#).ok();
    let truth = product(http, &catalog, "P2");
    assert_eq!(truth["price"].as_f64(), Some(42.75));
    // Within 1 s by the contract; polled, as the machine may be slow.
    eventually("the other front-end to show the change", PATIENCE, || {
        (product(http, &other, "P2") == truth).then_some(())
    });
    // And from its cache again, still right.
    cached(http, &other, "P2");
    assert_eq!(product(http, &other, "P2"), truth);
}

#[test]
fn a_front_end_that_lost_the_push_channel_answers_what_the_catalog_says_and_resubscribes() {
    let mut s = stack(4);
    let (proxy, front) = behind_a_proxy(&mut s);
    let (http, catalog) = (&s.http, s.catalog.clone().unwrap());
    cached(http, &front, "P3");
    let subscriptions = proxy.subscriptions();

    // Cut mid-stream, and keep it cut: the front-end must not serve what it cached.
    proxy.cut(true);
    wait_push(http, &front, "down");
    assert_eq!(cache_health(http, &front)["entries"], 0);
    let changed = admin_put(http, &catalog, "P3", r#"{"price":77.5,"quantity":7}"#);
    for _ in 0..3 {
        assert_eq!(product(http, &front, "P3"), changed);
    }
    let listing = http.get(&format!("{front}/cache"));
    assert_eq!(listing.ok()["products"], serde_json::json!([]));

    // Let it back: it subscribes again and serves from its cache, fresh.
    proxy.allow();
    wait_push(http, &front, "up");
    assert!(proxy.subscriptions() > subscriptions);
    cached(http, &front, "P3");
    assert_eq!(product(http, &front, "P3"), changed);
    let again = admin_put(http, &catalog, "P3", r#"{"price":78.5}"#);
    eventually(
        "the change after the resubscription to show",
        PATIENCE,
        || (product(http, &front, "P3") == again).then_some(()),
    );
}

/// A push channel that stays open but goes silent (a stalled catalog or network)
/// counts as lost too.
#[test]
fn a_front_end_whose_push_channel_goes_silent_stops_serving_from_its_cache() {
    let mut s = stack(4);
    let (proxy, front) = behind_a_proxy(&mut s);
    let (http, catalog) = (&s.http, s.catalog.clone().unwrap());
    cached(http, &front, "P4");

    // Held, not closed: only the silence tells.
    proxy.set_delay(Duration::from_secs(3600));
    wait_push(http, &front, "down");
    let changed = admin_put(http, &catalog, "P4", r#"{"quantity":44}"#);
    assert_eq!(product(http, &front, "P4"), changed);

    proxy.set_delay(Duration::ZERO);
    wait_push(http, &front, "up");
    cached(http, &front, "P4");
    assert_eq!(product(http, &front, "P4"), changed);
}

/// Buys, admin updates and queries from several threads through two front-ends (one
/// whose push channel is cut now and then); once they stop, both front-ends answer
/// every product as the catalog does. `TOYSTORE_SEED` replays a run's operations.
#[test]
fn randomized_buys_updates_and_queries_through_two_front_ends_end_equal_to_the_catalog() {
    let seed: u64 = std::env::var("TOYSTORE_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("randomized cache test: seed {seed} (TOYSTORE_SEED={seed} replays it)");
    let mut s = stack(4);
    let (proxy, second) = behind_a_proxy(&mut s);
    let fronts = [s.front.clone(), second];
    let catalog = s.catalog.clone().unwrap();
    let http = &s.http;
    for front in &fronts {
        wait_push(http, front, "up");
    }

    const THREADS: u64 = 4;
    const OPERATIONS: usize = 150;
    thread::scope(|scope| {
        for t in 0..THREADS {
            let (fronts, proxy) = (&fronts, &proxy);
            scope.spawn(move || {
                let mut rng = fastrand::Rng::with_seed(seed.wrapping_add(t));
                let http = Http::default();
                for i in 0..OPERATIONS {
                    let front = &fronts[rng.usize(..fronts.len())];
                    let name = format!("P{}", rng.usize(..12));
                    match rng.u8(..20) {
                        0..=11 => {
                            product(&http, front, &name);
                        }
                        12..=15 => {
                            let body =
                                format!(r#"{{"name":"{name}","quantity":{}}}"#, rng.u8(1..4));
                            http.post(&format!("{front}/orders"), &body).ok();
                        }
                        16..=18 => {
                            let body = match rng.bool() {
                                true => format!(r#"{{"price":{}.25}}"#, rng.u8(1..100)),
                                false => format!(r#"{{"quantity":{}}}"#, rng.u16(5000..10000)),
                            };
                            admin_put(&http, front, &name, &body);
                        }
                        _ if t == 0 && i % 40 == 0 => proxy.cut(false),
                        _ => {
                            product(&http, front, &name);
                        }
                    }
                }
            });
        }
    });

    let truth: Vec<(String, Value)> = (0..12)
        .map(|i| format!("P{i}"))
        .map(|name| (name.clone(), product(http, &catalog, &name)))
        .collect();
    let truth_of = |name: &str| &truth.iter().find(|(n, _)| n == name).unwrap().1;
    for front in &fronts {
        wait_push(http, front, "up");
        assert!(
            counter(http, front, "hits") > 0,
            "{front} never answered from its cache"
        );
        // What each front-end holds first: these queries are hits, so none evicts an
        // entry before it is looked at.
        let listing = http.get(&format!("{front}/cache"));
        let held: Vec<String> = listing.ok()["products"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect();
        for name in held.iter().chain(truth.iter().map(|(name, _)| name)) {
            let truth = truth_of(name);
            eventually(
                &format!("{front} to answer {name} as the catalog: {truth}"),
                PATIENCE,
                || (product(http, front, name) == *truth).then_some(()),
            );
        }
    }
}

// --- a proxy in front of the catalog that controls the push channel ---------------

/// A TCP proxy to the catalog. Connections that open with `GET /changes` (the push
/// channel) can be delayed, cut and refused; every other one is passed through.
struct PushProxy {
    addr: SocketAddr,
    shared: Arc<ProxyShared>,
}

#[derive(Default)]
struct ProxyShared {
    /// How late the catalog's bytes reach the push channel's subscriber.
    delay: Mutex<Duration>,
    /// Push-channel connections are closed at once while set.
    refuse: AtomicBool,
    /// Both ends of every push-channel connection, for [`PushProxy::cut`].
    streams: Mutex<Vec<TcpStream>>,
    /// Push-channel connections passed through so far.
    subscriptions: AtomicUsize,
    closed: AtomicBool,
}

impl PushProxy {
    fn start(catalog: &str) -> PushProxy {
        let upstream = catalog
            .trim_start_matches("http://")
            .to_socket_addrs()
            .unwrap()
            .next()
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(ProxyShared::default());
        let accepting = Arc::clone(&shared);
        thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.closed.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let shared = Arc::clone(&accepting);
                thread::spawn(move || shared.serve(client, upstream));
            }
        });
        PushProxy { addr, shared }
    }

    fn peer(&self) -> PeerAddr {
        PeerAddr::parse(&format!("http://{}", self.addr), 0).unwrap()
    }

    fn set_delay(&self, delay: Duration) {
        *self.shared.delay.lock().unwrap() = delay;
    }

    fn subscriptions(&self) -> usize {
        self.shared.subscriptions.load(Ordering::SeqCst)
    }

    /// Cuts every push-channel connection; with `refuse`, new ones too until [`allow`].
    fn cut(&self, refuse: bool) {
        self.shared.refuse.store(refuse, Ordering::SeqCst);
        for stream in self.shared.streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn allow(&self) {
        self.shared.refuse.store(false, Ordering::SeqCst);
    }
}

impl Drop for PushProxy {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.cut(true);
        // Wakes the accepting thread so that it sees `closed`.
        let _ = TcpStream::connect(self.addr);
    }
}

impl ProxyShared {
    fn serve(&self, client: TcpStream, upstream: SocketAddr) {
        const PUSH: &[u8] = b"GET /changes";
        let mut head = [0u8; PUSH.len()];
        // Every request line is longer than this prefix: wait until it is all here.
        loop {
            match client.peek(&mut head) {
                Ok(0) | Err(_) => return,
                Ok(n) if n == head.len() => break,
                Ok(_) => thread::yield_now(),
            }
        }
        let push = head == *PUSH;
        if push && self.refuse.load(Ordering::SeqCst) {
            return;
        }
        let Ok(server) = TcpStream::connect(upstream) else {
            return;
        };
        if push {
            self.subscriptions.fetch_add(1, Ordering::SeqCst);
            let mut streams = self.streams.lock().unwrap();
            streams.extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
        }
        let (client_reader, server_writer) =
            (client.try_clone().unwrap(), server.try_clone().unwrap());
        thread::spawn(move || pipe(client_reader, server_writer));
        if !push {
            return pipe(server, client);
        }
        // The catalog's bytes, each chunk written `delay` after it was read.
        let (chunks, delayed) = mpsc::channel::<(Instant, Vec<u8>)>();
        let mut reader = server;
        thread::spawn(move || {
            let mut buffer = [0u8; 16 * 1024];
            while let Ok(n @ 1..) = reader.read(&mut buffer) {
                if chunks.send((Instant::now(), buffer[..n].to_vec())).is_err() {
                    return;
                }
            }
        });
        let mut writer = client;
        for (read_at, chunk) in delayed {
            // Network latency, simulated (this wait synchronises nothing), in short
            // steps so that a new delay or the proxy's end applies at once.
            loop {
                let due = read_at + *self.delay.lock().unwrap();
                let left = due.saturating_duration_since(Instant::now());
                if left.is_zero() || self.closed.load(Ordering::SeqCst) {
                    break;
                }
                thread::sleep(left.min(Duration::from_millis(20)));
            }
            if self.closed.load(Ordering::SeqCst) || writer.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = writer.shutdown(Shutdown::Both);
    }
}

/// Copies `from` to `to` until either ends, then closes both.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
