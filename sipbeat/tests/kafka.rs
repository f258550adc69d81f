//! The Kafka output against a real broker (tansu, Kafka wire protocol),
//! started and stopped by the tests: events arrive byte for byte with
//! Call-ID keys in capture order, a 30-second broker outage loses and
//! duplicates nothing, and queue-full drops are exactly what is missing.
#![cfg(feature = "kafka")]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use sipbeat::config::{Config, FileConfig, Overrides};
use sipbeat::output::kafka::{KafkaConfig, KafkaCounters, KafkaSink};
use sipbeat::output::{EventMeta, Output, Sink};

/// The tansu binary: `$TANSU`, on PATH, or in cargo's bin directory.
fn tansu() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TANSU") {
        return Some(PathBuf::from(path));
    }
    let on_path = Command::new("sh")
        .args(["-c", "command -v tansu"])
        .output()
        .ok()?;
    if on_path.status.success() {
        return Some(PathBuf::from(
            String::from_utf8_lossy(&on_path.stdout).trim(),
        ));
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    let path = home.join("bin/tansu");
    path.exists().then_some(path)
}

/// A tansu broker on a free loopback port, in memory, for one test.
struct Broker {
    child: Child,
    port: u16,
    tansu: PathBuf,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Broker {
    fn start(name: &str) -> Option<Broker> {
        let tansu = tansu()?;
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // A directory of its own: tansu reads a `.env` from where it starts.
        let dir = TempDir(
            std::env::temp_dir().join(format!("sipbeat-tansu-{name}-{}", std::process::id())),
        );
        std::fs::create_dir_all(&dir.0).unwrap();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&tansu)
            .current_dir(&dir.0)
            .env_remove("RUST_LOG")
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu starts");
        let broker = Broker {
            child,
            port,
            tansu,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(broker)
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn create_topic(&self, topic: &str, partitions: u32) {
        let status = Command::new(&self.tansu)
            .current_dir(&self._dir.0)
            .env_remove("RUST_LOG")
            .args([
                "topic",
                "create",
                topic,
                "--broker",
                &format!("tcp://127.0.0.1:{}", self.port),
            ])
            .args(["--partitions", &partitions.to_string()])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "tansu topic create {topic}");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.signal("-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One consumed record.
struct Record {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
}

/// Reads `topic` from the beginning until `expected` records arrive or
/// `quiet` passes with none.
fn consume(broker: &Broker, topic: &str, expected: usize, quiet: Duration) -> Vec<Record> {
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
            });
            last = Instant::now();
        }
    }
    records
}

fn broker_or_skip(name: &str) -> Option<Broker> {
    let broker = Broker::start(name);
    if broker.is_none() {
        common::missing(
            "tansu (cargo install tansu --version 0.6.0 --locked --no-default-features --features dynostore)",
        );
    }
    broker
}

fn kafka_config(broker: &Broker, topic: &str) -> KafkaConfig {
    KafkaConfig::from_url(&format!("kafka://{}/{topic}", broker.address())).unwrap()
}

#[test]
fn read_to_kafka_matches_stdout_byte_for_byte() {
    let Some(broker) = broker_or_skip("read") else {
        return;
    };
    broker.create_topic("sip-read", 3);
    let mut captures = vec![
        common::testdata().join("pcaps/suricata-verify/sip-method--sip.pcap"),
        common::testdata().join("pcaps/packetbeat/sip.pcap"),
    ];
    if let Some(corpus) = common::shared_corpus() {
        captures.push(corpus.join("packetbeat/pcaps/sip_tcp.pcap"));
        captures.push(corpus.join("pcaps/ndpi/FAX-Call-t38-CA-TDM-SIP-FB-1.pcap"));
    }
    let ports = Overrides {
        ports: Some(vec![5060]),
        ..Overrides::default()
    };
    // What stdout would get.
    let config = Config::build(FileConfig::default(), ports.clone()).unwrap();
    let mut expected = common::Collected::default();
    sipbeat::read::read_files(&captures, &config, &mut expected).unwrap();
    // The same through Kafka.
    let kafka = Config::build(
        FileConfig::default(),
        Overrides {
            output: Some(Output::Kafka(Box::new(kafka_config(&broker, "sip-read")))),
            ..ports
        },
    )
    .unwrap();
    let mut sink = kafka.output.open().unwrap();
    let stats = sipbeat::read::read_files(&captures, &kafka, sink.as_mut()).unwrap();
    assert!(
        sink.summary()
            .unwrap()
            .contains(&format!("delivered={}", stats.events)),
        "{:?}",
        sink.summary()
    );

    let records = consume(
        &broker,
        "sip-read",
        expected.events.len(),
        Duration::from_secs(20),
    );
    assert_eq!(records.len(), expected.events.len(), "every event once");
    // Per Call-ID, records come in capture order within one partition.
    let mut by_call: BTreeMap<Vec<u8>, Vec<&Record>> = BTreeMap::new();
    for record in &records {
        by_call
            .entry(record.key.clone().expect("keyed by Call-ID"))
            .or_default()
            .push(record);
    }
    let mut expected_by_call: BTreeMap<Vec<u8>, Vec<&[u8]>> = BTreeMap::new();
    for (event, key) in expected.events.iter().zip(&expected.keys) {
        expected_by_call
            .entry(key.clone().unwrap())
            .or_default()
            .push(event);
    }
    assert_eq!(by_call.len(), expected_by_call.len());
    for (call, mut got) in by_call {
        got.sort_by_key(|r| r.offset);
        assert!(
            got.iter().all(|r| r.partition == got[0].partition),
            "one partition per Call-ID"
        );
        let got: Vec<&[u8]> = got.iter().map(|r| r.payload.as_slice()).collect();
        assert_eq!(
            got,
            expected_by_call[&call],
            "{}",
            String::from_utf8_lossy(&call)
        );
    }
}

fn event(i: usize) -> (Vec<u8>, Vec<u8>) {
    let call = format!("outage-{}", i % 50).into_bytes();
    (format!("{{\"n\":{i}}}").into_bytes(), call)
}

fn publish(sink: &mut KafkaSink, i: usize) {
    let (json, call) = event(i);
    let meta = EventMeta {
        call_id: Some(&call),
        method: Some(b"OPTIONS"),
        kind: "request",
    };
    sink.publish(&json, &meta).unwrap();
}

fn numbers(records: &[Record]) -> Vec<usize> {
    records
        .iter()
        .map(|r| {
            let text = String::from_utf8_lossy(&r.payload);
            text.trim_start_matches("{\"n\":")
                .trim_end_matches('}')
                .parse()
                .unwrap()
        })
        .collect()
}

#[test]
fn broker_paused_thirty_seconds_loses_nothing() {
    let Some(broker) = broker_or_skip("outage") else {
        return;
    };
    broker.create_topic("sip-outage", 3);
    let mut sink = KafkaSink::new(&kafka_config(&broker, "sip-outage")).unwrap();
    let counters = sink.counters();
    let total = 4000;
    let started = Instant::now();
    let mut paused = false;
    let mut resumed = false;
    for i in 0..total {
        // A steady 100 events/s over 40 s; the broker stops from 5 s to 35 s.
        let due = Duration::from_millis(10 * i as u64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
        if !paused && started.elapsed() >= Duration::from_secs(5) {
            broker.signal("-STOP");
            paused = true;
        }
        if paused && !resumed && started.elapsed() >= Duration::from_secs(35) {
            broker.signal("-CONT");
            resumed = true;
        }
        publish(&mut sink, i);
    }
    if !resumed {
        broker.signal("-CONT");
    }
    sink.flush().unwrap();
    let records = consume(&broker, "sip-outage", total, Duration::from_secs(30));
    let got: HashSet<usize> = numbers(&records).into_iter().collect();
    assert_eq!(records.len(), total, "no event lost or duplicated");
    assert_eq!(got.len(), total);
    assert_eq!(KafkaCounters::get(&counters.delivered), total as u64);
    assert_eq!(KafkaCounters::get(&counters.enqueued), total as u64);
    assert_eq!(KafkaCounters::get(&counters.failed), 0);
    assert_eq!(KafkaCounters::get(&counters.dropped_queue_full), 0);
}

#[test]
fn queue_full_drops_are_exactly_what_is_missing() {
    let Some(broker) = broker_or_skip("full") else {
        return;
    };
    broker.create_topic("sip-full", 3);
    let mut config = kafka_config(&broker, "sip-full");
    config.queue_max_messages = 200;
    config.max_block_ms = Some(0);
    let mut sink = KafkaSink::new(&config).unwrap();
    let counters = sink.counters();
    // Let the producer connect, then stop the broker and overflow the queue.
    publish(&mut sink, 0);
    sink.flush().unwrap();
    broker.signal("-STOP");
    let total = 2000;
    for i in 1..total {
        publish(&mut sink, i);
    }
    broker.signal("-CONT");
    sink.flush().unwrap();
    let dropped = KafkaCounters::get(&counters.dropped_queue_full) as usize;
    assert!(dropped > 0, "the queue of 200 overflowed");
    let records = consume(
        &broker,
        "sip-full",
        total - dropped,
        Duration::from_secs(30),
    );
    assert_eq!(
        records.len(),
        total - dropped,
        "received + dropped = published"
    );
    assert_eq!(
        KafkaCounters::get(&counters.delivered) as usize,
        records.len()
    );
}

#[test]
fn fatal_producer_error_recreates_the_producer_and_resends() {
    let Some(broker) = broker_or_skip("fatal") else {
        return;
    };
    broker.create_topic("sip-fatal", 3);
    let mut sink = KafkaSink::new(&kafka_config(&broker, "sip-fatal")).unwrap();
    let counters = sink.counters();
    for i in 0..100 {
        publish(&mut sink, i);
    }
    sink.inject_fatal_error();
    for i in 100..200 {
        publish(&mut sink, i);
    }
    sink.flush().unwrap();
    assert_eq!(KafkaCounters::get(&counters.producer_restarts), 1);
    let records = consume(&broker, "sip-fatal", 200, Duration::from_secs(20));
    let got: HashSet<usize> = numbers(&records).into_iter().collect();
    assert_eq!(got.len(), 200, "nothing lost across the restart");
    assert_eq!(KafkaCounters::get(&counters.failed), 0);
}
