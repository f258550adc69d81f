//! `sipbeat run`: live capture, in one of two modes (`capture::CaptureMode`).
//!
//! - **host** (the default): TC programs on each interface's ingress and
//!   egress copy SIP packets and IP fragments into one ring buffer; one
//!   worker (not pinned: the node's own work comes first) runs the pipeline
//!   on them. Nothing is ever taken from the node.
//! - **mirror**: the XDP program sends SIP frames to one AF_XDP socket per
//!   RX queue; one worker thread per queue, pinned to a core, runs the same
//!   pipeline as `sipbeat read` into its own output. Refused on an
//!   interface with addresses unless forced: it would black-hole the
//!   node's SIP.
//!
//! The main thread is the control plane (tokio): signals, and a stats line
//! every few seconds with the kernel's, the rings' and the pipeline's
//! counters.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use sipbeat_common::{Counter, transport};

use crate::capture::ebpf::{self, FilterSettings, Programs};
use crate::capture::ring::HostRing;
use crate::capture::xsk::{XskConfig, XskSocket, XskStats};
use crate::capture::{CaptureMode, Frame, LinkType};
use crate::config::Config;
use crate::event::Agent;
use crate::event::timestamp::now_ns;
use crate::output::OutputError;
use crate::pipeline::{Pipeline, TransportProtocol};
use crate::stats::Stats;

/// What one worker reports to the control plane.
#[derive(Default)]
struct WorkerReport {
    /// The interface(s) and queue the worker reads, as metric labels.
    interface: String,
    queue: String,
    stats: Stats,
    rings: XskStats,
    output: Option<String>,
    /// The output's own counters (Kafka's), by name.
    output_counters: Vec<(&'static str, u64)>,
    /// The output's gauges ([`Sink::gauges`](crate::output::Sink::gauges)).
    output_gauges: Vec<(&'static str, u64)>,
    /// Whether the output can deliver now ([`Sink::ready`](crate::output::Sink::ready)).
    output_ready: bool,
    /// When the worker last published: its heartbeat.
    updated: Option<Instant>,
}

/// A worker that has not published for this long is not making progress.
const STALLED_AFTER: Duration = Duration::from_secs(5);

/// Frames taken off a ring per batch.
const BATCH: u32 = 256;
/// The longest an idle worker sleeps before it checks for a stop.
const IDLE_WAIT_MS: i32 = 100;
/// The longest an idle worker sleeps when other workers hand it messages.
const SHARDED_IDLE_WAIT_MS: i32 = 1;
/// How long a stopping worker waits for the others to stop handing over.
const SHARD_CLOSE_PATIENCE: Duration = Duration::from_secs(5);
/// How often a worker publishes its counters and flushes its output.
const REPORT_EVERY: Duration = Duration::from_millis(500);

fn pin_to_core(core: usize) {
    // SAFETY: a zeroed cpu_set_t with one bit set, for the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Where a worker's frames come from.
trait Source: Send + 'static {
    /// Sleeps a while (at most `ms`) for frames.
    fn wait(&mut self, ms: i32) -> std::io::Result<()>;
    /// Hands up to `max` frames to `on_frame`; returns how many.
    fn receive(&mut self, max: u32, on_frame: impl FnMut(Frame<'_>)) -> usize;
    /// The source's own counters.
    fn rings(&self) -> XskStats;
    /// Records the source could not make frames of.
    fn damaged(&self) -> u64 {
        0
    }
}

/// Mirror mode: one AF_XDP socket on `interface`.
struct Mirror {
    socket: XskSocket,
    interface: String,
}

impl Source for Mirror {
    fn wait(&mut self, ms: i32) -> std::io::Result<()> {
        self.socket.wait(ms)
    }

    fn receive(&mut self, max: u32, mut on_frame: impl FnMut(Frame<'_>)) -> usize {
        let timestamp_ns = now_ns();
        let interface = Some(self.interface.as_str());
        self.socket.receive(max, |data| {
            on_frame(Frame {
                timestamp_ns,
                link: LinkType::Ethernet,
                data,
                interface,
            })
        })
    }

    fn rings(&self) -> XskStats {
        self.socket.statistics().unwrap_or_default()
    }
}

/// Host mode: the ring the TC programs copy into.
struct Host {
    ring: HostRing,
    link: LinkType,
    /// The attached interfaces' names by index, for `observer.ingress`.
    names: Vec<(u32, String)>,
}

impl Source for Host {
    fn wait(&mut self, ms: i32) -> std::io::Result<()> {
        // The programs wake the reader only once a batch is waiting.
        self.ring.wait(ms.min(sipbeat_common::HOST_RING_POLL_MS))
    }

    fn receive(&mut self, max: u32, mut on_frame: impl FnMut(Frame<'_>)) -> usize {
        let link = self.link;
        let names = &self.names;
        self.ring
            .receive(max as usize, |timestamp_ns, header, data| {
                let interface = names
                    .iter()
                    .find(|(index, _)| *index == header.ifindex)
                    .map(|(_, name)| name.as_str());
                on_frame(Frame {
                    timestamp_ns,
                    link,
                    data,
                    interface,
                })
            })
    }

    fn rings(&self) -> XskStats {
        XskStats::default()
    }

    fn damaged(&self) -> u64 {
        self.ring.malformed
    }
}

/// One source's loop: receive, run the pipeline, report, until `stop`.
fn worker(
    mut source: impl Source,
    mut pipeline: Pipeline,
    mut sink: Box<dyn crate::output::Sink>,
    report: Arc<Mutex<WorkerReport>>,
    stop: Arc<AtomicBool>,
) -> Result<(), OutputError> {
    let mut last_report = Instant::now();
    let mut failed = None;
    let mut idle = true;
    // Sharded, messages handed over wait in the inbox while this worker
    // sleeps: sleep briefly.
    let idle_wait = if pipeline.is_sharded() {
        SHARDED_IDLE_WAIT_MS
    } else {
        IDLE_WAIT_MS
    };
    while !stop.load(Ordering::Relaxed) {
        // Sleep in poll only when the ring ran dry: under load the next
        // batch is already there, and a system call per batch is waste.
        if idle && let Err(error) = source.wait(idle_wait) {
            crate::log::warn(&format!("poll: {error}"));
        }
        let received = source.receive(BATCH, |frame| {
            if let Err(error) = pipeline.process(frame, sink.as_mut()) {
                failed.get_or_insert(error);
            }
        });
        idle = received == 0;
        if let Some(error) = failed.take() {
            return Err(error);
        }
        pipeline.receive_handoffs(sink.as_mut())?;
        if idle {
            sink.idle()?;
        }
        if last_report.elapsed() >= REPORT_EVERY {
            // Calls whose timers ran out while no packet came.
            pipeline.tick(now_ns(), sink.as_mut())?;
            sink.flush()?;
            publish(&report, &pipeline, &source, sink.as_ref());
            last_report = Instant::now();
        }
    }
    pipeline.close_shard(sink.as_mut(), SHARD_CLOSE_PATIENCE)?;
    pipeline.finish(sink.as_mut())?;
    sink.drain()?;
    publish(&report, &pipeline, &source, sink.as_ref());
    Ok(())
}

fn publish(
    report: &Mutex<WorkerReport>,
    pipeline: &Pipeline,
    source: &impl Source,
    sink: &dyn crate::output::Sink,
) {
    let mut shared = report.lock().expect("not poisoned");
    shared.stats = pipeline.stats();
    shared.stats.counts.damaged_records += source.damaged();
    shared.rings = source.rings();
    shared.output = sink.summary();
    shared.output_counters = sink.counters();
    shared.output_gauges = sink.gauges();
    shared.output_ready = sink.ready();
    shared.updated = Some(Instant::now());
}

/// Totals over all workers, plus the programs' counters, on stderr: lines
/// for a terminal, or one JSON object.
fn log_stats(
    mode: CaptureMode,
    programs: &[(String, Programs)],
    reports: &[Arc<Mutex<WorkerReport>>],
) {
    let mut stats = Stats::default();
    let mut rings = XskStats::default();
    let mut outputs = Vec::new();
    let mut output_counters: Vec<(&'static str, u64)> = Vec::new();
    for report in reports {
        let report = report.lock().expect("not poisoned");
        stats += &report.stats;
        rings += &report.rings;
        outputs.extend(report.output.clone());
        for &(name, value) in &report.output_counters {
            match output_counters.iter_mut().find(|(n, _)| *n == name) {
                Some((_, total)) => *total += value,
                None => output_counters.push((name, value)),
            }
        }
    }
    let mut kernel = [0u64; Counter::ALL.len()];
    let mut kernel_error = None;
    for (_, program) in programs {
        match program.counters() {
            Ok(counters) => kernel.iter_mut().zip(counters).for_each(|(k, c)| *k += c),
            Err(error) => kernel_error = Some(error.to_string()),
        }
    }
    let kernel_fields = || {
        Counter::ALL
            .iter()
            .map(|counter| (counter.name(), kernel[*counter as usize]))
    };
    let kernel_text = kernel_error.clone().unwrap_or_else(|| {
        kernel_fields()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join(" ")
    });
    let mut text = format!("sipbeat: kernel: {kernel_text}\n");
    if mode == CaptureMode::Mirror {
        text.push_str(&format!("sipbeat: rings: {}\n", rings.line()));
    }
    text.push_str(&stats.summary(Duration::ZERO));
    for output in outputs {
        text.push_str(&output);
        text.push('\n');
    }
    let mut json = stats.to_json();
    json["kernel"] = match kernel_error {
        Some(error) => error.into(),
        None => crate::stats::json_object(kernel_fields()),
    };
    if mode == CaptureMode::Mirror {
        json["rings"] = crate::stats::json_object(rings.fields());
    }
    if !output_counters.is_empty() {
        json["output"] = crate::stats::json_object(output_counters);
    }
    crate::log::stats(&text, json);
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

/// Every counter, by interface and queue, in the Prometheus text format.
fn exposition(programs: &[(String, Programs)], reports: &[Arc<Mutex<WorkerReport>>]) -> String {
    let mut out = crate::metrics::Exposition::default();
    for (interface, program) in programs {
        if let Ok(counters) = program.counters() {
            expose_kernel(&mut out, interface, &counters);
        }
    }
    for report in reports {
        expose_worker(&mut out, &report.lock().expect("not poisoned"));
    }
    out.render()
}

/// The programs' counters on `interface`.
fn expose_kernel(
    out: &mut crate::metrics::Exposition,
    interface: &str,
    counters: &[u64; Counter::ALL.len()],
) {
    for counter in Counter::ALL {
        out.counter(
            &format!("kernel_{}", counter.name()),
            "The eBPF programs' counter of this name, summed over CPUs.",
            &[("interface", interface)],
            counters[counter as usize],
        );
    }
}

/// One worker's pipeline counters, and its socket's in mirror mode.
fn expose_worker(out: &mut crate::metrics::Exposition, report: &WorkerReport) {
    let labels = [
        ("interface", report.interface.as_str()),
        ("queue", report.queue.as_str()),
    ];
    report.stats.expose(out, &labels);
    out.gauge(
        "output_ready",
        "1 while the worker's output can deliver events (Kafka: a broker is up).",
        &labels,
        u64::from(report.output_ready),
    );
    for (name, value) in &report.output_counters {
        out.counter(
            &format!("output_{name}"),
            "The output's counter of this name (Kafka: the summary's kafka: line).",
            &labels,
            *value,
        );
    }
    for (name, value) in &report.output_gauges {
        out.gauge(
            &format!("output_{name}"),
            "The output's gauge of this name (the disk queue's depth and oldest event's age).",
            &labels,
            *value,
        );
    }
    if report.queue != HOST_QUEUE {
        for (name, value) in report.rings.fields() {
            out.counter(
                &format!("xdp_socket_{name}"),
                "The AF_XDP socket's kernel counter of this name (XDP_STATISTICS).",
                &labels,
                value,
            );
        }
    }
}

/// Whether every worker is alive and has published lately; if not, why.
fn healthy(workers: &[Worker], reports: &[Arc<Mutex<WorkerReport>>]) -> Result<(), String> {
    if workers.iter().any(|w| w.is_finished()) {
        return Err("a capture worker has stopped".into());
    }
    for report in reports {
        let report = report.lock().expect("not poisoned");
        // A worker publishes every REPORT_EVERY; before its first, it has
        // just started.
        if report
            .updated
            .is_some_and(|at| at.elapsed() >= STALLED_AFTER)
        {
            return Err(format!(
                "worker for {} queue {} has made no progress for {}s",
                report.interface,
                report.queue,
                STALLED_AFTER.as_secs()
            ));
        }
    }
    Ok(())
}

/// Whether events reach the output: capture is attached (it is, once the
/// control loop runs), the workers are healthy and every output can
/// deliver; if not, why.
fn ready(workers: &[Worker], reports: &[Arc<Mutex<WorkerReport>>]) -> Result<(), String> {
    healthy(workers, reports)?;
    for report in reports {
        let report = report.lock().expect("not poisoned");
        if report.updated.is_none() {
            return Err("starting".into());
        }
        if !report.output_ready {
            return Err(format!(
                "the output of {} queue {} cannot deliver (Kafka: no broker up)",
                report.interface, report.queue
            ));
        }
    }
    Ok(())
}

/// The `queue` label of host mode's one worker.
const HOST_QUEUE: &str = "ring";

/// Binds the endpoint's socket, if `http.enabled`: a one-line error now
/// rather than a missing endpoint later.
fn http_listener(config: &Config) -> anyhow::Result<Option<std::net::TcpListener>> {
    if !config.http.enabled {
        return Ok(None);
    }
    let addresses = config.http.addresses().map_err(anyhow::Error::msg)?;
    let listener = std::net::TcpListener::bind(&addresses[..]).with_context(|| {
        format!(
            "http: cannot listen on {}:{}",
            config.http.host, config.http.port
        )
    })?;
    listener.set_nonblocking(true)?;
    Ok(Some(listener))
}

/// The filter the programs apply, from the config.
fn filter_settings(config: &Config) -> FilterSettings {
    FilterSettings {
        sip_ports: config.sip_ports(),
        tunnel_ports: config.capture.tunnels().iter().collect(),
        // Every block's transports; a block's own are applied in user space.
        transports: config
            .sip
            .iter()
            .map(|block| match block.transport {
                TransportProtocol::Udp => transport::UDP,
                TransportProtocol::Tcp => transport::TCP,
                TransportProtocol::Both => transport::UDP | transport::TCP,
            })
            .fold(0, |all, one| all | one),
        max_copy: config.capture.max_copy,
    }
}

/// Where a worker sits among the others.
#[derive(Default)]
struct Seat {
    /// The core it is pinned to.
    pin: Option<usize>,
    /// Its share of the Call-IDs, when there are several workers.
    shard: Option<crate::shard::Shard>,
}

/// A worker thread; it ends with its output's error, if any.
type Worker = std::thread::JoinHandle<Result<(), OutputError>>;

/// A worker thread running `source` into its own output; `labels` are
/// its interface(s) and queue.
fn spawn_worker(
    name: String,
    labels: (&str, &str),
    source: impl Source,
    config: &Config,
    agent: &Agent,
    stop: &Arc<AtomicBool>,
    seat: Seat,
) -> anyhow::Result<(Worker, Arc<Mutex<WorkerReport>>)> {
    let Seat { pin, shard } = seat;
    let sink = config.output.open_for(&name)?;
    // The node's own addresses give `network.direction` ingress/egress.
    let local = config
        .capture
        .interfaces
        .iter()
        .flat_map(|interface| ebpf::node_addresses(interface))
        .collect();
    let mut pipeline = Pipeline::with_local(config.pipeline(), agent.clone(), local);
    if let Some(shard) = shard {
        pipeline = pipeline.sharded(shard);
    }
    let report = Arc::new(Mutex::new(WorkerReport {
        interface: labels.0.to_string(),
        queue: labels.1.to_string(),
        ..WorkerReport::default()
    }));
    let shared = Arc::clone(&report);
    let stop = Arc::clone(stop);
    let handle = std::thread::Builder::new().name(name).spawn(move || {
        if let Some(core) = pin {
            pin_to_core(core);
        }
        worker(source, pipeline, sink, shared, stop)
    })?;
    Ok((handle, report))
}

/// Runs live capture until SIGINT or SIGTERM.
pub fn run(config: &Config) -> anyhow::Result<()> {
    let config = &live_output(config);
    let capture = &config.capture;
    if capture.interfaces.is_empty() {
        bail!("no interface to capture on: give -i IF, or capture.interfaces in the config");
    }
    for interface in &capture.interfaces {
        ebpf::if_index(interface)?;
    }
    crate::caps::raise_permitted();
    let (mode, needed) = match capture.mode {
        CaptureMode::Host => ("host", crate::caps::HOST),
        CaptureMode::Mirror => ("mirror", crate::caps::MIRROR),
    };
    let missing = crate::caps::missing(needed);
    if !missing.is_empty() {
        let names = |caps: &[crate::caps::Capability]| {
            caps.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ")
        };
        bail!(
            "{mode} mode needs {}; this process lacks {} (run as root, or grant them as deploy/kubernetes/sipbeat-daemonset.yaml does)",
            names(needed),
            names(&missing)
        );
    }
    let listener = http_listener(config)?;
    let filter = filter_settings(config);
    let agent = config.agent().live();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    let mut reports = Vec::new();
    let mut programs = Vec::new();
    let names = capture.interfaces.join(",");
    match capture.mode {
        CaptureMode::Host => {
            let link = ebpf::link_kind(&capture.interfaces[0])?;
            for interface in &capture.interfaces[1..] {
                if ebpf::link_kind(interface)? != link {
                    bail!(
                        "interfaces {names}: mix Ethernet and raw-IP links; run one sipbeat for each kind"
                    );
                }
            }
            let mut host = Programs::load(&filter, link, Some(capture.ring_size))?;
            for interface in &capture.interfaces {
                host.attach_host(interface)?;
            }
            let source = Host {
                ring: HostRing::new(host.take_ring()?),
                link: if link == sipbeat_common::filter::link::RAW_IP {
                    LinkType::RawIp
                } else {
                    LinkType::Ethernet
                },
                names: capture
                    .interfaces
                    .iter()
                    .map(|name| Ok((ebpf::if_index(name)?, name.clone())))
                    .collect::<anyhow::Result<_>>()?,
            };
            let (handle, report) = spawn_worker(
                "sipbeat-host".into(),
                (&names, HOST_QUEUE),
                source,
                config,
                &agent,
                &stop,
                Seat::default(),
            )?;
            workers.push(handle);
            reports.push(report);
            programs.push((names.clone(), host));
            crate::log::info(&format!(
                "capturing SIP on {names} (host mode: copies from TC ingress and egress, nothing taken; ports {:?})",
                config.sip_ports()
            ));
        }
        CaptureMode::Mirror => {
            for interface in &capture.interfaces {
                let addresses = ebpf::node_addresses(interface);
                if !addresses.is_empty() && !capture.force_mirror {
                    let shown: Vec<String> = addresses.iter().map(ToString::to_string).collect();
                    bail!(
                        "mirror mode on {interface} would take SIP and IP fragments away from this node, which has addresses there ({}); use host mode (the default), or --force-mirror (capture.force_mirror) on a dedicated SPAN/TAP port",
                        shown.join(", ")
                    );
                }
            }
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let xsk = XskConfig::from_capture(capture);
            let mut attached = Vec::new();
            // One worker per queue of every interface; each Call-ID has one
            // owner among them.
            let queue_counts: Vec<u32> = capture
                .interfaces
                .iter()
                .map(|interface| capture.queues.unwrap_or_else(|| ebpf::rx_queues(interface)))
                .collect();
            let mut shards =
                crate::shard::shards(queue_counts.iter().sum::<u32>() as usize).into_iter();
            for (interface, &queues) in capture.interfaces.iter().zip(&queue_counts) {
                let mut program =
                    Programs::load(&filter, sipbeat_common::filter::link::ETHERNET, None)?;
                let mode = program.attach_mirror(interface, capture.xdp_mode)?;
                let ifindex = ebpf::if_index(interface)?;
                for queue in 0..queues {
                    let socket = XskSocket::bind(ifindex, queue, &xsk)
                        .with_context(|| format!("AF_XDP socket for {interface} queue {queue}"))?;
                    program.bind_queue(queue, &socket.fd_handle())?;
                    let (handle, report) = spawn_worker(
                        format!("sipbeat-q{queue}"),
                        (interface, &queue.to_string()),
                        Mirror {
                            socket,
                            interface: interface.clone(),
                        },
                        config,
                        &agent,
                        &stop,
                        Seat {
                            pin: Some(queue as usize % cores),
                            shard: shards.next(),
                        },
                    )?;
                    workers.push(handle);
                    reports.push(report);
                }
                attached.push(format!("{interface}: {queues} queues, XDP {mode:?} mode"));
                programs.push((interface.clone(), program));
            }
            crate::log::info(&format!(
                "capturing SIP on {names} (mirror mode: {}; ports {:?})",
                attached.join("; "),
                config.sip_ports()
            ));
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let interval = capture.stats_interval;
    let endpoint = Arc::new(crate::metrics::Endpoint::default());
    runtime.block_on(async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        if let Some(listener) = listener {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            tokio::spawn(crate::metrics::serve(listener, Arc::clone(&endpoint)));
        }
        let period = Duration::from_secs(interval.max(1));
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut snapshot = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = terminate.recv() => break,
                _ = ticker.tick(), if interval > 0 => log_stats(capture.mode, &programs, &reports),
                _ = snapshot.tick(), if config.http.enabled => {
                    endpoint.update(
                        exposition(&programs, &reports),
                        healthy(&workers, &reports),
                        ready(&workers, &reports),
                    );
                }
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
    log_stats(capture.mode, &programs, &reports);
    // Dropping the programs detaches them.
    drop(programs);
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod metric_tests {
    use super::*;

    /// The Grafana dashboard in `deploy/` queries only metrics sipbeat
    /// exports (both modes' workers and the programs').
    #[test]
    fn the_dashboard_queries_exported_metrics() {
        let mut out = crate::metrics::Exposition::default();
        expose_kernel(&mut out, "eth0", &[0; Counter::ALL.len()]);
        for queue in ["0", HOST_QUEUE] {
            #[allow(unused_mut)]
            let mut report = WorkerReport {
                interface: "eth0".into(),
                queue: queue.into(),
                ..WorkerReport::default()
            };
            #[cfg(feature = "kafka")]
            {
                report.output_counters = crate::output::kafka::KafkaCounters::default()
                    .values()
                    .to_vec();
            }
            expose_worker(&mut out, &report);
        }
        let exported = out.render();
        let dashboard = include_str!("../../deploy/grafana/sipbeat-dashboard.json");
        let dashboard: serde_json::Value = serde_json::from_str(dashboard).expect("JSON");
        let mut queried = Vec::new();
        let mut stack = vec![&dashboard];
        while let Some(value) = stack.pop() {
            match value {
                serde_json::Value::Object(map) => {
                    if let Some(expr) = map.get("expr").and_then(|e| e.as_str()) {
                        queried.extend(
                            expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                                .filter(|word| word.starts_with("sipbeat_"))
                                .map(str::to_string),
                        );
                    }
                    stack.extend(map.values());
                }
                serde_json::Value::Array(items) => stack.extend(items),
                _ => {}
            }
        }
        assert!(queried.len() >= 8, "{queried:?}");
        for name in &queried {
            assert!(
                exported.contains(&format!("# TYPE {name} counter")),
                "the dashboard queries {name}, which sipbeat does not export"
            );
        }
    }
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
