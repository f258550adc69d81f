//! Traffic no public capture has, built here: fragmented UDP INVITEs (in
//! and out of order), TCP segments out of order, a gap mid-stream, a stream
//! that never sends Content-Length. Each checked end to end through the
//! pipeline, events and counters both.

mod common;

use common::craft;
use serde_json::Value;

const A: [u8; 4] = [192, 0, 2, 10];
const B: [u8; 4] = [192, 0, 2, 20];

fn invite(call: &str) -> Vec<u8> {
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8\r\n{}",
        "a=rtpmap:0 PCMU/8000\r\n".repeat(60)
    );
    format!(
        "INVITE sip:bob@192.0.2.20 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK{call}\r\n\
         From: <sip:alice@192.0.2.10>;tag=1\r\nTo: <sip:bob@192.0.2.20>\r\nCall-ID: {call}\r\nCSeq: 1 INVITE\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
    .into_bytes()
}

fn bye(call: &str, with_length: bool) -> Vec<u8> {
    let length = if with_length {
        "Content-Length: 0\r\n"
    } else {
        ""
    };
    format!(
        "BYE sip:bob@192.0.2.20 SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.10;branch=z9hG4bK{call}b\r\n\
         From: <sip:alice@192.0.2.10>;tag=1\r\nTo: <sip:bob@192.0.2.20>;tag=2\r\nCall-ID: {call}\r\nCSeq: 2 BYE\r\n{length}\r\n"
    )
    .into_bytes()
}

fn read(path: &std::path::Path) -> (Vec<Value>, sipbeat::stats::Stats) {
    common::read_events(path, &common::config_with_ports(&[5060]))
}

fn call_ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["sip"]["call_id"].as_str().unwrap().to_string())
        .collect()
}

/// Splits a UDP datagram into IPv4 fragments of `size` payload bytes.
fn fragments(id: u16, datagram: &[u8], size: usize) -> Vec<Vec<u8>> {
    datagram
        .chunks(size)
        .enumerate()
        .map(|(i, chunk)| {
            let more = (i + 1) * size < datagram.len();
            craft::ipv4(A, B, 17, id, (i * size, more), chunk)
        })
        .collect()
}

#[test]
fn fragmented_udp_invite_in_and_out_of_order() {
    let message = invite("frag-1");
    assert!(
        message.len() > 1400,
        "large enough to fragment: {}",
        message.len()
    );
    let datagram = craft::udp(5060, 5060, &message);
    let mut frames = fragments(7, &datagram, 600);
    assert_eq!(frames.len(), 3);
    for (name, order) in [
        ("in-order", [0, 1, 2]),
        ("reversed", [2, 1, 0]),
        ("middle-last", [0, 2, 1]),
    ] {
        let shuffled: Vec<Vec<u8>> = order.iter().map(|&i| frames[i].clone()).collect();
        let (events, stats) = read(&craft::pcap(name, &shuffled));
        assert_eq!(call_ids(&events), ["frag-1"], "{name}");
        assert_eq!(
            events[0]["event"]["original"].as_str().unwrap().as_bytes(),
            message.as_slice(),
            "{name}"
        );
        assert_eq!(events[0]["sip"]["sdp"]["media"][0]["port"], 4000, "{name}");
        assert_eq!(stats.defrag.fragments, 3);
        assert_eq!(stats.defrag.reassembled, 1);
    }
    // A fragment that never arrives: no event, and the datagram is counted.
    frames.remove(1);
    let (events, stats) = read(&craft::pcap("lost-fragment", &frames));
    assert!(events.is_empty());
    assert_eq!(stats.defrag.timed_out, 1, "given up at the end of input");
}

fn tcp_frame(seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    craft::ipv4(
        A,
        B,
        6,
        1,
        (0, false),
        &craft::tcp(40000, 5060, seq, flags | craft::ACK, payload),
    )
}

/// The stream `messages` concatenated, cut into `size`-byte segments after a SYN.
fn segments(messages: &[Vec<u8>], size: usize) -> (Vec<Vec<u8>>, Vec<u8>) {
    let stream: Vec<u8> = messages.concat();
    let mut frames = vec![tcp_frame(999, craft::SYN, b"")];
    for (i, chunk) in stream.chunks(size).enumerate() {
        frames.push(tcp_frame(1000 + (i * size) as u32, 0, chunk));
    }
    (frames, stream)
}

#[test]
fn tcp_segments_out_of_order() {
    let messages = [invite("tcp-1"), bye("tcp-1", true), invite("tcp-2")];
    let (mut frames, _) = segments(&messages, 300);
    // Swap pairs of segments after the SYN.
    for pair in frames[1..].chunks_mut(2) {
        pair.reverse();
    }
    let (events, stats) = read(&craft::pcap("tcp-ooo", &frames));
    assert_eq!(call_ids(&events), ["tcp-1", "tcp-1", "tcp-2"]);
    assert!(events.iter().all(|e| e["network"]["transport"] == "tcp"));
    assert!(stats.tcp.out_of_order > 0);
    assert_eq!(stats.tcp.gaps, 0);
}

#[test]
fn gap_mid_stream_is_counted_and_resynchronised() {
    let messages = [
        invite("gap-1"),
        invite("gap-2"),
        bye("gap-3", true),
        invite("gap-4"),
    ];
    let boundaries: Vec<usize> = messages
        .iter()
        .scan(0, |at, m| {
            *at += m.len();
            Some(*at)
        })
        .collect();
    let (frames, _) = segments(&messages, 200);
    // Drop a segment inside gap-2, which is lost with it; after the hole
    // the stream must find gap-3's request line again.
    let lost = boundaries[0] / 200 + 2;
    let frames: Vec<Vec<u8>> = frames
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != lost + 1)
        .map(|(_, f)| f)
        .collect();
    let (events, stats) = read(&craft::pcap("tcp-gap", &frames));
    assert_eq!(call_ids(&events), ["gap-1", "gap-3", "gap-4"]);
    assert_eq!(stats.tcp.gaps, 1);
    assert!(stats.counts.stream_bytes_skipped > 0);
}

#[test]
fn stream_without_content_length_ends_at_the_headers() {
    // RFC 3261 §18.3: over TCP a missing Content-Length means no body.
    let messages = [
        bye("ncl-1", false),
        bye("ncl-2", false),
        bye("ncl-3", false),
    ];
    let (mut frames, stream) = segments(&messages, 1000);
    assert_eq!(frames.len(), 2, "all three in one segment");
    let (events, _) = read(&craft::pcap("tcp-no-length", &frames));
    assert_eq!(call_ids(&events), ["ncl-1", "ncl-2", "ncl-3"]);
    // One byte at a time works just the same.
    frames.truncate(1);
    for (i, byte) in stream.iter().enumerate() {
        frames.push(tcp_frame(1000 + i as u32, 0, std::slice::from_ref(byte)));
    }
    let (events, stats) = read(&craft::pcap("tcp-bytewise", &frames));
    assert_eq!(call_ids(&events), ["ncl-1", "ncl-2", "ncl-3"]);
    assert_eq!(stats.tcp.truncated, 0);
}

#[test]
fn fin_inside_a_message_counts_as_truncated() {
    let message = invite("cut");
    let frames = vec![
        tcp_frame(999, craft::SYN, b""),
        tcp_frame(1000, 0, &message[..500]),
        tcp_frame(1500, craft::FIN, b""),
    ];
    let (events, stats) = read(&craft::pcap("tcp-cut", &frames));
    assert!(events.is_empty());
    assert_eq!(stats.tcp.truncated, 1);
}

/// A MESSAGE whose text body has no trailing CRLF; `broken` gives it a CSeq
/// that is no number, so the parser rejects it.
fn bare_body_message(n: usize, broken: bool) -> Vec<u8> {
    let body = format!("hello number {n}");
    let cseq = if broken { "x" } else { "1" };
    format!(
        "MESSAGE sip:bob@192.0.2.20 SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.10;branch=z9hG4bKm{n}\r\n\
         From: <sip:alice@192.0.2.10>;tag=1\r\nTo: <sip:bob@192.0.2.20>\r\nCall-ID: bare-{n}\r\n\
         CSeq: {cseq} MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
fn after_a_rejected_message_a_bare_body_does_not_swallow_the_next() {
    // The rejected first message's body runs into the next start line on
    // the same line; resync must find it there.
    let messages: Vec<Vec<u8>> = (0..10).map(|n| bare_body_message(n, n == 0)).collect();
    let (frames, _) = segments(&messages, 1400);
    let (events, stats) = read(&craft::pcap("tcp-bare-bodies", &frames));
    let expected: Vec<String> = (1..10).map(|n| format!("bare-{n}")).collect();
    assert_eq!(call_ids(&events), expected);
    assert_eq!(
        stats.rejected.iter().sum::<u64>(),
        1,
        "{:?}",
        stats.rejected
    );
    // A rejected message in the middle costs only itself.
    let messages: Vec<Vec<u8>> = (0..10).map(|n| bare_body_message(n, n == 4)).collect();
    let (frames, _) = segments(&messages, 1400);
    let (events, _) = read(&craft::pcap("tcp-bare-bodies-mid", &frames));
    assert_eq!(events.len(), 9, "{:?}", call_ids(&events));
}
