//! Unit tests named after tikv/raft-rs's and etcd-raft's cases (`raft_test.go`,
//! `raft_paper_test.go`), the checklist of behaviours; the randomized whole-group checks are
//! `tests/raft_sim.rs`. Covered here: test_leader_election, test_single_node_candidate,
//! test_single_node_commit, test_log_replication, test_cannot_commit_without_new_term_entry,
//! test_commit_without_new_term_entry, test_dueling_candidates, test_candidate_concede,
//! test_old_messages, test_proposal, test_handle_msg_append (the conflict table),
//! test_handle_heartbeat, test_recv_msg_vote (up-to-date rule), test_restore,
//! test_restore_ignore_snapshot, test_provide_snap, test_compact,
//! test_leader_step_down_when_quorum_lost, test_prevote_isolated (a cut-off node does not
//! bump the term), test_leader_lease (votes ignored while a leader is heard),
//! test_restart_keeps_vote, test_follower_backtracks_by_term (fast backtracking),
//! test_message_json_roundtrip.

use std::collections::{BTreeMap, HashSet};

use super::*;

/// A group whose messages are delivered at once, except on cut links.
struct Net {
    nodes: BTreeMap<NodeId, Node>,
    cut: HashSet<(NodeId, NodeId)>,
}

fn config(pre_vote: bool, check_quorum: bool) -> Config {
    Config {
        pre_vote,
        check_quorum,
        ..Config::default()
    }
}

impl Net {
    fn new(n: u64, config: Config) -> Net {
        let members: Vec<NodeId> = (1..=n).collect();
        let nodes = members.iter().map(|&id| {
            (
                id,
                Node::new(id, &members, config.clone(), id, Persisted::default()),
            )
        });
        Net {
            nodes: nodes.collect(),
            cut: HashSet::new(),
        }
    }

    fn node(&self, id: NodeId) -> &Node {
        &self.nodes[&id]
    }

    fn isolate(&mut self, id: NodeId) {
        for &other in self.nodes.keys() {
            self.cut.insert((id, other));
            self.cut.insert((other, id));
        }
    }

    /// Runs every node's `Ready` and delivers the messages until nothing moves.
    fn settle(&mut self) {
        loop {
            let mut sent = Vec::new();
            for node in self.nodes.values_mut() {
                let ready = node.ready();
                sent.extend(ready.messages.iter().cloned());
                node.advance(ready);
            }
            if sent.is_empty() {
                return;
            }
            for m in sent {
                if !self.cut.contains(&(m.from, m.to)) {
                    self.nodes.get_mut(&m.to).expect("member").step(m);
                }
            }
        }
    }

    /// Ticks `id` alone until it campaigns (it has something to say: the group is settled
    /// before), then lets the group answer.
    fn campaign(&mut self, id: NodeId) {
        self.settle();
        let node = self.nodes.get_mut(&id).expect("member");
        node.tick();
        while !node.has_ready() {
            node.tick();
        }
        self.settle();
    }

    fn propose(&mut self, id: NodeId, data: &[u8]) -> Result<u64, NotLeader> {
        let index = self
            .nodes
            .get_mut(&id)
            .expect("member")
            .propose(data.to_vec());
        self.settle();
        index
    }

    fn tick_all(&mut self, ticks: u32) {
        for _ in 0..ticks {
            self.nodes.values_mut().for_each(Node::tick);
            self.settle();
        }
    }
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: vec![index as u8],
    }
}

fn msg(from: NodeId, to: NodeId, term: u64, body: Body) -> Message {
    Message {
        from,
        to,
        term,
        body,
    }
}

/// A follower (id 2 of 1..=3) whose log holds `entries`, at `term`.
fn follower_with(entries: Vec<Entry>, term: u64) -> Node {
    let hard_state = HardState {
        term,
        vote: None,
        commit: 0,
    };
    let persisted = Persisted {
        hard_state,
        entries,
        ..Persisted::default()
    };
    Node::new(2, &[1, 2, 3], config(false, false), 7, persisted)
}

fn replies(node: &mut Node) -> Vec<Message> {
    let ready = node.ready();
    let messages = ready.messages.clone();
    node.advance(ready);
    messages
}

#[test]
fn test_leader_election() {
    for (pre_vote, n) in [(false, 3), (true, 3), (true, 5)] {
        let mut net = Net::new(n, config(pre_vote, true));
        net.campaign(1);
        assert_eq!(net.node(1).role(), Role::Leader);
        for id in 2..=n {
            assert_eq!(net.node(id).role(), Role::Follower);
            assert_eq!(net.node(id).leader(), Some(1));
            assert_eq!(net.node(id).term(), 1);
        }
    }
}

#[test]
fn test_single_node_candidate() {
    let mut net = Net::new(1, config(true, true));
    net.campaign(1);
    assert_eq!(net.node(1).role(), Role::Leader);
}

#[test]
fn test_single_node_commit() {
    let mut net = Net::new(1, config(true, true));
    net.campaign(1);
    assert_eq!(net.propose(1, b"a"), Ok(2));
    assert_eq!(net.propose(1, b"b"), Ok(3));
    assert_eq!(net.node(1).committed(), 3);
    assert_eq!(net.node(1).applied(), 3);
}

#[test]
fn test_log_replication() {
    // No check-quorum: 2 must win while 1 still leads.
    let mut net = Net::new(3, config(false, false));
    net.campaign(1);
    net.propose(1, b"somedata").unwrap();
    net.campaign(2);
    net.propose(2, b"more").unwrap();
    net.tick_all(3); // heartbeats carry the last commit index to followers
    for id in 1..=3 {
        let node = net.node(id);
        assert_eq!((node.committed(), node.applied()), (4, 4), "node {id}");
        let data: Vec<&[u8]> = node.entries().iter().map(|e| &e.data[..]).collect();
        assert_eq!(data, [&b""[..], b"somedata", b"", b"more"], "node {id}");
    }
}

#[test]
fn test_proposal() {
    let mut net = Net::new(3, config(true, true));
    assert_eq!(net.propose(2, b"x"), Err(NotLeader { leader: None }));
    net.campaign(1);
    assert_eq!(net.propose(2, b"x"), Err(NotLeader { leader: Some(1) }));
    assert_eq!(net.propose(1, b"x"), Ok(2));
    assert_eq!(net.node(1).committed(), 2);
}

/// A leader of term 2 whose log holds entries 1..=2 of term 1 (never committed) and its
/// no-op at 3; peers 2 and 3 are known to hold nothing yet.
fn leader_with_old_entries() -> Node {
    let persisted = Persisted {
        hard_state: HardState {
            term: 1,
            vote: None,
            commit: 0,
        },
        entries: vec![entry(1, 1), entry(2, 1)],
        ..Persisted::default()
    };
    let mut node = Node::new(1, &[1, 2, 3, 4, 5], config(false, false), 1, persisted);
    while node.role() != Role::Candidate {
        node.tick();
    }
    for from in [2, 3] {
        node.step(msg(
            from,
            1,
            2,
            Body::Vote {
                pre_vote: false,
                granted: true,
            },
        ));
    }
    assert_eq!(
        (node.role(), node.term(), node.last_index()),
        (Role::Leader, 2, 3)
    );
    node
}

/// That leader's commit index once a majority (2 and 3 with itself) holds `index`.
fn committed_when_majority_holds(index: u64) -> u64 {
    let mut node = leader_with_old_entries();
    for from in [2, 3] {
        node.step(msg(
            from,
            1,
            2,
            Body::AppendReply {
                index,
                reject: None,
            },
        ));
    }
    node.committed()
}

#[test]
fn test_cannot_commit_without_new_term_entry() {
    // Figure 8: entries of term 1 on a majority may still be overwritten; counting them
    // is not enough.
    assert_eq!(committed_when_majority_holds(2), 0);
}

#[test]
fn test_commit_without_new_term_entry() {
    // ...and they commit with the first entry of the leader's own term above them.
    assert_eq!(committed_when_majority_holds(3), 3);
}

#[test]
fn test_dueling_candidates() {
    let mut net = Net::new(3, config(false, false));
    net.cut.insert((1, 3));
    net.cut.insert((3, 1));
    net.campaign(1);
    net.campaign(3);
    // 2 voted for 1 in term 1; 3's campaign in term 1 lost, so it is not a leader.
    assert_eq!(net.node(1).role(), Role::Leader);
    assert_ne!(net.node(3).role(), Role::Leader);
    net.cut.clear();
    // 3 campaigns again at a higher term; its log is behind (no no-op), so it loses, and a
    // leader emerges once more.
    net.campaign(3);
    assert_ne!(net.node(3).role(), Role::Leader);
    net.tick_all(40);
    let leaders = net
        .nodes
        .values()
        .filter(|n| n.role() == Role::Leader)
        .count();
    assert_eq!(leaders, 1);
}

#[test]
fn test_candidate_concede() {
    let mut net = Net::new(3, config(false, false));
    net.isolate(1);
    net.campaign(1);
    assert_eq!(net.node(1).role(), Role::Candidate);
    net.cut.clear();
    net.campaign(3);
    net.propose(3, b"force follower").unwrap();
    net.tick_all(3);
    assert_eq!(net.node(1).role(), Role::Follower);
    assert_eq!(net.node(1).leader(), Some(3));
    assert_eq!(net.node(1).committed(), net.node(3).committed());
}

#[test]
fn test_old_messages() {
    let mut node = follower_with(vec![entry(1, 1), entry(2, 2)], 2);
    let stale = Body::Append {
        prev_index: 2,
        prev_term: 2,
        entries: vec![entry(3, 1)],
        commit: 3,
    };
    node.step(msg(1, 2, 1, stale));
    assert_eq!(node.last_index(), 2);
    assert_eq!(node.committed(), 0);
    // Answered with the newer term, so the stale leader steps down.
    let out = replies(&mut node);
    assert_eq!(out, [msg(2, 1, 2, Body::HeartbeatReply)]);
}

/// (prev_index, prev_term, entries, commit, accepted, last index, committed)
type AppendCase = (u64, u64, Vec<Entry>, u64, bool, u64, u64);

#[test]
fn test_handle_msg_append() {
    // (prev_index, prev_term, entries, commit) → (accepted, last index, committed)
    let cases: Vec<AppendCase> = vec![
        (2, 3, vec![], 3, false, 2, 0),                        // term mismatch
        (3, 3, vec![], 3, false, 2, 0),                        // beyond our log
        (1, 1, vec![], 1, true, 2, 1),                         // match, nothing new
        (0, 0, vec![entry(1, 2)], 1, true, 1, 1),              // conflict: truncate
        (2, 2, vec![entry(3, 2), entry(4, 2)], 3, true, 4, 3), // append
        (2, 2, vec![entry(3, 2)], 4, true, 3, 3),              // commit ≤ last new
        (1, 1, vec![entry(2, 2)], 4, true, 2, 2),              // duplicate kept
        (1, 1, vec![], 3, true, 2, 1),                         // commit ≤ prev + 0
        (2, 2, vec![], 2, true, 2, 2),                         // commit up to last
    ];
    for (i, (prev_index, prev_term, entries, commit, accepted, last, committed)) in
        cases.into_iter().enumerate()
    {
        let mut node = follower_with(vec![entry(1, 1), entry(2, 2)], 2);
        node.step(msg(
            1,
            2,
            2,
            Body::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            },
        ));
        assert_eq!(
            (node.last_index(), node.committed()),
            (last, committed),
            "case {i}"
        );
        let out = replies(&mut node);
        let Body::AppendReply { reject, .. } = &out[0].body else {
            panic!("case {i}: {out:?}")
        };
        assert_eq!(reject.is_none(), accepted, "case {i}");
    }
}

#[test]
fn test_follower_backtracks_by_term() {
    // The follower holds terms 1,3,3,3 (index 1..4). Probed at (prev_index, prev_term), it
    // hints the last entry with a term ≤ prev_term, so the leader skips every entry that
    // cannot match in one round trip.
    let cases = [
        (6, 5, RejectHint { index: 4, term: 3 }), // beyond its log: its last entry
        (4, 4, RejectHint { index: 4, term: 3 }), // its term 3 < 4 there
        (4, 2, RejectHint { index: 1, term: 1 }), // all of term 3 skipped
    ];
    for (prev_index, prev_term, hint) in cases {
        let mut node = follower_with(vec![entry(1, 1), entry(2, 3), entry(3, 3), entry(4, 3)], 5);
        let entries = vec![];
        node.step(msg(
            1,
            2,
            5,
            Body::Append {
                prev_index,
                prev_term,
                entries,
                commit: 0,
            },
        ));
        let reject = Some(hint);
        assert_eq!(
            replies(&mut node)[0].body,
            Body::AppendReply {
                index: prev_index,
                reject
            }
        );
    }
}

#[test]
fn test_handle_heartbeat() {
    let mut node = follower_with(vec![entry(1, 1), entry(2, 2), entry(3, 2)], 2);
    node.step(msg(1, 2, 2, Body::Heartbeat { commit: 2 }));
    assert_eq!(node.committed(), 2);
    assert_eq!(replies(&mut node), [msg(2, 1, 2, Body::HeartbeatReply)]);
}

#[test]
fn test_recv_msg_vote() {
    // Our log ends at (2, 2). (candidate's last index, last term) → granted
    let cases = [
        ((2, 2), true),
        ((3, 2), true),
        ((1, 2), false),
        ((5, 1), false),
        ((1, 3), true),
    ];
    for ((last_index, last_term), granted) in cases {
        let mut node = follower_with(vec![entry(1, 1), entry(2, 2)], 2);
        node.step(msg(
            3,
            2,
            3,
            Body::RequestVote {
                pre_vote: false,
                last_index,
                last_term,
            },
        ));
        let out = replies(&mut node);
        assert_eq!(
            out[0].body,
            Body::Vote {
                pre_vote: false,
                granted
            },
            "({last_index}, {last_term})"
        );
        assert_eq!(node.hard_state().vote, granted.then_some(3));
    }
}

#[test]
fn test_restart_keeps_vote() {
    let mut node = follower_with(vec![], 0);
    node.step(msg(
        3,
        2,
        1,
        Body::RequestVote {
            pre_vote: false,
            last_index: 0,
            last_term: 0,
        },
    ));
    let ready = node.ready();
    let hard_state = ready.hard_state.expect("the vote must be persisted");
    assert_eq!(hard_state.vote, Some(3));
    // Restarted from what was persisted, it does not vote for another in term 1.
    let persisted = Persisted {
        hard_state,
        ..Persisted::default()
    };
    let mut node = Node::new(2, &[1, 2, 3], config(false, false), 7, persisted);
    node.step(msg(
        1,
        2,
        1,
        Body::RequestVote {
            pre_vote: false,
            last_index: 0,
            last_term: 0,
        },
    ));
    assert_eq!(
        replies(&mut node)[0].body,
        Body::Vote {
            pre_vote: false,
            granted: false
        }
    );
}

fn snapshot(index: u64, term: u64) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta { index, term },
        data: b"state".to_vec(),
    }
}

#[test]
fn test_restore() {
    let mut node = follower_with(vec![entry(1, 1)], 2);
    node.step(msg(
        1,
        2,
        2,
        Body::InstallSnapshot {
            snapshot: snapshot(11, 2),
        },
    ));
    assert_eq!(
        (node.first_index(), node.last_index(), node.committed()),
        (12, 11, 11)
    );
    assert_eq!(node.term_at(11), Some(2));
    let ready = node.ready();
    assert_eq!(ready.snapshot, Some(snapshot(11, 2)));
    assert!(ready.committed_entries.is_empty());
    assert_eq!(
        ready.messages[0].body,
        Body::AppendReply {
            index: 11,
            reject: None
        }
    );
    node.advance(ready);
    assert!(!node.has_ready());
}

#[test]
fn test_restore_ignore_snapshot() {
    let mut node = follower_with(vec![entry(1, 1), entry(2, 1), entry(3, 1)], 1);
    node.step(msg(1, 2, 1, Body::Heartbeat { commit: 0 }));
    node.step(msg(
        1,
        2,
        1,
        Body::Append {
            prev_index: 3,
            prev_term: 1,
            entries: vec![],
            commit: 1,
        },
    ));
    // Holding the snapshot's last entry: only learns it is committed.
    node.step(msg(
        1,
        2,
        1,
        Body::InstallSnapshot {
            snapshot: snapshot(2, 1),
        },
    ));
    assert_eq!((node.last_index(), node.committed()), (3, 2));
    assert!(node.ready().snapshot.is_none());
}

#[test]
fn test_compact() {
    let mut net = Net::new(1, config(true, true));
    net.campaign(1);
    net.propose(1, b"a").unwrap();
    let node = net.nodes.get_mut(&1).unwrap();
    assert_eq!(
        node.compact(3, vec![]),
        Err(CompactError::NotApplied {
            index: 3,
            applied: 2
        })
    );
    assert_eq!(
        node.compact(2, b"s".to_vec()).unwrap().meta,
        SnapshotMeta { index: 2, term: 1 }
    );
    assert_eq!((node.first_index(), node.last_index()), (3, 2));
    assert_eq!(
        node.compact(2, vec![]),
        Err(CompactError::AlreadyCompacted {
            index: 2,
            snapshot: 2
        })
    );
}

#[test]
fn test_provide_snap() {
    let mut net = Net::new(3, config(true, true));
    net.campaign(1);
    net.isolate(3);
    for data in [b"a", b"b", b"c"] {
        net.propose(1, data).unwrap();
    }
    net.nodes
        .get_mut(&1)
        .unwrap()
        .compact(4, b"abc".to_vec())
        .unwrap();
    net.cut.clear();
    // The next heartbeat reply sends node 3 to a probe, whose rejection needs entries
    // compacted away: a snapshot goes instead.
    net.tick_all(3);
    assert_eq!(net.node(3).snapshot().data, b"abc");
    assert_eq!(net.node(3).committed(), 4);
    net.propose(1, b"d").unwrap();
    assert_eq!(net.node(3).last_index(), 5);
}

#[test]
fn test_leader_step_down_when_quorum_lost() {
    let mut net = Net::new(3, config(true, true));
    net.campaign(1);
    net.isolate(1);
    // Cut off, it still believes it leads for a while and takes a proposal...
    let index = net.propose(1, b"x").unwrap();
    net.tick_all(Config::default().election_ticks.start * 2);
    // ...which never commits on its own; it steps down and refuses the next.
    assert!(net.node(1).committed() < index);
    assert_ne!(net.node(1).role(), Role::Leader);
    assert!(net.propose(1, b"y").is_err());
}

#[test]
fn test_prevote_isolated() {
    let mut net = Net::new(3, config(true, true));
    net.campaign(1);
    net.propose(1, b"a").unwrap();
    net.isolate(3);
    for _ in 0..5 {
        net.campaign(3);
    }
    // Pre-votes got no answer: no term was spent, so 3 returns without deposing 1.
    assert_eq!(
        (net.node(3).term(), net.node(3).role()),
        (1, Role::PreCandidate)
    );
    net.cut.clear();
    net.tick_all(3);
    assert_eq!(net.node(1).role(), Role::Leader);
    assert_eq!(net.node(1).term(), 1);
    assert_eq!(net.node(3).leader(), Some(1));
}

#[test]
fn test_leader_lease() {
    // With check-quorum, a follower that hears from its leader ignores a higher-term vote.
    let mut net = Net::new(3, config(false, true));
    net.campaign(1);
    net.isolate(3);
    net.campaign(3);
    net.campaign(3);
    assert_eq!(net.node(3).term(), 3);
    net.cut.clear();
    let node2 = net.nodes.get_mut(&2).unwrap();
    node2.step(msg(
        3,
        2,
        3,
        Body::RequestVote {
            pre_vote: false,
            last_index: 0,
            last_term: 0,
        },
    ));
    assert_eq!(node2.term(), 1);
    assert!(replies(node2).is_empty());
}

#[test]
fn test_message_json_roundtrip() {
    // The transport will send messages as JSON: every kind must come back unchanged.
    let bodies = [
        Body::RequestVote {
            pre_vote: true,
            last_index: 3,
            last_term: 2,
        },
        Body::Vote {
            pre_vote: false,
            granted: true,
        },
        Body::Append {
            prev_index: 1,
            prev_term: 1,
            entries: vec![entry(2, 1)],
            commit: 1,
        },
        Body::AppendReply {
            index: 4,
            reject: Some(RejectHint { index: 2, term: 1 }),
        },
        Body::Heartbeat { commit: 9 },
        Body::HeartbeatReply,
        Body::InstallSnapshot {
            snapshot: snapshot(5, 2),
        },
    ];
    for body in bodies {
        let m = msg(1, 2, 3, body);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Message>(&json).unwrap(), m, "{json}");
    }
}
