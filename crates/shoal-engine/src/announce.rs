//! The announce schedule of one torrent: which tracker to announce to, when, and with which event.
//!
//! Trackers come in tiers (BEP 12). At construction each tier is shuffled (seeded RNG); when
//! an announce is due, the first tracker in tier order that is not backing off gets it. A tracker
//! that answers moves to the front of its tier, so it is asked first next time; one that fails
//! backs off and the next one is asked at once. Trackers whose URL is not `http`, `https` or
//! `udp` are listed (with the reason as their error) but never contacted.
//!
//! Call order (the runtime drives it, time passed in as `now`):
//! 1. [`AnnounceSchedule::new`]: the first announce (`started`) is due at once.
//! 2. [`AnnounceSchedule::poll_request`] hands out at most one [`AnnounceRequest`] at a time; the
//!    runtime performs it and reports [`AnnounceSchedule::handle_reply`] or
//!    [`AnnounceSchedule::handle_failure`] (a timeout, a network error or a `failure reason`).
//! 3. [`AnnounceSchedule::poll_timeout`] says when to call `poll_request` again.
//! 4. [`AnnounceSchedule::handle_completed`] when the download finishes (sends `completed` now),
//!    [`AnnounceSchedule::handle_announce_now`] for a user's "announce now" (respects the
//!    tracker's `min interval`), [`AnnounceSchedule::handle_stop`] to leave: `poll_request` then
//!    hands out one `stopped` per tracker that was told `started`, and [`AnnounceSchedule::is_stopped`]
//!    turns true when none are left.
//!
//! Policy, with defaults in [`AnnounceConfig`]:
//! - A tracker's `interval` is clamped to 60 s ..= 2 h (30 min when it sends none); its
//!   `min interval` to at least 30 s and at most the interval. Negative or absurd numbers from a
//!   hostile tracker therefore cannot make us hammer it or fall silent for days.
//! - After `n` consecutive failures a tracker is skipped for `15 s · 2^(n-1)`, capped at 1 h, times
//!   a seeded random factor in [0.75, 1.25) so that many torrents do not retry in lockstep.
//! - Each tracker gets `started` the first time we announce to it (again after a failure of that
//!   announce); `completed` goes to the tracker in use when the download finishes.
//! - A torrent short of peers (not complete, fewer than [`AnnounceConfig::few_peers`] connected,
//!   as told by [`AnnounceSchedule::handle_swarm`]) announces again after the tracker's
//!   `min interval` (or [`AnnounceConfig::short_of_peers_interval`] when it sent none) instead of
//!   the full interval; the rule applies as soon as the torrent falls short, also mid-interval.
//! - While the torrent checks its data ([`AnnounceSchedule::handle_checking`]) nothing is
//!   announced but `stopped`: what is left is not known yet, and a seed would be listed as a
//!   leecher until its next announce.
//!
//! Scrapes (BEP 48 over HTTP, BEP 15 over UDP) run beside the announces, one at a time, with their
//! own verbs: [`AnnounceSchedule::poll_scrape`], [`AnnounceSchedule::handle_scrape_reply`],
//! [`AnnounceSchedule::handle_scrape_failure`] and [`AnnounceSchedule::poll_scrape_timeout`]; the
//! policy is in the [`scrape`] module's docs.
//!
//! Every tracker's state (last error, next announce, seeders and leechers, the last scrape) is
//! visible through [`AnnounceSchedule::trackers`].

pub mod scrape;

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use shoal_proto::tracker::{AnnounceEvent, AnnounceReply, TrackerUrl};

/// Tunables with documented defaults.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AnnounceConfig {
    /// Peers asked for per announce (`numwant`). Default 50; `stopped` announces ask for 0.
    pub numwant: u32,
    /// Shortest `interval` obeyed. Default 60 s.
    pub interval_min: Duration,
    /// Longest `interval` obeyed. Default 2 h.
    pub interval_max: Duration,
    /// Interval used when a tracker sends none. Default 30 min.
    pub default_interval: Duration,
    /// Shortest `min interval` obeyed (also used when a tracker sends none). Default 30 s.
    pub min_interval_floor: Duration,
    /// Back-off after the first failure. Default 15 s; it doubles with each further failure.
    pub backoff_base: Duration,
    /// Longest back-off. Default 1 h.
    pub backoff_max: Duration,
    /// A torrent with fewer connected peers than this (and not complete) is short of peers.
    /// Default 5.
    pub few_peers: usize,
    /// How soon a torrent short of peers announces again when the tracker sent no
    /// `min interval`. Default 60 s.
    pub short_of_peers_interval: Duration,
    /// How long after a tracker's first successful announce it is scraped. Default 5 s.
    pub scrape_delay: Duration,
    /// Time between two scrapes of a tracker (never less than its `min interval`). Default 30 min.
    pub scrape_interval: Duration,
}

impl Default for AnnounceConfig {
    fn default() -> Self {
        AnnounceConfig {
            numwant: 50,
            interval_min: Duration::from_secs(60),
            interval_max: Duration::from_secs(2 * 3600),
            default_interval: Duration::from_secs(30 * 60),
            min_interval_floor: Duration::from_secs(30),
            backoff_base: Duration::from_secs(15),
            backoff_max: Duration::from_secs(3600),
            few_peers: 5,
            short_of_peers_interval: Duration::from_secs(60),
            scrape_delay: Duration::from_secs(5),
            scrape_interval: Duration::from_secs(30 * 60),
        }
    }
}

/// A tracker's identity in one schedule: its position in the list given to
/// [`AnnounceSchedule::new`] (tiers flattened in order, duplicates dropped).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct TrackerKey(pub usize);

/// Our byte counts, as the tracker wants them.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TransferTotals {
    pub uploaded: u64,
    pub downloaded: u64,
    /// Bytes not yet verified; 0 for a seed.
    pub left: u64,
}

/// One announce for the runtime to perform.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AnnounceRequest {
    pub tracker: TrackerKey,
    pub url: TrackerUrl,
    pub event: AnnounceEvent,
    pub totals: TransferTotals,
    pub numwant: u32,
    /// Random, fixed for the schedule's life (the `key` parameter).
    pub key: u32,
    /// The `tracker id` this tracker gave us, to echo back.
    pub tracker_id: Option<Vec<u8>>,
}

/// What a tracker is doing, for the user.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TrackerState {
    /// Not contacted yet, or standing by while another tracker is in use.
    Idle,
    /// A request is out.
    Announcing,
    /// Its last announce worked.
    Working,
    /// Its last announce failed; see `last_error`.
    Failing,
    /// Never contacted: its URL is unusable (see `last_error`).
    Disabled,
}

/// One tracker's state, for the user.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TrackerStatus {
    pub key: TrackerKey,
    pub url: String,
    pub tier: usize,
    pub state: TrackerState,
    pub last_error: Option<String>,
    /// The tracker's last `warning message`.
    pub warning: Option<String>,
    pub consecutive_failures: u32,
    /// When it will be contacted next: set for the tracker the schedule will use next and for
    /// trackers backing off (the end of the back-off, or the next announce if later); `None`
    /// for trackers on standby.
    pub next_announce: Option<Instant>,
    /// The clamped interval and min interval of its last reply.
    pub interval: Option<Duration>,
    pub min_interval: Option<Duration>,
    pub last_success: Option<Instant>,
    /// When its last announce ended, well or not (`None`: never contacted).
    pub last_announce: Option<Instant>,
    /// Seeders and leechers as its last announce or scrape counted them, whichever came later
    /// (an announce that does not say keeps the scrape's figures).
    pub seeders: Option<u32>,
    pub leechers: Option<u32>,
    /// Peers in its last reply.
    pub last_peer_count: usize,
    /// How many times it saw the download finish, from its last successful scrape.
    pub downloaded: Option<u32>,
    /// A scrape is out.
    pub scraping: bool,
    /// When its last scrape ended, well or not (`None`: never scraped).
    pub last_scrape: Option<Instant>,
    /// Why its last scrape failed; `None` after a success.
    pub last_scrape_error: Option<String>,
    /// When it will be scraped next; `None` when it does not support scrape, before its first
    /// successful announce, while a scrape is out, and when stopped.
    pub next_scrape: Option<Instant>,
}

#[derive(Debug)]
struct Tracker {
    url: Result<TrackerUrl, String>,
    raw_url: String,
    tier: usize,
    started_sent: bool,
    stop_sent: bool,
    retry_at: Option<Instant>,
    consecutive_failures: u32,
    last_error: Option<String>,
    warning: Option<String>,
    interval: Option<Duration>,
    min_interval: Option<Duration>,
    last_success: Option<Instant>,
    last_announce: Option<Instant>,
    seeders: Option<u32>,
    leechers: Option<u32>,
    last_peer_count: usize,
    tracker_id: Option<Vec<u8>>,
    scrape: scrape::ScrapeSlot,
}

impl Tracker {
    fn usable(&self) -> bool {
        self.url.is_ok()
    }

    fn available_at(&self, now: Instant) -> bool {
        self.usable() && self.retry_at.is_none_or(|t| t <= now)
    }
}

/// The announce schedule of one torrent. See the module docs for the call order.
#[derive(Debug)]
pub struct AnnounceSchedule {
    config: AnnounceConfig,
    trackers: Vec<Tracker>,
    /// Indices into `trackers`, in the order they are tried: by tier, shuffled and promoted
    /// within a tier.
    order: Vec<usize>,
    rng: StdRng,
    key: u32,
    /// When the next regular announce is due.
    next_due: Instant,
    /// When the next announce is due while the torrent is short of peers.
    short_due: Instant,
    /// The torrent is short of peers (see [`AnnounceSchedule::handle_swarm`]).
    short_of_peers: bool,
    /// The torrent is checking its data: announces wait.
    checking: bool,
    /// Earliest time a user-requested announce may go out (the `min interval`).
    earliest_manual: Instant,
    completed_pending: bool,
    in_flight: Option<(usize, AnnounceEvent)>,
    /// The tracker whose scrape is out.
    scrape_in_flight: Option<usize>,
    stopping: Option<Instant>,
}

impl AnnounceSchedule {
    /// A schedule over `tiers` (each a list of URLs, in the torrent's order), with the first
    /// announce due at `now`. Empty tiers and repeated URLs are dropped; unusable URLs are kept
    /// as [`TrackerState::Disabled`]. `seed` drives the shuffles, the jitter and the `key`.
    pub fn new(now: Instant, tiers: &[Vec<String>], config: AnnounceConfig, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut trackers: Vec<Tracker> = Vec::new();
        let mut order = Vec::new();
        for (tier, urls) in tiers.iter().filter(|t| !t.is_empty()).enumerate() {
            let start = order.len();
            for raw in urls {
                let raw = raw.trim();
                if trackers.iter().any(|t| t.raw_url == raw) {
                    continue;
                }
                order.push(trackers.len());
                trackers.push(Tracker::new(raw, tier));
            }
            order[start..].shuffle(&mut rng);
        }
        let key = rng.gen();
        AnnounceSchedule {
            config,
            trackers,
            order,
            rng,
            key,
            next_due: now,
            short_due: now,
            short_of_peers: false,
            checking: false,
            earliest_manual: now,
            completed_pending: false,
            in_flight: None,
            scrape_in_flight: None,
            stopping: None,
        }
    }

    /// The next announce to perform, if one is due at `now` and none is out. `totals` are our
    /// current byte counts.
    pub fn poll_request(
        &mut self,
        now: Instant,
        totals: TransferTotals,
    ) -> Option<AnnounceRequest> {
        if self.in_flight.is_some() {
            return None;
        }
        let (index, event) = if self.stopping.is_some() {
            let index = *self.order.iter().find(|&&i| {
                let t = &self.trackers[i];
                t.usable() && t.started_sent && !t.stop_sent
            })?;
            self.trackers[index].stop_sent = true;
            (index, AnnounceEvent::Stopped)
        } else {
            if now < self.due() || self.checking {
                return None;
            }
            let index = *self
                .order
                .iter()
                .find(|&&i| self.trackers[i].available_at(now))?;
            let tracker = &self.trackers[index];
            let event = if !tracker.started_sent {
                AnnounceEvent::Started
            } else if self.completed_pending {
                AnnounceEvent::Completed
            } else {
                AnnounceEvent::None
            };
            (index, event)
        };
        self.in_flight = Some((index, event));
        let tracker = &self.trackers[index];
        Some(AnnounceRequest {
            tracker: TrackerKey(index),
            url: tracker.url.clone().ok()?,
            event,
            totals,
            numwant: if event == AnnounceEvent::Stopped {
                0
            } else {
                self.config.numwant
            },
            key: self.key,
            tracker_id: tracker.tracker_id.clone(),
        })
    }

    /// The tracker answered the outstanding request. Replies for anything but the outstanding
    /// request are ignored.
    pub fn handle_reply(&mut self, now: Instant, key: TrackerKey, reply: &AnnounceReply) {
        let Some((index, event)) = self.take_in_flight(key) else {
            return;
        };
        let interval = clamp_secs(
            reply.interval,
            self.config.default_interval,
            self.config.interval_min,
            self.config.interval_max,
        );
        let min_interval = clamp_secs(
            reply.min_interval,
            self.config.min_interval_floor,
            self.config.min_interval_floor,
            interval.max(self.config.min_interval_floor),
        );
        let tracker = &mut self.trackers[index];
        tracker.started_sent = event != AnnounceEvent::Stopped;
        tracker.retry_at = None;
        tracker.consecutive_failures = 0;
        tracker.last_error = None;
        tracker.warning = reply.warning.clone();
        tracker.interval = Some(interval);
        tracker.min_interval = Some(min_interval);
        tracker.last_success = Some(now);
        tracker.last_announce = Some(now);
        if reply.seeders.is_some() {
            tracker.seeders = reply.seeders;
        }
        if reply.leechers.is_some() {
            tracker.leechers = reply.leechers;
        }
        tracker.last_peer_count = reply.peers.len();
        if reply.tracker_id.is_some() {
            tracker.tracker_id = reply.tracker_id.clone();
        }
        if event == AnnounceEvent::Completed {
            self.completed_pending = false;
        }
        if self.stopping.is_none() {
            let short = match reply.min_interval {
                Some(_) => min_interval,
                None => self.config.short_of_peers_interval.min(interval),
            };
            self.next_due = now + interval;
            self.short_due = now + short;
            self.earliest_manual = now + min_interval;
            self.promote(index);
            if self.scrape_in_flight != Some(index) {
                let delay = self.config.scrape_delay;
                self.trackers[index].scrape.arm(now, delay, min_interval);
            }
        }
    }

    /// The outstanding request failed (network error, timeout, `failure reason`, bad reply).
    /// The tracker backs off and the next one in order is tried at once.
    pub fn handle_failure(&mut self, now: Instant, key: TrackerKey, error: impl Into<String>) {
        let Some((index, _event)) = self.take_in_flight(key) else {
            return;
        };
        let failures = self.trackers[index].consecutive_failures.saturating_add(1);
        let delay = self.backoff(failures);
        let tracker = &mut self.trackers[index];
        tracker.consecutive_failures = failures;
        tracker.last_error = Some(error.into());
        tracker.last_announce = Some(now);
        tracker.retry_at = Some(now + delay);
    }

    /// How the torrent is doing: `connected` peers, `complete` when it has every wanted piece.
    /// Short of peers (see the module docs), the next announce moves up to the tracker's
    /// `min interval` after the last one; enough peers again, it goes back to the full interval.
    pub fn handle_swarm(&mut self, connected: usize, complete: bool) {
        self.short_of_peers = !complete && connected < self.config.few_peers;
    }

    /// While `checking`, nothing but `stopped` is announced; the announces due meanwhile go out
    /// once the check ends.
    pub fn handle_checking(&mut self, checking: bool) {
        self.checking = checking;
    }

    /// When the next regular (not backing-off) announce is due.
    fn due(&self) -> Instant {
        if self.short_of_peers {
            self.next_due.min(self.short_due)
        } else {
            self.next_due
        }
    }

    /// The download finished: announce `completed` now.
    pub fn handle_completed(&mut self, now: Instant) {
        self.completed_pending = true;
        self.next_due = self.next_due.min(now);
        self.short_due = self.short_due.min(now);
    }

    /// The user asked for an announce: as soon as the tracker's `min interval` allows.
    pub fn handle_announce_now(&mut self, now: Instant) {
        self.next_due = self.next_due.min(now.max(self.earliest_manual));
        for tracker in &mut self.trackers {
            tracker.retry_at = None;
        }
    }

    /// Leave the swarm: from now on `poll_request` hands out only `stopped` announces. An
    /// outstanding request is forgotten (the runtime drops it).
    pub fn handle_stop(&mut self, now: Instant) {
        self.stopping = Some(now);
        self.in_flight = None;
        self.stop_scrapes();
    }

    /// Undo [`AnnounceSchedule::handle_stop`] (a torrent resumed): `started` is due again.
    pub fn handle_start(&mut self, now: Instant) {
        self.stopping = None;
        self.in_flight = None;
        self.next_due = now;
        self.short_due = now;
        for tracker in &mut self.trackers {
            tracker.started_sent = false;
            tracker.stop_sent = false;
            tracker.retry_at = None;
        }
    }

    /// True once stopping and every tracker told `started` was sent its `stopped`.
    pub fn is_stopped(&self) -> bool {
        self.stopping.is_some()
            && self.in_flight.is_none()
            && !self
                .trackers
                .iter()
                .any(|t| t.usable() && t.started_sent && !t.stop_sent)
    }

    /// When `poll_request` may next hand out a request; `None` while one is outstanding, when
    /// no tracker is usable, or when stopped.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.in_flight.is_some() {
            return None;
        }
        if let Some(since) = self.stopping {
            return (!self.is_stopped()).then_some(since);
        }
        if self.checking {
            return None;
        }
        let available = self
            .trackers
            .iter()
            .filter(|t| t.usable())
            .map(|t| t.retry_at.unwrap_or(self.due()))
            .min()?;
        Some(self.due().max(available))
    }

    /// Every tracker's state, in the order they are tried.
    pub fn trackers(&self) -> Vec<TrackerStatus> {
        let next = self.poll_timeout();
        let next_index = next.and_then(|at| {
            self.order
                .iter()
                .copied()
                .find(|&i| self.trackers[i].available_at(at))
        });
        self.order
            .iter()
            .map(|&i| {
                let t = &self.trackers[i];
                let state = match (&t.url, self.in_flight) {
                    (Err(_), _) => TrackerState::Disabled,
                    (_, Some((busy, _))) if busy == i => TrackerState::Announcing,
                    _ if t.last_error.is_some() => TrackerState::Failing,
                    _ if t.last_success.is_some() => TrackerState::Working,
                    _ => TrackerState::Idle,
                };
                // A tracker backing off is not contacted before the next announce is due.
                let next_announce = if Some(i) == next_index {
                    next
                } else {
                    t.retry_at.map(|at| at.max(self.due()))
                };
                TrackerStatus {
                    key: TrackerKey(i),
                    url: t.raw_url.clone(),
                    tier: t.tier,
                    state,
                    last_error: t.last_error.clone().or_else(|| t.url.clone().err()),
                    warning: t.warning.clone(),
                    consecutive_failures: t.consecutive_failures,
                    next_announce: next_announce.filter(|_| t.usable() && self.stopping.is_none()),
                    interval: t.interval,
                    min_interval: t.min_interval,
                    last_success: t.last_success,
                    last_announce: t.last_announce,
                    seeders: t.seeders,
                    leechers: t.leechers,
                    last_peer_count: t.last_peer_count,
                    downloaded: t.scrape.downloaded(),
                    scraping: self.scrape_in_flight == Some(i),
                    last_scrape: t.scrape.last_scrape(),
                    last_scrape_error: t.scrape.last_error().map(str::to_owned),
                    next_scrape: t.scrape.due().filter(|_| self.stopping.is_none()),
                }
            })
            .collect()
    }

    fn take_in_flight(&mut self, key: TrackerKey) -> Option<(usize, AnnounceEvent)> {
        match self.in_flight {
            Some((index, event)) if index == key.0 => {
                self.in_flight = None;
                Some((index, event))
            }
            _ => None,
        }
    }

    /// Moves the tracker at `index` to the front of its tier (BEP 12).
    fn promote(&mut self, index: usize) {
        let tier = self.trackers[index].tier;
        let Some(tier_start) = self
            .order
            .iter()
            .position(|&i| self.trackers[i].tier == tier)
        else {
            return;
        };
        if let Some(at) = self.order.iter().position(|&i| i == index) {
            self.order[tier_start..=at].rotate_right(1);
        }
    }

    /// Back-off after `failures` consecutive failures, with jitter in [0.75, 1.25).
    fn backoff(&mut self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        let plain = self
            .config
            .backoff_base
            .saturating_mul(1u32 << doublings)
            .min(self.config.backoff_max);
        plain.mul_f64(self.rng.gen_range(0.75..1.25))
    }
}

impl Tracker {
    fn new(raw: &str, tier: usize) -> Self {
        let url = TrackerUrl::parse(raw).map_err(|e| e.to_string());
        Tracker {
            scrape: scrape::ScrapeSlot::new(url.as_ref().ok()),
            url,
            raw_url: raw.to_owned(),
            tier,
            started_sent: false,
            stop_sent: false,
            retry_at: None,
            consecutive_failures: 0,
            last_error: None,
            warning: None,
            interval: None,
            min_interval: None,
            last_success: None,
            last_announce: None,
            seeders: None,
            leechers: None,
            last_peer_count: 0,
            tracker_id: None,
        }
    }
}

/// Seconds from a tracker, clamped to `lo..=hi`; `default` when missing.
fn clamp_secs(secs: Option<i64>, default: Duration, lo: Duration, hi: Duration) -> Duration {
    match secs {
        None => default.clamp(lo, hi.max(lo)),
        Some(n) => Duration::from_secs(u64::try_from(n).unwrap_or(0)).clamp(lo, hi.max(lo)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: &str = "http://a.test/announce";
    const T1: &str = "udp://b.test:6969";
    const T2: &str = "http://c.test/announce";

    #[allow(clippy::disallowed_methods)] // tests need one real instant to offset from
    fn t0() -> Instant {
        Instant::now()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn tiers(list: &[&[&str]]) -> Vec<Vec<String>> {
        list.iter()
            .map(|t| t.iter().map(|u| u.to_string()).collect())
            .collect()
    }

    fn reply(interval: Option<i64>, min_interval: Option<i64>) -> AnnounceReply {
        AnnounceReply {
            interval,
            min_interval,
            seeders: Some(3),
            leechers: Some(4),
            peers: vec!["127.0.0.1:1".parse().unwrap()],
            ..AnnounceReply::default()
        }
    }

    fn totals() -> TransferTotals {
        TransferTotals {
            uploaded: 1,
            downloaded: 2,
            left: 3,
        }
    }

    fn status(s: &AnnounceSchedule, url: &str) -> TrackerStatus {
        s.trackers().into_iter().find(|t| t.url == url).unwrap()
    }

    #[test]
    fn started_then_regular_announces_at_the_interval() {
        let now = t0();
        let mut s = AnnounceSchedule::new(now, &tiers(&[&[T0]]), AnnounceConfig::default(), 1);
        let first = s.poll_request(now, totals()).unwrap();
        assert_eq!(
            (first.url.as_str(), first.event, first.numwant),
            (T0, AnnounceEvent::Started, 50)
        );
        assert_eq!(first.totals, totals());
        assert_eq!(s.poll_request(now, totals()), None, "one request at a time");
        s.handle_reply(now, first.tracker, &reply(Some(1800), Some(900)));
        assert_eq!(s.poll_timeout(), Some(now + secs(1800)));
        assert_eq!(s.poll_request(now + secs(1799), totals()), None);
        let second = s.poll_request(now + secs(1800), totals()).unwrap();
        assert_eq!(second.event, AnnounceEvent::None);
        assert_eq!(second.key, first.key);
        let st = status(&s, T0);
        assert_eq!(
            (st.state, st.seeders, st.leechers, st.last_peer_count),
            (TrackerState::Announcing, Some(3), Some(4), 1)
        );
    }

    #[test]
    fn intervals_are_clamped() {
        // (interval, min interval) sent -> (interval, min interval) obeyed, in seconds.
        let table: [(Option<i64>, Option<i64>, u64, u64); 7] = [
            (Some(-5), Some(-5), 60, 30),
            (Some(0), None, 60, 30),
            (Some(10), Some(5), 60, 30),
            (Some(1_000_000_000), Some(1), 7200, 30),
            (None, None, 1800, 30),
            (Some(1800), Some(5000), 1800, 1800),
            (Some(i64::MIN), Some(i64::MAX), 60, 60),
        ];
        for (interval, min_interval, want_interval, want_min) in table {
            let now = t0();
            let mut s = AnnounceSchedule::new(now, &tiers(&[&[T0]]), AnnounceConfig::default(), 1);
            let req = s.poll_request(now, totals()).unwrap();
            s.handle_reply(now, req.tracker, &reply(interval, min_interval));
            let st = status(&s, T0);
            assert_eq!(st.interval, Some(secs(want_interval)), "{interval:?}");
            assert_eq!(st.min_interval, Some(secs(want_min)), "{min_interval:?}");
            assert_eq!(s.poll_timeout(), Some(now + secs(want_interval)));
        }
    }

    #[test]
    fn failure_moves_to_the_next_tracker_at_once_and_backs_off() {
        let now = t0();
        let mut s = AnnounceSchedule::new(now, &tiers(&[&[T0, T1]]), AnnounceConfig::default(), 7);
        let first = s.poll_request(now, totals()).unwrap();
        s.handle_failure(now, first.tracker, "connection refused");
        let failed = status(&s, first.url.as_str());
        assert_eq!(failed.state, TrackerState::Failing);
        assert_eq!(failed.last_error.as_deref(), Some("connection refused"));
        let retry = failed.next_announce.unwrap() - now;
        assert!(retry >= secs(11) && retry < secs(19), "{retry:?}");
        let second = s.poll_request(now, totals()).unwrap();
        assert_ne!(second.tracker, first.tracker);
        assert_eq!(second.event, AnnounceEvent::Started);
        s.handle_reply(now, second.tracker, &reply(Some(600), None));
        // The tracker that answered now comes first in its tier.
        assert_eq!(s.trackers()[0].url, second.url.as_str());
        assert_eq!(s.trackers()[0].state, TrackerState::Working);
        // The failed tracker is not contacted before the next announce is due.
        let failed = status(&s, first.url.as_str());
        assert_eq!(failed.next_announce, Some(now + secs(600)));
        let third = s.poll_request(now + secs(600), totals()).unwrap();
        assert_eq!(
            (third.tracker, third.event),
            (second.tracker, AnnounceEvent::None)
        );
    }

    #[test]
    fn back_off_doubles_with_jitter_and_is_capped() {
        let now = t0();
        let mut s = AnnounceSchedule::new(now, &tiers(&[&[T0]]), AnnounceConfig::default(), 3);
        let mut at = now;
        for failures in 1..=40u32 {
            let req = s
                .poll_request(at, totals())
                .expect("due after the back-off");
            s.handle_failure(at, req.tracker, "timeout");
            let wait = s.poll_timeout().unwrap() - at;
            let plain = (15.0 * 2f64.powi(failures as i32 - 1)).min(3600.0);
            let ratio = wait.as_secs_f64() / plain;
            assert!(
                (0.75..1.25).contains(&ratio),
                "failure {failures}: waited {wait:?}"
            );
            assert_eq!(status(&s, T0).consecutive_failures, failures);
            assert_eq!(s.poll_request(at + wait - secs(1), totals()), None);
            at += wait;
        }
        let req = s.poll_request(at, totals()).unwrap();
        s.handle_reply(at, req.tracker, &reply(Some(100), None));
        let st = status(&s, T0);
        assert_eq!(
            (st.consecutive_failures, st.last_error, st.state),
            (0, None, TrackerState::Working)
        );
    }

    #[test]
    fn later_tiers_are_used_only_when_earlier_ones_fail() {
        let now = t0();
        let mut s =
            AnnounceSchedule::new(now, &tiers(&[&[T0], &[T1]]), AnnounceConfig::default(), 5);
        let first = s.poll_request(now, totals()).unwrap();
        assert_eq!(first.url.as_str(), T0);
        s.handle_failure(now, first.tracker, "refused");
        let second = s.poll_request(now, totals()).unwrap();
        assert_eq!(second.url.as_str(), T1);
        s.handle_reply(now, second.tracker, &reply(Some(120), None));
        // At the next announce tier 0 has finished backing off and is asked first again.
        let third = s.poll_request(now + secs(120), totals()).unwrap();
        assert_eq!(
            (third.url.as_str(), third.event),
            (T0, AnnounceEvent::Started)
        );
    }

    #[test]
    fn when_every_tracker_fails_the_earliest_retry_is_next() {
        let now = t0();
        let mut s =
            AnnounceSchedule::new(now, &tiers(&[&[T0], &[T1]]), AnnounceConfig::default(), 9);
        for _ in 0..2 {
            let req = s.poll_request(now, totals()).unwrap();
            s.handle_failure(now, req.tracker, "down");
        }
        assert_eq!(s.poll_request(now, totals()), None);
        let earliest = s
            .trackers()
            .iter()
            .filter_map(|t| t.next_announce)
            .min()
            .unwrap();
        assert_eq!(s.poll_timeout(), Some(earliest));
        assert!(s.poll_request(earliest, totals()).is_some());
    }

    #[test]
    fn completed_is_sent_at_once_and_only_once() {
        let now = t0();
        let mut s = AnnounceSchedule::new(now, &tiers(&[&[T0]]), AnnounceConfig::default(), 1);
        let req = s.poll_request(now, totals()).unwrap();
        s.handle_reply(now, req.tracker, &reply(Some(1800), None));
        let later = now + secs(100);
        s.handle_completed(later);
        assert_eq!(s.poll_timeout(), Some(later));
        let done = s
            .poll_request(
                later,
                TransferTotals {
                    left: 0,
                    ..totals()
                },
            )
            .unwrap();
        assert_eq!(
            (done.event, done.totals.left),
            (AnnounceEvent::Completed, 0)
        );
        s.handle_reply(later, done.tracker, &reply(Some(1800), None));
        let next = s.poll_request(later + secs(1800), totals()).unwrap();
        assert_eq!(next.event, AnnounceEvent::None);
    }

    #[test]
    fn stop_tells_every_started_tracker_and_nobody_else() {
        let now = t0();
        let mut s = AnnounceSchedule::new(
            now,
            &tiers(&[&[T0], &[T1], &[T2]]),
            AnnounceConfig::default(),
            1,
        );
        let a = s.poll_request(now, totals()).unwrap();
        s.handle_reply(now, a.tracker, &reply(Some(60), None));
        // T0 fails at the next announce, T1 answers: both were told `started`, T2 never.
        let b = s.poll_request(now + secs(60), totals()).unwrap();
        s.handle_failure(now + secs(60), b.tracker, "gone");
        let c = s.poll_request(now + secs(60), totals()).unwrap();
        assert_eq!((c.url.as_str(), c.event), (T1, AnnounceEvent::Started));
        s.handle_reply(now + secs(60), c.tracker, &reply(Some(60), None));
        let stop_at = now + secs(70);
        s.handle_stop(stop_at);
        assert!(!s.is_stopped());
        let mut stopped = Vec::new();
        while let Some(req) = s.poll_request(stop_at, totals()) {
            assert_eq!((req.event, req.numwant), (AnnounceEvent::Stopped, 0));
            stopped.push(req.url.as_str().to_owned());
            // A failed `stopped` is not retried.
            s.handle_failure(stop_at, req.tracker, "down");
        }
        assert_eq!(stopped, vec![T0, T1]);
        assert!(s.is_stopped());
        assert_eq!(s.poll_timeout(), None);
        s.handle_start(stop_at);
        assert_eq!(
            s.poll_request(stop_at, totals()).unwrap().event,
            AnnounceEvent::Started
        );
    }

    #[test]
    fn unusable_urls_are_listed_but_never_contacted() {
        let now = t0();
        let list = tiers(&[&["wss://x.test/announce", "udp://noport.test"], &[T0, T0]]);
        let mut s = AnnounceSchedule::new(now, &list, AnnounceConfig::default(), 1);
        assert_eq!(s.trackers().len(), 3, "the duplicate is dropped");
        let wss = status(&s, "wss://x.test/announce");
        assert_eq!(wss.state, TrackerState::Disabled);
        assert!(wss.last_error.unwrap().contains("not supported"));
        assert_eq!(wss.next_announce, None);
        assert_eq!(s.poll_request(now, totals()).unwrap().url.as_str(), T0);
        let only_bad = AnnounceSchedule::new(
            now,
            &tiers(&[&["file:///etc/passwd"]]),
            AnnounceConfig::default(),
            1,
        );
        assert_eq!(only_bad.poll_timeout(), None);
    }

    #[test]
    fn stale_and_foreign_replies_are_ignored() {
        let now = t0();
        let mut s = AnnounceSchedule::new(now, &tiers(&[&[T0, T1]]), AnnounceConfig::default(), 1);
        let req = s.poll_request(now, totals()).unwrap();
        let other = TrackerKey(1 - req.tracker.0);
        s.handle_reply(now, other, &reply(Some(60), None));
        s.handle_failure(now, other, "nope");
        assert_eq!(
            s.trackers()
                .iter()
                .filter(|t| t.last_success.is_some() || t.last_error.is_some())
                .count(),
            0
        );
        assert_eq!(
            s.poll_request(now, totals()),
            None,
            "the first request is still out"
        );
    }

    #[test]
    fn announce_now_respects_min_interval() {
        let now = t0();
        let mut s = AnnounceSchedule::new(now, &tiers(&[&[T0]]), AnnounceConfig::default(), 1);
        let req = s.poll_request(now, totals()).unwrap();
        s.handle_reply(now, req.tracker, &reply(Some(1800), Some(300)));
        s.handle_announce_now(now + secs(10));
        assert_eq!(s.poll_timeout(), Some(now + secs(300)));
        assert_eq!(status(&s, T0).next_announce, Some(now + secs(300)));
        s.handle_announce_now(now + secs(400));
        assert_eq!(s.poll_timeout(), Some(now + secs(300)));
    }

    #[test]
    fn tracker_id_is_echoed() {
        let now = t0();
        let mut s = AnnounceSchedule::new(now, &tiers(&[&[T0]]), AnnounceConfig::default(), 1);
        let req = s.poll_request(now, totals()).unwrap();
        assert_eq!(req.tracker_id, None);
        let with_id = AnnounceReply {
            tracker_id: Some(b"id-1".to_vec()),
            ..reply(Some(60), None)
        };
        s.handle_reply(now, req.tracker, &with_id);
        let next = s.poll_request(now + secs(60), totals()).unwrap();
        assert_eq!(next.tracker_id.as_deref(), Some(&b"id-1"[..]));
    }

    #[test]
    fn tiers_are_shuffled_by_the_seed() {
        let now = t0();
        let list = tiers(&[&[T0, T1, T2, "http://d.test/a", "http://e.test/a"]]);
        let order = |seed| -> Vec<String> {
            AnnounceSchedule::new(now, &list, AnnounceConfig::default(), seed)
                .trackers()
                .into_iter()
                .map(|t| t.url)
                .collect()
        };
        assert_eq!(order(11), order(11), "same seed, same order");
        let distinct: std::collections::HashSet<Vec<String>> = (0..20).map(order).collect();
        assert!(distinct.len() > 5, "{} distinct orders", distinct.len());
    }

    #[test]
    fn short_of_peers_announces_at_the_min_interval() {
        // (connected peers, complete) -> seconds to the next announce after a reply of
        // interval 1800 s, min interval 300 s.
        let table: [(usize, bool, u64); 5] = [
            (0, false, 300),
            (4, false, 300),
            (5, false, 1800),
            (0, true, 1800),
            (50, false, 1800),
        ];
        for (connected, complete, want) in table {
            let now = t0();
            let mut s = AnnounceSchedule::new(now, &tiers(&[&[T0]]), AnnounceConfig::default(), 1);
            s.handle_swarm(connected, complete);
            let req = s.poll_request(now, totals()).unwrap();
            s.handle_reply(now, req.tracker, &reply(Some(1800), Some(300)));
            assert_eq!(
                s.poll_timeout(),
                Some(now + secs(want)),
                "{connected} peers, complete {complete}"
            );
            assert_eq!(status(&s, T0).next_announce, Some(now + secs(want)));
            assert_eq!(s.poll_request(now + secs(want) - secs(1), totals()), None);
            assert!(s.poll_request(now + secs(want), totals()).is_some());
        }
    }

    #[test]
    fn short_of_peers_without_min_interval_waits_sixty_seconds() {
        let now = t0();
        let mut s = AnnounceSchedule::new(now, &tiers(&[&[T0]]), AnnounceConfig::default(), 1);
        s.handle_swarm(0, false);
        let req = s.poll_request(now, totals()).unwrap();
        s.handle_reply(now, req.tracker, &reply(Some(1800), None));
        assert_eq!(s.poll_timeout(), Some(now + secs(60)));
        // A tracker whose interval is shorter than that is still obeyed.
        let req = s.poll_request(now + secs(60), totals()).unwrap();
        s.handle_reply(now + secs(60), req.tracker, &reply(Some(45), None));
        assert_eq!(s.poll_timeout(), Some(now + secs(120)));
    }

    #[test]
    fn falling_short_of_peers_mid_interval_moves_the_announce_up_and_back() {
        let now = t0();
        let mut s = AnnounceSchedule::new(now, &tiers(&[&[T0]]), AnnounceConfig::default(), 1);
        s.handle_swarm(20, false);
        let req = s.poll_request(now, totals()).unwrap();
        s.handle_reply(now, req.tracker, &reply(Some(1800), Some(120)));
        assert_eq!(s.poll_timeout(), Some(now + secs(1800)));
        // The peers leave 10 minutes later: the announce is due at once (min interval passed).
        s.handle_swarm(1, false);
        assert_eq!(s.poll_timeout(), Some(now + secs(120)));
        assert!(s.poll_request(now + secs(600), totals()).is_some());
        s.handle_reply(
            now + secs(600),
            TrackerKey(0),
            &reply(Some(1800), Some(120)),
        );
        assert_eq!(s.poll_timeout(), Some(now + secs(720)));
        // Peers found: back to the full interval.
        s.handle_swarm(8, false);
        assert_eq!(s.poll_timeout(), Some(now + secs(2400)));
    }

    #[test]
    fn last_announce_time_is_kept_for_success_and_failure() {
        let now = t0();
        let mut s =
            AnnounceSchedule::new(now, &tiers(&[&[T0], &[T1]]), AnnounceConfig::default(), 1);
        assert_eq!(status(&s, T0).last_announce, None);
        let req = s.poll_request(now, totals()).unwrap();
        s.handle_failure(now + secs(2), req.tracker, "refused");
        let req = s.poll_request(now + secs(2), totals()).unwrap();
        s.handle_reply(now + secs(3), req.tracker, &reply(Some(600), None));
        assert_eq!(status(&s, T0).last_announce, Some(now + secs(2)));
        assert_eq!(status(&s, T0).last_success, None);
        assert_eq!(status(&s, T1).last_announce, Some(now + secs(3)));
        assert_eq!(status(&s, T1).last_success, Some(now + secs(3)));
    }

    #[test]
    fn nothing_is_announced_while_the_data_is_checked() {
        let now = t0();
        let mut s = AnnounceSchedule::new(now, &tiers(&[&[T0]]), AnnounceConfig::default(), 1);
        s.handle_checking(true);
        assert_eq!(s.poll_request(now, totals()), None);
        assert_eq!(s.poll_timeout(), None);
        assert_eq!(status(&s, T0).next_announce, None);
        s.handle_checking(false);
        assert_eq!(s.poll_timeout(), Some(now));
        let first = s.poll_request(now + secs(5), totals()).unwrap();
        assert_eq!(first.event, AnnounceEvent::Started);
        s.handle_reply(now + secs(5), first.tracker, &reply(Some(600), None));
        // A re-check later: held again, but leaving still says `stopped`.
        s.handle_checking(true);
        assert_eq!(s.poll_request(now + secs(700), totals()), None);
        s.handle_stop(now + secs(700));
        let stop = s.poll_request(now + secs(700), totals()).unwrap();
        assert_eq!(stop.event, AnnounceEvent::Stopped);
    }
}
