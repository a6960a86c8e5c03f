//! Packs the broadcast history's bytes into shared chunks.
//!
//! A broadcast message lives as long as the history keeps it (up to 4,096 messages), while the
//! buffers allocated around it (requests, hand-backs, connections) come and go. Allocated
//! one by one, each message pinned a page of the allocator's arenas that would otherwise have
//! been given back after a wave of connections: in the soak (BENCHMARKS.md) RSS grew 6.7–10.4%
//! over a run with the default history and 2.2% with a history of 16 messages. Packed, the
//! history's bytes fill chunks one after another, and each chunk (mapped on its own, being at
//! glibc's fixed mmap threshold, `main.rs`) goes back to the system as a whole once its last
//! message has been evicted. The history is first in, first out, so at most the chunk being
//! filled is partly empty. Packed, the soak grew +2.8%, and +5.2% with every lagging reader cut
//! loose (300-second phases; +9.8% to +15.3% before).

use bytes::{Bytes, BytesMut};

/// Bytes of one chunk.
const CHUNK: usize = 64 * 1024;

/// A message larger than this gets an allocation of its own rather than ending a chunk early.
const LARGEST_PACKED: usize = CHUNK / 4;

#[derive(Default)]
pub struct Packer {
    chunk: BytesMut,
}

impl Packer {
    /// A copy of `bytes` in the current chunk (a new one when it is full).
    pub fn pack(&mut self, bytes: &[u8]) -> Bytes {
        if bytes.is_empty() {
            return Bytes::new();
        }
        if bytes.len() > LARGEST_PACKED {
            return Bytes::copy_from_slice(bytes);
        }
        if self.chunk.capacity() - self.chunk.len() < bytes.len() {
            self.chunk = BytesMut::with_capacity(CHUNK);
        }
        self.chunk.extend_from_slice(bytes);
        self.chunk.split().freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_messages_share_a_chunk_until_it_is_full() {
        let mut packer = Packer::default();
        let a = packer.pack(b"first");
        let b = packer.pack(b"second");
        assert_eq!((&a[..], &b[..]), (&b"first"[..], &b"second"[..]));
        assert_eq!(
            a.as_ptr().wrapping_add(a.len()),
            b.as_ptr(),
            "packed one after the other"
        );
        // 11 bytes and three fillers leave less than a fourth filler needs.
        let filler = vec![b'x'; LARGEST_PACKED];
        let fillers: Vec<Bytes> = (0..4).map(|_| packer.pack(&filler)).collect();
        let follows = |x: &Bytes, y: &Bytes| x.as_ptr().wrapping_add(x.len()) == y.as_ptr();
        assert!(follows(&b, &fillers[0]) && follows(&fillers[1], &fillers[2]));
        assert!(!follows(&fillers[2], &fillers[3]), "a new chunk");
        assert!(fillers.iter().all(|f| f[..] == filler[..]));
    }

    #[test]
    fn a_large_message_is_not_packed() {
        let mut packer = Packer::default();
        let small = packer.pack(b"small");
        let large = packer.pack(&vec![b'y'; LARGEST_PACKED + 1]);
        let after = packer.pack(b"after");
        assert_eq!(large.len(), LARGEST_PACKED + 1);
        assert_eq!(
            small.as_ptr().wrapping_add(small.len()),
            after.as_ptr(),
            "the chunk goes on after a large message"
        );
    }
}
