//! `cargo xtask bench`: decode → parse → JSON throughput of `sipbeat read` on
//! one core (the plain release build and the PGO build), next to tshark's
//! `-Y sip -T ek` on the same generated capture.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use sipbeat_testkit::log::{counter_in, summary_count};

use crate::{callgen, root, run_command};

/// Messages in the default benchmark capture.
pub const DEFAULT_MESSAGES: usize = 500_000;
/// Runs of sipbeat; the fastest counts (the others absorb cache warm-up).
const RUNS: usize = 5;

/// Writes `bench-data/calls-N.pcap` unless it exists; returns its path.
pub(crate) fn generate(messages: usize) -> Result<PathBuf> {
    generate_named("calls", messages, callgen::BENCH_SEED)
}

/// Writes `bench-data/NAME-N.pcap` of calls made from `seed` unless it
/// exists; returns its path.
pub(crate) fn generate_named(name: &str, messages: usize, seed: u64) -> Result<PathBuf> {
    let dir = root().join("bench-data");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}-{messages}.pcap"));
    if path.exists() {
        return Ok(path);
    }
    let partial = path.with_extension("pcap.partial");
    let mut out = BufWriter::new(File::create(&partial)?);
    let written = callgen::write_pcap(&mut out, messages, seed)?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&partial, &path)?;
    eprintln!("xtask: wrote {written} SIP messages to {}", path.display());
    Ok(path)
}

/// Builds sipbeat in release mode; returns the binary's path.
pub(crate) fn release_sipbeat() -> Result<String> {
    run_command(Command::new("cargo").args([
        "build",
        "--release",
        "--quiet",
        "--package",
        "sipbeat",
    ]))?;
    let path = root().join("target/release/sipbeat");
    path.to_str().map(str::to_string).context("UTF-8 path")
}

fn pinned(program: &str) -> Command {
    // One core, as the goal is stated per core; core 1 keeps clear of most IRQs.
    let mut command = Command::new("taskset");
    command.args(["-c", "1", program]);
    command
}

fn time(command: &mut Command) -> Result<(Duration, String)> {
    let started = Instant::now();
    let output = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        bail!("{command:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok((
        elapsed,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

/// Best of [`RUNS`] runs of `sipbeat read` on `pcap` for each build, pinned:
/// the time and the events that run published (checked to be one per
/// message). The builds take turns, in alternating order, so a change in
/// the host's speed while they run falls on each alike (a shared VM's speed
/// moves by tens of percent within minutes).
fn best_reads(builds: &[&str], pcap: &str) -> Result<Vec<(Duration, u64)>> {
    let mut best = vec![(Duration::MAX, String::new()); builds.len()];
    for run in 0..RUNS {
        let mut order: Vec<usize> = (0..builds.len()).collect();
        if run % 2 == 1 {
            order.reverse();
        }
        for index in order {
            let (elapsed, stderr) = time(pinned(builds[index]).args(["read", pcap]))?;
            if elapsed < best[index].0 {
                best[index] = (elapsed, stderr);
            }
        }
    }
    best.into_iter()
        .map(|(elapsed, summary)| Ok((elapsed, published_events(&summary)?)))
        .collect()
}

/// The messages of a `sipbeat read` summary, checked to have published
/// one event each plus one per call record.
fn published_events(summary: &str) -> Result<u64> {
    let events = summary_count(summary, "events").context("sipbeat summary has an event count")?;
    let records =
        counter_in(summary, "records").context("sipbeat summary has a call record count")?;
    let messages = summary_count(summary, "SIP messages").unwrap_or(0);
    if events != messages + records {
        bail!(
            "sipbeat published {events} events for {messages} messages and {records} call records: {summary}"
        );
    }
    Ok(messages)
}

/// Generates the capture, runs both tools, prints the figures.
pub fn run(messages: usize) -> Result<()> {
    crate::setup::test_dependencies()?;
    let plain = release_sipbeat()?;
    let pgo = &crate::pgo::sipbeat()?;
    let pcap = generate(messages)?;
    let size = std::fs::metadata(&pcap)?.len();
    let pcap_arg = pcap.to_str().context("UTF-8 path")?;
    println!(
        "capture: {} ({messages} SIP messages, {:.1} MB)",
        pcap.display(),
        size as f64 / 1e6
    );
    // The generator's writes left the capture in the page cache in pieces of
    // its own making; dropped and read in once by sipbeat, it is cached as
    // any capture sipbeat reads from disk is (in 2 MiB folios where the
    // kernel can, which cost nothing to map).
    evict_from_page_cache(&pcap)?;
    time(pinned(&plain).args(["read", pcap_arg]))?;
    let mut events = 0;
    let mut fastest = Duration::MAX;
    let pgo_build = format!("release+PGO, {}", crate::pgo::DEFAULT_CPU);
    let builds = [("release, x86-64", plain.as_str()), (&pgo_build, pgo)];
    let binaries = builds.map(|(_, sipbeat)| sipbeat);
    let results = best_reads(&binaries, pcap_arg)?;
    for ((build, sipbeat), (best, published)) in builds.into_iter().zip(results) {
        // Measured on a run of its own: the peak over all children would
        // include the compiler whenever the build above had work to do.
        let (rss, _, _) = peak_rss(sipbeat, pcap_arg, &[])?;
        println!(
            "sipbeat read ({build}), stdout to /dev/null, 1 core: {:.3} s, {:.0} messages/s, {:.0} MB/s of capture, peak RSS {} MiB (best of {RUNS})",
            best.as_secs_f64(),
            published as f64 / best.as_secs_f64(),
            size as f64 / 1e6 / best.as_secs_f64(),
            rss / 1024,
        );
        events = published;
        fastest = fastest.min(best);
    }

    let (tshark_elapsed, _) =
        time(pinned("tshark").args(["-r", pcap_arg, "-Y", "sip", "-T", "ek"]))?;
    println!(
        "tshark -Y sip -T ek, 1 core: {:.3} s, {:.0} messages/s",
        tshark_elapsed.as_secs_f64(),
        events as f64 / tshark_elapsed.as_secs_f64()
    );
    println!(
        "sipbeat (fastest build) / tshark: {:.0}x",
        tshark_elapsed.as_secs_f64() / fastest.as_secs_f64()
    );
    Ok(())
}

/// Drops the file's pages from the page cache (clean pages only: the
/// generator syncs what it writes).
fn evict_from_page_cache(path: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let file = File::open(path)?;
    // SAFETY: a valid open descriptor; the call only advises the kernel.
    let error = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if error != 0 {
        bail!(
            "posix_fadvise({}): {}",
            path.display(),
            std::io::Error::from_raw_os_error(error)
        );
    }
    Ok(())
}

/// Writes `bench-data/flood-N.pcap` (N half-open streams, N unfinished
/// fragment chains) unless it exists.
fn generate_flood(count: usize) -> Result<PathBuf> {
    write_once(&format!("flood-{count}.pcap"), |out| {
        callgen::write_flood_pcap(out, count, count)
    })
}

/// `bench-data/NAME`, written by `write` through a partial file unless it
/// exists already.
fn write_once(
    name: &str,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<PathBuf> {
    let path = root().join("bench-data").join(name);
    if path.exists() {
        return Ok(path);
    }
    std::fs::create_dir_all(path.parent().expect("in bench-data"))?;
    let partial = path.with_extension("partial");
    let mut out = BufWriter::new(File::create(&partial)?);
    write(&mut out)?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&partial, &path)?;
    Ok(path)
}

/// Peak resident memory of `sipbeat read` on `pcap`, from `/usr/bin/time -v`.
fn peak_rss(sipbeat: &str, pcap: &str, extra: &[&str]) -> Result<(u64, Duration, String)> {
    let started = Instant::now();
    let output = Command::new("/usr/bin/time")
        .args(["-v", sipbeat, "read", pcap])
        .args(extra)
        .stdout(Stdio::null())
        .output()
        .context("/usr/bin/time (Debian package time) runs sipbeat")?;
    let elapsed = started.elapsed();
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        bail!("sipbeat failed: {log}");
    }
    let kib = log
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .context("time -v reports the peak RSS")?;
    Ok((kib, elapsed, log))
}

/// The capture of `count` units of a hostile `pattern` (made once).
fn generate_flood_pattern(pattern: callgen::Flood, count: usize) -> Result<PathBuf> {
    write_once(&format!("flood-{}-{count}.pcap", pattern.name()), |out| {
        callgen::write_flood_pattern(out, pattern, count)
    })
}

/// The byte caps the hostile patterns run under.
const FLOOD_CAP: usize = 8 << 20;
/// Transaction legs and calls of the hostile patterns' config: about
/// 8 MiB together at ~170 and ~450 bytes each (the INVITE flood).
const FLOOD_TRANSACTIONS: usize = 16_384;
const FLOOD_CALLS: usize = 12_288;
/// Resident memory of a run beyond its caps: the binary, the allocator,
/// stream and datagram entries (measured for the defaults, with room).
const FLOOD_BASELINE_MIB: u64 = 48;

/// The hostile patterns: peak RSS and CPU time of each; the caps hold
/// within a fixed baseline and empty fragments cost no more than a few
/// times ordinary ones.
fn flood_patterns(sipbeat: &str) -> Result<()> {
    let config = root().join("bench-data/flood-caps.yml");
    std::fs::write(
        &config,
        format!(
            "reassembly:\n  tcp_max_buffered_bytes: {FLOOD_CAP}\n  fragment_max_bytes: {FLOOD_CAP}\n\
             transactions:\n  max_transactions: {FLOOD_TRANSACTIONS}\ncalls:\n  max_calls: {FLOOD_CALLS}\n"
        ),
    )?;
    let config = config.to_str().context("UTF-8 path")?;
    println!("| pattern | units | capture | peak RSS | time | counters |");
    println!("|---|---|---|---|---|---|");
    let mut seconds = Vec::new();
    for (pattern, count) in [
        (callgen::Flood::EmptyFragments, 50_000),
        (callgen::Flood::OrdinaryFragments, 50_000),
        (callgen::Flood::RetainedBuffers, 1_000),
        (callgen::Flood::OutOfOrder, 10_000),
        (callgen::Flood::Invites, 1_000_000),
    ] {
        let pcap = generate_flood_pattern(pattern, count)?;
        let size = std::fs::metadata(&pcap)?.len();
        let (kib, elapsed, log) = peak_rss(
            sipbeat,
            pcap.to_str().context("UTF-8 path")?,
            &["-c", config],
        )?;
        let counters: Vec<&str> = log
            .lines()
            .filter(|l| {
                [
                    "sipbeat: tcp:",
                    "sipbeat: ip fragments:",
                    "sipbeat: transactions:",
                    "sipbeat: calls:",
                ]
                .iter()
                .any(|group| l.starts_with(group))
            })
            .map(|l| l.trim_start_matches("sipbeat: "))
            .collect();
        println!(
            "| {} | {count} | {:.1} MB | {} MiB | {:.2} s | {} |",
            pattern.name(),
            size as f64 / 1e6,
            kib / 1024,
            elapsed.as_secs_f64(),
            counters.join("; ")
        );
        if kib / 1024 > (FLOOD_CAP as u64 >> 20) + FLOOD_BASELINE_MIB {
            bail!(
                "{}: peak RSS {} MiB is over the {} MiB cap plus the {FLOOD_BASELINE_MIB} MiB baseline",
                pattern.name(),
                kib / 1024,
                FLOOD_CAP >> 20
            );
        }
        seconds.push(elapsed.as_secs_f64());
    }
    // Wall time includes process start; the margin is wide on purpose.
    let ratio = seconds[0] / seconds[1];
    println!("empty / ordinary fragments: {ratio:.2}× the time");
    if ratio > 5.0 {
        bail!("50,000 empty fragments took {ratio:.1}× as long as 50,000 ordinary ones");
    }
    Ok(())
}

/// `cargo xtask bench-flood [N]`: N half-open TCP streams and N unfinished
/// fragment chains under the default limits, then the hostile patterns
/// (empty fragments, retained buffers, out-of-order segments) under 8 MiB
/// caps; peak RSS stays under the limits.
pub fn flood(count: usize) -> Result<()> {
    crate::setup::test_dependencies()?;
    let sipbeat = &release_sipbeat()?;
    let pcap = generate_flood(count)?;
    let pcap_arg = pcap.to_str().context("UTF-8 path")?;
    let size = std::fs::metadata(&pcap)?.len();
    let (kib, elapsed, log) = peak_rss(sipbeat, pcap_arg, &[])?;
    let summary: Vec<&str> = log.lines().filter(|l| l.starts_with("sipbeat:")).collect();
    println!(
        "flood capture: {} ({count} half-open streams + {count} unfinished fragment chains, {:.0} MB)",
        pcap.display(),
        size as f64 / 1e6
    );
    println!(
        "sipbeat read, default limits: peak RSS {} MiB, {:.1} s",
        kib / 1024,
        elapsed.as_secs_f64()
    );
    for line in summary {
        println!("  {line}");
    }
    // The defaults promise well under 256 MiB whatever the traffic.
    if kib > 256 * 1024 {
        bail!("peak RSS {} MiB exceeds 256 MiB", kib / 1024);
    }
    flood_patterns(sipbeat)
}

/// `cargo xtask bench-kafka [MESSAGES]`: the benchmark capture into tansu
/// with lz4, with zstd and with lz4 through the disk queue, next to the
/// same run to /dev/null. The three are run in turn, [`KAFKA_ROUNDS`]
/// times, and each one's median sustained rate is the figure: on a shared
/// VM one run's rate moves by ±15 % from minute to minute, and comparing
/// runs made minutes apart measured the VM.
pub fn kafka(messages: usize) -> Result<()> {
    let tansu_binary = crate::setup::tansu()?;
    let sipbeat = &crate::pgo::sipbeat()?;
    let pcap = generate(messages)?;
    let pcap_arg = pcap.to_str().context("UTF-8 path")?;
    let (stdout_time, _) = time(Command::new(sipbeat).args(["read", pcap_arg]))?;
    println!("capture: {} ({messages} SIP messages)", pcap.display());
    println!(
        "sipbeat read → /dev/null:        {:.3} s, {:.0} events/s",
        stdout_time.as_secs_f64(),
        messages as f64 / stdout_time.as_secs_f64()
    );
    let queue_dir = root().join("bench-data/kafka-disk-queue");
    // What the build and earlier runs left dirty is written back first: the
    // disk queue's runs measure the queue, not that writeback.
    run_command(&mut Command::new("sync"))?;
    let runs = [("lz4", false), ("zstd", false), ("lz4", true)];
    let mut sustained: Vec<Vec<f64>> = vec![Vec::new(); runs.len()];
    for round in 1..=KAFKA_ROUNDS {
        for (index, &(compression, disk_queue)) in runs.iter().enumerate() {
            let name = if disk_queue {
                format!("{compression}-disk-queue")
            } else {
                compression.to_string()
            };
            let rate = kafka_run(
                &tansu_binary,
                sipbeat,
                pcap_arg,
                compression,
                disk_queue.then_some(queue_dir.as_path()),
            )?;
            println!("  round {round}, {name}: {rate:.0} events/s sustained");
            sustained[index].push(rate);
        }
    }
    for (&(compression, disk_queue), rates) in runs.iter().zip(&mut sustained) {
        rates.sort_by(f64::total_cmp);
        let queue = if disk_queue {
            ", every event through the disk queue"
        } else {
            ""
        };
        println!(
            "sipbeat read → tansu ({compression}{queue}): median {:.0} events/s sustained of {KAFKA_ROUNDS} (from {:.0} to {:.0}; acks=all, idempotent)",
            rates[rates.len() / 2],
            rates[0],
            rates[rates.len() - 1]
        );
    }
    let _ = std::fs::remove_dir_all(&queue_dir);
    // The runs above leave dirty pages behind; written back first, they do
    // not slow the queue's own figures.
    run_command(&mut Command::new("sync"))?;
    disk_queue_rates(messages)
}

/// Rounds of `bench-kafka`'s runs.
const KAFKA_ROUNDS: usize = 3;

/// One `sipbeat read` of `pcap` into a fresh tansu (its memory storage
/// grows with every event) with `compression`, through a disk queue in
/// `queue_dir` if given; the sustained delivery rate, once every event is
/// checked delivered.
fn kafka_run(
    tansu: &Path,
    sipbeat: &str,
    pcap: &str,
    compression: &str,
    queue_dir: Option<&Path>,
) -> Result<f64> {
    let broker = sipbeat_testkit::Tansu::start(tansu, "bench")?;
    broker.create_topic("sipbeat-bench", 3)?;
    let queue = match queue_dir {
        Some(dir) => {
            let _ = std::fs::remove_dir_all(dir);
            format!(
                "queue:\n  disk:\n    path: {}\n    max_size: 10GB\n",
                dir.display()
            )
        }
        None => String::new(),
    };
    let config = root().join("bench-data/kafka-bench.yml");
    std::fs::write(
        &config,
        format!(
            "output:\n  kafka:\n    brokers: [\"{}\"]\n    topic: sipbeat-bench\n    compression: {compression}\n{queue}",
            broker.address()
        ),
    )?;
    let (_, stderr) =
        time(Command::new(sipbeat).args(["read", "-c", config.to_str().context("UTF-8")?, pcap]))?;
    let kafka_line = stderr
        .lines()
        .find(|l| l.starts_with("sipbeat: kafka:"))
        .unwrap_or_default();
    let events = summary_count(&stderr, "events").context("sipbeat summary has an event count")?;
    if !kafka_line.contains(&format!("delivered={events} ")) {
        bail!("not every one of {events} events was delivered: {kafka_line}");
    }
    // Wall time includes the idempotent producer's start-up (no sends
    // before it has a producer id); the sustained rate is the one the
    // broker keeps up with once events flow.
    kafka_line
        .split(' ')
        .find_map(|field| field.strip_prefix("sustained="))
        .and_then(|rate| rate.trim_end_matches("/s").parse().ok())
        .with_context(|| format!("no sustained rate in: {kafka_line}"))
}

/// The disk queue's own rates: `events` events of 2,600 bytes (a typical
/// event) written, then read back as after a restart.
pub fn disk_queue_rates(events: usize) -> Result<()> {
    use sipbeat::output::queue::{ByteSize, DiskQueue, DiskQueueConfig, Refused};
    let dir = root().join("bench-data/disk-queue-rates");
    let _ = std::fs::remove_dir_all(&dir);
    let config = DiskQueueConfig::new(&dir, ByteSize(1 << 40));
    let payload = vec![b'x'; 2600];
    let meta = sipbeat::output::EventMeta {
        call_id: Some(b"1-2345@192.0.2.1"),
        method: Some(b"INVITE"),
        sip_type: Some(sipbeat::sip::SipType::Request),
        timestamp_ns: 1,
        dataset: sipbeat::output::Dataset::Sip,
    };
    let mut queue = DiskQueue::open(&config, &dir)?;
    let started = Instant::now();
    let patience = || Instant::now() + std::time::Duration::from_secs(30);
    for _ in 0..events {
        // Its I/O thread behind: wait for it (a capture worker would not).
        while let Err(refused) = queue.append(&meta, &payload) {
            if refused == Refused::Full || !queue.wait_io(patience()) {
                bail!("disk queue refused an event: {refused:?}");
            }
        }
    }
    queue.commit();
    queue.wait_io(patience());
    let write = started.elapsed();
    let bytes = queue.bytes() as f64;
    drop(queue);
    let mut queue = DiskQueue::open(&config, &dir)?;
    let started = Instant::now();
    let mut read = 0;
    loop {
        if let Some((record, len)) = queue.next_unsent() {
            let seq = record.seq;
            queue.produced(seq, len);
            read += 1;
        } else if !queue.wait_io(patience()) {
            break;
        }
    }
    let replay = started.elapsed();
    drop(queue);
    std::fs::remove_dir_all(&dir)?;
    if read != events {
        bail!("the disk queue gave back {read} of {events} events");
    }
    for (what, elapsed) in [("write", write), ("replay", replay)] {
        println!(
            "disk queue {what}: {events} events of 2,600 bytes in {:.3} s: {:.0} events/s, {:.0} MB/s",
            elapsed.as_secs_f64(),
            events as f64 / elapsed.as_secs_f64(),
            bytes / 1e6 / elapsed.as_secs_f64()
        );
    }
    Ok(())
}
