//! Choker rounds: a snapshot of every peer goes to [`crate::choker::Choker`], and its decision
//! becomes `choke` / `unchoke` commands.

use std::time::Instant;

use super::Torrent;
use crate::choker::{ChokeDecision, ChokeMode, PeerChokeStats};
use crate::peer::PeerCommand;

impl Torrent {
    fn choke_snapshot(&self, now: Instant) -> Vec<PeerChokeStats> {
        self.peers
            .iter()
            .filter(|(_, p)| p.conn.is_established())
            .map(|(&key, p)| PeerChokeStats {
                peer: key,
                interested: p.conn.peer_interested(),
                choking_us: p.conn.peer_choking(),
                down_rate: p.pipeline.down_rate(now),
                up_rate: p.upload.rate(now),
                snubbed: p.pipeline.is_snubbed(),
                connected_at: p.connected_at,
            })
            .collect()
    }

    fn choke_mode(&self) -> ChokeMode {
        if self.picker.is_complete() {
            ChokeMode::Seeding
        } else {
            ChokeMode::Leeching
        }
    }

    pub(super) fn choke_round_if_due(&mut self, now: Instant) {
        let snapshot = self.choke_snapshot(now);
        let mode = self.choke_mode();
        if let Some(decision) = self
            .choker
            .handle_timeout(now, &snapshot, mode, &mut self.rng)
        {
            self.apply_choke_decision(now, &decision);
        }
    }

    /// Runs a round now (a slot is free and a peer wants one).
    pub(super) fn choke_round(&mut self, now: Instant) {
        let snapshot = self.choke_snapshot(now);
        let mode = self.choke_mode();
        let decision = self.choker.run_round(now, &snapshot, mode, &mut self.rng);
        self.apply_choke_decision(now, &decision);
    }

    fn apply_choke_decision(&mut self, now: Instant, decision: &ChokeDecision) {
        for (&key, peer) in &mut self.peers {
            if !peer.conn.is_established() {
                continue;
            }
            let command = if self.paused || !decision.is_unchoked(key) {
                PeerCommand::Choke
            } else {
                PeerCommand::Unchoke
            };
            peer.conn.handle_command(now, command);
        }
    }
}
