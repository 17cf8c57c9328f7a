//! Every tracker's real status reaches the daemon's front ends: the JSON API's `trackers` and the
//! Transmission RPC's `trackerStats` and `trackers`.
//!
//! Three trackers on 127.0.0.1, run by the test: one that answers (1 peer, 3 seeders,
//! 2 leechers, interval 1800 s, min interval 120 s; its scrape: 5 seeders, 6 leechers,
//! 42 downloads), one that refuses with a `failure reason`, and a URL whose port is closed. A
//! torrent announcing to the first must show it `ok` with those figures and, having no peer
//! connected, its next announce at the min interval (a torrent short of peers announces sooner),
//! then the scrape's figures a few seconds later; a torrent announcing to the other two shows
//! each one's error.

use crate::common;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use shoal::api::{TrackerAnnounceState, TrackerInfo};
use shoal::service::{AddRequest, AddSource, TorrentRef};
use shoal_proto::metainfo::{BuilderFile, TorrentBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const REFUSAL: &str = "this tracker does not know you";

/// An HTTP tracker that gives every announce the same bencoded `body` and every scrape the
/// figures of [`scrape_reply`]; returns its URL.
async fn fake_tracker(body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let announce_body = body.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 2048];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let body = if request.starts_with(b"GET /scrape") {
                    scrape_reply(&request)
                } else {
                    announce_body
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    format!("http://{addr}/announce")
}

/// A scrape reply for the torrent the request names: 5 seeders, 6 leechers, 42 downloads.
fn scrape_reply(request: &[u8]) -> Vec<u8> {
    let request = String::from_utf8_lossy(request);
    let query = request.split_once("info_hash=").map_or("", |(_, q)| q);
    let escaped = query.split(['&', ' ']).next().unwrap_or("").as_bytes();
    let mut hash = Vec::new();
    let mut i = 0;
    while i < escaped.len() {
        if escaped[i] == b'%' {
            let hex = std::str::from_utf8(&escaped[i + 1..i + 3]).unwrap();
            hash.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            hash.push(escaped[i]);
            i += 1;
        }
    }
    let mut body = format!("d5:filesd{}:", hash.len()).into_bytes();
    body.extend_from_slice(&hash);
    body.extend_from_slice(b"d8:completei5e10:downloadedi42e10:incompletei6eeee");
    body
}

/// A loopback URL nobody listens on.
async fn dead_tracker() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/announce")
}

fn working_reply() -> Vec<u8> {
    // One peer: 127.0.0.1 on a closed port (so the torrent stays without peers).
    let mut body =
        b"d8:completei3e10:incompletei2e8:intervali1800e12:min intervali120e5:peers6:".to_vec();
    body.extend_from_slice(&[127, 0, 0, 1, 0, 9]);
    body.push(b'e');
    body
}

fn torrent(name: &str, tiers: Vec<Vec<String>>) -> Vec<u8> {
    let data = common::bytes(5, 40_000);
    let hashes = data
        .chunks(16384)
        .map(|c| {
            use sha1::Digest;
            <[u8; 20]>::from(sha1::Sha1::digest(c))
        })
        .collect();
    TorrentBuilder::multi_file(
        name,
        vec![BuilderFile::new(vec!["a.bin".into()], data.len() as u64)],
        16384,
        hashes,
    )
    .trackers(tiers)
    .build()
    .unwrap()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Polls the service until `done` holds for the torrent's trackers (60 s at most).
async fn wait_trackers(
    service: &shoal::service::Service,
    id: u32,
    done: impl Fn(&[TrackerInfo]) -> bool,
) -> Vec<TrackerInfo> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let trackers = service.get(TorrentRef::Id(id)).await.unwrap().trackers;
        if done(&trackers) {
            return trackers;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "trackers never got there: {trackers:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A Transmission RPC call over HTTP (with the `X-Transmission-Session-Id` handshake).
async fn rpc(addr: SocketAddr, method: &str, arguments: Value) -> Value {
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/transmission/rpc");
    let body = json!({ "method": method, "arguments": arguments }).to_string();
    let first = client.post(&url).body(body.clone()).send().await.unwrap();
    let session = first
        .headers()
        .get("x-transmission-session-id")
        .expect("session id on the 409")
        .clone();
    let reply = client
        .post(&url)
        .header("x-transmission-session-id", session)
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(reply.status().is_success(), "{}", reply.status());
    serde_json::from_str(&reply.text().await.unwrap()).unwrap()
}

async fn api_trackers(addr: SocketAddr, id: u32) -> Vec<Value> {
    let text = reqwest::get(format!("http://{addr}/api/v1/torrents/{id}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let detail: Value = serde_json::from_str(&text).unwrap();
    detail["trackers"].as_array().cloned().unwrap_or_default()
}

async fn add(service: &std::sync::Arc<shoal::service::Service>, metainfo: Vec<u8>) -> u32 {
    let request = AddRequest {
        source: AddSource::Metainfo(metainfo),
        download_dir: None,
        paused: false,
        unwanted_files: Vec::new(),
    };
    service.add(request).await.unwrap().id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracker_status_reaches_the_json_api_and_the_rpc() {
    let root = tempfile::tempdir().unwrap();
    let working = fake_tracker(working_reply()).await;
    let refusing =
        fake_tracker(format!("d14:failure reason{}:{}e", REFUSAL.len(), REFUSAL).into_bytes())
            .await;
    let dead = dead_tracker().await;
    let daemon = common::daemon(root.path()).await;
    let addr = daemon.http_addr();
    let service = daemon.service().clone();
    let good = add(&service, torrent("good", vec![vec![working.clone()]])).await;
    let bad = add(
        &service,
        torrent("bad", vec![vec![dead.clone()], vec![refusing.clone()]]),
    )
    .await;

    let ok = wait_trackers(&service, good, |t| {
        t.len() == 1 && t[0].status == TrackerAnnounceState::Ok
    })
    .await
    .remove(0);
    let now = unix_now();
    assert_eq!(
        (
            ok.last_peers,
            ok.seeders,
            ok.leechers,
            ok.last_error.clone()
        ),
        (1, Some(3), Some(2), None)
    );
    let (last, next) = (ok.last_announce.unwrap(), ok.next_announce.unwrap());
    assert!(last <= now + 1 && next > now, "{ok:?} at {now}");
    // No peer connected and not complete: the next announce comes at the min interval.
    assert!(
        (119..=121).contains(&(next - last)),
        "next announce {} s after the last",
        next - last
    );
    assert_eq!((ok.downloaded, ok.last_scrape), (None, None));
    assert!(ok.next_scrape.is_some(), "{ok:?}");

    // A few seconds after the announce, the scrape's figures replace the announce's.
    let scraped = wait_trackers(&service, good, |t| t[0].last_scrape.is_some())
        .await
        .remove(0);
    assert_eq!(
        (
            scraped.seeders,
            scraped.leechers,
            scraped.downloaded,
            scraped.last_scrape_error.clone()
        ),
        (Some(5), Some(6), Some(42), None)
    );
    let scraped_at = scraped.last_scrape.unwrap();
    assert!(scraped_at >= last, "{scraped:?}");
    assert!(
        (1799..=1801).contains(&(scraped.next_scrape.unwrap() - scraped_at)),
        "{scraped:?}"
    );

    let failing = wait_trackers(&service, bad, |t| {
        t.iter().all(|t| t.status == TrackerAnnounceState::Error)
    })
    .await;
    let error_of = |url: &str| {
        failing
            .iter()
            .find(|t| t.url == url)
            .and_then(|t| t.last_error.clone())
            .unwrap()
    };
    assert!(
        error_of(&refusing).contains(REFUSAL),
        "{}",
        error_of(&refusing)
    );
    assert!(
        error_of(&dead).contains("HTTP request failed"),
        "{}",
        error_of(&dead)
    );

    // The JSON API shows the same.
    let listed = api_trackers(addr, good).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            &listed[0]["url"],
            &listed[0]["status"],
            &listed[0]["seeders"]
        ),
        (&json!(working), &json!("ok"), &json!(5))
    );
    assert_eq!(
        (&listed[0]["downloaded"], &listed[0]["last_scrape"]),
        (&json!(42), &json!(scraped_at))
    );
    assert_eq!(listed[0]["next_announce"], json!(next));
    let listed = api_trackers(addr, bad).await;
    assert!(
        listed
            .iter()
            .all(|t| t["status"] == "error" && t["last_error"].is_string()),
        "{listed:?}"
    );

    // And the Transmission RPC.
    let reply = rpc(
        addr,
        "torrent-get",
        json!({ "ids": [good, bad], "fields": ["id", "trackerStats", "trackers"] }),
    )
    .await;
    assert_eq!(reply["result"], "success", "{reply}");
    let torrents = reply["arguments"]["torrents"].as_array().unwrap();
    let of = |id: u32| torrents.iter().find(|t| t["id"] == id).unwrap();
    let stats = &of(good)["trackerStats"][0];
    assert_eq!(stats["announce"], json!(working));
    assert_eq!(stats["lastAnnounceSucceeded"], json!(true));
    assert_eq!(stats["hasAnnounced"], json!(true));
    assert_eq!(stats["lastAnnounceResult"], json!("Success"));
    assert_eq!(stats["lastAnnouncePeerCount"], json!(1));
    assert_eq!(stats["lastAnnounceTime"], json!(last));
    assert_eq!(stats["nextAnnounceTime"], json!(next));
    assert_eq!(
        (
            &stats["seederCount"],
            &stats["leecherCount"],
            &stats["downloadCount"]
        ),
        (&json!(5), &json!(6), &json!(42))
    );
    assert_eq!(stats["hasScraped"], json!(true));
    assert_eq!(stats["lastScrapeSucceeded"], json!(true));
    assert_eq!(stats["lastScrapeTime"], json!(scraped_at));
    assert_eq!(stats["scrapeState"], json!(1), "waiting");
    assert_eq!(stats["announceState"], json!(1), "waiting");
    assert_eq!(of(good)["trackers"][0]["announce"], json!(working));
    assert_eq!(of(good)["trackers"][0]["tier"], json!(0));

    let bad_stats = of(bad)["trackerStats"].as_array().unwrap();
    assert_eq!(bad_stats.len(), 2);
    for stats in bad_stats {
        assert_eq!(stats["lastAnnounceSucceeded"], json!(false), "{stats}");
        assert_eq!(stats["hasAnnounced"], json!(true), "{stats}");
        assert_eq!(stats["seederCount"], json!(-1), "{stats}");
        assert_eq!(stats["hasScraped"], json!(false), "{stats}");
    }
    let refused = bad_stats
        .iter()
        .find(|s| s["announce"] == json!(refusing))
        .unwrap();
    assert!(
        refused["lastAnnounceResult"]
            .as_str()
            .unwrap()
            .contains(REFUSAL),
        "{refused}"
    );
    assert_eq!(refused["tier"], json!(1));
    daemon.stop().await;
}
