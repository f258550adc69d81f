//! Plain-old-data types that both sides of the kernel boundary agree on.
//!
//! The XDP program (`sipbeat-ebpf`) and user space (`sipbeat`) exchange these
//! through BPF maps, so every type here is `#[repr(C)]`, `Copy` and
//! [`bytemuck::Pod`]: user space writes and reads them as raw bytes, the
//! kernel side reads them in place. Map names live here too, so neither side
//! spells them on its own. Nothing here allocates or depends on `std`.
#![no_std]

use bytemuck::{Pod, Zeroable};

/// Name of the `Array<FilterConfig>` (one entry) that user space fills at start.
pub const MAP_FILTER_CONFIG: &str = "FILTER_CONFIG";
/// Name of the `HashMap<u16, u8>` of SIP ports (key: port in host order).
pub const MAP_SIP_PORTS: &str = "SIP_PORTS";
/// Name of the `XskMap` indexed by RX queue.
pub const MAP_XSKS: &str = "XSKS";
/// Name of the `PerCpuArray<u64>` indexed by [`Counter`].
pub const MAP_COUNTERS: &str = "COUNTERS";
/// Name of the `HashMap<u16, u8>` of UDP tunnel ports (value: a
/// [`filter::UdpTunnel`]).
pub const MAP_TUNNEL_PORTS: &str = "TUNNEL_PORTS";
/// Name of the ring buffer host mode copies packets into.
pub const MAP_HOST_RING: &str = "HOST_RING";
/// Name of the host-mode program on ingress, and on egress.
pub const PROGRAM_HOST_INGRESS: &str = "sipbeat_ingress";
pub const PROGRAM_HOST_EGRESS: &str = "sipbeat_egress";
/// Name of the mirror-mode XDP program.
pub const PROGRAM_MIRROR: &str = "sipbeat";

pub mod filter;
pub mod wire;

/// Largest number of RX queues the mirror-mode program serves.
pub const MAX_QUEUES: u32 = 256;
/// Largest number of ports in the SIP port set.
pub const MAX_PORTS: u32 = 1024;
/// Largest number of UDP tunnel ports (VXLAN, Geneve).
pub const MAX_TUNNEL_PORTS: u32 = 64;

/// Transport bits of [`FilterConfig::transports`].
pub mod transport {
    /// Redirect SIP over UDP.
    pub const UDP: u32 = 1 << 0;
    /// Redirect SIP over TCP.
    pub const TCP: u32 = 1 << 1;
}

/// What the programs capture, beyond the port sets.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct FilterConfig {
    /// Bitwise OR of [`transport`] bits.
    pub transports: u32,
    /// Non-zero: capture every IP fragment (fragments after the first carry
    /// no ports, so the kernel cannot tell whether they belong to SIP).
    pub capture_fragments: u32,
    /// What starts the frame: a [`filter::link`] value.
    pub link: u32,
    /// Host mode: bytes of a packet copied at most (the rest is counted
    /// as truncated); at most [`MAX_COPY`].
    pub max_copy: u32,
}

/// Largest copy of one packet in host mode: a GSO/GRO super-packet can be
/// 64 KiB, and a SIP message over TCP rarely needs more than a few KiB.
pub const MAX_COPY: u32 = 65_536;

/// Host mode: bytes waiting in the ring before a copy wakes the reader.
/// Below it the reader finds records on its next poll timeout
/// ([`HOST_RING_POLL_MS`]).
pub const HOST_RING_WAKEUP_BYTES: u32 = 64 << 10;
/// Host mode: the reader's poll timeout, the longest a record waits in a
/// quiet ring.
pub const HOST_RING_POLL_MS: i32 = 10;

/// Which way a host-mode packet went, in [`PacketHeader::direction`].
pub mod direction {
    pub const INGRESS: u32 = 0;
    pub const EGRESS: u32 = 1;
}

/// The header of each host-mode ring record; the packet's first
/// `captured` bytes follow it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct PacketHeader {
    /// `CLOCK_BOOTTIME` nanoseconds when the program saw the packet.
    pub boot_ns: u64,
    /// The packet's length.
    pub len: u32,
    /// Bytes copied after this header (fewer than `len` when truncated).
    pub captured: u32,
    /// The interface it was seen on.
    pub ifindex: u32,
    /// A [`direction`] value.
    pub direction: u32,
}

// SAFETY: FilterConfig is repr(C) plain data without padding (checked by
// the size test below), which is all aya's Pod asks.
#[cfg(feature = "user")]
unsafe impl aya::Pod for FilterConfig {}

/// Per-CPU counters kept by the XDP program, in map index order.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Every frame the program saw.
    Seen = 0,
    /// Frames redirected to an AF_XDP socket (mirror mode).
    Redirected = 1,
    /// Frames passed on to the kernel stack untouched by a redirect.
    Passed = 2,
    /// IP fragments (counted whether captured or not).
    Fragments = 3,
    /// Frames too short or inconsistent to parse.
    Malformed = 4,
    /// Packets copied into the host-mode ring.
    Copied = 5,
    /// Packets the host-mode ring had no room for: lost to sipbeat (the
    /// node still got them).
    RingFull = 6,
    /// Copied packets longer than the copy limit: their tail is missing.
    Truncated = 7,
}

impl Counter {
    /// Every counter, in index order.
    pub const ALL: [Counter; 8] = [
        Counter::Seen,
        Counter::Redirected,
        Counter::Passed,
        Counter::Fragments,
        Counter::Malformed,
        Counter::Copied,
        Counter::RingFull,
        Counter::Truncated,
    ];

    /// The counter's name in logs and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::Seen => "seen",
            Counter::Redirected => "redirected",
            Counter::Passed => "passed",
            Counter::Fragments => "fragments",
            Counter::Malformed => "malformed",
            Counter::Copied => "copied",
            Counter::RingFull => "ring_full",
            Counter::Truncated => "truncated",
        }
    }
}

/// Number of entries in the counters map.
pub const COUNTER_COUNT: u32 = Counter::ALL.len() as u32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_types_have_no_padding() {
        assert_eq!(core::mem::size_of::<FilterConfig>(), 16);
        assert_eq!(core::mem::size_of::<PacketHeader>(), 24);
        let config = FilterConfig {
            transports: transport::UDP | transport::TCP,
            capture_fragments: 1,
            ..FilterConfig::default()
        };
        let bytes = bytemuck::bytes_of(&config);
        assert_eq!(bytes[0], 3);
        assert_eq!(*bytemuck::from_bytes::<FilterConfig>(bytes), config);
    }

    #[test]
    fn counter_indices_are_dense() {
        for (index, counter) in Counter::ALL.iter().enumerate() {
            assert_eq!(*counter as usize, index);
        }
    }
}
