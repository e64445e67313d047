//! Our HTTP/1.1 server.
//!
//! - [`limits`]: every bound, in one place.
//! - [`server`]: listener, worker pool, idle-connection reactor, shutdown.
//! - `conn`: one connection's read buffer and request loop (keep-alive, pipelining).
//! - [`request`] / [`body`]: parsing the head (httparse) and the body framing.
//! - [`response`]: responses and their framing, and [`Handoff`]: a response after
//!   whose head the connection is handed over (a stream). [`router`]: paths to handlers.
//! - [`error`]: [`ApiError`], the only thing a failure becomes on the wire.
//! - [`envelope`]: the contract's JSON envelope every body is wrapped in.
//! - [`metrics`]: Prometheus counters.
//!
//! It depends on nothing above it: calls to peers are [`crate::peer`]'s, bodies
//! [`crate::wire`]'s. (It writes its lines through [`crate::logging`], which is below it.)

pub mod auth;
pub mod body;
mod conn;
pub mod envelope;
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
pub use response::{Handoff, Response};
pub use router::{HandlerResult, Params, Router};
pub use server::{bind, serve, MetricsExtra, Server, ServerConfig, ServerOptions, ShutdownHandle};
