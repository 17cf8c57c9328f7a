//! Trackers in Transmission's terms: `trackers` and `trackerStats` entries built from shoal's
//! tracker status (announce and scrape), plus the names Transmission derives from a tracker URL.

use serde_json::{json, Value};
use shoal::api::{TrackerAnnounceState, TrackerInfo};

/// A tracker's `host:port` (Transmission's unique tracker name), or the URL when unparsable.
fn tracker_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        && !authority.ends_with(']')
    {
        authority.to_owned()
    } else {
        let port = if url.starts_with("https:") { 443 } else { 80 };
        format!("{authority}:{port}")
    }
}

/// The scrape URL of an HTTP tracker (BEP 48: `announce` in the last path segment becomes
/// `scrape`); empty when it has none.
fn scrape_url(url: &str) -> String {
    if !url.starts_with("http") {
        return String::new();
    }
    match url.rfind('/') {
        Some(slash) if url[slash + 1..].starts_with("announce") => {
            format!(
                "{}/scrape{}",
                &url[..slash],
                &url[slash + 1 + "announce".len()..]
            )
        }
        _ => String::new(),
    }
}

/// One entry of `trackers`.
pub(super) fn tracker_entry(id: usize, t: &TrackerInfo) -> Value {
    json!({ "id": id, "tier": t.tier, "announce": t.url, "scrape": scrape_url(&t.url), "sitename": site_name(&t.url) })
}

/// The host without port or subdomains (`tracker.example.org` -> `example`), as Transmission 4
/// names a site.
fn site_name(url: &str) -> String {
    let host = tracker_host(url);
    let host = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() >= 2
        && labels
            .iter()
            .all(|l| !l.is_empty() && !l.bytes().all(|b| b.is_ascii_digit()))
    {
        labels[labels.len() - 2].to_owned()
    } else {
        host.to_owned()
    }
}

/// Transmission's `tr_tracker_state`: 0 inactive, 1 waiting, 2 queued, 3 active.
fn announce_state(t: &TrackerInfo) -> u8 {
    match t.status {
        TrackerAnnounceState::Announcing => 3,
        _ if t.next_announce.is_some() => 1,
        _ => 0,
    }
}

/// The same states for scrapes: active while one is out, waiting while one is scheduled.
fn scrape_state(t: &TrackerInfo) -> u8 {
    match (t.scraping, t.next_scrape) {
        (true, _) => 3,
        (false, Some(_)) => 1,
        (false, None) => 0,
    }
}

/// Whether an error is the tracker client's time-out.
fn timed_out(error: Option<&str>) -> bool {
    error.is_some_and(|e| e.starts_with("no answer within"))
}

/// One entry of `trackerStats`, from the tracker's real status (-1 for counts it never sent).
/// Seeders and leechers are the latest figures of an announce or a scrape; the download count
/// comes from the scrape only.
pub(super) fn tracker_stats(id: usize, t: &TrackerInfo, all: &[TrackerInfo]) -> Value {
    let succeeded = t.last_announce.is_some() && t.last_announce == t.last_success;
    let scraped = t.last_scrape.is_some() && t.last_scrape_error.is_none();
    let scrape_result = match &t.last_scrape_error {
        Some(error) => error.clone(),
        None if scraped => "Success".to_owned(),
        None => String::new(),
    };
    let result = match (&t.last_error, succeeded) {
        (Some(error), false) => error.clone(),
        _ if succeeded => t.warning.clone().unwrap_or_else(|| "Success".to_owned()),
        _ => String::new(),
    };
    let in_use =
        |other: &TrackerInfo| other.tier == t.tier && other.status != TrackerAnnounceState::Idle;
    let is_backup = t.status == TrackerAnnounceState::Idle
        && t.next_announce.is_none()
        && all.iter().any(in_use);
    let count = |n: Option<u32>| n.map_or(-1, i64::from);
    json!({
        "id": id, "tier": t.tier, "announce": t.url, "scrape": scrape_url(&t.url),
        "host": tracker_host(&t.url), "sitename": site_name(&t.url),
        "announceState": announce_state(t),
        "hasAnnounced": t.last_announce.is_some(),
        "lastAnnounceTime": t.last_announce.unwrap_or(0),
        "lastAnnounceStartTime": t.last_announce.unwrap_or(0),
        "lastAnnounceSucceeded": succeeded,
        "lastAnnounceTimedOut": !succeeded && timed_out(t.last_error.as_deref()),
        "lastAnnounceResult": result,
        "lastAnnouncePeerCount": if succeeded { t.last_peers } else { 0 },
        "nextAnnounceTime": t.next_announce.unwrap_or(0),
        "seederCount": count(t.seeders), "leecherCount": count(t.leechers),
        "downloadCount": count(t.downloaded),
        "hasScraped": t.last_scrape.is_some(), "scrapeState": scrape_state(t),
        "lastScrapeTime": t.last_scrape.unwrap_or(0), "lastScrapeStartTime": t.last_scrape.unwrap_or(0),
        "lastScrapeSucceeded": scraped, "lastScrapeTimedOut": timed_out(t.last_scrape_error.as_deref()),
        "lastScrapeResult": scrape_result, "nextScrapeTime": t.next_scrape.unwrap_or(0),
        "isBackup": is_backup
    })
}

#[cfg(test)]
mod tracker_tests {
    use super::*;

    #[test]
    fn tracker_names_follow_transmission() {
        let table = [
            (
                "http://tracker.example.org/announce",
                "tracker.example.org:80",
                "example",
                "http://tracker.example.org/scrape",
            ),
            (
                "https://t.example.org:8443/a/announce.php?k=1",
                "t.example.org:8443",
                "example",
                "https://t.example.org:8443/a/scrape.php?k=1",
            ),
            (
                "udp://127.0.0.1:6969/announce",
                "127.0.0.1:6969",
                "127.0.0.1",
                "",
            ),
            (
                "http://127.0.0.1:7000/tracker",
                "127.0.0.1:7000",
                "127.0.0.1",
                "",
            ),
        ];
        for (url, host, site, scrape) in table {
            assert_eq!(tracker_host(url), host, "{url}");
            assert_eq!(site_name(url), site, "{url}");
            assert_eq!(scrape_url(url), scrape, "{url}");
        }
    }

    #[test]
    fn scrape_figures_reach_tracker_stats() {
        let mut t = TrackerInfo::listed(&[vec!["udp://t.test:6969".to_owned()]]).remove(0);
        let before = tracker_stats(0, &t, std::slice::from_ref(&t));
        assert_eq!(
            (
                &before["hasScraped"],
                &before["downloadCount"],
                &before["lastScrapeResult"]
            ),
            (&json!(false), &json!(-1), &json!(""))
        );
        assert_eq!(before["scrapeState"], json!(0));
        t.seeders = Some(4);
        t.leechers = Some(5);
        t.downloaded = Some(17);
        t.last_scrape = Some(1_000);
        t.next_scrape = Some(2_800);
        let ok = tracker_stats(0, &t, std::slice::from_ref(&t));
        let fields = [
            ("hasScraped", json!(true)),
            ("lastScrapeSucceeded", json!(true)),
            ("lastScrapeResult", json!("Success")),
            ("lastScrapeTime", json!(1_000)),
            ("nextScrapeTime", json!(2_800)),
            ("scrapeState", json!(1)),
            ("downloadCount", json!(17)),
            ("seederCount", json!(4)),
            ("leecherCount", json!(5)),
        ];
        for (name, want) in fields {
            assert_eq!(ok[name], want, "{name}");
        }
        t.last_scrape_error = Some("no answer within 15s".to_owned());
        t.scraping = true;
        let failed = tracker_stats(0, &t, std::slice::from_ref(&t));
        assert_eq!(failed["lastScrapeSucceeded"], json!(false));
        assert_eq!(failed["lastScrapeTimedOut"], json!(true));
        assert_eq!(failed["lastScrapeResult"], json!("no answer within 15s"));
        assert_eq!(failed["scrapeState"], json!(3));
    }
}
