//! The task that runs one [`DhtNode`]: it owns the UDP socket, feeds the node every datagram,
//! command and expired deadline with the current time, sends what the node wants sent, and
//! hands the node's events to whoever asked (a lookup's channel, an announce's reply).
//!
//! One loop, no locks: `select!` over cancellation, the socket, the command channel and the
//! node's next deadline; after each input, drain `poll_transmit` and `poll_event`. A lookup whose
//! reader went away is cancelled in the node. The task ends on cancellation or when every
//! `DhtHandle` is gone; the socket closes with it.

use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::Instant;

use shoal_engine::dht::{DhtNode, Event, LookupId};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::MAX_PEERS_PER_LOOKUP;

/// Largest datagram read; longer ones are cut by the kernel and then refused by the codec.
const RECV_BUFFER: usize = 65_536;

/// What a [`super::DhtHandle`] asks of the task.
#[derive(Debug)]
pub(super) enum Command {
    GetPeers {
        info_hash: [u8; 20],
        peers: mpsc::Sender<SocketAddr>,
    },
    Announce {
        info_hash: [u8; 20],
        port: u16,
        stored: oneshot::Sender<usize>,
    },
    Bootstrapped {
        reply: oneshot::Sender<bool>,
    },
    LiveNodes {
        reply: oneshot::Sender<Vec<SocketAddrV4>>,
    },
    Stats {
        reply: oneshot::Sender<Snapshot>,
    },
}

/// The node's figures at one moment.
#[derive(Clone, Copy, Debug)]
pub(super) struct Snapshot {
    pub table_nodes: usize,
    pub size_estimate: usize,
    pub messages_sent: u64,
    pub messages_received: u64,
    pub queries_sent: u64,
}

struct Lookup {
    peers: mpsc::Sender<SocketAddr>,
    handed_out: usize,
}

/// The driver's state besides the node.
struct Driver {
    node: DhtNode,
    socket: UdpSocket,
    lookups: HashMap<LookupId, Lookup>,
    announces: HashMap<LookupId, oneshot::Sender<usize>>,
    bootstrapped: Option<bool>,
    boot_waiters: Vec<oneshot::Sender<bool>>,
}

/// Runs the node until `cancel` fires or every handle is dropped.
pub(super) async fn run(
    node: DhtNode,
    socket: UdpSocket,
    mut commands: mpsc::Receiver<Command>,
    cancel: CancellationToken,
) {
    let mut driver = Driver {
        node,
        socket,
        lookups: HashMap::new(),
        announces: HashMap::new(),
        bootstrapped: None,
        boot_waiters: Vec::new(),
    };
    let mut buf = vec![0u8; RECV_BUFFER];
    loop {
        driver.flush().await;
        let deadline = driver
            .node
            .poll_timeout()
            .map(tokio::time::Instant::from_std);
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            received = driver.socket.recv_from(&mut buf) => match received {
                Ok((len, SocketAddr::V4(from))) => {
                    driver.node.handle_datagram(Instant::now(), from, &buf[..len]);
                }
                Ok((_, SocketAddr::V6(_))) => {}
                Err(error) => tracing::debug!(%error, "DHT socket receive failed"),
            },
            command = commands.recv() => match command {
                Some(command) => driver.command(command),
                None => break,
            },
            () = sleep => driver.node.handle_timeout(Instant::now()),
        }
    }
    tracing::debug!("DHT node stopped");
}

impl Driver {
    fn command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::GetPeers { info_hash, peers } => {
                let id = self.node.get_peers(now, info_hash);
                let lookup = Lookup {
                    peers,
                    handed_out: 0,
                };
                self.lookups.insert(id, lookup);
            }
            Command::Announce {
                info_hash,
                port,
                stored,
            } => {
                let id = self.node.announce(now, info_hash, Some(port));
                self.announces.insert(id, stored);
            }
            Command::Bootstrapped { reply } => match self.bootstrapped {
                Some(found) => {
                    let _ = reply.send(found);
                }
                None => self.boot_waiters.push(reply),
            },
            Command::LiveNodes { reply } => {
                let _ = reply.send(self.node.live_nodes());
            }
            Command::Stats { reply } => {
                let stats = self.node.stats();
                let _ = reply.send(Snapshot {
                    table_nodes: self.node.table_len(),
                    size_estimate: self.node.size_estimate(),
                    messages_sent: stats.messages_sent,
                    messages_received: stats.messages_received,
                    queries_sent: stats.queries_sent,
                });
            }
        }
    }

    /// Sends every datagram the node has queued and hands out its events.
    async fn flush(&mut self) {
        loop {
            while let Some(transmit) = self.node.poll_transmit() {
                if let Err(error) = self.socket.send_to(&transmit.payload, transmit.to).await {
                    tracing::trace!(%error, to = %transmit.to, "DHT send failed");
                }
            }
            let mut any = false;
            while let Some(event) = self.node.poll_event() {
                any = true;
                self.event(event);
            }
            self.drop_abandoned_lookups();
            // Events can start work (a cancelled lookup does not, but stay general).
            if !any {
                return;
            }
        }
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Bootstrapped { table_nodes } => {
                let found = table_nodes > 0;
                if self.bootstrapped.is_none() {
                    tracing::debug!(nodes = table_nodes, "DHT bootstrap finished");
                    self.bootstrapped = Some(found);
                }
                for waiter in self.boot_waiters.drain(..) {
                    let _ = waiter.send(found);
                }
            }
            Event::Peers { lookup, peers } => self.hand_out(lookup, peers),
            Event::LookupDone { lookup } => {
                self.lookups.remove(&lookup);
            }
            Event::AnnounceDone { lookup, stored } => {
                if let Some(reply) = self.announces.remove(&lookup) {
                    let _ = reply.send(stored);
                }
            }
        }
    }

    fn hand_out(&mut self, id: LookupId, peers: Vec<SocketAddrV4>) {
        let Some(lookup) = self.lookups.get_mut(&id) else {
            return;
        };
        for peer in peers {
            // The channel holds MAX_PEERS_PER_LOOKUP and no lookup hands out more, so it is
            // never full; a closed channel is cleaned up by `drop_abandoned_lookups`.
            if lookup.peers.try_send(SocketAddr::V4(peer)).is_err() {
                break;
            }
            lookup.handed_out += 1;
            if lookup.handed_out >= MAX_PEERS_PER_LOOKUP {
                tracing::debug!(peers = lookup.handed_out, "lookup reached its peer limit");
                self.lookups.remove(&id);
                self.node.cancel(id);
                return;
            }
        }
    }

    fn drop_abandoned_lookups(&mut self) {
        let closed: Vec<LookupId> = self
            .lookups
            .iter()
            .filter(|(_, lookup)| lookup.peers.is_closed())
            .map(|(id, _)| *id)
            .collect();
        for id in closed {
            self.lookups.remove(&id);
            self.node.cancel(id);
        }
        self.announces.retain(|_, reply| !reply.is_closed());
    }
}
