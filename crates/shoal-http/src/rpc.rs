//! Transmission's RPC at `POST /transmission/rpc` (rpc-spec.md, rpc-version 17), over the facade.
//!
//! A request without the current `X-Transmission-Session-Id` gets 409 with the id in that
//! header (Transmission's CSRF handshake); clients retry with it. Each request is
//! `{"method", "arguments", "tag"}` and gets `{"result": "success" | error text, "arguments", "tag"}`.
//! Supported: session-get/-set/-stats, torrent-add (filename as URL or magnet, metainfo,
//! download-dir, paused, files-wanted/-unwanted), torrent-get (the common fields), torrent-start,
//! -start-now, -stop, -verify, -reannounce, -remove (delete-local-data), -set (files-wanted/-unwanted,
//! priority-high/-normal/-low, speed limits, sequentialDownload), torrent-set-location, free-space,
//! queue-move-* (accepted, no queue). Speeds in session-set/torrent-set limits are KB/s (1000 bytes).

use std::path::PathBuf;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use shoal::api::TorrentState;
use shoal::service::{
    AddRequest, AddSource, FilesUpdate, ServiceError, SessionSettingsUpdate, TorrentDetail,
    TorrentRef, TorrentSettingsUpdate, TorrentView, TransferTotals,
};

use crate::security::SESSION_ID_HEADER;
use crate::AppState;

mod trackers;
use trackers::{tracker_entry, tracker_stats};

/// The RPC version we speak (Transmission 4.0's).
pub const RPC_VERSION: u64 = 17;

#[derive(Debug, Deserialize)]
struct RpcRequest {
    method: String,
    #[serde(default)]
    arguments: Map<String, Value>,
    #[serde(default)]
    tag: Option<Value>,
}

/// The 409 answer that hands out the session id.
fn conflict(state: &AppState) -> Response {
    (
        StatusCode::CONFLICT,
        [(SESSION_ID_HEADER, state.security.token().to_owned())],
        "<h1>409: Conflict</h1><p>Your request had an invalid session-id header.</p>",
    )
        .into_response()
}

/// `GET /transmission/rpc`: clients probe with it to learn the session id.
pub async fn handle_get(State(state): State<AppState>) -> Response {
    conflict(&state)
}

/// `POST /transmission/rpc`.
pub async fn handle(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !state.security.has_token(&headers, SESSION_ID_HEADER) {
        return conflict(&state);
    }
    let request: RpcRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            return (StatusCode::BAD_REQUEST, format!("bad request: {error}\n")).into_response()
        }
    };
    let result = dispatch(&state, &request.method, &request.arguments).await;
    let (result, arguments) = match result {
        Ok(arguments) => ("success".to_owned(), arguments),
        Err(message) => (message, json!({})),
    };
    let mut out = json!({ "result": result, "arguments": arguments });
    if let Some(tag) = request.tag {
        out["tag"] = tag;
    }
    Json(out).into_response()
}

type RpcResult = Result<Value, String>;

async fn dispatch(state: &AppState, method: &str, args: &Map<String, Value>) -> RpcResult {
    let service = &state.service;
    match method {
        "session-get" => Ok(session_get(state, args)),
        "session-set" => session_set(state, args).await,
        "session-stats" => Ok(session_stats(state)),
        "torrent-add" => torrent_add(state, args).await,
        "torrent-get" => torrent_get(state, args).await,
        "torrent-start" | "torrent-start-now" => {
            for key in select(state, args) {
                service.set_paused(key, false).await.map_err(message)?;
            }
            Ok(json!({}))
        }
        "torrent-stop" => {
            for key in select(state, args) {
                service.set_paused(key, true).await.map_err(message)?;
            }
            Ok(json!({}))
        }
        "torrent-verify" => {
            for key in select(state, args) {
                service.verify(key).await.map_err(message)?;
            }
            Ok(json!({}))
        }
        "torrent-reannounce" | "queue-move-top" | "queue-move-up" | "queue-move-down"
        | "queue-move-bottom" => Ok(json!({})),
        "torrent-remove" => {
            let delete = args
                .get("delete-local-data")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            for key in select(state, args) {
                service.remove(key, delete).await.map_err(message)?;
            }
            Ok(json!({}))
        }
        "torrent-set" => torrent_set(state, args).await,
        "torrent-set-location" => {
            let location = args
                .get("location")
                .and_then(Value::as_str)
                .ok_or("location missing")?;
            let move_data = args.get("move").and_then(Value::as_bool).unwrap_or(false);
            for key in select(state, args) {
                service
                    .move_storage(key, &PathBuf::from(location), move_data)
                    .await
                    .map_err(message)?;
            }
            Ok(json!({}))
        }
        "free-space" => free_space(state, args),
        _ => Err("method name not recognized".to_owned()),
    }
}

fn message(error: ServiceError) -> String {
    error.to_string()
}

/// The torrents named by `ids` (a number, a hash, a list of either, or absent for all).
fn select(state: &AppState, args: &Map<String, Value>) -> Vec<TorrentRef> {
    let one = |v: &Value| -> Option<TorrentRef> {
        match v {
            Value::Number(n) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(TorrentRef::Id),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    };
    match args.get("ids") {
        None | Some(Value::Null) => state
            .service
            .ids()
            .into_iter()
            .map(TorrentRef::Id)
            .collect(),
        Some(Value::String(s)) if s == "recently-active" => state
            .service
            .ids()
            .into_iter()
            .map(TorrentRef::Id)
            .collect(),
        Some(Value::Array(items)) => items.iter().filter_map(one).collect(),
        Some(other) => one(other).into_iter().collect(),
    }
}

fn kb(bytes: Option<u64>) -> (u64, bool) {
    match bytes {
        Some(b) => (b / 1000, true),
        None => (100, false),
    }
}

fn session_get(state: &AppState, args: &Map<String, Value>) -> Value {
    let info = state.service.session_info();
    let (down, down_on) = kb(info.settings.download_limit);
    let (up, up_on) = kb(info.settings.upload_limit);
    let all = json!({
        "version": format!("4.0.0 (shoal {})", info.version),
        "rpc-version": RPC_VERSION,
        "rpc-version-minimum": 14,
        "rpc-version-semver": "5.3.0",
        "download-dir": info.settings.download_dir,
        "peer-port": info.peer_port,
        "speed-limit-down": down,
        "speed-limit-down-enabled": down_on,
        "speed-limit-up": up,
        "speed-limit-up-enabled": up_on,
        "alt-speed-enabled": false,
        "alt-speed-down": 50,
        "alt-speed-up": 50,
        "incomplete-dir-enabled": false,
        "incomplete-dir": info.settings.download_dir,
        "dht-enabled": true,
        "pex-enabled": true,
        "lpd-enabled": false,
        "utp-enabled": false,
        "port-forwarding-enabled": false,
        "encryption": "tolerated",
        "seedRatioLimit": 2.0,
        "seedRatioLimited": false,
        "idle-seeding-limit": 30,
        "idle-seeding-limit-enabled": false,
        "download-queue-enabled": false,
        "download-queue-size": 5,
        "seed-queue-enabled": false,
        "seed-queue-size": 10,
        "queue-stalled-enabled": false,
        "start-added-torrents": true,
        "rename-partial-files": false,
        "config-dir": "",
        "units": {
            "speed-units": ["kB/s", "MB/s", "GB/s", "TB/s"], "speed-bytes": 1000,
            "size-units": ["kB", "MB", "GB", "TB"], "size-bytes": 1000,
            "memory-units": ["KiB", "MiB", "GiB", "TiB"], "memory-bytes": 1024
        }
    });
    filter_fields(all, args)
}

fn filter_fields(all: Value, args: &Map<String, Value>) -> Value {
    let Some(fields) = args.get("fields").and_then(Value::as_array) else {
        return all;
    };
    let Value::Object(map) = all else { return all };
    let wanted: Vec<&str> = fields.iter().filter_map(Value::as_str).collect();
    Value::Object(
        map.into_iter()
            .filter(|(k, _)| wanted.contains(&k.as_str()))
            .collect(),
    )
}

/// Transmission's limit when one is switched on without a value, in kB/s.
const DEFAULT_LIMIT_KBPS: u64 = 100;

/// A Transmission request names a limit's value (kB/s) and its switch separately; `current` is
/// the limit in force (bytes/s). Returns the change to make: switched off, none; a value, that
/// value (switched on); switched on alone, the limit in force or [`DEFAULT_LIMIT_KBPS`].
fn limit_change(
    args: &Map<String, Value>,
    value: &str,
    enabled: &str,
    current: Option<u64>,
) -> Option<Option<u64>> {
    let kbps = args.get(value).and_then(Value::as_u64);
    match (args.get(enabled).and_then(Value::as_bool), kbps) {
        (Some(false), _) => Some(None),
        (_, Some(kbps)) => Some(Some(kbps.saturating_mul(1000))),
        (Some(true), None) => Some(current.or(Some(DEFAULT_LIMIT_KBPS * 1000))),
        (None, None) => None,
    }
}

async fn session_set(state: &AppState, args: &Map<String, Value>) -> RpcResult {
    let current = state.service.session_info().settings;
    let update = SessionSettingsUpdate {
        download_dir: args
            .get("download-dir")
            .and_then(Value::as_str)
            .map(PathBuf::from),
        download_limit: limit_change(
            args,
            "speed-limit-down",
            "speed-limit-down-enabled",
            current.download_limit,
        ),
        upload_limit: limit_change(
            args,
            "speed-limit-up",
            "speed-limit-up-enabled",
            current.upload_limit,
        ),
    };
    state.service.set_session(update).await.map_err(message)?;
    Ok(json!({}))
}

fn session_stats(state: &AppState) -> Value {
    let s = state.service.stats();
    let totals = |t: &TransferTotals| {
        json!({
            "uploadedBytes": t.uploaded_bytes,
            "downloadedBytes": t.downloaded_bytes,
            "filesAdded": t.files_added,
            "sessionCount": t.session_count,
            "secondsActive": t.seconds_active
        })
    };
    json!({
        "activeTorrentCount": s.downloading + s.seeding + s.checking,
        "pausedTorrentCount": s.paused,
        "torrentCount": s.torrents,
        "downloadSpeed": s.download_rate,
        "uploadSpeed": s.upload_rate,
        "cumulative-stats": totals(&s.cumulative),
        "current-stats": totals(&s.current)
    })
}

async fn torrent_add(state: &AppState, args: &Map<String, Value>) -> RpcResult {
    let source = if let Some(metainfo) = args.get("metainfo").and_then(Value::as_str) {
        let compact: String = metainfo
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let bytes = data_encoding::BASE64
            .decode(compact.as_bytes())
            .map_err(|e| format!("invalid or corrupt torrent file: {e}"))?;
        AddSource::Metainfo(bytes)
    } else if let Some(name) = args.get("filename").and_then(Value::as_str) {
        if name.starts_with("magnet:") {
            AddSource::Magnet(name.to_owned())
        } else if name.starts_with("http://") || name.starts_with("https://") {
            AddSource::Url(name.to_owned())
        } else {
            return Err(
                "filename must be a magnet link or an http(s) URL; send local files as metainfo"
                    .into(),
            );
        }
    } else {
        return Err("no filename or metainfo specified".into());
    };
    let indexes = |key: &str| index_list(args, key);
    let request = AddRequest {
        source,
        download_dir: args
            .get("download-dir")
            .and_then(Value::as_str)
            .map(PathBuf::from),
        paused: args.get("paused").and_then(Value::as_bool).unwrap_or(false),
        unwanted_files: indexes("files-unwanted"),
    };
    match state.service.add(request).await {
        Ok(view) => Ok(
            json!({ "torrent-added": { "id": view.id, "name": view.name, "hashString": view.info_hash } }),
        ),
        Err(ServiceError::Duplicate {
            info_hash,
            id,
            name,
        }) => {
            Ok(json!({ "torrent-duplicate": { "id": id, "name": name, "hashString": info_hash } }))
        }
        Err(error) => Err(message(error)),
    }
}

/// Fields that need the detail view (files, peers, piece map, trackers).
const DETAIL_FIELDS: &[&str] = &[
    "files",
    "fileStats",
    "wanted",
    "priorities",
    "peers",
    "pieces",
    "trackers",
    "trackerStats",
    "magnetLink",
    "comment",
    "isPrivate",
    "file-count",
    "peersFrom",
    "webseeds",
];

async fn torrent_get(state: &AppState, args: &Map<String, Value>) -> RpcResult {
    let fields: Vec<String> = args
        .get("fields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let need_detail = fields.iter().any(|f| DETAIL_FIELDS.contains(&f.as_str()));
    let keys = select(state, args);
    let mut torrents = Vec::new();
    for key in keys {
        let (view, detail) = if need_detail {
            match state.service.get(key).await {
                Ok(detail) => (detail.torrent.clone(), Some(detail)),
                Err(_) => continue,
            }
        } else {
            match find_view(state, key) {
                Some(view) => (view, None),
                None => continue,
            }
        };
        let mut out = Map::new();
        for field in &fields {
            if let Some(value) = torrent_field(field, &view, detail.as_ref()) {
                out.insert(field.clone(), value);
            }
        }
        torrents.push(Value::Object(out));
    }
    Ok(json!({ "torrents": torrents }))
}

fn find_view(state: &AppState, key: TorrentRef) -> Option<TorrentView> {
    state.service.list().into_iter().find(|v| match key {
        TorrentRef::Id(id) => v.id == id,
        TorrentRef::Hash(h) => v.info_hash == h.to_hex(),
    })
}

fn status_code(state: TorrentState) -> u64 {
    match state {
        TorrentState::Paused | TorrentState::Error => 0,
        TorrentState::Checking => 2,
        // Transmission shows a magnet fetching its metadata as downloading.
        TorrentState::Downloading | TorrentState::FetchingMetadata => 4,
        TorrentState::Seeding => 6,
    }
}

fn rpc_priority(level: u8) -> i64 {
    match level {
        0..=3 => -1,
        4 => 0,
        _ => 1,
    }
}

/// One field of a torrent, by its Transmission name; `None` for fields we do not know.
fn torrent_field(name: &str, v: &TorrentView, d: Option<&TorrentDetail>) -> Option<Value> {
    let done = v.wanted_bytes.saturating_sub(v.left_bytes);
    let eta: i64 = if v.left_bytes == 0 {
        -1
    } else {
        v.left_bytes
            .checked_div(v.download_rate)
            .map_or(-2, |secs| secs as i64)
    };
    let ratio = if v.downloaded_bytes > 0 {
        v.uploaded_bytes as f64 / v.downloaded_bytes as f64
    } else {
        -1.0
    };
    let value = match name {
        "id" => json!(v.id),
        "name" => json!(v.name),
        "hashString" => json!(v.info_hash),
        "status" => json!(status_code(v.state)),
        "error" => json!(if v.error.is_some() { 3 } else { 0 }),
        "errorString" => json!(v.error.clone().unwrap_or_default()),
        "totalSize" => json!(v.total_bytes),
        "sizeWhenDone" => json!(v.wanted_bytes),
        "leftUntilDone" => json!(v.left_bytes),
        "haveValid" => json!(v.verified_bytes),
        "haveUnchecked" => json!(0),
        "desiredAvailable" => json!(0),
        "percentDone" => json!(v.progress),
        "percentComplete" => json!(if v.total_bytes == 0 {
            1.0
        } else {
            v.verified_bytes as f64 / v.total_bytes as f64
        }),
        "metadataPercentComplete" => json!(f64::from(v.metadata_progress)),
        "recheckProgress" => json!(if v.state == TorrentState::Checking {
            f64::from(v.check_progress)
        } else {
            0.0
        }),
        "rateDownload" => json!(v.download_rate),
        "rateUpload" => json!(v.upload_rate),
        "downloadedEver" => json!(v.downloaded_bytes),
        "uploadedEver" => json!(v.uploaded_bytes),
        "corruptEver" => json!(0),
        "uploadRatio" => json!(ratio),
        "eta" | "etaIdle" => json!(eta),
        "downloadDir" => json!(v.download_dir),
        "isFinished" => json!(false),
        "isStalled" => json!(false),
        "peersConnected" => json!(v.peers),
        "peersGettingFromUs" | "peersSendingToUs" | "webseedsSendingToUs" => json!(0),
        "addedDate" | "activityDate" | "startDate" => json!(v.added_at),
        "doneDate" | "editDate" | "dateCreated" | "manualAnnounceTime" => json!(0),
        "pieceCount" => json!(v.piece_count),
        "queuePosition" => json!(v.id),
        "sequentialDownload" | "sequential_download" => json!(v.sequential),
        "downloadLimit" => json!(v.download_limit.unwrap_or(0) / 1000),
        "downloadLimited" => json!(v.download_limit.is_some()),
        "uploadLimit" => json!(v.upload_limit.unwrap_or(0) / 1000),
        "uploadLimited" => json!(v.upload_limit.is_some()),
        "honorsSessionLimits" => json!(true),
        "bandwidthPriority" => json!(0),
        "seedRatioLimit" => json!(2.0),
        "seedRatioMode" | "seedIdleMode" => json!(0),
        "seedIdleLimit" => json!(30),
        "secondsDownloading" | "secondsSeeding" => json!(0),
        "labels" => json!([]),
        "creator" => json!(""),
        "haveAll" => json!(done == v.wanted_bytes),
        _ => return d.and_then(|d| detail_field(name, d)),
    };
    Some(value)
}

fn detail_field(name: &str, d: &TorrentDetail) -> Option<Value> {
    let value = match name {
        "pieceSize" => json!(d.piece_len),
        "pieces" => json!(d.pieces),
        "comment" => json!(d.comment.clone().unwrap_or_default()),
        "isPrivate" => json!(d.private),
        "magnetLink" => json!(d.magnet),
        "file-count" => json!(d.files.len()),
        "webseeds" => json!([]),
        "files" => json!(d
            .files
            .iter()
            .map(|f| json!({ "name": f.path, "length": f.length, "bytesCompleted": f.done_bytes }))
            .collect::<Vec<_>>()),
        "fileStats" => json!(d
            .files
            .iter()
            .map(|f| json!({ "bytesCompleted": f.done_bytes, "wanted": f.wanted, "priority": rpc_priority(f.priority) }))
            .collect::<Vec<_>>()),
        "wanted" => json!(d.files.iter().map(|f| u8::from(f.wanted)).collect::<Vec<_>>()),
        "priorities" => json!(d.files.iter().map(|f| rpc_priority(f.priority)).collect::<Vec<_>>()),
        "peers" => json!(d
            .peers
            .iter()
            .map(|p| {
                let progress = if d.torrent.piece_count == 0 { 0.0 } else { f64::from(p.pieces) / f64::from(d.torrent.piece_count) };
                json!({
                    "address": p.addr.ip().to_string(), "port": p.addr.port(),
                    "clientName": p.client.clone().unwrap_or_default(),
                    "rateToClient": p.download_rate, "rateToPeer": p.upload_rate, "progress": progress,
                    "isDownloadingFrom": !p.peer_choking && p.am_interested,
                    "isUploadingTo": !p.am_choking && p.peer_interested,
                    "clientIsChoked": p.am_choking, "clientIsInterested": p.am_interested,
                    "peerIsChoked": p.peer_choking, "peerIsInterested": p.peer_interested,
                    "isEncrypted": false, "isIncoming": p.source == "incoming", "isUTP": false, "flagStr": ""
                })
            })
            .collect::<Vec<_>>()),
        "peersFrom" => peers_from(&d.peers),
        "trackers" => json!(d.trackers.iter().enumerate().map(|(id, t)| tracker_entry(id, t)).collect::<Vec<_>>()),
        "trackerStats" => json!(d.trackers.iter().enumerate().map(|(id, t)| tracker_stats(id, t, &d.trackers)).collect::<Vec<_>>()),
        _ => return None,
    };
    Some(value)
}

async fn torrent_set(state: &AppState, args: &Map<String, Value>) -> RpcResult {
    let indexes = |key: &str| index_list(args, key);
    let mut priorities = Vec::new();
    for (key, level) in [
        ("priority-low", 2u8),
        ("priority-normal", 4),
        ("priority-high", 6),
    ] {
        priorities.extend(indexes(key).into_iter().map(|i| (i, level)));
    }
    let files = FilesUpdate {
        wanted: indexes("files-wanted"),
        unwanted: indexes("files-unwanted"),
        priorities,
    };
    let sequential = args
        .get("sequentialDownload")
        .or_else(|| args.get("sequential_download"))
        .and_then(Value::as_bool);
    for key in select(state, args) {
        let (down, up) = current_limits(state, key);
        let settings = TorrentSettingsUpdate {
            sequential,
            download_limit: limit_change(args, "downloadLimit", "downloadLimited", down),
            upload_limit: limit_change(args, "uploadLimit", "uploadLimited", up),
        };
        if files != FilesUpdate::default() {
            state
                .service
                .set_files(key, files.clone())
                .await
                .map_err(message)?;
        }
        if settings != TorrentSettingsUpdate::default() {
            state
                .service
                .set_torrent_settings(key, settings.clone())
                .await
                .map_err(message)?;
        }
        if let Some(location) = args.get("location").and_then(Value::as_str) {
            state
                .service
                .move_storage(key, &PathBuf::from(location), false)
                .await
                .map_err(message)?;
        }
    }
    Ok(json!({}))
}

/// A torrent's own (download, upload) limits in bytes/s; none when it is not found.
fn current_limits(state: &AppState, key: TorrentRef) -> (Option<u64>, Option<u64>) {
    let view = state.service.list().into_iter().find(|v| match key {
        TorrentRef::Id(id) => v.id == id,
        TorrentRef::Hash(hash) => v.info_hash == hash.to_hex(),
    });
    view.map_or((None, None), |v| (v.download_limit, v.upload_limit))
}

fn free_space(state: &AppState, args: &Map<String, Value>) -> RpcResult {
    let path = args
        .get("path")
        .and_then(Value::as_str)
        .ok_or("path missing")?;
    let checked = shoal::service::store::check_download_dir(
        &PathBuf::from(path),
        state.service.download_roots(),
    )
    .map_err(|e| e.to_string())?;
    let stat = rustix::fs::statvfs(&checked).map_err(|e| format!("{path}: {e}"))?;
    let free = stat.f_bavail.saturating_mul(stat.f_frsize);
    let total = stat.f_blocks.saturating_mul(stat.f_frsize);
    Ok(json!({ "path": path, "size-bytes": free, "total_size": total }))
}

/// A list of file indices under `key` (`files-wanted`, `priority-high`, ...); anything that is
/// not a non-negative integer is skipped.
fn index_list(args: &Map<String, Value>, key: &str) -> Vec<usize> {
    args.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_u64)
                .map(|i| i as usize)
                .collect()
        })
        .unwrap_or_default()
}

/// `peersFrom`: connected peers by how they were found.
fn peers_from(peers: &[shoal::api::PeerSummary]) -> Value {
    let count = |source: &str| peers.iter().filter(|p| p.source == source).count();
    json!({
        "fromTracker": count("tracker"), "fromDht": count("dht"), "fromPex": count("pex"),
        "fromLpd": count("lsd"), "fromIncoming": count("incoming"), "fromCache": count("manual"),
        "fromLtep": 0
    })
}
