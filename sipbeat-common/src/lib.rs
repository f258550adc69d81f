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

/// Wire constants both the XDP program and user-space decoding read frames
/// by, so the two agree on what a VLAN tag or an IPv6 extension header is.
pub mod wire {
    /// Ethernet header: destination, source, EtherType.
    pub const ETHERNET_LEN: usize = 14;

    /// EtherTypes.
    pub mod ethertype {
        pub const IPV4: u16 = 0x0800;
        pub const IPV6: u16 = 0x86dd;
        /// 802.1Q VLAN tag.
        pub const VLAN: u16 = 0x8100;
        /// 802.1ad service tag (QinQ).
        pub const QINQ: u16 = 0x88a8;
        /// Pre-standard QinQ tag still seen on older switches.
        pub const QINQ_LEGACY: u16 = 0x9100;

        /// Whether `ethertype` announces a VLAN tag to skip.
        pub const fn is_vlan_tag(ethertype: u16) -> bool {
            matches!(ethertype, VLAN | QINQ | QINQ_LEGACY)
        }
    }

    /// IP protocol numbers (IPv4 protocol, IPv6 next header).
    pub mod ip_protocol {
        pub const IPV4_IN_IP: u8 = 4;
        pub const TCP: u8 = 6;
        pub const UDP: u8 = 17;
        pub const IPV6_IN_IP: u8 = 41;
        pub const GRE: u8 = 47;
    }

    /// IPv6 extension headers.
    pub mod ipv6_next {
        pub const HOP_BY_HOP: u8 = 0;
        pub const ROUTING: u8 = 43;
        pub const FRAGMENT: u8 = 44;
        pub const AUTH: u8 = 51;
        pub const DEST_OPTIONS: u8 = 60;
        pub const MOBILITY: u8 = 135;
    }
}

/// Transport bits of [`FilterConfig::transports`].
pub mod transport {
    /// Redirect SIP over UDP.
    pub const UDP: u32 = 1 << 0;
    /// Redirect SIP over TCP.
    pub const TCP: u32 = 1 << 1;
}

/// What the XDP program redirects, beyond the port set.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct FilterConfig {
    /// Bitwise OR of [`transport`] bits.
    pub transports: u32,
    /// Non-zero: redirect every IP fragment (fragments after the first carry
    /// no ports, so the kernel cannot tell whether they belong to SIP).
    pub redirect_fragments: u32,
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
    /// Frames redirected to an AF_XDP socket.
    Redirected = 1,
    /// Frames passed on to the kernel stack.
    Passed = 2,
    /// IP fragments (counted whether redirected or not).
    Fragments = 3,
    /// Frames too short or inconsistent to parse.
    Malformed = 4,
}

impl Counter {
    /// Every counter, in index order.
    pub const ALL: [Counter; 5] = [
        Counter::Seen,
        Counter::Redirected,
        Counter::Passed,
        Counter::Fragments,
        Counter::Malformed,
    ];

    /// The counter's name in logs and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::Seen => "seen",
            Counter::Redirected => "redirected",
            Counter::Passed => "passed",
            Counter::Fragments => "fragments",
            Counter::Malformed => "malformed",
        }
    }
}

/// Number of entries in the counters map.
pub const COUNTER_COUNT: u32 = Counter::ALL.len() as u32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_config_is_two_words_without_padding() {
        assert_eq!(core::mem::size_of::<FilterConfig>(), 8);
        let config = FilterConfig {
            transports: transport::UDP | transport::TCP,
            redirect_fragments: 1,
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
