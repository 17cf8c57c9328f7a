//! The upload side of one peer: the requests it made that we have not read from disk yet, and
//! how many bytes we already hold for it.
//!
//! A peer may queue many requests (our BEP 10 `reqq`, [`crate::peer::PeerConfig::max_queued_requests`]);
//! a request costs a few bytes until we read its block. Reading every request at once would hold
//! up to `reqq` × 16 KiB per peer in memory whenever its socket drains slower than the disk
//! reads, and a peer that requests much and reads nothing would make us buffer all of it. So a
//! block is read only while the peer's *held* bytes — reads in flight plus bytes handed to the
//! runtime that its socket has not taken yet — stay under a watermark
//! ([`crate::peer::PeerConfig::upload_buffer_bytes`]); the runtime reports what the socket took
//! with [`super::Torrent::handle_peer_sent`], and each report lets the next blocks be read.
//!
//! Data flow: `request` → [`ServeQueue::push`] → [`ServeQueue::next_to_read`] (a disk read) →
//! [`ServeQueue::read_done`] → the `piece` message goes out in a `Transmit`, counted by
//! [`ServeQueue::transmitted`] → [`ServeQueue::sent`] when the socket took it. Requests the peer
//! cancelled meanwhile are skipped by the caller, which asks the connection.

use std::collections::VecDeque;

use shoal_proto::BlockRef;

/// One peer's requests waiting for a disk read, and its held bytes.
#[derive(Debug, Default)]
pub(super) struct ServeQueue {
    waiting: VecDeque<BlockRef>,
    /// Bytes of disk reads asked for that have not come back.
    reading: u64,
    /// Bytes handed to the runtime to send that it has not reported sent.
    unsent: u64,
}

impl ServeQueue {
    /// A request to serve once there is room under the watermark.
    pub(super) fn push(&mut self, block: BlockRef) {
        self.waiting.push_back(block);
    }

    /// The next waiting request to read, counted as reading, when the held bytes are under
    /// `watermark` (at least one block is always allowed, so a tiny watermark cannot stall).
    pub(super) fn next_to_read(&mut self, watermark: u64) -> Option<BlockRef> {
        if self.held() >= watermark.max(1) {
            return None;
        }
        let block = self.waiting.pop_front()?;
        self.reading += u64::from(block.len());
        Some(block)
    }

    /// A read of `block` came back (with data or an error).
    pub(super) fn read_done(&mut self, block: BlockRef) {
        self.reading = self.reading.saturating_sub(u64::from(block.len()));
    }

    /// `bytes` went to the runtime in a `Transmit` output.
    pub(super) fn transmitted(&mut self, bytes: usize) {
        self.unsent += bytes as u64;
    }

    /// The runtime's socket took `bytes` of what was transmitted.
    pub(super) fn sent(&mut self, bytes: u64) {
        self.unsent = self.unsent.saturating_sub(bytes);
    }

    /// Requests waiting for a read.
    #[cfg(test)]
    pub(super) fn waiting_len(&self) -> usize {
        self.waiting.len()
    }

    /// Bytes read or being read for the peer and not yet taken by its socket.
    pub(super) fn held(&self) -> u64 {
        self.reading + self.unsent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::Geometry;

    fn block(offset: u32) -> BlockRef {
        let geometry = Geometry::new(16 * 16384, 16 * 16384).unwrap();
        geometry
            .checked_block(0, offset, 16384)
            .expect("a block inside the piece")
    }

    #[test]
    fn reads_stop_at_the_watermark_and_resume_when_the_socket_takes_bytes() {
        let mut q = ServeQueue::default();
        for i in 0..8 {
            q.push(block(i * 16384));
        }
        let watermark = 3 * 16384;
        let first: Vec<_> = std::iter::from_fn(|| q.next_to_read(watermark)).collect();
        assert_eq!(first.len(), 3);
        assert_eq!(q.held(), 3 * 16384);
        q.read_done(first[0]);
        q.transmitted(16384 + 13);
        assert!(q.next_to_read(watermark).is_none(), "still held until sent");
        q.sent(16384 + 13);
        assert_eq!(q.next_to_read(watermark), Some(block(3 * 16384)));
        assert_eq!(q.waiting_len(), 4);
    }

    #[test]
    fn a_zero_watermark_still_serves_one_block_at_a_time() {
        let mut q = ServeQueue::default();
        q.push(block(0));
        q.push(block(16384));
        assert!(q.next_to_read(0).is_some());
        assert!(q.next_to_read(0).is_none());
    }

    #[test]
    fn over_reported_sends_do_not_wrap() {
        let mut q = ServeQueue::default();
        q.transmitted(10);
        q.sent(1_000);
        q.read_done(block(0));
        assert_eq!(q.held(), 0);
    }
}
