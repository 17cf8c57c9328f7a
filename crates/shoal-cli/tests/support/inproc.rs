//! shoal as a library inside the test process: a [`shoal::Session`] on its own Tokio runtime,
//! with one torrent, so a test can watch what the `shoal` binary only logs: engine events
//! (`PeerBanned`, `PeerConnected`, ...) and per-peer byte counts ([`InProcShoal::inspect`]).
//!
//! The test thread stays synchronous (the harness blocks and sleeps); the session's tasks run on
//! the runtime's worker threads, and each call here enters the runtime only for as long as it
//! takes. Dropping an [`InProcShoal`] shuts the session down (files flushed), bounded by a few
//! seconds. DHT is off (the library default) and no trackers are added: peers come from the
//! test only.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use shoal::api::TorrentInspection;
use shoal::session::{Session, SessionConfig, TorrentHandle};
use shoal::{AddTorrent, TorrentStatus};
use shoal_engine::torrent::TorrentEvent;
use tokio::sync::broadcast;

/// A running in-process shoal session with one torrent.
#[derive(Debug)]
pub struct InProcShoal {
    runtime: tokio::runtime::Runtime,
    session: Option<Session>,
    handle: TorrentHandle,
    events: broadcast::Receiver<TorrentEvent>,
    seen: Vec<TorrentEvent>,
}

impl InProcShoal {
    /// Starts a session listening on `listen` and adds `torrent` with its data folder `dir`
    /// (checked first: pieces already there count), then dials `peers`. Events are recorded
    /// from before the first dial.
    pub fn start(
        torrent: &Path,
        dir: &Path,
        listen: SocketAddr,
        peers: &[SocketAddr],
    ) -> Result<InProcShoal> {
        // `RUST_LOG=shoal=debug` shows the session's log in the test's output.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("tokio runtime")?;
        let metainfo =
            std::fs::read(torrent).with_context(|| format!("read {}", torrent.display()))?;
        std::fs::create_dir_all(dir)?;
        let config = SessionConfig {
            listen_addr: listen,
            check_threads: 1,
            ..SessionConfig::default()
        };
        let (session, handle) = runtime.block_on(async {
            let session = Session::start(config).await?;
            let add = AddTorrent {
                metainfo,
                download_dir: dir.to_owned(),
                peers: Vec::new(),
                paused: false,
            };
            let handle = session.add_torrent(add).await?;
            anyhow::Ok((session, handle))
        })?;
        let events = handle.events();
        let shoal = InProcShoal {
            runtime,
            session: Some(session),
            handle,
            events,
            seen: Vec::new(),
        };
        shoal.add_peers(peers);
        Ok(shoal)
    }

    /// The address peers reach it on.
    pub fn addr(&self) -> SocketAddr {
        self.session
            .as_ref()
            .map(Session::listen_addr)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The torrent's handle.
    pub fn handle(&self) -> &TorrentHandle {
        &self.handle
    }

    /// Dials `peers` (no-op for an empty list).
    pub fn add_peers(&self, peers: &[SocketAddr]) {
        if !peers.is_empty() {
            self.runtime.block_on(self.handle.add_peers(peers.to_vec()));
        }
    }

    /// The latest status snapshot.
    pub fn status(&self) -> TorrentStatus {
        self.handle.status()
    }

    /// The piece map and connected peers (with their byte counts) right now.
    pub fn inspect(&self) -> Option<TorrentInspection> {
        self.runtime.block_on(self.handle.inspect())
    }

    /// Every engine event so far (drains the subscription into the record first).
    pub fn events(&mut self) -> &[TorrentEvent] {
        loop {
            match self.events.try_recv() {
                Ok(event) => self.seen.push(event),
                Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(_) => break,
            }
        }
        &self.seen
    }

    /// Waits until every piece is verified, calling `each` about every 20 ms (to sample
    /// [`InProcShoal::inspect`] while peers are connected: a peer's byte counts go when it
    /// does, and seeds are dropped once the download completes); fails after `timeout`.
    pub fn wait_complete_with(
        &mut self,
        timeout: Duration,
        mut each: impl FnMut(&InProcShoal),
    ) -> Result<TorrentStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            each(self);
            let status = self.status();
            if status.is_complete() {
                return Ok(status);
            }
            if Instant::now() > deadline {
                super::mark_failed();
                bail!("in-process shoal not complete after {timeout:?}: {status:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until every piece is verified; fails after `timeout` with the last status.
    pub fn wait_complete(&mut self, timeout: Duration) -> Result<TorrentStatus> {
        self.wait_complete_with(timeout, |_| {})
    }
}

impl Drop for InProcShoal {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            let _ = self.runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), session.shutdown()).await
            });
        }
    }
}
