//! Hostile peers over real loopback sockets.
//!
//! 1. A raw TCP client handshakes with a `shoal seed` process and sends each kind of bad
//!    peer-wire input from `/work/shared/TESTING.md`: shoal closes that connection (EOF or
//!    reset), logs the typed reason, keeps running, ignores an unknown message id (that
//!    connection stays up and is served), and still serves a well-behaved libtorrent leecher
//!    afterwards.
//! 2. A malicious seeder written here (raw protocol: handshake, full bitfield, unchoke, and
//!    corrupted data for every even piece) and an honest libtorrent seeder both serve an
//!    in-process shoal leecher: the download is byte-identical, the malicious peer is banned
//!    (`TorrentEvent::PeerBanned`) and never dialled again, and a libtorrent leecher that then
//!    downloads from that shoal gets correct data without a single re-download (0 bad bytes
//!    served).

use crate::support;

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use shoal_engine::torrent::TorrentEvent;
use support::wire::{self, id, Closed, RawPeer};
use support::*;

const KIB: u64 = 1024;
const WAIT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// 1. Bad input to a `shoal seed` process
// ---------------------------------------------------------------------------------------------

/// The hostile-input torrent: one file of four 256 KiB pieces and a 1000-byte fifth piece, so
/// the 1-byte bitfield has three spare bits and a 144 KiB request still fits in a piece.
const PIECE: u32 = 256 * 1024;
const PIECES: u32 = 5;
const LAST_PIECE_LEN: u32 = 1000;

/// One bad input: its name, the bytes sent after the handshake, and a piece of the reason
/// shoal must log when it drops the connection.
struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    reason: &'static str,
}

fn bad_inputs() -> Vec<Case> {
    let request =
        |index, begin, length| wire::frame(id::REQUEST, &wire::block_ref(index, begin, length));
    let bitfield = |byte: u8| wire::frame(id::BITFIELD, &[byte]);
    // Nine blocks nobody asked for: shoal tolerates a few (blocks arriving after a cancel are
    // normal), then drops the peer.
    let unrequested: Vec<u8> = (0..9u32)
        .flat_map(|i| wire::piece_frame(0, i * 16 * 1024, &[0xAB; 16 * 1024]))
        .collect();
    vec![
        Case {
            name: "length prefix 0xFFFFFFFF",
            bytes: vec![0xFF; 4],
            reason: "bad frame",
        },
        Case {
            name: "bitfield of the wrong length",
            bytes: wire::frame(id::BITFIELD, &[0, 0]),
            reason: "bad bitfield",
        },
        Case {
            name: "bitfield with spare bits set",
            bytes: bitfield(0b0000_0001),
            reason: "bad bitfield",
        },
        Case {
            name: "have past the last piece",
            bytes: wire::frame(id::HAVE, &PIECES.to_be_bytes()),
            reason: "names piece 5",
        },
        Case {
            name: "request of length 0",
            bytes: request(0, 0, 0),
            reason: "is not a valid block",
        },
        Case {
            name: "request over 128 KiB",
            bytes: request(0, 0, 128 * 1024 + 16 * 1024),
            reason: "is not a valid block",
        },
        Case {
            name: "request past the end of a piece",
            bytes: request(0, PIECE - 100, 16 * 1024),
            reason: "is not a valid block",
        },
        Case {
            name: "request past the end of the short last piece",
            bytes: request(PIECES - 1, 0, LAST_PIECE_LEN + 1),
            reason: "is not a valid block",
        },
        Case {
            name: "piece messages for blocks never requested",
            bytes: unrequested,
            reason: "never requested",
        },
        Case {
            name: "a second bitfield that takes a piece back",
            bytes: [bitfield(0b1000_0000), bitfield(0)].concat(),
            reason: "takes back",
        },
    ]
}

/// The seeder's log without ANSI colour codes.
fn plain_log(path: &Path) -> String {
    let raw = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn drop_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("dropping peer"))
        .map(str::to_owned)
        .collect()
}

/// Waits until the log holds more than `before` "dropping peer" lines; returns the new ones.
fn new_drop_lines(log: &Path, before: usize) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let lines = drop_lines(&plain_log(log));
        if lines.len() > before || Instant::now() > deadline {
            return lines.into_iter().skip(before).collect();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A fresh connection to the seeder: a leecher's handshake (no extension bits, so shoal
/// answers with a plain `bitfield`), their handshake and bitfield read.
fn hello(seeder: SocketAddr, info_hash: &[u8; 20], n: u8) -> Result<RawPeer> {
    let mut peer_id = *b"-XX0001-hostile-0000";
    peer_id[19] = b'a' + n;
    let (mut peer, _theirs) = RawPeer::connect(seeder, info_hash, &peer_id, [0; 8], WAIT)?;
    let bits = peer
        .wait_for(id::BITFIELD, WAIT)
        .context("the seeder's bitfield")?;
    ensure!(bits == [0b1111_1000], "seeder bitfield {bits:02x?}");
    Ok(peer)
}

/// After an unknown message id the connection stays up: interested, unchoke, and a requested
/// block arrives with the right bytes.
fn unknown_id_is_ignored(seeder: SocketAddr, info_hash: &[u8; 20], data: &[u8]) -> Result<()> {
    let mut peer = hello(seeder, info_hash, 25)?;
    peer.send(&wire::frame(0x63, b"shoal, ignore me"))?;
    peer.send_frame(id::INTERESTED, &[])?;
    peer.wait_for(id::UNCHOKE, WAIT)
        .context("unchoke after an unknown message id")?;
    let (index, begin, len) = (2u32, 16 * 1024u32, 16 * 1024u32);
    peer.send_frame(id::REQUEST, &wire::block_ref(index, begin, len))?;
    let block = peer
        .wait_for(id::PIECE, WAIT)
        .context("the requested block")?;
    let at = (index * PIECE + begin) as usize;
    ensure!(
        block[..8] == wire::block_ref(index, begin, 0)[..8],
        "piece header {:02x?}",
        &block[..8]
    );
    ensure!(
        block[8..] == data[at..at + len as usize],
        "the served block differs from the data"
    );
    ensure!(
        peer.stays_open(Duration::from_millis(300))?,
        "closed after being served"
    );
    Ok(())
}

#[test]
fn each_bad_peer_wire_input_drops_only_that_connection() -> Result<()> {
    if !Kind::Libtorrent.require() {
        return Ok(());
    }
    let work = WorkDir::new("wire-hostile")?;
    let size = u64::from(PIECE) * u64::from(PIECES - 1) + u64::from(LAST_PIECE_LEN);
    let set = Seeded::write(&work, Content::SingleFile(size), PIECE, 31)?;
    assert_eq!(set.torrent.pieces, u64::from(PIECES));
    let data = std::fs::read(&set.data)?;
    let info_hash = wire::infohash_from_hex(&set.torrent.infohash)?;
    let source = RefClient::new(Kind::Shoal).shoal_log("shoal=debug").seed(
        &set.torrent.path,
        &set.seed_dir,
        loopback(1),
    )?;
    let log = source.work_dir().join("shoal.log");

    let mut failures = Vec::new();
    for (n, case) in bad_inputs().into_iter().enumerate() {
        let before = drop_lines(&plain_log(&log)).len();
        let mut peer = hello(source.addr(), &info_hash, n as u8)?;
        peer.send(&case.bytes)?;
        let closed = peer.wait_closed(WAIT);
        let reasons = new_drop_lines(&log, before);
        let logged = reasons.iter().any(|l| l.contains(case.reason));
        eprintln!("{}: {closed:?}, logged {reasons:?}", case.name);
        match closed {
            Ok(Closed::Eof | Closed::Reset) if logged => {}
            Ok(_) => failures.push(format!(
                "{}: closed, but no \"dropping peer\" line with {:?} (new lines: {reasons:?})",
                case.name, case.reason
            )),
            Err(e) => failures.push(format!("{}: {e:#}", case.name)),
        }
    }
    if let Err(e) = unknown_id_is_ignored(source.addr(), &info_hash, &data) {
        failures.push(format!("unknown message id: {e:#}"));
    }
    let log_text = plain_log(&log);
    ensure!(
        !log_text.contains("panicked"),
        "shoal panicked:\n{}",
        source.logs()
    );
    ensure!(
        failures.is_empty(),
        "bad input not handled:\n  {}\n{}",
        failures.join("\n  "),
        source.logs()
    );

    // The seeder still serves a well-behaved client.
    let mut sink = leech(
        Kind::Libtorrent,
        &set.torrent.path,
        &work.join("leech"),
        loopback(2),
        &[source.addr()],
    )?;
    sink.wait_complete(Duration::from_secs(60))?;
    assert_same_tree(&set.data, &set.copy_in(&work.join("leech"))?)
}

/// A later bitfield that only adds pieces (how aria2 announces finished pieces) is not an error.
#[test]
fn a_later_bitfield_that_only_adds_pieces_keeps_the_connection() -> Result<()> {
    if !Kind::Libtorrent.require() {
        return Ok(());
    }
    let work = WorkDir::new("wire-later-bitfield")?;
    let size = u64::from(PIECE) * u64::from(PIECES - 1) + u64::from(LAST_PIECE_LEN);
    let set = Seeded::write(&work, Content::SingleFile(size), PIECE, 32)?;
    let info_hash = wire::infohash_from_hex(&set.torrent.infohash)?;
    let source = seed(Kind::Shoal, &set.torrent.path, &set.seed_dir, loopback(1))?;
    let mut peer = hello(source.addr(), &info_hash, 0)?;
    let bitfield = |byte: u8| wire::frame(id::BITFIELD, &[byte]);
    peer.send(&[bitfield(0), bitfield(0b1000_0000), bitfield(0b1100_0000)].concat())?;
    peer.send_frame(id::INTERESTED, &[])?;
    peer.wait_for(id::UNCHOKE, WAIT)?;
    ensure!(
        peer.stays_open(Duration::from_millis(500))?,
        "dropped after a growing bitfield"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 2. A seeder that sends corrupt blocks
// ---------------------------------------------------------------------------------------------

/// What the malicious seeder did.
#[derive(Debug, Default, Clone)]
struct Mischief {
    connections: u32,
    good_blocks: u32,
    corrupt_blocks: u32,
}

/// A seeder that claims every piece and answers every request at once, with every byte
/// flipped in pieces whose index is even. Stops (and closes its connections) on drop.
struct MaliciousSeeder {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    mischief: Arc<Mutex<Mischief>>,
}

impl MaliciousSeeder {
    fn start(
        addr: SocketAddr,
        info_hash: [u8; 20],
        data: Arc<Vec<u8>>,
        piece: u32,
    ) -> Result<Self> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let mischief = Arc::new(Mutex::new(Mischief::default()));
        let (stop2, mischief2) = (stop.clone(), mischief.clone());
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        lock(&mischief2).connections += 1;
                        let ctx = (
                            info_hash,
                            data.clone(),
                            piece,
                            stop2.clone(),
                            mischief2.clone(),
                        );
                        std::thread::spawn(move || {
                            let _ = serve_corrupt(stream, ctx);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(MaliciousSeeder {
            addr,
            stop,
            mischief,
        })
    }

    fn mischief(&self) -> Mischief {
        lock(&self.mischief).clone()
    }
}

impl Drop for MaliciousSeeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn lock(m: &Mutex<Mischief>) -> std::sync::MutexGuard<'_, Mischief> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

type ServeCtx = (
    [u8; 20],
    Arc<Vec<u8>>,
    u32,
    Arc<AtomicBool>,
    Arc<Mutex<Mischief>>,
);

/// One connection of the malicious seeder.
fn serve_corrupt(mut stream: TcpStream, ctx: ServeCtx) -> Result<()> {
    let (info_hash, data, piece, stop, mischief) = ctx;
    stream.set_nonblocking(false)?;
    let mut theirs = [0u8; 68];
    stream.set_read_timeout(Some(WAIT))?;
    stream.read_exact(&mut theirs)?;
    ensure!(theirs[28..48] == info_hash, "handshake for another torrent");
    let mut peer = RawPeer::new(stream);
    peer.send(&wire::handshake(
        &info_hash,
        b"-XX0001-malicious-00",
        [0; 8],
    ))?;
    let pieces = (data.len() as u64).div_ceil(u64::from(piece)) as u32;
    let mut bits = vec![0xFFu8; pieces.div_ceil(8) as usize];
    if !pieces.is_multiple_of(8) {
        if let Some(last) = bits.last_mut() {
            *last = 0xFF << (8 - pieces % 8);
        }
    }
    peer.send_frame(id::BITFIELD, &bits)?;
    peer.send_frame(id::UNCHOKE, &[])?;
    while !stop.load(Ordering::Relaxed) {
        let Some((msg, payload)) = peer.read_frame(Duration::from_secs(30))? else {
            continue;
        };
        if msg != id::REQUEST || payload.len() != 12 {
            continue;
        }
        let field = |i: usize| {
            u32::from_be_bytes([payload[i], payload[i + 1], payload[i + 2], payload[i + 3]])
        };
        let (index, begin, len) = (field(0), field(4), field(8));
        let start = u64::from(index) * u64::from(piece) + u64::from(begin);
        let end = (start + u64::from(len)).min(data.len() as u64);
        let mut block = data[start as usize..end as usize].to_vec();
        if index % 2 == 0 {
            block.iter_mut().for_each(|b| *b ^= 0xFF);
            lock(&mischief).corrupt_blocks += 1;
        } else {
            lock(&mischief).good_blocks += 1;
        }
        peer.send(&wire::piece_frame(index, begin, &block))?;
    }
    Ok(())
}

/// The `payload_downloaded` figure from lt.py's final `done` line.
fn lt_payload_downloaded(work_dir: &Path) -> Result<u64> {
    let log = std::fs::read_to_string(work_dir.join("lt.py.log"))?;
    let done = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "done")
        .context("no done line from lt.py")?;
    done["payload_downloaded"]
        .as_u64()
        .context("done.payload_downloaded")
}

#[test]
fn a_seeder_of_corrupt_blocks_is_banned_and_nothing_bad_is_served() -> Result<()> {
    if !Kind::Libtorrent.require() {
        return Ok(());
    }
    let work = WorkDir::new("corrupt-ban")?;
    let piece = 32 * 1024;
    let set = Seeded::write(&work, Content::SingleFile(3 * 1024 * KIB + 77), piece, 33)?;
    let data = Arc::new(std::fs::read(&set.data)?);
    let info_hash = wire::infohash_from_hex(&set.torrent.infohash)?;
    let malicious = MaliciousSeeder::start(loopback(3), info_hash, data.clone(), piece)?;
    // The honest seeder is capped so that the malicious one, which answers at once, serves a
    // good share of the blocks.
    let honest = RefClient::new(Kind::Libtorrent)
        .upload_limit(1024 * 1024)
        .seed(&set.torrent.path, &set.seed_dir, loopback(1))?;
    let out = work.join("leech");
    let mut shoal = InProcShoal::start(
        &set.torrent.path,
        &out,
        loopback(2),
        &[malicious.addr, honest.addr()],
    )?;
    let status = shoal.wait_complete(Duration::from_secs(60))?;
    assert_same_tree(&set.data, &set.copy_in(&out)?)?;

    let mischief = malicious.mischief();
    ensure!(
        mischief.corrupt_blocks > 0,
        "the malicious seeder was never asked for a corrupt block: {mischief:?}"
    );
    let events = shoal.events().to_vec();
    let banned: Vec<SocketAddr> = events
        .iter()
        .filter_map(|e| match e {
            TorrentEvent::PeerBanned { addr, .. } => Some(*addr),
            _ => None,
        })
        .collect();
    let failed = events
        .iter()
        .filter(|e| matches!(e, TorrentEvent::PieceFailed { .. }))
        .count();
    eprintln!(
        "malicious seeder: {mischief:?}; banned {banned:?}; {failed} failed pieces; {status:?}"
    );
    ensure!(
        banned == [malicious.addr],
        "banned {banned:?}, expected only {}",
        malicious.addr
    );
    ensure!(
        failed > 0 && status.hash_failures > 0,
        "no piece failed its hash check: {status:?}"
    );
    // Banned means never dialled again.
    std::thread::sleep(Duration::from_millis(500));
    let later = malicious.mischief();
    ensure!(
        later.connections == mischief.connections,
        "the banned seeder was dialled again: {later:?}"
    );

    // A third client downloads from the shoal leecher: every byte correct the first time.
    let mut third = leech(
        Kind::Libtorrent,
        &set.torrent.path,
        &work.join("third"),
        loopback(4),
        &[shoal.addr()],
    )?;
    let summary = third.wait_complete(Duration::from_secs(60))?;
    assert_same_tree(&set.data, &set.copy_in(&work.join("third"))?)?;
    let payload = lt_payload_downloaded(third.work_dir())?;
    ensure!(
        payload == set.torrent.bytes,
        "libtorrent downloaded {payload} payload bytes for a {}-byte torrent: something it got \
         from shoal failed its hash check ({summary:?})",
        set.torrent.bytes
    );
    Ok(())
}
