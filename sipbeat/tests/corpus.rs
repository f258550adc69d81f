//! Every capture of the shared corpus through `sipbeat read`: SIP message
//! counts agree with tshark's, except where tshark counts what sipbeat must
//! refuse or does not carry, each named below with its reason.
//!
//! tshark counts frames; a TCP frame may hold several messages, or finish
//! one begun in earlier frames. So messages are counted as tshark's request
//! and status lines (one per message), with TCP/6060 decoded as SIP as
//! MANIFEST.tsv says.

mod common;

use std::path::Path;

use sipbeat::sip::Error;

/// The corpus's SIP ports: 5060, plus 5062 (suricata-verify pattern
/// matching, sngrep's IPv6 fragments), 5090 (sngrep's IP-in-IP TCP), 5260
/// (heplify's ERSPAN mirror) and 6060 (heplify's fragmented TCP).
const PORTS: &[u16] = &[5060, 5062, 5090, 5260, 6060];

/// How sipbeat's count relates to tshark's for one capture.
enum Expect {
    /// One event per SIP message tshark decodes.
    SameAsTshark,
    /// tshark dissects some messages that sipbeat rejects with `reason`, as
    /// RFC 4475 asks of the same defect.
    Rejects { reason: Error, count: u64 },
    /// Messages tshark finds inside a layer sipbeat does not decode
    /// (`filter` selects them in tshark).
    NotCarried { filter: &'static str },
    /// A fuzzed capture: tshark labels corrupt frames SIP anyway. sipbeat
    /// publishes the intact messages and rejects the rest by reason.
    Fuzzed,
}

fn expectation(file: &str) -> Expect {
    match file {
        // "Content-Length: bad" / "xyz": RFC 3261 says 1*DIGIT (RFC 4475 §3.1.2.3).
        "pcaps/zeek/invalid-content-length.pcap" => Expect::Rejects {
            reason: Error::InvalidContentLength,
            count: 2,
        },
        // Six mirrored messages carry binary garbage inside their To tag.
        "pcaps/heplify/erspan_sip_ipv4_udp.pcapng" => Expect::Rejects {
            reason: Error::InvalidTo,
            count: 6,
        },
        // SIP over WebSocket (RFC 7118) on TCP/8080.
        "pcaps/heplify/sip_tcp_websocket.pcap" => Expect::NotCarried {
            filter: "websocket",
        },
        // SCTP is not a transport sipbeat decodes.
        "pcaps/heplify/sip_sctp.pcap" => Expect::NotCarried { filter: "sctp" },
        "pcaps/ndpi/fuzz-2006-06-26-2594.pcap" => Expect::Fuzzed,
        _ => Expect::SameAsTshark,
    }
}

/// SIP messages tshark finds in `pcap`, optionally only those matching `filter`.
fn tshark_messages(pcap: &Path, filter: Option<&str>) -> Option<usize> {
    let display = match filter {
        Some(extra) => format!("sip && {extra}"),
        None => "sip".to_string(),
    };
    let out = common::tshark(&[
        "-r",
        pcap.to_str()?,
        "-d",
        "tcp.port==6060,sip",
        "-Y",
        &display,
        "-T",
        "fields",
        "-E",
        "aggregator=\u{1}",
        "-E",
        "separator=\u{1}",
        "-e",
        "sip.Request-Line",
        "-e",
        "sip.Status-Line",
    ])?;
    Some(
        out.split(['\u{1}', '\n'])
            .filter(|field| !field.trim().is_empty())
            .count(),
    )
}

#[test]
fn every_capture_matches_tshark() {
    let Some(corpus) = common::shared_corpus() else {
        return common::missing("../shared/corpus");
    };
    let manifest = std::fs::read_to_string(corpus.join("MANIFEST.tsv")).unwrap();
    let config = common::config_with_ports(PORTS);
    let mut checked = 0;
    for line in manifest.lines().skip(1) {
        let file = line.split('\t').next().unwrap();
        let path = corpus.join(file);
        let (events, stats) = common::read_events(&path, &config);
        let Some(tshark) = tshark_messages(&path, None) else {
            return common::missing("tshark");
        };
        let summary = stats.summary(Default::default());
        match expectation(file) {
            Expect::SameAsTshark => {
                assert_eq!(events.len(), tshark, "{file}: events vs tshark\n{summary}")
            }
            Expect::Rejects { reason, count } => {
                assert_eq!(stats.rejected_by(reason), count, "{file}\n{summary}");
                assert_eq!(
                    events.len() as u64 + count,
                    tshark as u64,
                    "{file}: every tshark message accounted for\n{summary}"
                );
            }
            Expect::NotCarried { filter } => {
                let inside = tshark_messages(&path, Some(filter)).unwrap();
                assert!(inside > 0, "{file}: tshark finds SIP over {filter}");
                assert_eq!(events.len() + inside, tshark, "{file}\n{summary}");
            }
            Expect::Fuzzed => {
                assert!(events.len() < tshark, "{file}: fuzzing broke most messages");
                assert!(stats.rejected_total() > 0, "{file}");
            }
        }
        assert_eq!(
            stats.counts.events,
            events.len() as u64 + stats.calls.records,
            "{file}: a message event each, and the call records"
        );
        checked += 1;
    }
    assert!(checked >= 34, "only {checked} captures checked");
}

/// The tunnelled, fragmented and TCP captures the issue names produce their
/// events, with the transport and addresses of the innermost packet.
#[test]
fn tunnels_fragments_and_streams() {
    let Some(corpus) = common::shared_corpus() else {
        return common::missing("../shared/corpus");
    };
    let config = common::config_with_ports(PORTS);
    let cases: &[(&str, &str, &str)] = &[
        ("pcaps/heplify/sip_ipv4_tcp_fragmented.pcap", "tcp", "ipv4"),
        ("pcaps/heplify/sip_ipv4_tcp_retrans.pcap", "tcp", "ipv4"),
        ("pcaps/sngrep/ipv6frag.pcap", "udp", "ipv6"),
        ("pcaps/heplify/erspan_sip_ipv4_udp.pcapng", "udp", "ipv4"),
        ("pcaps/heplify/ipip0.pcap", "udp", "ipv4"),
        ("pcaps/sngrep/ipip.pcap", "tcp", "ipv4"),
        ("pcaps/ndpi/gre.pcapng", "udp", "ipv4"),
    ];
    for &(file, transport, ip) in cases {
        let (events, stats) = common::read_events(&corpus.join(file), &config);
        assert!(!events.is_empty(), "{file}");
        let matching = events
            .iter()
            .filter(|e| e["network"]["transport"] == transport && e["network"]["type"] == ip)
            .count();
        assert!(matching > 0, "{file}: no {transport}/{ip} events");
        for event in events.iter().filter(|e| e["network"]["transport"] == "tcp") {
            assert_eq!(event["network"]["iana_number"], "6", "{file}");
        }
        if file.contains("frag") && ip == "ipv6" {
            assert!(stats.defrag.reassembled >= 2, "{file}: {:?}", stats.defrag);
        }
    }
}

/// The negative cases produce no event, and the summary says why.
#[test]
fn http_on_the_sip_port_is_not_sip() {
    let Some(corpus) = common::shared_corpus() else {
        return common::missing("../shared/corpus");
    };
    let (events, stats) = common::read_events(
        &corpus.join("pcaps/ndpi/http_on_sip_port.pcap"),
        &common::config_with_ports(PORTS),
    );
    assert!(events.is_empty());
    assert!(
        stats.rejected_by(Error::NotSip) > 0 || stats.counts.stream_bytes_skipped > 0,
        "{}",
        stats.summary(Default::default())
    );
}

/// The negative case carries no SIP, and sipbeat says why.
#[test]
fn ssdp_is_not_sip() {
    let pcap = common::testdata().join("pcaps/suricata-verify/sip-ssdp-pm--ssdp.pcap");
    let (events, stats) = common::read_events(&pcap, &common::config_with_ports(&[1900, 5060]));
    assert!(events.is_empty());
    assert_eq!(stats.rejected_by(Error::NotSip), 1);
}

/// The bundled default capture (suricata-verify's copy of Wireshark's
/// aaa.pcap): 81 SIP messages among 691 frames, 21 non-SIP datagrams on 5060.
#[test]
fn bundled_capture_counts() {
    let pcap = common::testdata().join("pcaps/suricata-verify/sip-method--sip.pcap");
    let (events, stats) = common::read_events(&pcap, &common::config_with_ports(&[5060]));
    assert_eq!(events.len(), 81);
    assert_eq!(stats.counts.frames, 691);
    assert_eq!(stats.rejected_by(Error::NotSip), 21);
    let methods: std::collections::BTreeSet<String> = events
        .iter()
        .filter_map(|e| e["sip"]["method"].as_str().map(str::to_string))
        .collect();
    assert!(
        methods.contains("REGISTER") && methods.contains("INVITE"),
        "{methods:?}"
    );
}
