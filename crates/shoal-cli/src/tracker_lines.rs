//! Tracker status as `shoal download` and `shoal seed` print it.
//!
//! One line per tracker: its URL, its state, what its last announce gave (peers, seeders and
//! leechers, or the error text / the tracker's failure reason) and when the next announce goes
//! out. On a terminal these lines sit under the progress bar and are redrawn in place; on a pipe
//! a line is printed only when an announce ends (so a log stays short: one line per tracker per
//! announce interval, fewer as failures back off).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use shoal::api::{TrackerAnnounceState, TrackerInfo};
use shoal::tracker::TrackerWatch;

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `95` → `1m35s`.
fn duration(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}

/// One tracker as one line, as of `now` (Unix seconds).
pub fn describe(t: &TrackerInfo, now: u64) -> String {
    let mut line = format!("tracker {}: ", t.url);
    match t.status {
        TrackerAnnounceState::Idle if t.last_announce.is_none() => line.push_str("not contacted"),
        TrackerAnnounceState::Idle => line.push_str("standby"),
        TrackerAnnounceState::Announcing => line.push_str("announcing"),
        TrackerAnnounceState::Ok => {
            line.push_str(&format!("ok, {} peers", t.last_peers));
            if let (Some(seeders), Some(leechers)) = (t.seeders, t.leechers) {
                line.push_str(&format!(" ({seeders} seeders, {leechers} leechers)"));
            }
        }
        TrackerAnnounceState::Error => {
            line.push_str("error: ");
            line.push_str(t.last_error.as_deref().unwrap_or("unknown"));
        }
    }
    if let Some(warning) = &t.warning {
        line.push_str(&format!(", warning: {warning}"));
    }
    if let Some(next) = t.next_announce {
        line.push_str(&format!(
            ", next announce in {}",
            duration(next.saturating_sub(now))
        ));
    }
    line
}

/// Remembers each tracker's last announce time, to tell which ones have a new result.
#[derive(Debug, Default)]
pub struct NewResults {
    seen: HashMap<String, u64>,
}

impl NewResults {
    /// The trackers in `list` whose announce ended since the last call.
    pub fn take<'a>(&mut self, list: &'a [TrackerInfo]) -> Vec<&'a TrackerInfo> {
        list.iter()
            .filter(|t| {
                let Some(at) = t.last_announce else {
                    return false;
                };
                self.seen.insert(t.url.clone(), at) != Some(at)
            })
            .collect()
    }
}

/// Prints a line to stderr each time an announce ends, until the announcer ends.
pub async fn log_results(mut watch: TrackerWatch) {
    let mut results = NewResults::default();
    print_new(&mut results, &watch.get());
    while let Some(list) = watch.changed().await {
        print_new(&mut results, &list);
    }
}

fn print_new(results: &mut NewResults, list: &[TrackerInfo]) {
    let now = unix_now();
    for t in results.take(list) {
        eprintln!("{}", describe(t, now));
    }
}

/// Prints every tracker's state (the final summary).
pub fn print_summary(list: &[TrackerInfo]) {
    let now = unix_now();
    for t in list {
        eprintln!("{}", describe(t, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(status: TrackerAnnounceState) -> TrackerInfo {
        let mut t = TrackerInfo::listed(&[vec!["http://t.test/announce".to_owned()]]).remove(0);
        t.status = status;
        t
    }

    #[test]
    fn lines_say_what_the_last_announce_gave() {
        let mut ok = tracker(TrackerAnnounceState::Ok);
        ok.last_announce = Some(1000);
        ok.last_peers = 3;
        ok.seeders = Some(1);
        ok.leechers = Some(2);
        ok.next_announce = Some(1000 + 1800);
        assert_eq!(
            describe(&ok, 1000),
            "tracker http://t.test/announce: ok, 3 peers (1 seeders, 2 leechers), \
             next announce in 30m00s"
        );
        let mut failed = tracker(TrackerAnnounceState::Error);
        failed.last_error = Some("tracker refused: not authorized".to_owned());
        failed.next_announce = Some(1015);
        assert_eq!(
            describe(&failed, 1000),
            "tracker http://t.test/announce: error: tracker refused: not authorized, \
             next announce in 15s"
        );
        let fresh = tracker(TrackerAnnounceState::Idle);
        assert_eq!(
            describe(&fresh, 0),
            "tracker http://t.test/announce: not contacted"
        );
    }

    #[test]
    fn each_result_is_reported_once() {
        let mut results = NewResults::default();
        let mut t = tracker(TrackerAnnounceState::Announcing);
        assert!(results.take(std::slice::from_ref(&t)).is_empty());
        t.status = TrackerAnnounceState::Ok;
        t.last_announce = Some(5);
        assert_eq!(results.take(std::slice::from_ref(&t)).len(), 1);
        assert!(results.take(std::slice::from_ref(&t)).is_empty());
        t.last_announce = Some(65);
        assert_eq!(results.take(std::slice::from_ref(&t)).len(), 1);
    }
}
