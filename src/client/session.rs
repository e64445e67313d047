//! One keep-alive session with the front-end, as the lab's client kept one connection.
//!
//! A [`Session`] owns its own ureq agent holding at most one idle connection, so
//! a session is one TCP connection for as long as the server keeps it open, and
//! sessions on different threads never share a pool or a lock.

use std::fmt;
use std::io;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use ureq::http::Response;
use ureq::{Agent, Body};

use crate::http::envelope::{Data, ErrorEnvelope};
use crate::peer::PeerAddr;
use crate::wire::{OrderPlaced, OrderView, ProductListItem, ProductView};

/// Characters a toy's name keeps as they are in a path segment (RFC 3986 unreserved).
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Why a request did not succeed, coarse enough to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// The server answered with this non-2xx status.
    Status(u16),
    /// No complete answer within the timeout.
    Timeout,
    /// No connection: refused, unreachable, name not found.
    Connect,
    /// The connection broke mid-request (reset, closed early).
    Io,
    /// The answer was not HTTP, or a 2xx body was not the JSON expected.
    Protocol,
}

impl ErrorKind {
    /// A failure of the service rather than an answer about the toy: every
    /// transport error and every 5xx. 404 and 409 are answers.
    pub fn is_failure(self) -> bool {
        match self {
            ErrorKind::Status(code) => code >= 500,
            _ => true,
        }
    }

    /// Worth trying again with the same idempotency key: the request may never
    /// have arrived, or the server said it is briefly unable.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorKind::Connect | ErrorKind::Io | ErrorKind::Timeout | ErrorKind::Status(503)
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Status(code) => write!(f, "{code}"),
            ErrorKind::Timeout => f.write_str("timeout"),
            ErrorKind::Connect => f.write_str("connect"),
            ErrorKind::Io => f.write_str("io"),
            ErrorKind::Protocol => f.write_str("protocol"),
        }
    }
}

/// A request that did not succeed: its kind, and what to tell a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What kind of failure, for counting.
    pub kind: ErrorKind,
    /// The server's message, or the transport's.
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ErrorKind::Status(code) => write!(f, "{code} {}", self.detail),
            kind => write!(f, "{kind}: {}", self.detail),
        }
    }
}

/// The front-end cache's size and counters since start, as `/health` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct CacheCounters {
    /// Products it may hold; 0 when the cache is off.
    pub capacity: u64,
    /// Products it holds now.
    pub entries: u64,
    /// Queries answered from memory.
    pub hits: u64,
    /// Queries that asked the catalog.
    pub misses: u64,
    /// Products dropped to make room.
    #[serde(default)]
    pub evictions: u64,
}

/// The part of `/health` the evaluation reads.
#[derive(Deserialize)]
struct Health {
    /// Absent from a front-end built without a cache.
    cache: Option<CacheCounters>,
}

/// `GET /cache`: what the front-end holds, most recently used first.
#[derive(Deserialize)]
struct CacheView {
    products: Vec<CachedProduct>,
}

#[derive(Deserialize)]
struct CachedProduct {
    name: String,
}

/// One keep-alive connection to the front-end and the calls of its public API.
pub struct Session {
    /// This session's own agent: one idle connection, statuses as values.
    agent: Agent,
    /// `http://host:port`, without a trailing slash.
    base: String,
}

impl Session {
    /// A session with `front`; nothing is connected until the first request.
    pub fn new(front: &PeerAddr, timeout: Duration) -> Session {
        let agent = Agent::config_builder()
            // A 404 or 409 is an answer to count, not an error to unwrap.
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .max_idle_connections(1)
            .max_idle_connections_per_host(1)
            .user_agent(concat!("toystore-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Session {
            agent,
            base: front.url().to_string(),
        }
    }

    /// `GET /products/{name}`.
    pub fn query(&self, name: &str) -> Result<ProductView, Failure> {
        decode(self.agent.get(self.product_url(name)).call())
    }

    /// `POST /orders`, with the key that makes a resend of the same buy harmless.
    pub fn buy(
        &self,
        name: &str,
        quantity: u64,
        idempotency_key: &str,
    ) -> Result<OrderPlaced, Failure> {
        let body = serde_json::json!({ "name": name, "quantity": quantity }).to_string();
        let result = self
            .agent
            .post(format!("{}/orders", self.base))
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", idempotency_key)
            .send(body.as_bytes());
        decode(result)
    }

    fn product_url(&self, name: &str) -> String {
        format!(
            "{}/products/{}",
            self.base,
            utf8_percent_encode(name, PATH_SEGMENT)
        )
    }

    /// `GET /orders/{number}`.
    pub fn order(&self, number: u64) -> Result<OrderView, Failure> {
        decode(
            self.agent
                .get(format!("{}/orders/{number}", self.base))
                .call(),
        )
    }

    /// `GET /health`, to tell a front-end that is down from one that is not.
    pub fn health(&self) -> Result<serde_json::Value, Failure> {
        decode(self.agent.get(format!("{}/health", self.base)).call())
    }

    /// The cache's counters from `GET /health`; `None` when the front-end reports
    /// no cache at all.
    pub fn cache_counters(&self) -> Result<Option<CacheCounters>, Failure> {
        decode::<Health>(self.agent.get(format!("{}/health", self.base)).call()).map(|h| h.cache)
    }

    /// `GET /cache`: the names of the products cached now, most recently used first.
    pub fn cached_products(&self) -> Result<Vec<String>, Failure> {
        decode::<CacheView>(self.agent.get(format!("{}/cache", self.base)).call())
            .map(|view| view.products.into_iter().map(|p| p.name).collect())
    }

    /// `PUT /products/{name}` with the admin token: sets the stock.
    pub fn set_stock(
        &self,
        name: &str,
        quantity: u64,
        token: &str,
    ) -> Result<ProductView, Failure> {
        let result = self
            .agent
            .put(self.product_url(name))
            .header("Content-Type", "application/json")
            .header("Authorization", format!("Bearer {token}"))
            .send(
                serde_json::json!({ "quantity": quantity })
                    .to_string()
                    .as_bytes(),
            );
        decode(result)
    }

    /// `GET /products`: every toy with its stock.
    pub fn products(&self) -> Result<Vec<ProductListItem>, Failure> {
        decode(self.agent.get(format!("{}/products", self.base)).call())
    }
}

/// Reads the whole body (so the connection goes back to the pool) and unwraps
/// `{"data": ...}`, or turns the error envelope into a [`Failure`].
fn decode<T: DeserializeOwned>(result: Result<Response<Body>, ureq::Error>) -> Result<T, Failure> {
    let mut response = result.map_err(transport_failure)?;
    let status = response.status().as_u16();
    let bytes = response
        .body_mut()
        .read_to_vec()
        .map_err(transport_failure)?;
    if (200..300).contains(&status) {
        serde_json::from_slice::<Data<T>>(&bytes)
            .map(|d| d.data)
            .map_err(|e| Failure {
                kind: ErrorKind::Protocol,
                detail: format!("unexpected body for status {status}: {e}"),
            })
    } else {
        let detail = match serde_json::from_slice::<ErrorEnvelope>(&bytes) {
            Ok(envelope) => envelope.error.message,
            Err(_) => String::from_utf8_lossy(&bytes).chars().take(120).collect(),
        };
        Err(Failure {
            kind: ErrorKind::Status(status),
            detail,
        })
    }
}

/// Sorts ureq's errors into the few kinds worth counting.
fn transport_failure(error: ureq::Error) -> Failure {
    let kind = match &error {
        ureq::Error::Timeout(_) => ErrorKind::Timeout,
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => ErrorKind::Connect,
        ureq::Error::Io(e) => match e.kind() {
            io::ErrorKind::ConnectionRefused
            | io::ErrorKind::AddrNotAvailable
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable => ErrorKind::Connect,
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ErrorKind::Timeout,
            _ => ErrorKind::Io,
        },
        _ => ErrorKind::Protocol,
    };
    let detail = match error {
        // ureq prefixes "io: " and "timeout: "; the kind already says as much.
        ureq::Error::Io(e) => e.to_string(),
        ureq::Error::Timeout(_) => "no complete answer within --timeout".to_string(),
        other => other.to_string(),
    };
    Failure { kind, detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_service_failures_are_failures() {
        assert!(!ErrorKind::Status(404).is_failure());
        assert!(!ErrorKind::Status(409).is_failure());
        assert!(ErrorKind::Status(503).is_failure());
        assert!(ErrorKind::Timeout.is_failure());
        assert!(ErrorKind::Connect.is_failure());
    }

    #[test]
    fn only_a_buy_that_may_not_have_happened_is_retried() {
        for kind in [
            ErrorKind::Connect,
            ErrorKind::Io,
            ErrorKind::Timeout,
            ErrorKind::Status(503),
        ] {
            assert!(kind.is_transient(), "{kind}");
        }
        for kind in [
            ErrorKind::Status(404),
            ErrorKind::Status(409),
            ErrorKind::Status(500),
            ErrorKind::Protocol,
        ] {
            assert!(!kind.is_transient(), "{kind}");
        }
    }

    #[test]
    fn names_are_escaped_in_paths() {
        assert_eq!(utf8_percent_encode("Tux", PATH_SEGMENT).to_string(), "Tux");
        assert_eq!(
            utf8_percent_encode("Teddy Bear/2", PATH_SEGMENT).to_string(),
            "Teddy%20Bear%2F2"
        );
        assert_eq!(
            utf8_percent_encode("Bär", PATH_SEGMENT).to_string(),
            "B%C3%A4r"
        );
    }

    #[test]
    fn a_closed_port_is_a_connect_failure() {
        // Bind then drop to find a port that nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let front = PeerAddr::parse(&format!("127.0.0.1:{port}"), 1).unwrap();
        let failure = Session::new(&front, Duration::from_secs(2))
            .query("Tux")
            .unwrap_err();
        assert_eq!(failure.kind, ErrorKind::Connect, "{failure}");
    }
}
