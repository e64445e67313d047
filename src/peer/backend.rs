//! Calls from one service to another: one pooled, keep-alive `ureq` agent per peer,
//! explicit timeouts, backend statuses passed through, and failures of the transport
//! turned into 503/504 with the envelope.

use crate::http::envelope::{Data, ErrorEnvelope, Item};
use crate::http::ApiError;
use crate::peer::resolve::{Resolver, Unresolved};
use crate::peer::{PeerAddr, PeerLimits};
use parking_lot::{Condvar, Mutex};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A peer service.
pub struct Backend {
    /// The peer's name in error messages (`catalog`).
    name: &'static str,
    agent: ureq::Agent,
    /// Its timeouts, retries, bulkhead and buffers.
    limits: PeerLimits,
    /// Whether the last call or probe got an answer.
    up: AtomicBool,
    /// The peer's address, resolved once and again after a failure (a restarted
    /// container may come back with another address), never for longer than a call's
    /// deadline. ureq would resolve on every call, unbounded.
    resolver: Resolver,
    /// Caps the calls in flight to this peer, so that a peer that stops answering
    /// holds at most that many of our workers and the other peer's routes keep theirs.
    bulkhead: Bulkhead,
    /// `Bearer <internal token>`, sent on every call when the stack has a token.
    authorization: Option<String>,
}

/// Time a call must have lost before its timeouts are set to what is left: setting them
/// costs a `setsockopt` per call, which calls with their whole budget do without.
const SHORTENED: Duration = Duration::from_millis(20);

/// A counting semaphore whose acquire gives up after its `wait` or at the call's
/// deadline, whichever comes first.
struct Bulkhead {
    cap: usize,
    wait: Duration,
    state: Mutex<(usize, usize)>, // (in flight, waiting)
    freed: Condvar,
}

struct Slot<'a>(&'a Bulkhead);

impl Bulkhead {
    fn acquire(&self, call_deadline: Instant) -> Option<Slot<'_>> {
        let mut state = self.state.lock();
        if state.0 >= self.cap {
            state.1 += 1;
            let deadline = call_deadline.min(Instant::now() + self.wait);
            while state.0 >= self.cap && !self.freed.wait_until(&mut state, deadline).timed_out() {}
            state.1 -= 1;
            if state.0 >= self.cap {
                return None;
            }
        }
        state.0 += 1;
        Some(Slot(self))
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state.lock();
        state.0 -= 1;
        if state.1 > 0 {
            self.0.freed.notify_one();
        }
    }
}

/// A reply from a backend, whatever its status.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body, read to the end so the connection goes back to the pool.
    pub body: Vec<u8>,
}

/// Why a backend call got no reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendError {
    /// The connection could not be made: the request was never sent.
    Refused(&'static str),
    /// Too many calls to this peer are already waiting on it: not sent.
    Saturated(&'static str),
    /// Reset or closed mid-call: the request may or may not have been acted on.
    Unavailable(&'static str),
    /// No answer within the timeout.
    Timeout(&'static str),
    /// Our request could not be put on the wire (its head does not fit the client's
    /// buffer, or it is no valid URI): a fault of the request, not of the peer, which
    /// is not marked down for it.
    Unsendable(&'static str),
}

impl BackendError {
    /// 503 for a peer that is down, 504 for one that is too slow.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            BackendError::Refused(name) | BackendError::Unavailable(name) => {
                ApiError::unavailable(format!("{name} service is unavailable"))
            }
            BackendError::Timeout(name) => {
                ApiError::gateway_timeout(format!("{name} service did not answer in time"))
            }
            BackendError::Saturated(name) => {
                ApiError::unavailable(format!("{name} service is not keeping up, try again"))
            }
            // What the peer would answer to a head over its limit.
            BackendError::Unsendable(name) => ApiError::headers_too_large(format!(
                "request too large to forward to the {name} service"
            )),
        }
    }
}

impl From<BackendError> for ApiError {
    fn from(error: BackendError) -> Self {
        error.to_api_error()
    }
}

impl Backend {
    /// An agent for `base` within `limits`, keeping up to `limits.max_in_flight` idle
    /// connections (one per worker that may call it at once, so that connections are
    /// reused, not re-opened).
    pub fn new(name: &'static str, base: PeerAddr, limits: &PeerLimits) -> Self {
        let (timeout, pool) = (limits.timeout, limits.max_in_flight);
        // Per-phase timeouts, not a global one: a global timeout also covers name
        // resolution, which ureq then runs on a thread of its own per call. Only
        // connect and receive are bounded: sending a few hundred bytes into an idle
        // socket does not block, and a fixed receive timeout is set on the socket once,
        // where a shrinking deadline would cost a setsockopt per call.
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(timeout.min(limits.connect_timeout)))
            .timeout_recv_response(Some(timeout))
            .timeout_recv_body(Some(timeout))
            .max_idle_connections(pool)
            .max_idle_connections_per_host(pool)
            .max_idle_age(limits.idle_connection_age)
            .input_buffer_size(limits.input_buffer_bytes)
            .output_buffer_size(limits.output_buffer_bytes)
            .user_agent(format!("toystore/{}", env!("CARGO_PKG_VERSION")))
            .build();
        Backend {
            name,
            resolver: Resolver::new(base.authority()),
            agent: config.into(),
            limits: limits.clone(),
            up: AtomicBool::new(false),
            bulkhead: Bulkhead {
                cap: pool,
                wait: limits.bulkhead_wait,
                state: Mutex::new((0, 0)),
                freed: Condvar::new(),
            },
            authorization: None,
        }
    }

    /// Sends `Authorization: Bearer <token>` on every call (the peer's internal routes
    /// require it), in place of any `Authorization` a caller passes on. `None` or empty:
    /// calls carry only what the caller passes.
    pub fn with_internal_token(mut self, token: Option<&str>) -> Self {
        self.authorization = token
            .filter(|t| !t.is_empty())
            .map(|t| format!("Bearer {t}"));
        self
    }

    /// The peer's name (`catalog`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The deadline of work for a request that started at `started`: its whole budget
    /// for this peer, whatever it has waited for since.
    pub fn deadline(&self, started: Instant) -> Instant {
        started + self.limits.timeout
    }

    /// Whether the peer answered its last call or probe.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Asks the peer's `/health` and records whether it answered.
    pub fn probe(&self) -> bool {
        matches!(self.get("/health", ""), Ok(Reply { status: 200, .. }))
    }

    /// `GET path`.
    pub fn get(&self, path: &str, request_id: &str) -> Result<Reply, BackendError> {
        self.get_by(path, request_id, self.deadline(Instant::now()))
    }

    /// `GET path`, failing as a timeout at `deadline` (a request's budget, part of which
    /// may be spent already).
    pub fn get_by(
        &self,
        path: &str,
        request_id: &str,
        deadline: Instant,
    ) -> Result<Reply, BackendError> {
        let headers = [("X-Request-Id", request_id)];
        self.call("GET", path, None, &headers, true, deadline)
    }

    /// `POST`/`PUT` with a JSON body. A call that may have reached the peer is retried
    /// only when `idempotent` (the request carries a buy id or an idempotency key);
    /// one refused at connect is always retried, as it was never sent.
    pub fn send_json(
        &self,
        method: &'static str,
        path: &str,
        body: &[u8],
        headers: &[(&str, &str)],
        idempotent: bool,
    ) -> Result<Reply, BackendError> {
        let deadline = self.deadline(Instant::now());
        self.call(method, path, Some(body), headers, idempotent, deadline)
    }

    /// A `PUT` with a JSON body, failing as a timeout at `deadline`. Setting a value
    /// twice is harmless, so it may be retried.
    pub fn put_by(
        &self,
        path: &str,
        body: &[u8],
        headers: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<Reply, BackendError> {
        self.call("PUT", path, Some(body), headers, true, deadline)
    }

    /// Sends a batch (`body` holds `count` items) and splits the reply `{"data": [item,
    /// ...]}` into one result per item. A reply that is not a 200 with exactly `count`
    /// items fails as a whole: the peer's own error, or 502 when it is malformed; a call still
    /// unanswered at `deadline` fails as a timeout.
    pub fn send_batch<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
        count: usize,
        request_id: &str,
        idempotent: bool,
        deadline: Instant,
    ) -> Result<Vec<Result<T, ApiError>>, ApiError> {
        // Our batch bodies are plain structs: serializing them cannot fail.
        let body = serde_json::to_vec(body).unwrap_or_default();
        let headers = [("X-Request-Id", request_id)];
        let reply = self.call("POST", path, Some(&body), &headers, idempotent, deadline)?;
        if reply.status != 200 {
            return Err(match serde_json::from_slice::<ErrorEnvelope>(&reply.body) {
                Ok(envelope) => envelope.error.into(),
                Err(_) => ApiError::bad_gateway(format!(
                    "{} service failed ({})",
                    self.name, reply.status
                )),
            });
        }
        match serde_json::from_slice::<Data<Vec<Item<T>>>>(&reply.body) {
            Ok(items) if items.data.len() == count => Ok(items
                .data
                .into_iter()
                .map(|item| item.into_result().map_err(ApiError::from))
                .collect()),
            _ => Err(ApiError::bad_gateway(format!(
                "{} service sent a malformed batch reply",
                self.name
            ))),
        }
    }

    /// One call, retries included, all of it by `deadline`.
    fn call(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
        idempotent: bool,
        deadline: Instant,
    ) -> Result<Reply, BackendError> {
        // The head must fit ureq's buffer (see `PeerLimits::output_buffer_bytes`); ureq's own lines fit
        // in the reserve.
        let head: usize = path.len()
            + headers
                .iter()
                .map(|(n, v)| n.len() + v.len() + 4)
                .sum::<usize>();
        if head + self.limits.head_reserve_bytes > self.limits.output_buffer_bytes {
            return Err(BackendError::Unsendable(self.name));
        }
        let _slot = self
            .bulkhead
            .acquire(deadline)
            .ok_or(BackendError::Saturated(self.name))?;
        let mut attempt = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(BackendError::Timeout(self.name));
            }
            // The agent's timeouts fit a call that starts with its whole budget; one
            // that waited (in a batch queue, for a slot, a retry) gets what is left.
            let left = (left + SHORTENED < self.limits.timeout).then_some(left);
            let result = self.address(deadline).and_then(|addr| {
                self.once(method, &format!("http://{addr}{path}"), body, headers, left)
            });
            match &result {
                Ok(_) => self.up.store(true, Ordering::Relaxed),
                // Not the peer's fault: it stays as it was.
                Err(BackendError::Unsendable(_)) => return result,
                Err(_) => {
                    self.resolver.forget();
                    self.up.store(false, Ordering::Relaxed);
                }
            }
            match result {
                Err(BackendError::Refused(_)) | Err(BackendError::Unavailable(_))
                    if attempt < self.limits.retries
                        && (idempotent || matches!(result, Err(BackendError::Refused(_)))) =>
                {
                    attempt += 1;
                    // Jittered exponential backoff: 5-10 ms, 10-20 ms, ...
                    let base = 5u64 << attempt.min(6);
                    let pause = Duration::from_millis(base + fastrand::u64(0..=base));
                    // A failure that came late (a peer whose address vanished can take
                    // seconds to report it) is not retried: the caller's answer is due.
                    if Instant::now() + pause + self.limits.timeout / 2 > deadline {
                        return result;
                    }
                    std::thread::sleep(pause);
                }
                result => return result,
            }
        }
    }

    /// The peer's socket address, resolving its name if it is not known, by `deadline`.
    fn address(&self, deadline: Instant) -> Result<SocketAddr, BackendError> {
        self.resolver.address(deadline).map_err(|e| match e {
            Unresolved::NotFound => BackendError::Refused(self.name),
            Unresolved::TimedOut => BackendError::Timeout(self.name),
        })
    }

    fn once(
        &self,
        method: &'static str,
        url: &str,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
        left: Option<Duration>,
    ) -> Result<Reply, BackendError> {
        let result = match (method, body) {
            ("GET", _) => within(
                self.limits.connect_timeout,
                self.headers_on(self.agent.get(url), headers),
                left,
            )
            .call(),
            ("PUT", Some(body)) => within(
                self.limits.connect_timeout,
                self.headers_on(self.agent.put(url), headers),
                left,
            )
            .header("Content-Type", "application/json")
            .send(body),
            (_, body) => within(
                self.limits.connect_timeout,
                self.headers_on(self.agent.post(url), headers),
                left,
            )
            .header("Content-Type", "application/json")
            .send(body.unwrap_or_default()),
        };
        let mut response = result.map_err(|e| self.classify(e))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_vec()
            .map_err(|e| self.classify(e))?;
        Ok(Reply { status, body })
    }

    /// `request` with `headers` added, and the internal token in place of theirs.
    fn headers_on<B>(
        &self,
        request: ureq::RequestBuilder<B>,
        headers: &[(&str, &str)],
    ) -> ureq::RequestBuilder<B> {
        let theirs = headers.iter().filter(|(name, _)| {
            self.authorization.is_none() || !name.eq_ignore_ascii_case("authorization")
        });
        let ours = self.authorization.as_deref().map(|a| ("Authorization", a));
        theirs
            .copied()
            .chain(ours)
            .fold(request, |request, (name, value)| {
                request.header(name, value)
            })
    }

    fn classify(&self, error: ureq::Error) -> BackendError {
        match error {
            // Nothing was sent: the peer is gone (a stopped container's old address
            // answers nothing), not slow. A retry re-resolves its name.
            ureq::Error::Timeout(ureq::Timeout::Connect) => BackendError::Refused(self.name),
            ureq::Error::Timeout(_) => BackendError::Timeout(self.name),
            ureq::Error::Io(e)
                if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) =>
            {
                BackendError::Timeout(self.name)
            }
            ureq::Error::Io(e) if e.kind() == ErrorKind::ConnectionRefused => {
                BackendError::Refused(self.name)
            }
            ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => {
                BackendError::Refused(self.name)
            }
            ureq::Error::BadUri(_) => BackendError::Unsendable(self.name),
            _ => BackendError::Unavailable(self.name),
        }
    }
}

/// `request` waiting at most `left` for its reply, when given, instead of the agent's
/// timeouts.
fn within<B>(
    connect_timeout: Duration,
    request: ureq::RequestBuilder<B>,
    left: Option<Duration>,
) -> ureq::RequestBuilder<B> {
    match left {
        Some(left) => request
            .config()
            .timeout_connect(Some(left.min(connect_timeout)))
            .timeout_recv_response(Some(left))
            .timeout_recv_body(Some(left))
            .build(),
        None => request,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A peer that answers every request `200 {}`.
    fn answering_peer() -> PeerAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while matches!(stream.read(&mut buf), Ok(n) if n > 0) {
                        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
                        if stream.write_all(reply).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        PeerAddr::parse(&addr.to_string(), 0).unwrap()
    }

    /// Issue 11: a request whose head did not fit the client's buffer failed as if the
    /// peer were down, and marked it down. It is the request's fault: 431, peer still up.
    #[test]
    fn a_request_too_large_to_send_leaves_the_peer_up() {
        let limits = |max_in_flight| PeerLimits {
            timeout: Duration::from_secs(2),
            max_in_flight,
            retries: 0,
            ..PeerLimits::default()
        };
        let backend = Backend::new("catalog", answering_peer(), &limits(4));
        assert!(backend.probe() && backend.is_up());
        let long = format!("/products/{}", "%01".repeat(20_000));
        let error = backend.get(&long, "r1").unwrap_err();
        assert_eq!(error, BackendError::Unsendable("catalog"));
        assert_eq!(error.to_api_error().status, 431);
        assert!(backend.is_up(), "a request's size says nothing of the peer");
        assert_eq!(backend.get("/products/Tux", "r2").unwrap().status, 200);
    }
}
