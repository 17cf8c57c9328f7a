//! The small file that carries DHT nodes from one run to the next, so that a restart bootstraps
//! from nodes it already knew instead of (only) the public routers.
//!
//! Format: UTF-8 text, a first line `# shoal dht nodes v1`, then one `a.b.c.d:port` per line.
//! [`save_nodes`] writes a temporary file in the same folder, syncs it and renames it over the
//! old one, so a crash leaves either the old or the new list, never half of one. [`load_nodes`]
//! fails safe: a missing file is an empty list, a file over [`MAX_NODES_FILE_LEN`] bytes is
//! refused before it is read, lines that are not an IPv4 socket address (or have port 0) are
//! skipped, duplicates are dropped and at most [`MAX_SAVED_NODES`] nodes are kept.

use std::collections::HashSet;
use std::io::{Read as _, Write as _};
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};

/// Most nodes written or read.
pub const MAX_SAVED_NODES: usize = 400;
/// Largest nodes file read, in bytes (400 lines of at most 21 bytes fit with room to spare).
pub const MAX_NODES_FILE_LEN: u64 = 32 * 1024;

const HEADER: &str = "# shoal dht nodes v1";

/// Why the nodes file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodesFileError {
    #[error("cannot read DHT nodes file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write DHT nodes file {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("DHT nodes file {path} is {len} bytes, over the {max}-byte limit")]
    TooLarge { path: PathBuf, len: u64, max: u64 },
    #[error("DHT nodes file {path} does not start with {HEADER:?}")]
    BadHeader { path: PathBuf },
}

/// Reads the nodes saved by [`save_nodes`]; a missing file gives an empty list.
pub fn load_nodes(path: &Path) -> Result<Vec<SocketAddrV4>, NodesFileError> {
    let read_err = |source| NodesFileError::Read {
        path: path.to_owned(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(read_err(error)),
    };
    let len = file.metadata().map_err(read_err)?.len();
    if len > MAX_NODES_FILE_LEN {
        return Err(NodesFileError::TooLarge {
            path: path.to_owned(),
            len,
            max: MAX_NODES_FILE_LEN,
        });
    }
    let mut bytes = Vec::new();
    // `take` bounds the read even if the file grows after the size check.
    file.take(MAX_NODES_FILE_LEN)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some(HEADER) {
        return Err(NodesFileError::BadHeader {
            path: path.to_owned(),
        });
    }
    Ok(dedup_capped(lines.filter_map(|line| {
        line.trim().parse::<SocketAddrV4>().ok()
    })))
}

/// Writes `nodes` (deduplicated, at most [`MAX_SAVED_NODES`]) atomically to `path`.
pub fn save_nodes(path: &Path, nodes: &[SocketAddrV4]) -> Result<(), NodesFileError> {
    let write_err = |source| NodesFileError::Write {
        path: path.to_owned(),
        source,
    };
    let mut text = String::from(HEADER);
    text.push('\n');
    for node in dedup_capped(nodes.iter().copied()) {
        text.push_str(&node.to_string());
        text.push('\n');
    }
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut file = std::fs::File::create(&tmp).map_err(write_err)?;
    file.write_all(text.as_bytes()).map_err(write_err)?;
    file.sync_all().map_err(write_err)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(write_err)?;
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        // Persist the rename itself; a failure here leaves a valid file either way.
        if let Ok(dir) = std::fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

fn dedup_capped(nodes: impl Iterator<Item = SocketAddrV4>) -> Vec<SocketAddrV4> {
    let mut seen = HashSet::new();
    nodes
        .filter(|node| node.port() != 0 && seen.insert(*node))
        .take(MAX_SAVED_NODES)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(last: u8, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(std::net::Ipv4Addr::new(10, 0, 0, last), port)
    }

    #[test]
    fn round_trip_dedups_and_caps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dht.nodes");
        let mut nodes: Vec<_> = (0..=255u8).map(|i| addr(i, 6881)).collect();
        nodes.extend((0..=255u8).map(|i| addr(i, 6882)));
        nodes.push(addr(1, 6881));
        save_nodes(&path, &nodes).unwrap();
        let loaded = load_nodes(&path).unwrap();
        assert_eq!(loaded.len(), MAX_SAVED_NODES);
        assert_eq!(loaded[..], nodes[..MAX_SAVED_NODES]);
        assert!(!dir.path().join("dht.nodes.tmp").exists());
    }

    #[test]
    fn missing_file_is_empty_and_junk_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dht.nodes");
        assert!(load_nodes(&path).unwrap().is_empty());
        let mut text =
            format!("{HEADER}\nnot a node\n10.0.0.1:0\n[::1]:5\n10.0.0.2:7\n").into_bytes();
        text.push(0xff);
        std::fs::write(&path, text).unwrap();
        assert_eq!(load_nodes(&path).unwrap(), vec![addr(2, 7)]);
    }

    #[test]
    fn oversized_or_foreign_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dht.nodes");
        std::fs::write(&path, vec![b'1'; MAX_NODES_FILE_LEN as usize + 1]).unwrap();
        assert!(matches!(
            load_nodes(&path),
            Err(NodesFileError::TooLarge { .. })
        ));
        std::fs::write(&path, "10.0.0.2:7\n").unwrap();
        assert!(matches!(
            load_nodes(&path),
            Err(NodesFileError::BadHeader { .. })
        ));
        // Truncated anywhere, a saved file loads as a prefix of its nodes or is refused.
        save_nodes(&path, &[addr(1, 1000), addr(2, 2000)]).unwrap();
        let full = std::fs::read(&path).unwrap();
        for cut in 0..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            match load_nodes(&path) {
                Ok(nodes) => assert!(nodes.len() <= 2, "{nodes:?}"),
                Err(error) => assert!(matches!(error, NodesFileError::BadHeader { .. })),
            }
        }
    }
}
