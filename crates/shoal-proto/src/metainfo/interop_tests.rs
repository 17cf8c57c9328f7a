//! Torrents written by real clients (mktorrent 1.1, transmission-create 3.00, libtorrent 2.0.8;
//! generated once, kept in `testdata/`): they parse, their infohashes agree with libtorrent's,
//! and the builder reproduces mktorrent's bytes exactly.

use super::*;

const MK_MULTI: &[u8] = include_bytes!("testdata/mk_multi.torrent");
const MK_SINGLE: &[u8] = include_bytes!("testdata/mk_single.torrent");
const TR_MULTI: &[u8] = include_bytes!("testdata/tr_multi.torrent");
const LT_V1_PAD: &[u8] = include_bytes!("testdata/lt_v1_pad.torrent");
const LT_HYBRID: &[u8] = include_bytes!("testdata/lt_hybrid.torrent");

fn hash(hex: &str) -> InfoHash {
    InfoHash::parse(hex).unwrap()
}

fn paths(info: &Info) -> Vec<String> {
    info.files().iter().map(|f| f.path.join("/")).collect()
}

/// What the builder needs to redo a parsed torrent.
fn rebuild(meta: &Metainfo) -> TorrentBuilder {
    let info = &meta.info;
    let hashes = info.piece_hashes().to_vec();
    let builder = if info.is_multi_file() {
        let files = info
            .files()
            .iter()
            .map(|f| BuilderFile {
                path: f.path[1..].to_vec(),
                length: f.length,
                attr: f.attr,
                symlink_target: f.symlink_target.clone(),
            })
            .collect();
        TorrentBuilder::multi_file(info.name(), files, info.piece_len(), hashes)
    } else {
        TorrentBuilder::single_file(info.name(), info.total_len(), info.piece_len(), hashes)
    };
    builder
        .trackers(meta.trackers.clone())
        .web_seeds(meta.web_seeds.clone())
        .private(info.is_private())
        .comment(meta.comment.clone())
        .created_by(meta.created_by.clone())
        .creation_date(meta.creation_date)
}

#[test]
fn mktorrent_multi_file_parses_and_rebuilds_byte_for_byte() {
    let meta = Metainfo::from_bytes(MK_MULTI).unwrap();
    assert_eq!(
        meta.info_hash(),
        hash("473f41938d1bddd935e656050c1a97f11dcdb3ae")
    );
    assert_eq!(
        paths(&meta.info),
        ["multi/a.bin", "multi/sub/b.bin", "multi/sub/c.txt"]
    );
    assert_eq!(meta.info.total_len(), 120_003);
    assert_eq!(meta.info.piece_len(), 32768);
    assert_eq!(meta.trackers.len(), 2);
    assert_eq!(meta.web_seeds, ["http://ws/x"]);
    assert_eq!(meta.created_by.as_deref(), Some("mktorrent 1.1"));
    assert_eq!(rebuild(&meta).build().unwrap(), MK_MULTI);
}

#[test]
fn mktorrent_private_single_file_rebuilds_byte_for_byte() {
    let meta = Metainfo::from_bytes(MK_SINGLE).unwrap();
    assert_eq!(
        meta.info_hash(),
        hash("defc882b85a8b49c5d63da1d763d720a7aed6709")
    );
    assert!(meta.info.is_private() && !meta.info.is_multi_file());
    assert_eq!(paths(&meta.info), ["single.bin"]);
    assert_eq!(rebuild(&meta).build().unwrap(), MK_SINGLE);
}

#[test]
fn transmission_torrent_with_private_zero_parses() {
    let meta = Metainfo::from_bytes(TR_MULTI).unwrap();
    assert_eq!(
        meta.info_hash(),
        hash("201bfda38bc8b19af2c80fe01a2b01af9d607b41")
    );
    assert!(!meta.info.is_private(), "`private 0` is not private");
    assert_eq!(
        paths(&meta.info),
        ["multi/a.bin", "multi/sub/b.bin", "multi/sub/c.txt"]
    );
    let mk = Metainfo::from_bytes(MK_MULTI).unwrap();
    assert_eq!(
        meta.info.piece_hashes(),
        mk.info.piece_hashes(),
        "same data, same pieces"
    );
}

#[test]
fn libtorrent_padding_files_are_flagged_and_rebuilt() {
    let meta = Metainfo::from_bytes(LT_V1_PAD).unwrap();
    assert_eq!(
        meta.info_hash(),
        hash("01f32db01055d6e225681b17c20aae9ae7fd9fff")
    );
    let padding: Vec<bool> = meta.info.files().iter().map(|f| f.attr.padding).collect();
    assert_eq!(padding, [false, true, false, true, false, true]);
    assert_eq!(meta.info.files()[1].path, ["multi", ".pad", "15536"]);
    assert_eq!(
        meta.info.files()[2].offset,
        65536,
        "b.bin starts on a piece boundary"
    );
    assert_eq!(
        rebuild(&meta).info_bytes().unwrap(),
        meta.info.raw().as_ref()
    );
}

#[test]
fn libtorrent_hybrid_v1_v2_torrent_parses_as_v1() {
    let meta = Metainfo::from_bytes(LT_HYBRID).unwrap();
    assert_eq!(
        meta.info_hash(),
        hash("c5ee0dd3d820f8332ed81295fdad8bfc09614999")
    );
    assert_eq!(meta.info.files().len(), 6);
    assert_eq!(meta.info.piece_count(), 6);
}
