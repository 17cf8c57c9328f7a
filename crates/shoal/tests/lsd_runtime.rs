//! LSD (BEP 14) runtime: two instances on one machine discover each other.
//!
//! - Over unicast on 127.0.0.1 (`announce_to` pointed at the other instance): discovery,
//!   filtering to our own torrents, periodic re-announce, rate limiting, bad datagrams and our
//!   own cookie.
//! - Over real multicast (239.192.152.143:6771, TTL 1, IP_MULTICAST_LOOP) inside a network
//!   namespace this test creates, whose only interface is its own `lo` with MULTICAST set: the
//!   test binary re-runs itself there with `ip netns exec`. Nothing can leave the machine.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use shoal::dht::PublicInfoHash;
use shoal::lsd::{LsdConfig, LsdHandle, LsdPeer};
use shoal_proto::lsd::{LsdAnnounce, IPV4_GROUP, IPV4_HOST};
use shoal_proto::InfoHash;
use tokio::sync::mpsc;

fn public(byte: u8) -> PublicInfoHash {
    PublicInfoHash::new(InfoHash([byte; 20]), false).unwrap()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn unicast_config(port: u16, peer_port: u16, listen_port: u16) -> LsdConfig {
    LsdConfig {
        bind: SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
        interface: Ipv4Addr::LOCALHOST,
        group: None,
        announce_to: SocketAddrV4::new(Ipv4Addr::LOCALHOST, peer_port),
        listen_port,
        ..LsdConfig::default()
    }
}

async fn next_peer(rx: &mut mpsc::Receiver<LsdPeer>) -> LsdPeer {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("no LSD peer within 5 s")
        .expect("LSD channel closed")
}

#[tokio::test]
async fn two_instances_discover_each_other_over_unicast() {
    let (port_a, port_b) = (free_udp_port(), free_udp_port());
    let (a, mut found_by_a) = LsdHandle::start(unicast_config(port_a, port_b, 6001)).unwrap();
    let (b, mut found_by_b) = LsdHandle::start(unicast_config(port_b, port_a, 6002)).unwrap();
    a.set_torrents(vec![public(1), public(2)]);
    b.set_torrents(vec![public(2), public(3)]);

    let at = |port| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
    // Each side hears only the torrent both run (2), with the other's BitTorrent port.
    assert_eq!(
        next_peer(&mut found_by_b).await,
        LsdPeer {
            addr: at(6001),
            info_hash: InfoHash([2; 20])
        }
    );
    assert_eq!(
        next_peer(&mut found_by_a).await,
        LsdPeer {
            addr: at(6002),
            info_hash: InfoHash([2; 20])
        }
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(found_by_a.try_recv().is_err() && found_by_b.try_recv().is_err());
    assert_eq!(a.stats().announces_sent, 1, "two torrents fit one datagram");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn announces_repeat_on_schedule_and_are_rate_limited() {
    let (port_a, port_b) = (free_udp_port(), free_udp_port());
    let fast = LsdConfig {
        announce_interval: Duration::from_millis(200),
        min_reannounce: Duration::from_millis(100),
        ..unicast_config(port_a, port_b, 6001)
    };
    let (a, _found_by_a) = LsdHandle::start(fast).unwrap();
    let (b, mut found_by_b) = LsdHandle::start(unicast_config(port_b, port_a, 6002)).unwrap();
    b.set_torrents(vec![public(7)]);
    a.set_torrents(vec![public(7)]);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let sent = a.stats().announces_sent;
    assert!(
        (4..=7).contains(&sent),
        "expected one announce per 200 ms, got {sent} in 1.1 s"
    );
    let mut heard = 0;
    while found_by_b.try_recv().is_ok() {
        heard += 1;
    }
    assert!(heard >= 4, "b heard {heard} announces");

    // A slow instance whose torrent set churns: still one announce per `min_reannounce`.
    let (port_c, port_d) = (free_udp_port(), free_udp_port());
    let (c, _found_by_c) = LsdHandle::start(unicast_config(port_c, port_d, 6003)).unwrap();
    for _ in 0..5 {
        c.set_torrents(vec![public(8)]);
        tokio::time::sleep(Duration::from_millis(30)).await;
        c.set_torrents(vec![]);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    c.set_torrents(vec![public(8)]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        c.stats().announces_sent,
        1,
        "re-adding a torrent must not re-announce it"
    );
    a.shutdown().await;
    b.shutdown().await;
    c.shutdown().await;
}

#[tokio::test]
async fn bad_datagrams_and_our_own_cookie_are_dropped() {
    let (port_a, port_b) = (free_udp_port(), free_udp_port());
    let (a, mut found_by_a) = LsdHandle::start(unicast_config(port_a, port_b, 6001)).unwrap();
    a.set_torrents(vec![public(9)]);
    let target = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port_a);
    let sender = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let mut own = Vec::new();
    LsdAnnounce::new(IPV4_HOST, 7000, vec![InfoHash([9; 20])], Some(a.cookie()))
        .unwrap()
        .encode(&mut own);
    let mut foreign = Vec::new();
    LsdAnnounce::new(IPV4_HOST, 7001, vec![InfoHash([9; 20])], Some("other"))
        .unwrap()
        .encode(&mut foreign);
    let bad: [&[u8]; 4] = [
        b"",
        b"BT-SEARCH * HTTP/1.1\r\n",
        &[0xff; 1500],
        b"GET / HTTP/1.1\r\n\r\n",
    ];
    for datagram in bad {
        sender.send_to(datagram, target).await.unwrap();
    }
    sender.send_to(&own, target).await.unwrap();
    sender.send_to(&foreign, target).await.unwrap();

    let peer = next_peer(&mut found_by_a).await;
    assert_eq!(
        peer.addr,
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7001))
    );
    let stats = a.stats();
    assert_eq!(
        (stats.bad_datagrams, stats.own_ignored, stats.peers_found),
        (4, 1, 1),
        "{stats:?}"
    );
    a.shutdown().await;
}

const IN_NETNS: &str = "SHOAL_LSD_TEST_IN_NETNS";

#[test]
fn two_instances_discover_each_other_over_multicast_in_a_netns() {
    if std::env::var_os(IN_NETNS).is_some() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(multicast_discovery());
        return;
    }
    let netns = format!("shoal-lsd-{}", std::process::id());
    let ip = |args: &[&str]| {
        std::process::Command::new("ip")
            .args(args)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if !ip(&["netns", "add", &netns]) {
        eprintln!("SKIPPED: cannot create a network namespace (needs root and iproute2)");
        return;
    }
    let ran = ip(&["-n", &netns, "link", "set", "lo", "up"])
        && ip(&["-n", &netns, "link", "set", "lo", "multicast", "on"])
        && std::process::Command::new("ip")
            .args(["netns", "exec", &netns])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "two_instances_discover_each_other_over_multicast_in_a_netns",
            ])
            .env(IN_NETNS, "1")
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    ip(&["netns", "del", &netns]);
    assert!(
        ran,
        "multicast discovery inside the namespace failed (see its output above)"
    );
}

async fn multicast_discovery() {
    let config = |listen_port| LsdConfig {
        interface: Ipv4Addr::LOCALHOST,
        listen_port,
        ..LsdConfig::default()
    };
    assert_eq!(config(1).announce_to, IPV4_GROUP);
    let (a, mut found_by_a) = LsdHandle::start(config(6101)).unwrap();
    let (b, mut found_by_b) = LsdHandle::start(config(6102)).unwrap();
    a.set_torrents(vec![public(4)]);
    b.set_torrents(vec![public(4)]);
    let peer_b = next_peer(&mut found_by_a).await;
    let peer_a = next_peer(&mut found_by_b).await;
    assert_eq!(
        peer_b,
        LsdPeer {
            addr: "127.0.0.1:6102".parse().unwrap(),
            info_hash: InfoHash([4; 20])
        }
    );
    assert_eq!(
        peer_a,
        LsdPeer {
            addr: "127.0.0.1:6101".parse().unwrap(),
            info_hash: InfoHash([4; 20])
        }
    );
    // Multicast loops our own announces back to us: recognised by the cookie and dropped.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(a.stats().own_ignored >= 1 && b.stats().own_ignored >= 1);
    a.shutdown().await;
    b.shutdown().await;
}
