//! One core, in memory: how many SIP messages per second go through
//! decode → parse → ECS event → JSON, and what each stage costs.
//!
//! Input: the real-world messages of the bundled captures (Wireshark's
//! aaa.pcap via suricata-verify, Packetbeat's sip.pcap), frames loaded once
//! and replayed. `cargo xtask bench` measures the same on a large generated
//! capture, end to end through `sipbeat read`.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sipbeat::capture::pcap::PcapFile;
use sipbeat::capture::{Frame, LinkType};
use sipbeat::decode::{self, Packet, Transport};
use sipbeat::event::json::{Case, escape_into};
use sipbeat::event::{Agent, EcsConfig};
use sipbeat::output::{EventMeta, OutputError, Sink};
use sipbeat::pipeline::TransportProtocol;
use sipbeat::pipeline::{Pipeline, PipelineConfig};
use sipbeat::sip::{Framing, HeaderSlots, Message};

struct OwnedFrame {
    timestamp_ns: u64,
    link: LinkType,
    data: Vec<u8>,
}

/// Frames of the bundled captures that carry SIP on port 5060.
fn sip_frames() -> Vec<OwnedFrame> {
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/pcaps");
    let mut frames = Vec::new();
    for file in [
        "suricata-verify/sip-method--sip.pcap",
        "packetbeat/sip.pcap",
    ] {
        PcapFile::open(testdata.join(file))
            .unwrap()
            .for_each_frame(|frame| {
                if let Ok(packet) = decode::decode(frame.link, frame.data)
                    && let Transport::Udp(udp) = packet.transport
                {
                    let mut slots = HeaderSlots::new();
                    if (udp.src_port == 5060 || udp.dst_port == 5060)
                        && Message::parse(udp.payload, &mut slots, Framing::Datagram).is_ok()
                    {
                        frames.push(OwnedFrame {
                            timestamp_ns: frame.timestamp_ns,
                            link: frame.link,
                            data: frame.data.to_vec(),
                        });
                    }
                }
            })
            .unwrap();
    }
    assert_eq!(frames.len(), 93);
    frames
}

/// Counts bytes, like an output that costs nothing.
#[derive(Default)]
struct CountingSink(u64, Vec<u8>);

impl Sink for CountingSink {
    fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.1
    }
    fn publish(&mut self, start: usize, _meta: &EventMeta<'_>) -> Result<(), OutputError> {
        self.0 += (self.1.len() - start) as u64;
        self.1.clear();
        Ok(())
    }
    fn flush(&mut self) -> Result<(), OutputError> {
        Ok(())
    }
}

fn pipeline(ecs: EcsConfig) -> Pipeline {
    Pipeline::new(
        PipelineConfig::sip([5060], TransportProtocol::Both, ecs),
        Agent::named("bench", "bench-host"),
    )
}

fn stages(c: &mut Criterion) {
    let frames = sip_frames();
    let mut group = c.benchmark_group("per_message");
    group.throughput(Throughput::Elements(frames.len() as u64));

    group.bench_function("decode", |b| {
        b.iter(|| {
            for frame in &frames {
                black_box(decode::decode(frame.link, black_box(&frame.data)).ok());
            }
        })
    });

    group.bench_function("decode_parse", |b| {
        b.iter(|| {
            for frame in &frames {
                let Ok(Packet {
                    transport: Transport::Udp(udp),
                    ..
                }) = decode::decode(frame.link, &frame.data)
                else {
                    continue;
                };
                let mut slots = HeaderSlots::new();
                black_box(
                    Message::parse(black_box(udp.payload), &mut slots, Framing::Datagram).is_ok(),
                );
            }
        })
    });

    for (name, ecs) in [
        ("pipeline_all_fields", EcsConfig::default()),
        (
            "pipeline_no_original",
            EcsConfig {
                keep_original: false,
                ..EcsConfig::default()
            },
        ),
    ] {
        let mut pipeline = pipeline(ecs);
        let mut sink = CountingSink::default();
        group.bench_function(name, |b| {
            b.iter(|| {
                for frame in &frames {
                    let frame = Frame {
                        timestamp_ns: frame.timestamp_ns,
                        link: frame.link,
                        data: &frame.data,
                        interface: None,
                    };
                    pipeline.process(frame, &mut sink).unwrap();
                }
            })
        });
    }
    group.finish();
}

/// The JSON string escaper against serde_json's and simd-json's, on whole SIP messages
/// (event.original is the largest value of an event).
fn escaping(c: &mut Criterion) {
    let frames = sip_frames();
    let payloads: Vec<String> = frames
        .iter()
        .map(
            |frame| match decode::decode(frame.link, &frame.data).unwrap().transport {
                Transport::Udp(udp) => String::from_utf8_lossy(udp.payload).into_owned(),
                other => unreachable!("only SIP datagrams were kept: {other:?}"),
            },
        )
        .collect();
    let bytes: u64 = payloads.iter().map(|p| p.len() as u64).sum();
    let mut group = c.benchmark_group("escape_sip_messages");
    group.throughput(Throughput::Bytes(bytes));
    let mut out = Vec::with_capacity(1 << 20);
    group.bench_function("sipbeat", |b| {
        b.iter(|| {
            out.clear();
            for payload in &payloads {
                escape_into(&mut out, payload.as_bytes(), Case::AsIs).unwrap();
            }
            black_box(out.len())
        })
    });
    group.bench_function("simd_json", |b| {
        b.iter(|| {
            out.clear();
            for payload in &payloads {
                simd_json::serde::to_writer(&mut out, payload).unwrap();
            }
            black_box(out.len())
        })
    });
    group.bench_function("serde_json", |b| {
        b.iter(|| {
            out.clear();
            for payload in &payloads {
                serde_json::to_writer(&mut out, payload).unwrap();
            }
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, stages, escaping);
criterion_main!(benches);
