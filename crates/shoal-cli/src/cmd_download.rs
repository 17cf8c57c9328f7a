//! `shoal download` and `shoal seed`: run a session with one torrent, show progress, finish.
//!
//! `download` exits 0 once every piece is verified and written (or keeps seeding with `--seed`);
//! running it again on the same folder resumes, because the session checks the data already
//! there and only verified pieces count. `seed` checks the data, then serves it until Ctrl-C.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use shoal::api::{AddTorrent, TorrentState, TorrentStatus};
use shoal::session::{Session, SessionConfig, TorrentHandle};

/// The port shoal listens on when `--listen` is not given (the classic BitTorrent port). If it
/// is taken, a free port is used instead.
pub const DEFAULT_PORT: u16 = 6881;

#[derive(Debug, clap::Args)]
pub struct DownloadArgs {
    /// The .torrent file.
    pub torrent: PathBuf,
    /// Folder that receives the torrent's file or top folder.
    #[arg(short = 'o', long = "output", default_value = ".")]
    pub output: PathBuf,
    /// A peer to connect to (repeatable).
    #[arg(long = "peer", value_name = "IP:PORT")]
    pub peers: Vec<SocketAddr>,
    /// Address peers connect to [default: 0.0.0.0:6881, or a free port if taken].
    #[arg(long, value_name = "IP:PORT")]
    pub listen: Option<SocketAddr>,
    /// Keep seeding after the download completes, until Ctrl-C.
    #[arg(long)]
    pub seed: bool,
    /// Folder for resume files [default: $XDG_DATA_HOME/shoal or ~/.local/share/shoal].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    /// The .torrent file.
    pub torrent: PathBuf,
    /// Folder that holds the torrent's file or top folder.
    pub data_dir: PathBuf,
    /// A peer to connect to (repeatable).
    #[arg(long = "peer", value_name = "IP:PORT")]
    pub peers: Vec<SocketAddr>,
    /// Address peers connect to [default: 0.0.0.0:6881, or a free port if taken].
    #[arg(long, value_name = "IP:PORT")]
    pub listen: Option<SocketAddr>,
    /// Folder for resume files [default: $XDG_DATA_HOME/shoal or ~/.local/share/shoal].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

pub fn download(args: DownloadArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        let (session, handle) = start(&args.torrent, &args.output, args.peers, args.listen, args.state_dir).await?;
        let started = Instant::now();
        let done = tokio::select! {
            status = watch_progress(&handle, true) => Some(status),
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(status) = done else {
            eprintln!("interrupted; run the same command again to resume");
            session.shutdown().await;
            bail!("download interrupted");
        };
        print_summary(&status, started.elapsed());
        if args.seed {
            eprintln!("seeding on {}; Ctrl-C to stop", session.listen_addr());
            let _ = tokio::signal::ctrl_c().await;
        }
        session.shutdown().await;
        Ok(())
    })
}

pub fn seed(args: SeedArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        let (session, handle) =
            start(&args.torrent, &args.data_dir, args.peers, args.listen, args.state_dir).await?;
        let mut rx = handle.watch_status();
        let status = rx
            .wait_for(|s| s.state != TorrentState::Checking)
            .await
            .map(|s| s.clone())?;
        if status.verified_pieces < status.piece_count {
            eprintln!(
                "warning: only {} of {} pieces of {} are present and correct in {}; serving those",
                status.verified_pieces,
                status.piece_count,
                status.name,
                args.data_dir.display()
            );
        }
        eprintln!(
            "seeding {} on {}; Ctrl-C to stop",
            status.name,
            session.listen_addr()
        );
        let _ = tokio::signal::ctrl_c().await;
        let last = handle.status();
        eprintln!(
            "uploaded {} in this session",
            human_bytes(last.uploaded_bytes)
        );
        session.shutdown().await;
        Ok(())
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

async fn start(
    torrent: &std::path::Path,
    dir: &std::path::Path,
    peers: Vec<SocketAddr>,
    listen: Option<SocketAddr>,
    state_dir: Option<PathBuf>,
) -> anyhow::Result<(Session, TorrentHandle)> {
    let metainfo = read_torrent_file(torrent)?;
    let session = start_session(listen, state_dir.or_else(default_state_dir)).await?;
    let add = AddTorrent {
        metainfo,
        download_dir: dir.to_path_buf(),
        peers,
        paused: false,
    };
    let handle = session
        .add_torrent(add)
        .await
        .with_context(|| format!("adding {}", torrent.display()))?;
    Ok((session, handle))
}

/// The largest .torrent file shoal reads (real ones are well under 10 MiB).
const MAX_TORRENT_FILE: u64 = 64 << 20;

fn read_torrent_file(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let len = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.len();
    if len > MAX_TORRENT_FILE {
        bail!("{} is {} bytes; a .torrent file over {} is refused", path.display(), len, human_bytes(MAX_TORRENT_FILE));
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// `$XDG_DATA_HOME/shoal`, else `~/.local/share/shoal`.
pub fn default_state_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local").join("share")))?;
    Some(base.join("shoal"))
}

async fn start_session(listen: Option<SocketAddr>, state_dir: Option<PathBuf>) -> anyhow::Result<Session> {
    let mut config = SessionConfig { state_dir, ..SessionConfig::default() };
    match listen {
        Some(addr) => {
            config.listen_addr = addr;
            Ok(Session::start(config).await?)
        }
        None => {
            config.listen_addr = SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT));
            match Session::start(config.clone()).await {
                Ok(session) => Ok(session),
                Err(_) => {
                    config.listen_addr.set_port(0);
                    Ok(Session::start(config).await?)
                }
            }
        }
    }
}

/// Shows progress until the torrent is complete; returns the final status.
async fn watch_progress(handle: &TorrentHandle, show: bool) -> TorrentStatus {
    let tty = show && std::io::stderr().is_terminal();
    let bar = if tty {
        ProgressBar::new(1)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut rx = handle.watch_status();
    let mut last_line = Instant::now();
    loop {
        let status = rx.borrow_and_update().clone();
        bar.set_prefix(if status.state == TorrentState::Checking {
            "checking"
        } else {
            "download"
        });
        bar.set_length(status.wanted_bytes.max(1));
        bar.set_position(status.wanted_bytes - status.left_bytes);
        bar.set_message(rate_line(&status));
        if status.is_complete() {
            bar.finish_and_clear();
            return status;
        }
        if !tty && last_line.elapsed() >= Duration::from_secs(10) {
            eprintln!(
                "{} {}/{} {}",
                status.name,
                human_bytes(status.wanted_bytes - status.left_bytes),
                human_bytes(status.wanted_bytes),
                rate_line(&status)
            );
            last_line = Instant::now();
        }
        if rx.changed().await.is_err() {
            bar.finish_and_clear();
            return handle.status();
        }
    }
}

fn rate_line(s: &TorrentStatus) -> String {
    let eta = if s.download_rate > 0 {
        let secs = s.left_bytes / s.download_rate;
        format!("eta {}s", secs)
    } else {
        "eta -".to_owned()
    };
    format!(
        "down {}/s up {}/s peers {} {}",
        human_bytes(s.download_rate),
        human_bytes(s.upload_rate),
        s.peers,
        eta
    )
}

fn print_summary(status: &TorrentStatus, elapsed: Duration) {
    let secs = elapsed.as_secs_f64().max(0.001);
    eprintln!(
        "done: {} ({}) in {:.1}s, {}/s average, {} received, {} hash failures",
        status.name,
        human_bytes(status.wanted_bytes),
        secs,
        human_bytes((status.downloaded_bytes as f64 / secs) as u64),
        human_bytes(status.downloaded_bytes),
        status.hash_failures
    );
}

/// `1536` → `1.5 KiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
