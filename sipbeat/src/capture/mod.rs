//! Where frames come from: capture files ([`pcap`]) and, live, AF_XDP
//! sockets ([`xsk`]) fed by the XDP program ([`xdp`]).
//!
//! A source hands out [`Frame`]s that borrow its buffer (the file mapping,
//! the UMEM) together with the capture timestamp and link type. Sources
//! know nothing of IP or SIP.

pub mod pcap;
#[cfg(feature = "xdp")]
pub mod xdp;
#[cfg(feature = "xdp")]
pub mod xsk;

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
}
