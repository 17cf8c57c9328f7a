//! Turns hashed content and options into canonical `.torrent` bytes.
//!
//! The info dictionary holds `name`, `piece length`, `pieces`, then `length` (single file) or
//! `files` (each with `length` and `path`), and `private` when set. Outside it: `announce` (the
//! first tracker), `announce-list` (only when there is more than one URL), `url-list`,
//! `comment`, `created by`, `creation date`. Keys are sorted by the encoder, so the bytes are
//! canonical and the infohash is the SHA-1 of exactly the `info` bytes written.

use shoal_proto::bencode::{OwnedDict, OwnedValue};
use shoal_proto::InfoHash;

use super::{CreateError, CreateOptions, CreatedTorrent, HashedContent};

pub(crate) fn build_torrent(
    hashed: &HashedContent,
    options: &CreateOptions,
) -> Result<CreatedTorrent, CreateError> {
    let content = &hashed.content;
    let pieces: Vec<u8> = hashed.piece_hashes.iter().flatten().copied().collect();
    let mut info = OwnedDict::new()
        .with("name", content.name())
        .with("piece length", i64::from(hashed.piece_len))
        .with("pieces", pieces);
    if content.is_single_file() {
        info.insert("length", to_int(content.total_len())?);
    } else {
        let mut files = Vec::with_capacity(content.files().len());
        for file in content.files() {
            let path: Vec<OwnedValue> = file
                .path
                .iter()
                .map(|c| OwnedValue::from(c.as_str()))
                .collect();
            files.push(OwnedValue::from(
                OwnedDict::new()
                    .with("length", to_int(file.len)?)
                    .with("path", path),
            ));
        }
        info.insert("files", files);
    }
    if options.private {
        info.insert("private", 1);
    }
    let info_bytes = OwnedValue::from(info.clone()).encode();
    let info_hash = InfoHash::of_info_bytes(&info_bytes);

    let tiers: Vec<&Vec<String>> = options
        .trackers
        .iter()
        .filter(|tier| !tier.is_empty())
        .collect();
    let first_tracker = tiers.first().and_then(|tier| tier.first());
    let url_count: usize = tiers.iter().map(|tier| tier.len()).sum();
    let announce_list = (url_count > 1).then(|| {
        let tiers: Vec<OwnedValue> = tiers
            .iter()
            .map(|tier| {
                OwnedValue::from(
                    tier.iter()
                        .map(|u| OwnedValue::from(u.as_str()))
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        OwnedValue::from(tiers)
    });
    let url_list = (!options.web_seeds.is_empty()).then(|| {
        OwnedValue::from(
            options
                .web_seeds
                .iter()
                .map(|u| OwnedValue::from(u.as_str()))
                .collect::<Vec<_>>(),
        )
    });
    let torrent = OwnedDict::new()
        .with("info", info)
        .with_opt("announce", first_tracker.map(String::as_str))
        .with_opt("announce-list", announce_list)
        .with_opt("url-list", url_list)
        .with_opt("comment", options.comment.as_deref())
        .with_opt("created by", options.created_by.as_deref())
        .with_opt("creation date", options.creation_date);
    Ok(CreatedTorrent {
        bytes: OwnedValue::from(torrent).encode(),
        info_hash,
        name: content.name().to_owned(),
        total_len: content.total_len(),
        piece_len: hashed.piece_len,
        piece_count: hashed.piece_hashes.len(),
    })
}

fn to_int(len: u64) -> Result<i64, CreateError> {
    i64::try_from(len).map_err(|_| CreateError::Build {
        reason: format!("length {len} does not fit a bencode integer"),
    })
}
