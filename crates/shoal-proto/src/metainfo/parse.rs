//! Decoding a `.torrent` / `info` dictionary into [`Metainfo`] / [`Info`].

use bytes::Bytes;

use super::sanitize::{sanitize_component, sanitize_path, Deduplicator};
use super::{
    FileAttr, FileEntry, Info, Metainfo, MetainfoError, MAX_FILES, MAX_PATH_COMPONENTS,
    MAX_TRACKER_TIERS, MAX_TRACKER_URLS, MAX_WEB_SEEDS,
};
use crate::bencode::{DecodeLimits, Dict, Value};
use crate::geometry::MAX_PIECE_LEN;
use crate::{Geometry, InfoHash};

/// Deep enough for BEP 52 hybrid torrents' `file tree`; items enough for [`MAX_FILES`] files.
const LIMITS: DecodeLimits = DecodeLimits {
    max_depth: 160,
    max_items: 6 << 20,
};
/// Longest tracker or web seed URL kept.
const MAX_URL_BYTES: usize = 4096;
/// BitComet-style padding files before BEP 47.
const LEGACY_PADDING_PREFIX: &[u8] = b"_____padding_file_";

type Result<T> = std::result::Result<T, MetainfoError>;

pub(super) fn metainfo(bytes: &[u8]) -> Result<Metainfo> {
    let top = LIMITS.decode(bytes)?;
    let dict = as_dict(&top, "(torrent)")?;
    let info_value = dict
        .get(b"info")
        .ok_or(MetainfoError::MissingField { field: "info" })?;
    let info = info_from_value(info_value)?;
    Ok(Metainfo {
        info,
        trackers: trackers(dict),
        web_seeds: web_seeds(dict),
        creation_date: dict.get_int(b"creation date"),
        comment: text(dict, b"comment.utf-8").or_else(|| text(dict, b"comment")),
        created_by: text(dict, b"created by"),
    })
}

pub(super) fn info(raw_info: &[u8]) -> Result<Info> {
    let value = LIMITS.decode(raw_info)?;
    info_from_value(&value)
}

fn as_dict<'v, 'a>(value: &'v Value<'a>, field: &'static str) -> Result<&'v Dict<'a>> {
    value.as_dict().ok_or(MetainfoError::WrongType {
        field,
        expected: "dictionary",
        found: value.type_name(),
    })
}

fn required<'v, 'a>(dict: &'v Dict<'a>, field: &'static str) -> Result<&'v Value<'a>> {
    dict.get(field.as_bytes())
        .ok_or(MetainfoError::MissingField { field })
}

fn required_int(dict: &Dict<'_>, field: &'static str) -> Result<i64> {
    let value = required(dict, field)?;
    value.as_int().ok_or(MetainfoError::WrongType {
        field,
        expected: "integer",
        found: value.type_name(),
    })
}

fn required_bytes<'a>(dict: &Dict<'a>, field: &'static str) -> Result<&'a [u8]> {
    let value = required(dict, field)?;
    value.as_bytes().ok_or(MetainfoError::WrongType {
        field,
        expected: "byte string",
        found: value.type_name(),
    })
}

fn text(dict: &Dict<'_>, key: &[u8]) -> Option<String> {
    dict.get_bytes(key)
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

fn info_from_value(value: &Value<'_>) -> Result<Info> {
    let raw = value.raw();
    let info_hash = InfoHash::of_info_bytes(raw);
    let dict = as_dict(value, "info")?;

    let piece_len = required_int(dict, "piece length")?;
    if piece_len <= 0 || piece_len > i64::from(MAX_PIECE_LEN) {
        return Err(MetainfoError::BadPieceLength { piece_len });
    }
    let pieces = required_bytes(dict, "pieces")?;
    if pieces.len() % 20 != 0 {
        return Err(MetainfoError::PiecesNotMultipleOf20 { len: pieces.len() });
    }
    let raw_name = match dict.get_bytes(b"name.utf-8") {
        Some(name) => name,
        None => required_bytes(dict, "name")?,
    };
    let name = sanitize_component(raw_name).unwrap_or_else(|| info_hash.to_hex());

    let (files, multi_file) = match (dict.get(b"length"), dict.get(b"files")) {
        (Some(_), Some(_)) => return Err(MetainfoError::BothLengthAndFiles),
        (None, None) => {
            return Err(MetainfoError::MissingField {
                field: "length or files",
            })
        }
        (Some(_), None) => (vec![single_file(dict, &name)?], false),
        (None, Some(list)) => (multi_files(list, &name)?, true),
    };
    let total_len = files.last().map_or(0, |f| f.offset + f.length);
    let geometry = Geometry::new_lenient(total_len, piece_len as u64)?;
    let found = pieces.len() / 20;
    if found != geometry.piece_count() as usize {
        return Err(MetainfoError::PieceCountMismatch {
            expected: geometry.piece_count(),
            found,
        });
    }
    let piece_hashes = pieces
        .chunks_exact(20)
        .map(|chunk| {
            let mut hash = [0u8; 20];
            hash.copy_from_slice(chunk);
            hash
        })
        .collect();
    Ok(Info {
        info_hash,
        raw: Bytes::copy_from_slice(raw),
        name,
        geometry,
        piece_hashes,
        files,
        multi_file,
        private: dict.get_int(b"private") == Some(1),
        source: dict.get_str(b"source").map(str::to_owned),
    })
}

fn length(dict: &Dict<'_>, file_index: usize) -> Result<u64> {
    let length = required_int(dict, "length")?;
    u64::try_from(length).map_err(|_| MetainfoError::NegativeLength { file_index, length })
}

fn attributes(dict: &Dict<'_>) -> FileAttr {
    let flags = dict.get_bytes(b"attr").unwrap_or_default();
    FileAttr {
        padding: flags.contains(&b'p'),
        executable: flags.contains(&b'x'),
        hidden: flags.contains(&b'h'),
        symlink: flags.contains(&b'l'),
    }
}

/// The sanitized `symlink path` of a file whose `attr` has `l`.
fn symlink_target(dict: &Dict<'_>, attr: FileAttr) -> Option<Vec<String>> {
    if !attr.symlink {
        return None;
    }
    let components = dict.get_list(b"symlink path")?;
    let raw = components
        .iter()
        .take(MAX_PATH_COMPONENTS)
        .filter_map(Value::as_bytes);
    Some(sanitize_path(raw))
}

fn single_file(dict: &Dict<'_>, name: &str) -> Result<FileEntry> {
    let attr = attributes(dict);
    Ok(FileEntry {
        path: vec![name.to_owned()],
        length: length(dict, 0)?,
        offset: 0,
        attr,
        symlink_target: symlink_target(dict, attr),
    })
}

fn multi_files(list: &Value<'_>, name: &str) -> Result<Vec<FileEntry>> {
    let entries = list.as_list().ok_or(MetainfoError::WrongType {
        field: "files",
        expected: "list",
        found: list.type_name(),
    })?;
    if entries.is_empty() {
        return Err(MetainfoError::NoFiles);
    }
    if entries.len() > MAX_FILES {
        return Err(MetainfoError::TooManyFiles {
            count: entries.len(),
            max: MAX_FILES,
        });
    }
    let mut files = Vec::with_capacity(entries.len());
    let mut offset: u64 = 0;
    for (file_index, entry) in entries.iter().enumerate() {
        let file = one_file(entry, file_index, name, offset)?;
        offset = offset
            .checked_add(file.length)
            .ok_or(MetainfoError::TotalLengthOverflow { file_index })?;
        files.push(file);
    }
    let mut dedup = Deduplicator::new(
        files
            .iter()
            .filter(|f| !f.attr.padding)
            .map(|f| f.path.as_slice()),
    );
    for file in files.iter_mut().filter(|f| !f.attr.padding) {
        dedup.claim(&mut file.path);
    }
    Ok(files)
}

fn one_file(entry: &Value<'_>, file_index: usize, name: &str, offset: u64) -> Result<FileEntry> {
    let dict = as_dict(entry, "files")?;
    let length = length(dict, file_index)?;
    let path_value = match dict.get(b"path.utf-8") {
        Some(utf8) if utf8.as_list().is_some() => utf8,
        _ => required(dict, "path")?,
    };
    let wrong_path = |found| MetainfoError::WrongType {
        field: "path",
        expected: "list of byte strings",
        found,
    };
    let components = path_value
        .as_list()
        .ok_or(wrong_path(path_value.type_name()))?;
    if components.is_empty() {
        return Err(MetainfoError::EmptyPath { file_index });
    }
    if components.len() > MAX_PATH_COMPONENTS {
        return Err(MetainfoError::PathTooDeep {
            file_index,
            components: components.len(),
            max: MAX_PATH_COMPONENTS,
        });
    }
    let raw: Vec<&[u8]> = components
        .iter()
        .map(|c| c.as_bytes().ok_or(wrong_path(c.type_name())))
        .collect::<Result<_>>()?;
    let mut attr = attributes(dict);
    if raw
        .last()
        .is_some_and(|last| last.starts_with(LEGACY_PADDING_PREFIX))
    {
        attr.padding = true;
    }
    let mut path = Vec::with_capacity(raw.len() + 1);
    path.push(name.to_owned());
    path.extend(sanitize_path(raw));
    Ok(FileEntry {
        path,
        length,
        offset,
        attr,
        symlink_target: symlink_target(dict, attr),
    })
}

fn usable_url(raw: &[u8], schemes: &[&str]) -> Option<String> {
    if raw.len() > MAX_URL_BYTES {
        return None;
    }
    let url = std::str::from_utf8(raw).ok()?.trim();
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let known = schemes.iter().any(|scheme| lower.starts_with(scheme));
    (known && !url.chars().any(char::is_control)).then(|| url.to_owned())
}

const TRACKER_SCHEMES: [&str; 3] = ["http://", "https://", "udp://"];

/// BEP 12 tiers, or the lone `announce`; unusable entries are skipped.
fn trackers(dict: &Dict<'_>) -> Vec<Vec<String>> {
    let mut seen = std::collections::HashSet::new();
    let mut tiers = Vec::new();
    for tier in dict.get_list(b"announce-list").unwrap_or_default() {
        if tiers.len() >= MAX_TRACKER_TIERS || seen.len() >= MAX_TRACKER_URLS {
            break;
        }
        let mut urls = Vec::new();
        for url in tier.as_list().unwrap_or_default() {
            let Some(url) = url.as_bytes().and_then(|b| usable_url(b, &TRACKER_SCHEMES)) else {
                continue;
            };
            if seen.len() < MAX_TRACKER_URLS && seen.insert(url.clone()) {
                urls.push(url);
            }
        }
        if !urls.is_empty() {
            tiers.push(urls);
        }
    }
    if tiers.is_empty() {
        if let Some(url) = dict
            .get_bytes(b"announce")
            .and_then(|b| usable_url(b, &TRACKER_SCHEMES))
        {
            tiers.push(vec![url]);
        }
    }
    tiers
}

/// BEP 19 `url-list`: one string or a list of strings.
fn web_seeds(dict: &Dict<'_>) -> Vec<String> {
    const SCHEMES: [&str; 2] = ["http://", "https://"];
    let Some(value) = dict.get(b"url-list") else {
        return Vec::new();
    };
    let raw: Vec<&[u8]> = match (value.as_bytes(), value.as_list()) {
        (Some(one), _) => vec![one],
        (None, Some(list)) => list.iter().filter_map(Value::as_bytes).collect(),
        (None, None) => Vec::new(),
    };
    let mut out: Vec<String> = Vec::new();
    for url in raw.into_iter().filter_map(|b| usable_url(b, &SCHEMES)) {
        if out.len() >= MAX_WEB_SEEDS {
            break;
        }
        if !out.contains(&url) {
            out.push(url);
        }
    }
    out
}
