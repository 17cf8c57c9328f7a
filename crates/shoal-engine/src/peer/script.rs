//! Test support: the far end of a connection, scripted by a test. It reads what an engine sent
//! (our handshake first, then framed messages) and encodes what the test wants to send.

use bytes::BytesMut;
use shoal_proto::wire::{Handshake, Message, MessageDecoder};

/// What a scripted peer received from the engine.
#[derive(Debug)]
pub(crate) struct Remote {
    buf: BytesMut,
    decoder: MessageDecoder,
    pub(crate) handshake: Option<Handshake>,
    pub(crate) received: Vec<Message>,
}

impl Remote {
    pub(crate) fn new() -> Self {
        Remote {
            buf: BytesMut::new(),
            decoder: MessageDecoder::new(1 << 20),
            handshake: None,
            received: Vec::new(),
        }
    }

    /// Reads bytes the engine sent to this peer.
    pub(crate) fn absorb(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        if self.handshake.is_none() {
            match Handshake::decode(&self.buf).expect("engine sends a valid handshake") {
                Some(h) => {
                    self.handshake = Some(h);
                    let _ = self.buf.split_to(Handshake::LEN);
                }
                None => return,
            }
        }
        while let Some(m) = self
            .decoder
            .decode(&mut self.buf)
            .expect("engine frames well")
        {
            self.received.push(m);
        }
    }

    /// The messages received since the last call.
    pub(crate) fn take(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.received)
    }
}

/// The wire bytes of `messages`.
pub(crate) fn encode(messages: &[Message]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for m in messages {
        m.encode(&mut out);
    }
    out.to_vec()
}
