//! Turning hostile file names from a torrent into safe relative paths.
//!
//! Guarantee: every component this module returns is non-empty, is not `.` or `..`, contains no
//! `/`, `\`, `:`, NUL, control or bidi-control character, is at most [`MAX_COMPONENT_BYTES`]
//! bytes plus a de-duplication counter, and is not a Windows reserved device name. A path made of
//! such components, joined under the download folder, cannot leave it.
//!
//! The rules (libtorrent-like; sanitizing rather than rejecting, so odd-but-harmless torrents
//! still download):
//! - invalid UTF-8 is decoded lossily (U+FFFD);
//! - `/`, `\`, `:` and control characters (C0, DEL, C1) become `_`;
//! - bidi controls (U+200E, U+200F, U+202A..=U+202E, U+2066..=U+2069) are removed;
//! - components that end up empty, `.` or `..` are dropped;
//! - a Windows reserved device name (`CON`, `PRN`, `AUX`, `NUL`, `COM1`-`COM9`, `LPT1`-`LPT9`,
//!   `CONIN$`, `CONOUT$`, any case, with or without an extension) gets a `_` prefix;
//! - a component longer than [`MAX_COMPONENT_BYTES`] is cut at a character boundary, keeping a
//!   short extension (at most [`MAX_KEPT_EXTENSION_BYTES`]);
//! - a path with nothing left becomes `_`.
//!
//! Collisions (two files, or a file and a folder, that would land on the same path) are resolved
//! by [`Deduplicator`]: case-insensitively, because the same torrent may be downloaded onto a
//! case-insensitive file system; folders keep their names and the later *file* gets a counter
//! before its extension (`a.txt`, `a.1.txt`, `a.2.txt`).

use std::collections::{HashMap, HashSet};

/// Longest component kept, in bytes (file systems allow 255; this leaves room for a counter and
/// a temporary-file suffix).
pub const MAX_COMPONENT_BYTES: usize = 200;
/// Longest extension (with its dot) preserved when a component is truncated.
pub const MAX_KEPT_EXTENSION_BYTES: usize = 16;
/// What a path with no usable component becomes.
pub const PLACEHOLDER: &str = "_";

const RESERVED_STEMS: [&str; 24] = [
    "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8",
    "com9", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9", "conin$",
    "conout$",
];

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Sanitizes one component; `None` when nothing usable is left (it is then dropped).
pub fn sanitize_component(raw: &[u8]) -> Option<String> {
    let decoded = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(decoded.len().min(MAX_COMPONENT_BYTES * 2));
    for c in decoded.chars() {
        if is_bidi_control(c) {
            continue;
        }
        if c.is_control() || matches!(c, '/' | '\\' | ':') {
            out.push('_');
        } else {
            out.push(c);
        }
    }
    if out.is_empty() || out == "." || out == ".." {
        return None;
    }
    let stem = out
        .split('.')
        .next()
        .unwrap_or_default()
        .trim_end()
        .to_ascii_lowercase();
    if RESERVED_STEMS.contains(&stem.as_str()) {
        out.insert(0, '_');
    }
    Some(truncate_keeping_extension(out))
}

/// Sanitizes a list of components; never returns an empty list.
pub fn sanitize_path<'a>(raw: impl IntoIterator<Item = &'a [u8]>) -> Vec<String> {
    let mut out: Vec<String> = raw.into_iter().filter_map(sanitize_component).collect();
    if out.is_empty() {
        out.push(PLACEHOLDER.to_owned());
    }
    out
}

fn floor_char_boundary(s: &str, max: usize) -> usize {
    let mut at = max.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn truncate_keeping_extension(name: String) -> String {
    if name.len() <= MAX_COMPONENT_BYTES {
        return name;
    }
    let extension = match name.rfind('.') {
        Some(dot) if dot > 0 && name.len() - dot <= MAX_KEPT_EXTENSION_BYTES => &name[dot..],
        _ => "",
    };
    let keep = floor_char_boundary(&name, MAX_COMPONENT_BYTES - extension.len());
    let mut out = String::with_capacity(MAX_COMPONENT_BYTES);
    out.push_str(&name[..keep]);
    out.push_str(extension);
    out
}

/// Folder id of the download folder itself in [`Deduplicator`].
const ROOT: usize = 0;

/// Makes file paths unique. Build it with every file path, then call [`Deduplicator::claim`] for
/// each file in torrent order.
///
/// Folders are interned as (parent folder id, lowercased name) so memory stays proportional to
/// the total length of the names, however deep the paths are.
#[derive(Debug, Default)]
pub struct Deduplicator {
    folders: HashMap<(usize, String), usize>,
    files: HashSet<(usize, String)>,
    next_counter: HashMap<(usize, String), u64>,
}

impl Deduplicator {
    /// `paths`: the sanitized paths of all files that will be created (not padding files).
    pub fn new<'p>(paths: impl IntoIterator<Item = &'p [String]>) -> Self {
        let mut dedup = Deduplicator::default();
        for path in paths {
            dedup.folder_of(path);
        }
        dedup
    }

    /// Id of the folder holding `path`'s last component, registering folders as needed.
    fn folder_of(&mut self, path: &[String]) -> usize {
        let mut parent = ROOT;
        for component in path.iter().take(path.len().saturating_sub(1)) {
            let next_id = self.folders.len() + 1;
            parent = *self
                .folders
                .entry((parent, component.to_lowercase()))
                .or_insert(next_id);
        }
        parent
    }

    fn taken(&self, key: &(usize, String)) -> bool {
        self.files.contains(key) || self.folders.contains_key(key)
    }

    /// Makes `path` unique among the files claimed so far and all folders, renaming its last
    /// component with a counter when needed, and records it.
    pub fn claim(&mut self, path: &mut [String]) {
        let Some(last_index) = path.len().checked_sub(1) else {
            return;
        };
        let parent = self.folder_of(path);
        let key = (parent, path[last_index].to_lowercase());
        if !self.taken(&key) {
            self.files.insert(key);
            return;
        }
        let original = std::mem::take(&mut path[last_index]);
        let (stem, extension) = match original.rfind('.') {
            Some(dot) if dot > 0 => original.split_at(dot),
            _ => (original.as_str(), ""),
        };
        let mut counter = self.next_counter.get(&key).copied().unwrap_or(1);
        loop {
            let candidate = format!("{stem}.{counter}{extension}");
            counter += 1;
            let candidate_key = (parent, candidate.to_lowercase());
            if !self.taken(&candidate_key) {
                self.files.insert(candidate_key);
                path[last_index] = candidate;
                break;
            }
        }
        self.next_counter.insert(key, counter);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(raw: &str) -> Option<String> {
        sanitize_component(raw.as_bytes())
    }

    #[test]
    fn hostile_components_from_testing_md() {
        assert_eq!(one(".."), None);
        assert_eq!(one("."), None);
        assert_eq!(one(""), None);
        assert_eq!(one("C:\\"), Some("C__".into()));
        assert_eq!(one("a\\..\\b"), Some("a_.._b".into()));
        assert_eq!(one("/etc/passwd"), Some("_etc_passwd".into()));
        assert_eq!(one("nul\0byte"), Some("nul_byte".into()));
        assert_eq!(one("CON"), Some("_CON".into()));
        assert_eq!(one("nul.txt"), Some("_nul.txt".into()));
        assert_eq!(one("Lpt9.tar.gz"), Some("_Lpt9.tar.gz".into()));
        assert_eq!(one("console"), Some("console".into()));
        assert_eq!(one("CON .txt"), Some("_CON .txt".into()));
        assert_eq!(one("evil\u{202E}txt.exe"), Some("eviltxt.exe".into()));
        assert_eq!(one("\u{2066}..\u{2069}"), None, "bidi hiding a ..");
        assert_eq!(one("tab\there"), Some("tab_here".into()));
        assert_eq!(sanitize_component(b"caf\xe9"), Some("caf\u{FFFD}".into()));
        assert_eq!(
            sanitize_path([&b".."[..], b"..", b"etc", b"passwd"]),
            ["etc", "passwd"]
        );
        assert_eq!(sanitize_path([&b".."[..], b""]), [PLACEHOLDER]);
    }

    #[test]
    fn long_components_keep_their_extension() {
        let long = format!("{}.mkv", "é".repeat(300));
        let cut = one(&long).unwrap();
        assert!(cut.len() <= MAX_COMPONENT_BYTES, "{}", cut.len());
        assert!(cut.ends_with("é.mkv"));
        let no_ext = one(&"x".repeat(1000)).unwrap();
        assert_eq!(no_ext.len(), MAX_COMPONENT_BYTES);
    }

    #[test]
    fn duplicates_get_counters_case_insensitively() {
        let mut paths: Vec<Vec<String>> = [["d", "a.txt"], ["d", "A.TXT"], ["d", "a.txt"]]
            .iter()
            .map(|p| p.iter().map(|s| s.to_string()).collect())
            .collect();
        let mut dedup = Deduplicator::new(paths.iter().map(Vec::as_slice));
        for p in &mut paths {
            dedup.claim(p);
        }
        assert_eq!(paths[0], ["d", "a.txt"]);
        assert_eq!(paths[1], ["d", "A.1.TXT"]);
        assert_eq!(paths[2], ["d", "a.2.txt"]);
    }

    #[test]
    fn a_file_never_takes_a_folders_name() {
        let mut paths = vec![
            vec!["a".to_string()],
            vec!["a".to_string(), "b".to_string()],
        ];
        let mut dedup = Deduplicator::new(paths.iter().map(Vec::as_slice));
        for p in &mut paths {
            dedup.claim(p);
        }
        assert_eq!(paths[0], ["a.1"]);
        assert_eq!(paths[1], ["a", "b"]);
    }

    #[test]
    fn a_counter_never_lands_on_an_existing_name() {
        let mut paths: Vec<Vec<String>> = ["x.1", "x", "x"]
            .iter()
            .map(|s| vec![s.to_string()])
            .collect();
        let mut dedup = Deduplicator::new(paths.iter().map(Vec::as_slice));
        for p in &mut paths {
            dedup.claim(p);
        }
        assert_eq!(paths, [["x.1"], ["x"], ["x.2"]]);
    }

    #[test]
    fn deep_paths_and_folder_collisions_at_depth() {
        let deep: Vec<String> = (0..128)
            .map(|i| format!("{}{i}", "d".repeat(190)))
            .collect();
        let mut paths = [deep.clone(), deep[..64].to_vec()];
        let mut dedup = Deduplicator::new(paths.iter().map(Vec::as_slice));
        for path in &mut paths {
            dedup.claim(path);
        }
        assert_eq!(paths[0], deep, "the deep file keeps its path");
        assert_eq!(paths[1][..63], deep[..63]);
        assert_eq!(
            paths[1][63],
            format!("{}63.1", "d".repeat(190)),
            "a file yields to a folder"
        );
    }

    proptest! {
        #[test]
        fn sanitized_components_cannot_escape(raw in prop::collection::vec(any::<u8>(), 0..300),
                                              text in "\\PC{0,40}") {
            for input in [raw.as_slice(), text.as_bytes()] {
                if let Some(c) = sanitize_component(input) {
                    prop_assert!(!c.is_empty() && c != "." && c != "..");
                    prop_assert!(!c.contains(['/', '\\', ':', '\0']));
                    prop_assert!(!c.chars().any(|ch| ch.is_control() || is_bidi_control(ch)));
                    prop_assert!(c.len() <= MAX_COMPONENT_BYTES + 1);
                    let path = std::path::Path::new(&c);
                    prop_assert!(path.is_relative());
                    prop_assert_eq!(path.components().count(), 1);
                    prop_assert!(matches!(path.components().next(), Some(std::path::Component::Normal(_))));
                }
            }
        }
    }
}
