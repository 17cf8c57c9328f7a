//! `/metrics` in the Prometheus text format (version 0.0.4), computed from the facade's
//! statistics at each scrape.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::AppState;

/// The scrape handler.
pub async fn handle(State(state): State<AppState>) -> impl IntoResponse {
    let stats = state.service.stats();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    metric(
        "shoal_downloaded_bytes_total",
        "counter",
        "Payload bytes received by the torrents in the session.",
        &[("", stats.downloaded_bytes)],
    );
    metric(
        "shoal_uploaded_bytes_total",
        "counter",
        "Payload bytes sent by the torrents in the session.",
        &[("", stats.uploaded_bytes)],
    );
    metric(
        "shoal_download_rate_bytes",
        "gauge",
        "Bytes per second received.",
        &[("", stats.download_rate)],
    );
    metric(
        "shoal_upload_rate_bytes",
        "gauge",
        "Bytes per second sent.",
        &[("", stats.upload_rate)],
    );
    metric(
        "shoal_peers",
        "gauge",
        "Connected peers.",
        &[("", stats.peers as u64)],
    );
    metric(
        "shoal_torrents",
        "gauge",
        "Torrents by state.",
        &[
            ("{state=\"checking\"}", stats.checking as u64),
            ("{state=\"downloading\"}", stats.downloading as u64),
            ("{state=\"seeding\"}", stats.seeding as u64),
            ("{state=\"paused\"}", stats.paused as u64),
            ("{state=\"error\"}", stats.errored as u64),
        ],
    );
    metric(
        "shoal_hash_failures_total",
        "counter",
        "Pieces that failed their hash check.",
        &[("", stats.hash_failures)],
    );
    metric(
        "shoal_disk_queue_depth",
        "gauge",
        "Disk requests queued or running.",
        &[("", stats.disk_queue_depth as u64)],
    );
    metric(
        "shoal_uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
        &[("", stats.uptime_secs)],
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}
