//! State across packets: IP fragments put back together ([`defrag`]) and
//! TCP byte streams in order ([`tcp`]). Everything here is bounded — by
//! count, by bytes and by capture-clock timeouts — and every datagram,
//! segment or stream given up on is counted, so memory stays flat whatever
//! arrives.

pub mod defrag;
pub mod tcp;

use serde::Deserialize;

/// Limits of reassembly. The defaults keep a worker well under 256 MiB
/// resident whatever the traffic: 64 MiB of TCP bytes, 32 MiB of
/// fragments, and about 200 bytes of bookkeeping per tracked stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReassemblyConfig {
    /// TCP streams (one per direction) tracked at once; the least recently
    /// active is evicted beyond this.
    pub tcp_max_streams: usize,
    /// Bytes one stream may hold while a message is incomplete.
    pub tcp_max_stream_bytes: usize,
    /// Bytes all streams together may hold.
    pub tcp_max_buffered_bytes: usize,
    /// A stream silent this long (capture time) is forgotten.
    pub tcp_idle_timeout_secs: u64,
    /// IP datagrams being reassembled at once.
    pub fragment_max_datagrams: usize,
    /// Bytes of fragments held at once.
    pub fragment_max_bytes: usize,
    /// A datagram not complete this long after its first fragment is dropped.
    pub fragment_timeout_secs: u64,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig {
            tcp_max_streams: 100_000,
            tcp_max_stream_bytes: 256 << 10,
            tcp_max_buffered_bytes: 64 << 20,
            tcp_idle_timeout_secs: 600,
            fragment_max_datagrams: 8192,
            fragment_max_bytes: 32 << 20,
            fragment_timeout_secs: 30,
        }
    }
}

impl ReassemblyConfig {
    /// Refuses limits that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        let checks = [
            (
                self.tcp_max_streams == 0,
                "tcp_max_streams must be at least 1",
            ),
            (
                self.tcp_max_stream_bytes < 1024,
                "tcp_max_stream_bytes must be at least 1024",
            ),
            (
                self.tcp_max_buffered_bytes < self.tcp_max_stream_bytes,
                "tcp_max_buffered_bytes must be at least tcp_max_stream_bytes",
            ),
            (
                self.tcp_idle_timeout_secs == 0,
                "tcp_idle_timeout_secs must be at least 1",
            ),
            (
                self.fragment_max_datagrams == 0,
                "fragment_max_datagrams must be at least 1",
            ),
            (
                self.fragment_max_bytes < 131_072,
                "fragment_max_bytes must hold one whole datagram and its bookkeeping (131072)",
            ),
            (
                self.fragment_timeout_secs == 0,
                "fragment_timeout_secs must be at least 1",
            ),
        ];
        match checks.iter().find(|(bad, _)| *bad) {
            Some((_, message)) => Err(format!("reassembly: {message}")),
            None => Ok(()),
        }
    }
}

/// A least-recently-used order over keys, kept lazily: every touch appends
/// `(key, stamp)`, and an entry counts only while its stamp is the key's
/// latest. Popping skips stale entries; the queue is compacted when stale
/// ones dominate, so its length stays within a small multiple of the live keys.
#[derive(Debug)]
pub(crate) struct LruOrder<K> {
    queue: std::collections::VecDeque<(K, u64)>,
    clock: u64,
}

impl<K: Copy> Default for LruOrder<K> {
    fn default() -> Self {
        LruOrder {
            queue: std::collections::VecDeque::new(),
            clock: 0,
        }
    }
}

impl<K: Copy> LruOrder<K> {
    /// Records a touch of `key`; returns the stamp to store with it.
    pub(crate) fn touch(&mut self, key: K) -> u64 {
        self.clock += 1;
        self.queue.push_back((key, self.clock));
        self.clock
    }

    /// The oldest live key (per `stamp_of`), without removing it.
    pub(crate) fn oldest(&mut self, stamp_of: impl Fn(&K) -> Option<u64>) -> Option<K> {
        while let Some(&(key, stamp)) = self.queue.front() {
            if stamp_of(&key) == Some(stamp) {
                return Some(key);
            }
            self.queue.pop_front();
        }
        None
    }

    /// Drops stale entries when they outnumber `live` by far.
    pub(crate) fn compact(&mut self, live: usize, stamp_of: impl Fn(&K) -> Option<u64>) {
        if self.queue.len() > 2 * live + 1024 {
            self.queue
                .retain(|(key, stamp)| stamp_of(key) == Some(*stamp));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_mistakes_named() {
        assert_eq!(ReassemblyConfig::default().validate(), Ok(()));
        let bad = ReassemblyConfig {
            fragment_max_bytes: 10,
            ..ReassemblyConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("fragment_max_bytes"));
    }

    #[test]
    fn lru_skips_stale_touches() {
        let mut lru = LruOrder::default();
        let mut stamps = std::collections::HashMap::new();
        for key in [1, 2, 1, 3] {
            stamps.insert(key, lru.touch(key));
        }
        assert_eq!(lru.oldest(|k| stamps.get(k).copied()), Some(2));
        stamps.remove(&2);
        assert_eq!(lru.oldest(|k| stamps.get(k).copied()), Some(1));
        lru.compact(0, |k| stamps.get(k).copied());
    }
}
