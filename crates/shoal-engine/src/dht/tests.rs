//! Table-driven tests of the node with explicit `now`, and a deterministic in-memory network
//! of nodes (fixed latency, one silent node) that bootstraps, announces and finds peers.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use shoal_proto::dht::{
    error_code, Body, CompactNode, Message, Method, NodeId, Query, Response, Token, TransactionId,
};

use super::lookup::{Lookup, LookupKind, ALPHA};
use super::peers::{PeerStore, MAX_PEERS_PER_HASH, PEER_TTL};
use super::routing::{RoutingTable, K};
use super::tokens::{TokenSecrets, ROTATION};
use super::*;

fn addr(i: u32) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from(0x0a00_0000 + i), 6881)
}

#[allow(clippy::disallowed_methods)] // tests need one real instant to offset from
fn t0() -> Instant {
    Instant::now()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn query_bytes(tid: &[u8], method: Method) -> Vec<u8> {
    let query = Query {
        sender: NodeId([0x42; 20]),
        read_only: false,
        method,
    };
    Message::query(TransactionId::new(tid).unwrap(), query).encode()
}

fn only_reply(node: &mut DhtNode) -> Message {
    let transmit = node.poll_transmit().expect("a reply");
    assert!(node.poll_transmit().is_none());
    Message::decode(&transmit.payload).unwrap()
}

#[test]
fn queries_are_answered_with_the_same_transaction_id() {
    let t0 = t0();
    let mut node = DhtNode::new(NodeConfig::default(), t0);
    for tid in [&b"a"[..], b"ab", b"abcd", b"0123456789abcdef"] {
        node.handle_datagram(t0, addr(1), &query_bytes(tid, Method::Ping));
        let reply = only_reply(&mut node);
        assert_eq!(reply.transaction_id.as_bytes(), tid);
        assert!(matches!(reply.body, Body::Response(r) if r.sender == node.id()));
    }
    // The querier joined the routing table.
    assert_eq!(node.table_len(), 1);
    // Unknown methods get error 204 with the same id; junk gets nothing.
    let unknown = b"d1:ad2:id20:abcdefghij0123456789e1:q5:magic1:t2:zz1:y1:qe";
    node.handle_datagram(t0, addr(1), unknown);
    let reply = only_reply(&mut node);
    assert_eq!(reply.transaction_id.as_bytes(), b"zz");
    assert!(matches!(reply.body, Body::Error(e) if e.code == error_code::METHOD_UNKNOWN));
    node.handle_datagram(t0, addr(1), b"garbage");
    assert!(node.poll_transmit().is_none());
}

#[test]
fn announce_needs_the_token_handed_out_to_that_address() {
    let t0 = t0();
    let mut node = DhtNode::new(NodeConfig::default(), t0);
    let hash = [7u8; 20];
    node.handle_datagram(
        t0,
        addr(1),
        &query_bytes(b"g1", Method::GetPeers { info_hash: hash }),
    );
    let Body::Response(reply) = only_reply(&mut node).body else {
        panic!("no response");
    };
    let token = reply.token.expect("get_peers hands out a token");
    assert!(reply.values.is_empty());

    let announce = |port, implied_port, token: &Token| {
        query_bytes(
            b"a1",
            Method::AnnouncePeer {
                info_hash: hash,
                port,
                implied_port,
                token: token.clone(),
            },
        )
    };
    // Same token from another address: refused.
    node.handle_datagram(t0, addr(2), &announce(5000, false, &token));
    assert!(matches!(only_reply(&mut node).body, Body::Error(e) if e.code == error_code::PROTOCOL));
    // Right address, explicit port; then implied port.
    node.handle_datagram(t0, addr(1), &announce(5000, false, &token));
    assert!(matches!(only_reply(&mut node).body, Body::Response(_)));
    node.handle_datagram(t0, addr(1), &announce(1, true, &token));
    assert!(matches!(only_reply(&mut node).body, Body::Response(_)));

    node.handle_datagram(
        t0,
        addr(3),
        &query_bytes(b"g2", Method::GetPeers { info_hash: hash }),
    );
    let Body::Response(reply) = only_reply(&mut node).body else {
        panic!("no response");
    };
    let mut values = reply.values;
    values.sort();
    let want = vec![SocketAddrV4::new(*addr(1).ip(), 5000), addr(1)];
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(values, want_sorted);
    // Announcements expire after 30 minutes.
    let later = t0 + PEER_TTL + secs(1);
    node.handle_datagram(
        later,
        addr(3),
        &query_bytes(b"g3", Method::GetPeers { info_hash: hash }),
    );
    let Body::Response(reply) = only_reply(&mut node).body else {
        panic!("no response");
    };
    assert!(reply.values.is_empty());
}

#[test]
fn tokens_live_for_two_rotations() {
    let t0 = t0();
    let mut rng = StdRng::seed_from_u64(1);
    let mut secrets = TokenSecrets::new(&mut rng, t0);
    let ip = Ipv4Addr::new(10, 0, 0, 1);
    let token = secrets.token_for(ip);
    assert!(secrets.accepts(ip, &token));
    assert!(!secrets.accepts(Ipv4Addr::new(10, 0, 0, 2), &token));
    secrets.rotate_if_due(t0 + ROTATION - secs(1), &mut rng);
    assert_eq!(secrets.token_for(ip), token, "rotated too early");
    secrets.rotate_if_due(t0 + ROTATION, &mut rng);
    assert_ne!(secrets.token_for(ip), token);
    assert!(secrets.accepts(ip, &token), "previous secret still valid");
    secrets.rotate_if_due(t0 + ROTATION * 2, &mut rng);
    assert!(!secrets.accepts(ip, &token));
}

#[test]
fn peer_store_is_capped_per_infohash() {
    let t0 = t0();
    let mut store = PeerStore::default();
    for i in 0..(MAX_PEERS_PER_HASH as u32 + 10) {
        assert!(store.insert([1; 20], addr(i), t0 + Duration::from_millis(i.into())));
    }
    let stored = store.get(&[1; 20], t0);
    assert_eq!(stored.len(), peers::MAX_VALUES_PER_REPLY);
    assert_eq!(
        stored[0],
        addr(MAX_PEERS_PER_HASH as u32 + 9),
        "newest first"
    );
    store.expire(t0 + PEER_TTL + secs(1));
    assert!(store.is_empty());
}

fn id_in_bucket(own: &NodeId, bucket: usize, salt: u8) -> NodeId {
    let mut distance = [0u8; 20];
    distance[bucket / 8] = 0x80 >> (bucket % 8);
    distance[19] ^= salt;
    NodeId(own.distance(&distance))
}

#[test]
fn full_buckets_keep_live_nodes_and_replace_bad_ones() {
    let t0 = t0();
    let own = NodeId([0; 20]);
    let mut table = RoutingTable::new(own, t0);
    for i in 0..K as u8 {
        assert_eq!(
            table.heard_from(id_in_bucket(&own, 0, i), addr(i.into()), t0, true),
            None
        );
    }
    assert_eq!(table.len(), K);
    // A newcomer while all are good: kept as a replacement, nobody pinged.
    let newcomer = id_in_bucket(&own, 0, 100);
    assert_eq!(table.heard_from(newcomer, addr(100), t0, true), None);
    assert_eq!(table.len(), K);
    // Later, everyone is questionable: the least recently seen gets a ping.
    let later = t0 + routing::QUESTIONABLE_AFTER + secs(1);
    table.heard_from(id_in_bucket(&own, 0, 1), addr(1), later, true);
    let ping = table.heard_from(id_in_bucket(&own, 0, 101), addr(101), later, true);
    assert_eq!(ping, Some(addr(0)));
    // It stays silent twice: the newest replacement takes its place.
    table.failed(addr(0));
    assert!(table.live_addrs().contains(&addr(0)));
    table.failed(addr(0));
    let live = table.live_addrs();
    assert!(
        !live.contains(&addr(0)) && live.contains(&addr(101)),
        "{live:?}"
    );
    // A known id cannot move to another address.
    table.heard_from(id_in_bucket(&own, 0, 1), addr(55), later, true);
    assert!(!table.live_addrs().contains(&addr(55)));
    // Closest is sorted by distance.
    let target = id_in_bucket(&own, 0, 3).0;
    assert_eq!(table.closest(&target, 1)[0].addr, addr(3));
    let random = table.random_id_in_bucket(37, &mut StdRng::seed_from_u64(3));
    let distance = own.distance(&random);
    let zeros: u32 = distance
        .iter()
        .map(|b| b.leading_zeros())
        .take_while(|z| *z == 8)
        .sum();
    let zeros = zeros + distance[(zeros / 8) as usize].leading_zeros();
    assert_eq!(zeros, 37);
}

#[test]
fn lookups_keep_alpha_in_flight_and_stop_at_the_closest_k() {
    let own = NodeId([0; 20]);
    let target = [0xff; 20];
    let mut lookup = Lookup::new(own, target, LookupKind::GetPeers);
    let nodes: Vec<CompactNode> = (0..20u8)
        .map(|i| CompactNode {
            id: NodeId([i; 20]),
            addr: addr(i.into()),
        })
        .collect();
    lookup.add_nodes(&nodes);
    let first = lookup.next_to_query();
    assert_eq!(first.len(), ALPHA);
    // Farthest from 0x00.. is closest to 0xff..: node 19 first.
    assert_eq!(first[0], addr(19));
    assert!(lookup.next_to_query().is_empty(), "alpha exceeded");
    let mut steps = 0;
    let mut queue = first;
    while let Some(next) = queue.pop() {
        steps += 1;
        let i = (u32::from(*next.ip()) - 0x0a00_0000) as u8;
        if i.is_multiple_of(5) {
            lookup.on_failure(next);
        } else {
            let response = Response {
                sender: NodeId([i; 20]),
                values: vec![addr(1000)],
                ..Response::default()
            };
            lookup.on_response(next, &response);
        }
        queue.extend(lookup.next_to_query());
    }
    assert!(lookup.is_done());
    // 8 answered among the closest, plus the failures met on the way; never all 20.
    assert!(steps < 20, "{steps} requests");
    assert_eq!(lookup.responded(), K);
}

#[test]
fn a_seed_named_by_a_reply_is_asked_where_its_id_sorts() {
    // Saved nodes come in without ids and sort last; when a reply names one of them as close
    // to the target, it must be asked among the closest, not left behind K farther nodes.
    let own = NodeId([0; 20]);
    let target = [0xff; 20];
    let mut lookup = Lookup::new(own, target, LookupKind::GetPeers);
    let far: Vec<CompactNode> = (1..=(K as u8))
        .map(|i| CompactNode {
            id: NodeId([i; 20]),
            addr: addr(i.into()),
        })
        .collect();
    lookup.add_nodes(&far);
    lookup.add(None, addr(500));
    let asked = lookup.next_to_query();
    let reply = Response {
        sender: NodeId([1; 20]),
        nodes: vec![CompactNode {
            id: NodeId([0xfe; 20]),
            addr: addr(500),
        }],
        ..Response::default()
    };
    lookup.on_response(asked[0], &reply);
    assert_eq!(lookup.next_to_query().first(), Some(&addr(500)));
}

#[test]
fn unanswered_requests_time_out_and_end_the_lookup() {
    let t0 = t0();
    let config = NodeConfig {
        request_timeout: secs(2),
        ..NodeConfig::default()
    };
    let mut node = DhtNode::new(config, t0);
    let lookup = node.get_peers(t0, [9; 20]);
    assert_eq!(
        node.poll_event(),
        Some(Event::LookupDone { lookup }),
        "nobody to ask"
    );
    node.bootstrap(t0, &[addr(1), addr(2)]);
    assert_eq!(std::iter::from_fn(|| node.poll_transmit()).count(), 2);
    assert_eq!(node.poll_timeout(), Some(t0 + secs(2)));
    node.handle_timeout(t0 + secs(2));
    assert_eq!(
        node.poll_event(),
        Some(Event::Bootstrapped { table_nodes: 0 })
    );
    let announce = node.announce(t0 + secs(3), [9; 20], Some(1));
    node.handle_timeout(t0 + secs(6));
    assert_eq!(
        std::iter::from_fn(|| node.poll_event()).last(),
        Some(Event::AnnounceDone {
            lookup: announce,
            stored: 0
        })
    );
}

#[test]
fn answers_from_the_wrong_address_or_unknown_ids_are_dropped() {
    let t0 = t0();
    let mut node = DhtNode::new(NodeConfig::default(), t0);
    node.bootstrap(t0, &[addr(1)]);
    let sent = Message::decode(&node.poll_transmit().unwrap().payload).unwrap();
    let reply = Message::response(
        sent.transaction_id,
        Response {
            sender: NodeId([5; 20]),
            ..Response::default()
        },
    )
    .encode();
    node.handle_datagram(t0, addr(2), &reply);
    assert_eq!(node.table_len(), 0, "reply from a stranger counted");
    assert_eq!(node.stats().dropped, 1);
    node.handle_datagram(t0, addr(1), &reply);
    assert_eq!(node.table_len(), 1);
    assert_eq!(
        node.poll_event(),
        Some(Event::Bootstrapped { table_nodes: 1 })
    );
    node.handle_datagram(t0, addr(1), &reply);
    assert_eq!(node.stats().dropped, 2, "a repeated answer is dropped");
}

/// An in-memory network: every datagram takes `LATENCY`; `silent` nodes never answer.
struct Network {
    nodes: Vec<DhtNode>,
    now: Instant,
    in_flight: BTreeMap<(Instant, u64), (SocketAddrV4, SocketAddrV4, Vec<u8>)>,
    seq: u64,
    silent: Vec<usize>,
    delivered: u64,
    events: HashMap<usize, Vec<Event>>,
}

const LATENCY: Duration = Duration::from_millis(10);

impl Network {
    fn new(count: usize, seed: u64) -> Network {
        let now = t0();
        let nodes = (0..count)
            .map(|i| {
                let config = NodeConfig {
                    seed: seed * 1000 + i as u64,
                    ..NodeConfig::default()
                };
                DhtNode::new(config, now)
            })
            .collect();
        Network {
            nodes,
            now,
            in_flight: BTreeMap::new(),
            seq: 0,
            silent: Vec::new(),
            delivered: 0,
            events: HashMap::new(),
        }
    }

    fn index(addr: SocketAddrV4) -> usize {
        (u32::from(*addr.ip()) - 0x0a00_0000) as usize
    }

    fn drain(&mut self, i: usize) {
        while let Some(t) = self.nodes[i].poll_transmit() {
            self.seq += 1;
            let key = (self.now + LATENCY, self.seq);
            self.in_flight
                .insert(key, (addr(i as u32), t.to, t.payload));
        }
        while let Some(event) = self.nodes[i].poll_event() {
            self.events.entry(i).or_default().push(event);
        }
    }

    /// Runs until `done` holds or `limit` of virtual time passed; false on the limit.
    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Network) -> bool) -> bool {
        let end = self.now + limit;
        while !done(self) {
            let next_packet = self.in_flight.keys().next().map(|k| k.0);
            let next_timer = self.nodes.iter().filter_map(DhtNode::poll_timeout).min();
            let Some(next) = next_packet.into_iter().chain(next_timer).min() else {
                return false;
            };
            if next > end {
                return false;
            }
            self.now = self.now.max(next);
            if next_packet == Some(next) {
                let (_, (from, to, bytes)) = self.in_flight.pop_first().unwrap();
                let i = Self::index(to);
                if i < self.nodes.len() && !self.silent.contains(&i) {
                    self.delivered += 1;
                    self.nodes[i].handle_datagram(self.now, from, &bytes);
                    self.drain(i);
                }
            } else {
                for i in 0..self.nodes.len() {
                    if self.nodes[i].poll_timeout().is_some_and(|t| t <= self.now) {
                        self.nodes[i].handle_timeout(self.now);
                        self.drain(i);
                    }
                }
            }
        }
        true
    }

    fn take_events(&mut self, i: usize) -> Vec<Event> {
        self.events.remove(&i).unwrap_or_default()
    }
}

fn simulate(seed: u64) -> (u64, Vec<usize>) {
    const N: usize = 40;
    let mut net = Network::new(N, seed);
    net.silent.push(7);
    for i in 1..N {
        let now = net.now;
        net.nodes[i].bootstrap(now, &[addr(0), addr(i as u32 - 1)]);
        net.drain(i);
        let booted = |net: &Network| {
            net.events
                .get(&i)
                .is_some_and(|e| e.iter().any(|e| matches!(e, Event::Bootstrapped { .. })))
        };
        assert!(
            net.run_until(secs(30), booted),
            "node {i} did not bootstrap"
        );
        net.take_events(i);
    }
    let hash = [0x5a; 20];
    let now = net.now;
    let announce = net.nodes[3].announce(now, hash, Some(4000));
    net.drain(3);
    let announced = |net: &Network| {
        net.events
            .get(&3)
            .is_some_and(|e| e.iter().any(|e| matches!(e, Event::AnnounceDone { .. })))
    };
    assert!(net.run_until(secs(60), announced));
    let stored = net.take_events(3).into_iter().find_map(|e| match e {
        Event::AnnounceDone { lookup, stored } if lookup == announce => Some(stored),
        _ => None,
    });
    assert!(stored.unwrap_or(0) >= K / 2, "stored on {stored:?} nodes");

    let expected = SocketAddrV4::new(*addr(3).ip(), 4000);
    let mut table_sizes = Vec::new();
    for i in (0..N).filter(|i| *i != 3 && *i != 7) {
        let now = net.now;
        let lookup = net.nodes[i].get_peers(now, hash);
        net.drain(i);
        let done = |net: &Network| {
            net.events
                .get(&i)
                .is_some_and(|e| e.contains(&Event::LookupDone { lookup }))
        };
        assert!(
            net.run_until(secs(60), done),
            "node {i}: lookup never ended"
        );
        let found: Vec<SocketAddrV4> = net
            .take_events(i)
            .into_iter()
            .flat_map(|e| match e {
                Event::Peers { peers, .. } => peers,
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(found, vec![expected], "node {i}");
        table_sizes.push(net.nodes[i].table_len());
    }
    assert!(table_sizes.iter().all(|n| *n >= K), "{table_sizes:?}");
    // Maintenance runs over an hour of quiet without anyone losing its table.
    let hour_later = net.now + secs(3600);
    net.run_until(secs(3600), |net| net.now >= hour_later);
    assert!(net
        .nodes
        .iter()
        .enumerate()
        .all(|(i, n)| i == 7 || n.table_len() > 0));
    (net.delivered, table_sizes)
}

#[test]
fn simulated_network_bootstraps_announces_and_finds_peers_deterministically() {
    let first = simulate(1);
    assert_eq!(first, simulate(1), "same seed, same run");
}
