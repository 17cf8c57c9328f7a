//! [`TorrentBuilder`]: canonical `.torrent` bytes from a file list and piece hashes.
//!
//! Keys follow what mktorrent and libtorrent write: `announce` (the first tracker), and
//! `announce-list` when there is more than one tracker URL; `comment`, `created by`,
//! `creation date`, `url-list` (a string for one web seed, a list for several), and `info` with
//! `length` (single file) or `files` (`length`, `path`, BEP 47 `attr` only when set), `name`,
//! `piece length`, `pieces`, `private` only when set, `source` only when set. Dictionaries are
//! sorted, so the same builder always gives the same bytes.
//!
//! The builder refuses path components that are structurally unsafe (empty, `.`, `..`, containing
//! `/` or NUL). Other names are written as given; a parser may still rename some on download
//! (e.g. `aux.c` → `_aux.c`, see [`super::sanitize`]).

use super::FileAttr;
use crate::bencode::{OwnedDict, OwnedValue};
use crate::geometry::GeometryError;
use crate::{Geometry, InfoHash};

/// One file of a multi-file torrent, as the builder takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuilderFile {
    /// Components below the torrent's top folder (not including the torrent name).
    pub path: Vec<String>,
    pub length: u64,
    pub attr: FileAttr,
    /// For a symlink (`attr.symlink`), its target relative to the top folder.
    pub symlink_target: Option<Vec<String>>,
}

impl BuilderFile {
    /// A regular file with no attributes.
    pub fn new(path: Vec<String>, length: u64) -> Self {
        BuilderFile {
            path,
            length,
            attr: FileAttr::default(),
            symlink_target: None,
        }
    }
}

/// Why a builder cannot produce a torrent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    #[error("torrent name {name:?} is not a usable file name")]
    BadName { name: String },
    #[error("file {file_index} has an unusable path component {component:?}")]
    BadPathComponent {
        file_index: usize,
        component: String,
    },
    #[error("file {file_index} has an empty path")]
    EmptyPath { file_index: usize },
    #[error("a multi-file torrent needs at least one file")]
    NoFiles,
    #[error("file lengths add up to more than 2^63 bytes")]
    TooLarge,
    #[error("bad sizes: {source}")]
    Geometry {
        #[from]
        source: GeometryError,
    },
    #[error("the sizes need {expected} pieces but {given} piece hashes were given")]
    PieceCountMismatch { expected: u32, given: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Layout {
    Single { length: u64, attr: FileAttr },
    Multi(Vec<BuilderFile>),
}

/// Builds canonical torrent bytes; see the module docs for what is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorrentBuilder {
    name: String,
    layout: Layout,
    piece_len: u32,
    piece_hashes: Vec<[u8; 20]>,
    trackers: Vec<Vec<String>>,
    web_seeds: Vec<String>,
    private: bool,
    source: Option<String>,
    comment: Option<String>,
    created_by: Option<String>,
    creation_date: Option<i64>,
}

impl TorrentBuilder {
    /// A torrent of one file called `name`.
    pub fn single_file(
        name: impl Into<String>,
        length: u64,
        piece_len: u32,
        piece_hashes: Vec<[u8; 20]>,
    ) -> Self {
        let layout = Layout::Single {
            length,
            attr: FileAttr::default(),
        };
        Self::with_layout(name.into(), layout, piece_len, piece_hashes)
    }

    /// A torrent of a folder called `name` holding `files` in stream order.
    pub fn multi_file(
        name: impl Into<String>,
        files: Vec<BuilderFile>,
        piece_len: u32,
        piece_hashes: Vec<[u8; 20]>,
    ) -> Self {
        Self::with_layout(name.into(), Layout::Multi(files), piece_len, piece_hashes)
    }

    fn with_layout(name: String, layout: Layout, piece_len: u32, hashes: Vec<[u8; 20]>) -> Self {
        TorrentBuilder {
            name,
            layout,
            piece_len,
            piece_hashes: hashes,
            trackers: Vec::new(),
            web_seeds: Vec::new(),
            private: false,
            source: None,
            comment: None,
            created_by: None,
            creation_date: None,
        }
    }

    /// BEP 12 tiers; empty tiers are skipped.
    #[must_use]
    pub fn trackers(mut self, tiers: Vec<Vec<String>>) -> Self {
        self.trackers = tiers.into_iter().filter(|tier| !tier.is_empty()).collect();
        self
    }

    /// BEP 19 web seeds.
    #[must_use]
    pub fn web_seeds(mut self, urls: Vec<String>) -> Self {
        self.web_seeds = urls;
        self
    }

    /// BEP 27 private flag.
    #[must_use]
    pub fn private(mut self, private: bool) -> Self {
        self.private = private;
        self
    }

    /// The `source` tag in `info` (changes the infohash; private trackers use it).
    #[must_use]
    pub fn source(mut self, source: Option<String>) -> Self {
        self.source = source;
        self
    }

    #[must_use]
    pub fn comment(mut self, comment: Option<String>) -> Self {
        self.comment = comment;
        self
    }

    #[must_use]
    pub fn created_by(mut self, created_by: Option<String>) -> Self {
        self.created_by = created_by;
        self
    }

    /// Seconds since the Unix epoch; `None` leaves the key out (reproducible output).
    #[must_use]
    pub fn creation_date(mut self, date: Option<i64>) -> Self {
        self.creation_date = date;
        self
    }

    /// BEP 47 attributes of a single-file torrent's file (ignored for multi-file torrents).
    #[must_use]
    pub fn single_file_attr(mut self, attr: FileAttr) -> Self {
        if let Layout::Single { attr: a, .. } = &mut self.layout {
            *a = attr;
        }
        self
    }

    /// The canonical `info` dictionary bytes (their SHA-1 is the infohash).
    pub fn info_bytes(&self) -> Result<Vec<u8>, BuildError> {
        Ok(self.info_dict()?.encode())
    }

    /// The whole canonical `.torrent` file.
    pub fn build(&self) -> Result<Vec<u8>, BuildError> {
        Ok(self.encode_with(self.info_dict()?))
    }

    /// [`TorrentBuilder::build`] and the infohash, building the `info` dictionary once (for
    /// thousands of files that is most of the work).
    pub fn build_with_info_hash(&self) -> Result<(Vec<u8>, InfoHash), BuildError> {
        let info = self.info_dict()?;
        let info_hash = InfoHash::of_info_bytes(&info.encode());
        Ok((self.encode_with(info), info_hash))
    }

    /// The top-level dictionary around `info`, encoded.
    fn encode_with(&self, info: OwnedDict) -> Vec<u8> {
        let mut top = OwnedDict::new().with("info", info);
        let urls: Vec<&String> = self.trackers.iter().flatten().collect();
        if let Some(first) = urls.first() {
            top.insert("announce", first.as_str());
        }
        if urls.len() > 1 {
            let tiers: Vec<OwnedValue> = self
                .trackers
                .iter()
                .map(|tier| strings(tier.iter()).into())
                .collect();
            top.insert("announce-list", tiers);
        }
        match self.web_seeds.as_slice() {
            [] => {}
            [one] => {
                top.insert("url-list", one.as_str());
            }
            many => {
                top.insert("url-list", strings(many.iter()));
            }
        }
        let top = top
            .with_opt("comment", self.comment.as_deref())
            .with_opt("created by", self.created_by.as_deref())
            .with_opt("creation date", self.creation_date);
        top.encode()
    }

    fn info_dict(&self) -> Result<OwnedDict, BuildError> {
        if !is_safe_component(&self.name) {
            return Err(BuildError::BadName {
                name: self.name.clone(),
            });
        }
        let mut info = OwnedDict::new()
            .with("name", self.name.as_str())
            .with("piece length", i64::from(self.piece_len))
            .with("pieces", self.piece_hashes.concat())
            .with_opt("private", self.private.then_some(1))
            .with_opt("source", self.source.as_deref());
        let total = match &self.layout {
            Layout::Single { length, attr } => {
                info.insert("length", to_i64(*length)?);
                add_attr(&mut info, *attr, None);
                *length
            }
            Layout::Multi(files) => {
                let (list, total) = file_list(files)?;
                info.insert("files", list);
                total
            }
        };
        let geometry = Geometry::new_lenient(total, u64::from(self.piece_len))?;
        if geometry.piece_count() as usize != self.piece_hashes.len() {
            return Err(BuildError::PieceCountMismatch {
                expected: geometry.piece_count(),
                given: self.piece_hashes.len(),
            });
        }
        Ok(info)
    }
}

fn file_list(files: &[BuilderFile]) -> Result<(Vec<OwnedValue>, u64), BuildError> {
    if files.is_empty() {
        return Err(BuildError::NoFiles);
    }
    let mut total: u64 = 0;
    let mut list = Vec::with_capacity(files.len());
    for (file_index, file) in files.iter().enumerate() {
        if file.path.is_empty() {
            return Err(BuildError::EmptyPath { file_index });
        }
        if let Some(bad) = file.path.iter().find(|c| !is_safe_component(c)) {
            return Err(BuildError::BadPathComponent {
                file_index,
                component: bad.clone(),
            });
        }
        total = total.checked_add(file.length).ok_or(BuildError::TooLarge)?;
        let mut entry = OwnedDict::new()
            .with("length", to_i64(file.length)?)
            .with("path", strings(file.path.iter()));
        add_attr(&mut entry, file.attr, file.symlink_target.as_deref());
        list.push(OwnedValue::Dict(entry));
    }
    to_i64(total)?;
    Ok((list, total))
}

fn add_attr(dict: &mut OwnedDict, attr: FileAttr, symlink_target: Option<&[String]>) {
    let flags: String = [
        (attr.symlink, 'l'),
        (attr.executable, 'x'),
        (attr.hidden, 'h'),
    ]
    .into_iter()
    .chain([(attr.padding, 'p')])
    .filter_map(|(set, flag)| set.then_some(flag))
    .collect();
    if !flags.is_empty() {
        dict.insert("attr", flags);
    }
    if let (true, Some(target)) = (attr.symlink, symlink_target) {
        dict.insert("symlink path", strings(target.iter()));
    }
}

fn strings<'s>(items: impl Iterator<Item = &'s String>) -> Vec<OwnedValue> {
    items.map(|s| OwnedValue::from(s.as_str())).collect()
}

fn to_i64(n: u64) -> Result<i64, BuildError> {
    i64::try_from(n).map_err(|_| BuildError::TooLarge)
}

fn is_safe_component(c: &str) -> bool {
    !c.is_empty() && c != "." && c != ".." && !c.contains(['/', '\0'])
}
