use proptest::prelude::*;

use super::*;
use crate::bencode::{OwnedDict, OwnedValue};

fn hashes(n: usize) -> Vec<[u8; 20]> {
    (0..n).map(|i| [i as u8; 20]).collect()
}

fn strs(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A multi-file torrent with raw (possibly hostile) paths, one 16 KiB piece per 16 KiB of data.
fn raw_multi(name: &[u8], files: &[(&[&[u8]], i64)]) -> Vec<u8> {
    let list: Vec<OwnedValue> = files
        .iter()
        .map(|(path, len)| {
            let path: Vec<OwnedValue> = path.iter().map(|c| OwnedValue::from(*c)).collect();
            OwnedDict::new()
                .with("length", *len)
                .with("path", path)
                .into()
        })
        .collect();
    let total: i64 = files.iter().map(|(_, l)| (*l).max(0)).sum();
    let pieces = (total.max(1) as usize).div_ceil(16384);
    let info = OwnedDict::new()
        .with("files", list)
        .with("name", name)
        .with("piece length", 16384)
        .with("pieces", hashes(pieces).concat());
    OwnedDict::new().with("info", info).encode()
}

#[test]
fn golden_single_file_torrent() {
    let bytes = TorrentBuilder::single_file("a.txt", 20_000, 16384, hashes(2))
        .trackers(vec![strs(&["http://t.example/announce"])])
        .creation_date(Some(1_700_000_000))
        .created_by(Some("shoal".into()))
        .build()
        .unwrap();
    let mut expected = b"d8:announce25:http://t.example/announce10:created by5:shoal13:creation datei1700000000e4:infod6:lengthi20000e4:name5:a.txt12:piece lengthi16384e6:pieces40:".to_vec();
    expected.extend(hashes(2).concat());
    expected.extend(b"ee");
    assert_eq!(bytes, expected);

    let meta = Metainfo::from_bytes(&bytes).unwrap();
    let info = &meta.info;
    let raw_info = &bytes[bytes.len() - (info.raw().len() + 1)..bytes.len() - 1];
    assert_eq!(info.raw().as_ref(), raw_info);
    assert_eq!(info.info_hash(), InfoHash::of_info_bytes(raw_info));
    assert_eq!(info.name(), "a.txt");
    assert!(!info.is_multi_file());
    assert_eq!(info.total_len(), 20_000);
    assert_eq!(info.piece_count(), 2);
    assert_eq!(info.files()[0].path, ["a.txt"]);
    assert_eq!(meta.trackers, [["http://t.example/announce"]]);
    assert_eq!(meta.creation_date, Some(1_700_000_000));
    assert_eq!(meta.created_by.as_deref(), Some("shoal"));
}

#[test]
fn golden_multi_file_torrent() {
    let files = vec![
        BuilderFile::new(strs(&["sub", "x.bin"]), 10_000),
        BuilderFile {
            path: strs(&[".pad", "6384"]),
            length: 6384,
            attr: FileAttr {
                padding: true,
                ..FileAttr::default()
            },
            symlink_target: None,
        },
        BuilderFile {
            path: strs(&["run.sh"]),
            length: 1,
            attr: FileAttr {
                executable: true,
                ..FileAttr::default()
            },
            symlink_target: None,
        },
    ];
    let builder = TorrentBuilder::multi_file("dir", files, 16384, hashes(2))
        .trackers(vec![
            strs(&["udp://a:1", "http://b/ann"]),
            strs(&["https://c/ann"]),
        ])
        .web_seeds(strs(&["http://w/1", "http://w/2"]))
        .private(true)
        .comment(Some("hello".into()));
    let bytes = builder.build().unwrap();
    assert_eq!(builder.build().unwrap(), bytes, "byte-identical on rebuild");
    let meta = Metainfo::from_bytes(&bytes).unwrap();
    let (same, info_hash) = builder.build_with_info_hash().unwrap();
    assert_eq!((same, info_hash), (bytes.clone(), meta.info_hash()));
    let info = &meta.info;
    assert!(info.is_multi_file() && info.is_private());
    let paths: Vec<_> = info.files().iter().map(|f| f.path.join("/")).collect();
    assert_eq!(paths, ["dir/sub/x.bin", "dir/.pad/6384", "dir/run.sh"]);
    let offsets: Vec<_> = info.files().iter().map(|f| f.offset).collect();
    assert_eq!(offsets, [0, 10_000, 16_384]);
    assert!(info.files()[1].attr.padding);
    assert!(info.files()[2].attr.executable);
    assert_eq!(
        meta.trackers,
        [
            strs(&["udp://a:1", "http://b/ann"]),
            strs(&["https://c/ann"])
        ]
    );
    assert_eq!(meta.web_seeds, strs(&["http://w/1", "http://w/2"]));
    assert_eq!(meta.comment.as_deref(), Some("hello"));
    assert_eq!(
        info.info_hash(),
        InfoHash::of_info_bytes(&builder.info_bytes().unwrap())
    );
}

#[test]
fn infohash_is_of_raw_bytes_not_a_reencoding() {
    let mut raw_info = b"d4:name1:x12:piece lengthi16384e6:lengthi5e6:pieces20:".to_vec();
    raw_info.extend([7u8; 20]);
    raw_info.push(b'e');
    let torrent = [&b"d4:info"[..], &raw_info, b"e"].concat();
    let meta = Metainfo::from_bytes(&torrent).unwrap();
    let reencoded = crate::bencode::decode(&raw_info)
        .unwrap()
        .to_owned_value()
        .encode();
    assert_ne!(reencoded, raw_info);
    assert_eq!(meta.info_hash(), InfoHash::of_info_bytes(&raw_info));
    assert_ne!(meta.info_hash(), InfoHash::of_info_bytes(&reencoded));
    assert_eq!(meta.info.raw().as_ref(), &raw_info[..]);
}

#[test]
fn info_from_peer_metadata_is_hash_checked() {
    let builder = TorrentBuilder::single_file("f", 1, 16384, hashes(1));
    let raw = builder.info_bytes().unwrap();
    let good = InfoHash::of_info_bytes(&raw);
    assert_eq!(
        Info::from_bytes_checked(&raw, good).unwrap().info_hash(),
        good
    );
    let bad = InfoHash([0; 20]);
    assert_eq!(
        Info::from_bytes_checked(&raw, bad).unwrap_err(),
        MetainfoError::InfoHashMismatch {
            expected: bad,
            actual: good
        }
    );
}

fn info_with(fields: OwnedDict) -> Vec<u8> {
    OwnedDict::new().with("info", fields).encode()
}

fn base_info(length: i64, piece_len: i64, pieces: usize) -> OwnedDict {
    OwnedDict::new()
        .with("name", "n")
        .with("length", length)
        .with("piece length", piece_len)
        .with("pieces", vec![1u8; pieces])
}

#[test]
fn bad_metainfo_gets_typed_errors() {
    use MetainfoError as E;
    let err = |bytes: Vec<u8>| Metainfo::from_bytes(&bytes).unwrap_err();
    assert!(matches!(
        err(b"i1e".to_vec()),
        E::WrongType {
            field: "(torrent)",
            ..
        }
    ));
    assert!(matches!(err(b"d4:infoe".to_vec()), E::Bencode { .. }));
    assert_eq!(err(b"de".to_vec()), E::MissingField { field: "info" });
    assert_eq!(
        err(info_with(base_info(5, 0, 20))),
        E::BadPieceLength { piece_len: 0 }
    );
    assert_eq!(
        err(info_with(base_info(5, 1 << 29, 20))),
        E::BadPieceLength { piece_len: 1 << 29 }
    );
    assert_eq!(
        err(info_with(base_info(5, 16384, 19))),
        E::PiecesNotMultipleOf20 { len: 19 }
    );
    assert_eq!(
        err(info_with(base_info(40_000, 16384, 40))),
        E::PieceCountMismatch {
            expected: 3,
            found: 2
        }
    );
    assert_eq!(
        err(info_with(base_info(5, 16384, 40))),
        E::PieceCountMismatch {
            expected: 1,
            found: 2
        }
    );
    assert_eq!(
        err(info_with(base_info(-1, 16384, 20))),
        E::NegativeLength {
            file_index: 0,
            length: -1
        }
    );
    assert!(matches!(
        err(info_with(base_info(0, 16384, 0))),
        E::Geometry { .. }
    ));
    assert_eq!(
        err(info_with(
            base_info(5, 16384, 20).with("files", Vec::<OwnedValue>::new())
        )),
        E::BothLengthAndFiles
    );
    let mut no_layout = base_info(5, 16384, 20);
    no_layout.remove(b"length");
    assert_eq!(
        err(info_with(no_layout)),
        E::MissingField {
            field: "length or files"
        }
    );
    let mut no_name = base_info(5, 16384, 20);
    no_name.remove(b"name");
    assert_eq!(err(info_with(no_name)), E::MissingField { field: "name" });
    assert_eq!(err(raw_multi(b"d", &[])), E::NoFiles);
    assert_eq!(
        err(raw_multi(b"d", &[(&[], 5)])),
        E::EmptyPath { file_index: 0 }
    );
    assert_eq!(
        err(raw_multi(b"d", &[(&[b"a"], 5), (&[b"b"], -5)])),
        E::NegativeLength {
            file_index: 1,
            length: -5
        }
    );
    let deep: Vec<&[u8]> = vec![b"d"; MAX_PATH_COMPONENTS + 1];
    assert_eq!(
        err(raw_multi(b"d", &[(&deep, 5)])),
        E::PathTooDeep {
            file_index: 0,
            components: MAX_PATH_COMPONENTS + 1,
            max: MAX_PATH_COMPONENTS
        }
    );
}

#[test]
fn overflowing_file_lengths_are_an_error() {
    let list: Vec<OwnedValue> = (0..3)
        .map(|i| {
            OwnedDict::new()
                .with("length", i64::MAX)
                .with("path", vec![OwnedValue::from(format!("{i}"))])
                .into()
        })
        .collect();
    let info = OwnedDict::new()
        .with("files", list)
        .with("name", "d")
        .with("piece length", 16384)
        .with("pieces", Vec::<u8>::new());
    assert_eq!(
        Metainfo::from_bytes(&info_with(info)).unwrap_err(),
        MetainfoError::TotalLengthOverflow { file_index: 2 }
    );
}

#[test]
fn piece_length_not_a_power_of_two_is_accepted_and_reported() {
    let meta = Metainfo::from_bytes(&info_with(base_info(100_000, 50_000, 40))).unwrap();
    assert_eq!(meta.info.piece_count(), 2);
    assert!(!meta.info.piece_len_is_power_of_two());
}

#[test]
fn hostile_paths_from_testing_md_are_sanitized() {
    let bytes = raw_multi(
        b"..",
        &[
            (&[b"..", b"..", b"etc", b"passwd"], 1),
            (&[b"/abs", b"x"], 1),
            (&[b"C:\\", b"win"], 1),
            (&[b"back\\slash"], 1),
            (&[b"", b".", b"dots"], 1),
            (&[b"nul\0byte"], 1),
            (&[b"CON"], 1),
            (&[b"nul.txt"], 1),
            (&[b"evil\xe2\x80\xaetxt.exe"], 1),
            (&[b".."], 1),
        ],
    );
    let meta = Metainfo::from_bytes(&bytes).unwrap();
    let hex = meta.info_hash().to_hex();
    assert_eq!(
        meta.info.name(),
        hex,
        "a name of `..` falls back to the infohash"
    );
    let paths: Vec<String> = meta
        .info
        .files()
        .iter()
        .map(|f| f.path[1..].join("/"))
        .collect();
    assert_eq!(
        paths,
        [
            "etc/passwd",
            "_abs/x",
            "C__/win",
            "back_slash",
            "dots",
            "nul_byte",
            "_CON",
            "_nul.txt",
            "eviltxt.exe",
            "_",
        ]
    );
    for file in meta.info.files() {
        assert_path_stays_inside(&file.relative_path());
    }
}

fn assert_path_stays_inside(path: &std::path::Path) {
    use std::path::Component;
    assert!(path.is_relative(), "{path:?}");
    assert!(
        path.components().all(|c| matches!(c, Component::Normal(_))),
        "{path:?}"
    );
    assert!(path.components().count() >= 1);
}

#[test]
fn a_hundred_thousand_files_with_the_same_name_get_unique_paths() {
    let same: &[&[u8]] = &[b"same.txt"];
    let files: Vec<(&[&[u8]], i64)> = vec![(same, 1); 100_000];
    let bytes = raw_multi(b"d", &files);
    let meta = Metainfo::from_bytes(&bytes).unwrap();
    let mut seen = std::collections::HashSet::new();
    for file in meta.info.files() {
        assert!(
            seen.insert(file.path.join("/")),
            "duplicate {:?}",
            file.path
        );
    }
    assert_eq!(meta.info.files()[0].path, ["d", "same.txt"]);
    assert_eq!(meta.info.files()[99_999].path, ["d", "same.99999.txt"]);
}

#[test]
fn trackers_follow_bep12_and_keep_known_schemes_only() {
    let tiers = vec![
        OwnedValue::List(vec![
            "http://a/ann".into(),
            "ftp://x".into(),
            "udp://b:80".into(),
        ]),
        OwnedValue::List(vec!["javascript:alert(1)".into()]),
        OwnedValue::List(vec!["HTTPS://c/ann".into(), "http://a/ann".into()]),
        OwnedValue::Int(3),
    ];
    let torrent = OwnedDict::new()
        .with("info", base_info(5, 16384, 20))
        .with("announce", "http://ignored/ann")
        .with("announce-list", tiers)
        .with("url-list", "http://seed/file")
        .encode();
    let meta = Metainfo::from_bytes(&torrent).unwrap();
    assert_eq!(
        meta.trackers,
        [
            strs(&["http://a/ann", "udp://b:80"]),
            strs(&["HTTPS://c/ann"])
        ]
    );
    assert_eq!(meta.web_seeds, ["http://seed/file"]);

    let only_announce = OwnedDict::new()
        .with("info", base_info(5, 16384, 20))
        .with("announce", "udp://t:6969")
        .with(
            "announce-list",
            vec![OwnedValue::List(vec!["gopher://x".into()])],
        )
        .encode();
    assert_eq!(
        Metainfo::from_bytes(&only_announce).unwrap().trackers,
        [["udp://t:6969"]]
    );

    let thousands: Vec<OwnedValue> = (0..5000)
        .map(|i| OwnedValue::List(vec![format!("http://t{i}/a").into()]))
        .collect();
    let many = OwnedDict::new()
        .with("info", base_info(5, 16384, 20))
        .with("announce-list", thousands)
        .encode();
    let meta = Metainfo::from_bytes(&many).unwrap();
    assert_eq!(meta.trackers.len(), MAX_TRACKER_TIERS);
}

#[test]
fn utf8_names_and_legacy_padding_and_symlinks() {
    let file = |path: &[&str], extra: OwnedDict| -> OwnedValue {
        let path: Vec<OwnedValue> = path.iter().map(|c| OwnedValue::from(*c)).collect();
        let mut d = extra.with("length", 1).with("path", path);
        if d.get(b"path.utf-8").is_none() {
            d.insert("x", 0);
        }
        d.into()
    };
    let files = vec![
        file(
            &["\u{fffd}"],
            OwnedDict::new().with("path.utf-8", vec![OwnedValue::from("café")]),
        ),
        file(&["_____padding_file_0"], OwnedDict::new()),
        file(
            &["link"],
            OwnedDict::new()
                .with("attr", "l")
                .with("symlink path", vec![OwnedValue::from(".."), "t".into()]),
        ),
    ];
    let info = OwnedDict::new()
        .with("files", files)
        .with("name", "raw")
        .with("name.utf-8", "nicé")
        .with("piece length", 16384)
        .with("pieces", vec![0u8; 20]);
    let meta = Metainfo::from_bytes(&info_with(info)).unwrap();
    let f = meta.info.files();
    assert_eq!(meta.info.name(), "nicé");
    assert_eq!(f[0].path, ["nicé", "café"]);
    assert!(f[1].attr.padding);
    assert!(f[2].attr.symlink);
    assert_eq!(f[2].symlink_target.as_deref(), Some(&strs(&["t"])[..]));
}

#[test]
fn builder_refuses_unsafe_input() {
    let files = |p: &[&str]| vec![BuilderFile::new(strs(p), 1)];
    let b = |name: &str, f| TorrentBuilder::multi_file(name, f, 16384, hashes(1)).build();
    assert_eq!(
        b("..", files(&["a"])),
        Err(BuildError::BadName { name: "..".into() })
    );
    assert_eq!(
        b("d", files(&["a", "../b"])),
        Err(BuildError::BadPathComponent {
            file_index: 0,
            component: "../b".into()
        })
    );
    assert_eq!(
        b("d", files(&[])),
        Err(BuildError::EmptyPath { file_index: 0 })
    );
    assert_eq!(b("d", vec![]), Err(BuildError::NoFiles));
    assert_eq!(
        TorrentBuilder::single_file("f", 40_000, 16384, hashes(2)).build(),
        Err(BuildError::PieceCountMismatch {
            expected: 3,
            given: 2
        })
    );
}

fn arb_component() -> impl Strategy<Value = String> {
    "[a-z0-9_-]{1,12}(\\.[a-z]{1,4})?".prop_filter("reserved names are renamed", |c| {
        super::sanitize::sanitize_component(c.as_bytes()).as_deref() == Some(c.as_str())
    })
}

proptest! {
    #[test]
    fn builder_output_parses_back_to_the_same_fields(
        name in arb_component(),
        files in prop::collection::btree_map(prop::collection::vec(arb_component(), 1..4), 0u64..70_000, 1..8),
        piece_pow in 14u32..17,
        private in any::<bool>(),
        date in prop::option::of(0i64..2_000_000_000),
    ) {
        // Unique, case-insensitively, and no file is also a folder: otherwise the parser renames.
        let mut keys = std::collections::HashSet::new();
        let files: Vec<BuilderFile> = files
            .into_iter()
            .filter(|(p, _)| keys.insert(p.join("/").to_lowercase()))
            .map(|(path, length)| BuilderFile::new(path, length))
            .collect();
        let is_folder = |f: &BuilderFile| files.iter().any(|g| g.path.len() > f.path.len() && g.path[..f.path.len()].iter().zip(&f.path).all(|(a, b)| a.eq_ignore_ascii_case(b)));
        prop_assume!(!files.iter().any(is_folder));
        let total: u64 = files.iter().map(|f| f.length).sum();
        prop_assume!(total > 0);
        let piece_len = 1u32 << piece_pow;
        let count = total.div_ceil(u64::from(piece_len)) as usize;
        let builder = TorrentBuilder::multi_file(name.clone(), files.clone(), piece_len, hashes(count))
            .private(private)
            .creation_date(date)
            .trackers(vec![vec!["http://t/a".into()]]);
        let bytes = builder.build().unwrap();
        let meta = Metainfo::from_bytes(&bytes).unwrap();
        prop_assert_eq!(meta.info.name(), name.as_str());
        prop_assert_eq!(meta.info.total_len(), total);
        prop_assert_eq!(meta.info.piece_len(), piece_len);
        prop_assert_eq!(meta.info.piece_hashes(), &hashes(count)[..]);
        prop_assert_eq!(meta.info.is_private(), private);
        prop_assert_eq!(meta.creation_date, date);
        prop_assert_eq!(meta.info.files().len(), files.len());
        for (parsed, given) in meta.info.files().iter().zip(&files) {
            prop_assert_eq!(&parsed.path[0], &name);
            prop_assert_eq!(&parsed.path[1..], &given.path[..]);
            prop_assert_eq!(parsed.length, given.length);
        }
        prop_assert_eq!(meta.info.raw().as_ref(), &builder.info_bytes().unwrap()[..]);
    }

    #[test]
    fn hostile_component_bytes_never_escape(
        components in prop::collection::vec(
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..20),
                Just(b"..".to_vec()), Just(b".".to_vec()), Just(b"/".to_vec()),
                Just(b"C:\\".to_vec()), Just(b"\xe2\x80\xae..".to_vec()),
            ],
            1..6,
        ),
        copies in 1usize..4,
    ) {
        let raw: Vec<&[u8]> = components.iter().map(Vec::as_slice).collect();
        let files: Vec<(&[&[u8]], i64)> = vec![(&raw, 1); copies];
        let meta = Metainfo::from_bytes(&raw_multi(&components[0], &files)).unwrap();
        let mut seen = std::collections::HashSet::new();
        for file in meta.info.files() {
            assert_path_stays_inside(&file.relative_path());
            prop_assert!(seen.insert(file.path.join("/").to_lowercase()));
        }
    }

    #[test]
    fn fuzz_entries_survive_random_and_mutated_input(
        data in prop::collection::vec(any::<u8>(), 0..512),
        at in any::<usize>(),
        byte in any::<u8>(),
    ) {
        crate::bencode::fuzzing::run(&data);
        fuzzing::run(&data);
        let mut torrent = raw_multi(b"d", &[(&[b"a"], 20_000), (&[b"b", b"c"], 1)]);
        let at = at % torrent.len();
        torrent[at] = byte;
        fuzzing::run(&torrent);
        crate::bencode::fuzzing::run(&torrent);
    }
}
