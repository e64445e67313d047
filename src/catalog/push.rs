//! The catalog's push channel (`GET /changes`): every change to the products, in the
//! order it became visible, to every subscriber (the front-ends' caches).
//!
//! [`Changes`] numbers the changes (`seq`, one per journal record that changed products)
//! and queues each change's line to every subscriber. The table publishes a change
//! while it still holds its write lock, right after applying the record that made it
//! visible, so a line is never queued before readers can see its change and the lines
//! are in the order the changes became visible; a subscriber's hello carries the seq at
//! subscription, every change up to it being visible already.
//!
//! Each subscriber has a bounded queue and a writer thread of its own that owns its
//! socket (handed over by the server, which forgets the connection: no worker is held).
//! The writer sends a heartbeat whenever nothing else went out for a heartbeat period,
//! so that a front-end can tell a quiet catalog from a lost one. A subscriber that falls
//! a queue behind, or whose write fails or blocks past the write timeout, is cut off:
//! it resubscribes and starts afresh, and nobody else waits for it.

use crate::wire::{ChangeLine, ProductView};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// The push channel's bounds, each with its reason.
#[derive(Debug, Clone)]
pub struct PushLimits {
    /// Subscribers at once (503 beyond): each costs a thread and a queue, and there are
    /// as many as front-ends, a handful.
    pub max_subscribers: usize,
    /// Lines queued for one subscriber before it is cut off as too slow: a burst of
    /// thousands of buys fits, a dead reader does not grow without bound.
    pub queue_lines: usize,
    /// Longest silence on a stream: the protocol promises a line at least every 200 ms,
    /// and a front-end gives up on a stream after about 700 ms without one.
    pub heartbeat: Duration,
    /// Longest a write may block before the subscriber is cut off.
    pub write_timeout: Duration,
    /// The kernel's send buffer per subscriber: bounded, so that a reader that stopped
    /// is noticed after this much plus the queue, not after megabytes of autotuned buffer.
    pub send_buffer_bytes: usize,
}

impl Default for PushLimits {
    fn default() -> Self {
        PushLimits {
            max_subscribers: 64,
            queue_lines: 4096,
            heartbeat: Duration::from_millis(100),
            write_timeout: Duration::from_secs(1),
            send_buffer_bytes: 256 * 1024,
        }
    }
}

/// Why a subscription was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum SubscribeError {
    /// [`PushLimits::max_subscribers`] already subscribed.
    Full,
    /// The catalog is stopping.
    Closed,
}

/// A line ready to write: its seq and its text, shared by every subscriber's queue.
type Line = (u64, Arc<str>);

/// The change sequence and its subscribers.
pub struct Changes {
    epoch: String,
    limits: PushLimits,
    state: Mutex<State>,
    lines_sent: AtomicU64,
    dropped: AtomicU64,
}

struct State {
    /// The last change's seq.
    seq: u64,
    subscribers: HashMap<u64, Subscriber>,
    next_id: u64,
    /// Stopping: no more subscribers.
    closed: bool,
}

/// A subscriber as the publisher sees it.
struct Subscriber {
    queue: Sender<Line>,
    /// A handle on its socket (once handed over), to cut it off at once.
    socket: Option<TcpStream>,
    /// Its writer (once started), joined when the catalog stops.
    writer: Option<JoinHandle<()>>,
}

impl Subscriber {
    fn cut_off(&self) {
        if let Some(socket) = &self.socket {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

impl Changes {
    /// No changes yet, a new random epoch.
    pub fn new(limits: PushLimits) -> Changes {
        Changes {
            epoch: format!("{:016x}", fastrand::u64(..)),
            limits,
            state: Mutex::new(State {
                seq: 0,
                subscribers: HashMap::new(),
                next_id: 0,
                closed: false,
            }),
            lines_sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// This catalog process's epoch (16 hex digits).
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The last change's seq.
    pub fn seq(&self) -> u64 {
        self.state.lock().seq
    }

    /// Numbers a change and queues its line to every subscriber; one whose queue is
    /// full is cut off. The caller holds the lock under which the change became
    /// visible, so lines go out in the order changes became visible. `products` is
    /// called only when someone subscribes: with no front-end caching, a write pays
    /// for no copy of the product under that lock.
    pub fn publish(&self, products: impl FnOnce() -> Vec<ProductView>) {
        let mut state = self.state.lock();
        state.seq += 1;
        if state.subscribers.is_empty() {
            return;
        }
        let seq = state.seq;
        let line = encode(&ChangeLine::Change {
            seq,
            products: products(),
        });
        state.subscribers.retain(|_, subscriber| {
            match subscriber.queue.try_send((seq, Arc::clone(&line))) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    subscriber.cut_off();
                    false
                }
                // Its writer has ended (and said why).
                Err(TrySendError::Disconnected(_)) => false,
            }
        });
    }

    /// A new subscriber, its hello queued first: hand it its socket with
    /// [`Subscription::start`].
    pub fn subscribe(self: &Arc<Self>) -> Result<Subscription, SubscribeError> {
        let mut state = self.state.lock();
        if state.closed {
            return Err(SubscribeError::Closed);
        }
        if state.subscribers.len() >= self.limits.max_subscribers {
            return Err(SubscribeError::Full);
        }
        let (queue, lines) = crossbeam_channel::bounded(self.limits.queue_lines.max(1));
        let hello = ChangeLine::Hello {
            seq: state.seq,
            epoch: self.epoch.clone(),
        };
        // Cannot fail: the queue is new and holds at least one line.
        let _ = queue.try_send((state.seq, encode(&hello)));
        let id = state.next_id;
        state.next_id += 1;
        state.subscribers.insert(
            id,
            Subscriber {
                queue,
                socket: None,
                writer: None,
            },
        );
        Ok(Subscription {
            changes: Arc::clone(self),
            id,
            lines,
        })
    }

    /// Cuts every subscriber off (their streams end), refuses new ones, and waits for
    /// their writers, each of which ends within a write timeout.
    pub fn close(&self) {
        let subscribers = {
            let mut state = self.state.lock();
            state.closed = true;
            std::mem::take(&mut state.subscribers)
        };
        for (_, subscriber) in subscribers {
            subscriber.cut_off();
            drop(subscriber.queue);
            if let Some(writer) = subscriber.writer {
                let _ = writer.join();
            }
        }
    }

    /// Subscribers now.
    pub fn subscribers(&self) -> usize {
        self.state.lock().subscribers.len()
    }

    /// Lines written to subscribers (hellos, changes and heartbeats).
    pub fn lines_sent(&self) -> u64 {
        self.lines_sent.load(Ordering::Relaxed)
    }

    /// Subscribers cut off for falling behind or for a failed or blocked write.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Cuts `id` off after its write failed, unless it was already (too slow, or the
    /// catalog stopping).
    fn write_failed(&self, id: u64) {
        if let Some(subscriber) = self.state.lock().subscribers.remove(&id) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            subscriber.cut_off();
        }
    }
}

/// One subscriber's lines, until it has a socket to write them to; dropped, it
/// unsubscribes.
pub struct Subscription {
    changes: Arc<Changes>,
    id: u64,
    lines: Receiver<Line>,
}

impl Subscription {
    /// Starts writing the lines to `socket` on a thread of its own; returns at once.
    pub fn start(self, socket: TcpStream) {
        let limits = &self.changes.limits;
        let configured = socket
            .set_write_timeout(Some(limits.write_timeout))
            .and_then(|()| {
                socket2::SockRef::from(&socket).set_send_buffer_size(limits.send_buffer_bytes)
            })
            .and_then(|()| socket.try_clone());
        let Ok(handle) = configured else {
            return; // Dropped: unsubscribed, and the socket closes.
        };
        let changes = Arc::clone(&self.changes);
        let id = self.id;
        match changes.state.lock().subscribers.get_mut(&id) {
            Some(subscriber) => subscriber.socket = Some(handle),
            // Cut off (or the catalog stopped) before it started.
            None => return,
        }
        let writer = thread::Builder::new()
            .name(format!("catalog-push-{id}"))
            .spawn(move || self.write(socket));
        if let Ok(writer) = writer {
            if let Some(subscriber) = changes.state.lock().subscribers.get_mut(&id) {
                subscriber.writer = Some(writer);
            }
        }
    }

    /// The writer: each queued line, or a heartbeat after a period of silence, until
    /// the queue is closed (cut off, or the catalog stopping) or a write fails.
    fn write(self, mut socket: TcpStream) {
        let changes = &self.changes;
        let mut last_seq = 0;
        let mut out = Vec::new();
        loop {
            out.clear();
            let mut lines = 0;
            match self.lines.recv_timeout(changes.limits.heartbeat) {
                Ok((seq, line)) => {
                    // Whatever else is queued goes in the same write.
                    for (seq, line) in std::iter::once((seq, line)).chain(self.lines.try_iter()) {
                        last_seq = seq;
                        out.extend_from_slice(line.as_bytes());
                        lines += 1;
                        if out.len() >= 64 * 1024 {
                            break;
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    out.extend_from_slice(
                        encode(&ChangeLine::Heartbeat { seq: last_seq }).as_bytes(),
                    );
                    lines = 1;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if socket.write_all(&out).is_err() {
                changes.write_failed(self.id);
                return;
            }
            changes.lines_sent.fetch_add(lines, Ordering::Relaxed);
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.changes.state.lock().subscribers.remove(&self.id);
    }
}

/// A line as sent: its JSON and a newline.
fn encode(line: &ChangeLine) -> Arc<str> {
    // Our own wire type: serializing it cannot fail.
    let mut text = serde_json::to_string(line).unwrap_or_default();
    text.push('\n');
    text.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;
    use std::time::Instant;

    /// Lines as a subscriber reads them off its socket.
    struct Reader(BufReader<TcpStream>);

    impl Reader {
        fn next(&mut self) -> ChangeLine {
            let mut line = String::new();
            self.0
                .read_line(&mut line)
                .expect("a line within the read timeout");
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
        }
    }

    /// A subscriber of `changes` on a real socket; returns its reading end.
    fn subscribe(changes: &Arc<Changes>, listener: &TcpListener) -> Reader {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let (server, _) = listener.accept().unwrap();
        changes.subscribe().unwrap().start(server);
        Reader(BufReader::new(client))
    }

    fn tux(quantity: u64) -> Vec<ProductView> {
        vec![ProductView {
            name: "Tux".into(),
            price: 1.0,
            quantity,
        }]
    }

    #[test]
    fn a_hello_then_each_change_once_in_order_then_heartbeats() {
        let changes = Arc::new(Changes::new(PushLimits::default()));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        changes.publish(|| tux(1));
        let mut reader = subscribe(&changes, &listener);
        let hello = reader.next();
        assert_eq!(
            hello,
            ChangeLine::Hello {
                seq: 1,
                epoch: changes.epoch().to_string()
            }
        );
        assert!(
            changes.epoch().len() == 16 && changes.epoch().bytes().all(|b| b.is_ascii_hexdigit()),
            "{hello:?}"
        );
        changes.publish(|| tux(2));
        changes.publish(|| tux(3));
        assert_eq!(
            reader.next(),
            ChangeLine::Change {
                seq: 2,
                products: tux(2)
            }
        );
        assert_eq!(
            reader.next(),
            ChangeLine::Change {
                seq: 3,
                products: tux(3)
            }
        );
        for _ in 0..3 {
            assert_eq!(reader.next(), ChangeLine::Heartbeat { seq: 3 });
        }
        // Each counted once written: all but the last surely are by now.
        assert!(changes.lines_sent() >= 5, "{}", changes.lines_sent());
    }

    #[test]
    fn subscribers_are_bounded_and_refused_once_closed() {
        let changes = Arc::new(Changes::new(PushLimits {
            max_subscribers: 2,
            ..PushLimits::default()
        }));
        let first = changes.subscribe().unwrap();
        let _second = changes.subscribe().unwrap();
        assert_eq!(changes.subscribe().err(), Some(SubscribeError::Full));
        drop(first);
        assert_eq!(changes.subscribers(), 1);
        let _third = changes.subscribe().unwrap();
        changes.close();
        assert_eq!(changes.subscribers(), 0);
        assert_eq!(changes.subscribe().err(), Some(SubscribeError::Closed));
    }

    /// A subscriber that stops reading is cut off, and the others get every line.
    #[test]
    fn a_subscriber_that_stops_reading_is_dropped_and_the_others_miss_nothing() {
        let changes = Arc::new(Changes::new(PushLimits {
            queue_lines: 8,
            send_buffer_bytes: 4096,
            ..PushLimits::default()
        }));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let _stalled = subscribe(&changes, &listener);
        let mut reader = subscribe(&changes, &listener);
        assert_eq!(reader.next().seq(), 0);
        // Big lines, so that a few fill the socket buffers of the one that never reads.
        let big = vec![ProductView {
            name: "x".repeat(16 * 1024),
            price: 1.0,
            quantity: 1,
        }];
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seq = 0;
        while changes.dropped() == 0 {
            assert!(Instant::now() < deadline, "never dropped after {seq} lines");
            changes.publish(|| big.clone());
            seq += 1;
            // The reader keeps up; every line comes, in order, with nothing missing.
            loop {
                match reader.next() {
                    ChangeLine::Change { seq: got, .. } => {
                        assert_eq!(got, seq);
                        break;
                    }
                    ChangeLine::Heartbeat { seq: got } => assert_eq!(got, seq - 1),
                    hello => panic!("{hello:?}"),
                }
            }
        }
        assert_eq!(changes.subscribers(), 1);
        changes.publish(|| tux(1));
        assert_eq!(
            reader.next(),
            ChangeLine::Change {
                seq: seq + 1,
                products: tux(1)
            }
        );
    }

    #[test]
    fn close_ends_every_stream() {
        let changes = Arc::new(Changes::new(PushLimits::default()));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut reader = subscribe(&changes, &listener);
        reader.next();
        changes.close();
        let mut rest = String::new();
        // Heartbeats may still come before the end; the end comes.
        while reader
            .0
            .read_line(&mut rest)
            .expect("closed, not timed out")
            > 0
        {}
        assert_eq!(changes.dropped(), 0, "closing drops no one for being slow");
    }
}
