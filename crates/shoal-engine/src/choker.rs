//! The choker: which peers we upload to (tit-for-tat, BEP 3's "choking algorithm").
//!
//! Every [`ChokerConfig::round_interval`] (10 s) the torrent engine hands [`Choker::handle_timeout`]
//! a snapshot of its peers ([`PeerChokeStats`]) and gets back the full set of peers to keep
//! unchoked ([`ChokeDecision`]); every other peer is choked. Between rounds the choker keeps no
//! per-peer state but the current decision and, for seeding, when each peer last had a slot.
//!
//! Policy (documented defaults, as in mature clients):
//! - [`ChokerConfig::upload_slots`] = 4 unchoked peers: 3 regular slots and 1 optimistic slot,
//!   like the original BitTorrent client. Only peers interested in us get a slot.
//! - Leeching, regular slots go to the peers that give us the best download rate (tit-for-tat);
//!   a peer snubbing us never gets a regular slot, whatever its rate.
//! - Seeding, regular slots rotate round-robin (libtorrent's default seeding policy): a peer
//!   keeps its slot for [`ChokerConfig::seed_slot_time`] (30 s), then goes to the back of the
//!   queue; the peers that waited longest since their last slot come first. This spreads our
//!   upload over the swarm instead of feeding the fastest downloader forever.
//! - The optimistic slot goes to a random interested peer outside the regular slots and moves
//!   every [`ChokerConfig::optimistic_interval`] (30 s). Peers connected less than
//!   [`ChokerConfig::new_peer_age`] ago are three times as likely to get it, so newcomers (who
//!   have nothing to trade yet) get their first pieces. Snubbed peers may get it.
//!
//! Guarantees: the decision never lists more than `upload_slots` peers, only interested peers
//! from the snapshot, and is the same for the same inputs and RNG seed.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::PeerKey;

/// Tunables with documented defaults.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ChokerConfig {
    /// Peers unchoked at once, the optimistic one included. Default 4. With 1, only the
    /// optimistic slot exists; with 0, nobody is unchoked.
    pub upload_slots: usize,
    /// Time between rounds. Default 10 s.
    pub round_interval: Duration,
    /// Time between moves of the optimistic slot. Default 30 s.
    pub optimistic_interval: Duration,
    /// A peer connected less than this ago is "new": three times as likely to be picked for the
    /// optimistic slot. Default 60 s.
    pub new_peer_age: Duration,
    /// Seeding: how long a peer keeps a regular slot before the next peer in line gets it.
    /// Default 30 s.
    pub seed_slot_time: Duration,
}

impl Default for ChokerConfig {
    fn default() -> Self {
        ChokerConfig {
            upload_slots: 4,
            round_interval: Duration::from_secs(10),
            optimistic_interval: Duration::from_secs(30),
            new_peer_age: Duration::from_secs(60),
            seed_slot_time: Duration::from_secs(30),
        }
    }
}

/// What the choker needs to know about one peer at a round.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PeerChokeStats {
    pub peer: PeerKey,
    /// The peer is interested in our pieces.
    pub interested: bool,
    /// The peer is choking us (used only to break ties: peers that let us download come first).
    pub choking_us: bool,
    /// Bytes per second the peer sends us.
    pub down_rate: u64,
    /// Bytes per second we send the peer.
    pub up_rate: u64,
    /// The peer has not sent us a block for a long time although we have requests out.
    pub snubbed: bool,
    pub connected_at: Instant,
}

/// Whether we still download (tit-for-tat on download rate) or only seed (round-robin).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ChokeMode {
    Leeching,
    Seeding,
}

/// The peers to keep unchoked after a round; every other peer is choked.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ChokeDecision {
    /// Every unchoked peer, the optimistic one included, ascending.
    pub unchoked: Vec<PeerKey>,
    /// The peer holding the optimistic slot.
    pub optimistic: Option<PeerKey>,
}

impl ChokeDecision {
    pub fn is_unchoked(&self, peer: PeerKey) -> bool {
        self.unchoked.binary_search(&peer).is_ok()
    }
}

/// The choker of one torrent. Call [`Choker::handle_timeout`] whenever [`Choker::poll_timeout`]
/// is due, or [`Choker::run_round`] to decide at once (an unchoked peer left, a slot is free).
#[derive(Debug)]
pub struct Choker {
    config: ChokerConfig,
    next_round: Instant,
    decision: ChokeDecision,
    optimistic_until: Option<Instant>,
    /// Regular slot holders and when they got the slot.
    regular_since: HashMap<PeerKey, Instant>,
    /// Seeding round-robin: when each peer last held a regular slot.
    last_slot: HashMap<PeerKey, Instant>,
}

impl Choker {
    /// A choker whose first round is due at `now`.
    pub fn new(now: Instant, config: ChokerConfig) -> Self {
        Choker {
            config,
            next_round: now,
            decision: ChokeDecision::default(),
            optimistic_until: None,
            regular_since: HashMap::new(),
            last_slot: HashMap::new(),
        }
    }

    /// When the next round is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        Some(self.next_round)
    }

    /// The last decision.
    pub fn decision(&self) -> &ChokeDecision {
        &self.decision
    }

    /// Runs a round if one is due at `now`.
    pub fn handle_timeout<R: Rng + ?Sized>(
        &mut self,
        now: Instant,
        peers: &[PeerChokeStats],
        mode: ChokeMode,
        rng: &mut R,
    ) -> Option<ChokeDecision> {
        (now >= self.next_round).then(|| self.run_round(now, peers, mode, rng))
    }

    /// Runs a round now and schedules the next one a round interval later.
    pub fn run_round<R: Rng + ?Sized>(
        &mut self,
        now: Instant,
        peers: &[PeerChokeStats],
        mode: ChokeMode,
        rng: &mut R,
    ) -> ChokeDecision {
        let regular_slots = self.config.upload_slots.saturating_sub(1);
        let mut ranked: Vec<&PeerChokeStats> = peers.iter().filter(|p| p.interested).collect();
        match mode {
            ChokeMode::Leeching => {
                ranked.retain(|p| !p.snubbed);
                ranked.sort_by_key(|p| {
                    (
                        Reverse(p.down_rate),
                        p.choking_us,
                        Reverse(p.up_rate),
                        p.peer,
                    )
                });
            }
            ChokeMode::Seeding => ranked.sort_by_key(|p| self.seed_rank(now, p)),
        }
        let regular: Vec<PeerKey> = ranked.iter().take(regular_slots).map(|p| p.peer).collect();

        self.regular_since.retain(|peer, _| regular.contains(peer));
        for peer in &regular {
            self.regular_since.entry(*peer).or_insert(now);
            self.last_slot.insert(*peer, now);
        }
        self.last_slot
            .retain(|peer, _| peers.iter().any(|p| p.peer == *peer));

        let optimistic = if self.config.upload_slots == 0 {
            None
        } else {
            self.choose_optimistic(now, peers, &regular, rng)
        };
        let mut unchoked = regular;
        unchoked.extend(optimistic);
        unchoked.sort_unstable();
        self.decision = ChokeDecision {
            unchoked,
            optimistic,
        };
        self.next_round = now.checked_add(self.config.round_interval).unwrap_or(now);
        self.decision.clone()
    }

    /// Seeding order: current holders still inside their slot time (fastest first), then the
    /// peers that waited longest since their last slot (never first), oldest connection first.
    fn seed_rank(
        &self,
        now: Instant,
        p: &PeerChokeStats,
    ) -> (u8, Reverse<u64>, Option<Instant>, Instant, PeerKey) {
        let holding = self.regular_since.get(&p.peer).is_some_and(|since| {
            now.saturating_duration_since(*since) < self.config.seed_slot_time
        });
        if holding {
            (0, Reverse(p.up_rate), None, p.connected_at, p.peer)
        } else {
            (
                1,
                Reverse(0),
                self.last_slot.get(&p.peer).copied(),
                p.connected_at,
                p.peer,
            )
        }
    }

    /// Keeps the optimistic peer while its time lasts and it is still eligible; otherwise draws
    /// a new one among interested peers outside the regular slots, new peers weighted 3×.
    fn choose_optimistic<R: Rng + ?Sized>(
        &mut self,
        now: Instant,
        peers: &[PeerChokeStats],
        regular: &[PeerKey],
        rng: &mut R,
    ) -> Option<PeerKey> {
        let eligible = |p: &&PeerChokeStats| p.interested && !regular.contains(&p.peer);
        let current = self.decision.optimistic;
        let current_ok =
            current.is_some_and(|key| peers.iter().filter(eligible).any(|p| p.peer == key));
        let expired = self.optimistic_until.is_none_or(|until| now >= until);
        if current_ok && !expired {
            return current;
        }
        let mut pool: Vec<&PeerChokeStats> = peers.iter().filter(eligible).collect();
        if pool.len() > 1 {
            // Rotate: the current holder does not get the slot twice in a row when others wait.
            pool.retain(|p| Some(p.peer) != current);
        }
        let weight = |p: &PeerChokeStats| {
            if now.saturating_duration_since(p.connected_at) < self.config.new_peer_age {
                3u64
            } else {
                1
            }
        };
        let total: u64 = pool.iter().map(|p| weight(p)).sum();
        if total == 0 {
            self.optimistic_until = None;
            return None;
        }
        let mut ticket = rng.gen_range(0..total);
        let mut chosen = None;
        for p in &pool {
            let w = weight(p);
            if ticket < w {
                chosen = Some(p.peer);
                break;
            }
            ticket -= w;
        }
        self.optimistic_until = now.checked_add(self.config.optimistic_interval);
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::collections::BTreeSet;

    #[allow(clippy::disallowed_methods)] // tests need one real instant to offset from
    fn t0() -> Instant {
        Instant::now()
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// Ten interested peers connected long ago; peer k gives us k × 10 KB/s and gets k KB/s.
    fn ten_peers(start: Instant) -> Vec<PeerChokeStats> {
        (1..=10)
            .map(|k| PeerChokeStats {
                peer: PeerKey(k),
                interested: true,
                choking_us: false,
                down_rate: k * 10_000,
                up_rate: k * 1_000,
                snubbed: false,
                connected_at: start,
            })
            .collect()
    }

    fn keys(ks: &[u64]) -> Vec<PeerKey> {
        ks.iter().map(|k| PeerKey(*k)).collect()
    }

    fn regular(d: &ChokeDecision) -> Vec<PeerKey> {
        d.unchoked
            .iter()
            .copied()
            .filter(|p| Some(*p) != d.optimistic)
            .collect()
    }

    #[test]
    fn leeching_unchokes_the_three_best_uploaders_plus_one_optimistic() {
        let start = t0();
        let now = start + secs(600);
        let mut choker = Choker::new(now, ChokerConfig::default());
        let mut rng = StdRng::seed_from_u64(1);
        let peers = ten_peers(start);
        let d = choker
            .handle_timeout(now, &peers, ChokeMode::Leeching, &mut rng)
            .unwrap();
        assert_eq!(regular(&d), keys(&[8, 9, 10]));
        let optimistic = d.optimistic.unwrap();
        assert!(
            optimistic.0 <= 7,
            "optimistic slot goes outside the regular ones"
        );
        assert_eq!(d.unchoked.len(), 4);
        assert!(d.is_unchoked(optimistic));
        assert_eq!(choker.poll_timeout(), Some(now + secs(10)));
        assert!(choker
            .handle_timeout(now + secs(9), &peers, ChokeMode::Leeching, &mut rng)
            .is_none());
        assert!(choker
            .handle_timeout(now + secs(10), &peers, ChokeMode::Leeching, &mut rng)
            .is_some());
    }

    #[test]
    fn rates_change_the_regular_slots_each_round() {
        let start = t0();
        let mut choker = Choker::new(start, ChokerConfig::default());
        let mut rng = StdRng::seed_from_u64(2);
        let mut peers = ten_peers(start);
        choker.run_round(start + secs(100), &peers, ChokeMode::Leeching, &mut rng);
        peers[0].down_rate = 1_000_000; // peer 1 suddenly the fastest
        let d = choker.run_round(start + secs(110), &peers, ChokeMode::Leeching, &mut rng);
        assert_eq!(regular(&d), keys(&[1, 9, 10]));
    }

    #[test]
    fn snubbed_and_uninterested_peers_get_no_regular_slot() {
        let start = t0();
        let mut choker = Choker::new(start, ChokerConfig::default());
        let mut rng = StdRng::seed_from_u64(3);
        let mut peers = ten_peers(start);
        peers[9].snubbed = true; // peer 10, the fastest
        peers[8].interested = false; // peer 9
        let d = choker.run_round(start + secs(100), &peers, ChokeMode::Leeching, &mut rng);
        assert_eq!(regular(&d), keys(&[6, 7, 8]));
        assert_ne!(d.optimistic, Some(PeerKey(9)), "never an uninterested peer");
    }

    #[test]
    fn optimistic_slot_rotates_every_thirty_seconds() {
        let start = t0();
        let mut choker = Choker::new(start, ChokerConfig::default());
        let mut rng = StdRng::seed_from_u64(4);
        let peers = ten_peers(start);
        let mut holders = Vec::new();
        for round in 0..12 {
            let now = start + secs(100 + 10 * round);
            let d = choker
                .handle_timeout(now, &peers, ChokeMode::Leeching, &mut rng)
                .unwrap();
            holders.push(d.optimistic.unwrap());
        }
        for period in holders.chunks(3) {
            assert!(
                period.iter().all(|p| *p == period[0]),
                "kept for 30 s: {holders:?}"
            );
        }
        for pair in holders.chunks(3).collect::<Vec<_>>().windows(2) {
            assert_ne!(pair[0][0], pair[1][0], "moves after 30 s: {holders:?}");
        }
    }

    #[test]
    fn optimistic_slot_is_refilled_when_its_holder_leaves() {
        let start = t0();
        let mut choker = Choker::new(start, ChokerConfig::default());
        let mut rng = StdRng::seed_from_u64(5);
        let peers = ten_peers(start);
        let d = choker.run_round(start + secs(100), &peers, ChokeMode::Leeching, &mut rng);
        let gone = d.optimistic.unwrap();
        let rest: Vec<_> = peers.iter().copied().filter(|p| p.peer != gone).collect();
        let d = choker.run_round(start + secs(105), &rest, ChokeMode::Leeching, &mut rng);
        assert!(d.optimistic.is_some());
        assert_ne!(d.optimistic, Some(gone));
    }

    #[test]
    fn new_peers_are_three_times_as_likely_to_get_the_optimistic_slot() {
        let start = t0();
        let now = start + secs(600);
        let mut peers = ten_peers(start);
        peers[0].connected_at = now - secs(5); // peer 1 is new
        let mut new_wins = 0;
        for seed in 0..600 {
            let mut choker = Choker::new(now, ChokerConfig::default());
            let d = choker.run_round(
                now,
                &peers,
                ChokeMode::Leeching,
                &mut StdRng::seed_from_u64(seed),
            );
            if d.optimistic == Some(PeerKey(1)) {
                new_wins += 1;
            }
        }
        // Seven eligible peers, one weighted 3: it wins 3/9 of the draws (1/7 unweighted).
        assert!(
            (160..=240).contains(&new_wins),
            "new peer won {new_wins} of 600"
        );
    }

    #[test]
    fn seeding_rotates_slots_round_robin() {
        let start = t0();
        let mut choker = Choker::new(start, ChokerConfig::default());
        let mut rng = StdRng::seed_from_u64(6);
        let mut peers = ten_peers(start);
        for p in &mut peers {
            p.down_rate = 0;
        }
        let mut regular_by_round = Vec::new();
        let mut everyone = BTreeSet::new();
        for round in 0..12 {
            let now = start + secs(100 + 10 * round);
            let d = choker
                .handle_timeout(now, &peers, ChokeMode::Seeding, &mut rng)
                .unwrap();
            let r = regular(&d);
            assert_eq!(r.len(), 3);
            everyone.extend(r.iter().copied());
            regular_by_round.push(r);
        }
        // A slot lasts 30 s (three rounds), then the next peers in line get it.
        assert_eq!(regular_by_round[0], regular_by_round[2]);
        assert!(regular_by_round[3]
            .iter()
            .all(|p| !regular_by_round[0].contains(p)));
        assert_eq!(everyone.len(), 10, "everyone got a slot within two minutes");
    }

    #[test]
    fn seeding_ignores_download_rate_and_snubbing() {
        let start = t0();
        let mut choker = Choker::new(start, ChokerConfig::default());
        let mut rng = StdRng::seed_from_u64(7);
        let mut peers = ten_peers(start);
        for p in &mut peers {
            p.snubbed = true;
        }
        let leech = choker.run_round(start + secs(100), &peers, ChokeMode::Leeching, &mut rng);
        assert_eq!(
            regular(&leech),
            vec![],
            "leeching: snubbed peers get no regular slot"
        );
        let mut choker = Choker::new(start, ChokerConfig::default());
        let seed = choker.run_round(start + secs(100), &peers, ChokeMode::Seeding, &mut rng);
        assert_eq!(regular(&seed).len(), 3);
    }

    #[test]
    fn slot_counts_are_honoured() {
        let start = t0();
        let peers = ten_peers(start);
        let mut rng = StdRng::seed_from_u64(8);
        for slots in [0, 1, 2, 8, 20] {
            let config = ChokerConfig {
                upload_slots: slots,
                ..ChokerConfig::default()
            };
            let d =
                Choker::new(start, config).run_round(start, &peers, ChokeMode::Leeching, &mut rng);
            assert_eq!(d.unchoked.len(), slots.min(10), "{slots} slots");
        }
        let d = Choker::new(start, ChokerConfig::default()).run_round(
            start,
            &[],
            ChokeMode::Leeching,
            &mut rng,
        );
        assert_eq!(d, ChokeDecision::default());
    }

    #[test]
    fn same_seed_same_decisions() {
        let start = t0();
        let peers = ten_peers(start);
        let run = |seed| {
            let mut choker = Choker::new(start, ChokerConfig::default());
            let mut rng = StdRng::seed_from_u64(seed);
            (0..6)
                .map(|r| {
                    choker.run_round(start + secs(30 * r), &peers, ChokeMode::Leeching, &mut rng)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(9), run(9));
    }
}
