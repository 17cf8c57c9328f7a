//! Span mapping: where each byte of a torrent's stream lives on disk.
//!
//! A torrent's content is one byte stream; its files cut that stream into consecutive ranges in
//! metainfo order. [`FileLayout::segments`] turns a range of the stream (a block, a piece) into
//! the `(file, offset in file, length)` pieces it covers, in order. Guarantees, checked by a
//! property test: the segments of a range are contiguous, cover it exactly once, and never name a
//! zero-length file (those hold no bytes; storage creates them empty). Padding files (BEP 47) keep
//! their place in the stream but are flagged, so storage never creates them: reads of them yield
//! zeros and writes into them must be zeros.
//!
//! Pure: no IO. Paths are validated here (relative, plain components only) so that a layout that
//! exists cannot name a place outside the download folder; `paths` checks the disk side.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

/// One file of a torrent as storage sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageFile {
    /// Relative path under the download folder, made of plain components only.
    pub path: PathBuf,
    /// Length in bytes (may be 0).
    pub length: u64,
    /// A BEP 47 padding file: part of the stream, all zeros, never created on disk.
    pub padding: bool,
}

/// Why a list of files is not a usable layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    #[error("a torrent needs at least one file")]
    NoFiles,
    #[error("file {index} has an unsafe path {path:?}: {reason}")]
    UnsafePath {
        index: usize,
        path: PathBuf,
        reason: &'static str,
    },
    #[error("files {first} and {second} both use the path {path:?}")]
    DuplicatePath {
        first: usize,
        second: usize,
        path: PathBuf,
    },
    #[error("file {file} at {file_path:?} would have to be a folder for {path:?}")]
    FileIsAlsoFolder {
        file: usize,
        file_path: PathBuf,
        path: PathBuf,
    },
    #[error("the files' lengths add up to more than 2^64 bytes")]
    TooLong,
    #[error("the torrent's files contain no bytes")]
    Empty,
}

/// Checks that `path` is a non-empty relative path of plain components (no root, no drive
/// prefix, no `.` or `..`, no NUL). This is the defence-in-depth check behind metainfo's own
/// sanitizing; `reason` says which rule failed.
pub fn check_relative_path(path: &Path) -> Result<(), &'static str> {
    use std::os::unix::ffi::OsStrExt;
    if path.as_os_str().is_empty() {
        return Err("the path is empty");
    }
    if path.as_os_str().as_bytes().contains(&0) {
        return Err("the path contains a NUL byte");
    }
    // `components` silently drops inner `.` components and repeated separators; look at the raw
    // text too, so that `a/./b` is refused rather than quietly normalized.
    if path
        .as_os_str()
        .as_bytes()
        .split(|&b| b == b'/')
        .any(|c| c == b".")
    {
        return Err("the path contains a `.` component");
    }
    for component in path.components() {
        match component {
            Component::Normal(_) => {}
            Component::RootDir | Component::Prefix(_) => return Err("the path is absolute"),
            Component::ParentDir => return Err("the path contains `..`"),
            Component::CurDir => return Err("the path contains a `.` component"),
        }
    }
    Ok(())
}

impl TryFrom<&shoal_proto::metainfo::Info> for FileLayout {
    type Error = LayoutError;

    /// The files of a parsed torrent, paths under the torrent's name. BEP 47 padding files, and
    /// symlink entries of length 0 (shoal never creates symlinks), are never put on disk.
    fn try_from(info: &shoal_proto::metainfo::Info) -> Result<Self, LayoutError> {
        let files = info
            .files()
            .iter()
            .map(|entry| StorageFile {
                path: entry.relative_path(),
                length: entry.length,
                padding: entry.attr.padding || (entry.attr.symlink && entry.length == 0),
            })
            .collect();
        FileLayout::new(files)
    }
}

/// A contiguous part of a stream range that lies in one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Index of the file in the layout.
    pub file: usize,
    /// Offset inside that file.
    pub file_offset: u64,
    /// Offset of this segment inside the requested range (where it goes in a buffer).
    pub range_offset: u64,
    /// Length in bytes (never 0).
    pub len: u64,
}

/// A torrent's files in stream order, with each file's start in the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileLayout {
    files: Vec<StorageFile>,
    /// `starts[i]` is the stream offset of file `i`; `starts[files.len()]` is the total length.
    starts: Vec<u64>,
}

impl FileLayout {
    /// Checks the files (safe relative paths, no duplicate, no file that is another's folder,
    /// a total that fits in `u64` and is not 0) and computes their stream offsets.
    /// Padding files are exempt from the path checks: they never touch the disk.
    pub fn new(files: Vec<StorageFile>) -> Result<Self, LayoutError> {
        if files.is_empty() {
            return Err(LayoutError::NoFiles);
        }
        let mut starts = Vec::with_capacity(files.len() + 1);
        let mut total: u64 = 0;
        for file in &files {
            starts.push(total);
            total = total.checked_add(file.length).ok_or(LayoutError::TooLong)?;
        }
        starts.push(total);
        if total == 0 {
            return Err(LayoutError::Empty);
        }
        check_paths(&files)?;
        Ok(FileLayout { files, starts })
    }

    pub fn files(&self) -> &[StorageFile] {
        &self.files
    }

    /// Length of the whole stream.
    pub fn total_len(&self) -> u64 {
        self.starts[self.files.len()]
    }

    /// Stream offset where file `index` starts. Panics if `index` is out of range.
    pub fn file_start(&self, index: usize) -> u64 {
        self.starts[index]
    }

    /// The segments covering `len` bytes from stream offset `offset`, in order. A range past the
    /// end of the stream is cut at the end (callers check ranges with `Geometry` first).
    pub fn segments(&self, offset: u64, len: u64) -> Segments<'_> {
        let end = offset.saturating_add(len).min(self.total_len());
        // The first file whose end lies past `offset`; zero-length files end where they start,
        // so they are skipped here and in `next`.
        let file = self.starts[1..].partition_point(|&file_end| file_end <= offset);
        Segments {
            layout: self,
            file,
            pos: offset,
            start: offset,
            end,
        }
    }
}

/// Iterator returned by [`FileLayout::segments`].
#[derive(Debug, Clone)]
pub struct Segments<'a> {
    layout: &'a FileLayout,
    file: usize,
    pos: u64,
    start: u64,
    end: u64,
}

impl Iterator for Segments<'_> {
    type Item = Segment;

    fn next(&mut self) -> Option<Segment> {
        while self.pos < self.end && self.file < self.layout.files.len() {
            let file = self.file;
            let file_start = self.layout.starts[file];
            let file_end = self.layout.starts[file + 1];
            self.file += 1;
            if file_end <= self.pos {
                continue; // a zero-length file, or one before the range
            }
            let seg_end = file_end.min(self.end);
            let segment = Segment {
                file,
                file_offset: self.pos - file_start,
                range_offset: self.pos - self.start,
                len: seg_end - self.pos,
            };
            self.pos = seg_end;
            return Some(segment);
        }
        None
    }
}

fn check_paths(files: &[StorageFile]) -> Result<(), LayoutError> {
    let mut seen: std::collections::BTreeMap<&Path, usize> = std::collections::BTreeMap::new();
    for (index, file) in files.iter().enumerate().filter(|(_, f)| !f.padding) {
        check_relative_path(&file.path).map_err(|reason| LayoutError::UnsafePath {
            index,
            path: file.path.clone(),
            reason,
        })?;
        if let Some(&first) = seen.get(file.path.as_path()) {
            return Err(LayoutError::DuplicatePath {
                first,
                second: index,
                path: file.path.clone(),
            });
        }
        seen.insert(&file.path, index);
    }
    // A file may not also be a folder of another file ("a" and "a/b").
    let folders: BTreeSet<&Path> = seen.keys().flat_map(|p| p.ancestors().skip(1)).collect();
    for (path, &index) in &seen {
        if folders.contains(path) {
            let inner = seen
                .keys()
                .find(|other| other.starts_with(path) && *other != path)
                .map_or_else(PathBuf::new, |p| p.to_path_buf());
            return Err(LayoutError::FileIsAlsoFolder {
                file: index,
                file_path: path.to_path_buf(),
                path: inner,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn file(path: &str, length: u64) -> StorageFile {
        StorageFile {
            path: PathBuf::from(path),
            length,
            padding: false,
        }
    }

    fn pad(length: u64) -> StorageFile {
        StorageFile {
            path: PathBuf::from(format!(".pad/{length}")),
            length,
            padding: true,
        }
    }

    #[test]
    fn block_crossing_three_files_and_an_empty_one() {
        let layout = FileLayout::new(vec![
            file("a", 10),
            file("empty", 0),
            file("b", 5),
            file("c", 100),
        ])
        .unwrap();
        let segs: Vec<_> = layout.segments(8, 10).collect();
        assert_eq!(
            segs,
            vec![
                Segment {
                    file: 0,
                    file_offset: 8,
                    range_offset: 0,
                    len: 2
                },
                Segment {
                    file: 2,
                    file_offset: 0,
                    range_offset: 2,
                    len: 5
                },
                Segment {
                    file: 3,
                    file_offset: 0,
                    range_offset: 7,
                    len: 3
                },
            ]
        );
        assert_eq!(layout.total_len(), 115);
    }

    #[test]
    fn range_starting_exactly_at_a_file_boundary() {
        let layout = FileLayout::new(vec![file("a", 10), file("b", 10)]).unwrap();
        let segs: Vec<_> = layout.segments(10, 10).collect();
        assert_eq!(
            segs,
            vec![Segment {
                file: 1,
                file_offset: 0,
                range_offset: 0,
                len: 10
            }]
        );
        assert_eq!(layout.segments(20, 5).count(), 0, "past the end");
        assert_eq!(
            layout.segments(15, 100).map(|s| s.len).sum::<u64>(),
            5,
            "cut at the end"
        );
    }

    #[test]
    fn unsafe_paths_are_refused() {
        for bad in [
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            ".",
            "",
            "a/\0b",
        ] {
            let err = FileLayout::new(vec![file(bad, 1)]).unwrap_err();
            assert!(
                matches!(err, LayoutError::UnsafePath { index: 0, .. }),
                "{bad:?}: {err:?}"
            );
        }
        // Padding files never touch the disk, so their names do not matter.
        let ok = FileLayout::new(vec![
            file("a", 1),
            StorageFile {
                path: "/x".into(),
                length: 3,
                padding: true,
            },
        ]);
        assert!(ok.is_ok());
    }

    #[test]
    fn duplicates_and_file_folder_clashes_are_refused() {
        let dup = FileLayout::new(vec![file("a/b", 1), file("a/b", 2)]).unwrap_err();
        assert_eq!(
            dup,
            LayoutError::DuplicatePath {
                first: 0,
                second: 1,
                path: "a/b".into()
            }
        );
        let clash = FileLayout::new(vec![file("a/b", 1), file("a", 2)]).unwrap_err();
        assert!(
            matches!(clash, LayoutError::FileIsAlsoFolder { file: 1, .. }),
            "{clash:?}"
        );
        assert_eq!(FileLayout::new(vec![]).unwrap_err(), LayoutError::NoFiles);
        assert_eq!(
            FileLayout::new(vec![file("a", 0)]).unwrap_err(),
            LayoutError::Empty
        );
        let huge = FileLayout::new(vec![file("a", u64::MAX), file("b", 1)]).unwrap_err();
        assert_eq!(huge, LayoutError::TooLong);
    }

    fn arb_files() -> impl Strategy<Value = Vec<StorageFile>> {
        prop::collection::vec((0u64..50, any::<bool>()), 1..12).prop_map(|specs| {
            let mut files: Vec<StorageFile> = specs
                .into_iter()
                .enumerate()
                .map(|(i, (len, is_pad))| {
                    if is_pad {
                        pad(len)
                    } else {
                        file(&format!("f{i}"), len)
                    }
                })
                .collect();
            files.push(file("last", 1)); // never empty
            files
        })
    }

    #[test]
    fn a_parsed_torrent_keeps_its_files_padding_and_order() {
        use shoal_proto::metainfo::{BuilderFile, FileAttr, Info, TorrentBuilder};
        let padding = FileAttr {
            padding: true,
            ..FileAttr::default()
        };
        let files = vec![
            BuilderFile::new(vec!["a.bin".into()], 20_000),
            BuilderFile {
                attr: padding,
                ..BuilderFile::new(vec![".pad".into(), "12768".into()], 12_768)
            },
            BuilderFile::new(vec!["sub".into(), "b.bin".into()], 100),
        ];
        let builder = TorrentBuilder::multi_file("top", files, 16384, vec![[0; 20]; 3]);
        let info = Info::from_bytes(&builder.info_bytes().unwrap()).unwrap();
        let layout = FileLayout::try_from(&info).unwrap();
        let paths: Vec<_> = layout
            .files()
            .iter()
            .map(|f| (f.path.clone(), f.length, f.padding))
            .collect();
        assert_eq!(
            paths,
            vec![
                (PathBuf::from("top/a.bin"), 20_000, false),
                (PathBuf::from("top/.pad/12768"), 12_768, true),
                (PathBuf::from("top/sub/b.bin"), 100, false),
            ]
        );
        assert_eq!(layout.total_len(), info.total_len());
    }

    proptest! {
        /// Every byte of every range maps to exactly one (file, offset), in order, and that
        /// place is the byte's own: file start + file offset = stream offset.
        #[test]
        fn every_byte_maps_to_exactly_one_place(files in arb_files(), a in 0u64..700, b in 0u64..700) {
            let layout = FileLayout::new(files).unwrap();
            let total = layout.total_len();
            let (offset, len) = (a.min(b) % (total + 1), a.max(b) - a.min(b));
            let end = (offset + len).min(total);
            let mut next = offset;
            for seg in layout.segments(offset, len) {
                prop_assert!(seg.len > 0);
                prop_assert!(layout.files()[seg.file].length > 0);
                prop_assert_eq!(layout.file_start(seg.file) + seg.file_offset, next);
                prop_assert_eq!(seg.range_offset, next - offset);
                prop_assert!(seg.file_offset + seg.len <= layout.files()[seg.file].length);
                next += seg.len;
            }
            prop_assert_eq!(next, end);
        }
    }
}
