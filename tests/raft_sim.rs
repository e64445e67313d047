//! The deterministic simulation of the replication core (`toystore::raft`): 3 or 5 nodes in
//! one thread, one seeded RNG driving everything — a network that loses, delays, reorders
//! and duplicates messages and partitions the group then heals it, crashes that lose what a
//! node had not persisted, and a client proposing commands. After every step (each message
//! delivered, each tick, each proposal) the Raft safety properties are checked, and ours:
//!
//! - election safety: at most one leader per term;
//! - log matching: an (index, term) pair names one entry with one predecessor term in every
//!   log, ever (checked on every entry a node hands to its disk, so by induction two logs
//!   that share an entry share the prefix up to it);
//! - leader completeness: every leader of a term above the one an entry was committed in
//!   holds it (checked when a node becomes leader and when an entry is first applied);
//! - state-machine safety: no two nodes apply different entries at one index, and they
//!   apply in order;
//! - ours: a proposal's order number (its position among applied commands) is the same on
//!   every node and never given to another; no acknowledged proposal (one the proposing
//!   leader applied at the index it was given) is lost — it is in every node's state at the
//!   end.
//!
//! Then the network heals, crashed nodes restart and the faults stop: a leader must emerge
//! and a last proposal must commit and reach every node (liveness).
//!
//! `TOYSTORE_RAFT_SEEDS=N` runs seeds 0..N (default 2000; even seeds 3 nodes, odd 5), and
//! `TOYSTORE_RAFT_SEED=N` replays one exactly (`TOYSTORE_RAFT_TRACE=1` prints its events).
//! A failure names its seed and the command that replays it.

use std::collections::{BTreeMap, HashMap, HashSet};

use toystore::raft::{
    Config, Entry, HardState, Message, Node, NodeId, Persisted, Ready, Role, Snapshot,
};

/// Ticks of faults, then ticks of calm in which a leader must emerge and a proposal commit.
const CHAOS_TICKS: u64 = 300;
const CALM_TICKS: u64 = 200;

/// What a node's driver wrote and fsynced: all that survives its crash.
#[derive(Default, Clone)]
struct Disk {
    hard_state: HardState,
    snapshot: Snapshot,
    entries: Vec<Entry>,
}

/// The application: the commands applied so far, in order; a command's order number is its
/// position here (the order service will number orders the same way).
#[derive(Default, Clone)]
struct App {
    applied: u64,
    orders: Vec<u64>,
}

impl App {
    fn encode(&self) -> Vec<u8> {
        self.orders.iter().flat_map(|id| id.to_le_bytes()).collect()
    }

    fn decode(snapshot: &Snapshot) -> App {
        let orders = snapshot
            .data
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        App {
            applied: snapshot.meta.index,
            orders,
        }
    }
}

/// One replica: the node while it runs, its disk always, and the client's proposals it
/// accepted (index, proposal), forgotten when it crashes.
struct Replica {
    node: Option<Node>,
    disk: Disk,
    app: App,
    proposed: Vec<(u64, u64)>,
    was_leader: bool,
}

/// A committed entry as first applied anywhere, and the lowest term of a node seen applying
/// it (an upper bound on the term it was committed in: leaders above it must hold it).
struct Committed {
    term: u64,
    data: Vec<u8>,
    commit_term: u64,
}

/// The network's and the crashes' odds for one seed.
struct Faults {
    loss: f64,
    duplicate: f64,
    max_delay: u64,
    crash: f64,
    restart: f64,
    partition: f64,
    heal: f64,
}

struct Sim {
    rng: fastrand::Rng,
    members: Vec<NodeId>,
    config: Config,
    replicas: Vec<Replica>,
    faults: Faults,
    now: u64,
    /// Messages in flight: (deliver at, tie-break for reordering, message).
    network: Vec<(u64, u64, Message)>,
    /// The side of the partition each node is on (all 0: none).
    side: Vec<u8>,
    /// Compact when this many applied entries are past the snapshot.
    compact_every: u64,
    // What the checks remember.
    leaders: HashMap<u64, NodeId>,
    entries_seen: HashMap<(u64, u64), (Vec<u8>, u64)>,
    committed: BTreeMap<u64, Committed>,
    order_of: HashMap<u64, usize>,
    by_order: Vec<u64>,
    acked: HashSet<u64>,
    next_proposal: u64,
    leader_hint: Option<NodeId>,
    trace: bool,
    /// Counts that show a run exercised what it claims to.
    crashes: u64,
    snapshots_installed: u64,
}

type Check = Result<(), String>;

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = fastrand::Rng::with_seed(seed);
        let n = if seed.is_multiple_of(2) { 3 } else { 5 };
        let members: Vec<NodeId> = (1..=n).collect();
        let config = Config {
            // One entry per append in half the seeds: a leader's no-op usually travels with
            // the older entries before it, hiding a commit of those by count (Figure 8);
            // one at a time opens that window.
            max_append_entries: if rng.bool() { 1 } else { rng.usize(2..8) },
            max_inflight: rng.usize(1..5),
            ..Config::default()
        };
        let faults = Faults {
            loss: rng.f64() * 0.15,
            duplicate: rng.f64() * 0.05,
            max_delay: rng.u64(1..5),
            crash: rng.f64() * 0.03,
            restart: 0.05,
            partition: rng.f64() * 0.02,
            heal: 0.05,
        };
        let mut sim = Sim {
            compact_every: rng.u64(3..40),
            rng,
            members: members.clone(),
            config,
            replicas: Vec::new(),
            faults,
            now: 0,
            network: Vec::new(),
            side: vec![0; n as usize],
            leaders: HashMap::new(),
            entries_seen: HashMap::new(),
            committed: BTreeMap::new(),
            order_of: HashMap::new(),
            by_order: Vec::new(),
            acked: HashSet::new(),
            next_proposal: 1,
            leader_hint: None,
            trace: std::env::var_os("TOYSTORE_RAFT_TRACE").is_some(),
            crashes: 0,
            snapshots_installed: 0,
        };
        for &id in &members {
            let node = sim.start_node(id, Persisted::default());
            sim.replicas.push(Replica {
                node: Some(node),
                disk: Disk::default(),
                app: App::default(),
                proposed: Vec::new(),
                was_leader: false,
            });
        }
        sim
    }

    fn start_node(&mut self, id: NodeId, persisted: Persisted) -> Node {
        Node::new(
            id,
            &self.members,
            self.config.clone(),
            self.rng.u64(..),
            persisted,
        )
    }

    fn log(&self, what: impl FnOnce() -> String) {
        if self.trace {
            eprintln!("[{:>4}] {}", self.now, what());
        }
    }

    fn run(&mut self) -> Check {
        for _ in 0..CHAOS_TICKS {
            self.faults()?;
            self.step_time(true)?;
        }
        // Calm: everything heals and restarts, messages still delay, reorder and
        // duplicate but are no longer lost.
        self.side.iter_mut().for_each(|s| *s = 0);
        self.faults.loss = 0.0;
        for i in 0..self.replicas.len() {
            if self.replicas[i].node.is_none() {
                self.restart(i)?;
            }
        }
        let calm_start = self.now;
        let mut last: Option<(u64, u64)> = None;
        while self.now < calm_start + CALM_TICKS {
            self.step_time(last.is_none())?;
            if last.is_none() && self.now > calm_start + 60 {
                last = self.propose_to_leader()?;
            }
            if let Some((_, id)) = last {
                if self.acked.contains(&id)
                    && self.replicas.iter().all(|r| r.app.orders.contains(&id))
                {
                    return self.final_check();
                }
            }
        }
        let leaders: Vec<_> = self
            .live()
            .filter(|n| n.role() == Role::Leader)
            .map(|n| (n.id(), n.term()))
            .collect();
        Err(format!(
            "liveness: {CALM_TICKS} calm ticks and the last proposal {last:?} is not applied everywhere (leaders {leaders:?}, applied {:?})",
            self.replicas.iter().map(|r| r.app.applied).collect::<Vec<_>>()
        ))
    }

    fn final_check(&self) -> Check {
        for (i, r) in self.replicas.iter().enumerate() {
            let have: HashSet<u64> = r.app.orders.iter().copied().collect();
            if let Some(lost) = self.acked.iter().find(|id| !have.contains(id)) {
                return Err(format!(
                    "acknowledged proposal {lost} lost on node {}",
                    i + 1
                ));
            }
        }
        Ok(())
    }

    fn live(&self) -> impl Iterator<Item = &Node> {
        self.replicas.iter().filter_map(|r| r.node.as_ref())
    }

    /// Crashes, restarts, partitions and heals, at this seed's odds.
    fn faults(&mut self) -> Check {
        let n = self.replicas.len();
        if self.rng.f64() < self.faults.crash {
            // Half the crashes hit a leader: a leader dying with entries on a minority is
            // where the subtle cases are (Figure 8).
            let leader = self.replicas.iter().position(|r| r.was_leader);
            let i = match leader {
                Some(i) if self.rng.bool() => i,
                _ => self.rng.usize(..n),
            };
            self.crash(i);
        }
        if self.rng.f64() < self.faults.restart {
            let i = self.rng.usize(..n);
            if self.replicas[i].node.is_none() {
                self.restart(i)?;
            }
        }
        if self.rng.f64() < self.faults.partition {
            for s in self.side.iter_mut() {
                *s = self.rng.u8(0..2);
            }
            self.log(|| format!("partition {:?}", self.side));
        } else if self.rng.f64() < self.faults.heal {
            self.side.iter_mut().for_each(|s| *s = 0);
        }
        Ok(())
    }

    fn crash(&mut self, i: usize) {
        let r = &mut self.replicas[i];
        if r.node.take().is_some() {
            r.app = App::default();
            r.proposed.clear();
            r.was_leader = false;
            self.crashes += 1;
            self.log(|| format!("crash {}", i + 1));
        }
    }

    fn restart(&mut self, i: usize) -> Check {
        let disk = self.replicas[i].disk.clone();
        let persisted = Persisted {
            hard_state: disk.hard_state,
            snapshot: disk.snapshot.clone(),
            entries: disk.entries,
        };
        let node = self.start_node(i as NodeId + 1, persisted);
        self.replicas[i].app = App::decode(&disk.snapshot);
        self.replicas[i].node = Some(node);
        self.log(|| format!("restart {}", i + 1));
        self.after_step(i)
    }

    /// One tick: maybe a proposal, the messages due, then every live node ticks.
    fn step_time(&mut self, propose: bool) -> Check {
        if propose && self.rng.f64() < 0.3 {
            self.propose()?;
        }
        let now = self.now;
        let mut due: Vec<(u64, u64, Message)> = Vec::new();
        let mut i = 0;
        while i < self.network.len() {
            if self.network[i].0 <= now {
                due.push(self.network.swap_remove(i));
            } else {
                i += 1;
            }
        }
        due.sort_by_key(|d| d.1);
        for (_, _, m) in due {
            let to = (m.to - 1) as usize;
            if self.side[to] != self.side[(m.from - 1) as usize] {
                continue;
            }
            if let Some(node) = self.replicas[to].node.as_mut() {
                node.step(m);
                self.after_step(to)?;
            }
        }
        for i in 0..self.replicas.len() {
            if let Some(node) = self.replicas[i].node.as_mut() {
                node.tick();
                self.after_step(i)?;
            }
        }
        self.now += 1;
        Ok(())
    }

    /// The client proposes to whom it believes leads, sometimes to anyone.
    fn propose(&mut self) -> Check {
        let n = self.replicas.len();
        let i = match self.leader_hint {
            Some(id) if self.rng.f64() < 0.9 => (id - 1) as usize,
            _ => self.rng.usize(..n),
        };
        self.propose_on(i).map(|_| ())
    }

    fn propose_to_leader(&mut self) -> Result<Option<(u64, u64)>, String> {
        match self
            .replicas
            .iter()
            .position(|r| r.node.as_ref().is_some_and(|n| n.role() == Role::Leader))
        {
            Some(i) => self.propose_on(i),
            None => Ok(None),
        }
    }

    fn propose_on(&mut self, i: usize) -> Result<Option<(u64, u64)>, String> {
        let Some(node) = self.replicas[i].node.as_mut() else {
            return Ok(None);
        };
        let id = self.next_proposal;
        match node.propose(id.to_le_bytes().to_vec()) {
            Ok(index) => {
                self.next_proposal += 1;
                self.replicas[i].proposed.push((index, id));
                self.log(|| format!("propose {id} on {} at {index}", i + 1));
                self.after_step(i)?;
                Ok(Some((index, id)))
            }
            Err(e) => {
                self.leader_hint = e.leader;
                Ok(None)
            }
        }
    }

    /// The driver's loop for node `i` after anything happened to it, then the checks.
    fn after_step(&mut self, i: usize) -> Check {
        let Some(node) = self.replicas[i].node.as_mut() else {
            return Ok(());
        };
        if !node.has_ready() {
            return self.check_roles(i);
        }
        let ready = node.ready();
        self.check_new_entries(i, &ready)?;
        self.persist(i, &ready)?;
        // A crash between fsync and sending: what was persisted stays, nothing was said.
        if self.now < CHAOS_TICKS && self.rng.f64() < self.faults.crash / 10.0 {
            self.crash(i);
            return Ok(());
        }
        for m in &ready.messages {
            self.send(m.clone());
        }
        if let Some(snapshot) = &ready.snapshot {
            self.install(i, snapshot)?;
        }
        for e in &ready.committed_entries {
            self.apply(i, e)?;
        }
        let node = self.replicas[i].node.as_mut().expect("still running");
        node.advance(ready);
        self.maybe_compact(i);
        self.check_roles(i)
    }

    fn persist(&mut self, i: usize, ready: &Ready) -> Check {
        let disk = &mut self.replicas[i].disk;
        if let Some(snapshot) = &ready.snapshot {
            disk.snapshot = snapshot.clone();
            disk.entries.clear();
        }
        if let Some(first) = ready.entries.first() {
            let keep = disk
                .entries
                .iter()
                .take_while(|e| e.index < first.index)
                .count();
            let expect = disk.snapshot.meta.index + keep as u64 + 1;
            if first.index != expect {
                return Err(format!(
                    "node {} handed entry {} to persist after {}",
                    i + 1,
                    first.index,
                    expect - 1
                ));
            }
            disk.entries.truncate(keep);
            disk.entries.extend_from_slice(&ready.entries);
        }
        if let Some(hard_state) = ready.hard_state {
            disk.hard_state = hard_state;
        }
        Ok(())
    }

    fn send(&mut self, m: Message) {
        if self.side[(m.to - 1) as usize] != self.side[(m.from - 1) as usize]
            || self.rng.f64() < self.faults.loss
        {
            return;
        }
        if self.rng.f64() < self.faults.duplicate {
            let at = self.now + self.rng.u64(0..=self.faults.max_delay);
            self.network.push((at, self.rng.u64(..), m.clone()));
        }
        let at = self.now + self.rng.u64(0..=self.faults.max_delay);
        self.network.push((at, self.rng.u64(..), m));
    }

    fn install(&mut self, i: usize, snapshot: &Snapshot) -> Check {
        let app = App::decode(snapshot);
        for (number, id) in app.orders.iter().enumerate() {
            if self.by_order.get(number) != Some(id) {
                return Err(format!(
                    "node {} installed a snapshot with {id} as order {number}",
                    i + 1
                ));
            }
        }
        self.log(|| {
            format!(
                "node {} installs snapshot to {}",
                i + 1,
                snapshot.meta.index
            )
        });
        self.replicas[i].app = app;
        self.snapshots_installed += 1;
        Ok(())
    }

    fn apply(&mut self, i: usize, e: &Entry) -> Check {
        let term = self.replicas[i].node.as_ref().expect("running").term();
        let app = &mut self.replicas[i].app;
        if e.index != app.applied + 1 {
            return Err(format!(
                "node {} applied {} after {}",
                i + 1,
                e.index,
                app.applied
            ));
        }
        app.applied = e.index;
        match self.committed.get_mut(&e.index) {
            Some(c) if c.term != e.term || c.data != e.data => {
                return Err(format!(
                    "state machine safety: node {} applied ({}, {:?}) at {} where ({}, {:?}) was applied",
                    i + 1,
                    e.term,
                    e.data,
                    e.index,
                    c.term,
                    c.data
                ));
            }
            Some(c) => c.commit_term = c.commit_term.min(term),
            None => {
                self.committed.insert(
                    e.index,
                    Committed {
                        term: e.term,
                        data: e.data.clone(),
                        commit_term: term,
                    },
                );
                self.check_leaders_hold(e.index)?;
            }
        }
        if e.data.is_empty() {
            return Ok(());
        }
        let id = u64::from_le_bytes(e.data[..].try_into().expect("8-byte proposal"));
        let app = &mut self.replicas[i].app;
        let number = app.orders.len();
        app.orders.push(id);
        match self.order_of.get(&id) {
            Some(&first) if first != number => {
                return Err(format!(
                    "proposal {id} numbered {number} on node {} after {first}",
                    i + 1
                ));
            }
            Some(_) => {}
            None => {
                if number != self.by_order.len() {
                    return Err(format!(
                        "proposal {id} numbered {number} but {} numbers were given",
                        self.by_order.len()
                    ));
                }
                self.order_of.insert(id, number);
                self.by_order.push(id);
            }
        }
        let r = &mut self.replicas[i];
        if r.proposed.contains(&(e.index, id)) {
            self.acked.insert(id);
        }
        r.proposed.retain(|&(index, _)| index > e.index);
        Ok(())
    }

    fn maybe_compact(&mut self, i: usize) {
        let r = &mut self.replicas[i];
        let node = r.node.as_mut().expect("running");
        if r.app.applied < node.snapshot().meta.index + self.compact_every {
            return;
        }
        let snapshot = node
            .compact(r.app.applied, r.app.encode())
            .expect("applied entries compact");
        r.disk.entries.retain(|e| e.index > snapshot.meta.index);
        r.disk.snapshot = snapshot;
    }

    /// Log matching, on every entry on its way to a disk.
    fn check_new_entries(&mut self, i: usize, ready: &Ready) -> Check {
        let node = self.replicas[i].node.as_ref().expect("running");
        let mut prev_term = match ready.entries.first() {
            Some(first) => node
                .term_at(first.index - 1)
                .ok_or("entries with no predecessor")?,
            None => return Ok(()),
        };
        for e in &ready.entries {
            let seen = self
                .entries_seen
                .entry((e.index, e.term))
                .or_insert_with(|| (e.data.clone(), prev_term));
            if *seen != (e.data.clone(), prev_term) {
                return Err(format!(
                    "log matching: node {} has ({}, {}) = {:?} after term {prev_term}, another had {:?}",
                    i + 1,
                    e.index,
                    e.term,
                    e.data,
                    seen
                ));
            }
            prev_term = e.term;
        }
        Ok(())
    }

    /// Election safety, and leader completeness for a node that just became leader.
    fn check_roles(&mut self, i: usize) -> Check {
        let Some(node) = self.replicas[i].node.as_ref() else {
            return Ok(());
        };
        let leading = node.role() == Role::Leader;
        if leading {
            let (id, term) = (node.id(), node.term());
            let first = *self.leaders.entry(term).or_insert(id);
            if first != id {
                return Err(format!(
                    "election safety: nodes {first} and {id} both led term {term}"
                ));
            }
            self.leader_hint = Some(id);
            if !self.replicas[i].was_leader {
                self.log(|| format!("node {id} leads term {term}"));
                for (&index, c) in &self.committed {
                    holds(node, index, c)?;
                }
            }
        }
        self.replicas[i].was_leader = leading;
        Ok(())
    }

    /// Leader completeness for an entry just found committed.
    fn check_leaders_hold(&self, index: u64) -> Check {
        let c = &self.committed[&index];
        self.live()
            .filter(|n| n.role() == Role::Leader)
            .try_for_each(|n| holds(n, index, c))
    }
}

/// A leader of a later term than `c`'s commit holds it (in its log or under its snapshot).
fn holds(leader: &Node, index: u64, c: &Committed) -> Check {
    if leader.term() <= c.commit_term || index <= leader.snapshot().meta.index {
        return Ok(());
    }
    match leader.term_at(index) {
        Some(term) if term == c.term => Ok(()),
        other => Err(format!(
            "leader completeness: leader {} of term {} has term {other:?} at {index}, committed with term {} by term {}",
            leader.id(),
            leader.term(),
            c.term,
            c.commit_term
        )),
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a number")),
    )
}

/// Runs this test's share of the seeds (`parity` 0: 3 nodes, 1: 5 nodes).
fn run_seeds(parity: u64) {
    let seeds: Vec<u64> = match env_u64("TOYSTORE_RAFT_SEED") {
        Some(seed) => vec![seed],
        None => (0..env_u64("TOYSTORE_RAFT_SEEDS").unwrap_or(2000)).collect(),
    };
    let (mut ran, mut acked, mut terms_led, mut crashes, mut installs) = (0, 0, 0, 0, 0);
    for seed in seeds.into_iter().filter(|s| s % 2 == parity) {
        let mut sim = Sim::new(seed);
        if let Err(what) = sim.run() {
            panic!(
                "raft simulation failed: seed {seed} ({} nodes), tick {}: {what}\n\
                 replay: TOYSTORE_RAFT_SEED={seed} TOYSTORE_RAFT_TRACE=1 cargo test --test raft_sim",
                sim.replicas.len(),
                sim.now
            );
        }
        ran += 1;
        acked += sim.acked.len();
        terms_led += sim.leaders.len();
        crashes += sim.crashes;
        installs += sim.snapshots_installed;
    }
    eprintln!(
        "{ran} seeds passed: {acked} proposals acknowledged, {terms_led} terms with a leader, \
         {crashes} crashes, {installs} snapshots installed"
    );
}

#[test]
fn three_nodes() {
    run_seeds(0);
}

#[test]
fn five_nodes() {
    run_seeds(1);
}
