//! The black-box harness shared by every test file.
//!
//! A [`Stack`] is the three services seen from outside, in one of three modes:
//!
//! - **in-process** (the default: [`Stack::new`], [`Stack::fresh`], [`Stack::in_process`]
//!   and its [`Builder`]): each service's `run` in a thread of the test, on port 0,
//!   with fresh temporary data directories; stopped and joined when the stack is
//!   dropped. For a test about what the services do, not about their processes; it can
//!   start extra front-ends with their own config.
//! - **spawned** ([`Stack::spawned_only`], [`Stack::spawn`]): the real binaries are started as child processes,
//!   each on `127.0.0.1:0` with a fresh temporary data directory. The harness reads
//!   the `<service> listening on http://HOST:PORT` line to learn each port, waits
//!   for `GET /health`, and kills the children when the stack is dropped. It can
//!   stop (SIGTERM), kill (SIGKILL) and restart a service on the same port with the
//!   same data directory. For a test about a process: kill -9, restarts, signals,
//!   flags, environment, exit codes, output lines, failpoints.
//! - **external**: when `FRONT` is set (and optionally `CATALOG`, `ORDER`,
//!   `ADMIN_TOKEN`), the tests talk to servers that are already running. Their state
//!   is not fresh, so the shared tests are written relative to the state they find;
//!   tests that need fresh state or process control skip themselves there ([`skip`]).
//!
//! Everything here is written against the outside contract (`shared/CONTRACT.md`),
//! never against the implementation: only HTTP, the command line and stdout (and, for
//! the in-process mode, the configs each service's `run` takes).
//!
//! Where things are (test files import them from here, `use common::{Stack, Svc}`):
//! - `stack`: [`Stack`], its [`Options`], the [`SEED`] it starts from, [`external`].
//! - `inproc`: the in-process mode ([`Builder`]).
//! - `service`: one service as a child process ([`Svc`], [`Extra`], [`exit_within`]).
//! - `http`: the test client [`Http`]; [`unique`] keys.
//! - `resp`: [`Resp`] and the contract's envelope checks ([`Resp::ok`], [`Resp::err`],
//!   [`assert_envelope`], [`order_number`]).
//! - `raw`: raw sockets: send exact bytes, read one response ([`read_response`]).
//! - `metrics`: a service's `/metrics`, to wait on a gauge instead of sleeping.
//! - `wait`: [`eventually`], polling a condition with a deadline.
//! - `skip`: how a test that cannot run here says so ([`skip`]; a test that starts its
//!   own services calls [`skip_when_external`]).
//! - [`faults`]: failpoints and the books check; [`procfs`]: what `/proc` tells.
// Each test binary uses a part of the harness: the rest is neither dead nor unused.
#![allow(dead_code, unused_imports)]

pub mod faults;
mod http;
mod inproc;
mod metrics;
pub mod procfs;
mod raw;
mod resp;
mod service;
mod skip;
mod stack;
mod wait;

pub use http::{unique, Http};
pub use inproc::{Builder, Running};
pub use metrics::Metrics;
pub use raw::{
    closed, connect, connect_with_timeout, expect_response, host_port, raw, raw_ok,
    read_head_response, read_response,
};
pub use resp::{assert_envelope, assert_json_content_type, order_number, Resp};
pub use service::{exit_within, Extra, Svc, TEST_TOKEN};
pub use skip::skip;
pub use stack::{external, normalize, skip_when_external, Options, Stack, SEED};
pub use wait::eventually;
