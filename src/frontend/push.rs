//! The front-end's end of the catalog's push channel (`GET /changes`, see
//! `docs/internal-api.md`): one thread holds the stream, applies each change line to
//! the [`Cache`] and tells it when the stream is up and when it was last heard from.
//!
//! The stream is a close-delimited body of JSON lines: a hello, then changes (their
//! sequence numbers one apart) and heartbeats. Anything else — a refused subscription,
//! a malformed line, a gap in the sequence, a second hello, the end of the body, silence
//! past [`SILENCE_LIMIT`] — loses the channel: the cache empties and stops serving,
//! and the thread subscribes again after a short jittered backoff. The cache also
//! checks the silence itself at every query, so a stuck thread cannot keep it serving.

use super::cache::Cache;
use crate::logging;
use crate::peer::resolve::{Resolver, Unresolved};
use crate::peer::PeerAddr;
use crate::wire::ChangeLine;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use parking_lot::Mutex;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Silence after which the channel counts as lost. The catalog sends a heartbeat at
/// least every 200 ms; the contract allows a lost channel to be served from for 1 s.
pub const SILENCE_LIMIT: Duration = Duration::from_millis(700);
/// Time to connect to the catalog and to send it the subscription.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The first wait before subscribing again, doubled after each failed attempt up to
/// [`BACKOFF_MAX`]; each wait is drawn between half of it and all of it, so that
/// front-ends cut off together do not all come back at once.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_millis(1000);
/// Longest line accepted: the status line, a header, or a change of many products.
const MAX_LINE_BYTES: u64 = 1 << 20;

/// Why a stream ended.
#[derive(Debug)]
enum PushError {
    Io(io::Error),
    /// The catalog answered the subscription with another status line.
    Refused(String),
    /// The catalog closed the stream.
    Closed,
    /// A line that is not one of the protocol's.
    Malformed(String),
    /// A change line's or heartbeat's sequence number is not the one expected.
    Gap {
        expected: u64,
        got: u64,
    },
    /// A second hello: the stream restarted.
    SecondHello,
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Io(e) if is_timeout(e) => {
                write!(f, "silent for over {} ms", SILENCE_LIMIT.as_millis())
            }
            PushError::Io(e) => write!(f, "{e}"),
            PushError::Refused(status) => write!(f, "subscription refused: {status}"),
            PushError::Closed => f.write_str("closed by the catalog"),
            PushError::Malformed(line) => write!(f, "malformed line: {line}"),
            PushError::Gap { expected, got } => {
                write!(f, "sequence gap: expected {expected}, got {got}")
            }
            PushError::SecondHello => f.write_str("a second hello in one stream"),
        }
    }
}

impl From<io::Error> for PushError {
    fn from(e: io::Error) -> Self {
        PushError::Io(e)
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The running subscription. Dropping it cuts the stream and joins the thread, so
/// the front-end's `run` returns with nothing of it left.
pub struct Subscriber {
    /// Dropped to stop the thread: its backoff ends at once.
    stop: Option<Sender<()>>,
    /// The stream being read, shut down on drop so that the read ends at once.
    current: Arc<Mutex<Option<TcpStream>>>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the thread that keeps `cache` subscribed to `catalog`'s changes, sending
/// `Authorization: Bearer <token>` when the stack has an internal token.
pub fn subscribe(
    cache: Arc<Cache>,
    catalog: PeerAddr,
    internal_token: Option<&str>,
) -> io::Result<Subscriber> {
    let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
    let current = Arc::new(Mutex::new(None));
    let channel = Channel {
        cache,
        authorization: internal_token
            .filter(|token| !token.is_empty())
            .map(|token| format!("Bearer {token}")),
        resolver: Resolver::new(catalog.authority()),
        catalog,
        current: Arc::clone(&current),
        stopped,
    };
    let thread = thread::Builder::new()
        .name("frontend-push".into())
        .spawn(move || channel.run())?;
    Ok(Subscriber {
        stop: Some(stop),
        current,
        thread: Some(thread),
    })
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(stream) = self.current.lock().take() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The subscriber thread's state.
struct Channel {
    cache: Arc<Cache>,
    catalog: PeerAddr,
    /// The catalog's address, looked up within the connect timeout (a lookup can
    /// hang; see [`Resolver`]) and again after the stream is lost.
    resolver: Resolver,
    authorization: Option<String>,
    /// Shared with [`Subscriber`], which shuts it down to stop the thread.
    current: Arc<Mutex<Option<TcpStream>>>,
    /// Disconnected when the subscriber is dropped.
    stopped: Receiver<()>,
}

impl Channel {
    fn run(self) {
        let mut backoff = BACKOFF_MIN;
        // Logged once per outage, not once per attempt.
        let mut reported = false;
        loop {
            let mut had_hello = false;
            let ended = self.follow(&mut had_hello);
            self.cache.lost();
            // A restarted catalog may come back on another address.
            self.resolver.forget();
            if self.stopping() {
                return;
            }
            if had_hello {
                backoff = BACKOFF_MIN;
                reported = false;
            }
            if let Err(e) = ended {
                if !reported {
                    logging::warn(format!(
                        "frontend: push channel from the catalog lost ({e}); cache off until it is back"
                    ));
                    reported = true;
                }
            }
            let wait = fastrand::u64(backoff.as_millis() as u64 / 2..=backoff.as_millis() as u64);
            if !matches!(
                self.stopped.recv_timeout(Duration::from_millis(wait)),
                Err(RecvTimeoutError::Timeout)
            ) {
                return;
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    fn stopping(&self) -> bool {
        matches!(self.stopped.try_recv(), Err(TryRecvError::Disconnected))
    }

    /// Subscribes and applies the stream until it ends; sets `had_hello` once the
    /// cache serves from it. Ends with `Ok` only when the subscriber stops it.
    fn follow(&self, had_hello: &mut bool) -> Result<(), PushError> {
        let authority = self.catalog.authority();
        let addr = self
            .resolver
            .address(Instant::now() + CONNECT_TIMEOUT)
            .map_err(|e| {
                let why = match e {
                    Unresolved::NotFound => "the catalog's name resolves to nothing",
                    Unresolved::TimedOut => "looking the catalog's name up took too long",
                };
                io::Error::new(io::ErrorKind::NotFound, why)
            })?;
        let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
        stream.set_read_timeout(Some(SILENCE_LIMIT))?;
        stream.set_write_timeout(Some(CONNECT_TIMEOUT))?;
        *self.current.lock() = Some(stream.try_clone()?);
        // Checked after the stream is published: a stop that came before did not see it.
        if self.stopping() {
            return Ok(());
        }
        let mut request = format!(
            "GET /changes HTTP/1.1\r\nHost: {authority}\r\nAccept: application/x-ndjson\r\n"
        );
        if let Some(authorization) = &self.authorization {
            request.push_str(&format!("Authorization: {authorization}\r\n"));
        }
        request.push_str("Connection: close\r\n\r\n");
        (&stream).write_all(request.as_bytes())?;

        let mut reader = BufReader::new(&stream);
        let mut line = String::new();
        read_line(&mut reader, &mut line)?;
        if line.split_whitespace().nth(1) != Some("200") {
            return Err(PushError::Refused(line.trim_end().to_string()));
        }
        // The headers say nothing the protocol needs; the body starts after them.
        while !read_line(&mut reader, &mut line)?.trim_end().is_empty() {}

        let (epoch, mut last) = match read_change(&mut reader, &mut line)? {
            ChangeLine::Hello { seq, epoch } => (epoch, seq),
            _ => return Err(malformed(&line)),
        };
        self.cache.hello();
        *had_hello = true;
        logging::info(format!(
            "frontend: push channel from the catalog up (epoch {}, seq {last}); cache on",
            logging::escape(&epoch),
        ));
        loop {
            let (expected, got) = match read_change(&mut reader, &mut line)? {
                ChangeLine::Hello { .. } => return Err(PushError::SecondHello),
                ChangeLine::Heartbeat { seq } => (last, seq),
                ChangeLine::Change { seq, products } => {
                    if seq == last + 1 {
                        for product in &products {
                            self.cache.invalidate(&product.name);
                        }
                    }
                    (last + 1, seq)
                }
            };
            if got != expected {
                return Err(PushError::Gap { expected, got });
            }
            last = got;
            self.cache.heard();
        }
    }
}

/// Reads one line into `line`, at most [`MAX_LINE_BYTES`]; the end of the stream,
/// even in the middle of a line, is [`PushError::Closed`].
fn read_line<'a>(reader: &mut impl BufRead, line: &'a mut String) -> Result<&'a str, PushError> {
    line.clear();
    let read = reader.take(MAX_LINE_BYTES).read_line(line)?;
    if read as u64 == MAX_LINE_BYTES && !line.ends_with('\n') {
        return Err(PushError::Malformed(format!(
            "a line over {MAX_LINE_BYTES} bytes"
        )));
    }
    if !line.ends_with('\n') {
        return Err(PushError::Closed);
    }
    Ok(line)
}

/// Reads one line of the stream's body.
fn read_change(reader: &mut impl BufRead, line: &mut String) -> Result<ChangeLine, PushError> {
    let text = read_line(reader, line)?;
    serde_json::from_str(text).map_err(|_| malformed(text))
}

/// A bad line, cut short for the log.
fn malformed(line: &str) -> PushError {
    let shown: String = line.trim_end().chars().take(200).collect();
    PushError::Malformed(logging::escape(&shown).into_owned())
}
