//! Shared helpers for the DHT tests: a local network of shoal nodes on 127.0.0.1 and a counter
//! of the KRPC datagrams the `mainline` crate sends.
//!
//! Counting: `mainline` emits a TRACE event with `context = "socket_message_sending"` twice for
//! every datagram it sends (once when it builds the message, once after `send_to`), from
//! `mainline::rpc::socket`. [`MessageCounter`] counts those events and halves them. Requests are
//! told apart from responses by the event's `message` field.
#![allow(dead_code)]

use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use shoal::dht::{DhtConfig, DhtHandle};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

/// Datagram counts, network-wide, since the counter was installed.
#[derive(Clone, Default, Debug)]
pub struct MessageCounter {
    events: Arc<AtomicU64>,
    request_events: Arc<AtomicU64>,
}

impl MessageCounter {
    /// Installs the counter as the global subscriber (once per test binary).
    pub fn install() -> MessageCounter {
        let counter = MessageCounter::default();
        let filter = tracing_subscriber::filter::Targets::new()
            .with_target("mainline::rpc::socket", tracing::Level::TRACE);
        tracing_subscriber::registry()
            .with(counter.clone().with_filter(filter))
            .init();
        counter
    }

    /// (all datagrams sent, of which requests).
    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.events.load(Ordering::Relaxed) / 2,
            self.request_events.load(Ordering::Relaxed) / 2,
        )
    }
}

#[derive(Default)]
struct SendEvent {
    is_send: bool,
    is_request: bool,
}

impl Visit for SendEvent {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "context" && value == "socket_message_sending" {
            self.is_send = true;
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.is_request = format!("{value:?}").contains("Request(");
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for MessageCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut visit = SendEvent::default();
        event.record(&mut visit);
        if visit.is_send {
            self.events.fetch_add(1, Ordering::Relaxed);
            if visit.is_request {
                self.request_events.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
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
