//! Real Transmission clients against a running daemon: Debian's `transmission-remote` and the
//! `transmission-rpc` Python library each add a torrent, list it, stop and start it, change its
//! wanted files, and remove it with its data.

use crate::common;

use std::process::Command;

use shoal::api::TorrentState;
use shoal::service::TorrentRef;

fn remote(addr: std::net::SocketAddr) -> Command {
    let mut cmd = Command::new("transmission-remote");
    cmd.arg(addr.to_string());
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transmission_remote_drives_the_daemon() {
    if common::skip_without(
        "transmission-remote",
        Command::new("transmission-remote").arg("--version"),
    ) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let fx = common::fixture(root.path(), "remote-pack", &[40_000, 30_000], 16384);
    let daemon = common::daemon(root.path()).await;
    let addr = daemon.http_addr();
    let service = daemon.service().clone();
    let torrent_file = fx.torrent_file.clone();
    let list = tokio::task::spawn_blocking(move || {
        common::run(remote(addr).arg("-a").arg(&torrent_file));
        common::run(remote(addr).arg("-l"))
    })
    .await
    .unwrap();
    assert!(list.contains("remote-pack"), "listed: {list}");
    let views = service.list();
    assert_eq!(views.len(), 1);
    let id = views[0].id;
    assert_ne!(views[0].state, TorrentState::Paused);

    let t = id.to_string();
    let t2 = t.clone();
    tokio::task::spawn_blocking(move || common::run(remote(addr).args(["-t", &t2, "-S"])))
        .await
        .unwrap();
    assert_eq!(
        service.list()[0].state,
        TorrentState::Paused,
        "stopped by transmission-remote"
    );
    let listed = tokio::task::spawn_blocking(move || common::run(remote(addr).arg("-l")))
        .await
        .unwrap();
    assert!(listed.contains("Stopped"), "shown stopped: {listed}");

    let t2 = t.clone();
    tokio::task::spawn_blocking(move || common::run(remote(addr).args(["-t", &t2, "-s"])))
        .await
        .unwrap();
    assert_ne!(
        service.list()[0].state,
        TorrentState::Paused,
        "started again"
    );

    let t2 = t.clone();
    let files = tokio::task::spawn_blocking(move || {
        common::run(remote(addr).args(["-t", &t2, "-G", "1"]));
        common::run(remote(addr).args(["-t", &t2, "-f"]))
    })
    .await
    .unwrap();
    let detail = service.get(TorrentRef::Id(id)).await.unwrap();
    assert!(
        detail.files[0].wanted && !detail.files[1].wanted,
        "file 1 unwanted: {:?}",
        detail.files
    );
    assert!(
        files.contains("No"),
        "transmission-remote shows the unwanted file: {files}"
    );

    let download = root.path().join("downloads").join("remote-pack");
    tokio::task::spawn_blocking(move || {
        common::run(remote(addr).args(["-t", &t, "--remove-and-delete"]))
    })
    .await
    .unwrap();
    assert!(service.list().is_empty());
    assert!(!download.exists(), "data deleted");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transmission_rpc_python_library_drives_the_daemon() {
    let python = std::env::var("SHOAL_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    if common::skip_without(
        "transmission-rpc (Python)",
        Command::new(&python).args(["-c", "import transmission_rpc"]),
    ) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let fx = common::fixture(root.path(), "python-pack", &[20_000, 20_000, 5_000], 16384);
    let daemon = common::daemon(root.path()).await;
    let addr = daemon.http_addr();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/daemon/trpc_flow.py"
    );
    let torrent_file = fx.torrent_file.clone();
    let download_dir = root.path().join("downloads");
    let out = tokio::task::spawn_blocking(move || {
        common::run(
            Command::new(&python)
                .arg(script)
                .arg(addr.port().to_string())
                .arg(&torrent_file)
                .arg(&download_dir),
        )
    })
    .await
    .unwrap();
    assert!(out.contains("flow ok"), "{out}");
    assert!(daemon.service().list().is_empty(), "removed");
    assert!(
        !root.path().join("downloads/python-pack").exists(),
        "data deleted"
    );
    daemon.stop().await;
}
