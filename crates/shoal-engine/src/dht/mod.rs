//! A Mainline DHT node (BEP 5, IPv4), sans-IO: datagrams and the time come in, datagrams to
//! send, events and the next deadline go out. The `shoal` crate's driver owns the UDP socket.
//!
//! Call order, like every engine type: feed [`DhtNode::handle_datagram`] for each datagram
//! received and [`DhtNode::handle_timeout`] when [`DhtNode::poll_timeout`] passes; start work
//! with [`DhtNode::bootstrap`], [`DhtNode::get_peers`] and [`DhtNode::announce`]; after each call
//! drain [`DhtNode::poll_transmit`] (send each datagram) and [`DhtNode::poll_event`].
//!
//! What it does: answers `ping`, `find_node`, `get_peers` and `announce_peer` (tokens from
//! [`tokens`], announced peers kept in [`peers`]), any transaction id of 1 to 16 bytes echoed
//! exactly; keeps a [`routing`] table of nodes that answered or queried; runs iterative
//! [`lookup`]s with a per-request time-out; rotates token secrets, expires peers and refreshes
//! stale buckets from a maintenance tick. Guarantees: no panic and bounded memory on any input
//! (requests in flight, lookups, stored peers and candidates are capped); a response counts only
//! when its transaction id is one we sent *to that address*; random choices come from a seeded
//! RNG, so a simulated network replays exactly.

pub mod lookup;
pub mod peers;
pub mod routing;
#[cfg(test)]
mod tests;
pub mod tokens;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shoal_proto::dht::{
    error_code, Body, KrpcDecodeError, Message, Method, NodeId, Query, Response, Token,
    TransactionId,
};

use lookup::{Lookup, LookupKind};
use peers::PeerStore;
use routing::{RoutingTable, K};
use tokens::TokenSecrets;

/// Most requests in flight at once; more are refused (the lookup treats them as failed).
pub const MAX_PENDING: usize = 1_024;
/// Most lookups running at once; a new one beyond this ends at once with nothing found.
pub const MAX_LOOKUPS: usize = 128;
/// How often token rotation, peer expiry and bucket refresh are checked.
pub const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(60);
/// Bucket refreshes started per maintenance tick.
const REFRESHES_PER_TICK: usize = 3;

/// How to run a node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Seeds every random choice (node id, token secrets, transaction ids, refresh targets).
    pub seed: u64,
    /// BEP 43: mark our queries read-only, so other nodes do not add us to their tables. The
    /// node still answers queries that reach it.
    pub read_only: bool,
    /// How long to wait for one answer.
    pub request_timeout: Duration,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            seed: 0,
            read_only: false,
            request_timeout: Duration::from_secs(2),
        }
    }
}

/// A lookup started by [`DhtNode::get_peers`], [`DhtNode::announce`] or [`DhtNode::bootstrap`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct LookupId(pub u64);

/// A datagram to send.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Transmit {
    pub to: SocketAddrV4,
    pub payload: Vec<u8>,
}

/// What the node tells its driver.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Event {
    /// A bootstrap finished; the routing table holds `table_nodes` nodes.
    Bootstrapped { table_nodes: usize },
    /// Peers a `get_peers` lookup found, each handed out once per lookup.
    Peers {
        lookup: LookupId,
        peers: Vec<SocketAddrV4>,
    },
    /// A `get_peers` lookup ended.
    LookupDone { lookup: LookupId },
    /// An announce ended: `stored` nodes accepted our `announce_peer`.
    AnnounceDone { lookup: LookupId, stored: usize },
}

/// Counters since the node started.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct NodeStats {
    pub messages_sent: u64,
    pub messages_received: u64,
    /// Of `messages_sent`, the queries (the rest are replies).
    pub queries_sent: u64,
    /// Datagrams that were not KRPC we accept, or answers we never asked for.
    pub dropped: u64,
}

#[derive(Clone, Copy, Debug)]
enum Purpose {
    Lookup(LookupId),
    Announce(LookupId),
    Ping,
}

#[derive(Clone, Debug)]
struct Pending {
    to: SocketAddrV4,
    deadline: Instant,
    purpose: Purpose,
}

#[derive(Debug)]
struct Running {
    lookup: Lookup,
    /// `Some(outstanding)` once the announce phase began.
    announcing: Option<usize>,
    stored: usize,
}

/// The node; see the module doc.
#[derive(Debug)]
pub struct DhtNode {
    id: NodeId,
    config: NodeConfig,
    rng: StdRng,
    table: RoutingTable,
    tokens: TokenSecrets,
    peers: PeerStore,
    seeds: Vec<SocketAddrV4>,
    pending: HashMap<TransactionId, Pending>,
    next_tid: u16,
    lookups: HashMap<LookupId, Running>,
    next_lookup: u64,
    next_maintenance: Instant,
    out: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: NodeStats,
}

impl DhtNode {
    /// A node with a random id drawn from `config.seed`.
    pub fn new(config: NodeConfig, now: Instant) -> Self {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let id = NodeId(rng.gen());
        let tokens = TokenSecrets::new(&mut rng, now);
        DhtNode {
            id,
            table: RoutingTable::new(id, now),
            tokens,
            peers: PeerStore::default(),
            seeds: Vec::new(),
            pending: HashMap::new(),
            next_tid: rng.gen(),
            lookups: HashMap::new(),
            next_lookup: 0,
            next_maintenance: now + MAINTENANCE_INTERVAL,
            out: VecDeque::new(),
            events: VecDeque::new(),
            stats: NodeStats::default(),
            rng,
            config,
        }
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    pub fn stats(&self) -> NodeStats {
        self.stats
    }

    /// Nodes in the routing table.
    pub fn table_len(&self) -> usize {
        self.table.len()
    }

    /// Estimated nodes in the whole DHT (0 while the table is small).
    pub fn size_estimate(&self) -> usize {
        self.table.size_estimate()
    }

    /// Addresses of live nodes, to save for the next start.
    pub fn live_nodes(&self) -> Vec<SocketAddrV4> {
        self.table.live_addrs()
    }

    /// Joins the DHT through `seeds` (saved nodes, routers): a `find_node` for our own id.
    /// The seeds are remembered for later lookups and re-bootstraps while the table is empty.
    /// Ends with [`Event::Bootstrapped`] (at once when there is nobody to ask).
    pub fn bootstrap(&mut self, now: Instant, seeds: &[SocketAddrV4]) -> LookupId {
        for seed in seeds {
            if !self.seeds.contains(seed) && self.seeds.len() < 64 {
                self.seeds.push(*seed);
            }
        }
        self.start(now, self.id.0, LookupKind::FindNode { bootstrap: true })
    }

    /// Starts a `get_peers` lookup: [`Event::Peers`] as peers come in, then [`Event::LookupDone`].
    pub fn get_peers(&mut self, now: Instant, info_hash: [u8; 20]) -> LookupId {
        self.start(now, info_hash, LookupKind::GetPeers)
    }

    /// Announces that we serve `info_hash` on TCP `port` (`None`: our UDP port) to the closest
    /// nodes; ends with [`Event::AnnounceDone`].
    pub fn announce(&mut self, now: Instant, info_hash: [u8; 20], port: Option<u16>) -> LookupId {
        self.start(now, info_hash, LookupKind::Announce { port })
    }

    /// Stops a lookup; no more events come for it.
    pub fn cancel(&mut self, lookup: LookupId) {
        self.lookups.remove(&lookup);
    }

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    /// Next event for the driver.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`DhtNode::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let earliest = self.pending.values().map(|p| p.deadline).min();
        Some(earliest.map_or(self.next_maintenance, |d| d.min(self.next_maintenance)))
    }

    /// Expires requests and runs maintenance that is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut expired: Vec<(Instant, TransactionId)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(tid, p)| (p.deadline, *tid))
            .collect();
        // In sending order, so that a replay does not depend on the map's order.
        expired.sort_by_key(|(deadline, tid)| (*deadline, tid.as_bytes().to_vec()));
        for (_, tid) in expired {
            if let Some(pending) = self.pending.remove(&tid) {
                self.table.failed(pending.to);
                self.request_failed(now, pending);
            }
        }
        if now >= self.next_maintenance {
            self.maintain(now);
        }
    }

    /// Handles one datagram from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddrV4, datagram: &[u8]) {
        self.stats.messages_received += 1;
        match Message::decode(datagram) {
            Ok(Message {
                transaction_id,
                body,
            }) => match body {
                Body::Query(query) => self.handle_query(now, from, transaction_id, query),
                Body::Response(response) => {
                    self.handle_response(now, from, transaction_id, response)
                }
                Body::Error(_) => self.handle_error(now, from, transaction_id),
            },
            Err(KrpcDecodeError::BadQuery {
                transaction_id,
                code,
                reason,
                ..
            }) => {
                self.stats.dropped += 1;
                let reply = Message::error(transaction_id, code, &reason.to_string());
                self.send(from, &reply);
            }
            Err(_) => self.stats.dropped += 1,
        }
    }

    fn handle_query(&mut self, now: Instant, from: SocketAddrV4, tid: TransactionId, q: Query) {
        if q.sender == self.id {
            self.stats.dropped += 1;
            return;
        }
        if !q.read_only {
            if let Some(stale) = self.table.heard_from(q.sender, from, now, false) {
                self.send_query(now, stale, Method::Ping, Purpose::Ping);
            }
        }
        let reply = match self.answer(now, from, &q.method) {
            Ok(response) => Message::response(tid, response),
            Err(text) => Message::error(tid, error_code::PROTOCOL, text),
        };
        self.send(from, &reply);
    }

    fn answer(
        &mut self,
        now: Instant,
        from: SocketAddrV4,
        method: &Method,
    ) -> Result<Response, &'static str> {
        let mut response = Response {
            sender: self.id,
            ..Response::default()
        };
        match method {
            Method::Ping => {}
            Method::FindNode { target } => response.nodes = self.table.closest(target, K),
            Method::GetPeers { info_hash } => {
                response.nodes = self.table.closest(info_hash, K);
                response.values = self.peers.get(info_hash, now);
                response.token = Some(self.tokens.token_for(*from.ip()));
            }
            Method::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
            } => {
                if !self.tokens.accepts(*from.ip(), token) {
                    return Err("bad token");
                }
                let port = if *implied_port { from.port() } else { *port };
                if port == 0 {
                    return Err("port 0");
                }
                let peer = SocketAddrV4::new(*from.ip(), port);
                if !self.peers.insert(*info_hash, peer, now) {
                    return Err("peer store full");
                }
            }
        }
        Ok(response)
    }

    fn handle_response(
        &mut self,
        now: Instant,
        from: SocketAddrV4,
        tid: TransactionId,
        response: Response,
    ) {
        let Some(pending) = self.take_pending(from, tid) else {
            return;
        };
        if response.sender != self.id {
            if let Some(stale) = self.table.heard_from(response.sender, from, now, true) {
                self.send_query(now, stale, Method::Ping, Purpose::Ping);
            }
        }
        match pending.purpose {
            Purpose::Ping => {}
            Purpose::Lookup(id) => {
                let Some(running) = self.lookups.get_mut(&id) else {
                    return;
                };
                let fresh = running.lookup.on_response(from, &response);
                if !fresh.is_empty() && running.lookup.kind == LookupKind::GetPeers {
                    self.events.push_back(Event::Peers {
                        lookup: id,
                        peers: fresh,
                    });
                }
                self.step(now, id);
            }
            Purpose::Announce(id) => self.announce_answered(id, true),
        }
    }

    fn handle_error(&mut self, now: Instant, from: SocketAddrV4, tid: TransactionId) {
        if let Some(pending) = self.take_pending(from, tid) {
            self.request_failed(now, pending);
        }
    }

    /// The pending request `tid`, if it went to `from`; otherwise the answer is dropped.
    fn take_pending(&mut self, from: SocketAddrV4, tid: TransactionId) -> Option<Pending> {
        match self.pending.get(&tid) {
            Some(pending) if pending.to == from => self.pending.remove(&tid),
            _ => {
                self.stats.dropped += 1;
                None
            }
        }
    }

    fn request_failed(&mut self, now: Instant, pending: Pending) {
        match pending.purpose {
            Purpose::Ping => {}
            Purpose::Lookup(id) => {
                if let Some(running) = self.lookups.get_mut(&id) {
                    running.lookup.on_failure(pending.to);
                    self.step(now, id);
                }
            }
            Purpose::Announce(id) => self.announce_answered(id, false),
        }
    }

    fn start(&mut self, now: Instant, target: [u8; 20], kind: LookupKind) -> LookupId {
        let id = LookupId(self.next_lookup);
        self.next_lookup += 1;
        let mut lookup = Lookup::new(self.id, target, kind);
        lookup.add_nodes(&self.table.closest(&target, K * 2));
        for seed in &self.seeds {
            lookup.add(None, *seed);
        }
        if self.lookups.len() >= MAX_LOOKUPS {
            lookup = Lookup::new(self.id, target, kind);
        }
        let running = Running {
            lookup,
            announcing: None,
            stored: 0,
        };
        self.lookups.insert(id, running);
        self.step(now, id);
        id
    }

    /// Sends what the lookup wants sent; finishes it when it has converged.
    fn step(&mut self, now: Instant, id: LookupId) {
        loop {
            let Some(running) = self.lookups.get_mut(&id) else {
                return;
            };
            if running.announcing.is_some() {
                return;
            }
            let (target, kind) = (running.lookup.target, running.lookup.kind);
            let to_ask = running.lookup.next_to_query();
            if to_ask.is_empty() {
                break;
            }
            for addr in to_ask {
                let method = match kind {
                    LookupKind::FindNode { .. } => Method::FindNode { target },
                    _ => Method::GetPeers { info_hash: target },
                };
                if !self.send_query(now, addr, method, Purpose::Lookup(id)) {
                    if let Some(running) = self.lookups.get_mut(&id) {
                        running.lookup.on_failure(addr);
                    }
                }
            }
        }
        if self.lookups.get(&id).is_some_and(|r| r.lookup.is_done()) {
            self.finish(now, id);
        }
    }

    fn finish(&mut self, now: Instant, id: LookupId) {
        let Some(running) = self.lookups.get_mut(&id) else {
            return;
        };
        match running.lookup.kind {
            LookupKind::FindNode { bootstrap } => {
                self.lookups.remove(&id);
                if bootstrap {
                    let table_nodes = self.table.len();
                    self.events.push_back(Event::Bootstrapped { table_nodes });
                }
            }
            LookupKind::GetPeers => {
                self.lookups.remove(&id);
                self.events.push_back(Event::LookupDone { lookup: id });
            }
            LookupKind::Announce { port } => {
                let targets = running.lookup.announce_targets();
                running.announcing = Some(0);
                let info_hash = running.lookup.target;
                let mut sent = 0;
                for (addr, token) in targets {
                    let method = announce_method(info_hash, port, token);
                    sent += usize::from(self.send_query(now, addr, method, Purpose::Announce(id)));
                }
                if let Some(running) = self.lookups.get_mut(&id) {
                    running.announcing = Some(sent);
                }
                if sent == 0 {
                    self.announce_answered(id, false);
                }
            }
        }
    }

    fn announce_answered(&mut self, id: LookupId, stored: bool) {
        let Some(running) = self.lookups.get_mut(&id) else {
            return;
        };
        running.stored += usize::from(stored);
        let outstanding = running.announcing.unwrap_or(0).saturating_sub(1);
        running.announcing = Some(outstanding);
        if outstanding == 0 {
            let stored = running.stored;
            self.lookups.remove(&id);
            self.events
                .push_back(Event::AnnounceDone { lookup: id, stored });
        }
    }

    /// Sends a query; `false` when too many requests are in flight.
    fn send_query(
        &mut self,
        now: Instant,
        to: SocketAddrV4,
        method: Method,
        purpose: Purpose,
    ) -> bool {
        if self.pending.len() >= MAX_PENDING {
            return false;
        }
        let mut tid = TransactionId::from_u16(self.next_tid);
        while self.pending.contains_key(&tid) {
            self.next_tid = self.next_tid.wrapping_add(1);
            tid = TransactionId::from_u16(self.next_tid);
        }
        self.next_tid = self.next_tid.wrapping_add(1);
        let query = Query {
            sender: self.id,
            read_only: self.config.read_only,
            method,
        };
        self.send(to, &Message::query(tid, query));
        self.stats.queries_sent += 1;
        let deadline = now + self.config.request_timeout;
        self.pending.insert(
            tid,
            Pending {
                to,
                deadline,
                purpose,
            },
        );
        true
    }

    fn send(&mut self, to: SocketAddrV4, message: &Message) {
        self.stats.messages_sent += 1;
        self.out.push_back(Transmit {
            to,
            payload: message.encode(),
        });
    }

    fn maintain(&mut self, now: Instant) {
        self.next_maintenance = now + MAINTENANCE_INTERVAL;
        self.tokens.rotate_if_due(now, &mut self.rng);
        self.peers.expire(now);
        if self.table.is_empty() && !self.seeds.is_empty() {
            let bootstrapping = self
                .lookups
                .values()
                .any(|r| r.lookup.kind == LookupKind::FindNode { bootstrap: true });
            if !bootstrapping {
                self.bootstrap(now, &[]);
            }
            return;
        }
        for index in self
            .table
            .stale_buckets(now)
            .into_iter()
            .take(REFRESHES_PER_TICK)
        {
            self.table.touch_bucket(index, now);
            let target = self.table.random_id_in_bucket(index, &mut self.rng);
            self.start(now, target, LookupKind::FindNode { bootstrap: false });
        }
    }
}

fn announce_method(info_hash: [u8; 20], port: Option<u16>, token: Token) -> Method {
    Method::AnnouncePeer {
        info_hash,
        port: port.unwrap_or(0),
        implied_port: port.is_none(),
        token,
    }
}
