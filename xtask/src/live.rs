//! `cargo xtask bench-live`: the loss-free capture rate of `sipbeat run`
//! in both capture modes — mirror (XDP + AF_XDP) and host (TC copies into a
//! ring buffer) — against tcpdump's (AF_PACKET) on the same veth, in the
//! same run, at increasing offered rates of realistic SIP frames.
//!
//! Two namespaces made for the run: a generator sends the benchmark
//! capture's frames out of its veth with batched AF_PACKET `sendmmsg`,
//! paced to the offered rate; the capturer sits on the peer veth (one RX
//! queue) in the other. Generator and capturer are pinned to different
//! cores, so each side has one core, as the goal is stated per core.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

const GEN_NS: &str = "sbbench-gen";
const MON_NS: &str = "sbbench-mon";
const GEN_IF: &str = "sbbench-g";
const MON_IF: &str = "sbbench-m";
/// Offered rates, frames per second.
const RATES: &[u64] = &[
    25_000, 50_000, 100_000, 200_000, 300_000, 400_000, 600_000, 800_000,
];
const SECONDS: u64 = 3;

fn sh(args: &[&str]) -> Result<()> {
    let status = Command::new(args[0])
        .args(&args[1..])
        .stderr(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("{args:?} failed");
    }
    Ok(())
}

struct Topology;

impl Topology {
    fn new() -> Result<Topology> {
        Topology::cleanup();
        sh(&["ip", "netns", "add", GEN_NS])?;
        sh(&["ip", "netns", "add", MON_NS])?;
        sh(&[
            "ip",
            "link",
            "add",
            GEN_IF,
            "numtxqueues",
            "1",
            "numrxqueues",
            "1",
            "type",
            "veth",
            "peer",
            "name",
            MON_IF,
            "numrxqueues",
            "1",
            "numtxqueues",
            "1",
        ])?;
        sh(&["ip", "link", "set", GEN_IF, "netns", GEN_NS])?;
        sh(&["ip", "link", "set", MON_IF, "netns", MON_NS])?;
        sh(&["ip", "-n", GEN_NS, "link", "set", GEN_IF, "up"])?;
        sh(&["ip", "-n", MON_NS, "link", "set", MON_IF, "up"])?;
        Ok(Topology)
    }

    fn cleanup() {
        for ns in [GEN_NS, MON_NS] {
            let _ = sh(&["ip", "netns", "del", ns]);
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        Topology::cleanup();
    }
}

/// What the generator sent: its own count and how long sending took (it
/// falls behind the schedule when its core is short of time).
struct Offered {
    frames: u64,
    seconds: f64,
}

impl Offered {
    /// The rate actually offered, frames per second.
    fn rate(&self) -> u64 {
        (self.frames as f64 / self.seconds) as u64
    }
}

fn generate(rate: u64, pcap: &Path) -> Result<Offered> {
    let exe = std::env::current_exe()?;
    let output = Command::new("ip")
        .args(["netns", "exec", GEN_NS, "taskset", "-c", "1"])
        .arg(exe)
        .args([
            "gen-traffic",
            GEN_IF,
            &rate.to_string(),
            &SECONDS.to_string(),
        ])
        .arg(pcap)
        .output()?;
    if !output.status.success() {
        bail!("generator: {}", String::from_utf8_lossy(&output.stderr));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut fields = text.split_whitespace();
    let mut next = || fields.next().context("generator prints frames and seconds");
    Ok(Offered {
        frames: next()?.parse()?,
        seconds: next()?.parse()?,
    })
}

/// Once the capturer `child` has logged `ready`, offers `rate` for the
/// trial's length, then stops it with `signal`. Returns what was offered and
/// the capturer's log.
fn offer(
    mut child: std::process::Child,
    log: &Path,
    ready: &str,
    signal: &str,
    rate: u64,
    pcap: &Path,
) -> Result<(Offered, String)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(log)?.contains(ready) {
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("capturer did not start: {}", std::fs::read_to_string(log)?);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Both capturers get the same settling time before traffic starts.
    std::thread::sleep(Duration::from_secs(1));
    let sent = generate(rate, pcap)?;
    std::thread::sleep(Duration::from_millis(500));
    sh(&["kill", signal, &child.id().to_string()])?;
    child.wait()?;
    Ok((sent, std::fs::read_to_string(log)?))
}

/// What a capturer saw of one offered rate.
struct Trial {
    offered: Offered,
    captured: u64,
    drops: String,
}

fn sipbeat_trial(sipbeat: &str, mode: &str, rate: u64, pcap: &Path) -> Result<Trial> {
    let log = std::env::temp_dir().join("sipbeat-bench-live.log");
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            MON_NS,
            "taskset",
            "-c",
            "0",
            sipbeat,
            "run",
            "--mode",
            mode,
            "-i",
            MON_IF,
            "--stats-interval",
            "0",
            "-o",
            "file:/dev/null",
        ])
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let (offered, text) = offer(child, &log, "capturing SIP", "-TERM", rate, pcap)?;
    let captured = text
        .lines()
        .rev()
        .find_map(|l| {
            l.strip_prefix("sipbeat: ")
                .and_then(|r| r.split(" frames").next())
                .and_then(|n| n.parse().ok())
        })
        .context("sipbeat's final summary")?;
    // The last of each summary line: the final one, after the periodic ones.
    let last = |prefix: &str| {
        text.lines()
            .rev()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_default()
            .to_string()
    };
    let kernel = last("sipbeat: kernel: ");
    let drops = match last("sipbeat: rings: ") {
        rings if rings.is_empty() => kernel,
        rings => format!("{rings}; kernel {kernel}"),
    };
    Ok(Trial {
        offered,
        captured,
        drops,
    })
}

fn tcpdump_trial(rate: u64, pcap: &Path) -> Result<Trial> {
    let log = std::env::temp_dir().join("tcpdump-bench-live.log");
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            MON_NS,
            "taskset",
            "-c",
            "0",
            "tcpdump",
            "-i",
            MON_IF,
            "-n",
            "-w",
            "/dev/null",
            "-B",
            "16384",
            "udp",
        ])
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let (offered, text) = offer(child, &log, "listening on", "-INT", rate, pcap)?;
    let number = |suffix: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_suffix(suffix))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    // What reached tcpdump's ring: received by the socket filter, less
    // what the kernel dropped for want of room. ("packets captured" lags by
    // the frames still in an unretired TPACKET_V3 block at SIGINT.)
    let received = number(" packets received by filter");
    let dropped = number(" packets dropped by kernel");
    Ok(Trial {
        offered,
        captured: received.saturating_sub(dropped),
        drops: format!(
            "dropped by kernel {dropped}, written {}",
            number(" packets captured")
        ),
    })
}

/// Runs both capturers over the rates; prints a table.
pub fn run() -> Result<()> {
    crate::setup::test_dependencies()?;
    let sipbeat = &crate::pgo::sipbeat()?;
    let pcap = crate::bench::generate(crate::bench::DEFAULT_MESSAGES)?;
    let _topology = Topology::new()?;
    println!(
        "| asked/s | mirror: sent (achieved/s) | captured | loss | host: sent (achieved/s) | captured | loss | tcpdump: sent (achieved/s) | captured | loss |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut best = [0u64; 3];
    for &rate in RATES {
        let trials = [
            sipbeat_trial(sipbeat, "mirror", rate, &pcap)?,
            sipbeat_trial(sipbeat, "host", rate, &pcap)?,
            tcpdump_trial(rate, &pcap)?,
        ];
        let loss = |trial: &Trial| trial.offered.frames.saturating_sub(trial.captured);
        let mut row = format!("| {rate} |");
        for (trial, best) in trials.iter().zip(&mut best) {
            if loss(trial) == 0 {
                *best = (*best).max(trial.offered.rate());
            }
            row.push_str(&format!(
                " {} ({}) | {} | {} ({}) |",
                trial.offered.frames,
                trial.offered.rate(),
                trial.captured,
                loss(trial),
                trial.drops
            ));
        }
        println!("{row}");
    }
    println!(
        "loss-free (highest achieved rate with no loss): sipbeat mirror {} frames/s, sipbeat host {} frames/s, tcpdump {} frames/s",
        best[0], best[1], best[2]
    );
    Ok(())
}

/// The generator, run inside the generator namespace: sends the capture's
/// frames out of `interface` at `rate` for `seconds`; prints the count sent and the seconds sending took.
pub fn generate_traffic(interface: &str, rate: u64, seconds: u64, pcap: &Path) -> Result<()> {
    let mut file = sipbeat::capture::pcap::PcapFile::open(pcap)?;
    let mut frames: Vec<Vec<u8>> = Vec::new();
    file.for_each_frame(|frame| {
        if frames.len() < 20_000 {
            frames.push(frame.data.to_vec());
        }
    })?;
    let c_name = std::ffi::CString::new(interface)?;
    // SAFETY: plain syscalls on values we own; errors are checked.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        if fd < 0 {
            bail!("AF_PACKET socket: {}", std::io::Error::last_os_error());
        }
        let mut address: libc::sockaddr_ll = std::mem::zeroed();
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_ifindex = libc::if_nametoindex(c_name.as_ptr()) as i32;
        if libc::bind(
            fd,
            (&address as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as u32,
        ) < 0
        {
            bail!("bind: {}", std::io::Error::last_os_error());
        }
        const BATCH: usize = 32;
        let total = rate * seconds;
        let started = Instant::now();
        let mut sent = 0u64;
        let mut next = 0usize;
        while sent < total {
            // Pace: the batch goes out when the schedule says it is due.
            let due = Duration::from_nanos(sent * 1_000_000_000 / rate);
            while started.elapsed() < due {
                std::hint::spin_loop();
            }
            let count = BATCH.min((total - sent) as usize);
            let mut iovecs: Vec<libc::iovec> = (0..count)
                .map(|i| {
                    let frame = &frames[(next + i) % frames.len()];
                    libc::iovec {
                        iov_base: frame.as_ptr() as *mut _,
                        iov_len: frame.len(),
                    }
                })
                .collect();
            let mut messages: Vec<libc::mmsghdr> = iovecs
                .iter_mut()
                .map(|iov| {
                    let mut header: libc::mmsghdr = std::mem::zeroed();
                    header.msg_hdr.msg_iov = iov;
                    header.msg_hdr.msg_iovlen = 1;
                    header
                })
                .collect();
            let rc = libc::sendmmsg(fd, messages.as_mut_ptr(), count as u32, 0);
            if rc < 0 {
                let error = std::io::Error::last_os_error();
                if error.raw_os_error() == Some(libc::ENOBUFS)
                    || error.kind() == std::io::ErrorKind::WouldBlock
                {
                    continue;
                }
                bail!("sendmmsg: {error}");
            }
            sent += rc as u64;
            next = (next + rc as usize) % frames.len();
        }
        let seconds = started.elapsed().as_secs_f64();
        libc::close(fd);
        println!("{sent} {seconds:.3}");
    }
    Ok(())
}
