//! Shared helpers for integration tests: where test data lives, running the
//! pipeline into memory, and the external oracles (tshark, ecs-diff).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use sipbeat::config::{Config, FileConfig, Overrides};
use sipbeat::output::{EventMeta, OutputError, Sink};
use sipbeat::stats::Stats;

/// The repository's `testdata/` (permissively licensed captures).
pub fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

/// `../shared/corpus` beside the repository (GPL/AGPL/LGPL-sourced captures
/// stay there), or `$SIPBEAT_CORPUS`. `None` when absent.
pub fn shared_corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("SIPBEAT_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    dir.is_dir().then_some(dir)
}

/// A fresh directory under the system temp dir, removed when dropped —
/// unless the test is failing, when it stays (and its path is printed) for
/// a look at what was left there.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// `sipbeat-NAME-PID`, created empty.
    pub fn new(name: &str) -> ScratchDir {
        let dir = std::env::temp_dir().join(format!("sipbeat-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        ScratchDir(dir)
    }
}

impl std::ops::Deref for ScratchDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept for inspection: {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Whether missing oracles and data must fail the test (CI sets this through
/// `cargo xtask test`) instead of skipping it with a note.
pub fn oracles_required() -> bool {
    std::env::var_os("SIPBEAT_REQUIRE_ORACLES").is_some_and(|v| v != "0")
}

/// Skips (or, when oracles are required, fails) a test that lacks `what`.
pub fn missing(what: &str) {
    assert!(
        !oracles_required(),
        "{what} is required (SIPBEAT_REQUIRE_ORACLES is set)"
    );
    eprintln!("skipped: {what} not available; run `cargo xtask test` for the full suite");
}

/// Events collected in memory, with their keys.
#[derive(Default)]
pub struct Collected {
    pub events: Vec<Vec<u8>>,
    pub keys: Vec<Option<Vec<u8>>>,
    buffer: Vec<u8>,
}

impl Sink for Collected {
    fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buffer
    }

    fn publish(&mut self, start: usize, meta: &EventMeta<'_>) -> Result<(), OutputError> {
        self.events.push(self.buffer.split_off(start));
        self.keys.push(meta.call_id.map(<[u8]>::to_vec));
        Ok(())
    }

    fn flush(&mut self) -> Result<(), OutputError> {
        Ok(())
    }
}

/// Default config with `ports`.
pub fn config_with_ports(ports: &[u16]) -> Config {
    Config::build(
        FileConfig::default(),
        Overrides {
            ports: Some(ports.to_vec()),
            ..Overrides::default()
        },
    )
    .expect("valid config")
}

/// Runs `file` through the pipeline; returns the parsed message events
/// (call records left out) and stats.
pub fn read_events(file: &Path, config: &Config) -> (Vec<Value>, Stats) {
    let (messages, _, stats) = read_messages_and_calls(file, config);
    (messages, stats)
}

/// Runs `file` through the pipeline; returns its message events and its
/// call records (`event.dataset: sip.call`) apart, and the stats.
pub fn read_messages_and_calls(file: &Path, config: &Config) -> (Vec<Value>, Vec<Value>, Stats) {
    let mut sink = Collected::default();
    let stats = sipbeat::read::read_files(&[file], config, &mut sink).expect("read");
    let (calls, messages) = sink
        .events
        .iter()
        .map(|json| sipbeat_testkit::json::parse_event(json).expect("every event is valid JSON"))
        .partition(|event| event["event"]["dataset"] == "sip.call");
    (messages, calls, stats)
}

/// Nested JSON to `a.b.c` keys, arrays kept whole (as Packetbeat's goldens).
pub fn flatten(value: &Value) -> Map<String, Value> {
    fn walk(prefix: &str, value: &Value, out: &mut Map<String, Value>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let name = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(&name, child, out);
                }
            }
            other => {
                out.insert(prefix.to_string(), other.clone());
            }
        }
    }
    let mut out = Map::new();
    walk("", value, &mut out);
    out
}

/// Runs tshark with `args`; `None` when tshark is not installed.
pub fn tshark(args: &[&str]) -> Option<String> {
    let output = std::process::Command::new("tshark")
        .args(args)
        .output()
        .ok()?;
    assert!(
        output.status.success(),
        "tshark {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(String::from_utf8(output.stdout).expect("tshark prints text"))
}

/// Builds Ethernet/IPv4 frames and writes them as a pcap, for tests that
/// need traffic no public capture has.
pub mod craft {
    use std::path::{Path, PathBuf};

    use super::ScratchDir;

    /// An Ethernet frame around an IPv4 packet with the given fields.
    pub fn ipv4(
        src: [u8; 4],
        dst: [u8; 4],
        protocol: u8,
        id: u16,
        fragment: (usize, bool),
        payload: &[u8],
    ) -> Vec<u8> {
        let (offset, more) = fragment;
        let total = 20 + payload.len();
        let flags_offset = (offset / 8) as u16 | if more { 0x2000 } else { 0 };
        let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        frame.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8]);
        frame.extend_from_slice(&id.to_be_bytes());
        frame.extend_from_slice(&flags_offset.to_be_bytes());
        frame.extend_from_slice(&[64, protocol, 0, 0]);
        frame.extend_from_slice(&src);
        frame.extend_from_slice(&dst);
        frame.extend_from_slice(payload);
        frame
    }

    /// A UDP header and payload.
    pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + payload.len());
        out.extend_from_slice(&sport.to_be_bytes());
        out.extend_from_slice(&dport.to_be_bytes());
        out.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(payload);
        out
    }

    pub const SYN: u8 = 0x02;
    pub const FIN: u8 = 0x01;
    pub const ACK: u8 = 0x10;

    /// A TCP header (no options) and payload.
    pub fn tcp(sport: u16, dport: u16, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(20 + payload.len());
        out.extend_from_slice(&sport.to_be_bytes());
        out.extend_from_slice(&dport.to_be_bytes());
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        out.extend_from_slice(payload);
        out
    }

    /// A crafted capture, deleted (with its directory) when dropped.
    pub struct Crafted {
        path: PathBuf,
        _dir: ScratchDir,
    }

    impl std::ops::Deref for Crafted {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.path
        }
    }

    /// Writes `frames` (Ethernet, 1 ms apart) as a nanosecond pcap in a fresh temp dir.
    pub fn pcap(name: &str, frames: &[Vec<u8>]) -> Crafted {
        let dir = ScratchDir::new(&format!("craft-{name}"));
        let path = dir.join(format!("{name}.pcap"));
        write(&path, frames);
        Crafted { path, _dir: dir }
    }

    fn write(path: &Path, frames: &[Vec<u8>]) {
        let mut out = Vec::new();
        out.extend_from_slice(&0xa1b2_3c4du32.to_le_bytes());
        out.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&65535u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        for (i, frame) in frames.iter().enumerate() {
            out.extend_from_slice(&1_700_000_000u32.to_le_bytes());
            out.extend_from_slice(&(i as u32 * 1_000_000).to_le_bytes());
            out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            out.extend_from_slice(frame);
        }
        std::fs::write(path, out).unwrap();
    }
}

/// Nanoseconds since the epoch of `YYYY-MM-DDTHH:MM:SS.fffffffffZ`.
pub fn rfc3339_ns(text: &str) -> i128 {
    let number = |range: std::ops::Range<usize>| text[range].parse::<i128>().unwrap();
    let (year, month, day) = (number(0..4), number(5..7), number(8..10));
    // Days from civil (proleptic Gregorian), March-based years.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + number(11..13) * 3600 + number(14..16) * 60 + number(17..19);
    let fraction = text[20..text.len() - 1].to_string();
    seconds * 1_000_000_000 + format!("{fraction:0<9}")[..9].parse::<i128>().unwrap()
}

/// Reading back what the Kafka output wrote.
#[cfg(feature = "kafka")]
pub mod kafka {
    use std::time::{Duration, Instant};

    use rdkafka::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use sipbeat_testkit::Tansu;

    /// One consumed record.
    pub struct Record {
        pub partition: i32,
        pub offset: i64,
        pub key: Option<Vec<u8>>,
        pub payload: Vec<u8>,
        /// The record's CreateTime, ms since the epoch.
        pub timestamp_ms: Option<i64>,
    }

    /// Reads `topic` from the beginning until `expected` records arrive or
    /// `quiet` passes with none.
    pub fn consume(broker: &Tansu, topic: &str, expected: usize, quiet: Duration) -> Vec<Record> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", broker.address())
            .set(
                "group.id",
                format!("sipbeat-test-{topic}-{}", std::process::id()),
            )
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("session.timeout.ms", "6000")
            .create()
            .unwrap();
        consumer.subscribe(&[topic]).unwrap();
        let mut records = Vec::new();
        let mut last = Instant::now();
        let hard_deadline = Instant::now() + Duration::from_secs(120);
        while records.len() < expected || last.elapsed() < Duration::from_secs(2) {
            if last.elapsed() > quiet || Instant::now() > hard_deadline {
                break;
            }
            if let Some(message) = consumer.poll(Duration::from_millis(200)) {
                let message = message.unwrap();
                records.push(Record {
                    partition: message.partition(),
                    offset: message.offset(),
                    key: message.key().map(<[u8]>::to_vec),
                    payload: message.payload().unwrap_or_default().to_vec(),
                    timestamp_ms: message.timestamp().to_millis(),
                });
                last = Instant::now();
            }
        }
        records
    }
}
