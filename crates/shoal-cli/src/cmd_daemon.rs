//! `shoal daemon`: the long-running service (web UI, JSON API, Transmission RPC, metrics).
//!
//! Runs with no configuration (XDG folders, HTTP on 127.0.0.1:9091); `--config FILE` reads a
//! TOML file (`--print-config` shows every setting with its default), and the flags below
//! override it. Stops on Ctrl-C or SIGTERM, saving every torrent's state first.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use shoal::service::config::{DaemonConfig, XdgPaths, DEFAULT_CONFIG_TOML};
use shoal::service::credentials::Credentials;

#[derive(Debug, clap::Args)]
pub struct DaemonArgs {
    /// TOML configuration file [default: $XDG_CONFIG_HOME/shoal/daemon.toml when it exists].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address of the HTTP server [default: 127.0.0.1:9091].
    #[arg(long, value_name = "IP:PORT")]
    pub http_addr: Option<SocketAddr>,
    /// Address peers connect to [default: 0.0.0.0:51413].
    #[arg(long, value_name = "IP:PORT")]
    pub peer_addr: Option<SocketAddr>,
    /// Folder for the torrent list, resume files and credentials.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Default folder for downloads (also the allowed root unless the config names others).
    #[arg(long, value_name = "DIR")]
    pub download_dir: Option<PathBuf>,
    /// Do not run a DHT node.
    #[arg(long)]
    pub no_dht: bool,
    /// Print the documented default configuration and exit.
    #[arg(long)]
    pub print_config: bool,
}

pub fn run(args: DaemonArgs) -> anyhow::Result<()> {
    if args.print_config {
        print!("{DEFAULT_CONFIG_TOML}");
        return Ok(());
    }
    let config = build_config(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let daemon = shoal_http::daemon::Daemon::start(config.clone())
            .await
            .context("starting the daemon")?;
        eprintln!(
            "shoal daemon: web UI and RPC on http://{}/",
            daemon.http_addr()
        );
        if !daemon.http_addr().ip().is_loopback() {
            eprintln!(
                "requests from other machines need the credentials in {}",
                Credentials::path_in(&config.state_dir).display()
            );
        }
        wait_for_signal().await;
        eprintln!("stopping: saving state and telling trackers");
        daemon.stop().await;
        anyhow::Ok(())
    })
}

fn build_config(args: &DaemonArgs) -> anyhow::Result<DaemonConfig> {
    let default_file = XdgPaths::from_env().config_file;
    let mut config = match &args.config {
        Some(path) => DaemonConfig::load(path)?,
        None if default_file.exists() => DaemonConfig::load(&default_file)?,
        None => DaemonConfig::default(),
    };
    if let Some(addr) = args.http_addr {
        config.http_addr = addr;
    }
    if let Some(addr) = args.peer_addr {
        config.peer_addr = addr;
    }
    if let Some(dir) = &args.state_dir {
        config.state_dir = dir.clone();
    }
    if let Some(dir) = &args.download_dir {
        config.download_dir = dir.clone();
    }
    if args.no_dht {
        config.dht = false;
    }
    Ok(config)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
