//! `shoal demo`: shoal's main job on an embedded default, with no config and no network.
//!
//! Makes a sample folder (deterministic pseudo-random files, one nested, one empty), creates its
//! torrent, seeds it from one shoal session and downloads it with a second one, both on
//! 127.0.0.1, then compares every file byte for byte and prints what it measured.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use shoal::api::AddTorrent;
use shoal::create::{create_torrent, CreateOptions};
use shoal::session::{Session, SessionConfig};

use crate::cmd_download::human_bytes;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Size of the sample data in MiB.
    #[arg(long, default_value_t = 64)]
    pub size_mib: u64,
    /// Keep the sample folder and the download (their path is printed).
    #[arg(long)]
    pub keep: bool,
}

pub fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let work = std::env::temp_dir().join(format!("shoal-demo-{}", std::process::id()));
    let result = run(&work, args.size_mib);
    if args.keep {
        eprintln!("kept {}", work.display());
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

fn run(work: &Path, size_mib: u64) -> anyhow::Result<()> {
    let source_dir = work.join("seed");
    let sample = source_dir.join("shoal-demo");
    write_sample(&sample, size_mib.max(1) << 20)?;
    let created = create_torrent(&sample, &CreateOptions::default(), &|_| {})?;
    eprintln!(
        "created {} ({}, {} pieces of {}), infohash {}",
        created.name,
        human_bytes(created.total_len),
        created.piece_count,
        human_bytes(u64::from(created.piece_len)),
        created.info_hash
    );
    let download_dir = work.join("download");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let elapsed = runtime.block_on(async {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let config = SessionConfig {
            listen_addr: loopback,
            ..SessionConfig::default()
        };
        let seeder = Session::start(config.clone()).await?;
        let seed_add = AddTorrent {
            metainfo: created.bytes.clone(),
            download_dir: source_dir.clone(),
            peers: vec![],
            paused: false,
        };
        seeder.add_torrent(seed_add).await?;
        let leecher = Session::start(config).await?;
        let started = Instant::now();
        let add = AddTorrent {
            metainfo: created.bytes.clone(),
            download_dir: download_dir.clone(),
            peers: vec![seeder.listen_addr()],
            paused: false,
        };
        let handle = leecher.add_torrent(add).await?;
        eprintln!(
            "seeding on {}, downloading from it...",
            seeder.listen_addr()
        );
        let status =
            tokio::time::timeout(std::time::Duration::from_secs(600), handle.wait_complete())
                .await
                .context("the download did not finish in 10 minutes")?;
        let elapsed = started.elapsed();
        leecher.shutdown().await;
        seeder.shutdown().await;
        if !status.is_complete() {
            bail!("the download stopped before completing: {:?}", status.error);
        }
        anyhow::Ok(elapsed)
    })?;
    let compared = compare_trees(&sample, &download_dir.join(&created.name))?;
    let secs = elapsed.as_secs_f64().max(0.001);
    println!(
        "downloaded {} in {:.2}s ({}/s); {} files identical to the source",
        human_bytes(created.total_len),
        secs,
        human_bytes((created.total_len as f64 / secs) as u64),
        compared
    );
    Ok(())
}

/// Writes the sample: two files of pseudo-random bytes (one in a subfolder, sizes not a multiple
/// of any piece size) and an empty file.
fn write_sample(dir: &Path, total: u64) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join("nested"))?;
    let small = total / 5 + 12_345;
    write_random(&dir.join("big.bin"), total - small, 1)?;
    write_random(&dir.join("nested").join("small.bin"), small, 2)?;
    std::fs::write(dir.join("empty.txt"), b"")?;
    Ok(())
}

fn write_random(path: &Path, len: u64, seed: u64) -> anyhow::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut left = len;
    let mut chunk = vec![0u8; 1 << 16];
    while left > 0 {
        for word in chunk.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    file.flush()?;
    Ok(())
}

/// Compares two folders file by file; returns how many files matched, or the first difference.
fn compare_trees(a: &Path, b: &Path) -> anyhow::Result<usize> {
    let mut count = 0;
    for entry in walk(a)? {
        let rel = entry.strip_prefix(a)?;
        let left = std::fs::read(&entry)?;
        let right = std::fs::read(b.join(rel))
            .with_context(|| format!("reading downloaded {}", rel.display()))?;
        if left != right {
            bail!("{} differs from the source", rel.display());
        }
        count += 1;
    }
    Ok(count)
}

fn walk(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(walk(&path)?);
        } else {
            out.push(path);
        }
    }
    Ok(out)
}
