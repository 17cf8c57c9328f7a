//! shoal's tracker client against small hostile trackers written here, all on 127.0.0.1:
//! absurd intervals (clamped), peer lists of the wrong length, a 100 MB body, a redirect loop,
//! a `failure reason`, and UDP replies with the wrong transaction id or none at all.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal::tracker::{
    Announce, AnnounceEvent, AnnounceReply, TrackerClient, TrackerConfig, TrackerError, TrackerUrl,
};
use shoal_engine::announce::{AnnounceConfig, AnnounceSchedule, TrackerState, TransferTotals};
use shoal_proto::tracker::http as http_codec;
use shoal_proto::tracker::udp::{Request, Response};
use shoal_proto::{InfoHash, PeerId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

fn client() -> TrackerClient {
    TrackerClient::new(TrackerConfig {
        udp_base_timeout: Duration::from_millis(100),
        udp_max_tries: 3,
        http_timeout: Duration::from_secs(10),
        udp_bind_v4: "127.0.0.1:0".parse().unwrap(),
        ..TrackerConfig::default()
    })
    .unwrap()
}

fn announce() -> Announce {
    Announce {
        info_hash: InfoHash([3; 20]),
        peer_id: PeerId::shoal([4; 12]),
        port: 6881,
        uploaded: 0,
        downloaded: 0,
        left: 10,
        event: AnnounceEvent::Started,
        numwant: Some(50),
        key: 1,
        tracker_id: None,
    }
}

/// What a fake HTTP tracker does with one request (given its path and query).
enum Answer {
    /// A whole raw response: status line, headers and body.
    Raw(Vec<u8>),
    /// `200 OK` without a length, then zeros until `total` bytes or the client leaves.
    Endless { total: usize },
}

/// A fake HTTP tracker; returns its address, how many requests it served, and how many body
/// bytes it managed to send.
async fn http_tracker(
    answer: impl Fn(&str) -> Answer + Send + Sync + 'static,
) -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let answer = Arc::new(answer);
    let (hits2, sent2) = (hits.clone(), sent.clone());
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let (answer, hits, sent) = (answer.clone(), hits2.clone(), sent2.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                hits.fetch_add(1, Ordering::SeqCst);
                let head = String::from_utf8_lossy(&head).into_owned();
                let target = head.split(' ').nth(1).unwrap_or("").to_owned();
                match answer(&target) {
                    Answer::Raw(bytes) => {
                        let _ = stream.write_all(&bytes).await;
                    }
                    Answer::Endless { total } => {
                        let header = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
                        if stream.write_all(header).await.is_err() {
                            return;
                        }
                        let chunk = vec![0u8; 64 * 1024];
                        while sent.load(Ordering::SeqCst) < total {
                            if stream.write_all(&chunk).await.is_err() {
                                return;
                            }
                            sent.fetch_add(chunk.len(), Ordering::SeqCst);
                        }
                    }
                }
                let _ = stream.shutdown().await;
            });
        }
    });
    (addr, hits, sent)
}

fn ok(body: &[u8]) -> Answer {
    let mut raw = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    Answer::Raw(raw)
}

fn url(addr: SocketAddr, path: &str) -> TrackerUrl {
    TrackerUrl::parse(&format!("http://{addr}{path}")).unwrap()
}

/// Runs one announce through a schedule, as the announcer does, and returns the tracker's
/// status as the user would see it.
async fn through_schedule(
    client: &TrackerClient,
    url: &TrackerUrl,
) -> shoal_engine::announce::TrackerStatus {
    let now = Instant::now();
    let mut schedule =
        AnnounceSchedule::new(now, &[vec![url.to_string()]], AnnounceConfig::default(), 1);
    let request = schedule
        .poll_request(now, TransferTotals::default())
        .unwrap();
    match client.announce(&request.url, &announce()).await {
        Ok(reply) => schedule.handle_reply(now, request.tracker, &reply),
        Err(e) => schedule.handle_failure(now, request.tracker, e.to_string()),
    }
    schedule.trackers().remove(0)
}

#[tokio::test]
async fn negative_and_tiny_intervals_are_clamped() {
    let (addr, _, _) = http_tracker(|_| {
        ok(b"d8:intervali-5e12:min intervali1e5:peers6:\x7f\x00\x00\x01\x1a\xe1e")
    })
    .await;
    let client = client();
    let reply = client
        .announce(&url(addr, "/announce"), &announce())
        .await
        .unwrap();
    assert_eq!(reply.interval, Some(-5));
    assert_eq!(reply.peers, vec!["127.0.0.1:6881".parse().unwrap()]);
    let status = through_schedule(&client, &url(addr, "/announce")).await;
    assert_eq!(status.state, TrackerState::Working);
    assert_eq!(status.interval, Some(Duration::from_secs(60)));
    assert_eq!(status.min_interval, Some(Duration::from_secs(30)));
}

#[tokio::test]
async fn peer_lists_of_the_wrong_length_are_the_trackers_error() {
    let (addr, _, _) =
        http_tracker(|_| ok(b"d8:intervali1800e5:peers7:\x7f\x00\x00\x01\x1a\xe1\x00e")).await;
    let client = client();
    let err = client
        .announce(&url(addr, "/announce"), &announce())
        .await
        .unwrap_err();
    assert!(matches!(err, TrackerError::BadHttpReply(_)), "{err:?}");
    let status = through_schedule(&client, &url(addr, "/announce")).await;
    assert_eq!(status.state, TrackerState::Failing);
    let error = status.last_error.unwrap();
    assert!(error.contains("not a multiple of 6"), "{error}");
}

#[tokio::test]
async fn failure_reason_becomes_the_trackers_last_error() {
    let (addr, _, _) = http_tracker(|_| ok(&http_codec::encode_failure("torrent banned"))).await;
    let client = client();
    let status = through_schedule(&client, &url(addr, "/announce")).await;
    assert_eq!(status.state, TrackerState::Failing);
    assert_eq!(
        status.last_error.as_deref(),
        Some("tracker refused: torrent banned")
    );
    assert_eq!(status.consecutive_failures, 1);
}

#[tokio::test]
async fn a_100_mb_body_is_cut_off_at_the_cap() {
    let (addr, _, sent) = http_tracker(|_| Answer::Endless { total: 100_000_000 }).await;
    let started = Instant::now();
    let err = client()
        .announce(&url(addr, "/announce"), &announce())
        .await
        .unwrap_err();
    assert!(
        matches!(err, TrackerError::BodyTooLarge { limit: 2_097_152 }),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = sent.load(Ordering::SeqCst);
    assert!(
        sent < 20_000_000,
        "the client kept reading: {sent} bytes sent"
    );
}

#[tokio::test]
async fn a_declared_100_mb_body_is_refused_before_reading() {
    let (addr, _, _) = http_tracker(|_| {
        Answer::Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\nd".to_vec())
    })
    .await;
    let err = client()
        .announce(&url(addr, "/announce"), &announce())
        .await
        .unwrap_err();
    assert!(matches!(err, TrackerError::BodyTooLarge { .. }), "{err:?}");
}

#[tokio::test]
async fn a_redirect_loop_stops_at_the_limit() {
    let (addr, hits, _) = http_tracker(|target| {
        let next = if target.starts_with("/a") { "/b" } else { "/a" };
        Answer::Raw(
            format!("HTTP/1.1 302 Found\r\nLocation: {next}\r\nContent-Length: 0\r\n\r\n")
                .into_bytes(),
        )
    })
    .await;
    let err = client()
        .announce(&url(addr, "/a"), &announce())
        .await
        .unwrap_err();
    assert!(
        matches!(err, TrackerError::TooManyRedirects { limit: 5 }),
        "{err:?}"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        6,
        "the first request and 5 redirects"
    );
}

#[tokio::test]
async fn a_redirect_to_another_scheme_is_not_followed() {
    let (addr, _, _) = http_tracker(|_| {
        Answer::Raw(
            b"HTTP/1.1 301 Moved\r\nLocation: file:///etc/passwd\r\nContent-Length: 0\r\n\r\n"
                .to_vec(),
        )
    })
    .await;
    let err = client()
        .announce(&url(addr, "/announce"), &announce())
        .await
        .unwrap_err();
    assert!(
        matches!(err, TrackerError::HttpStatus { status: 301 }),
        "{err:?}"
    );
}

/// How a fake UDP tracker misbehaves.
#[derive(Clone, Copy)]
enum UdpMisbehaviour {
    /// Answers every other packet with the transaction id plus one, the rest correctly.
    WrongTransactionIdFirst,
    /// Never answers.
    Silent,
    /// Answers announces with 7 bytes of peers.
    BadPeerList,
    /// Answers announces with an error.
    Error,
    /// Behaves.
    None,
}

/// A fake UDP tracker; returns its address and how many connects and announces it received.
async fn udp_tracker(how: UdpMisbehaviour) -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let connects = Arc::new(AtomicUsize::new(0));
    let announces = Arc::new(AtomicUsize::new(0));
    let (c2, a2) = (connects.clone(), announces.clone());
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        let mut packets = 0usize;
        loop {
            let (len, from) = socket.recv_from(&mut buf).await.unwrap();
            packets += 1;
            let request = Request::decode(&buf[..len]).unwrap();
            let mut tid = request.transaction_id();
            if matches!(how, UdpMisbehaviour::WrongTransactionIdFirst) && packets % 2 == 1 {
                tid = tid.wrapping_add(1);
            }
            let response = match request {
                Request::Connect { .. } => {
                    c2.fetch_add(1, Ordering::SeqCst);
                    Response::Connect {
                        transaction_id: tid,
                        connection_id: 77,
                    }
                }
                Request::Announce { connection_id, .. } => {
                    a2.fetch_add(1, Ordering::SeqCst);
                    assert_eq!(connection_id, 77);
                    let reply = AnnounceReply {
                        interval: Some(1800),
                        seeders: Some(1),
                        leechers: Some(2),
                        peers: vec!["127.0.0.9:9".parse().unwrap()],
                        ..AnnounceReply::default()
                    };
                    Response::Announce {
                        transaction_id: tid,
                        reply,
                    }
                }
                Request::Scrape { .. } => continue,
            };
            let mut out = Vec::new();
            match (how, &response) {
                (UdpMisbehaviour::Silent, _) => continue,
                (UdpMisbehaviour::BadPeerList, Response::Announce { .. }) => {
                    response.encode(&mut out);
                    out.push(0);
                }
                (UdpMisbehaviour::Error, Response::Announce { .. }) => {
                    Response::Error {
                        transaction_id: tid,
                        message: "go away".into(),
                    }
                    .encode(&mut out);
                }
                _ => response.encode(&mut out),
            }
            socket.send_to(&out, from).await.unwrap();
        }
    });
    (addr, connects, announces)
}

fn udp_url(addr: SocketAddr) -> TrackerUrl {
    TrackerUrl::parse(&format!("udp://{addr}/announce")).unwrap()
}

#[tokio::test]
async fn udp_replies_with_the_wrong_transaction_id_are_ignored_and_retried() {
    let (addr, connects, announces) = udp_tracker(UdpMisbehaviour::WrongTransactionIdFirst).await;
    // Waits long enough that a busy machine cannot turn a prompt reply into a timeout.
    let patient = TrackerClient::new(TrackerConfig {
        udp_base_timeout: Duration::from_millis(400),
        udp_bind_v4: "127.0.0.1:0".parse().unwrap(),
        ..TrackerConfig::default()
    })
    .unwrap();
    let reply = patient.announce(&udp_url(addr), &announce()).await.unwrap();
    assert_eq!(reply.peers, vec!["127.0.0.9:9".parse().unwrap()]);
    assert_eq!((reply.seeders, reply.leechers), (Some(1), Some(2)));
    assert_eq!(
        connects.load(Ordering::SeqCst),
        2,
        "the connect was sent again"
    );
    assert_eq!(
        announces.load(Ordering::SeqCst),
        2,
        "the announce was sent again"
    );
}

#[tokio::test]
async fn a_silent_udp_tracker_times_out_after_the_capped_tries() {
    let (addr, connects, _) = udp_tracker(UdpMisbehaviour::Silent).await;
    let started = Instant::now();
    let err = client()
        .announce(&udp_url(addr), &announce())
        .await
        .unwrap_err();
    // 100 + 200 + 400 ms.
    assert!(
        matches!(err, TrackerError::Timeout { after } if after == Duration::from_millis(700)),
        "{err:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(650));
    assert_eq!(connects.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn udp_connection_ids_are_reused_within_a_minute() {
    let (addr, connects, announces) = udp_tracker(UdpMisbehaviour::None).await;
    let client = client();
    for _ in 0..3 {
        client.announce(&udp_url(addr), &announce()).await.unwrap();
    }
    assert_eq!(connects.load(Ordering::SeqCst), 1);
    assert_eq!(announces.load(Ordering::SeqCst), 3);

    let expiring = TrackerClient::new(TrackerConfig {
        udp_connection_ttl: Duration::ZERO,
        udp_bind_v4: "127.0.0.1:0".parse().unwrap(),
        ..TrackerConfig::default()
    })
    .unwrap();
    for _ in 0..2 {
        expiring
            .announce(&udp_url(addr), &announce())
            .await
            .unwrap();
    }
    assert_eq!(
        connects.load(Ordering::SeqCst),
        3,
        "an expired id means a new connect"
    );
}

#[tokio::test]
async fn udp_peer_lists_of_the_wrong_length_and_errors_are_typed() {
    let (addr, _, _) = udp_tracker(UdpMisbehaviour::BadPeerList).await;
    let err = client()
        .announce(&udp_url(addr), &announce())
        .await
        .unwrap_err();
    assert!(matches!(err, TrackerError::BadUdpReply(_)), "{err:?}");
    assert!(err.to_string().contains("not a multiple of 6"), "{err}");

    let (addr, _, _) = udp_tracker(UdpMisbehaviour::Error).await;
    let err = client()
        .announce(&udp_url(addr), &announce())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TrackerError::Refused { reason } if reason == "go away"),
        "{err:?}"
    );
}

#[tokio::test]
async fn udp_replies_from_another_address_are_ignored() {
    // The "tracker" address is a socket that never answers; a second socket on another port
    // forges replies with the right transaction id.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let forger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target = silent.local_addr().unwrap();
    let client = client();
    let (url, params) = (udp_url(target), announce());
    let announcing = client.announce(&url, &params);
    let forging = async {
        let mut buf = [0u8; 2048];
        let (len, from) = silent.recv_from(&mut buf).await.unwrap();
        let tid = Request::decode(&buf[..len]).unwrap().transaction_id();
        let mut out = Vec::new();
        Response::Connect {
            transaction_id: tid,
            connection_id: 1,
        }
        .encode(&mut out);
        forger.send_to(&out, from).await.unwrap();
    };
    let (result, ()) = tokio::join!(announcing, forging);
    assert!(
        matches!(result, Err(TrackerError::Timeout { .. })),
        "{result:?}"
    );
}
