//! Transactions against Wireshark, on every UDP capture of the corpus:
//! each message's `sip.retransmission` is tshark's `sip.resend`, and each
//! response's `event.duration` is tshark's `sip.response-time` (ms,
//! truncated) to within 1 ms.
//!
//! Messages are paired by capture time, Call-ID, CSeq and method or code.
//! Left out of the timing comparison, where Wireshark measures something
//! else: calls with a CANCEL (Wireshark times the 487 from the CANCEL, which
//! shares the INVITE's CSeq number; sipbeat from the INVITE's first
//! transmission) and responses that are themselves resends (Wireshark
//! times them from the request too, sipbeat as well, but a repeated
//! request in between moves Wireshark's start). A response more than 32 s
//! after its request (synthetic timestamps) must carry no duration: the
//! transaction has timed out, where Wireshark keeps everything.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// SIP ports of the corpus (as tests/corpus.rs).
const PORTS: &[u16] = &[5060, 5062, 5090, 5260, 6060];

/// Transactions are forgotten this long after their last message (64·T1).
const TIMEOUT_MS: i64 = 32_000;

/// (capture ns, Call-ID, CSeq number, method or code).
type Key = (i128, String, String, String);

struct Tshark {
    resend: bool,
    response_ms: Option<i64>,
}

fn tshark(pcap: &Path) -> Option<BTreeMap<Key, Tshark>> {
    let out = common::tshark(&[
        "-r",
        pcap.to_str()?,
        "-Y",
        "sip && udp",
        "-T",
        "fields",
        "-E",
        "separator=\t",
        "-E",
        "occurrence=f",
        "-e",
        "frame.time_epoch",
        "-e",
        "sip.Call-ID",
        "-e",
        "sip.CSeq.seq",
        "-e",
        "sip.Method",
        "-e",
        "sip.Status-Code",
        "-e",
        "sip.resend",
        "-e",
        "sip.response-time",
        "-e",
        "sip.response-request",
    ])?;
    let mut messages = BTreeMap::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 8 || f[1].is_empty() {
            continue;
        }
        let (seconds, fraction) = f[0].split_once('.').unwrap_or((f[0], "0"));
        let ns = seconds.parse::<i128>().ok()? * 1_000_000_000
            + format!("{fraction:0<9}")[..9].parse::<i128>().ok()?;
        let what = if f[3].is_empty() { f[4] } else { f[3] };
        messages.insert(
            (ns, f[1].to_string(), f[2].to_string(), what.to_string()),
            Tshark {
                resend: f[5] == "1" || f[5].eq_ignore_ascii_case("true"),
                // Only where tshark links the request: without it, it
                // times the response from nothing.
                response_ms: f[6].parse().ok().filter(|_| !f[7].is_empty()),
            },
        );
    }
    Some(messages)
}

fn captures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["pcaps/packetbeat", "pcaps/suricata-verify", "pcaps/zeek"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(common::testdata().join(dir)).unwrap())
        .map(|entry| entry.unwrap().path())
        .collect();
    if let Some(corpus) = common::shared_corpus() {
        let manifest = std::fs::read_to_string(corpus.join("MANIFEST.tsv")).unwrap();
        for line in manifest.lines().skip(1) {
            let fields: Vec<&str> = line.split('\t').collect();
            if fields.get(3).is_some_and(|t| t.contains("udp")) {
                files.push(corpus.join(fields[0]));
            }
        }
    }
    files
}

#[test]
fn retransmissions_and_response_times_match_wireshark() {
    if common::tshark(&["-v"]).is_none() {
        return common::missing("tshark");
    }
    let config = common::config_with_ports(PORTS);
    let (mut paired, mut timed, mut resends) = (0, 0, 0);
    for capture in captures() {
        let Some(truth) = tshark(&capture) else {
            return common::missing("tshark");
        };
        let (events, _) = common::read_events(&capture, &config);
        let udp: Vec<&serde_json::Value> = events
            .iter()
            .filter(|e| e["network"]["transport"] == "udp")
            .collect();
        let cancelled: BTreeSet<&str> = udp
            .iter()
            .filter(|e| e["sip"]["method"] == "CANCEL")
            .filter_map(|e| e["sip"]["call_id"].as_str())
            .collect();
        let mut here = 0;
        for event in &udp {
            let sip = &event["sip"];
            let text = |value: &serde_json::Value| match value {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            let what = match sip["method"].as_str() {
                Some(method) => method.to_string(),
                None => text(&sip["code"]),
            };
            let key = (
                common::rfc3339_ns(sip["timestamp"].as_str().unwrap()),
                sip["call_id"].as_str().unwrap_or_default().to_string(),
                text(&sip["cseq"]["code"]),
                what,
            );
            let Some(wireshark) = truth.get(&key) else {
                continue;
            };
            here += 1;
            let resend = sip["retransmission"] == true;
            assert_eq!(
                resend,
                wireshark.resend,
                "{}: {key:?}: sip.retransmission vs sip.resend",
                capture.display()
            );
            resends += usize::from(resend);
            let call = key.1.as_str();
            // Responses only: on an ACK, tshark puts the setup time here.
            if let Some(ms) = wireshark.response_ms
                && sip["method"].is_null()
                && !wireshark.resend
                && !cancelled.contains(call)
            {
                let duration = event["event"]["duration"].as_i64().unwrap();
                if ms >= TIMEOUT_MS {
                    // Wireshark has no timers; sipbeat forgets a
                    // transaction 32 s after its last message.
                    assert_eq!(duration, 0, "{key:?}: timed out");
                    continue;
                }
                assert!(
                    event["event"]["start"] != event["event"]["end"] || duration < 1_000_000,
                    "{key:?}: a timed response spans its transaction"
                );
                assert!(
                    (duration / 1_000_000 - ms).abs() <= 1,
                    "{}: {key:?}: event.duration {duration} ns vs sip.response-time {ms} ms",
                    capture.display()
                );
                timed += 1;
            }
        }
        // Nearly every UDP event finds its tshark twin (a capture of a
        // message or two may be one tshark does not take for SIP).
        assert!(
            udp.len() < 20 || here * 10 >= udp.len() * 9,
            "{}: only {here} of {} UDP events paired with tshark's",
            capture.display(),
            udp.len()
        );
        paired += here;
    }
    eprintln!(
        "{paired} messages paired, {timed} response times compared, {resends} retransmissions"
    );
    // With the shared corpus (CI has it): 822 paired, 344 timed, 59
    // retransmissions when this was written.
    let full = common::shared_corpus().is_some();
    assert!(paired > if full { 700 } else { 50 }, "{paired}");
    assert!(timed > if full { 300 } else { 20 }, "{timed}");
    assert!(!full || resends > 30, "{resends}");
}

/// Two workers whose queues split each capture by sender (RSS that is not
/// symmetric: a request on one, its response on the other) write the same
/// events and call records as one worker reading it all: every message
/// reaches the worker that owns its Call-ID.
#[test]
fn sharded_workers_track_as_one() {
    use sipbeat::pipeline::Pipeline;
    let config = common::config_with_ports(PORTS);
    let agent = sipbeat::event::Agent::named("t", "h");
    let (mut handed, mut events_checked) = (0, 0);
    for capture in captures() {
        let mut whole = common::Collected::default();
        let mut one = Pipeline::new(config.pipeline(), agent.clone());
        let mut split = common::Collected::default();
        let mut two: Vec<Pipeline> = sipbeat::shard::shards(2)
            .into_iter()
            .map(|shard| Pipeline::new(config.pipeline(), agent.clone()).sharded(shard))
            .collect();
        let mut file = sipbeat::capture::pcap::PcapFile::open(&capture).unwrap();
        file.for_each_frame(|frame| {
            one.process(frame, &mut whole).unwrap();
            // The queue: by the IPv4/IPv6 source address's last byte.
            let queue = match frame.data.get(12..14) {
                Some([0x08, 0x00]) => frame.data.get(29),
                Some([0x86, 0xdd]) => frame.data.get(37),
                _ => frame.data.last(),
            }
            .map_or(0, |b| usize::from(*b) % 2);
            two[queue].process(frame, &mut split).unwrap();
            for worker in &mut two {
                worker.receive_handoffs(&mut split).unwrap();
            }
        })
        .unwrap();
        one.finish(&mut whole).unwrap();
        for worker in &mut two {
            worker
                .close_shard(&mut split, std::time::Duration::ZERO)
                .unwrap();
        }
        for worker in &mut two {
            worker.receive_handoffs(&mut split).unwrap();
            worker.finish(&mut split).unwrap();
            handed += worker.stats().counts.handed_over;
            assert_eq!(worker.stats().counts.kept_inbox_full, 0);
        }
        // Call records at the end of input come in each worker's own
        // order: compare as sorted sets of whole events.
        let sorted = |sink: &common::Collected| {
            let mut all: Vec<&[u8]> = sink.events.iter().map(Vec::as_slice).collect();
            all.sort();
            all.into_iter().map(<[u8]>::to_vec).collect::<Vec<_>>()
        };
        assert_eq!(
            sorted(&split),
            sorted(&whole),
            "{}: the same events, durations, retransmissions and call records",
            capture.display()
        );
        events_checked += whole.events.len();
    }
    eprintln!("{events_checked} events the same; {handed} messages handed over");
    assert!(handed > 100, "the split sent messages across: {handed}");
}
