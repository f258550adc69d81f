//! Arbitrary segment sequences (sequence numbers, flags, payloads, clock)
//! through TCP reassembly with tight limits: no panic, and the byte and
//! stream limits hold after every segment (no unbounded growth).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipbeat::decode::tcp::Segment;
use sipbeat::reassemble::ReassemblyConfig;
use sipbeat::reassemble::tcp::{StreamConsumer, StreamKey, TcpReassembler};
use sipbeat::sip::{Framing, HeaderSlots, Message, Status};

/// Parses SIP messages the way the pipeline does, minus publishing.
struct Framer;

impl StreamConsumer for Framer {
    fn consume(&mut self, _: &StreamKey, bytes: &[u8], in_sync: &mut bool, _: u64) -> usize {
        let mut used = 0;
        while used < bytes.len() {
            let mut slots = HeaderSlots::new();
            match Message::parse(&bytes[used..], &mut slots, Framing::Stream) {
                Ok(Status::Complete(message)) => used += message.consumed,
                Ok(Status::Partial) => break,
                Err(_) => {
                    *in_sync = false;
                    used += 1;
                }
            }
        }
        used
    }
}

fuzz_target!(|data: &[u8]| {
    let config = ReassemblyConfig {
        tcp_max_streams: 4,
        tcp_max_stream_bytes: 2048,
        tcp_max_buffered_bytes: 4096,
        tcp_idle_timeout_secs: 5,
        ..ReassemblyConfig::default()
    };
    let mut tcp = TcpReassembler::new(&config);
    let mut rest = data;
    // Each record: stream (1), seq (4), flags (1), clock step (1), length (1), payload.
    while let [stream, s0, s1, s2, s3, flags, step, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        let key = StreamKey {
            src: [192, 0, 2, stream % 8].into(),
            dst: [192, 0, 2, 200].into(),
            src_port: 40000,
            dst_port: 5060,
        };
        let segment = Segment {
            src_port: 40000,
            dst_port: 5060,
            seq: u32::from_be_bytes([*s0, *s1, *s2, *s3]),
            flags: *flags,
            payload,
        };
        let now = u64::from(*step) * 1_000_000_000;
        tcp.segment(now, key, &segment, &mut Framer);
        assert!(tcp.streams() <= config.tcp_max_streams);
        assert!(tcp.bytes_held() <= config.tcp_max_buffered_bytes);
    }
    tcp.finish(0, &mut Framer);
    assert_eq!(tcp.streams(), 0);
});
