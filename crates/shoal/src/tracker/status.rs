//! Tracker status for front ends: the schedule's [`TrackerStatus`] (monotonic `Instant`s) turned
//! into [`TrackerInfo`] (plain data, Unix seconds).
//!
//! The announcer publishes every tracker's status on a `watch` channel after each change;
//! [`TrackerWatch`] is a front end's view of that channel: a snapshot now, or the next change.
//! Times are converted when read, against the clock at that moment, so a snapshot is exact to
//! the second whenever it is taken.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use shoal_engine::announce::{TrackerState, TrackerStatus};
use tokio::sync::watch;

use crate::api::{TrackerAnnounceState, TrackerInfo};

/// A front end's view of one torrent's trackers.
#[derive(Debug, Clone)]
pub struct TrackerWatch {
    rx: watch::Receiver<Vec<TrackerStatus>>,
}

impl TrackerWatch {
    pub(crate) fn new(rx: watch::Receiver<Vec<TrackerStatus>>) -> Self {
        TrackerWatch { rx }
    }

    /// Every tracker, in the order they are tried; empty when the torrent has none (or no
    /// tracker client could be made).
    pub fn get(&self) -> Vec<TrackerInfo> {
        let clock = Clock::now();
        self.rx.borrow().iter().map(|t| clock.info(t)).collect()
    }

    /// Waits for the next change, then returns the new state; `None` once the announcer ended.
    pub async fn changed(&mut self) -> Option<Vec<TrackerInfo>> {
        self.rx.changed().await.ok()?;
        let clock = Clock::now();
        let infos = self
            .rx
            .borrow_and_update()
            .iter()
            .map(|t| clock.info(t))
            .collect();
        Some(infos)
    }
}

/// One reading of both clocks, to turn `Instant`s into Unix seconds.
struct Clock {
    mono: Instant,
    wall: SystemTime,
}

impl Clock {
    fn now() -> Clock {
        Clock {
            // The announcer's clock (tokio's, the same as std's outside paused tests).
            mono: tokio::time::Instant::now().into_std(),
            wall: SystemTime::now(),
        }
    }

    /// Unix seconds of `at`, rounded to the nearest second.
    fn unix(&self, at: Instant) -> u64 {
        let wall = if at >= self.mono {
            self.wall + (at - self.mono)
        } else {
            self.wall - (self.mono - at)
        };
        wall.duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() + u64::from(d.subsec_millis() >= 500))
    }

    fn info(&self, t: &TrackerStatus) -> TrackerInfo {
        TrackerInfo {
            url: t.url.clone(),
            tier: t.tier,
            status: match t.state {
                TrackerState::Idle => TrackerAnnounceState::Idle,
                TrackerState::Announcing => TrackerAnnounceState::Announcing,
                TrackerState::Working => TrackerAnnounceState::Ok,
                TrackerState::Failing | TrackerState::Disabled => TrackerAnnounceState::Error,
            },
            last_announce: t.last_announce.map(|at| self.unix(at)),
            last_success: t.last_success.map(|at| self.unix(at)),
            last_peers: t.last_peer_count,
            seeders: t.seeders,
            leechers: t.leechers,
            downloaded: t.downloaded,
            scraping: t.scraping,
            last_scrape: t.last_scrape.map(|at| self.unix(at)),
            last_scrape_error: t.last_scrape_error.clone(),
            next_scrape: t.next_scrape.map(|at| self.unix(at)),
            last_error: t.last_error.clone(),
            warning: t.warning.clone(),
            consecutive_failures: t.consecutive_failures,
            next_announce: t.next_announce.map(|at| self.unix(at)),
            interval_secs: t.interval.map(|d| d.as_secs()),
            min_interval_secs: t.min_interval.map(|d| d.as_secs()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use shoal_engine::announce::TrackerKey;

    use super::*;

    fn status(state: TrackerState, mono: Instant) -> TrackerStatus {
        TrackerStatus {
            key: TrackerKey(0),
            url: "http://t.test/announce".to_owned(),
            tier: 1,
            state,
            last_error: Some("refused".to_owned()),
            warning: None,
            consecutive_failures: 2,
            next_announce: Some(mono + Duration::from_secs(90)),
            interval: Some(Duration::from_secs(1800)),
            min_interval: None,
            last_success: None,
            last_announce: Some(mono - Duration::from_secs(30)),
            seeders: Some(1),
            leechers: None,
            last_peer_count: 7,
            downloaded: Some(12),
            scraping: false,
            last_scrape: Some(mono - Duration::from_secs(10)),
            last_scrape_error: None,
            next_scrape: Some(mono + Duration::from_secs(1790)),
        }
    }

    #[test]
    fn instants_become_unix_seconds_around_the_reading() {
        let mono = Instant::now();
        let clock = Clock {
            mono,
            wall: UNIX_EPOCH + Duration::from_secs(1_000_000),
        };
        let info = clock.info(&status(TrackerState::Failing, mono));
        assert_eq!(info.status, TrackerAnnounceState::Error);
        assert_eq!(info.next_announce, Some(1_000_090));
        assert_eq!(info.last_announce, Some(999_970));
        assert_eq!((info.tier, info.last_peers, info.seeders), (1, 7, Some(1)));
        assert_eq!(info.interval_secs, Some(1800));
        assert_eq!(info.last_error.as_deref(), Some("refused"));
        assert_eq!(info.downloaded, Some(12));
        assert_eq!(
            (info.last_scrape, info.next_scrape, info.scraping),
            (Some(999_990), Some(1_001_790), false)
        );
    }

    #[test]
    fn every_schedule_state_maps_to_a_front_end_state() {
        let mono = Instant::now();
        let clock = Clock {
            mono,
            wall: SystemTime::now(),
        };
        let table = [
            (TrackerState::Idle, TrackerAnnounceState::Idle),
            (TrackerState::Announcing, TrackerAnnounceState::Announcing),
            (TrackerState::Working, TrackerAnnounceState::Ok),
            (TrackerState::Failing, TrackerAnnounceState::Error),
            (TrackerState::Disabled, TrackerAnnounceState::Error),
        ];
        for (state, want) in table {
            assert_eq!(clock.info(&status(state, mono)).status, want, "{state:?}");
        }
    }
}
