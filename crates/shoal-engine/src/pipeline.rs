//! Request pipelining policy for one peer, and the sliding-window rate estimator used for every
//! up and down rate in the engine.
//!
//! [`RequestPipeline`] answers three questions for the torrent engine: how many requests to keep
//! in flight to this peer ([`RequestPipeline::room`]), which requests to give up on
//! ([`RequestPipeline::handle_timeout`]), and whether the peer is snubbing us. Data flows like
//! this: the engine asks the picker for `room(now)` blocks, sends them and reports each with
//! `on_request_sent`; it reports arrivals (`on_block_received`), rejects and cancels
//! (`on_request_dropped`), and calls `handle_timeout` when `poll_timeout` is due; every block
//! these return goes back to the picker with `Picker::on_request_dropped`.
//!
//! Policy: the queue depth is the peer's download rate times [`PipelineConfig::target_latency`]
//! in 16 KiB blocks, clamped to `min_depth..=max_depth` and to the peer's BEP 10 `reqq`. A request
//! times out after four smoothed request-to-block times, never less than
//! [`PipelineConfig::min_request_timeout`], so a slow but alive peer keeps its requests. A peer
//! we have requests out to that sends no block for [`PipelineConfig::snub_after`] is snubbed:
//! every request comes back, its depth drops to 1 until a block arrives, and the choker stops
//! unchoking it by rate. Nothing here reads the clock: every method takes `now`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use shoal_proto::{BlockRef, BLOCK_SIZE};

/// Bytes per second over a sliding window of whole buckets, driven by `now`.
///
/// The window is cut into [`RateEstimator::BUCKETS`] buckets; the rate is the bytes in the
/// buckets still inside the window divided by the time they span (at least one bucket, so the
/// first block does not read as an absurd rate).
#[derive(Clone, Debug)]
pub struct RateEstimator {
    started: Instant,
    bucket_width: Duration,
    /// (bucket number since `started`, bytes), oldest first, at most `BUCKETS` of them.
    buckets: VecDeque<(u64, u64)>,
    total: u64,
}

impl RateEstimator {
    /// Buckets per window.
    pub const BUCKETS: u32 = 20;

    /// An estimator that starts counting at `now` over `window` (20 s is the classic choker
    /// window; a zero window is taken as 1 s).
    pub fn new(now: Instant, window: Duration) -> Self {
        let window = if window.is_zero() {
            Duration::from_secs(1)
        } else {
            window
        };
        RateEstimator {
            started: now,
            bucket_width: window / Self::BUCKETS,
            buckets: VecDeque::new(),
            total: 0,
        }
    }

    fn bucket_at(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.started).as_nanos();
        (elapsed / self.bucket_width.as_nanos().max(1)) as u64
    }

    /// Counts `bytes` transferred at `now`.
    pub fn record(&mut self, now: Instant, bytes: u64) {
        let bucket = self.bucket_at(now);
        self.total = self.total.saturating_add(bytes);
        match self.buckets.back_mut() {
            Some((last, sum)) if *last >= bucket => *sum = sum.saturating_add(bytes),
            _ => self.buckets.push_back((bucket, bytes)),
        }
        let oldest_kept = bucket.saturating_sub(u64::from(Self::BUCKETS) - 1);
        while self.buckets.front().is_some_and(|(b, _)| *b < oldest_kept) {
            self.buckets.pop_front();
        }
    }

    /// Bytes per second over the window ending at `now`.
    pub fn rate(&self, now: Instant) -> u64 {
        let bucket = self.bucket_at(now);
        let oldest_kept = bucket.saturating_sub(u64::from(Self::BUCKETS) - 1);
        let bytes: u64 = self
            .buckets
            .iter()
            .filter(|(b, _)| *b >= oldest_kept)
            .map(|(_, n)| n)
            .sum();
        if bytes == 0 {
            return 0;
        }
        let offset = u32::try_from(oldest_kept)
            .ok()
            .and_then(|n| self.bucket_width.checked_mul(n));
        let window_start = offset
            .and_then(|d| self.started.checked_add(d))
            .unwrap_or(now);
        let span = now
            .saturating_duration_since(window_start)
            .max(self.bucket_width);
        (bytes as f64 / span.as_secs_f64()) as u64
    }

    /// Every byte ever recorded.
    pub fn total(&self) -> u64 {
        self.total
    }
}

/// Tunables with documented defaults.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PipelineConfig {
    /// How much transfer time the queue should hold: long enough to cover a round trip and
    /// keep the peer's upload busy. Default 2 s.
    pub target_latency: Duration,
    /// Fewest requests kept in flight to a peer that is not snubbed. Default 2.
    pub min_depth: usize,
    /// Most requests kept in flight to any peer (before its `reqq`). Default 250.
    pub max_depth: usize,
    /// Shortest time a request may stay unanswered before it is given back. Default 20 s.
    pub min_request_timeout: Duration,
    /// Longest: even a peer with a huge round trip gives a block back after this. Default 120 s.
    pub max_request_timeout: Duration,
    /// No block for this long while requests are out: the peer is snubbing us. Default 60 s.
    pub snub_after: Duration,
    /// Window of the download rate estimator. Default 20 s.
    pub rate_window: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            target_latency: Duration::from_secs(2),
            min_depth: 2,
            max_depth: 250,
            min_request_timeout: Duration::from_secs(20),
            max_request_timeout: Duration::from_secs(120),
            snub_after: Duration::from_secs(60),
            rate_window: Duration::from_secs(20),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Outstanding {
    block: BlockRef,
    sent_at: Instant,
}

/// The request queue policy of one peer connection. See the module docs.
#[derive(Clone, Debug)]
pub struct RequestPipeline {
    config: PipelineConfig,
    down: RateEstimator,
    /// The peer's BEP 10 `reqq`: most requests it will queue.
    peer_reqq: Option<usize>,
    /// In the order sent.
    outstanding: Vec<Outstanding>,
    /// Smoothed time from sending a request to its block arriving.
    smoothed_rtt: Option<Duration>,
    /// The snub clock: since when we have been waiting for a block. Started by a request, reset
    /// by every block, stopped when the peer owes us nothing (all requests answered, rejected or
    /// dropped by us); requests that time out do not stop it, so re-requesting from a silent
    /// peer cannot postpone its snubbing forever.
    waiting_since: Option<Instant>,
    snubbed: bool,
}

impl RequestPipeline {
    pub fn new(now: Instant, config: PipelineConfig) -> Self {
        RequestPipeline {
            config,
            down: RateEstimator::new(now, config.rate_window),
            peer_reqq: None,
            outstanding: Vec::new(),
            smoothed_rtt: None,
            waiting_since: None,
            snubbed: false,
        }
    }

    /// The peer's `reqq` from its extension handshake (0 is taken as 1).
    pub fn set_peer_reqq(&mut self, reqq: u32) {
        self.peer_reqq = Some((reqq as usize).max(1));
    }

    /// How many requests to keep in flight now.
    pub fn depth(&self, now: Instant) -> usize {
        if self.snubbed {
            return 1;
        }
        let bytes_in_latency =
            self.down.rate(now) as f64 * self.config.target_latency.as_secs_f64();
        let blocks = (bytes_in_latency / f64::from(BLOCK_SIZE)).ceil() as usize;
        let depth = blocks.clamp(
            self.config.min_depth,
            self.config.max_depth.max(self.config.min_depth),
        );
        depth.min(self.peer_reqq.unwrap_or(usize::MAX))
    }

    /// How many more requests to send now.
    pub fn room(&self, now: Instant) -> usize {
        self.depth(now).saturating_sub(self.outstanding.len())
    }

    /// Requests in flight, oldest first.
    pub fn outstanding(&self) -> impl Iterator<Item = BlockRef> + '_ {
        self.outstanding.iter().map(|o| o.block)
    }

    pub fn outstanding_len(&self) -> usize {
        self.outstanding.len()
    }

    pub fn is_snubbed(&self) -> bool {
        self.snubbed
    }

    /// Download rate from this peer, bytes per second.
    pub fn down_rate(&self, now: Instant) -> u64 {
        self.down.rate(now)
    }

    /// Every payload byte this peer sent us.
    pub fn downloaded(&self) -> u64 {
        self.down.total()
    }

    /// How long a request may stay unanswered: four smoothed round trips, clamped.
    pub fn request_timeout(&self) -> Duration {
        let from_rtt = self.smoothed_rtt.map_or(Duration::ZERO, |rtt| rtt * 4);
        from_rtt.clamp(
            self.config.min_request_timeout,
            self.config
                .max_request_timeout
                .max(self.config.min_request_timeout),
        )
    }

    /// A request went out.
    pub fn on_request_sent(&mut self, block: BlockRef, now: Instant) {
        if self.waiting_since.is_none() {
            self.waiting_since = Some(now);
        }
        self.outstanding.push(Outstanding {
            block,
            sent_at: now,
        });
    }

    /// A block arrived (requested or not: its bytes count towards the rate either way). Returns
    /// whether it was in flight; a block arriving clears snubbing.
    pub fn on_block_received(&mut self, block: BlockRef, now: Instant) -> bool {
        self.down.record(now, u64::from(block.len()));
        self.snubbed = false;
        let found = self.outstanding.iter().position(|o| o.block == block);
        if let Some(at) = found {
            let sample = now.saturating_duration_since(self.outstanding.remove(at).sent_at);
            self.smoothed_rtt = Some(match self.smoothed_rtt {
                Some(rtt) => (rtt * 7 + sample) / 8,
                None => sample,
            });
        }
        self.waiting_since = (!self.outstanding.is_empty()).then_some(now);
        found.is_some()
    }

    /// A request ended without a block (we cancelled it, or the peer rejected it). Returns
    /// whether it was in flight.
    pub fn on_request_dropped(&mut self, block: BlockRef) -> bool {
        let Some(at) = self.outstanding.iter().position(|o| o.block == block) else {
            return false;
        };
        self.outstanding.remove(at);
        if self.outstanding.is_empty() {
            self.waiting_since = None;
        }
        true
    }

    /// Drops every request (choked without the fast extension, or disconnected) and returns them.
    pub fn take_all(&mut self) -> Vec<BlockRef> {
        self.waiting_since = None;
        self.outstanding.drain(..).map(|o| o.block).collect()
    }

    /// Gives up on what is overdue at `now`: everything when the peer just became snubbed (no
    /// block for `snub_after` since we started waiting), otherwise the requests older than
    /// [`RequestPipeline::request_timeout`]. The caller returns
    /// them to the picker and may send `cancel` for them.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<BlockRef> {
        if let Some(since) = self.waiting_since {
            if now.saturating_duration_since(since) >= self.config.snub_after {
                self.snubbed = true;
                return self.take_all();
            }
        }
        let timeout = self.request_timeout();
        let mut expired = Vec::new();
        self.outstanding.retain(|o| {
            let overdue = now.saturating_duration_since(o.sent_at) >= timeout;
            if overdue {
                expired.push(o.block);
            }
            !overdue
        });
        expired
    }

    /// The next instant `handle_timeout` has something to do, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let snub = self
            .waiting_since
            .and_then(|since| since.checked_add(self.config.snub_after));
        let timeout = self.request_timeout();
        let oldest = self
            .outstanding
            .iter()
            .filter_map(|o| o.sent_at.checked_add(timeout))
            .min();
        match (snub, oldest) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::Geometry;

    #[allow(clippy::disallowed_methods)] // tests need one real instant to offset from
    fn t0() -> Instant {
        Instant::now()
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn blocks(n: u32) -> Vec<BlockRef> {
        let g = Geometry::new(u64::from(n) * 16384, 16384).unwrap();
        g.pieces().map(|p| g.block(p, 0).unwrap()).collect()
    }

    #[test]
    fn rate_over_a_sliding_window() {
        let start = t0();
        let mut rate = RateEstimator::new(start, secs(20.0));
        assert_eq!(rate.rate(start), 0);
        rate.record(start, 16384);
        assert_eq!(
            rate.rate(start),
            16384,
            "first block: spread over one bucket, not zero time"
        );
        // 16 KiB every 100 ms for 30 s: 160 KiB/s.
        for i in 1..300 {
            rate.record(start + secs(f64::from(i) * 0.1), 16384);
        }
        let at = start + secs(30.0);
        let r = rate.rate(at);
        assert!((150_000..=175_000).contains(&r), "rate {r}");
        assert_eq!(rate.total(), 300 * 16384);
        // Idle: the rate decays and reaches zero once the window has passed.
        assert!(rate.rate(start + secs(40.0)) < r / 2 + 10_000);
        assert_eq!(rate.rate(start + secs(51.0)), 0);
    }

    #[test]
    fn depth_follows_rate_and_reqq() {
        let start = t0();
        let mut pipe = RequestPipeline::new(start, PipelineConfig::default());
        assert_eq!(pipe.depth(start), 2, "no data yet: minimum depth");
        // 1 MiB/s for 10 s: 2 s of it is 128 blocks.
        let bs = blocks(1);
        for i in 0..640 {
            pipe.on_block_received(bs[0], start + secs(f64::from(i) / 64.0));
        }
        let at = start + secs(10.0);
        let depth = pipe.depth(at);
        assert!((120..=136).contains(&depth), "depth {depth}");
        pipe.set_peer_reqq(50);
        assert_eq!(pipe.depth(at), 50, "the peer's reqq caps the queue");
        pipe.set_peer_reqq(0);
        assert_eq!(pipe.depth(at), 1);
        let mut fast = RequestPipeline::new(start, PipelineConfig::default());
        for i in 0..6400 {
            fast.on_block_received(bs[0], start + secs(f64::from(i) / 640.0));
        }
        assert_eq!(fast.depth(at), 250, "10 MiB/s is capped at 250");
        assert_eq!(fast.room(at), 250);
    }

    #[test]
    fn requests_time_out_after_twenty_seconds_by_default() {
        let start = t0();
        let mut pipe = RequestPipeline::new(start, PipelineConfig::default());
        let bs = blocks(3);
        pipe.on_request_sent(bs[0], start);
        pipe.on_request_sent(bs[1], start + secs(5.0));
        assert_eq!(pipe.room(start), 0);
        assert_eq!(pipe.poll_timeout(), Some(start + secs(20.0)));
        assert!(pipe.handle_timeout(start + secs(19.9)).is_empty());
        assert_eq!(pipe.handle_timeout(start + secs(20.0)), vec![bs[0]]);
        assert_eq!(pipe.outstanding().collect::<Vec<_>>(), vec![bs[1]]);
        assert_eq!(pipe.handle_timeout(start + secs(25.0)), vec![bs[1]]);
        assert!(!pipe.is_snubbed());
    }

    #[test]
    fn slow_but_alive_peer_keeps_its_requests() {
        let start = t0();
        let mut pipe = RequestPipeline::new(start, PipelineConfig::default());
        let bs = blocks(10);
        // Each block takes 15 s to come: the timeout grows to four times that.
        let mut now = start;
        for b in &bs[..5] {
            pipe.on_request_sent(*b, now);
            now += secs(15.0);
            assert!(pipe.handle_timeout(now).is_empty());
            assert!(pipe.on_block_received(*b, now));
        }
        assert_eq!(pipe.request_timeout(), secs(60.0));
        pipe.on_request_sent(bs[5], now);
        assert!(
            pipe.handle_timeout(now + secs(45.0)).is_empty(),
            "45 s is slow, not dead"
        );
        assert!(!pipe.is_snubbed());
    }

    #[test]
    fn silent_peer_is_snubbed_after_sixty_seconds() {
        let start = t0();
        let mut pipe = RequestPipeline::new(start, PipelineConfig::default());
        let bs = blocks(4);
        pipe.on_request_sent(bs[0], start);
        pipe.on_request_sent(bs[1], start);
        // The requests time out at 20 s; sending new ones does not restart the snub clock.
        assert_eq!(pipe.handle_timeout(start + secs(20.0)).len(), 2);
        pipe.on_request_sent(bs[2], start + secs(21.0));
        pipe.on_request_sent(bs[3], start + secs(21.0));
        assert_eq!(pipe.poll_timeout(), Some(start + secs(41.0)));
        assert!(pipe.handle_timeout(start + secs(40.0)).is_empty());
        assert_eq!(pipe.handle_timeout(start + secs(41.0)).len(), 2);
        assert_eq!(pipe.poll_timeout(), Some(start + secs(60.0)));
        assert!(
            pipe.handle_timeout(start + secs(60.0)).is_empty(),
            "nothing left to return"
        );
        assert!(pipe.is_snubbed());
        assert_eq!(pipe.depth(start + secs(60.0)), 1);
        // A block ends the snub.
        pipe.on_request_sent(bs[0], start + secs(61.0));
        assert!(pipe.on_block_received(bs[0], start + secs(62.0)));
        assert!(!pipe.is_snubbed());
        assert_eq!(pipe.depth(start + secs(62.0)), 2);
        assert_eq!(pipe.poll_timeout(), None);
    }

    #[test]
    fn snubbing_returns_every_request_at_once() {
        let start = t0();
        let config = PipelineConfig {
            min_request_timeout: secs(90.0),
            ..PipelineConfig::default()
        };
        let mut pipe = RequestPipeline::new(start, config);
        let bs = blocks(3);
        for b in &bs {
            pipe.on_request_sent(*b, start);
        }
        assert_eq!(pipe.handle_timeout(start + secs(60.0)), bs);
        assert!(pipe.is_snubbed());
        assert_eq!(pipe.outstanding_len(), 0);
    }

    #[test]
    fn choke_and_rejects_stop_the_snub_clock() {
        let start = t0();
        let mut pipe = RequestPipeline::new(start, PipelineConfig::default());
        let bs = blocks(2);
        pipe.on_request_sent(bs[0], start);
        pipe.on_request_sent(bs[1], start);
        assert!(pipe.on_request_dropped(bs[0]));
        assert!(!pipe.on_request_dropped(bs[0]));
        assert_eq!(pipe.take_all(), vec![bs[1]]);
        assert_eq!(pipe.poll_timeout(), None);
        assert!(pipe.handle_timeout(start + secs(300.0)).is_empty());
        assert!(!pipe.is_snubbed());
    }
}
