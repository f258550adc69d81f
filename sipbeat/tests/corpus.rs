//! Every UDP capture of the shared corpus through `sipbeat read`: SIP message
//! counts agree with tshark's (`tshark -Y "sip && udp"`), except where tshark
//! counts what sipbeat must refuse, each named below with its reason.

mod common;

use std::path::Path;

use sipbeat::sip::Error;

/// SIP ports of the corpus: 5060 and the 5062 of suricata-verify's
/// pattern-matching capture (tshark finds SIP there by heuristics).
const PORTS: &[u16] = &[5060, 5062];

/// How sipbeat's count relates to tshark's for one capture.
enum Expect {
    /// One event per frame tshark decodes as SIP over UDP.
    SameAsTshark,
    /// tshark dissects these frames as (malformed) SIP; sipbeat rejects each
    /// with `reason`, as RFC 4475 asks of the same defect.
    RejectedAs {
        events: usize,
        reason: Error,
        count: u64,
    },
    /// A fuzzed capture: tshark labels corrupt frames SIP anyway. sipbeat
    /// publishes the intact messages and rejects the rest by reason.
    Fuzzed,
    /// Tunnelled or IP-fragmented SIP, decoded once decapsulation and
    /// reassembly land (issue 5); until then counted as skipped.
    NeedsReassemblyOrDecap,
}

fn expectation(file: &str) -> Expect {
    match file {
        // "Content-Length: bad" / "xyz": RFC 3261 says 1*DIGIT (RFC 4475 §3.1.2.3).
        "pcaps/zeek/invalid-content-length.pcap" => Expect::RejectedAs {
            events: 0,
            reason: Error::InvalidContentLength,
            count: 2,
        },
        "pcaps/ndpi/fuzz-2006-06-26-2594.pcap" => Expect::Fuzzed,
        "pcaps/heplify/erspan_sip_ipv4_udp.pcapng"
        | "pcaps/ndpi/gre.pcapng"
        | "pcaps/sngrep/ipv6frag.pcap" => Expect::NeedsReassemblyOrDecap,
        _ => Expect::SameAsTshark,
    }
}

fn tshark_udp_sip_frames(pcap: &Path) -> Option<usize> {
    let out = common::tshark(&[
        "-r",
        pcap.to_str()?,
        "-Y",
        "sip && udp",
        "-T",
        "fields",
        "-e",
        "frame.number",
    ])?;
    Some(out.lines().filter(|l| !l.is_empty()).count())
}

#[test]
fn udp_captures_match_tshark() {
    let Some(corpus) = common::shared_corpus() else {
        return common::missing("../shared/corpus");
    };
    let manifest = std::fs::read_to_string(corpus.join("MANIFEST.tsv")).unwrap();
    let config = common::config_with_ports(PORTS);
    let mut checked = 0;
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (file, transports) = (cols[0], cols[3]);
        if !transports.split(',').any(|t| t == "udp") && transports != "-" {
            continue;
        }
        let path = corpus.join(file);
        let (events, stats) = common::read_events(&path, &config);
        let Some(tshark) = tshark_udp_sip_frames(&path) else {
            return common::missing("tshark");
        };
        match expectation(file) {
            Expect::SameAsTshark => assert_eq!(
                events.len(),
                tshark,
                "{file}: events vs tshark frames\n{}",
                stats.summary(Default::default())
            ),
            Expect::RejectedAs {
                events: n,
                reason,
                count,
            } => {
                assert_eq!(events.len(), n, "{file}");
                assert_eq!(stats.rejected_by(reason), count, "{file}");
                assert_eq!(
                    n as u64 + count,
                    tshark as u64,
                    "{file}: every tshark frame accounted for"
                );
            }
            Expect::Fuzzed => {
                assert!(events.len() < tshark, "{file}: fuzzing broke most messages");
                assert!(stats.rejected_total() > 0, "{file}");
            }
            Expect::NeedsReassemblyOrDecap => {
                assert!(events.len() <= tshark, "{file}");
            }
        }
        // Every frame is accounted for: published, skipped or rejected.
        let skipped: u64 =
            stats.decode.iter().sum::<u64>() + stats.other_ports + stats.unsupported_link;
        assert_eq!(
            stats.frames + stats.unsupported_link,
            skipped + stats.rejected_total() + stats.events,
            "{file}"
        );
        checked += 1;
    }
    assert!(checked >= 25, "only {checked} UDP captures checked");
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
    assert_eq!(stats.frames, 691);
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
