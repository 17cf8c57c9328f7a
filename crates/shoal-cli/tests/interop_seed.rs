//! shoal as a seeder for real clients: `shoal seed` serves a data set, and libtorrent, aria2,
//! qBittorrent and Transmission (inside a network namespace, since it never dials 127/8 tracker
//! peers) download it; each download is compared byte for byte with the seeded data.
//!
//! Data sets cover a single file and a nested multi-file folder, 16 KiB and 4 MiB pieces, and a
//! last piece that is short and not a multiple of the 16 KiB block. They need the real clients
//! (see `tests/interop/README.md`); a missing one fails the test naming it, unless
//! `SHOAL_SKIP_INTEROP=1`.

use crate::support;

use std::net::{IpAddr, SocketAddr};

use anyhow::Result;
use support::*;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;
const COMPLETE_WITHIN: Duration = Duration::from_secs(90);

/// `shoal seed` on loopback, `leecher` downloading from it, then a byte-for-byte comparison.
fn shoal_seeds_to(leecher: Kind, piece_size: u32, content: Content<'_>) -> Result<()> {
    if !(Kind::Libtorrent.require() && leecher.require()) {
        return Ok(());
    }
    let label = format!("shoal-to-{}", leecher.name());
    let work = WorkDir::new(&label)?;
    let set = Seeded::write(&work, content, piece_size, 11)?;
    let torrent = &set.torrent;
    let source = seed(Kind::Shoal, &torrent.path, &set.seed_dir, loopback(1))?;
    let mut sink = leech(
        leecher,
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

#[test]
fn libtorrent_downloads_a_folder_with_16k_pieces_from_shoal() -> Result<()> {
    shoal_seeds_to(
        Kind::Libtorrent,
        16 * 1024,
        Content::Folder(&[2 * MIB + 3, 1, 100 * KIB + 17]),
    )
}

/// 4 MiB pieces: a last piece of 1 MiB + 7 bytes, one file.
#[test]
fn libtorrent_downloads_one_file_with_4m_pieces_from_shoal() -> Result<()> {
    shoal_seeds_to(
        Kind::Libtorrent,
        4 * 1024 * 1024,
        Content::SingleFile(9 * MIB + 7),
    )
}

/// aria2 sends `have none`, then a whole bitfield in mid-connection to announce what it has got
/// so far (see `tests/interop/README.md`): shoal must keep serving it.
#[test]
fn aria2_downloads_a_folder_from_shoal() -> Result<()> {
    shoal_seeds_to(
        Kind::Aria2,
        16 * 1024,
        Content::Folder(&[MIB + 5, 30 * KIB, 2 * MIB]),
    )
}

#[test]
fn aria2_downloads_one_file_with_4m_pieces_from_shoal() -> Result<()> {
    shoal_seeds_to(
        Kind::Aria2,
        4 * 1024 * 1024,
        Content::SingleFile(9 * MIB + 4099),
    )
}

/// Not required by the issue, but cheap: qBittorrent (libtorrent 2.0 inside) as a leecher.
#[test]
fn qbittorrent_downloads_a_folder_from_shoal() -> Result<()> {
    shoal_seeds_to(
        Kind::Qbittorrent,
        16 * 1024,
        Content::Folder(&[MIB + 1, 2 * MIB, 7]),
    )
}

/// Transmission never dials tracker peers at 127/8, so `shoal seed` and Transmission both run in
/// a namespace with 10.99.0.1 and 10.99.0.2 on its `lo`; a peer-list tracker hands Transmission
/// shoal's address.
#[test]
fn transmission_downloads_a_folder_from_shoal_in_a_netns() -> Result<()> {
    if !(require_netns() && Kind::Libtorrent.require() && Kind::Transmission.require()) {
        return Ok(());
    }
    let work = WorkDir::new("shoal-to-transmission")?;
    let set = Seeded::write(&work, Content::Folder(&[2 * MIB, 1, 10_001]), 16 * 1024, 13)?;
    let torrent = &set.torrent;
    let ns = Netns::with_hosts(2)?;
    let at = |host: usize, port: u16| SocketAddr::new(IpAddr::V4(ns.addr(host)), port);
    let source = RefClient::new(Kind::Shoal).in_netns(&ns).seed(
        &torrent.path,
        &set.seed_dir,
        at(0, 6881),
    )?;
    let mut sink = RefClient::new(Kind::Transmission).in_netns(&ns).leech(
        &torrent.path,
        &work.join("leech"),
        at(1, 6882),
        &[source.addr()],
    )?;
    let summary = sink.wait_complete(COMPLETE_WITHIN)?;
    assert_same_tree(&set.data, &set.copy_in(&work.join("leech"))?)?;
    assert_eq!(summary.bytes, torrent.bytes);
    eprintln!(
        "shoal-to-transmission: {} bytes in {:.2}s",
        summary.bytes, summary.seconds
    );
    Ok(())
}
