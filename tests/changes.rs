//! The catalog's push channel, `GET /changes` (issue 13; the protocol is in
//! `docs/internal-api.md`): the catalog's `run` in this process on port 0, subscribers on
//! raw sockets. The broadcaster's bounds (a subscriber that stops reading is cut off, the
//! others miss nothing) are unit-tested in `src/catalog/push.rs`, where its buffers can
//! be made small; that a change is published only once visible, in `src/catalog/store.rs`.

mod common;

use common::{eventually, host_port, Http, Metrics, Running};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};
use toystore::catalog::{self, CatalogConfig, BUILTIN_SEED};
use toystore::http::ServerConfig;
use toystore::wire::{ChangeLine, ProductView};

/// How long a test waits for something that comes well before.
const PATIENCE: Duration = Duration::from_secs(10);
const ADMIN: &str = "adm";

/// The catalog's `run` in a thread, alone, on a fresh data directory; stopped when
/// dropped.
struct Catalog {
    running: Running,
    _dir: tempfile::TempDir,
}

impl Catalog {
    /// The built-in seed, no restock, admin token [`ADMIN`], then `tweak`.
    fn start(tweak: impl FnOnce(&mut CatalogConfig)) -> Catalog {
        let dir = tempfile::tempdir().unwrap();
        let mut config = CatalogConfig {
            server: ServerConfig::default(),
            data_dir: dir.path().to_path_buf(),
            seed: BUILTIN_SEED.to_string(),
            admin_token: Some(ADMIN.into()),
            restock_period: None,
            restock_level: 100,
            snapshot_every: 10_000,
        };
        tweak(&mut config);
        Catalog {
            running: Running::start("catalog", config, catalog::run),
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.url())
    }

    /// `GET /changes` on a new connection, with `authorization` if given.
    fn subscribe_with(&self, authorization: Option<&str>) -> Subscriber {
        self.ask("GET", authorization)
    }

    /// `method /changes` on a new connection; the response's head read.
    fn ask(&self, method: &str, authorization: Option<&str>) -> Subscriber {
        let mut socket = TcpStream::connect(host_port(&self.running.url())).unwrap();
        socket.set_read_timeout(Some(PATIENCE)).unwrap();
        let authorization = authorization
            .map(|value| format!("Authorization: {value}\r\n"))
            .unwrap_or_default();
        write!(
            socket,
            "{method} /changes HTTP/1.1\r\nHost: catalog\r\n{authorization}\r\n"
        )
        .unwrap();
        let mut reader = BufReader::new(socket);
        let mut head = String::new();
        loop {
            let before = head.len();
            reader.read_line(&mut head).expect("a head");
            if head[before..] == *"\r\n" || head.len() == before {
                break;
            }
        }
        Subscriber { reader, head }
    }

    /// A subscriber whose 200 head has been read, and its hello's seq.
    fn subscribe(&self) -> (Subscriber, u64) {
        let mut subscriber = self.subscribe_with(None);
        assert!(
            subscriber.head.starts_with("HTTP/1.1 200 "),
            "{}",
            subscriber.head
        );
        let hello = subscriber.next();
        let ChangeLine::Hello { seq, .. } = hello else {
            panic!("not a hello first: {hello:?}");
        };
        (subscriber, seq)
    }

    /// Stops the catalog: its `run` must return Ok within [`PATIENCE`].
    fn stop(self) {
        let Catalog { mut running, _dir } = self;
        let (done, stopped) = mpsc::channel();
        thread::spawn(move || {
            running.stop();
            let _ = done.send(());
        });
        stopped
            .recv_timeout(PATIENCE)
            .expect("run returns Ok after a shutdown");
    }
}

/// One subscription's socket.
struct Subscriber {
    reader: BufReader<TcpStream>,
    /// The response head, status line to the blank line.
    head: String,
}

impl Subscriber {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then_some(value.trim())
        })
    }

    /// The next line; a read timeout or the end of the stream fails the test.
    fn next(&mut self) -> ChangeLine {
        let mut line = String::new();
        let read = self.reader.read_line(&mut line).expect("a line in time");
        assert!(read > 0, "the stream ended");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }

    /// The next change line after `last`: heartbeats between repeat `last`, and the
    /// change is `last + 1`.
    fn change_after(&mut self, last: u64) -> Vec<ProductView> {
        loop {
            match self.next() {
                ChangeLine::Heartbeat { seq } => assert_eq!(seq, last, "a heartbeat's seq"),
                ChangeLine::Change { seq, products } => {
                    assert_eq!(seq, last + 1, "change lines are numbered without gaps");
                    return products;
                }
                hello => panic!("a second hello: {hello:?}"),
            }
        }
    }

    /// The body of a refusal (framed by Content-Length), as JSON.
    fn refusal(mut self) -> Value {
        let length: usize = self.header("content-length").unwrap().parse().unwrap();
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    /// Whether the catalog ends the stream within [`PATIENCE`] (heartbeats may come
    /// first; they must not keep the test waiting for ever).
    fn ends(mut self) -> bool {
        let deadline = Instant::now() + PATIENCE;
        let mut chunk = [0; 4096];
        while Instant::now() < deadline {
            match self.reader.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    }
}

fn product(name: &str, price: f64, quantity: u64) -> Vec<ProductView> {
    vec![ProductView {
        name: name.into(),
        price,
        quantity,
    }]
}

/// The product as the catalog's `GET /products/{name}` shows it.
fn read(http: &Http, catalog: &Catalog, name: &str) -> Vec<ProductView> {
    let r = http.get(&catalog.url(&format!("/products/{name}")));
    vec![serde_json::from_value(r.ok().clone()).unwrap()]
}

#[test]
fn the_stream_is_close_delimited_ndjson_a_hello_then_heartbeats() {
    let catalog = Catalog::start(|_| {});
    let mut subscriber = catalog.subscribe_with(None);
    assert!(
        subscriber.head.starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        subscriber.head
    );
    assert_eq!(
        subscriber.header("content-type"),
        Some("application/x-ndjson")
    );
    assert_eq!(subscriber.header("connection"), Some("close"));
    assert_eq!(subscriber.header("content-length"), None);
    assert_eq!(subscriber.header("transfer-encoding"), None);
    let ChangeLine::Hello { seq, epoch } = subscriber.next() else {
        panic!("not a hello first");
    };
    assert_eq!(seq, 0, "a fresh catalog has made no change");
    assert!(
        epoch.len() == 16 && epoch.bytes().all(|b| b.is_ascii_hexdigit()),
        "{epoch}"
    );
    for _ in 0..3 {
        assert_eq!(subscriber.next(), ChangeLine::Heartbeat { seq: 0 });
    }
    // Handed off: the server no longer counts the stream's connection (only this
    // scrape's), and the catalog counts its subscriber.
    let metrics = Metrics::scrape(&Http::default(), &catalog.url(""));
    assert_eq!(metrics.value("toystore_http_open_connections"), 1);
    assert_eq!(metrics.value("toystore_catalog_push_subscribers"), 1);
    assert!(metrics.value("toystore_catalog_push_lines_total") >= 3);
    // A new catalog process, a new epoch.
    let other = Catalog::start(|_| {});
    let ChangeLine::Hello { epoch: again, .. } = other.subscribe_with(None).next() else {
        panic!("not a hello first");
    };
    assert_ne!(epoch, again);
}

/// A buy, an admin update, a resolve that gives stock back, a batch buy and a restock:
/// one line each with the product's new state, numbered one after the other; a void
/// changes nothing and sends nothing. Each line's state is already what a read shows.
#[test]
fn every_kind_of_change_is_one_line_with_the_new_state_once_visible() {
    let catalog = Catalog::start(|config| config.restock_period = Some(Duration::from_millis(100)));
    let http = Http::default();
    let (mut subscriber, hello) = catalog.subscribe();
    let buy =
        |id: u64, quantity: u64| format!(r#"{{"buy_id":{id},"name":"Tux","quantity":{quantity}}}"#);
    let mut expect = |seq: u64, name: &str, change: Vec<ProductView>| {
        assert_eq!(subscriber.change_after(seq), change, "change {}", seq + 1);
        assert_eq!(read(&http, &catalog, name), change, "visible when sent");
    };
    http.post(&catalog.url("/buy"), &buy(1, 5)).ok();
    expect(hello, "Tux", product("Tux", 25.99, 75));
    http.put(
        &catalog.url("/products/Whale"),
        r#"{"price":1.5}"#,
        Some(ADMIN),
    )
    .ok();
    expect(hello + 1, "Whale", product("Whale", 1.5, 100));
    http.post(&catalog.url("/buys/1/resolve"), "").ok();
    expect(hello + 2, "Tux", product("Tux", 25.99, 80));
    http.post(&catalog.url("/buys/2/resolve"), "").ok();
    let batch = format!(r#"{{"buys":[{}]}}"#, buy(3, 80));
    http.post(&catalog.url("/buys"), &batch).ok();
    expect(hello + 3, "Tux", product("Tux", 25.99, 0));
    // Sold out: the restocker brings it back within a period or two.
    expect(hello + 4, "Tux", product("Tux", 25.99, 100));
}

/// Lines race the reads that follow them: a buyer takes Tux one unit at a time while
/// the reader, on each line, reads Tux back, which must already show that line's stock.
#[test]
fn a_line_is_never_sent_before_its_change_is_visible() {
    let catalog = Catalog::start(|_| {});
    let (mut subscriber, mut seq) = catalog.subscribe();
    let url = catalog.url("/buy");
    let buyer = thread::spawn(move || {
        let http = Http::default();
        for id in 0..60 {
            let body = format!(r#"{{"buy_id":{id},"name":"Tux","quantity":1}}"#);
            http.post(&url, &body).ok();
        }
    });
    let http = Http::default();
    for sold in 1..=60 {
        let change = subscriber.change_after(seq);
        seq += 1;
        assert_eq!(change, product("Tux", 25.99, 80 - sold));
        let now = read(&http, &catalog, "Tux")[0].quantity;
        assert!(
            now <= 80 - sold,
            "line {seq} says {} left, a read says {now}",
            80 - sold
        );
    }
    buyer.join().unwrap();
}

/// Subscribers that never read hold no worker: with one worker, the catalog still
/// answers, and a subscriber that reads still gets every change.
#[test]
fn subscribers_hold_no_worker() {
    let catalog = Catalog::start(|config| config.server.limits.workers = 1);
    let idle: Vec<Subscriber> = (0..3).map(|_| catalog.subscribe_with(None)).collect();
    let (mut subscriber, hello) = catalog.subscribe();
    let http = Http::default();
    assert_eq!(read(&http, &catalog, "Bird"), product("Bird", 39.99, 100));
    http.post(
        &catalog.url("/buy"),
        r#"{"buy_id":1,"name":"Bird","quantity":1}"#,
    )
    .ok();
    assert_eq!(subscriber.change_after(hello), product("Bird", 39.99, 99));
    drop(idle);
}

#[test]
fn the_65th_subscriber_is_refused_until_one_leaves() {
    let catalog = Catalog::start(|_| {});
    let mut subscribers: Vec<Subscriber> = (0..64).map(|_| catalog.subscribe().0).collect();
    let refused = catalog.subscribe_with(None);
    assert!(
        refused.head.starts_with("HTTP/1.1 503 "),
        "{}",
        refused.head
    );
    assert_eq!(
        refused.refusal(),
        serde_json::json!({"error": {"code": 503, "message": "too many subscribers"}})
    );
    // One leaves: its writer finds the socket closed at its next heartbeat.
    subscribers.pop();
    eventually("a free place", PATIENCE, || {
        let subscriber = catalog.subscribe_with(None);
        subscriber.head.starts_with("HTTP/1.1 200 ").then_some(())
    });
}

#[test]
fn the_stream_requires_the_internal_token_when_one_is_set() {
    let catalog = Catalog::start(|config| config.server.internal_token = Some("svc".into()));
    for (authorization, status) in [(None, 401), (Some("Bearer nope"), 403)] {
        let refused = catalog.subscribe_with(authorization);
        assert!(
            refused.head.starts_with(&format!("HTTP/1.1 {status} ")),
            "{authorization:?}: {}",
            refused.head
        );
        assert_eq!(refused.refusal()["error"]["code"], status);
    }
    let mut subscriber = catalog.subscribe_with(Some("Bearer svc"));
    assert!(
        subscriber.head.starts_with("HTTP/1.1 200 "),
        "{}",
        subscriber.head
    );
    assert!(matches!(
        subscriber.next(),
        ChangeLine::Hello { seq: 0, .. }
    ));
}

#[test]
fn a_catalog_that_stops_ends_its_streams_and_run_returns() {
    let catalog = Catalog::start(|_| {});
    let (subscriber, _) = catalog.subscribe();
    let (silent, _) = catalog.subscribe();
    catalog.stop();
    assert!(subscriber.ends(), "the stream ends when the catalog stops");
    assert!(silent.ends());
}

/// A HEAD gets the head alone and the connection closes: nothing subscribes.
#[test]
fn a_head_request_gets_the_head_and_no_stream() {
    let catalog = Catalog::start(|_| {});
    let head = catalog.ask("HEAD", None);
    assert!(
        head.head.starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        head.head
    );
    assert_eq!(head.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(head.header("connection"), Some("close"));
    let mut rest = [0; 256];
    let mut reader = head.reader;
    let read = reader.read(&mut rest).expect("closed, no stream");
    assert_eq!(read, 0, "{}", String::from_utf8_lossy(&rest[..read]));
    let metrics = Metrics::scrape(&Http::default(), &catalog.url(""));
    assert_eq!(metrics.value("toystore_catalog_push_subscribers"), 0);
}
