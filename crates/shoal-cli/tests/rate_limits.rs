//! `--max-up` and `--max-down` hold on a real transfer: a shoal seeder serves 8 MiB to a shoal
//! leecher on loopback (which moves hundreds of MB/s unlimited) with one side limited to 1 MiB/s,
//! and the download cannot finish faster than the limit allows.
//!
//! The assertion is a lower bound on the duration (a correctness check: bytes did not pass faster
//! than the limit), never an upper bound: 70% of the ideal 8 s, below the 7.5 s the limiter's
//! half-second burst permits, so a slow CI machine can only make the transfer longer. The data
//! must still arrive intact.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use support::*;

const SHOAL: &str = env!("CARGO_BIN_EXE_shoal");
const DATA_LEN: u64 = 8 << 20;
const LIMIT: &str = "1M";
const LIMIT_BYTES_PER_SEC: f64 = (1 << 20) as f64;
/// Generous: at 1 MiB/s the transfer takes about 8 s.
const TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn seeder_max_up_bounds_the_transfer_time() -> anyhow::Result<()> {
    let took = limited_transfer("max-up", &["--max-up", LIMIT], &[])?;
    assert_at_least_the_limit_allows(took);
    Ok(())
}

#[test]
fn leecher_max_down_bounds_the_transfer_time() -> anyhow::Result<()> {
    let took = limited_transfer("max-down", &[], &["--max-down", LIMIT])?;
    assert_at_least_the_limit_allows(took);
    Ok(())
}

fn assert_at_least_the_limit_allows(took: Duration) {
    let ideal = DATA_LEN as f64 / LIMIT_BYTES_PER_SEC;
    eprintln!("8 MiB at a 1 MiB/s limit took {took:?} (ideal {ideal:.1} s)");
    assert!(
        took.as_secs_f64() >= 0.7 * ideal,
        "8 MiB arrived in {took:?} through a 1 MiB/s limit: the limit did not hold"
    );
}

/// Seeds a fresh 8 MiB torrent with `seed_flags`, downloads it with `leech_flags`, checks the
/// result byte for byte, and returns how long the download took after the seeder was ready.
fn limited_transfer(
    label: &str,
    seed_flags: &[&str],
    leech_flags: &[&str],
) -> anyhow::Result<Duration> {
    let work = WorkDir::new(&format!("rate-{label}"))?;
    let content = write_dataset(&work.join("seed"), "data", &[DATA_LEN], 23)?;
    let torrent = create_torrent(&content, &work.join("data.torrent"))?;
    let seed_addr = loopback(1);
    let mut seed_cmd = Command::new(SHOAL);
    seed_cmd
        .arg("seed")
        .arg(&torrent)
        .arg(work.join("seed"))
        .args([
            "--listen",
            &seed_addr.to_string(),
            "--no-dht",
            "--state-dir",
        ])
        .arg(work.join("seed-state"))
        .args(seed_flags);
    let mut seeder = Proc::spawn("shoal-seed", seed_cmd, &work.join("seed.log"))?;
    seeder.wait_line("seeding ", TIMEOUT)?;

    let mut leech_cmd = Command::new(SHOAL);
    leech_cmd
        .arg("download")
        .arg(&torrent)
        .arg("-o")
        .arg(work.join("out"))
        .args(["--peer", &seed_addr.to_string()])
        .args([
            "--listen",
            &loopback(2).to_string(),
            "--no-dht",
            "--state-dir",
        ])
        .arg(work.join("leech-state"))
        .args(leech_flags);
    let started = Instant::now();
    let mut leecher = Proc::spawn("shoal-download", leech_cmd, &work.join("leech.log"))?;
    let status = leecher.wait_exit(TIMEOUT);
    let took = started.elapsed();
    let logs = || format!("{}{}", seeder.log_tail(), leecher.log_tail());
    match status {
        Ok(status) if status.success() => {}
        Ok(status) => anyhow::bail!("download failed ({status})\n{}", logs()),
        Err(error) => anyhow::bail!("{error}\n{}", logs()),
    }
    assert_same_tree(&content, &work.join("out").join("data"))?;
    seeder.kill();
    Ok(took)
}

fn create_torrent(content: &Path, out: &Path) -> anyhow::Result<PathBuf> {
    let status = Command::new(SHOAL)
        .args(["create", "--piece-size", "256K", "--no-date", "-o"])
        .arg(out)
        .arg(content)
        .status()?;
    anyhow::ensure!(status.success(), "shoal create failed");
    Ok(out.to_owned())
}
