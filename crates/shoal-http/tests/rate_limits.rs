//! Rate limits set through the daemon's front ends are real: `session-set speed-limit-down`
//! over the Transmission RPC is reported back by `session-get`, reaches the session's buckets,
//! and a download from an unlimited loopback seed then takes at least as long as the limit
//! allows; per-torrent limits set with `torrent-set` and through the JSON API come back from
//! `torrent-get` and reach the torrent. Durations are only bounded from below (70% of the
//! ideal), never from above.

use crate::common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

const PIECE: u32 = 256 * 1024;
/// 6 MiB in two files.
const FILE_LEN: usize = 3 << 20;
/// Transmission speaks kB/s of 1000 bytes.
const LIMIT_KBPS: u64 = 1000;

/// A Transmission RPC client: does the 409 session-id handshake once, then posts requests.
struct Rpc {
    http: reqwest::Client,
    url: String,
    session_id: String,
}

impl Rpc {
    async fn connect(addr: std::net::SocketAddr) -> Rpc {
        let http = reqwest::Client::new();
        let url = format!("http://{addr}/transmission/rpc");
        let first = http
            .post(&url)
            .body(r#"{"method":"session-get"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(first.status(), reqwest::StatusCode::CONFLICT);
        let session_id = first.headers()["x-transmission-session-id"]
            .to_str()
            .unwrap()
            .to_owned();
        Rpc {
            http,
            url,
            session_id,
        }
    }

    async fn call(&self, method: &str, arguments: Value) -> Value {
        let body = json!({ "method": method, "arguments": arguments });
        let reply = self
            .http
            .post(&self.url)
            .header("x-transmission-session-id", &self.session_id)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let reply = json_of(reply).await;
        assert_eq!(reply["result"], "success", "{method}: {reply}");
        reply["arguments"].clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_speed_limit_down_is_reported_and_enforced() {
    let root = tempfile::tempdir().unwrap();
    let fx = common::fixture(root.path(), "limited", &[FILE_LEN, FILE_LEN], PIECE);
    let daemon = common::daemon(root.path()).await;
    let rpc = Rpc::connect(daemon.http_addr()).await;

    let before = rpc
        .call(
            "session-get",
            json!({ "fields": ["speed-limit-down-enabled"] }),
        )
        .await;
    assert_eq!(before["speed-limit-down-enabled"], false);
    rpc.call(
        "session-set",
        json!({ "speed-limit-down": LIMIT_KBPS, "speed-limit-down-enabled": true }),
    )
    .await;
    let after = rpc.call("session-get", json!({})).await;
    assert_eq!(after["speed-limit-down"], LIMIT_KBPS);
    assert_eq!(after["speed-limit-down-enabled"], true);
    assert_eq!(after["speed-limit-up-enabled"], false);
    let limits = daemon.service().session().rate_limits();
    assert_eq!(limits.download, Some(LIMIT_KBPS * 1000));
    assert_eq!(limits.upload, None);

    let (seed, seed_handle) = common::seed(root.path(), &fx).await;
    let add = fx.add_request(false);
    daemon.service().add(add).await.unwrap();
    let peer_addr = daemon.service().session().listen_addr();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(120);
    loop {
        seed_handle.add_peers(vec![peer_addr]).await;
        let v = daemon.service().list()[0].clone();
        if v.left_bytes == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "not completed: {v:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = started.elapsed();
    let ideal = (2 * FILE_LEN) as f64 / (LIMIT_KBPS * 1000) as f64;
    eprintln!("6 MiB through a 1000 kB/s limit took {took:?} (ideal {ideal:.2} s)");
    assert!(
        took.as_secs_f64() >= 0.7 * ideal,
        "6 MiB arrived in {took:?} through a 1000 kB/s limit"
    );
    for (name, data) in &fx.files {
        let got = std::fs::read(root.path().join("downloads/limited").join(name)).unwrap();
        assert!(got == *data, "{name} intact");
    }
    daemon.stop().await;
    seed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_torrent_limits_round_trip_through_rpc_and_the_json_api() {
    let root = tempfile::tempdir().unwrap();
    let fx = common::fixture(root.path(), "settings", &[PIECE as usize], PIECE);
    let daemon = common::daemon(root.path()).await;
    let add = fx.add_request(true);
    let view = daemon.service().add(add).await.unwrap();
    let handle = daemon
        .service()
        .session()
        .torrents()
        .pop()
        .expect("the torrent runs");
    let rpc = Rpc::connect(daemon.http_addr()).await;

    rpc.call(
        "torrent-set",
        json!({ "ids": [view.id], "uploadLimit": 500, "uploadLimited": true, "downloadLimit": 20 }),
    )
    .await;
    let fields = [
        "id",
        "uploadLimit",
        "uploadLimited",
        "downloadLimit",
        "downloadLimited",
    ];
    let got = rpc
        .call("torrent-get", json!({ "ids": [view.id], "fields": fields }))
        .await;
    let t = &got["torrents"][0];
    assert_eq!(t["uploadLimit"], 500);
    assert_eq!(t["uploadLimited"], true);
    assert_eq!(t["downloadLimit"], 20);
    assert_eq!(t["downloadLimited"], true);
    assert_eq!(handle.rate_limits().upload, Some(500_000));
    assert_eq!(handle.rate_limits().download, Some(20_000));

    rpc.call(
        "torrent-set",
        json!({ "ids": [view.id], "downloadLimited": false }),
    )
    .await;
    assert_eq!(handle.rate_limits().download, None);
    assert_eq!(handle.rate_limits().upload, Some(500_000));
    // The switch alone: on keeps the value in force, or takes Transmission's 100 kB/s.
    rpc.call(
        "torrent-set",
        json!({ "ids": [view.id], "uploadLimited": true, "downloadLimited": true }),
    )
    .await;
    assert_eq!(handle.rate_limits().upload, Some(500_000));
    assert_eq!(handle.rate_limits().download, Some(100_000));
    // An absurd value is clamped, not an overflow.
    rpc.call(
        "torrent-set",
        json!({ "ids": [view.id], "downloadLimit": u64::MAX }),
    )
    .await;
    assert_eq!(handle.rate_limits().download, Some(u64::MAX));

    // The JSON API: bytes per second, null or 0 removes a limit.
    let http = reqwest::Client::new();
    let base = format!("http://{}/api/v1", daemon.http_addr());
    let token = json_of(http.get(format!("{base}/token")).send().await.unwrap()).await;
    let token = token["token"].as_str().unwrap().to_owned();
    let put = |path: String, body: Value| {
        http.put(format!("{base}{path}"))
            .header("x-shoal-token", &token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let reply = put(
        format!("/torrents/{}/settings", view.id),
        json!({ "upload_limit": 0, "download_limit": 65536 }),
    )
    .await
    .unwrap();
    assert!(reply.status().is_success(), "{}", reply.status());
    assert_eq!(handle.rate_limits().upload, None);
    assert_eq!(handle.rate_limits().download, Some(65536));
    let reply = put("/session".into(), json!({ "upload_limit": 123456 }))
        .await
        .unwrap();
    assert!(reply.status().is_success(), "{}", reply.status());
    assert_eq!(
        daemon.service().session().rate_limits().upload,
        Some(123456)
    );
    let session = rpc.call("session-get", json!({})).await;
    assert_eq!(session["speed-limit-up"], 123);
    assert_eq!(session["speed-limit-up-enabled"], true);
    rpc.call("session-set", json!({ "speed-limit-up-enabled": true }))
        .await;
    assert_eq!(
        daemon.service().session().rate_limits().upload,
        Some(123456),
        "switching on an active limit keeps its value"
    );
    rpc.call("session-set", json!({ "speed-limit-up-enabled": false }))
        .await;
    assert_eq!(daemon.service().session().rate_limits().upload, None);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_survive_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let fx = common::fixture(root.path(), "kept", &[PIECE as usize], PIECE);
    let daemon = common::daemon(root.path()).await;
    let add = fx.add_request(true);
    let view = daemon.service().add(add).await.unwrap();
    let rpc = Rpc::connect(daemon.http_addr()).await;
    rpc.call(
        "session-set",
        json!({ "speed-limit-up": 300, "speed-limit-up-enabled": true }),
    )
    .await;
    rpc.call(
        "torrent-set",
        json!({ "ids": [view.id], "downloadLimit": 40, "downloadLimited": true }),
    )
    .await;
    daemon.stop().await;

    let daemon = common::daemon(root.path()).await;
    assert_eq!(
        daemon.service().session().rate_limits().upload,
        Some(300_000)
    );
    let handle = daemon
        .service()
        .session()
        .torrents()
        .pop()
        .expect("the torrent came back");
    assert_eq!(handle.rate_limits().download, Some(40_000));
    daemon.stop().await;
}

async fn json_of(response: reqwest::Response) -> Value {
    let bytes = response.bytes().await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}
