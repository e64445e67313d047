//! Process control for fault tests: arming failpoints (`TOYSTORE_FAILPOINTS`, see
//! `src/failpoint.rs`) in a spawned service and noticing when it died at one.

use super::{Stack, Svc};
use std::process::ExitStatus;
use std::time::Duration;

/// The environment variable the services read their failpoints from.
const FAILPOINTS: &str = "TOYSTORE_FAILPOINTS";

impl Stack {
    /// Starts `svc` again (killing it first if it runs) with the failpoints `spec`.
    pub fn arm(&mut self, svc: Svc, spec: &str) {
        self.set_failpoints(svc, Some(spec));
    }

    /// Starts `svc` again (killing it first if it runs) with no failpoints.
    pub fn disarm(&mut self, svc: Svc) {
        self.set_failpoints(svc, None);
    }

    fn set_failpoints(&mut self, svc: Svc, spec: Option<&str>) {
        let p = self.proc_mut(svc);
        p.envs.retain(|(k, _)| k != FAILPOINTS);
        if let Some(spec) = spec {
            p.envs.push((FAILPOINTS.into(), spec.into()));
        }
        p.reap();
        self.restart(svc);
    }

    /// Whether `svc` runs; a child that exited is reaped (so it can be restarted).
    pub fn is_running(&mut self, svc: Svc) -> bool {
        self.exit_status(svc).is_none() && self.proc_mut(svc).child.is_some()
    }

    /// The exit status of `svc` if it exited since the harness last looked.
    pub fn exit_status(&mut self, svc: Svc) -> Option<ExitStatus> {
        self.exit_within(svc, Duration::ZERO)
    }

    /// Waits up to `within` for `svc` to exit: its status (the child reaped), or
    /// `None` if it still runs or was not running.
    pub fn exit_within(&mut self, svc: Svc, within: Duration) -> Option<ExitStatus> {
        let p = self.proc_mut(svc);
        let status = super::exit_within(p.child.as_mut()?, within)?;
        p.child = None;
        Some(status)
    }

    /// Starts `svc` if it is not running (after a kill or a failpoint exit).
    pub fn ensure_running(&mut self, svc: Svc) {
        if !self.is_running(svc) {
            self.restart(svc);
        }
    }
}
