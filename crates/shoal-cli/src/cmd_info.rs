//! `shoal info FILE.torrent|MAGNET [--json]`: show what a torrent file or a magnet link holds.
//!
//! A `.torrent` is parsed with `Metainfo::from_bytes` (so names are shown as shoal would save
//! them, after sanitizing); a magnet link shows only what the link carries.
//!
//! `--json` prints one JSON object on one line. For a torrent file:
//! - `kind`: `"torrent"`; `name`; `info_hash` (40 lowercase hex); `magnet` (a link with the name,
//!   trackers and web seeds);
//! - `total_size`, `piece_size` (bytes), `piece_count`; `private` (bool);
//! - `files`: `[{ "path": "dir/file", "size": n, "padding": bool }]` in torrent order; `path`
//!   is relative to the torrent's top folder (for a single-file torrent, the file name);
//! - `trackers`: tiers, each a list of URLs; `web_seeds`: URLs;
//! - `comment`, `created_by`: string or null; `creation_date`: Unix seconds or null.
//!
//! For a magnet link: `kind`: `"magnet"`; `info_hash`; `info_hash_v2` (64 hex or null);
//! `magnet` (the link as shoal formats it); `name` (the `dn` hint, or null); `trackers` (one tier
//! per URL); `web_seeds`; `peers` (`"ip:port"` strings); `select_only` (BEP 53 text such as
//! `"0,2,4-6"`, or null); `skipped` (counts of what the parser dropped: `unsupported_trackers`,
//! `unsupported_web_seeds`, `bad_peers`, `over_cap`, `unknown_keys`).

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use serde_json::{json, Value};
use shoal_proto::magnet::Magnet;
use shoal_proto::metainfo::Metainfo;

use crate::units::human_size;

/// Largest `.torrent` file read (a torrent of 1,000,000 files stays well below this).
const MAX_TORRENT_FILE_LEN: u64 = 100 * 1024 * 1024;

#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// A .torrent file, or a magnet link (quote it in the shell).
    pub source: String,
    /// Print one JSON object instead of text (fields in the `shoal info` docs).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    let report = if args
        .source
        .get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("magnet:"))
    {
        let magnet = Magnet::parse(&args.source).context("bad magnet link")?;
        magnet_json(&magnet)
    } else {
        let path = PathBuf::from(&args.source);
        let bytes = read_torrent_file(&path)?;
        let metainfo = Metainfo::from_bytes(&bytes)
            .with_context(|| format!("{} is not a usable .torrent file", path.display()))?;
        torrent_json(&metainfo)
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{report}")?;
    } else {
        write_text(&mut out, &report)?;
    }
    Ok(())
}

fn read_torrent_file(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_TORRENT_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() as u64 > MAX_TORRENT_FILE_LEN {
        bail!(
            "{} is larger than {}, too large for a .torrent",
            path.display(),
            human_size(MAX_TORRENT_FILE_LEN)
        );
    }
    Ok(bytes)
}

fn torrent_json(metainfo: &Metainfo) -> Value {
    let info = &metainfo.info;
    let skip_name = usize::from(info.is_multi_file());
    let files: Vec<Value> = info
        .files()
        .iter()
        .map(|file| {
            let path = file.path.get(skip_name..).unwrap_or_default().join("/");
            json!({ "path": path, "size": file.length, "padding": file.attr.padding })
        })
        .collect();
    let mut magnet = Magnet::new(info.info_hash());
    magnet.display_name = Some(info.name().to_owned());
    magnet.trackers = metainfo.trackers.iter().flatten().cloned().collect();
    magnet.web_seeds = metainfo.web_seeds.clone();
    json!({
        "kind": "torrent",
        "name": info.name(),
        "info_hash": info.info_hash().to_hex(),
        "magnet": magnet.to_uri(),
        "total_size": info.total_len(),
        "piece_size": info.piece_len(),
        "piece_count": info.piece_count(),
        "private": info.is_private(),
        "files": files,
        "trackers": metainfo.trackers,
        "web_seeds": metainfo.web_seeds,
        "comment": metainfo.comment,
        "created_by": metainfo.created_by,
        "creation_date": metainfo.creation_date,
    })
}

fn magnet_json(magnet: &Magnet) -> Value {
    let select_only = (!magnet.select_only.is_empty()).then(|| {
        magnet
            .select_only
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    });
    let skipped = magnet.skipped;
    json!({
        "kind": "magnet",
        "info_hash": magnet.info_hash.to_hex(),
        "info_hash_v2": magnet.info_hash_v2.map(|h| h.iter().map(|b| format!("{b:02x}")).collect::<String>()),
        "magnet": magnet.to_uri(),
        "name": magnet.display_name,
        "trackers": magnet.trackers.iter().map(|t| vec![t]).collect::<Vec<_>>(),
        "web_seeds": magnet.web_seeds,
        "peers": magnet.peers.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "select_only": select_only,
        "skipped": {
            "unsupported_trackers": skipped.unsupported_trackers,
            "unsupported_web_seeds": skipped.unsupported_web_seeds,
            "bad_peers": skipped.bad_peers,
            "over_cap": skipped.over_cap,
            "unknown_keys": skipped.unknown_keys,
        },
    })
}

/// The human-readable form of the same report.
fn write_text(out: &mut impl Write, report: &Value) -> std::io::Result<()> {
    let text = |key: &str| report[key].as_str().map(str::to_owned);
    let number = |key: &str| report[key].as_u64().unwrap_or(0);
    if let Some(name) = text("name") {
        writeln!(out, "name:          {name}")?;
    }
    writeln!(
        out,
        "info hash:     {}",
        text("info_hash").unwrap_or_default()
    )?;
    if let Some(v2) = text("info_hash_v2") {
        writeln!(out, "info hash v2:  {v2}")?;
    }
    writeln!(out, "magnet:        {}", text("magnet").unwrap_or_default())?;
    if report["kind"] == "torrent" {
        let total = number("total_size");
        writeln!(out, "total size:    {} ({total} bytes)", human_size(total))?;
        let piece = human_size(number("piece_size"));
        writeln!(out, "pieces:        {} x {piece}", number("piece_count"))?;
        let private = if report["private"] == true {
            "yes"
        } else {
            "no"
        };
        writeln!(out, "private:       {private}")?;
    }
    write_lists(out, report)?;
    for (key, label) in [
        ("comment", "comment:      "),
        ("created_by", "created by:   "),
    ] {
        if let Some(value) = text(key) {
            writeln!(out, "{label} {value}")?;
        }
    }
    if let Some(date) = report["creation_date"].as_i64() {
        writeln!(out, "creation date: {} ({date})", utc_date_time(date))?;
    }
    Ok(())
}

fn write_lists(out: &mut impl Write, report: &Value) -> std::io::Result<()> {
    let empty = Vec::new();
    let list = |key: &str| report[key].as_array().unwrap_or(&empty).clone();
    let files = list("files");
    if !files.is_empty() {
        writeln!(out, "files ({}):", files.len())?;
        for file in &files {
            let size = human_size(file["size"].as_u64().unwrap_or(0));
            let padding = if file["padding"] == true {
                " (padding)"
            } else {
                ""
            };
            writeln!(
                out,
                "  {size:>12}  {}{padding}",
                file["path"].as_str().unwrap_or("")
            )?;
        }
    }
    let tiers = list("trackers");
    if !tiers.is_empty() {
        writeln!(out, "trackers:")?;
        for (index, tier) in tiers.iter().enumerate() {
            let urls: Vec<&str> = tier
                .as_array()
                .unwrap_or(&empty)
                .iter()
                .filter_map(Value::as_str)
                .collect();
            writeln!(out, "  tier {}: {}", index + 1, urls.join(", "))?;
        }
    }
    for (key, label) in [("web_seeds", "web seeds"), ("peers", "peers")] {
        let items = list(key);
        if !items.is_empty() {
            writeln!(out, "{label}:")?;
            for item in items.iter().filter_map(Value::as_str) {
                writeln!(out, "  {item}")?;
            }
        }
    }
    if let Some(selection) = report["select_only"].as_str() {
        writeln!(out, "select only:   files {selection}")?;
    }
    if let Some(skipped) = report["skipped"].as_object() {
        let dropped: Vec<String> = skipped
            .iter()
            .filter(|(_, count)| count.as_u64().unwrap_or(0) > 0)
            .map(|(what, count)| format!("{count} {}", what.replace('_', " ")))
            .collect();
        if !dropped.is_empty() {
            writeln!(out, "ignored:       {}", dropped.join(", "))?;
        }
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS UTC` from Unix seconds (proleptic Gregorian calendar).
fn utc_date_time(unix_seconds: i64) -> String {
    let days = unix_seconds.div_euclid(86_400);
    let secs = unix_seconds.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_format_in_utc() {
        assert_eq!(utc_date_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_date_time(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc_date_time(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_date_time(-1), "1969-12-31 23:59:59 UTC");
    }
}
