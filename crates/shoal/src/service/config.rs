//! The daemon's configuration: a TOML file in which every setting is optional and documented.
//!
//! [`DaemonConfig::default`] is what `shoal daemon` runs with when there is no file; the folders
//! come from the XDG base-directory rules ([`XdgPaths`]). [`DEFAULT_CONFIG_TOML`] is the same
//! defaults written out with their documentation (`shoal daemon --print-config` prints it), and a
//! test checks that it parses back to `DaemonConfig::default()`'s values.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The default address of the HTTP server: Transmission's port, loopback only.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:9091";
/// The default peer port.
pub const DEFAULT_PEER_ADDR: &str = "0.0.0.0:51413";

/// The daemon's settings. Every field has a default; a TOML file only names what it changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DaemonConfig {
    /// Where the HTTP server (web UI, JSON API, Transmission RPC, metrics) listens.
    pub http_addr: SocketAddr,
    /// Where peers connect to us.
    pub peer_addr: SocketAddr,
    /// Folder for the torrent list, resume files and credentials.
    pub state_dir: PathBuf,
    /// Where new torrents are saved unless a request names another folder.
    pub download_dir: PathBuf,
    /// Folders under which downloads may be saved; a request naming a folder outside every one
    /// of them is refused. Empty: only `download_dir`.
    pub download_roots: Vec<PathBuf>,
    /// Host names (besides localhost, 127.0.0.1, ::1 and the listen address) accepted in the
    /// HTTP `Host` header. Protects against DNS rebinding; add the name you reach the daemon by.
    pub allowed_hosts: Vec<String>,
    /// Ask for the credentials even on requests from loopback.
    pub require_auth_on_loopback: bool,
    /// Largest HTTP request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Run a Mainline DHT node.
    pub dht: bool,
    /// Global download limit in bytes per second, 0: none. The starting value: once a limit is
    /// set through the API (saved in the state folder), the saved one wins.
    pub download_limit: u64,
    /// Global upload limit in bytes per second, 0: none. Same rule as `download_limit`.
    pub upload_limit: u64,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        let xdg = XdgPaths::from_env();
        DaemonConfig {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 9091)),
            peer_addr: SocketAddr::from(([0, 0, 0, 0], 51413)),
            state_dir: xdg.state_dir,
            download_dir: xdg.download_dir,
            download_roots: Vec::new(),
            allowed_hosts: Vec::new(),
            require_auth_on_loopback: false,
            max_body_bytes: 16 * 1024 * 1024,
            dht: true,
            download_limit: 0,
            upload_limit: 0,
        }
    }
}

/// The default configuration, documented. `state_dir` and `download_dir` are left out because
/// their defaults depend on the environment (see [`XdgPaths`]).
pub const DEFAULT_CONFIG_TOML: &str = r#"# shoal daemon configuration. Every setting is optional; shown here with its default.

# Where the HTTP server (web UI, JSON API under /api/v1, Transmission RPC at /transmission/rpc,
# /metrics) listens. Off loopback, every request needs the credentials in <state_dir>/credentials.toml.
http_addr = "127.0.0.1:9091"

# Where peers connect to us.
peer_addr = "0.0.0.0:51413"

# Folder for the torrent list, resume files and credentials.
# Default: $XDG_DATA_HOME/shoal, or ~/.local/share/shoal.
# state_dir = "/home/me/.local/share/shoal"

# Where new torrents are saved unless a request names another folder.
# Default: $XDG_DOWNLOAD_DIR, or ~/Downloads.
# download_dir = "/home/me/Downloads"

# Folders under which downloads may be saved; other folders are refused. Empty: download_dir only.
download_roots = []

# Extra host names accepted in the HTTP Host header (DNS-rebinding protection). localhost,
# 127.0.0.1, ::1 and the listen address are always accepted.
allowed_hosts = []

# Ask for the credentials even on requests from loopback.
require_auth_on_loopback = false

# Largest HTTP request body accepted, in bytes (16 MiB).
max_body_bytes = 16777216

# Run a Mainline DHT node.
dht = true

# Global rate limits over all torrents, in bytes per second (0: none), e.g. 1048576 for 1 MiB/s.
# Starting values only: limits set later through the JSON API or the RPC are saved in the
# state folder and win over these.
download_limit = 0
upload_limit = 0
"#;

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
}

impl DaemonConfig {
    /// Reads a TOML file; settings it does not name keep their defaults.
    pub fn load(path: &Path) -> Result<DaemonConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Parses TOML text; settings it does not name keep their defaults.
    pub fn parse(text: &str) -> Result<DaemonConfig, toml::de::Error> {
        toml::from_str(text)
    }

    /// The global rate limits as the session takes them (0: none).
    pub fn rate_limits(&self) -> crate::RateLimits {
        crate::RateLimits {
            download: Some(self.download_limit).filter(|&b| b > 0),
            upload: Some(self.upload_limit).filter(|&b| b > 0),
        }
    }

    /// The folders downloads may go under: `download_roots`, or `download_dir` when empty.
    pub fn roots(&self) -> Vec<PathBuf> {
        if self.download_roots.is_empty() {
            vec![self.download_dir.clone()]
        } else {
            self.download_roots.clone()
        }
    }
}

/// The per-user folders of the XDG base-directory rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdgPaths {
    /// `$XDG_DATA_HOME/shoal`, or `~/.local/share/shoal`.
    pub state_dir: PathBuf,
    /// `$XDG_CONFIG_HOME/shoal/daemon.toml`, or `~/.config/shoal/daemon.toml`.
    pub config_file: PathBuf,
    /// `$XDG_DOWNLOAD_DIR`, or `~/Downloads`.
    pub download_dir: PathBuf,
}

impl XdgPaths {
    /// From the process environment.
    pub fn from_env() -> XdgPaths {
        Self::from_vars(|name| std::env::var_os(name).map(PathBuf::from))
    }

    /// From any variable lookup (tests pass a map). Relative XDG values are ignored, as the
    /// specification says.
    pub fn from_vars(var: impl Fn(&str) -> Option<PathBuf>) -> XdgPaths {
        let home = var("HOME").unwrap_or_else(|| PathBuf::from("."));
        let absolute = |name: &str| var(name).filter(|p| p.is_absolute());
        let data = absolute("XDG_DATA_HOME").unwrap_or_else(|| home.join(".local/share"));
        let config = absolute("XDG_CONFIG_HOME").unwrap_or_else(|| home.join(".config"));
        let download = absolute("XDG_DOWNLOAD_DIR").unwrap_or_else(|| home.join("Downloads"));
        XdgPaths {
            state_dir: data.join("shoal"),
            config_file: config.join("shoal").join("daemon.toml"),
            download_dir: download,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_defaults_parse_to_the_defaults() {
        let parsed = DaemonConfig::parse(DEFAULT_CONFIG_TOML).unwrap();
        assert_eq!(parsed, DaemonConfig::default());
        assert_eq!(parsed.http_addr.to_string(), DEFAULT_HTTP_ADDR);
        assert_eq!(parsed.peer_addr.to_string(), DEFAULT_PEER_ADDR);
        assert!(
            parsed.http_addr.ip().is_loopback(),
            "secure by default: loopback only"
        );
    }

    #[test]
    fn a_file_changes_only_what_it_names() {
        let parsed = DaemonConfig::parse("http_addr = \"127.0.0.1:1234\"\n").unwrap();
        assert_eq!(parsed.http_addr.port(), 1234);
        assert_eq!(
            parsed.max_body_bytes,
            DaemonConfig::default().max_body_bytes
        );
    }

    #[test]
    fn rate_limits_of_zero_are_none() {
        assert_eq!(
            DaemonConfig::default().rate_limits(),
            crate::RateLimits::default()
        );
        let parsed = DaemonConfig::parse("upload_limit = 1048576\n").unwrap();
        assert_eq!(parsed.rate_limits().upload, Some(1 << 20));
        assert_eq!(parsed.rate_limits().download, None);
    }

    #[test]
    fn unknown_settings_are_errors_not_silently_ignored() {
        let error = DaemonConfig::parse("http_adr = \"127.0.0.1:1\"\n").unwrap_err();
        assert!(error.to_string().contains("http_adr"), "{error}");
    }

    #[test]
    fn xdg_rules() {
        let vars = |name: &str| match name {
            "HOME" => Some(PathBuf::from("/home/u")),
            "XDG_DATA_HOME" => Some(PathBuf::from("relative/ignored")),
            "XDG_CONFIG_HOME" => Some(PathBuf::from("/cfg")),
            _ => None,
        };
        let xdg = XdgPaths::from_vars(vars);
        assert_eq!(xdg.state_dir, PathBuf::from("/home/u/.local/share/shoal"));
        assert_eq!(xdg.config_file, PathBuf::from("/cfg/shoal/daemon.toml"));
        assert_eq!(xdg.download_dir, PathBuf::from("/home/u/Downloads"));
    }
}
