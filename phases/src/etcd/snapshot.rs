//! etcd's own snapshot integrity check.
//!
//! The maintenance `Snapshot` RPC streams the bolt database followed by 32 bytes: the SHA-256 of everything before
//! them. `etcdutl snapshot restore` checks those bytes; bosun checks them while the stream passes, so a snapshot
//! damaged on the way is refused before it is written anywhere for good. [`StreamHasher`] keeps only a 32-byte tail
//! in memory, whatever the snapshot's size.

use ring::digest;

/// Length of the hash etcd appends to a snapshot.
pub const ETCD_HASH_LEN: usize = 32;

/// What a finished snapshot stream proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDigest {
    /// Bytes in the whole stream, etcd's trailing hash included.
    pub total_bytes: u64,
    /// SHA-256 of the whole stream (what `sha256sum` of the snapshot file prints), lowercase hex.
    pub sha256: String,
    /// Whether the last 32 bytes are the SHA-256 of the bytes before them.
    pub etcd_hash_ok: bool,
}

impl StreamDigest {
    /// Size of the bolt database inside the snapshot (without etcd's trailing hash).
    pub fn database_bytes(&self) -> u64 {
        self.total_bytes.saturating_sub(ETCD_HASH_LEN as u64)
    }
}

/// Hashes a snapshot as it streams: the whole stream, and the stream without its last 32 bytes.
///
/// One SHA-256 pass serves both: the body is hashed as it passes (the last 32 bytes held back), and the whole
/// stream's hash is the body's state, copied at the end, fed the held-back tail.
pub struct StreamHasher {
    body: digest::Context,
    tail: Vec<u8>,
    total: u64,
}

impl Default for StreamHasher {
    fn default() -> Self {
        StreamHasher {
            body: digest::Context::new(&digest::SHA256),
            tail: Vec::with_capacity(2 * ETCD_HASH_LEN),
            total: 0,
        }
    }
}

impl StreamHasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if bytes.len() >= ETCD_HASH_LEN {
            // Everything held back so far, and all but the last 32 new bytes, belong to the body.
            self.body.update(&self.tail);
            self.tail.clear();
            let split = bytes.len() - ETCD_HASH_LEN;
            self.body.update(&bytes[..split]);
            self.tail.extend_from_slice(&bytes[split..]);
        } else {
            self.tail.extend_from_slice(bytes);
            if self.tail.len() > ETCD_HASH_LEN {
                let excess = self.tail.len() - ETCD_HASH_LEN;
                self.body.update(&self.tail[..excess]);
                self.tail.drain(..excess);
            }
        }
    }

    pub fn finish(self) -> StreamDigest {
        let mut whole = self.body.clone();
        whole.update(&self.tail);
        let etcd_hash_ok =
            self.tail.len() == ETCD_HASH_LEN && self.body.finish().as_ref() == self.tail.as_slice();
        StreamDigest {
            total_bytes: self.total,
            sha256: hex::encode(whole.finish().as_ref()),
            etcd_hash_ok,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot_with_hash(body: &[u8]) -> Vec<u8> {
        let mut bytes = body.to_vec();
        bytes.extend_from_slice(digest::digest(&digest::SHA256, body).as_ref());
        bytes
    }

    #[test]
    fn the_trailing_hash_is_checked_whatever_the_chunking() {
        let body: Vec<u8> = (0..10_000u32).map(|value| (value % 251) as u8).collect();
        let snapshot = snapshot_with_hash(&body);
        for chunk in [1, 7, 31, 32, 33, 4096, snapshot.len()] {
            let mut hasher = StreamHasher::new();
            for piece in snapshot.chunks(chunk) {
                hasher.update(piece);
            }
            let digest = hasher.finish();
            assert!(digest.etcd_hash_ok, "chunk size {chunk}");
            assert_eq!(digest.total_bytes, snapshot.len() as u64);
            assert_eq!(digest.database_bytes(), body.len() as u64);
            assert_eq!(
                digest.sha256,
                hex::encode(digest::digest(&digest::SHA256, &snapshot).as_ref())
            );
        }
    }

    #[test]
    fn a_flipped_byte_breaks_the_trailing_hash() {
        let mut snapshot = snapshot_with_hash(b"a bolt database, pretend");
        snapshot[3] ^= 0x01;
        let mut hasher = StreamHasher::new();
        hasher.update(&snapshot);
        assert!(!hasher.finish().etcd_hash_ok);
    }

    #[test]
    fn a_stream_shorter_than_the_hash_is_not_ok() {
        let mut hasher = StreamHasher::new();
        hasher.update(b"short");
        assert!(!hasher.finish().etcd_hash_ok);
    }
}
