//! What the daemon keeps on disk besides resume files: the torrent list with each torrent's
//! settings, the session settings, the `.torrent` files, and the HTTP credentials.
//!
//! Layout under the state folder: `torrents.json` (the list), `settings.json`, `stats.json`
//! (transfer totals over all runs), `torrents/<hex>.torrent`, `credentials.toml` (mode 0600). Every file is written atomically: to a temporary file in the
//! same folder, synced, then renamed over the old one, so a crash leaves the old or the new
//! version, never half of one. A list that does not parse is kept aside (`.bad`) and the daemon
//! starts empty rather than refusing to start.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::types::{SessionSettings, TransferTotals};

/// Largest torrent list or settings file read back (a guard against a corrupted file).
const MAX_STATE_FILE: u64 = 64 * 1024 * 1024;

/// One torrent as the daemon remembers it across restarts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredTorrent {
    /// The Transmission-style number, stable across restarts.
    pub id: u32,
    pub info_hash: String,
    pub name: String,
    pub download_dir: PathBuf,
    #[serde(default)]
    pub paused: bool,
    /// Per file: downloaded or not; empty means every file is wanted.
    #[serde(default)]
    pub files_wanted: Vec<bool>,
    /// Per file: 1 (lowest) to 7 (highest); empty means every file at 4.
    #[serde(default)]
    pub file_priorities: Vec<u8>,
    #[serde(default)]
    pub sequential: bool,
    /// Bytes per second; `None`: no limit. Applied to the torrent when it starts.
    #[serde(default)]
    pub download_limit: Option<u64>,
    #[serde(default)]
    pub upload_limit: Option<u64>,
    /// Seconds since the Unix epoch.
    #[serde(default)]
    pub added_at: u64,
    /// The magnet link, while the torrent was added by one and its `.torrent` is not saved yet
    /// (a restart then fetches the metadata again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub magnet: Option<String>,
}

/// The torrent list file's contents.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TorrentList {
    pub next_id: u32,
    pub torrents: Vec<StoredTorrent>,
}

/// The state folder.
#[derive(Clone, Debug)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    pub fn new(dir: PathBuf) -> StateStore {
        StateStore { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn list_path(&self) -> PathBuf {
        self.dir.join("torrents.json")
    }

    fn metainfo_path(&self, info_hash: &str) -> PathBuf {
        self.dir
            .join("torrents")
            .join(format!("{info_hash}.torrent"))
    }

    /// The saved list; empty when there is none or it is unreadable (then kept aside as `.bad`).
    pub fn load_list(&self) -> TorrentList {
        load_json(&self.list_path()).unwrap_or_default()
    }

    pub fn save_list(&self, list: &TorrentList) -> std::io::Result<()> {
        write_atomic(
            &self.list_path(),
            &serde_json::to_vec_pretty(list).map_err(std::io::Error::other)?,
            false,
        )
    }

    pub fn load_settings(&self) -> Option<SessionSettings> {
        load_json(&self.dir.join("settings.json"))
    }

    pub fn save_settings(&self, settings: &SessionSettings) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(settings).map_err(std::io::Error::other)?;
        write_atomic(&self.dir.join("settings.json"), &bytes, false)
    }

    /// Transfer totals of the previous runs; zero when there are none (or they are unreadable).
    pub fn load_totals(&self) -> TransferTotals {
        load_json(&self.dir.join("stats.json")).unwrap_or_default()
    }

    pub fn save_totals(&self, totals: &TransferTotals) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(totals).map_err(std::io::Error::other)?;
        write_atomic(&self.dir.join("stats.json"), &bytes, false)
    }

    /// True when the torrent's `.torrent` copy is saved.
    pub fn has_metainfo(&self, info_hash: &str) -> bool {
        self.metainfo_path(info_hash).is_file()
    }

    pub fn save_metainfo(&self, info_hash: &str, bytes: &[u8]) -> std::io::Result<()> {
        write_atomic(&self.metainfo_path(info_hash), bytes, false)
    }

    pub fn load_metainfo(&self, info_hash: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.metainfo_path(info_hash))
    }

    /// Forgets a torrent: its `.torrent` copy and its resume files.
    pub fn forget(&self, info_hash: &str) {
        let _ = std::fs::remove_file(self.metainfo_path(info_hash));
        self.remove_resume_files(info_hash);
    }

    /// Deletes a torrent's resume files, so that the next add hashes everything on disk.
    /// (Moving a torrent's data moves its resume file instead; see `Session::resume_file`.)
    pub fn remove_resume_files(&self, info_hash: &str) {
        let Ok(entries) = std::fs::read_dir(self.dir.join("resume")) else {
            return;
        };
        let prefix = format!("{info_hash}-");
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

fn load_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let file = std::fs::File::open(path).ok()?;
    let mut bytes = Vec::new();
    use std::io::Read;
    file.take(MAX_STATE_FILE).read_to_end(&mut bytes).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(value) => Some(value),
        Err(error) => {
            tracing::error!(path = %path.display(), %error, "state file unreadable; kept aside as .bad");
            let _ = std::fs::rename(path, path.with_extension("bad"));
            None
        }
    }
}

/// Writes `bytes` to `path` atomically (temporary file, sync, rename, sync the folder). With
/// `private`, the file is created with mode 0600 (on Unix) before any byte is written.
pub fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Why a download folder was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathPolicyError {
    #[error("the folder {path} is not an absolute path")]
    NotAbsolute { path: PathBuf },
    #[error("the folder {path} contains `..`")]
    ParentComponent { path: PathBuf },
    #[error("the folder {path} is outside the allowed download roots")]
    OutsideRoots { path: PathBuf },
}

/// Checks that `requested` is an absolute folder, with no `..`, under one of `roots` once
/// symbolic links are resolved (for the part that exists). Returns the path to use.
pub fn check_download_dir(requested: &Path, roots: &[PathBuf]) -> Result<PathBuf, PathPolicyError> {
    if !requested.is_absolute() {
        return Err(PathPolicyError::NotAbsolute {
            path: requested.to_owned(),
        });
    }
    if requested.components().any(|c| c == Component::ParentDir) {
        return Err(PathPolicyError::ParentComponent {
            path: requested.to_owned(),
        });
    }
    let resolved = resolve_existing_prefix(requested);
    let inside = roots.iter().any(|root| {
        let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.clone());
        resolved.starts_with(&root)
    });
    if inside {
        Ok(requested.to_owned())
    } else {
        Err(PathPolicyError::OutsideRoots {
            path: requested.to_owned(),
        })
    }
}

/// Canonicalizes the longest existing ancestor of `path` and appends the rest unchanged.
fn resolve_existing_prefix(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(&existing) {
            let mut out = real;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (
            existing.file_name().map(|n| n.to_owned()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_dirs_outside_the_roots_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let roots = vec![root.path().to_path_buf()];
        assert!(check_download_dir(&root.path().join("a/b"), &roots).is_ok());
        assert!(check_download_dir(root.path(), &roots).is_ok());
        assert!(matches!(
            check_download_dir(other.path(), &roots),
            Err(PathPolicyError::OutsideRoots { .. })
        ));
        assert!(matches!(
            check_download_dir(&root.path().join("../x"), &roots),
            Err(PathPolicyError::ParentComponent { .. })
        ));
        assert!(matches!(
            check_download_dir(Path::new("rel"), &roots),
            Err(PathPolicyError::NotAbsolute { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_inside_a_root_pointing_out_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(other.path(), root.path().join("link")).unwrap();
        let roots = vec![root.path().to_path_buf()];
        assert!(check_download_dir(&root.path().join("link/sub"), &roots).is_err());
    }

    #[test]
    fn list_round_trips_and_a_corrupt_list_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path().to_path_buf());
        assert_eq!(store.load_list(), TorrentList::default());
        let list = TorrentList {
            next_id: 2,
            torrents: vec![StoredTorrent {
                id: 1,
                info_hash: "ab".repeat(20),
                name: "x".into(),
                download_dir: "/tmp".into(),
                paused: true,
                files_wanted: vec![false, true],
                file_priorities: vec![4, 7],
                sequential: true,
                download_limit: Some(10),
                upload_limit: None,
                added_at: 5,
                magnet: None,
            }],
        };
        store.save_list(&list).unwrap();
        assert_eq!(store.load_list(), list);
        let bytes = std::fs::read(dir.path().join("torrents.json")).unwrap();
        std::fs::write(dir.path().join("torrents.json"), &bytes[..bytes.len() / 2]).unwrap();
        assert_eq!(store.load_list(), TorrentList::default());
        assert!(dir.path().join("torrents.bad").exists());
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        write_atomic(&path, b"x", true).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
