//! Path safety: turning a torrent's relative file path into a place inside the download folder.
//!
//! Guarantee: [`resolve`] only returns a path whose every existing component lies inside the
//! (canonical) download folder. It refuses absolute paths, `..` and `.` (metainfo already
//! sanitizes; this is the second line of defence), and walks the path one component at a time
//! with `symlink_metadata`, so that a symlink already in the folder (`folder/a -> /etc`) is only
//! followed when its canonical target is inside the folder. A dangling symlink is refused, since
//! opening it with `O_CREAT` would create its target wherever it points. Missing folders are
//! created one at a time, each inside a parent just checked, never with `create_dir_all`.
//!
//! Threat model: the torrent (its names) is hostile; the local filesystem is trusted apart from
//! what already sits in the download folder when a file is opened. A local process racing to swap
//! a checked folder for a symlink between the check and the `open` is out of scope.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use super::error::{IoOp, StorageError};
use super::layout::check_relative_path;

/// Resolves `relative` under `root`, which must be canonical (see [`fs::canonicalize`]).
/// With `create_folders`, missing parent folders are created; without it a missing one is a
/// `NotFound` IO error (which the engine sees as `Missing`). The file itself may or may not
/// exist; if it does it is a regular file or a symlink to one inside `root`.
pub(crate) fn resolve(
    root: &Path,
    relative: &Path,
    create_folders: bool,
) -> Result<PathBuf, StorageError> {
    check_relative_path(relative).map_err(|reason| StorageError::UnsafePath {
        path: relative.to_path_buf(),
        reason,
    })?;
    let names: Vec<&std::ffi::OsStr> = relative
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name),
            _ => None,
        })
        .collect();
    let Some((file_name, folders)) = names.split_last() else {
        return Err(StorageError::UnsafePath {
            path: relative.to_path_buf(),
            reason: "the path is empty",
        });
    };
    let mut current = root.to_path_buf();
    for folder in folders {
        current.push(folder);
        enter_folder(root, &current, create_folders)?;
    }
    current.push(file_name);
    check_file(root, &current)?;
    Ok(current)
}

/// Makes sure `path` is a folder inside `root`, creating it if allowed.
fn enter_folder(root: &Path, path: &Path, create: bool) -> Result<(), StorageError> {
    loop {
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => return Ok(()),
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = inside_target(root, path)?;
                return if target.is_dir() {
                    Ok(())
                } else {
                    Err(StorageError::WrongKind {
                        path: path.to_path_buf(),
                        expected: "folder",
                    })
                };
            }
            Ok(_) => {
                return Err(StorageError::WrongKind {
                    path: path.to_path_buf(),
                    expected: "folder",
                })
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound && create => {
                match fs::create_dir(path) {
                    Ok(()) => return Ok(()),
                    // Someone made it meanwhile: look again at what it is.
                    Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
                    Err(err) => return Err(StorageError::io(IoOp::CreateFolder, path, err)),
                }
            }
            Err(err) => return Err(StorageError::io(IoOp::Stat, path, err)),
        }
    }
}

/// Checks the final component: absent, a regular file, or a symlink to a file inside `root`.
fn check_file(root: &Path, path: &Path) -> Result<(), StorageError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(meta) if meta.file_type().is_symlink() => {
            let target = inside_target(root, path)?;
            if target.is_file() {
                Ok(())
            } else {
                Err(StorageError::WrongKind {
                    path: path.to_path_buf(),
                    expected: "file",
                })
            }
        }
        Ok(_) => Err(StorageError::WrongKind {
            path: path.to_path_buf(),
            expected: "file",
        }),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(StorageError::io(IoOp::Stat, path, err)),
    }
}

/// The canonical target of the symlink at `link`, if it lies inside `root`.
fn inside_target(root: &Path, link: &Path) -> Result<PathBuf, StorageError> {
    let target = fs::canonicalize(link).map_err(|_| StorageError::UnsafePath {
        path: link.to_path_buf(),
        reason: "it is a dangling symlink",
    })?;
    if target.starts_with(root) {
        Ok(target)
    } else {
        Err(StorageError::OutsideFolder {
            path: link.to_path_buf(),
            target,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct Dirs {
        _tmp: tempfile::TempDir,
        root: PathBuf,
        outside: PathBuf,
    }

    fn dirs() -> Dirs {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("downloads");
        let outside = tmp.path().join("outside");
        fs::create_dir(&root).unwrap();
        fs::create_dir(&outside).unwrap();
        let root = fs::canonicalize(root).unwrap();
        let outside = fs::canonicalize(outside).unwrap();
        Dirs {
            _tmp: tmp,
            root,
            outside,
        }
    }

    #[test]
    fn plain_paths_get_their_folders_created_inside() {
        let d = dirs();
        let path = resolve(&d.root, Path::new("a/b/c.bin"), true).unwrap();
        assert_eq!(path, d.root.join("a/b/c.bin"));
        assert!(d.root.join("a/b").is_dir());
        let missing = resolve(&d.root, Path::new("x/y"), false).unwrap_err();
        assert_eq!(
            missing.failure_kind(),
            shoal_engine::disk::DiskFailureKind::Missing
        );
        assert!(!d.root.join("x").exists());
    }

    #[test]
    fn absolute_and_dotdot_paths_are_refused() {
        let d = dirs();
        for bad in ["/etc/passwd", "../outside/x", "a/../../outside/x", "./x"] {
            let err = resolve(&d.root, Path::new(bad), true).unwrap_err();
            assert!(
                matches!(err, StorageError::UnsafePath { .. }),
                "{bad}: {err}"
            );
        }
        assert_eq!(fs::read_dir(&d.outside).unwrap().count(), 0);
    }

    #[test]
    fn a_symlinked_folder_leading_out_is_not_followed() {
        let d = dirs();
        symlink(&d.outside, d.root.join("evil")).unwrap();
        let err = resolve(&d.root, Path::new("evil/sub/file"), true).unwrap_err();
        assert!(matches!(err, StorageError::OutsideFolder { .. }), "{err}");
        let err = resolve(&d.root, Path::new("evil/file"), true).unwrap_err();
        assert!(matches!(err, StorageError::OutsideFolder { .. }), "{err}");
        assert_eq!(
            fs::read_dir(&d.outside).unwrap().count(),
            0,
            "nothing created outside"
        );
    }

    #[test]
    fn symlinked_files_leading_out_or_dangling_are_refused() {
        let d = dirs();
        fs::write(d.outside.join("secret"), b"x").unwrap();
        symlink(d.outside.join("secret"), d.root.join("file")).unwrap();
        let err = resolve(&d.root, Path::new("file"), true).unwrap_err();
        assert!(matches!(err, StorageError::OutsideFolder { .. }), "{err}");
        symlink(d.outside.join("not-yet"), d.root.join("dangling")).unwrap();
        let err = resolve(&d.root, Path::new("dangling"), true).unwrap_err();
        assert!(matches!(err, StorageError::UnsafePath { .. }), "{err}");
    }

    #[test]
    fn symlinks_that_stay_inside_are_followed() {
        let d = dirs();
        fs::create_dir(d.root.join("real")).unwrap();
        symlink(d.root.join("real"), d.root.join("alias")).unwrap();
        let path = resolve(&d.root, Path::new("alias/f"), true).unwrap();
        fs::write(&path, b"ok").unwrap();
        assert_eq!(fs::read(d.root.join("real/f")).unwrap(), b"ok");
    }

    #[test]
    fn a_file_in_the_way_of_a_folder_is_an_error() {
        let d = dirs();
        fs::write(d.root.join("a"), b"").unwrap();
        let err = resolve(&d.root, Path::new("a/b"), true).unwrap_err();
        assert!(
            matches!(
                err,
                StorageError::WrongKind {
                    expected: "folder",
                    ..
                }
            ),
            "{err}"
        );
        fs::create_dir(d.root.join("dir")).unwrap();
        let err = resolve(&d.root, Path::new("dir"), true).unwrap_err();
        assert!(
            matches!(
                err,
                StorageError::WrongKind {
                    expected: "file",
                    ..
                }
            ),
            "{err}"
        );
    }
}
