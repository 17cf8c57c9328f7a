//! Turns hashed content and options into canonical `.torrent` bytes through
//! [`TorrentBuilder`] (see its docs for the keys written; dictionaries are sorted, so the bytes
//! are canonical and the infohash is the SHA-1 of exactly the `info` bytes written).

use shoal_proto::metainfo::{BuilderFile, TorrentBuilder};

use super::{CreateError, CreateOptions, CreatedTorrent, HashedContent};

pub(crate) fn build_torrent(
    hashed: &HashedContent,
    options: &CreateOptions,
) -> Result<CreatedTorrent, CreateError> {
    let content = &hashed.content;
    let hashes = hashed.piece_hashes.clone();
    let builder = if content.is_single_file() {
        TorrentBuilder::single_file(
            content.name(),
            content.total_len(),
            hashed.piece_len,
            hashes,
        )
    } else {
        let files = content
            .files()
            .iter()
            .map(|file| BuilderFile::new(file.path.clone(), file.len))
            .collect();
        TorrentBuilder::multi_file(content.name(), files, hashed.piece_len, hashes)
    };
    let builder = builder
        .trackers(options.trackers.clone())
        .web_seeds(options.web_seeds.clone())
        .private(options.private)
        .comment(options.comment.clone())
        .created_by(options.created_by.clone())
        .creation_date(options.creation_date);
    let (bytes, info_hash) = builder.build_with_info_hash()?;
    Ok(CreatedTorrent {
        bytes,
        info_hash,
        name: content.name().to_owned(),
        total_len: content.total_len(),
        piece_len: hashed.piece_len,
        piece_count: hashed.piece_hashes.len(),
    })
}
