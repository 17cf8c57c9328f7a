//! shoal as a leecher from real clients: libtorrent, Transmission, aria2 and qBittorrent each seed
//! a data set and `shoal download` fetches it; then one download from three different seeders at
//! once. Every download is compared byte for byte with the seeded data.
//!
//! Data sets cover a single file and a nested multi-file folder (with 1-byte and odd-sized
//! files), 16 KiB and 4 MiB pieces, and a last piece that is short and not a multiple of the
//! 16 KiB block. They need the real clients (see `tests/interop/README.md`); a missing one fails
//! the test naming it, unless `SHOAL_SKIP_INTEROP=1`.

use crate::support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::{ensure, Result};
use support::*;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;
const COMPLETE_WITHIN: Duration = Duration::from_secs(90);

/// `seeder` serves `content` on loopback, `shoal download` fetches it, and the copy is compared
/// byte for byte.
fn shoal_downloads_from(seeder: Kind, piece_size: u32, content: Content<'_>) -> Result<()> {
    if !(Kind::Libtorrent.require() && seeder.require()) {
        return Ok(());
    }
    let label = format!("{}-to-shoal", seeder.name());
    let work = WorkDir::new(&label)?;
    let set = Seeded::write(&work, content, piece_size, 21)?;
    let torrent = &set.torrent;
    // Different 127/8 addresses: Transmission drops a peer whose source address is its own
    // (shoal binds its outgoing sockets to its listen address).
    let source = seed(seeder, &torrent.path, &set.seed_dir, loopback(1))?;
    let mut sink = leech(
        Kind::Shoal,
        &torrent.path,
        &work.join("leech"),
        loopback(2),
        &[source.addr()],
    )?;
    let summary = sink.wait_complete(COMPLETE_WITHIN)?;
    assert_same_tree(&set.data, &set.copy_in(&work.join("leech"))?)?;
    assert_eq!(summary.bytes, torrent.bytes, "{summary:?}");
    eprintln!(
        "{label}: {} bytes in {:.2}s",
        summary.bytes, summary.seconds
    );
    Ok(())
}

/// One file whose last piece is 5 bytes.
#[test]
fn shoal_downloads_one_file_with_16k_pieces_from_libtorrent() -> Result<()> {
    shoal_downloads_from(
        Kind::Libtorrent,
        16 * 1024,
        Content::SingleFile(3 * MIB + 5),
    )
}

/// 4 MiB pieces across two files: three pieces, the last one 2 MiB + 3 bytes.
#[test]
fn shoal_downloads_a_folder_with_4m_pieces_from_libtorrent() -> Result<()> {
    shoal_downloads_from(
        Kind::Libtorrent,
        4 * 1024 * 1024,
        Content::Folder(&[6 * MIB, 4 * MIB + 3]),
    )
}

/// Transmission as a seeder is slow to start sending (about 10 s of silence after the
/// handshake): this one takes 20-30 s.
#[test]
fn shoal_downloads_a_folder_from_transmission() -> Result<()> {
    shoal_downloads_from(
        Kind::Transmission,
        16 * 1024,
        Content::Folder(&[2 * MIB + 1, 4097, 1]),
    )
}

/// aria2 opens with an MSE handshake, which shoal does not speak; it retries in plain text.
#[test]
fn shoal_downloads_a_folder_from_aria2() -> Result<()> {
    shoal_downloads_from(
        Kind::Aria2,
        16 * 1024,
        Content::Folder(&[MIB + 5, 30 * KIB, 2 * MIB]),
    )
}

/// One 10 MiB + 3 file in 4 MiB pieces.
#[test]
fn shoal_downloads_one_file_with_4m_pieces_from_qbittorrent() -> Result<()> {
    shoal_downloads_from(
        Kind::Qbittorrent,
        4 * 1024 * 1024,
        Content::SingleFile(10 * MIB + 3),
    )
}

#[test]
fn shoal_downloads_a_folder_with_16k_pieces_from_qbittorrent() -> Result<()> {
    shoal_downloads_from(
        Kind::Qbittorrent,
        16 * 1024,
        Content::Folder(&[MIB, 1, 300 * KIB + 1]),
    )
}

/// Copies the seeded content into `dir` (each seeder gets its own files).
fn copy_content(set: &Seeded, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(&set.data)
        .arg(dir)
        .status()?;
    ensure!(
        status.success(),
        "cp -r {} {}",
        set.data.display(),
        dir.display()
    );
    Ok(())
}

/// Upload cap of each of the three seeders below, so that the fastest (on loopback, libtorrent
/// serves 5 MiB in about 60 ms) cannot finish the download before the others have unchoked.
const SHARED_SEEDER_RATE: u32 = 1024 * 1024;

/// libtorrent, aria2 and qBittorrent seed the same torrent (each capped at
/// [`SHARED_SEEDER_RATE`]); an in-process shoal session dials all three and downloads from them
/// at once. Its per-peer byte counts, sampled while it downloads, show that every seeder sent
/// blocks.
#[test]
fn shoal_downloads_from_three_different_seeders_at_once() -> Result<()> {
    let seeders = [Kind::Libtorrent, Kind::Aria2, Kind::Qbittorrent];
    if !seeders.iter().all(|k| k.require()) {
        return Ok(());
    }
    let work = WorkDir::new("three-to-shoal")?;
    let set = Seeded::write(
        &work,
        Content::Folder(&[3 * MIB, 7, 2 * MIB + 5, 1]),
        16 * 1024,
        22,
    )?;
    let mut sources = Vec::new();
    for (i, kind) in seeders.into_iter().enumerate() {
        let dir = work.join(format!("seed-{}", kind.name()));
        copy_content(&set, &dir)?;
        let host = 3 + i as u8;
        let client = RefClient::new(kind).upload_limit(SHARED_SEEDER_RATE);
        sources.push(client.seed(&set.torrent.path, &dir, loopback(host))?);
    }
    let addrs: Vec<SocketAddr> = sources.iter().map(RunningClient::addr).collect();
    let mut sink = InProcShoal::start(&set.torrent.path, &work.join("leech"), loopback(2), &addrs)?;
    let mut from: BTreeMap<SocketAddr, u64> = BTreeMap::new();
    let status = sink.wait_complete_with(COMPLETE_WITHIN, |shoal| {
        for peer in shoal.inspect().map(|i| i.peers).unwrap_or_default() {
            let most = from.entry(peer.addr).or_default();
            *most = (*most).max(peer.downloaded);
        }
    })?;
    assert_same_tree(&set.data, &set.copy_in(&work.join("leech"))?)?;
    assert_eq!(status.verified_bytes, set.torrent.bytes, "{status:?}");
    for source in &sources {
        let got = from.get(&source.addr()).copied().unwrap_or(0);
        eprintln!(
            "from {} ({}): {got} bytes",
            source.kind().name(),
            source.addr()
        );
    }
    for source in &sources {
        ensure!(
            from.get(&source.addr()).is_some_and(|&bytes| bytes > 0),
            "no block came from the {} seeder at {} (bytes per peer: {from:?})",
            source.kind().name(),
            source.addr()
        );
    }
    Ok(())
}
