//! `kill -9` in the middle of a download, then the same command again: the download completes,
//! the result equals the source byte for byte, and no piece the resume file had marked complete
//! at the moment of the kill fails its hash.

use crate::support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use sha1::{Digest, Sha1};
use shoal::storage::{load, ResumeExpect};
use shoal_proto::metainfo::Metainfo;
use support::*;

const SHOAL: &str = env!("CARGO_BIN_EXE_shoal");
const DATA_LEN: u64 = 192 << 20;

#[test]
fn kill_9_mid_download_then_resume_completes_without_trusting_bad_pieces() -> anyhow::Result<()> {
    let work = WorkDir::new("kill9")?;
    let content = write_dataset(&work.join("seed"), "data", &[DATA_LEN - 12_345, 12_345], 11)?;
    let torrent = work.join("data.torrent");
    let status = Command::new(SHOAL)
        .args(["create", "--piece-size", "256K", "--no-date", "-o"])
        .arg(&torrent)
        .arg(&content)
        .status()?;
    assert!(status.success(), "shoal create failed");
    let meta = Metainfo::from_bytes(&std::fs::read(&torrent)?)?;

    let seed_addr = loopback(1);
    let mut seed_cmd = Command::new(SHOAL);
    seed_cmd
        .arg("seed")
        .arg(&torrent)
        .arg(work.join("seed"))
        .arg("--listen")
        .arg(seed_addr.to_string())
        .arg("--no-dht")
        .arg("--state-dir")
        .arg(work.join("seed-state"));
    let mut seeder = Proc::spawn("shoal-seed", seed_cmd, &work.join("seed.log"))?;
    let out = work.join("out");
    let state = work.join("leech-state");
    let leech_cmd = |cmd: &mut Command| {
        cmd.arg("download")
            .arg(&torrent)
            .arg("-o")
            .arg(&out)
            .arg("--peer")
            .arg(seed_addr.to_string())
            .arg("--listen")
            .arg(loopback(2).to_string())
            .arg("--no-dht")
            .arg("--state-dir")
            .arg(&state)
            .stdin(Stdio::null());
    };

    // First run: kill -9 once at least a quarter of the data reached the file.
    let mut first = Command::new(SHOAL);
    leech_cmd(&mut first);
    let mut child = first.stderr(Stdio::null()).spawn()?;
    let big = out.join("data").join(file_name(&content, 0)?);
    let started = Instant::now();
    loop {
        let written = std::fs::metadata(&big)
            .map(|m| m.blocks() * 512)
            .unwrap_or(0);
        if written >= DATA_LEN / 4 {
            break;
        }
        if let Some(code) = child.try_wait()? {
            panic!("download ended ({code}) before it could be killed; make the data set larger");
        }
        assert!(
            started.elapsed().as_secs() < 120,
            "download made no progress; seeder log:\n{}",
            seeder.log_tail()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill()?; // SIGKILL
    child.wait()?;
    assert!(
        std::fs::metadata(&big)?.blocks() * 512 < DATA_LEN,
        "the kill came after the download had finished; the test proves nothing"
    );

    // Every piece the resume file marks as ours must pass its hash right now.
    let resume = find_resume_file(&state)?;
    let expect = ResumeExpect {
        info_hash: meta.info.info_hash(),
        piece_count: meta.info.piece_count(),
        file_count: meta.info.files().len() as u32,
    };
    let saved = load(&resume, &expect)?;
    assert!(
        !saved.clean_shutdown,
        "a killed process cannot have shut down cleanly"
    );
    let stream = read_stream(&out, &meta)?;
    let mut trusted = 0;
    for (index, have) in saved.have.iter().enumerate() {
        if *have {
            trusted += 1;
            let start = index * meta.info.piece_len() as usize;
            let end = (start + meta.info.piece_len() as usize).min(stream.len());
            let hash: [u8; 20] = Sha1::digest(&stream[start..end]).into();
            assert_eq!(
                hash,
                meta.info.piece_hashes()[index],
                "piece {index} was marked complete but fails its hash"
            );
        }
    }
    eprintln!(
        "resume file trusted {trusted} of {} pieces at the kill",
        meta.info.piece_count()
    );

    // Second run: same command, completes and matches the source.
    let mut second = Command::new(SHOAL);
    leech_cmd(&mut second);
    let output = second.output()?;
    assert!(
        output.status.success(),
        "resumed download failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_same_tree(&content, &out.join("data"))?;
    seeder.kill();
    Ok(())
}

fn file_name(dir: &Path, index: usize) -> anyhow::Result<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    names.sort();
    Ok(names[index].clone())
}

fn find_resume_file(state: &Path) -> anyhow::Result<PathBuf> {
    let dir = state.join("resume");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "resume"));
    anyhow::ensure!(
        files.len() == 1,
        "expected one resume file in {}, found {files:?}",
        dir.display()
    );
    Ok(files.remove(0))
}

/// The torrent's byte stream as it is on disk now (missing bytes read as zeros).
fn read_stream(root: &Path, meta: &Metainfo) -> anyhow::Result<Vec<u8>> {
    let mut stream = Vec::with_capacity(meta.info.total_len() as usize);
    for file in meta.info.files() {
        let path = root.join(file.path.iter().collect::<PathBuf>());
        let mut data = std::fs::read(&path).unwrap_or_default();
        data.resize(file.length as usize, 0);
        stream.extend_from_slice(&data);
    }
    Ok(stream)
}
