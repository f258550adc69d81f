//! Capture files as found in the wild: damaged records are counted and
//! read past (legacy pcap and pcapng), a file cut short is read up to the
//! cut, and pcapng timestamps follow `if_tsresol` (powers of ten and two)
//! and `if_tsoffset` in either byte order, as tshark reads them.

mod common;

use std::path::Path;
use std::process::Command;

use sipbeat::capture::pcap::PcapFile;
use sipbeat_testkit::capture::{PcapngInterface, pcap, pcapng};

fn bundled() -> std::path::PathBuf {
    common::testdata().join("pcaps/suricata-verify/sip-method--sip.pcap")
}

/// The bundled capture's frames (Ethernet), 691 of them, 81 SIP.
fn frames() -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    PcapFile::open(bundled())
        .unwrap()
        .for_each_frame(|frame| frames.push(frame.data.to_vec()))
        .unwrap();
    frames
}

/// Byte offsets of each record of a legacy pcap.
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        offsets.push(at);
        let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16 + caplen;
    }
    offsets
}

fn sipbeat_read(path: &Path) -> (Option<i32>, usize, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_sipbeat"))
        .args(["read"])
        .arg(path)
        .output()
        .unwrap();
    let events = output
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    (
        output.status.code(),
        events,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn pcap_record_of_impossible_length_is_counted_and_read_past() {
    let dir = common::ScratchDir::new("damaged-pcap");
    let frames = frames();
    let clean = pcap(
        &frames
            .iter()
            .map(|f| (1_700_000_000_000_000, f.clone()))
            .collect::<Vec<_>>(),
    );
    let offsets = record_offsets(&clean);
    assert_eq!(offsets.len(), 691);
    // Record 300's caplen becomes 4 GiB: nothing after it was read before.
    let mut damaged = clean.clone();
    let at = offsets[300] + 8;
    damaged[at..at + 4].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    let path = dir.join("damaged.pcap");
    std::fs::write(&path, &damaged).unwrap();
    let (events, stats) = common::read_events(&path, &common::config_with_ports(&[5060]));
    assert_eq!(stats.counts.damaged_records, 1);
    assert_eq!(stats.counts.frames, 690, "only the damaged record is lost");
    assert_eq!(
        stats.counts.damaged_bytes as usize,
        offsets[301] - offsets[300],
        "reading resumed at the next record"
    );
    assert!(events.len() >= 80, "{}", events.len());
    let (code, cli_events, stderr) = sipbeat_read(&path);
    assert_eq!(
        code,
        Some(3),
        "the exit status says the capture was damaged: {stderr}"
    );
    assert_eq!(cli_events as u64, stats.counts.events);
    assert!(stderr.contains("is damaged: 1 places"), "{stderr}");
    assert!(stderr.contains("damaged_records=1"), "{stderr}");

    // Cut short at the end: read up to the cut, exit 0, no damage.
    let path = dir.join("cut.pcap");
    std::fs::write(&path, &clean[..clean.len() - 10]).unwrap();
    let (code, events, stderr) = sipbeat_read(&path);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("cut short"), "{stderr}");
    assert!(!stderr.contains("is damaged"), "{stderr}");
    assert!(events >= 80);
}

#[test]
fn pcapng_blocks_that_do_not_parse_are_counted_and_skipped() {
    let dir = common::ScratchDir::new("damaged-pcapng");
    let frames: Vec<(u64, Vec<u8>)> = frames()
        .into_iter()
        .enumerate()
        .map(|(i, f)| (1_700_000_000_000_000 + i as u64, f))
        .collect();
    for big_endian in [false, true] {
        let clean = pcapng(big_endian, PcapngInterface::default(), &frames);
        // Block offsets: walk the lengths.
        let u32_at = |b: &[u8], at: usize| {
            let w: [u8; 4] = b[at..at + 4].try_into().unwrap();
            (if big_endian {
                u32::from_be_bytes(w)
            } else {
                u32::from_le_bytes(w)
            }) as usize
        };
        let mut blocks = Vec::new();
        let mut at = 0;
        while at < clean.len() {
            blocks.push(at);
            at += u32_at(&clean, at + 4);
        }
        assert_eq!(blocks.len(), 2 + frames.len());
        // An EPB whose caplen is larger than its block.
        let mut damaged = clean.clone();
        let caplen_at = blocks[2 + 200] + 20;
        let big = if big_endian {
            60_000u32.to_be_bytes()
        } else {
            60_000u32.to_le_bytes()
        };
        damaged[caplen_at..caplen_at + 4].copy_from_slice(&big);
        // And 37 bytes of junk between two blocks further on.
        damaged.splice(blocks[2 + 400]..blocks[2 + 400], [0x5a; 37]);
        let path = dir.join(format!("damaged-{big_endian}.pcapng"));
        std::fs::write(&path, &damaged).unwrap();
        let (_, stats) = common::read_events(&path, &common::config_with_ports(&[5060]));
        assert_eq!(stats.counts.damaged_records, 2, "big endian {big_endian}");
        assert_eq!(stats.counts.frames, 690, "big endian {big_endian}");
        assert_eq!(
            stats.counts.damaged_bytes as usize,
            blocks[2 + 201] - blocks[2 + 200] + 37,
            "big endian {big_endian}"
        );
    }
}

/// tshark's `frame.time_epoch` of each frame, in nanoseconds.
fn tshark_times(path: &Path) -> Option<Vec<i128>> {
    let output = Command::new("tshark")
        .args(["-r"])
        .arg(path)
        .args(["-T", "fields", "-e", "frame.time_epoch"])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    Some(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| {
                let (seconds, fraction) = line.trim().split_once('.').unwrap_or((line.trim(), "0"));
                let fraction = format!("{fraction:0<9}");
                seconds.parse::<i128>().unwrap() * 1_000_000_000
                    + fraction[..9].parse::<i128>().unwrap()
            })
            .collect(),
    )
}

#[test]
fn pcapng_timestamps_follow_tsresol_and_tsoffset_as_tshark_does() {
    let dir = common::ScratchDir::new("tsresol");
    // One SIP frame, several times over, at different times.
    let sip = frames()
        .into_iter()
        .find(|f| f.windows(8).any(|w| w == b"SIP/2.0 "))
        .unwrap();
    let cases: [(&str, bool, PcapngInterface, u64); 4] = [
        // 2^-20 s units, an offset of a million seconds.
        (
            "binary",
            false,
            PcapngInterface {
                tsresol: Some(0x80 | 20),
                tsoffset: Some(1_000_000),
                ..PcapngInterface::default()
            },
            1 << 20,
        ),
        // Nanoseconds, big-endian section, a negative offset.
        (
            "nanos-be",
            true,
            PcapngInterface {
                tsresol: Some(9),
                tsoffset: Some(-5),
                ..PcapngInterface::default()
            },
            1_000_000_000,
        ),
        // Milliseconds, no offset.
        (
            "millis",
            false,
            PcapngInterface {
                tsresol: Some(3),
                tsoffset: None,
                ..PcapngInterface::default()
            },
            1000,
        ),
        // The default: microseconds, and an offset in a big-endian section.
        (
            "micros-be",
            true,
            PcapngInterface {
                tsresol: None,
                tsoffset: Some(86_400),
                ..PcapngInterface::default()
            },
            1_000_000,
        ),
    ];
    for (name, big_endian, interface, units_per_second) in cases {
        let frames: Vec<(u64, Vec<u8>)> = (0..5u64)
            .map(|i| {
                (
                    1_700_000_000 * units_per_second + i * (units_per_second / 7 + 3),
                    sip.clone(),
                )
            })
            .collect();
        let path = dir.join(format!("{name}.pcapng"));
        std::fs::write(&path, pcapng(big_endian, interface, &frames)).unwrap();
        let (events, _) = common::read_events(&path, &common::config_with_ports(&[5060]));
        let ours: Vec<i128> = events
            .iter()
            .map(|e| common::rfc3339_ns(e["sip"]["timestamp"].as_str().unwrap()))
            .collect();
        assert_eq!(ours.len(), 5, "{name}");
        // What the spec says, computed here.
        for (i, (units, _)) in frames.iter().enumerate() {
            let expected = i128::from(*units) * 1_000_000_000 / i128::from(units_per_second)
                + i128::from(interface.tsoffset.unwrap_or(0)) * 1_000_000_000;
            assert_eq!(ours[i], expected, "{name} frame {i}");
        }
        match tshark_times(&path) {
            Some(theirs) => {
                assert_eq!(theirs.len(), 5, "{name}");
                for (ours, theirs) in ours.iter().zip(&theirs) {
                    assert!(
                        (ours - theirs).abs() <= 1_000,
                        "{name}: ours {ours}, tshark {theirs}"
                    );
                }
            }
            None => common::missing("tshark"),
        }
    }
}

/// A reader that hands out its bytes in uneven pieces (1 to 9,000 bytes),
/// so records straddle every kind of boundary of the streaming window.
struct Chunky {
    bytes: Vec<u8>,
    at: usize,
    seed: u64,
}

impl std::io::Read for Chunky {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.seed = self
            .seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        let piece = 1 + (self.seed >> 33) as usize % 9_000;
        let n = piece.min(buf.len()).min(self.bytes.len() - self.at);
        buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

type Walked = (
    Vec<(u64, Vec<u8>)>,
    Result<sipbeat::capture::pcap::FileStats, String>,
);

fn walk(mut file: PcapFile) -> Walked {
    let mut frames = Vec::new();
    let stats = file
        .for_each_frame(|frame| frames.push((frame.timestamp_ns, frame.data.to_vec())))
        .map_err(|e| e.to_string());
    (frames, stats)
}

/// Standard input, FIFOs and compressed files are streamed through a
/// bounded window; whatever the capture — clean, damaged, cut short, pcap
/// or pcapng in either byte order — the stream gives exactly the frames and
/// counts the mapped file gives.
#[test]
fn streamed_captures_read_exactly_as_mapped_ones() {
    let frames: Vec<(u64, Vec<u8>)> = frames()
        .into_iter()
        .enumerate()
        .map(|(i, f)| (1_700_000_000_000_000 + i as u64 * 1000, f))
        .collect();
    let clean = pcap(&frames);
    let offsets = record_offsets(&clean);
    let mut damaged = clean.clone();
    damaged[offsets[300] + 8..offsets[300] + 12].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    let mut captures = vec![
        ("pcap".to_string(), clean.clone()),
        ("damaged pcap".to_string(), damaged),
        ("cut pcap".to_string(), clean[..clean.len() - 10].to_vec()),
    ];
    for big_endian in [false, true] {
        let ng = pcapng(big_endian, PcapngInterface::default(), &frames);
        let mut junk = ng.clone();
        junk.splice(5000..5000, [0x5a; 37]);
        captures.push((format!("pcapng be={big_endian}"), ng.clone()));
        captures.push((format!("pcapng with junk be={big_endian}"), junk));
        captures.push((
            format!("cut pcapng be={big_endian}"),
            ng[..ng.len() - 7].to_vec(),
        ));
    }
    let mut corpus: Vec<_> = walk_dir(&common::testdata().join("pcaps"));
    corpus.sort();
    for path in corpus {
        captures.push((path.display().to_string(), std::fs::read(&path).unwrap()));
    }
    assert!(captures.len() > 12, "{}", captures.len());
    for (seed, (name, bytes)) in captures.into_iter().enumerate() {
        let mapped = walk(PcapFile::from_bytes(&name, &bytes).unwrap());
        let chunky = Chunky {
            bytes,
            at: 0,
            seed: seed as u64,
        };
        let streamed = walk(PcapFile::from_reader(&name, chunky).unwrap());
        assert_eq!(mapped.1, streamed.1, "{name}");
        assert_eq!(mapped.0.len(), streamed.0.len(), "{name}");
        assert!(mapped.0 == streamed.0, "{name}: frames differ");
    }
}

fn walk_dir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk_dir(&path));
        } else if path
            .extension()
            .is_some_and(|e| e == "pcap" || e == "pcapng" || e == "cap")
        {
            files.push(path);
        }
    }
    files
}

/// The CLI: `read -` from a pipe, a FIFO, and gzip and zstd files (named
/// anything) give byte for byte the output of reading the file itself; a
/// reader that goes away (`| head -1`) ends the run quietly with status 0.
#[test]
fn stdin_fifos_and_compressed_files_give_the_same_bytes() {
    use std::io::Write as _;
    use std::process::Stdio;
    let dir = common::ScratchDir::new("streams");
    let frames: Vec<(u64, Vec<u8>)> = frames()
        .into_iter()
        .enumerate()
        .map(|(i, f)| (1_700_000_000_000_000 + i as u64 * 1000, f))
        .collect();
    let ng = dir.join("x.pcapng");
    std::fs::write(&ng, pcapng(false, PcapngInterface::default(), &frames)).unwrap();
    for original in [bundled(), ng] {
        let bytes = std::fs::read(&original).unwrap();
        let read = |args: &[&str], stdin: Option<&[u8]>| {
            let mut child = Command::new(env!("CARGO_BIN_EXE_sipbeat"))
                .arg("read")
                .args(args)
                .stdin(if stdin.is_some() {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            if let Some(input) = stdin {
                let mut pipe = child.stdin.take().unwrap();
                let input = input.to_vec();
                std::thread::spawn(move || pipe.write_all(&input));
            }
            let output = child.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            output.stdout
        };
        let expected = read(&[original.to_str().unwrap()], None);
        assert!(expected.len() > 10_000);
        assert!(
            read(&["-"], Some(&bytes)) == expected,
            "{}: stdin differs",
            original.display()
        );
        let gz = dir.join("capture.gz");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&bytes).unwrap();
        std::fs::write(&gz, encoder.finish().unwrap()).unwrap();
        assert!(
            read(&[gz.to_str().unwrap()], None) == expected,
            "{}: gzip differs",
            original.display()
        );
        let zst = dir.join("capture.bin");
        std::fs::write(&zst, zstd::encode_all(&bytes[..], 3).unwrap()).unwrap();
        assert!(
            read(&[zst.to_str().unwrap()], None) == expected,
            "{}: zstd differs",
            original.display()
        );
        let fifo = dir.join("fifo");
        let _ = std::fs::remove_file(&fifo);
        assert!(
            Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let writer = {
            let fifo = fifo.clone();
            let bytes = bytes.clone();
            std::thread::spawn(move || std::fs::write(fifo, bytes))
        };
        assert!(
            read(&[fifo.to_str().unwrap()], None) == expected,
            "{}: FIFO differs",
            original.display()
        );
        writer.join().unwrap().unwrap();
    }
    // `| head -1`: status 0, nothing on stderr, also when the pipe closes
    // with megabytes still to write.
    let many: Vec<std::path::PathBuf> = std::iter::repeat_n(bundled(), 100).collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sipbeat"))
        .arg("read")
        .args(&many)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read one line, then close the pipe.
    {
        use std::io::BufRead as _;
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert!(line.starts_with('{'));
    }
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
