//! Walks a file or folder into the ordered file list of a new torrent.
//!
//! The order is deterministic: within each folder, entries are sorted by name (byte order of
//! their UTF-8), and folders are entered depth first, so the list is sorted by path component by
//! component (the order BitTorrent v2 file trees use). Nothing is skipped silently:
//! - hidden files (`.name`) are included, as mktorrent and libtorrent include them;
//! - symbolic links are followed (to a file: its content is shared under the link's name; to a
//!   folder: walked like a folder). A dangling link, or a link to a folder that contains it
//!   (a loop), is an error;
//! - empty files are included with length 0;
//! - anything that is not a regular file or a folder (socket, FIFO, device) is an error, as is a
//!   name that is not UTF-8 (a torrent's paths are UTF-8 strings);
//! - empty folders cannot be expressed in a torrent and so contribute nothing; a walk that finds
//!   no file at all is [`CreateError::NoFiles`].

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::CreateError;

/// Deepest folder nesting walked; deeper is [`CreateError::TooDeep`].
const MAX_DEPTH: usize = 256;
/// Folders with at least this many entries have them statted in parallel.
const PARALLEL_STAT_MIN: usize = 64;

/// One file of the content, in torrent order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentFile {
    /// Path components below the torrent's root folder; empty for a single-file torrent.
    pub path: Vec<String>,
    /// Where the bytes are read from.
    pub disk_path: PathBuf,
    /// Length in bytes, as found by the walk.
    pub len: u64,
}

/// The files a torrent will describe, found by [`Content::scan`].
#[derive(Clone, Debug)]
pub struct Content {
    name: String,
    single_file: bool,
    files: Vec<ContentFile>,
    total_len: u64,
}

impl Content {
    /// Walks `path`: a file gives a single-file torrent named after it, a folder a multi-file
    /// torrent named after the folder.
    pub fn scan(path: &Path) -> Result<Self, CreateError> {
        let name = content_name(path)?;
        let meta = fs::metadata(path).map_err(|source| CreateError::io(path, source))?;
        let (single_file, files) = if meta.is_file() {
            let file = ContentFile {
                path: Vec::new(),
                disk_path: path.to_path_buf(),
                len: meta.len(),
            };
            (true, vec![file])
        } else if meta.is_dir() {
            let mut walker = Walker {
                files: Vec::new(),
                ancestors: Vec::new(),
            };
            walker.walk_dir(path, &meta, &mut Vec::new())?;
            (false, walker.files)
        } else {
            return Err(CreateError::UnsupportedFileType {
                path: path.to_path_buf(),
            });
        };
        if files.is_empty() {
            return Err(CreateError::NoFiles {
                path: path.to_path_buf(),
            });
        }
        let total_len = files.iter().map(|f| f.len).sum();
        if total_len == 0 {
            return Err(CreateError::EmptyContent {
                path: path.to_path_buf(),
            });
        }
        Ok(Content {
            name,
            single_file,
            files,
            total_len,
        })
    }

    /// The torrent's `name`: the file or folder name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// True when the torrent is one file (no `files` list).
    pub fn is_single_file(&self) -> bool {
        self.single_file
    }
    /// Files in torrent order.
    pub fn files(&self) -> &[ContentFile] {
        &self.files
    }
    /// Sum of all file lengths; at least 1.
    pub fn total_len(&self) -> u64 {
        self.total_len
    }
}

/// The last component of `path`, or of its canonical form for `.`-like paths.
fn content_name(path: &Path) -> Result<String, CreateError> {
    let canonical;
    let file_name = match path.file_name() {
        Some(name) => name,
        None => {
            canonical = fs::canonicalize(path).map_err(|source| CreateError::io(path, source))?;
            canonical.file_name().ok_or_else(|| CreateError::NoName {
                path: path.to_path_buf(),
            })?
        }
    };
    file_name
        .to_str()
        .map(str::to_owned)
        .ok_or_else(|| CreateError::NonUtf8Name {
            path: path.to_path_buf(),
        })
}

struct Walker {
    files: Vec<ContentFile>,
    /// (device, inode) of each folder being walked, to detect symlink loops.
    ancestors: Vec<(u64, u64)>,
}

impl Walker {
    fn walk_dir(
        &mut self,
        dir: &Path,
        meta: &fs::Metadata,
        prefix: &mut Vec<String>,
    ) -> Result<(), CreateError> {
        let id = (meta.dev(), meta.ino());
        if self.ancestors.contains(&id) {
            return Err(CreateError::SymlinkLoop {
                path: dir.to_path_buf(),
            });
        }
        if self.ancestors.len() >= MAX_DEPTH {
            return Err(CreateError::TooDeep {
                path: dir.to_path_buf(),
                max: MAX_DEPTH,
            });
        }
        self.ancestors.push(id);
        let entries = sorted_entries(dir)?;
        let metas = entry_metadata(&entries);
        for ((name, entry_path), entry_meta) in entries.into_iter().zip(metas) {
            // `fs::metadata` follows symlinks; a dangling one fails here with the link's path.
            let entry_meta = entry_meta.map_err(|source| CreateError::io(&entry_path, source))?;
            prefix.push(name);
            if entry_meta.is_file() {
                let file = ContentFile {
                    path: prefix.clone(),
                    disk_path: entry_path,
                    len: entry_meta.len(),
                };
                self.files.push(file);
            } else if entry_meta.is_dir() {
                self.walk_dir(&entry_path, &entry_meta, prefix)?;
            } else {
                return Err(CreateError::UnsupportedFileType { path: entry_path });
            }
            prefix.pop();
        }
        self.ancestors.pop();
        Ok(())
    }
}

/// The metadata of each entry (symlinks followed), in order. A folder of many entries is
/// statted on all cores: the walk runs before hashing can start, so on 2,445 files its ~12 ms
/// on one core were time the other core sat idle.
fn entry_metadata(entries: &[(String, PathBuf)]) -> Vec<std::io::Result<fs::Metadata>> {
    if entries.len() < PARALLEL_STAT_MIN {
        return entries.iter().map(|(_, path)| fs::metadata(path)).collect();
    }
    entries
        .par_iter()
        .map(|(_, path)| fs::metadata(path))
        .collect()
}

/// The entries of `dir` as (UTF-8 name, path), sorted by name.
fn sorted_entries(dir: &Path) -> Result<Vec<(String, PathBuf)>, CreateError> {
    let read_dir = fs::read_dir(dir).map_err(|source| CreateError::io(dir, source))?;
    let mut entries = Vec::new();
    for entry in read_dir {
        let entry = entry.map_err(|source| CreateError::io(dir, source))?;
        let path = entry.path();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| CreateError::NonUtf8Name { path: path.clone() })?;
        entries.push((name, path));
    }
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}
