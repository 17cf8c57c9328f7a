//! Transfer totals across runs (Transmission's `cumulative-stats` and `current-stats`).
//!
//! Each torrent's status counts payload bytes since its task started; a restart of the task
//! (daemon restart, move, re-add) starts it from zero again. The service samples every
//! torrent's counters (periodically, before it stops a torrent, and when asked) and adds what
//! grew since the last sample; a counter lower than last time restarted, so all of it is new.
//! The totals of the previous runs come from `stats.json` at open; this run's are added to them
//! and saved every [`SAVE_EVERY`] and at shutdown, so a crash loses at most that much.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::types::TransferTotals;

/// How often the sampler runs (and saves the totals when they changed).
pub(super) const SAVE_EVERY: Duration = Duration::from_secs(15);

/// This run's totals and the last sample of each torrent.
#[derive(Debug)]
pub(super) struct Totals {
    /// Totals of the previous runs, as loaded at open.
    previous: TransferTotals,
    /// This run's totals (`seconds_active` filled in when read).
    current: TransferTotals,
    started: Instant,
    /// Per torrent (hex infohash): (downloaded, uploaded) at the last sample.
    last: HashMap<String, (u64, u64)>,
}

impl Totals {
    /// Starts a run on top of the totals of the previous ones.
    pub(super) fn new(previous: TransferTotals, started: Instant) -> Totals {
        Totals {
            previous,
            current: TransferTotals {
                session_count: 1,
                ..TransferTotals::default()
            },
            started,
            last: HashMap::new(),
        }
    }

    /// Adds what a torrent's counters grew by since its last sample.
    pub(super) fn sample(&mut self, info_hash: &str, downloaded: u64, uploaded: u64) {
        let (down_before, up_before) = self.last.get(info_hash).copied().unwrap_or((0, 0));
        let grown = |now: u64, before: u64| if now >= before { now - before } else { now };
        self.current.downloaded_bytes = self
            .current
            .downloaded_bytes
            .saturating_add(grown(downloaded, down_before));
        self.current.uploaded_bytes = self
            .current
            .uploaded_bytes
            .saturating_add(grown(uploaded, up_before));
        self.last
            .insert(info_hash.to_owned(), (downloaded, uploaded));
    }

    /// Forgets a torrent's last sample (its task is gone; a new one counts from zero).
    pub(super) fn forget(&mut self, info_hash: &str) {
        self.last.remove(info_hash);
    }

    pub(super) fn torrent_added(&mut self) {
        self.current.files_added += 1;
    }

    /// This run's totals.
    pub(super) fn current(&self) -> TransferTotals {
        TransferTotals {
            seconds_active: self.started.elapsed().as_secs(),
            ..self.current.clone()
        }
    }

    /// Every run's totals, this one included.
    pub(super) fn cumulative(&self) -> TransferTotals {
        self.previous.plus(&self.current())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_is_added_and_a_restarted_counter_counts_whole() {
        let previous = TransferTotals {
            downloaded_bytes: 1000,
            session_count: 2,
            seconds_active: 60,
            ..TransferTotals::default()
        };
        let mut totals = Totals::new(previous, Instant::now());
        totals.sample("a", 100, 10);
        totals.sample("a", 150, 10);
        totals.sample("b", 5, 0);
        // "a" restarted (moved, re-added): its counter began again at zero.
        totals.sample("a", 20, 1);
        let current = totals.current();
        assert_eq!(current.downloaded_bytes, 150 + 5 + 20);
        assert_eq!(current.uploaded_bytes, 11);
        assert_eq!(current.session_count, 1);
        totals.torrent_added();
        let all = totals.cumulative();
        assert_eq!(all.downloaded_bytes, 1000 + 175);
        assert_eq!(all.session_count, 3);
        assert_eq!(all.files_added, 1);
        assert!(all.seconds_active >= 60);
    }
}
