//! The `shoal` command line: parses arguments and calls the `shoal` library. Nothing else.
//!
//! One file per subcommand (`cmd_*.rs`), each exposing an `Args` struct and a `run` function;
//! this file only dispatches. Errors are printed once, with their causes, and exit with code 1.

mod cmd_create;
mod cmd_daemon;
mod cmd_demo;
mod cmd_download;
mod cmd_info;
mod tracker_lines;
mod units;

use clap::{Parser, Subcommand};

/// shoal: a BitTorrent peer.
#[derive(Debug, Parser)]
#[command(name = "shoal", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make a .torrent from a file or folder.
    Create(cmd_create::CreateArgs),
    /// Show what a .torrent file or a magnet link holds.
    Info(cmd_info::InfoArgs),
    /// Download a torrent's content from peers, verifying every piece.
    Download(cmd_download::DownloadArgs),
    /// Check a torrent's data, then serve it to peers until stopped.
    Seed(cmd_download::SeedArgs),
    /// Seed a generated sample from one shoal and download it with another, on 127.0.0.1.
    Demo(cmd_demo::DemoArgs),
    /// Run as a service: web UI, JSON API and Transmission RPC on 127.0.0.1:9091.
    Daemon(cmd_daemon::DaemonArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Create(args) => cmd_create::run(args),
        Command::Info(args) => cmd_info::run(args),
        Command::Download(args) => cmd_download::download(args),
        Command::Seed(args) => cmd_download::seed(args),
        Command::Demo(args) => cmd_demo::demo(args),
        Command::Daemon(args) => cmd_daemon::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The reader went away (`shoal info x.torrent | head`): as for any Unix filter, that is
        // no error of ours.
        Err(error) if is_broken_pipe(&error) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("shoal: error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Logs to stderr, filtered by `RUST_LOG` (default: warnings only, so progress output stays clean).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
