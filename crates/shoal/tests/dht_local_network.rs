//! 50 shoal DHT nodes on 127.0.0.1: one announces a torrent, every other node finds it with
//! `get_peers`. Prints the median lookup time and the datagrams a lookup costs, for the issue
//! note (run with `--nocapture` to see them). Then a node restarts from its saved routing table
//! alone and still finds the peer. Nothing here contacts an address beyond 127.0.0.1.

use crate::dht_support;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use shoal::dht::{load_nodes, save_nodes, DhtConfig, DhtHandle, PublicInfoHash};
use shoal_proto::InfoHash;

const NODES: usize = 50;
const PEER_PORT: u16 = 40_123;

struct Lookup {
    first_find: Duration,
    complete: Duration,
    datagrams: u64,
    requests: u64,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_local_nodes_find_an_announced_peer() {
    let started = Instant::now();
    let nodes = dht_support::local_network(NODES).await;
    let built = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let info_hash = PublicInfoHash::new(InfoHash([0x5a; 20]), false).unwrap();
    let announcer = 17;
    nodes[announcer]
        .announce(info_hash, PEER_PORT)
        .await
        .unwrap();
    let expected = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, PEER_PORT));

    let mut lookups = Vec::new();
    for (index, node) in nodes.iter().enumerate() {
        if index == announcer {
            continue;
        }
        let (sent_before, requests_before) = dht_support::datagrams_sent(&nodes).await;
        let begin = Instant::now();
        let mut lookup = node.get_peers(info_hash);
        let mut first_find = None;
        let deadline = tokio::time::sleep(Duration::from_secs(10));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                peer = lookup.next() => match peer {
                    Some(peer) if peer == expected => { first_find.get_or_insert(begin.elapsed()); }
                    Some(other) => panic!("node {index} found a peer nobody announced: {other}"),
                    None => break,
                },
                () = &mut deadline => panic!("node {index}: lookup still running after 10 s"),
            }
        }
        let complete = begin.elapsed();
        let (sent_after, requests_after) = dht_support::datagrams_sent(&nodes).await;
        let first_find =
            first_find.unwrap_or_else(|| panic!("node {index} did not find the announced peer"));
        lookups.push(Lookup {
            first_find,
            complete,
            datagrams: sent_after - sent_before,
            requests: requests_after - requests_before,
        });
    }
    assert_eq!(lookups.len(), NODES - 1, "every other node found the peer");

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let first = median(lookups.iter().map(|l| ms(l.first_find)).collect());
    let complete = median(lookups.iter().map(|l| ms(l.complete)).collect());
    let datagrams = median(lookups.iter().map(|l| l.datagrams as f64).collect());
    let requests = median(lookups.iter().map(|l| l.requests as f64).collect());
    println!(
        "DHT figures ({NODES} shoal nodes on 127.0.0.1, {} lookups, network built in {:.1} s): \
         median time to first find {first:.1} ms, median lookup to completion {complete:.1} ms, \
         median datagrams per lookup {datagrams} (requests by the querying node {requests}, \
         the rest replies)",
        lookups.len(),
        built.as_secs_f64(),
    );
    assert!(
        requests >= 1.0,
        "message counter saw no requests: counting is broken"
    );
    assert!(datagrams >= requests);

    // Restart one node from its saved routing table only: no bootstrap routers at all.
    let saved = nodes[3].save_routing_table().await.unwrap();
    assert!(
        saved.len() >= 8,
        "a node in a 50-node network knows few nodes: {saved:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dht.nodes");
    save_nodes(&file, &saved).unwrap();
    let restarted = DhtHandle::start(DhtConfig {
        saved_nodes: load_nodes(&file).unwrap(),
        ..DhtConfig::loopback(&[])
    })
    .await
    .unwrap();
    assert!(
        restarted.bootstrapped().await.unwrap(),
        "restart from saved nodes did not bootstrap"
    );
    let mut lookup = restarted.get_peers(info_hash);
    let found = tokio::time::timeout(Duration::from_secs(10), lookup.next())
        .await
        .unwrap();
    assert_eq!(found, Some(expected));
    let stats = restarted.stats().await.unwrap();
    assert!(
        stats.routing_table_nodes > 0 && stats.server_mode,
        "{stats:?}"
    );
    assert!(stats.messages_sent.unwrap() > 0, "{stats:?}");
    for node in nodes {
        node.shutdown();
    }
}

#[tokio::test]
async fn private_torrents_cannot_reach_the_dht() {
    assert!(PublicInfoHash::new(InfoHash([1; 20]), true).is_none());
    let public = PublicInfoHash::new(InfoHash([1; 20]), false).unwrap();
    assert_eq!(public.info_hash(), InfoHash([1; 20]));
}

#[tokio::test]
async fn a_lone_node_fails_announces_with_a_typed_error() {
    let node = DhtHandle::start(DhtConfig {
        request_timeout: Duration::from_millis(200),
        ..DhtConfig::loopback(&[])
    })
    .await
    .unwrap();
    let hash = PublicInfoHash::new(InfoHash([2; 20]), false).unwrap();
    let error = node.announce(hash, 5000).await.unwrap_err();
    assert!(
        matches!(error, shoal::dht::DhtError::Announce { .. }),
        "{error}"
    );
    // A lookup with nobody to ask ends instead of hanging.
    let mut lookup = node.get_peers(hash);
    let end = tokio::time::timeout(Duration::from_secs(5), lookup.next())
        .await
        .unwrap();
    assert_eq!(end, None);
}
