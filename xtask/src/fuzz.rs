//! `cargo xtask fuzz [SECONDS]`: every cargo-fuzz target, seeded from the
//! test captures and torture messages, for SECONDS each; prints how many
//! inputs each ran. Installs cargo-fuzz (with the `nightly` toolchain it
//! needs) when missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use sipbeat::capture::LinkType;
use sipbeat::capture::pcap::PcapFile;
use sipbeat::decode::{self, Transport};

use crate::{root, run_command};

/// The targets in `fuzz/Cargo.toml`.
const TARGETS: &[&str] = &[
    "sip_message",
    "frame_decode",
    "tcp_reassembly",
    "defrag",
    "json_escape",
    "capture_file",
    "config",
    "disk_segment",
];

/// Config seeds: the shapes of the README's and the DaemonSet's configs.
const CONFIG_SEEDS: &[(&str, &str)] = &[
    (
        "protocols",
        "protocols:\n  - type: sip\n    ports: [5060, 5080]\n    parse_authorization: true\n    parse_body: false\n    keep_original: true\n    transport_protocol: both\n",
    ),
    (
        "output-file",
        "output:\n  file:\n    path: /var/log/sipbeat/events.ndjson\nreassembly:\n  tcp_max_streams: 100000\n  fragment_timeout_secs: 30\n",
    ),
    (
        "kafka",
        "output:\n  kafka:\n    brokers: [\"kafka-1:9092\", \"kafka-2:9092\"]\n    topic: sipbeat-%{[sip.method]}\n    compression: lz4\n    acks: all\n    options:\n      security.protocol: SASL_SSL\n",
    ),
    (
        "capture",
        "capture:\n  interfaces: [eth0, eth1]\n  mode: host\n  ring_size: 33554432\n  vxlan_ports: [4789, 8472]\n  geneve_ports: [6081]\n",
    ),
];

fn have_cargo_fuzz() -> bool {
    Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Makes sure `cargo +nightly fuzz` works.
pub fn setup() -> Result<()> {
    if have_cargo_fuzz() {
        return Ok(());
    }
    // The machines come with a `nightly` toolchain (rustup cannot download
    // one here); cargo-fuzz itself comes from crates.io.
    let toolchains = Command::new("rustup")
        .args(["toolchain", "list"])
        .output()?;
    if !String::from_utf8_lossy(&toolchains.stdout)
        .lines()
        .any(|t| t.starts_with("nightly"))
    {
        bail!("cargo fuzz needs the `nightly` toolchain, which is not installed");
    }
    run_command(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    if !have_cargo_fuzz() {
        bail!("cargo-fuzz installed but `cargo +nightly fuzz --version` fails");
    }
    Ok(())
}

/// Every capture the seeds come from: the repository's, and the shared corpus's when present.
fn captures() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![root().join("testdata/pcaps")];
    let shared = root().join("../shared/corpus");
    if shared.is_dir() {
        dirs.push(shared);
    }
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path
                .extension()
                .is_some_and(|e| e == "pcap" || e == "pcapng")
            {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn write_seed(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    std::fs::write(dir.join(name), bytes).with_context(|| format!("writing seed {name}"))
}

/// Fills `fuzz/corpus/<target>` with seeds (idempotent: same names, same bytes).
fn seed() -> Result<()> {
    let corpus = root().join("fuzz/corpus");
    for target in TARGETS {
        std::fs::create_dir_all(corpus.join(target))?;
    }
    let torture = root().join("testdata/torture");
    for family in ["rfc4475", "rfc5118"] {
        for entry in std::fs::read_dir(torture.join(family))? {
            let path = entry?.path();
            let name = format!("{family}-{}", path.file_name().unwrap().to_string_lossy());
            let message = std::fs::read(&path)?;
            write_seed(&corpus.join("sip_message"), &name, &message)?;
            // Whole messages are what the escaper sees longest (event.original):
            // CRLFs, quotes, the odd control byte, in every case mode.
            let mode = name.len() as u8 % 3;
            write_seed(
                &corpus.join("json_escape"),
                &name,
                &[&[mode][..], &message].concat(),
            )?;
        }
    }
    for (file_index, capture) in captures().iter().enumerate() {
        let Ok(mut file) = PcapFile::open(capture) else {
            continue;
        };
        let mut frame_index = 0;
        let mut seeds: Vec<(String, &str, Vec<u8>)> = Vec::new();
        file.for_each_frame(|frame| {
            frame_index += 1;
            // A sample of frames per capture keeps the seed set small.
            if frame_index > 64 {
                return;
            }
            let selector = LinkType::ALL
                .iter()
                .position(|&l| l == frame.link)
                .unwrap_or(0) as u8;
            let mut seed = vec![selector];
            seed.extend_from_slice(frame.data);
            seeds.push((format!("f{file_index}-{frame_index}"), "frame_decode", seed));
            if let Ok(packet) = decode::decode(frame.link, frame.data)
                && let Transport::Udp(udp) = packet.transport
                && !udp.payload.is_empty()
            {
                seeds.push((
                    format!("m{file_index}-{frame_index}"),
                    "sip_message",
                    udp.payload.to_vec(),
                ));
            }
        })?;
        for (name, target, bytes) in seeds {
            write_seed(&corpus.join(target), &name, &bytes)?;
        }
    }
    // Record-structured targets: one hand-made sequence each.
    let message = b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let mut tcp = vec![1, 0, 0, 0, 9, 0x02, 0, 0];
    for (i, chunk) in message.chunks(20).enumerate() {
        tcp.extend_from_slice(&[1, 0, 0, 0, 10 + 20 * i as u8, 0x10, 0, chunk.len() as u8]);
        tcp.extend_from_slice(chunk);
    }
    write_seed(&corpus.join("tcp_reassembly"), "options-in-segments", &tcp)?;
    let mut fragments = Vec::new();
    for (i, chunk) in [[7u8; 16], [8u8; 16]].iter().enumerate() {
        let more = u8::from(i == 0);
        fragments.extend_from_slice(&[3, 0, 2 * i as u8, more, 0, 16]);
        fragments.extend_from_slice(chunk);
    }
    write_seed(&corpus.join("defrag"), "two-fragments", &fragments)?;
    // Disk-queue segments as the queue writes them: whole (end mark), torn,
    // flipped, and reused (an earlier use's records after the end mark).
    use sipbeat::output::queue::{END_MARK, Record, segment_header};
    let record = |seq: u64, out: &mut Vec<u8>| {
        let payload = format!("{{\"@timestamp\":\"2026-12-06T00:00:00.000Z\",\"n\":{seq}}}");
        Record {
            seq,
            meta: sipbeat::output::EventMeta {
                call_id: Some(b"seed@example.com"),
                method: Some(b"INVITE"),
                sip_type: Some(sipbeat::sip::SipType::Request),
                timestamp_ns: 1_765_000_000_000_000_000 + seq,
                dataset: sipbeat::output::Dataset::Sip,
            },
            payload: payload.as_bytes(),
        }
        .encode(out);
    };
    let mut segment = segment_header(0).to_vec();
    for seq in 0..8 {
        record(seq, &mut segment);
    }
    segment.extend_from_slice(&END_MARK);
    write_seed(&corpus.join("disk_segment"), "whole", &segment)?;
    let mut reused = segment_header(8).to_vec();
    for seq in 8..10 {
        record(seq, &mut reused);
    }
    reused.extend_from_slice(&END_MARK);
    reused.extend_from_slice(&segment[reused.len()..]);
    write_seed(&corpus.join("disk_segment"), "reused", &reused)?;
    write_seed(
        &corpus.join("disk_segment"),
        "torn",
        &segment[..segment.len() - 5],
    )?;
    let mut flipped = segment.clone();
    flipped[segment.len() / 2] ^= 0x10;
    write_seed(&corpus.join("disk_segment"), "flipped", &flipped)?;
    for (name, yaml) in CONFIG_SEEDS {
        write_seed(&corpus.join("config"), name, yaml.as_bytes())?;
    }
    // Whole small captures, for the file readers.
    for (index, capture) in captures().iter().enumerate() {
        if std::fs::metadata(capture).is_ok_and(|m| m.len() <= 64 << 10) {
            write_seed(
                &corpus.join("capture_file"),
                &format!("c{index}"),
                &std::fs::read(capture)?,
            )?;
        }
    }
    Ok(())
}

/// Runs every target for `seconds`; returns (target, executions).
pub fn run(seconds: u64) -> Result<Vec<(String, u64)>> {
    setup()?;
    seed()?;
    let mut results = Vec::new();
    for target in TARGETS {
        eprintln!("xtask: fuzzing {target} for {seconds}s");
        let output = Command::new("cargo")
            .current_dir(root().join("fuzz"))
            .args(["+nightly", "fuzz", "run", "--release", target])
            .arg(root().join("fuzz/corpus").join(target))
            .args([
                "--",
                &format!("-max_total_time={seconds}"),
                "-rss_limit_mb=1024",
                "-print_final_stats=1",
            ])
            .output()
            .context("cannot start cargo fuzz")?;
        let log = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            bail!(
                "fuzz target {target} failed:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        let executions = log
            .lines()
            .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .and_then(|n| n.trim().parse().ok())
            .context("libFuzzer printed no execution count")?;
        results.push((target.to_string(), executions));
    }
    for (target, executions) in &results {
        println!("fuzz {target}: {executions} executions in {seconds}s, no crash");
    }
    Ok(results)
}
