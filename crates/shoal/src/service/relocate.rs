//! Moving a stopped torrent's files to another download folder.
//!
//! Only the torrent's own files move (padding files never exist on disk), each to the same
//! relative path under the new folder: renamed when both folders are on one file system, else
//! copied, synced, given the source's modification time and then deleted (so that the resume
//! file, which records sizes and modification times, still matches at the new place). Nothing
//! is overwritten: every target is checked first, and a folder on the way that resolves outside
//! the new folder (a symbolic link) is refused. When a file fails to move, those already moved
//! are put back. Folders the move leaves empty in the old place are removed.

use std::io;
use std::path::{Path, PathBuf};

use shoal_proto::metainfo::Metainfo;

use super::ServiceError;

/// Moves the torrent's files from `from_dir` to `to_dir` (see the module docs).
pub(super) fn move_files(
    from_dir: &Path,
    to_dir: &Path,
    meta: &Metainfo,
) -> Result<(), ServiceError> {
    let pairs: Vec<(PathBuf, PathBuf)> = file_paths(meta)
        .into_iter()
        .map(|rel| (from_dir.join(&rel), to_dir.join(&rel)))
        .filter(|(src, _)| src.exists())
        .collect();
    if let Some((_, dst)) = pairs.iter().find(|(_, dst)| dst.exists()) {
        return Err(io_error(
            format!("move to {}", dst.display()),
            io::Error::new(io::ErrorKind::AlreadyExists, "a file is already there"),
        ));
    }
    let mut moved: Vec<&(PathBuf, PathBuf)> = Vec::new();
    for pair in &pairs {
        let (src, dst) = pair;
        if let Err(error) = move_one(src, dst, to_dir) {
            for (back_src, back_dst) in moved.iter().rev() {
                if let Err(e) = move_one(back_dst, back_src, from_dir) {
                    tracing::error!(path = %back_dst.display(), error = %e, "could not put a moved file back");
                }
            }
            return Err(io_error(
                format!("move {} to {}", src.display(), dst.display()),
                error,
            ));
        }
        moved.push(pair);
    }
    prune_empty_folders(from_dir, meta);
    Ok(())
}

/// Each non-padding file's path relative to the download folder.
fn file_paths(meta: &Metainfo) -> Vec<PathBuf> {
    meta.info
        .files()
        .iter()
        .filter(|f| !f.attr.padding)
        .map(|f| f.path.iter().collect())
        .collect()
}

/// Moves one file, creating its folder under `root` (which it must not leave).
fn move_one(src: &Path, dst: &Path, root: &Path) -> io::Result<()> {
    let parent = dst.parent().unwrap_or(root);
    std::fs::create_dir_all(parent)?;
    let real_root = std::fs::canonicalize(root)?;
    if !std::fs::canonicalize(parent)?.starts_with(&real_root) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the target folder leads outside the download folder",
        ));
    }
    match std::fs::rename(src, dst) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::CrossesDevices => copy_then_delete(src, dst),
        Err(error) => Err(error),
    }
}

/// Copies `src` to `dst` (synced, with `src`'s modification time), then deletes `src`. A
/// partial copy is deleted.
pub(super) fn copy_then_delete(src: &Path, dst: &Path) -> io::Result<()> {
    let copy = || -> io::Result<()> {
        let modified = std::fs::metadata(src)?.modified()?;
        std::fs::copy(src, dst)?;
        let file = std::fs::OpenOptions::new().write(true).open(dst)?;
        file.set_modified(modified)?;
        file.sync_all()
    };
    if let Err(error) = copy() {
        let _ = std::fs::remove_file(dst);
        return Err(error);
    }
    if let Some(dir) = dst.parent().and_then(|d| std::fs::File::open(d).ok()) {
        let _ = dir.sync_all();
    }
    std::fs::remove_file(src)
}

/// Removes the folders under `download_dir` that held the torrent's files and are now empty
/// (never `download_dir` itself, never anything that is not empty).
pub(super) fn prune_empty_folders(download_dir: &Path, meta: &Metainfo) {
    let mut folders: Vec<PathBuf> = Vec::new();
    for rel in file_paths(meta) {
        let path = download_dir.join(rel);
        let mut parent = path.parent().map(Path::to_path_buf);
        while let Some(dir) = parent {
            if dir == download_dir || !dir.starts_with(download_dir) {
                break;
            }
            parent = dir.parent().map(Path::to_path_buf);
            folders.push(dir);
        }
    }
    folders.sort_by_key(|f| std::cmp::Reverse(f.components().count()));
    folders.dedup();
    for folder in folders {
        let _ = std::fs::remove_dir(folder);
    }
}

fn io_error(what: String, source: io::Error) -> ServiceError {
    ServiceError::Io { what, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_keeps_bytes_and_modification_time_and_deletes_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a.bin");
        let dst = dir.path().join("b.bin");
        std::fs::write(&src, b"payload").unwrap();
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        std::fs::File::options()
            .write(true)
            .open(&src)
            .unwrap()
            .set_modified(old)
            .unwrap();
        copy_then_delete(&src, &dst).unwrap();
        assert!(!src.exists());
        assert_eq!(std::fs::read(&dst).unwrap(), b"payload");
        assert_eq!(std::fs::metadata(&dst).unwrap().modified().unwrap(), old);
    }

    #[test]
    fn a_failed_copy_leaves_the_source_and_no_partial_target() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("missing.bin");
        let dst = dir.path().join("b.bin");
        assert!(copy_then_delete(&src, &dst).is_err());
        assert!(!dst.exists());
    }
}
