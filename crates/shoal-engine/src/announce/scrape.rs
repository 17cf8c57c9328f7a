//! Scrapes in the announce schedule: when to ask each tracker for the torrent's figures
//! (seeders, leechers, and how often it was downloaded), which announces alone do not give.
//!
//! Policy, with defaults in [`AnnounceConfig`](super::AnnounceConfig):
//! - Only trackers that can be scraped are: HTTP(S) ones whose last path segment starts with
//!   `announce` (BEP 48 convention), and every UDP one (BEP 15).
//! - A tracker is first scraped `scrape_delay` (5 s) after its first successful announce, so a
//!   tracker on standby in its tier, or one that never answered, is not scraped. Then every
//!   `scrape_interval` (30 min), and never sooner than the tracker's `min interval` after the
//!   previous scrape, also across a stop and a start.
//! - After `n` consecutive failed scrapes the next one waits the announce back-off
//!   (`15 s · 2^(n-1)` capped at 1 h, with jitter), at least the `min interval`.
//! - One scrape at a time per torrent, beside the announce that may be out. Nothing is scraped
//!   while stopping or stopped ([`AnnounceSchedule::handle_stop`]); the first successful announce
//!   after [`AnnounceSchedule::handle_start`] schedules the next scrape. Scrapes go on while the
//!   torrent checks its data: they say nothing about us.
//! - A reply's seeders and leechers replace the tracker's figures (the announce's until then);
//!   its `downloaded` (BEP 15 `completed`) is kept for the user.
//!
//! Call order: [`AnnounceSchedule::poll_scrape`] hands out at most one [`ScrapeRequest`]; the
//! runtime performs it and reports [`AnnounceSchedule::handle_scrape_reply`] with this torrent's
//! figures or [`AnnounceSchedule::handle_scrape_failure`] (also when the reply lacks the torrent);
//! [`AnnounceSchedule::poll_scrape_timeout`] says when to call `poll_scrape` again.

use std::time::{Duration, Instant};

use shoal_proto::tracker::http::scrape_url;
use shoal_proto::tracker::{ScrapeStats, TrackerUrl};

use super::{AnnounceSchedule, TrackerKey};

/// One scrape for the runtime to perform: ask `url` about this torrent.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ScrapeRequest {
    pub tracker: TrackerKey,
    /// The tracker's announce URL; the HTTP client derives the scrape URL from it.
    pub url: TrackerUrl,
}

/// One tracker's scrape state.
#[derive(Debug)]
pub(super) struct ScrapeSlot {
    supported: bool,
    /// When the next scrape is due; `None` while unscheduled or out.
    due: Option<Instant>,
    failures: u32,
    last_scrape: Option<Instant>,
    last_error: Option<String>,
    downloaded: Option<u32>,
}

impl ScrapeSlot {
    /// The slot of a tracker with this URL (`None`: unusable, never scraped).
    pub(super) fn new(url: Option<&TrackerUrl>) -> Self {
        let supported = match url {
            Some(TrackerUrl::Udp { .. }) => true,
            Some(TrackerUrl::Http { url, .. }) => scrape_url(url).is_some(),
            None => false,
        };
        ScrapeSlot {
            supported,
            due: None,
            failures: 0,
            last_scrape: None,
            last_error: None,
            downloaded: None,
        }
    }

    /// The tracker answered an announce at `now`: schedule a scrape `delay` later (no sooner than
    /// `min_interval` after the last one), unless one is scheduled already.
    pub(super) fn arm(&mut self, now: Instant, delay: Duration, min_interval: Duration) {
        if !self.supported || self.due.is_some() {
            return;
        }
        let earliest = self.last_scrape.map_or(now, |at| at + min_interval);
        self.due = Some((now + delay).max(earliest));
    }

    pub(super) fn due(&self) -> Option<Instant> {
        self.due
    }

    pub(super) fn downloaded(&self) -> Option<u32> {
        self.downloaded
    }

    pub(super) fn last_scrape(&self) -> Option<Instant> {
        self.last_scrape
    }

    pub(super) fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }
}

impl AnnounceSchedule {
    /// The next scrape to perform, if one is due at `now` and none is out.
    pub fn poll_scrape(&mut self, now: Instant) -> Option<ScrapeRequest> {
        if self.scrape_in_flight.is_some() || self.stopping.is_some() {
            return None;
        }
        let index = self
            .order
            .iter()
            .copied()
            .filter(|&i| self.trackers[i].scrape.due.is_some_and(|at| at <= now))
            .min_by_key(|&i| self.trackers[i].scrape.due)?;
        let tracker = &mut self.trackers[index];
        let url = tracker.url.clone().ok()?;
        tracker.scrape.due = None;
        self.scrape_in_flight = Some(index);
        Some(ScrapeRequest {
            tracker: TrackerKey(index),
            url,
        })
    }

    /// When `poll_scrape` may next hand out a request; `None` while one is out, when nothing is
    /// scheduled, or when stopping.
    pub fn poll_scrape_timeout(&self) -> Option<Instant> {
        if self.scrape_in_flight.is_some() || self.stopping.is_some() {
            return None;
        }
        self.trackers.iter().filter_map(|t| t.scrape.due).min()
    }

    /// The outstanding scrape worked: `stats` are this torrent's figures. Replies for anything
    /// but the outstanding scrape are ignored.
    pub fn handle_scrape_reply(&mut self, now: Instant, key: TrackerKey, stats: ScrapeStats) {
        let Some(index) = self.take_scrape(key) else {
            return;
        };
        let spacing = self.config.scrape_interval.max(self.min_interval_of(index));
        let tracker = &mut self.trackers[index];
        tracker.seeders = Some(stats.seeders);
        tracker.leechers = Some(stats.leechers);
        let slot = &mut tracker.scrape;
        slot.downloaded = Some(stats.completed);
        slot.failures = 0;
        slot.last_error = None;
        slot.last_scrape = Some(now);
        slot.due = Some(now + spacing);
    }

    /// The outstanding scrape failed (network error, time-out, refusal, a reply without this
    /// torrent): the tracker's scrapes back off.
    pub fn handle_scrape_failure(
        &mut self,
        now: Instant,
        key: TrackerKey,
        error: impl Into<String>,
    ) {
        let Some(index) = self.take_scrape(key) else {
            return;
        };
        let failures = self.trackers[index].scrape.failures.saturating_add(1);
        let delay = self.backoff(failures).max(self.min_interval_of(index));
        let slot = &mut self.trackers[index].scrape;
        slot.failures = failures;
        slot.last_error = Some(error.into());
        slot.last_scrape = Some(now);
        slot.due = Some(now + delay);
    }

    /// Forgets the outstanding scrape and every scheduled one (the torrent stops).
    pub(super) fn stop_scrapes(&mut self) {
        self.scrape_in_flight = None;
        for tracker in &mut self.trackers {
            tracker.scrape.due = None;
        }
    }

    fn take_scrape(&mut self, key: TrackerKey) -> Option<usize> {
        let index = self.scrape_in_flight.filter(|&i| i == key.0)?;
        self.scrape_in_flight = None;
        Some(index)
    }

    /// The tracker's clamped `min interval`, or the floor before it sent one.
    fn min_interval_of(&self, index: usize) -> Duration {
        self.trackers[index]
            .min_interval
            .unwrap_or(self.config.min_interval_floor)
    }
}

#[cfg(test)]
mod tests {
    use shoal_proto::tracker::{AnnounceEvent, AnnounceReply};

    use super::super::{AnnounceConfig, TrackerStatus, TransferTotals};
    use super::*;

    const HTTP: &str = "http://a.test/announce";
    const UDP: &str = "udp://b.test:6969";
    const NO_SCRAPE: &str = "http://c.test/tracker";

    #[allow(clippy::disallowed_methods)] // tests need one real instant to offset from
    fn t0() -> Instant {
        Instant::now()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn schedule(now: Instant, tiers: &[&[&str]]) -> AnnounceSchedule {
        let tiers: Vec<Vec<String>> = tiers
            .iter()
            .map(|t| t.iter().map(|u| u.to_string()).collect())
            .collect();
        AnnounceSchedule::new(now, &tiers, AnnounceConfig::default(), 1)
    }

    fn reply(min_interval: Option<i64>) -> AnnounceReply {
        AnnounceReply {
            interval: Some(1800),
            min_interval,
            seeders: Some(1),
            leechers: Some(2),
            ..AnnounceReply::default()
        }
    }

    fn stats(seeders: u32, completed: u32, leechers: u32) -> ScrapeStats {
        ScrapeStats {
            seeders,
            completed,
            leechers,
        }
    }

    /// Announces once at `now` and feeds `reply` back; returns the tracker announced to.
    fn announce(s: &mut AnnounceSchedule, now: Instant, reply: &AnnounceReply) -> TrackerKey {
        let req = s.poll_request(now, TransferTotals::default()).unwrap();
        s.handle_reply(now, req.tracker, reply);
        req.tracker
    }

    fn status(s: &AnnounceSchedule, url: &str) -> TrackerStatus {
        s.trackers().into_iter().find(|t| t.url == url).unwrap()
    }

    #[test]
    fn first_scrape_comes_shortly_after_the_first_announce_then_every_half_hour() {
        for url in [HTTP, UDP] {
            let now = t0();
            let mut s = schedule(now, &[&[url]]);
            assert_eq!((s.poll_scrape(now), s.poll_scrape_timeout()), (None, None));
            let key = announce(&mut s, now, &reply(Some(60)));
            assert_eq!(s.poll_scrape_timeout(), Some(now + secs(5)), "{url}");
            assert_eq!(status(&s, url).next_scrape, Some(now + secs(5)));
            assert_eq!(s.poll_scrape(now + secs(4)), None);
            let req = s.poll_scrape(now + secs(5)).unwrap();
            assert_eq!((req.tracker, req.url.as_str()), (key, url));
            assert!(status(&s, url).scraping);
            assert_eq!(s.poll_scrape(now + secs(5)), None, "one at a time");
            assert_eq!(s.poll_scrape_timeout(), None);
            s.handle_scrape_reply(now + secs(6), key, stats(7, 40, 9));
            let st = status(&s, url);
            assert_eq!(
                (st.seeders, st.leechers, st.downloaded, st.scraping),
                (Some(7), Some(9), Some(40), false)
            );
            assert_eq!(
                (st.last_scrape, st.last_scrape_error),
                (Some(now + secs(6)), None)
            );
            assert_eq!(s.poll_scrape_timeout(), Some(now + secs(6 + 1800)));
            // Later announces do not move the scrape, nor does an announce that gives no counts
            // hide the scrape's.
            let quiet = AnnounceReply {
                seeders: None,
                leechers: None,
                ..reply(Some(60))
            };
            announce(&mut s, now + secs(1800), &quiet);
            assert_eq!(s.poll_scrape_timeout(), Some(now + secs(6 + 1800)));
            assert_eq!(status(&s, url).seeders, Some(7));
        }
    }

    #[test]
    fn only_trackers_that_support_scrape_and_answered_are_scraped() {
        let now = t0();
        // Tier 0 cannot be scraped; tier 1's trackers stand by while tier 0 answers.
        let mut s = schedule(now, &[&[NO_SCRAPE], &[HTTP, UDP]]);
        announce(&mut s, now, &reply(None));
        assert_eq!(
            status(&s, NO_SCRAPE).state,
            super::super::TrackerState::Working
        );
        assert_eq!(s.poll_scrape_timeout(), None);
        assert_eq!(s.poll_scrape(now + secs(3600)), None);
        assert!(s.trackers().iter().all(|t| t.next_scrape.is_none()));
    }

    #[test]
    fn scrapes_never_come_sooner_than_the_min_interval() {
        // (min interval sent, scrape interval) -> seconds between two scrapes.
        let table: [(Option<i64>, u64, u64); 4] = [
            (Some(60), 1800, 1800),
            (Some(3000), 1800, 1800), // min interval clamped to the 1800 s interval
            (None, 10, 30),           // the 30 s floor
            (Some(300), 100, 300),
        ];
        for (min_interval, every, want) in table {
            let now = t0();
            let config = AnnounceConfig {
                scrape_interval: secs(every),
                ..AnnounceConfig::default()
            };
            let mut s = AnnounceSchedule::new(now, &[vec![UDP.to_owned()]], config, 1);
            announce(&mut s, now, &reply(min_interval));
            let req = s.poll_scrape(now + secs(5)).unwrap();
            s.handle_scrape_reply(now + secs(5), req.tracker, stats(1, 1, 1));
            assert_eq!(
                s.poll_scrape_timeout(),
                Some(now + secs(5 + want)),
                "{min_interval:?}, every {every} s"
            );
        }
    }

    #[test]
    fn failures_back_off_at_least_the_min_interval_and_success_resets() {
        let now = t0();
        let mut s = schedule(now, &[&[HTTP]]);
        let key = announce(&mut s, now, &reply(Some(100)));
        let mut at = now + secs(5);
        let mut waits = Vec::new();
        for failures in 1..=12u32 {
            let req = s.poll_scrape(at).expect("due after the back-off");
            s.handle_scrape_failure(at, req.tracker, "HTTP 404");
            let st = status(&s, HTTP);
            assert_eq!(st.last_scrape_error.as_deref(), Some("HTTP 404"));
            assert_eq!(st.last_scrape, Some(at));
            let wait = s.poll_scrape_timeout().unwrap() - at;
            let plain = (15.0 * 2f64.powi(failures as i32 - 1)).min(3600.0);
            assert!(wait >= secs(100), "failure {failures}: {wait:?}");
            assert!(
                wait.as_secs_f64() <= (plain * 1.25).max(100.0),
                "failure {failures}: {wait:?}"
            );
            waits.push(wait);
            at += wait;
        }
        assert!(waits[11] > secs(2700), "capped near 1 h: {waits:?}");
        let req = s.poll_scrape(at).unwrap();
        s.handle_scrape_reply(at, req.tracker, stats(0, 3, 1));
        let st = status(&s, HTTP);
        assert_eq!((st.last_scrape_error, st.downloaded), (None, Some(3)));
        assert_eq!(s.poll_scrape_timeout(), Some(at + secs(1800)));
        // A reply for a scrape that is not out changes nothing.
        s.handle_scrape_reply(at, key, stats(9, 9, 9));
        assert_eq!(status(&s, HTTP).downloaded, Some(3));
    }

    #[test]
    fn nothing_is_scraped_when_stopped_and_a_restart_waits_the_min_interval() {
        let now = t0();
        let mut s = schedule(now, &[&[UDP]]);
        announce(&mut s, now, &reply(Some(600)));
        let req = s.poll_scrape(now + secs(5)).unwrap();
        s.handle_stop(now + secs(6));
        // The scrape that was out is forgotten.
        s.handle_scrape_reply(now + secs(6), req.tracker, stats(1, 1, 1));
        assert_eq!(status(&s, UDP).downloaded, None);
        assert_eq!(
            (s.poll_scrape(now + secs(7200)), s.poll_scrape_timeout()),
            (None, None)
        );
        let stop = s
            .poll_request(now + secs(6), TransferTotals::default())
            .unwrap();
        assert_eq!(stop.event, AnnounceEvent::Stopped);
        s.handle_reply(now + secs(6), stop.tracker, &reply(Some(600)));
        assert!(s.is_stopped());
        assert_eq!(s.poll_scrape_timeout(), None);

        // Started again: scraped shortly after the first announce.
        let restart = now + secs(100);
        s.handle_start(restart);
        assert_eq!(s.poll_scrape_timeout(), None);
        announce(&mut s, restart, &reply(Some(600)));
        assert_eq!(s.poll_scrape_timeout(), Some(restart + secs(5)));
        let req = s.poll_scrape(restart + secs(5)).unwrap();
        s.handle_scrape_reply(restart + secs(5), req.tracker, stats(1, 2, 3));
        // Stopped and started again within the min interval: the next scrape waits for it.
        s.handle_stop(restart + secs(10));
        s.handle_start(restart + secs(20));
        announce(&mut s, restart + secs(20), &reply(Some(600)));
        assert_eq!(s.poll_scrape_timeout(), Some(restart + secs(605)));
    }

    #[test]
    fn the_earliest_due_tracker_is_scraped_first() {
        let now = t0();
        let mut s = schedule(now, &[&[NO_SCRAPE], &[HTTP], &[UDP]]);
        // Tier 0 fails, tier 1 answers at once; later tier 1 fails and tier 2 answers.
        let req = s.poll_request(now, TransferTotals::default()).unwrap();
        s.handle_failure(now, req.tracker, "down");
        let http = announce(&mut s, now + secs(1), &reply(None));
        assert_eq!(s.poll_scrape(now + secs(6)).unwrap().tracker, http);
        s.handle_scrape_failure(now + secs(6), http, "refused");
        let req = s.poll_request(now + secs(1801), TransferTotals::default());
        let req = req.unwrap();
        s.handle_failure(now + secs(1801), req.tracker, "down");
        let req = s
            .poll_request(now + secs(1801), TransferTotals::default())
            .unwrap();
        s.handle_failure(now + secs(1801), req.tracker, "down");
        let udp = announce(&mut s, now + secs(1801), &reply(None));
        assert_eq!(status(&s, UDP).next_scrape, Some(now + secs(1806)));
        // The HTTP tracker's retry (about 30 s after its failure) is due before.
        let first = s.poll_scrape(now + secs(1806)).unwrap();
        assert_eq!(first.tracker, http);
        s.handle_scrape_reply(now + secs(1806), http, stats(1, 1, 1));
        assert_eq!(s.poll_scrape(now + secs(1806)).unwrap().tracker, udp);
    }
}
