//! The `shoal` command line: parses arguments and calls the `shoal` library. Nothing else.
//!
//! One file per subcommand (`cmd_*.rs`), each exposing an `Args` struct and a `run` function;
//! this file only dispatches. Errors are printed once, with their causes, and exit with code 1.

mod cmd_create;
mod cmd_info;
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
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Create(args) => cmd_create::run(args),
        Command::Info(args) => cmd_info::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("shoal: error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
