//! `shoal create PATH`: make a `.torrent` from a file or folder.
//!
//! Trackers: each `--tracker` is one tier, in order; `--tracker "URL1,URL2"` puts both URLs in
//! the same tier (clients try them in random order, BEP 12). Only http, https and udp URLs are
//! accepted. `--piece-size` takes bytes or a binary unit (`256K`, `1M`, `4MiB`), or `auto`
//! (the default: see `shoal::create::piece_size`). The output goes to `NAME.torrent` in the
//! current folder unless `-o` says otherwise, and an existing file is never overwritten without
//! `--force`. A progress bar is drawn when stderr is a terminal; piped, the command is silent
//! until it prints its summary on stdout.

use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use shoal::create::{auto_piece_len, check_piece_len, hash_content, Content, CreateOptions};
use shoal_proto::magnet::Magnet;

use crate::units::{human_size, parse_size};

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The file or folder to share.
    pub path: PathBuf,
    /// Tracker URL; repeat for more tiers, or "URL1,URL2" for two URLs in one tier.
    #[arg(short = 't', long = "tracker", value_name = "URL")]
    pub trackers: Vec<String>,
    /// Piece size: bytes, or 256K, 1M, 4MiB...; "auto" aims at 1,000-2,000 pieces.
    #[arg(
        short = 'p',
        long = "piece-size",
        value_name = "SIZE|auto",
        default_value = "auto"
    )]
    pub piece_size: String,
    /// Mark the torrent private (BEP 27): peers come only from its trackers.
    #[arg(long)]
    pub private: bool,
    /// Web seed URL (BEP 19); repeatable.
    #[arg(short = 'w', long = "web-seed", value_name = "URL")]
    pub web_seeds: Vec<String>,
    /// Free-text comment stored in the torrent.
    #[arg(short = 'c', long)]
    pub comment: Option<String>,
    /// Leave out the creation date, so the same input always gives the same bytes.
    #[arg(long)]
    pub no_date: bool,
    /// Where to write the torrent [default: NAME.torrent in the current folder].
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Overwrite the output file if it exists.
    #[arg(short = 'f', long)]
    pub force: bool,
}

pub fn run(args: CreateArgs) -> anyhow::Result<()> {
    let options = options_from_args(&args)?;
    let content = Content::scan(&args.path)?;
    let piece_len = match options.piece_len {
        Some(len) => check_piece_len(len)?,
        None => auto_piece_len(content.total_len()),
    };
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.torrent", content.name())));
    if output.exists() && !args.force {
        bail!(
            "{} already exists (use --force to overwrite it)",
            output.display()
        );
    }

    let started = Instant::now();
    let bar = progress_bar(content.total_len());
    let hashed = hash_content(content, piece_len, &|bytes| bar.inc(bytes));
    bar.finish_and_clear();
    let torrent = shoal::create::build_torrent(&hashed?, &options)?;
    let elapsed = started.elapsed();

    write_output(&output, &torrent.bytes, args.force)?;
    let mut magnet = Magnet::new(torrent.info_hash);
    magnet.display_name = Some(torrent.name.clone());
    magnet.trackers = options.trackers.iter().flatten().cloned().collect();
    magnet.web_seeds = options.web_seeds.clone();
    let mut out = std::io::stdout().lock();
    writeln!(out, "created {}", output.display())?;
    writeln!(out, "name:       {}", torrent.name)?;
    writeln!(out, "info hash:  {}", torrent.info_hash)?;
    writeln!(
        out,
        "size:       {} ({} bytes)",
        human_size(torrent.total_len),
        torrent.total_len
    )?;
    writeln!(
        out,
        "pieces:     {} x {}",
        torrent.piece_count,
        human_size(u64::from(torrent.piece_len))
    )?;
    let rate = torrent.total_len as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6;
    writeln!(
        out,
        "hashed in:  {:.2} s ({rate:.0} MB/s)",
        elapsed.as_secs_f64()
    )?;
    writeln!(out, "magnet:     {magnet}")?;
    Ok(())
}

fn options_from_args(args: &CreateArgs) -> anyhow::Result<CreateOptions> {
    let piece_len = if args.piece_size.eq_ignore_ascii_case("auto") {
        None
    } else {
        let bytes = parse_size(&args.piece_size).context("bad --piece-size")?;
        Some(u64::from(check_piece_len(bytes)?))
    };
    let mut trackers = Vec::new();
    for tier_text in &args.trackers {
        let tier: Vec<String> = tier_text
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(str::to_owned)
            .collect();
        for url in &tier {
            check_url(url, &["http", "https", "udp"], "tracker")?;
        }
        if !tier.is_empty() {
            trackers.push(tier);
        }
    }
    for url in &args.web_seeds {
        check_url(url, &["http", "https"], "web seed")?;
    }
    let creation_date = if args.no_date {
        None
    } else {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("system clock before 1970")?;
        Some(i64::try_from(now.as_secs()).context("system clock out of range")?)
    };
    Ok(CreateOptions {
        piece_len,
        trackers,
        web_seeds: args.web_seeds.clone(),
        private: args.private,
        comment: args.comment.clone(),
        created_by: Some(format!("shoal/{}", env!("CARGO_PKG_VERSION"))),
        creation_date,
    })
}

/// Refuses URLs other clients would drop: wrong scheme, nothing after `://`, spaces.
fn check_url(url: &str, schemes: &[&str], what: &str) -> anyhow::Result<()> {
    let ok = url.split_once("://").is_some_and(|(scheme, rest)| {
        schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme))
            && !rest.is_empty()
            && !url.chars().any(|c| c.is_whitespace() || c.is_control())
    });
    if !ok {
        bail!(
            "{what} URL {url:?} is not a {} URL",
            schemes.join(", ").replace(", udp", " or udp")
        );
    }
    Ok(())
}

fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "hashing [{bar:40}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Writes the torrent; without `force`, creating the file fails if it appeared meanwhile.
fn write_output(path: &PathBuf, bytes: &[u8], force: bool) -> anyhow::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_urls_are_checked() {
        assert!(check_url(
            "udp://t.example:1/announce",
            &["http", "https", "udp"],
            "tracker"
        )
        .is_ok());
        assert!(check_url("HTTPS://t.example/", &["http", "https", "udp"], "tracker").is_ok());
        for bad in ["wss://t.example", "t.example", "http://", "http://a b/"] {
            let err = check_url(bad, &["http", "https", "udp"], "tracker").unwrap_err();
            assert!(err.to_string().contains("http, https or udp"), "{err}");
        }
    }
}
