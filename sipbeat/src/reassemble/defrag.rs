//! IPv4 and IPv6 reassembly (RFC 791, RFC 8200 §4.5), bounded.
//!
//! Fragments are kept per `(source, destination, protocol, id)` until the
//! datagram is whole. Overlaps: IPv6 drops the whole datagram (RFC 5722);
//! IPv4 keeps the bytes that came first. Datagrams older than the timeout
//! and the oldest ones beyond the count or byte limits are evicted; each
//! outcome is counted in [`DefragStats`].
//!
//! Costs are bounded whatever arrives: the byte limit counts what a
//! datagram holds in memory (its buffer's capacity, each received range's
//! bookkeeping, the entry itself), not just payload; received ranges live
//! in a B-tree, so a datagram of n fragments costs O(n log n) in any order;
//! and a non-final fragment without payload is invalid, never stored.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use super::{LruOrder, ReassemblyConfig};
use crate::decode::ip::Fragment;

/// Largest IP payload a datagram can carry without jumbograms.
const MAX_PAYLOAD: usize = 65_535;

crate::counters! {
    /// What reassembly did.
    pub struct DefragStats {
        /// IP fragments taken in.
        fragments,
        /// Datagrams made whole again.
        reassembled,
        /// Datagrams dropped unfinished after the timeout.
        timed_out,
        /// Datagrams evicted unfinished to stay within the limits.
        evicted,
        /// Fragments overlapping bytes already held.
        overlaps,
        /// Fragments reaching past 65535 bytes, inconsistent with the end
        /// already seen, or not final and without payload.
        invalid,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    id: u32,
}

#[derive(Debug)]
struct Pending {
    data: Vec<u8>,
    /// Received byte ranges, start to end: disjoint, never adjacent.
    have: BTreeMap<usize, usize>,
    /// Payload length, once the last fragment is in.
    total: Option<usize>,
    first_seen_ns: u64,
    stamp: u64,
}

/// What one received range costs beyond its bytes: a B-tree entry and its
/// share of a node.
const RANGE_OVERHEAD: usize = 32;
/// What a datagram costs before any payload: its map entry, its key, its
/// order entry, an empty B-tree.
const DATAGRAM_OVERHEAD: usize = size_of::<(Key, Pending)>() + 64;

impl Pending {
    /// Memory held, as counted against `fragment_max_bytes`.
    fn memory(&self) -> usize {
        DATAGRAM_OVERHEAD + self.data.capacity() + self.have.len() * RANGE_OVERHEAD
    }

    fn covers(&self, start: usize, end: usize) -> bool {
        self.have
            .range(..=start)
            .next_back()
            .is_some_and(|(_, &e)| end <= e)
    }

    fn overlaps(&self, start: usize, end: usize) -> bool {
        start < end
            && self
                .have
                .range(..end)
                .next_back()
                .is_some_and(|(_, &e)| e > start)
    }

    /// Writes `payload` at `start`, keeping bytes already held, and merges
    /// the ranges it touches: each range is merged away once, so n
    /// fragments cost O(n log n) however they arrive.
    fn insert(&mut self, start: usize, payload: &[u8]) {
        let end = start + payload.len();
        if self.data.len() < end {
            self.data.reserve_exact(end - self.data.len());
            self.data.resize(end, 0);
        }
        let (mut merged_start, mut merged_end) = (start, end);
        // Walk the touching ranges from the highest down, filling the gaps
        // above each one.
        let mut upper = end;
        while let Some((&s, &e)) = self.have.range(..=end).next_back() {
            if e < start {
                break;
            }
            self.have.remove(&s);
            let gap_start = e.max(start);
            if gap_start < upper {
                self.data[gap_start..upper]
                    .copy_from_slice(&payload[gap_start - start..upper - start]);
            }
            upper = upper.min(s.max(start));
            merged_start = merged_start.min(s);
            merged_end = merged_end.max(e);
        }
        if start < upper {
            self.data[start..upper].copy_from_slice(&payload[..upper - start]);
        }
        if merged_start < merged_end {
            self.have.insert(merged_start, merged_end);
        }
    }

    fn complete(&self) -> bool {
        self.total.is_some_and(|total| {
            self.have.len() == 1 && self.have.first_key_value() == Some((&0, &total))
        })
    }
}

/// A whole datagram's upper-layer protocol and payload.
#[derive(Debug, PartialEq, Eq)]
pub struct Reassembled {
    pub protocol: u8,
    pub payload: Vec<u8>,
}

/// Reassembles fragments; one per worker.
#[derive(Debug)]
pub struct Defragmenter {
    max_datagrams: usize,
    max_bytes: usize,
    timeout_ns: u64,
    pending: HashMap<Key, Pending>,
    order: LruOrder<Key>,
    bytes: usize,
    stats: DefragStats,
}

impl Defragmenter {
    pub fn new(config: &ReassemblyConfig) -> Defragmenter {
        Defragmenter {
            max_datagrams: config.fragment_max_datagrams,
            max_bytes: config.fragment_max_bytes,
            timeout_ns: config.fragment_timeout_secs.saturating_mul(1_000_000_000),
            pending: HashMap::new(),
            order: LruOrder::default(),
            bytes: 0,
            stats: DefragStats::default(),
        }
    }

    pub fn stats(&self) -> &DefragStats {
        &self.stats
    }

    /// Datagrams waiting for fragments.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Bytes held for them.
    pub fn bytes_held(&self) -> usize {
        self.bytes
    }

    /// Adds one fragment; returns the datagram when it is whole.
    pub fn add(
        &mut self,
        now_ns: u64,
        src: IpAddr,
        dst: IpAddr,
        protocol: u8,
        fragment: Fragment,
        payload: &[u8],
    ) -> Option<Reassembled> {
        self.stats.fragments += 1;
        self.expire(now_ns);
        let start = fragment.offset;
        let end = start + payload.len();
        if end > MAX_PAYLOAD
            || (fragment.more && (payload.is_empty() || !payload.len().is_multiple_of(8)))
        {
            self.stats.invalid += 1;
            return None;
        }
        let key = Key {
            src,
            dst,
            protocol,
            id: fragment.id,
        };
        if !self.pending.contains_key(&key) {
            self.make_room(None, DATAGRAM_OVERHEAD);
            let stamp = self.order.touch(key);
            let pending = Pending {
                data: Vec::new(),
                have: BTreeMap::new(),
                total: None,
                first_seen_ns: now_ns,
                stamp,
            };
            self.bytes += pending.memory();
            self.pending.insert(key, pending);
        }
        // The buffer grows to the fragment's end and a range is added: room
        // for that first, which may evict this very datagram if it is the
        // oldest.
        let growth = end.saturating_sub(self.pending[&key].data.capacity()) + RANGE_OVERHEAD;
        if !self.make_room(Some(key), growth) {
            return None;
        }
        let pending = self.pending.get_mut(&key).expect("inserted above");
        let ends_here = (!fragment.more).then_some(end);
        let inconsistent = match (pending.total, ends_here) {
            (Some(total), Some(end)) => total != end,
            (Some(total), None) => end > total,
            (None, Some(end)) => pending.have.last_key_value().is_some_and(|(_, &e)| e > end),
            (None, None) => false,
        };
        if inconsistent {
            self.stats.invalid += 1;
            self.drop_key(&key);
            return None;
        }
        if pending.overlaps(start, end) {
            self.stats.overlaps += 1;
            // RFC 5722: overlapping IPv6 fragments poison the datagram.
            if src.is_ipv6() {
                self.drop_key(&key);
                return None;
            }
            if pending.covers(start, end) {
                return None;
            }
        }
        let before = pending.memory();
        pending.insert(start, payload);
        pending.total = pending.total.or(ends_here);
        self.bytes = self.bytes + pending.memory() - before;
        if !pending.complete() {
            return None;
        }
        let done = self.pending.remove(&key).expect("present");
        self.bytes -= done.memory();
        self.stats.reassembled += 1;
        Some(Reassembled {
            protocol,
            payload: done.data,
        })
    }

    /// The datagram that started first (datagrams are never touched again).
    fn oldest(&mut self) -> Option<Key> {
        let pending = &self.pending;
        self.order.oldest(|k| pending.get(k).map(|p| p.stamp))
    }

    /// Drops what has waited longer than the timeout, oldest first.
    fn expire(&mut self, now_ns: u64) {
        while let Some(key) = self.oldest() {
            let first_seen = self.pending[&key].first_seen_ns;
            if first_seen.saturating_add(self.timeout_ns) >= now_ns {
                break;
            }
            self.stats.timed_out += 1;
            self.drop_key(&key);
        }
        let pending = &self.pending;
        self.order
            .compact(pending.len(), |k| pending.get(k).map(|p| p.stamp));
    }

    /// Evicts the oldest datagrams until `growth` more bytes fit, and (when
    /// `growing` is `None`, a datagram is about to start) one more datagram.
    /// Returns false when `growing` itself had to go.
    fn make_room(&mut self, growing: Option<Key>, growth: usize) -> bool {
        let starting = usize::from(growing.is_none());
        while self.pending.len() + starting > self.max_datagrams
            || self.bytes + growth > self.max_bytes
        {
            let Some(key) = self.oldest() else { break };
            self.stats.evicted += 1;
            self.drop_key(&key);
            if Some(key) == growing {
                return false;
            }
        }
        true
    }

    fn drop_key(&mut self, key: &Key) {
        if let Some(dropped) = self.pending.remove(key) {
            self.bytes -= dropped.memory();
        }
    }

    /// Counts everything still waiting as timed out (end of input).
    pub fn finish(&mut self) {
        self.stats.timed_out += self.pending.len() as u64;
        self.pending.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defrag() -> Defragmenter {
        Defragmenter::new(&ReassemblyConfig::default())
    }

    fn frag(id: u32, offset: usize, more: bool) -> Fragment {
        Fragment { id, offset, more }
    }

    const A: &str = "192.0.2.1";
    const B: &str = "192.0.2.2";

    fn add(d: &mut Defragmenter, now: u64, f: Fragment, payload: &[u8]) -> Option<Reassembled> {
        d.add(now, A.parse().unwrap(), B.parse().unwrap(), 17, f, payload)
    }

    #[test]
    fn in_order_and_out_of_order() {
        let data: Vec<u8> = (0..40u8).collect();
        for order in [[0, 1, 2], [2, 0, 1], [1, 2, 0]] {
            let mut d = defrag();
            let mut result = None;
            for i in order {
                let more = i < 2;
                result = add(
                    &mut d,
                    0,
                    frag(7, i * 16, more),
                    &data[i * 16..(i * 16 + 16).min(40)],
                );
            }
            assert_eq!(
                result,
                Some(Reassembled {
                    protocol: 17,
                    payload: data.clone()
                }),
                "{order:?}"
            );
            assert_eq!(d.in_flight(), 0);
            assert_eq!(d.bytes_held(), 0);
        }
    }

    #[test]
    fn ipv4_overlap_keeps_first_bytes() {
        let mut d = defrag();
        assert!(add(&mut d, 0, frag(1, 0, true), &[1; 16]).is_none());
        assert!(add(&mut d, 0, frag(1, 8, true), &[2; 16]).is_none());
        let done = add(&mut d, 0, frag(1, 24, false), &[3; 4]).unwrap();
        assert_eq!(&done.payload[..16], &[1; 16]);
        assert_eq!(&done.payload[16..24], &[2; 8]);
        assert_eq!(d.stats().overlaps, 1);
    }

    #[test]
    fn ipv6_overlap_drops_the_datagram() {
        let mut d = defrag();
        let (a, b) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        );
        assert!(d.add(0, a, b, 17, frag(1, 0, true), &[1; 16]).is_none());
        assert!(d.add(0, a, b, 17, frag(1, 8, false), &[2; 16]).is_none());
        assert_eq!(d.in_flight(), 0);
        assert_eq!(d.stats().overlaps, 1);
    }

    #[test]
    fn timeout_and_limits_evict_oldest_first() {
        let mut d = Defragmenter::new(&ReassemblyConfig {
            fragment_max_datagrams: 2,
            fragment_timeout_secs: 1,
            ..ReassemblyConfig::default()
        });
        add(&mut d, 0, frag(1, 0, true), &[0; 8]);
        add(&mut d, 0, frag(2, 0, true), &[0; 8]);
        add(&mut d, 0, frag(3, 0, true), &[0; 8]);
        assert_eq!(d.stats().evicted, 1);
        assert_eq!(d.in_flight(), 2);
        add(&mut d, 2_000_000_000, frag(4, 0, true), &[0; 8]);
        assert_eq!(d.stats().timed_out, 2);
        assert_eq!(d.in_flight(), 1);
        d.finish();
        assert_eq!(d.stats().timed_out, 3);
    }

    #[test]
    fn invalid_fragments() {
        let mut d = defrag();
        assert!(add(&mut d, 0, frag(1, 65_528, false), &[0; 16]).is_none());
        assert!(add(&mut d, 0, frag(2, 0, true), &[0; 5]).is_none());
        add(&mut d, 0, frag(3, 16, false), &[0; 8]);
        assert!(add(&mut d, 0, frag(3, 32, true), &[0; 8]).is_none());
        assert_eq!(d.stats().invalid, 3);
    }

    #[test]
    fn a_far_offset_counts_its_whole_buffer() {
        // Found by fuzzing: a fragment at a high offset sizes the buffer to
        // its end, which must be within the byte limit too.
        let mut d = Defragmenter::new(&ReassemblyConfig {
            fragment_max_bytes: 65_535,
            ..ReassemblyConfig::default()
        });
        add(&mut d, 0, frag(1, 40_000, true), &[0; 8]);
        add(&mut d, 0, frag(2, 60_000, true), &[0; 8]);
        assert!(d.bytes_held() <= 65_535, "{}", d.bytes_held());
        assert_eq!(d.stats().evicted, 1);
    }

    #[test]
    fn empty_non_final_fragments_are_invalid_and_never_stored() {
        let mut d = defrag();
        add(&mut d, 0, frag(1, 0, true), &[1; 8]);
        let held = d.bytes_held();
        for offset in (8..400_000).step_by(8) {
            assert!(add(&mut d, 0, frag(1, offset % 65_528, true), &[]).is_none());
        }
        assert_eq!(d.stats().invalid, 49_999);
        assert_eq!(d.bytes_held(), held, "nothing stored for them");
        let done = add(&mut d, 0, frag(1, 8, false), &[2; 3]).unwrap();
        assert_eq!(done.payload, [1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2]);
    }

    #[test]
    fn many_small_fragments_in_any_order_reassemble() {
        // 8,191 eight-byte fragments, from the top down and interleaved:
        // every one a separate range until the last joins them.
        let data: Vec<u8> = (0..65_528usize).map(|i| (i * 7) as u8).collect();
        let count = data.len() / 8;
        let orders: [Vec<usize>; 2] = [
            (0..count).rev().collect(),
            (0..count).step_by(2).chain((1..count).step_by(2)).collect(),
        ];
        for order in orders {
            let mut d = defrag();
            let mut done = None;
            for i in order {
                let more = i + 1 < count;
                done = add(&mut d, 0, frag(9, i * 8, more), &data[i * 8..i * 8 + 8]);
            }
            assert_eq!(done.expect("whole").payload, data);
            assert_eq!(d.bytes_held(), 0);
        }
    }

    #[test]
    fn memory_counts_ranges_and_capacity() {
        let mut d = defrag();
        add(&mut d, 0, frag(1, 0, true), &[0; 8]);
        let one = d.bytes_held();
        assert!(one >= 8 + DATAGRAM_OVERHEAD + RANGE_OVERHEAD, "{one}");
        add(&mut d, 0, frag(1, 64, true), &[0; 8]);
        assert!(d.bytes_held() >= 72 + DATAGRAM_OVERHEAD + 2 * RANGE_OVERHEAD);
        add(&mut d, 0, frag(1, 8, true), &[0; 56]);
        let merged = d.bytes_held();
        assert!(
            merged < 72 + DATAGRAM_OVERHEAD + 2 * RANGE_OVERHEAD + 64,
            "{merged}"
        );
    }

    #[test]
    fn byte_limit_holds_under_a_flood() {
        let mut d = Defragmenter::new(&ReassemblyConfig {
            fragment_max_bytes: 100_000,
            ..ReassemblyConfig::default()
        });
        for id in 0..10_000 {
            add(&mut d, 0, frag(id, 0, true), &[0; 1000]);
            assert!(d.bytes_held() <= 100_000);
        }
        assert!(d.stats().evicted >= 9_900);
    }
}
