//! TCP streams put back in order, per direction, bounded.
//!
//! Each direction of a connection is a [`StreamKey`]. Segments in order are
//! handed straight to the consumer without a copy; only bytes the consumer
//! cannot use yet (an incomplete message) are kept. Retransmissions and
//! overlaps are trimmed, out-of-order segments wait (bounded), and when a
//! hole does not fill the stream jumps over it: a gap, after which the
//! consumer must find the next message start again (`in_sync = false`).
//! FIN/RST end a stream; idle streams time out; the least recently active
//! are evicted at the stream and byte limits. All of it is counted.
//!
//! The byte limits count memory, not payload: a stream's buffer by its
//! capacity (returned to the allocator once consumed, trimmed to twice its
//! bytes otherwise), each waiting segment by its allocation plus its
//! bookkeeping.

use std::collections::HashMap;
use std::net::IpAddr;

use super::{LruOrder, ReassemblyConfig};
use crate::decode::tcp::{Segment, flag};

/// Segments a stream holds out of order before it declares a gap.
const MAX_PENDING_SEGMENTS: usize = 64;
/// What one waiting segment costs beyond its bytes: its slot in the list
/// and the allocator's smallest chunk.
const SEGMENT_OVERHEAD: usize = size_of::<(u32, Vec<u8>)>() + 32;
/// Capacity a stream's buffer may keep beyond twice its bytes.
const BUFFER_RESERVE: usize = 2048;

/// One direction of a TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
}

/// Turns in-order stream bytes into messages.
pub trait StreamConsumer {
    /// Called with a stream's unconsumed bytes, in order. Returns how many
    /// bytes it used (whole messages, or junk it skipped). `in_sync` says
    /// whether `bytes` begins at a message boundary; the consumer updates it.
    fn consume(&mut self, key: &StreamKey, bytes: &[u8], in_sync: &mut bool, now_ns: u64) -> usize;
}

crate::counters! {
    /// What stream reassembly did.
    pub struct TcpStats {
        /// Segments taken in (SIP-port streams).
        segments,
        /// Segments whose bytes had all been seen (retransmissions).
        retransmitted,
        /// Segments partly overlapping bytes already seen (trimmed).
        overlapping,
        /// Segments that arrived ahead of a hole and waited.
        out_of_order,
        /// Holes jumped over: the bytes in them never arrived.
        gaps,
        /// Streams that held more than `tcp_max_stream_bytes` of one message.
        overflows,
        /// Streams ended (FIN, RST, timeout, eviction, end of input) inside a message.
        truncated,
        /// Streams forgotten after `tcp_idle_timeout_secs`.
        idle_timeouts,
        /// Streams evicted to stay within `tcp_max_streams` or `tcp_max_buffered_bytes`.
        evicted,
    }
}

#[derive(Debug)]
struct Stream {
    /// Sequence number of the next byte expected.
    next_seq: u32,
    /// In-order bytes the consumer has not used yet.
    buffer: Vec<u8>,
    /// Segments ahead of `next_seq`: (sequence number, bytes).
    pending: Vec<(u32, Vec<u8>)>,
    /// Memory the waiting segments hold (allocations and bookkeeping).
    pending_bytes: usize,
    in_sync: bool,
    last_seen_ns: u64,
    stamp: u64,
}

impl Stream {
    /// Memory held, as counted against the byte limits.
    fn held(&self) -> usize {
        // Occupied list slots are in each segment's cost already; the
        // spare ones are held too.
        self.buffer.capacity()
            + (self.pending.capacity() - self.pending.len()) * size_of::<(u32, Vec<u8>)>()
            + self.pending_bytes
    }

    /// Gives back buffer memory the stream no longer needs: all of it once
    /// consumed, and what is over twice the bytes kept otherwise.
    fn trim(&mut self) {
        if self.buffer.is_empty() {
            if self.buffer.capacity() > 0 {
                self.buffer = Vec::new();
            }
        } else if self.buffer.capacity() > BUFFER_RESERVE.max(2 * self.buffer.len()) {
            self.buffer.shrink_to(BUFFER_RESERVE.max(self.buffer.len()));
        }
        if self.pending.is_empty() && self.pending.capacity() > 0 {
            self.pending = Vec::new();
        }
    }
}

/// What a waiting copy of `bytes` costs.
fn segment_cost(bytes: &[u8]) -> usize {
    bytes.len() + SEGMENT_OVERHEAD
}

/// Signed distance from `b` to `a` in sequence space (RFC 9293 arithmetic).
fn seq_diff(a: u32, b: u32) -> i64 {
    i64::from(a.wrapping_sub(b) as i32)
}

/// Reassembles TCP streams; one per worker.
#[derive(Debug)]
pub struct TcpReassembler {
    config: ReassemblyConfig,
    idle_timeout_ns: u64,
    streams: HashMap<StreamKey, Stream>,
    order: LruOrder<StreamKey>,
    /// Bytes held by all streams.
    held: usize,
    stats: TcpStats,
}

impl TcpReassembler {
    pub fn new(config: &ReassemblyConfig) -> TcpReassembler {
        TcpReassembler {
            config: *config,
            idle_timeout_ns: config.tcp_idle_timeout_secs.saturating_mul(1_000_000_000),
            streams: HashMap::new(),
            order: LruOrder::default(),
            held: 0,
            stats: TcpStats::default(),
        }
    }

    pub fn stats(&self) -> &TcpStats {
        &self.stats
    }

    /// Streams tracked now.
    pub fn streams(&self) -> usize {
        self.streams.len()
    }

    /// Bytes held by all streams now.
    pub fn bytes_held(&self) -> usize {
        self.held
    }

    /// Feeds one segment of the stream `key`.
    pub fn segment(
        &mut self,
        now_ns: u64,
        key: StreamKey,
        segment: &Segment<'_>,
        consumer: &mut dyn StreamConsumer,
    ) {
        self.stats.segments += 1;
        self.expire(now_ns);
        let syn = segment.has(flag::SYN);
        let payload_seq = segment.seq.wrapping_add(u32::from(syn));
        if syn && let Some(old) = self.streams.remove(&key) {
            // A new connection on the same four-tuple.
            self.forget(old);
        }
        if !self.streams.contains_key(&key) {
            if segment.payload.is_empty() && !syn {
                // A bare ACK or FIN of a stream not tracked: nothing to keep.
                return;
            }
            self.make_room(key);
            let stamp = self.order.touch(key);
            self.streams.insert(
                key,
                Stream {
                    next_seq: payload_seq,
                    buffer: Vec::new(),
                    pending: Vec::new(),
                    pending_bytes: 0,
                    // Picked up mid-connection, the first bytes may be mid-message.
                    in_sync: syn,
                    last_seen_ns: now_ns,
                    stamp,
                },
            );
        } else {
            let stamp = self.order.touch(key);
            let stream = self.streams.get_mut(&key).expect("present");
            stream.stamp = stamp;
            stream.last_seen_ns = now_ns;
        }
        if !segment.payload.is_empty() {
            self.accept(now_ns, key, payload_seq, segment.payload, consumer);
        }
        if segment.has(flag::FIN) || segment.has(flag::RST) {
            self.close(now_ns, key, consumer);
        }
        self.enforce_byte_limit();
    }

    fn accept(
        &mut self,
        now_ns: u64,
        key: StreamKey,
        seq: u32,
        payload: &[u8],
        consumer: &mut dyn StreamConsumer,
    ) {
        let max_stream_bytes = self.config.tcp_max_stream_bytes;
        let stream = self.streams.get_mut(&key).expect("caller ensured");
        let before = stream.held();
        let ahead = seq_diff(seq, stream.next_seq);
        if ahead > 0 {
            let fits = stream.pending.len() < MAX_PENDING_SEGMENTS
                && stream.pending_bytes + segment_cost(payload) <= max_stream_bytes;
            if !fits {
                Self::jump_gap(stream, &mut self.stats);
            }
            self.stats.out_of_order += 1;
            stream.pending.push((seq, payload.to_vec()));
            stream.pending_bytes += segment_cost(payload);
            if !fits {
                Self::drain_pending(
                    &key,
                    stream,
                    consumer,
                    now_ns,
                    &mut self.stats,
                    max_stream_bytes,
                );
            }
        } else {
            let seen = (-ahead) as usize;
            if seen >= payload.len() {
                self.stats.retransmitted += 1;
            } else {
                if seen > 0 {
                    self.stats.overlapping += 1;
                }
                Self::deliver(
                    &key,
                    stream,
                    &payload[seen..],
                    consumer,
                    now_ns,
                    &mut self.stats,
                    max_stream_bytes,
                );
                Self::drain_pending(
                    &key,
                    stream,
                    consumer,
                    now_ns,
                    &mut self.stats,
                    max_stream_bytes,
                );
            }
        }
        stream.trim();
        let after = stream.held();
        self.held = self.held + after - before;
    }

    /// Appends in-order bytes and lets the consumer use what it can.
    fn deliver(
        key: &StreamKey,
        stream: &mut Stream,
        bytes: &[u8],
        consumer: &mut dyn StreamConsumer,
        now_ns: u64,
        stats: &mut TcpStats,
        max_stream_bytes: usize,
    ) {
        stream.next_seq = stream.next_seq.wrapping_add(bytes.len() as u32);
        if stream.buffer.is_empty() {
            // The common case: whole messages in one segment, no copy.
            let used = consumer.consume(key, bytes, &mut stream.in_sync, now_ns);
            stream.buffer.extend_from_slice(&bytes[used..]);
        } else {
            stream.buffer.extend_from_slice(bytes);
            let used = consumer.consume(key, &stream.buffer, &mut stream.in_sync, now_ns);
            stream.buffer.drain(..used);
        }
        if stream.buffer.len() > max_stream_bytes {
            stats.overflows += 1;
            stream.buffer.clear();
            stream.in_sync = false;
        }
    }

    /// Delivers waiting segments that have become in order.
    fn drain_pending(
        key: &StreamKey,
        stream: &mut Stream,
        consumer: &mut dyn StreamConsumer,
        now_ns: u64,
        stats: &mut TcpStats,
        max_stream_bytes: usize,
    ) {
        loop {
            let next = stream.next_seq;
            let Some(index) = stream
                .pending
                .iter()
                .position(|(seq, _)| seq_diff(*seq, next) <= 0)
            else {
                return;
            };
            let (seq, bytes) = stream.pending.swap_remove(index);
            stream.pending_bytes -= segment_cost(&bytes);
            let seen = (-seq_diff(seq, next)) as usize;
            if seen < bytes.len() {
                Self::deliver(
                    key,
                    stream,
                    &bytes[seen..],
                    consumer,
                    now_ns,
                    stats,
                    max_stream_bytes,
                );
            } else {
                stats.retransmitted += 1;
            }
        }
    }

    /// Skips to the earliest waiting segment: the bytes before it are lost.
    fn jump_gap(stream: &mut Stream, stats: &mut TcpStats) {
        let Some(&(earliest, _)) = stream
            .pending
            .iter()
            .min_by_key(|(seq, _)| seq_diff(*seq, stream.next_seq))
        else {
            return;
        };
        stats.gaps += 1;
        stream.next_seq = earliest;
        stream.buffer.clear();
        stream.in_sync = false;
    }

    /// Ends a stream (FIN, RST): waiting segments go past any gap, and a
    /// message still incomplete counts as truncated.
    fn close(&mut self, now_ns: u64, key: StreamKey, consumer: &mut dyn StreamConsumer) {
        let max_stream_bytes = self.config.tcp_max_stream_bytes;
        let Some(mut stream) = self.streams.remove(&key) else {
            return;
        };
        self.held -= stream.held();
        while !stream.pending.is_empty() {
            Self::jump_gap(&mut stream, &mut self.stats);
            Self::drain_pending(
                &key,
                &mut stream,
                consumer,
                now_ns,
                &mut self.stats,
                max_stream_bytes,
            );
        }
        if !stream.buffer.is_empty() {
            self.stats.truncated += 1;
        }
    }

    /// Forgets a stream without delivering anything more.
    fn forget(&mut self, stream: Stream) {
        self.held -= stream.held();
        if stream.held() > 0 {
            self.stats.truncated += 1;
        }
    }

    fn oldest(&mut self) -> Option<StreamKey> {
        let streams = &self.streams;
        self.order.oldest(|k| streams.get(k).map(|s| s.stamp))
    }

    fn expire(&mut self, now_ns: u64) {
        while let Some(key) = self.oldest() {
            if self.streams[&key]
                .last_seen_ns
                .saturating_add(self.idle_timeout_ns)
                >= now_ns
            {
                break;
            }
            self.stats.idle_timeouts += 1;
            let stream = self.streams.remove(&key).expect("present");
            self.forget(stream);
        }
        let streams = &self.streams;
        self.order
            .compact(streams.len(), |k| streams.get(k).map(|s| s.stamp));
    }

    /// Evicts the least recently active streams so `incoming` can be tracked.
    fn make_room(&mut self, incoming: StreamKey) {
        while self.streams.len() >= self.config.tcp_max_streams {
            let Some(key) = self.oldest() else { break };
            debug_assert_ne!(key, incoming);
            self.stats.evicted += 1;
            let stream = self.streams.remove(&key).expect("present");
            self.forget(stream);
        }
    }

    fn enforce_byte_limit(&mut self) {
        while self.held > self.config.tcp_max_buffered_bytes {
            let Some(key) = self.oldest() else { break };
            self.stats.evicted += 1;
            let stream = self.streams.remove(&key).expect("present");
            self.forget(stream);
        }
    }

    /// End of input: every stream closes as if by FIN.
    pub fn finish(&mut self, now_ns: u64, consumer: &mut dyn StreamConsumer) {
        let keys: Vec<StreamKey> = self.streams.keys().copied().collect();
        for key in keys {
            self.close(now_ns, key, consumer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits on `|` as if each were a whole message; records them.
    #[derive(Default)]
    struct Messages {
        seen: Vec<String>,
        resyncs: usize,
    }

    impl StreamConsumer for Messages {
        fn consume(&mut self, _: &StreamKey, bytes: &[u8], in_sync: &mut bool, _: u64) -> usize {
            let mut used = 0;
            if !*in_sync {
                // Resynchronise after the next separator.
                match bytes.iter().position(|&b| b == b'|') {
                    Some(at) => {
                        used = at + 1;
                        *in_sync = true;
                        self.resyncs += 1;
                    }
                    None => return bytes.len(),
                }
            }
            while let Some(at) = bytes[used..].iter().position(|&b| b == b'|') {
                self.seen
                    .push(String::from_utf8_lossy(&bytes[used..used + at]).into_owned());
                used += at + 1;
            }
            used
        }
    }

    fn key() -> StreamKey {
        StreamKey {
            src: "192.0.2.1".parse().unwrap(),
            dst: "192.0.2.2".parse().unwrap(),
            src_port: 40000,
            dst_port: 5060,
        }
    }

    fn seg(seq: u32, flags: u8, payload: &[u8]) -> Segment<'_> {
        Segment {
            src_port: 40000,
            dst_port: 5060,
            seq,
            flags,
            payload,
        }
    }

    fn run(segments: &[(u32, u8, &[u8])]) -> (Messages, TcpReassembler) {
        let mut tcp = TcpReassembler::new(&ReassemblyConfig::default());
        let mut messages = Messages::default();
        for &(seq, flags, payload) in segments {
            tcp.segment(0, key(), &seg(seq, flags, payload), &mut messages);
        }
        (messages, tcp)
    }

    #[test]
    fn consumed_buffers_are_given_back() {
        // One 200 KB message per stream, then consumed: nothing stays held.
        let mut tcp = TcpReassembler::new(&ReassemblyConfig::default());
        let mut messages = Messages::default();
        let body = vec![b'x'; 1000];
        for port in 0..20u16 {
            let key = StreamKey {
                src_port: 1000 + port,
                ..key()
            };
            tcp.segment(0, key, &seg(99, flag::SYN, b""), &mut messages);
            for i in 0..200u32 {
                tcp.segment(0, key, &seg(100 + i * 1000, 0, &body), &mut messages);
            }
            assert!(tcp.bytes_held() >= 200_000, "the message waits whole");
            tcp.segment(0, key, &seg(200_100, 0, b"|"), &mut messages);
        }
        assert_eq!(messages.seen.len(), 20);
        assert_eq!(tcp.bytes_held(), 0);
    }

    #[test]
    fn out_of_order_segments_count_their_overhead() {
        let mut tcp = TcpReassembler::new(&ReassemblyConfig::default());
        let mut messages = Messages::default();
        tcp.segment(0, key(), &seg(99, flag::SYN, b""), &mut messages);
        for i in 0..63u32 {
            tcp.segment(0, key(), &seg(200 + i * 2, 0, b"x"), &mut messages);
        }
        assert!(
            tcp.bytes_held() >= 63 * (1 + SEGMENT_OVERHEAD),
            "{}",
            tcp.bytes_held()
        );
    }

    #[test]
    fn split_and_coalesced_messages() {
        let (m, tcp) = run(&[
            (99, flag::SYN, b""),
            (100, 0, b"one|tw"),
            (106, 0, b"o|three|fo"),
            (116, 0, b"ur|"),
        ]);
        assert_eq!(m.seen, ["one", "two", "three", "four"]);
        assert_eq!(tcp.bytes_held(), 0);
    }

    #[test]
    fn retransmission_and_overlap_are_trimmed() {
        let (m, tcp) = run(&[
            (99, flag::SYN, b""),
            (100, 0, b"one|"),
            (100, 0, b"one|"),
            (102, 0, b"e|two|"),
        ]);
        assert_eq!(m.seen, ["one", "two"]);
        assert_eq!(tcp.stats().retransmitted, 1);
        assert_eq!(tcp.stats().overlapping, 1);
    }

    #[test]
    fn out_of_order_segments_wait() {
        let (m, tcp) = run(&[
            (99, flag::SYN, b""),
            (104, 0, b"two|"),
            (108, 0, b"three|"),
            (100, 0, b"one|"),
        ]);
        assert_eq!(m.seen, ["one", "two", "three"]);
        assert_eq!(tcp.stats().out_of_order, 2);
        assert_eq!(tcp.stats().gaps, 0);
    }

    #[test]
    fn a_gap_is_jumped_at_close_and_counted() {
        // "two|" at 104 never arrives; FIN closes the stream.
        let (m, tcp) = run(&[
            (99, flag::SYN, b""),
            (100, 0, b"one|"),
            (108, 0, b"thr"),
            (111, flag::FIN, b"ee|four|"),
        ]);
        assert_eq!(
            m.seen,
            ["one", "four"],
            "three's start is lost with the gap; resync at the next '|'"
        );
        assert_eq!(tcp.stats().gaps, 1);
        assert_eq!(tcp.streams(), 0);
    }

    #[test]
    fn too_many_waiting_segments_force_a_gap() {
        let mut segments: Vec<(u32, u8, Vec<u8>)> = vec![(99, flag::SYN, vec![])];
        for i in 0..=MAX_PENDING_SEGMENTS as u32 {
            segments.push((200 + 4 * i, 0, b"ab|c".to_vec()));
        }
        let segments: Vec<(u32, u8, &[u8])> = segments
            .iter()
            .map(|(s, f, p)| (*s, *f, p.as_slice()))
            .collect();
        let (m, tcp) = run(&segments);
        assert_eq!(tcp.stats().gaps, 1);
        assert!(m.seen.len() >= MAX_PENDING_SEGMENTS - 1, "{}", m.seen.len());
    }

    #[test]
    fn mid_stream_pickup_resyncs() {
        let (m, _) = run(&[(5000, 0, b"ssage-tail|next|")]);
        assert_eq!(m.seen, ["next"]);
        assert_eq!(m.resyncs, 1);
    }

    #[test]
    fn incomplete_message_at_close_is_truncated() {
        let (_, tcp) = run(&[(99, flag::SYN, b""), (100, flag::FIN, b"never ends")]);
        assert_eq!(tcp.stats().truncated, 1);
        assert_eq!(tcp.bytes_held(), 0);
    }

    #[test]
    fn limits_hold_under_a_flood_of_half_open_streams() {
        let config = ReassemblyConfig {
            tcp_max_streams: 1000,
            tcp_max_stream_bytes: 4096,
            tcp_max_buffered_bytes: 64 * 1024,
            ..ReassemblyConfig::default()
        };
        let mut tcp = TcpReassembler::new(&config);
        let mut messages = Messages::default();
        for port in 0..20_000u16 {
            let key = StreamKey {
                src_port: port,
                ..key()
            };
            tcp.segment(0, key, &seg(1, 0, b"no end in sight"), &mut messages);
            assert!(tcp.streams() <= 1000);
            assert!(tcp.bytes_held() <= 64 * 1024);
        }
        assert_eq!(tcp.stats().evicted, 19_000);
    }

    #[test]
    fn idle_streams_time_out() {
        let mut tcp = TcpReassembler::new(&ReassemblyConfig {
            tcp_idle_timeout_secs: 10,
            ..ReassemblyConfig::default()
        });
        let mut messages = Messages::default();
        tcp.segment(0, key(), &seg(1, 0, b"x|partial"), &mut messages);
        let other = StreamKey {
            src_port: 1,
            ..key()
        };
        tcp.segment(11_000_000_000, other, &seg(1, 0, b"y"), &mut messages);
        assert_eq!(tcp.stats().idle_timeouts, 1);
        assert_eq!(tcp.stats().truncated, 1);
        assert_eq!(tcp.streams(), 1);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let (m, _) = run(&[
            (u32::MAX - 1, flag::SYN, b""),
            (u32::MAX, 0, b"on"),
            (1, 0, b"e|"),
        ]);
        assert_eq!(m.seen, ["one"]);
    }
}
