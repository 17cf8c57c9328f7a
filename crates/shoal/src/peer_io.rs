//! Moves bytes between one peer's TCP socket and its torrent's task. Nothing else.
//!
//! Each connection gets two tasks: a reader that forwards every chunk it reads to the torrent
//! task (a bounded channel, so a slow torrent task slows the socket down instead of buffering
//! without limit) and a writer that writes what the torrent task hands it, batching whatever is
//! queued into one vectored write, and reports how many bytes each write took (the engine's
//! upload buffer drains by those reports). Dropping the [`PeerIo`] handle, or cancelling its token, closes
//! the connection; either side ending sends exactly one `Closed` to the torrent task.
//!
//! Rate limits (see [`crate::rate_limit`]) hook in at one place per direction: the reader charges
//! what it read before handing it on (and reads in smaller chunks while limited), the writer
//! charges a batch before writing it. Unlimited, each hook is one atomic load.

use std::io::IoSlice;

use bytes::{BufMut, Bytes, BytesMut};
use shoal_engine::PeerKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::rate_limit::{Chain, PeerLimits};

/// How many bytes one read asks the socket for.
const READ_CHUNK: usize = 256 * 1024;
/// How many outgoing buffers the writer may batch into one vectored write.
const MAX_IOVECS: usize = 64;

/// What a connection's tasks tell the torrent task.
#[derive(Debug)]
pub(crate) enum PeerIoEvent {
    Data {
        peer: PeerKey,
        data: Bytes,
    },
    /// The socket took this many bytes of what [`PeerIo::send`] queued (one report per
    /// vectored write): the engine reads the peer's next requested blocks only as these come.
    Sent {
        peer: PeerKey,
        bytes: u64,
    },
    Closed {
        peer: PeerKey,
        error: Option<std::io::Error>,
    },
}

/// The torrent task's handle on one connection.
#[derive(Debug)]
pub(crate) struct PeerIo {
    outgoing: mpsc::UnboundedSender<Bytes>,
    cancel: CancellationToken,
}

impl PeerIo {
    /// Starts the reader and writer tasks of `stream`, reporting to `events`.
    pub(crate) fn spawn(
        peer: PeerKey,
        stream: TcpStream,
        events: mpsc::Sender<PeerIoEvent>,
        parent: &CancellationToken,
        limits: PeerLimits,
    ) -> PeerIo {
        let _ = stream.set_nodelay(true);
        let addr = stream.peer_addr().ok();
        let (read_half, write_half) = stream.into_split();
        let (outgoing, outgoing_rx) = mpsc::unbounded_channel();
        let cancel = parent.child_token();
        let span = tracing::debug_span!("peer", peer = peer.0, addr = ?addr);
        tokio::spawn(
            read_loop(
                peer,
                read_half,
                events.clone(),
                cancel.clone(),
                limits.download,
            )
            .instrument(span.clone()),
        );
        tokio::spawn(
            write_loop(
                peer,
                write_half,
                outgoing_rx,
                events,
                cancel.clone(),
                limits.upload,
            )
            .instrument(span),
        );
        PeerIo { outgoing, cancel }
    }

    /// Queues bytes for the socket. Unbounded on purpose: the engine bounds what it queues per
    /// peer (request pipeline depth, upload queue), so this never holds more than that.
    pub(crate) fn send(&self, data: Bytes) {
        let _ = self.outgoing.send(data);
    }
}

impl Drop for PeerIo {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn read_loop(
    peer: PeerKey,
    mut socket: OwnedReadHalf,
    events: mpsc::Sender<PeerIoEvent>,
    cancel: CancellationToken,
    limit: Chain,
) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let error = loop {
        if buf.capacity() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        let mut room = (&mut buf).limit(limit.chunk(READ_CHUNK));
        let read = tokio::select! {
            _ = cancel.cancelled() => return,
            read = socket.read_buf(&mut room) => read,
        };
        match read {
            Ok(0) => break None,
            Ok(n) => {
                // Rate limit hook (download): wait for tokens before handing the bytes on.
                // Biased, tokens first: when they are there at once (always, unlimited), the
                // cancellation token is never polled, so it registers no waiter.
                tokio::select! {
                    biased;
                    _ = limit.acquire(n) => {}
                    _ = cancel.cancelled() => return,
                }
                let data = buf.split().freeze();
                if events.send(PeerIoEvent::Data { peer, data }).await.is_err() {
                    return;
                }
            }
            Err(e) => break Some(e),
        }
    };
    cancel.cancel();
    let _ = events.send(PeerIoEvent::Closed { peer, error }).await;
}

async fn write_loop(
    peer: PeerKey,
    mut socket: OwnedWriteHalf,
    mut outgoing: mpsc::UnboundedReceiver<Bytes>,
    events: mpsc::Sender<PeerIoEvent>,
    cancel: CancellationToken,
    limit: Chain,
) {
    let mut batch: Vec<Bytes> = Vec::with_capacity(MAX_IOVECS);
    loop {
        let first = tokio::select! {
            _ = cancel.cancelled() => break,
            next = outgoing.recv() => match next { Some(b) => b, None => break },
        };
        let max_bytes = limit.chunk(usize::MAX);
        let mut bytes = first.len();
        batch.push(first);
        while batch.len() < MAX_IOVECS && bytes < max_bytes {
            match outgoing.try_recv() {
                Ok(b) => {
                    bytes += b.len();
                    batch.push(b);
                }
                Err(_) => break,
            }
        }
        // Rate limit hook (upload): wait for tokens before writing the batch.
        let result = tokio::select! {
            _ = cancel.cancelled() => break,
            r = async {
                limit.acquire(bytes).await;
                write_batch(&mut socket, &mut batch).await
            } => r,
        };
        if let Err(e) = result {
            cancel.cancel();
            let _ = events
                .send(PeerIoEvent::Closed {
                    peer,
                    error: Some(e),
                })
                .await;
            return;
        }
        let sent = PeerIoEvent::Sent {
            peer,
            bytes: bytes as u64,
        };
        if events.send(sent).await.is_err() {
            break;
        }
    }
    let _ = socket.shutdown().await;
}

/// Writes every buffer in `batch` with as few syscalls as the kernel allows, then empties it.
async fn write_batch(socket: &mut OwnedWriteHalf, batch: &mut Vec<Bytes>) -> std::io::Result<()> {
    let mut first = 0;
    while first < batch.len() {
        let slices: Vec<IoSlice<'_>> = batch[first..].iter().map(|b| IoSlice::new(b)).collect();
        let mut written = socket.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while first < batch.len() && written >= batch[first].len() {
            written -= batch[first].len();
            first += 1;
        }
        if written > 0 {
            let rest = batch[first].slice(written..);
            batch[first] = rest;
        }
    }
    batch.clear();
    Ok(())
}
