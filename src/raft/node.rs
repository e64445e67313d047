//! One member of a Raft group as a state machine: `tick`, `step`, `propose` and `compact`
//! change it; `ready` hands the driver what to persist, send and apply; `advance` says the
//! driver did. The design is tikv/raft-rs's `RawNode` (itself etcd-raft's), smaller.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use super::log::RaftLog;
use super::message::{Body, Entry, HardState, Message, NodeId, RejectHint, Snapshot};

/// The knobs, in ticks (the driver decides how long a tick is).
#[derive(Clone, Debug)]
pub struct Config {
    /// A follower campaigns after a random number of ticks in this range without hearing
    /// from a leader; random so that two followers rarely campaign at once (§5.2).
    pub election_ticks: std::ops::Range<u32>,
    /// A leader sends heartbeats this often; well under the election range's start.
    pub heartbeat_ticks: u32,
    /// Most entries in one append.
    pub max_append_entries: usize,
    /// Most bytes of entry data in one append (one larger entry still goes alone).
    pub max_append_bytes: usize,
    /// Appends a leader keeps in flight to one follower before waiting for replies
    /// (pipelining: the log streams instead of one round trip per batch).
    pub max_inflight: usize,
    /// Campaign with a pre-vote first, so a node that was cut off does not bump the term
    /// and depose a working leader when it returns.
    pub pre_vote: bool,
    /// A leader that has not heard from a majority within an election timeout steps down,
    /// and followers that hear from a leader ignore votes until it times out, so a paused or
    /// cut-off old leader stops believing it leads.
    pub check_quorum: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            election_ticks: 10..20,
            heartbeat_ticks: 2,
            max_append_entries: 64,
            max_append_bytes: 1 << 20,
            max_inflight: 8,
            pre_vote: true,
            check_quorum: true,
        }
    }
}

/// A node's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Follower,
    /// Asking whether it could win before anyone changes term.
    PreCandidate,
    Candidate,
    Leader,
}

/// What a node restarts from: what its driver persisted from earlier `Ready`s (all
/// defaults for a new node).
#[derive(Clone, Debug, Default)]
pub struct Persisted {
    /// The last hard state written.
    pub hard_state: HardState,
    /// The last snapshot written (compacted or installed).
    pub snapshot: Snapshot,
    /// The entries after the snapshot, in order.
    pub entries: Vec<Entry>,
}

/// A proposal on a node that is not the leader; `leader` is whom it believes leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotLeader {
    pub leader: Option<NodeId>,
}

impl fmt::Display for NotLeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.leader {
            Some(id) => write!(f, "not the leader; node {id} is"),
            None => write!(f, "not the leader; no leader known"),
        }
    }
}

impl std::error::Error for NotLeader {}

/// A `compact` the log cannot do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompactError {
    /// Only applied entries can be in the application's snapshot.
    NotApplied { index: u64, applied: u64 },
    /// The log is already compacted that far.
    AlreadyCompacted { index: u64, snapshot: u64 },
}

impl fmt::Display for CompactError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompactError::NotApplied { index, applied } => {
                write!(f, "cannot compact to {index}: only {applied} applied")
            }
            CompactError::AlreadyCompacted { index, snapshot } => {
                write!(
                    f,
                    "cannot compact to {index}: already compacted to {snapshot}"
                )
            }
        }
    }
}

impl std::error::Error for CompactError {}

/// What the driver must do, in this order: persist `snapshot`, `entries` and
/// `hard_state` (entries at an index it already has replace it and everything after it)
/// and fsync; only then send `messages` (they may acknowledge what was just persisted);
/// install `snapshot` in the application and apply `committed_entries`; then call
/// [`Node::advance`] with this `Ready`.
#[derive(Clone, Debug, Default)]
pub struct Ready {
    /// The hard state, if it changed.
    pub hard_state: Option<HardState>,
    /// A snapshot received from the leader: replaces the application's state and the
    /// whole persisted log.
    pub snapshot: Option<Snapshot>,
    /// Entries to append to the persisted log.
    pub entries: Vec<Entry>,
    /// Messages to send, after persisting.
    pub messages: Vec<Message>,
    /// Entries now committed, to apply in order.
    pub committed_entries: Vec<Entry>,
}

impl Ready {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none()
            && self.snapshot.is_none()
            && self.entries.is_empty()
            && self.messages.is_empty()
            && self.committed_entries.is_empty()
    }
}

/// What a leader knows of one follower (raft-rs's `Progress`).
#[derive(Debug)]
struct Progress {
    /// The follower's log matches ours up to here (persisted there).
    matched: u64,
    /// The next entry to send.
    next: u64,
    /// How we are sending to it.
    state: Flow,
    /// The last index of each append in flight, oldest first (Replicate only).
    inflight: VecDeque<u64>,
    /// Heard from since the last quorum check.
    recent_active: bool,
}

/// raft-rs's progress states: probe one append at a time until the follower's log end is
/// found, then stream; or wait for a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    /// `sent`: a probe is in flight; wait for its reply or a heartbeat reply.
    Probe {
        sent: bool,
    },
    Replicate,
    /// A snapshot up to this index is on its way.
    Snapshot {
        index: u64,
    },
}

impl Progress {
    fn new(next: u64) -> Progress {
        Progress {
            matched: 0,
            next,
            state: Flow::Probe { sent: false },
            inflight: VecDeque::new(),
            recent_active: false,
        }
    }

    fn probe(&mut self) {
        self.state = Flow::Probe { sent: false };
        self.inflight.clear();
        self.next = self.matched + 1;
    }
}

/// One member of a Raft group.
pub struct Node {
    /// This node.
    id: NodeId,
    /// The other members.
    peers: Vec<NodeId>,
    config: Config,
    /// Current term, persisted.
    term: u64,
    /// Whom we voted for in `term`, persisted.
    vote: Option<NodeId>,
    role: Role,
    /// Whom we believe leads `term`.
    leader: Option<NodeId>,
    log: RaftLog,
    /// The leader's view of each follower.
    progress: BTreeMap<NodeId, Progress>,
    /// Votes (or pre-votes) received in the current campaign.
    votes: BTreeMap<NodeId, bool>,
    /// Ticks since we last heard from a leader (follower), or since the last quorum
    /// check (leader).
    election_elapsed: u32,
    /// Ticks since the last heartbeat (leader).
    heartbeat_elapsed: u32,
    /// This round's election timeout, drawn from `config.election_ticks`.
    election_timeout: u32,
    /// The only randomness: election timeouts. Seeded by the caller, so a run replays.
    rng: fastrand::Rng,
    /// Messages waiting for the next `Ready`.
    outbox: Vec<Message>,
    /// The hard state last handed to the driver, to hand only changes.
    handed: HardState,
}

impl Node {
    /// Node `id` of the group `members` (which includes `id`), restarting from `persisted`
    /// (`Persisted::default()` for a new node). `seed` drives its election timeouts.
    ///
    /// # Panics
    /// If `members` lacks `id`, or the config's election range is empty or not above the
    /// heartbeat interval: both are the caller's bug, not input.
    pub fn new(
        id: NodeId,
        members: &[NodeId],
        config: Config,
        seed: u64,
        persisted: Persisted,
    ) -> Node {
        assert!(
            members.contains(&id),
            "node {id} is not among the members {members:?}"
        );
        assert!(
            config.heartbeat_ticks > 0
                && config.election_ticks.start > config.heartbeat_ticks
                && !config.election_ticks.is_empty(),
            "election ticks {:?} must be above the heartbeat ({})",
            config.election_ticks,
            config.heartbeat_ticks
        );
        let Persisted {
            hard_state,
            snapshot,
            entries,
        } = persisted;
        let mut peers: Vec<NodeId> = members.iter().copied().filter(|&m| m != id).collect();
        peers.sort_unstable();
        peers.dedup();
        let mut node = Node {
            id,
            peers,
            config,
            term: hard_state.term,
            vote: hard_state.vote,
            role: Role::Follower,
            leader: None,
            log: RaftLog::restore_from(snapshot, entries, hard_state.commit),
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            election_timeout: 0,
            rng: fastrand::Rng::with_seed(seed),
            outbox: Vec::new(),
            handed: hard_state,
        };
        node.handed.commit = node.log.committed;
        node.reset_election_timer();
        node
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn term(&self) -> u64 {
        self.term
    }

    /// Whom this node believes leads its term.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed,
        }
    }

    pub fn committed(&self) -> u64 {
        self.log.committed
    }

    pub fn applied(&self) -> u64 {
        self.log.applied
    }

    /// The first index still in the log (the one after the snapshot).
    pub fn first_index(&self) -> u64 {
        self.log.first_index()
    }

    pub fn last_index(&self) -> u64 {
        self.log.last_index()
    }

    /// The term at `index`, if the log holds it (or its snapshot ends there).
    pub fn term_at(&self, index: u64) -> Option<u64> {
        self.log.term(index)
    }

    /// The entries in the log, from `first_index()`.
    pub fn entries(&self) -> &[Entry] {
        self.log.entries()
    }

    /// The latest snapshot (compacted locally or installed from a leader).
    pub fn snapshot(&self) -> &Snapshot {
        &self.log.snapshot
    }

    /// Time passes: a follower may campaign, a leader sends heartbeats and checks it still
    /// hears from a majority.
    pub fn tick(&mut self) {
        self.election_elapsed += 1;
        if self.role != Role::Leader {
            if self.election_elapsed >= self.election_timeout {
                self.campaign(self.config.pre_vote);
            }
            return;
        }
        if self.election_elapsed >= self.config.election_ticks.start {
            self.election_elapsed = 0;
            if self.config.check_quorum && !self.quorum_active() {
                let term = self.term;
                self.become_follower(term, None);
                return;
            }
        }
        self.heartbeat_elapsed += 1;
        if self.heartbeat_elapsed >= self.config.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            for to in self.peers.clone() {
                let commit = self.log.committed.min(self.progress[&to].matched);
                self.send(to, Body::Heartbeat { commit });
            }
        }
    }

    /// A new command: `Ok(index)` is where it sits in the log, which does not mean it will
    /// commit there (a new leader may replace it); the application learns that when the
    /// entry at `index` is applied and is this one.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<u64, NotLeader> {
        if self.role != Role::Leader {
            return Err(NotLeader {
                leader: self.leader,
            });
        }
        let index = self.append_own(data);
        for to in self.peers.clone() {
            self.send_append(to, false);
        }
        Ok(index)
    }

    /// The application has a snapshot of its state up to `index` (applied): drop the log
    /// up to it. Returns the snapshot for the driver to persist (then drop its entries up
    /// to `index`).
    pub fn compact(&mut self, index: u64, data: Vec<u8>) -> Result<Snapshot, CompactError> {
        let snapshot = self.log.snapshot.meta.index;
        if index <= snapshot {
            return Err(CompactError::AlreadyCompacted { index, snapshot });
        }
        let applied = self.log.applied;
        let term = match self.log.term(index) {
            Some(term) if index <= applied => term,
            _ => return Err(CompactError::NotApplied { index, applied }),
        };
        self.log.compact(index, term, data);
        Ok(self.log.snapshot.clone())
    }

    /// Is there anything for the driver?
    pub fn has_ready(&self) -> bool {
        self.hard_state() != self.handed
            || self.log.pending_snapshot
            || !self.log.unstable().is_empty()
            || !self.outbox.is_empty()
            || self.log.committed > self.log.applied
    }

    /// What the driver must do now (see [`Ready`]). Messages are handed once; the rest is
    /// handed again until `advance` says it was done.
    pub fn ready(&mut self) -> Ready {
        let hard_state = self.hard_state();
        Ready {
            hard_state: (hard_state != self.handed).then_some(hard_state),
            snapshot: self.log.pending_snapshot.then(|| self.log.snapshot.clone()),
            entries: self.log.unstable().to_vec(),
            messages: std::mem::take(&mut self.outbox),
            committed_entries: self
                .log
                .slice(self.log.applied + 1, self.log.committed)
                .to_vec(),
        }
    }

    /// The driver did what `ready` asked.
    pub fn advance(&mut self, ready: Ready) {
        if let Some(hard_state) = ready.hard_state {
            self.handed = hard_state;
        }
        if ready
            .snapshot
            .is_some_and(|s| s.meta == self.log.snapshot.meta)
        {
            self.log.pending_snapshot = false;
        }
        if let Some(last) = ready.entries.last() {
            self.log.stable_to(last.index, last.term);
        }
        if let Some(last) = ready.committed_entries.last() {
            self.log.applied = self.log.applied.max(last.index);
        }
    }

    /// A message from another node.
    pub fn step(&mut self, m: Message) {
        if m.to != self.id || !self.peers.contains(&m.from) {
            return;
        }
        if m.term > self.term {
            let is_vote_request = matches!(m.body, Body::RequestVote { .. });
            if is_vote_request && self.in_lease() {
                // We heard from a leader within the election timeout: this candidate is
                // the one cut off, and answering would only depose a working leader.
                return;
            }
            match m.body {
                // Pre-votes change nobody's term: that is their point.
                Body::RequestVote { pre_vote: true, .. } => {}
                Body::Vote {
                    pre_vote: true,
                    granted: true,
                } => {}
                Body::Append { .. } | Body::Heartbeat { .. } | Body::InstallSnapshot { .. } => {
                    self.become_follower(m.term, Some(m.from))
                }
                _ => self.become_follower(m.term, None),
            }
        } else if m.term < self.term {
            match m.body {
                // A stale leader (or pre-candidate) learns our term from the answer and
                // steps down; without it a leader cut off by check-quorum peers would
                // never hear of the new term.
                Body::Append { .. } | Body::Heartbeat { .. } | Body::InstallSnapshot { .. } => {
                    self.send(m.from, Body::HeartbeatReply)
                }
                Body::RequestVote { pre_vote: true, .. } => self.send(
                    m.from,
                    Body::Vote {
                        pre_vote: true,
                        granted: false,
                    },
                ),
                _ => {}
            }
            return;
        }
        match m.body {
            Body::RequestVote {
                pre_vote,
                last_index,
                last_term,
            } => self.on_vote_request(m.from, m.term, pre_vote, last_index, last_term),
            Body::Vote { pre_vote, granted } => self.on_vote(m.from, m.term, pre_vote, granted),
            Body::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            } => {
                if self.follow(m.from) {
                    self.on_append(m.from, prev_index, prev_term, &entries, commit);
                }
            }
            Body::Heartbeat { commit } => {
                if self.follow(m.from) {
                    self.log.commit_to(commit);
                    self.send(m.from, Body::HeartbeatReply);
                }
            }
            Body::InstallSnapshot { snapshot } => {
                if self.follow(m.from) {
                    self.log.restore(snapshot);
                    let index = self.log.committed;
                    self.send(
                        m.from,
                        Body::AppendReply {
                            index,
                            reject: None,
                        },
                    );
                }
            }
            Body::AppendReply { index, reject } => self.on_append_reply(m.from, index, reject),
            Body::HeartbeatReply => self.on_heartbeat_reply(m.from),
        }
    }

    /// A message only the leader of our term sends: follow it. `false` if we lead this
    /// term ourselves, which cannot happen with one leader per term (ignore it).
    fn follow(&mut self, leader: NodeId) -> bool {
        if self.role == Role::Leader {
            return false;
        }
        if self.role != Role::Follower || self.leader != Some(leader) {
            let term = self.term;
            self.become_follower(term, Some(leader));
        }
        self.election_elapsed = 0;
        true
    }

    fn on_vote_request(
        &mut self,
        from: NodeId,
        term: u64,
        pre_vote: bool,
        last_index: u64,
        last_term: u64,
    ) {
        // etcd-raft's rule: the vote we already gave, or a free vote while no leader is
        // known, or a pre-vote for a later term (which binds nobody).
        let can_vote = self.vote == Some(from)
            || (self.vote.is_none() && self.leader.is_none())
            || (pre_vote && term > self.term);
        if can_vote && self.log.is_up_to_date(last_index, last_term) {
            if !pre_vote {
                self.vote = Some(from);
                self.election_elapsed = 0;
            }
            // A granted pre-vote carries the term asked about, so the pre-candidate can
            // tell it from answers to an older campaign.
            self.send_with_term(
                from,
                term,
                Body::Vote {
                    pre_vote,
                    granted: true,
                },
            );
        } else {
            self.send(
                from,
                Body::Vote {
                    pre_vote,
                    granted: false,
                },
            );
        }
    }

    fn on_vote(&mut self, from: NodeId, term: u64, pre_vote: bool, granted: bool) {
        let campaigning = match self.role {
            Role::PreCandidate => pre_vote && (term == self.term + 1 || !granted),
            Role::Candidate => !pre_vote,
            _ => false,
        };
        if !campaigning {
            return;
        }
        self.votes.insert(from, granted);
        let yes = self.votes.values().filter(|&&g| g).count();
        let no = self.votes.len() - yes;
        if yes >= self.quorum() {
            if pre_vote {
                self.campaign(false);
            } else {
                self.become_leader();
            }
        } else if no >= self.quorum() {
            let term = self.term;
            self.become_follower(term, None);
        }
    }

    fn on_append(
        &mut self,
        from: NodeId,
        prev_index: u64,
        prev_term: u64,
        entries: &[Entry],
        commit: u64,
    ) {
        if prev_index < self.log.committed {
            // Everything up to our commit index matches the leader's already; say how far.
            let index = self.log.committed;
            self.send(
                from,
                Body::AppendReply {
                    index,
                    reject: None,
                },
            );
            return;
        }
        match self.log.maybe_append(prev_index, prev_term, entries) {
            Some(last_new) => {
                // Only what we know matches the leader can be committed here: an entry
                // past `last_new` may still be from an older term's leader.
                self.log.commit_to(commit.min(last_new));
                self.send(
                    from,
                    Body::AppendReply {
                        index: last_new,
                        reject: None,
                    },
                );
            }
            None => {
                let (index, term) = self.log.find_conflict_by_term(prev_index, prev_term);
                let reject = Some(RejectHint { index, term });
                self.send(
                    from,
                    Body::AppendReply {
                        index: prev_index,
                        reject,
                    },
                );
            }
        }
    }

    fn on_append_reply(&mut self, from: NodeId, index: u64, reject: Option<RejectHint>) {
        if self.role != Role::Leader {
            return;
        }
        let next_probe = reject.map(|hint| match hint.term {
            0 => hint.index,
            term => self.log.find_conflict_by_term(hint.index, term).0,
        });
        let pr = self
            .progress
            .get_mut(&from)
            .expect("progress for every peer");
        pr.recent_active = true;
        let Some(next_probe) = next_probe else {
            if index <= pr.matched {
                return; // a duplicate or a late reply
            }
            pr.matched = index;
            pr.next = pr.next.max(index + 1);
            while pr.inflight.front().is_some_and(|&last| last <= index) {
                pr.inflight.pop_front();
            }
            match pr.state {
                Flow::Probe { .. } => pr.state = Flow::Replicate,
                Flow::Snapshot { index: at } if index >= at => pr.state = Flow::Replicate,
                _ => {}
            }
            // Followers learn a new commit index with the next append or heartbeat; no
            // extra round for it.
            self.maybe_commit();
            while self.send_append(from, false) {}
            return;
        };
        // A rejection: back up, unless it answers an append older than what we know.
        match pr.state {
            Flow::Replicate if index > pr.matched => pr.probe(),
            Flow::Probe { .. } if pr.next - 1 == index => {
                // etcd-raft's bound: never above the rejected probe, never at or under
                // what the follower is known to hold.
                pr.next = index.min(next_probe + 1).max(pr.matched + 1);
                pr.state = Flow::Probe { sent: false };
            }
            _ => return,
        }
        self.send_append(from, true);
    }

    fn on_heartbeat_reply(&mut self, from: NodeId) {
        if self.role != Role::Leader {
            return;
        }
        let max_inflight = self.config.max_inflight;
        let pr = self
            .progress
            .get_mut(&from)
            .expect("progress for every peer");
        pr.recent_active = true;
        match pr.state {
            // The probe may have been lost: another may go.
            Flow::Probe { .. } => pr.state = Flow::Probe { sent: false },
            // So may the snapshot: probe again, which sends it again if still needed.
            Flow::Snapshot { .. } => pr.probe(),
            // A full pipeline whose replies were lost would stall for good: free a slot
            // (etcd-raft does the same).
            Flow::Replicate if pr.inflight.len() >= max_inflight => {
                pr.inflight.pop_front();
            }
            Flow::Replicate => {}
        }
        if pr.matched < self.log.last_index() {
            self.send_append(from, true);
        }
    }

    /// Sends `to` the next entries (or a snapshot if they are compacted away); `false` if
    /// the flow to it is paused or there was nothing to send.
    fn send_append(&mut self, to: NodeId, even_if_empty: bool) -> bool {
        let pr = &self.progress[&to];
        let paused = match pr.state {
            Flow::Probe { sent } => sent,
            Flow::Replicate => pr.inflight.len() >= self.config.max_inflight,
            Flow::Snapshot { .. } => true,
        };
        if paused {
            return false;
        }
        let prev_index = pr.next - 1;
        let Some(prev_term) = self.log.term(prev_index) else {
            let snapshot = self.log.snapshot.clone();
            let pr = self.progress.get_mut(&to).expect("progress for every peer");
            pr.state = Flow::Snapshot {
                index: snapshot.meta.index,
            };
            pr.inflight.clear();
            self.send(to, Body::InstallSnapshot { snapshot });
            return false;
        };
        let entries = self.log.batch_from(
            pr.next,
            self.config.max_append_entries,
            self.config.max_append_bytes,
        );
        if entries.is_empty() && !even_if_empty {
            return false;
        }
        let pr = self.progress.get_mut(&to).expect("progress for every peer");
        match pr.state {
            Flow::Replicate => {
                if let Some(last) = entries.last() {
                    pr.next = last.index + 1;
                    pr.inflight.push_back(last.index);
                }
            }
            _ => pr.state = Flow::Probe { sent: true },
        }
        let sent = !entries.is_empty();
        let commit = self.log.committed;
        self.send(
            to,
            Body::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            },
        );
        // A probe pauses the flow; only streaming goes on at once.
        sent
    }

    /// §5.3/§5.4.2: the highest index on a majority, committed only if it is from our own
    /// term (Figure 8: an older term's entry on a majority can still be overwritten; it
    /// commits with the first entry of ours above it).
    fn maybe_commit(&mut self) -> bool {
        let mut matched: Vec<u64> = self.progress.values().map(|p| p.matched).collect();
        matched.push(self.log.last_index());
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let index = matched[self.quorum() - 1];
        if index > self.log.committed && self.log.term(index) == Some(self.term) {
            self.log.commit_to(index);
            return true;
        }
        false
    }

    fn campaign(&mut self, pre_vote: bool) {
        let term = if pre_vote {
            self.role = Role::PreCandidate;
            self.leader = None;
            self.reset_election_timer();
            self.term + 1
        } else {
            let term = self.term + 1;
            self.become_follower(term, None);
            self.role = Role::Candidate;
            self.vote = Some(self.id);
            term
        };
        self.votes.clear();
        self.votes.insert(self.id, true);
        if self.quorum() == 1 {
            // Alone: our own vote is a majority.
            return if pre_vote {
                self.campaign(false)
            } else {
                self.become_leader()
            };
        }
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        for to in self.peers.clone() {
            self.send_with_term(
                to,
                term,
                Body::RequestVote {
                    pre_vote,
                    last_index,
                    last_term,
                },
            );
        }
    }

    fn become_follower(&mut self, term: u64, leader: Option<NodeId>) {
        if term != self.term {
            self.term = term;
            self.vote = None;
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.progress.clear();
        self.votes.clear();
        self.reset_election_timer();
    }

    fn become_leader(&mut self) {
        self.role = Role::Leader;
        self.leader = Some(self.id);
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        let next = self.log.last_index() + 1;
        self.progress = self
            .peers
            .iter()
            .map(|&p| (p, Progress::new(next)))
            .collect();
        // The no-op: entries of earlier terms commit only under one of ours (Figure 8), so
        // a leader appends one at once instead of waiting for a client.
        self.append_own(Vec::new());
        for to in self.peers.clone() {
            self.send_append(to, true);
        }
    }

    /// Appends an entry of our term as leader; alone, it commits at once.
    fn append_own(&mut self, data: Vec<u8>) -> u64 {
        let index = self.log.last_index() + 1;
        self.log.append(Entry {
            index,
            term: self.term,
            data,
        });
        self.maybe_commit();
        index
    }

    /// A majority of the group.
    fn quorum(&self) -> usize {
        let members = self.peers.len() + 1;
        members / 2 + 1
    }

    /// A leader heard from a majority (itself included) since the last check; resets the
    /// marks for the next one.
    fn quorum_active(&mut self) -> bool {
        let active = 1 + self.progress.values().filter(|p| p.recent_active).count();
        for pr in self.progress.values_mut() {
            pr.recent_active = false;
        }
        active >= self.quorum()
    }

    /// We heard from a leader less than an election timeout ago (check-quorum only).
    fn in_lease(&self) -> bool {
        self.config.check_quorum
            && self.leader.is_some()
            && self.election_elapsed < self.config.election_ticks.start
    }

    fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        self.election_timeout = self.rng.u32(self.config.election_ticks.clone());
    }

    fn send(&mut self, to: NodeId, body: Body) {
        self.send_with_term(to, self.term, body);
    }

    fn send_with_term(&mut self, to: NodeId, term: u64, body: Body) {
        self.outbox.push(Message {
            from: self.id,
            to,
            term,
            body,
        });
    }
}
