//! shoal's tracker client against a real `opentracker` (Debian's, whitelist-only) on 127.0.0.1:
//! two peers announce over HTTP and over UDP and each learns the other's address; scrape counts
//! them; an unlisted infohash is refused with the tracker's own words; the announcer task
//! delivers peers and leaves the swarm with `stopped`, and its scheduled scrape shows a seeder
//! that joined after its announce and the tracker's download count.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal::tracker::{
    run_announcer, Announce, AnnounceEvent, AnnouncerCommand, AnnouncerHandle, TorrentIdentity,
    TrackerClient, TrackerConfig, TrackerError, TrackerUrl,
};
use shoal_engine::announce::{
    AnnounceConfig, AnnounceSchedule, TrackerState, TrackerStatus, TransferTotals,
};
use shoal_proto::{InfoHash, PeerId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// One opentracker process with its own chroot directory and whitelist, killed on drop.
struct Opentracker {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Opentracker {
    /// Starts one on a free port. Tests run in parallel: starts are serialized until the
    /// instance answers (a bound port is not handed out again by `bind(:0)`), each instance's
    /// whitelist holds its own probe hash, and an instance that exits is retried on another port.
    fn start(allowed: &[InfoHash]) -> Self {
        static INSTANCES: AtomicU32 = AtomicU32::new(0);
        static STARTING: Mutex<()> = Mutex::new(());
        let _one_at_a_time = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..10 {
            let n = INSTANCES.fetch_add(1, Ordering::SeqCst);
            let mut probe = [0xfe; 20];
            probe[..4].copy_from_slice(&std::process::id().to_be_bytes());
            probe[4..8].copy_from_slice(&n.to_be_bytes());
            if let Some(tracker) = Self::try_start(allowed, InfoHash(probe)) {
                return tracker;
            }
        }
        panic!("opentracker did not start");
    }

    fn try_start(allowed: &[InfoHash], probe: InfoHash) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        // opentracker chroots into the directory and drops to `nobody`, who must read the list.
        set_mode(dir.path(), 0o755);
        let list: String = allowed
            .iter()
            .chain([&probe])
            .map(|h| format!("{}\n", h.to_hex()))
            .collect();
        std::fs::write(dir.path().join("whitelist"), list).unwrap();
        set_mode(&dir.path().join("whitelist"), 0o644);
        let port = free_tcp_and_udp_port().to_string();
        let child = Command::new("opentracker")
            .args([
                "-i",
                "127.0.0.1",
                "-p",
                &port,
                "-P",
                &port,
                "-w",
                "whitelist",
                "-d",
            ])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("opentracker is installed (Debian package opentracker)");
        let mut tracker = Opentracker {
            child,
            port: port.parse().unwrap(),
            _dir: dir,
        };
        // It listens before it has read its whitelist: wait until an announce for the probe hash
        // (a torrent no test uses) is no longer refused. It must be `started`: opentracker does
        // not check the whitelist for `stopped`.
        for _ in 0..100 {
            if probe_is_authorized(tracker.port, probe) {
                return Some(tracker);
            }
            if tracker.child.try_wait().unwrap().is_some() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    fn http(&self) -> TrackerUrl {
        TrackerUrl::parse(&format!("http://127.0.0.1:{}/announce", self.port)).unwrap()
    }

    fn udp(&self) -> TrackerUrl {
        TrackerUrl::parse(&format!("udp://127.0.0.1:{}/announce", self.port)).unwrap()
    }
}

impl Drop for Opentracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn probe_is_authorized(port: u16, probe: InfoHash) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let request =
        format!(
        "GET /announce?info_hash={}&peer_id=-SH0100-probeprobepr&port=1&uploaded=0&downloaded=0\
         &left=0&event=started&compact=1 HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
        probe.0.iter().map(|b| format!("%{b:02X}")).collect::<String>()
    );
    let mut reply = Vec::new();
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_end(&mut reply).is_ok()
        && reply.starts_with(b"HTTP/1.1 200")
        && !String::from_utf8_lossy(&reply).contains("failure reason")
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A port free for both TCP and UDP on 127.0.0.1 right now.
fn free_tcp_and_udp_port() -> u16 {
    for _ in 0..50 {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both TCP and UDP");
}

fn client() -> TrackerClient {
    TrackerClient::new(TrackerConfig {
        udp_base_timeout: Duration::from_millis(500),
        udp_max_tries: 3,
        http_timeout: Duration::from_secs(5),
        udp_bind_v4: "127.0.0.1:0".parse().unwrap(),
        ..TrackerConfig::default()
    })
    .unwrap()
}

fn announce(hash: InfoHash, peer: u8, port: u16, event: AnnounceEvent) -> Announce {
    Announce {
        info_hash: hash,
        peer_id: PeerId::shoal([peer; 12]),
        port,
        uploaded: 0,
        downloaded: 0,
        left: 1000,
        event,
        numwant: Some(50),
        key: u32::from(peer),
        tracker_id: None,
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

async fn two_peers_see_each_other(url: TrackerUrl) {
    let hash = InfoHash([0x5a; 20]);
    let tracker_hash = [hash];
    let tracker = Opentracker::start(&tracker_hash);
    let url = if url.is_udp() {
        tracker.udp()
    } else {
        tracker.http()
    };
    let client = client();
    let first = client
        .announce(&url, &announce(hash, 1, 40001, AnnounceEvent::Started))
        .await
        .unwrap();
    assert!(first.interval.unwrap() > 0);
    assert!(!first.peers.contains(&addr(40002)));
    let second = client
        .announce(&url, &announce(hash, 2, 40002, AnnounceEvent::Started))
        .await
        .unwrap();
    assert!(second.peers.contains(&addr(40001)), "{:?}", second.peers);
    assert_eq!((second.seeders, second.leechers), (Some(0), Some(2)));
    let again = client
        .announce(&url, &announce(hash, 1, 40001, AnnounceEvent::None))
        .await
        .unwrap();
    assert!(again.peers.contains(&addr(40002)), "{:?}", again.peers);

    let scrape = client.scrape(&url, &[hash]).await.unwrap();
    assert_eq!(scrape.len(), 1);
    assert_eq!((scrape[0].0, scrape[0].1.leechers), (hash, 2));

    // After `stopped`, the other peer no longer hears of it.
    client
        .announce(&url, &announce(hash, 2, 40002, AnnounceEvent::Stopped))
        .await
        .unwrap();
    let after = client
        .announce(&url, &announce(hash, 1, 40001, AnnounceEvent::None))
        .await
        .unwrap();
    assert!(!after.peers.contains(&addr(40002)), "{:?}", after.peers);
}

#[tokio::test]
async fn http_announce_and_scrape_against_opentracker() {
    two_peers_see_each_other(TrackerUrl::parse("http://x/announce").unwrap()).await;
}

#[tokio::test]
async fn udp_announce_and_scrape_against_opentracker() {
    two_peers_see_each_other(TrackerUrl::parse("udp://x:1").unwrap()).await;
}

#[tokio::test]
async fn an_unlisted_infohash_is_refused_in_the_trackers_words() {
    let tracker = Opentracker::start(&[InfoHash([1; 20])]);
    let client = client();
    let other = InfoHash([2; 20]);
    for url in [tracker.http(), tracker.udp()] {
        let err = client
            .announce(&url, &announce(other, 1, 40001, AnnounceEvent::Started))
            .await
            .unwrap_err();
        match (url.is_udp(), err) {
            (false, TrackerError::Refused { reason }) => {
                assert!(reason.contains("not authorized"), "{url}: {reason}")
            }
            // Over UDP opentracker says nothing: it sends the 8-byte header of an announce reply.
            (true, TrackerError::BadUdpReply(e)) => {
                assert!(e.to_string().contains("8 bytes"), "{url}: {e}")
            }
            (_, other) => panic!("{url}: expected a refusal, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn announcer_task_finds_peers_and_leaves_with_stopped() {
    let hash = InfoHash([0x77; 20]);
    let tracker = Opentracker::start(&[hash]);
    let client = Arc::new(client());
    // Another peer is already in the swarm.
    client
        .announce(
            &tracker.http(),
            &announce(hash, 9, 40009, AnnounceEvent::Started),
        )
        .await
        .unwrap();

    // Tier 0 is a UDP port nobody listens on, tier 1 the real tracker over UDP.
    let dead = format!("udp://127.0.0.1:{}/announce", free_tcp_and_udp_port());
    let tiers = vec![vec![dead.clone()], vec![tracker.udp().to_string()]];
    let (peers_tx, mut peers_rx) = mpsc::channel(4);
    let handle = run_leecher_announcer(&client, hash, &tiers, AnnounceConfig::default(), peers_tx);
    let peers = tokio::time::timeout(Duration::from_secs(20), peers_rx.recv())
        .await
        .expect("peers within 20 s")
        .unwrap();
    assert!(peers.contains(&addr(40009)), "{peers:?}");

    let status = handle.status.borrow().clone();
    let dead_status = status.iter().find(|t| t.url == dead).unwrap();
    assert_eq!(dead_status.state, TrackerState::Failing);
    assert!(dead_status
        .last_error
        .as_deref()
        .unwrap()
        .contains("no answer"));
    assert!(dead_status.next_announce.is_some());
    let live = status.iter().find(|t| t.url != dead).unwrap();
    assert_eq!(live.state, TrackerState::Working);
    assert_eq!(live.leechers, Some(2));

    // The other peer sees us, then no longer once we have stopped.
    let seen = client
        .announce(
            &tracker.http(),
            &announce(hash, 9, 40009, AnnounceEvent::None),
        )
        .await
        .unwrap();
    assert!(seen.peers.contains(&addr(40001)), "{:?}", seen.peers);
    handle.commands.send(AnnouncerCommand::Stop).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), handle.task)
        .await
        .expect("the announcer ends after stopping")
        .unwrap();
    let gone = client
        .announce(
            &tracker.http(),
            &announce(hash, 9, 40009, AnnounceEvent::None),
        )
        .await
        .unwrap();
    assert!(!gone.peers.contains(&addr(40001)), "{:?}", gone.peers);
}

/// Waits (20 s at most) until the announcer's only tracker satisfies `done`, and returns it.
async fn wait_tracker(
    status: &mut tokio::sync::watch::Receiver<Vec<TrackerStatus>>,
    done: impl Fn(&TrackerStatus) -> bool,
) -> TrackerStatus {
    let waiting = async {
        loop {
            if let Some(t) = status.borrow_and_update().first().filter(|t| done(t)) {
                return t.clone();
            }
            status.changed().await.expect("the announcer runs");
        }
    };
    tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .unwrap_or_else(|_| panic!("tracker never got there: {:#?}", status.borrow()))
}

/// A leecher's announcer learns from its scheduled scrape what its announce could not tell: a
/// seeder that joined after it, and that the torrent was downloaded once.
async fn a_scrape_shows_a_seeder_that_came_later(udp: bool) {
    let hash = InfoHash([if udp { 0x3d } else { 0x3c }; 20]);
    let tracker = Opentracker::start(&[hash]);
    let url = if udp { tracker.udp() } else { tracker.http() };
    let client = Arc::new(client());
    let config = AnnounceConfig {
        scrape_delay: Duration::from_secs(3),
        ..AnnounceConfig::default()
    };
    let (peers_tx, _peers_rx) = mpsc::channel(4);
    let handle = run_leecher_announcer(&client, hash, &[vec![url.to_string()]], config, peers_tx);
    let mut status = handle.status.clone();

    // Our announce: alone in the swarm, nothing scraped yet, a scrape scheduled.
    let announced = wait_tracker(&mut status, |t| t.state == TrackerState::Working).await;
    assert_eq!(
        (announced.seeders, announced.leechers, announced.downloaded),
        (Some(0), Some(1), None),
        "{url}"
    );
    assert_eq!(announced.last_scrape, None);
    let scrape_at = announced.next_scrape.expect("a scrape is scheduled");
    assert!(scrape_at > announced.last_success.unwrap(), "{announced:?}");

    // A seeder joins after us: it downloaded the torrent, so the tracker counts one download.
    client
        .announce(&url, &announce(hash, 2, 40002, AnnounceEvent::Started))
        .await
        .unwrap();
    let completed = Announce {
        left: 0,
        downloaded: 1000,
        ..announce(hash, 2, 40002, AnnounceEvent::Completed)
    };
    client.announce(&url, &completed).await.unwrap();

    let scraped = wait_tracker(&mut status, |t| t.last_scrape.is_some()).await;
    assert_eq!(scraped.last_scrape_error, None, "{url}");
    assert_eq!(
        (scraped.seeders, scraped.leechers, scraped.downloaded),
        (Some(1), Some(1), Some(1)),
        "{url}: {scraped:?}"
    );
    // Our announce is still the only one: the figures came from the scrape.
    assert_eq!(scraped.last_announce, announced.last_announce);
    let next = scraped.next_scrape.expect("the next scrape is scheduled");
    assert!(
        next - scraped.last_scrape.unwrap() >= Duration::from_secs(30 * 60),
        "{scraped:?}"
    );

    handle.commands.send(AnnouncerCommand::Stop).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), handle.task)
        .await
        .expect("the announcer ends after stopping")
        .unwrap();
}

#[tokio::test]
async fn http_scrape_shows_a_seeder_that_came_later() {
    a_scrape_shows_a_seeder_that_came_later(false).await;
}

#[tokio::test]
async fn udp_scrape_shows_a_seeder_that_came_later() {
    a_scrape_shows_a_seeder_that_came_later(true).await;
}

/// Starts the announcer of a leecher (port 40001, nothing moved yet, 1,000 bytes left) on
/// `tiers`.
fn run_leecher_announcer(
    client: &Arc<TrackerClient>,
    hash: InfoHash,
    tiers: &[Vec<String>],
    config: AnnounceConfig,
    peers_tx: mpsc::Sender<Vec<SocketAddr>>,
) -> AnnouncerHandle {
    let now = tokio::time::Instant::now().into_std();
    let schedule = AnnounceSchedule::new(now, tiers, config, 42);
    let identity = TorrentIdentity {
        info_hash: hash,
        peer_id: PeerId::shoal([1; 12]),
        port: 40001,
        stop_timeout: Duration::from_secs(2),
    };
    let totals = || TransferTotals {
        uploaded: 0,
        downloaded: 0,
        left: 1000,
    };
    run_announcer(
        schedule,
        Arc::clone(client),
        identity,
        totals,
        peers_tx,
        CancellationToken::new(),
    )
}
