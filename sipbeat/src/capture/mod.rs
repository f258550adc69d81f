//! Where frames come from: capture files ([`pcap`]) and, live, the eBPF
//! programs ([`ebpf`]) in one of two [`CaptureMode`]s: `host` copies into a
//! ring buffer ([`ring`]) and never takes a packet from the node; `mirror`
//! redirects to AF_XDP sockets ([`xsk`]) and takes what it redirects.
//!
//! A source hands out [`Frame`]s that borrow its buffer (the file mapping,
//! the UMEM, the ring) together with the capture timestamp and link type.
//! Sources know nothing of IP or SIP. [`CaptureConfig`] is the `capture:`
//! block of the config file, validated here against the kernel side's
//! limits.

#[cfg(feature = "xdp")]
pub mod ebpf;
pub mod pcap;
#[cfg(feature = "xdp")]
pub mod ring;
#[cfg(feature = "xdp")]
pub mod xsk;

use serde::Deserialize;

/// How live capture sees packets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CaptureMode {
    /// On a node carrying its own traffic: TC programs on ingress and
    /// egress copy SIP into a ring buffer; every packet goes on unchanged.
    #[default]
    Host,
    /// On a dedicated SPAN/TAP/mirror port: XDP redirects SIP to AF_XDP
    /// sockets (fastest) and the node never sees those frames.
    Mirror,
}

/// Where the mirror-mode XDP program runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AttachMode {
    /// In the driver (native XDP); falls back to generic with a warning.
    #[default]
    Driver,
    /// Generic XDP in the kernel's receive path (any interface, slower).
    Skb,
}

/// Bytes per UMEM frame the AF_XDP sockets accept. A frame lands 256 bytes
/// into its chunk (the kernel's XDP headroom), so 2048 holds 1792-byte
/// frames — a 1500-byte MTU with VLAN and MPLS tags to spare — and 4096
/// holds 3840. The kernel drops a larger frame and counts it in `rx_dropped`.
pub const FRAME_SIZES: [u32; 2] = [2048, 4096];

/// The `capture:` block: everything about live capture.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    /// Interfaces to capture on (`sipbeat run` needs at least one).
    pub interfaces: Vec<String>,
    pub mode: CaptureMode,
    /// Allow mirror mode on an interface with IP addresses (it takes the
    /// node's SIP and IP fragments away from it).
    pub force_mirror: bool,
    /// Mirror: RX queues to serve, from 0 (default: all of the interface's).
    pub queues: Option<u32>,
    /// Mirror: where the XDP program runs.
    pub xdp_mode: AttachMode,
    /// Mirror: UMEM frames per queue (a power of two), and its RX ring's depth.
    pub frames: u32,
    /// Mirror: bytes per UMEM frame, one of [`FRAME_SIZES`].
    pub frame_size: u32,
    /// Mirror: ask for zero-copy AF_XDP.
    pub zero_copy: bool,
    /// Host: bytes of the ring buffer the programs copy into (a power of two).
    pub ring_size: u32,
    /// Host: bytes of one packet copied at most; longer ones are truncated
    /// and counted.
    pub max_copy: u32,
    /// Seconds between stats lines (0: only at exit).
    pub stats_interval: u64,
    /// UDP ports carrying VXLAN, looked into live and in files.
    pub vxlan_ports: Vec<u16>,
    /// UDP ports carrying Geneve.
    pub geneve_ports: Vec<u16>,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        use sipbeat_common::wire::{geneve, vxlan};
        CaptureConfig {
            interfaces: Vec::new(),
            mode: CaptureMode::Host,
            force_mirror: false,
            queues: None,
            xdp_mode: AttachMode::Driver,
            // 16k frames per queue: 4k lost packets at ~120 kpps on veth copy mode.
            frames: 16 * 1024,
            // 2 KiB frames: half the UMEM of 4 KiB ones, two frames to a page.
            frame_size: 2048,
            zero_copy: false,
            ring_size: 32 << 20,
            max_copy: sipbeat_common::MAX_COPY,
            stats_interval: 10,
            vxlan_ports: vec![vxlan::PORT],
            geneve_ports: vec![geneve::PORT],
        }
    }
}

impl CaptureConfig {
    /// Refuses settings the kernel side or the sockets cannot take.
    pub fn validate(&self) -> Result<(), String> {
        use sipbeat_common::{MAX_COPY, MAX_QUEUES, MAX_TUNNEL_PORTS};
        let tunnel_ports = self.vxlan_ports.len() + self.geneve_ports.len();
        let queues = self.queues.unwrap_or(1);
        let checks = [
            (
                self.interfaces.iter().any(|i| i.is_empty() || i.len() > 15),
                "an interface name has 1 to 15 characters".to_string(),
            ),
            (
                queues == 0 || queues > MAX_QUEUES,
                format!("queues must be 1 to {MAX_QUEUES}"),
            ),
            (
                !self.frames.is_power_of_two() || !(64..=1 << 20).contains(&self.frames),
                "frames must be a power of two from 64 to 1048576".to_string(),
            ),
            (
                !FRAME_SIZES.contains(&self.frame_size),
                "frame_size must be 2048 or 4096".to_string(),
            ),
            (
                !self.ring_size.is_power_of_two() || self.ring_size < 1 << 20,
                "ring_size must be a power of two of at least 1048576 bytes".to_string(),
            ),
            (
                !(64..=MAX_COPY).contains(&self.max_copy),
                format!("max_copy must be 64 to {MAX_COPY} bytes"),
            ),
            (
                tunnel_ports > MAX_TUNNEL_PORTS as usize,
                format!("at most {MAX_TUNNEL_PORTS} vxlan_ports and geneve_ports together"),
            ),
            (
                self.vxlan_ports.contains(&0) || self.geneve_ports.contains(&0),
                "0 is not a tunnel port".to_string(),
            ),
        ];
        match checks.into_iter().find(|(bad, _)| *bad) {
            Some((_, message)) => Err(format!("capture: {message}")),
            None => Ok(()),
        }
    }

    /// The tunnel ports, for decoding and the kernel filter.
    pub fn tunnels(&self) -> crate::decode::TunnelPorts {
        crate::decode::TunnelPorts::new(&self.vxlan_ports, &self.geneve_ports)
    }
}

/// Waits up to `timeout_ms` for `fd` to become readable (an AF_XDP
/// socket's RX ring, a BPF ring buffer); an interrupted wait is no error.
#[cfg(feature = "xdp")]
pub(crate) fn wait_readable(fd: std::os::fd::RawFd, timeout_ms: i32) -> std::io::Result<()> {
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let rc = unsafe { libc::poll(&mut poll, 1, timeout_ms) };
    if rc < 0 {
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
    Ok(())
}

/// Link-layer framing of a captured frame, from the capture file's link type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkType {
    /// Ethernet II, possibly with 802.1Q/802.1ad tags.
    Ethernet,
    /// Linux "cooked" capture v1 (`any` interface).
    LinuxSll,
    /// Linux "cooked" capture v2.
    LinuxSll2,
    /// Raw IP: the version nibble says IPv4 or IPv6.
    RawIp,
    /// Raw IPv4 only.
    Ipv4,
    /// Raw IPv6 only.
    Ipv6,
    /// BSD loopback: a 4-byte address family in the capturing host's byte order.
    Null,
    /// OpenBSD loopback: a 4-byte address family in network byte order.
    Loop,
}

impl LinkType {
    /// Every framing, in a fixed order (fuzzers pick one by index).
    pub const ALL: [LinkType; 8] = [
        LinkType::Ethernet,
        LinkType::LinuxSll,
        LinkType::LinuxSll2,
        LinkType::RawIp,
        LinkType::Ipv4,
        LinkType::Ipv6,
        LinkType::Null,
        LinkType::Loop,
    ];

    /// Maps a pcap `LINKTYPE_*` value; `None` for framings sipbeat does not decode.
    pub fn from_pcap(linktype: i32) -> Option<LinkType> {
        Some(match linktype {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            // DLT_RAW has several historical values across platforms.
            12 | 14 | 101 => LinkType::RawIp,
            108 => LinkType::Loop,
            113 => LinkType::LinuxSll,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            276 => LinkType::LinuxSll2,
            _ => return None,
        })
    }
}

/// One captured frame, borrowed from its source.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Capture time, nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// How to read the first bytes of `data`.
    pub link: LinkType,
    /// The captured bytes (possibly fewer than were on the wire).
    pub data: &'a [u8],
    /// The interface it was captured on, when known (live capture; a
    /// pcapng interface's `if_name`).
    pub interface: Option<&'a str>,
}
