//! The kernel filter's logic: does a frame carry SIP, under any VLAN tags
//! and tunnels, or is it an IP fragment? One definition, compiled into the
//! eBPF programs (XDP in mirror mode, TC in host mode) and run by user-space
//! tests over every decode fixture and corpus capture, so the kernel filter
//! and `sipbeat::decode` cannot drift apart.
//!
//! It reads through [`Bytes`], which the eBPF side implements with the
//! kernel's load-bytes helpers (bounds checked at run time, so the verifier
//! sees plain scalar offsets) and tests implement over a slice. Ports come
//! from [`Lookup`] (BPF hash maps in the kernel). Every loop is bounded by a
//! constant: the verifier unrolls or bounds them, and a crafted packet
//! cannot make the walk longer.

use crate::wire::{
    ETHERNET_LEN, IPV4_MIN_HEADER_LEN, IPV6_HEADER_LEN, MAX_ENCAPSULATIONS, MAX_IPV6_EXTENSIONS,
    MAX_VLAN_TAGS, UDP_HEADER_LEN, VLAN_TAG_LEN, erspan, ethertype, geneve, gre, ip_protocol, ipv4,
    ipv6_next, ppp, vxlan,
};
use crate::{FilterConfig, transport};

/// A packet's bytes, read at an offset.
pub trait Bytes {
    /// `N` bytes at `offset`, or `None` past the end.
    fn load<const N: usize>(&self, offset: usize) -> Option<[u8; N]>;
}

impl Bytes for [u8] {
    #[inline(always)]
    fn load<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        self.get(offset..offset.checked_add(N)?)?.try_into().ok()
    }
}

/// A tunnel carried over UDP, recognised by its destination port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum UdpTunnel {
    Vxlan = 1,
    Geneve = 2,
}

impl UdpTunnel {
    /// From its map value.
    pub const fn from_u8(value: u8) -> Option<UdpTunnel> {
        match value {
            1 => Some(UdpTunnel::Vxlan),
            2 => Some(UdpTunnel::Geneve),
            _ => None,
        }
    }
}

/// The port sets the filter consults.
pub trait Lookup {
    /// Whether `port` is a SIP port.
    fn sip_port(&self, port: u16) -> bool;
    /// The UDP tunnel on destination `port`, if any.
    fn udp_tunnel(&self, port: u16) -> Option<UdpTunnel>;
}

/// What the filter decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// UDP or TCP with a SIP port at either end, on an enabled transport.
    Sip,
    /// An IP fragment (only the first carries ports; user space reassembles).
    Fragment,
    /// Anything else.
    Other,
    /// Too short or inconsistent to follow.
    Malformed,
}

/// Link framing at offset 0, for [`FilterConfig::link`].
pub mod link {
    /// Ethernet II (possibly VLAN-tagged).
    pub const ETHERNET: u32 = 0;
    /// No link header: IPv4 or IPv6 by the version nibble (tun devices).
    pub const RAW_IP: u32 = 1;
}

#[derive(Clone, Copy)]
enum Layer {
    Ethernet,
    Ipv4,
    Ipv6,
}

/// What one layer leads to.
enum Next {
    Layer(Layer, usize),
    Tunnel(Layer, usize),
    Done(Verdict),
}

/// Classifies one frame. The walk mirrors `sipbeat::decode`: Ethernet and
/// VLAN tags, IPv4 and IPv6 (extension headers), then UDP or TCP ports, or
/// one more layer for IP-in-IP, GRE (IP, Ethernet, ERSPAN II/III, PPP),
/// VXLAN and Geneve, at most [`MAX_ENCAPSULATIONS`] deep.
#[inline(always)]
pub fn classify<B: Bytes + ?Sized, L: Lookup>(
    bytes: &B,
    lookup: &L,
    config: &FilterConfig,
) -> Verdict {
    let mut layer = if config.link == link::RAW_IP {
        match bytes.load::<1>(0) {
            Some([b]) if b >> 4 == 4 => Layer::Ipv4,
            Some([b]) if b >> 4 == 6 => Layer::Ipv6,
            Some(_) => return Verdict::Other,
            None => return Verdict::Malformed,
        }
    } else {
        Layer::Ethernet
    };
    let mut at = 0;
    let mut depth = 0;
    // Each tunnel costs at most two steps (its link layer and its IP layer).
    for _ in 0..2 * (MAX_ENCAPSULATIONS + 1) + 1 {
        let next = match layer {
            Layer::Ethernet => ethernet(bytes, at),
            Layer::Ipv4 => ipv4(bytes, at, lookup, config),
            Layer::Ipv6 => ipv6(bytes, at, lookup, config),
        };
        match next {
            Next::Layer(next, offset) => (layer, at) = (next, offset),
            Next::Tunnel(next, offset) => {
                depth += 1;
                if depth > MAX_ENCAPSULATIONS {
                    return Verdict::Other;
                }
                (layer, at) = (next, offset);
            }
            Next::Done(verdict) => return verdict,
        }
    }
    Verdict::Other
}

#[inline(always)]
fn be16(bytes: [u8; 2]) -> u16 {
    u16::from_be_bytes(bytes)
}

#[inline(always)]
fn ethernet<B: Bytes + ?Sized>(bytes: &B, at: usize) -> Next {
    let Some(mut next_type) = bytes.load::<2>(at + 12).map(be16) else {
        return Next::Done(Verdict::Malformed);
    };
    let mut offset = at + ETHERNET_LEN;
    for _ in 0..MAX_VLAN_TAGS {
        if !ethertype::is_vlan_tag(next_type) {
            break;
        }
        match bytes.load::<2>(offset + 2) {
            Some(t) => next_type = be16(t),
            None => return Next::Done(Verdict::Malformed),
        }
        offset += VLAN_TAG_LEN;
    }
    match next_type {
        ethertype::IPV4 => Next::Layer(Layer::Ipv4, offset),
        ethertype::IPV6 => Next::Layer(Layer::Ipv6, offset),
        _ => Next::Done(Verdict::Other),
    }
}

#[inline(always)]
fn ipv4<B: Bytes + ?Sized, L: Lookup>(
    bytes: &B,
    at: usize,
    lookup: &L,
    config: &FilterConfig,
) -> Next {
    let Some(header) = bytes.load::<IPV4_MIN_HEADER_LEN>(at) else {
        return Next::Done(Verdict::Malformed);
    };
    let header_len = usize::from(header[0] & 0x0f) * 4;
    if header[0] >> 4 != 4 || header_len < IPV4_MIN_HEADER_LEN {
        return Next::Done(Verdict::Malformed);
    }
    let flags_fragment = be16([
        header[ipv4::FLAGS_FRAGMENT],
        header[ipv4::FLAGS_FRAGMENT + 1],
    ]);
    if flags_fragment & (ipv4::MORE_FRAGMENTS | ipv4::OFFSET_MASK) != 0 {
        return Next::Done(Verdict::Fragment);
    }
    upper(
        bytes,
        header[ipv4::PROTOCOL],
        at + header_len,
        lookup,
        config,
    )
}

#[inline(always)]
fn ipv6<B: Bytes + ?Sized, L: Lookup>(
    bytes: &B,
    at: usize,
    lookup: &L,
    config: &FilterConfig,
) -> Next {
    let Some([version, _, _, _, _, _, mut next, _]) = bytes.load::<8>(at) else {
        return Next::Done(Verdict::Malformed);
    };
    if version >> 4 != 6 || bytes.load::<1>(at + IPV6_HEADER_LEN - 1).is_none() {
        return Next::Done(Verdict::Malformed);
    }
    let mut offset = at + IPV6_HEADER_LEN;
    for _ in 0..MAX_IPV6_EXTENSIONS {
        let len = match next {
            ipv6_next::HOP_BY_HOP
            | ipv6_next::ROUTING
            | ipv6_next::DEST_OPTIONS
            | ipv6_next::MOBILITY
            | ipv6_next::AUTH => {
                let Some([following, units]) = bytes.load::<2>(offset) else {
                    return Next::Done(Verdict::Malformed);
                };
                let len = ipv6_next::extension_len(next, units);
                next = following;
                len
            }
            ipv6_next::FRAGMENT => {
                let Some([following, _, hi, lo]) = bytes.load::<4>(offset) else {
                    return Next::Done(Verdict::Malformed);
                };
                let offset_flags = be16([hi, lo]);
                // An atomic fragment (offset 0, no more) is a whole datagram.
                if offset_flags >> 3 != 0 || offset_flags & 1 != 0 {
                    return Next::Done(Verdict::Fragment);
                }
                next = following;
                ipv6_next::FRAGMENT_LEN
            }
            _ => break,
        };
        offset += len;
    }
    upper(bytes, next, offset, lookup, config)
}

/// The layer above IP: ports, or the next layer of a tunnel.
#[inline(always)]
fn upper<B: Bytes + ?Sized, L: Lookup>(
    bytes: &B,
    protocol: u8,
    at: usize,
    lookup: &L,
    config: &FilterConfig,
) -> Next {
    match protocol {
        ip_protocol::UDP | ip_protocol::TCP => {
            let Some([sh, sl, dh, dl]) = bytes.load::<4>(at) else {
                return Next::Done(Verdict::Malformed);
            };
            let (src, dst) = (be16([sh, sl]), be16([dh, dl]));
            if protocol == ip_protocol::UDP
                && let Some(tunnel) = lookup.udp_tunnel(dst)
                && let Some(next) = udp_tunnel(bytes, at + UDP_HEADER_LEN, tunnel)
            {
                return next;
            }
            let wanted = if protocol == ip_protocol::UDP {
                transport::UDP
            } else {
                transport::TCP
            };
            if config.transports & wanted != 0 && (lookup.sip_port(src) || lookup.sip_port(dst)) {
                Next::Done(Verdict::Sip)
            } else {
                Next::Done(Verdict::Other)
            }
        }
        ip_protocol::IPV4_IN_IP => Next::Tunnel(Layer::Ipv4, at),
        ip_protocol::IPV6_IN_IP => Next::Tunnel(Layer::Ipv6, at),
        ip_protocol::GRE => gre(bytes, at),
        _ => Next::Done(Verdict::Other),
    }
}

/// VXLAN or Geneve at `at` (past the UDP header). `None`: not the tunnel
/// after all (VXLAN without the I flag), so the UDP ports decide.
#[inline(always)]
fn udp_tunnel<B: Bytes + ?Sized>(bytes: &B, at: usize, tunnel: UdpTunnel) -> Option<Next> {
    match tunnel {
        UdpTunnel::Vxlan => {
            let [flags] = bytes.load::<1>(at)?;
            // Room for the inner Ethernet header, as decode asks.
            bytes.load::<ETHERNET_LEN>(at + vxlan::HEADER_LEN)?;
            (flags & vxlan::FLAG_VNI != 0)
                .then_some(Next::Tunnel(Layer::Ethernet, at + vxlan::HEADER_LEN))
        }
        UdpTunnel::Geneve => {
            let [options, _, hi, lo] = bytes.load::<4>(at)?;
            let inner = at
                + geneve::HEADER_LEN
                + usize::from(options & geneve::OPTIONS_LEN_MASK) * geneve::OPTION_UNIT;
            Some(match be16([hi, lo]) {
                geneve::PROTOCOL_ETHERNET => Next::Tunnel(Layer::Ethernet, inner),
                ethertype::IPV4 => Next::Tunnel(Layer::Ipv4, inner),
                ethertype::IPV6 => Next::Tunnel(Layer::Ipv6, inner),
                _ => Next::Done(Verdict::Other),
            })
        }
    }
}

#[inline(always)]
fn gre<B: Bytes + ?Sized>(bytes: &B, at: usize) -> Next {
    let Some([flags, version, hi, lo]) = bytes.load::<4>(at) else {
        return Next::Done(Verdict::Malformed);
    };
    let payload = at + gre::header_len(flags, version);
    match be16([hi, lo]) {
        gre::protocol::IPV4 => Next::Tunnel(Layer::Ipv4, payload),
        gre::protocol::IPV6 => Next::Tunnel(Layer::Ipv6, payload),
        gre::protocol::TRANSPARENT_ETHERNET => Next::Tunnel(Layer::Ethernet, payload),
        gre::protocol::ERSPAN_II if flags & gre::SEQUENCE_PRESENT != 0 => {
            Next::Tunnel(Layer::Ethernet, payload + erspan::TYPE_II_LEN)
        }
        gre::protocol::ERSPAN_II => Next::Tunnel(Layer::Ethernet, payload),
        gre::protocol::ERSPAN_III => match bytes.load::<1>(payload + erspan::TYPE_III_FLAGS_BYTE) {
            Some([o]) if o & erspan::TYPE_III_O_FLAG != 0 => {
                Next::Tunnel(Layer::Ethernet, payload + erspan::TYPE_III_PLATFORM_LEN)
            }
            Some(_) => Next::Tunnel(Layer::Ethernet, payload + erspan::TYPE_III_LEN),
            None => Next::Done(Verdict::Malformed),
        },
        gre::protocol::PPP => {
            let Some(mut head) = bytes.load::<4>(payload) else {
                return Next::Done(Verdict::Malformed);
            };
            let mut inner = payload;
            if [head[0], head[1]] == ppp::HDLC_PREFIX {
                inner += 2;
                head = [head[2], head[3], 0, 0];
            }
            // Protocol-field compression: an odd first byte is the whole field.
            let (protocol, len) = if head[0] & 1 == 1 {
                (u16::from(head[0]), 1)
            } else {
                (be16([head[0], head[1]]), 2)
            };
            match protocol {
                ppp::IPV4 => Next::Tunnel(Layer::Ipv4, inner + len),
                ppp::IPV6 => Next::Tunnel(Layer::Ipv6, inner + len),
                _ => Next::Done(Verdict::Other),
            }
        }
        _ => Next::Done(Verdict::Other),
    }
}
