//! Fuzz entry point shared by `fuzz/fuzz_targets/metainfo.rs` and a stable smoke test.

use super::{Info, Metainfo};

/// Parses `data` as a torrent and as a bare info dictionary; on success checks the invariants
/// the rest of shoal relies on, and panics (for the fuzzer) if one is broken.
pub fn run(data: &[u8]) {
    if let Ok(meta) = Metainfo::from_bytes(data) {
        check(&meta.info);
    }
    if let Ok(info) = Info::from_bytes(data) {
        check(&info);
        assert_eq!(
            info.raw().as_ref(),
            data,
            "info raw bytes must be the input"
        );
    }
}

#[allow(clippy::panic)]
fn check(info: &Info) {
    assert_eq!(info.piece_hashes().len(), info.piece_count() as usize);
    let mut offset = 0u64;
    let mut seen = std::collections::HashSet::new();
    for file in info.files() {
        assert_eq!(file.offset, offset, "files must be contiguous");
        offset += file.length;
        for component in &file.path {
            if component.is_empty() || component == "." || component == ".." {
                panic!("unsafe component {component:?}");
            }
            assert!(
                !component.contains(['/', '\\', '\0']),
                "unsafe component {component:?}"
            );
        }
        if !file.attr.padding {
            assert!(
                seen.insert(file.path.join("/").to_lowercase()),
                "duplicate path"
            );
        }
    }
    assert_eq!(offset, info.total_len());
}
