//! `sipbeat run`: live capture. The XDP program sends SIP frames to one
//! AF_XDP socket per RX queue; one worker thread per queue, pinned to a
//! core, runs the same pipeline as `sipbeat read` into its own output. The
//! main thread is the control plane (tokio): signals, and a stats line every
//! few seconds with the kernel's, the rings' and the pipeline's counters.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sipbeat_common::Counter;

use crate::capture::xdp::{AttachMode, XdpProgram};
use crate::capture::xsk::{XskConfig, XskSocket, XskStats};
use crate::capture::{Frame, LinkType};
use crate::config::Config;
use crate::event::Agent;
use crate::output::OutputError;
use crate::pipeline::Pipeline;
use crate::stats::Stats;

/// What `sipbeat run` was asked to do beyond the pipeline's config.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub interface: String,
    /// RX queues to serve (default: all of the interface's).
    pub queues: Option<u32>,
    pub mode: AttachMode,
    pub xsk: XskConfig,
    /// Seconds between stats lines; 0 for none.
    pub stats_interval: u64,
}

/// What one worker reports to the control plane.
#[derive(Default)]
struct WorkerReport {
    stats: Stats,
    rings: XskStats,
    output: Option<String>,
}

/// Frames taken off a ring per batch.
const BATCH: u32 = 256;
/// How often a worker publishes its counters and flushes its output.
const REPORT_EVERY: Duration = Duration::from_millis(500);

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn pin_to_core(core: usize) {
    // SAFETY: a zeroed cpu_set_t with one bit set, for the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
    }
}

/// One queue's loop: receive, run the pipeline, report, until `stop`.
fn worker(
    queue: u32,
    mut socket: XskSocket,
    mut pipeline: Pipeline,
    mut sink: Box<dyn crate::output::Sink>,
    report: Arc<Mutex<WorkerReport>>,
    stop: Arc<AtomicBool>,
) -> Result<(), OutputError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    pin_to_core(queue as usize % cores);
    let mut last_report = Instant::now();
    let mut failed = None;
    let mut idle = true;
    while !stop.load(Ordering::Relaxed) {
        // Sleep in poll only when the ring ran dry: under load the next
        // batch is already there, and a system call per batch is waste.
        if idle && let Err(error) = socket.wait(100) {
            eprintln!("sipbeat: queue {queue}: poll: {error}");
        }
        let timestamp_ns = now_ns();
        let received = socket.receive(BATCH, |data| {
            let frame = Frame {
                timestamp_ns,
                link: LinkType::Ethernet,
                data,
            };
            if let Err(error) = pipeline.process(frame, sink.as_mut()) {
                failed.get_or_insert(error);
            }
        });
        idle = received == 0;
        if let Some(error) = failed.take() {
            return Err(error);
        }
        if last_report.elapsed() >= REPORT_EVERY {
            sink.flush()?;
            let mut shared = report.lock().expect("not poisoned");
            shared.stats = pipeline.stats();
            shared.rings = socket.statistics().unwrap_or_default();
            shared.output = sink.summary();
            last_report = Instant::now();
        }
    }
    pipeline.finish(sink.as_mut())?;
    sink.flush()?;
    let mut shared = report.lock().expect("not poisoned");
    shared.stats = pipeline.stats();
    shared.rings = socket.statistics().unwrap_or_default();
    shared.output = sink.summary();
    Ok(())
}

/// Totals over all workers, plus the XDP program's counters.
fn stats_line(program: &XdpProgram, reports: &[Arc<Mutex<WorkerReport>>]) -> String {
    let mut stats = Stats::default();
    let mut rings = XskStats::default();
    let mut outputs = Vec::new();
    for report in reports {
        let report = report.lock().expect("not poisoned");
        stats += &report.stats;
        rings += &report.rings;
        outputs.extend(report.output.clone());
    }
    let xdp = program
        .counters()
        .map(|c| {
            Counter::ALL
                .iter()
                .map(|counter| format!("{}={}", counter.name(), c[*counter as usize]))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|e| e.to_string());
    let mut line = format!(
        "sipbeat: xdp: {xdp}\nsipbeat: rings: rx_dropped={} rx_ring_full={} rx_fill_ring_empty={} rx_invalid={}\n",
        rings.rx_dropped,
        rings.rx_ring_full,
        rings.rx_fill_ring_empty_descs,
        rings.rx_invalid_descs
    );
    line.push_str(&stats.summary(Duration::ZERO));
    for output in outputs {
        line.push_str(&output);
        line.push('\n');
    }
    line
}

/// How long a live worker may wait for room in a full Kafka queue before it
/// drops the event (counted), unless the config says otherwise.
pub const LIVE_MAX_BLOCK_MS: u64 = 100;

/// The config with live-capture defaults: a capture worker never waits
/// indefinitely on its output, or its ring would overflow uncounted.
fn live_output(config: &Config) -> Config {
    #[allow(unused_mut)]
    let mut config = config.clone();
    #[cfg(feature = "kafka")]
    if let crate::output::Output::Kafka(kafka) = &mut config.output {
        kafka.max_block_ms.get_or_insert(LIVE_MAX_BLOCK_MS);
    }
    config
}

/// Runs live capture until SIGINT or SIGTERM.
pub fn run(config: &Config, options: &RunOptions) -> anyhow::Result<()> {
    let config = &live_output(config);
    let mut program = XdpProgram::attach(
        &options.interface,
        options.mode,
        &config.sip.ports,
        config.sip.transport,
    )?;
    let ifindex = crate::capture::xdp::if_index(&options.interface)?;
    let queues = options
        .queues
        .unwrap_or_else(|| crate::capture::xdp::rx_queues(&options.interface));
    let stop = Arc::new(AtomicBool::new(false));
    let mut reports = Vec::new();
    let mut workers = Vec::new();
    let agent = Agent::current();
    for queue in 0..queues {
        let socket = XskSocket::bind(ifindex, queue, &options.xsk)
            .with_context(|| format!("AF_XDP socket for {} queue {queue}", options.interface))?;
        program.bind_queue(queue, &socket.fd_handle())?;
        let sink = config.output.open()?;
        let pipeline = Pipeline::new(config.pipeline(), agent.clone());
        let report = Arc::new(Mutex::new(WorkerReport::default()));
        reports.push(Arc::clone(&report));
        let stop = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name(format!("sipbeat-q{queue}"))
            .spawn(move || worker(queue, socket, pipeline, sink, report, stop))?;
        workers.push(handle);
    }
    eprintln!(
        "sipbeat: capturing SIP on {} ({queues} queues, XDP {:?} mode, ports {:?})",
        options.interface, program.mode, config.sip.ports
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let period = Duration::from_secs(options.stats_interval.max(1));
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = terminate.recv() => break,
                _ = ticker.tick(), if options.stats_interval > 0 => eprint!("{}", stats_line(&program, &reports)),
            }
            if workers.iter().any(|w| w.is_finished()) {
                break;
            }
        }
        anyhow::Ok(())
    })?;
    stop.store(true, Ordering::Relaxed);
    let mut first_error = None;
    for handle in workers {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                first_error.get_or_insert(anyhow::Error::from(error));
            }
            Err(_) => {
                first_error.get_or_insert(anyhow::anyhow!("a capture worker panicked"));
            }
        }
    }
    eprint!("{}", stats_line(&program, &reports));
    // Dropping the program detaches it.
    drop(program);
    first_error.map_or(Ok(()), Err)
}

#[cfg(all(test, feature = "kafka"))]
mod tests {
    use super::*;
    use crate::config::{FileConfig, Overrides};
    use crate::output::Output;
    use crate::output::kafka::KafkaConfig;

    fn with_output(output: Output) -> Config {
        Config::build(
            FileConfig::default(),
            Overrides {
                output: Some(output),
                ..Overrides::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn live_kafka_output_never_waits_forever() {
        let kafka = KafkaConfig::from_url("kafka://k:9092/sip").unwrap();
        assert_eq!(
            kafka.max_block_ms, None,
            "reading files waits as long as it takes"
        );
        let Output::Kafka(live) =
            live_output(&with_output(Output::Kafka(Box::new(kafka.clone())))).output
        else {
            panic!("still Kafka");
        };
        assert_eq!(live.max_block_ms, Some(LIVE_MAX_BLOCK_MS));
        let explicit = KafkaConfig {
            max_block_ms: Some(5),
            ..kafka
        };
        let Output::Kafka(live) =
            live_output(&with_output(Output::Kafka(Box::new(explicit)))).output
        else {
            panic!("still Kafka");
        };
        assert_eq!(live.max_block_ms, Some(5), "the config's choice stands");
    }
}
