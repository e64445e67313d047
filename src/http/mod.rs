//! Our HTTP/1.1 server and the client used between services.
//!
//! - [`limits`]: every bound, in one place.
//! - [`server`]: listener, worker pool, idle-connection reactor, shutdown.
//! - `conn`: one connection's read buffer and request loop (keep-alive, pipelining).
//! - [`request`] / [`body`]: parsing the head (httparse) and the body framing.
//! - [`response`]: responses and their framing. [`router`]: paths to handlers.
//! - [`error`]: [`ApiError`], the only thing a failure becomes on the wire.
//! - [`metrics`]: Prometheus counters. [`backend`]: calls to a peer service.

pub mod auth;
pub mod backend;
pub mod body;
mod conn;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod request;
pub mod response;
pub mod router;
pub mod server;

pub use error::ApiError;
pub use limits::Limits;
pub use request::Request;
pub use response::Response;
pub use router::{HandlerResult, Params, Router};
pub use server::{bind, serve, MetricsExtra, Server, ServerConfig, ServerOptions, ShutdownHandle};
