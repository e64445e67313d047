//! A peer's socket address, looked up by name off the caller's thread.
//!
//! `getaddrinfo` has no timeout of its own. When a container is killed, Docker's DNS
//! forgets its name and passes the question to the upstream servers, which may never
//! answer: the lookup then blocks for the resolver's own timeout (5 s and more), past
//! the contract's 5 s for a failed backend call. So a lookup runs on a thread of its
//! own, one at a time per peer, and a call waits for it only until its deadline.

use parking_lot::{Condvar, Mutex};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

/// Why no address could be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unresolved {
    /// The name resolved to nothing, or the lookup failed.
    NotFound,
    /// The lookup had not finished by the caller's deadline (it goes on without it).
    TimedOut,
}

/// One peer's address: known, being looked up, or to be looked up.
pub struct Resolver {
    /// `host:port`.
    authority: String,
    /// An address written as one (`127.0.0.1:10086`) needs no lookup, ever.
    literal: Option<SocketAddr>,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    done: Condvar,
}

#[derive(Default)]
struct State {
    known: Option<SocketAddr>,
    looking_up: bool,
    /// Lookups that ended without an address: a waiter that sees it change knows its
    /// lookup failed.
    failures: u64,
}

impl Resolver {
    /// A resolver for `authority` (`host:port`); nothing is looked up until asked.
    pub fn new(authority: &str) -> Self {
        Resolver {
            authority: authority.to_string(),
            literal: authority.parse().ok(),
            shared: Arc::default(),
        }
    }

    /// The address, looked up if it is not known, waiting for the lookup at most
    /// until `deadline`.
    pub fn address(&self, deadline: Instant) -> Result<SocketAddr, Unresolved> {
        if let Some(addr) = self.literal {
            return Ok(addr);
        }
        let mut state = self.shared.state.lock();
        if let Some(addr) = state.known {
            return Ok(addr);
        }
        let failures = state.failures;
        if !state.looking_up {
            state.looking_up = true;
            if !self.look_up() {
                state.looking_up = false;
                state.failures += 1;
                return Err(Unresolved::NotFound);
            }
        }
        loop {
            if let Some(addr) = state.known {
                return Ok(addr);
            }
            if state.failures != failures {
                return Err(Unresolved::NotFound);
            }
            if self
                .shared
                .done
                .wait_until(&mut state, deadline)
                .timed_out()
            {
                return match state.known {
                    Some(addr) => Ok(addr),
                    None => Err(Unresolved::TimedOut),
                };
            }
        }
    }

    /// Forgets the address after a failed call: a restarted container may come back on
    /// another one. A lookup under way is left to finish.
    pub fn forget(&self) {
        self.shared.state.lock().known = None;
    }

    /// Starts a lookup on a new thread; false if no thread could be started.
    fn look_up(&self) -> bool {
        let authority = self.authority.clone();
        let shared = Arc::clone(&self.shared);
        thread::Builder::new()
            .name("resolve".into())
            .spawn(move || {
                let found = authority.to_socket_addrs().ok().and_then(|mut a| a.next());
                let mut state = shared.state.lock();
                state.looking_up = false;
                match found {
                    Some(addr) => state.known = Some(addr),
                    None => state.failures += 1,
                }
                shared.done.notify_all();
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_literal_address_needs_no_lookup() {
        let resolver = Resolver::new("127.0.0.1:10086");
        let addr = resolver.address(Instant::now()).unwrap();
        assert_eq!(addr, "127.0.0.1:10086".parse().unwrap());
    }

    #[test]
    fn a_name_is_looked_up_and_remembered() {
        let resolver = Resolver::new("localhost:10086");
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = resolver.address(deadline).unwrap();
        assert_eq!(addr.port(), 10086);
        assert!(addr.ip().is_loopback());
        assert_eq!(resolver.shared.state.lock().known, Some(addr));
        resolver.forget();
        assert_eq!(resolver.shared.state.lock().known, None);
    }

    #[test]
    fn a_name_that_resolves_to_nothing_is_not_found() {
        // `.invalid` is reserved never to resolve (RFC 6761).
        let resolver = Resolver::new("no-such-host.invalid:1");
        let deadline = Instant::now() + Duration::from_secs(30);
        assert_eq!(resolver.address(deadline), Err(Unresolved::NotFound));
    }

    /// A lookup that has not finished costs the caller no more than its deadline.
    #[test]
    fn a_slow_lookup_times_out_at_the_deadline() {
        let resolver = Resolver::new("never-answers:1");
        // Stands for a lookup under way that does not end: the caller must not wait for it.
        resolver.shared.state.lock().looking_up = true;
        let deadline = Instant::now() + Duration::from_millis(50);
        assert_eq!(resolver.address(deadline), Err(Unresolved::TimedOut));
        // It ends with an address: the next caller gets it at once.
        let addr: SocketAddr = "10.0.0.1:1".parse().unwrap();
        {
            let mut state = resolver.shared.state.lock();
            state.looking_up = false;
            state.known = Some(addr);
        }
        assert_eq!(resolver.address(Instant::now()), Ok(addr));
    }
}
