//! Upload and download rate limits: token buckets shared by every connection they cover.
//!
//! A [`Bucket`] holds a rate in bytes per second (0: unlimited) that can change at any time.
//! Each peer connection holds a [`PeerLimits`]: per direction, its torrent's bucket and the
//! session's global bucket. Before the connection's reader hands `n` bytes on (download) and
//! before its writer writes `n` bytes (upload), it calls [`Chain::acquire`]`(n)`, which is charged
//! to both buckets in turn, so a connection moves at most what its torrent and the session both
//! allow. Delaying the reader stops it reading the socket: TCP's flow control then slows the
//! sender down; delaying the writer lets the peer's requests wait.
//!
//! Guarantees:
//! - Over any interval of length `t`, a bucket lets through at most `burst + rate * t` bytes,
//!   plus the one chunk each waiter was granted when the rate was raised or removed. The burst
//!   is half a second of the rate, at least [`MIN_BURST`].
//! - Waiters are served in the order they asked (each call reserves its bytes at once and sleeps
//!   until the bucket has refilled up to its reservation): no waiter starves, and connections
//!   asking in turn share the rate evenly. There is no polling: a waiter sleeps on a timer until
//!   its own deadline, or until the rate changes (then it recomputes the deadline).
//! - Unlimited costs one atomic load per call; no lock is taken and nothing is awaited.
//! - A waiter dropped before it is served (its connection closed) gives its bytes back.
//!
//! The bytes counted are everything on the wire after the handshake (protocol messages
//! included), which is what the socket moves.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The smallest burst of a limited bucket: four 16 KiB blocks.
pub const MIN_BURST: u64 = 64 * 1024;
/// The smallest chunk one acquire asks for on a limited connection (one block).
const MIN_CHUNK: u64 = 16 * 1024;

/// Limits in bytes per second; `None` (or `Some(0)`) is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimits {
    pub download: Option<u64>,
    pub upload: Option<u64>,
}

/// One token bucket. Share it as `Arc<Bucket>`.
#[derive(Debug, Default)]
pub struct Bucket {
    /// Bytes per second; 0: unlimited. A hint for the lock-free fast path; `state.rate` rules.
    rate: AtomicU64,
    state: Mutex<State>,
    /// Woken when the rate changes, so sleepers recompute their deadline.
    changed: Notify,
}

/// Totals since the bucket was made: tokens credited (refill) and reserved (acquired). The
/// balance is `credited - reserved`, at most the burst; a waiter whose reservation ends at
/// `target` is served once `credited >= target`.
#[derive(Debug)]
struct State {
    rate: u64,
    credited: f64,
    reserved: f64,
    at: Instant,
}

impl Default for State {
    fn default() -> Self {
        State {
            rate: 0,
            credited: 0.0,
            reserved: 0.0,
            at: Instant::now(),
        }
    }
}

impl State {
    fn burst(&self) -> f64 {
        (self.rate / 2).max(MIN_BURST) as f64
    }

    /// Adds what the rate earned since `at`, keeping the balance at most the burst.
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        if self.rate == 0 {
            return;
        }
        let earned = self.credited + self.rate as f64 * elapsed;
        self.credited = earned.min(self.reserved + self.burst());
    }

    /// When the bucket will have refilled up to `target`; `None` when it already has.
    fn ready_at(&self, target: f64) -> Option<Instant> {
        // Half a byte of slack: float rounding must not cost a second sleep.
        let missing = target - self.credited - 0.5;
        if self.rate == 0 || missing <= 0.0 {
            return None;
        }
        Some(self.at + Duration::from_secs_f64(missing / self.rate as f64))
    }
}

impl Bucket {
    /// A bucket with `rate` bytes per second (`None` or 0: unlimited), starting full.
    pub fn new(rate: Option<u64>) -> Bucket {
        let bucket = Bucket::default();
        bucket.set_rate(rate);
        bucket
    }

    /// The rate in bytes per second; `None`: unlimited.
    pub fn rate(&self) -> Option<u64> {
        Some(self.rate.load(Ordering::Relaxed)).filter(|&r| r > 0)
    }

    /// Changes the rate. Waiters are woken to recompute their deadline; removing the limit
    /// serves them all at once. A bucket that was unlimited starts full.
    pub fn set_rate(&self, rate: Option<u64>) {
        let rate = rate.unwrap_or(0);
        {
            let mut state = self.lock();
            state.refill(Instant::now());
            let was_unlimited = state.rate == 0;
            state.rate = rate;
            if rate == 0 {
                state.credited = state.credited.max(state.reserved);
            } else if was_unlimited {
                state.credited = state.reserved + state.burst();
            } else {
                state.credited = state.credited.min(state.reserved + state.burst());
            }
            self.rate.store(rate, Ordering::Relaxed);
        }
        self.changed.notify_waiters();
    }

    /// How many bytes one acquire should cover: `max` when unlimited, else about a sixteenth of
    /// a second of the rate (at least one block), so a slow limit is met in small steps.
    pub fn chunk(&self, max: usize) -> usize {
        match self.rate.load(Ordering::Relaxed) {
            0 => max,
            rate => (rate / 16).max(MIN_CHUNK).min(max as u64) as usize,
        }
    }

    /// Returns once `n` bytes may pass. Immediately when unlimited or when the balance covers
    /// them; otherwise after the bytes reserved before these, and these, have been earned.
    pub async fn acquire(&self, n: usize) {
        if self.rate.load(Ordering::Relaxed) == 0 || n == 0 {
            return;
        }
        let target = {
            let mut state = self.lock();
            state.refill(Instant::now());
            if state.rate == 0 {
                return;
            }
            state.reserved += n as f64;
            if state.ready_at(state.reserved).is_none() {
                return;
            }
            state.reserved
        };
        let mut pending = Reservation {
            bucket: self,
            bytes: n as f64,
            served: false,
        };
        self.wait_for(target).await;
        pending.served = true;
    }

    /// Sleeps until the bucket's credit reaches `target`, waking early on a rate change.
    async fn wait_for(&self, target: f64) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let deadline = {
                let mut state = self.lock();
                state.refill(Instant::now());
                match state.ready_at(target) {
                    Some(at) => at,
                    None => return,
                }
            };
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {}
                _ = changed => {}
            }
        }
    }

    /// Gives back the bytes of a reservation that was abandoned before it was served.
    fn give_back(&self, bytes: f64) {
        let mut state = self.lock();
        state.refill(Instant::now());
        state.credited = (state.credited + bytes).min(state.reserved + state.burst());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Bytes reserved by a waiter; returned to the bucket if the waiter is dropped while waiting.
struct Reservation<'a> {
    bucket: &'a Bucket,
    bytes: f64,
    served: bool,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.served {
            self.bucket.give_back(self.bytes);
        }
    }
}

/// A download and an upload bucket: the session's global pair or one torrent's pair.
#[derive(Clone, Debug, Default)]
pub struct LimitPair {
    download: Arc<Bucket>,
    upload: Arc<Bucket>,
}

impl LimitPair {
    pub fn new(limits: RateLimits) -> LimitPair {
        LimitPair {
            download: Arc::new(Bucket::new(limits.download)),
            upload: Arc::new(Bucket::new(limits.upload)),
        }
    }

    /// Changes both limits at once; connections feel it from their next chunk.
    pub fn set(&self, limits: RateLimits) {
        self.download.set_rate(limits.download);
        self.upload.set_rate(limits.upload);
    }

    pub fn get(&self) -> RateLimits {
        RateLimits {
            download: self.download.rate(),
            upload: self.upload.rate(),
        }
    }
}

/// The buckets one direction of one connection is charged to: its torrent's, then the session's.
#[derive(Clone, Debug, Default)]
pub struct Chain {
    torrent: Arc<Bucket>,
    global: Arc<Bucket>,
}

impl Chain {
    /// The chunk size of the stricter bucket (`max` when neither limits).
    pub fn chunk(&self, max: usize) -> usize {
        self.torrent.chunk(max).min(self.global.chunk(max))
    }

    /// Returns once both buckets let `n` bytes pass.
    pub async fn acquire(&self, n: usize) {
        self.torrent.acquire(n).await;
        self.global.acquire(n).await;
    }
}

/// What one peer connection is charged to, per direction. `Default` is unlimited.
#[derive(Clone, Debug, Default)]
pub struct PeerLimits {
    pub download: Chain,
    pub upload: Chain,
}

impl PeerLimits {
    /// A connection of a torrent limited by `torrent`, in a session limited by `global`.
    pub fn new(torrent: &LimitPair, global: &LimitPair) -> PeerLimits {
        PeerLimits {
            download: Chain {
                torrent: Arc::clone(&torrent.download),
                global: Arc::clone(&global.download),
            },
            upload: Chain {
                torrent: Arc::clone(&torrent.upload),
                global: Arc::clone(&global.upload),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elapsed_since(start: Instant) -> Duration {
        Instant::now() - start
    }

    /// Acquires `total` bytes in `chunk`-byte steps and returns how long it took.
    async fn pump(bucket: &Bucket, total: usize, chunk: usize) -> Duration {
        let start = Instant::now();
        let mut left = total;
        while left > 0 {
            let n = chunk.min(left);
            bucket.acquire(n).await;
            left -= n;
        }
        elapsed_since(start)
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_never_waits() {
        let bucket = Bucket::new(None);
        assert_eq!(pump(&bucket, 1 << 30, 1 << 20).await, Duration::ZERO);
        let bucket = Bucket::new(Some(0));
        assert_eq!(bucket.rate(), None);
        assert_eq!(pump(&bucket, 1 << 30, 1 << 20).await, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn limited_rate_holds_after_the_burst() {
        let rate = 1 << 20;
        let bucket = Bucket::new(Some(rate));
        // The first half second of rate passes at once (the burst), the rest at the rate.
        let took = pump(&bucket, 8 << 20, 64 << 10).await;
        let ideal = Duration::from_secs_f64(7.5);
        assert!(took >= ideal - Duration::from_millis(5), "{took:?}");
        assert!(took <= ideal + Duration::from_millis(50), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_chunk_larger_than_the_burst_still_passes() {
        let bucket = Bucket::new(Some(100_000));
        let took = pump(&bucket, 1_000_000, 1_000_000).await;
        // 1 MB with the minimum burst (64 KiB) banked, at 100 KB/s: 9.34 s.
        assert!(took >= Duration::from_millis(9_340), "{took:?}");
        assert!(took <= Duration::from_millis(9_400), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_time_earns_at_most_the_burst() {
        let bucket = Bucket::new(Some(1 << 20));
        pump(&bucket, 4 << 20, 64 << 10).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        // After a minute idle only half a second of rate is banked: 2 MiB takes 1.5 s more.
        let took = pump(&bucket, 2 << 20, 64 << 10).await;
        assert!(took >= Duration::from_millis(1_495), "{took:?}");
        assert!(took <= Duration::from_millis(1_550), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_share_the_rate_evenly() {
        let bucket = Arc::new(Bucket::new(Some(1 << 20)));
        // Spend the burst first: whoever asks first gets it, which is not what this measures.
        bucket.acquire(512 << 10).await;
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let bucket = Arc::clone(&bucket);
            tasks.push(tokio::spawn(async move {
                pump(&bucket, 2 << 20, 32 << 10).await
            }));
        }
        let mut finished = Vec::new();
        for task in tasks {
            finished.push(task.await.expect("task"));
        }
        // 8 MiB in total at 1 MiB/s; served in turn, every connection finishes within a few
        // chunks of the others.
        let total = elapsed_since(start);
        assert!(total >= Duration::from_millis(7_990), "{total:?}");
        let first = finished.iter().min().copied().expect("four");
        let last = finished.iter().max().copied().expect("four");
        assert!(last - first <= Duration::from_millis(250), "{finished:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn raising_the_rate_wakes_a_sleeper_early() {
        let bucket = Arc::new(Bucket::new(Some(10_000)));
        bucket.acquire(MIN_BURST as usize).await;
        let waiter = {
            let bucket = Arc::clone(&bucket);
            tokio::spawn(async move { pump(&bucket, 100_000, 100_000).await })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        // At 10 KB/s the waiter would need 10 s; at 1 MB/s it is done well before 1.2 s.
        bucket.set_rate(Some(1_000_000));
        let took = waiter.await.expect("waiter");
        assert!(took <= Duration::from_millis(1_200), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn removing_the_limit_releases_every_waiter() {
        let bucket = Arc::new(Bucket::new(Some(1_000)));
        bucket.acquire(MIN_BURST as usize).await;
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let bucket = Arc::clone(&bucket);
                tokio::spawn(async move { pump(&bucket, 1 << 20, 1 << 20).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        bucket.set_rate(None);
        for waiter in waiters {
            assert!(waiter.await.expect("waiter") <= Duration::from_millis(100));
        }
        assert_eq!(pump(&bucket, 1 << 30, 1 << 20).await, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn limiting_an_unlimited_bucket_applies_from_the_next_chunk() {
        let bucket = Bucket::new(None);
        pump(&bucket, 1 << 30, 1 << 20).await;
        bucket.set_rate(Some(1 << 20));
        let took = pump(&bucket, 3 << 20, 64 << 10).await;
        assert!(took >= Duration::from_millis(2_495), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_wait_gives_its_bytes_back() {
        let bucket = Arc::new(Bucket::new(Some(100_000)));
        bucket.acquire(MIN_BURST as usize).await;
        let abandoned = {
            let bucket = Arc::clone(&bucket);
            tokio::spawn(async move { bucket.acquire(1_000_000).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        abandoned.abort();
        assert!(abandoned.await.is_err());
        // Without the give-back this would wait behind the abandoned megabyte (10 s).
        let took = pump(&bucket, 50_000, 50_000).await;
        assert!(took <= Duration::from_millis(600), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_chain_moves_at_the_stricter_of_its_buckets() {
        let global = LimitPair::new(RateLimits {
            download: Some(2 << 20),
            upload: None,
        });
        let torrent = LimitPair::new(RateLimits {
            download: Some(1 << 20),
            upload: None,
        });
        let limits = PeerLimits::new(&torrent, &global);
        assert_eq!(limits.download.chunk(1 << 20), 64 << 10);
        assert_eq!(limits.upload.chunk(1 << 20), 1 << 20);
        let start = Instant::now();
        for _ in 0..64 {
            limits.download.acquire(64 << 10).await;
        }
        // 4 MiB through a 1 MiB/s torrent limit (0.5 MiB burst) under a 2 MiB/s global one.
        let took = elapsed_since(start);
        assert!(took >= Duration::from_millis(3_495), "{took:?}");
        assert!(took <= Duration::from_millis(3_600), "{took:?}");
        let start = Instant::now();
        for _ in 0..64 {
            limits.upload.acquire(1 << 20).await;
        }
        assert_eq!(elapsed_since(start), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn two_torrents_share_the_global_limit() {
        let global = LimitPair::new(RateLimits {
            download: None,
            upload: Some(1 << 20),
        });
        let a = PeerLimits::new(&LimitPair::default(), &global);
        let b = PeerLimits::new(&LimitPair::default(), &global);
        let start = Instant::now();
        let run = |limits: PeerLimits| async move {
            for _ in 0..32 {
                limits.upload.acquire(64 << 10).await;
            }
        };
        tokio::join!(run(a), run(b));
        // 4 MiB in all at 1 MiB/s after the burst.
        let took = elapsed_since(start);
        assert!(took >= Duration::from_millis(3_495), "{took:?}");
        assert_eq!(global.get().upload, Some(1 << 20));
        assert_eq!(global.get().download, None);
    }
}
