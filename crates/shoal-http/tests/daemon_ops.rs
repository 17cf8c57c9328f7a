//! The daemon's torrent operations end to end, over HTTP on 127.0.0.1: adding by magnet link
//! (JSON API and Transmission RPC, metadata from a shoal seeder named in `x.pe`), a restart
//! before the metadata arrived, removing while fetching, verify after a byte was damaged on
//! disk, moving a complete torrent's data, and transfer totals across a restart.

use crate::common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use shoal::service::{AddRequest, AddSource, TorrentView};

const PIECE: u32 = 16384;
const WAIT: Duration = Duration::from_secs(90);

/// A client of one daemon's HTTP APIs (JSON with its CSRF token, RPC with its session id).
struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    rpc_session: std::sync::Mutex<String>,
}

impl Client {
    async fn new(addr: SocketAddr) -> Client {
        let http = reqwest::Client::new();
        let base = format!("http://{addr}");
        let token: Value = json_of(
            http.get(format!("{base}/api/v1/token"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        Client {
            http,
            base,
            token: token["token"].as_str().unwrap().to_owned(),
            rpc_session: std::sync::Mutex::new(String::new()),
        }
    }

    async fn post_json(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/api/v1{path}", self.base))
            .header("x-shoal-token", &self.token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn list(&self) -> Vec<TorrentView> {
        let response = self
            .http
            .get(format!("{}/api/v1/torrents", self.base))
            .send()
            .await
            .unwrap();
        json_of(response).await
    }

    /// One Transmission RPC call; returns the whole answer (`result`, `arguments`).
    async fn rpc(&self, method: &str, arguments: Value) -> Value {
        let body = json!({ "method": method, "arguments": arguments });
        for _ in 0..2 {
            let session = self.rpc_session.lock().unwrap().clone();
            let response = self
                .http
                .post(format!("{}/transmission/rpc", self.base))
                .header("x-transmission-session-id", session)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            if response.status().as_u16() == 409 {
                let id = response.headers()["x-transmission-session-id"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                *self.rpc_session.lock().unwrap() = id;
                continue;
            }
            return json_of(response).await;
        }
        panic!("the RPC kept answering 409");
    }
}

async fn json_of<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> T {
    let bytes = response.bytes().await.unwrap();
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)))
}

fn magnet(fx: &common::Fixture, peer: Option<SocketAddr>) -> String {
    let hash = shoal_proto::metainfo::Metainfo::from_bytes(&fx.metainfo)
        .unwrap()
        .info_hash()
        .to_hex();
    let mut link = format!("magnet:?xt=urn:btih:{hash}&dn={}", fx.name);
    if let Some(peer) = peer {
        link.push_str(&format!("&x.pe={peer}"));
    }
    link
}

/// Polls the daemon's list until `done` holds for the torrent `hash`, nudging `seed` (when
/// given) to connect to the daemon meanwhile.
async fn wait_for(
    daemon: &shoal_http::daemon::Daemon,
    hash: &str,
    seed: Option<&shoal::TorrentHandle>,
    what: &str,
    done: impl Fn(&TorrentView) -> bool,
) -> TorrentView {
    let deadline = tokio::time::Instant::now() + WAIT;
    let peer = daemon.service().session().listen_addr();
    loop {
        let view = daemon
            .service()
            .list()
            .into_iter()
            .find(|v| v.info_hash == hash);
        if let Some(view) = view.as_ref().filter(|v| done(v)) {
            return view.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: timed out, last {view:?}"
        );
        if let Some(seed) = seed {
            seed.add_peers(vec![peer]).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn assert_same_files(fx: &common::Fixture, dir: &Path) {
    for (file, data) in &fx.files {
        let got = std::fs::read(dir.join(&fx.name).join(file)).unwrap();
        assert!(got == *data, "{file} differs from the seed's");
    }
}

fn hash_of(fx: &common::Fixture) -> String {
    shoal_proto::metainfo::Metainfo::from_bytes(&fx.metainfo)
        .unwrap()
        .info_hash()
        .to_hex()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn magnets_added_by_json_and_rpc_complete_with_the_seeds_bytes() {
    let root = tempfile::tempdir().unwrap();
    let fx_json = common::fixture(root.path(), "magnet-json", &[40_000, 100_000], PIECE);
    let fx_rpc = common::fixture(root.path(), "magnet-rpc", &[150_000], PIECE);
    let (seed, seed_json) = common::seed(root.path(), &fx_json).await;
    let seed_rpc = seed
        .add_torrent(shoal::AddTorrent {
            metainfo: fx_rpc.metainfo.clone(),
            download_dir: fx_rpc.data_dir.clone(),
            peers: Vec::new(),
            paused: false,
        })
        .await
        .unwrap();
    seed_rpc.wait_complete().await;
    seed_json.wait_complete().await;
    let seed_addr = seed.listen_addr();

    let daemon = common::daemon(root.path()).await;
    let client = Client::new(daemon.http_addr()).await;

    // JSON API: listed at once, fetching its metadata, named from `dn`.
    let link = magnet(&fx_json, Some(seed_addr));
    let (status, added) = client
        .post_json("/torrents", json!({ "source": { "magnet": link } }))
        .await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["state"], "fetching_metadata");
    assert_eq!(added["name"], "magnet-json");
    let done = wait_for(&daemon, &hash_of(&fx_json), None, "json magnet", |v| {
        v.metadata_progress == 1.0 && v.left_bytes == 0 && v.total_bytes > 0
    })
    .await;
    assert_eq!(done.total_bytes, 140_000);
    let listed = client.list().await;
    assert!(listed
        .iter()
        .any(|v| v.name == "magnet-json" && v.left_bytes == 0));
    assert_same_files(&fx_json, &root.path().join("downloads"));
    // Adding it again is a duplicate, not a second fetch.
    let (status, _) = client
        .post_json("/torrents", json!({ "source": { "magnet": link } }))
        .await;
    assert_eq!(status, 409);

    // Transmission RPC: torrent-add with the link as `filename`.
    let answer = client
        .rpc(
            "torrent-add",
            json!({ "filename": magnet(&fx_rpc, Some(seed_addr)) }),
        )
        .await;
    assert_eq!(answer["result"], "success", "{answer}");
    let id = answer["arguments"]["torrent-added"]["id"].as_u64().unwrap();
    wait_for(&daemon, &hash_of(&fx_rpc), None, "rpc magnet", |v| {
        v.left_bytes == 0 && v.total_bytes > 0
    })
    .await;
    let got = client
        .rpc(
            "torrent-get",
            json!({ "ids": [id], "fields": ["metadataPercentComplete", "percentDone", "name", "files"] }),
        )
        .await;
    let t = &got["arguments"]["torrents"][0];
    assert_eq!(t["metadataPercentComplete"], 1.0);
    assert_eq!(t["percentDone"], 1.0);
    assert_eq!(t["name"], "magnet-rpc");
    assert_eq!(t["files"].as_array().unwrap().len(), 1);
    assert_same_files(&fx_rpc, &root.path().join("downloads"));

    // A restart brings both back as plain torrents, complete.
    daemon.stop().await;
    let daemon = common::daemon(root.path()).await;
    let list = daemon.service().list();
    assert_eq!(list.len(), 2);
    for view in &list {
        assert_eq!(view.metadata_progress, 1.0, "{view:?}");
        assert_eq!(view.left_bytes, 0, "{view:?}");
        assert!(view.total_bytes > 0);
    }
    daemon.stop().await;
    seed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_magnet_restarted_before_its_metadata_fetches_again_and_can_be_removed() {
    let root = tempfile::tempdir().unwrap();
    let fx = common::fixture(root.path(), "magnet-later", &[90_000], PIECE);
    let hash = hash_of(&fx);

    // No peer knows it yet: it stays in fetching_metadata, across a restart.
    let daemon = common::daemon(root.path()).await;
    let add = AddRequest {
        source: AddSource::Magnet(magnet(&fx, None)),
        download_dir: None,
        paused: false,
        unwanted_files: vec![],
    };
    let view = daemon.service().add(add.clone()).await.unwrap();
    assert_eq!(view.state, shoal::api::TorrentState::FetchingMetadata);
    daemon.stop().await;
    let daemon = common::daemon(root.path()).await;
    let list = daemon.service().list();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, view.id);
    assert_eq!(list[0].state, shoal::api::TorrentState::FetchingMetadata);
    assert_eq!(list[0].metadata_progress, 0.0, "{:?}", list[0]);
    assert_eq!(list[0].name, "magnet-later", "named from dn");

    // Removing it while fetching frees it: adding it again is not a duplicate.
    let key = shoal::service::TorrentRef::Id(view.id);
    daemon.service().remove(key, true).await.unwrap();
    assert!(daemon.service().list().is_empty());
    let view = daemon.service().add(add).await.unwrap();

    // A seeder that connects to the daemon hands over the metadata, then the data.
    let (seed, seed_handle) = common::seed(root.path(), &fx).await;
    seed_handle.wait_complete().await;
    wait_for(
        &daemon,
        &hash,
        Some(&seed_handle),
        "refetched magnet",
        |v| v.left_bytes == 0 && v.total_bytes > 0,
    )
    .await;
    assert_same_files(&fx, &root.path().join("downloads"));
    daemon.stop().await;
    let daemon = common::daemon(root.path()).await;
    let list = daemon.service().list();
    assert_eq!(list[0].id, view.id);
    assert_eq!(list[0].left_bytes, 0, "{:?}", list[0]);
    daemon.stop().await;
    seed.shutdown().await;
}

/// A daemon that downloaded `fx` completely from `seed_handle`.
async fn completed(
    root: &Path,
    fx: &common::Fixture,
    seed_handle: &shoal::TorrentHandle,
) -> shoal_http::daemon::Daemon {
    let daemon = common::daemon(root).await;
    let add = fx.add_request(false);
    daemon.service().add(add).await.unwrap();
    wait_for(
        &daemon,
        &hash_of(fx),
        Some(seed_handle),
        "first download",
        |v| v.left_bytes == 0,
    )
    .await;
    daemon
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_a_damaged_piece_and_downloads_only_it_again() {
    let root = tempfile::tempdir().unwrap();
    let fx = common::fixture(root.path(), "verify-me", &[64 * PIECE as usize], PIECE);
    let hash = hash_of(&fx);
    let (seed, seed_handle) = common::seed(root.path(), &fx).await;
    seed_handle.wait_complete().await;
    let daemon = completed(root.path(), &fx, &seed_handle).await;
    let client = Client::new(daemon.http_addr()).await;
    let id = daemon.service().list()[0].id;

    // One byte of piece 10 changes on disk behind the daemon's back.
    let file = root.path().join("downloads/verify-me/file0.bin");
    let offset = 10 * u64::from(PIECE) + 123;
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        f.write_all_at(&[fx.files[0].1[offset as usize] ^ 0xff], offset)
            .unwrap();
    }
    let mut events = daemon.service().subscribe();
    let answer = client.rpc("torrent-verify", json!({ "ids": [id] })).await;
    assert_eq!(answer["result"], "success", "{answer}");
    tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(shoal::service::ServiceEvent::Verified { info_hash }) = events.recv().await {
                if info_hash == hash {
                    return;
                }
            }
        }
    })
    .await
    .expect("the re-check ends");
    let after = daemon.service().list()[0].clone();
    assert_eq!(after.verified_pieces, 63, "{after:?}");
    assert_eq!(after.left_bytes, u64::from(PIECE), "{after:?}");
    assert_eq!(after.state, shoal::api::TorrentState::Downloading);

    let done = wait_for(&daemon, &hash, Some(&seed_handle), "repair", |v| {
        v.left_bytes == 0
    })
    .await;
    assert!(
        done.downloaded_bytes <= 4 * u64::from(PIECE),
        "more than the damaged piece was downloaded again: {done:?}"
    );
    assert_same_files(&fx, &root.path().join("downloads"));
    daemon.stop().await;
    seed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_location_moves_the_files_and_keeps_seeding_without_a_download() {
    let root = tempfile::tempdir().unwrap();
    let fx = common::fixture(root.path(), "move-me", &[30 * PIECE as usize, 5000], PIECE);
    let hash = hash_of(&fx);
    let (seed, seed_handle) = common::seed(root.path(), &fx).await;
    seed_handle.wait_complete().await;
    let daemon = completed(root.path(), &fx, &seed_handle).await;
    seed.shutdown().await;
    let client = Client::new(daemon.http_addr()).await;
    let id = daemon.service().list()[0].id;

    // Outside the download roots: refused, nothing moves.
    let outside = tempfile::tempdir().unwrap();
    let answer = client
        .rpc(
            "torrent-set-location",
            json!({ "ids": [id], "location": outside.path(), "move": true }),
        )
        .await;
    assert_ne!(answer["result"], "success", "{answer}");
    assert_same_files(&fx, &root.path().join("downloads"));

    let target = root.path().join("downloads/archive");
    let answer = client
        .rpc(
            "torrent-set-location",
            json!({ "ids": [id], "location": target, "move": true }),
        )
        .await;
    assert_eq!(answer["result"], "success", "{answer}");
    assert_same_files(&fx, &target);
    assert!(!root.path().join("downloads/move-me").exists());
    let view = daemon.service().list()[0].clone();
    assert_eq!(view.download_dir, target);
    assert_eq!(
        view.left_bytes, 0,
        "complete at once, nothing hashed: {view:?}"
    );
    assert_eq!(view.state, shoal::api::TorrentState::Seeding, "{view:?}");

    // It serves a new leecher from the new place and downloads nothing itself.
    let leech_dir = root.path().join("leech");
    std::fs::create_dir_all(&leech_dir).unwrap();
    let leecher = shoal::Session::start(shoal::SessionConfig {
        listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..shoal::SessionConfig::default()
    })
    .await
    .unwrap();
    let leech = leecher
        .add_torrent(shoal::AddTorrent {
            metainfo: fx.metainfo.clone(),
            download_dir: leech_dir.clone(),
            peers: vec![daemon.service().session().listen_addr()],
            paused: false,
        })
        .await
        .unwrap();
    tokio::time::timeout(WAIT, leech.wait_complete())
        .await
        .expect("the leecher completes from the moved torrent");
    assert_same_files(&fx, &leech_dir);
    let view = wait_for(&daemon, &hash, None, "upload counted", |v| {
        v.uploaded_bytes > 0
    })
    .await;
    assert_eq!(view.downloaded_bytes, 0, "{view:?}");
    leecher.shutdown().await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_stats_keep_their_totals_across_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let fx = common::fixture(root.path(), "stats", &[40 * PIECE as usize], PIECE);
    let (seed, seed_handle) = common::seed(root.path(), &fx).await;
    seed_handle.wait_complete().await;
    let daemon = completed(root.path(), &fx, &seed_handle).await;
    let client = Client::new(daemon.http_addr()).await;
    let first = client.rpc("session-stats", json!({})).await;
    let current = &first["arguments"]["current-stats"];
    assert!(current["downloadedBytes"].as_u64().unwrap() >= 40 * u64::from(PIECE));
    assert_eq!(current["filesAdded"], 1);
    assert_eq!(current["sessionCount"], 1);
    daemon.stop().await;
    seed.shutdown().await;

    let daemon = common::daemon(root.path()).await;
    let client = Client::new(daemon.http_addr()).await;
    let second = client.rpc("session-stats", json!({})).await;
    let cumulative = &second["arguments"]["cumulative-stats"];
    let current = &second["arguments"]["current-stats"];
    assert!(
        cumulative["downloadedBytes"].as_u64().unwrap() >= 40 * u64::from(PIECE),
        "{second}"
    );
    assert_eq!(cumulative["filesAdded"], 1, "{second}");
    assert_eq!(cumulative["sessionCount"], 2, "{second}");
    assert_eq!(current["sessionCount"], 1, "{second}");
    assert_eq!(current["downloadedBytes"], 0, "{second}");
    assert_eq!(current["filesAdded"], 0, "{second}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_to_another_file_system_copies_and_keeps_the_torrent_complete() {
    use std::os::unix::fs::MetadataExt;
    let root = tempfile::tempdir().unwrap();
    let Ok(other_fs) = tempfile::tempdir_in("/dev/shm") else {
        eprintln!("skipping: no /dev/shm");
        return;
    };
    let device = |p: &Path| std::fs::metadata(p).unwrap().dev();
    if device(root.path()) == device(other_fs.path()) {
        eprintln!("skipping: /dev/shm is on the same file system as the temporary folder");
        return;
    }
    let fx = common::fixture(root.path(), "cross-fs", &[20 * PIECE as usize, 777], PIECE);
    let (seed, seed_handle) = common::seed(root.path(), &fx).await;
    seed_handle.wait_complete().await;
    // The daemon may write under its download folder and under the other file system.
    let mut config = common::daemon_config(root.path());
    config.download_roots = vec![root.path().join("downloads"), other_fs.path().to_path_buf()];
    let daemon = shoal_http::daemon::Daemon::start(config.clone())
        .await
        .unwrap();
    let add = fx.add_request(false);
    let view = daemon.service().add(add).await.unwrap();
    wait_for(
        &daemon,
        &hash_of(&fx),
        Some(&seed_handle),
        "download",
        |v| v.left_bytes == 0,
    )
    .await;
    seed.shutdown().await;

    let key = shoal::service::TorrentRef::Id(view.id);
    let target = other_fs.path().join("moved");
    daemon
        .service()
        .move_storage(key, &target, true)
        .await
        .unwrap();
    assert_same_files(&fx, &target);
    assert!(!root.path().join("downloads/cross-fs").exists());
    let moved = daemon.service().list()[0].clone();
    assert_eq!(moved.left_bytes, 0, "{moved:?}");
    assert_eq!(moved.downloaded_bytes, 0, "{moved:?}");
    // A restart finds it complete at the new place.
    daemon.stop().await;
    let daemon = shoal_http::daemon::Daemon::start(config).await.unwrap();
    let back = daemon.service().list()[0].clone();
    assert_eq!(back.download_dir, target);
    assert_eq!(back.left_bytes, 0, "{back:?}");
    daemon.stop().await;
}
