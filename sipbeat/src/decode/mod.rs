//! From link-layer frame to transport payload, one layer per file.
//!
//! Each layer is a function over borrowed bytes that checks lengths before it
//! reads and returns the next layer's bytes; nothing here copies or allocates.
//! [`decode`] chains them: link ([`link`]) → IP ([`ip`]) → UDP ([`udp`]) or
//! TCP ([`tcp`]), looking through tunnels on the way (IP-in-IP, GRE with
//! ERSPAN or PPP ([`gre`]), VXLAN and Geneve on their [`TunnelPorts`]) and
//! keeping the innermost addresses. The kernel filter
//! (`sipbeat_common::filter`) walks the same layers with the same
//! constants; a test holds the two to agreement on every fixture.
//! Stateful work — IP reassembly and TCP streams — lives in
//! [`crate::reassemble`], so these views stay pure functions a fuzzer can
//! call on any input.

pub mod gre;
pub mod ip;
pub mod link;
pub mod tcp;
pub mod udp;

use std::net::IpAddr;

use crate::capture::LinkType;
use link::Network;

crate::reasons! {
    /// Why a frame did not yield a transport payload.
    pub enum DecodeError {
        /// Not IPv4 or IPv6 at the network layer (ARP, LLDP, ...).
        NotIp => "not_ip",
        /// An IP protocol sipbeat does not carry SIP over (ICMP, ESP, SCTP, ...).
        OtherTransport => "other_transport",
        /// Frame shorter than its link header.
        LinkTruncated => "link_truncated",
        /// IPv4 header too short, wrong version or length fields out of range.
        Ipv4Malformed => "ipv4_malformed",
        /// IPv6 header or extension header chain cut short.
        Ipv6Malformed => "ipv6_malformed",
        /// UDP header cut short or its length field inconsistent.
        UdpMalformed => "udp_malformed",
        /// The capture kept fewer bytes than the UDP datagram had (snap length).
        UdpTruncated => "udp_truncated",
        /// TCP header cut short or its data offset out of range.
        TcpMalformed => "tcp_malformed",
        /// A GRE, ERSPAN, PPP or VXLAN header cut short.
        TunnelMalformed => "tunnel_malformed",
        /// More nested tunnels than [`MAX_ENCAPSULATIONS`].
        TooManyEncapsulations => "too_many_encapsulations",
    }
}

impl DecodeError {
    /// Whether the frame was broken, as opposed to simply not being SIP-bearing traffic.
    pub const fn is_malformed(self) -> bool {
        !matches!(self, DecodeError::NotIp | DecodeError::OtherTransport)
    }
}

use sipbeat_common::filter::UdpTunnel;
pub use sipbeat_common::wire::MAX_ENCAPSULATIONS;
/// IP protocol numbers this layer looks at.
pub use sipbeat_common::wire::ip_protocol as protocol;
use sipbeat_common::wire::{ethertype, geneve, vxlan};

/// UDP destination ports that carry tunnels (VXLAN, Geneve) to look into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelPorts {
    ports: Vec<(u16, UdpTunnel)>,
}

impl Default for TunnelPorts {
    /// IANA's: VXLAN on 4789, Geneve on 6081.
    fn default() -> Self {
        TunnelPorts::new(&[vxlan::PORT], &[geneve::PORT])
    }
}

impl TunnelPorts {
    pub fn new(vxlan: &[u16], geneve: &[u16]) -> TunnelPorts {
        let vxlan = vxlan.iter().map(|&p| (p, UdpTunnel::Vxlan));
        let geneve = geneve.iter().map(|&p| (p, UdpTunnel::Geneve));
        TunnelPorts {
            ports: vxlan.chain(geneve).collect(),
        }
    }

    /// The tunnel on destination `port`, if any (a short list: a scan).
    #[inline]
    pub fn get(&self, port: u16) -> Option<UdpTunnel> {
        self.ports
            .iter()
            .find_map(|&(p, tunnel)| (p == port).then_some(tunnel))
    }

    /// Every (port, tunnel) pair, for the kernel filter's map.
    pub fn iter(&self) -> impl Iterator<Item = (u16, UdpTunnel)> + '_ {
        self.ports.iter().copied()
    }
}

/// The default tunnel ports, shared by every [`decode`] call.
fn default_tunnels() -> &'static TunnelPorts {
    static DEFAULT: std::sync::OnceLock<TunnelPorts> = std::sync::OnceLock::new();
    DEFAULT.get_or_init(TunnelPorts::default)
}

/// A decoded packet: innermost addresses plus what the transport carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub transport: Transport<'a>,
}

/// The transport layer of a [`Packet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport<'a> {
    Udp(udp::Datagram<'a>),
    Tcp(tcp::Segment<'a>),
    /// One fragment of an IP datagram: `protocol` is the upper layer of the
    /// whole datagram, `payload` this fragment's share of it.
    Fragment {
        protocol: u8,
        fragment: ip::Fragment,
        payload: &'a [u8],
    },
}

/// Decodes one frame down to its transport payload, looking into tunnels
/// on IANA's ports.
pub fn decode(link: LinkType, frame: &[u8]) -> Result<Packet<'_>, DecodeError> {
    decode_with(link, frame, default_tunnels())
}

/// [`decode`] with the UDP tunnels on `tunnels`.
pub fn decode_with<'a>(
    link: LinkType,
    frame: &'a [u8],
    tunnels: &TunnelPorts,
) -> Result<Packet<'a>, DecodeError> {
    network(link::decode(link, frame)?, 0, tunnels)
}

fn network<'a>(
    network: Network<'a>,
    depth: usize,
    tunnels: &TunnelPorts,
) -> Result<Packet<'a>, DecodeError> {
    if depth > MAX_ENCAPSULATIONS {
        return Err(DecodeError::TooManyEncapsulations);
    }
    let datagram = ip::decode(network)?;
    if let Some(fragment) = datagram.fragment {
        return Ok(Packet {
            src: datagram.src,
            dst: datagram.dst,
            transport: Transport::Fragment {
                protocol: datagram.protocol,
                fragment,
                payload: datagram.payload,
            },
        });
    }
    upper(
        datagram.src,
        datagram.dst,
        datagram.protocol,
        datagram.payload,
        depth,
        tunnels,
    )
}

/// Decodes a whole (unfragmented or reassembled) IP payload.
pub fn transport<'a>(
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    payload: &'a [u8],
    tunnels: &TunnelPorts,
) -> Result<Packet<'a>, DecodeError> {
    upper(src, dst, protocol, payload, 0, tunnels)
}

fn upper<'a>(
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    payload: &'a [u8],
    depth: usize,
    tunnels: &TunnelPorts,
) -> Result<Packet<'a>, DecodeError> {
    let transport = match protocol {
        protocol::UDP => {
            let udp = udp::decode(payload)?;
            match tunnels.get(udp.dst_port) {
                Some(UdpTunnel::Vxlan) if is_vxlan(udp.payload) => {
                    return ethernet(&udp.payload[vxlan::HEADER_LEN..], depth + 1, tunnels);
                }
                Some(UdpTunnel::Geneve) => return geneve(udp.payload, depth + 1, tunnels),
                _ => {}
            }
            Transport::Udp(udp)
        }
        protocol::TCP => Transport::Tcp(tcp::decode(payload)?),
        protocol::IPV4_IN_IP => return network(Network::Ipv4(payload), depth + 1, tunnels),
        protocol::IPV6_IN_IP => return network(Network::Ipv6(payload), depth + 1, tunnels),
        protocol::GRE => {
            return match gre::decode(payload)? {
                gre::Inner::Network(inner) => network(inner, depth + 1, tunnels),
                gre::Inner::Ethernet(frame) => ethernet(frame, depth + 1, tunnels),
            };
        }
        _ => return Err(DecodeError::OtherTransport),
    };
    Ok(Packet {
        src,
        dst,
        transport,
    })
}

fn ethernet<'a>(
    frame: &'a [u8],
    depth: usize,
    tunnels: &TunnelPorts,
) -> Result<Packet<'a>, DecodeError> {
    network(link::ethernet(frame)?, depth, tunnels)
}

/// A VXLAN header with the I flag (valid VNI) and room for an inner frame.
fn is_vxlan(payload: &[u8]) -> bool {
    payload.len() >= vxlan::HEADER_LEN + sipbeat_common::wire::ETHERNET_LEN
        && payload[0] & vxlan::FLAG_VNI != 0
}

/// Geneve: options skipped, then Ethernet or IP.
fn geneve<'a>(
    payload: &'a [u8],
    depth: usize,
    tunnels: &TunnelPorts,
) -> Result<Packet<'a>, DecodeError> {
    let [options, _, hi, lo, ..] = *payload else {
        return Err(DecodeError::TunnelMalformed);
    };
    let inner =
        geneve::HEADER_LEN + usize::from(options & geneve::OPTIONS_LEN_MASK) * geneve::OPTION_UNIT;
    let inner = payload.get(inner..).ok_or(DecodeError::TunnelMalformed)?;
    match u16::from_be_bytes([hi, lo]) {
        geneve::PROTOCOL_ETHERNET => ethernet(inner, depth, tunnels),
        ethertype::IPV4 => network(Network::Ipv4(inner), depth, tunnels),
        ethertype::IPV6 => network(Network::Ipv6(inner), depth, tunnels),
        _ => Err(DecodeError::OtherTransport),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Frame builders for decoder tests.

    /// An Ethernet + IPv4 + UDP frame around `payload`.
    pub fn udp4_frame(
        src: [u8; 4],
        dst: [u8; 4],
        sport: u16,
        dport: u16,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(&ipv4_udp(src, dst, sport, dport, payload));
        frame
    }

    /// An IPv4 header (no options) for `transport_len` bytes of
    /// `protocol`; `flags_fragment` is the flags/fragment-offset field.
    fn ipv4_header(
        src: [u8; 4],
        dst: [u8; 4],
        protocol: u8,
        flags_fragment: u16,
        transport_len: usize,
    ) -> Vec<u8> {
        let total = (20 + transport_len) as u16;
        let mut p = vec![0x45, 0];
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&[0, 1]);
        p.extend_from_slice(&flags_fragment.to_be_bytes());
        p.extend_from_slice(&[64, protocol, 0, 0]);
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p
    }

    /// An IPv4 + TCP packet around `payload` (don't-fragment set).
    pub fn ipv4_tcp(
        src: [u8; 4],
        dst: [u8; 4],
        sport: u16,
        dport: u16,
        seq: u32,
        flags: u8,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut p = ipv4_header(src, dst, 6, 0x4000, 20 + payload.len());
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 0, 0x50, flags | 0x10, 0xff, 0xff, 0, 0, 0, 0]);
        p.extend_from_slice(payload);
        p
    }

    /// An IPv4 + UDP packet around `payload`.
    pub fn ipv4_udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let udp_len = 8 + payload.len();
        let mut p = ipv4_header(src, dst, 17, 0, udp_len);
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&(udp_len as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(payload);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    fn ethernet_frame(ethertype: [u8; 2], payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&ethertype);
        frame.extend_from_slice(payload);
        frame
    }

    fn outer_ipv4(protocol: u8, payload: &[u8]) -> Vec<u8> {
        let total = 20 + payload.len();
        let mut p = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            9,
            0,
            0,
            64,
            protocol,
            0,
            0,
        ];
        p.extend_from_slice(&[198, 51, 100, 1, 198, 51, 100, 2]);
        p.extend_from_slice(payload);
        p
    }

    fn inner_udp(packet: Packet<'_>) -> (IpAddr, u16, Vec<u8>) {
        match packet.transport {
            Transport::Udp(udp) => (packet.src, udp.dst_port, udp.payload.to_vec()),
            other => panic!("expected UDP, got {other:?}"),
        }
    }

    #[test]
    fn ip_in_ip_keeps_inner_addresses() {
        let inner = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 5060, 5060, b"sip");
        let frame = ethernet_frame([0x08, 0x00], &outer_ipv4(protocol::IPV4_IN_IP, &inner));
        let (src, port, payload) = inner_udp(decode(LinkType::Ethernet, &frame).unwrap());
        assert_eq!(src, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!((port, payload.as_slice()), (5060, &b"sip"[..]));
    }

    #[test]
    fn gre_with_ethernet_inside() {
        let inner = ethernet_frame(
            [0x08, 0x00],
            &ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 5060, 5060, b"sip"),
        );
        let mut gre = vec![0, 0, 0x65, 0x58];
        gre.extend_from_slice(&inner);
        let frame = ethernet_frame([0x08, 0x00], &outer_ipv4(protocol::GRE, &gre));
        assert_eq!(
            inner_udp(decode(LinkType::Ethernet, &frame).unwrap()).2,
            b"sip"
        );
    }

    #[test]
    fn vxlan_on_its_port() {
        let inner = ethernet_frame(
            [0x08, 0x00],
            &ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 5060, 5060, b"sip"),
        );
        let mut vxlan = vec![0x08, 0, 0, 0, 0, 0, 1, 0];
        vxlan.extend_from_slice(&inner);
        let outer = ipv4_udp(
            [198, 51, 100, 1],
            [198, 51, 100, 2],
            40000,
            vxlan::PORT,
            &vxlan,
        );
        let frame = ethernet_frame([0x08, 0x00], &outer);
        assert_eq!(
            inner_udp(decode(LinkType::Ethernet, &frame).unwrap()).2,
            b"sip"
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let mut packet = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 5060, 5060, b"sip");
        for _ in 0..MAX_ENCAPSULATIONS {
            packet = outer_ipv4(protocol::IPV4_IN_IP, &packet);
        }
        // As many tunnels as allowed are looked through; one more is refused.
        assert_eq!(
            inner_udp(decode(LinkType::RawIp, &packet).unwrap()).2,
            b"sip"
        );
        packet = outer_ipv4(protocol::IPV4_IN_IP, &packet);
        assert_eq!(
            decode(LinkType::RawIp, &packet),
            Err(DecodeError::TooManyEncapsulations)
        );
    }

    #[test]
    fn tcp_segments_and_fragments() {
        let segment = ipv4_tcp(
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            5060,
            5060,
            7,
            tcp::flag::SYN,
            b"",
        );
        let packet = decode(LinkType::RawIp, &segment).unwrap();
        assert!(
            matches!(packet.transport, Transport::Tcp(s) if s.seq == 7 && s.has(tcp::flag::SYN))
        );
        let mut fragment = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 5060, 5060, b"sip");
        fragment[6] = 0x20;
        let packet = decode(LinkType::RawIp, &fragment).unwrap();
        assert!(matches!(
            packet.transport,
            Transport::Fragment {
                protocol: 17,
                fragment: ip::Fragment {
                    offset: 0,
                    more: true,
                    ..
                },
                ..
            }
        ));
    }
}
