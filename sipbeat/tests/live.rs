//! Live capture end to end, as root, in network namespaces this test makes.
//!
//! - Mirror mode: real sipp calls and registrations between two namespaces,
//!   mirrored with `tc mirred` onto a four-queue veth that sipbeat attaches
//!   to in driver mode; one event per SIP message sipp counted, calls
//!   complete. A frame too large for a UMEM frame is counted as dropped.
//! - Host mode (the default), on the SIP server's own interface: every call
//!   completes, over UDP and TCP, and every message in both directions is
//!   one event; a fragmented ping is answered, other traffic flows, and
//!   after `kill -9` everything still flows. Mirror mode there is refused
//!   with one line, and works when forced.
//! - Tunnels, in both modes: corpus captures (plain UDP and TCP, IP-in-IP,
//!   GRE, ERSPAN) and captures the test wraps in VXLAN and Geneve, replayed
//!   with tcpreplay onto a veth sipbeat is attached to, give the events
//!   `sipbeat read` gives for the same files.
//!
//! Addresses are 198.18.N.0/24 (RFC 2544 benchmarking space) inside the
//! test's own namespaces; nothing touches the host's interfaces.
#![cfg(feature = "xdp")]

mod common;

use sipbeat_testkit::tunnel;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs a command, panicking with its output when it fails.
fn sh(args: &[&str]) {
    let output = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Skips (or fails, under `cargo xtask test`) when this machine cannot run it.
fn runnable() -> bool {
    if !is_root() {
        common::missing("root (netns, veth, XDP)");
        return false;
    }
    for tool in [
        "ip",
        "tc",
        "sipp",
        "ping",
        "iptables",
        "setpriv",
        "tcpreplay",
        "prometheus",
        "promtool",
        "podman",
        "runc",
        "setcap",
    ] {
        if !have(tool) {
            common::missing(tool);
            return false;
        }
    }
    true
}

/// UAC and UAS namespaces joined by a veth pair; traffic on the UAS side is
/// mirrored to a four-queue veth whose far end sits in a monitor namespace.
struct Topology {
    tag: String,
    subnet: u8,
}

impl Topology {
    fn new(case: u8) -> Topology {
        let tag = format!("{}{case}", std::process::id() % 100_000);
        let subnet = (std::process::id() % 200) as u8 + case;
        let t = Topology { tag, subnet };
        t.cleanup();
        let (uac, uas, mon) = (t.ns("u"), t.ns("s"), t.ns("m"));
        for ns in [&uac, &uas, &mon] {
            sh(&["ip", "netns", "add", ns]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        let (a, b, m0, m1) = (t.link("a"), t.link("b"), t.link("x"), t.link("y"));
        sh(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b]);
        sh(&["ip", "link", "set", &a, "netns", &uac]);
        sh(&["ip", "link", "set", &b, "netns", &uas]);
        sh(&[
            "ip",
            "link",
            "add",
            &m0,
            "numrxqueues",
            "4",
            "numtxqueues",
            "4",
            "type",
            "veth",
            "peer",
            "name",
            &m1,
            "numrxqueues",
            "4",
            "numtxqueues",
            "4",
        ]);
        sh(&["ip", "link", "set", &m0, "netns", &uas]);
        sh(&["ip", "link", "set", &m1, "netns", &mon]);
        sh(&[
            "ip",
            "-n",
            &uac,
            "addr",
            "add",
            &format!("{}/24", t.uac_ip()),
            "dev",
            &a,
        ]);
        sh(&[
            "ip",
            "-n",
            &uas,
            "addr",
            "add",
            &format!("{}/24", t.uas_ip()),
            "dev",
            &b,
        ]);
        for (ns, link) in [(&uac, &a), (&uas, &b), (&uas, &m0), (&mon, &m1)] {
            sh(&["ip", "-n", ns, "link", "set", link, "up"]);
        }
        // The SPAN port: both directions of the UAS link copied to m0.
        sh(&[
            "ip", "netns", "exec", &uas, "tc", "qdisc", "add", "dev", &b, "clsact",
        ]);
        for direction in ["ingress", "egress"] {
            sh(&[
                "ip", "netns", "exec", &uas, "tc", "filter", "add", "dev", &b, direction,
                "protocol", "all", "u32", "match", "u32", "0", "0", "action", "mirred", "egress",
                "mirror", "dev", &m0,
            ]);
        }
        t
    }

    /// The SPAN port's far end, moved into this test's own namespace beside
    /// a broker the test runs (deleting the test's namespaces still deletes
    /// the pair); its name.
    fn span_beside_the_broker(&self) -> String {
        let span = self.link("y");
        sh(&[
            "ip",
            "-n",
            &self.ns("m"),
            "link",
            "set",
            &span,
            "netns",
            "1",
        ]);
        sh(&["ip", "link", "set", &span, "up"]);
        span
    }

    fn ns(&self, role: &str) -> String {
        format!("sb{role}{}", self.tag)
    }

    fn link(&self, role: &str) -> String {
        format!("sb{role}{}", self.tag)
    }

    fn uac_ip(&self) -> String {
        format!("198.18.{}.1", self.subnet)
    }

    fn uas_ip(&self) -> String {
        format!("198.18.{}.2", self.subnet)
    }

    fn cleanup(&self) {
        for role in ["u", "s", "m"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(role)])
                .stderr(Stdio::null())
                .status();
        }
    }

    /// The MTU of every link, the mirror port's included.
    fn set_mtu(&self, mtu: u32) {
        let mtu = mtu.to_string();
        for (role, link) in [("u", "a"), ("s", "b"), ("s", "x"), ("m", "y")] {
            sh(&[
                "ip",
                "-n",
                &self.ns(role),
                "link",
                "set",
                &self.link(link),
                "mtu",
                &mtu,
            ]);
        }
    }

    fn in_ns(&self, role: &str, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.ns(role), program]);
        command
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Deleting the namespaces deletes the veths in them.
        self.cleanup();
    }
}

/// `sipbeat run`'s options for mirror mode (host mode is the default).
const MIRROR: &[&str] = &["--mode", "mirror"];

/// sipbeat running in a namespace, writing events to a file.
struct Sensor {
    child: Child,
    events: PathBuf,
    stderr: PathBuf,
}

impl Sensor {
    fn start(topology: &Topology, role: &str, interface: &str, dir: &Path) -> Sensor {
        Sensor::start_with(topology, role, interface, dir, &[])
    }

    /// [`Sensor::start`] with `extra` options for `sipbeat run`.
    fn start_with(
        topology: &Topology,
        role: &str,
        interface: &str,
        dir: &Path,
        extra: &[&str],
    ) -> Sensor {
        let events = dir.join(format!("events-{role}.ndjson"));
        let stderr = dir.join(format!("sipbeat-{role}.log"));
        let child = topology
            .in_ns(role, env!("CARGO_BIN_EXE_sipbeat"))
            .args([
                "run",
                "-i",
                interface,
                "--ports",
                "5060,5062",
                "--stats-interval",
                "1",
            ])
            .args(extra)
            .arg("-o")
            .arg(format!("file:{}", events.display()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let sensor = Sensor {
            child,
            events,
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !sensor.log().contains("capturing SIP") {
            assert!(
                Instant::now() < deadline,
                "sipbeat did not start: {}",
                sensor.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        sensor
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGTERM, then wait: a clean detach and final flush. The message
    /// events (call records left out) and the log.
    fn stop(self) -> (Vec<serde_json::Value>, String) {
        let (messages, _, log) = self.stop_all();
        (messages, log)
    }

    /// [`Sensor::stop`], with the call records apart.
    fn stop_all(mut self) -> (Vec<serde_json::Value>, Vec<serde_json::Value>, String) {
        sh(&["kill", "-TERM", &self.child.id().to_string()]);
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "sipbeat exited with {status}: {}",
            self.log()
        );
        let (calls, messages) = std::fs::read_to_string(&self.events)
            .unwrap_or_default()
            .lines()
            .map(|line| sipbeat_testkit::json::parse_event(line.as_bytes()).expect("JSON event"))
            .partition(|event| event["event"]["dataset"] == "sip.call");
        (messages, calls, self.log())
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a sipp client scenario to completion; returns the messages sipp
/// counted (sent, received, retransmitted, unexpected) from -trace_counts.
fn sipp_uac(topology: &Topology, dir: &Path, scenario: &[&str], port: u16, calls: u32) -> u64 {
    let output = topology
        .in_ns("u", "sipp")
        .current_dir(dir)
        .args(scenario)
        .arg(format!("{}:{port}", topology.uas_ip()))
        .args([
            "-i",
            &topology.uac_ip(),
            "-p",
            &port.to_string(),
            "-m",
            &calls.to_string(),
            "-r",
            "50",
        ])
        .args([
            "-nostdin",
            "-trace_counts",
            "-timeout",
            "30",
            "-timeout_error",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "sipp {scenario:?}: every call must complete: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let counts = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with("_counts.csv"))
        .max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .expect("sipp wrote its counts");
    let text = std::fs::read_to_string(&counts).unwrap();
    std::fs::remove_file(&counts).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(';').collect();
    let last: Vec<&str> = lines.last().unwrap().split(';').collect();
    header
        .iter()
        .zip(&last)
        .filter(|(name, _)| {
            ["_Sent", "_Recv", "_Retrans", "_Unexp"]
                .iter()
                .any(|s| name.ends_with(s))
        })
        .map(|(_, value)| value.trim().parse::<u64>().unwrap_or(0))
        .sum()
}

/// A background process, killed and reaped on drop.
struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sipp_uas(topology: &Topology, dir: &Path, scenario: &[&str], port: u16) -> Background {
    let child = topology
        .in_ns("s", "sipp")
        .current_dir(dir)
        .args(scenario)
        .args([
            "-i",
            &topology.uas_ip(),
            "-p",
            &port.to_string(),
            "-nostdin",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    Background(child)
}

fn scenario(name: &str) -> String {
    common::testdata()
        .join("sipp")
        .join(name)
        .display()
        .to_string()
}

fn temp_dir(name: &str) -> common::ScratchDir {
    common::ScratchDir::new(&format!("live-{name}"))
}

#[test]
fn mirrored_sipp_calls_and_registrations_give_one_event_per_message() {
    if !runnable() {
        return;
    }
    let topology = Topology::new(1);
    let dir = temp_dir("mirror");
    let sensor = Sensor::start_with(&topology, "m", &topology.link("y"), &dir, MIRROR);
    let uas = sipp_uas(&topology, &dir, &["-sn", "uas"], 5060);
    let register_uas_file = scenario("register_uas.xml");
    let register_uas = sipp_uas(&topology, &dir, &["-sf", &register_uas_file], 5062);
    let call_messages = sipp_uac(&topology, &dir, &["-sn", "uac"], 5060, 40);
    let register_uac_file = scenario("register_uac.xml");
    let register_messages = sipp_uac(&topology, &dir, &["-sf", &register_uac_file], 5062, 20);
    std::thread::sleep(Duration::from_secs(2));
    let (events, calls, log) = sensor.stop_all();
    drop((uas, register_uas));

    // Four queues, four workers: whichever queue a message came in on, the
    // worker owning its Call-ID paired it (every response is timed) and
    // recorded its call.
    assert_eq!(calls.len(), 40, "{log}");
    for call in &calls {
        assert_eq!(call["sip"]["call"]["state"], "answered", "{call}");
        assert_eq!(call["sip"]["call"]["incomplete"], false, "{call}");
        // sipp's own UAC and UAS: INVITE 180 200 ACK BYE 200.
        assert_eq!(call["sip"]["call"]["messages"], 6, "{call}");
    }
    // The workers line is there only when something was handed over.
    let last = |name: &str| sipbeat_testkit::log::counter_in(&log, name).unwrap_or(0);
    assert_eq!(
        last("unmatched"),
        0,
        "every response met its request\n{log}"
    );
    assert_eq!(last("kept_inbox_full"), 0, "{log}");
    eprintln!(
        "mirror: {} messages handed to their Call-ID's worker",
        last("handed_over")
    );

    let mut methods: BTreeMap<String, usize> = BTreeMap::new();
    for event in &events {
        let key = match event["sip"]["method"].as_str() {
            Some(method) => method.to_string(),
            None => format!(
                "{} {}",
                event["sip"]["code"],
                event["event"]["action"].as_str().unwrap()
            ),
        };
        *methods.entry(key).or_default() += 1;
    }
    assert_eq!(
        events.len() as u64,
        call_messages + register_messages,
        "one event per message sipp counted: {methods:?}\n{log}"
    );
    assert_eq!(methods["INVITE"], 40, "{methods:?}");
    assert_eq!(methods["BYE"], 40, "{methods:?}");
    assert_eq!(methods["REGISTER"], 20, "{methods:?}");
    assert_eq!(methods["200 sip-register"], 20, "{methods:?}");
    for event in &events {
        assert_eq!(event["network"]["transport"], "udp");
        assert!(event["sip"]["call_id"].is_string());
        let ips = [
            event["source"]["ip"].as_str().unwrap(),
            event["destination"]["ip"].as_str().unwrap(),
        ];
        assert!(
            ips.contains(&topology.uac_ip().as_str()) && ips.contains(&topology.uas_ip().as_str())
        );
        // Where it was seen: this sensor, this process, this port.
        let observer = &event["observer"];
        assert_eq!(observer["type"], "sensor", "{event}");
        assert_eq!(observer["ingress"]["interface"]["name"], topology.link("y"));
        assert_eq!(observer["hostname"], event["host"]["name"]);
        assert_eq!(observer["name"], event["agent"]["name"]);
        assert_eq!(
            event["agent"]["ephemeral_id"],
            events[0]["agent"]["ephemeral_id"]
        );
        assert!(
            event["agent"]["id"]
                .as_str()
                .is_some_and(|id| id.len() == 36)
        );
        // A SPAN port's sensor is neither end: no direction without
        // internal_networks.
        assert!(event["network"].get("direction").is_none(), "{event}");
    }
    assert!(
        log.contains("Driver mode"),
        "driver-mode XDP on the veth: {log}"
    );
    assert!(log.contains("rx_dropped=0"), "{log}");
}

/// SIP over TCP through the live path: sipp's single-socket TCP mode,
/// mirrored like the UDP case; the sensor reassembles the streams.
#[test]
fn mirrored_sipp_calls_over_tcp_give_one_event_per_message() {
    if !runnable() {
        return;
    }
    let topology = Topology::new(3);
    let dir = temp_dir("tcp");
    let sensor = Sensor::start_with(&topology, "m", &topology.link("y"), &dir, MIRROR);
    let uas = sipp_uas(&topology, &dir, &["-sn", "uas", "-t", "t1"], 5060);
    let messages = sipp_uac(&topology, &dir, &["-sn", "uac", "-t", "t1"], 5060, 20);
    std::thread::sleep(Duration::from_secs(2));
    let (events, log) = sensor.stop();
    drop(uas);
    assert_eq!(
        events.len() as u64,
        messages,
        "one event per message sipp counted\n{log}"
    );
    for event in &events {
        assert_eq!(event["network"]["transport"], "tcp");
        assert_eq!(event["network"]["iana_number"], "6");
    }
    let invites = events
        .iter()
        .filter(|e| e["sip"]["method"] == "INVITE")
        .count();
    assert_eq!(invites, 20);
    assert!(log.contains("gaps=0"), "{log}");
}

/// Three pings of `size` bytes from the UAC to the UAS, all answered.
fn ping(topology: &Topology, size: u32) {
    let size = size.to_string();
    let uas = topology.uas_ip();
    let ns = topology.ns("u");
    sh(&[
        "ip", "netns", "exec", &ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", "-s", &size, &uas,
    ]);
}

/// Traffic sipbeat must leave alone: ping, and UDP to another port.
fn other_traffic_flows(topology: &Topology) {
    ping(topology, 56);
    let receiver = topology
        .in_ns("s", "python3")
        .args(["-c", &format!(
            "import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('{}',9999));s.settimeout(10);print(s.recv(100).decode())",
            topology.uas_ip()
        )])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    sh(&[
        "ip",
        "netns",
        "exec",
        &topology.ns("u"),
        "python3",
        "-c",
        &format!(
            "import socket;socket.socket(socket.AF_INET,socket.SOCK_DGRAM).sendto(b'not-sip',('{}',9999))",
            topology.uas_ip()
        ),
    ]);
    let output = receiver.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "not-sip");
}

/// A fragmented ping (4,000 bytes over a 1,500-byte MTU) is answered.
fn fragmented_ping_is_answered(topology: &Topology) {
    ping(topology, 4000);
}

/// Events by source address, and SIP calls checked against sipp's counts.
fn count_from(events: &[serde_json::Value], ip: &str) -> usize {
    events
        .iter()
        .filter(|e| e["source"]["ip"].as_str() == Some(ip))
        .count()
}

#[test]
fn host_mode_on_the_sip_servers_own_interface_takes_nothing_and_sees_both_directions() {
    if !runnable() {
        return;
    }
    let topology = Topology::new(2);
    let dir = temp_dir("host");
    let interface = topology.link("b");
    // Defaults: no mode given is host mode, on the interface sipp's UAS uses.
    let sensor = Sensor::start(&topology, "s", &interface, &dir);
    // The truth: tcpdump on the peer's end of the link.
    let truth = dir.join("peer.pcap");
    let tcpdump = Background(
        topology
            .in_ns("u", "tcpdump")
            .args(["-i", &topology.link("a"), "-U", "-n", "-w"])
            .arg(&truth)
            .args(["tcp or udp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(500));
    let uas = sipp_uas(&topology, &dir, &["-sn", "uas"], 5060);
    let udp_messages = sipp_uac(&topology, &dir, &["-sn", "uac"], 5060, 20);
    let tcp_uas = sipp_uas(&topology, &dir, &["-sn", "uas", "-t", "t1"], 5062);
    let tcp_messages = sipp_uac(&topology, &dir, &["-sn", "uac", "-t", "t1"], 5062, 10);
    fragmented_ping_is_answered(&topology);
    other_traffic_flows(&topology);
    std::thread::sleep(Duration::from_secs(2));
    let (events, log) = sensor.stop();
    sh(&["kill", "-INT", &tcpdump.0.id().to_string()]);
    std::thread::sleep(Duration::from_millis(500));
    drop(tcpdump);
    let (on_the_wire, _) = common::read_events(&truth, &common::config_with_ports(&[5060, 5062]));
    assert_eq!(
        message_multiset(&events),
        message_multiset(&on_the_wire),
        "every SIP message tcpdump saw on the peer is one event, and nothing else\n{log}"
    );
    // sipp's UAC counts every message of its calls: sent, received, resent.
    assert_eq!(udp_messages, 20 * 6, "every UDP call completed: {log}");
    assert_eq!(tcp_messages, 10 * 6, "every TCP call completed: {log}");
    let (udp, tcp): (Vec<_>, Vec<_>) = events
        .iter()
        .cloned()
        .partition(|e| e["network"]["transport"] == "udp");
    assert_eq!(
        udp.len() as u64,
        udp_messages,
        "one event per UDP message\n{log}"
    );
    assert_eq!(
        tcp.len() as u64,
        tcp_messages,
        "one event per TCP message\n{log}"
    );
    // Both directions: the UAS's own responses (egress) and the requests it got.
    for (transport, events) in [("udp", &udp), ("tcp", &tcp)] {
        let from_uac = count_from(events, &topology.uac_ip());
        let from_uas = count_from(events, &topology.uas_ip());
        assert_eq!(
            (from_uac, from_uas),
            (events.len() / 2, events.len() / 2),
            "{transport}: INVITE ACK BYE in, 180 200 200 out\n{log}"
        );
        // On the SIP server's own interface: ingress to it, egress from it.
        for event in events.iter() {
            let expected = if event["source"]["ip"] == topology.uas_ip().as_str() {
                "egress"
            } else {
                "ingress"
            };
            assert_eq!(event["network"]["direction"], expected, "{event}");
            assert_eq!(
                event["observer"]["ingress"]["interface"]["name"],
                interface.as_str()
            );
        }
    }
    assert!(log.contains("ring_full=0"), "{log}");
    assert!(log.contains("gaps=0"), "{log}");
    // The ping's fragments were copied and reassembled, then dropped as not SIP.
    assert!(log.contains("reassembled=6"), "{log}");
    drop((uas, tcp_uas));

    // Mirror mode on this interface would black-hole the node: refused.
    let refused = topology
        .in_ns("s", env!("CARGO_BIN_EXE_sipbeat"))
        .args(["run", "-i", &interface, "--mode", "mirror"])
        .output()
        .unwrap();
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert_eq!(message.trim_end().lines().count(), 1, "{message}");
    assert!(message.contains("would take SIP"), "{message}");
    assert!(message.contains(&topology.uas_ip()), "{message}");
    // Forced, it attaches as before.
    let forced = Sensor::start_with(
        &topology,
        "s",
        &interface,
        &dir,
        &["--mode", "mirror", "--force-mirror"],
    );
    let (_, log) = forced.stop();
    assert!(log.contains("mirror mode"), "{log}");

    // Two interfaces in one process: the UAS's link, and the SPAN port its
    // traffic is mirrored to (egress there): every message is seen twice.
    let both = format!("{interface},{}", topology.link("x"));
    let _ = std::fs::remove_file(dir.join("events-s.ndjson"));
    let sensor = Sensor::start(&topology, "s", &both, &dir);
    let uas = sipp_uas(&topology, &dir, &["-sn", "uas"], 5060);
    let messages = sipp_uac(&topology, &dir, &["-sn", "uac"], 5060, 5);
    std::thread::sleep(Duration::from_secs(1));
    let (events, log) = sensor.stop();
    drop(uas);
    assert_eq!(events.len() as u64, 2 * messages, "{log}");
    assert!(log.contains(&format!("capturing SIP on {both}")), "{log}");
    // Each copy names the interface it came in on: half each.
    let on_span = events
        .iter()
        .filter(|e| e["observer"]["ingress"]["interface"]["name"] == topology.link("x").as_str())
        .count();
    assert_eq!(on_span as u64, messages, "{log}");

    // kill -9 of the sensor: everything still flows.
    let mut killed = Sensor::start(&topology, "s", &interface, &dir);
    sh(&["kill", "-KILL", &killed.child.id().to_string()]);
    let _ = killed.child.wait();
    drop(killed);
    other_traffic_flows(&topology);
    fragmented_ping_is_answered(&topology);
    let _uas = sipp_uas(&topology, &dir, &["-sn", "uas"], 5060);
    let messages = sipp_uac(&topology, &dir, &["-sn", "uac"], 5060, 5);
    assert_eq!(
        messages, 30,
        "after kill -9, calls complete (INVITE 180 200 ACK BYE 200)"
    );
}

/// (Call-ID, CSeq number, method or status code) of each event, counted.
fn message_multiset(events: &[serde_json::Value]) -> BTreeMap<String, usize> {
    let mut set = BTreeMap::new();
    for event in events {
        let sip = &event["sip"];
        let what = sip["method"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| sip["code"].to_string());
        *set.entry(format!("{} {} {what}", sip["call_id"], sip["cseq"]["code"]))
            .or_default() += 1;
    }
    set
}

#[test]
fn replayed_tunnel_captures_give_reads_events_in_both_modes() {
    if !runnable() {
        return;
    }
    let Some(corpus) = common::shared_corpus() else {
        common::missing("../shared/corpus");
        return;
    };
    let topology = Topology::new(5);
    let dir = temp_dir("tunnels");
    let aaa = corpus.join("pcaps/sngrep/aaa.pcap");
    let mut captures: Vec<(String, PathBuf)> = [
        ("plain UDP", aaa.clone()),
        ("TCP", corpus.join("packetbeat/pcaps/sip_tcp.pcap")),
        ("IP-in-IP", corpus.join("pcaps/sngrep/ipip.pcap")),
        ("GRE", corpus.join("pcaps/ndpi/gre.pcapng")),
        (
            "ERSPAN",
            corpus.join("pcaps/heplify/erspan_sip_ipv4_udp.pcapng"),
        ),
    ]
    .into_iter()
    .map(|(name, path)| (name.to_string(), path))
    .collect();
    // VXLAN and Geneve: the frames of aaa.pcap, wrapped by the test.
    let mut frames = Vec::new();
    sipbeat::capture::pcap::PcapFile::open(&aaa)
        .unwrap()
        .for_each_frame(|frame| frames.push((frame.timestamp_ns / 1000, frame.data.to_vec())))
        .unwrap();
    for (name, wrap) in [
        ("VXLAN", tunnel::vxlan as fn(u16, &[u8]) -> Vec<u8>),
        ("Geneve", tunnel::geneve),
    ] {
        let port = if name == "VXLAN" { 4789 } else { 6081 };
        let wrapped: Vec<(u64, Vec<u8>)> = frames
            .iter()
            .map(|(time, frame)| (*time, wrap(port, frame)))
            .collect();
        let path = dir.join(format!("{name}.pcap"));
        sipbeat_testkit::capture::write_pcap(&path, &wrapped).unwrap();
        captures.push((name.to_string(), path));
    }
    let ports = [5060, 5062, 5090];
    let config = common::config_with_ports(&ports);
    for mode in ["host", "mirror"] {
        // The file output appends: each mode starts from an empty file.
        let _ = std::fs::remove_file(dir.join("events-m.ndjson"));
        let sensor = Sensor::start_with(
            &topology,
            "m",
            &topology.link("y"),
            &dir,
            &["--mode", mode, "--ports", "5090"],
        );
        let mut expected = BTreeMap::new();
        for (name, path) in &captures {
            let (events, _) = common::read_events(path, &config);
            assert!(
                !events.is_empty(),
                "{name}: read finds SIP in {}",
                path.display()
            );
            for (key, count) in message_multiset(&events) {
                *expected.entry(key).or_insert(0) += count;
            }
            let output = topology
                .in_ns("s", "tcpreplay")
                .args(["-q", "--mbps", "20", "-i", &topology.link("x")])
                .arg(path)
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "tcpreplay {name}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_secs(2));
        let (events, log) = sensor.stop();
        let live = message_multiset(&events);
        let missing: Vec<_> = expected
            .iter()
            .filter(|(key, count)| live.get(*key) != Some(count))
            .collect();
        let extra: Vec<_> = live
            .iter()
            .filter(|(key, _)| !expected.contains_key(*key))
            .collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{mode} mode: live events differ from read's: missing {missing:?}, extra {extra:?}\n{log}"
        );
        assert_eq!(
            events.len(),
            expected.values().sum::<usize>(),
            "{mode}: {log}"
        );
    }
}

#[test]
fn missing_interface_or_privileges_give_one_line_errors() {
    if !runnable() {
        return;
    }
    let missing = Command::new(env!("CARGO_BIN_EXE_sipbeat"))
        .args(["run", "-i", "sbnosuch0"])
        .output()
        .unwrap();
    let message = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success());
    assert_eq!(message.trim_end().lines().count(), 1, "{message}");
    assert!(
        message.contains("interface \"sbnosuch0\" not found"),
        "{message}"
    );
    // As an unprivileged user (a copy of the binary nobody can run).
    let dir = temp_dir("noprivs");
    let binary = dir.join("sipbeat");
    std::fs::copy(env!("CARGO_BIN_EXE_sipbeat"), &binary).unwrap();
    sh(&[
        "chmod",
        "755",
        dir.to_str().unwrap(),
        binary.to_str().unwrap(),
    ]);
    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&binary)
        .args(["run", "-i", "lo"])
        .output()
        .unwrap();
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert_eq!(message.trim_end().lines().count(), 1, "{message}");
    assert!(
        message.contains(
            "host mode needs CAP_BPF, CAP_NET_ADMIN; this process lacks CAP_BPF, CAP_NET_ADMIN"
        ),
        "{message}"
    );
}

/// UDP datagrams of `sizes` bytes (SIP OPTIONS, Call-ID `size-N`) from the
/// UAC to the UAS's port 5060, sent with python3's socket module.
fn send_options(topology: &Topology, sizes: &[usize]) {
    let script = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for size in map(int, sys.argv[2:]):
    head = ("OPTIONS sip:uas@%s SIP/2.0\r\nVia: SIP/2.0/UDP 198.18.0.1;branch=z9hG4bK%d\r\n"
            "From: <sip:uac@x>;tag=1\r\nTo: <sip:uas@x>\r\nCall-ID: size-%d\r\n"
            "CSeq: 1 OPTIONS\r\nContent-Type: text/plain\r\n" % (sys.argv[1], size, size))
    body_len = size - len(head) - len("Content-Length: 0000\r\n\r\n")
    message = head + "Content-Length: %04d\r\n\r\n" % body_len + "x" * body_len
    assert len(message) == size
    s.sendto(message.encode(), (sys.argv[1], 5060))
"#;
    let status = topology
        .in_ns("u", "python3")
        .args(["-c", script, &topology.uas_ip()])
        .args(sizes.iter().map(ToString::to_string))
        .status()
        .unwrap();
    assert!(status.success());
}

/// A frame longer than a UMEM frame holds (1792 bytes with the default 2048)
/// is dropped by the kernel and counted in `rx_dropped`, and the frames
/// around it still arrive; with `--frame-size 4096` it is captured.
#[test]
fn frames_too_large_for_the_umem_are_counted_and_4096_takes_them() {
    if !runnable() {
        return;
    }
    let topology = Topology::new(4);
    topology.set_mtu(3000);
    for (frame_size, large_captured) in [("2048", false), ("4096", true)] {
        let dir = temp_dir(&format!("frame-size-{frame_size}"));
        let sensor = Sensor::start_with(
            &topology,
            "m",
            &topology.link("y"),
            &dir,
            &["--mode", "mirror", "--frame-size", frame_size],
        );
        send_options(&topology, &[400, 2500, 1700]);
        std::thread::sleep(Duration::from_secs(2));
        let (events, log) = sensor.stop();
        // Four workers write their own events: in no set order.
        let mut call_ids: Vec<&str> = events
            .iter()
            .map(|e| e["sip"]["call_id"].as_str().unwrap())
            .collect();
        call_ids.sort();
        let mut expected = vec!["size-1700", "size-400"];
        if large_captured {
            expected.insert(1, "size-2500");
        }
        assert_eq!(call_ids, expected, "frame size {frame_size}: {log}");
        let dropped = if large_captured {
            "rx_dropped=0"
        } else {
            "rx_dropped=1 "
        };
        assert!(log.contains(dropped), "frame size {frame_size}: {log}");
    }
}

/// GETs `url` from inside namespace `role` (python3's urllib): status and body.
fn http_get(topology: &Topology, role: &str, url: &str) -> (u16, String) {
    http_get_with(topology.in_ns(role, "python3"), url)
}

/// GETs `url` with `python3`, a command that runs python3 (in a namespace or not).
fn http_get_with(mut python3: Command, url: &str) -> (u16, String) {
    let script = "import sys, urllib.request, urllib.error\ntry:\n    r = urllib.request.urlopen(sys.argv[1], timeout=5)\n    print(r.status); print(r.read().decode())\nexcept urllib.error.HTTPError as e:\n    print(e.code); print(e.read().decode())\n";
    let output = python3.args(["-c", script, url]).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (status, body) = text.split_once('\n').unwrap_or((&text, ""));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn prometheus_scrapes_the_metrics_endpoint_and_counts_every_event() {
    if !runnable() {
        return;
    }
    let topology = Topology::new(6);
    let dir = temp_dir("prometheus");
    let port = 19_000 + (std::process::id() % 1000) as u16;
    let target = format!("127.0.0.1:{port}");
    let sensor = Sensor::start_with(
        &topology,
        "s",
        &topology.link("b"),
        &dir,
        &["--http", &target],
    );
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: sipbeat\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let web = format!("127.0.0.1:{}", port + 1000);
    let _prometheus = Background(
        topology
            .in_ns("s", "prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let uas = sipp_uas(&topology, &dir, &["-sn", "uas"], 5060);
    let messages = sipp_uac(&topology, &dir, &["-sn", "uac"], 5060, 10);
    drop(uas);
    // A record for each call, at its BYE's answer.
    let events_written = messages + 10;
    // The endpoint itself: health, readiness, a clean exposition.
    assert_eq!(
        http_get(&topology, "s", &format!("http://{target}/healthz")).0,
        200
    );
    assert_eq!(
        http_get(&topology, "s", &format!("http://{target}/readyz")).0,
        200
    );
    assert_eq!(
        http_get(&topology, "s", &format!("http://{target}/nope")).0,
        404
    );
    let (status, exposition) = http_get(&topology, "s", &format!("http://{target}/metrics"));
    assert_eq!(status, 200);
    let exposition_file = dir.join("metrics.txt");
    std::fs::write(&exposition_file, &exposition).unwrap();
    let check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&exposition_file).unwrap())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    // Prometheus's view of the events counter, once it has scraped the end.
    let query = format!("http://{web}/api/v1/query?query=sum(sipbeat_events_total)");
    let deadline = Instant::now() + Duration::from_secs(30);
    let scraped = loop {
        let (_, body) = http_get(&topology, "s", &query);
        let value = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v["data"]["result"][0]["value"][1]
                    .as_str()
                    .map(str::to_string)
            })
            .and_then(|v| v.parse::<u64>().ok());
        if value == Some(events_written) || Instant::now() > deadline {
            break value;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let (events, calls, log) = sensor.stop_all();
    assert_eq!(events.len() as u64, messages, "{log}");
    assert_eq!(calls.len(), 10, "{log}");
    assert_eq!(
        scraped,
        Some((events.len() + calls.len()) as u64),
        "Prometheus's sipbeat_events_total"
    );
}

/// The image, run as the DaemonSet runs it: every capability dropped but
/// the list, a non-root user, a read-only root file system, the node's
/// network (here: the UAS's namespace). It captures every SIP message, and
/// without CAP_NET_ADMIN it stops with one line naming it.
#[test]
fn the_image_captures_with_least_privilege() {
    if !runnable() {
        return;
    }
    let topology = Topology::new(7);
    let dir = temp_dir("image");
    let context = dir.join("context");
    sipbeat_testkit::image::assemble(Path::new(env!("CARGO_BIN_EXE_sipbeat")), &context).unwrap();
    let tag = format!("localhost/sipbeat-test:{}", std::process::id());
    sh(&[
        "podman",
        "build",
        "--quiet",
        "--tag",
        &tag,
        "--file",
        context.join("Containerfile").to_str().unwrap(),
        context.to_str().unwrap(),
    ]);
    struct Image(String);
    impl Drop for Image {
        fn drop(&mut self) {
            let _ = Command::new("podman")
                .args(["rmi", "--force", &self.0])
                .output();
        }
    }
    let _image = Image(tag.clone());
    let network = format!("ns:/run/netns/{}", topology.ns("s"));
    // As the DaemonSet's securityContext says (see its comments on seccomp).
    let podman_run = |name: &str, caps: &str| {
        let mut command = Command::new("podman");
        command.args([
            "--runtime",
            "runc",
            "run",
            "--name",
            name,
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            "--network",
            &network,
            "--read-only",
            "--user",
            "65532:65532",
            "--cap-drop",
            "ALL",
            "--cap-add",
            caps,
            "--security-opt",
            "seccomp=unconfined",
            &tag,
        ]);
        command
    };
    let name = format!("sbimage{}", std::process::id());
    let container = podman_run(&name, "BPF,NET_ADMIN")
        .args([
            "run",
            "-i",
            &topology.link("b"),
            "--ports",
            "5060",
            "--stats-interval",
            "0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read all along: podman forwards the container's output and would
    // block on a full pipe.
    let read_all = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let mut container = container;
    let stdout_reader = read_all(Box::new(container.stdout.take().unwrap()));
    let stderr_reader = read_all(Box::new(container.stderr.take().unwrap()));
    // Ready when the programs are attached: the start line.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let logs = Command::new("podman")
            .args(["logs", &name])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&logs.stderr).contains("capturing SIP") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the container did not start capturing: {logs:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let uas = sipp_uas(&topology, &dir, &["-sn", "uas"], 5060);
    let messages = sipp_uac(&topology, &dir, &["-sn", "uac"], 5060, 10);
    drop(uas);
    std::thread::sleep(Duration::from_secs(1));
    sh(&["podman", "stop", "--time", "10", &name]);
    let mut container = container;
    let _ = container.wait();
    let output = (stdout_reader.join().unwrap(), stderr_reader.join().unwrap());
    let _ = Command::new("podman")
        .args(["rm", "--force", &name])
        .output();
    let lines: Vec<&str> = output.0.lines().filter(|l| !l.is_empty()).collect();
    let calls = lines
        .iter()
        .filter(|l| l.contains(r#""dataset":"sip.call""#))
        .count();
    let events = (lines.len() - calls) as u64;
    assert_eq!(messages, 60, "calls completed: {}", output.1);
    assert_eq!(events, messages, "one event per message: {}", output.1);
    assert_eq!(calls, 10, "one record per call: {}", output.1);

    // Without CAP_NET_ADMIN: one line, naming it.
    let refused = {
        let mut command = podman_run(&format!("{name}y"), "BPF");
        command.args(["run", "-i", &topology.link("b")]);
        command.output().unwrap()
    };
    let _ = Command::new("podman")
        .args(["rm", "--force", &format!("{name}y")])
        .output();
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert_eq!(message.trim_end().lines().count(), 1, "{message}");
    assert!(message.contains("lacks CAP_NET_ADMIN"), "{message}");
}

/// `sipbeat run` in this (the root) namespace on `interface`, to Kafka at
/// `broker`, with the endpoint on `http`.
fn kafka_sensor(interface: &str, broker: &str, topic: &str, http: &str, log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sipbeat"))
        .args([
            "run",
            "-i",
            interface,
            "--stats-interval",
            "1",
            "--http",
            http,
        ])
        .args(["-o", &format!("kafka://{broker}/{topic}")])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// Waits until `url` answers `status` with a body containing `text`.
fn wait_for_status(url: &str, status: u16, text: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (got, body) = http_get_with(Command::new("python3"), url);
        if got == status && body.contains(text) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} answered {got}, not {status}: {body}\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What the live Kafka tests share, when they can run here (what is
/// missing is said otherwise): the SPAN lab, its far end beside the broker,
/// a scratch directory, and a fresh tansu holding `topic`.
#[cfg(feature = "kafka")]
fn kafka_lab(
    id: u8,
    name: &str,
    topic: &str,
) -> Option<(Topology, common::ScratchDir, String, sipbeat_testkit::Tansu)> {
    if !runnable() {
        return None;
    }
    let Some(binary) = sipbeat_testkit::tansu_binary() else {
        common::missing("tansu");
        return None;
    };
    let topology = Topology::new(id);
    let dir = temp_dir(name);
    let span = topology.span_beside_the_broker();
    let broker = sipbeat_testkit::Tansu::start(&binary, name).expect("tansu starts");
    broker.create_topic(topic, 3).expect("topic created");
    Some((topology, dir, span, broker))
}

/// Kafka's side of a live run, on the SPAN lab: `/readyz` is 503 naming the
/// output while no broker is up and 200 once one is; events captured while
/// the broker is frozen (SIGSTOP) wait and are delivered after it resumes;
/// SIGTERM while sipp is still calling drains everything captured into
/// Kafka well within a pod's grace period, each event once.
#[cfg(feature = "kafka")]
#[test]
fn kafka_outage_and_sigterm_under_traffic_lose_nothing() {
    let topic = "sip-drain";
    let Some((topology, dir, span, broker)) = kafka_lab(8, "drain", topic) else {
        return;
    };
    let port = 21_000 + (std::process::id() % 1000) as u16;
    let http = format!("127.0.0.1:{port}");

    // No broker at all: not ready, and why.
    let log = dir.join("sipbeat-nobroker.log");
    // Killed on drop, should an assertion fail first.
    let lonely = Background(kafka_sensor(&span, "127.0.0.1:9", topic, &http, &log));
    wait_for_status(
        &format!("http://{http}/readyz"),
        503,
        "cannot deliver",
        &log,
    );
    assert_eq!(
        http_get_with(Command::new("python3"), &format!("http://{http}/healthz")).0,
        200
    );
    drop(lonely);

    let log = dir.join("sipbeat.log");
    let mut sensor = Background(kafka_sensor(&span, &broker.address(), topic, &http, &log));
    wait_for_status(&format!("http://{http}/readyz"), 200, "ok", &log);

    // Calls while the broker is frozen: the events wait in the output.
    let uas = sipp_uas(&topology, &dir, &["-sn", "uas"], 5060);
    broker.signal("-STOP").unwrap();
    let frozen = sipp_uac(&topology, &dir, &["-sn", "uac"], 5060, 20);
    std::thread::sleep(Duration::from_secs(2));
    broker.signal("-CONT").unwrap();

    // More calls, and SIGTERM while they are still going.
    let uac = topology
        .in_ns("u", "sipp")
        .current_dir(&*dir)
        .args(["-sn", "uac", &format!("{}:5060", topology.uas_ip())])
        .args([
            "-i",
            &topology.uac_ip(),
            "-p",
            "5060",
            "-m",
            "200",
            "-r",
            "40",
        ])
        .args(["-nostdin", "-timeout", "30"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _uac = Background(uac);
    std::thread::sleep(Duration::from_secs(2));
    let terminated = Instant::now();
    sh(&["kill", "-TERM", &sensor.0.id().to_string()]);
    let status = sensor.0.wait().unwrap();
    let drained_in = terminated.elapsed();
    drop(uas);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "sipbeat exited with {status}: {log}");
    assert!(
        drained_in < Duration::from_secs(20),
        "the drain took {drained_in:?}, beyond a pod's grace period: {log}"
    );

    // What the final stats line says was captured and delivered.
    let last = |name: &str| -> u64 {
        sipbeat_testkit::log::counter_in(&log, name)
            .unwrap_or_else(|| panic!("no {name} in the log: {log}"))
    };
    let events = sipbeat_testkit::log::summary_count(&log, "events").expect("a final summary");
    assert!(
        events > frozen,
        "traffic was still being captured at SIGTERM: {log}"
    );
    assert_eq!(last("enqueued"), events, "{log}");
    assert_eq!(last("delivered"), events, "{log}");
    assert_eq!(last("dropped_queue_full"), 0, "{log}");
    assert_eq!(last("failed"), 0, "{log}");

    // The broker's view: every event once.
    let records = common::kafka::consume(&broker, topic, events as usize, Duration::from_secs(20));
    let mut seen = std::collections::HashSet::new();
    for record in &records {
        assert!(
            seen.insert(record.payload.clone()),
            "an event arrived twice (partition {}, offset {})",
            record.partition,
            record.offset
        );
    }
    assert_eq!(records.len() as u64, events, "{log}");
    eprintln!(
        "{frozen} messages while the broker was frozen, {events} events in all, drained in {drained_in:?}"
    );
}

/// The call scenarios of `testdata/sipp/calls`, each a UAS and a UAC.
const CALL_CASES: [&str; 5] = ["answer", "busy", "cancel", "auth", "callee_bye"];

/// One SIP message as tshark shows it.
struct Shown {
    ns: i128,
    src: String,
    call_id: String,
    method: String,
    status: u16,
    cseq_method: String,
    resend: bool,
    reason: String,
}

/// What a call's record must say, worked out from tshark's fields alone:
/// the first INVITE starts it; it ends at the first answer to the BYE
/// once answered, else at the first final response to an INVITE other
/// than a challenge; messages and resends are counted up to that end.
fn expected_call(rows: &[&Shown]) -> serde_json::Value {
    let first = rows
        .iter()
        .position(|r| r.method == "INVITE")
        .expect("an INVITE");
    let rows = &rows[first..];
    let start = rows[0].ns;
    let caller = &rows[0].src;
    let invite_final = |r: &&&Shown| r.cseq_method == "INVITE" && r.status >= 200 && !r.resend;
    let answer = rows
        .iter()
        .find(|r| invite_final(r) && r.status < 300)
        .copied();
    let ringing = rows
        .iter()
        .find(|r| r.cseq_method == "INVITE" && (r.status == 180 || r.status == 183))
        .map(|r| r.ns - start);
    let bye = rows.iter().position(|r| r.method == "BYE" && !r.resend);
    let end = match (answer, bye) {
        (Some(_), Some(bye)) => rows[bye..]
            .iter()
            .position(|r| r.cseq_method == "BYE" && r.status >= 200 && !r.resend)
            .map(|i| bye + i),
        (Some(_), None) => None,
        (None, _) => rows
            .iter()
            .position(|r| invite_final(&r) && r.status != 401 && r.status != 407),
    };
    let mut call = serde_json::json!({});
    let Some(end) = end else {
        // Cut short by the capture's end: that much is certain.
        call["state"] = if answer.is_some() {
            "answered"
        } else {
            "incomplete"
        }
        .into();
        call["incomplete"] = true.into();
        return call;
    };
    let seen = &rows[..=end];
    let cancelled = seen.iter().any(|r| r.method == "CANCEL");
    call["state"] = match answer {
        Some(_) => "answered",
        None if cancelled => "cancelled",
        None => "rejected",
    }
    .into();
    call["code"] = answer.map_or(rows[end].status, |a| a.status).into();
    call["messages"] = seen.len().into();
    call["retransmissions"] = seen.iter().filter(|r| r.resend).count().into();
    call["incomplete"] = false.into();
    call["duration"] = ((rows[end].ns - start) as u64).into();
    if let Some(ringing) = ringing {
        call["ringing_delay"] = (ringing as u64).into();
    }
    if let Some(answer) = answer {
        call["answer_delay"] = ((answer.ns - start) as u64).into();
        let bye = rows[bye.expect("answered calls end by a BYE")];
        call["talk_duration"] = ((bye.ns - answer.ns) as u64).into();
        call["ended_by"] = if &bye.src == caller {
            "caller"
        } else {
            "callee"
        }
        .into();
    }
    // The Reason of the BYE, else of the CANCEL, else of the failure.
    let reason = seen
        .iter()
        .filter(|r| !r.reason.is_empty())
        .find(|r| r.method == "BYE")
        .or_else(|| {
            seen.iter()
                .find(|r| r.method == "CANCEL" && !r.reason.is_empty())
        })
        .or_else(|| (!rows[end].reason.is_empty()).then_some(&rows[end]));
    if let Some(reason) = reason {
        call["reason"] = reason.reason.clone().into();
    }
    call
}

/// The same fields of a `sip.call` event, as [`expected_call`] gives them.
fn recorded_call(event: &serde_json::Value, complete: bool) -> serde_json::Value {
    let call = &event["sip"]["call"];
    let mut out = serde_json::json!({
        "state": call["state"],
        "incomplete": call["incomplete"],
    });
    if complete {
        for key in [
            "code",
            "messages",
            "retransmissions",
            "ringing_delay",
            "answer_delay",
            "talk_duration",
            "ended_by",
            "reason",
        ] {
            if !call[key].is_null() {
                out[key] = call[key].clone();
            }
        }
        out["duration"] = event["event"]["duration"].clone();
    }
    out
}

#[test]
fn calls_over_a_lossy_link_match_what_the_capture_shows() {
    if !runnable() {
        return;
    }
    let topology = Topology::new(9);
    let dir = temp_dir("calls");
    // 20 % of what reaches the caller is lost: answers, challenges and the
    // callee's BYEs are resent for real (sipp's UDP timers).
    sh(&[
        "ip",
        "netns",
        "exec",
        &topology.ns("u"),
        "iptables",
        "-A",
        "INPUT",
        "-p",
        "udp",
        "-m",
        "statistic",
        "--mode",
        "random",
        "--probability",
        "0.2",
        "-j",
        "DROP",
    ]);
    let interface = topology.link("b");
    let sensor = Sensor::start(&topology, "s", &interface, &dir);
    let truth = dir.join("calls.pcap");
    let tcpdump = Background(
        topology
            .in_ns("s", "tcpdump")
            .args(["-i", &interface, "-U", "-n", "-w"])
            .arg(&truth)
            .arg("udp port 5060")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(500));
    for case in CALL_CASES {
        let uas = sipp_uas(
            &topology,
            &dir,
            &["-sf", &scenario(&format!("calls/{case}_uas.xml"))],
            5060,
        );
        // Calls that loss breaks are still calls: sipp's verdict is not
        // the test's, the capture is.
        let _ = topology
            .in_ns("u", "sipp")
            .current_dir(&*dir)
            .args(["-sf", &scenario(&format!("calls/{case}_uac.xml"))])
            .arg(format!("{}:5060", topology.uas_ip()))
            .args([
                "-i",
                &topology.uac_ip(),
                "-p",
                "5060",
                "-m",
                "8",
                "-r",
                "20",
            ])
            .args(["-nostdin", "-recv_timeout", "4000", "-timeout", "15"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        drop(uas);
    }
    std::thread::sleep(Duration::from_secs(1));
    sh(&["kill", "-INT", &tcpdump.0.id().to_string()]);
    std::thread::sleep(Duration::from_millis(500));
    drop(tcpdump);
    let (_, live_calls, log) = sensor.stop_all();

    // What tshark shows of each call.
    let Some(text) = common::tshark(&[
        "-r",
        &truth.display().to_string(),
        "-Y",
        "sip",
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-e",
        "frame.time_epoch",
        "-e",
        "ip.src",
        "-e",
        "sip.Call-ID",
        "-e",
        "sip.Method",
        "-e",
        "sip.Status-Code",
        "-e",
        "sip.CSeq.method",
        "-e",
        "sip.resend",
        "-e",
        "sip.Reason",
    ]) else {
        return common::missing("tshark");
    };
    let shown: Vec<Shown> = text
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split('|').collect();
            let (secs, frac) = f[0].split_once('.').unwrap();
            let frac = format!("{frac:0<9}");
            Shown {
                ns: secs.parse::<i128>().unwrap() * 1_000_000_000
                    + frac[..9].parse::<i128>().unwrap(),
                src: f[1].to_string(),
                call_id: f[2].to_string(),
                method: f[3].to_string(),
                status: f[4].parse().unwrap_or(0),
                cseq_method: f[5].to_string(),
                resend: f[6] == "1",
                reason: f[7].to_string(),
            }
        })
        .collect();
    let mut by_call: BTreeMap<&str, Vec<&Shown>> = BTreeMap::new();
    for row in &shown {
        by_call.entry(&row.call_id).or_default().push(row);
    }

    let (_, calls, stats) =
        common::read_messages_and_calls(&truth, &common::config_with_ports(&[5060]));
    assert_eq!(
        calls.len(),
        by_call.len(),
        "one record per Call-ID in the capture"
    );
    let mut states = BTreeMap::<String, usize>::new();
    let mut ended_by = BTreeMap::<String, usize>::new();
    let mut complete = 0;
    for call in &calls {
        let id = call["sip"]["call_id"].as_str().unwrap();
        let want = expected_call(&by_call[id]);
        let whole = !want["incomplete"].as_bool().unwrap();
        complete += usize::from(whole);
        assert_eq!(recorded_call(call, whole), want, "call {id}");
        *states
            .entry(want["state"].as_str().unwrap().into())
            .or_default() += 1;
        if let Some(party) = want["ended_by"].as_str() {
            *ended_by.entry(party.into()).or_default() += 1;
        }
    }
    let retransmissions: u64 = calls
        .iter()
        .map(|c| c["sip"]["call"]["retransmissions"].as_u64().unwrap())
        .sum();
    eprintln!(
        "{} calls ({complete} complete in the capture): {states:?}, ended by {ended_by:?}, {retransmissions} retransmissions",
        calls.len()
    );
    assert!(
        complete >= calls.len() * 3 / 4,
        "most calls end in the capture"
    );
    for state in ["answered", "rejected", "cancelled"] {
        assert!(
            states.get(state).is_some_and(|&n| n > 0),
            "{state}: {states:?}"
        );
    }
    assert!(ended_by.contains_key("caller") && ended_by.contains_key("callee"));
    assert!(retransmissions > 0, "the loss made retransmissions");
    assert_eq!(stats.calls.records, calls.len() as u64);

    // Live, the sensor on the callee's link wrote the same records (its
    // clock is the kernel's, so only what does not depend on it).
    let discrete = |events: &[serde_json::Value]| -> BTreeMap<String, serde_json::Value> {
        events
            .iter()
            .map(|e| {
                let c = &e["sip"]["call"];
                (
                    e["sip"]["call_id"].as_str().unwrap().to_string(),
                    serde_json::json!([
                        c["state"],
                        c["code"],
                        c["ended_by"],
                        c["messages"],
                        c["retransmissions"],
                        c["incomplete"],
                        c["reason"]
                    ]),
                )
            })
            .collect()
    };
    assert_eq!(
        discrete(&live_calls),
        discrete(&calls),
        "live vs read\n{log}"
    );
}

/// The disk queue live, on the SPAN lab: calls while the broker is frozen
/// (librdkafka's queue held to 200 events), the sensor killed with SIGKILL
/// and restarted, more calls, then the broker resumes. Every SIP message
/// tcpdump saw on the wire is in Kafka; what arrived twice is what the
/// restart replayed of the first run.
#[cfg(feature = "kafka")]
#[test]
fn disk_queue_outlives_a_frozen_broker_and_sigkill() {
    let topic = "sip-disk-queue";
    let Some((topology, dir, span, broker)) = kafka_lab(10, "disk-queue", topic) else {
        return;
    };
    let config = dir.join("sipbeat.yml");
    std::fs::write(
        &config,
        format!(
            "output:\n  kafka:\n    brokers: [\"{}\"]\n    topic: {topic}\n    queue_max_messages: 200\n    flush_timeout_secs: 5\nqueue:\n  disk:\n    path: {}\n    max_size: 256MiB\n",
            broker.address(),
            dir.join("queue").display()
        ),
    )
    .unwrap();
    let sensor_with = |config: &Path, name: &str| {
        Background(
            Command::new(env!("CARGO_BIN_EXE_sipbeat"))
                .args(["run", "-i", &span, "--stats-interval", "1", "-c"])
                .arg(config)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join(name)).unwrap())
                .spawn()
                .unwrap(),
        )
    };
    let sensor = |name: &str| sensor_with(&config, name);
    let truth = dir.join("wire.pcap");
    let tcpdump = Background(
        topology
            .in_ns("s", "tcpdump")
            .args(["-i", &topology.link("b"), "-U", "-n", "-w"])
            .arg(&truth)
            .arg("udp port 5060")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut first = sensor("first.log");
    std::thread::sleep(Duration::from_secs(2));
    let uas = sipp_uas(&topology, &dir, &["-sn", "uas"], 5060);
    broker.signal("-STOP").unwrap();
    let burst = sipp_uac(&topology, &dir, &["-sn", "uac"], 5060, 50);
    // Past a flush: on disk. Then the crash.
    std::thread::sleep(Duration::from_secs(2));
    sh(&["kill", "-KILL", &first.0.id().to_string()]);
    let _ = first.0.wait();
    let second = sensor("second.log");
    std::thread::sleep(Duration::from_secs(2));
    let burst = burst + sipp_uac(&topology, &dir, &["-sn", "uac"], 5060, 50);
    drop(uas);
    broker.signal("-CONT").unwrap();
    let log = stop_when_queue_empty(second, &dir.join("second.log"));
    sh(&["kill", "-INT", &tcpdump.0.id().to_string()]);
    std::thread::sleep(Duration::from_millis(500));
    drop(tcpdump);

    let (on_the_wire, _) = common::read_events(&truth, &common::config_with_ports(&[5060]));
    assert_eq!(
        on_the_wire.len() as u64,
        burst,
        "tcpdump saw what sipp counted"
    );
    let recovered = sipbeat_testkit::log::counter_in(&log, "queue_recovered")
        .unwrap_or_else(|| panic!("no queue_recovered in {log}"));
    let records = common::kafka::consume(
        &broker,
        topic,
        on_the_wire.len() + 100,
        Duration::from_secs(15),
    );
    let events: Vec<serde_json::Value> = records
        .iter()
        .map(|r| sipbeat_testkit::json::parse_event(&r.payload).expect("JSON"))
        .collect();
    let (calls, messages): (Vec<_>, Vec<_>) = events
        .into_iter()
        .partition(|e| e["event"]["dataset"] == "sip.call");
    let distinct: std::collections::HashSet<&[u8]> =
        records.iter().map(|r| r.payload.as_slice()).collect();
    let twice = records.len() - distinct.len();
    eprintln!(
        "{} messages on the wire; Kafka has {} events ({} call records), {twice} twice; {recovered} recovered after SIGKILL",
        on_the_wire.len(),
        records.len(),
        calls.len()
    );
    let wire: std::collections::BTreeSet<String> =
        message_multiset(&on_the_wire).into_keys().collect();
    let kafka: std::collections::BTreeSet<String> =
        message_multiset(&messages).into_keys().collect();
    assert_eq!(
        kafka, wire,
        "every message on the wire is in Kafka, and nothing else\n{log}"
    );
    assert!(recovered > 0, "the first run left events on disk\n{log}");
    assert!(
        twice as u64 <= recovered,
        "only replayed events arrive twice"
    );

    // A disk queue too small for the outage: what Kafka misses is exactly
    // what was counted dropped.
    let small_topic = "sip-disk-queue-small";
    broker.create_topic(small_topic, 3).expect("topic created");
    let small = dir.join("small.yml");
    let yaml = std::fs::read_to_string(&config).unwrap();
    let yaml = yaml
        .replace(&format!("topic: {topic}"), &format!("topic: {small_topic}"))
        .replace("max_size: 256MiB", "max_size: 64KiB")
        .replace(
            &format!("path: {}", dir.join("queue").display()),
            &format!("path: {}", dir.join("small-queue").display()),
        );
    std::fs::write(&small, yaml).unwrap();
    let third = sensor_with(&small, "third.log");
    std::thread::sleep(Duration::from_secs(2));
    let uas = sipp_uas(&topology, &dir, &["-sn", "uas"], 5060);
    broker.signal("-STOP").unwrap();
    sipp_uac(&topology, &dir, &["-sn", "uac"], 5060, 50);
    std::thread::sleep(Duration::from_secs(2));
    drop(uas);
    broker.signal("-CONT").unwrap();
    let log = stop_when_queue_empty(third, &dir.join("third.log"));
    let dropped = sipbeat_testkit::log::counter_in(&log, "queue_dropped_full").unwrap_or_default();
    let published = sipbeat_testkit::log::summary_count(&log, "events")
        .unwrap_or_else(|| panic!("no event count in {log}"));
    let records = common::kafka::consume(
        &broker,
        small_topic,
        published as usize,
        Duration::from_secs(15),
    );
    eprintln!(
        "too small a queue: {published} events, {} in Kafka, {dropped} dropped as counted",
        records.len()
    );
    assert!(dropped > 0, "64 KiB cannot hold the outage\n{log}");
    assert_eq!(
        records.len() as u64 + dropped,
        published,
        "missing is what was counted\n{log}"
    );
}

/// Waits (at most a minute) until the sensor's stats line shows its disk
/// queue empty, then stops it with SIGTERM; its log.
fn stop_when_queue_empty(mut sensor: Background, log: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let empty = text
            .lines()
            .rev()
            .find(|line| line.contains("disk queue: depth="))
            .is_some_and(|line| line.contains("depth=0 "));
        if empty || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    sh(&["kill", "-TERM", &sensor.0.id().to_string()]);
    let status = sensor.0.wait().unwrap();
    let text = std::fs::read_to_string(log).unwrap();
    assert!(status.success(), "{text}");
    text
}
