//! Accepting and opening TCP connections to peers.
//!
//! The listener accepts a connection, reads the remote's 68-byte handshake within a time-out to
//! learn which torrent it wants, and hands the socket (with the parsed handshake and any bytes
//! read past it) to that torrent's task through the [`Router`]. Unknown infohashes, bad
//! handshakes and slow handshakes are dropped here, before any torrent sees them. Outgoing
//! connects are plain `connect` with a time-out; the engine decides whom to connect to.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::BytesMut;
use shoal_proto::wire::Handshake;
use shoal_proto::InfoHash;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

/// How long a remote may take to send its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an outgoing connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How many incoming connections may be in the handshake phase at once.
const MAX_PENDING_HANDSHAKES: usize = 64;

/// An incoming connection whose handshake named one of our torrents.
#[derive(Debug)]
pub(crate) struct IncomingPeer {
    pub stream: TcpStream,
    pub addr: SocketAddr,
    pub handshake: Handshake,
    /// Bytes the remote sent after its handshake, already read off the socket.
    pub rest: BytesMut,
}

/// Where the listener sends incoming connections: one channel per active torrent.
#[derive(Debug, Clone, Default)]
pub(crate) struct Router {
    torrents: Arc<RwLock<HashMap<InfoHash, mpsc::Sender<IncomingPeer>>>>,
}

impl Router {
    pub(crate) fn insert(&self, info_hash: InfoHash, tx: mpsc::Sender<IncomingPeer>) {
        if let Ok(mut map) = self.torrents.write() {
            map.insert(info_hash, tx);
        }
    }

    pub(crate) fn remove(&self, info_hash: &InfoHash) {
        if let Ok(mut map) = self.torrents.write() {
            map.remove(info_hash);
        }
    }

    fn get(&self, info_hash: &InfoHash) -> Option<mpsc::Sender<IncomingPeer>> {
        self.torrents.read().ok()?.get(info_hash).cloned()
    }
}

/// Accepts connections on `listener` until `cancel` fires.
pub(crate) async fn accept_loop(listener: TcpListener, router: Router, cancel: CancellationToken) {
    let pending = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, addr) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = pending.clone().try_acquire_owned() else {
            tracing::debug!(%addr, "too many handshakes in progress; dropping connection");
            continue;
        };
        let router = router.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, read_handshake(stream, addr)).await {
                Ok(Ok(incoming)) => match router.get(&incoming.handshake.info_hash) {
                    Some(tx) => {
                        let _ = tx.send(incoming).await;
                    }
                    None => tracing::debug!(%addr, "handshake for an unknown torrent"),
                },
                Ok(Err(error)) => tracing::debug!(%addr, %error, "bad incoming handshake"),
                Err(_) => tracing::debug!(%addr, "incoming handshake timed out"),
            }
        });
    }
}

async fn read_handshake(mut stream: TcpStream, addr: SocketAddr) -> std::io::Result<IncomingPeer> {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        match Handshake::decode(&buf) {
            Ok(Some(handshake)) => {
                let _ = buf.split_to(Handshake::LEN);
                return Ok(IncomingPeer {
                    stream,
                    addr,
                    handshake,
                    rest: buf,
                });
            }
            Ok(None) => {}
            Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// Opens a connection to `addr`, optionally from a given local address.
pub(crate) async fn connect(
    addr: SocketAddr,
    bind: Option<SocketAddr>,
) -> std::io::Result<TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    if let Some(local) = bind {
        if local.is_ipv4() == addr.is_ipv4() {
            socket.bind(SocketAddr::new(local.ip(), 0))?;
        }
    }
    match tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(addr)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// The result of one background connect: the address and the stream or the error.
pub(crate) type ConnectResult = (SocketAddr, std::io::Result<TcpStream>);

/// Connects to `addr` in a task of its own and sends the result to `done`, unless `cancel` fires
/// first.
pub(crate) fn spawn_connect(
    addr: SocketAddr,
    bind: Option<SocketAddr>,
    done: mpsc::Sender<ConnectResult>,
    cancel: CancellationToken,
) {
    tokio::spawn(async move {
        tokio::select! {
            _ = cancel.cancelled() => {}
            result = connect(addr, bind) => { let _ = done.send((addr, result)).await; }
        }
    });
}
