//! One client connection: its socket and read buffer, and the loop a worker runs to
//! serve requests from it until it has nothing more to read right now.
//!
//! Writes never hold a worker for long: the socket's send timeout is one linger slice,
//! and what the client has not taken yet stays in the connection's `unwritten` buffer.
//! While that holds more than [`Limits::max_unwritten_bytes`] the connection's further
//! (pipelined) requests are left unread and the connection waits in the reactor until
//! the client reads; if its responses are not all taken within
//! [`Limits::write_timeout`] of becoming due, it is closed. So a client that sends
//! requests and reads nothing costs a buffer, not a worker.
//!
//! [`Limits::max_unwritten_bytes`]: super::Limits::max_unwritten_bytes
//! [`Limits::write_timeout`]: super::Limits::write_timeout

use super::body::BodyReader;
use super::error::{ApiError, ProtocolError};
use super::request::{parse_head, Head, Request};
use super::response::{Response, TakeConnection};
use super::router::Routed;
use super::server::Shared;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How much a single read asks the kernel for.
const READ_CHUNK: usize = 8 * 1024;
/// After an error response, at most this much of what the client still sends is read
/// and dropped before closing, so that the close does not reset the connection and
/// destroy the response before the client has read it.
const DRAIN_LIMIT: usize = 256 * 1024;
const DRAIN_TIME: Duration = Duration::from_millis(500);
/// The socket's read timeout: how often a lingering worker looks at the queue.
const LINGER_SLICE: Duration = Duration::from_millis(5);

/// The socket's read and write timeout: one slice of the linger, at least 1 ms (a
/// linger of 0 still reads once, briefly, before parking).
pub(crate) fn read_slice(limits: &super::Limits) -> Duration {
    limits.linger.clamp(Duration::from_millis(1), LINGER_SLICE)
}

/// A connection between requests, owned by a worker or parked in the reactor.
pub(crate) struct Conn {
    /// The socket (blocking, with the linger slice as read and write timeout).
    pub stream: TcpStream,
    /// Bytes read but not yet consumed: a partial request or pipelined ones.
    pub buf: Vec<u8>,
    /// When the first byte of the request now in `buf` arrived; `None` between requests.
    pub request_started: Option<Instant>,
    /// When the reactor found the connection ready (accepted, or readable) and queued
    /// it for a worker: the bytes a worker then reads arrived no later, so a request's
    /// clock starts here, the wait for a worker included.
    pub ready_since: Option<Instant>,
    /// When a response was last written (or the connection accepted): the idle clock.
    pub last_active: Instant,
    /// Whether `100 Continue` was already sent for the request in `buf`.
    pub continue_sent: bool,
    /// The request being received: its head, once complete, and its body so far.
    partial: Partial,
    /// Response bytes the client has not taken yet, in order.
    unwritten: Vec<u8>,
    /// When the oldest of `unwritten` became due plus the write timeout: the client is
    /// cut off if it has not taken it all by then. `None` while nothing is unwritten.
    pub write_deadline: Option<Instant>,
    /// The last response said `Connection: close`: close once it is written.
    closing: bool,
    /// The socket took nothing at the last try: no use trying again until the reactor
    /// says it is writable (each try could wait a slice).
    blocked: bool,
    /// Requests served so far.
    pub served: usize,
    /// The reactor's key for this connection, fixed for its life.
    pub token: usize,
    /// Whether the reactor has registered the socket before (then it re-arms it).
    pub registered: bool,
    /// Keeps the open-connection count right however the connection ends.
    _open: OpenGuard,
}

/// Counts a connection as open from accept until it is dropped.
struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0
            .metrics
            .open_connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// How far the request at the front of the buffer has been read, kept between reads so
/// that bytes already examined are not examined again (see [`BodyReader`]).
enum Partial {
    /// No complete head yet; the buffer's first `scanned` bytes hold no end of one.
    Head { scanned: usize },
    /// The head is complete; its body is being read.
    Body(Box<Receiving>),
}

/// A request whose head is complete, and its body so far.
struct Receiving {
    head: Head,
    /// Bytes of the head at the front of the buffer.
    head_len: usize,
    body: BodyReader,
}

/// What the worker does with a connection after serving it.
pub(crate) enum Next {
    /// Nothing to read right now: hand it to the reactor until it is readable.
    Park(Conn),
    /// Done with it (close, error, shutdown, or the peer went away).
    Close,
}

impl Conn {
    /// Wraps an accepted socket and counts it as open.
    pub fn new(stream: TcpStream, token: usize, shared: &Arc<Shared>) -> Self {
        shared
            .metrics
            .open_connections
            .fetch_add(1, Ordering::Relaxed);
        Conn {
            stream,
            buf: Vec::new(),
            request_started: None,
            ready_since: None,
            last_active: Instant::now(),
            continue_sent: false,
            partial: Partial::Head { scanned: 0 },
            unwritten: Vec::new(),
            write_deadline: None,
            closing: false,
            blocked: false,
            served: 0,
            token,
            registered: false,
            _open: OpenGuard(Arc::clone(shared)),
        }
    }

    /// Serves every request that is or soon becomes available, then parks or closes.
    /// `out` is the worker's reusable response buffer.
    ///
    /// Between requests the worker waits for the next one in slices of the socket's read
    /// timeout, up to [`Limits::linger`](super::Limits) in all, and hands the connection
    /// to the reactor sooner only if another connection is waiting and no worker is idle.
    /// A half-received request gets one slice: a client that splits a request usually
    /// sends the rest at once, and one that trickles bytes should not hold a worker.
    pub fn serve(mut self, shared: &Shared, out: &mut Vec<u8>) -> Next {
        let slice = read_slice(&shared.limits);
        let mut lingered = Duration::ZERO;
        // Every hand-over reads at least once before the connection may be parked
        // again: the reactor only hands over readable connections, and parking one
        // unread would send it straight back, round and round, while others wait.
        let mut has_read = false;
        // Handed over by the reactor (or fresh): the socket may take bytes again.
        self.blocked = false;
        loop {
            match self.flush() {
                Ok(true) if self.closing => return Next::Close,
                Ok(true) => {}
                // Over the cap: read no more requests until the client reads.
                Ok(false)
                    if self.closing || self.unwritten.len() > shared.limits.max_unwritten_bytes =>
                {
                    return self.park();
                }
                Ok(false) => {}
                Err(_) => return Next::Close,
            }
            match self.next_request(shared) {
                Ok(Some(request)) => {
                    if let Some(take) = self.respond(shared, request, out) {
                        return self.hand_off(take);
                    }
                    lingered = Duration::ZERO;
                    continue;
                }
                Ok(None) => {}
                Err(error) => {
                    self.fail(shared, error, out);
                    return Next::Close;
                }
            }
            if shared.shutting_down() {
                return Next::Close;
            }
            if let Some(started) = self.request_started {
                if started.elapsed() >= shared.limits.request_timeout {
                    self.fail(shared, ProtocolError::Timeout, out);
                    return Next::Close;
                }
            }
            if has_read {
                let budget = if self.buf.is_empty() {
                    shared.limits.linger
                } else {
                    slice
                };
                if lingered >= budget || shared.others_waiting() {
                    return self.park();
                }
            }
            match self.read_more() {
                Ok(0) => return Next::Close,
                Ok(_) => lingered = Duration::ZERO,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    lingered += slice
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return Next::Close,
            }
            has_read = true;
        }
    }

    /// Reads what the socket has (waiting at most the linger).
    pub fn read_more(&mut self) -> io::Result<usize> {
        let old = self.buf.len();
        self.buf.resize(old + READ_CHUNK, 0);
        let result = self.stream.read(&mut self.buf[old..]);
        self.buf.truncate(old + *result.as_ref().unwrap_or(&0));
        if matches!(result, Ok(n) if n > 0) && self.request_started.is_none() {
            self.request_started = Some(self.ready_since.unwrap_or_else(Instant::now));
        }
        self.ready_since = None;
        result
    }

    fn park(mut self) -> Next {
        if self.buf.is_empty() {
            // An idle connection keeps no buffer: a thousand of them should cost little.
            self.buf = Vec::new();
        }
        if self.unwritten.is_empty() {
            self.unwritten = Vec::new();
        }
        Next::Park(self)
    }

    /// Whether the connection waits for the client to read (rather than to send).
    pub fn wants_write(&self) -> bool {
        !self.unwritten.is_empty()
    }

    /// Queues `bytes` after what is still unwritten and writes what the socket takes.
    /// The deadline runs from when the first unwritten byte became due, so a client
    /// reading a trickle cannot stretch it send by send.
    fn send(&mut self, shared: &Shared, bytes: &[u8]) {
        if self.unwritten.is_empty() {
            self.write_deadline = Some(Instant::now() + shared.limits.write_timeout);
        }
        self.unwritten.extend_from_slice(bytes);
        // A failed write fails again at the next flush, which closes the connection.
        let _ = self.flush();
    }

    /// Writes what the socket takes of the unwritten output, waiting at most a slice
    /// when it takes nothing. `Ok(true)` once all is written; an error when the
    /// write deadline has passed or the client is gone.
    fn flush(&mut self) -> io::Result<bool> {
        if self.unwritten.is_empty() {
            return Ok(true);
        }
        if self.write_deadline.is_some_and(|due| Instant::now() >= due) {
            return Err(ErrorKind::TimedOut.into());
        }
        if self.blocked {
            return Ok(false);
        }
        let mut written = 0;
        let result = loop {
            if written == self.unwritten.len() {
                break Ok(true);
            }
            match self.stream.write(&self.unwritten[written..]) {
                Ok(0) => break Err(ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    self.blocked = true;
                    break Ok(false);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        self.unwritten.drain(..written);
        if result.as_ref().is_ok_and(|all| *all) {
            self.write_deadline = None;
            self.last_active = Instant::now();
        }
        result
    }

    /// Takes one complete request off the front of the buffer, if there is one.
    fn next_request(&mut self, shared: &Shared) -> Result<Option<Request>, ProtocolError> {
        let limits = &shared.limits;
        if let Partial::Head { scanned } = self.partial {
            // A head ends with a line feed: until one arrives there is nothing new to
            // parse, so a head that trickles in is not re-parsed byte after byte.
            let fresh = &self.buf[scanned.min(self.buf.len())..];
            if !fresh.contains(&b'\n') && self.buf.len() <= limits.max_head_bytes {
                self.partial = Partial::Head {
                    scanned: self.buf.len(),
                };
                return Ok(None);
            }
            let Some((head, head_len)) = parse_head(&self.buf, limits)? else {
                self.partial = Partial::Head {
                    scanned: self.buf.len(),
                };
                return Ok(None);
            };
            let body = BodyReader::new(head.framing, limits.max_body_bytes);
            self.partial = Partial::Body(Box::new(Receiving {
                head,
                head_len,
                body,
            }));
        }
        let mut receiving = match std::mem::replace(&mut self.partial, Partial::Head { scanned: 0 })
        {
            Partial::Body(receiving) => receiving,
            waiting => {
                self.partial = waiting;
                return Ok(None);
            }
        };
        let head_len = receiving.head_len;
        let Some(body_len) = receiving.body.advance(&self.buf[head_len..])? else {
            if receiving.head.expects_continue && !self.continue_sent {
                self.continue_sent = true;
                self.send(shared, b"HTTP/1.1 100 Continue\r\n\r\n");
            }
            self.partial = Partial::Body(receiving);
            return Ok(None);
        };
        let Receiving { head, body, .. } = *receiving;
        let body = body.into_body(&self.buf[head_len..]);
        let started = self.request_started.unwrap_or_else(Instant::now);
        self.buf.drain(..head_len + body_len);
        self.request_started = if self.buf.is_empty() {
            None
        } else {
            Some(Instant::now())
        };
        self.continue_sent = false;
        let request_id = shared.request_id(head.header("x-request-id"));
        Ok(Some(Request {
            started,
            head,
            body,
            request_id,
        }))
    }

    /// Runs the handler and queues its response (see [`Conn::send`]). For a hand-off
    /// response to a GET, returns what takes the connection once the head is written.
    fn respond(
        &mut self,
        shared: &Shared,
        request: Request,
        out: &mut Vec<u8>,
    ) -> Option<TakeConnection> {
        let started = Instant::now();
        shared.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
        let routed =
            catch_unwind(AssertUnwindSafe(|| shared.dispatch(&request))).unwrap_or_else(|_| {
                Routed::response("panic", ApiError::internal("internal error").into())
            });
        shared.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.served += 1;
        let handed_off = routed.handoff.is_some();
        let keep_alive = request.head.keep_alive
            && !handed_off
            && !shared.shutting_down()
            && self.served < shared.limits.max_requests_per_connection;
        let head_only = request.method() == "HEAD";
        out.clear();
        if handed_off {
            routed
                .response
                .encode_unframed_head(out, &request.request_id);
        } else {
            routed
                .response
                .encode(out, keep_alive, head_only, &request.request_id);
        }
        // Counted before the write, so that whoever reads the response can already see it
        // in /metrics; the duration therefore ends when the response is ready to send.
        shared.record(
            &request,
            routed.route,
            routed.response.status,
            out.len(),
            started.elapsed(),
        );
        self.closing = !keep_alive;
        self.send(shared, out);
        // A HEAD gets the head alone: what would have taken the connection is dropped.
        routed.handoff.filter(|_| !head_only)
    }

    /// Writes what is still unwritten (the hand-off's head, small: at once unless the
    /// client is not reading, and never past the write deadline), then forgets the
    /// connection (no longer counted as open, never parked or swept) and hands the
    /// blocking socket, with no timeouts, to `take`.
    fn hand_off(mut self, take: TakeConnection) -> Next {
        loop {
            // `flush` tries a blocked socket again only when told it may have room.
            self.blocked = false;
            match self.flush() {
                Ok(true) => break,
                Ok(false) => {}
                Err(_) => return Next::Close,
            }
        }
        let Conn { stream, .. } = self;
        if stream.set_read_timeout(None).is_err() || stream.set_write_timeout(None).is_err() {
            return Next::Close;
        }
        // A panic in `take` is the service's bug: it must not end the worker.
        let _ = catch_unwind(AssertUnwindSafe(|| take(stream)));
        Next::Close
    }

    /// Answers a protocol error with the envelope and closes gently.
    fn fail(&mut self, shared: &Shared, error: ProtocolError, out: &mut Vec<u8>) {
        let error = error.to_api_error();
        shared
            .metrics
            .protocol_errors
            .fetch_add(1, Ordering::Relaxed);
        out.clear();
        Response::from(error).encode(out, false, false, "");
        self.send(shared, out);
        if self.unwritten.is_empty() {
            lingering_close(&mut self.stream);
        }
    }
}

/// Half-closes, then reads and drops a bounded amount of whatever the client is still
/// sending, so that the kernel does not answer it with a reset that can destroy the
/// response the client has not read yet.
pub(crate) fn lingering_close(stream: &mut TcpStream) {
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(DRAIN_TIME));
    let deadline = Instant::now() + DRAIN_TIME;
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < DRAIN_LIMIT && Instant::now() < deadline {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}
