//! `shoal download` and `shoal seed`: run a session with one torrent, show progress, finish.
//!
//! `download` exits 0 once every piece is verified and written (or keeps seeding with `--seed`);
//! running it again on the same folder resumes, because the session checks the data already
//! there and only verified pieces count. `seed` checks the data, then serves it until Ctrl-C.
//! Both show every tracker's state (see [`crate::tracker_lines`]): under the progress bar on a
//! terminal, one line per announce result otherwise, and all of them in the final summary.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use shoal::api::{AddTorrent, TorrentState, TorrentStatus};
use shoal::dht::DhtConfig;
use shoal::session::{Session, SessionConfig, TorrentHandle};

use crate::tracker_lines;

/// The port shoal listens on when `--listen` is not given (the classic BitTorrent port). If it
/// is taken, a free port is used instead.
pub const DEFAULT_PORT: u16 = 6881;

#[derive(Debug, clap::Args)]
pub struct DownloadArgs {
    /// The .torrent file, or a magnet link (`magnet:?xt=urn:btih:...`).
    pub torrent: PathBuf,
    /// Folder that receives the torrent's file or top folder.
    #[arg(short = 'o', long = "output", default_value = ".")]
    pub output: PathBuf,
    /// Keep seeding after the download completes, until Ctrl-C.
    #[arg(long)]
    pub seed: bool,
    #[command(flatten)]
    pub peer: PeerOptions,
}

#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    /// The .torrent file.
    pub torrent: PathBuf,
    /// Folder that holds the torrent's file or top folder.
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub peer: PeerOptions,
}

/// How the session meets peers; shared by `download` and `seed`.
#[derive(Debug, Clone, clap::Args)]
pub struct PeerOptions {
    /// A peer to connect to (repeatable).
    #[arg(long = "peer", value_name = "IP:PORT")]
    pub peers: Vec<SocketAddr>,
    /// Address peers connect to [default: 0.0.0.0:6881, or a free port if taken].
    #[arg(long, value_name = "IP:PORT")]
    pub listen: Option<SocketAddr>,
    /// Folder for resume files [default: $XDG_DATA_HOME/shoal or ~/.local/share/shoal].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Do not use the Mainline DHT (private torrents never use it anyway).
    #[arg(long)]
    pub no_dht: bool,
    /// Announce and listen for peers on the local network (BEP 14 multicast).
    #[arg(long)]
    pub lsd: bool,
    /// Bootstrap the DHT from this node instead of the public routers (repeatable).
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "no_dht")]
    pub dht_bootstrap: Vec<String>,
    /// Download limit in bytes per second over all peers: 500K, 2M, 1048576 (0: none).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub max_down: Option<u64>,
    /// Upload limit in bytes per second over all peers: 500K, 2M, 1048576 (0: none).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub max_up: Option<u64>,
}

/// A rate on the command line: a size per second (binary units, see [`crate::units`]).
fn parse_rate(text: &str) -> Result<u64, String> {
    crate::units::parse_size(text.trim_end_matches("/s")).map_err(|e| e.to_string())
}

pub fn download(args: DownloadArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        let (session, handle) = start(&args.torrent, &args.output, args.peer).await?;
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
        tracker_lines::print_summary(&handle.trackers());
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
        let (session, handle) = start(&args.torrent, &args.data_dir, args.peer).await?;
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
        let log = tokio::spawn(tracker_lines::log_results(handle.watch_trackers()));
        let _ = tokio::signal::ctrl_c().await;
        log.abort();
        let last = handle.status();
        eprintln!(
            "uploaded {} in this session",
            human_bytes(last.uploaded_bytes)
        );
        tracker_lines::print_summary(&handle.trackers());
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
    options: PeerOptions,
) -> anyhow::Result<(Session, TorrentHandle)> {
    let peers = options.peers.clone();
    let link = torrent.to_str().filter(|t| t.starts_with("magnet:"));
    let metainfo = match link {
        Some(_) => None,
        None => Some(read_torrent_file(torrent)?),
    };
    let session = start_session(options).await?;
    let handle = match (link, metainfo) {
        (Some(link), _) => {
            eprintln!("fetching the torrent's metadata from peers...");
            session
                .add_magnet(link, dir.to_path_buf(), peers, false)
                .await
                .context("adding the magnet link")?
        }
        (None, Some(metainfo)) => {
            let add = AddTorrent {
                metainfo,
                download_dir: dir.to_path_buf(),
                peers,
                paused: false,
            };
            session
                .add_torrent(add)
                .await
                .with_context(|| format!("adding {}", torrent.display()))?
        }
        (None, None) => bail!("nothing to download"),
    };
    Ok((session, handle))
}

/// The largest .torrent file shoal reads (real ones are well under 10 MiB).
const MAX_TORRENT_FILE: u64 = 64 << 20;

fn read_torrent_file(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if len > MAX_TORRENT_FILE {
        bail!(
            "{} is {} bytes; a .torrent file over {} is refused",
            path.display(),
            len,
            human_bytes(MAX_TORRENT_FILE)
        );
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// `$XDG_DATA_HOME/shoal`, else `~/.local/share/shoal`.
pub fn default_state_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local").join("share"))
        })?;
    Some(base.join("shoal"))
}

async fn start_session(options: PeerOptions) -> anyhow::Result<Session> {
    let state_dir = options.state_dir.or_else(default_state_dir);
    let mut config = SessionConfig {
        state_dir,
        ..SessionConfig::default()
    };
    config.listen_addr = options
        .listen
        .unwrap_or(SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)));
    let dht = (!options.no_dht).then(|| dht_config(config.listen_addr, &options.dht_bootstrap));
    config.dht = dht.clone();
    config.lsd = options.lsd.then(shoal::lsd::LsdConfig::default);
    config.rate_limits = shoal::RateLimits {
        download: options.max_down.filter(|&b| b > 0),
        upload: options.max_up.filter(|&b| b > 0),
    };
    match Session::start(config.clone()).await {
        Ok(session) => Ok(session),
        Err(_) if options.listen.is_none() => {
            config.listen_addr.set_port(0);
            config.dht = dht.map(|mut d| {
                d.bind.set_port(0);
                d
            });
            Ok(Session::start(config).await?)
        }
        Err(error) => Err(error.into()),
    }
}

/// The DHT node shares the peer listen address (UDP beside TCP, as other clients do).
fn dht_config(listen: SocketAddr, bootstrap: &[String]) -> DhtConfig {
    let mut config = DhtConfig::default();
    if let SocketAddr::V4(v4) = listen {
        config.bind = v4;
    }
    if !bootstrap.is_empty() {
        config.bootstrap = bootstrap.to_vec();
        config.server_mode = true;
    }
    config
}

/// Shows progress until the torrent is complete; returns the final status. On a terminal each
/// tracker gets a line under the bar; otherwise a progress line goes out every 10 s and a
/// tracker line after each announce.
async fn watch_progress(handle: &TorrentHandle, show: bool) -> TorrentStatus {
    let tty = show && std::io::stderr().is_terminal();
    let lines = MultiProgress::with_draw_target(if tty {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let bar = lines.add(ProgressBar::new(1));
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut trackers = TrackerLines::new(&lines, handle.watch_trackers(), tty);
    let mut rx = handle.watch_status();
    let mut last_line = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
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
            trackers.clear();
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
        tokio::select! {
            changed = rx.changed() => if changed.is_err() {
                trackers.clear();
                bar.finish_and_clear();
                return handle.status();
            },
            _ = trackers.changed() => {}
            _ = tick.tick() => trackers.redraw(),
        }
    }
}

/// The tracker lines of [`watch_progress`]: bars without a bar under the progress bar on a
/// terminal, printed announce results otherwise.
struct TrackerLines {
    watch: shoal::tracker::TrackerWatch,
    open: bool,
    tty: bool,
    list: Vec<shoal::api::TrackerInfo>,
    shown: Vec<ProgressBar>,
    results: tracker_lines::NewResults,
    multi: MultiProgress,
}

impl TrackerLines {
    fn new(multi: &MultiProgress, watch: shoal::tracker::TrackerWatch, tty: bool) -> Self {
        let mut lines = TrackerLines {
            list: watch.get(),
            watch,
            open: true,
            tty,
            shown: Vec::new(),
            results: Default::default(),
            multi: multi.clone(),
        };
        lines.redraw();
        lines
    }

    /// Waits for a tracker change and shows it (forever once the announcer has ended).
    async fn changed(&mut self) {
        if !self.open {
            return std::future::pending().await;
        }
        match self.watch.changed().await {
            Some(list) => {
                self.list = list;
                self.redraw();
            }
            None => self.open = false,
        }
    }

    fn redraw(&mut self) {
        let now = tracker_lines::unix_now();
        if !self.tty {
            for t in self.results.take(&self.list) {
                eprintln!("{}", tracker_lines::describe(t, now));
            }
            return;
        }
        while self.shown.len() < self.list.len() {
            let line = self.multi.add(ProgressBar::new_spinner());
            line.set_style(
                ProgressStyle::with_template("  {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            self.shown.push(line);
        }
        for (line, t) in self.shown.iter().zip(&self.list) {
            line.set_message(tracker_lines::describe(t, now));
        }
    }

    fn clear(&mut self) {
        for line in self.shown.drain(..) {
            line.finish_and_clear();
        }
    }
}

fn rate_line(s: &TorrentStatus) -> String {
    let eta = match s.left_bytes.checked_div(s.download_rate) {
        Some(secs) => format!("eta {secs}s"),
        None => "eta -".to_owned(),
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

#[cfg(test)]
mod tests {
    use super::parse_rate;

    #[test]
    fn rates_parse_as_binary_sizes_per_second() {
        assert_eq!(parse_rate("500K"), Ok(500 * 1024));
        assert_eq!(parse_rate("2M"), Ok(2 << 20));
        assert_eq!(parse_rate("2M/s"), Ok(2 << 20));
        assert_eq!(parse_rate("0"), Ok(0));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("5X").is_err());
    }
}
