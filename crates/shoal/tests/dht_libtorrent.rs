//! shoal's DHT and libtorrent's (Debian's python3-libtorrent) in one DHT on 127.0.0.1: a
//! libtorrent node announces and shoal finds it, and shoal announces and libtorrent finds it.
//! libtorrent runs with its loopback and "dark internet" restrictions off (see
//! `dht_support/lt_dht.py`); nothing leaves the machine.

use crate::dht_support;

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use shoal::dht::PublicInfoHash;
use shoal_proto::InfoHash;

const PYTHON: &str = "/usr/bin/python3";

struct LtNode {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    port: u16,
}

impl LtNode {
    fn start(bootstrap: SocketAddrV4) -> LtNode {
        let port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dht_support/lt_dht.py");
        let mut child = Command::new(PYTHON)
            .args([script, &port.to_string(), &bootstrap.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run /usr/bin/python3 (python3-libtorrent)");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut node = LtNode {
            child,
            stdin,
            stdout,
            port,
        };
        let ready = node.line();
        assert!(
            ready.starts_with("ready "),
            "libtorrent helper said {ready:?}"
        );
        node
    }

    fn addr(&self) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port)
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "libtorrent helper exited");
        line.trim_end().to_owned()
    }

    fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").unwrap();
    }

    fn routing_table_nodes(&mut self) -> usize {
        self.send("nodes");
        let line = self.line();
        line.strip_prefix("nodes ").unwrap().parse().unwrap()
    }

    fn get_peers(&mut self, info_hash: InfoHash) -> Vec<String> {
        self.send(&format!("get_peers {}", info_hash.to_hex()));
        let mut peers = Vec::new();
        loop {
            let line = self.line();
            if line == "done" {
                return peers;
            }
            peers.extend(line.split_whitespace().skip(1).map(str::to_owned));
        }
    }
}

impl Drop for LtNode {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shoal_and_libtorrent_find_each_other_on_one_dht() {
    // Two libtorrent nodes that know each other, and six shoal nodes that bootstrap through
    // them. B needs no first contact: A contacts it. Port 9 (discard) on loopback answers
    // nothing.
    let placeholder = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9);
    let lt_b = tokio::task::block_in_place(|| LtNode::start(placeholder));
    let mut lt_a = tokio::task::block_in_place(|| LtNode::start(lt_b.addr()));
    let lt_addrs = [lt_a.addr(), lt_b.addr()];
    let shoal_nodes = dht_support::local_network_via(6, &lt_addrs).await;
    wait_for_routing_table(&mut lt_a, 1).await;

    // libtorrent announces, shoal finds it.
    let from_lt = PublicInfoHash::new(InfoHash([0x1c; 20]), false).unwrap();
    tokio::task::block_in_place(|| {
        lt_a.send(&format!("announce {}", from_lt.info_hash().to_hex()));
        assert_eq!(lt_a.line(), format!("announced {}", lt_a.port));
    });
    let expected = SocketAddr::V4(lt_a.addr());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut found = false;
    while !found && Instant::now() < deadline {
        let mut lookup = shoal_nodes[5].get_peers(from_lt);
        while let Ok(Some(peer)) =
            tokio::time::timeout(Duration::from_secs(10), lookup.next()).await
        {
            found |= peer == expected;
        }
        if !found {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    assert!(found, "shoal did not find the peer libtorrent announced");

    // shoal announces, libtorrent finds it.
    let from_shoal = PublicInfoHash::new(InfoHash([0x2d; 20]), false).unwrap();
    shoal_nodes[3].announce(from_shoal, 7202).await.unwrap();
    let peers = tokio::task::block_in_place(|| lt_a.get_peers(from_shoal.info_hash()));
    assert!(
        peers.iter().any(|peer| peer == "127.0.0.1:7202"),
        "libtorrent did not find the peer shoal announced: {peers:?}"
    );
}

/// libtorrent (like most clients) sends 2-byte KRPC transaction ids; `mainline` 8.0.1, which
/// shoal used before its own node, only parsed 4-byte ones and dropped the rest. A libtorrent
/// node that knows only shoal nodes must fill its routing table from them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libtorrent_bootstraps_from_shoal_nodes_alone() {
    let shoal_nodes = dht_support::local_network(4).await;
    let mut lt_node = tokio::task::block_in_place(|| LtNode::start(shoal_nodes[0].local_addr()));
    wait_for_routing_table(&mut lt_node, 2).await;
}

async fn wait_for_routing_table(node: &mut LtNode, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut known = 0;
    while Instant::now() < deadline {
        known = tokio::task::block_in_place(|| node.routing_table_nodes());
        if known >= want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("libtorrent knows only {known} DHT nodes after 20 s");
}
