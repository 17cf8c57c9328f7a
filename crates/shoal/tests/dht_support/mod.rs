//! Shared helpers for the DHT tests: a local network of shoal nodes on 127.0.0.1 and the
//! network-wide count of KRPC datagrams its nodes sent (from each node's [`DhtStats`]).
#![allow(dead_code)]

use std::net::SocketAddrV4;

use shoal::dht::{DhtConfig, DhtHandle};

/// (all datagrams sent, of which queries) summed over `nodes`.
pub async fn datagrams_sent(nodes: &[DhtHandle]) -> (u64, u64) {
    let mut totals = (0, 0);
    for node in nodes {
        let stats = node.stats().await.unwrap();
        totals.0 += stats.messages_sent.unwrap();
        totals.1 += stats.queries_sent.unwrap();
    }
    totals
}

/// Starts `count` server-mode shoal nodes on 127.0.0.1; node `i` bootstraps from node 0 and
/// node `i - 1`. Waits until every node finished its first bootstrap.
pub async fn local_network(count: usize) -> Vec<DhtHandle> {
    local_network_via(count, &[]).await
}

/// Like [`local_network`], with node 0 also bootstrapping from `outside` (other clients' nodes).
pub async fn local_network_via(count: usize, outside: &[SocketAddrV4]) -> Vec<DhtHandle> {
    let mut nodes: Vec<DhtHandle> = Vec::with_capacity(count);
    for i in 0..count {
        let mut bootstrap: Vec<SocketAddrV4> = if i == 0 { outside.to_vec() } else { Vec::new() };
        if i > 0 {
            bootstrap.push(nodes[0].local_addr());
            bootstrap.push(nodes[i - 1].local_addr());
        }
        let node = DhtHandle::start(DhtConfig::loopback(&bootstrap))
            .await
            .unwrap();
        nodes.push(node);
    }
    let waits = nodes.iter().map(|node| node.bootstrapped());
    for ready in futures_join_all(waits).await {
        ready.unwrap();
    }
    nodes
}

async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut out = Vec::new();
    for future in futures {
        out.push(future.await);
    }
    out
}
