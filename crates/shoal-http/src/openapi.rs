//! The OpenAPI 3.1 document of the JSON API, served at `/api/v1/openapi.json`.
//!
//! [`ROUTES`] lists every operation the router has; a test checks that the document describes
//! exactly these and that each one reaches a handler.

use serde_json::{json, Value};

/// Every JSON API operation: (method, path under `/api/v1`).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/openapi.json"),
    ("get", "/token"),
    ("get", "/session"),
    ("put", "/session"),
    ("get", "/stats"),
    ("get", "/events"),
    ("get", "/torrents"),
    ("post", "/torrents"),
    ("get", "/torrents/{id}"),
    ("delete", "/torrents/{id}"),
    ("post", "/torrents/{id}/pause"),
    ("post", "/torrents/{id}/resume"),
    ("post", "/torrents/{id}/verify"),
    ("put", "/torrents/{id}/files"),
    ("put", "/torrents/{id}/settings"),
    ("post", "/torrents/{id}/move"),
];

fn op(summary: &str, ok: &str, schema: Value) -> Value {
    json!({
        "summary": summary,
        "responses": {
            ok: { "description": "success", "content": { "application/json": { "schema": schema } } },
            "default": { "description": "error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
        }
    })
}

fn with_body(mut operation: Value, schema: &str) -> Value {
    operation["requestBody"] = json!({
        "required": true,
        "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } }
    });
    operation["security"] = json!([{ "csrfToken": [] }]);
    operation
}

fn mutating(mut operation: Value) -> Value {
    operation["security"] = json!([{ "csrfToken": [] }]);
    operation
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// The document.
pub fn document() -> Value {
    let id_param = json!([{ "name": "id", "in": "path", "required": true, "description": "torrent number or 40-hex infohash", "schema": { "type": "string" } }]);
    let empty = json!({});
    let mut remove = mutating(op("Remove a torrent", "204", empty.clone()));
    remove["parameters"] = json!([{ "name": "delete_data", "in": "query", "schema": { "type": "boolean", "default": false } }]);
    json!({
        "openapi": "3.1.0",
        "info": { "title": "shoal daemon API", "version": env!("CARGO_PKG_VERSION") },
        "servers": [{ "url": "/api/v1" }],
        "paths": {
            "/openapi.json": { "get": op("This document", "200", json!({ "type": "object" })) },
            "/token": { "get": op("The CSRF token for X-Shoal-Token", "200", json!({ "type": "object", "properties": { "token": { "type": "string" } } })) },
            "/session": {
                "get": op("Session settings and facts", "200", reference("SessionInfo")),
                "put": with_body(op("Change session settings", "200", reference("SessionInfo")), "SessionSettingsUpdate")
            },
            "/stats": { "get": op("Session figures", "200", reference("SessionStats")) },
            "/events": { "get": {
                "summary": "Server-sent events: `torrents` (list, every second) and `event`",
                "responses": { "200": { "description": "event stream", "content": { "text/event-stream": { "schema": { "type": "string" } } } } }
            } },
            "/torrents": {
                "get": op("Every torrent", "200", json!({ "type": "array", "items": reference("TorrentView") })),
                "post": with_body(op("Add a torrent (file, magnet or URL)", "201", reference("TorrentView")), "AddRequest")
            },
            "/torrents/{id}": {
                "parameters": id_param.clone(),
                "get": op("One torrent with files, peers, trackers and piece map", "200", reference("TorrentDetail")),
                "delete": remove
            },
            "/torrents/{id}/pause": { "parameters": id_param.clone(), "post": mutating(op("Pause", "204", empty.clone())) },
            "/torrents/{id}/resume": { "parameters": id_param.clone(), "post": mutating(op("Resume", "204", empty.clone())) },
            "/torrents/{id}/verify": { "parameters": id_param.clone(), "post": mutating(op("Hash the data again", "202", empty.clone())) },
            "/torrents/{id}/files": { "parameters": id_param.clone(), "put": with_body(op("Wanted files and priorities", "204", empty.clone()), "FilesUpdate") },
            "/torrents/{id}/settings": { "parameters": id_param.clone(), "put": with_body(op("Sequential mode and rate limits", "204", empty.clone()), "TorrentSettingsUpdate") },
            "/torrents/{id}/move": { "parameters": id_param, "post": with_body(op("Move the data to another folder", "204", empty), "MoveRequest") }
        },
        "components": {
            "securitySchemes": {
                "csrfToken": { "type": "apiKey", "in": "header", "name": "X-Shoal-Token" },
                "basic": { "type": "http", "scheme": "basic", "description": "required off loopback" }
            },
            "schemas": schemas()
        }
    })
}

fn schemas() -> Value {
    let u64s = json!({ "type": "integer", "minimum": 0 });
    let limit = json!({ "type": ["integer", "null"], "minimum": 0, "description": "bytes per second, enforced on every peer connection (the global limit and the torrent's both apply); null or 0: none" });
    json!({
        "Error": { "type": "object", "required": ["error", "message"], "properties": { "error": { "type": "string" }, "message": { "type": "string" } } },
        "AddRequest": { "type": "object", "required": ["source"], "properties": {
            "source": { "oneOf": [
                { "type": "object", "required": ["metainfo"], "properties": { "metainfo": { "type": "string", "contentEncoding": "base64" } } },
                { "type": "object", "required": ["magnet"], "properties": { "magnet": { "type": "string" } } },
                { "type": "object", "required": ["url"], "properties": { "url": { "type": "string", "format": "uri" } } }
            ] },
            "download_dir": { "type": ["string", "null"] },
            "paused": { "type": "boolean" },
            "unwanted_files": { "type": "array", "items": { "type": "integer" } }
        } },
        "TorrentView": { "type": "object", "properties": {
            "id": { "type": "integer" }, "info_hash": { "type": "string" }, "name": { "type": "string" },
            "state": { "enum": ["checking", "downloading", "seeding", "paused", "error", "fetching_metadata"] },
            "progress": { "type": "number" }, "total_bytes": u64s, "wanted_bytes": u64s, "left_bytes": u64s,
            "verified_bytes": u64s, "downloaded_bytes": u64s, "uploaded_bytes": u64s, "download_rate": u64s,
            "upload_rate": u64s, "peers": u64s, "hash_failures": u64s, "piece_count": u64s, "verified_pieces": u64s,
            "check_progress": { "type": "number" }, "metadata_progress": { "type": "number" },
            "download_dir": { "type": "string" }, "sequential": { "type": "boolean" },
            "download_limit": limit, "upload_limit": limit, "added_at": u64s, "error": { "type": ["string", "null"] }
        } },
        "TorrentDetail": { "allOf": [ { "$ref": "#/components/schemas/TorrentView" }, { "type": "object", "properties": {
            "piece_len": u64s,
            "files": { "type": "array", "items": { "type": "object", "properties": {
                "index": u64s, "path": { "type": "string" }, "length": u64s, "done_bytes": u64s, "wanted": { "type": "boolean" }, "priority": { "type": "integer", "minimum": 1, "maximum": 7 } } } },
            "trackers": { "type": "array", "description": "every tracker, in the order they are tried", "items": { "$ref": "#/components/schemas/Tracker" } },
            "peers": { "type": "array", "items": { "type": "object" } },
            "pieces": { "type": "string", "contentEncoding": "base64", "description": "bitfield of verified pieces" },
            "comment": { "type": ["string", "null"] }, "private": { "type": "boolean" }, "magnet": { "type": "string" }
        } } ] },
        "FilesUpdate": { "type": "object", "properties": {
            "wanted": { "type": "array", "items": { "type": "integer" } },
            "unwanted": { "type": "array", "items": { "type": "integer" } },
            "priorities": { "type": "array", "items": { "type": "array", "prefixItems": [{ "type": "integer" }, { "type": "integer", "minimum": 1, "maximum": 7 }] } }
        } },
        "TorrentSettingsUpdate": { "type": "object", "properties": { "sequential": { "type": "boolean" }, "download_limit": limit, "upload_limit": limit } },
        "SessionSettingsUpdate": { "type": "object", "properties": { "download_dir": { "type": "string" }, "download_limit": limit, "upload_limit": limit } },
        "SessionInfo": { "type": "object", "properties": {
            "download_dir": { "type": "string" }, "download_limit": limit, "upload_limit": limit, "version": { "type": "string" },
            "peer_port": u64s, "download_roots": { "type": "array", "items": { "type": "string" } } } },
        "SessionStats": { "type": "object", "properties": {
            "torrents": u64s, "checking": u64s, "downloading": u64s, "seeding": u64s, "paused": u64s, "errored": u64s,
            "download_rate": u64s, "upload_rate": u64s, "downloaded_bytes": u64s, "uploaded_bytes": u64s, "peers": u64s,
            "hash_failures": u64s, "disk_queue_depth": u64s, "uptime_secs": u64s,
            "cumulative": { "$ref": "#/components/schemas/TransferTotals" },
            "current": { "$ref": "#/components/schemas/TransferTotals" } } },
        "TransferTotals": { "type": "object", "description": "cumulative: over every run of the daemon; current: this run", "properties": {
            "uploaded_bytes": u64s, "downloaded_bytes": u64s, "files_added": u64s, "session_count": u64s, "seconds_active": u64s } },
        "Tracker": { "type": "object", "required": ["url", "tier", "status"], "properties": {
            "url": { "type": "string" }, "tier": { "type": "integer", "minimum": 0, "description": "BEP 12 tier, from 0" },
            "status": { "enum": ["idle", "announcing", "ok", "error"], "description": "idle: not contacted yet or on standby; error: see last_error" },
            "last_announce": { "type": ["integer", "null"], "description": "Unix seconds when the last announce ended, well or not" },
            "last_success": { "type": ["integer", "null"], "description": "Unix seconds of the last announce that worked" },
            "last_peers": { "type": "integer", "minimum": 0, "description": "peers in the last reply" },
            "seeders": { "type": ["integer", "null"], "description": "as its last announce or scrape counted them, whichever came later" },
            "leechers": { "type": ["integer", "null"] },
            "downloaded": { "type": ["integer", "null"], "description": "how many times it saw the download finish, from its last successful scrape" },
            "scraping": { "type": "boolean", "description": "a scrape is out" },
            "last_scrape": { "type": ["integer", "null"], "description": "Unix seconds when the last scrape ended, well or not" },
            "last_scrape_error": { "type": ["string", "null"], "description": "why the last scrape failed; null after a success" },
            "next_scrape": { "type": ["integer", "null"], "description": "Unix seconds of the next scrape; null when the tracker cannot be scraped, before its first successful announce, while scraping or stopped" },
            "last_error": { "type": ["string", "null"], "description": "why the last announce failed: network error, time-out, or the tracker's failure reason" },
            "warning": { "type": ["string", "null"], "description": "the tracker's warning message" },
            "consecutive_failures": { "type": "integer", "minimum": 0 },
            "next_announce": { "type": ["integer", "null"], "description": "Unix seconds of the next announce; null while on standby, announcing or stopped" },
            "interval_secs": { "type": ["integer", "null"] }, "min_interval_secs": { "type": ["integer", "null"] } } },
        "MoveRequest": { "type": "object", "required": ["download_dir"], "properties": { "download_dir": { "type": "string" }, "move_data": { "type": "boolean", "default": true } } }
    })
}
