//! The Kafka output against a real broker (tansu, Kafka wire protocol),
//! started and stopped by the tests: events arrive byte for byte with
//! Call-ID keys in capture order, a 30-second broker outage loses and
//! duplicates nothing, and queue-full drops are exactly what is missing.
#![cfg(feature = "kafka")]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use common::kafka::{Record, consume};
use sipbeat::config::{Config, FileConfig, Overrides};
use sipbeat::output::kafka::{KafkaConfig, KafkaCounters, KafkaSink};
use sipbeat::output::{EventMeta, Output, Sink};
use sipbeat_testkit::{Tansu, tansu_binary};

/// A broker with `topic` (3 partitions), or a skip when tansu is missing.
fn broker_or_skip(name: &str, topic: &str) -> Option<Tansu> {
    let Some(binary) = tansu_binary() else {
        common::missing(
            "tansu (cargo install tansu --version 0.6.0 --locked --no-default-features --features dynostore)",
        );
        return None;
    };
    let broker = Tansu::start(&binary, name).expect("tansu starts");
    broker.create_topic(topic, 3).expect("topic created");
    Some(broker)
}

fn kafka_config(broker: &Tansu, topic: &str) -> KafkaConfig {
    KafkaConfig::from_url(&format!("kafka://{}/{topic}", broker.address())).unwrap()
}

#[test]
fn read_to_kafka_matches_stdout_byte_for_byte() {
    let Some(broker) = broker_or_skip("read", "sip-read") else {
        return;
    };
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
    let summary = sink.summary().unwrap();
    assert!(
        summary.contains(&format!("delivered={}", stats.counts.events)),
        "{summary}"
    );
    assert!(summary.contains(" sustained="), "{summary}");

    let records = consume(
        &broker,
        "sip-read",
        expected.events.len(),
        Duration::from_secs(20),
    );
    assert_eq!(records.len(), expected.events.len(), "every event once");
    // Each record's CreateTime is its event's @timestamp: a 2005 capture
    // stays in 2005 wherever the record time is used.
    for record in &records {
        let event: serde_json::Value = serde_json::from_slice(&record.payload).unwrap();
        let ns = common::rfc3339_ns(event["@timestamp"].as_str().unwrap());
        assert_eq!(
            record.timestamp_ms,
            Some((ns / 1_000_000) as i64),
            "CreateTime of {event}"
        );
    }
    let oldest = records.iter().filter_map(|r| r.timestamp_ms).min().unwrap();
    assert!(
        oldest < 1_500_000_000_000,
        "old captures keep their time: {oldest}"
    );
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
        sip_type: Some(sipbeat::sip::SipType::Request),
        timestamp_ns: 0,
        dataset: sipbeat::output::Dataset::Sip,
    };
    sink.publish_copy(&json, &meta).unwrap();
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
    let Some(broker) = broker_or_skip("outage", "sip-outage") else {
        return;
    };
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
            broker.signal("-STOP").unwrap();
            paused = true;
        }
        if paused && !resumed && started.elapsed() >= Duration::from_secs(35) {
            broker.signal("-CONT").unwrap();
            resumed = true;
        }
        publish(&mut sink, i);
    }
    if !resumed {
        broker.signal("-CONT").unwrap();
    }
    sink.drain().unwrap();
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
    let Some(broker) = broker_or_skip("full", "sip-full") else {
        return;
    };
    let mut config = kafka_config(&broker, "sip-full");
    config.queue_max_messages = 200;
    config.max_block_ms = Some(0);
    let mut sink = KafkaSink::new(&config).unwrap();
    let counters = sink.counters();
    // Let the producer connect, then stop the broker and overflow the queue.
    publish(&mut sink, 0);
    sink.drain().unwrap();
    broker.signal("-STOP").unwrap();
    let total = 2000;
    for i in 1..total {
        publish(&mut sink, i);
    }
    broker.signal("-CONT").unwrap();
    sink.drain().unwrap();
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
    let Some(broker) = broker_or_skip("fatal", "sip-fatal") else {
        return;
    };
    let mut sink = KafkaSink::new(&kafka_config(&broker, "sip-fatal")).unwrap();
    let counters = sink.counters();
    for i in 0..100 {
        publish(&mut sink, i);
    }
    sink.inject_fatal_error();
    for i in 100..200 {
        publish(&mut sink, i);
    }
    sink.drain().unwrap();
    assert_eq!(KafkaCounters::get(&counters.producer_restarts), 1);
    let records = consume(&broker, "sip-fatal", 200, Duration::from_secs(20));
    let got: HashSet<usize> = numbers(&records).into_iter().collect();
    assert_eq!(got.len(), 200, "nothing lost across the restart");
    assert_eq!(KafkaCounters::get(&counters.failed), 0);
}

/// `sipbeat read` into a frozen broker with a disk queue and a 20-event
/// memory queue, killed with SIGKILL while it waits: a second run replays
/// the disk queue once the broker is back, and every event of the first
/// arrives (those delivered twice counted). With a disk queue too small
/// for the outage, exactly the events it counts as dropped are missing.
#[test]
fn a_disk_queue_outlives_a_frozen_broker_and_sigkill() {
    let Some(broker) = broker_or_skip("queue", "sip-queue") else {
        return;
    };
    let dir = common::ScratchDir::new("disk-queue");
    let capture = common::testdata().join("pcaps/suricata-verify/sip-method--sip.pcap");
    let empty = dir.join("empty.pcap");
    sipbeat_testkit::capture::write_pcap(&empty, &[]).unwrap();
    let expected = {
        let config = Config::build(FileConfig::default(), Overrides::default()).unwrap();
        let mut sink = common::Collected::default();
        sipbeat::read::read_files(&[&capture], &config, &mut sink).unwrap();
        sink.events
    };
    let run = |topic: &str, queue: &std::path::Path, max_size: &str, pcap: &std::path::Path| {
        let config = dir.join(format!("{topic}.yml"));
        std::fs::write(
            &config,
            format!(
                "output:\n  kafka:\n    brokers: [\"{}\"]\n    topic: {topic}\n    queue_max_messages: 20\n    max_block_ms: 100\n    flush_timeout_secs: 3\nqueue:\n  disk:\n    path: {}\n    max_size: {max_size}\n",
                broker.address(),
                queue.display()
            ),
        )
        .unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_sipbeat"))
            .args(["read", "-c"])
            .arg(&config)
            .arg(pcap)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let last = |log: &str, name: &str| -> u64 {
        sipbeat_testkit::log::counter_in(log, name).unwrap_or_else(|| panic!("no {name} in: {log}"))
    };
    for (topic, max_size) in [("sip-queue", "64MiB"), ("sip-queue-small", "64KiB")] {
        if topic != "sip-queue" {
            broker.create_topic(topic, 3).unwrap();
        }
        let queue = dir.join(topic);
        broker.signal("-STOP").unwrap();
        let mut first = run(topic, &queue, max_size, &capture);
        let mut dropped = 0;
        if max_size == "64MiB" {
            // Read, written to disk, waiting for the frozen broker: kill it.
            std::thread::sleep(Duration::from_millis(1500));
            first.kill().unwrap();
            let _ = first.wait();
        } else {
            // It gives up waiting, says what it dropped, leaves the rest.
            let output = first.wait_with_output().unwrap();
            let log = String::from_utf8_lossy(&output.stderr).into_owned();
            assert!(output.status.success(), "{log}");
            dropped = last(&log, "queue_dropped_full");
        }
        broker.signal("-CONT").unwrap();
        let second = run(topic, &queue, max_size, &empty)
            .wait_with_output()
            .unwrap();
        let log = String::from_utf8_lossy(&second.stderr).into_owned();
        assert!(second.status.success(), "{log}");
        let recovered = last(&log, "queue_recovered");
        let records = consume(&broker, topic, recovered as usize, Duration::from_secs(10));
        let distinct: HashSet<&[u8]> = records.iter().map(|r| r.payload.as_slice()).collect();
        let wanted: HashSet<&[u8]> = expected.iter().map(Vec::as_slice).collect();
        assert!(distinct.is_subset(&wanted), "only events of the capture");
        eprintln!(
            "{topic}: {} events, {recovered} recovered after SIGKILL, {} delivered, {} twice",
            expected.len(),
            distinct.len(),
            records.len() - distinct.len()
        );
        if max_size == "64MiB" {
            assert_eq!(distinct.len(), expected.len(), "nothing lost\n{log}");
            assert_eq!(recovered, expected.len() as u64, "{log}");
        } else {
            assert!(dropped > 0, "64 KiB is too small for the outage");
            assert_eq!(
                distinct.len() as u64,
                expected.len() as u64 - dropped,
                "missing exactly what the first run counted as dropped\n{log}"
            );
        }
    }
}
