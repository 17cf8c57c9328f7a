//! A raw BitTorrent peer-wire client and server side for tests, written from BEP 3 with plain
//! blocking sockets (deliberately not shoal's own codec, so a codec bug cannot hide itself):
//! handshakes, length-prefixed frames, and "did the other side close the connection?".
//!
//! Frames are `u32` big-endian length, then one id byte and the payload; a zero length is a
//! keep-alive. [`RawPeer::read_frame`] caps what it accepts at [`MAX_FRAME`] and fails on more.
//! Every read has a deadline, so a test never hangs on a silent peer.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

/// The 19-byte protocol string that opens every BitTorrent handshake.
pub const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";
/// Largest frame [`RawPeer::read_frame`] accepts (a 16 KiB block plus header, with room).
pub const MAX_FRAME: usize = 1 << 20;

/// Message ids (BEP 3, BEP 6).
pub mod id {
    pub const CHOKE: u8 = 0;
    pub const UNCHOKE: u8 = 1;
    pub const INTERESTED: u8 = 2;
    pub const NOT_INTERESTED: u8 = 3;
    pub const HAVE: u8 = 4;
    pub const BITFIELD: u8 = 5;
    pub const REQUEST: u8 = 6;
    pub const PIECE: u8 = 7;
    pub const CANCEL: u8 = 8;
    pub const HAVE_ALL: u8 = 0x0E;
    pub const HAVE_NONE: u8 = 0x0F;
    pub const EXTENDED: u8 = 20;
}

/// Parses 40 hex digits into an infohash.
pub fn infohash_from_hex(hex: &str) -> Result<[u8; 20]> {
    ensure!(hex.len() == 40, "infohash {hex:?} is not 40 hex digits");
    let mut out = [0u8; 20];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .with_context(|| format!("infohash {hex:?}"))?;
    }
    Ok(out)
}

/// A 68-byte handshake: protocol string, reserved bits, infohash, peer id.
pub fn handshake(info_hash: &[u8; 20], peer_id: &[u8; 20], reserved: [u8; 8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(68);
    out.push(19);
    out.extend_from_slice(PROTOCOL);
    out.extend_from_slice(&reserved);
    out.extend_from_slice(info_hash);
    out.extend_from_slice(peer_id);
    out
}

/// One frame: length prefix, id, payload.
pub fn frame(id: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + payload.len());
    out.extend_from_slice(&(1 + payload.len() as u32).to_be_bytes());
    out.push(id);
    out.extend_from_slice(payload);
    out
}

/// The payload of `request` / `cancel` / `reject`: index, begin, length.
pub fn block_ref(index: u32, begin: u32, length: u32) -> Vec<u8> {
    [index, begin, length]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect()
}

/// A `piece` frame carrying `data` for `index` at `begin`.
pub fn piece_frame(index: u32, begin: u32, data: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(8 + data.len());
    payload.extend_from_slice(&index.to_be_bytes());
    payload.extend_from_slice(&begin.to_be_bytes());
    payload.extend_from_slice(data);
    frame(id::PIECE, &payload)
}

/// What the remote's handshake said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TheirHandshake {
    pub reserved: [u8; 8],
    pub info_hash: [u8; 20],
    pub peer_id: [u8; 20],
}

/// How a wait for the remote to close ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Orderly close (read returned 0).
    Eof,
    /// Connection reset (the remote closed with unread data, or aborted).
    Reset,
}

/// One raw peer-wire connection.
#[derive(Debug)]
pub struct RawPeer {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawPeer {
    /// Wraps an accepted or connected stream.
    pub fn new(stream: TcpStream) -> RawPeer {
        let _ = stream.set_nodelay(true);
        RawPeer {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects to `addr` (from `local_ip` when given), sends our handshake and reads theirs
    /// within `timeout`.
    pub fn connect(
        addr: SocketAddr,
        info_hash: &[u8; 20],
        peer_id: &[u8; 20],
        reserved: [u8; 8],
        timeout: Duration,
    ) -> Result<(RawPeer, TheirHandshake)> {
        let stream = TcpStream::connect_timeout(&addr, timeout)
            .with_context(|| format!("connect to {addr}"))?;
        let mut peer = RawPeer::new(stream);
        peer.send(&handshake(info_hash, peer_id, reserved))?;
        let theirs = peer.read_handshake(timeout)?;
        ensure!(
            &theirs.info_hash == info_hash,
            "{addr} answered for another infohash"
        );
        Ok((peer, theirs))
    }

    /// The underlying socket.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Writes `bytes` as they are.
    pub fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes).context("write to peer")
    }

    /// Sends one frame.
    pub fn send_frame(&mut self, id: u8, payload: &[u8]) -> Result<()> {
        self.send(&frame(id, payload))
    }

    /// Reads the remote's 68-byte handshake.
    pub fn read_handshake(&mut self, timeout: Duration) -> Result<TheirHandshake> {
        let bytes = self.read_exact_within(68, timeout)?;
        ensure!(
            bytes[0] == 19 && &bytes[1..20] == PROTOCOL,
            "not a BitTorrent handshake: {:02x?}",
            &bytes[..20]
        );
        let mut theirs = TheirHandshake {
            reserved: [0; 8],
            info_hash: [0; 20],
            peer_id: [0; 20],
        };
        theirs.reserved.copy_from_slice(&bytes[20..28]);
        theirs.info_hash.copy_from_slice(&bytes[28..48]);
        theirs.peer_id.copy_from_slice(&bytes[48..68]);
        Ok(theirs)
    }

    /// Reads the next frame within `timeout`: `Some((id, payload))`, or `None` for a keep-alive.
    pub fn read_frame(&mut self, timeout: Duration) -> Result<Option<(u8, Vec<u8>)>> {
        let deadline = Instant::now() + timeout;
        let len = self.read_exact_within(4, timeout)?;
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if len == 0 {
            return Ok(None);
        }
        ensure!(len <= MAX_FRAME, "frame of {len} bytes from the peer");
        let left = deadline.saturating_duration_since(Instant::now());
        let body = self.read_exact_within(len, left.max(Duration::from_millis(1)))?;
        Ok(Some((body[0], body[1..].to_vec())))
    }

    /// Reads frames until one with `want` arrives (returning its payload), failing after
    /// `timeout`, on a close, or on a frame for which `reject` returns an error message.
    pub fn wait_for(&mut self, want: u8, timeout: Duration) -> Result<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            ensure!(!left.is_zero(), "no message {want} within {timeout:?}");
            if let Some((got, payload)) = self.read_frame(left)? {
                if got == want {
                    return Ok(payload);
                }
            }
        }
    }

    /// Reads and drops whatever arrives until the remote closes, within `timeout`. Fails if it
    /// is still open then.
    pub fn wait_closed(&mut self, timeout: Duration) -> Result<Closed> {
        let deadline = Instant::now() + timeout;
        let mut scratch = [0u8; 64 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("the connection is still open after {timeout:?}");
            }
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(&mut scratch) {
                Ok(0) => return Ok(Closed::Eof),
                Ok(_) => {}
                Err(e)
                    if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) =>
                {
                    return Ok(Closed::Reset)
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => return Err(e).context("read from peer"),
            }
        }
    }

    /// True when nothing shows the connection closed within `quiet` (frames that arrive are
    /// read and dropped).
    pub fn stays_open(&mut self, quiet: Duration) -> Result<bool> {
        Ok(self.wait_closed(quiet).is_err())
    }

    fn read_exact_within(&mut self, n: usize, timeout: Duration) -> Result<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut scratch = [0u8; 64 * 1024];
        while self.buf.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            ensure!(
                !left.is_zero(),
                "peer sent {} of {n} bytes within {timeout:?}",
                self.buf.len()
            );
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(&mut scratch) {
                Ok(0) => bail!(
                    "peer closed the connection ({} of {n} bytes read)",
                    self.buf.len()
                ),
                Ok(got) => self.buf.extend_from_slice(&scratch[..got]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => return Err(e).context("read from peer"),
            }
        }
        Ok(self.buf.drain(..n).collect())
    }
}

/// True when a BitTorrent handshake for `info_hash` sent to `addr` is answered within
/// `timeout` (the client has the torrent and takes peers for it).
pub fn answers_handshake(addr: SocketAddr, info_hash: &[u8; 20], timeout: Duration) -> bool {
    let peer_id = *b"-XX0000-handshake-pr";
    RawPeer::connect(addr, info_hash, &peer_id, [0; 8], timeout).is_ok()
}
