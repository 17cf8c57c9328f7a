//! One iterative lookup (BEP 5): ask the closest nodes we know about `target`, learn closer
//! ones from their answers, and stop when the [`K`] closest nodes that did not fail have all
//! answered. At most [`ALPHA`] requests are in flight; only candidates among the current
//! [`K`] closest are asked, so the lookup converges instead of wandering. Candidates are
//! deduplicated by address and id and capped at [`MAX_CANDIDATES`]; peers found are handed out
//! once each, at most [`MAX_PEERS_SEEN`] per lookup.

use std::collections::HashSet;
use std::net::SocketAddrV4;

use shoal_proto::dht::{CompactNode, NodeId, Response, Token};

use super::routing::K;

/// Requests in flight per lookup.
pub const ALPHA: usize = 3;
/// Most candidates a lookup keeps.
pub const MAX_CANDIDATES: usize = 64;
/// Most distinct peers one lookup remembers (and hands out).
pub const MAX_PEERS_SEEN: usize = 2_000;

/// What a lookup is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LookupKind {
    /// `find_node`: fill the routing table (bootstrap, bucket refresh).
    FindNode { bootstrap: bool },
    /// `get_peers`: find peers of an infohash.
    GetPeers,
    /// `get_peers` then `announce_peer` to the closest nodes that gave a token. `None` port:
    /// implied (the UDP source port).
    Announce { port: Option<u16> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Waiting,
    InFlight,
    Responded(Option<Token>),
    Failed,
}

#[derive(Clone, Debug)]
struct Candidate {
    id: Option<NodeId>,
    addr: SocketAddrV4,
    distance: [u8; 20],
    state: State,
}

/// See the module doc.
#[derive(Clone, Debug)]
pub struct Lookup {
    pub target: [u8; 20],
    pub kind: LookupKind,
    own: NodeId,
    candidates: Vec<Candidate>,
    peers_seen: HashSet<SocketAddrV4>,
}

impl Lookup {
    pub fn new(own: NodeId, target: [u8; 20], kind: LookupKind) -> Self {
        Lookup {
            target,
            kind,
            own,
            candidates: Vec::new(),
            peers_seen: HashSet::new(),
        }
    }

    /// Adds a node to ask; an unknown id (a bootstrap address) sorts last. A seed that a reply
    /// names with its id moves to where that id sorts: otherwise a close node that is also a
    /// saved seed would wait behind every other candidate and never be asked.
    pub fn add(&mut self, id: Option<NodeId>, addr: SocketAddrV4) {
        if id == Some(self.own) || addr.port() == 0 {
            return;
        }
        if let Some(at) = self.candidates.iter().position(|c| c.addr == addr) {
            let unnamed_seed = self.candidates[at].id.is_none();
            if unnamed_seed && self.candidates[at].state == State::Waiting && id.is_some() {
                self.candidates.remove(at);
            } else {
                return;
            }
        } else if id.is_some() && self.candidates.iter().any(|c| c.id == id) {
            return;
        }
        let distance = id.map_or([0xff; 20], |id| id.distance(&self.target));
        let at = self.candidates.partition_point(|c| c.distance <= distance);
        if at >= MAX_CANDIDATES {
            return;
        }
        let candidate = Candidate {
            id,
            addr,
            distance,
            state: State::Waiting,
        };
        self.candidates.insert(at, candidate);
        self.candidates.truncate(MAX_CANDIDATES);
    }

    /// Adds the nodes of a routing table or a reply.
    pub fn add_nodes(&mut self, nodes: &[CompactNode]) {
        for node in nodes {
            self.add(Some(node.id), node.addr);
        }
    }

    /// The next nodes to ask, marked in flight.
    pub fn next_to_query(&mut self) -> Vec<SocketAddrV4> {
        let mut in_flight = self.in_flight();
        let mut picked = Vec::new();
        for candidate in self.window_mut() {
            if in_flight >= ALPHA {
                break;
            }
            if candidate.state == State::Waiting {
                candidate.state = State::InFlight;
                in_flight += 1;
                picked.push(candidate.addr);
            }
        }
        picked
    }

    /// Records `addr`'s answer; returns the peers in it not handed out before.
    pub fn on_response(&mut self, addr: SocketAddrV4, response: &Response) -> Vec<SocketAddrV4> {
        if let Some(at) = self.candidates.iter().position(|c| c.addr == addr) {
            let mut candidate = self.candidates.remove(at);
            candidate.state = State::Responded(response.token.clone());
            if candidate.id != Some(response.sender) {
                candidate.id = Some(response.sender);
                candidate.distance = response.sender.distance(&self.target);
            }
            let at = self
                .candidates
                .partition_point(|c| c.distance <= candidate.distance);
            self.candidates.insert(at, candidate);
        }
        self.add_nodes(&response.nodes);
        let mut fresh = Vec::new();
        for peer in &response.values {
            if peer.port() == 0 || self.peers_seen.len() >= MAX_PEERS_SEEN {
                continue;
            }
            if self.peers_seen.insert(*peer) {
                fresh.push(*peer);
            }
        }
        fresh
    }

    /// Records that `addr` did not answer (or answered with an error).
    pub fn on_failure(&mut self, addr: SocketAddrV4) {
        if let Some(candidate) = self.candidates.iter_mut().find(|c| c.addr == addr) {
            candidate.state = State::Failed;
        }
    }

    /// True when the [`K`] closest live candidates have all answered (or none is left to ask).
    pub fn is_done(&self) -> bool {
        self.candidates
            .iter()
            .filter(|c| c.state != State::Failed)
            .take(K)
            .all(|c| matches!(c.state, State::Responded(_)))
    }

    /// The closest nodes that answered with a token, for `announce_peer`.
    pub fn announce_targets(&self) -> Vec<(SocketAddrV4, Token)> {
        self.candidates
            .iter()
            .filter_map(|c| match &c.state {
                State::Responded(Some(token)) => Some((c.addr, token.clone())),
                _ => None,
            })
            .take(K)
            .collect()
    }

    /// Nodes that answered.
    pub fn responded(&self) -> usize {
        let answered = |c: &&Candidate| matches!(c.state, State::Responded(_));
        self.candidates.iter().filter(answered).count()
    }

    fn in_flight(&self) -> usize {
        let flying = |c: &&Candidate| c.state == State::InFlight;
        self.candidates.iter().filter(flying).count()
    }

    fn window_mut(&mut self) -> impl Iterator<Item = &mut Candidate> {
        self.candidates
            .iter_mut()
            .filter(|c| c.state != State::Failed)
            .take(K)
    }
}
