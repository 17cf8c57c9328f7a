//! What an interop test seeds: one file or a folder of files, written under `WORK/seed` and
//! turned into a torrent, plus where a leecher puts it.
//!
//! Single-file torrents are named after the file (`data.bin`), folder torrents after the folder
//! (`data`, laid out by [`write_dataset`]); either way the leecher's copy is
//! `OUT_DIR/<name>`, which [`Seeded::copy_in`] gives.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::data::{make_torrent, write_dataset, write_random_file, TorrentFile, WorkDir};

/// The shape of a data set.
#[derive(Debug, Clone, Copy)]
pub enum Content<'a> {
    /// One file of this many bytes (`data.bin`).
    SingleFile(u64),
    /// A folder `data` with one file per size (see [`write_dataset`]).
    Folder(&'a [u64]),
}

/// Data written under `WORK/seed` and its torrent.
#[derive(Debug, Clone)]
pub struct Seeded {
    /// The content path (file or folder) whose last component is the torrent's name.
    pub data: PathBuf,
    /// The folder a seeder serves from (the parent of `data`).
    pub seed_dir: PathBuf,
    pub torrent: TorrentFile,
}

impl Seeded {
    /// Writes `content` (bytes derived from `seed`) under `work/seed` and makes a torrent of it
    /// with `piece_size`-byte pieces at `work/data.torrent`.
    pub fn write(
        work: &WorkDir,
        content: Content<'_>,
        piece_size: u32,
        seed: u64,
    ) -> Result<Seeded> {
        let seed_dir = work.join("seed");
        let data = match content {
            Content::SingleFile(size) => {
                let path = seed_dir.join("data.bin");
                write_random_file(&path, size, seed)?;
                path
            }
            Content::Folder(sizes) => write_dataset(&seed_dir, "data", sizes, seed)?,
        };
        let torrent = make_torrent(&data, piece_size, &work.join("data.torrent"))?;
        Ok(Seeded {
            data,
            seed_dir,
            torrent,
        })
    }

    /// Where a leecher downloading into `out_dir` puts the content.
    pub fn copy_in(&self, out_dir: &Path) -> Result<PathBuf> {
        let name = self.data.file_name().context("content path has no name")?;
        Ok(out_dir.join(name))
    }
}
