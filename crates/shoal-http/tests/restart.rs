//! Restart the daemon in the middle of a download: it comes back with the same torrent and
//! settings and goes on without downloading verified pieces again.

use crate::common;

use std::time::Duration;

const PIECE: u32 = 16384;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_download_keeps_verified_pieces() {
    let root = tempfile::tempdir().unwrap();
    let half = 32 * PIECE as usize;
    let fx = common::fixture(root.path(), "restart-pack", &[half, half], PIECE);
    // The first seed has only the first file: the download stops half way.
    let second = fx.data_dir.join("restart-pack/file1.bin");
    std::fs::remove_file(&second).unwrap();
    let (seed1, seed1_handle) = common::seed(root.path(), &fx).await;

    let daemon = common::daemon(root.path()).await;
    let add = fx.add_request(false);
    let view = daemon.service().add(add).await.unwrap();
    let peer_addr = daemon.service().session().listen_addr();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        seed1_handle.add_peers(vec![peer_addr]).await;
        let v = &daemon.service().list()[0];
        if v.verified_pieces >= 32 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "first half not downloaded: {v:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    daemon.stop().await;
    seed1.shutdown().await;

    // Now a seed with everything; the restarted daemon needs only the second half.
    std::fs::write(&second, &fx.files[1].1).unwrap();
    let (seed2, seed2_handle) = common::seed(root.path(), &fx).await;
    let daemon = common::daemon(root.path()).await;
    let list = daemon.service().list();
    assert_eq!(list.len(), 1, "the torrent came back");
    assert_eq!(list[0].id, view.id);
    assert!(
        list[0].verified_pieces >= 32,
        "verified pieces kept: {:?}",
        list[0]
    );
    let peer_addr = daemon.service().session().listen_addr();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        seed2_handle.add_peers(vec![peer_addr]).await;
        let v = daemon.service().list()[0].clone();
        if v.left_bytes == 0 {
            assert!(
                v.downloaded_bytes <= half as u64 + 4 * u64::from(PIECE),
                "downloaded again: {v:?}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not completed: {v:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let got = std::fs::read(root.path().join("downloads/restart-pack/file1.bin")).unwrap();
    assert!(got == fx.files[1].1, "second file intact");
    daemon.stop().await;
    seed2.shutdown().await;
}
